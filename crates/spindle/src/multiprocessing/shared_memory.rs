//! `multiprocessing.shared_memory`: [`SharedMemory`] and [`ShareableList`].
//!
//! Two kinds of segment, and what their lifetime is:
//!
//! * **Anonymous** ([`SharedMemory::new`], [`ShareableList::new`]): a sealed memfd that
//!   reaches other processes by descriptor (a fork closure, or a `Process`'s arguments). It is
//!   gone when its last user is gone — the kernel frees it with the last descriptor and
//!   mapping, so also when every user is SIGKILLed at once — and nobody can shrink it
//!   (`F_SEAL_SHRINK`), so a reader never dies of `SIGBUS`.
//! * **Named** ([`SharedMemory::create`], [`SharedMemory::attach`]): Python's attach-by-name,
//!   a file under `/dev/shm` (mode 0600) with a 64-byte header giving its size and creator.
//!   The creator's drop unlinks the name; if the creator died (SIGKILL), the next spindle user
//!   that attaches it, or creates any named segment, finds the creator gone and unlinks it.
//!   `attach` refuses a file shorter than its header says (a truncated or shrunk segment) with
//!   [`AttachError::Truncated`] instead of mapping it. **Limit:** a named file cannot be sealed,
//!   so a process of the same user that shrinks it *after* another attached it can still make
//!   that reader fault; hand segments to your own children anonymously to rule that out.
//!
//! No tracker process, no warnings at exit.
//!
//! ```
//! use spindle::multiprocessing::shared_memory::SharedMemory;
//! let mut shm = SharedMemory::create(1024)?;
//! shm.buf_mut()[..5].copy_from_slice(b"hello");
//! let other = SharedMemory::attach(shm.name().unwrap())?;
//! assert_eq!(&other.buf()[..5], b"hello");
//! # Ok::<(), spindle::Error>(())
//! ```

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::handles;
use crate::error::{Error, Result};
use crate::sys::futex::process_start_time;
use crate::sys::shm::{self, Mapping};

pub use crate::sys::shm::Plain;

thread_local! {
    /// Why the last descriptor could not be stashed on this thread: the codec's own error
    /// drops custom messages, so the encoders of this crate's channels read it back here.
    static STASH_ERROR: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The error of an encode that failed, with the reason a handle refused to travel when that
/// was the cause.
pub(crate) fn explain_encode_error(e: Error) -> Error {
    match STASH_ERROR.with(|s| s.borrow_mut().take()) {
        Some(why) => Error::Codec(format!("cannot encode: {why}")),
        None => e,
    }
}

fn stash(fd: BorrowedFd<'_>) -> Result<u32> {
    #[cfg(test)]
    if let Some(i) = transfer_tests::table::stash(fd) {
        return Ok(i);
    }
    handles::stash_fd(fd).inspect_err(|e| {
        STASH_ERROR.with(|s| *s.borrow_mut() = Some(e.to_string()));
    })
}

/// A descriptor inside a serde value: stashed into the call's descriptor table on encode,
/// taken back on decode (see `handles`).
pub(crate) fn serialize_fd<S: Serializer>(fd: BorrowedFd<'_>, s: S) -> Result<S::Ok, S::Error> {
    match stash(fd) {
        Ok(i) => s.serialize_u32(i),
        Err(e) => Err(S::Error::custom(e)),
    }
}

/// The decoding side of [`serialize_fd`].
pub(crate) fn deserialize_fd<'de, D: Deserializer<'de>>(d: D) -> Result<OwnedFd, D::Error> {
    let i = u32::deserialize(d)?;
    take(i).map_err(D::Error::custom)
}

fn take(i: u32) -> Result<OwnedFd> {
    #[cfg(test)]
    if let Some(fd) = transfer_tests::table::take(i) {
        return fd;
    }
    handles::take_fd(i)
}

/// An anonymous shared segment: a sealed memfd and this process's mapping of it. Cheap to
/// clone in-process (one mapping); travels to another process as its descriptor.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    inner: Arc<SegmentInner>,
}

