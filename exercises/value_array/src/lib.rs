//! # Exercise 5 — `value_array`: shared memory with `Value` and `Array`
//!
//! Build the Rust counterparts of Python's `multiprocessing.Value` and `Array`: numbers
//! in memory that a parent and the children it forks really share, each object with its
//! own cross-process lock. Read `README.md` first (Spanish and English), then replace
//! every `todo!()`.
//!
//! ```python
//! v = Value('i', 0)
//! with v.get_lock():
//!     v.value += 1
//! a = Array('d', 4)
//! a[2] = 1.5; print(a[:])
//! ```
//!
//! ```no_run
//! use value_array::{Array, Value};
//! let v = Value::<i32>::new(0).unwrap();
//! v.update(|x| x + 1); // `with v.get_lock(): v.value += 1`
//! let a = Array::<f64>::new(4).unwrap();
//! a.set(2, 1.5).unwrap();
//! assert_eq!(a.to_vec(), vec![0.0, 0.0, 1.5, 0.0]);
//! // After `fork`, a child uses its copy of `v` and `a`: the same memory.
//! ```
//!
//! Run the visible tests with `cargo test -p value_array`.

// Delete this line once you have written the bodies: it only silences the warnings
// about the arguments and fields that the `todo!()` stubs do not use yet.
#![allow(unused_variables, dead_code)]

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicU64, Ordering};

use memmap2::MmapRaw;

/// Why a shared-memory operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShmError {
    /// The typecode is not one of `'i'`, `'d'`, `'c'` (Python raises `TypeError`).
    UnknownTypecode(char),
    /// `index` is not below the array's length `len` (Python raises `IndexError`).
    IndexOutOfRange { index: usize, len: usize },
    /// The range `start..end` is not within `0..len` (or `start > end`).
    RangeOutOfRange {
        start: usize,
        end: usize,
        len: usize,
    },
    /// The operating system refused a call (`memfd_create`, `ftruncate`, `mmap`, ...).
    Os(nix::errno::Errno),
}

impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShmError::UnknownTypecode(code) => {
                write!(f, "unknown typecode {code:?} (expected 'i', 'd' or 'c')")
            }
            ShmError::IndexOutOfRange { index, len } => {
                write!(f, "index {index} out of range for length {len}")
            }
            ShmError::RangeOutOfRange { start, end, len } => {
                write!(f, "range {start}..{end} out of range for length {len}")
            }
            ShmError::Os(errno) => write!(f, "system call failed: {errno}"),
        }
    }
}

impl std::error::Error for ShmError {}

impl From<nix::errno::Errno> for ShmError {
    fn from(errno: nix::errno::Errno) -> Self {
        ShmError::Os(errno)
    }
}

