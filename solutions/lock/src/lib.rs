//! # Reference solution of exercise 3 — `lock`: a lock shared by processes
//!
//! The race first ([`count_without_lock`]), then its cure: [`Lock`], the counterpart of
//! Python's `multiprocessing.Lock`, and [`count_with_lock`].
//!
//! The lock is one 32-bit word in a `MAP_SHARED` page made by [`Lock::new`], so every
//! process forked afterwards sees the same word. The word follows the mutex of Ulrich
//! Drepper's paper "Futexes Are Tricky": 0 unlocked, 1 locked, 2 locked and maybe
//! waited for. Taking a free lock and releasing a lock nobody waits for are one atomic
//! instruction each; only a process that finds the lock taken enters the kernel, where
//! it sleeps in `FUTEX_WAIT` until the holder's `FUTEX_WAKE`, using no CPU.

mod futex;

use std::fmt;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

/// Maps one zero-filled `T` in a `MAP_SHARED | MAP_ANONYMOUS` page: after `fork`, parent
/// and children reach the same physical memory through it. Panics if `mmap` fails.
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

/// Unmaps what [`map_shared`] mapped.
///
/// # Safety
/// `ptr` comes from `map_shared::<T>()` and nothing uses it afterwards.
unsafe fn unmap_shared<T>(ptr: NonNull<T>) {
    // SAFETY: the caller guarantees the mapping is ours and no longer used. A failure
    // only leaks the page, so it is ignored.
    let _ = unsafe { munmap(ptr.cast(), size_of::<T>()) };
}

/// A `u64` counter in memory shared by every process forked after [`SharedCounter::new`]
/// (the stand-in for Python's `Value('i', 0)`; shared memory is exercise 5's topic).
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
/// all and returns the final value. Usually less than `processes * increments`.
///
/// Panics if `fork` fails or a child does not exit with code 0.
pub fn count_without_lock(processes: usize, increments: usize) -> u64 {
    let counter = SharedCounter::new();
    in_processes(processes, || {
        for _ in 0..increments {
            // Read, add, write back: another process may write in between, and this
            // write then erases its increment.
            counter.write(counter.read() + 1);
        }
    });
    counter.read()
}

/// The cure: like [`count_without_lock`], but each increment is made while holding one
/// [`Lock`] made before the children are forked. Returns exactly
/// `processes * increments`.
///
/// Panics if `fork` fails or a child does not exit with code 0.
pub fn count_with_lock(processes: usize, increments: usize) -> u64 {
    let counter = SharedCounter::new();
    let lock = Lock::new();
    in_processes(processes, || {
        for _ in 0..increments {
            // `with lock:` — no other process can run these lines until `_held` drops.
            let _held = lock.lock();
            counter.write(counter.read() + 1);
        }
    });
    counter.read()
}

/// Runs `work` in `processes` forked children at once, then reaps every child.
/// Panics (after reaping what was forked) if a `fork` fails or a child fails.
fn in_processes(processes: usize, work: impl Fn()) {
    let mut children: Vec<Pid> = Vec::with_capacity(processes);
    let mut fork_error = None;
    for _ in 0..processes {
        // SAFETY: the child only runs `work` (no lock of another thread is taken) and
        // ends with `_exit`: it never returns into the caller's code.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                let code = match catch_unwind(AssertUnwindSafe(&work)) {
                    Ok(()) => 0,
                    Err(_) => 1,
                };
                // SAFETY: ends the child at once, running no code of the parent's.
                unsafe { libc::_exit(code) }
            }
            Ok(ForkResult::Parent { child }) => children.push(child),
            Err(errno) => {
                fork_error = Some(errno);
                break;
            }
        }
    }
    let failed = children
        .into_iter()
        .filter(|&child| !matches!(waitpid(child, None), Ok(WaitStatus::Exited(_, 0))))
        .count();
    if let Some(errno) = fork_error {
        panic!("fork failed: {errno}");
    }
    assert_eq!(failed, 0, "{failed} child process(es) failed");
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

/// The lock word is free.
const UNLOCKED: u32 = 0;
/// Held, and nobody sleeps on it: `release` need not enter the kernel.
const LOCKED: u32 = 1;
/// Held, and someone may sleep on it: `release` must `FUTEX_WAKE` one waiter.
const CONTENDED: u32 = 2;

