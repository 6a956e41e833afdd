//! glibc malloc settings for a daemon whose tables grow by doubling.
//!
//! By default glibc raises its mmap threshold each time a large block is freed, so the
//! old table freed by one growth step makes the next big tables come from the heap,
//! where freed space stays resident; and every thread gets its own arena, holding on to
//! what it freed. At a million routes that was about 40 MB of RSS over what was in use.
//! A fixed threshold keeps big tables in their own mappings (returned on free), two
//! arenas keep the freed space shared, and a trim after a burst of work gives back the
//! rest.

/// Big allocations get their own mapping above this size.
#[cfg(target_env = "gnu")]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Applies the settings; call before any thread starts.
pub fn tune() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator parameters; no thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns free memory to the system (after a burst of work).
pub fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim is thread-safe and takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
