//! Who may make this program act as a spindle child: the checks the pre-main hook runs before
//! it reads a single byte from the descriptor it was handed.
//!
//! The variable that asks for child mode, and the descriptor it names, come from whoever
//! launched the program, which need not be a spindle parent. So child mode is entered only
//! when all of these hold:
//!
//! - the process is not in secure-execution mode (`AT_SECURE`: setuid, setgid or file
//!   capabilities gave it privileges its launcher does not have);
//! - the descriptor is an `AF_UNIX` socket of the expected type (stream for a child,
//!   seqpacket for the fork server);
//! - its peer (`SO_PEERPIDFD` where the kernel has it, `SO_PEERCRED` otherwise) is our parent
//!   process, of our uid;
//! - our parent runs the same file that holds spindle here (device and inode of
//!   `/proc/PID/exe`, or of a shared object in `/proc/PID/maps` when spindle lives in one);
//!   a parent whose files we may not read (not dumpable) is refused.
//!
//! What this does not protect against: a process of the same uid can already read and write
//! our memory (`ptrace`), so it is not a boundary we keep; the boundary is privilege.

use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;

use super::cvt;

/// The kind of socket a child mode expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketKind {
    /// `SOCK_STREAM`: a spawned child's control socket.
    Stream,
    /// `SOCK_SEQPACKET`: the fork server's connection.
    Seqpacket,
}

extern "C" {
    /// The process's environment, as the C library keeps it.
    static environ: *const *const libc::c_char;
}

/// The environment variables whose names start with `prefix`, read without allocating for the
/// others (the pre-main hook runs this in every program that links spindle).
pub(crate) fn spindle_variables(prefix: &str) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    // `environ` is the C library's NULL-terminated array of NUL-terminated `NAME=value`
    // strings; the pre-main hook calls this before any other thread exists, so nothing changes
    // it while it is read.
    // SAFETY: sound for the reasons above.
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let entry = std::ffi::CStr::from_ptr(*p).to_bytes();
            if entry.starts_with(prefix.as_bytes()) {
                if let Some(eq) = entry.iter().position(|b| *b == b'=') {
                    out.push((
                        std::ffi::OsStr::from_bytes(&entry[..eq]).to_owned(),
                        std::ffi::OsStr::from_bytes(&entry[eq + 1..]).to_owned(),
                    ));
                }
            }
            p = p.add(1);
        }
    }
    out
}

/// Whether this process runs in secure-execution mode (`getauxval(AT_SECURE)`).
pub(crate) fn secure_execution() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector the kernel handed the process.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

fn sockopt_int(fd: RawFd, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid out-parameters of the sizes stated.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(v)
}

/// Checks the descriptor `raw` named by the launcher and our parent (see the module docs);
/// takes ownership of it (close-on-exec) when everything holds, otherwise says why not.
pub(crate) fn adopt_channel(
    raw: RawFd,
    kind: SocketKind,
    expected_parent: u32,
) -> Result<OwnedFd, String> {
    if raw < 3 {
        return Err(format!("descriptor {raw} is not a channel"));
    }
    // SAFETY: F_GETFD only reads the descriptor flags; an unopened number gives EBADF.
    cvt(unsafe { libc::fcntl(raw, libc::F_GETFD) })
        .map_err(|e| format!("descriptor {raw}: {e}"))?;
    let domain = sockopt_int(raw, libc::SO_DOMAIN)
        .map_err(|e| format!("descriptor {raw} is not a socket ({e})"))?;
    if domain != libc::AF_UNIX {
        return Err(format!("descriptor {raw} is not a Unix socket"));
    }
    let ty = sockopt_int(raw, libc::SO_TYPE).map_err(|e| e.to_string())?;
    let want = match kind {
        SocketKind::Stream => libc::SOCK_STREAM,
        SocketKind::Seqpacket => libc::SOCK_SEQPACKET,
    };
    if ty != want {
        return Err(format!("descriptor {raw} is a socket of the wrong type"));
    }
    let ppid = super::proc::getppid();
    if ppid != expected_parent {
        return Err(format!("the parent is {ppid}, not {expected_parent}"));
    }
    let mut cred = MaybeUninit::<libc::ucred>::zeroed();
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid out-parameters of the sizes stated.
    cvt(unsafe {
        libc::getsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            cred.as_mut_ptr().cast(),
            &mut len,
        )
    })
    .map_err(|e| format!("no peer credentials: {e}"))?;
    // SAFETY: zero-initialised and filled in by a successful getsockopt.
    let cred = unsafe { cred.assume_init() };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if cred.pid as u32 != ppid {
        return Err(format!(
            "the socket's peer is process {}, not our parent {ppid}",
            cred.pid
        ));
    }
    if cred.uid != euid {
        return Err(format!(
            "the socket's peer runs as uid {}, not {euid}",
            cred.uid
        ));
    }
    // Where the kernel has it, a pidfd of the peer pins the very process that made the socket:
    // it must be our parent, alive (so its pid was not reused) after its files were read.
    let peer = peer_pidfd(raw)?;
    same_program(ppid)?;
    if let Some(pidfd) = &peer {
        match super::proc::pidfd_send_signal_raw(pidfd.as_raw_fd(), 0) {
            Ok(true) => {}
            _ => return Err("the socket's peer exited".into()),
        }
    }
    if super::proc::getppid() != ppid {
        return Err("the parent exited during the checks".into());
    }
    // SAFETY: F_SETFD on an open descriptor (checked above) only changes its flags.
    cvt(unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) }).map_err(|e| e.to_string())?;
    // SAFETY: the number is open (checked above) and was handed to this process for this
    // purpose only; this is the one place that takes ownership of it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A pidfd of the socket's peer (`SO_PEERPIDFD`, Linux 6.5): the very process that made the