#[derive(Debug)]
struct SegmentInner {
    // Field order: the mapping is dropped before the descriptor.
    map: Mapping,
    fd: OwnedFd,
}

impl Segment {
    /// A new zero-filled segment of `len` bytes.
    pub(crate) fn new(name: &str, len: usize) -> Result<Segment> {
        let fd = shm::memfd(name, len as u64)?;
        let map = Mapping::map(fd.as_fd(), len)?;
        Ok(Segment {
            inner: Arc::new(SegmentInner { map, fd }),
        })
    }

    /// Adopts a received descriptor: it must be a memfd sealed against shrinking and at least
    /// `len` bytes long (anything else is a protocol error, never a mapping that could fault).
    pub(crate) fn adopt(fd: OwnedFd, len: usize) -> Result<Segment> {
        if !shm::is_shrink_sealed(fd.as_fd()) {
            return Err(Error::Protocol(
                "a shared segment arrived that is not a shrink-sealed memfd".into(),
            ));
        }
        let map = Mapping::map(fd.as_fd(), len)
            .map_err(|e| Error::Protocol(format!("a shared segment arrived unusable: {e}")))?;
        Ok(Segment {
            inner: Arc::new(SegmentInner { map, fd }),
        })
    }

    /// This process's mapping.
    pub(crate) fn map(&self) -> &Mapping {
        &self.inner.map
    }

    /// The descriptor.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.inner.map.len()
    }

    /// Faults every page in, in this process.
    pub(crate) fn populate(&self) -> Result<()> {
        Ok(self.inner.map.populate()?)
    }

    /// A second, independent mapping of the same memory (its own addresses), for a handle
    /// that must not alias this one's references.
    pub(crate) fn remap(&self) -> Result<Segment> {
        let fd = self.inner.fd.try_clone()?;
        let map = Mapping::map(fd.as_fd(), self.len())?;
        Ok(Segment {
            inner: Arc::new(SegmentInner { map, fd }),
        })
    }
}

impl Serialize for Segment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let idx = stash(self.fd()).map_err(S::Error::custom)?;
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&idx)?;
        t.serialize_element(&(self.len() as u64))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Segment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Segment, D::Error> {
        let (idx, len): (u32, u64) = Deserialize::deserialize(d)?;
        let len = usize::try_from(len).map_err(D::Error::custom)?;
        if len == 0 || len > (1 << 40) {
            return Err(D::Error::custom(format!("bad segment length {len}")));
        }
        let fd = take(idx).map_err(D::Error::custom)?;
        Segment::adopt(fd, len).map_err(D::Error::custom)
    }
}

/// Why [`SharedMemory::attach`] (or [`ShareableList::attach`]) refused a segment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// No segment of that name exists.
    #[error("no shared-memory segment named {0:?}")]
    NotFound(String),
    /// The file is shorter than its header says: it was truncated or shrunk. Mapping it would
    /// fault (`SIGBUS`) on the missing pages.
    #[error("shared-memory segment {name:?} has {size} bytes, its header says {expected}")]
    Truncated {
        /// The segment's name.
        name: String,
        /// Its size now.
        size: u64,
        /// The size its header records.
        expected: u64,
    },
    /// The file is not a spindle segment (no header), or holds another element type.
    #[error("shared-memory segment {0:?} is not a spindle segment of this kind")]
    Foreign(String),
    /// The name is invalid, or the system refused.
    #[error("cannot attach shared memory: {0}")]
    Io(#[from] io::Error),
}

impl From<AttachError> for Error {
    fn from(e: AttachError) -> Error {
        match e {
            AttachError::Io(e) => Error::Io(e),
            AttachError::NotFound(n) => Error::Io(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no shared-memory segment named {n:?}"),
            )),
            other => Error::Protocol(other.to_string()),
        }
    }
}

const MAGIC: &[u8; 8] = b"SPNDLSHM";
/// The header of a named segment: magic, kind tag, element tag, user size, creator pid and
/// start time.
const HEADER: usize = 64;
const PREFIX: &str = "spindle-";

