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
//! No `unsafe`: sockets come from netlink-sys, options, `recvfrom`, `recvmmsg`, `poll` and the
//! stop [`Waker`]'s eventfd from nix.

#![forbid(unsafe_code)]

use std::fmt;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_AUDIT};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{
    MsgFlags, MultiHeaders, NetlinkAddr, getsockopt, recvfrom, recvmmsg, recvmsg, setsockopt,
    sockopt,
};
use nix::sys::time::TimeVal;

pub use wwatchd_core::kernel_rule::wire::uapi::*;
pub use wwatchd_core::kernel_rule::wire::*;

/// The kernel caps one record's text at 8970 bytes (MAX_AUDIT_MESSAGE_LENGTH in
/// kernel/audit.c); 64 KiB also holds any listed rule (1040 bytes plus its paths).
const RECV_BUF: usize = 64 * 1024;

pub use wwatchd_core::config::DEFAULT_RCVBUF;

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
    /// Datagrams longer than a [`MmsgBufs`] slot, cut short by the kernel (MSG_TRUNC): the
    /// kernel caps a record well below a slot, so this stays 0 unless that changes.
    pub truncated: u64,
}

/// Datagrams one [`MulticastReader::recv_many`] takes in one `recvmmsg` call.
pub const MMSG_SLOTS: usize = 64;
/// Bytes of one `recvmmsg` slot: a netlink header (16) plus the longest record text the
/// kernel sends (MAX_AUDIT_MESSAGE_LENGTH, 8970, kernel/audit.c), rounded up.
const MMSG_SLOT: usize = 9 * 1024;

/// The buffers of [`MulticastReader::recv_many`]: [`MMSG_SLOTS`] datagram slots and their
/// `mmsghdr`s, allocated once. They hold raw pointers (not `Send`), so the thread that reads
/// makes its own.
pub struct MmsgBufs {
    hdrs: MultiHeaders<NetlinkAddr>,
    data: Vec<u8>,
}

impl MmsgBufs {
    pub fn new() -> MmsgBufs {
        MmsgBufs {
            hdrs: MultiHeaders::preallocate(MMSG_SLOTS, None),
            data: vec![0; MMSG_SLOTS * MMSG_SLOT],
        }
    }
}

impl Default for MmsgBufs {
    fn default() -> Self {
        MmsgBufs::new()
    }
}

/// Wakes a thread blocked in [`MulticastReader::wait`] (at stop), so the reader needs no
/// timeout and an idle daemon no timer.
#[derive(Clone)]
pub struct Waker(Arc<EventFd>);

impl Waker {
    pub fn wake(&self) {
        // The counter saturates long before this could fail for a reason that matters; a
        // failed write leaves the reader blocked until the next record.
        let _ = self.0.write(1);
    }
}

