//! [`Listener`] and [`client`]: Python's `multiprocessing.connection.Listener` and `Client`
//! for the `AF_UNIX` family, with the `authkey` handshake: each side proves it knows the key
//! (HMAC-SHA256 of 32 random bytes the other side chose) before any message flows, within
//! 10 s and in frames of at most 256 bytes, so a hostile peer can neither stall nor flood it.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::stream::Stream;
use super::{Connection, RecvError};
use crate::error::Error;

const CHALLENGE: usize = 32;
const HANDSHAKE_LIMIT: usize = 256;
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn digest(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

fn verify(key: &[u8], msg: &[u8], tag: &[u8]) -> bool {
    use hmac::Mac;
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(msg);
    mac.verify_slice(tag).is_ok()
}

fn random_bytes() -> io::Result<[u8; CHALLENGE]> {
    let mut b = [0u8; CHALLENGE];
    io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut b)?;
    Ok(b)
}

fn send(c: &Stream, bytes: &[u8], deadline: Instant) -> crate::Result<()> {
    c.send_frame(
        HANDSHAKE_LIMIT,
        |b| {
            b.extend_from_slice(bytes);
            Ok(())
        },
        Some(deadline),
    )
    .map_err(Error::from)
}

fn recv(c: &Stream, deadline: Instant) -> Result<Vec<u8>, RecvError> {
    c.recv_frame(HANDSHAKE_LIMIT, Some(deadline))
}

fn auth_error(what: &str) -> Error {
    Error::Protocol(format!("authentication failed: {what}"))
}

/// Proves to the peer that we know `key`, then checks that it does.
fn deliver_challenge(c: &Stream, key: &[u8], deadline: Instant) -> crate::Result<()> {
    let challenge = random_bytes()?;
    send(c, &challenge, deadline)?;
    let answer = recv(c, deadline)?;
    if verify(key, &challenge, &answer) {
        send(c, WELCOME, deadline)?;
        Ok(())
    } else {
        let _ = send(c, FAILURE, deadline);
        Err(auth_error("the peer does not know the authkey"))
    }
}

fn answer_challenge(c: &Stream, key: &[u8], deadline: Instant) -> crate::Result<()> {
    let challenge = recv(c, deadline)?;
    if challenge.len() != CHALLENGE {
        return Err(auth_error("malformed challenge"));
    }
    let tag = digest(key, &challenge);
    send(c, &tag, deadline)?;
    match recv(c, deadline) {
        Ok(reply) if reply == WELCOME => Ok(()),
        Ok(_) | Err(RecvError::Disconnected) => Err(auth_error("the peer refused our authkey")),
        Err(e) => Err(e.into()),
    }
}

/// The typed connection after a handshake. The stream keeps whatever the handshake read
/// ahead: the peer's first message may have arrived in the same read as its last handshake
/// frame.
fn upgrade<S, R>(c: Stream) -> Connection<S, R> {
    Connection::from_stream(c)
}

/// Accepts connections on a Unix socket path (Python's `multiprocessing.connection.Listener`
/// for the `AF_UNIX` family), authenticating each with `authkey` when given: both sides prove
/// they know the key (HMAC-SHA256 of a random challenge, each way) before any message flows.
///
/// ```
/// use spindle::multiprocessing::connection::{client, Listener};
/// let dir = std::env::temp_dir().join(format!("spindle-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("listener.sock");
/// let listener = Listener::bind(&path, Some(b"secret"))?;
/// let t = std::thread::spawn({
///     let path = path.clone();
///     move || client::<String, ()>(&path, Some(b"secret")).unwrap().send(&"hi".into()).unwrap()
/// });
/// let conn = listener.accept::<(), String>()?;
/// assert_eq!(conn.recv()?, "hi");
/// t.join().unwrap();
/// assert!(client::<(), ()>(&path, Some(b"wrong")).is_err());
/// # drop(listener); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), spindle::Error>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    sock: UnixListener,
    path: PathBuf,
    authkey: Option<Vec<u8>>,
    /// The process that bound the path: only it removes the file (a forked child that drops
    /// its copy leaves it alone).
    owner: u32,
}

impl Listener {
    /// Listens on `path` (which must not exist yet).
    pub fn bind(path: impl AsRef<Path>, authkey: Option<&[u8]>) -> crate::Result<Listener> {
        let path = path.as_ref().to_path_buf();
        Ok(Listener {
            sock: UnixListener::bind(&path)?,
            path,
            authkey: authkey.map(<[u8]>::to_vec),
            owner: std::process::id(),
        })
    }

    /// The address (Python's `address`).
    pub fn address(&self) -> &Path {
        &self.path
    }

    /// Waits for a client and authenticates it.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] when the client fails the handshake (the wrong key, a malformed
    /// or slow answer: at most 10 s); the listener stays usable.
    pub fn accept<S, R>(&self) -> crate::Result<Connection<S, R>> {
        let (stream, _) = self.sock.accept()?;
        let c = Stream::new(OwnedFd::from(stream));
        if let Some(key) = &self.authkey {
            let deadline = Instant::now() + HANDSHAKE_TIME;
            deliver_challenge(&c, key, deadline)?;
            answer_challenge(&c, key, deadline)?;
        }
        Ok(upgrade(c))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if std::process::id() == self.owner {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Connects to a [`Listener`] at `path` (Python's `multiprocessing.connection.Client`),
/// authenticating with `authkey` when given.
///
/// # Errors
///
/// [`Error::Protocol`] when the handshake fails (the wrong key on either side).
pub fn client<S, R>(
    path: impl AsRef<Path>,
    authkey: Option<&[u8]>,
) -> crate::Result<Connection<S, R>> {
    let stream = UnixStream::connect(path)?;
    let c = Stream::new(OwnedFd::from(stream));
    if let Some(key) = authkey {
        let deadline = Instant::now() + HANDSHAKE_TIME;
        answer_challenge(&c, key, deadline)?;
        deliver_challenge(&c, key, deadline)?;
    }
    Ok(upgrade(c))
}