fn header(kind: u8, tag: u8, size: u64) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8] = kind;
    h[9] = tag;
    h[16..24].copy_from_slice(&size.to_le_bytes());
    let pid = crate::sys::proc::getpid();
    h[24..28].copy_from_slice(&pid.to_le_bytes());
    let start = process_start_time(pid).unwrap_or(0);
    h[32..40].copy_from_slice(&start.to_le_bytes());
    h
}

struct Parsed {
    kind: u8,
    tag: u8,
    size: u64,
    creator: u32,
    start: u64,
}

fn parse(h: &[u8; HEADER]) -> Option<Parsed> {
    if &h[..8] != MAGIC {
        return None;
    }
    let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap_or([0; 8]));
    Some(Parsed {
        kind: h[8],
        tag: h[9],
        size: u64_at(16),
        creator: u32::from_le_bytes(h[24..28].try_into().unwrap_or([0; 4])),
        start: u64_at(32),
    })
}

fn creator_alive(p: &Parsed) -> bool {
    p.creator != 0 && process_start_time(p.creator) == Some(p.start)
}

static NAMES: AtomicU64 = AtomicU64::new(0);

fn fresh_name() -> String {
    let mut r = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = io::Read::read_exact(&mut f, &mut r);
    }
    format!(
        "{PREFIX}{}-{}-{:016x}",
        crate::sys::proc::getpid(),
        NAMES.fetch_add(1, Ordering::Relaxed),
        u64::from_le_bytes(r)
    )
}

/// Unlinks, once per process, the named segments whose creator is dead (a creator killed
/// before its drop could unlink them).
fn sweep_orphans() {
    static SWEPT: Once = Once::new();
    SWEPT.call_once(|| {
        for name in shm::shm_names(PREFIX) {
            if let Ok(fd) = shm::shm_open(&name) {
                let mut h = [0u8; HEADER];
                if crate::sys::fd::read_exact_at(fd.as_fd(), &mut h, 0).is_ok() {
                    if let Some(p) = parse(&h) {
                        if !creator_alive(&p) {
                            let _ = shm::shm_unlink(&name);
                        }
                    }
                }
            }
        }
    });
}

const KIND_BYTES: u8 = 1;
const KIND_LIST: u8 = 2;

/// The mapping and identity of a named or anonymous segment.
#[derive(Debug)]
struct Block {
    map: Mapping,
    fd: OwnedFd,
    /// `Some` for a named segment.
    name: Option<String>,
    /// Where the user's bytes start.
    offset: usize,
    size: usize,
    /// The pid that created a named segment here (it unlinks on drop); 0 otherwise.
    creator: u32,
    unlinked: bool,
}

impl Block {
    /// The block a handle received from another process names: a named segment (its data
    /// after the header) or an anonymous sealed memfd, refused when it could still shrink.
    fn received(
        fd: OwnedFd,
        name: Option<String>,
        size: usize,
        what: &str,
    ) -> std::result::Result<Block, String> {
        let offset = if name.is_some() { HEADER } else { 0 };
        if name.is_none() && !shm::is_shrink_sealed(fd.as_fd()) {
            return Err(format!("an anonymous {what} arrived unsealed"));
        }
        let map = Mapping::map(fd.as_fd(), offset + size.max(1)).map_err(|e| e.to_string())?;
        Ok(Block {
            map,
            fd,
            name,
            offset,
            size,
            creator: 0,
            unlinked: false,
        })
    }

    fn anonymous(size: usize) -> Result<Block> {
        let fd = shm::memfd("spindle-shared-memory", size.max(1) as u64)?;
        let map = Mapping::map(fd.as_fd(), size.max(1))?;
        Ok(Block {
            map,
            fd,
            name: None,
            offset: 0,
            size,
            creator: 0,
            unlinked: true,
        })
    }

