//! Reference solution of exercise 5, `value_array`: Python's `multiprocessing.Value`,
//! `Array`, `RawValue` and `RawArray` on a `MAP_SHARED` mapping of a `memfd`, each object
//! with its own lock (a shared futex in the same mapping).
//!
//! - `shm`: the mapping (lock word + elements), reached only through atomics.
//! - `futex`: the cross-process lock.
//!
//! Handles are used across `fork` as they are: a child uses its copy, which points at
//! the same pages and the same lock word as the parent's.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicU64, Ordering};

mod futex;
mod shm;

use futex::Held;
use shm::Shared;

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

/// Python's `Value(typecode, v)`: one `T` in shared memory with its own lock.
#[derive(Clone)]
pub struct Value<T: TypeCode> {
    shared: Shared<T>,
}

impl<T: TypeCode> Value<T> {
    /// A new shared value holding `value`.
    pub fn new(value: T) -> Result<Self, ShmError> {
        let shared = Shared::new(1)?;
        shared.store(0, value);
        Ok(Self { shared })
    }

    /// The typecode, `T::CODE`.
    pub fn typecode(&self) -> char {
        T::CODE
    }

    /// Reads the value under the lock.
    pub fn get(&self) -> T {
        self.get_lock().get()
    }

    /// Writes the value under the lock.
    pub fn set(&self, value: T) {
        self.get_lock().set(value)
    }

    /// Replaces the value by `f(value)` under one hold of the lock.
    pub fn update(&self, f: impl FnOnce(T) -> T) -> T {
        let mut guard = self.get_lock();
        // A panic in `f` unwinds through `guard`, whose drop releases the lock; the
        // store below is never reached, so the value is unchanged.
        let new = f(guard.get());
        guard.set(new);
        new
    }

    /// Takes this value's lock until the guard is dropped.
    pub fn get_lock(&self) -> ValueGuard<'_, T> {
        ValueGuard {
            _held: self.shared.lock(),
            value: self,
        }
    }
}

/// The lock of a [`Value`], held.
pub struct ValueGuard<'a, T: TypeCode> {
    value: &'a Value<T>,
    // Dropping the guard drops this, which releases the lock.
    _held: Held<'a>,
}

impl<T: TypeCode> ValueGuard<'_, T> {
    /// Reads the value.
    pub fn get(&self) -> T {
        self.value.shared.load(0)
    }

    /// Writes the value.
    pub fn set(&mut self, value: T) {
        self.value.shared.store(0, value)
    }
}

/// Python's `RawValue(typecode, v)`: one `T` in shared memory, no lock.
#[derive(Clone)]
pub struct RawValue<T: TypeCode> {
    shared: Shared<T>,
}

impl<T: TypeCode> RawValue<T> {
    /// A new shared value holding `value`.
    pub fn new(value: T) -> Result<Self, ShmError> {
        let shared = Shared::new(1)?;
        shared.store(0, value);
        Ok(Self { shared })
    }

    /// The typecode, `T::CODE`.
    pub fn typecode(&self) -> char {
        T::CODE
    }

    /// Reads the value (no lock).
    pub fn get(&self) -> T {
        self.shared.load(0)
    }

    /// Writes the value (no lock).
    pub fn set(&self, value: T) {
        self.shared.store(0, value)
    }
}

/// Python's `Array(typecode, n_or_items)`: a shared array with its own lock.
#[derive(Clone)]
pub struct Array<T: TypeCode> {
    shared: Shared<T>,
}

impl<T: TypeCode> Array<T> {
    /// A new shared array of `len` zeros.
    pub fn new(len: usize) -> Result<Self, ShmError> {
        Ok(Self {
            shared: Shared::new(len)?,
        })
    }

    /// A new shared array holding a copy of `items`.
    pub fn from_slice(items: &[T]) -> Result<Self, ShmError> {
        // Nobody else can see the mapping yet: no lock needed to fill it.
        Ok(Self {
            shared: Shared::from_slice(items)?,
        })
    }

