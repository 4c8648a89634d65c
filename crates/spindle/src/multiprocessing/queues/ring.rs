//! The shared ring under every queue: a byte ring in a sealed memfd, two robust mutexes (one
//! for producers, one for consumers), two eventfd doorbells, and a `SOCK_SEQPACKET` pair that
//! carries out-of-line payloads and tells each side when the other is gone.
//!
//! **Commit by one store.** A producer copies its record in past the tail while holding the
//! producers' mutex, then publishes it with one atomic store of the tail word (byte position
//! and record count packed together). A consumer copies a record out while holding the
//! consumers' mutex, then releases it with one store of the head word. So at every instant
//! the ring is consistent: a producer killed mid-copy published nothing (its half record is
//! past the tail and will be overwritten), a consumer killed mid-copy took nothing (the record
//! is still at the head for the next one). The robust mutex's `EOWNERDEAD` needs no repair.
//!
//! **Large payloads** (over half the ring) travel out of line: the producer copies them into
//! a sealed memfd, sends it with `SCM_RIGHTS` on the socket, then commits a small record
//! naming the packet's id. The consumer peeks the packet (the kernel gives it a copy of the
//! descriptor and leaves the packet), reads the payload, commits the head, and only then
//! removes the packet; a packet left behind by a killed producer or consumer carries an id
//! below the next record's and is discarded. Such a payload lives in its memfd, referenced
//! from the socket's queue, until a consumer takes it: a producer never waits for a reader
//! to make room for it, so joining a producer never deadlocks on a large item.
//!
//! **Sleeping.** Only the holder of a side's mutex sleeps for data (or room); the others
//! wait on the mutex. The sleeper announces itself in a shared word, drains its doorbell,
//! checks the ring again, then polls the doorbell together with the socket (whose hang-up is
//! the other side's death). The other side rings the doorbell after its commit only when a
//! sleeper is announced, so a busy queue makes no system call at all.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::multiprocessing::shared_memory::Segment;
use crate::sys::fd::{self as sysfd, Interest};
use crate::sys::futex::{Locked, RobustMutex};
use crate::sys::shm;

const PUT_LOCK: usize = 0;
const GET_LOCK: usize = 64;
const TAIL: usize = 128;
const HEAD: usize = 192;
const DATA_SLEEPERS: usize = 256;
const SPACE_SLEEPERS: usize = 320;
const DONE: usize = 384;
const OOL_ID: usize = 448;
const MAXSIZE: usize = 512;
const CAPACITY: usize = 520;
/// Counts the handles' ends closed in an orderly way (a `Drop`), so that a put asks the kernel
/// about the receivers again at once (see [`PeerCheck`]).
const ENDS_GONE: usize = 576;
const RING: usize = 4096;

const POS_BITS: u32 = 40;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
/// Records are counted modulo 2^24 (the ring holds fewer).
pub(crate) const RECS_MASK: u64 = (1 << 24) - 1;
const REC_HEADER: usize = 8;
const KIND_INLINE: u32 = 1;
const KIND_OOL: u32 = 2;
/// Filler up to the ring's end, so that the next record starts at offset 0 in one piece.
const KIND_PAD: u32 = 3;

/// The default ring size: 1 MiB.
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 20;
/// How long a call whose time is up waits for a neighbour that holds its side's mutex while
/// copying a record (see `Shared::lock`): a copy takes microseconds, but its holder may be
/// descheduled for a while on a busy machine. Only a holder stopped mid-copy (`SIGSTOP`) makes
/// a `_nowait` call wait that long.
const NOWAIT_LOCK: Duration = Duration::from_secs(1);
/// The slices of that wait, between which the call checks whether the holder went to sleep.
const NOWAIT_SLICE: Duration = Duration::from_millis(1);
/// How long a side spins on the other's commit before it sleeps.
const SPIN: Duration = Duration::from_micros(20);

fn pos(word: u64) -> u64 {
    word & POS_MASK
}

fn recs(word: u64) -> u64 {
    word >> POS_BITS
}

