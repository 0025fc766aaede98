//! kernel_rule::wire: the netlink audit wire format, with no sockets: datagram splitting,
//! `struct audit_status`, and `struct audit_rule_data` encoded and decoded by hand.
//!
//! `[netlink] → record → …`: the daemon's sockets (`wwatchd::netlink`) hand datagrams here.
//!
//! The rule format is encoded and decoded one message at a time: netlink-packet-audit 0.7
//! decodes `AUDIT_EXE` as a number, which shifts every later string of a listed rule.

use std::fmt;

/// Constants from `include/uapi/linux/audit.h` and `include/uapi/linux/netlink.h`,
/// checked against the 6.1 headers installed here and torvalds/linux master.
pub mod uapi {
    pub const NLMSG_HDRLEN: usize = 16;
    pub const NLMSG_NOOP: u16 = 1;
    pub const NLMSG_ERROR: u16 = 2;
    pub const NLMSG_DONE: u16 = 3;
    pub const NLMSG_OVERRUN: u16 = 4;
    /// Types below this are netlink control messages, not audit messages.
    pub const NLMSG_MIN_TYPE: u16 = 0x10;
    pub const NLM_F_REQUEST: u16 = 0x1;
    pub const NLM_F_ACK: u16 = 0x4;

    pub const AUDIT_GET: u16 = 1000;
    pub const AUDIT_SET: u16 = 1001;
    pub const AUDIT_ADD_RULE: u16 = 1011;
    pub const AUDIT_DEL_RULE: u16 = 1012;
    pub const AUDIT_LIST_RULES: u16 = 1013;

    pub const AUDIT_NLGRP_READLOG: u32 = 1;
    pub const AUDIT_STATUS_ENABLED: u32 = 0x0001;

    pub const AUDIT_FILTER_USER: u32 = 0x00;
    pub const AUDIT_FILTER_TASK: u32 = 0x01;
    pub const AUDIT_FILTER_ENTRY: u32 = 0x02;
    pub const AUDIT_FILTER_WATCH: u32 = 0x03;
    pub const AUDIT_FILTER_EXIT: u32 = 0x04;
    pub const AUDIT_FILTER_EXCLUDE: u32 = 0x05;
    pub const AUDIT_FILTER_FS: u32 = 0x06;
    pub const AUDIT_FILTER_URING_EXIT: u32 = 0x07;
    pub const AUDIT_FILTER_PREPEND: u32 = 0x10;
    pub const AUDIT_NEVER: u32 = 0;
    pub const AUDIT_POSSIBLE: u32 = 1;
    pub const AUDIT_ALWAYS: u32 = 2;

    pub const AUDIT_MAX_FIELDS: usize = 64;
    pub const AUDIT_MAX_KEY_LEN: usize = 256;
    pub const AUDIT_BITMASK_SIZE: usize = 64;
    /// auditctl joins several `-k` keys into one AUDIT_FILTERKEY string with this byte.
    pub const AUDIT_KEY_SEPARATOR: u8 = 0x01;

    // Rule fields. Note AUDIT_PID is 0 and AUDIT_UID is 1.
    pub const AUDIT_PID: u32 = 0;
    pub const AUDIT_UID: u32 = 1;
    pub const AUDIT_LOGINUID: u32 = 9;
    pub const AUDIT_ARCH: u32 = 11;
    pub const AUDIT_SUBJ_USER: u32 = 13;
    pub const AUDIT_SUBJ_CLR: u32 = 17;
    pub const AUDIT_OBJ_USER: u32 = 19;
    pub const AUDIT_OBJ_LEV_HIGH: u32 = 23;
    pub const AUDIT_SUCCESS: u32 = 104;
    pub const AUDIT_WATCH: u32 = 105;
    pub const AUDIT_PERM: u32 = 106;
    pub const AUDIT_DIR: u32 = 107;
    pub const AUDIT_EXE: u32 = 112;
    /// The syscall's first argument; `AUDIT_ARG0 + n` is argument n (0-3).
    pub const AUDIT_ARG0: u32 = 200;
    pub const AUDIT_FILTERKEY: u32 = 210;