/// A lock shared by processes, like Python's `multiprocessing.Lock`.
///
/// Make it before `fork`: the parent and every child forked afterwards hold the same
/// lock, and at most one of them holds it at a time. Any process may release it, not
/// only the one that acquired it (as in Python). A process waiting for it sleeps in the
/// kernel.
pub struct Lock {
    /// The futex word, in a page shared across `fork`: [`UNLOCKED`], [`LOCKED`] or
    /// [`CONTENDED`].
    word: NonNull<AtomicU32>,
}

// SAFETY: the word is only reached through `AtomicU32` operations and futex calls,
// which are safe from any thread (and any process).
unsafe impl Send for Lock {}
// SAFETY: as above.
unsafe impl Sync for Lock {}

impl Lock {
    /// A new, unlocked lock in its own `MAP_SHARED | MAP_ANONYMOUS` page. Panics if
    /// `mmap` fails.
    pub fn new() -> Self {
        // The kernel zero-fills the page: the word starts UNLOCKED.
        Self { word: map_shared() }
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: the mapping lives as long as `self`, is zero-filled (a valid
        // `AtomicU32`) and is only reached through atomics.
        unsafe { self.word.as_ref() }
    }

    /// Blocks until this process holds the lock (Python's `lock.acquire()`).
    pub fn acquire(&self) {
        self.acquire_until(None);
    }

    /// Like [`acquire`](Self::acquire), but gives up after `timeout`: `true` if the lock
    /// is now held by the caller, `false` if the time ran out
    /// (Python's `lock.acquire(timeout=...)`).
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.acquire_until(Some(deadline)),
            // Too far away to represent: the same as no timeout.
            None => self.acquire_until(None),
        }
    }

    /// Takes the lock if it is free and returns `true`; returns `false` at once if
    /// another process (or this one) holds it (Python's `lock.acquire(False)`).
    pub fn try_acquire(&self) -> bool {
        self.word()
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Releases the lock and wakes one waiting process, if any (Python's
    /// `lock.release()`).
    ///
    /// Errors: [`LockError::NotLocked`] if the lock is not held.
    pub fn release(&self) -> Result<(), LockError> {
        // One atomic swap both frees the word and tells whether someone may sleep on
        // it; swapping 0 into an unlocked word leaves it unchanged.
        match self.word().swap(UNLOCKED, Ordering::Release) {
            UNLOCKED => Err(LockError::NotLocked),
            LOCKED => Ok(()),
            _ => {
                futex::wake(self.word(), 1);
                Ok(())
            }
        }
    }

    /// Acquires the lock and returns a guard that releases it when dropped: Python's
    /// `with lock:`. The guard also releases the lock when the holder panics (the drop
    /// runs while the panic unwinds).
    pub fn lock(&self) -> LockGuard<'_> {
        self.acquire();
        LockGuard { lock: self }
    }

    /// Acquires before `deadline` (`None`: no deadline); returns whether it did.
    fn acquire_until(&self, deadline: Option<Instant>) -> bool {
        if self.try_acquire() {
            return true; // The fast path: no system call.
        }
        // Announce a waiter by setting CONTENDED, so that the holder's release wakes
        // us. If the swap finds the word UNLOCKED we own the lock, in state CONTENDED:
        // that can only cost one unneeded FUTEX_WAKE later.
        while self.word().swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            let timeout = match deadline {
                None => None,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    Some(left)
                }
            };
            // Sleeps only while the word is still CONTENDED: a release between our swap
            // and this call changes the word, and the kernel returns at once.
            futex::wait(self.word(), CONTENDED, timeout);
        }
        true
    }
}

impl Default for Lock {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unused once `self` is gone. Other
        // processes keep their own mapping of the page.
        unsafe { unmap_shared(self.word) }
    }
}

/// Holds a [`Lock`] from [`Lock::lock`] until dropped: the body of Python's
/// `with lock:`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Only fails if someone called `release` behind the guard's back; a drop must
        // not panic (it may run while a panic unwinds), so that is ignored.
        let _ = self.lock.release();
    }
}