impl From<std::io::Error> for ShmError {
    fn from(error: std::io::Error) -> Self {
        ShmError::Os(
            error
                .raw_os_error()
                .map_or(nix::errno::Errno::EIO, nix::errno::Errno::from_raw),
        )
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for i32 {}
    impl Sealed for f64 {}
    impl Sealed for u8 {}
}

/// An element type of shared memory, with its Python typecode: `i32` is `'i'` (C `int`),
/// `f64` is `'d'` (C `double`), `u8` is `'c'` (one byte, Python's `b'x'`).
///
/// Given complete: each element lives in shared memory as an atomic of the same size
/// ([`Cell`](Self::Cell)), so that no process ever holds a `&mut` to memory that another
/// process writes. `load`/`store` are `Relaxed`: the ordering between processes comes
/// from your lock (acquire when taken, release when freed), or from `waitpid`.
pub trait TypeCode:
    Copy + PartialEq + fmt::Debug + Default + Send + Sync + 'static + sealed::Sealed
{
    /// Python's typecode for this type.
    const CODE: char;
    /// The atomic that holds one element in shared memory (same size as `Self`; the
    /// kernel's zero-filled pages are a valid `Cell` holding `Self::default()`).
    type Cell: Send + Sync;
    /// Reads one element.
    fn load(cell: &Self::Cell) -> Self;
    /// Writes one element.
    fn store(cell: &Self::Cell, value: Self);
}

impl TypeCode for i32 {
    const CODE: char = 'i';
    type Cell = AtomicI32;
    fn load(cell: &AtomicI32) -> i32 {
        cell.load(Ordering::Relaxed)
    }
    fn store(cell: &AtomicI32, value: i32) {
        cell.store(value, Ordering::Relaxed)
    }
}

impl TypeCode for f64 {
    const CODE: char = 'd';
    type Cell = AtomicU64;
    fn load(cell: &AtomicU64) -> f64 {
        f64::from_bits(cell.load(Ordering::Relaxed))
    }
    fn store(cell: &AtomicU64, value: f64) {
        cell.store(value.to_bits(), Ordering::Relaxed)
    }
}

impl TypeCode for u8 {
    const CODE: char = 'c';
    type Cell = AtomicU8;
    fn load(cell: &AtomicU8) -> u8 {
        cell.load(Ordering::Relaxed)
    }
    fn store(cell: &AtomicU8, value: u8) {
        cell.store(value, Ordering::Relaxed)
    }
}

/// `len` elements of `T` and one lock word (an `AtomicU32`), in one `MAP_SHARED`
/// mapping. A suggestion: change the private items as you like, not the public API.
#[derive(Clone)]
struct Shared<T: TypeCode> {
    map: Arc<MmapRaw>,
    len: usize,
    _type: PhantomData<T>,
}

/// Python's `Value(typecode, v)`: one `T` in shared memory with its own cross-process
/// lock.
///
/// Handles are used across `fork`: a child simply uses its copy of a `Value` made before
/// the fork, and it is the same memory and the same lock as the parent's. `clone` gives
/// another handle to the same memory (for a `'static` closure); the mapping is unmapped
/// in a process when its last handle there is dropped.
///
/// [`get`](Self::get) and [`set`](Self::set) each take the lock, like Python's
/// `v.value`; so `v.set(v.get() + 1)`, like `v.value += 1`, can lose updates made by other
/// processes between the two calls. Use [`update`](Self::update) or
/// [`get_lock`](Self::get_lock) for a read-modify-write.
#[derive(Clone)]
pub struct Value<T: TypeCode> {
    shared: Shared<T>,
}

impl<T: TypeCode> Value<T> {
    /// A new shared value holding `value`, with its own lock (free). The memory must be
    /// a `MAP_SHARED` mapping (not `memmap2::MmapMut::map_anon`, which is `MAP_PRIVATE`).
    ///
    /// Errors: [`ShmError::Os`] if the mapping cannot be made.
    pub fn new(value: T) -> Result<Self, ShmError> {
        todo!("map shared memory for a lock word and one T, and store `value`")
    }

    /// The typecode, `T::CODE` (Python's `v._type_`).
    pub fn typecode(&self) -> char {
        todo!("return the typecode")
    }

    /// Reads the value under the lock (Python's `v.value`).
    pub fn get(&self) -> T {
        todo!("lock, load, unlock")
    }

    /// Writes the value under the lock (Python's `v.value = x`).
    pub fn set(&self, value: T) {
        todo!("lock, store, unlock")
    }

    /// Replaces the value by `f(value)` holding the lock for the whole read-modify-write,
    /// and returns the new value: `with v.get_lock(): v.value = f(v.value)`.
    ///
    /// If `f` panics, the lock is released (as Python's `with` does on an exception) and
    /// the value is unchanged.
    pub fn update(&self, f: impl FnOnce(T) -> T) -> T {
        todo!("lock, load, store f(value), unlock")
    }

    /// Takes this value's lock (Python's `with v.get_lock():`), waiting while another
    /// process (or handle) holds it: the waiter sleeps in the kernel, it never spins.
    /// The lock is held until the guard is dropped.
    ///
    /// Unlike Python's (recursive) `RLock`, this lock is not recursive: while you hold
    /// the guard, read and write through the guard; calling `v.get()` in the same process
    /// would wait for ever.
    pub fn get_lock(&self) -> ValueGuard<'_, T> {
        todo!("lock and return a guard")
    }
}

/// The lock of a [`Value`], held: read and write the value through it. Dropping the
/// guard (also while a panic unwinds) releases the lock and wakes one waiter.
pub struct ValueGuard<'a, T: TypeCode> {
    value: &'a Value<T>,
}

impl<T: TypeCode> ValueGuard<'_, T> {
    /// Reads the value (the lock is already held).
    pub fn get(&self) -> T {
        todo!("load")
    }

    /// Writes the value (the lock is already held).
    pub fn set(&mut self, value: T) {
        todo!("store")
    }
}

