//! alert::json: the alert document's JSON, written straight into the output buffer.
//!
//! The same text as `serde_json` through [`SafeFormatter`](crate::syslog::SafeFormatter)
//! (compact, DEL, C1 controls and U+2028/9 escaped as well), for the shapes the alert
//! structs have: structs, options, strings, integers, sequences, maps, a float (handed to
//! serde_json), `serde_json::Value` and `RawValue`. What it costs less: a struct's keys are
//! written as they are (they are our own identifiers, with nothing to escape), and a
//! string is checked for escapes eight bytes at a time, and written in one copy when it has
//! none. Anything else is refused with [`Unsupported`], and the caller
//! writes the document through serde_json instead, so a new field type can cost speed, never
//! correctness. The tests hold the two writers to the same bytes.

use std::fmt;

use serde::ser::{self, Impossible, Serialize};

use crate::syslog::format::needs_unicode_escape;

/// The shape the fast writer does not write; the caller falls back to serde_json.
#[derive(Debug)]
pub struct Unsupported(String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not written by the fast JSON writer: {}", self.0)
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Unsupported(msg.to_string())
    }
}

fn refuse<T>(what: &str) -> Result<T, Unsupported> {
    Err(Unsupported(what.to_owned()))
}

/// serde_json's name for the struct a `RawValue` serialises as (and its one field). It is
/// serde_json's private detail: a release that renamed it would make this writer put the raw
/// text in quotes, which the tests that compare the two writers on RawValues and on real
/// alerts (whose `rule` is one) catch.
const RAW_TOKEN: &str = "$serde_json::private::RawValue";

/// Writes a value as JSON at the end of `out`.
pub struct Writer<'o> {
    pub out: &'o mut Vec<u8>,
}

/// Whether a byte needs a look before it is copied: below space, DEL or above, `"` or `\`.
fn special(c: u8) -> bool {
    c.wrapping_sub(0x20) >= 0x5f || c == b'"' || c == b'\\'
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = ONES << 7;

/// The high bit of each byte of `x` below `n` (n ≤ 128) is set in the result, if any is.
fn any_below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH
}

/// Flags (high bits) on the [`special`] bytes of the word `x`; the lowest flag is exact.
fn flags(x: u64) -> u64 {
    (x & HIGH)
        | any_below(x, 0x20)
        | any_below(x ^ (ONES * 0x7f), 1)
        | any_below(x ^ (ONES * u64::from(b'"')), 1)
        | any_below(x ^ (ONES * u64::from(b'\\')), 1)
}

/// Whether any byte of `b` is [`special`]: eight bytes at a time, with no branch per byte.
fn needs_escape(b: &[u8]) -> bool {
    let (words, tail) = b.as_chunks::<8>();
    let acc = words
        .iter()
        .fold(0, |acc, w| acc | flags(u64::from_le_bytes(*w)));
    acc != 0 || tail.iter().any(|&c| special(c))
}

/// The first [`special`] byte of `b` at or after `from`, eight bytes at a time.
fn next_special(b: &[u8], from: usize) -> Option<usize> {
    let hay = b.get(from..)?;
    let (words, tail) = hay.as_chunks::<8>();
    for (k, w) in words.iter().enumerate() {
        let f = flags(u64::from_le_bytes(*w));
        if f != 0 {
            return Some(from + k * 8 + (f.trailing_zeros() / 8) as usize);
        }
    }
    let j = tail.iter().position(|&c| special(c))?;
    Some(from + words.len() * 8 + j)
}