    fn create(name: Option<&str>, kind: u8, tag: u8, size: usize) -> Result<Block> {
        sweep_orphans();
        let name = match name {
            Some(n) => n.to_owned(),
            None => fresh_name(),
        };
        let total = HEADER + size.max(1);
        let fd = shm::shm_create(&name, total as u64)?;
        let map = match Mapping::map(fd.as_fd(), total) {
            Ok(m) => m,
            Err(e) => {
                let _ = shm::shm_unlink(&name);
                return Err(e.into());
            }
        };
        map.write(0, &header(kind, tag, size as u64));
        Ok(Block {
            map,
            fd,
            name: Some(name),
            offset: HEADER,
            size,
            creator: crate::sys::proc::getpid(),
            unlinked: false,
        })
    }

    fn attach(name: &str, kind: u8, tag: Option<u8>) -> std::result::Result<Block, AttachError> {
        let fd = match shm::shm_open(name) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(AttachError::NotFound(name.to_owned()))
            }
            Err(e) => return Err(AttachError::Io(e)),
        };
        let size = shm::size_of(fd.as_fd())?;
        if size < HEADER as u64 {
            return Err(AttachError::Foreign(name.to_owned()));
        }
        let mut h = [0u8; HEADER];
        crate::sys::fd::read_exact_at(fd.as_fd(), &mut h, 0)?;
        let p = parse(&h).ok_or_else(|| AttachError::Foreign(name.to_owned()))?;
        if p.kind != kind || tag.is_some_and(|t| t != p.tag) {
            return Err(AttachError::Foreign(name.to_owned()));
        }
        let expected = p.size.saturating_add(HEADER as u64).max(HEADER as u64 + 1);
        if size < expected || p.size > (1 << 40) {
            return Err(AttachError::Truncated {
                name: name.to_owned(),
                size,
                expected,
            });
        }
        let map = Mapping::map(fd.as_fd(), expected as usize)?;
        if !creator_alive(&p) {
            // The creator died before it could unlink the name: this user does it (the data
            // stays reachable through this mapping and the others already made).
            let _ = shm::shm_unlink(name);
        }
        Ok(Block {
            map,
            fd,
            name: Some(name.to_owned()),
            offset: HEADER,
            size: p.size as usize,
            creator: 0,
            unlinked: false,
        })
    }

    fn unlink(&mut self) -> Result<()> {
        if let (Some(name), false) = (&self.name, self.unlinked) {
            self.unlinked = true;
            match shm::shm_unlink(name) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if self.creator != 0 && self.creator == crate::sys::proc::getpid() {
            let _ = self.unlink();
        }
    }
}

/// A block of memory shared between processes: Python's
/// `multiprocessing.shared_memory.SharedMemory`.
///
/// `buf()` / `buf_mut()` give the bytes. Coordinating who writes what, and when, is the
/// user's (a [`Lock`](super::synchronize::Lock), a [`Barrier`](super::synchronize::Barrier),
/// disjoint ranges): bytes another process writes while this one reads them are seen torn.
///
/// See the [module docs](self) for the two kinds of segment and their lifetime.
pub struct SharedMemory {
    block: Block,
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.block.name)
            .field("size", &self.block.size)
            .finish()
    }
}

impl SharedMemory {
    /// An anonymous segment of `size` zero bytes, handed to other processes by descriptor.
    ///
    /// ```
    /// use spindle::multiprocessing::shared_memory::SharedMemory;
    /// let mut shm = SharedMemory::new(4096)?;
    /// shm.buf_mut()[0] = 7;
    /// assert_eq!(shm.buf()[0], 7);
    /// assert_eq!(shm.name(), None);
    /// # Ok::<(), spindle::Error>(())
    /// ```
    pub fn new(size: usize) -> Result<SharedMemory> {
        Ok(SharedMemory {
            block: Block::anonymous(size)?,
        })
    }

    /// A new named segment of `size` zero bytes with a fresh name (Python's
    /// `SharedMemory(create=True, size=...)`). Dropping it unlinks the name.
    pub fn create(size: usize) -> Result<SharedMemory> {
        Ok(SharedMemory {
            block: Block::create(None, KIND_BYTES, 0, size)?,
        })
    }

