//! # Exercise 3 — `lock`: a lock shared by processes (Python's `multiprocessing.Lock`)
//!
//! First see the race ([`count_without_lock`]), then build its cure: [`Lock`], made
//! before `fork` and shared by every process, and [`count_with_lock`].
//! Read `README.md` first (Spanish and English), then replace every `todo!()`.
//!
//! ```python
//! lock = Lock()
//! def sumar(lock, contador):
//!     for _ in range(N):
//!         with lock:
//!             contador.value += 1
//! ```
//!
//! ```no_run
//! use lock::{Lock, SharedCounter};
//! use nix::sys::wait::waitpid;
//! use nix::unistd::{ForkResult, fork};
//!
//! let lock = Lock::new(); // before fork: parent and child share it
//! let counter = SharedCounter::new();
//! match unsafe { fork() }.unwrap() {
//!     ForkResult::Child => {
//!         for _ in 0..1000 {
//!             let _held = lock.lock(); // `with lock:`
//!             counter.write(counter.read() + 1);
//!         }
//!         unsafe { libc::_exit(0) }
//!     }
//!     ForkResult::Parent { child } => {
//!         waitpid(child, None).unwrap();
//!         assert_eq!(counter.read(), 1000);
//!     }
//! }
//! ```
//!
//! Run the visible tests with `cargo test -p lock`.

// Delete this line once you have written the bodies: it only silences the warnings
// about the arguments and fields that the `todo!()` stubs do not use yet.
#![allow(unused_variables, dead_code)]

use std::fmt;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};

/// Maps one zero-filled `T` in a `MAP_SHARED | MAP_ANONYMOUS` page: after `fork`, parent
/// and children reach the same physical memory through it. Panics if `mmap` fails.
/// Given complete (shared memory is exercise 5's topic); use it for your [`Lock`] too.
fn map_shared<T>() -> NonNull<T> {
    let bytes = NonZeroUsize::new(size_of::<T>()).expect("a non-empty type");
    // SAFETY: a fresh anonymous mapping at an address the kernel chooses: it aliases
    // no Rust object.
    let page = unsafe {
        mmap_anonymous(
            None,
            bytes,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }
    .expect("mmap(MAP_SHARED | MAP_ANONYMOUS) failed");
    page.cast()
}

/// Unmaps what [`map_shared`] mapped. Given complete.
///
/// # Safety
/// `ptr` comes from `map_shared::<T>()` and nothing uses it afterwards.
unsafe fn unmap_shared<T>(ptr: NonNull<T>) {
    // SAFETY: the caller guarantees the mapping is ours and no longer used. A failure
    // only leaks the page, so it is ignored.
    let _ = unsafe { munmap(ptr.cast(), size_of::<T>()) };
}

/// A `u64` counter in memory shared by every process forked after [`SharedCounter::new`]
/// (the stand-in for Python's `Value('i', 0)`). Given complete.
///
/// [`read`](Self::read) and [`write`](Self::write) are each a single access, but nothing
/// makes the pair atomic: between a process's `read` and its `write`, another process
/// may write, and `counter.write(counter.read() + 1)` then loses that write. That is the
/// race this exercise is about. `SharedCounter` is neither `Send` nor `Sync`: share it
/// with child processes, not with threads.
pub struct SharedCounter {
    value: NonNull<AtomicU64>,
}

impl SharedCounter {
    /// A counter at 0 in a new `MAP_SHARED | MAP_ANONYMOUS` mapping. Make it before
    /// `fork`. Panics if `mmap` fails.
    pub fn new() -> Self {
        Self {
            value: map_shared(),
        }
    }

    fn cell(&self) -> &AtomicU64 {
        // SAFETY: the mapping lives as long as `self`; the kernel zero-fills it, a valid
        // `AtomicU64`, and every process reaches it only through atomic operations.
        unsafe { self.value.as_ref() }
    }

    /// The counter's value, as last written by any process. Orders nothing: a lock
    /// must make the increments of different processes happen one after another.
    pub fn read(&self) -> u64 {
        self.cell().load(Ordering::Relaxed)
    }

    /// Stores `value`, overwriting whatever any process wrote before.
    pub fn write(&self, value: u64) {
        self.cell().store(value, Ordering::Relaxed)
    }
}

impl Default for SharedCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for SharedCounter {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unused once `self` is gone.
        unsafe { unmap_shared(self.value) }
    }
}

