//! External data: weights stored beside the model in other files.
//!
//! A tensor's `external_data` entry `location` is a path relative to the
//! model's folder. The tool never reads weight bytes, but a rewritten model
//! written to another folder must still find them, so [`make_reachable`]
//! copies each data file next to the output. Data files are never opened for
//! writing.
//!
//! Why a copy and not a hard link (which the design first proposed): onnx
//! 1.23's loader and checker refuse any external data file with more than
//! one link ("potential hardlink attack"), and onnxruntime refuses it for
//! weights inside subgraphs. A hard link would break the output *and* the
//! user's original model for those tools. Symbolic links are refused too.
//!
//! What is never copied, so that a model cannot make the tool publish or
//! overwrite files it should not: a location that is absolute or has `..`;
//! one that leads out of the model's folder through a symbolic link (a
//! `w.data` link to a secret file); anything but a regular file (a FIFO
//! would block, a device would never end); and nothing is written through a
//! symbolic link inside the output folder or over an existing file.

use super::pb;
use crate::output::cleanup::{CreatedList, TempFile};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Every distinct external data `location` in the model, subgraphs included.
pub fn locations(model: &pb::ModelProto) -> Vec<String> {
    let mut out = BTreeSet::new();
    if let Some(graph) = &model.graph {
        collect_graph(graph, &mut out);
    }
    out.into_iter().collect()
}

fn collect_tensor(tensor: &pb::TensorProto, out: &mut BTreeSet<String>) {
    let external = tensor.data_location == Some(pb::tensor_proto::DataLocation::External as i32);
    if external {
        for entry in &tensor.external_data {
            if entry.key() == "location" {
                out.insert(entry.value().to_string());
            }
        }
    }
}

fn collect_graph(graph: &pb::GraphProto, out: &mut BTreeSet<String>) {
    for t in &graph.initializer {
        collect_tensor(t, out);
    }
    for s in &graph.sparse_initializer {
        for t in s.values.iter().chain(s.indices.iter()) {
            collect_tensor(t, out);
        }
    }
    for node in &graph.node {
        for attr in &node.attribute {
            for t in attr.t.iter().chain(&attr.tensors) {
                collect_tensor(t, out);
            }
            for g in attr.g.iter().chain(&attr.graphs) {
                collect_graph(g, out);
            }
        }
    }
}

/// What happened to one data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    /// Copied next to the output.
    Copied(PathBuf),
    /// The output folder already has this very file (same inode) or the
    /// output is in the input's folder.
    AlreadyThere(PathBuf),
    /// A different file (or a symbolic link) of that name is next to the
    /// output; left untouched.
    Conflict(PathBuf),
    /// The data file is not next to the input; the output cannot find it either.
    Missing(PathBuf),
    /// The location is absolute or leaves the model's folder; not followed.
    Unsafe(String),
    /// The location is inside the model's folder by name but not in fact,
    /// or leads to something other than a regular file, or its place next
    /// to the output goes through a symbolic link: not copied (the text says why).
    Refused {
        /// The location as the model gives it.
        location: String,
        /// Why it was not copied.
        why: String,
    },
}

impl DataOutcome {
    /// A one-line message for the user, or None when there is nothing to say.
    pub fn message(&self) -> Option<String> {
        match self {
            DataOutcome::Copied(p) => Some(format!(
                "external data: copied {} (onnx refuses hard-linked data files, so it is a copy)",
                p.display()
            )),
            DataOutcome::AlreadyThere(_) => None,
            DataOutcome::Conflict(p) => Some(format!(
                "warning: external data {} already exists and is a different file; left unchanged: check it holds this model's weights",
                p.display()
            )),
            DataOutcome::Missing(p) => Some(format!(
                "warning: external data {} not found; the tool does not need weights, but a runtime will",
                p.display()
            )),
            DataOutcome::Unsafe(l) => Some(format!(
                "warning: external data location `{l}` is absolute or outside the model's folder; not copied"
            )),
            DataOutcome::Refused { location, why } => {
                Some(format!("warning: external data `{location}` not copied: {why}"))
            }
        }
    }

    /// Whether the message is a warning (the output may not find its data).
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            DataOutcome::Conflict(_) | DataOutcome::Missing(_) | DataOutcome::Unsafe(_) | DataOutcome::Refused { .. }
        )
    }
}