    /// A new named segment called `name` (Python's `SharedMemory(name, create=True, ...)`).
    /// Fails if the name exists.
    pub fn create_named(name: &str, size: usize) -> Result<SharedMemory> {
        Ok(SharedMemory {
            block: Block::create(Some(name), KIND_BYTES, 0, size)?,
        })
    }

    /// Attaches the named segment `name` (Python's `SharedMemory(name)`).
    ///
    /// # Errors
    ///
    /// [`AttachError::NotFound`], [`AttachError::Truncated`] when the file is shorter than its
    /// header records (nothing is mapped, so nothing can fault), [`AttachError::Foreign`].
    pub fn attach(name: &str) -> std::result::Result<SharedMemory, AttachError> {
        Ok(SharedMemory {
            block: Block::attach(name, KIND_BYTES, None)?,
        })
    }

    /// The segment's name (`None` for an anonymous one).
    pub fn name(&self) -> Option<&str> {
        self.block.name.as_deref()
    }

    /// The usable size in bytes.
    pub fn size(&self) -> usize {
        self.block.size
    }

    /// The bytes.
    pub fn buf(&self) -> &[u8] {
        self.block.map.bytes(self.block.offset, self.block.size)
    }

    /// The bytes, to write.
    pub fn buf_mut(&mut self) -> &mut [u8] {
        self.block.map.bytes_mut(self.block.offset, self.block.size)
    }

    /// A second handle on the same memory with its own mapping (a fork closure takes one
    /// along while this process keeps its own). For a named segment the new handle is an
    /// attached user: it does not unlink the name when dropped.
    pub fn share(&self) -> Result<SharedMemory> {
        let fd = self.block.fd.try_clone()?;
        let map = Mapping::map(fd.as_fd(), self.block.map.len())?;
        Ok(SharedMemory {
            block: Block {
                map,
                fd,
                name: self.block.name.clone(),
                offset: self.block.offset,
                size: self.block.size,
                creator: 0,
                unlinked: self.block.unlinked,
            },
        })
    }

    /// Faults every page of the segment in, in this process (`MADV_POPULATE_WRITE`), so that
    /// the accesses that follow run at memory speed. Each process (a forked child too: it
    /// shares the pages, not their page-table entries) pays the faults once, the first time it
    /// touches a page; this moves that cost to a moment of its choosing, as a worker does
    /// before the work it is timed on.
    pub fn populate(&self) -> Result<()> {
        Ok(self.block.map.populate()?)
    }

    /// Removes the name now (Python's `unlink()`); attached users keep their mapping.
    /// Nothing happens for an anonymous segment or a name already removed.
    pub fn unlink(&mut self) -> Result<()> {
        self.block.unlink()
    }

    /// Unmaps and closes this handle (Python's `close()`); the same as dropping it.
    pub fn close(self) {}
}

impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let idx = stash(self.block.fd.as_fd()).map_err(S::Error::custom)?;
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&idx)?;
        t.serialize_element(&(self.block.size as u64))?;
        t.serialize_element(&self.block.name)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedMemory, D::Error> {
        let (idx, size, name): (u32, u64, Option<String>) = Deserialize::deserialize(d)?;
        let fd = take(idx).map_err(D::Error::custom)?;
        let size = usize::try_from(size).map_err(D::Error::custom)?;
        Ok(SharedMemory {
            block: Block::received(fd, name, size, "segment").map_err(D::Error::custom)?,
        })
    }
}

/// A fixed-length list of plain values in shared memory: Python's `ShareableList`, for one
/// element type (`u8`…`u64`, `i8`…`i64`, `f32`, `f64`, `usize`, `isize`).
///
/// Element reads and writes are copies; an attach checks the element type.
///
/// ```
/// use spindle::multiprocessing::shared_memory::ShareableList;
/// let list = ShareableList::create(&[1.5f64, 2.5, 4.0])?;
/// let other = ShareableList::<f64>::attach(list.name().unwrap())?;
/// other.set(2, 8.0)?;
/// assert_eq!(list.to_vec(), [1.5, 2.5, 8.0]);
/// # Ok::<(), spindle::Error>(())
/// ```
pub struct ShareableList<T: Plain> {
    block: Block,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Plain> fmt::Debug for ShareableList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareableList")
            .field("name", &self.block.name)
            .field("values", &self.to_vec())
            .finish()
    }
}

