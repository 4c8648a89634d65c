//! The fork server's wire protocol, the one home of it: the client (`start::forkserver`) and
//! the server (`forkserver`) both import it, and neither imports the other.
//!
//! The server keeps children forked ahead, *spares*, each waiting on a control socket whose
//! other end the client holds; a start hands its call straight to a spare, and the server forks
//! the next one off the start's path.
//!
//! On the server's `SOCK_SEQPACKET` connection, one message each way per spare:
//!
//! - client → server: `b"N"`, "make a spare", with `SCM_RIGHTS` = `[the spare's end of its
//!   control socket]` (the client keeps the other end);
//! - server → client: `b"P"` + the spare's pid (u32 LE) with `SCM_RIGHTS` = `[pidfd]`, or
//!   `b"E"` + an errno (i32 LE) when it could not make one.
//!
//! The reply waits in the client's socket until its next start reads it. It carries no socket:
//! while a Unix socket is in flight, every Unix socket closed anywhere in the system schedules
//! the kernel's garbage collector of in-flight descriptors (a worker thread woken per close),
//! so the only socket that travels is the request's, which the waiting server reads at once.
//!
//! On a spare's control socket (a stream), the hand-over that makes it a child: [`HANDOVER`]
//! bytes, `b"H"` + the signals the caller ignores (u64 LE, bit `n - 1` for signal `n`), with
//! `SCM_RIGHTS` = `[O_PATH descriptor of the caller's working directory, the call's own
//! descriptors...]`, followed at once by the call (`Call` and `Args` frames, as a spawned
//! child reads them).

/// The request: make the next spare.
pub(crate) const REQ_NEXT: u8 = b'N';
const REP_PID: u8 = b'P';
const REP_ERR: u8 = b'E';
const HANDOVER_TAG: u8 = b'H';

/// The server's message about one spare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// A spare waits: its pid (its pidfd and control socket travel beside).
    Pid(u32),
    /// The server could not make it: an errno.
    Err(i32),
}

impl Reply {
    /// The reply's bytes.
    pub(crate) fn encode(&self) -> [u8; 5] {
        let (tag, v) = match *self {
            Reply::Pid(pid) => (REP_PID, pid.to_le_bytes()),
            Reply::Err(errno) => (REP_ERR, errno.to_le_bytes()),
        };
        [tag, v[0], v[1], v[2], v[3]]
    }

    /// A reply read from `bytes`, if well formed.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Reply> {
        match bytes {
            [REP_PID, a, b, c, d] => Some(Reply::Pid(u32::from_le_bytes([*a, *b, *c, *d]))),
            [REP_ERR, a, b, c, d] => Some(Reply::Err(i32::from_le_bytes([*a, *b, *c, *d]))),
            _ => None,
        }
    }
}

/// The length of a hand-over's header.
pub(crate) const HANDOVER: usize = 9;

/// The hand-over's header: what the spare needs from the caller at the moment of the start,
/// besides the call itself (the working directory travels as a descriptor beside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handover {
    /// The signals the caller ignores; the child ignores exactly these.
    pub(crate) ignored: u64,
}

impl Handover {
    /// The header's bytes.
    pub(crate) fn encode(&self) -> [u8; HANDOVER] {
        let mut b = [0u8; HANDOVER];
        b[0] = HANDOVER_TAG;
        b[1..].copy_from_slice(&self.ignored.to_le_bytes());
        b
    }

    /// The header at the start of `bytes`, if well formed.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Handover> {
        match bytes.get(..HANDOVER)? {
            [HANDOVER_TAG, rest @ ..] => Some(Handover {
                ignored: u64::from_le_bytes(rest.try_into().ok()?),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_handovers_round_trip_and_garbage_is_refused() {
        for rep in [Reply::Pid(42), Reply::Err(22)] {
            assert_eq!(Reply::decode(&rep.encode()), Some(rep));
        }
        assert_eq!(Reply::decode(b"P123"), None);
        assert_eq!(Reply::decode(b"X1234"), None);
        let h = Handover { ignored: 1 << 1 };
        let mut bytes = h.encode().to_vec();
        assert_eq!(Handover::decode(&bytes), Some(h));
        bytes.extend_from_slice(b"call bytes follow");
        assert_eq!(Handover::decode(&bytes), Some(h));
        assert_eq!(Handover::decode(&bytes[..HANDOVER - 1]), None);
        assert_eq!(Handover::decode(b"X12345678"), None);
    }
}
