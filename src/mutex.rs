//! Locking a mutex whose holder may have panicked.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data over when an earlier holder panicked: what tether keeps behind
/// its mutexes (caches, counters, progress) stays usable, and one failed task must not turn
/// every later call into a second panic.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
