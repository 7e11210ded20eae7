//! A small array of atomic `u64` slots in a `MAP_SHARED` anonymous mapping.
//!
//! Made by a test before it forks, it is the same memory in the test and in every
//! process forked after it, so children can record facts (their pid, a timestamp, a
//! count) that the test reads afterwards, without trusting the code under test.

use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};

/// `capacity` atomic slots shared across `fork`, plus an append cursor.
///
/// Cloning gives another handle to the same slots (for a `'static` closure run by a
/// child); the mapping is unmapped when the last handle in a process is dropped.
#[derive(Clone)]
pub struct SharedSlots {
    mapping: Arc<Mapping>,
}

struct Mapping {
    base: NonNull<AtomicU64>,
    capacity: usize,
}

// SAFETY: the mapping is only reached through `AtomicU64`, which is `Sync`.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl SharedSlots {
    /// Maps `capacity` zeroed slots (`MAP_SHARED | MAP_ANONYMOUS`).
    pub fn new(capacity: usize) -> Self {
        let bytes = NonZeroUsize::new((capacity + 1) * size_of::<AtomicU64>()).expect("capacity");
        // SAFETY: a fresh anonymous mapping, not aliasing any Rust object.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                bytes,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .expect("mmap MAP_SHARED failed");
        Self {
            mapping: Arc::new(Mapping {
                base: ptr.cast(),
                capacity,
            }),
        }
    }

    fn slot(&self, index: usize) -> &AtomicU64 {
        let (base, capacity) = (self.mapping.base, self.mapping.capacity);
        assert!(index <= capacity, "slot {index} out of range");
        // SAFETY: in bounds of the mapping, which lives as long as `self`; the kernel
        // zero-fills it, a valid `AtomicU64`.
        unsafe { &*base.as_ptr().add(index) }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.mapping.capacity
    }

    /// Reads slot `index`.
    pub fn get(&self, index: usize) -> u64 {
        self.slot(index + 1).load(Ordering::SeqCst)
    }

    /// Writes slot `index`.
    pub fn set(&self, index: usize, value: u64) {
        self.slot(index + 1).store(value, Ordering::SeqCst)
    }

    /// Adds `delta` to slot `index` atomically; returns the previous value.
    pub fn add(&self, index: usize, delta: u64) -> u64 {
        self.slot(index + 1).fetch_add(delta, Ordering::SeqCst)
    }

    /// Appends `value` after the values appended so far (from any process) and returns
    /// its index. Panics when full.
    pub fn push(&self, value: u64) -> usize {
        self.push_all(&[value])
    }

    /// Appends `values` as one contiguous run (no other process's values in between)
    /// and returns the index of the first. Panics when full.
    pub fn push_all(&self, values: &[u64]) -> usize {
        let first = self
            .slot(0)
            .fetch_add(values.len() as u64, Ordering::SeqCst) as usize;
        assert!(
            first + values.len() <= self.mapping.capacity,
            "SharedSlots full"
        );
        for (offset, &value) in values.iter().enumerate() {
            self.set(first + offset, value);
        }
        first
    }

    /// The values appended with [`push`](Self::push), in order of appending.
    pub fn pushed(&self) -> Vec<u64> {
        let len = (self.slot(0).load(Ordering::SeqCst) as usize).min(self.mapping.capacity);
        (0..len).map(|i| self.get(i)).collect()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, once no handle is left.
        let _ = unsafe {
            munmap(
                self.base.cast(),
                (self.capacity + 1) * size_of::<AtomicU64>(),
            )
        };
    }
}
