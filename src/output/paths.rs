//! Where an output path really leads, and which paths one invocation may
//! not write.
//!
//! [`resolve`] follows symbolic links, so that writing to a link writes its
//! target (the link stays a link) and a non-regular file (a FIFO, a device
//! such as /dev/stdout) is written directly instead of replaced.
//!
//! [`check_collisions`] refuses an invocation in which two outputs land on
//! one file, or an output lands on a file the run reads (a model or one of
//! its external data files), the one exception being a model written over
//! its own input (in place). Files are compared by identity (device and
//! inode for existing files, canonical path for new ones), never by the
//! spelling of their paths.

use super::WriteError;
use std::fs;
use std::path::{Path, PathBuf};

/// How symbolic links are followed at most before giving up (as Linux does).
const MAX_LINKS: usize = 40;

/// Where the bytes for an output path go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A regular file, existing or new, at this path (symbolic links
    /// resolved): written to a temporary file in its folder and renamed over it.
    Replace(PathBuf),
    /// An existing file that is neither regular nor a folder (a FIFO, a
    /// device): opened and written directly.
    Direct(PathBuf),
}

impl Target {
    /// The path bytes are written to.
    pub fn path(&self) -> &Path {
        match self {
            Target::Replace(p) | Target::Direct(p) => p,
        }
    }
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Follows `path` through symbolic links to the file that writing it
/// changes. Errors: a folder, a link loop, a missing folder (for a new file),
/// or a path that cannot be inspected.
pub fn resolve(path: &Path) -> Result<Target, WriteError> {
    // An existing file: let the system follow the links (this also handles
    // /proc's links such as /dev/stdout -> /proc/self/fd/1 -> "pipe:[...]",
    // which lead nowhere as paths).
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Err(WriteError::IsFolder(path.to_path_buf())),
        Ok(meta) if !meta.is_file() => return Ok(Target::Direct(path.to_path_buf())),
        Ok(_) => {
            let real = fs::canonicalize(path).map_err(|source| WriteError::Io { path: path.to_path_buf(), source })?;
            return Ok(Target::Replace(real));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(WriteError::Io { path: path.to_path_buf(), source }),
    }
    // A new file, possibly behind a dangling link: follow the links by hand
    // to the name that will be created.
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link =
                    fs::read_link(&current).map_err(|source| WriteError::Io { path: current.clone(), source })?;
                current = folder_of(&current).join(link);
            }
            Ok(meta) if meta.is_dir() => return Err(WriteError::IsFolder(path.to_path_buf())),
            Ok(meta) if meta.is_file() => return Ok(Target::Replace(current)),
            Ok(_) => return Ok(Target::Direct(current)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let folder = folder_of(&current);
                if !folder.is_dir() {
                    return Err(WriteError::NoFolder(folder));
                }
                return Ok(Target::Replace(current));
            }
            Err(source) => return Err(WriteError::Io { path: current, source }),
        }
    }
    Err(WriteError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!("more than {MAX_LINKS} symbolic links to follow")),
    })
}

/// The identity of a file: the same key means the same file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    /// An existing file.
    Inode(u64, u64),
    /// A file that does not exist yet: its canonical folder and name.
    New(PathBuf),
}