/// Whether `location` names a path inside the model's folder by its
/// spelling alone: relative, not empty, no `..`.
pub fn is_safe(location: &str) -> bool {
    let p = Path::new(location);
    !location.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(a: &Path, b: &Path) -> bool {
    matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

/// What [`make_reachable`] did: an outcome per location, and the copies it
/// made, which are removed when dropped unless kept
/// ([`CreatedList::keep`]) once the model that needs them is written.
#[derive(Debug, Default)]
pub struct Reachable {
    /// One per location, in the order given.
    pub outcomes: Vec<DataOutcome>,
    /// The files and folders this call created.
    pub copies: CreatedList,
}

/// Opens a data file for copying: its path must resolve (through any
/// symbolic links) to a regular file inside `in_dir`. Err is the reason to
/// give the user; Ok(None) means the file does not exist.
fn open_source(in_dir: &Path, location: &str) -> Result<Option<fs::File>, String> {
    let src = in_dir.join(location);
    if fs::symlink_metadata(&src).is_err() {
        return Ok(None);
    }
    let real = fs::canonicalize(&src).map_err(|e| format!("cannot resolve {}: {e}", src.display()))?;
    let folder = fs::canonicalize(in_dir).map_err(|e| format!("cannot resolve {}: {e}", in_dir.display()))?;
    if !real.starts_with(&folder) {
        return Err(format!(
            "{} leads outside the model's folder (to {}) through a symbolic link; copy the file itself next to the model",
            src.display(),
            real.display()
        ));
    }
    let file = open_no_follow(&real).map_err(|e| format!("cannot open {}: {e}", real.display()))?;
    let meta = file.metadata().map_err(|e| format!("cannot inspect {}: {e}", real.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", real.display()));
    }
    Ok(Some(file))
}

/// Opens `path` for reading without following a symbolic link in its last
/// component (it was resolved already: a link there now means it changed
/// under us), and without blocking on a FIFO.
#[cfg(unix)]
fn open_no_follow(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> std::io::Result<fs::File> {
    fs::File::open(path)
}

/// Whether the regular file at `other` (not followed if it is a symbolic
/// link) has exactly the bytes of `source` (read from its start).
fn same_contents(source: &mut fs::File, other: &Path) -> bool {
    use std::io::{Read, Seek};
    let Ok(meta) = fs::symlink_metadata(other) else { return false };
    let Ok(source_meta) = source.metadata() else { return false };
    if !meta.is_file() || meta.len() != source_meta.len() || source.rewind().is_err() {
        return false;
    }
    let Ok(mut other) = open_no_follow(other) else { return false };
    let (mut a, mut b) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = match source.read(&mut a) {
            Ok(n) => n,
            Err(_) => return false,
        };
        if n == 0 {
            return true;
        }
        if other.read_exact(&mut b[..n]).is_err() || a[..n] != b[..n] {
            return false;
        }
    }
}

/// Makes the folders of `location` inside `out_dir` (already canonical),
/// never through a symbolic link. Returns the folder the file goes in, or
/// the reason to refuse.
fn make_folders(out_dir: &Path, location: &str, made: &mut CreatedList) -> Result<PathBuf, String> {
    let mut folder = out_dir.to_path_buf();
    let parts: Vec<Component> =
        Path::new(location).components().filter(|c| matches!(c, Component::Normal(_))).collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        folder.push(part);
        match fs::symlink_metadata(&folder) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "{} is a symbolic link; the tool writes only inside the output folder",
                    folder.display()
                ))
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{} is not a folder", folder.display())),
            Err(_) => made.push(
                crate::output::cleanup::Created::folder(&folder)
                    .map_err(|e| format!("cannot create {}: {e}", folder.display()))?,
            ),
        }
    }
    Ok(folder)
}

