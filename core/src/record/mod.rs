//! record: one audit record as a zero-copy view over the bytes it came in.
//!
//! `netlink → [record] → event → rule → alert → syslog`
//!
//! Two inputs give the same [`Record`]:
//! - a multicast datagram: the type number from the netlink header, and the text
//!   `audit(SEC.MSEC:SERIAL): k=v ...` ([`Record::from_netlink`]);
//! - an audit.log line: `[node=N ]type=NAME msg=audit(SEC.MSEC:SERIAL): k=v ...`, RAW or
//!   ENRICHED, where ENRICHED appends `\x1d` and interpreted fields ([`Record::from_log_line`]).
//!
//! Nothing here allocates unless a value is hex-encoded and must be decoded.

#![forbid(unsafe_code)]

pub mod types;

use std::borrow::Cow;
use std::fmt;

pub use types::{num, type_name, type_number};

/// Lines longer than this are refused: the kernel caps a record at 8970 bytes
/// (MAX_AUDIT_MESSAGE_LENGTH), and ENRICHED fields add little. 1 MiB leaves room and
/// keeps a garbage "line" from holding the whole file in memory.
pub const MAX_LINE: usize = 1 << 20;

/// The `audit(SEC.MSEC:SERIAL)` stamp that ties the records of one event together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stamp {
    pub sec: u64,
    pub msec: u16,
    pub serial: u64,
}

impl Stamp {
    /// Milliseconds since the Unix epoch.
    pub fn millis(&self) -> u64 {
        self.sec
            .saturating_mul(1000)
            .saturating_add(u64::from(self.msec))
    }
}

/// Why a record could not be read. Each variant names the part that is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Longer than [`MAX_LINE`].
    TooLong(usize),
    /// No `type=` at the start of an audit.log line.
    MissingType,
    /// A `type=` name that is neither in the table nor `UNKNOWN[N]`.
    UnknownType(String),
    /// No `msg=audit(` where the stamp should be.
    MissingStamp,
    /// The stamp is there but not `SEC.MSEC:SERIAL)` with numbers.
    BadStamp(String),
    /// The line ends before the `): ` that opens the fields.
    Truncated,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::TooLong(n) => {
                write!(f, "line of {n} bytes is over the {MAX_LINE}-byte limit")
            }
            RecordError::MissingType => {
                f.write_str("no 'type=' at the start of the line; is this an audit.log?")
            }
            RecordError::UnknownType(t) => write!(f, "unknown record type '{t}'"),
            RecordError::MissingStamp => f.write_str("no 'msg=audit(' stamp"),
            RecordError::BadStamp(s) => {
                write!(f, "bad stamp 'audit({s}': expected SEC.MSEC:SERIAL")
            }
            RecordError::Truncated => f.write_str("line ends before the record's fields"),
        }
    }
}

impl std::error::Error for RecordError {}

/// One audit record, borrowing the bytes it was parsed from.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub rtype: u16,
    pub stamp: Stamp,
    /// The `node=` prefix of a log line, when auditd's `name_format` adds one.
    pub node: Option<&'a [u8]>,
    /// The kernel's `k=v ...` text.
    pub body: &'a [u8],
    /// ENRICHED fields after the `\x1d` byte; empty for RAW lines and netlink.
    pub enriched: &'a [u8],
}