fn pack(recs: u64, pos: u64) -> u64 {
    ((recs & RECS_MASK) << POS_BITS) | (pos & POS_MASK)
}

fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// What a ring operation ran into, beside success.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The time ran out (for a `_nowait` form: nothing to take, or no room, now).
    Timeout,
    /// The other side is gone: every consumer (for a put) or every producer and the ring is
    /// empty (for a get).
    Disconnected,
    /// A corrupt ring or packet, or a system failure.
    Bad(Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Bad(Error::Io(e))
    }
}

fn corrupt(what: &str) -> Stop {
    Stop::Bad(Error::Protocol(format!("queue segment is corrupt: {what}")))
}

/// Everything every handle of one queue shares, mapped in this process.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Shared {
    seg: Segment,
    #[serde(
        serialize_with = "ser_fd",
        deserialize_with = "crate::multiprocessing::shared_memory::deserialize_fd"
    )]
    data_bell: OwnedFd,
    #[serde(
        serialize_with = "ser_fd",
        deserialize_with = "crate::multiprocessing::shared_memory::deserialize_fd"
    )]
    space_bell: OwnedFd,
    /// The last HEAD this process read (producers compare with it first: HEAD only grows, so
    /// a stale copy can only underestimate the room, and the real word is read then).
    #[serde(skip)]
    seen_head: AtomicU64,
    /// The last TAIL this process read (consumers likewise).
    #[serde(skip)]
    seen_tail: AtomicU64,
}

fn ser_fd<S: serde::Serializer>(fd: &OwnedFd, s: S) -> Result<S::Ok, S::Error> {
    crate::multiprocessing::shared_memory::serialize_fd(fd.as_fd(), s)
}

/// How a put's item becomes bytes.
pub(crate) trait Encode {
    /// Encodes into `buf` when the encoding fits; the length written, or `None`.
    fn encode_in_place(&self, buf: &mut [u8]) -> Option<usize>;
    /// Encodes at the end of `out`.
    fn encode_vec(&self, out: &mut Vec<u8>) -> crate::Result<()>;
}

impl Shared {
    /// A new ring of `capacity` bytes (rounded up to a power of two, at least 4 KiB).
    pub(crate) fn new(capacity: usize, maxsize: u32) -> crate::Result<Shared> {
        let cap = capacity.clamp(4096, 1 << 36).next_power_of_two();
        let seg = Segment::new("spindle-queue", RING + cap)?;
        RobustMutex::at(seg.map(), PUT_LOCK).init()?;
        RobustMutex::at(seg.map(), GET_LOCK).init()?;
        seg.map()
            .atomic_u32(MAXSIZE)
            .store(maxsize, Ordering::Relaxed);
        seg.map()
            .atomic_u64(CAPACITY)
            .store(cap as u64, Ordering::Relaxed);
        Ok(Shared {
            seg,
            data_bell: sysfd::eventfd()?,
            space_bell: sysfd::eventfd()?,
            seen_head: AtomicU64::new(0),
            seen_tail: AtomicU64::new(0),
        })
    }

    /// A ring over `seg` as it is, without initialising anything (what a peer could send).
    #[cfg(test)]
    pub(crate) fn from_parts_for_test(seg: Segment) -> Shared {
        Shared {
            seg,
            data_bell: sysfd::eventfd().expect("eventfd"),
            space_bell: sysfd::eventfd().expect("eventfd"),
            seen_head: AtomicU64::new(0),
            seen_tail: AtomicU64::new(0),
        }
    }