    // Operators, stored in `fieldflags`. `AUDIT_BIT_MASK` (auditctl's `&`): true when
    // `value & mask != 0` (audit_comparator() in kernel/auditfilter.c).
    pub const AUDIT_BIT_MASK: u32 = 0x0800_0000;
    pub const AUDIT_LESS_THAN: u32 = 0x1000_0000;
    pub const AUDIT_GREATER_THAN: u32 = 0x2000_0000;
    pub const AUDIT_NOT_EQUAL: u32 = 0x3000_0000;
    pub const AUDIT_EQUAL: u32 = 0x4000_0000;

    pub const AUDIT_PERM_EXEC: u32 = 1;
    pub const AUDIT_PERM_WRITE: u32 = 2;
    pub const AUDIT_PERM_READ: u32 = 4;
    pub const AUDIT_PERM_ATTR: u32 = 8;

    /// EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
    pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    /// EM_386 | __AUDIT_ARCH_LE
    pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
}

use uapi::*;

// ---------------------------------------------------------------------------------------
// Datagram splitting
// ---------------------------------------------------------------------------------------

pub const fn nlmsg_align(len: usize) -> usize {
    (len + 3) & !3
}

pub fn ne_u32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn ne_u16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

/// One netlink message inside a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NlMsg<'a> {
    pub rtype: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// Splits a datagram into netlink messages.
///
/// Kernel quirks handled here:
/// - The kernel pads messages to 4 bytes but does not always count the padding:
///   a control reply was measured with `nlmsg_len` 1103 in a 1104-byte datagram. So the
///   next message starts at `NLMSG_ALIGN(nlmsg_len)` (include/uapi/linux/netlink.h),
///   and trailing bytes shorter than a header are padding, not a message.
/// - Older kernels sent audit records whose `nlmsg_len` did not cover the payload (see
///   audit-userspace lib/netlink.c, which re-derives the length from the datagram). A
///   length below the header or past the datagram is taken to mean "the rest".
pub fn split_datagram(datagram: &[u8], mut f: impl FnMut(NlMsg<'_>)) {
    let mut off = 0;
    while datagram.len() - off >= NLMSG_HDRLEN {
        let rest = datagram.len() - off;
        let mut len = ne_u32(datagram, off) as usize;
        if len < NLMSG_HDRLEN || len > rest {
            len = rest;
        }
        f(NlMsg {
            rtype: ne_u16(datagram, off + 4),
            flags: ne_u16(datagram, off + 6),
            seq: ne_u32(datagram, off + 8),
            payload: &datagram[off + NLMSG_HDRLEN..off + len],
        });
        off += nlmsg_align(len).min(rest);
    }
}

/// Record text as the kernel sent it, without trailing NULs (some kernels and
/// userspace senders NUL-terminate; 6.18 does not).
pub fn trim_nuls(mut text: &[u8]) -> &[u8] {
    while let [rest @ .., 0] = text {
        text = rest;
    }
    text
}

/// Calls `f(rtype, text)` for each audit message in a multicast datagram and returns how
/// many it passed on. Netlink control messages (NOOP, ERROR, DONE, OVERRUN) are skipped.
pub fn split_records(datagram: &[u8], f: &mut dyn FnMut(u16, &[u8])) -> usize {
    let mut n = 0;
    split_datagram(datagram, |m| {
        if m.rtype >= NLMSG_MIN_TYPE {
            f(m.rtype, trim_nuls(m.payload));
            n += 1;
        }
    });
    n
}

/// Writes one record as an audit.log RAW line: `type=NAME msg=TEXT\n`, where NAME is
/// auditd's name for the type or `UNKNOWN[N]`.
pub fn format_log_line(rtype: u16, text: &[u8], out: &mut Vec<u8>) {
    use std::io::Write;
    out.extend_from_slice(b"type=");
    match crate::record::type_name(rtype) {
        Some(name) => out.extend_from_slice(name.as_bytes()),
        // Writing into a Vec cannot fail.
        None => {
            let _ = write!(out, "UNKNOWN[{rtype}]");
        }
    }
    out.extend_from_slice(b" msg=");
    out.extend_from_slice(trim_nuls(text));
    out.push(b'\n');
}

// ---------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------

/// `struct audit_status` as `AUDIT_GET` returns it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditStatus {
    pub enabled: u32,
    pub failure: u32,
    /// auditd's pid, 0 when none is registered.
    pub pid: u32,
    pub rate_limit: u32,
    pub backlog_limit: u32,
    pub lost: u32,
    pub backlog: u32,
    pub feature_bitmap: u32,
    pub backlog_wait_time: u32,
    /// Added in Linux 5.9; `None` when the kernel's struct is shorter.
    pub backlog_wait_time_actual: Option<u32>,
    /// Length of the status payload the kernel sent (44 on 6.18).
    pub wire_len: usize,
}