impl<'a> Record<'a> {
    /// A multicast datagram's payload: `audit(SEC.MSEC:SERIAL): k=v ...`.
    pub fn from_netlink(rtype: u16, text: &'a [u8]) -> Result<Record<'a>, RecordError> {
        if text.len() > MAX_LINE {
            return Err(RecordError::TooLong(text.len()));
        }
        let rest = text
            .strip_prefix(b"audit(")
            .ok_or(RecordError::MissingStamp)?;
        let (stamp, body) = parse_stamp(rest)?;
        Ok(Record {
            rtype,
            stamp,
            node: None,
            body,
            enriched: &[],
        })
    }

    /// One audit.log line (without or with its trailing newline).
    pub fn from_log_line(line: &'a [u8]) -> Result<Record<'a>, RecordError> {
        if line.len() > MAX_LINE {
            return Err(RecordError::TooLong(line.len()));
        }
        let mut line = line;
        while let [rest @ .., b'\n' | b'\r'] = line {
            line = rest;
        }
        let mut node = None;
        if let Some(rest) = line.strip_prefix(b"node=") {
            let end = memchr(b' ', rest).ok_or(RecordError::MissingType)?;
            node = Some(&rest[..end]);
            line = &rest[end + 1..];
        }
        let rest = line
            .strip_prefix(b"type=")
            .ok_or(RecordError::MissingType)?;
        let end = find_short(b' ', rest).ok_or(RecordError::Truncated)?;
        let name = &rest[..end];
        let rtype = type_number(name)
            .ok_or_else(|| RecordError::UnknownType(String::from_utf8_lossy(name).into_owned()))?;
        let rest = rest[end + 1..]
            .strip_prefix(b"msg=audit(")
            .ok_or(RecordError::MissingStamp)?;
        let (stamp, fields) = parse_stamp(rest)?;
        let (body, enriched) = match memchr(0x1d, fields) {
            Some(i) => (&fields[..i], &fields[i + 1..]),
            None => (fields, &[][..]),
        };
        Ok(Record {
            rtype,
            stamp,
            node,
            body,
            enriched,
        })
    }

    /// The kernel's fields in order. `msg='...'` wrappers of user-space records are opened, so
    /// their inner fields (`op`, `acct`, `addr`, `hostname`, ...) come out as fields too.
    pub fn fields(&self) -> Fields<'a> {
        Fields { rest: self.body }
    }

    /// The ENRICHED fields (`UID="alice"` ...), empty for RAW input.
    pub fn enriched_fields(&self) -> Fields<'a> {
        Fields {
            rest: self.enriched,
        }
    }

    /// The first kernel field named `key`.
    pub fn get(&self, key: &[u8]) -> Option<Value<'a>> {
        self.fields().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The first kernel field named by each of `keys`, in one pass over the record: what
    /// [`Record::get`] gives for each, for a reader that needs several fields.
    pub fn get_all<const N: usize>(&self, keys: [&[u8]; N]) -> [Option<Value<'a>>; N] {
        let mut out = [None; N];
        let mut left = N;
        for (k, v) in self.fields() {
            for (slot, want) in out.iter_mut().zip(keys) {
                if slot.is_none() && k == want {
                    *slot = Some(v);
                    left -= 1;
                }
            }
            if left == 0 {
                break;
            }
        }
        out
    }

