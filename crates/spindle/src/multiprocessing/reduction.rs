//! The one codec seam: serde values encoded with postcard, carried in length-prefixed frames.
//!
//! A frame is a 7-byte header — magic byte, version byte, kind byte, payload length (u32,
//! little-endian) — and the payload. A reader checks the magic and the version, refuses a
//! length above [`MAX_FRAME`] before allocating anything, and reads the payload in pieces so
//! that a peer claiming a large frame and sending little costs little. A payload decodes
//! with postcard's `take_from_bytes`, and bytes left over are an error: a codec that accepts
//! trailing garbage would hide a framing bug.
//!
//! Every failure is an [`Error::Codec`] (a value that does not decode or encode) or an
//! [`Error::Protocol`] (a broken frame, a wrong kind, a truncated stream), never a panic.

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// First byte of every frame.
pub(crate) const MAGIC: u8 = 0xB5;
/// Second byte of every frame: the protocol version.
pub(crate) const VERSION: u8 = 1;
/// Header length in bytes.
pub(crate) const HEADER: usize = 7;
/// The largest payload a reader accepts (1 GiB).
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// Parent → child: which function to run ([`crate::multiprocessing::bootstrap::Call`]).
    Call = 1,
    /// Parent → child: the encoded argument of the call.
    Args = 2,
    /// Child → parent: the encoded return value.
    Value = 3,
    /// Child → parent: a [`crate::panic::PanicReport`].
    Panic = 4,
    /// Child → parent: a [`ChildFailure`] (the child refused or could not decode its call).
    Failure = 5,
}

impl Kind {
    pub(crate) fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Call,
            2 => Kind::Args,
            3 => Kind::Value,
            4 => Kind::Panic,
            5 => Kind::Failure,
            _ => return None,
        })
    }
}

/// Why a child could not run its call, sent back to the parent as data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum ChildFailure {
    /// The argument (or the result) did not decode (encode).
    Codec(String),
    /// The call broke the protocol (wrong build, bad frame, bad entry).
    Protocol(String),
    /// The child reported a fatal fault before the signal ended it ("stack overflow").
    Fatal(String),
}

impl From<ChildFailure> for Error {
    fn from(f: ChildFailure) -> Error {
        match f {
            ChildFailure::Codec(m) => Error::Codec(format!("in the child: {m}")),
            ChildFailure::Protocol(m) => Error::Protocol(format!("in the child: {m}")),
            ChildFailure::Fatal(m) => Error::Task(crate::TaskError::failed(m)),
        }
    }
}

impl From<Error> for ChildFailure {
    fn from(e: Error) -> ChildFailure {
        match e {
            Error::Codec(m) => ChildFailure::Codec(m),
            other => ChildFailure::Protocol(other.to_string()),
        }
    }
}

/// Encodes `value` at the end of `out`, at most [`MAX_FRAME`] bytes of it: a larger value
/// stops the encoding there (nothing more is copied) and is a codec error. A type whose
/// `Serialize` fails with its own message keeps that message (postcard drops it: it is read
/// again by walking the value once more, see `reduction_message.rs`).
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    let over = std::cell::Cell::new(false);
    let flavor = Limited {
        out: &mut *out,
        start,
        over: &over,
    };
    match postcard::serialize_with_flavor(value, flavor) {
        Ok(()) => Ok(()),
        Err(e) => {
            out.truncate(start);
            if over.get() {
                return Err(Error::Codec(format!(
                    "{} of more than {MAX_FRAME} bytes exceeds the message limit",
                    std::any::type_name::<T>()
                )));
            }
            Err(Error::Codec(format!(
                "cannot encode {}: {}",
                std::any::type_name::<T>(),
                encode_failure(value, e)
            )))
        }
    }
}

/// Why postcard could not encode `value`: the type's own message when its `Serialize` failed
/// with one (postcard keeps only that there was one), postcard's otherwise.
#[cold]
pub(crate) fn encode_failure<T: Serialize + ?Sized>(value: &T, e: postcard::Error) -> String {
    match e {
        postcard::Error::SerdeSerCustom => {
            message::custom_error(value).unwrap_or_else(|| e.to_string())
        }
        other => other.to_string(),
    }
}

/// A postcard output that appends to a `Vec` and refuses to grow past [`MAX_FRAME`].
struct Limited<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    over: &'a std::cell::Cell<bool>,
}

impl Limited<'_> {
    fn room(&mut self, n: usize) -> postcard::Result<()> {
        if self.out.len() - self.start + n > MAX_FRAME {
            self.over.set(true);
            return Err(postcard::Error::SerializeBufferFull);
        }
        Ok(())
    }
}

impl postcard::ser_flavors::Flavor for Limited<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.room(data.len())?;
        self.out.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.room(1)?;
        self.out.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Encodes `value` into a new buffer.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Decodes exactly one `T` from `bytes`; leftover bytes are an error.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(Error::Codec(format!(
            "{} trailing bytes after the value",
            rest.len()
        ))),
        Err(e) => Err(Error::Codec(format!(
            "cannot decode {}: {e}",
            std::any::type_name::<T>()
        ))),
    }
}