    /// Checks what arrived from another process before it is used.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        if self.seg.len() < RING {
            return Err(Error::Protocol(format!(
                "queue segment of {} bytes is smaller than its header",
                self.seg.len()
            )));
        }
        let cap = self.capacity_raw();
        if !cap.is_power_of_two() || cap < 4096 || RING as u64 + cap > self.seg.len() as u64 {
            return Err(Error::Protocol(format!(
                "queue segment of {} bytes records a ring of {cap}",
                self.seg.len()
            )));
        }
        Ok(())
    }

    fn capacity_raw(&self) -> u64 {
        self.seg.map().atomic_u64(CAPACITY).load(Ordering::Relaxed)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity_raw() as usize
    }

    pub(crate) fn maxsize(&self) -> u32 {
        self.seg.map().atomic_u32(MAXSIZE).load(Ordering::Relaxed)
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        self.seg.map().atomic_u64(off)
    }

    fn word32(&self, off: usize) -> &AtomicU32 {
        self.seg.map().atomic_u32(off)
    }

    /// The largest payload that travels inline.
    pub(crate) fn max_inline(&self) -> usize {
        self.capacity() / 2 - REC_HEADER
    }

    /// Records that a handle closed one of its ends (after closing it): the next put of
    /// every handle asks the kernel whether a receiver is left.
    pub(crate) fn end_closed(&self) {
        // A segment that failed `validate` (too small) is left alone.
        if self.seg.len() >= RING {
            self.word32(ENDS_GONE).fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Items in the queue now.
    pub(crate) fn len(&self) -> usize {
        let t = self.word(TAIL).load(Ordering::Acquire);
        let h = self.word(HEAD).load(Ordering::Acquire);
        (recs(t).wrapping_sub(recs(h)) & RECS_MASK) as usize
    }

    /// Items put but not yet marked done (`JoinableQueue`).
    pub(crate) fn unfinished(&self) -> u64 {
        let t = self.word(TAIL).load(Ordering::Acquire);
        let done = self.word32(DONE).load(Ordering::Acquire) as u64;
        recs(t).wrapping_sub(done) & RECS_MASK
    }

    /// Marks one item done; `false` when none was outstanding.
    pub(crate) fn task_done(&self) -> bool {
        let d = self.word32(DONE);
        let mut cur = d.load(Ordering::Acquire);
        loop {
            let t = recs(self.word(TAIL).load(Ordering::Acquire));
            if t.wrapping_sub(cur as u64) & RECS_MASK == 0 {
                return false;
            }
            let next = ((cur as u64 + 1) & RECS_MASK) as u32;
            match d.compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        if self.unfinished() == 0 {
            crate::sys::futex::wake(d, u32::MAX);
        }
        true
    }

    /// Waits until every item put has been marked done.
    pub(crate) fn join(&self, deadline: Option<Instant>) -> bool {
        loop {
            let seen = self.word32(DONE).load(Ordering::Acquire);
            if self.unfinished() == 0 {
                return true;
            }
            let left = match deadline {
                None => Duration::from_millis(50),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    (d - now).min(Duration::from_millis(50))
                }
            };
            // Woken by the last task_done; the slice also covers a new put that raced us.
            crate::sys::futex::wait(self.word32(DONE), seen, Some(left));
        }
    }

    /// Takes the side's mutex at `off` by `deadline`. A call whose time is already up (a
    /// `_nowait`) still waits up to [`NOWAIT_LOCK`] for a holder that is copying a record,
    /// rather than report "empty" or "full" because a neighbour held the mutex for a
    /// microsecond; it stops waiting as soon as the holder sleeps for data or room (`sleepers`
    /// of the side is nonzero), whose answer is this call's answer too.
    fn lock(
        &self,
        off: usize,
        sleepers: usize,
        deadline: Option<Instant>,
    ) -> Result<Held<'_>, Stop> {
        let m = RobustMutex::at(self.seg.map(), off);
        let mut locked = m.lock(deadline)?;
        if matches!(locked, Locked::Busy) && deadline.is_some_and(|d| d <= Instant::now()) {
            // In slices, so that a holder that goes to sleep meanwhile is noticed.
            let give_up = Instant::now() + NOWAIT_LOCK;
            while matches!(locked, Locked::Busy)
                && self.word32(sleepers).load(Ordering::SeqCst) == 0
            {
                let now = Instant::now();
                if now >= give_up {
                    break;
                }
                locked = m.lock(Some((now + NOWAIT_SLICE).min(give_up)))?;
            }
        }
        match locked {
            // A holder killed mid-operation left the ring consistent (commits are single
            // stores): nothing to repair.
            Locked::Acquired | Locked::OwnerDied => Ok(Held(m)),
            Locked::Busy => Err(Stop::Timeout),
            Locked::WouldDeadlock => Err(Stop::Bad(Error::InvalidState(
                "a queue operation re-entered itself on this thread",
            ))),
        }
    }

    /// The 8-byte record header at ring position `at` (a multiple of 8).
    fn header_word(&self, at: u64) -> &AtomicU64 {
        let i = (at as usize) & (self.capacity() - 1);
        self.seg.map().atomic_u64(RING + i)
    }

    fn copy_in(&self, at: u64, data: &[u8]) {
        let cap = self.capacity();
        let i = (at as usize) & (cap - 1);
        let first = data.len().min(cap - i);
        self.seg.map().write(RING + i, &data[..first]);
        if first < data.len() {
            self.seg.map().write(RING, &data[first..]);
        }
    }

    fn copy_out(&self, at: u64, out: &mut [u8]) {
        let cap = self.capacity();
        let i = (at as usize) & (cap - 1);
        let first = out.len().min(cap - i);
        self.seg.map().read(RING + i, &mut out[..first]);
        if first < out.len() {
            self.seg.map().read(RING, &mut out[first..]);
        }
    }

    /// Sleeps until `bell` rings, `peer` hangs up or `deadline` passes, having announced
    /// itself in `sleepers` and checked `ready` once more after draining the bell.
    fn sleep(
        &self,
        sleepers: usize,
        bell: BorrowedFd<'_>,
        peer: Option<(BorrowedFd<'_>, Interest)>,
        deadline: Option<Instant>,
        ready: impl Fn() -> bool,
    ) -> Result<bool, Stop> {
        let s = self.word32(sleepers);
        s.fetch_add(1, Ordering::SeqCst);
        sysfd::eventfd_drain(bell);
        let result = if ready() {
            Ok(false)
        } else {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let mut fds = vec![(bell, Interest::Read)];
            fds.extend(peer);
            match sysfd::poll(&fds, left) {
                Ok(r) => Ok(r.get(1).is_some_and(|p| p.hangup)),
                Err(e) => Err(Stop::from(e)),
            }
        };
        s.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Puts one item. `sock`: the producers' socket end; `scratch`: a buffer for an item
    /// that cannot be encoded straight into the ring.
    ///
    /// The item is encoded in place, into the free bytes past the tail, when they are
    /// contiguous and large enough: one copy from the caller's value into shared memory.
    /// Otherwise it is encoded aside and copied in (wrapping around the ring's end), or, over
    /// half the ring, sent out of line.
    pub(crate) fn put(
        &self,
        item: &dyn Encode,
        scratch: &mut Vec<u8>,
        sock: BorrowedFd<'_>,
        check_peer: &PeerCheck,
        deadline: Option<Instant>,
    ) -> Result<(), Stop> {
        let cap = self.capacity() as u64;
        let max_inline = self.max_inline();
        let maxsize = self.maxsize() as u64;
        let _held = self.lock(PUT_LOCK, SPACE_SLEEPERS, deadline)?;
        // Every receiving end gone (closed, or its process dead): nobody could ever take it.
        // Asking the kernel costs a system call, so a handle asks when an end was closed since
        // it last asked (the `ENDS_GONE` count), and otherwise, for an end whose process died
        // without closing it, at most once a millisecond (and always before it waits).
        // Once the kernel said so, it stays so: no receiving end can be made again.
        let ends_gone = self.word32(ENDS_GONE).load(Ordering::Acquire);
        if check_peer.gone()
            || (check_peer.due(ends_gone)
                && sysfd::poll(&[(sock, Interest::Write)], Some(Duration::ZERO))?[0].hangup)
        {
            check_peer.set_gone();
            return Err(Stop::Disconnected);
        }
        // Set once the item had to be encoded aside: (record size, out-of-line memfd).
        let mut aside: Option<(u64, Option<OwnedFd>)> = None;
        // Read the consumers' word on the next round (an attempt failed on the copy).
        let mut refresh = false;
        // When this put first found no room (the clock is read only then).
        let mut began: Option<Instant> = None;
        loop {
            let tail = self.word(TAIL).load(Ordering::Acquire);
            if pos(tail) % 8 != 0 {
                return Err(corrupt("the tail off its 8-byte alignment"));
            }
            // The consumers' word lives on a line they write: read it only when the copy this
            // process saw last does not leave room for a small record.
            let mut head = self.seen_head.load(Ordering::Acquire);
            let stale_used = pos(tail).wrapping_sub(pos(head)) & POS_MASK;
            let stale_count = recs(tail).wrapping_sub(recs(head)) & RECS_MASK;
            let fresh = refresh
                || stale_used + (REC_HEADER as u64) * 8 > cap
                || (maxsize != 0 && stale_count >= maxsize)
                || aside.is_some();
            if fresh {
                head = self.word(HEAD).load(Ordering::SeqCst);
                self.seen_head.store(head, Ordering::Release);
            }
            refresh = false;
            let used = pos(tail).wrapping_sub(pos(head)) & POS_MASK;
            if used > cap {
                return Err(corrupt("more bytes used than the ring holds"));
            }
            let count = recs(tail).wrapping_sub(recs(head)) & RECS_MASK;
            let free = cap - used;
            let room_for_one = maxsize == 0 || count < maxsize;
            let at = pos(tail);
            if room_for_one {
                match &aside {
                    None => {
                        let i = (at % cap) as usize;
                        let to_end = cap as usize - i;
                        let contiguous = (free as usize).min(to_end);
                        if contiguous > REC_HEADER {
                            let room = (contiguous - REC_HEADER).min(max_inline);
                            let slot = self.seg.map().bytes_mut(RING + i + REC_HEADER, room);
                            if let Some(n) = item.encode_in_place(slot) {
                                self.commit(tail, KIND_INLINE, n, &[]);
                                break;
                            }
                        }
                        if !fresh {
                            // The room was judged on an old copy of the head: look again.
                            refresh = true;
                            continue;
                        }
                        // Too little room before the ring's end, but more after a wrap: pad
                        // the end and try again from offset 0 (a large item stays one copy).
                        let after_wrap = (free as usize).saturating_sub(to_end);
                        if to_end < cap as usize
                            && after_wrap > contiguous
                            && after_wrap > REC_HEADER
                        {
                            self.commit(tail, KIND_PAD, to_end - REC_HEADER, &[]);
                            continue;
                        }
                        scratch.clear();
                        item.encode_vec(scratch).map_err(Stop::Bad)?;
                        if scratch.len() > u32::MAX as usize {
                            return Err(Stop::Bad(Error::Codec(format!(
                                "an item of {} bytes is too large",
                                scratch.len()
                            ))));
                        }
                        aside = Some(if scratch.len() > max_inline {
                            let memfd = shm::sealed_copy(scratch)?;
                            ((REC_HEADER + 8) as u64, Some(memfd))
                        } else {
                            ((REC_HEADER + align8(scratch.len())) as u64, None)
                        });
                        continue;
                    }
                    Some((need, memfd)) if free >= *need => {
                        match memfd {
                            None => self.commit(tail, KIND_INLINE, scratch.len(), scratch),
                            Some(memfd) => {
                                let id = self.word(OOL_ID).fetch_add(1, Ordering::SeqCst);
                                self.send_out_of_line(sock, id, memfd.as_fd(), deadline)?;
                                self.commit(tail, KIND_OOL, scratch.len(), &id.to_le_bytes());
                            }
                        }
                        break;
                    }
                    Some(_) => {}
                }
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                return Err(Stop::Timeout);
            }
            if began.get_or_insert_with(Instant::now).elapsed() < SPIN {
                std::thread::yield_now();
                continue;
            }
            let need = aside.as_ref().map_or(REC_HEADER as u64 + 8, |(n, _)| *n);
            let fits = || {
                let h = self.word(HEAD).load(Ordering::SeqCst);
                let t = self.word(TAIL).load(Ordering::Acquire);
                let used = pos(t).wrapping_sub(pos(h)) & POS_MASK;
                let count = recs(t).wrapping_sub(recs(h)) & RECS_MASK;
                cap - used.min(cap) >= need && (maxsize == 0 || count < maxsize)
            };
            let hung_up = self.sleep(
                SPACE_SLEEPERS,
                self.space_bell.as_fd(),
                Some((sock, Interest::Hangup)),
                deadline,
                fits,
            )?;
            if hung_up {
                check_peer.set_gone();
                return Err(Stop::Disconnected);
            }
        }
        drop(_held);
        if self.word32(DATA_SLEEPERS).load(Ordering::SeqCst) > 0 {
            sysfd::eventfd_ring(self.data_bell.as_fd());
        }
        Ok(())
    }

    /// Writes a record's header (and `body`, unless it was encoded in place) at the tail and
    /// publishes it with one store.
    fn commit(&self, tail: u64, kind: u32, len: usize, body: &[u8]) {
        let at = pos(tail);
        // One 8-byte store: records start 8-aligned, so a header never wraps.
        let header = (len as u32 as u64) | ((kind as u64) << 32);
        self.header_word(at).store(header, Ordering::Relaxed);
        if !body.is_empty() {
            self.copy_in(at + REC_HEADER as u64, body);
        }
        let size = if kind == KIND_OOL { 8 } else { len };
        // A filler is no item: it does not count.
        let items = if kind == KIND_PAD { 0 } else { 1 };
        self.word(TAIL).store(
            pack(recs(tail) + items, at + (REC_HEADER + align8(size)) as u64),
            Ordering::SeqCst,
        );
    }

    fn send_out_of_line(
        &self,
        sock: BorrowedFd<'_>,
        id: u64,
        memfd: BorrowedFd<'_>,
        deadline: Option<Instant>,
    ) -> Result<(), Stop> {
        loop {
            match sysfd::send_packet(sock, &id.to_le_bytes(), &[memfd]) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    if left.is_some_and(|l| l.is_zero()) {
                        return Err(Stop::Timeout);
                    }
                    if sysfd::poll(&[(sock, Interest::Write)], left)?[0].hangup {
                        return Err(Stop::Disconnected);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Err(Stop::Disconnected),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Takes one item and decodes it with `decode`. `sock`: the consumers' socket end;
    /// `scratch`: a buffer for a record that wraps around the ring's end.
    ///
    /// A record lying in one piece is decoded straight from shared memory (the consumers'
    /// mutex is held and the head not yet moved, so no producer writes there). A record that
    /// does not decode is consumed all the same and reported.
    pub(crate) fn get<R>(
        &self,
        sock: BorrowedFd<'_>,
        scratch: &mut Vec<u8>,
        deadline: Option<Instant>,
        decode: impl FnOnce(&[u8]) -> crate::Result<R>,
    ) -> Result<R, Stop> {
        let cap = self.capacity() as u64;
        let held = self.lock(GET_LOCK, DATA_SLEEPERS, deadline)?;
        // When this get first found nothing (the clock is read only then).
        let mut began: Option<Instant> = None;
        let (head, tail) = loop {
            let head = self.word(HEAD).load(Ordering::Acquire);
            // The producers' word lives on a line they write: use the copy this process saw
            // last while it shows records past the head, else read the word.
            let seen = self.seen_tail.load(Ordering::Acquire);
            let ahead = pos(seen).wrapping_sub(pos(head)) & POS_MASK;
            if ahead >= REC_HEADER as u64 && ahead <= cap {
                break (head, seen);
            }
            let tail = self.word(TAIL).load(Ordering::SeqCst);
            self.seen_tail.store(tail, Ordering::Release);
            if pos(tail) != pos(head) {
                break (head, tail);
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                // Before giving up, see whether every producer is gone.
                let r = sysfd::poll(&[(sock, Interest::Read)], Some(Duration::ZERO))?;
                if r[0].hangup && pos(self.word(TAIL).load(Ordering::SeqCst)) == pos(head) {
                    return Err(Stop::Disconnected);
                }
                return Err(Stop::Timeout);
            }
            if began.get_or_insert_with(Instant::now).elapsed() < SPIN {
                std::thread::yield_now();
                continue;
            }
            let hung_up = self.sleep(
                DATA_SLEEPERS,
                self.data_bell.as_fd(),
                Some((sock, Interest::Hangup)),
                deadline,
                || pos(self.word(TAIL).load(Ordering::SeqCst)) != pos(head),
            )?;
            if hung_up && pos(self.word(TAIL).load(Ordering::SeqCst)) == pos(head) {
                return Err(Stop::Disconnected);
            }
        };
        let used = pos(tail).wrapping_sub(pos(head)) & POS_MASK;
        if used > cap || used < REC_HEADER as u64 {
            return Err(corrupt("tail and head disagree"));
        }
        let at = pos(head);
        if at % 8 != 0 {
            return Err(corrupt("a record off its 8-byte alignment"));
        }
        let header = self.header_word(at).load(Ordering::Relaxed);
        let len = (header & 0xffff_ffff) as usize;
        let kind = (header >> 32) as u32;
        if kind == KIND_PAD {
            let size = (REC_HEADER + align8(len)) as u64;
            if size > used || (at % cap) + size != cap {
                return Err(corrupt("a filler record that does not end the ring"));
            }
            self.word(HEAD)
                .store(pack(recs(head), at + size), Ordering::SeqCst);
            drop(held);
            return self.get(sock, scratch, deadline, decode);
        }
        let (decoded, size, ool) = match kind {
            KIND_INLINE => {
                let size = (REC_HEADER + align8(len)) as u64;
                if size > used {
                    return Err(corrupt("a record runs past the tail"));
                }
                let i = ((at + REC_HEADER as u64) % cap) as usize;
                let decoded = if i + len <= cap as usize {
                    decode(self.seg.map().bytes(RING + i, len))
                } else {
                    scratch.clear();
                    scratch.resize(len, 0);
                    self.copy_out(at + REC_HEADER as u64, scratch);
                    decode(scratch)
                };
                (decoded, size, false)
            }
            KIND_OOL => {
                let size = (REC_HEADER + 8) as u64;
                if size > used {
                    return Err(corrupt("a record runs past the tail"));
                }
                let mut idb = [0u8; 8];
                self.copy_out(at + REC_HEADER as u64, &mut idb);
                let bytes = take_out_of_line(sock, u64::from_le_bytes(idb), len)?;
                (decode(&bytes), size, true)
            }
            _ => return Err(corrupt("unknown record kind")),
        };
        self.word(HEAD)
            .store(pack(recs(head) + 1, at + size), Ordering::SeqCst);
        if ool {
            // The record is released; now the packet (a kill between the two leaves a stale
            // packet that the next out-of-line record discards by its id).
            let mut b = [0u8; 8];
            let _ = sysfd::recv_packet(sock, &mut b, false);
        }
        let more = pos(self.word(TAIL).load(Ordering::SeqCst)) != at + size;
        drop(held);
        if self.word32(SPACE_SLEEPERS).load(Ordering::SeqCst) > 0 {
            sysfd::eventfd_ring(self.space_bell.as_fd());
        }
        if more && self.word32(DATA_SLEEPERS).load(Ordering::SeqCst) > 0 {
            sysfd::eventfd_ring(self.data_bell.as_fd());
        }
        decoded.map_err(Stop::Bad)
    }

    /// For `wait`: the doorbell to poll.
    pub(crate) fn data_bell(&self) -> BorrowedFd<'_> {
        self.data_bell.as_fd()
    }

    /// For `wait`: announce (or withdraw) a sleeper on the data doorbell.
    pub(crate) fn announce(&self, on: bool) {
        if on {
            self.word32(DATA_SLEEPERS).fetch_add(1, Ordering::SeqCst);
        } else {
            self.word32(DATA_SLEEPERS).fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// For `wait`: whether an item is there; after a doorbell, drains it and passes it on if
    /// an item is there (so that a sleeping consumer does not miss it).
    pub(crate) fn has_items(&self, polled: bool) -> bool {
        if polled {
            sysfd::eventfd_drain(self.data_bell.as_fd());
        }
        let ready = pos(self.word(TAIL).load(Ordering::SeqCst))
            != pos(self.word(HEAD).load(Ordering::SeqCst));
        if polled && ready {
            // Pass the doorbell on: another sleeper may be waiting for the same item.
            sysfd::eventfd_ring(self.data_bell.as_fd());
        }
        ready
    }
}

/// Reads the out-of-line payload `id` (of `len` bytes) from the packets waiting on `sock`,
/// discarding stale packets (ids below `id`) left by killed peers.
fn take_out_of_line(sock: BorrowedFd<'_>, id: u64, len: usize) -> Result<Vec<u8>, Stop> {
    loop {
        let mut b = [0u8; 8];
        let p = match sysfd::recv_packet(sock, &mut b, true) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(corrupt("an out-of-line record without its packet"))
            }
            Err(e) => return Err(e.into()),
        };
        if p.len == 0 && p.fds.is_empty() {
            return Err(corrupt("an out-of-line record without its packet"));
        }
        let got = u64::from_le_bytes(b);
        if p.len != 8 || p.truncated || p.fds.len() != 1 || got < id {
            // Stale (or malformed): consume it and look at the next.
            let _ = sysfd::recv_packet(sock, &mut b, false);
            continue;
        }
        if got != id {
            return Err(corrupt("out-of-line packets out of order"));
        }
        let memfd = p
            .fds
            .into_iter()
            .next()
            .ok_or_else(|| corrupt("no descriptor"))?;
        if !shm::is_sealed_payload(memfd.as_fd()) || shm::size_of(memfd.as_fd())? != len as u64 {
            return Err(corrupt(
                "an out-of-line payload is unsealed or of the wrong size",
            ));
        }
        let mut out = vec![0u8; len];
        sysfd::read_exact_at(memfd.as_fd(), &mut out, 0)?;
        return Ok(out);
    }
}

/// When a handle last asked the kernel whether the other side is still there.
#[derive(Debug, Default)]
pub(crate) struct PeerCheck {
    last: std::sync::Mutex<Option<Instant>>,
    calls: std::sync::atomic::AtomicU32,
    /// The `ENDS_GONE` count this handle last asked the kernel at.
    ends_gone: AtomicU32,
    /// The kernel said every receiving end is gone.
    gone: std::sync::atomic::AtomicBool,
}

impl PeerCheck {
    /// Whether every receiving end was found gone before.
    fn gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }

    fn set_gone(&self) {
        self.gone.store(true, Ordering::Relaxed);
    }

    /// Whether it is time to ask again: when an end was closed since the last time
    /// (`ends_gone` moved), on the first put, then when 64 more puts and more than a
    /// millisecond have passed (the clock is read once per 64 puts).
    fn due(&self, ends_gone: u32) -> bool {
        if self.ends_gone.load(Ordering::Relaxed) != ends_gone {
            self.ends_gone.store(ends_gone, Ordering::Relaxed);
            return true;
        }
        if self.calls.fetch_add(1, Ordering::Relaxed) % 64 != 0 {
            return false;
        }
        let Ok(mut last) = self.last.try_lock() else {
            return false;
        };
        let now = Instant::now();
        match *last {
            Some(t) if now.duration_since(t) < Duration::from_millis(1) => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

/// Held mutex of one side; unlocks on drop.
struct Held<'a>(RobustMutex<'a>);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}
