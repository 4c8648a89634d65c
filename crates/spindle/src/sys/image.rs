//! The loaded image that holds this copy of spindle: naming a function by its offset from an
//! anchor, the build identity, the copy's tag, and whether spindle lives in the main program.
//!
//! # How a spawned child knows what to run
//!
//! A spawned child loads the very object the parent runs spindle from (the executable, or a
//! shared object both load), so every function of it sits at the same distance from any other
//! function of that object, whatever address the loader picked. The parent sends the distance
//! from [`anchor`] to a monomorphised trampoline ([`EntryFn`]); the child adds it to its own
//! `anchor` address after checking the parent's [`build_identity`] against its own, and the
//! address against the object's executable segments.
//!
//! # Which object is "ours"
//!
//! `dl_iterate_phdr` lists every loaded object with its program headers; ours is the one with
//! an executable `PT_LOAD` segment around [`anchor`]. The first object listed is the main
//! program: when ours is not the first, spindle was loaded by another program (a Python
//! extension, a plugin), and re-executing `/proc/self/exe` would run that program instead.
//!
//! # Build identity
//!
//! The ELF build-id note (`NT_GNU_BUILD_ID`) of our object, read from its loaded `PT_NOTE`
//! segments: the same bytes in every process that loads the same build, whatever its file's
//! inode or modification time. Where the linker wrote none, the fallback is an FNV-1a
//! fingerprint of the object file's device, inode, size and modification time.
//!
//! # The copy's tag
//!
//! Two copies of spindle can live in one binary (two versions pulled by two libraries). Each
//! names its children with its own tag — crate version plus the anchor's offset from its
//! object's load address — so each copy's pre-main hook only answers its own children.

use std::ffi::{CStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::sync::OnceLock;

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

/// An address inside spindle's code (the anchor's).
pub(crate) fn anchor_address() -> usize {
    anchor_addr()
}

/// What the loader tells about the object holding spindle.
#[derive(Debug)]
pub(crate) struct Image {
    /// The object's load bias (`dlpi_addr`).
    base: usize,
    /// Its executable segments, as absolute address ranges.
    text: Vec<(usize, usize)>,
    /// Whether it is the main program (the first object `dl_iterate_phdr` lists).
    pub(crate) in_main: bool,
    /// Its file name as the loader knows it (empty for the main program).
    path: OsString,
    /// Its `NT_GNU_BUILD_ID`, when the linker wrote one.
    build_id: Option<Vec<u8>>,
}

struct Search {
    anchor: usize,
    index: usize,
    found: Option<Image>,
}

/// `dl_iterate_phdr`'s callback: records the object that holds `search.anchor`.
///
/// # Safety
///
/// `info` must point at a valid `dl_phdr_info` for the call, and `data` at a live `Search`
/// borrowed by nothing else: `dl_iterate_phdr`, called by [`image`] with its own `Search`,
/// guarantees both.
unsafe extern "C" fn visit(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the `Search` that `image()` passes to `dl_iterate_phdr`, alive and not
    // otherwise borrowed during the call; `info` points at the loader's record of one object,
    // valid for this call.
    let (search, info) = unsafe { (&mut *data.cast::<Search>(), &*info) };
    let index = search.index;
    search.index += 1;
    let base = info.dlpi_addr as usize;
    // SAFETY: the loader's record (valid for this call) points `dlpi_phdr` at an array of
    // `dlpi_phnum` program headers.
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let mut text = Vec::new();
    let mut ours = false;
    for p in phdrs {
        if p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_X != 0 {
            let start = base.wrapping_add(p.p_vaddr as usize);
            let end = start.wrapping_add(p.p_memsz as usize);
            ours |= (start..end).contains(&search.anchor);
            text.push((start, end));
        }
    }
    if !ours {
        return 0;
    }
    let mut build_id = None;
    for p in phdrs {
        if p.p_type == libc::PT_NOTE {
            let addr = base.wrapping_add(p.p_vaddr as usize);
            let len = p.p_memsz as usize;
            // SAFETY: a `PT_NOTE` segment lies inside a loaded, readable segment of the
            // object (the loader mapped it: that is how `dl_iterate_phdr` reports it), `len`
            // bytes long; it stays mapped while the object is loaded, which ours always is.
            let notes = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
            if let Some(id) = gnu_build_id(notes) {
                build_id = Some(id.to_vec());
                break;
            }
        }
    }
    let path = if info.dlpi_name.is_null() {
        OsString::new()
    } else {
        // SAFETY: the loader's name of the object is a NUL-terminated string, valid during
        // this callback, and not null (checked above).
        let name = unsafe { CStr::from_ptr(info.dlpi_name) };
        OsString::from_vec(name.to_bytes().to_vec())
    };
    search.found = Some(Image {
        base,
        text,
        in_main: index == 0,
        path,
        build_id,
    });
    1
}

/// The descriptor of `NT_GNU_BUILD_ID` in a block of ELF notes, if there is one.
fn gnu_build_id(mut notes: &[u8]) -> Option<&[u8]> {
    let word = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let align4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    while notes.len() >= 12 {
        let (namesz, descsz, kind) = (word(notes), word(&notes[4..]), word(&notes[8..]));
        let name_end = 12usize.checked_add(align4(namesz)?)?;
        let desc_end = name_end.checked_add(align4(descsz)?)?;
        if desc_end > notes.len() {
            return None;
        }
        if kind == 3 && namesz == 4 && &notes[12..16] == b"GNU\0" && descsz > 0 {
            return Some(&notes[name_end..name_end + descsz]);
        }
        notes = &notes[desc_end..];
    }
    None
}

/// The object holding spindle, found once.
pub(crate) fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let mut search = Search {
            anchor: anchor_addr(),
            index: 0,
            found: None,
        };
        // The callback only reads the loader's records and writes into `search`, which
        // outlives the call.
        // SAFETY: sound for the reason above.
        unsafe {
            libc::dl_iterate_phdr(Some(visit), (&mut search as *mut Search).cast());
        }
        // A statically linked program without a loader record is the main program.
        search.found.unwrap_or(Image {
            base: 0,
            text: Vec::new(),
            in_main: true,
            path: OsString::new(),
            build_id: None,
        })
    })
}