#[cfg(unix)]
fn existing_key(path: &Path) -> Option<Key> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| Key::Inode(m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn existing_key(path: &Path) -> Option<Key> {
    fs::canonicalize(path).ok().map(Key::New)
}

/// The identity of what writing `path` replaces; None for a non-regular
/// target (written directly, several outputs may share it, e.g. /dev/null)
/// and for a path that cannot be written at all (reported when writing).
fn sink_key(path: &Path) -> Option<Key> {
    match resolve(path).ok()? {
        Target::Direct(_) => None,
        Target::Replace(p) => existing_key(&p).or_else(|| {
            let folder = fs::canonicalize(folder_of(&p)).ok()?;
            Some(Key::New(folder.join(p.file_name()?)))
        }),
    }
}

/// A file the run reads.
#[derive(Debug, Clone)]
pub struct Source {
    /// How messages name it, e.g. "INPUT a.onnx" or "external data `w.data` of a.onnx".
    pub what: String,
    /// Its path.
    pub path: PathBuf,
    /// `Some(j)` for the model of job `j`: that job's model output may replace it.
    pub model_of: Option<usize>,
}

/// A file the run writes.
#[derive(Debug, Clone)]
pub struct Sink {
    /// How messages name it, e.g. "OUTPUT" or "--report r.json".
    pub what: String,
    /// Its path, as given (symbolic links are followed here).
    pub path: PathBuf,
    /// `Some(j)` for the model output of job `j`.
    pub model_of: Option<usize>,
    /// For an external data copy, the file it copies: copies of one file to
    /// one place do not collide, and a copy onto its own source is no write.
    pub copy_of: Option<PathBuf>,
}

/// Refuses (with a one-line message naming both paths) any two `sinks` on
/// one file, and any sink on a `source`, except the model output of job `j`
/// on the model input of job `j`. Paths that do not exist and cannot be
/// created are ignored here (writing them fails later with its own message).
pub fn check_collisions(sources: &[Source], sinks: &[Sink]) -> Result<(), String> {
    let sources: Vec<(&Source, Key)> = sources.iter().filter_map(|s| Some((s, existing_key(&s.path)?))).collect();
    let mut placed: Vec<(&Sink, Key, Option<Key>)> = Vec::new();
    for sink in sinks {
        let Some(key) = sink_key(&sink.path) else { continue };
        let copy_of = sink.copy_of.as_deref().and_then(existing_key);
        if copy_of.is_some() && copy_of.as_ref() == Some(&key) {
            continue; // the data file is already there: nothing is written
        }
        if let Some((source, _)) =
            sources.iter().find(|(s, k)| *k == key && !(s.model_of.is_some() && s.model_of == sink.model_of))
        {
            return Err(format!(
                "{} ({}) is {} ({}): writing it would destroy an input; choose another path",
                sink.what,
                sink.path.display(),
                source.what,
                source.path.display()
            ));
        }
        let clash = placed.iter().find(|(_, k, from)| *k == key && !(copy_of.is_some() && *from == copy_of));
        if let Some((other, _, _)) = clash {
            return Err(format!(
                "{} ({}) and {} ({}) are the same file; give each output its own path",
                other.what,
                other.path.display(),
                sink.what,
                sink.path.display()
            ));
        }
        placed.push((sink, key, copy_of));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(what: &str, path: &Path) -> Sink {
        Sink { what: what.into(), path: path.to_path_buf(), model_of: None, copy_of: None }
    }

    #[test]
    fn resolve_follows_links_and_spots_special_files() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.onnx");
        fs::write(&real, b"x").unwrap();
        let real = fs::canonicalize(&real).unwrap();
        assert_eq!(resolve(&real).unwrap(), Target::Replace(real.clone()));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("real.onnx", dir.path().join("link.onnx")).unwrap();
            std::os::unix::fs::symlink("link.onnx", dir.path().join("link2.onnx")).unwrap();
            assert_eq!(resolve(&dir.path().join("link2.onnx")).unwrap(), Target::Replace(real.clone()));
            std::os::unix::fs::symlink("new.onnx", dir.path().join("dangling.onnx")).unwrap();
            assert_eq!(
                resolve(&dir.path().join("dangling.onnx")).unwrap(),
                Target::Replace(dir.path().join("new.onnx"))
            );
            std::os::unix::fs::symlink("loop", dir.path().join("loop")).unwrap();
            assert!(resolve(&dir.path().join("loop")).is_err());
            assert_eq!(resolve(Path::new("/dev/null")).unwrap(), Target::Direct("/dev/null".into()));
        }
        assert!(matches!(resolve(dir.path()), Err(WriteError::IsFolder(_))));
        assert!(matches!(resolve(&dir.path().join("no/x.onnx")), Err(WriteError::NoFolder(_))));
        assert_eq!(resolve(&dir.path().join("new.onnx")).unwrap(), Target::Replace(dir.path().join("new.onnx")));
    }

    #[test]
    fn collisions_are_found_by_identity_not_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.onnx");
        fs::write(&input, b"x").unwrap();
        let spelled_otherwise = dir.path().join(".").join("in.onnx");
        let sources = [Source { what: "INPUT".into(), path: input.clone(), model_of: Some(0) }];
        let own = Sink { model_of: Some(0), ..sink("OUTPUT", &spelled_otherwise) };
        assert!(check_collisions(&sources, &[own.clone()]).is_ok(), "in place is allowed");
        let err = check_collisions(&sources, &[sink("--report", &spelled_otherwise)]).unwrap_err();
        assert!(err.contains("--report") && err.contains("INPUT"), "{err}");
        let other_job = Sink { model_of: Some(1), ..own.clone() };
        assert!(check_collisions(&sources, &[other_job]).is_err());
        // Two new files on one path, spelled differently.
        let a = sink("--plot", &dir.path().join("p.svg"));
        let b = sink("--report", &dir.path().join("sub/../p.svg"));
        fs::create_dir(dir.path().join("sub")).unwrap();
        let err = check_collisions(&[], &[a.clone(), b]).unwrap_err();
        assert!(err.contains("--plot") && err.contains("--report") && err.contains("same file"), "{err}");
        assert!(check_collisions(&[], &[a, sink("--report", &dir.path().join("r.json"))]).is_ok());
        // Copies of one data file to one place are fine; of two files, not.
        let w1 = dir.path().join("sub/w.data");
        let w2 = dir.path().join("w2.data");
        fs::write(&w1, b"1").unwrap();
        fs::write(&w2, b"2").unwrap();
        let dest = dir.path().join("out.data");
        let copy = |from: &Path| Sink { copy_of: Some(from.to_path_buf()), ..sink("copy", &dest) };
        assert!(check_collisions(&[], &[copy(&w1), copy(&w1)]).is_ok());
        assert!(check_collisions(&[], &[copy(&w1), copy(&w2)]).is_err());
        // A copy onto its own source writes nothing.
        let onto_itself = Sink { copy_of: Some(w1.clone()), ..sink("copy", &w1) };
        let data = Source { what: "data".into(), path: w1.clone(), model_of: None };
        assert!(check_collisions(&[data], &[onto_itself]).is_ok());
        // Special files are written directly and may be shared.
        #[cfg(unix)]
        assert!(check_collisions(&[], &[sink("a", Path::new("/dev/null")), sink("b", Path::new("/dev/null"))]).is_ok());
    }
}