/// Python's `RawValue(typecode, v)` (or `Value(typecode, v, lock=False)`): one `T` in
/// shared memory, without a lock. Each `get` and `set` is atomic by itself (one aligned
/// atomic load or store), but nothing makes a read-modify-write atomic. Shared across
/// `fork` and cloned like [`Value`].
#[derive(Clone)]
pub struct RawValue<T: TypeCode> {
    shared: Shared<T>,
}

impl<T: TypeCode> RawValue<T> {
    /// A new shared value holding `value`. Errors: [`ShmError::Os`].
    pub fn new(value: T) -> Result<Self, ShmError> {
        todo!("map shared memory for one T and store `value`")
    }

    /// The typecode, `T::CODE`.
    pub fn typecode(&self) -> char {
        todo!("return the typecode")
    }

    /// Reads the value (no lock).
    pub fn get(&self) -> T {
        todo!("load")
    }

    /// Writes the value (no lock).
    pub fn set(&self, value: T) {
        todo!("store")
    }
}

/// Python's `Array(typecode, n)` / `Array(typecode, items)`: a fixed-length array of `T`
/// in shared memory with its own cross-process lock. Shared across `fork` and cloned
/// like [`Value`]. Every single-element operation takes the lock, as Python's `a[i]`.
#[derive(Clone)]
pub struct Array<T: TypeCode> {
    shared: Shared<T>,
}

impl<T: TypeCode> Array<T> {
    /// A new shared array of `len` elements, all zero (`T::default()`), as Python's
    /// `Array('i', 5)`. Errors: [`ShmError::Os`].
    pub fn new(len: usize) -> Result<Self, ShmError> {
        todo!("map shared memory for a lock word and `len` elements")
    }

    /// A new shared array holding a copy of `items` (Python's `Array('i', [1, 2, 3])`).
    /// Errors: [`ShmError::Os`].
    pub fn from_slice(items: &[T]) -> Result<Self, ShmError> {
        todo!("map shared memory and copy `items` into it")
    }

    /// The typecode, `T::CODE`.
    pub fn typecode(&self) -> char {
        todo!("return the typecode")
    }

    /// The number of elements (Python's `len(a)`); fixed at creation.
    pub fn len(&self) -> usize {
        todo!("return the length")
    }

    /// True if the array has no element.
    pub fn is_empty(&self) -> bool {
        todo!("len() == 0")
    }

    /// Element `index`, read under the lock (Python's `a[i]`).
    ///
    /// Errors: [`ShmError::IndexOutOfRange`] if `index >= len()` (never a panic, never a
    /// read outside the mapping).
    pub fn get(&self, index: usize) -> Result<T, ShmError> {
        todo!("check the index, lock, load")
    }

    /// Writes element `index` under the lock (Python's `a[i] = x`).
    ///
    /// Errors: [`ShmError::IndexOutOfRange`] if `index >= len()`; nothing is written.
    pub fn set(&self, index: usize, value: T) -> Result<(), ShmError> {
        todo!("check the index, lock, store")
    }

    /// A copy of every element, taken under the lock in one go (Python's `a[:]`), so it
    /// never mixes values from before and after another process's
    /// [`update_slice`](Self::update_slice).
    pub fn to_vec(&self) -> Vec<T> {
        todo!("lock, load every element, unlock")
    }

    /// Holding the lock, copies the elements in `range` into a buffer, lets `f` change
    /// the buffer, writes it back and returns what `f` returned: Python's
    /// `with a.get_lock(): a[i:j] = f(a[i:j])`. `f` never sees the shared memory itself.
    ///
    /// If `f` panics, the lock is released and nothing is written back.
    ///
    /// Errors: [`ShmError::RangeOutOfRange`] if `range.start > range.end` or
    /// `range.end > len()`; `f` is not called.
    pub fn update_slice<R>(
        &self,
        range: Range<usize>,
        f: impl FnOnce(&mut [T]) -> R,
    ) -> Result<R, ShmError> {
        todo!("check the range, lock, copy out, f, copy back, unlock")
    }

    /// Takes this array's lock (Python's `with a.get_lock():`), waiting while another
    /// process holds it (sleeping in the kernel); held until the guard is dropped. Not
    /// recursive: while you hold the guard, go through the guard.
    pub fn get_lock(&self) -> ArrayGuard<'_, T> {
        todo!("lock and return a guard")
    }
}

/// The lock of an [`Array`], held: read and write the elements through it. Dropping
/// the guard (also while a panic unwinds) releases the lock.
pub struct ArrayGuard<'a, T: TypeCode> {
    array: &'a Array<T>,
}