    /// The typecode, `T::CODE`.
    pub fn typecode(&self) -> char {
        T::CODE
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// True if the array has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `index`, read under the lock.
    pub fn get(&self, index: usize) -> Result<T, ShmError> {
        // Checked before locking: a bad index never waits for another process.
        self.shared.check(index)?;
        self.get_lock().get(index)
    }

    /// Writes element `index` under the lock.
    pub fn set(&self, index: usize, value: T) -> Result<(), ShmError> {
        self.shared.check(index)?;
        self.get_lock().set(index, value)
    }

    /// A copy of every element, under one hold of the lock.
    pub fn to_vec(&self) -> Vec<T> {
        self.get_lock().to_vec()
    }

    /// Lets `f` change a copy of `range` and writes it back, all under the lock.
    pub fn update_slice<R>(
        &self,
        range: Range<usize>,
        f: impl FnOnce(&mut [T]) -> R,
    ) -> Result<R, ShmError> {
        self.shared.check_range(&range)?;
        let _held = self.shared.lock();
        // `f` works on a private copy: no `&mut` to memory another process may read.
        let mut buffer = self.shared.load_range(range.clone());
        let result = f(&mut buffer);
        for (index, value) in range.zip(buffer) {
            self.shared.store(index, value);
        }
        Ok(result)
    }

    /// Takes this array's lock until the guard is dropped.
    pub fn get_lock(&self) -> ArrayGuard<'_, T> {
        ArrayGuard {
            _held: self.shared.lock(),
            array: self,
        }
    }
}

/// The lock of an [`Array`], held.
pub struct ArrayGuard<'a, T: TypeCode> {
    array: &'a Array<T>,
    _held: Held<'a>,
}

impl<T: TypeCode> ArrayGuard<'_, T> {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.array.len()
    }

    /// True if the array has no element.
    pub fn is_empty(&self) -> bool {
        self.array.is_empty()
    }

    /// Element `index`.
    pub fn get(&self, index: usize) -> Result<T, ShmError> {
        self.array.shared.check(index)?;
        Ok(self.array.shared.load(index))
    }

    /// Writes element `index`.
    pub fn set(&mut self, index: usize, value: T) -> Result<(), ShmError> {
        self.array.shared.check(index)?;
        self.array.shared.store(index, value);
        Ok(())
    }

    /// A copy of every element.
    pub fn to_vec(&self) -> Vec<T> {
        self.array.shared.load_range(0..self.len())
    }
}

/// Python's `RawArray(typecode, n_or_items)`: a shared array, no lock.
#[derive(Clone)]
pub struct RawArray<T: TypeCode> {
    shared: Shared<T>,
}

impl<T: TypeCode> RawArray<T> {
    /// A new shared array of `len` zeros.
    pub fn new(len: usize) -> Result<Self, ShmError> {
        Ok(Self {
            shared: Shared::new(len)?,
        })
    }

    /// A new shared array holding a copy of `items`.
    pub fn from_slice(items: &[T]) -> Result<Self, ShmError> {
        Ok(Self {
            shared: Shared::from_slice(items)?,
        })
    }

    /// The typecode, `T::CODE`.
    pub fn typecode(&self) -> char {
        T::CODE
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// True if the array has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `index` (no lock).
    pub fn get(&self, index: usize) -> Result<T, ShmError> {
        self.shared.check(index)?;
        Ok(self.shared.load(index))
    }

    /// Writes element `index` (no lock).
    pub fn set(&self, index: usize, value: T) -> Result<(), ShmError> {
        self.shared.check(index)?;
        self.shared.store(index, value);
        Ok(())
    }

    /// A copy of every element, read one by one.
    pub fn to_vec(&self) -> Vec<T> {
        self.shared.load_range(0..self.len())
    }
}

/// A [`Value`] whose type was chosen at run time by a typecode.
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
    /// A new zero value of the type of `code`.
    pub fn from_typecode(code: char) -> Result<Self, ShmError> {
        Ok(match code {
            i32::CODE => AnyValue::Int(Value::new(0)?),
            f64::CODE => AnyValue::Double(Value::new(0.0)?),
            u8::CODE => AnyValue::Char(Value::new(0)?),
            other => return Err(ShmError::UnknownTypecode(other)),
        })
    }

    /// The typecode of the value's type.
    pub fn typecode(&self) -> char {
        match self {
            AnyValue::Int(v) => v.typecode(),
            AnyValue::Double(v) => v.typecode(),
            AnyValue::Char(v) => v.typecode(),
        }
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
    /// A new array of `len` zeros of the type of `code`.
    pub fn from_typecode(code: char, len: usize) -> Result<Self, ShmError> {
        Ok(match code {
            i32::CODE => AnyArray::Int(Array::new(len)?),
            f64::CODE => AnyArray::Double(Array::new(len)?),
            u8::CODE => AnyArray::Char(Array::new(len)?),
            other => return Err(ShmError::UnknownTypecode(other)),
        })
    }

    /// The typecode of the element type.
    pub fn typecode(&self) -> char {
        match self {
            AnyArray::Int(a) => a.typecode(),
            AnyArray::Double(a) => a.typecode(),
            AnyArray::Char(a) => a.typecode(),
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            AnyArray::Int(a) => a.len(),
            AnyArray::Double(a) => a.len(),
            AnyArray::Char(a) => a.len(),
        }
    }

    /// True if the array has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
