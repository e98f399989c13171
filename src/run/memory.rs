//! Keeping resident memory close to what the operator holds. glibc's allocator keeps freed memory in
//! per-thread arenas: after the initial list of thousands of objects, or a burst of reconciles, most of
//! it sits freed but resident. Two arenas are plenty for a controller (its work is I/O), and a periodic
//! trim hands freed pages back, so the pod's memory limit covers what is live, not what once was.

use std::time::Duration;

/// How often freed memory is handed back.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Limits glibc to two arenas; call before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands freed memory back to the system now and then, until the process ends.
pub async fn trim_periodically() {
    let mut every = tokio::time::interval(TRIM_EVERY);
    loop {
        every.tick().await;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free pages to the system; it is thread-safe.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