/// Makes every data file in `locations` reachable from `out_dir` as it is
/// from `in_dir`, by copying it there. Copies only a location that is
/// relative, stays inside `in_dir` once symbolic links are resolved and is a
/// regular file; writes only inside `out_dir`, never through a symbolic link
/// and never over an existing file (see [`DataOutcome`]). Only a failure to
/// copy a file that passed these checks is an error; the copies made before
/// it are then removed.
pub fn make_reachable(locations: &[String], in_dir: &Path, out_dir: &Path) -> std::io::Result<Reachable> {
    let mut done = Reachable::default();
    let same_dir = matches!((fs::canonicalize(in_dir), fs::canonicalize(out_dir)), (Ok(a), Ok(b)) if a == b);
    let out_real = fs::canonicalize(out_dir)?;
    for location in locations {
        if !is_safe(location) {
            done.outcomes.push(DataOutcome::Unsafe(location.clone()));
            continue;
        }
        let src = in_dir.join(location);
        let dst = out_real.join(location);
        if same_dir || same_file(&src, &dst) {
            let outcome = if src.is_file() {
                DataOutcome::AlreadyThere(out_dir.join(location))
            } else {
                DataOutcome::Missing(src)
            };
            done.outcomes.push(outcome);
            continue;
        }
        let mut source = match open_source(in_dir, location) {
            Ok(Some(file)) => file,
            Ok(None) => {
                done.outcomes.push(DataOutcome::Missing(src));
                continue;
            }
            Err(why) => {
                done.outcomes.push(DataOutcome::Refused { location: location.clone(), why });
                continue;
            }
        };
        let folder = match make_folders(&out_real, location, &mut done.copies) {
            Ok(folder) => folder,
            Err(why) => {
                done.outcomes.push(DataOutcome::Refused { location: location.clone(), why });
                continue;
            }
        };
        if fs::symlink_metadata(&dst).is_ok() {
            // A copy made before (an earlier run, or another model of this
            // batch sharing the file) is as good as a new one.
            let outcome = if same_contents(&mut source, &dst) {
                DataOutcome::AlreadyThere(out_dir.join(location))
            } else {
                DataOutcome::Conflict(out_dir.join(location))
            };
            done.outcomes.push(outcome);
            continue;
        }
        // Copy to a new temporary file (created exclusively: never through a
        // link) and give it its name only if that name is still free, so an
        // interrupted copy never leaves a truncated data file under the real
        // name and nothing existing is replaced.
        let mut tmp = TempFile::new_in(&folder, ".onnx-memsched-data-")?;
        std::io::copy(&mut source, tmp.file())?;
        match tmp.persist_new(&dst) {
            Ok(copy) => done.copies.push(copy),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let outcome = if same_contents(&mut source, &dst) {
                    DataOutcome::AlreadyThere(out_dir.join(location))
                } else {
                    DataOutcome::Conflict(out_dir.join(location))
                };
                done.outcomes.push(outcome);
                continue;
            }
            Err(e) => return Err(e),
        }
        done.outcomes.push(DataOutcome::Copied(out_dir.join(location)));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_locations_are_refused() {
        assert!(is_safe("w.data") && is_safe("sub/w.data") && is_safe("./w.data"));
        assert!(!is_safe("../w.data") && !is_safe("/etc/passwd") && !is_safe(""));
    }

    #[test]
    fn copies_missing_and_conflicts() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        fs::write(a.path().join("w.data"), b"weights").unwrap();
        fs::write(a.path().join("x.data"), b"x").unwrap();
        fs::write(b.path().join("x.data"), b"other").unwrap();
        let locs = vec!["w.data".to_string(), "x.data".to_string(), "gone.data".to_string()];
        let made = make_reachable(&locs, a.path(), b.path()).unwrap();
        let out = &made.outcomes;
        assert!(matches!(out[0], DataOutcome::Copied(_)));
        assert_eq!(fs::read(b.path().join("w.data")).unwrap(), b"weights");
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let links = fs::metadata(a.path().join("w.data")).unwrap().nlink();
            assert_eq!(links, 1, "the original keeps a single link (onnx refuses hard-linked data)");
        }
        assert!(matches!(out[1], DataOutcome::Conflict(_)));
        assert_eq!(fs::read(b.path().join("x.data")).unwrap(), b"other");
        assert!(matches!(out[2], DataOutcome::Missing(_)));
        // Running again finds the same bytes there: nothing to copy, nothing to warn.
        let again = make_reachable(&locs[..1], a.path(), b.path()).unwrap();
        assert!(matches!(again.outcomes[0], DataOutcome::AlreadyThere(_)), "{again:?}");
        assert!(again.copies.is_empty());
        assert_eq!(fs::read(a.path().join("w.data")).unwrap(), b"weights");
        // Copies not kept are removed: the run that made them failed.
        drop(made);
        assert!(!b.path().join("w.data").exists());
        assert_eq!(fs::read(b.path().join("x.data")).unwrap(), b"other", "not ours: stays");
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_never_leak_or_redirect_a_copy() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().unwrap();
        let (a, b, elsewhere) = (root.path().join("a"), root.path().join("b"), root.path().join("elsewhere"));
        for d in [&a, &b, &elsewhere] {
            fs::create_dir(d).unwrap();
        }
        fs::write(elsewhere.join("secret"), b"secret").unwrap();
        symlink(elsewhere.join("secret"), a.join("leak.data")).unwrap();
        fs::write(a.join("real.data"), b"ok").unwrap();
        symlink("real.data", a.join("inside.data")).unwrap();
        fs::create_dir(a.join("sub")).unwrap();
        fs::write(a.join("sub/w.data"), b"w").unwrap();
        symlink(&elsewhere, b.join("sub")).unwrap();
        let locs: Vec<String> = ["leak.data", "inside.data", "sub/w.data"].iter().map(|s| s.to_string()).collect();
        let made = make_reachable(&locs, &a, &b).unwrap();
        assert!(matches!(&made.outcomes[0], DataOutcome::Refused { why, .. } if why.contains("outside")), "{made:?}");
        assert!(!b.join("leak.data").exists(), "the secret is not published");
        assert!(matches!(made.outcomes[1], DataOutcome::Copied(_)));
        assert_eq!(fs::read(b.join("inside.data")).unwrap(), b"ok");
        assert!(!fs::symlink_metadata(b.join("inside.data")).unwrap().file_type().is_symlink());
        assert!(matches!(&made.outcomes[2], DataOutcome::Refused { why, .. } if why.contains("symbolic link")));
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 1, "nothing written through the link");
        made.copies.keep();
    }
}
