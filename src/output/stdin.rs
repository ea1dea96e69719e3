//! Reading a model from standard input (`-`) within a deadline.
//!
//! A pipe whose writer stays open but sends nothing (`sleep 1000 |
//! onnx-memsched - out.onnx`), or a terminal nobody types into, would block a
//! plain `read` forever. [`read_all`] waits for each chunk with `poll(2)` for
//! at most the time left before the deadline, so such a producer ends the run
//! with a one-line error once the deadline passes; the bytes are capped by
//! the caller ([`super::MAX_INPUT_BYTES`]). A pipe with no writer at all is
//! simply an empty input (end of file at once).
//!
//! Standard input is read through a duplicate of descriptor 0, so no data
//! sits in std's own buffer of [`std::io::Stdin`].

use std::io::{self, Read};
use std::time::{Duration, Instant};

/// A reader of a file descriptor whose every `read` waits for data until
/// `deadline` at most, then fails with [`io::ErrorKind::TimedOut`].
pub(crate) struct Timed {
    file: std::fs::File,
    deadline: Instant,
}

impl Timed {
    /// Standard input, read until `deadline`. An error when descriptor 0 is
    /// not open.
    pub(crate) fn stdin(deadline: Instant) -> io::Result<Timed> {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            let fd = io::stdin().as_fd().try_clone_to_owned()?;
            Ok(Timed { file: std::fs::File::from(fd), deadline })
        }
        #[cfg(not(unix))]
        {
            let _ = deadline;
            Err(io::Error::new(io::ErrorKind::Unsupported, "reading a model from standard input needs a Unix system"))
        }
    }

    /// A reader of `file` (a pipe end in the tests) until `deadline`.
    #[cfg(test)]
    fn new(file: std::fs::File, deadline: Instant) -> Timed {
        Timed { file, deadline }
    }
}

#[cfg(unix)]
impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the deadline passed while waiting for data"));
            }
            // Rounded up, so that a sub-millisecond rest does not spin.
            let ms = left.as_millis().saturating_add(1).min(i32::MAX as u128) as libc::c_int;
            let mut pfd = libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: `pfd` is one live, properly aligned `pollfd` on this
            // stack frame for the whole call, matching the count 1; poll only
            // writes its `revents` field. The descriptor is owned by
            // `self.file` and stays open during the call.
            let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
            if ready < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if ready == 0 {
                continue; // the loop's check ends it at the deadline
            }
            // Data, end of file (POLLHUP) or an error: `read` tells which and
            // does not block (a non-blocking descriptor may still say
            // WouldBlock after a spurious wake-up: wait again).
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                other => return other,
            }
        }
    }
}

#[cfg(not(unix))]
impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

/// Reads `reader` with [`super::read_capped`] (at most `cap` bytes); a
/// deadline that passes becomes an error naming `--time-limit` (`limit`
/// seconds) and how many bytes had arrived.
pub(crate) fn read_all(reader: Timed, cap: u64, hint: u64, limit: Duration) -> io::Result<Vec<u8>> {
    let mut counting = Counting { inner: reader, bytes: 0 };
    super::read_capped(&mut counting, cap, hint).map_err(|e| {
        if e.kind() != io::ErrorKind::TimedOut {
            return e;
        }
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the model did not arrive within --time-limit ({} s; {} bytes came, then nothing more and no end of \
                 input): give the model as a file, or raise --time-limit",
                limit.as_secs_f64(),
                counting.bytes
            ),
        )
    })
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::FromRawFd;

    /// A pipe: (read end, write end).
    fn pipe() -> (std::fs::File, std::fs::File) {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a live array of two c_ints, as pipe(2) requires;
        // it writes both descriptors on success only.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors were just created by pipe(2) and are owned
        // by nothing else; each is wrapped exactly once.
        unsafe { (std::fs::File::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])) }
    }

    #[test]
    fn a_silent_writer_ends_at_the_deadline_with_the_bytes_that_came() {
        let (r, mut w) = pipe();
        w.write_all(b"12345").unwrap();
        let start = Instant::now();
        let limit = Duration::from_millis(300);
        let e = read_all(Timed::new(r, start + limit), 1 << 20, 0, limit).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let text = e.to_string();
        assert!(text.contains("--time-limit") && text.contains("5 bytes came"), "{text}");
        assert!(start.elapsed() >= limit, "returned before the deadline");
        drop(w); // the writer was open (silent) the whole time
    }

    #[test]
    fn a_closed_writer_is_the_end_of_the_input() {
        let (r, mut w) = pipe();
        let writer = std::thread::spawn(move || {
            for chunk in [&b"abc"[..], b"defg"] {
                w.write_all(chunk).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(600);
        let got = read_all(Timed::new(r, deadline), 1 << 20, 0, Duration::from_secs(600)).unwrap();
        writer.join().unwrap();
        assert_eq!(got, b"abcdefg");
        // No writer at all: an empty input, at once.
        let (r, w) = pipe();
        drop(w);
        assert_eq!(read_all(Timed::new(r, deadline), 10, 0, Duration::from_secs(600)).unwrap(), b"");
    }

    #[test]
    fn the_cap_holds_on_a_pipe() {
        let (r, mut w) = pipe();
        let writer = std::thread::spawn(move || {
            let block = [7u8; 4096];
            // Ends when the reader is gone (EPIPE).
            while w.write_all(&block).is_ok() {}
        });
        let deadline = Instant::now() + Duration::from_secs(600);
        let e = read_all(Timed::new(r, deadline), 100_000, 0, Duration::from_secs(600)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        writer.join().unwrap();
    }
}