/// `s` as a JSON string, with serde_json's escapes and [`SafeFormatter`]'s
/// (crate::syslog::SafeFormatter) additions: the runs between special bytes are copied
/// whole.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    if !needs_escape(b) {
        out.extend_from_slice(b);
        out.push(b'"');
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    let mut at = 0;
    while let Some(j) = next_special(b, at) {
        // Bytes before `j` from `at` on are ASCII, so `j` starts a character.
        let Some(c) = s.get(j..).and_then(|t| t.chars().next()) else {
            break;
        };
        at = j + c.len_utf8();
        let short: &[u8] = match c {
            '"' => b"\\\"",
            '\\' => b"\\\\",
            '\u{8}' => b"\\b",
            '\u{c}' => b"\\f",
            '\n' => b"\\n",
            '\r' => b"\\r",
            '\t' => b"\\t",
            _ => b"",
        };
        let cp = c as u32;
        let unicode = cp < 0x20 || needs_unicode_escape(c);
        if short.is_empty() && !unicode {
            // Other non-ASCII text is written as it is.
            continue;
        }
        out.extend_from_slice(&b[start..j]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u");
            for shift in [12, 8, 4, 0] {
                out.push(HEX[((cp >> shift) & 15) as usize]);
            }
        } else {
            out.extend_from_slice(short);
        }
        start = at;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

fn write_u64(out: &mut Vec<u8>, v: u64) {
    let (buf, i) = super::decimal(v);
    out.extend_from_slice(&buf[i..]);
}

fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

/// A struct, map or sequence being written: whether an element was written yet.
pub struct Compound<'w, 'o> {
    w: &'w mut Writer<'o>,
    first: bool,
    /// A `RawValue`: its one field is JSON text, copied as it is.
    raw: bool,
}

impl Compound<'_, '_> {
    fn comma(&mut self) {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
    }
}

impl<'w, 'o> ser::Serializer for &'w mut Writer<'o> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Compound<'w, 'o>;
    type SerializeTuple = Compound<'w, 'o>;
    type SerializeTupleStruct = Compound<'w, 'o>;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = Compound<'w, 'o>;
    type SerializeStruct = Compound<'w, 'o>;
    type SerializeStructVariant = Impossible<(), Unsupported>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        write_i64(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        write_u64(self.out, v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Unsupported> {
        serde_json::to_writer(&mut *self.out, &v).map_err(|e| Unsupported(e.to_string()))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Unsupported> {
        serde_json::to_writer(&mut *self.out, &v).map_err(|e| Unsupported(e.to_string()))
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Unsupported> {
        refuse("bytes")
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<(), Unsupported> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Unsupported> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unsupported> {
        refuse("an enum variant with data")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'w, 'o>, Unsupported> {
        self.out.push(b'[');
        Ok(Compound {
            w: self,
            first: true,
            raw: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'w, 'o>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'o>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        refuse("a tuple variant")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'w, 'o>, Unsupported> {
        self.out.push(b'{');
        Ok(Compound {
            w: self,
            first: true,
            raw: false,
        })
    }
    fn serialize_struct(
        self,
        name: &'static str,
        _: usize,
    ) -> Result<Compound<'w, 'o>, Unsupported> {
        let raw = name == RAW_TOKEN;
        if !raw {
            self.out.push(b'{');
        }
        Ok(Compound {
            w: self,
            first: true,
            raw,
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        refuse("a struct variant")
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Unsupported> {
        self.comma();
        v.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.w.out.push(b']');
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Unsupported> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<(), Unsupported> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Unsupported> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<(), Unsupported> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Unsupported> {
        self.comma();
        key.serialize(KeyWriter { out: self.w.out })?;
        self.w.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Unsupported> {
        v.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.w.out.push(b'}');
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Unsupported> {
        if self.raw {
            return v.serialize(RawWriter { out: self.w.out });
        }
        // Keys are the alert structs' own field names (and serde renames): identifiers
        // with nothing to escape, as the tests that compare with serde_json's text hold.
        debug_assert!(!key.bytes().any(special), "{key}");
        self.comma();
        let out = &mut *self.w.out;
        out.reserve(key.len() + 3);
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        v.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Unsupported> {
        if !self.raw {
            self.w.out.push(b'}');
        }
        Ok(())
    }
}

/// A serializer that takes one string and nothing else (the other methods refuse).
macro_rules! only_strings {
    () => {
        type Ok = ();
        type Error = Unsupported;
        type SerializeSeq = Impossible<(), Unsupported>;
        type SerializeTuple = Impossible<(), Unsupported>;
        type SerializeTupleStruct = Impossible<(), Unsupported>;
        type SerializeTupleVariant = Impossible<(), Unsupported>;
        type SerializeMap = Impossible<(), Unsupported>;
        type SerializeStruct = Impossible<(), Unsupported>;
        type SerializeStructVariant = Impossible<(), Unsupported>;

        fn serialize_bool(self, _: bool) -> Result<(), Unsupported> {
            refuse("a bool here")
        }
        fn serialize_i8(self, _: i8) -> Result<(), Unsupported> {
            refuse("a number here")
        }
        fn serialize_i16(self, _: i16) -> Result<(), Unsupported> {
            refuse("a number here")
        }
        fn serialize_i32(self, _: i32) -> Result<(), Unsupported> {
            refuse("a number here")
        }
        fn serialize_i64(self, _: i64) -> Result<(), Unsupported> {
            refuse("a number here")
        }
        fn serialize_u8(self, _: u8) -> Result<(), Unsupported> {
            refuse("a number here")
        }
        fn serialize_u16(self, _: u16) -> Result<(), Unsupported> {
            refuse("a number here")
        }
        fn serialize_u32(self, _: u32) -> Result<(), Unsupported> {
            refuse("a number here")
        }
        fn serialize_u64(self, _: u64) -> Result<(), Unsupported> {
            refuse("a number here")
        }
        fn serialize_f32(self, _: f32) -> Result<(), Unsupported> {
            refuse("a number here")
        }
        fn serialize_f64(self, _: f64) -> Result<(), Unsupported> {
            refuse("a number here")
        }
        fn serialize_char(self, _: char) -> Result<(), Unsupported> {
            refuse("a char here")
        }
        fn serialize_bytes(self, _: &[u8]) -> Result<(), Unsupported> {
            refuse("bytes")
        }
        fn serialize_none(self) -> Result<(), Unsupported> {
            refuse("null here")
        }
        fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Unsupported> {
            refuse("an option here")
        }
        fn serialize_unit(self) -> Result<(), Unsupported> {
            refuse("unit here")
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
            refuse("unit here")
        }
        fn serialize_unit_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
        ) -> Result<(), Unsupported> {
            refuse("a variant here")
        }
        fn serialize_newtype_struct<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: &T,
        ) -> Result<(), Unsupported> {
            refuse("a newtype here")
        }
        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<(), Unsupported> {
            refuse("a variant here")
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
            refuse("a sequence here")
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
            refuse("a tuple here")
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, Unsupported> {
            refuse("a tuple here")
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Unsupported> {
            refuse("a variant here")
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
            refuse("a map here")
        }
        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStruct, Unsupported> {
            refuse("a struct here")
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Unsupported> {
            refuse("a variant here")
        }
    };
}

/// A map key: a string, escaped (serde_json also takes numbers and bools as keys; the alert
/// has none, so they are refused and the fallback writes them).
struct KeyWriter<'o> {
    out: &'o mut Vec<u8>,
}

impl ser::Serializer for KeyWriter<'_> {
    only_strings!();
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        write_str(self.out, v);
        Ok(())
    }
}

/// A `RawValue`'s text: JSON already (rendered through the same formatter), copied.
struct RawWriter<'o> {
    out: &'o mut Vec<u8>,
}

impl ser::Serializer for RawWriter<'_> {
    only_strings!();
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syslog::SafeFormatter;
    use proptest::prelude::*;
    use serde_json::json;
    use serde_json::value::RawValue;

    fn fast<T: Serialize>(v: &T) -> Vec<u8> {
        let mut out = b"prefix".to_vec();
        v.serialize(&mut Writer { out: &mut out }).unwrap();
        out.drain(..6);
        out
    }

    fn slow<T: Serialize>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, SafeFormatter);
        v.serialize(&mut ser).unwrap();
        out
    }

    #[test]
    fn escapes_as_serde_json_with_the_safe_formatter() {
        let s = "a\"b\\c\u{8}\u{c}\n\r\t\u{0}\u{1f} \u{7f}\u{80}\u{9f}\u{a0}é\u{2027}\u{2028}\u{2029}😀/<>";
        assert_eq!(fast(&s), slow(&s));
        assert_eq!(
            String::from_utf8(fast(&"\u{1}\u{7f}\u{2028}")).unwrap(),
            r#""\u0001\u007f\u2028""#
        );
    }

    #[test]
    fn values_as_serde_json_writes_them() {
        let raw = RawValue::from_string(r#"{"a":[1,"x"]}"#.to_owned()).unwrap();
        let v = json!({
            "s": "t\u{85}", "n": -12, "u": 18446744073709551615u64, "f": 21.5, "g": 1e300,
            "z": 0.0, "b": [true, false, null], "o": {"k\n": {"": []}}, "e": {},
        });
        assert_eq!(fast(&v), slow(&v));
        assert_eq!(fast(&raw), slow(&raw));
        assert_eq!(fast(&Some(&*raw)), slow(&Some(&*raw)));
        assert_eq!(fast(&i64::MIN), slow(&i64::MIN));
        assert_eq!(
            fast(&(None::<u8>, 'x', 7u16)),
            slow(&(None::<u8>, 'x', 7u16))
        );
    }

    #[test]
    fn refuses_what_it_does_not_write() {
        let mut out = Vec::new();
        let mut m = std::collections::BTreeMap::new();
        m.insert(1u8, 2u8);
        assert!(m.serialize(&mut Writer { out: &mut out }).is_err());
        assert!(
            serde_bytes_like()
                .serialize(&mut Writer { out: &mut out })
                .is_err()
        );
    }

    /// A value whose Serialize writes bytes (as serde_bytes does).
    fn serde_bytes_like() -> impl Serialize {
        struct B;
        impl Serialize for B {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(b"ab")
            }
        }
        B
    }

    #[test]
    fn the_word_test_finds_every_special_byte_at_every_place() {
        for c in 0..=255u8 {
            for len in 1..20 {
                for at in 0..len {
                    let mut b = vec![b'a'; len];
                    b[at] = c;
                    assert_eq!(needs_escape(&b), special(c), "byte {c:#x} at {at} of {len}");
                    let want = special(c).then_some(at);
                    assert_eq!(next_special(&b, 0), want, "byte {c:#x} at {at} of {len}");
                    b.push(b'"');
                    assert_eq!(next_special(&b, at + 1), Some(len), "after {c:#x} at {at}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_string_as_serde_json(s in any::<String>()) {
            prop_assert_eq!(fast(&s), slow(&s));
        }

        #[test]
        fn strings_of_the_escaped_classes(v in proptest::collection::vec(
            prop_oneof![
                Just('\u{0}'), Just('\u{1f}'), Just('"'), Just('\\'), Just('\n'), Just('\u{7f}'),
                Just('\u{80}'), Just('\u{9f}'), Just('\u{a0}'), Just('\u{2028}'), Just('\u{2029}'),
                Just('\u{2030}'), Just('a'), Just('é'), any::<char>(),
            ], 0..40)) {
            let s: String = v.into_iter().collect();
            prop_assert_eq!(fast(&s), slow(&s));
        }
    }
}