    /// The first ENRICHED field named `key`.
    pub fn get_enriched(&self, key: &[u8]) -> Option<Value<'a>> {
        self.enriched_fields()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// Parse `SEC.MSEC:SERIAL): ` and return the stamp and what follows.
fn parse_stamp(s: &[u8]) -> Result<(Stamp, &[u8]), RecordError> {
    // Every record has a well-formed stamp: read it in one pass. Anything else takes the
    // slow path below, which finds what is wrong (and accepts exactly what this accepts).
    if let Some((stamp, used)) = quick_stamp(s)
        && let Some(body) = s[used..].strip_prefix(b":")
    {
        return Ok((stamp, body.strip_prefix(b" ").unwrap_or(body)));
    }
    slow_stamp(s)
}

/// `SEC.MSEC:SERIAL)` as [`parse_stamp`] accepts it, and the bytes it took; `None` for
/// anything else.
fn quick_stamp(s: &[u8]) -> Option<(Stamp, usize)> {
    if let Some(st) = fixed_stamp(s) {
        return Some(st);
    }
    let (sec, a) = digits_to(s, b'.')?;
    let (msec, b) = digits_to(&s[a..], b':')?;
    let (serial, c) = digits_to(&s[a + b..], b')')?;
    (msec < 1000).then_some((
        Stamp {
            sec,
            msec: msec as u16,
            serial,
        },
        a + b + c,
    ))
}

/// The stamp as the kernel writes it from 2001 to 2286: ten digits of seconds, three of
/// milliseconds (`%03u`), read eight bytes at a time; `None` for any other shape (which
/// [`quick_stamp`] then reads digit by digit, to the same value).
fn fixed_stamp(s: &[u8]) -> Option<(Stamp, usize)> {
    let head: &[u8; 15] = s.first_chunk()?;
    if head[10] != b'.' || head[14] != b':' {
        return None;
    }
    let [s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, _, m0, m1, m2, _] = *head;
    let hi = eight_digits([s0, s1, s2, s3, s4, s5, s6, s7])?;
    let lo = eight_digits([s8, s9, b'0', m0, m1, m2, b'0', b'0'])?;
    // `lo` is the digits s8 s9 0 m0 m1 m2 0 0 as one number.
    let sec = hi * 100 + lo / 1_000_000;
    let msec = (lo / 100 % 1000) as u16;
    let (serial, c) = digits_to(&s[15..], b')')?;
    Some((Stamp { sec, msec, serial }, 15 + c))
}

/// Eight ASCII decimal digits as a number (most significant first), in a few word
/// operations; `None` if any byte is not a digit.
fn eight_digits(b: [u8; 8]) -> Option<u64> {
    const LOW: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    let v = u64::from_le_bytes(b);
    // A digit is 0x30..=0x39: its high nibble is 3, and so is that of the digit plus 6.
    let high = (v & !LOW) | ((v.wrapping_add(0x0606_0606_0606_0606) & !LOW) >> 4);
    if high != 0x3333_3333_3333_3333 {
        return None;
    }
    let v = v & LOW;
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_ffff_0000_ffff;
    Some((v.wrapping_mul(10_000) + (v >> 32)) & 0xffff_ffff)
}

/// 1 to 19 decimal digits and then `end`: the number and the bytes taken with `end`.
fn digits_to(s: &[u8], end: u8) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    // A 20th digit makes it too long: the loop ends without finding `end`.
    for (i, &c) in s.iter().enumerate().take(20) {
        let d = c.wrapping_sub(b'0');
        if d < 10 {
            v = v.wrapping_mul(10).wrapping_add(u64::from(d));
            continue;
        }
        return (c == end && i > 0).then_some((v, i + 1));
    }
    None
}

fn slow_stamp(s: &[u8]) -> Result<(Stamp, &[u8]), RecordError> {
    let close = memchr(b')', s).ok_or(RecordError::Truncated)?;
    let inner = &s[..close];
    let bad = || {
        RecordError::BadStamp(String::from_utf8_lossy(&inner[..inner.len().min(64)]).into_owned())
    };
    let dot = memchr(b'.', inner).ok_or_else(bad)?;
    let colon = memchr(b':', inner).ok_or_else(bad)?;
    if colon < dot {
        return Err(bad());
    }
    let sec = parse_u64(&inner[..dot]).ok_or_else(bad)?;
    let msec = parse_u64(&inner[dot + 1..colon])
        .filter(|&m| m < 1000)
        .ok_or_else(bad)?;
    let serial = parse_u64(&inner[colon + 1..]).ok_or_else(bad)?;
    let mut body = &s[close + 1..];
    body = body.strip_prefix(b":").ok_or(RecordError::Truncated)?;
    body = body.strip_prefix(b" ").unwrap_or(body);
    Ok((
        Stamp {
            sec,
            msec: msec as u16,
            serial,
        },
        body,
    ))
}

/// A decimal number of at most 19 digits; `None` for anything else.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Some(v)
}

/// A hexadecimal number of at most 16 digits, as the kernel prints syscall arguments.
pub fn parse_hex_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        v = (v << 4) | u64::from(hex_digit(c)?);
    }
    Some(v)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr(needle, hay)
}

