//! Reading the input and writing the outputs safely.
//!
//! Reading: at most [`MAX_INPUT_BYTES`] (protobuf's limit for one message),
//! from a regular file or from standard input (`-`, within the time limit:
//! [`read_input_within`]); a FIFO, device or socket given by name is refused
//! without blocking on it. `--out-dir` reads each model once ([`once`]).
//!
//! Writing: every output of a run (the model, the report, the plot) is
//! staged in [`Outputs`]: written to a temporary file in its target's folder
//! and renamed over the target only once all of them are complete, so a
//! failed or interrupted run never leaves a partial file and the input may
//! be the output. Writing to a symbolic link writes the file it points to
//! (the link stays); a non-regular target (a FIFO, /dev/stdout) and `-` are
//! written directly. The model's external data is copied next to it
//! ([`external::make_reachable`]); those copies are removed again if the
//! model is not written. Temporary files and copies are registered in
//! [`cleanup`] until the run keeps or removes them, so SIGINT and SIGTERM
//! remove them too. [`paths::check_collisions`] refuses invocations whose
//! outputs would overwrite each other or an input.

pub mod cleanup;
pub mod once;
pub mod paths;
mod stdin;

use crate::onnx::external::{self, DataOutcome};
use crate::onnx::pb;
use cleanup::{CreatedList, TempFile};
use paths::Target;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The most bytes the tool reads as a model: 2 GiB, protobuf's limit for one
/// serialized message (a bigger model must keep its weights as external data).
pub const MAX_INPUT_BYTES: u64 = 2 << 30;

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

fn too_big(size: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "it is {} bytes, more than the 2 GiB protobuf limit of one .onnx file ({MAX_INPUT_BYTES} bytes); \
             a model this big must keep its weights as external data",
            if size > MAX_INPUT_BYTES { size.to_string() } else { format!("more than {MAX_INPUT_BYTES}") }
        ),
    )
}

/// Reads all of `reader`, refusing more than `cap` bytes (the error's
/// message says so). `hint` is the expected size, if known. Memory stays
/// within `cap` + 1 bytes: the buffer grows by doubling up to that, never
/// beyond.
fn read_capped(reader: &mut impl Read, cap: u64, hint: u64) -> std::io::Result<Vec<u8>> {
    let limit = usize::try_from(cap.saturating_add(1)).unwrap_or(usize::MAX);
    let first = usize::try_from(hint.saturating_add(1)).unwrap_or(usize::MAX).max(8192).min(limit);
    let mut buf: Vec<u8> = Vec::with_capacity(first);
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= limit {
                return Err(too_big(buf.len() as u64));
            }
            let want = buf.capacity().saturating_mul(2).max(8192).min(limit);
            buf.reserve_exact(want - buf.len());
        }
        let room = (buf.capacity() - buf.len()) as u64;
        let before = buf.len();
        // read_to_end on a Take never grows the buffer past what it may read.
        reader.by_ref().take(room).read_to_end(&mut buf)?;
        if buf.len() - before < room as usize {
            return Ok(buf); // end of input
        }
    }
}

/// Reads all bytes of the input (see the module doc for what is refused),
/// waiting as long as standard input takes. Errors name the reason; the
/// caller adds the path.
pub fn read_input(from: &Location) -> std::io::Result<Vec<u8>> {
    read_input_within(from, None)
}

