use super::*;

fn frame(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    write_frame(&mut v, kind, payload).unwrap();
    v
}

#[test]
fn round_trip_of_values_and_frames() {
    let v = (7u32, String::from("x"), vec![1u8, 2, 3]);
    let bytes = encode(&v).unwrap();
    assert_eq!(decode::<(u32, String, Vec<u8>)>(&bytes).unwrap(), v);
    let f = frame(Kind::Value, &bytes);
    let (kind, payload) = read_frame(&mut &f[..]).unwrap();
    assert_eq!(kind, Kind::Value);
    assert_eq!(payload, bytes);
}

#[test]
fn trailing_bytes_are_a_codec_error() {
    let mut bytes = encode(&5u32).unwrap();
    bytes.push(0);
    assert!(matches!(decode::<u32>(&bytes), Err(Error::Codec(m)) if m.contains("trailing")));
}

#[test]
fn garbage_values_are_codec_errors() {
    assert!(matches!(
        decode::<String>(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
        Err(Error::Codec(_))
    ));
    assert!(matches!(decode::<u64>(&[]), Err(Error::Codec(_))));
    // A length prefix far beyond the input allocates nothing and fails.
    assert!(matches!(
        decode::<Vec<u8>>(&[0xff, 0xff, 0xff, 0xff, 0x07]),
        Err(Error::Codec(_))
    ));
}

#[test]
fn broken_frames_are_protocol_errors() {
    let good = frame(Kind::Value, b"abc");
    // Truncated header, truncated payload, empty stream.
    for cut in [0, 3, HEADER, HEADER + 2] {
        let r = read_frame(&mut &good[..cut]);
        assert!(matches!(r, Err(Error::Protocol(_))), "cut at {cut}: {r:?}");
    }
    let mut bad_magic = good.clone();
    bad_magic[0] = b'x';
    assert!(
        matches!(read_frame(&mut &bad_magic[..]), Err(Error::Protocol(m)) if m.contains("magic"))
    );
    let mut bad_version = good.clone();
    bad_version[1] = 9;
    assert!(
        matches!(read_frame(&mut &bad_version[..]), Err(Error::Protocol(m)) if m.contains("version"))
    );
    let mut bad_kind = good.clone();
    bad_kind[2] = 77;
    assert!(
        matches!(read_frame(&mut &bad_kind[..]), Err(Error::Protocol(m)) if m.contains("kind"))
    );
}

#[test]
fn oversized_frames_are_refused_before_allocating() {
    let mut h = header(Kind::Value, 0).unwrap();
    h[3..7].copy_from_slice(&u32::MAX.to_le_bytes());
    let r = read_frame(&mut &h[..]);
    assert!(matches!(r, Err(Error::Protocol(m)) if m.contains("limit")));
    assert!(matches!(
        header(Kind::Value, MAX_FRAME + 1),
        Err(Error::Codec(_))
    ));
    // A frame that claims 1 GiB but brings 3 bytes is a truncation, not a 1 GiB allocation.
    let mut h = header(Kind::Value, MAX_FRAME).unwrap().to_vec();
    h.extend_from_slice(b"abc");
    assert!(matches!(read_frame(&mut &h[..]), Err(Error::Protocol(m)) if m.contains("truncated")));
}

#[test]
fn frame_buffer_assembles_pieces_and_rejects_garbage() {
    let f = frame(Kind::Panic, b"hello world");
    let mut fb = FrameBuffer::default();
    // A reader that hands out two bytes at a time, as a slow socket would.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(2).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let mut src = Trickle(&f);
    let mut reads = 0;
    while fb.take().unwrap().is_none() {
        assert!(fb.fill(&mut src).unwrap());
        reads += 1;
    }
    assert!(reads >= f.len() / 2, "the frame arrived in pieces");
    let mut fb = FrameBuffer::default();
    let mut src = Trickle(&f);
    while fb.wanted().unwrap() > 0 {
        fb.fill(&mut src).unwrap();
    }
    assert_eq!(
        fb.take().unwrap(),
        Some((Kind::Panic, b"hello world".to_vec()))
    );
    let mut fb = FrameBuffer::default();
    fb.fill(&mut &b"GARBAGE GARBAGE"[..]).unwrap();
    assert!(matches!(fb.take(), Err(Error::Protocol(_))));
    let mut fb = FrameBuffer::default();
    assert!(!fb.fill(&mut &b""[..]).unwrap(), "end of stream");
}