/// Iterator over `k=v` fields.
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    /// The bytes not read yet: a later field's key is somewhere in them.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], Value<'a>);

    // Hand-written byte loops rather than `memchr`: keys and most values are a few bytes
    // long, where memchr's set-up costs more than the search (measured with callgrind:
    // docs/benchmarks.md, "Instruction counts").
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // Separators: spaces, and the quote that closes a user record's msg='...'.
            let start = self.rest.iter().position(|&c| c != b' ' && c != b'\'')?;
            let s = &self.rest[start..];
            let Some(eq) = find_key_end(s) else {
                self.rest = &[];
                return None;
            };
            if s[eq] == b' ' {
                // A bare word with no '=': skip it (the kernel writes none, but be lenient).
                self.rest = &s[eq..];
                continue;
            }
            let key = &s[..eq];
            let v = &s[eq + 1..];
            if key == b"msg" && v.first() == Some(&b'\'') {
                // Open the user-space wrapper and read its inner fields.
                self.rest = &v[1..];
                continue;
            }
            let (raw, rest) = if v.first() == Some(&b'"') {
                match find_short(b'"', &v[1..]) {
                    Some(close) => (&v[..close + 2], &v[close + 2..]),
                    // An unterminated quote: the value runs to the end; Value reports it.
                    None => (v, &[][..]),
                }
            } else {
                let end = find_short(b' ', v).unwrap_or(v.len());
                let mut raw = &v[..end];
                if let [inner @ .., b'\''] = raw {
                    raw = inner;
                }
                (raw, &v[end..])
            };
            self.rest = rest;
            return Some((key, Value { raw }));
        }
    }
}

/// The first `needle` in `hay`: a plain loop over the first bytes, where most field values
/// end, then memchr for a long value (a PROCTITLE, an EXECVE argument).
fn find_short(needle: u8, hay: &[u8]) -> Option<usize> {
    const SHORT: usize = 32;
    let head = &hay[..hay.len().min(SHORT)];
    match find_in_words(head, |w| eq_bytes(w, needle), |c| c == needle) {
        Some(i) => Some(i),
        None if hay.len() > SHORT => memchr(needle, &hay[SHORT..]).map(|i| i + SHORT),
        None => None,
    }
}

/// Where a field's key ends: the first `=` (or a space, for a bare word), read a word at
/// a time (a key is a few bytes: the first word or two hold its end).
fn find_key_end(s: &[u8]) -> Option<usize> {
    find_in_words(
        s,
        |w| eq_bytes(w, b'=') | eq_bytes(w, b' '),
        |c| c == b'=' || c == b' ',
    )
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// The high bit set in the first byte of `w` (little-endian order) that equals `c`, and in
/// none before it (later bytes may be flagged wrongly: only the lowest flag counts).
fn eq_bytes(w: u64, c: u8) -> u64 {
    let x = w ^ ONES.wrapping_mul(u64::from(c));
    x.wrapping_sub(ONES) & !x & (ONES << 7)
}

/// The first byte of `hay` that `byte` accepts, eight at a time with `hit` (the same test
/// on a word, as [`eq_bytes`] gives it), then one at a time in the last few.
fn find_in_words(hay: &[u8], hit: impl Fn(u64) -> u64, byte: impl Fn(u8) -> bool) -> Option<usize> {
    let (words, tail) = hay.as_chunks::<8>();
    for (i, w) in words.iter().enumerate() {
        let m = hit(u64::from_le_bytes(*w));
        if m != 0 {
            return Some(i * 8 + (m.trailing_zeros() / 8) as usize);
        }
    }
    let j = tail.iter().position(|&c| byte(c))?;
    Some(words.len() * 8 + j)
}

/// Why a field value could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueError {
    /// A hex-encoded value with an odd number of digits.
    OddHex,
    /// A value that should be hex-encoded holds a non-hex byte.
    BadHex,
    /// A quoted value with no closing quote.
    Unterminated,
    /// A number field that is not a number.
    NotANumber,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueError::OddHex => "hex-encoded value has an odd number of digits",
            ValueError::BadHex => "value is neither quoted nor hex-encoded",
            ValueError::Unterminated => "quoted value has no closing quote",
            ValueError::NotANumber => "expected a number",
        })
    }
}

