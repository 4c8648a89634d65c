//! Shared memory: sealed memfds, named segments under `/dev/shm`, and shared mappings.
//!
//! A [`Mapping`] is a `MAP_SHARED` view of a descriptor. Everything spindle keeps in it (futex
//! words, counters, ring indices) is reached through [`Mapping::atomic_u32`] /
//! [`Mapping::atomic_u64`] (aligned, bounds-checked at the call) or copied in and out with
//! [`Mapping::read`] / [`Mapping::write`]. Byte slices ([`Mapping::bytes`],
//! [`Mapping::bytes_mut`]) are handed out for users' buffers and for queue records, which are
//! encoded into free bytes reserved under the producers' mutex and decoded from published bytes
//! under the consumers' mutex: no other process writes them while the protocol is kept, and a
//! process that breaks it can only make them garbage (see `docs/unsafe.md`).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::cvt;

/// A new anonymous shared-memory file of `size` bytes (close-on-exec), sealed so that nobody
/// can shrink or grow it (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`): a process that maps
/// it can never be hit by `SIGBUS` because another made it smaller.
pub(crate) fn memfd(name: &str, size: u64) -> io::Result<OwnedFd> {
    let cname = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: cname is a valid NUL-terminated string; the flags are valid memfd flags.
    let fd = cvt(unsafe {
        libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: memfd_create returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let file = File::from(fd);
    file.set_len(size)?;
    let fd = OwnedFd::from(file);
    // SAFETY: F_ADD_SEALS on a memfd created with MFD_ALLOW_SEALING only changes its seals.
    cvt(unsafe {
        libc::fcntl(
            fd.as_raw_fd(),
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
        )
    })?;
    Ok(fd)
}

/// A new memfd holding exactly `data`, sealed against any change (write, shrink, grow): a
/// payload handed to another process that nobody can alter or cut short afterwards.
pub(crate) fn sealed_copy(data: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: the name is a valid NUL-terminated string; the flags are valid memfd flags.
    let fd = cvt(unsafe {
        libc::memfd_create(
            c"spindle-payload".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    })?;
    // SAFETY: memfd_create returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = File::from(fd);
    io::Write::write_all(&mut file, data)?;
    let fd = OwnedFd::from(file);
    // SAFETY: F_ADD_SEALS on a memfd created with MFD_ALLOW_SEALING only changes its seals;
    // no writable mapping of it exists (it was written with write()).
    cvt(unsafe {
        libc::fcntl(
            fd.as_raw_fd(),
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL,
        )
    })?;
    Ok(fd)
}

/// Whether `fd` is a memfd sealed against shrinking and writing (what [`sealed_copy`] makes).
pub(crate) fn is_sealed_payload(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GET_SEALS only reads the descriptor's seals (EINVAL for a non-memfd).
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    let want = libc::F_SEAL_SHRINK | libc::F_SEAL_WRITE;
    seals >= 0 && seals & want == want
}

/// Whether `fd` is a memfd sealed against shrinking (what [`memfd`] makes).
pub(crate) fn is_shrink_sealed(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GET_SEALS only reads the descriptor's seals (EINVAL for a non-memfd).
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & libc::F_SEAL_SHRINK != 0
}

/// The size of the file behind `fd` (`fstat`).
pub(crate) fn size_of(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let file = File::from(fd.try_clone_to_owned()?);
    Ok(file.metadata()?.len())
}

fn shm_path(name: &str) -> io::Result<std::path::PathBuf> {
    if name.is_empty()
        || name.len() > 200
        || name.contains('/')
        || name.contains('\0')
        || name == "."
        || name == ".."
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid shared-memory name {name:?}"),
        ));
    }
    Ok(std::path::Path::new("/dev/shm").join(name))
}

/// Creates the named segment `/dev/shm/NAME` of `size` bytes, readable and writable by this
/// user only; fails if it exists.
pub(crate) fn shm_create(name: &str, size: u64) -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(shm_path(name)?)?;
    file.set_len(size)?;
    Ok(OwnedFd::from(file))
}

