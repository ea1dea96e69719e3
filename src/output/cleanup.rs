//! Files this run made that must not outlive a failure or an interruption.
//!
//! Every temporary file (a model, report or plot before its rename, a data
//! copy before its rename) and every external data copy or folder made for
//! the output is registered here from the moment it exists until the run
//! keeps it or removes it: [`TempFile`] and [`Created`] are the only ways
//! the tool makes such files, and each removes its file when dropped unless
//! it was put in place ([`TempFile::persist`]) or kept ([`Created::keep`]).
//!
//! [`install_signal_handlers`] makes SIGINT and SIGTERM remove every
//! registered file and then end the process with 130 or 143 (128 + the
//! signal number, as shells report an interrupted command). Creating,
//! renaming and removing a registered file all happen while holding the
//! registry's lock, and the signal thread holds it from the cleanup to the
//! exit, so no file is created unregistered, and none is renamed into place
//! after the cleanup started.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

struct Entry {
    path: PathBuf,
    folder: bool,
}

static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Entry>> {
    // A panic elsewhere while holding the lock leaves the list itself intact.
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn forget(list: &mut Vec<Entry>, path: &Path) {
    if let Some(i) = list.iter().rposition(|e| e.path == path) {
        list.swap_remove(i);
    }
}

/// Removes every registered file, then every registered folder that is
/// empty, deepest first; returns how many files it removed.
fn remove_all(list: &mut Vec<Entry>) -> usize {
    let mut removed = 0;
    for e in list.iter().filter(|e| !e.folder) {
        removed += usize::from(fs::remove_file(&e.path).is_ok());
    }
    let mut folders: Vec<&Path> = list.iter().filter(|e| e.folder).map(|e| e.path.as_path()).collect();
    folders.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for f in folders {
        let _ = fs::remove_dir(f);
    }
    list.clear();
    removed
}

/// Installs, once per process, the SIGINT and SIGTERM handling described in
/// the module doc: a thread that waits for either signal, removes every
/// registered file, says so on stderr and exits with 128 + the signal
/// number. Later calls do nothing. An error means the handling could not be
/// installed (the run can go on without it).
#[cfg(unix)]
pub fn install_signal_handlers() -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    static INSTALLED: Mutex<bool> = Mutex::new(false);
    let mut installed = INSTALLED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if *installed {
        return Ok(());
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("onnx-memsched-signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let mut list = registry();
            let removed = remove_all(&mut list);
            let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
            let note =
                if removed > 0 { format!("; removed {removed} unfinished output file(s)") } else { String::new() };
            eprintln!("onnx-memsched: interrupted by {name}{note}");
            // The lock stays held until the process is gone.
            std::process::exit(128 + signal);
        }
    })?;
    *installed = true;
    Ok(())
}

/// Without unix signals there is nothing to install.
#[cfg(not(unix))]
pub fn install_signal_handlers() -> io::Result<()> {
    Ok(())
}

/// A registered temporary file: removed when dropped, unless
/// [`persist`](TempFile::persist)ed or [`persist_new`](TempFile::persist_new)ed.
#[derive(Debug)]
pub struct TempFile {
    file: Option<tempfile::NamedTempFile>,
}

impl TempFile {
    /// Creates a new empty file `{prefix}{random}.tmp` in `folder` (never
    /// through a symbolic link: it is created exclusively) and registers it.
    pub fn new_in(folder: &Path, prefix: &str) -> io::Result<TempFile> {
        let mut list = registry();
        let file = tempfile::Builder::new().prefix(prefix).suffix(".tmp").tempfile_in(folder)?;
        list.push(Entry { path: file.path().to_path_buf(), folder: false });
        Ok(TempFile { file: Some(file) })
    }

    /// The open file, for writing.
    pub fn file(&mut self) -> &mut fs::File {
        // Only persist and drop take the file out, and both consume self.
        self.file.as_mut().map(|f| f.as_file_mut()).expect("a TempFile holds its file until consumed")
    }

    /// Renames the file over `to` (replacing what is there) and unregisters
    /// it. On failure the file stays registered and is removed when the
    /// returned error's TempFile is dropped (here: at once).
    pub fn persist(mut self, to: &Path) -> io::Result<()> {
        let list = registry();
        self.persist_locked(list, to, false).map(drop)
    }

    /// Renames the file to `to` only if nothing is there (a link and an
    /// unlink, so an existing file or symbolic link is never replaced nor
    /// followed); the file under its new name stays registered as a
    /// [`Created`], which removes it when dropped unless kept.
    pub fn persist_new(mut self, to: &Path) -> io::Result<Created> {
        let list = registry();
        self.persist_locked(list, to, true)?;
        Ok(Created { path: to.to_path_buf(), keep: false })
    }

