//! State an endpoint's sessions write to in common: the datagram queue, and a remote's FEC
//! encoder. It is shared as `Arc<Mutex<_>>` rather than `Rc<RefCell<_>>` so that an endpoint is
//! `Send`: the runtime lets the JavaScript thread run a send turn while the I/O thread sleeps,
//! one thread at a time. [`hold`] keeps `RefCell`'s meaning: the lock is never waited for, and
//! a second hold of the same state is a bug that panics (inside an engine call, caught like
//! any engine panic) rather than a deadlock.

use std::sync::{Mutex, MutexGuard, TryLockError};

/// Exclusive access to shared endpoint state.
pub(crate) fn hold<T>(state: &Mutex<T>) -> MutexGuard<'_, T> {
    match state.try_lock() {
        Ok(guard) => guard,
        // A panic caught while it was held (an engine panic) leaves it as a RefCell would.
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => panic!("endpoint state held twice"),
    }
}