/// [`read_input`], and standard input must deliver the whole model within
/// `time_limit` when one is given (else a [`std::io::ErrorKind::TimedOut`]
/// error that names `--time-limit`): a writer that keeps the pipe open
/// without sending cannot hang the run. Regular files are read as they are.
pub fn read_input_within(from: &Location, time_limit: Option<std::time::Duration>) -> std::io::Result<Vec<u8>> {
    match from {
        Location::Std => {
            let stdin = std::io::stdin();
            let hint = stdin_size(&stdin);
            if let Some(size) = hint.filter(|&s| s > MAX_INPUT_BYTES) {
                return Err(too_big(size));
            }
            match time_limit {
                None => read_capped(&mut stdin.lock(), MAX_INPUT_BYTES, hint.unwrap_or(0)),
                Some(limit) => {
                    let now = std::time::Instant::now();
                    let deadline = now.checked_add(limit).unwrap_or(now + crate::plan::MAX_TIME_LIMIT);
                    stdin::read_all(stdin::Timed::stdin(deadline)?, MAX_INPUT_BYTES, hint.unwrap_or(0), limit)
                }
            }
        }
        Location::File(path) => {
            let mut file = open_for_reading(path)?;
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "not a regular file ({}); to read a stream, give `-` and redirect it to standard input",
                        kind_of(&meta)
                    ),
                ));
            }
            if meta.len() > MAX_INPUT_BYTES {
                return Err(too_big(meta.len()));
            }
            read_capped(&mut file, MAX_INPUT_BYTES, meta.len())
        }
    }
}

/// Opens without blocking: opening a FIFO that has no writer would wait forever.
#[cfg(unix)]
fn open_for_reading(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)
}

#[cfg(not(unix))]
fn open_for_reading(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

/// The size of standard input when it is a regular file (a redirection).
#[cfg(unix)]
fn stdin_size(stdin: &std::io::Stdin) -> Option<u64> {
    use std::os::fd::AsFd;
    let file = std::fs::File::from(stdin.as_fd().try_clone_to_owned().ok()?);
    file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len())
}

