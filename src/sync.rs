//! Locking shared by every module that guards state with a `Mutex` (journal,
//! rules, storage, the upload index). A module of its own, so that none of
//! them imports another only for it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every
/// structure guarded with it stays consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
