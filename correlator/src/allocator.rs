//! How the correlator's allocator (mimalloc, `main.rs`) hands memory back.
//!
//! mimalloc returns freed memory to the kernel (purges it) a second after it
//! was freed. The samples consumer's decompression buffers, megabytes each,
//! come and go faster than that, so each purge was followed by faulting the
//! same memory in again and the kernel zeroing it, mostly as 2 MiB huge
//! pages: 9 % of the correlator's CPU in a profile of `make bench-correlator`.
//! With ten seconds the churn stays resident and memory still goes back
//! once the load drops.

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};
use std::os::raw::c_long;

/// How long freed memory stays with the process before it is purged.
pub const PURGE_DELAY_MS: c_long = 10_000;

/// `mi_option_purge_delay`'s place in mimalloc 3's option list
/// (libmimalloc-sys names no constant for it; a test checks the place).
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;

/// The environment variable with which mimalloc takes the delay from outside.
const PURGE_DELAY_VARIABLE: &str = "MIMALLOC_PURGE_DELAY";

/// Sets the purge delay to [`PURGE_DELAY_MS`], unless `MIMALLOC_PURGE_DELAY`
/// gave mimalloc one. Call first thing in `main`.
pub fn keep_freed_memory_longer() {
    if std::env::var_os(PURGE_DELAY_VARIABLE).is_none() {
        // SAFETY: mimalloc's options may be set at any time, from any thread.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

/// The purge delay mimalloc uses now, in milliseconds.
pub fn purge_delay_ms() -> c_long {
    // SAFETY: reading an option has no preconditions.
    unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option at [`MI_OPTION_PURGE_DELAY`] is the purge delay: it starts
    /// at mimalloc 3's default of 1,000 ms (when the environment sets none)
    /// and takes what is set.
    #[test]
    fn the_purge_delay_is_the_option_set() {
        if std::env::var_os(PURGE_DELAY_VARIABLE).is_none() {
            assert_eq!(purge_delay_ms(), 1_000, "mimalloc's default purge delay");
        }
        keep_freed_memory_longer();
        if std::env::var_os(PURGE_DELAY_VARIABLE).is_none() {
            assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
        }
    }
}