impl<T: TypeCode> ArrayGuard<'_, T> {
    /// The number of elements.
    pub fn len(&self) -> usize {
        todo!("return the length")
    }

    /// True if the array has no element.
    pub fn is_empty(&self) -> bool {
        todo!("len() == 0")
    }

    /// Element `index`. Errors: [`ShmError::IndexOutOfRange`].
    pub fn get(&self, index: usize) -> Result<T, ShmError> {
        todo!("check the index, load")
    }

    /// Writes element `index`. Errors: [`ShmError::IndexOutOfRange`]; nothing is written.
    pub fn set(&mut self, index: usize, value: T) -> Result<(), ShmError> {
        todo!("check the index, store")
    }

    /// A copy of every element.
    pub fn to_vec(&self) -> Vec<T> {
        todo!("load every element")
    }
}

/// Python's `RawArray(typecode, n_or_items)`: a shared array without a lock. Each
/// element access is atomic by itself; nothing more is. Shared and cloned like
/// [`Value`].
#[derive(Clone)]
pub struct RawArray<T: TypeCode> {
    shared: Shared<T>,
}

impl<T: TypeCode> RawArray<T> {
    /// A new shared array of `len` zeros. Errors: [`ShmError::Os`].
    pub fn new(len: usize) -> Result<Self, ShmError> {
        todo!("map shared memory for `len` elements")
    }

    /// A new shared array holding a copy of `items`. Errors: [`ShmError::Os`].
    pub fn from_slice(items: &[T]) -> Result<Self, ShmError> {
        todo!("map shared memory and copy `items` into it")
    }

    /// The typecode, `T::CODE`.
    pub fn typecode(&self) -> char {
        todo!("return the typecode")
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        todo!("return the length")
    }

    /// True if the array has no element.
    pub fn is_empty(&self) -> bool {
        todo!("len() == 0")
    }

    /// Element `index` (no lock). Errors: [`ShmError::IndexOutOfRange`].
    pub fn get(&self, index: usize) -> Result<T, ShmError> {
        todo!("check the index, load")
    }

    /// Writes element `index` (no lock). Errors: [`ShmError::IndexOutOfRange`]; nothing
    /// is written.
    pub fn set(&self, index: usize, value: T) -> Result<(), ShmError> {
        todo!("check the index, store")
    }

    /// A copy of every element, read one by one (no lock: another process may write
    /// meanwhile).
    pub fn to_vec(&self) -> Vec<T> {
        todo!("load every element")
    }
}

/// A [`Value`] whose type was chosen at run time by a typecode, as in Python's
/// `Value(code)`.
#[derive(Clone)]
pub enum AnyValue {
    /// Typecode `'i'`.
    Int(Value<i32>),
    /// Typecode `'d'`.
    Double(Value<f64>),
    /// Typecode `'c'`.
    Char(Value<u8>),
}

impl AnyValue {
    /// A new zero value of the type of `code` (Python's `Value(code)`): `'i'` → `Int`,
    /// `'d'` → `Double`, `'c'` → `Char`.
    ///
    /// Errors: [`ShmError::UnknownTypecode`] for any other character (nothing is
    /// mapped); [`ShmError::Os`].
    pub fn from_typecode(code: char) -> Result<Self, ShmError> {
        todo!("match the typecode")
    }

    /// The typecode of the value's type.
    pub fn typecode(&self) -> char {
        todo!("the variant's typecode")
    }
}

/// An [`Array`] whose element type was chosen at run time by a typecode.
#[derive(Clone)]
pub enum AnyArray {
    /// Typecode `'i'`.
    Int(Array<i32>),
    /// Typecode `'d'`.
    Double(Array<f64>),
    /// Typecode `'c'`.
    Char(Array<u8>),
}

impl AnyArray {
    /// A new array of `len` zeros of the type of `code` (Python's `Array(code, len)`).
    ///
    /// Errors: [`ShmError::UnknownTypecode`] for a code other than `'i'`, `'d'`, `'c'`;
    /// [`ShmError::Os`].
    pub fn from_typecode(code: char, len: usize) -> Result<Self, ShmError> {
        todo!("match the typecode")
    }

    /// The typecode of the element type.
    pub fn typecode(&self) -> char {
        todo!("the variant's typecode")
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        todo!("the variant's length")
    }

    /// True if the array has no element.
    pub fn is_empty(&self) -> bool {
        todo!("len() == 0")
    }
}
