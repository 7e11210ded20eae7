//! The two futex operations the lock needs, as thin wrappers over `syscall(SYS_futex)`.
//!
//! Both use the *shared* operations (no `FUTEX_PRIVATE_FLAG`): the kernel then finds
//! waiters by the physical page of the word, so a process sleeping on the word is woken
//! by a `FUTEX_WAKE` from any other process that maps the same page. `std::sync::Mutex`
//! uses the private operations, keyed by address in one process: that is why it cannot
//! work between processes.

use std::ptr;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps in the kernel while `*word == expected`, for at most `timeout` (`None`: no
/// limit). Returns on a wake-up, when the word no longer holds `expected` (`EAGAIN`),
/// on a signal (`EINTR`) or at the timeout (`ETIMEDOUT`): the caller cannot tell these
/// apart and must look at the word again, so no error is returned.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let timeout = timeout.map(|t| libc::timespec {
        // Saturate instead of wrapping: a huge timeout must not become a negative one.
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let timeout_ptr = timeout
        .as_ref()
        .map_or(ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned `u32` for the whole call (we borrow it), and
    // `timeout_ptr` is null or points to a `timespec` that outlives the call. FUTEX_WAIT
    // only reads both.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            timeout_ptr,
        );
    }
}

/// Wakes at most `count` processes sleeping in [`wait`] on `word`.
pub fn wake(word: &AtomicU32, count: i32) {
    // SAFETY: `word` is a valid, aligned `u32`; FUTEX_WAKE does not access memory.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, count);
    }
}
