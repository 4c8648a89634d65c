//! `multiprocessing.sharedctypes`: [`Value`] and [`Array`] of plain-old-data elements in
//! shared memory, with an optional process-shared lock.
//!
//! The element types are the primitive integers and floats ([`Plain`]). A [`Value`] is read
//! and written with single atomic accesses (never torn); for integers it also offers atomic
//! read-modify-write (`fetch_add`, `compare_exchange`, ...), which needs no lock at all. An
//! [`Array`] is a slice: a process reads it through `&` and writes it through `&mut` of its own
//! handle, and coordinates with other processes through [`Array::get_lock`] (or a barrier, or
//! disjoint ranges).
//!
//! ```
//! use spindle::multiprocessing::sharedctypes::Value;
//! use spindle::multiprocessing::Builder;
//! let counter = Value::new(0u64)?;
//! let c = counter.clone();
//! let p = Builder::new().fork_target(move || { c.fetch_add(5); });
//! p.start()?;
//! p.join()?;
//! assert_eq!(counter.get(), 5);
//! # Ok::<(), spindle::Error>(())
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::shared_memory::Segment;
use super::synchronize::RLock;
use crate::error::{Error, Result};

pub use crate::sys::shm::Plain;

/// One plain value in shared memory: Python's `multiprocessing.Value` (with a lock) or
/// `RawValue` ([`Value::new_raw`]). Clones share the value.
#[derive(Clone, Serialize)]
pub struct Value<T: Plain> {
    seg: Segment,
    lock: Option<RLock>,
    #[serde(skip)]
    _t: PhantomData<T>,
}

impl<'de, T: Plain> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (seg, lock): (Segment, Option<RLock>) = Deserialize::deserialize(d)?;
        if seg.len() < std::mem::size_of::<T>() {
            return Err(D::Error::custom("a Value's segment is too small"));
        }
        Ok(Value {
            seg,
            lock,
            _t: PhantomData,
        })
    }
}

impl<T: Plain> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value").field("value", &self.get()).finish()
    }
}

impl<T: Plain> Value<T> {
    /// A shared value with its own [`RLock`] (Python's default `lock=True`).
    pub fn new(value: T) -> Result<Value<T>> {
        Self::build(value, Some(RLock::new()?))
    }

    /// A shared value without a lock (Python's `RawValue` / `lock=False`).
    pub fn new_raw(value: T) -> Result<Value<T>> {
        Self::build(value, None)
    }

    fn build(value: T, lock: Option<RLock>) -> Result<Value<T>> {
        let seg = Segment::new("spindle-value", 64)?;
        seg.map().store(0, value);
        Ok(Value {
            seg,
            lock,
            _t: PhantomData,
        })
    }

    /// The value (one atomic load).
    pub fn get(&self) -> T {
        self.seg.map().load(0)
    }

    /// Sets the value (one atomic store).
    pub fn set(&self, value: T) {
        self.seg.map().store(0, value)
    }

    /// The lock that comes with the value (Python's `get_lock()`); `None` for a raw value.
    ///
    /// ```
    /// use spindle::multiprocessing::sharedctypes::Value;
    /// let v = Value::new(1.5f64)?;
    /// {
    ///     let _g = v.get_lock().unwrap().lock().expect("free");
    ///     v.set(v.get() * 2.0);
    /// }
    /// assert_eq!(v.get(), 3.0);
    /// # Ok::<(), spindle::Error>(())
    /// ```
    pub fn get_lock(&self) -> Option<&RLock> {
        self.lock.as_ref()
    }
}

