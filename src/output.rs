//! Reading the input and writing the output safely.
//!
//! The output is written to a temporary file in the target folder and
//! renamed over the target only once complete, so a failed run never leaves
//! a partial file and the input may be the output. `-` means standard input
//! or output.

use crate::onnx::external::{self, DataOutcome};
use crate::onnx::pb;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Where a model comes from or goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Standard input or output (`-`).
    Std,
    /// A file.
    File(PathBuf),
}

impl Location {
    /// `-` is standard input/output, anything else a path.
    pub fn parse(arg: &Path) -> Location {
        if arg.as_os_str() == "-" {
            Location::Std
        } else {
            Location::File(arg.to_path_buf())
        }
    }

    /// How messages name it.
    pub fn display(&self, std_name: &str) -> String {
        match self {
            Location::Std => std_name.to_string(),
            Location::File(p) => p.display().to_string(),
        }
    }

    /// The folder that relative external data locations start from.
    pub fn folder(&self) -> PathBuf {
        match self {
            Location::Std => PathBuf::from("."),
            Location::File(p) => match p.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => PathBuf::from("."),
            },
        }
    }
}

/// Reads all bytes of the input.
pub fn read_input(from: &Location) -> std::io::Result<Vec<u8>> {
    match from {
        Location::Std => {
            let mut buf = Vec::new();
            std::io::stdin().lock().read_to_end(&mut buf)?;
            Ok(buf)
        }
        Location::File(path) => std::fs::read(path),
    }
}

/// Why the output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The target folder does not exist.
    #[error("output folder {0} does not exist; create it first")]
    NoFolder(PathBuf),
    /// The target is a folder.
    #[error("output {0} is a folder; give a file name")]
    IsFolder(PathBuf),
    /// An I/O failure.
    #[error("cannot write {path}: {source}")]
    Io {
        /// What was being written.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// Checks before any work that `to` can be written (its folder exists).
pub fn check_writable(to: &Location) -> Result<(), WriteError> {
    let Location::File(path) = to else { return Ok(()) };
    if path.is_dir() {
        return Err(WriteError::IsFolder(path.clone()));
    }
    let folder = to.folder();
    if !folder.is_dir() {
        return Err(WriteError::NoFolder(folder));
    }
    Ok(())
}

/// Writes `bytes` atomically to `to`, and makes the model's external data
/// reachable from there. Returns what happened to each data file.
pub fn write_model(
    bytes: &[u8],
    model: &pb::ModelProto,
    from: &Location,
    to: &Location,
) -> Result<Vec<DataOutcome>, WriteError> {
    let Location::File(path) = to else {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes).and_then(|_| out.flush()).map_err(|source| WriteError::Io { path: "<stdout>".into(), source })?;
        return Ok(Vec::new());
    };
    check_writable(to)?;
    let folder = to.folder();
    let io = |source| WriteError::Io { path: path.clone(), source };
    let mut tmp = tempfile::Builder::new().prefix(".onnx-memsched-").suffix(".tmp").tempfile_in(&folder).map_err(io)?;
    tmp.write_all(bytes).and_then(|_| tmp.as_file().sync_all()).map_err(io)?;
    set_permissions(tmp.as_file(), path).map_err(io)?;
    let locations = external::locations(model);
    let outcomes = if locations.is_empty() {
        Vec::new()
    } else {
        external::make_reachable(&locations, &from.folder(), &folder)
            .map_err(|source| WriteError::Io { path: folder.clone(), source })?
    };
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(outcomes)
}

/// The new file gets the permissions of the file it replaces, or 0644.
fn set_permissions(file: &std::fs::File, target: &Path) -> std::io::Result<()> {
    let perms = match std::fs::metadata(target) {
        Ok(meta) => meta.permissions(),
        Err(_) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::Permissions::from_mode(0o644)
            }
            #[cfg(not(unix))]
            {
                return Ok(());
            }
        }
    };
    file.set_permissions(perms)
}
