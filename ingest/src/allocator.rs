//! How ingest's allocator (mimalloc, `main.rs`) gives memory back.
//!
//! mimalloc returns freed memory to the kernel once it has stayed free for
//! its purge delay, but only when some thread allocates or frees: after a
//! burst, an idle ingest kept what the burst had used. The upkeep asks it to
//! collect every second, and to give back everything free once no request
//! holds any bytes.

use std::time::Duration;

/// How often the upkeep collects.
pub const COLLECT_INTERVAL: Duration = Duration::from_secs(1);

/// Purges the memory whose purge delay has expired; `everything` purges
/// all free memory at once, for when the service is idle.
pub fn collect(everything: bool) {
    // SAFETY: mi_collect may be called at any time, from any thread.
    unsafe { libmimalloc_sys::mi_collect(everything) }
}