/// socket, whose pid `SO_PEERCRED` reported. While it is alive its pid cannot have been reused,
/// so checking that it is alive after reading `/proc/PID` proves we read the peer's files.
/// `None` on a kernel without it.
fn peer_pidfd(raw: RawFd) -> Result<Option<OwnedFd>, String> {
    match sockopt_int(raw, libc::SO_PEERPIDFD) {
        // SAFETY: a successful SO_PEERPIDFD returns a fresh descriptor that we now own.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOPROTOOPT) | Some(libc::EINVAL)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(format!("no peer pidfd: {e}")),
    }
}

/// Whether process `pid` runs the file that holds spindle in this process.
fn same_program(pid: u32) -> Result<(), String> {
    if super::image::in_main_program() {
        let ours = std::fs::metadata("/proc/self/exe")
            .map_err(|e| format!("cannot read our own executable: {e}"))?;
        let theirs = std::fs::metadata(format!("/proc/{pid}/exe"))
            .map_err(|e| format!("cannot read the parent's executable ({e}): refusing"))?;
        if (ours.dev(), ours.ino()) != (theirs.dev(), theirs.ino()) {
            return Err("the parent runs another program".into());
        }
        return Ok(());
    }
    let ours = mapping_of_anchor().ok_or("cannot find the file holding spindle")?;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| format!("cannot read the parent's mappings ({e}): refusing"))?;
    if maps.lines().filter_map(file_of_mapping).any(|m| m == ours) {
        Ok(())
    } else {
        Err("the parent has not loaded the file that holds spindle here".into())
    }
}

/// `(device, inode)` of one line of `/proc/PID/maps`, for a file mapping.
fn file_of_mapping(line: &str) -> Option<(String, u64)> {
    let mut f = line.split_whitespace();
    let (_range, _perms, _offset, dev, inode) =
        (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    let inode: u64 = inode.parse().ok()?;
    (inode != 0).then(|| (dev.to_owned(), inode))
}

/// The file mapping of this process that holds spindle's code.
fn mapping_of_anchor() -> Option<(String, u64)> {
    let here = super::image::anchor_address();
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|l| {
        let (range, _) = l.split_once(' ')?;
        let (s, e) = range.split_once('-')?;
        let (s, e) = (
            usize::from_str_radix(s, 16).ok()?,
            usize::from_str_radix(e, 16).ok()?,
        );
        if (s..e).contains(&here) {
            file_of_mapping(l)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_lines_parse() {
        let l = "7f00-7f10 r-xp 00000000 fd:01 1234 /usr/lib/x.so";
        assert_eq!(file_of_mapping(l), Some(("fd:01".into(), 1234)));
        assert_eq!(file_of_mapping("7f00-7f10 rw-p 00000000 00:00 0"), None);
        assert!(mapping_of_anchor().is_some());
    }

    #[test]
    fn a_descriptor_that_is_not_our_parents_socket_is_refused() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let raw = a.as_raw_fd();
        // Our own socket: its peer is this process, not our parent.
        let err =
            adopt_channel(raw, SocketKind::Stream, super::super::proc::getppid()).unwrap_err();
        assert!(err.contains("not our parent"), "{err}");
        let err =
            adopt_channel(raw, SocketKind::Seqpacket, super::super::proc::getppid()).unwrap_err();
        assert!(err.contains("wrong type"), "{err}");
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        let err = adopt_channel(
            f.as_raw_fd(),
            SocketKind::Stream,
            super::super::proc::getppid(),
        )
        .unwrap_err();
        assert!(err.contains("not a socket"), "{err}");
        assert!(adopt_channel(2, SocketKind::Stream, 1).is_err());
        assert!(!secure_execution());
    }
}
