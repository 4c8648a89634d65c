//! The flat layout: how a pool moves plain data (numbers, `bool`, `char`, and tuples, arrays
//! and structs of them) without a length or a varint per value (docs/decisions.md, D160).
//!
//! A value is written as its serde shape dictates, every primitive at its fixed width,
//! little-endian, fields in order, nothing else: a `u64` is 8 bytes, `(u32, f64)` 12, a
//! `[u16; 3]` 6, `()` none. Anything whose size could depend on the value (strings, byte
//! strings, options, sequences, maps, enums, a skipped field) is refused by the encoder, so
//! every value of a type that encodes at all has one size, the *stride*, and a run of values
//! is `count × stride` bytes cut by arithmetic. Types that are refused travel the general way
//! (a varint length and postcard per value, `protocol.rs`).
//!
//! The decoder trusts nothing: every read is bounds-checked, a value must use exactly its
//! stride, a `bool` is 0 or 1, a `char` a scalar value, and any request a flat writer never
//! makes (a string, a sequence, `deserialize_any`) is an error. There are no lengths in the
//! layout, so hostile bytes cannot make it allocate.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};
use serde::ser::{self, Serialize};

/// A segment's or a run's stride when its items are not flat (each is `varint length +
/// postcard`).
pub(crate) const FRAMED: u32 = u32::MAX;

/// The encoder met a shape whose size could depend on the value.
#[derive(Debug)]
pub(crate) struct NotFlat;

impl fmt::Display for NotFlat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a fixed-size value")
    }
}

impl std::error::Error for NotFlat {}

impl ser::Error for NotFlat {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        NotFlat
    }
}

/// Appends `value` in the flat layout and returns its size; on refusal `out` is left as it
/// was.
#[inline]
pub(crate) fn append<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<usize, NotFlat> {
    let at = out.len();
    match value.serialize(Ser { out: &mut *out }) {
        Ok(()) => Ok(out.len() - at),
        Err(e) => {
            out.truncate(at);
            Err(e)
        }
    }
}

/// Writes `value` in the flat layout into `dst`, which it must fill exactly (the stride of a
/// run being filled in place).
///
/// # Errors
///
/// [`NotFlat`] when the value is not flat or its size is not `dst`'s; `dst` then holds
/// whatever was written.
#[inline]
pub(crate) fn write<T: Serialize + ?Sized>(value: &T, dst: &mut [u8]) -> Result<(), NotFlat> {
    let mut slot = Slot { buf: dst, at: 0 };
    value.serialize(Ser { out: &mut slot })?;
    if slot.at == slot.buf.len() {
        Ok(())
    } else {
        Err(NotFlat)
    }
}

/// Where the flat encoder puts bytes: a growing buffer, or a slot of fixed size.
trait Put {
    fn put<const N: usize>(&mut self, bytes: [u8; N]) -> Result<(), NotFlat>;
}

impl Put for Vec<u8> {
    #[inline]
    fn put<const N: usize>(&mut self, bytes: [u8; N]) -> Result<(), NotFlat> {
        self.extend_from_slice(&bytes);
        Ok(())
    }
}

/// A slot of fixed size, filled from the front.
struct Slot<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Put for Slot<'_> {
    #[inline]
    fn put<const N: usize>(&mut self, bytes: [u8; N]) -> Result<(), NotFlat> {
        let end = self.at + N;
        match self.buf.get_mut(self.at..end) {
            Some(dst) => {
                dst.copy_from_slice(&bytes);
                self.at = end;
                Ok(())
            }
            None => Err(NotFlat),
        }
    }
}

/// Why flat bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(Box<str>);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    #[cold]
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError(msg.to_string().into())
    }
}

#[cold]
fn fail(what: &str) -> DecodeError {
    DecodeError(what.into())
}

/// Decodes one `T` that must use exactly all of `bytes`.
///
/// # Errors
///
/// When the bytes are too few or too many for a `T`, or hold a value no `T` encodes to.
#[inline]
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut de = De { input: bytes };
    let v = T::deserialize(&mut de)?;
    if de.input.is_empty() {
        Ok(v)
    } else {
        Err(fail("a flat value is shorter than its stride"))
    }
}

/// The flat encoder: primitives at their width, compounds as their fields.
struct Ser<'a, P: Put> {
    out: &'a mut P,
}

macro_rules! put {
    ($name:ident, $t:ty) => {
        #[inline]
        fn $name(self, v: $t) -> Result<(), NotFlat> {
            self.out.put(v.to_le_bytes())
        }
    };
}

macro_rules! refuse {
    ($name:ident $(, $arg:ty)*) => {
        #[inline]
        fn $name(self $(, _: $arg)*) -> Result<(), NotFlat> {
            Err(NotFlat)
        }
    };
}