    fn persist_locked(&mut self, mut list: MutexGuard<'_, Vec<Entry>>, to: &Path, new: bool) -> io::Result<()> {
        let Some(file) = self.file.take() else { return Err(io::Error::other("temporary file already consumed")) };
        let tmp = file.path().to_path_buf();
        let result = if new { file.persist_noclobber(to) } else { file.persist(to) };
        match result {
            Ok(_) => {
                forget(&mut list, &tmp);
                if new {
                    list.push(Entry { path: to.to_path_buf(), folder: false });
                }
                Ok(())
            }
            Err(e) => {
                // Back into self: dropping self removes and unregisters it.
                self.file = Some(e.file);
                Err(e.error)
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            let mut list = registry();
            let path = file.path().to_path_buf();
            drop(file); // NamedTempFile removes itself
            forget(&mut list, &path);
        }
    }
}

/// A file or folder this run created for its output: removed when dropped
/// (a folder only if empty) unless [`keep`](Created::keep) was called.
#[derive(Debug)]
pub struct Created {
    path: PathBuf,
    keep: bool,
}

impl Created {
    /// Creates the folder `path` (its parent must exist; an existing entry
    /// of any kind is an error, so a symbolic link is never followed) and
    /// registers it.
    pub fn folder(path: &Path) -> io::Result<Created> {
        let mut list = registry();
        fs::create_dir(path)?;
        list.push(Entry { path: path.to_path_buf(), folder: true });
        Ok(Created { path: path.to_path_buf(), keep: false })
    }

    /// The path of the file or folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the file: unregisters it, so neither a signal nor the drop removes it.
    pub fn keep(mut self) {
        forget(&mut registry(), &self.path);
        self.keep = true;
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let mut list = registry();
        let folder = list.iter().rev().find(|e| e.path == self.path).map(|e| e.folder);
        match folder {
            Some(true) => {
                let _ = fs::remove_dir(&self.path);
            }
            Some(false) => {
                let _ = fs::remove_file(&self.path);
            }
            None => {} // already removed by a cleanup
        }
        forget(&mut list, &self.path);
    }
}

/// Files and folders made one after another (a folder before the files in
/// it): dropped, they are removed newest first, so each folder is empty by
/// the time its turn comes.
#[derive(Debug, Default)]
pub struct CreatedList(Vec<Created>);

impl CreatedList {
    /// Adds the newest one.
    pub fn push(&mut self, created: Created) {
        self.0.push(created);
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps them all ([`Created::keep`]).
    pub fn keep(mut self) {
        self.0.drain(..).for_each(Created::keep);
    }
}

impl Drop for CreatedList {
    fn drop(&mut self) {
        while let Some(last) = self.0.pop() {
            drop(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_files_are_removed_unless_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TempFile::new_in(dir.path(), ".x-").unwrap();
        io::Write::write_all(t.file(), b"abc").unwrap();
        let tmp_path = t.file.as_ref().unwrap().path().to_path_buf();
        assert!(tmp_path.exists());
        drop(t);
        assert!(!tmp_path.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

        let mut t = TempFile::new_in(dir.path(), ".x-").unwrap();
        io::Write::write_all(t.file(), b"abc").unwrap();
        t.persist(&dir.path().join("out")).unwrap();
        assert_eq!(fs::read(dir.path().join("out")).unwrap(), b"abc");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn persist_new_never_replaces_and_created_files_go_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let taken = dir.path().join("taken");
        fs::write(&taken, b"old").unwrap();
        let t = TempFile::new_in(dir.path(), ".x-").unwrap();
        assert!(t.persist_new(&taken).is_err());
        assert_eq!(fs::read(&taken).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "the failed temporary file is gone");

        let mut list = CreatedList::default();
        list.push(Created::folder(&dir.path().join("sub")).unwrap());
        list.push(
            TempFile::new_in(&dir.path().join("sub"), ".x-").unwrap().persist_new(&dir.path().join("sub/new")).unwrap(),
        );
        assert!(dir.path().join("sub/new").exists());
        drop(list);
        assert!(!dir.path().join("sub").exists(), "the copy and then its folder are removed");

        let kept = TempFile::new_in(dir.path(), ".x-").unwrap().persist_new(&dir.path().join("kept")).unwrap();
        kept.keep();
        assert!(dir.path().join("kept").exists());
    }
}
