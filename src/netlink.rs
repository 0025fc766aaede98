//! netlink: the OS edge for kernel audit. Every socket in wwatchd lives here.
//!
//! `[netlink] → record → event → rule → alert → syslog`
//!
//! Two sockets, both `NETLINK_AUDIT`:
//! - [`MulticastReader`]: joined to `AUDIT_NLGRP_READLOG`, a read-only copy of the record
//!   stream that coexists with auditd (needs CAP_AUDIT_READ, kernel ≥ 3.16);
//! - [`Control`]: unicast requests (status, enable, rules) with **no pid registered**, so
//!   auditd keeps the unicast stream (needs CAP_AUDIT_CONTROL).
//!
//! The rule wire format (`struct audit_rule_data`) is encoded and decoded here by hand,
//! one message at a time: netlink-packet-audit 0.7 decodes `AUDIT_EXE` as a number, which
//! shifts every later string of a listed rule.
//!
//! No `unsafe`: sockets come from netlink-sys, options and `recvfrom` from nix.

#![forbid(unsafe_code)]

use std::fmt;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_AUDIT};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, NetlinkAddr, getsockopt, recvfrom, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeVal;

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
    pub const AUDIT_FILTERKEY: u32 = 210;

    // Operators, stored in `fieldflags`.
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

/// The kernel caps one record's text at 8970 bytes (MAX_AUDIT_MESSAGE_LENGTH in
/// kernel/audit.c); 64 KiB also holds any listed rule (1040 bytes plus its paths).
const RECV_BUF: usize = 64 * 1024;

/// Default multicast receive buffer: measured lossless at 8–32 MiB (audit-facts.md).
pub const DEFAULT_RCVBUF: usize = 16 << 20;

/// How long a control request waits for the kernel's replies.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed socket operation or kernel request. `Display` names the operation, the
/// errno and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetlinkError {
    /// A socket call failed.
    Io { op: &'static str, errno: Errno },
    /// The kernel answered the request with an error (NLMSG_ERROR).
    Kernel { op: &'static str, errno: Errno },
    /// The kernel sent no complete answer in time.
    Timeout { op: &'static str },
    /// A reply we cannot make sense of.
    Protocol { op: &'static str, what: String },
    /// A request this module refuses to send (e.g. `enabled 2`).
    Refused { op: &'static str, why: &'static str },
}

impl NetlinkError {
    /// The errno, for kernel and socket errors.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            NetlinkError::Io { errno, .. } | NetlinkError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    fn hint(&self) -> &'static str {
        let (op, errno) = match self {
            NetlinkError::Io { op, errno } | NetlinkError::Kernel { op, errno } => (*op, *errno),
            NetlinkError::Timeout { .. } => {
                return "the kernel audit thread did not answer; check `auditctl -s` and dmesg";
            }
            NetlinkError::Protocol { .. } => {
                return "this is a bug in wwatchd or a kernel ABI change";
            }
            NetlinkError::Refused { .. } => return "",
        };
        match errno {
            Errno::EPERM | Errno::EACCES if op.starts_with("join") => {
                "needs CAP_AUDIT_READ; run as root"
            }
            Errno::EPERM | Errno::EACCES => "needs CAP_AUDIT_CONTROL; run as root",
            Errno::EPROTONOSUPPORT => "the kernel has no audit support (CONFIG_AUDIT=n)",
            Errno::ECONNREFUSED => "audit is disabled by the kernel command line (audit=0)",
            Errno::EINVAL if op.starts_with("join") => {
                "the kernel has no audit multicast group (needs Linux ≥ 3.16)"
            }
            Errno::EINVAL if op.contains("rule") => {
                "the kernel rejected the rule; check `auditctl -s` for `enabled 2` (locked) \
                 and that paths are absolute"
            }
            Errno::EEXIST => "the rule is already loaded",
            Errno::ENOENT if op.contains("add") => "the watched path does not exist",
            Errno::ENOENT => "no such rule is loaded",
            Errno::ENOBUFS => "records were lost; raise the receive buffer",
            _ => "",
        }
    }
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetlinkError::Io { op, errno } => write!(f, "{op}: {errno}")?,
            NetlinkError::Kernel { op, errno } => write!(f, "{op}: kernel said {errno}")?,
            NetlinkError::Timeout { op } => write!(f, "{op}: no reply within {CONTROL_TIMEOUT:?}")?,
            NetlinkError::Protocol { op, what } => write!(f, "{op}: bad reply: {what}")?,
            NetlinkError::Refused { op, why } => write!(f, "{op}: refused: {why}")?,
        }
        match self.hint() {
            "" => Ok(()),
            h => write!(f, "; {h}"),
        }
    }
}

