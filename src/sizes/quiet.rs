//! Catching tract's panics without printing them.
//!
//! A panic inside tract is caught (`catch_unwind`) and its text becomes part
//! of an error or an assumption, so the default panic hook's
//! `thread 'main' panicked at ...` (and backtrace) on stderr is noise at best
//! and, in an exit-0 run, a false alarm. [`catch`] therefore runs its closure
//! with a per-thread "quiet" flag set, and a panic hook, installed once for
//! the process, skips printing while that flag is set on the panicking
//! thread. Every other panic (another thread, or this thread outside
//! [`catch`]) goes to the hook that was installed before ours, unchanged. A
//! flag per thread rather than swapping the global hook in and out is what
//! keeps this right when several threads size models at once (`--out-dir`
//! runs them in parallel): swapping would silence a real panic elsewhere, or
//! restore the loud hook while another thread is inside tract.
//!
//! A program that installs its own hook after ours replaces it; tract's
//! caught panics are then printed by that hook (the results are unchanged).

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// How many [`catch`] calls are active on this thread.
    static QUIET: Cell<u32> = const { Cell::new(0) };
}

static INSTALL: Once = Once::new();

fn install() {
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            // `try_with`: during thread teardown the flag may be gone; then
            // the panic is not one of ours.
            let quiet = QUIET.try_with(|q| q.get() > 0).unwrap_or(false);
            if !quiet {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, catching a panic as `catch_unwind` does, without the panic
/// being printed. `f` must leave nothing it shares in a broken state when it
/// panics, or the caller must discard what it touched (tract's models are
/// only read after a caught panic through tract's own checked accessors).
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Box<dyn Any + Send>> {
    install();
    QUIET.with(|q| q.set(q.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(q.get() - 1));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_panics_and_keeps_the_message() {
        let seven = std::hint::black_box(7);
        let caught = catch(|| -> u32 { panic!("boom {seven}") }).unwrap_err();
        // The payload is a String, or a &str when the compiler folds the text.
        let text = caught.downcast_ref::<String>().cloned().or_else(|| caught.downcast_ref::<&str>().map(|s| s.to_string()));
        assert_eq!(text.as_deref(), Some("boom 7"));
        assert_eq!(catch(|| 5).unwrap(), 5);
        // The flag is back to zero after both.
        assert_eq!(QUIET.with(|q| q.get()), 0);
    }
}