impl<'a, P: Put> ser::Serializer for Ser<'a, P> {
    type Ok = ();
    type Error = NotFlat;
    type SerializeSeq = ser::Impossible<(), NotFlat>;
    type SerializeTuple = Ser<'a, P>;
    type SerializeTupleStruct = Ser<'a, P>;
    type SerializeTupleVariant = ser::Impossible<(), NotFlat>;
    type SerializeMap = ser::Impossible<(), NotFlat>;
    type SerializeStruct = Ser<'a, P>;
    type SerializeStructVariant = ser::Impossible<(), NotFlat>;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), NotFlat> {
        self.out.put([u8::from(v)])
    }

    put!(serialize_i8, i8);
    put!(serialize_i16, i16);
    put!(serialize_i32, i32);
    put!(serialize_i64, i64);
    put!(serialize_i128, i128);
    put!(serialize_u8, u8);
    put!(serialize_u16, u16);
    put!(serialize_u32, u32);
    put!(serialize_u64, u64);
    put!(serialize_u128, u128);
    put!(serialize_f32, f32);
    put!(serialize_f64, f64);

    #[inline]
    fn serialize_char(self, v: char) -> Result<(), NotFlat> {
        self.out.put(u32::from(v).to_le_bytes())
    }

    refuse!(serialize_str, &str);
    refuse!(serialize_bytes, &[u8]);
    refuse!(serialize_none);

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), NotFlat> {
        Err(NotFlat)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), NotFlat> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), NotFlat> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), NotFlat> {
        Err(NotFlat)
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), NotFlat> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotFlat> {
        Err(NotFlat)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotFlat> {
        Err(NotFlat)
    }

    #[inline]
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotFlat> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotFlat> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotFlat> {
        Err(NotFlat)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotFlat> {
        Err(NotFlat)
    }

    #[inline]
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, NotFlat> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotFlat> {
        Err(NotFlat)
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, _: &T) -> Result<(), NotFlat> {
        Err(NotFlat)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

impl<P: Put> ser::SerializeTuple for Ser<'_, P> {
    type Ok = ();
    type Error = NotFlat;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotFlat> {
        value.serialize(Ser {
            out: &mut *self.out,
        })
    }

    #[inline]
    fn end(self) -> Result<(), NotFlat> {
        Ok(())
    }
}

impl<P: Put> ser::SerializeTupleStruct for Ser<'_, P> {
    type Ok = ();
    type Error = NotFlat;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotFlat> {
        value.serialize(Ser {
            out: &mut *self.out,
        })
    }

    #[inline]
    fn end(self) -> Result<(), NotFlat> {
        Ok(())
    }
}

impl<P: Put> ser::SerializeStruct for Ser<'_, P> {
    type Ok = ();
    type Error = NotFlat;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), NotFlat> {
        value.serialize(Ser {
            out: &mut *self.out,
        })
    }

    /// A skipped field would make values of one type differ in size (and postcard cannot
    /// decode them either).
    fn skip_field(&mut self, _: &'static str) -> Result<(), NotFlat> {
        Err(NotFlat)
    }

    #[inline]
    fn end(self) -> Result<(), NotFlat> {
        Ok(())
    }
}

/// The flat decoder over the bytes of one value.
struct De<'de> {
    input: &'de [u8],
}

impl<'de> De<'de> {
    #[inline]
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        match self.input.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.input = rest;
                Ok(*head)
            }
            None => Err(fail("a flat value ends early")),
        }
    }
}

macro_rules! get {
    ($name:ident, $visit:ident, $t:ty) => {
        #[inline]
        fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            let b = self.take::<{ std::mem::size_of::<$t>() }>()?;
            visitor.$visit(<$t>::from_le_bytes(b))
        }
    };
}

macro_rules! never {
    ($name:ident $(, $arg:ty)*) => {
        fn $name<V: Visitor<'de>>(self $(, _: $arg)*, _: V) -> Result<V::Value, DecodeError> {
            Err(fail(concat!(
                "the flat layout holds no such value (",
                stringify!($name),
                ")"
            )))
        }
    };
}

impl<'de> de::Deserializer<'de> for &mut De<'de> {
    type Error = DecodeError;

    never!(deserialize_any);
    never!(deserialize_str);
    never!(deserialize_string);
    never!(deserialize_bytes);
    never!(deserialize_byte_buf);
    never!(deserialize_option);
    never!(deserialize_seq);
    never!(deserialize_map);
    never!(deserialize_identifier);
    never!(deserialize_ignored_any);
    never!(deserialize_enum, &'static str, &'static [&'static str]);

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.take::<1>()? {
            [0] => visitor.visit_bool(false),
            [1] => visitor.visit_bool(true),
            _ => Err(fail("a flat bool is neither 0 nor 1")),
        }
    }

    get!(deserialize_i8, visit_i8, i8);
    get!(deserialize_i16, visit_i16, i16);
    get!(deserialize_i32, visit_i32, i32);
    get!(deserialize_i64, visit_i64, i64);
    get!(deserialize_i128, visit_i128, i128);
    get!(deserialize_u8, visit_u8, u8);
    get!(deserialize_u16, visit_u16, u16);
    get!(deserialize_u32, visit_u32, u32);
    get!(deserialize_u64, visit_u64, u64);
    get!(deserialize_u128, visit_u128, u128);
    get!(deserialize_f32, visit_f32, f32);
    get!(deserialize_f64, visit_f64, f64);

    #[inline]
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let n = u32::from_le_bytes(self.take::<4>()?);
        match char::from_u32(n) {
            Some(c) => visitor.visit_char(c),
            None => Err(fail("a flat char is not a Unicode scalar value")),
        }
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_seq(Fields {
            de: self,
            left: len,
        })
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_seq(Fields {
            de: self,
            left: len,
        })
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_seq(Fields {
            de: self,
            left: fields.len(),
        })
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a tuple or the fields of a struct, in order.
struct Fields<'a, 'de> {
    de: &'a mut De<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Fields<'_, 'de> {
    type Error = DecodeError;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

#[cfg(test)]
mod tests;