impl std::error::Error for NetlinkError {}

fn io_err(op: &'static str, e: std::io::Error) -> NetlinkError {
    NetlinkError::Io {
        op,
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    }
}

// ---------------------------------------------------------------------------------------
// Datagram splitting
// ---------------------------------------------------------------------------------------

const fn nlmsg_align(len: usize) -> usize {
    (len + 3) & !3
}

fn ne_u32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn ne_u16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

/// One netlink message inside a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NlMsg<'a> {
    rtype: u16,
    flags: u16,
    seq: u32,
    payload: &'a [u8],
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
fn split_datagram(datagram: &[u8], mut f: impl FnMut(NlMsg<'_>)) {
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
fn trim_nuls(mut text: &[u8]) -> &[u8] {
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
// Multicast reader
// ---------------------------------------------------------------------------------------

/// What one [`MulticastReader::recv`] call saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvOutcome {
    /// A datagram arrived and this many audit messages were passed to the callback
    /// (0 for a datagram from a sender other than the kernel, which is dropped).
    Messages(usize),
    /// The timeout passed with nothing to read.
    Timeout,
    /// The socket overflowed: the kernel dropped an unknown number of records (often a
    /// burst of many). The kernel's `lost` counter does not count these.
    Enobufs,
}

/// Counters a reader keeps for the daemon's own diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReaderStats {
    pub datagrams: u64,
    pub messages: u64,
    pub enobufs: u64,
    /// Datagrams dropped because their sender was not the kernel.
    pub foreign: u64,
}

/// A read-only tap on the kernel's audit record stream (`AUDIT_NLGRP_READLOG`).
///
/// Joining makes the kernel log one `EVENT_LISTENER` (1335) record with `op=connect`.
pub struct MulticastReader {
    sock: Socket,
    buf: Vec<u8>,
    timeout: Option<Option<Duration>>,
    rcvbuf: usize,
    stats: ReaderStats,
}

impl MulticastReader {
    /// Opens the socket, sizes its receive buffer to `rcvbuf` bytes and joins the group.
    ///
    /// `SO_RCVBUFFORCE` needs CAP_NET_ADMIN; if it is refused the buffer is set with
    /// `SO_RCVBUF` (capped by `net.core.rmem_max`) and a warning for the log is returned.
    pub fn open(rcvbuf: usize) -> Result<(MulticastReader, Option<String>), NetlinkError> {
        let mut sock = Socket::new(NETLINK_AUDIT).map_err(|e| io_err("open audit socket", e))?;
        let mut warning = None;
        // Size the buffer before joining so a burst at join time is not lost.
        match setsockopt(&sock, sockopt::RcvBufForce, &rcvbuf) {
            Ok(()) => {}
            Err(Errno::EPERM) => {
                setsockopt(&sock, sockopt::RcvBuf, &rcvbuf).map_err(|errno| NetlinkError::Io {
                    op: "set SO_RCVBUF on the multicast socket",
                    errno,
                })?;
                let got = getsockopt(&sock, sockopt::RcvBuf).unwrap_or(0);
                warning = Some(format!(
                    "SO_RCVBUFFORCE refused (needs CAP_NET_ADMIN); receive buffer is {got} bytes \
                     instead of {rcvbuf} (SO_RCVBUF is capped by net.core.rmem_max); expect \
                     ENOBUFS losses under bursts"
                ));
            }
            Err(errno) => {
                return Err(NetlinkError::Io {
                    op: "set SO_RCVBUFFORCE on the multicast socket",
                    errno,
                });
            }
        }
        let actual = getsockopt(&sock, sockopt::RcvBuf).unwrap_or(0);
        sock.bind(&SocketAddr::new(0, 0))
            .map_err(|e| io_err("bind the multicast socket", e))?;
        sock.add_membership(AUDIT_NLGRP_READLOG)
            .map_err(|e| io_err("join AUDIT_NLGRP_READLOG", e))?;
        Ok((
            MulticastReader {
                sock,
                buf: vec![0; RECV_BUF],
                timeout: None,
                rcvbuf: actual,
                stats: ReaderStats::default(),
            },
            warning,
        ))
    }

    /// The receive buffer the kernel granted (it reports double the requested size).
    pub fn rcvbuf(&self) -> usize {
        self.rcvbuf
    }

    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// Blocks until a datagram arrives or `timeout` passes (`None`: no timeout), then
    /// calls `f(rtype, text)` for each audit message in it.
    pub fn recv(
        &mut self,
        timeout: Option<Duration>,
        f: &mut dyn FnMut(u16, &[u8]),
    ) -> Result<RecvOutcome, NetlinkError> {
        if self.timeout != Some(timeout) {
            set_recv_timeout(
                &self.sock,
                timeout,
                "set SO_RCVTIMEO on the multicast socket",
            )?;
            self.timeout = Some(timeout);
        }
        self.recv_inner(MsgFlags::empty(), f)
    }

    /// Like [`MulticastReader::recv`] but never waits: [`RecvOutcome::Timeout`] when no
    /// datagram is queued. Lets a caller drain what is already there into one batch.
    pub fn recv_ready(
        &mut self,
        f: &mut dyn FnMut(u16, &[u8]),
    ) -> Result<RecvOutcome, NetlinkError> {
        self.recv_inner(MsgFlags::MSG_DONTWAIT, f)
    }

    fn recv_inner(
        &mut self,
        flags: MsgFlags,
        f: &mut dyn FnMut(u16, &[u8]),
    ) -> Result<RecvOutcome, NetlinkError> {
        let fd = self.sock.as_raw_fd();
        let (n, from) = loop {
            let mut iov = [std::io::IoSliceMut::new(&mut self.buf)];
            match recvmsg::<NetlinkAddr>(fd, &mut iov, None, flags) {
                Ok(m) => break (m.bytes, m.address),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(RecvOutcome::Timeout),
                Err(Errno::ENOBUFS) => {
                    self.stats.enobufs += 1;
                    return Ok(RecvOutcome::Enobufs);
                }
                Err(errno) => {
                    return Err(NetlinkError::Io {
                        op: "receive from the multicast socket",
                        errno,
                    });
                }
            }
        };
        self.stats.datagrams += 1;
        // Only the kernel (port 0) may speak on this socket; auditd and go-libaudit drop
        // anything else the same way.
        if from.is_none_or(|a| a.pid() != 0) {
            self.stats.foreign += 1;
            return Ok(RecvOutcome::Messages(0));
        }
        let count = split_records(&self.buf[..n], f);
        self.stats.messages += count as u64;
        Ok(RecvOutcome::Messages(count))
    }
}

fn set_recv_timeout(
    sock: &Socket,
    timeout: Option<Duration>,
    op: &'static str,
) -> Result<(), NetlinkError> {
    // A zero timeval means "block forever"; clamp a real timeout to at least 1 µs so
    // Some(ZERO) does not turn into that.
    let tv = match timeout {
        None => TimeVal::new(0, 0),
        Some(d) => {
            let secs = d.as_secs().min(i64::MAX as u64) as i64;
            let micros = i64::from(d.subsec_micros());
            if secs == 0 && micros == 0 {
                TimeVal::new(0, 1)
            } else {
                TimeVal::new(secs, micros)
            }
        }
    };
    setsockopt(sock, sockopt::ReceiveTimeout, &tv).map_err(|errno| NetlinkError::Io { op, errno })
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
pub struct RawRule {
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

impl RawRule {
    pub fn from_payload(payload: &[u8]) -> RawRule {
        let rule = RuleSpec::decode(payload);
        let keys = match &rule {
            Ok(r) => r.keys().into_iter().map(<[u8]>::to_vec).collect(),
            Err(_) => fallback_keys(payload),
        };
        RawRule {
            payload: payload.to_vec(),
            rule,
            keys,
        }
    }

    pub fn has_key_with_prefix(&self, prefix: &[u8]) -> bool {
        self.keys.iter().any(|k| k.starts_with(prefix))
    }
}

// ---------------------------------------------------------------------------------------
// Control socket
// ---------------------------------------------------------------------------------------

/// Outcome of adding a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    Added,
    /// EEXIST: an identical rule is already loaded.
    Exists,
}

/// Outcome of deleting a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelOutcome {
    Deleted,
    /// ENOENT: no such rule was loaded.
    Missing,
}

/// Unicast requests to the kernel's audit subsystem.
///
/// The socket never registers a pid (`AUDIT_SET` with `AUDIT_STATUS_PID`): that would
/// take the record stream away from auditd.
pub struct Control {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// What a request waits for after sending.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Only the ACK.
    Ack,
    /// The ACK and one message of the request's type (AUDIT_GET).
    AckAndOne,
    /// The ACK, any number of messages, then NLMSG_DONE (AUDIT_LIST_RULES).
    AckAndDump,
}

impl Control {
    pub fn open() -> Result<Control, NetlinkError> {
        let mut sock = Socket::new(NETLINK_AUDIT).map_err(|e| io_err("open audit socket", e))?;
        sock.bind_auto()
            .map_err(|e| io_err("bind the audit control socket", e))?;
        // Replies come from a kernel thread; bound each wait so a lost reply cannot hang us.
        set_recv_timeout(
            &sock,
            Some(Duration::from_millis(500)),
            "set SO_RCVTIMEO on the control socket",
        )?;
        Ok(Control {
            sock,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// `AUDIT_GET`.
    pub fn get_status(&mut self) -> Result<AuditStatus, NetlinkError> {
        const OP: &str = "get audit status";
        let mut status = None;
        self.request(OP, AUDIT_GET, &[], Expect::AckAndOne, &mut |p| {
            status = AuditStatus::decode(p);
        })?;
        status.ok_or(NetlinkError::Protocol {
            op: OP,
            what: "status shorter than 32 bytes".into(),
        })
    }

    /// `AUDIT_SET` with `AUDIT_STATUS_ENABLED` only: 0 or 1. Refuses 2, which locks the
    /// configuration until reboot.
    pub fn set_enabled(&mut self, enabled: u32) -> Result<(), NetlinkError> {
        const OP: &str = "set audit enabled";
        if enabled > 1 {
            return Err(NetlinkError::Refused {
                op: OP,
                why: "only 0 and 1 are allowed; 2 locks the audit configuration until reboot",
            });
        }
        // struct audit_status with only mask and enabled set. The kernel copies
        // min(sizeof, len) bytes (audit_receive_msg() in kernel/audit.c) and acts only on
        // the bits in mask, so the pid field, though zero, is never looked at.
        let mut p = [0u8; 44];
        p[0..4].copy_from_slice(&AUDIT_STATUS_ENABLED.to_ne_bytes());
        p[4..8].copy_from_slice(&enabled.to_ne_bytes());
        self.request(OP, AUDIT_SET, &p, Expect::Ack, &mut |_| {})
    }

    /// `AUDIT_LIST_RULES`: every loaded rule, each decoded on its own.
    pub fn list_rules(&mut self) -> Result<Vec<RawRule>, NetlinkError> {
        let mut rules = Vec::new();
        self.request(
            "list audit rules",
            AUDIT_LIST_RULES,
            &[],
            Expect::AckAndDump,
            &mut |p| rules.push(RawRule::from_payload(p)),
        )?;
        Ok(rules)
    }

    /// `AUDIT_ADD_RULE`. EEXIST is [`AddOutcome::Exists`]; other kernel errors (ENOENT
    /// for a watched path that does not exist, EINVAL) are errors.
    pub fn add_rule(&mut self, spec: &RuleSpec) -> Result<AddOutcome, NetlinkError> {
        const OP: &str = "add audit rule";
        let p = spec.encode().map_err(|e| NetlinkError::Protocol {
            op: OP,
            what: e.to_string(),
        })?;
        match self.request(OP, AUDIT_ADD_RULE, &p, Expect::Ack, &mut |_| {}) {
            Ok(()) => Ok(AddOutcome::Added),
            Err(NetlinkError::Kernel {
                errno: Errno::EEXIST,
                ..
            }) => Ok(AddOutcome::Exists),
            Err(e) => Err(e),
        }
    }

    /// `AUDIT_DEL_RULE` for a rule built here.
    pub fn del_rule(&mut self, spec: &RuleSpec) -> Result<DelOutcome, NetlinkError> {
        let p = spec.encode().map_err(|e| NetlinkError::Protocol {
            op: "delete audit rule",
            what: e.to_string(),
        })?;
        self.del_payload(&p)
    }

    /// `AUDIT_DEL_RULE` for a listed rule, sent back exactly as listed.
    pub fn del_listed(&mut self, rule: &RawRule) -> Result<DelOutcome, NetlinkError> {
        self.del_payload(&rule.payload)
    }

    fn del_payload(&mut self, p: &[u8]) -> Result<DelOutcome, NetlinkError> {
        const OP: &str = "delete audit rule";
        match self.request(OP, AUDIT_DEL_RULE, p, Expect::Ack, &mut |_| {}) {
            Ok(()) => Ok(DelOutcome::Deleted),
            Err(NetlinkError::Kernel {
                errno: Errno::ENOENT,
                ..
            }) => Ok(DelOutcome::Missing),
            Err(e) => Err(e),
        }
    }

    /// Sends one request with NLM_F_ACK and reads replies until `expect` is met.
    ///
    /// The ACK is sent synchronously by netlink_rcv_skb(); GET and LIST_RULES data come
    /// afterwards from a kernel thread (audit_send_reply() and audit_send_list_thread()
    /// in kernel/audit.c, which wait on audit_ctl_lock), so the ACK is not the end.
    /// Replies to earlier requests that timed out carry an older seq and are skipped.
    fn request(
        &mut self,
        op: &'static str,
        rtype: u16,
        payload: &[u8],
        expect: Expect,
        on_data: &mut dyn FnMut(&[u8]),
    ) -> Result<(), NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut msg = Vec::with_capacity(nlmsg_align(NLMSG_HDRLEN + payload.len()));
        msg.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&rtype.to_ne_bytes());
        msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid 0: from us, not a registration
        msg.extend_from_slice(payload);
        msg.resize(nlmsg_align(msg.len()), 0);
        loop {
            match self.sock.send_to(&msg, &SocketAddr::new(0, 0), 0) {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(op, e)),
            }
        }

        let deadline = Instant::now() + CONTROL_TIMEOUT;
        let mut acked = false;
        let mut data_done = expect == Expect::Ack;
        let mut failure: Option<Errno> = None;
        while !(acked && data_done) {
            if Instant::now() >= deadline {
                return Err(NetlinkError::Timeout { op });
            }
            let (n, from) = match recvfrom::<NetlinkAddr>(self.sock.as_raw_fd(), &mut self.buf) {
                Ok(r) => r,
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(errno) => return Err(NetlinkError::Io { op, errno }),
            };
            if from.is_none_or(|a| a.pid() != 0) {
                continue;
            }
            split_datagram(&self.buf[..n], |m| {
                if m.seq != seq {
                    return;
                }
                match m.rtype {
                    NLMSG_ERROR => {
                        let err = if m.payload.len() >= 4 {
                            i32::from_ne_bytes([
                                m.payload[0],
                                m.payload[1],
                                m.payload[2],
                                m.payload[3],
                            ])
                        } else {
                            -(Errno::EPROTO as i32)
                        };
                        acked = true;
                        if err != 0 {
                            failure = Some(Errno::from_raw(-err));
                        }
                    }
                    NLMSG_DONE => data_done = true,
                    NLMSG_NOOP | NLMSG_OVERRUN => {}
                    t if t == rtype => {
                        on_data(m.payload);
                        if expect == Expect::AckAndOne {
                            data_done = true;
                        }
                    }
                    _ => {}
                }
            });
            if let Some(errno) = failure {
                // No data follows an error.
                return Err(NetlinkError::Kernel { op, errno });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Kernel audit state is global: tests that touch it take this lock and skip with a
    //! message unless they run as root with audit available and not locked.
    use super::*;
    use std::sync::{Mutex, MutexGuard};

    static KERNEL: Mutex<()> = Mutex::new(());

    pub(crate) fn kernel_lock() -> MutexGuard<'static, ()> {
        KERNEL.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some(control)` when kernel tests can run; prints why not otherwise.
    pub(crate) fn kernel_control(test: &str) -> Option<Control> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping {test}: needs root (CAP_AUDIT_CONTROL, CAP_AUDIT_READ)");
            return None;
        }
        let mut ctl = match Control::open() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skipping {test}: {e}");
                return None;
            }
        };
        match ctl.get_status() {
            Ok(s) if s.enabled == 2 => {
                eprintln!("skipping {test}: audit is locked (enabled 2)");
                None
            }
            Ok(_) => Some(ctl),
            Err(e) => {
                eprintln!("skipping {test}: {e}");
                None
            }
        }
    }

    /// Runs auditctl with `args`, returning stdout; panics with stderr on failure.
    pub(crate) fn auditctl(args: &[&str]) -> String {
        let out = std::process::Command::new("auditctl")
            .args(args)
            .output()
            .expect("run auditctl");
        assert!(
            out.status.success(),
            "auditctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Turns audit on for the test if it was off, and back off when dropped.
    pub(crate) struct EnabledGuard {
        restore: bool,
    }

    impl EnabledGuard {
        pub(crate) fn new(ctl: &mut Control) -> EnabledGuard {
            let s = ctl.get_status().expect("status");
            if s.enabled == 0 {
                ctl.set_enabled(1).expect("enable audit");
                EnabledGuard { restore: true }
            } else {
                EnabledGuard { restore: false }
            }
        }
    }

    impl Drop for EnabledGuard {
        fn drop(&mut self) {
            if self.restore
                && let Ok(mut c) = Control::open()
            {
                let _ = c.set_enabled(0);
            }
        }
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
        let raw = RawRule::from_payload(&p);
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

        let raw = RawRule::from_payload(&p);
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
        let raw = RawRule::from_payload(&bad);
        assert!(raw.rule.is_err());
        assert_eq!(raw.keys, vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn short_rule_is_an_error() {
        let raw = RawRule::from_payload(&[0; 100]);
        assert_eq!(raw.rule, Err(RuleCodecError::Short { len: 100 }));
        assert!(raw.keys.is_empty());
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = NetlinkError::Kernel {
            op: "add audit rule",
            errno: Errno::EPERM,
        };
        assert!(e.to_string().contains("CAP_AUDIT_CONTROL"), "{e}");
        let e = NetlinkError::Io {
            op: "join AUDIT_NLGRP_READLOG",
            errno: Errno::EPERM,
        };
        assert!(e.to_string().contains("CAP_AUDIT_READ"), "{e}");
    }

    /// Without privileges the errors say what is needed. Meaningful only when not root.
    #[test]
    fn unprivileged_errors_name_the_capability() {
        if nix::unistd::geteuid().is_root() {
            eprintln!("skipping unprivileged_errors_name_the_capability: running as root");
            return;
        }
        let Ok(mut c) = Control::open() else {
            return;
        };
        let e = c.get_status().unwrap_err();
        eprintln!("get_status: {e}");
        assert_eq!(e.errno(), Some(Errno::EPERM), "{e}");
        assert!(e.to_string().contains("CAP_AUDIT_CONTROL"));
        match MulticastReader::open(DEFAULT_RCVBUF) {
            Ok((_, w)) => eprintln!("multicast opened unprivileged, warning {w:?}"),
            Err(e) => {
                eprintln!("multicast: {e}");
                assert!(e.to_string().contains("CAP_AUDIT_READ"), "{e}");
            }
        }
    }

    #[test]
    fn set_enabled_refuses_two() {
        // Refused before any socket I/O, so this is safe anywhere a socket opens.
        if let Ok(mut c) = Control::open() {
            assert!(matches!(
                c.set_enabled(2),
                Err(NetlinkError::Refused { .. })
            ));
        }
    }
}

/// Real-kernel tests: root only (they skip with a message otherwise), serialised by
/// `kernel_lock`, each cleaning up its own rules by key. Run with `--test-threads=1`.
#[cfg(test)]
mod kernel_tests {
    use super::test_support::*;
    use super::*;
    use crate::audit_rules::{self, Arch, AuditRule};

    fn field(out: &str, name: &str) -> u32 {
        out.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in auditctl -s: {out}"))
    }

    #[test]
    fn status_matches_auditctl_s() {
        let _l = kernel_lock();
        let Some(mut ctl) = kernel_control("status_matches_auditctl_s") else {
            return;
        };
        let s = ctl.get_status().unwrap();
        let out = auditctl(&["-s"]);
        eprintln!("status {s:?}");
        assert_eq!(s.enabled, field(&out, "enabled"));
        assert_eq!(s.failure, field(&out, "failure"));
        assert_eq!(s.pid, field(&out, "pid"));
        assert_eq!(s.rate_limit, field(&out, "rate_limit"));
        assert_eq!(s.backlog_limit, field(&out, "backlog_limit"));
        assert_eq!(s.backlog_wait_time, field(&out, "backlog_wait_time"));
        if out.contains("backlog_wait_time_actual") {
            // Measured: 44 bytes on 6.18.
            assert_eq!(s.wire_len, 44);
            assert!(s.backlog_wait_time_actual.is_some());
        }
    }

    /// Deletes a rule when the test ends, passed or failed.
    struct DelOnDrop(RuleSpec);

    impl Drop for DelOnDrop {
        fn drop(&mut self) {
            if let Ok(mut c) = Control::open() {
                let _ = c.del_rule(&self.0);
            }
        }
    }

    fn test_rule(key: &str) -> AuditRule {
        AuditRule {
            arch: Arch::B64,
            syscalls: audit_rules::creation_syscalls(Arch::B64),
            dir: Some("/tmp".into()),
            path: None,
            perm: Some(AUDIT_PERM_WRITE),
            uid_ne: Some(0),
            success: Some(true),
            key: key.into(),
        }
    }

    #[test]
    fn add_twice_exists_delete_twice_missing() {
        let _l = kernel_lock();
        let Some(mut ctl) = kernel_control("add_twice_exists_delete_twice_missing") else {
            return;
        };
        let pid_before = ctl.get_status().unwrap().pid;
        let key = format!("wwatchd-test-{}-dup", std::process::id());
        let spec = test_rule(&key).to_spec().unwrap();
        assert_eq!(ctl.add_rule(&spec).unwrap(), AddOutcome::Added);
        let _cleanup = DelOnDrop(spec.clone());
        assert_eq!(ctl.add_rule(&spec).unwrap(), AddOutcome::Exists);
        let listed: Vec<RawRule> = ctl
            .list_rules()
            .unwrap()
            .into_iter()
            .filter(|r| r.keys.iter().any(|k| k == key.as_bytes()))
            .collect();
        assert_eq!(listed.len(), 1);
        let l = listed[0].rule.as_ref().unwrap();
        assert_eq!(l.str_field(AUDIT_DIR), Some(&b"/tmp"[..]));
        assert_eq!(l.fields, spec.fields);
        // auditctl -l prints it exactly as to_auditctl does.
        let text = auditctl(&["-l", "-k", &key]);
        assert_eq!(text.trim(), test_rule(&key).to_auditctl());
        // Delete what we built (not the listed form) once, then it is gone.
        assert_eq!(ctl.del_rule(&spec).unwrap(), DelOutcome::Deleted);
        assert_eq!(ctl.del_rule(&spec).unwrap(), DelOutcome::Missing);
        assert_eq!(ctl.get_status().unwrap().pid, pid_before);
    }

    #[test]
    fn listed_exe_rule_with_two_keys() {
        let _l = kernel_lock();
        let Some(mut ctl) = kernel_control("listed_exe_rule_with_two_keys") else {
            return;
        };
        let key = format!("wwatchd-test-{}-exe", std::process::id());
        auditctl(&[
            "-a",
            "always,exit",
            "-F",
            "arch=b64",
            "-S",
            "openat",
            "-F",
            "exe=/usr/bin/true",
            "-F",
            "uid!=0",
            "-F",
            "success=1",
            "-k",
            &key,
            "-k",
            "second",
        ]);
        let found: Vec<RawRule> = ctl
            .list_rules()
            .unwrap()
            .into_iter()
            .filter(|r| r.has_key_with_prefix(key.as_bytes()))
            .collect();
        let removed = audit_rules::remove_ours(&mut ctl, &key).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(removed, 1);
        let r = found[0].rule.as_ref().unwrap();
        eprintln!("listed exe rule: {:?}", r.fields);
        assert_eq!(r.str_field(AUDIT_EXE), Some(&b"/usr/bin/true"[..]));
        let uid = r.field(AUDIT_UID).unwrap();
        assert_eq!((uid.op, &uid.value), (AUDIT_NOT_EQUAL, &FieldValue::Num(0)));
        assert_eq!(
            found[0].keys,
            vec![key.as_bytes().to_vec(), b"second".to_vec()]
        );
        assert!(r.has_syscall(257));
        assert_eq!(r.encode().unwrap(), found[0].payload);
    }

    /// Measures the padding quirk: a listed rule whose strings make the payload length
    /// not a multiple of 4.
    #[test]
    fn list_reply_lengths() {
        let _l = kernel_lock();
        let Some(mut ctl) = kernel_control("list_reply_lengths") else {
            return;
        };
        let key = format!("wwatchd-test-{}-pad", std::process::id());
        let mut r = test_rule(&key);
        r.key.push('x'); // "/tmp" + key: an odd total
        let spec = r.to_spec().unwrap();
        assert_ne!(spec.encode().unwrap().len() % 4, 0);
        assert_eq!(ctl.add_rule(&spec).unwrap(), AddOutcome::Added);
        let _cleanup = DelOnDrop(spec.clone());

        let sock = Socket::new(NETLINK_AUDIT).unwrap();
        let mut msg = Vec::new();
        msg.extend_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
        msg.extend_from_slice(&AUDIT_LIST_RULES.to_ne_bytes());
        msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        msg.extend_from_slice(&7u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        sock.send_to(&msg, &SocketAddr::new(0, 0), 0).unwrap();
        set_recv_timeout(&sock, Some(Duration::from_secs(2)), "t").unwrap();
        let mut buf = vec![0u8; RECV_BUF];
        let mut ours = None;
        let mut order = Vec::new();
        loop {
            let (n, _) = recvfrom::<NetlinkAddr>(sock.as_raw_fd(), &mut buf).unwrap();
            let (len, t) = (ne_u32(&buf, 0) as usize, ne_u16(&buf, 4));
            order.push(t);
            if t == AUDIT_LIST_RULES
                && RawRule::from_payload(&buf[16..len]).has_key_with_prefix(key.as_bytes())
            {
                ours = Some((len, n));
            }
            if t == NLMSG_DONE {
                break;
            }
        }
        let (len, n) = ours.expect("our rule listed");
        eprintln!(
            "nlmsg_len {len} in a {n}-byte datagram; reply order {:?}..{:?}",
            &order[..1],
            order.last()
        );
        assert_eq!(order[0], NLMSG_ERROR, "the ACK comes first");
        assert_eq!(n, nlmsg_align(len));
    }

    /// AUDIT_SET with the ENABLED mask only, re-asserting the current value (1) so that
    /// other users of this shared kernel see no change. Leaves the registered pid alone.
    #[test]
    fn set_enabled_keeps_auditd_pid() {
        let _l = kernel_lock();
        let Some(mut ctl) = kernel_control("set_enabled_keeps_auditd_pid") else {
            return;
        };
        let before = ctl.get_status().unwrap();
        if before.enabled != 1 {
            eprintln!("skipping set_enabled_keeps_auditd_pid: audit is not enabled (1)");
            return;
        }
        ctl.set_enabled(1).unwrap();
        let after = ctl.get_status().unwrap();
        assert_eq!((after.enabled, after.pid), (1, before.pid));
    }
}
