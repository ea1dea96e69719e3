//! Cooperative cancellation of a running plan (Ctrl-C in the Python package).
//!
//! The searches are anytime: they already stop at a deadline and keep the best
//! order found. Cancelling turns every deadline into "passed now": each place
//! that checks a deadline calls [`passed`] instead of comparing with
//! `Instant::now()` itself, and [`passed`] is also true once the flag of the
//! current [`scope`] is set. A cancelled plan is therefore a plan whose time ran
//! out early: the best order found so far, checked as usual, marked timed out.
//!
//! The flag is per thread (the search runs on the thread that called
//! [`crate::plan::plan`]; it spawns no threads), so cancelling one plan never
//! stops another running in parallel (`--out-dir`, or two Python threads). Not
//! covered: size inference (tract), the heuristic portfolio and the lower
//! bounds run to their end (seconds at most on the corpus), and a running ILP
//! solve stops at its own time limit (microlp takes no flag); the searches
//! after them see the flag at once.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

thread_local! {
    static FLAG: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Runs `f` with `flag` as this thread's cancellation flag: while `f` runs,
/// [`requested`] and [`passed`] on this thread read it. The previous flag (if
/// any) is restored when `f` returns or unwinds.
pub fn scope<R>(flag: Arc<AtomicBool>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<AtomicBool>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            FLAG.with(|slot| *slot.borrow_mut() = previous);
        }
    }
    let previous = FLAG.with(|slot| slot.borrow_mut().replace(flag));
    let _restore = Restore(previous);
    f()
}

/// Whether the current scope's flag is set (false outside any [`scope`]).
pub fn requested() -> bool {
    FLAG.with(|slot| slot.borrow().as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed)))
}

/// Whether a search must stop now: `deadline` has passed, or cancellation was
/// [`requested`]. Every deadline check of the searches goes through here.
pub fn passed(deadline: Instant) -> bool {
    Instant::now() >= deadline || requested()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_set_flag_passes_every_deadline_in_its_scope_only() {
        let later = Instant::now() + Duration::from_secs(3600);
        assert!(!passed(later));
        let flag = Arc::new(AtomicBool::new(false));
        scope(flag.clone(), || {
            assert!(!passed(later));
            flag.store(true, Ordering::Relaxed);
            assert!(passed(later));
            // Another thread does not see this thread's flag.
            std::thread::spawn(move || assert!(!passed(later))).join().unwrap();
            // A nested scope shadows the outer flag and restores it.
            scope(Arc::new(AtomicBool::new(false)), || assert!(!passed(later)));
            assert!(passed(later));
        });
        assert!(!requested(), "the flag outlived its scope");
        assert!(passed(Instant::now()));
    }

    #[test]
    fn the_previous_flag_is_restored_after_a_panic() {
        let flag = Arc::new(AtomicBool::new(true));
        let caught = std::panic::catch_unwind(|| scope(flag, || panic!("inside")));
        assert!(caught.is_err());
        assert!(!requested());
    }
}
