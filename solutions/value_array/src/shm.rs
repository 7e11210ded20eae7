//! The memory behind every `Value` and `Array`: a lock word and `len` elements in one
//! `MAP_SHARED` mapping of a `memfd`.
//!
//! `fork` copies the address space, but a `MAP_SHARED` mapping stays *the same pages* in
//! the parent and the child: that is what makes the memory shared. (`memmap2`'s
//! `MmapMut::map_anon` is `MAP_PRIVATE`: after `fork` each process writes to its own
//! copy.) A mapping made after the fork exists only in the process that made it.

use std::fs::File;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use memmap2::{MmapOptions, MmapRaw};
use nix::sys::memfd::{MFdFlags, memfd_create};

use crate::futex::{self, Held};
use crate::{ShmError, TypeCode};

/// The elements start here, after the lock word: 8 keeps every `Cell` (at most 8 bytes,
/// `AtomicU64`) aligned, since the mapping itself starts on a page boundary.
const DATA_OFFSET: usize = 8;

/// `len` elements of `T` and a lock word. Clones share the mapping; it is unmapped in a
/// process when the last clone there is dropped.
#[derive(Clone)]
pub struct Shared<T: TypeCode> {
    map: Arc<MmapRaw>,
    len: usize,
    _type: PhantomData<T>,
}

impl<T: TypeCode> Shared<T> {
    /// Maps a free lock word and `len` zero elements.
    pub fn new(len: usize) -> Result<Self, ShmError> {
        let bytes = len
            .checked_mul(size_of::<T::Cell>())
            .and_then(|data| data.checked_add(DATA_OFFSET))
            .ok_or(ShmError::Os(nix::errno::Errno::ENOMEM))?;
        // An anonymous in-memory file: its pages are zero-filled, and a MAP_SHARED
        // mapping of it is shared by every process forked afterwards.
        let file = File::from(memfd_create(c"forklab-value_array", MFdFlags::MFD_CLOEXEC)?);
        file.set_len(bytes as u64)?;
        let map = MmapOptions::new().len(bytes).map_raw(&file)?;
        // The file descriptor can be closed now: the mapping keeps the memory alive.
        Ok(Self {
            map: Arc::new(map),
            len,
            _type: PhantomData,
        })
    }

    /// Maps a free lock word and a copy of `items`.
    pub fn from_slice(items: &[T]) -> Result<Self, ShmError> {
        let shared = Self::new(items.len())?;
        for (index, &item) in items.iter().enumerate() {
            shared.store(index, item);
        }
        Ok(shared)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Takes the lock; it is released when the returned value is dropped.
    pub fn lock(&self) -> Held<'_> {
        // SAFETY: offset 0 is inside the mapping (at least DATA_OFFSET bytes) and
        // page-aligned; the kernel zero-filled it, a valid `AtomicU32`. It lives as long
        // as `self` holds the mapping, and every process reaches it only atomically.
        let word = unsafe { &*self.map.as_mut_ptr().cast::<AtomicU32>() };
        futex::lock(word)
    }

    /// `Ok` if `index` is an element.
    pub fn check(&self, index: usize) -> Result<(), ShmError> {
        if index < self.len {
            Ok(())
        } else {
            Err(ShmError::IndexOutOfRange {
                index,
                len: self.len,
            })
        }
    }

    /// `Ok` if `range` is a range of elements.
    pub fn check_range(&self, range: &Range<usize>) -> Result<(), ShmError> {
        if range.start <= range.end && range.end <= self.len {
            Ok(())
        } else {
            Err(ShmError::RangeOutOfRange {
                start: range.start,
                end: range.end,
                len: self.len,
            })
        }
    }

    fn cell(&self, index: usize) -> &T::Cell {
        // A bound check even in release builds: an index past the mapping would be UB.
        assert!(index < self.len, "element {index} of {}", self.len);
        // SAFETY: element `index` lies inside the mapping (checked above; `new` sized it
        // for `len` cells after DATA_OFFSET) and is aligned (page-aligned base,
        // DATA_OFFSET and the stride are multiples of the cell's alignment). The kernel
        // zero-filled it, a valid atomic. Every process touches it only through the
        // atomic, never through `&mut`, and the mapping lives as long as `self`.
        unsafe {
            &*self
                .map
                .as_mut_ptr()
                .add(DATA_OFFSET + index * size_of::<T::Cell>())
                .cast::<T::Cell>()
        }
    }

    /// Reads element `index` (no lock taken here). Panics if out of range.
    pub fn load(&self, index: usize) -> T {
        T::load(self.cell(index))
    }

    /// Writes element `index` (no lock taken here). Panics if out of range.
    pub fn store(&self, index: usize, value: T) {
        T::store(self.cell(index), value)
    }

    /// Reads `range` element by element (no lock taken here).
    pub fn load_range(&self, range: Range<usize>) -> Vec<T> {
        range.map(|index| self.load(index)).collect()
    }
}
