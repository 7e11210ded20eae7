//! A small cross-process lock: one `AtomicU32` in shared memory and the Linux futex.
//!
//! The word is 0 (free), 1 (held, nobody waiting) or 2 (held, maybe someone waiting),
//! the classic mutex of Ulrich Drepper's "Futexes Are Tricky". Taking a free lock is one
//! compare-and-swap; a waiter sleeps in the kernel (`FUTEX_WAIT`) until the holder's
//! release wakes it (`FUTEX_WAKE`), so it uses no CPU while it waits.
//!
//! Both calls are the *shared* futex operations (no `FUTEX_PRIVATE_FLAG`): the kernel
//! then finds waiters by the page the word lives in, so a process sleeping on the word is
//! woken by a release in any other process that maps the same page. `std::sync::Mutex`
//! uses the private operations, keyed by the address inside one process: placed in a
//! shared page it compiles, but a waiter in one process is never woken by a release in
//! another and sleeps for ever.

use std::sync::atomic::{AtomicU32, Ordering};

const FREE: u32 = 0;
const HELD: u32 = 1;
const CONTENDED: u32 = 2;

/// A held lock; dropping it (also while a panic unwinds) releases the lock.
pub struct Held<'a> {
    word: &'a AtomicU32,
}

/// Takes the lock whose word is `word`, sleeping in the kernel while another holds it.
pub fn lock(word: &AtomicU32) -> Held<'_> {
    // Fast path: a free lock is taken with one CAS and no system call.
    if word
        .compare_exchange(FREE, HELD, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        // Slow path: announce a waiter (2) so the holder knows to wake someone, and
        // sleep while the word still says "held with waiters". Whoever swaps 0 → 2 owns
        // the lock; it keeps the word at 2 because other waiters may still sleep.
        while word.swap(CONTENDED, Ordering::Acquire) != FREE {
            wait(word, CONTENDED);
        }
    }
    Held { word }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Release ordering publishes every write made under the lock to the next holder.
        if self.word.swap(FREE, Ordering::Release) == CONTENDED {
            wake_one(self.word);
        }
    }
}

/// Sleeps while `*word == expected`. Returns on a wake-up, at once if the word already
/// changed (`EAGAIN`), or on a signal (`EINTR`): the caller looks at the word again.
fn wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a valid, aligned u32 for the whole call (we borrow it); a null
    // timeout means "no limit". FUTEX_WAIT only reads the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes one process sleeping in [`wait`] on `word`, in any process.
fn wake_one(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE does not access memory.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}