impl AuditStatus {
    /// Decodes the payload by length: the struct has grown over the years, and
    /// netlink-packet-audit's StatusMessage stops before `backlog_wait_time_actual`.
    pub fn decode(p: &[u8]) -> Option<AuditStatus> {
        // mask..backlog are in every kernel this runs on.
        if p.len() < 32 {
            return None;
        }
        let word = |i: usize| (p.len() >= 4 * (i + 1)).then(|| ne_u32(p, 4 * i));
        Some(AuditStatus {
            enabled: ne_u32(p, 4),
            failure: ne_u32(p, 8),
            pid: ne_u32(p, 12),
            rate_limit: ne_u32(p, 16),
            backlog_limit: ne_u32(p, 20),
            lost: ne_u32(p, 24),
            backlog: ne_u32(p, 28),
            feature_bitmap: word(8).unwrap_or(0),
            backlog_wait_time: word(9).unwrap_or(0),
            backlog_wait_time_actual: word(10),
            wire_len: p.len(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Rules on the wire: struct audit_rule_data
// ---------------------------------------------------------------------------------------

/// `flags, action, field_count, mask[64], fields[64], values[64], fieldflags[64], buflen`.
pub const RULE_FIXED_LEN: usize = 4 * (3 + 4 * AUDIT_BITMASK_SIZE + 1);

/// A rule field's value: a number, or a string carried in the rule's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldValue {
    Num(u32),
    Str(Vec<u8>),
}

/// One `-F` condition: field, operator, value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleField {
    pub field: u32,
    pub op: u32,
    pub value: FieldValue,
}

/// Fields whose value is a string in `buf` (and `values[i]` its length). Mirrors the
/// string cases of audit_data_to_entry() and audit_krule_to_data() in
/// kernel/auditfilter.c: LSM labels, watch, dir, filterkey and exe.
pub fn is_string_field(field: u32) -> bool {
    matches!(
        field,
        AUDIT_SUBJ_USER..=AUDIT_SUBJ_CLR
            | AUDIT_OBJ_USER..=AUDIT_OBJ_LEV_HIGH
            | AUDIT_WATCH
            | AUDIT_DIR
            | AUDIT_FILTERKEY
            | AUDIT_EXE
    )
}

/// A rule as sent to or listed by the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    /// The filter list: AUDIT_FILTER_EXIT, _USER, ... (plus AUDIT_FILTER_PREPEND on add).
    pub flags: u32,
    /// AUDIT_ALWAYS or AUDIT_NEVER.
    pub action: u32,
    /// Syscall bitmask; bit N of word N/32 is syscall N.
    pub mask: [u32; AUDIT_BITMASK_SIZE],
    pub fields: Vec<RuleField>,
}

/// Why a rule could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleCodecError {
    Short {
        len: usize,
    },
    TooManyFields(usize),
    /// String lengths add up to more than the buffer holds.
    StringOverrun {
        field_index: usize,
    },
    KeyTooLong(usize),
}

impl fmt::Display for RuleCodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleCodecError::Short { len } => {
                write!(
                    f,
                    "rule of {len} bytes is shorter than the {RULE_FIXED_LEN}-byte header"
                )
            }
            RuleCodecError::TooManyFields(n) => {
                write!(f, "{n} fields, the kernel takes at most {AUDIT_MAX_FIELDS}")
            }
            RuleCodecError::StringOverrun { field_index } => {
                write!(
                    f,
                    "string of field #{field_index} runs past the rule's buffer"
                )
            }
            RuleCodecError::KeyTooLong(n) => {
                write!(
                    f,
                    "key of {n} bytes is over AUDIT_MAX_KEY_LEN ({AUDIT_MAX_KEY_LEN})"
                )
            }
        }
    }
}