/// Whether spindle is part of the main program (not of a shared object another program
/// loaded).
pub(crate) fn in_main_program() -> bool {
    image().in_main
}

/// The path of the shared object holding spindle, when it is not the main program.
pub(crate) fn shared_object_path() -> Option<&'static std::path::Path> {
    let img = image();
    (!img.in_main && !img.path.is_empty()).then(|| std::path::Path::new(&img.path))
}

/// This copy's tag: the crate version and the anchor's offset from its object's load address,
/// in characters an environment variable name may hold.
pub(crate) fn copy_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let version: String = env!("CARGO_PKG_VERSION")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let offset = anchor_addr().wrapping_sub(image().base);
        format!("{version}_{offset:x}")
    })
}

/// The build identity of the object holding spindle: `b"id:"` and its build-id note, or
/// `b"fp:"` and a fingerprint of its file where it has none.
pub(crate) fn build_identity() -> &'static [u8] {
    static ID: OnceLock<Vec<u8>> = OnceLock::new();
    ID.get_or_init(|| {
        let img = image();
        match &img.build_id {
            Some(id) => [b"id:".as_slice(), id].concat(),
            None => {
                let mut fp = fingerprint_of(if img.in_main {
                    std::path::Path::new("/proc/self/exe")
                } else {
                    std::path::Path::new(&img.path)
                });
                fp.add((anchor_addr().wrapping_sub(img.base)) as u64);
                [b"fp:".as_slice(), &fp.0.to_le_bytes()].concat()
            }
        }
    })
}

fn fingerprint_of(path: &std::path::Path) -> Fnv {
    use std::os::unix::fs::MetadataExt;
    let mut h = Fnv::new();
    if let Ok(m) = std::fs::metadata(path) {
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
    h
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

/// The offset of `entry` from the anchor, valid in any process that loads the same object.
pub(crate) fn entry_offset(entry: EntryFn) -> i64 {
    (entry as usize).wrapping_sub(anchor_addr()) as i64
}

/// The trampoline at `offset` from the anchor, if the sender's build `identity` is ours and
/// the address lies in an executable segment of our object.
pub(crate) fn entry_at(offset: i64, identity: &[u8]) -> Result<EntryFn, String> {
    let ours = build_identity();
    if identity != ours {
        return Err(format!(
            "the parent runs another build of this program (build {}, this one {}): was it \
             rebuilt or replaced on disk?",
            show(identity),
            show(ours)
        ));
    }
    let addr = anchor_addr().wrapping_add(offset as usize);
    let text = &image().text;
    if !text.is_empty() && !text.iter().any(|(s, e)| (*s..*e).contains(&addr)) {
        return Err(format!(
            "entry offset {offset} lies outside this program's code"
        ));
    }
    // `offset` was computed by `entry_offset` from an `EntryFn` in a process that loads the
    // same build of this object: the build identities match (and the pre-main checks made
    // sure the parent runs the same file, of our uid). The same build places the same
    // function at the same distance from `anchor`, so `addr`, which lies in the object's
    // code, is the address of that `EntryFn` here. Both are plain `fn` pointers of the size
    // of `usize`.
    // SAFETY: sound for the reasons above.
    Ok(unsafe { std::mem::transmute::<usize, EntryFn>(addr) })
}

fn show(id: &[u8]) -> String {
    let (kind, bytes) = id.split_at(id.len().min(3));
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}{hex}", String::from_utf8_lossy(kind))
}

/// Computes the identity and the image record now, so that a process that forks children
/// (the fork server) hands them both already known.
pub(crate) fn compute_checks() {
    build_identity();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_carries_a_build_id_and_holds_spindle_in_the_main_program() {
        assert!(in_main_program());
        assert!(image().build_id.is_some(), "{:?}", image());
        assert!(build_identity().starts_with(b"id:"));
    }

    #[test]
    fn build_id_notes_are_parsed_and_malformed_ones_refused() {
        let mut notes = Vec::new();
        // An ABI tag note, then the build id.
        for (kind, name, desc) in [
            (1u32, &b"GNU\0"[..], &[0u8; 16][..]),
            (3, b"GNU\0", b"\x01\x02\x03"),
        ] {
            notes.extend_from_slice(&(name.len() as u32).to_ne_bytes());
            notes.extend_from_slice(&(desc.len() as u32).to_ne_bytes());
            notes.extend_from_slice(&kind.to_ne_bytes());
            notes.extend_from_slice(name);
            notes.extend_from_slice(desc);
            while notes.len() % 4 != 0 {
                notes.push(0);
            }
        }
        assert_eq!(gnu_build_id(&notes), Some(&b"\x01\x02\x03"[..]));
        assert_eq!(gnu_build_id(&notes[..notes.len() - 4]), None);
        let mut huge = notes.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(gnu_build_id(&huge), None);
    }

    #[test]
    fn an_entry_outside_the_code_or_of_another_build_is_refused() {
        let id = build_identity();
        assert!(entry_at(i64::MAX / 2, id).is_err());
        let other = [b"id:".as_slice(), b"\x00\x01"].concat();
        let err = entry_at(0, &other).unwrap_err();
        assert!(err.contains("another build"), "{err}");
        assert!(entry_at(0, id).is_ok());
    }
}
