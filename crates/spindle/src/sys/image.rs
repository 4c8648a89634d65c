//! The running image: naming a function by its offset from an anchor, the build fingerprint,
//! and the pre-main entry hook of spawned children.
//!
//! # How a spawned child knows what to run
//!
//! A spawned child executes the very file the parent runs (`/proc/self/exe`), so every
//! function sits at the same distance from any other function of the image, whatever address
//! the loader picked (ASLR moves the image as one block). The parent sends the distance from
//! [`anchor`] to a monomorphised trampoline ([`EntryFn`]); the child adds it to its own
//! `anchor` address. Before it does, it checks the parent's [`fingerprint`] against its own:
//! a child running another build refuses with a typed error instead of jumping anywhere.
//!
//! # How a spawned child is entered
//!
//! [`spindle_child_entry`] runs from `.init_array` (the `ctor` crate) before `main` or the
//! test harness. In every process it reads one environment variable, [`CHILD_ENV`]; when it
//! is absent it returns at once. When present, it removes the variable (so that the child's
//! own children start as ordinary programs) and hands over to
//! `crate::multiprocessing::bootstrap::child_main`, which never returns. The code that starts
//! children calls [`keep_entry_linked`], which references the constructor, so that a linker
//! that drops unreferenced objects of an rlib keeps this one.

use std::ffi::OsString;
use std::sync::OnceLock;

/// The environment variable that turns a fresh copy of the binary into a spindle child.
pub(crate) const CHILD_ENV: &str = "__SPINDLE_CHILD";

/// A trampoline: decodes its input, runs a function, encodes the output into the `Vec` and
/// returns the kind of message written (a byte the caller defines).
pub(crate) type EntryFn = fn(&[u8], &mut Vec<u8>) -> u8;

/// The fixed point of the image that entry offsets are measured from.
#[inline(never)]
fn anchor() -> u64 {
    std::hint::black_box(0x5350_494e_444c_4521)
}

fn anchor_addr() -> usize {
    anchor as fn() -> u64 as usize
}

/// The offset of `entry` from the anchor, valid in any process running the same image.
pub(crate) fn entry_offset(entry: EntryFn) -> i64 {
    (entry as usize).wrapping_sub(anchor_addr()) as i64
}

/// The trampoline at `offset` from the anchor, if the sender's `fingerprint` is ours and the
/// offset lies inside the image.
pub(crate) fn entry_at(offset: i64, fingerprint: u64) -> Result<EntryFn, String> {
    let ours = self::fingerprint();
    if fingerprint != ours {
        return Err(format!(
            "the parent runs another build of this program (fingerprint {fingerprint:016x}, \
             this binary {ours:016x}): was the binary rebuilt or replaced on disk?"
        ));
    }
    let size = image_size();
    if offset.unsigned_abs() >= size {
        return Err(format!(
            "entry offset {offset} lies outside the image ({size} bytes)"
        ));
    }
    let addr = anchor_addr().wrapping_add(offset as usize);
    // `offset` was computed by `entry_offset` from an `EntryFn` in a process running
    // the same image: the fingerprints (device, inode, size and mtime of the executable)
    // match, and the message carrying it came over a private socket from our own parent and
    // passed the framing checks. The same image places the same function at the same
    // distance from `anchor`, so `addr` is the address of that `EntryFn` in this process.
    // Both are plain `fn` pointers of the same size as `usize`.
    // SAFETY: sound for the reasons above.
    Ok(unsafe { std::mem::transmute::<usize, EntryFn>(addr) })
}

/// Computes the fingerprint and the image size now, so that a process that forks children
/// (the fork server) hands them both already known: each child would otherwise `stat` the
/// executable twice before running its call.
pub(crate) fn compute_checks() {
    fingerprint();
    image_size();
}

fn exe_meta() -> Option<std::fs::Metadata> {
    std::fs::metadata("/proc/self/exe").ok()
}

fn image_size() -> u64 {
    static SIZE: OnceLock<u64> = OnceLock::new();
    *SIZE.get_or_init(|| exe_meta().map(|m| m.len()).unwrap_or(u64::MAX))
}

/// The build fingerprint of the running image: FNV-1a of the device, inode, size and
/// modification time of `/proc/self/exe`, and of the anchor's page offset. Computed once.
pub(crate) fn fingerprint() -> u64 {
    static FP: OnceLock<u64> = OnceLock::new();
    *FP.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        let mut h = Fnv::new();
        if let Some(m) = exe_meta() {
            for v in [
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime() as u64,
                m.mtime_nsec() as u64,
            ] {
                h.add(v);
            }
        }
        h.add((anchor_addr() & 0xfff) as u64);
        h.0
    })
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn add(&mut self, v: u64) {
        for b in v.to_le_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A value of the zero-sized, `Copy` type `F`, such as a function item or a closure that
/// captures nothing. Refused at compile time for any type with a size.
pub(crate) fn conjure<F: Copy + 'static>() -> F {
    const {
        assert!(
            std::mem::size_of::<F>() == 0,
            "only zero-sized targets can be conjured"
        )
    };
    // `F` has size zero (checked at compile time), so a read through a dangling but
    // aligned pointer reads no byte. Callers use this only for target types of which the
    // parent held a value and which are `Copy`: making one here is a copy of that value,
    // which `Copy` allows.
    // SAFETY: sound for the reasons above.
    unsafe { std::ptr::NonNull::<F>::dangling().as_ptr().read() }
}

/// The pre-main hook: returns at once unless [`CHILD_ENV`] is set.
#[ctor::ctor]
fn spindle_child_entry() {
    if let Some(value) = std::env::var_os(CHILD_ENV) {
        // Only the constructor's thread exists this early, so changing the environment races
        // with nothing.
        std::env::remove_var(CHILD_ENV);
        child_entry(value);
    }
}

fn child_entry(value: OsString) -> ! {
    crate::multiprocessing::bootstrap::child_main(value)
}

/// Makes the calling code reference the pre-main hook so that the linker keeps it.
#[inline(never)]
pub(crate) fn keep_entry_linked() {
    std::hint::black_box(spindle_child_entry as extern "C" fn());
}