impl std::error::Error for RuleCodecError {}

impl RuleSpec {
    /// An always,exit rule with no syscalls and no fields.
    pub fn exit_always() -> RuleSpec {
        RuleSpec {
            flags: AUDIT_FILTER_EXIT,
            action: AUDIT_ALWAYS,
            mask: [0; AUDIT_BITMASK_SIZE],
            fields: Vec::new(),
        }
    }

    pub fn set_syscall(&mut self, nr: u32) {
        if let Some(w) = self.mask.get_mut((nr / 32) as usize) {
            *w |= 1 << (nr % 32);
        }
    }

    pub fn has_syscall(&self, nr: u32) -> bool {
        self.mask
            .get((nr / 32) as usize)
            .is_some_and(|w| w & (1 << (nr % 32)) != 0)
    }

    /// The first field of this kind.
    pub fn field(&self, field: u32) -> Option<&RuleField> {
        self.fields.iter().find(|f| f.field == field)
    }

    pub fn str_field(&self, field: u32) -> Option<&[u8]> {
        match self.field(field).map(|f| &f.value) {
            Some(FieldValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The rule's keys: the AUDIT_FILTERKEY string split at `\x01`.
    pub fn keys(&self) -> Vec<&[u8]> {
        self.str_field(AUDIT_FILTERKEY)
            .map(split_keys)
            .unwrap_or_default()
    }

    /// The `struct audit_rule_data` bytes, in native byte order.
    pub fn encode(&self) -> Result<Vec<u8>, RuleCodecError> {
        if self.fields.len() > AUDIT_MAX_FIELDS {
            return Err(RuleCodecError::TooManyFields(self.fields.len()));
        }
        let mut fields = [0u32; AUDIT_MAX_FIELDS];
        let mut values = [0u32; AUDIT_MAX_FIELDS];
        let mut ops = [0u32; AUDIT_MAX_FIELDS];
        let mut buf = Vec::new();
        for (i, f) in self.fields.iter().enumerate() {
            fields[i] = f.field;
            ops[i] = f.op;
            values[i] = match &f.value {
                FieldValue::Num(v) => *v,
                FieldValue::Str(s) => {
                    if f.field == AUDIT_FILTERKEY && s.len() > AUDIT_MAX_KEY_LEN {
                        return Err(RuleCodecError::KeyTooLong(s.len()));
                    }
                    buf.extend_from_slice(s);
                    s.len() as u32
                }
            };
        }
        let mut out = Vec::with_capacity(RULE_FIXED_LEN + buf.len());
        let mut put = |v: u32| out.extend_from_slice(&v.to_ne_bytes());
        put(self.flags);
        put(self.action);
        put(self.fields.len() as u32);
        self.mask.iter().for_each(|&v| put(v));
        fields.iter().for_each(|&v| put(v));
        values.iter().for_each(|&v| put(v));
        ops.iter().for_each(|&v| put(v));
        put(buf.len() as u32);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decodes one rule message. Strings are taken from `buf` in field order, each as
    /// long as its `values[i]`.
    pub fn decode(p: &[u8]) -> Result<RuleSpec, RuleCodecError> {
        if p.len() < RULE_FIXED_LEN {
            return Err(RuleCodecError::Short { len: p.len() });
        }
        let w = |i: usize| ne_u32(p, 4 * i);
        let count = w(2) as usize;
        if count > AUDIT_MAX_FIELDS {
            return Err(RuleCodecError::TooManyFields(count));
        }
        let mut mask = [0u32; AUDIT_BITMASK_SIZE];
        for (i, m) in mask.iter_mut().enumerate() {
            *m = w(3 + i);
        }
        let (fields_at, values_at, ops_at) = (3 + 64, 3 + 128, 3 + 192);
        let buflen = w(3 + 256) as usize;
        let buf = &p[RULE_FIXED_LEN..];
        let buf = &buf[..buflen.min(buf.len())];
        let mut off = 0usize;
        let mut fields = Vec::with_capacity(count);
        for i in 0..count {
            let field = w(fields_at + i);
            let raw = w(values_at + i);
            let value = if is_string_field(field) {
                let end = off
                    .checked_add(raw as usize)
                    .filter(|&e| e <= buf.len())
                    .ok_or(RuleCodecError::StringOverrun { field_index: i })?;
                let s = buf[off..end].to_vec();
                off = end;
                FieldValue::Str(s)
            } else {
                FieldValue::Num(raw)
            };
            fields.push(RuleField {
                field,
                op: w(ops_at + i),
                value,
            });
        }
        Ok(RuleSpec {
            flags: w(0),
            action: w(1),
            mask,
            fields,
        })
    }
}

fn split_keys(s: &[u8]) -> Vec<&[u8]> {
    s.split(|&b| b == AUDIT_KEY_SEPARATOR).collect()
}

/// Finds the key of a rule that does not decode as a whole (an unknown string field
/// before the key would shift every string). auditctl always sends the key as the last
/// field, so its string is the tail of the buffer.
fn fallback_keys(p: &[u8]) -> Vec<Vec<u8>> {
    if p.len() < RULE_FIXED_LEN {
        return Vec::new();
    }
    let count = (ne_u32(p, 8) as usize).min(AUDIT_MAX_FIELDS);
    if count == 0 || ne_u32(p, 4 * (3 + 64 + count - 1)) != AUDIT_FILTERKEY {
        return Vec::new();
    }
    let len = ne_u32(p, 4 * (3 + 128 + count - 1)) as usize;
    let buflen = (ne_u32(p, 4 * (3 + 256)) as usize).min(p.len() - RULE_FIXED_LEN);
    if len > buflen || len > AUDIT_MAX_KEY_LEN {
        return Vec::new();
    }
    let buf = &p[RULE_FIXED_LEN..RULE_FIXED_LEN + buflen];
    split_keys(&buf[buflen - len..])
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect()
}

/// One rule as the kernel listed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedRule {
    /// The payload exactly as listed. Deleting sends these bytes back: the kernel
    /// stores a rule with its syscall-class bits expanded and cleared
    /// (audit_to_entry_common() in kernel/auditfilter.c), so the listed form, not the
    /// form once sent, is what is sure to compare equal.
    pub payload: Vec<u8>,
    /// The decoded rule, or why it did not decode.
    pub rule: Result<RuleSpec, RuleCodecError>,
    /// The keys, from the decoded rule or, failing that, from the buffer's tail.
    pub keys: Vec<Vec<u8>>,
}

impl ListedRule {
    pub fn from_payload(payload: &[u8]) -> ListedRule {
        let rule = RuleSpec::decode(payload);
        let keys = match &rule {
            Ok(r) => r.keys().into_iter().map(<[u8]>::to_vec).collect(),
            Err(_) => fallback_keys(payload),
        };
        ListedRule {
            payload: payload.to_vec(),
            rule,
            keys,
        }
    }

    pub fn has_key_with_prefix(&self, prefix: &[u8]) -> bool {
        self.keys.iter().any(|k| k.starts_with(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlmsg(rtype: u16, seq: u32, payload: &[u8], len_override: Option<u32>) -> Vec<u8> {
        let len = len_override.unwrap_or((NLMSG_HDRLEN + payload.len()) as u32);
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&rtype.to_ne_bytes());
        v.extend_from_slice(&0u16.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn collect(datagram: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        split_records(datagram, &mut |t, text| out.push((t, text.to_vec())));
        out
    }

    #[test]
    fn one_record_per_datagram() {
        let d = nlmsg(1300, 0, b"audit(1.002:3): arch=c000003e", None);
        assert_eq!(
            collect(&d),
            vec![(1300, b"audit(1.002:3): arch=c000003e".to_vec())]
        );
    }

    #[test]
    fn padding_quirk_splits_at_aligned_length() {
        // nlmsg_len 23 (payload 7), padded to 24, then a second message.
        let mut d = nlmsg(1305, 0, b"abcdefg", None);
        d.push(0);
        d.extend(nlmsg(1320, 0, b"audit(1.0:9): ", None));
        let got = collect(&d);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (1305, b"abcdefg".to_vec()));
        assert_eq!(got[1].0, 1320);
    }

    #[test]
    fn trailing_nuls_dropped_and_bad_length_means_rest() {
        let d = nlmsg(1302, 0, b"audit(1.0:1): x=1\0\0\0", Some(3));
        assert_eq!(collect(&d), vec![(1302, b"audit(1.0:1): x=1".to_vec())]);
        let d = nlmsg(1302, 0, b"y", Some(9999));
        assert_eq!(collect(&d), vec![(1302, b"y".to_vec())]);
    }

    #[test]
    fn control_messages_are_not_records() {
        let mut d = nlmsg(NLMSG_DONE, 0, &[0; 4], None);
        d.extend(nlmsg(1300, 0, b"t", None));
        d.extend([0u8; 3]); // shorter than a header: padding
        assert_eq!(collect(&d), vec![(1300, b"t".to_vec())]);
    }

    #[test]
    fn log_line_raw_form() {
        let mut out = Vec::new();
        format_log_line(1300, b"audit(1.002:3): a=b", &mut out);
        format_log_line(1, b"audit(1.002:3): c", &mut out);
        assert_eq!(
            out,
            b"type=SYSCALL msg=audit(1.002:3): a=b\ntype=UNKNOWN[1] msg=audit(1.002:3): c\n"
        );
        let line = &out[..out.iter().position(|&b| b == b'\n').unwrap() + 1];
        let r = crate::record::Record::from_log_line(line).unwrap();
        assert_eq!(r.rtype, 1300);
    }

    #[test]
    fn status_decodes_by_length() {
        let words: Vec<u32> = (0..11).collect();
        let p: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let s = AuditStatus::decode(&p).unwrap();
        assert_eq!((s.enabled, s.pid, s.backlog), (1, 3, 7));
        assert_eq!(s.backlog_wait_time, 9);
        assert_eq!(s.backlog_wait_time_actual, Some(10));
        let s = AuditStatus::decode(&p[..40]).unwrap();
        assert_eq!(s.backlog_wait_time_actual, None);
        assert!(AuditStatus::decode(&p[..31]).is_none());
    }

    fn sample_rule() -> RuleSpec {
        let mut r = RuleSpec::exit_always();
        r.set_syscall(257);
        r.set_syscall(2);
        r.fields = vec![
            RuleField {
                field: AUDIT_ARCH,
                op: AUDIT_EQUAL,
                value: FieldValue::Num(AUDIT_ARCH_X86_64),
            },
            RuleField {
                field: AUDIT_DIR,
                op: AUDIT_EQUAL,
                value: FieldValue::Str(b"/tmp".to_vec()),
            },
            RuleField {
                field: AUDIT_PERM,
                op: AUDIT_EQUAL,
                value: FieldValue::Num(AUDIT_PERM_WRITE),
            },
            RuleField {
                field: AUDIT_UID,
                op: AUDIT_NOT_EQUAL,
                value: FieldValue::Num(0),
            },
            RuleField {
                field: AUDIT_FILTERKEY,
                op: AUDIT_EQUAL,
                value: FieldValue::Str(b"wwatchd-tmp\x01second".to_vec()),
            },
        ];
        r
    }

    #[test]
    fn rule_round_trip() {
        let r = sample_rule();
        let p = r.encode().unwrap();
        assert_eq!(p.len(), RULE_FIXED_LEN + 4 + 18);
        let back = RuleSpec::decode(&p).unwrap();
        assert_eq!(back, r);
        assert!(back.has_syscall(257) && back.has_syscall(2) && !back.has_syscall(3));
        assert_eq!(back.keys(), vec![&b"wwatchd-tmp"[..], b"second"]);
        let raw = ListedRule::from_payload(&p);
        assert!(raw.has_key_with_prefix(b"wwatchd-"));
        assert_eq!(raw.keys, vec![b"wwatchd-tmp".to_vec(), b"second".to_vec()]);
    }

    /// Hand-built like `auditctl -l` would list `-F exe=/usr/bin/true -F uid!=0
    /// -F success=1 -k a -k b`: the exe string comes first in buf. netlink-packet-audit
    /// 0.7 reads exe as a number and so misreads every later string.
    #[test]
    fn listed_rule_with_exe_and_two_keys() {
        let mut words = vec![AUDIT_FILTER_EXIT, AUDIT_ALWAYS, 4];
        words.extend([u32::MAX; 64]);
        let mut fields = [0u32; 64];
        let mut values = [0u32; 64];
        let mut ops = [0u32; 64];
        let exe = b"/usr/bin/true";
        let key = b"a\x01b";
        for (i, (f, v, o)) in [
            (AUDIT_EXE, exe.len() as u32, AUDIT_EQUAL),
            (AUDIT_UID, 0, AUDIT_NOT_EQUAL),
            (AUDIT_SUCCESS, 1, AUDIT_EQUAL),
            (AUDIT_FILTERKEY, key.len() as u32, AUDIT_EQUAL),
        ]
        .into_iter()
        .enumerate()
        {
            fields[i] = f;
            values[i] = v;
            ops[i] = o;
        }
        words.extend(fields);
        words.extend(values);
        words.extend(ops);
        words.push((exe.len() + key.len()) as u32);
        let mut p: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        p.extend_from_slice(exe);
        p.extend_from_slice(key);

        let raw = ListedRule::from_payload(&p);
        let r = raw.rule.as_ref().unwrap();
        assert_eq!(r.str_field(AUDIT_EXE), Some(&exe[..]));
        assert_eq!(r.fields[1].op, AUDIT_NOT_EQUAL);
        assert_eq!(r.fields[2].value, FieldValue::Num(1));
        assert_eq!(raw.keys, vec![b"a".to_vec(), b"b".to_vec()]);
        // Re-encoding gives the listed bytes back.
        assert_eq!(r.encode().unwrap(), p);

        // An unknown string field before the key breaks the decode; the key is still found.
        let mut bad = p.clone();
        let at = 4 * (3 + 128); // values[0]: claim a longer exe than the buffer holds
        bad[at..at + 4].copy_from_slice(&1000u32.to_ne_bytes());
        let raw = ListedRule::from_payload(&bad);
        assert!(raw.rule.is_err());
        assert_eq!(raw.keys, vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn short_rule_is_an_error() {
        let raw = ListedRule::from_payload(&[0; 100]);
        assert_eq!(raw.rule, Err(RuleCodecError::Short { len: 100 }));
        assert!(raw.keys.is_empty());
    }
}