impl<T: Plain> ShareableList<T> {
    fn fill(block: Block, values: &[T]) -> ShareableList<T> {
        let list = ShareableList {
            block,
            len: values.len(),
            _t: PhantomData,
        };
        list.block
            .map
            .slice_mut::<T>(list.block.offset, list.len)
            .copy_from_slice(values);
        list
    }

    /// An anonymous list holding `values`, handed to other processes by descriptor.
    pub fn new(values: &[T]) -> Result<ShareableList<T>> {
        let block = Block::anonymous(std::mem::size_of_val(values))?;
        Ok(Self::fill(block, values))
    }

    /// A named list holding `values`, with a fresh name.
    pub fn create(values: &[T]) -> Result<ShareableList<T>> {
        let block = Block::create(None, KIND_LIST, T::TAG, std::mem::size_of_val(values))?;
        Ok(Self::fill(block, values))
    }

    /// Attaches the named list `name`; its element type must be `T`.
    pub fn attach(name: &str) -> std::result::Result<ShareableList<T>, AttachError> {
        let block = Block::attach(name, KIND_LIST, Some(T::TAG))?;
        let len = block.size / std::mem::size_of::<T>();
        Ok(ShareableList {
            block,
            len,
            _t: PhantomData,
        })
    }

    /// The name (`None` for an anonymous list).
    pub fn name(&self) -> Option<&str> {
        self.block.name.as_deref()
    }

    /// How many elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn offset(&self, i: usize) -> Result<usize> {
        if i >= self.len {
            return Err(Error::InvalidArgument(format!(
                "index {i} out of range for a list of {}",
                self.len
            )));
        }
        Ok(self.block.offset + i * std::mem::size_of::<T>())
    }

    /// Element `i`.
    pub fn get(&self, i: usize) -> Result<T> {
        let off = self.offset(i)?;
        Ok(self.block.map.load::<T>(off))
    }

    /// Sets element `i`.
    pub fn set(&self, i: usize, value: T) -> Result<()> {
        let off = self.offset(i)?;
        self.block.map.store::<T>(off, value);
        Ok(())
    }

    /// A copy of every element.
    pub fn to_vec(&self) -> Vec<T> {
        let size = std::mem::size_of::<T>();
        (0..self.len)
            .map(|i| self.block.map.load::<T>(self.block.offset + i * size))
            .collect()
    }

    /// Removes the name now (see [`SharedMemory::unlink`]).
    pub fn unlink(&mut self) -> Result<()> {
        self.block.unlink()
    }
}

impl<T: Plain> Serialize for ShareableList<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let idx = stash(self.block.fd.as_fd()).map_err(S::Error::custom)?;
        let mut t = s.serialize_tuple(4)?;
        t.serialize_element(&idx)?;
        t.serialize_element(&(self.len as u64))?;
        t.serialize_element(&T::TAG)?;
        t.serialize_element(&self.block.name)?;
        t.end()
    }
}

impl<'de, T: Plain> Deserialize<'de> for ShareableList<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ShareableList<T>, D::Error> {
        let (idx, len, tag, name): (u32, u64, u8, Option<String>) = Deserialize::deserialize(d)?;
        let fd = take(idx).map_err(D::Error::custom)?;
        if tag != T::TAG {
            return Err(D::Error::custom("a ShareableList of another element type"));
        }
        let len = usize::try_from(len).map_err(D::Error::custom)?;
        let size = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| D::Error::custom("a ShareableList's length overflows"))?;
        Ok(ShareableList {
            block: Block::received(fd, name, size, "list").map_err(D::Error::custom)?,
            len,
            _t: PhantomData,
        })
    }
}

#[cfg(test)]
#[path = "transfer_tests.rs"]
mod transfer_tests;