/// Opens the existing named segment `/dev/shm/NAME`.
pub(crate) fn shm_open(name: &str) -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(shm_path(name)?)?;
    Ok(OwnedFd::from(file))
}

/// Removes the name `/dev/shm/NAME` (mappings stay valid until unmapped).
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    std::fs::remove_file(shm_path(name)?)
}

/// The names under `/dev/shm` that start with `prefix`.
pub(crate) fn shm_names(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// A `MAP_SHARED`, read-write mapping of a whole descriptor, unmapped on drop.
///
/// Robust mutexes living in a mapping are linked into glibc's per-thread robust list while
/// they are held; unmapping such a mapping would leave the list pointing at unmapped memory.
/// So the mapping remembers where its mutexes are ([`Mapping::note_robust`]), and when it is
/// dropped while one of them is held by a thread of this process (a guard leaked with
/// `mem::forget`) it is left mapped for ever instead. The check reads the futex word, whose
/// low bits hold the owner's thread id by the kernel's robust-futex protocol.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// Bit `i`: a robust mutex lives at offset `64 * i`.
    robust: AtomicU64,
}

// SAFETY: the mapping is plain shared memory; every access goes through atomics or explicit
// bounds-checked copies, which are valid from any thread.
unsafe impl Send for Mapping {}
// SAFETY: `&Mapping` only allows atomic access and bounds-checked copies, which are valid
// from any thread at once.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `fd` (which must be at least that long: checked with
    /// `fstat` here, so that no access can fault).
    pub(crate) fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map zero bytes",
            ));
        }
        let size = size_of(fd)?;
        if size < len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("segment has {size} bytes, {len} needed"),
            ));
        }
        // SAFETY: a fresh shared mapping chosen by the kernel; fd is a valid open descriptor.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?,
            len,
            robust: AtomicU64::new(0),
        })
    }

    /// The mapping's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn check(&self, offset: usize, size: usize, align: usize) {
        assert!(
            offset % align == 0 && offset.checked_add(size).is_some_and(|e| e <= self.len),
            "offset {offset} (+{size}) outside the {}-byte mapping",
            self.len
        );
    }

    /// The `u32` at `offset` (aligned to 4, inside the mapping: a violation is spindle's own
    /// bug and panics).
    pub(crate) fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        self.check(offset, 4, 4);
        // SAFETY: in bounds and aligned (checked); the memory lives as long as `self`, and
        // AtomicU32 has the layout of u32, valid for every bit pattern.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU32>() }
    }

    /// The `u64` at `offset` (aligned to 8, inside the mapping).
    pub(crate) fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        self.check(offset, 8, 8);
        // SAFETY: in bounds and aligned (checked); the memory lives as long as `self`, and
        // AtomicU64 has the layout of u64, valid for every bit pattern.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// Copies `buf.len()` bytes at `offset` out of the mapping. Another process may write
    /// them at the same time: the copy then holds whatever bytes were there, which the caller
    /// validates (it never trusts them to be consistent).
    pub(crate) fn read(&self, offset: usize, buf: &mut [u8]) {
        self.check(offset, buf.len(), 1);
        // SAFETY: in bounds (checked); `buf` is private memory that cannot overlap the mapping
        // (it is a Rust slice we hold exclusively, the mapping is never handed out mutably).
        unsafe {
            ptr::copy_nonoverlapping(self.ptr.as_ptr().add(offset), buf.as_mut_ptr(), buf.len())
        }
    }

    /// Copies `data` into the mapping at `offset`.
    pub(crate) fn write(&self, offset: usize, data: &[u8]) {
        self.check(offset, data.len(), 1);
        // SAFETY: in bounds (checked); `data` is a private slice that cannot overlap the
        // mapping's bytes spindle writes (regions reserved under the structure's own lock).
        unsafe {
            ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len())
        }
    }

    /// A raw pointer to `offset` (for the robust mutex, which glibc reads and writes).
    pub(crate) fn raw(&self, offset: usize, size: usize, align: usize) -> *mut u8 {
        self.check(offset, size, align);
        // SAFETY: in bounds (checked).
        unsafe { self.ptr.as_ptr().add(offset) }
    }

    /// The bytes `[offset, offset + len)` as a slice. Another process writing them at the same
    /// time is outside what Rust's memory model describes (the same caveat as any shared file
    /// mapping); spindle's own structures read only published records through it.
    pub(crate) fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        self.check(offset, len, 1);
        // SAFETY: in bounds (checked); lives as long as `self`; u8 is valid for every bit
        // pattern. Writes by other processes: see above.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) }
    }

    /// The bytes `[offset, offset + len)` as a mutable slice: for a user's handle held through
    /// `&mut`, or for a region reserved under a structure's own mutex (queue records).
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn bytes_mut(&self, offset: usize, len: usize) -> &mut [u8] {
        self.check(offset, len, 1);
        // SAFETY: in bounds (checked); callers reach this only through `&mut` of the public
        // handle that owns this mapping, or for a region reserved under a process-shared mutex
        // that no reader looks at yet, so no other reference into these bytes exists in this
        // process; other processes: see `bytes`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset), len) }
    }

    /// Faults every page of the mapping in now (`MADV_POPULATE_WRITE`, Linux 5.14), so that
    /// later accesses from this process do not fault. A mapping inherited through `fork()`
    /// shares the pages but not their page-table entries, so each process pays the faults once.
    pub(crate) fn populate(&self) -> io::Result<()> {
        const MADV_POPULATE_WRITE: libc::c_int = 23;
        // SAFETY: the range is exactly this mapping; the advice only faults pages in (writable
        // shared pages, already allocated or zero-filled), it changes no content.
        cvt(unsafe { libc::madvise(self.ptr.as_ptr().cast(), self.len, MADV_POPULATE_WRITE) })?;
        Ok(())
    }

    /// Records that a robust mutex lives at `offset` (a multiple of 64 below 4096: spindle's
    /// layouts put them there), for the check on drop.
    pub(crate) fn note_robust(&self, offset: usize) {
        assert!(
            offset % 64 == 0 && offset < 64 * 64,
            "robust mutex at offset {offset}"
        );
        let bit = 1u64 << (offset / 64);
        if self.robust.load(Ordering::Relaxed) & bit == 0 {
            self.robust.fetch_or(bit, Ordering::Relaxed);
        }
    }

    /// Whether a robust mutex of this mapping is held by a thread of this process.
    fn robust_held_here(&self) -> bool {
        let bits = self.robust.load(Ordering::Relaxed);
        (0..64).filter(|i| bits & (1 << i) != 0).any(|i| {
            // FUTEX_TID_MASK: the owner's thread id, 0 when free.
            let owner = self.atomic_u32(i * 64).load(Ordering::Relaxed) & 0x3fff_ffff;
            owner != 0 && std::path::Path::new(&format!("/proc/self/task/{owner}")).exists()
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.robust_held_here() {
            // A robust mutex inside is still held by a thread of this process (a leaked
            // guard): glibc's robust list points here, so the memory must stay mapped.
            return;
        }
        // SAFETY: ptr/len are exactly what mmap returned; nothing borrows the mapping any more
        // (every reference into it borrows `self`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Plain-old-data element types that may live in shared memory: every bit pattern is a valid
/// value, so bytes written by any process read back as some value, never as undefined
/// behaviour. Sealed: implemented for the primitive integers and floats only.
pub trait Plain:
    Copy + Default + PartialEq + std::fmt::Debug + Send + Sync + 'static + sealed::Sealed
{
    /// A tag naming the type in a segment's header (an attach checks it).
    #[doc(hidden)]
    const TAG: u8;
    #[doc(hidden)]
    fn to_bits64(self) -> u64;
    #[doc(hidden)]
    fn from_bits64(bits: u64) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! plain_int {
    ($($t:ty : $u:ty = $tag:expr),*) => {$(
        impl sealed::Sealed for $t {}
        impl Plain for $t {
            const TAG: u8 = $tag;
            fn to_bits64(self) -> u64 { self as $u as u64 }
            fn from_bits64(bits: u64) -> Self { bits as $u as $t }
        }
    )*};
}
plain_int!(u8: u8 = 1, u16: u16 = 2, u32: u32 = 3, u64: u64 = 4, i8: u8 = 5, i16: u16 = 6,
    i32: u32 = 7, i64: u64 = 8, usize: u64 = 11, isize: u64 = 12);

impl sealed::Sealed for f32 {}
impl Plain for f32 {
    const TAG: u8 = 9;
    fn to_bits64(self) -> u64 {
        self.to_bits() as u64
    }
    fn from_bits64(bits: u64) -> Self {
        f32::from_bits(bits as u32)
    }
}
impl sealed::Sealed for f64 {}
impl Plain for f64 {
    const TAG: u8 = 10;
    fn to_bits64(self) -> u64 {
        self.to_bits()
    }
    fn from_bits64(bits: u64) -> Self {
        f64::from_bits(bits)
    }
}

impl Mapping {
    /// Loads the `T` at `offset` with one atomic access of its width (never torn, never a
    /// data race with another thread's [`store`](Mapping::store)).
    pub(crate) fn load<T: Plain>(&self, offset: usize) -> T {
        use std::sync::atomic::{AtomicU16, AtomicU8};
        let size = std::mem::size_of::<T>();
        self.check(offset, size, size);
        let p = self.ptr.as_ptr().wrapping_add(offset);
        // SAFETY: in bounds and aligned to the width (checked); atomics of each width have the
        // layout of the integer, valid for every bit pattern; lives as long as `self`.
        let bits = unsafe {
            match size {
                1 => (*p.cast::<AtomicU8>()).load(Ordering::Relaxed) as u64,
                2 => (*p.cast::<AtomicU16>()).load(Ordering::Relaxed) as u64,
                4 => (*p.cast::<AtomicU32>()).load(Ordering::Relaxed) as u64,
                _ => (*p.cast::<AtomicU64>()).load(Ordering::Relaxed),
            }
        };
        T::from_bits64(bits)
    }

    /// Stores `value` at `offset` with one atomic access of its width.
    pub(crate) fn store<T: Plain>(&self, offset: usize, value: T) {
        use std::sync::atomic::{AtomicU16, AtomicU8};
        let size = std::mem::size_of::<T>();
        self.check(offset, size, size);
        let p = self.ptr.as_ptr().wrapping_add(offset);
        let bits = value.to_bits64();
        // SAFETY: as in `load`.
        unsafe {
            match size {
                1 => (*p.cast::<AtomicU8>()).store(bits as u8, Ordering::Relaxed),
                2 => (*p.cast::<AtomicU16>()).store(bits as u16, Ordering::Relaxed),
                4 => (*p.cast::<AtomicU32>()).store(bits as u32, Ordering::Relaxed),
                _ => (*p.cast::<AtomicU64>()).store(bits, Ordering::Relaxed),
            }
        }
    }

    /// `len` elements of `T` at `offset` (aligned for `T`, inside the mapping).
    pub(crate) fn slice<T: Plain>(&self, offset: usize, len: usize) -> &[T] {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .expect("slice size");
        self.check(offset, bytes, std::mem::align_of::<T>());
        // SAFETY: in bounds and aligned (checked); T is a primitive valid for every bit
        // pattern (Plain is sealed); lives as long as `self`. Other processes: see `bytes`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset).cast::<T>(), len) }
    }

    /// `len` elements of `T` at `offset`, mutably (the caller holds its handle through `&mut`
    /// or under the structure's process-shared lock).
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn slice_mut<T: Plain>(&self, offset: usize, len: usize) -> &mut [T] {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .expect("slice size");
        self.check(offset, bytes, std::mem::align_of::<T>());
        // SAFETY: as `slice`; exclusivity in this process is the caller's (`&mut` of the
        // owning handle, or the process-shared lock held), see `bytes_mut`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset).cast::<T>(), len) }
    }
}