/// One field value, undecoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value<'a> {
    pub raw: &'a [u8],
}

impl<'a> Value<'a> {
    /// True for the kernel's `(null)` (an absent value).
    pub fn is_null(&self) -> bool {
        self.raw == b"(null)" || self.raw == b"?"
    }

    /// A string field the kernel may hex-encode (`name`, `cwd`, `comm`, `exe`, `proctitle`,
    /// `key`...): quoted → the bytes inside; `(null)` → `None`; otherwise hex-decoded.
    pub fn decode(&self) -> Result<Option<Cow<'a, [u8]>>, ValueError> {
        let raw = self.raw;
        if let Some(inner) = raw.strip_prefix(b"\"") {
            return match inner.strip_suffix(b"\"") {
                Some(s) => Ok(Some(Cow::Borrowed(s))),
                None => Err(ValueError::Unterminated),
            };
        }
        if self.is_null() {
            return Ok(None);
        }
        if !raw.len().is_multiple_of(2) {
            return Err(ValueError::OddHex);
        }
        let mut out = Vec::with_capacity(raw.len() / 2);
        for pair in raw.chunks_exact(2) {
            let hi = hex_digit(pair[0]).ok_or(ValueError::BadHex)?;
            let lo = hex_digit(pair[1]).ok_or(ValueError::BadHex)?;
            out.push(hi << 4 | lo);
        }
        Ok(Some(Cow::Owned(out)))
    }

    /// A value that is never hex-encoded (ENRICHED names, `nametype`, `addr`): quotes removed.
    pub fn unquoted(&self) -> &'a [u8] {
        let raw = self.raw;
        raw.strip_prefix(b"\"")
            .and_then(|s| s.strip_suffix(b"\""))
            .unwrap_or(raw)
    }

    /// A decimal number (`pid=`, `uid=`, `inode=`...). `4294967295` (unset id) stays as is.
    pub fn as_u64(&self) -> Result<u64, ValueError> {
        parse_u64(self.raw).ok_or(ValueError::NotANumber)
    }

    /// A hexadecimal number (`arch=`, `a0=`...).
    pub fn as_hex_u64(&self) -> Result<u64, ValueError> {
        parse_hex_u64(self.raw).ok_or(ValueError::NotANumber)
    }

    /// An octal number (`mode=0100644`). One that does not fit in 32 bits is an error, not
    /// its low bits (issue 5: `77777777777` used to read as `37777777777`).
    pub fn as_octal_u32(&self) -> Result<u32, ValueError> {
        if self.raw.is_empty() {
            return Err(ValueError::NotANumber);
        }
        let mut v: u32 = 0;
        for &c in self.raw {
            if !(b'0'..=b'7').contains(&c) {
                return Err(ValueError::NotANumber);
            }
            v = v
                .checked_mul(8)
                .map(|v| v | u32::from(c - b'0'))
                .ok_or(ValueError::NotANumber)?;
        }
        Ok(v)
    }
}

