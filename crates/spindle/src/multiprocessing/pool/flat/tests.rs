//! The flat layout: what it takes, what it refuses, and what hostile bytes become.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;

fn round_trip<T>(v: &T) -> (usize, T)
where
    T: Serialize + DeserializeOwned,
{
    let mut out = vec![0xAA];
    let n = append(v, &mut out).expect("flat");
    assert_eq!(out.len(), 1 + n);
    (n, decode::<T>(&out[1..]).expect("decodes"))
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Point {
    x: f64,
    y: f32,
    tag: char,
    ok: bool,
    id: (u8, i16, [u32; 2]),
}

#[test]
fn plain_data_travels_at_its_width_little_endian() {
    let mut out = Vec::new();
    assert_eq!(append(&0x0102_0304_0506_0708u64, &mut out).unwrap(), 8);
    assert_eq!(out, [8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(round_trip(&u64::MAX), (8, u64::MAX));
    assert_eq!(round_trip(&-5i8), (1, -5));
    assert_eq!(round_trip(&i128::MIN), (16, i128::MIN));
    assert_eq!(round_trip(&u128::MAX), (16, u128::MAX));
    assert_eq!(round_trip(&-1.5f64), (8, -1.5));
    assert_eq!(round_trip(&'é'), (4, 'é'));
    assert_eq!(round_trip(&true), (1, true));
    assert_eq!(round_trip(&()), (0, ()));
    assert_eq!(round_trip(&(1u16, 2u32, [3u8; 5])), (11, (1, 2, [3; 5])));
    let p = Point {
        x: 1.0,
        y: -2.0,
        tag: 'z',
        ok: false,
        id: (9, -9, [7, 8]),
    };
    assert_eq!(round_trip(&p), (8 + 4 + 4 + 1 + 1 + 2 + 8, p));
    let d = Duration::new(3, 999);
    assert_eq!(round_trip(&d), (12, d));
    assert_eq!(
        round_trip(&std::num::Wrapping(7u32)),
        (4, std::num::Wrapping(7))
    );
    let nan = round_trip(&f32::NAN).1;
    assert!(nan.is_nan());
}

#[derive(Serialize)]
struct Skips {
    a: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    b: Option<u32>,
}

#[derive(Serialize)]
enum Kind {
    A,
    B(u32),
}

#[test]
fn what_could_change_size_is_refused_and_leaves_the_buffer_as_it_was() {
    fn refused<T: Serialize>(v: &T) {
        let mut out = vec![1, 2, 3];
        assert!(
            append(v, &mut out).is_err(),
            "{}",
            std::any::type_name::<T>()
        );
        assert_eq!(out, [1, 2, 3]);
    }
    refused(&"text");
    refused(&String::from("text"));
    refused(&vec![1u8, 2]);
    refused(&Some(5u64));
    refused(&None::<u64>);
    refused(&Kind::A);
    refused(&Kind::B(1));
    refused(&(1u64, "tail"));
    refused(&std::collections::HashMap::<u8, u8>::new());
    refused(&Skips { a: 1, b: None });
    refused(&std::path::PathBuf::from("/tmp"));
}

#[test]
fn hostile_bytes_are_typed_errors_never_panics() {
    assert!(decode::<u64>(&[1, 2, 3]).is_err(), "too short");
    assert!(decode::<u64>(&[0; 9]).is_err(), "too long");
    assert!(decode::<bool>(&[2]).is_err(), "a bool of 2");
    assert!(
        decode::<char>(&0xD800u32.to_le_bytes()).is_err(),
        "a surrogate"
    );
    assert!(decode::<char>(&0x11_0000u32.to_le_bytes()).is_err());
    assert!(decode::<std::num::NonZeroU32>(&[0; 4]).is_err());
    // Requests no flat writer makes: never an allocation from a length in the bytes.
    assert!(decode::<String>(&[0xff; 64]).is_err());
    assert!(decode::<Vec<u64>>(&[0xff; 64]).is_err());
    assert!(decode::<Option<u8>>(&[1, 1]).is_err());
    assert!(decode::<std::collections::HashMap<u8, u8>>(&[1, 1, 1]).is_err());
    assert!(decode::<serde_json_like::Any>(&[0; 8]).is_err());
    let e = decode::<u32>(&[1]).unwrap_err();
    assert!(e.to_string().contains("ends early"), "{e}");
    // Every length of random bytes, as every type: errors or values, nothing else.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for len in 0..64 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = decode::<u64>(&bytes);
        let _ = decode::<Point>(&bytes);
        let _ = decode::<(bool, char, u128)>(&bytes);
        let _ = decode::<Duration>(&bytes);
        let _ = decode::<String>(&bytes);
    }
}

/// A type whose `Deserialize` asks for anything (`deserialize_any`), as self-describing
/// formats allow.
mod serde_json_like {
    use serde::de::{Deserialize, Deserializer, IgnoredAny};

    pub(super) struct Any;

    impl<'de> Deserialize<'de> for Any {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(IgnoredAny).map(|_| Any)
        }
    }
}