macro_rules! atomic_value {
    ($($t:ty => $word:ident),*) => {$(
        impl Value<$t> {
            /// Adds `n` atomically (wrapping); returns the previous value. Needs no lock.
            pub fn fetch_add(&self, n: $t) -> $t {
                self.seg.map().$word(0).fetch_add(n as _, Ordering::SeqCst) as $t
            }
            /// Subtracts `n` atomically (wrapping); returns the previous value.
            pub fn fetch_sub(&self, n: $t) -> $t {
                self.seg.map().$word(0).fetch_sub(n as _, Ordering::SeqCst) as $t
            }
            /// Stores `n` atomically; returns the previous value.
            pub fn swap(&self, n: $t) -> $t {
                self.seg.map().$word(0).swap(n as _, Ordering::SeqCst) as $t
            }
            /// Stores `new` if the value is `current`; returns the previous value, as
            /// `Ok` when it was `current`.
            pub fn compare_exchange(&self, current: $t, new: $t) -> std::result::Result<$t, $t> {
                self.seg
                    .map()
                    .$word(0)
                    .compare_exchange(current as _, new as _, Ordering::SeqCst, Ordering::SeqCst)
                    .map(|v| v as $t)
                    .map_err(|v| v as $t)
            }
        }
    )*};
}
atomic_value!(u32 => atomic_u32, i32 => atomic_u32, u64 => atomic_u64, i64 => atomic_u64,
    usize => atomic_u64, isize => atomic_u64);

/// A fixed-length array of plain values in shared memory: Python's `multiprocessing.Array`
/// (with a lock) or `RawArray` ([`Array::new_raw`]).
///
/// Each process holds its own handle (one is made per process when it travels); within a
/// process, `&Array` reads and `&mut Array` writes, as with a `Vec`.
///
/// ```
/// use spindle::multiprocessing::sharedctypes::Array;
/// let mut a = Array::new(&[1u32, 2, 3])?;
/// a.as_mut_slice()[0] = 10;
/// assert_eq!(a.as_slice().iter().sum::<u32>(), 15);
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Serialize)]
pub struct Array<T: Plain> {
    seg: Segment,
    len: usize,
    lock: Option<RLock>,
    #[serde(skip)]
    _t: PhantomData<T>,
}

impl<'de, T: Plain> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (seg, len, lock): (Segment, usize, Option<RLock>) = Deserialize::deserialize(d)?;
        let need = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| D::Error::custom("an Array's length overflows"))?;
        if seg.len() < need.max(1) {
            return Err(D::Error::custom(
                "an Array's segment is smaller than its length",
            ));
        }
        Ok(Array {
            seg,
            len,
            lock,
            _t: PhantomData,
        })
    }
}

impl<T: Plain> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array").field("len", &self.len).finish()
    }
}

impl<T: Plain> Array<T> {
    /// A shared array holding `values`, with its own [`RLock`].
    pub fn new(values: &[T]) -> Result<Array<T>> {
        let mut a = Self::zeroed_with(values.len(), Some(RLock::new()?))?;
        a.as_mut_slice().copy_from_slice(values);
        Ok(a)
    }

    /// A shared array of `len` zeros (Python's `Array(typecode, size)`), with its own lock.
    pub fn zeroed(len: usize) -> Result<Array<T>> {
        Self::zeroed_with(len, Some(RLock::new()?))
    }

    /// A shared array holding `values`, without a lock (Python's `RawArray`).
    pub fn new_raw(values: &[T]) -> Result<Array<T>> {
        let mut a = Self::zeroed_with(values.len(), None)?;
        a.as_mut_slice().copy_from_slice(values);
        Ok(a)
    }

    fn zeroed_with(len: usize, lock: Option<RLock>) -> Result<Array<T>> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| Error::InvalidArgument(format!("an array of {len} is too large")))?;
        Ok(Array {
            seg: Segment::new("spindle-array", bytes.max(1))?,
            len,
            lock,
            _t: PhantomData,
        })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        self.seg.map().slice(0, self.len)
    }

    /// The elements, to write.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.seg.map().slice_mut(0, self.len)
    }

    /// A second handle on the same array, with its own mapping (for a fork closure to take
    /// along while this process keeps its handle).
    pub fn share(&self) -> Result<Array<T>> {
        Ok(Array {
            seg: self.seg.remap()?,
            len: self.len,
            lock: self.lock.clone(),
            _t: PhantomData,
        })
    }

    /// Faults every page of the array in, in this process (see
    /// [`SharedMemory::populate`](super::shared_memory::SharedMemory::populate)).
    pub fn populate(&self) -> Result<()> {
        self.seg.populate()
    }

    /// The lock that comes with the array; `None` for a raw array.
    pub fn get_lock(&self) -> Option<&RLock> {
        self.lock.as_ref()
    }
}