/// The race: forks `processes` children that each add 1 to one [`SharedCounter`]
/// `increments` times, with `counter.write(counter.read() + 1)` and no lock; reaps them
/// all and returns the final value. Usually less than `processes * increments`: the
/// increments of one process erase those of another.
///
/// Every child ends with `_exit`. Panics if `fork` fails or a child does not exit with
/// code 0.
pub fn count_without_lock(processes: usize, increments: usize) -> u64 {
    todo!("fork the children, let each increment the counter, reap them all")
}

/// The cure: like [`count_without_lock`], but each increment is made while holding one
/// [`Lock`] made before the children are forked. Returns exactly
/// `processes * increments`.
///
/// Every child ends with `_exit`. Panics if `fork` fails or a child does not exit with
/// code 0.
pub fn count_with_lock(processes: usize, increments: usize) -> u64 {
    todo!("the same, holding the lock around each increment")
}

/// Why a [`Lock`] operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockError {
    /// `release` was called on a lock that is not held (Python raises `ValueError`).
    NotLocked,
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::NotLocked => write!(f, "release of a lock that is not locked"),
        }
    }
}

impl std::error::Error for LockError {}

/// A lock shared by processes, like Python's `multiprocessing.Lock`.
///
/// Make it before `fork`: the parent and every child forked afterwards hold the same
/// lock, and at most one of them holds it at a time. Any process may release it, not
/// only the one that acquired it (as in Python). A process waiting for it sleeps in the
/// kernel: it does not spin burning CPU.
pub struct Lock {
    /// A suggestion (you may change the private fields): the lock word, in a page from
    /// [`map_shared`] so that it survives `fork`; 0 unlocked, 1 locked, 2 locked and
    /// maybe waited for. Waiters sleep on it with a *shared* futex.
    word: NonNull<AtomicU32>,
}

// SAFETY: (for the suggested field) the word is only reached through `AtomicU32`
// operations and futex calls, which are safe from any thread and any process.
unsafe impl Send for Lock {}
// SAFETY: as above.
unsafe impl Sync for Lock {}

impl Lock {
    /// A new, unlocked lock in memory shared across `fork`. Panics if `mmap` fails.
    pub fn new() -> Self {
        todo!("map the lock word in a MAP_SHARED page")
    }

    /// Blocks until the caller holds the lock (Python's `lock.acquire()`). While it
    /// waits, the process sleeps in the kernel.
    pub fn acquire(&self) {
        todo!("take the lock, sleeping in the kernel while another process holds it")
    }

    /// Like [`acquire`](Self::acquire), but gives up after `timeout`: `true` if the
    /// caller now holds the lock, `false` if the time ran out
    /// (Python's `lock.acquire(timeout=...)`).
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        todo!("acquire, sleeping at most until the deadline")
    }

    /// Takes the lock if it is free and returns `true`; returns `false` at once if any
    /// process (this one included) holds it (Python's `lock.acquire(False)`).
    pub fn try_acquire(&self) -> bool {
        todo!("take the lock only if it is free")
    }

    /// Releases the lock and wakes one waiting process, if any (Python's
    /// `lock.release()`). Any process may release it.
    ///
    /// Errors: [`LockError::NotLocked`] if the lock is not held; the lock stays usable.
    pub fn release(&self) -> Result<(), LockError> {
        todo!("free the lock, wake a waiter")
    }

    /// Acquires the lock and returns a guard that releases it when dropped: Python's
    /// `with lock:`. The guard also releases the lock when the holder panics (the drop
    /// runs while the panic unwinds).
    pub fn lock(&self) -> LockGuard<'_> {
        todo!("acquire, then return the guard")
    }
}

impl Default for Lock {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Lock {
    /// Unmaps this process's view of the lock (other processes keep theirs).
    fn drop(&mut self) {
        todo!("unmap the page made in new")
    }
}

/// Holds a [`Lock`] from [`Lock::lock`] until dropped: the body of Python's
/// `with lock:`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl Drop for LockGuard<'_> {
    /// Releases the lock, also while a panic unwinds. Must not panic itself.
    fn drop(&mut self) {
        todo!("release the lock")
    }
}