/// PROCTITLE's value, decoded: argv joined by NUL. Split it into arguments (a trailing NUL
/// does not make an empty last argument).
pub fn split_argv(title: &[u8]) -> impl Iterator<Item = &[u8]> {
    let title = title.strip_suffix(b"\0").unwrap_or(title);
    let empty = title.is_empty();
    title.split(|&c| c == 0).filter(move |_| !empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSCALL_NL: &[u8] = b"audit(1764294000.123:4711): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=7ffd a2=241 a3=1b6 items=2 ppid=900 pid=901 auid=1001 uid=1001 gid=1001 euid=1001 suid=1001 fsuid=1001 egid=1001 sgid=1001 fsgid=1001 tty=(none) ses=3 comm=\"sftp-server\" exe=\"/usr/lib/openssh/sftp-server\" subj=unconfined key=(null)";

    #[test]
    fn netlink_form() {
        let r = Record::from_netlink(1300, SYSCALL_NL).unwrap();
        assert_eq!(
            r.stamp,
            Stamp {
                sec: 1764294000,
                msec: 123,
                serial: 4711
            }
        );
        assert_eq!(r.get(b"syscall").unwrap().as_u64(), Ok(257));
        assert_eq!(r.get(b"a0").unwrap().as_hex_u64(), Ok(0xffffff9c));
        assert_eq!(
            r.get(b"comm").unwrap().decode().unwrap().unwrap().as_ref(),
            b"sftp-server"
        );
        assert_eq!(r.get(b"key").unwrap().decode(), Ok(None));
        assert!(r.get(b"nope").is_none());
        assert_eq!(r.stamp.millis(), 1764294000123);
    }

    #[test]
    fn raw_and_enriched_log_lines() {
        let raw = b"type=PATH msg=audit(1764294000.123:4711): item=1 name=2F746D702F6120622E62696E inode=5 dev=fe:00 mode=0100644 nametype=CREATE\n";
        let r = Record::from_log_line(raw).unwrap();
        assert_eq!(r.rtype, num::PATH);
        assert_eq!(
            r.get(b"name").unwrap().decode().unwrap().unwrap().as_ref(),
            b"/tmp/a b.bin"
        );
        assert_eq!(r.get(b"mode").unwrap().as_octal_u32(), Ok(0o100644));
        assert!(r.enriched.is_empty());

        let enriched = b"node=web1 type=SYSCALL msg=audit(1.002:3): syscall=257 uid=1001 comm=\"x\"\x1dSYSCALL=openat UID=\"alice\" GID=\"staff\"";
        let r = Record::from_log_line(enriched).unwrap();
        assert_eq!(r.node, Some(&b"web1"[..]));
        assert_eq!(
            r.get(b"comm").unwrap().decode().unwrap().unwrap().as_ref(),
            b"x"
        );
        assert_eq!(r.get_enriched(b"UID").unwrap().unquoted(), b"alice");
        assert_eq!(r.get_enriched(b"SYSCALL").unwrap().unquoted(), b"openat");
        // The enriched part never leaks into kernel fields.
        assert!(r.get(b"UID").is_none());
    }

    #[test]
    fn user_record_msg_wrapper_is_opened() {
        let line = b"type=USER_LOGIN msg=audit(1.000:9): pid=5 uid=0 auid=1001 ses=4 subj=unconfined msg='op=login id=1001 exe=\"/usr/sbin/sshd\" hostname=127.0.0.1 addr=127.0.0.1 terminal=/dev/pts/1 res=success'";
        let r = Record::from_log_line(line).unwrap();
        assert_eq!(r.rtype, num::USER_LOGIN);
        assert_eq!(r.get(b"addr").unwrap().unquoted(), b"127.0.0.1");
        assert_eq!(r.get(b"res").unwrap().unquoted(), b"success");
        assert_eq!(r.get(b"ses").unwrap().as_u64(), Ok(4));
        assert_eq!(
            r.get(b"exe").unwrap().decode().unwrap().unwrap().as_ref(),
            b"/usr/sbin/sshd"
        );
    }

    #[test]
    fn get_all_is_get_of_each_key() {
        let line = b"type=USER_START msg=audit(1.000:9): pid=5 uid=0 ses=4 msg='op=x pid=6 acct=\"a\" addr=? res=success' pid=7";
        let r = Record::from_log_line(line).unwrap();
        let keys: [&[u8]; 5] = [b"pid", b"acct", b"nope", b"res", b"pid"];
        let want = keys.map(|k| r.get(k));
        assert_eq!(r.get_all(keys), want);
        assert_eq!(want[0].map(|v| v.raw), Some(&b"5"[..]));
    }

    #[test]
    fn unknown_numbered_type() {
        let r = Record::from_log_line(b"type=UNKNOWN[1338] msg=audit(1.000:9): x=1").unwrap();
        assert_eq!(r.rtype, 1338);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let cases: &[(&[u8], RecordError)] = &[
            (b"", RecordError::MissingType),
            (b"type=SYSCALL", RecordError::Truncated),
            (b"type=SYSCALL msg=audit(1.000:9", RecordError::Truncated),
            (b"type=SYSCALL msg=audit(1.000:9)", RecordError::Truncated),
            (
                b"type=BOGUS msg=audit(1.000:9): a=1",
                RecordError::UnknownType("BOGUS".into()),
            ),
            (
                b"type=SYSCALL msg=audit(x.000:9): a=1",
                RecordError::BadStamp("x.000:9".into()),
            ),
            (
                b"type=SYSCALL msg=audit(1.000:): a=1",
                RecordError::BadStamp("1.000:".into()),
            ),
            (
                b"type=SYSCALL msg=audit(1.5000:3): a=1",
                RecordError::BadStamp("1.5000:3".into()),
            ),
            (b"type=SYSCALL foo", RecordError::MissingStamp),
            (b"\x00\xff\xfe garbage \x01", RecordError::MissingType),
        ];
        for (line, want) in cases {
            assert_eq!(
                Record::from_log_line(line).unwrap_err(),
                *want,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        let long = vec![b'a'; MAX_LINE + 1];
        assert_eq!(
            Record::from_log_line(&long).unwrap_err(),
            RecordError::TooLong(MAX_LINE + 1)
        );
        assert_eq!(
            Record::from_netlink(1300, b"garbage").unwrap_err(),
            RecordError::MissingStamp
        );
    }

    #[test]
    fn bad_values() {
        let r = Record::from_log_line(
            b"type=PATH msg=audit(1.000:9): name=2F7 cwd=ZZ pid=12a exe=\"/bin/x",
        )
        .unwrap();
        assert_eq!(r.get(b"name").unwrap().decode(), Err(ValueError::OddHex));
        assert_eq!(r.get(b"cwd").unwrap().decode(), Err(ValueError::BadHex));
        assert_eq!(r.get(b"pid").unwrap().as_u64(), Err(ValueError::NotANumber));
        assert_eq!(
            r.get(b"exe").unwrap().decode(),
            Err(ValueError::Unterminated)
        );
        assert_eq!(r.get(b"missing"), None);
    }

    #[test]
    fn issue5_octal_mode_overflow_is_an_error() {
        // Found by the `record` fuzz target: 11 octal digits are 33 bits, and the top bit
        // was shifted out silently.
        let r = Record::from_log_line(
            b"type=PATH msg=audit(1.000:9): a=77777777777 b=037777777777 c=040000000000 d=0000000000000000644",
        )
        .unwrap();
        let mode = |k: &[u8]| r.get(k).unwrap().as_octal_u32();
        assert_eq!(mode(b"a"), Err(ValueError::NotANumber));
        assert_eq!(mode(b"b"), Ok(u32::MAX));
        assert_eq!(mode(b"c"), Err(ValueError::NotANumber));
        assert_eq!(mode(b"d"), Ok(0o644));
    }

    /// The field scanner as it was before the byte loops (memchr throughout): the
    /// reference the faster one must agree with on any input.
    fn reference_fields(mut rest: &[u8]) -> Vec<(&[u8], &[u8])> {
        let mut out = Vec::new();
        loop {
            let Some(start) = rest.iter().position(|&c| c != b' ' && c != b'\'') else {
                return out;
            };
            let s = &rest[start..];
            let Some(eq) = memchr::memchr2(b'=', b' ', s) else {
                return out;
            };
            if s[eq] == b' ' {
                rest = &s[eq..];
                continue;
            }
            let (key, v) = (&s[..eq], &s[eq + 1..]);
            if key == b"msg" && v.first() == Some(&b'\'') {
                rest = &v[1..];
                continue;
            }
            let (raw, next) = if v.first() == Some(&b'"') {
                match memchr(b'"', &v[1..]) {
                    Some(close) => (&v[..close + 2], &v[close + 2..]),
                    None => (v, &[][..]),
                }
            } else {
                let end = memchr(b' ', v).unwrap_or(v.len());
                let mut raw = &v[..end];
                if let [inner @ .., b'\''] = raw {
                    raw = inner;
                }
                (raw, &v[end..])
            };
            out.push((key, raw));
            rest = next;
        }
    }

    proptest::proptest! {
        #[test]
        fn fields_agree_with_the_reference_scanner(
            body in proptest::collection::vec(
                proptest::sample::select(b"ab=  '\"msgx0".to_vec()), 0..200),
            long in 0usize..80,
        ) {
            // Values past the 32-byte short scan too.
            let mut body = body;
            body.splice(0..0, std::iter::repeat_n(b'v', long));
            let got: Vec<_> = Fields { rest: &body }.map(|(k, v)| (k, v.raw)).collect();
            proptest::prop_assert_eq!(got, reference_fields(&body));
        }

        #[test]
        fn word_searches_agree_with_position(
            hay in proptest::collection::vec(
                proptest::sample::select(b"ab=  '\"\x00\x7f\x80\xff\x1f\x21\x3c\x3e".to_vec()), 0..80),
        ) {
            proptest::prop_assert_eq!(
                find_key_end(&hay),
                hay.iter().position(|&c| c == b'=' || c == b' ')
            );
            for needle in [b' ', b'"', b'=', 0, 0xff, 0x80] {
                proptest::prop_assert_eq!(
                    find_short(needle, &hay),
                    hay.iter().position(|&c| c == needle)
                );
            }
        }

        #[test]
        fn quick_stamp_agrees_with_the_slow_parser(
            s in proptest::collection::vec(
                proptest::sample::select(b"0123456789.:) x".to_vec()), 0..48),
        ) {
            let quick = quick_stamp(&s).and_then(|(st, used)| {
                s[used..].strip_prefix(b":").map(|b| (st, b.strip_prefix(b" ").unwrap_or(b)))
            });
            match quick {
                Some(q) => proptest::prop_assert_eq!(Ok(q), slow_stamp(&s)),
                None => proptest::prop_assert!(slow_stamp(&s).is_err()),
            }
            proptest::prop_assert_eq!(parse_stamp(&s), slow_stamp(&s));
        }
    }

    /// Bytes of a stamp in the kernel's fixed-width shape, some of them not digits.
    fn fixed_shape() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::strategy::Strategy;
        let digit = || proptest::sample::select(b"0123456789000000000x/:.)".to_vec());
        (
            proptest::collection::vec(digit(), 10),
            proptest::collection::vec(digit(), 3),
            proptest::collection::vec(digit(), 0..22),
        )
            .prop_map(|(sec, msec, serial)| {
                let mut s = sec;
                s.push(b'.');
                s.extend(msec);
                s.push(b':');
                s.extend(serial);
                s.extend(b"): x=1");
                s
            })
    }

    proptest::proptest! {
        #[test]
        fn fixed_width_stamps_agree_with_the_slow_parser(s in fixed_shape()) {
            proptest::prop_assert_eq!(parse_stamp(&s), slow_stamp(&s));
        }

        #[test]
        fn eight_digits_is_the_number(n in 0u64..100_000_000, bad in 0usize..9, c in 0u8..=255) {
            let mut b: [u8; 8] = format!("{n:08}").into_bytes().try_into().unwrap();
            proptest::prop_assert_eq!(eight_digits(b), Some(n));
            if bad < 8 && !c.is_ascii_digit() {
                b[bad] = c;
                proptest::prop_assert_eq!(eight_digits(b), None);
            }
        }
    }

    #[test]
    fn argv_split() {
        let t = b"/usr/bin/rsync\0--server\0-e.Lsfx\0.\0/tmp/";
        let v: Vec<&[u8]> = split_argv(t).collect();
        assert_eq!(
            v,
            vec![
                &b"/usr/bin/rsync"[..],
                b"--server",
                b"-e.Lsfx",
                b".",
                b"/tmp/"
            ]
        );
        assert_eq!(split_argv(b"a\0").count(), 1);
        assert_eq!(split_argv(b"").count(), 0);
    }
}