#[cfg(not(unix))]
fn stdin_size(_: &std::io::Stdin) -> Option<u64> {
    None
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a folder"
    } else {
        "a special file"
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

/// Checks before any work that `to` can be written: it is not a folder, and
/// the folder of the file it leads to (through symbolic links) exists.
pub fn check_writable(to: &Location) -> Result<(), WriteError> {
    match to {
        Location::Std => Ok(()),
        Location::File(path) => paths::resolve(path).map(drop),
    }
}

enum Staged {
    /// A temporary file to rename over `to`; `copies` are the data files
    /// copied for it (kept once it is in place).
    Replace { tmp: TempFile, to: PathBuf, copies: CreatedList },
    /// Bytes for standard output (`None`) or a non-regular file.
    Direct { to: Option<PathBuf>, bytes: Vec<u8> },
}

/// The outputs of one run, staged and then put in place together by
/// [`commit`](Outputs::commit); dropping it uncommitted removes every
/// temporary file and data copy it made.
#[derive(Default)]
pub struct Outputs {
    staged: Vec<Staged>,
    outcomes: Vec<DataOutcome>,
}

impl Outputs {
    /// Nothing staged yet.
    pub fn new() -> Outputs {
        Outputs::default()
    }

    /// Stages `bytes` for `to`: written now to a temporary file in the
    /// folder of the file `to` leads to, with that file's permissions (or
    /// 0644); or kept for a direct write at commit for `-` and non-regular
    /// targets.
    pub fn add(&mut self, to: &Location, bytes: Vec<u8>) -> Result<(), WriteError> {
        self.stage(to, bytes, CreatedList::default())
    }

    /// Stages the model `bytes` for `to` like [`add`](Outputs::add), and
    /// makes `model`'s external data reachable from `to`'s folder (copies,
    /// removed again unless the model is written). A model read from
    /// standard input (`from` is `-`) or written to `-` or to a non-regular
    /// file gets no copies.
    pub fn add_model(
        &mut self,
        bytes: Vec<u8>,
        model: &pb::ModelProto,
        from: &Location,
        to: &Location,
    ) -> Result<(), WriteError> {
        let locations = external::locations(model);
        let regular = match to {
            Location::File(path) => matches!(paths::resolve(path)?, Target::Replace(_)),
            Location::Std => false,
        };
        let mut copies = CreatedList::default();
        if regular && !locations.is_empty() && *from != Location::Std {
            let folder = to.folder();
            let reachable = external::make_reachable(&locations, &from.folder(), &folder)
                .map_err(|source| WriteError::Io { path: folder.clone(), source })?;
            self.outcomes.extend(reachable.outcomes);
            copies = reachable.copies;
        }
        self.stage(to, bytes, copies)
    }

    fn stage(&mut self, to: &Location, bytes: Vec<u8>, copies: CreatedList) -> Result<(), WriteError> {
        let Location::File(given) = to else {
            self.staged.push(Staged::Direct { to: None, bytes });
            return Ok(());
        };
        match paths::resolve(given)? {
            Target::Direct(path) => self.staged.push(Staged::Direct { to: Some(path), bytes }),
            Target::Replace(path) => {
                let io = |source| WriteError::Io { path: given.clone(), source };
                let folder = to_folder(&path);
                let mut tmp = TempFile::new_in(&folder, ".onnx-memsched-").map_err(io)?;
                tmp.file().write_all(&bytes).and_then(|_| tmp.file().sync_all()).map_err(io)?;
                set_permissions(tmp.file(), &path).map_err(io)?;
                self.staged.push(Staged::Replace { tmp, to: path, copies });
            }
        }
        Ok(())
    }

    /// Puts every staged output in place: direct writes first (while they
    /// may block, on a FIFO, every temporary file is still removable), then
    /// the renames in the order staged. Returns what happened to each
    /// external data file. On an error, what was not yet in place is
    /// removed, including the data copies of a model not written.
    pub fn commit(self) -> Result<Vec<DataOutcome>, WriteError> {
        let Outputs { staged, outcomes } = self;
        let (direct, replace): (Vec<Staged>, Vec<Staged>) =
            staged.into_iter().partition(|s| matches!(s, Staged::Direct { .. }));
        for s in direct {
            if let Staged::Direct { to, bytes } = s {
                write_direct(to.as_deref(), &bytes)?;
            }
        }
        for s in replace {
            if let Staged::Replace { tmp, to, copies } = s {
                tmp.persist(&to).map_err(|source| WriteError::Io { path: to.clone(), source })?;
                copies.keep();
            }
        }
        Ok(outcomes)
    }
}

fn to_folder(path: &Path) -> PathBuf {
    Location::File(path.to_path_buf()).folder()
}

fn write_direct(to: Option<&Path>, bytes: &[u8]) -> Result<(), WriteError> {
    match to {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)
                .and_then(|_| out.flush())
                .map_err(|source| WriteError::Io { path: "<stdout>".into(), source })
        }
        Some(path) => {
            let io = |source| WriteError::Io { path: path.to_path_buf(), source };
            // No create, no truncate: the file exists and is not a regular file.
            let mut file = std::fs::OpenOptions::new().write(true).open(path).map_err(io)?;
            file.write_all(bytes).and_then(|_| file.flush()).map_err(io)
        }
    }
}

/// Writes the model `bytes` to `to` (see [`Outputs::add_model`] and
/// [`Outputs::commit`]) and returns what happened to each data file.
pub fn write_model(
    bytes: &[u8],
    model: &pb::ModelProto,
    from: &Location,
    to: &Location,
) -> Result<Vec<DataOutcome>, WriteError> {
    let mut outputs = Outputs::new();
    outputs.add_model(bytes.to_vec(), model, from, to)?;
    outputs.commit()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_capped_refuses_one_byte_too_many() {
        for (len, cap) in [(0usize, 10u64), (10, 10), (11, 10), (100_000, 100_000), (100_001, 100_000), (5, 0)] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for hint in [0, len as u64, 3] {
                let got = read_capped(&mut data.as_slice(), cap, hint);
                if len as u64 <= cap {
                    assert_eq!(got.unwrap(), data, "len {len} cap {cap} hint {hint}");
                } else {
                    let e = got.unwrap_err();
                    assert!(e.to_string().contains("2 GiB protobuf limit"), "{e}");
                }
            }
        }
    }

    #[test]
    fn read_capped_stays_within_the_cap_on_an_endless_stream() {
        let mut zeros = std::io::repeat(0);
        let e = read_capped(&mut zeros, 1 << 20, 0).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }
}