/// The header of a frame of `kind` with `len` payload bytes.
pub(crate) fn header(kind: Kind, len: usize) -> Result<[u8; HEADER]> {
    if len > MAX_FRAME {
        return Err(Error::Codec(format!(
            "message of {len} bytes exceeds the {MAX_FRAME}-byte limit"
        )));
    }
    let l = (len as u32).to_le_bytes();
    Ok([MAGIC, VERSION, kind as u8, l[0], l[1], l[2], l[3]])
}

/// Writes one frame.
pub(crate) fn write_frame(w: &mut impl Write, kind: Kind, payload: &[u8]) -> Result<()> {
    let h = header(kind, payload.len())?;
    // One write per small frame, without an allocation (a forked child that allocates pays
    // copy-on-write faults for the allocator's pages).
    const SMALL: usize = 128;
    if payload.len() <= SMALL - HEADER {
        let mut buf = [0u8; SMALL];
        buf[..HEADER].copy_from_slice(&h);
        buf[HEADER..HEADER + payload.len()].copy_from_slice(payload);
        w.write_all(&buf[..HEADER + payload.len()])?;
    } else if payload.len() <= 4096 {
        let mut buf = Vec::with_capacity(HEADER + payload.len());
        buf.extend_from_slice(&h);
        buf.extend_from_slice(payload);
        w.write_all(&buf)?;
    } else {
        w.write_all(&h)?;
        w.write_all(payload)?;
    }
    Ok(())
}

/// Checks a header; returns the kind and the payload length.
pub(crate) fn parse_header(h: &[u8; HEADER]) -> Result<(Kind, usize)> {
    if h[0] != MAGIC {
        return Err(Error::Protocol(format!("bad magic byte {:#04x}", h[0])));
    }
    if h[1] != VERSION {
        return Err(Error::Protocol(format!(
            "protocol version {} (expected {VERSION})",
            h[1]
        )));
    }
    let kind = Kind::from_u8(h[2])
        .ok_or_else(|| Error::Protocol(format!("unknown message kind {}", h[2])))?;
    let len = u32::from_le_bytes([h[3], h[4], h[5], h[6]]) as usize;
    if len > MAX_FRAME {
        return Err(Error::Protocol(format!(
            "frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"
        )));
    }
    Ok((kind, len))
}

/// Reads one whole frame (blocking). End of stream before a full frame is a protocol error.
pub(crate) fn read_frame(r: &mut impl Read) -> Result<(Kind, Vec<u8>)> {
    let mut h = [0u8; HEADER];
    read_exact_or(r, &mut h, "end of stream before a message")?;
    let (kind, len) = parse_header(&h)?;
    let mut payload = Vec::with_capacity(len.min(64 * 1024));
    r.take(len as u64).read_to_end(&mut payload)?;
    if payload.len() != len {
        return Err(Error::Protocol(format!(
            "truncated message: {} of {len} bytes",
            payload.len()
        )));
    }
    Ok((kind, payload))
}

fn read_exact_or(r: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<()> {
    match r.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Error::Protocol(what.into())),
        Err(e) => Err(Error::Io(e)),
    }
}

/// Accumulates bytes arriving in pieces (a non-blocking socket) into whole frames, so that a
/// wait that times out loses nothing.
#[derive(Debug, Default)]
pub(crate) struct FrameBuffer {
    buf: Vec<u8>,
}

impl FrameBuffer {
    /// Whether nothing has been received yet.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// How many more bytes the frame being received needs, or a protocol error when the bytes
    /// so far cannot start a frame.
    pub(crate) fn wanted(&self) -> Result<usize> {
        if self.buf.len() < HEADER {
            return Ok(HEADER - self.buf.len());
        }
        let h: [u8; HEADER] = self.buf[..HEADER].try_into().expect("header length");
        let (_, len) = parse_header(&h)?;
        Ok((HEADER + len).saturating_sub(self.buf.len()))
    }

    /// Reads what `r` has now (at most the rest of the current frame, in pieces of at most
    /// 1 MiB). Returns `Ok(false)` at end of stream and `WouldBlock` errors unchanged.
    pub(crate) fn fill(&mut self, r: &mut impl Read) -> io::Result<bool> {
        let want = match self.wanted() {
            Ok(0) | Err(_) => return Ok(true),
            Ok(n) => n.min(1 << 20),
        };
        let start = self.buf.len();
        self.buf.resize(start + want, 0);
        let res = r.read(&mut self.buf[start..]);
        let got = *res.as_ref().unwrap_or(&0);
        self.buf.truncate(start + got);
        match res {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// The complete frame, if one has arrived.
    pub(crate) fn take(&mut self) -> Result<Option<(Kind, Vec<u8>)>> {
        if self.wanted()? != 0 {
            return Ok(None);
        }
        let h: [u8; HEADER] = self.buf[..HEADER].try_into().expect("header length");
        let (kind, _) = parse_header(&h)?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.drain(..HEADER);
        Ok(Some((kind, buf)))
    }
}

#[path = "reduction_message.rs"]
mod message;

#[cfg(test)]
#[path = "reduction_tests.rs"]
mod tests;
