//! The fork server's wire protocol, the one home of it: the client (`start::forkserver`) and
//! the server (`forkserver`) both import it, and neither imports the other.
//!
//! One `SOCK_SEQPACKET` message each way per child:
//!
//! - request: `b"F"` + the signals the caller ignores (u64 LE, bit `n - 1` for signal `n`),
//!   with `SCM_RIGHTS` = `[child's channel, O_PATH descriptor of the caller's directory]`;
//! - reply: `b"P"` + the child's pid (u32 LE) with `SCM_RIGHTS` = `[pidfd]`, or `b"E"` + an
//!   errno (i32 LE).

/// The request: fork a child.
pub(crate) const REQ_FORK: u8 = b'F';
const REP_PID: u8 = b'P';
const REP_ERR: u8 = b'E';

/// A request's bytes (its descriptors travel beside them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Request {
    /// The signals the caller ignores; the child ignores exactly these.
    pub(crate) ignored: u64,
}

/// The descriptors a request carries, in order: the child's channel and the caller's working
/// directory.
pub(crate) const REQUEST_FDS: usize = 2;

impl Request {
    /// The request's bytes.
    pub(crate) fn encode(&self) -> [u8; 9] {
        let mut b = [0u8; 9];
        b[0] = REQ_FORK;
        b[1..].copy_from_slice(&self.ignored.to_le_bytes());
        b
    }

    /// A request read from `bytes`, if well formed.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Request> {
        match bytes {
            [REQ_FORK, rest @ ..] if rest.len() == 8 => Some(Request {
                ignored: u64::from_le_bytes(rest.try_into().ok()?),
            }),
            _ => None,
        }
    }
}

/// The server's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The child runs: its pid (a pidfd travels beside).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip_and_garbage_is_refused() {
        let r = Request { ignored: 1 << 1 };
        assert_eq!(Request::decode(&r.encode()), Some(r));
        assert_eq!(Request::decode(b"F"), None);
        assert_eq!(Request::decode(b"X12345678"), None);
        for rep in [Reply::Pid(42), Reply::Err(22)] {
            assert_eq!(Reply::decode(&rep.encode()), Some(rep));
        }
        assert_eq!(Reply::decode(b"P123"), None);
    }
}