/// What [`MulticastReader::wait`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The socket has a datagram (or an error, such as ENOBUFS) to read.
    Readable,
    /// The socket stayed empty for the whole timeout.
    Timeout,
    /// [`Waker::wake`] was called.
    Woken,
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
    wake: Option<Arc<EventFd>>,
    /// The last [`MulticastReader::recv_many`] took fewer datagrams than it asked for: the
    /// socket was empty when it returned, and another call now would find nothing.
    emptied: bool,
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
        connect_to_kernel(&sock, "connect the multicast socket to the kernel")?;
        Ok((
            MulticastReader {
                sock,
                buf: vec![0; RECV_BUF],
                timeout: None,
                rcvbuf: actual,
                stats: ReaderStats::default(),
                wake: None,
                emptied: false,
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

    /// A [`Waker`] for [`MulticastReader::wait`]; every call returns one for the same eventfd.
    pub fn waker(&mut self) -> Result<Waker, NetlinkError> {
        if let Some(w) = &self.wake {
            return Ok(Waker(w.clone()));
        }
        let fd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|errno| NetlinkError::Io {
            op: "create the receiver's wake-up eventfd",
            errno,
        })?;
        let fd = Arc::new(fd);
        self.wake = Some(fd.clone());
        Ok(Waker(fd))
    }

    /// Blocks until the socket has something to read, `timeout` passes (`None`: never), or
    /// the [`Waker`] is woken (then its wake-up is consumed). No timer runs while it waits
    /// with `None`.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Readiness, NetlinkError> {
        let timeout = match timeout {
            None => PollTimeout::NONE,
            // Round up, so a short wait does not turn into a busy loop of zero-length polls.
            Some(d) => PollTimeout::try_from(d.as_micros().div_ceil(1000).max(1))
                .unwrap_or(PollTimeout::MAX),
        };
        loop {
            let mut fds = [
                PollFd::new(self.sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(
                    match &self.wake {
                        Some(w) => w.as_fd(),
                        None => self.sock.as_fd(),
                    },
                    PollFlags::POLLIN,
                ),
            ];
            match poll(&mut fds, timeout) {
                Ok(0) => return Ok(Readiness::Timeout),
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(NetlinkError::Io {
                        op: "poll the multicast socket",
                        errno,
                    });
                }
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let (sock_ready, woken) = (ready(&fds[0]), self.wake.is_some() && ready(&fds[1]));
            if woken && let Some(w) = &self.wake {
                let _ = w.read();
                return Ok(Readiness::Woken);
            }
            if sock_ready {
                return Ok(Readiness::Readable);
            }
        }
    }

    /// Whether the last [`MulticastReader::recv_many`] left the socket empty (it took fewer
    /// datagrams than it asked for, or found none): the caller can skip the read that would
    /// only return `EAGAIN`.
    pub fn emptied(&self) -> bool {
        self.emptied
    }

    /// Reads what the socket holds now, up to `max` datagrams (at most [`MMSG_SLOTS`]) in one
    /// `recvmmsg`, without waiting, and calls `f(rtype, text)` for each audit message in them.
    /// [`RecvOutcome::Timeout`] when nothing is queued; [`RecvOutcome::Messages`] counts the
    /// messages passed on.
    pub fn recv_many(
        &mut self,
        bufs: &mut MmsgBufs,
        max: usize,
        f: &mut dyn FnMut(u16, &[u8]),
    ) -> Result<RecvOutcome, NetlinkError> {
        let fd = self.sock.as_raw_fd();
        let max = max.clamp(1, MMSG_SLOTS);
        // (length, from the kernel, truncated) of each datagram received.
        let mut got = [(0usize, false, false); MMSG_SLOTS];
        let n = loop {
            let mut chunks = bufs.data.chunks_mut(MMSG_SLOT);
            let mut iovs: [[std::io::IoSliceMut<'_>; 1]; MMSG_SLOTS] = std::array::from_fn(|_| {
                [std::io::IoSliceMut::new(chunks.next().unwrap_or_default())]
            });
            match recvmmsg(
                fd,
                &mut bufs.hdrs,
                iovs[..max].iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            ) {
                Ok(results) => {
                    let mut n = 0;
                    for (slot, m) in got.iter_mut().zip(results) {
                        *slot = (
                            m.bytes,
                            m.address.is_some_and(|a| a.pid() == 0),
                            m.flags.contains(MsgFlags::MSG_TRUNC),
                        );
                        n += 1;
                    }
                    break n;
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    self.emptied = true;
                    return Ok(RecvOutcome::Timeout);
                }
                Err(Errno::ENOBUFS) => {
                    self.emptied = false;
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
        self.emptied = n < max;
        let mut count = 0;
        for (i, &(len, kernel, truncated)) in got[..n].iter().enumerate() {
            self.stats.datagrams += 1;
            if truncated {
                self.stats.truncated += 1;
            }
            // Only the kernel (port 0) may speak on this socket, as in recv_inner.
            if !kernel {
                self.stats.foreign += 1;
                continue;
            }
            let start = i * MMSG_SLOT;
            let datagram = bufs
                .data
                .get(start..start + len.min(MMSG_SLOT))
                .unwrap_or_default();
            count += split_records(datagram, f);
        }
        self.stats.messages += count as u64;
        Ok(RecvOutcome::Messages(count))
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

/// `connect()`s a netlink socket to the kernel (port 0), so that the kernel itself refuses
/// unicast from any other sender: `netlink_getsockbyportid()` in net/netlink/af_netlink.c
/// returns ECONNREFUSED to a sender whose port is not the connected peer. Without it, any
/// process with CAP_NET_ADMIN (no audit capability needed) could flood our port with
/// datagrams: the sender check drops them, but only after they have filled the receive
/// buffer, and replies to our requests were then lost (ENOBUFS, time-outs; measured, issue
/// 15). Multicast delivery (`netlink_broadcast`) does not look at the connected peer, so
/// the record stream still arrives. The sender check stays as a second line.
fn connect_to_kernel(sock: &Socket, op: &'static str) -> Result<(), NetlinkError> {
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(|e| io_err(op, e))
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
    /// Datagrams dropped because their sender was not the kernel.
    foreign: u64,
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
        connect_to_kernel(&sock, "connect the audit control socket to the kernel")?;
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
            foreign: 0,
        })
    }

    /// Datagrams dropped so far because their sender was not the kernel.
    pub fn foreign(&self) -> u64 {
        self.foreign
    }

    /// This socket's netlink port id (for tests and diagnostics).
    pub fn port_id(&self) -> Result<u32, NetlinkError> {
        let mut a = SocketAddr::new(0, 0);
        self.sock
            .get_address(&mut a)
            .map_err(|e| io_err("get the control socket's address", e))?;
        Ok(a.port_number())
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
    pub fn list_rules(&mut self) -> Result<Vec<ListedRule>, NetlinkError> {
        let mut rules = Vec::new();
        self.request(
            "list audit rules",
            AUDIT_LIST_RULES,
            &[],
            Expect::AckAndDump,
            &mut |p| rules.push(ListedRule::from_payload(p)),
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
    pub fn del_listed(&mut self, rule: &ListedRule) -> Result<DelOutcome, NetlinkError> {
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
                self.foreign += 1;
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
mod tests {
    use super::*;

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
