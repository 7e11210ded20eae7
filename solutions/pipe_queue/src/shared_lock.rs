//! A lock shared by processes: one futex word in a `MAP_SHARED` page made before `fork`
//! (the lock of exercise 3, in brief). Taking a free lock and releasing one nobody waits
//! for are one atomic instruction each, with no system call; a process that finds it
//! taken sleeps in `FUTEX_WAIT` (the *shared* operation: it is woken by a `FUTEX_WAKE`
//! from any process that maps the page).

use std::num::NonZeroUsize;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};

use crate::Error;

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
/// Locked, and someone may sleep on the word: `release` must wake one.
const CONTENDED: u32 = 2;

/// The lock; every process forked after [`SharedLock::new`] shares it.
pub struct SharedLock {
    word: NonNull<AtomicU32>,
}

impl SharedLock {
    pub fn new() -> Result<Self, Error> {
        let bytes = NonZeroUsize::new(size_of::<AtomicU32>()).expect("non-empty");
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses, aliasing
        // no Rust object; the kernel zero-fills it (UNLOCKED).
        let page = unsafe {
            mmap_anonymous(
                None,
                bytes,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }?;
        Ok(Self { word: page.cast() })
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: the mapping lives as long as `self`, holds a valid `AtomicU32` and is
        // only reached through atomics.
        unsafe { self.word.as_ref() }
    }

    /// Takes the lock before `deadline` (`None`: no limit); returns whether it did.
    pub fn acquire_until(&self, deadline: Option<Instant>) -> bool {
        let word = self.word();
        if word
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
        while word.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            let left = match deadline {
                None => None,
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(libc::timespec {
                        tv_sec: left.as_secs() as libc::time_t,
                        tv_nsec: left.subsec_nanos() as libc::c_long,
                    }),
                    _ => return false,
                },
            };
            let timeout = left.as_ref().map_or(ptr::null(), |t| t as *const _);
            // SAFETY: the word is a valid, aligned u32 for the call; `timeout` is null
            // or points to a timespec that outlives it. Sleeps only while the word is
            // still CONTENDED; any wake-up, signal or timeout makes us look again.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    word.as_ptr(),
                    libc::FUTEX_WAIT,
                    CONTENDED,
                    timeout,
                );
            }
        }
        true
    }

    pub fn release(&self) {
        if self.word().swap(UNLOCKED, Ordering::Release) == CONTENDED {
            // SAFETY: FUTEX_WAKE on a valid, aligned word; it does not access memory.
            unsafe {
                libc::syscall(libc::SYS_futex, self.word().as_ptr(), libc::FUTEX_WAKE, 1);
            }
        }
    }
}

impl Drop for SharedLock {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unused once `self` is gone (other processes
        // keep their own mapping of the page).
        let _ = unsafe { munmap(self.word.cast(), size_of::<AtomicU32>()) };
    }
}
