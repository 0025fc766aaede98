//! Pipeline position: `… → alert → syslog` — the OS edge of the sink: one open connection to the
//! collector (unix datagram or stream, UDP, TCP with RFC 6587 octet counting, journald's native
//! socket, or stdout) and how one formatted message is framed and written on it.

use std::io::{self, IoSlice, IoSliceMut, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::time::Duration;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recv, recvmsg,
    send, sendmmsg, setsockopt, sockopt,
};

use super::format::MessageKind;
use super::{Format, Transport};

/// An open connection. Dropped and rebuilt after any write error.
#[derive(Debug)]
pub enum Conn {
    UnixDgram(UnixDatagram),
    /// `/dev/log` bound as SOCK_STREAM (some syslog daemons): messages end with NUL, as glibc
    /// sends them.
    UnixStream(UnixStream),
    Udp(UdpSocket),
    /// journald's native socket: one entry per datagram, a large one in a sealed memfd.
    Journal(UnixDatagram),
    /// RFC 6587 §3.4.1 octet counting: `LEN SP MSG`.
    Tcp(TcpStream),
    /// Alerts as JSON lines on stdout, diagnostics on stderr.
    Stdout,
}

impl Conn {
    /// Open a connection for `transport`. `timeout` bounds the TCP connect and every write, so
    /// a stalled collector cannot block the sink thread for long.
    pub fn open(transport: &Transport, timeout: Duration) -> io::Result<Conn> {
        match transport {
            Transport::Local {
                path,
                format: Format::Journal,
            } => {
                let sock = UnixDatagram::unbound()?;
                sock.connect(path)?;
                sock.set_write_timeout(Some(timeout))?;
                Ok(Conn::Journal(sock))
            }
            Transport::Local { path, .. } => open_local(path, timeout),
            Transport::Udp { addr, .. } => {
                let target = resolve(addr)?;
                let bind: SocketAddr = if target.is_ipv4() {
                    SocketAddr::from(([0, 0, 0, 0], 0))
                } else {
                    SocketAddr::from(([0u16; 8], 0))
                };
                let sock = UdpSocket::bind(bind)?;
                // Refusals (ICMP port unreachable) also queue on the socket's error queue,
                // one per refused datagram, where a short batch finds them (take_refusals).
                if target.is_ipv4() {
                    setsockopt(&sock, sockopt::Ipv4RecvErr, &true)?;
                } else {
                    setsockopt(&sock, sockopt::Ipv6RecvErr, &true)?;
                }
                // Connected, so ICMP port-unreachable surfaces as ECONNREFUSED on a later send
                // instead of being silently ignored.
                sock.connect(target)?;
                sock.set_write_timeout(Some(timeout))?;
                Ok(Conn::Udp(sock))
            }
            Transport::Tcp { addr, .. } => {
                let mut last =
                    io::Error::new(io::ErrorKind::NotFound, "address resolved to nothing");
                for target in addr.to_socket_addrs()? {
                    match TcpStream::connect_timeout(&target, timeout) {
                        Ok(s) => {
                            s.set_write_timeout(Some(timeout))?;
                            s.set_nodelay(true)?;
                            return Ok(Conn::Tcp(s));
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            Transport::Stdout => Ok(Conn::Stdout),
        }
    }

    /// Write one message. `Ok` means the whole frame was handed to the kernel (TCP: `write_all`
    /// returned). On `Err` the connection must be dropped: a partial TCP frame may be on the wire,
    /// which the collector discards when the connection closes, so resending on a new connection
    /// does not duplicate the message.
    pub fn send(&mut self, msg: &[u8], kind: MessageKind) -> io::Result<()> {
        match self {
            Conn::UnixDgram(s) => send_datagram(s.send(msg), msg.len()),
            Conn::Udp(s) => send_datagram(s.send(msg), msg.len()),
            Conn::Journal(s) => send_journal(s, msg),
            Conn::UnixStream(s) => {
                let mut frame = Vec::with_capacity(msg.len() + 1);
                frame.extend_from_slice(msg);
                frame.push(0);
                s.write_all(&frame)
            }
            Conn::Tcp(s) => {
                peer_closed(s)?;
                s.write_all(&tcp_frame(msg))
            }
            Conn::Stdout => {
                let mut line = Vec::with_capacity(msg.len() + 1);
                line.extend_from_slice(msg);
                line.push(b'\n');
                match kind {
                    MessageKind::Alert => {
                        let mut out = io::stdout().lock();
                        out.write_all(&line)?;
                        out.flush()
                    }
                    MessageKind::Diagnostic => io::stderr().lock().write_all(&line),
                }
            }
        }
    }
}

/// What [`Conn::send_nowait`] did with a message.
#[derive(Debug, PartialEq, Eq)]
pub enum NoWait {
    /// The whole message (its whole frame) was handed to the kernel.
    Sent,
    /// TCP only: the socket took the first part of the frame; these bytes are the rest, which
    /// must follow on this connection before anything else ([`Conn::send_rest`]).
    Rest(Vec<u8>),
}

impl Conn {
    /// A connection [`Conn::send_nowait`] can write without waiting: a datagram one (UDP, or
    /// a unix datagram socket such as `/dev/log`: one message is one send, whole or not at
    /// all) or TCP (a frame that does not fit leaves its rest for [`Conn::send_rest`]).
    pub fn sends_without_waiting(&self) -> bool {
        matches!(self, Conn::UnixDgram(_) | Conn::Udp(_) | Conn::Tcp(_))
    }

    /// [`Conn::send`] that never waits. A datagram that would block (the socket buffer or,
    /// for a unix socket, the receiver's queue is full) fails with
    /// [`io::ErrorKind::WouldBlock`] and sends nothing; so does a TCP frame when the socket
    /// takes none of it, and when it takes part, the rest comes back as [`NoWait::Rest`].
    /// Other connections send as [`Conn::send`] does.
    pub fn send_nowait(&mut self, msg: &[u8], kind: MessageKind) -> io::Result<NoWait> {
        let fd = match self {
            Conn::UnixDgram(s) => s.as_raw_fd(),
            Conn::Udp(s) => s.as_raw_fd(),
            Conn::Tcp(s) => {
                peer_closed(s)?;
                let frame = tcp_frame(msg);
                let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
                return match send(s.as_raw_fd(), &frame, flags) {
                    Ok(n) if n >= frame.len() => Ok(NoWait::Sent),
                    Ok(0) | Err(nix::errno::Errno::EAGAIN) => {
                        Err(io::Error::from(io::ErrorKind::WouldBlock))
                    }
                    Ok(n) => Ok(NoWait::Rest(frame[n..].to_vec())),
                    Err(e) => Err(io::Error::from(e)),
                };
            }
            _ => return self.send(msg, kind).map(|()| NoWait::Sent),
        };
        let r = send(fd, msg, MsgFlags::MSG_DONTWAIT).map_err(io::Error::from);
        send_datagram(r, msg.len()).map(|()| NoWait::Sent)
    }

    /// The rest of a TCP frame that [`Conn::send_nowait`] began, written as [`Conn::send`]
    /// writes (waiting at most the write timeout). On `Err` the connection must be dropped,
    /// and the message is resent whole on the next.
    pub fn send_rest(&mut self, rest: &[u8]) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(rest),
            _ => Err(io::Error::other(
                "a partial frame on a connection without frames",
            )),
        }
    }
}

/// Most datagrams one [`Conn::send_batch`] hands to the kernel in one call.
pub const SEND_BATCH: usize = 64;

impl Conn {
    /// A connection [`Conn::send_batch`] can write several messages to in one system call:
    /// UDP and unix datagram sockets (`/dev/log`).
    pub fn batches(&self) -> bool {
        matches!(self, Conn::UnixDgram(_) | Conn::Udp(_))
    }

    /// Several datagrams in one `sendmmsg`, each whole or not at all, waiting only when
    /// `wait` (then at most the write timeout for each). `Ok(k)`: the first `k` went (k ≥ 1);
    /// when `k` is short, the kernel has kept the error of the next one to itself.
    /// `Err`: the first one was not sent, and this is its send's error, as [`Conn::send`] or
    /// [`Conn::send_nowait`] would have given it. One datagram only, or another kind of
    /// connection: that one message through those.
    pub fn send_batch(&mut self, msgs: &[&[u8]], wait: bool) -> io::Result<usize> {
        let fd = match self {
            Conn::UnixDgram(s) => s.as_raw_fd(),
            Conn::Udp(s) => s.as_raw_fd(),
            _ => return self.send_one(msgs, wait),
        };
        if msgs.len() < 2 {
            return self.send_one(msgs, wait);
        }
        let msgs = &msgs[..msgs.len().min(SEND_BATCH)];
        let iovs: Vec<[IoSlice<'_>; 1]> = msgs.iter().map(|m| [IoSlice::new(m)]).collect();
        let addrs: Vec<Option<SockaddrStorage>> = vec![None; msgs.len()];
        let mut hdrs = MultiHeaders::<SockaddrStorage>::preallocate(msgs.len(), None);
        let cmsgs: [ControlMessage<'_>; 0] = [];
        let flags = if wait {
            MsgFlags::empty()
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        let sent = sendmmsg(fd, &mut hdrs, &iovs, &addrs, cmsgs, flags).map_err(io::Error::from)?;
        let mut k = 0;
        for (r, m) in sent.zip(msgs) {
            send_datagram(Ok(r.bytes), m.len())?;
            k += 1;
        }
        Ok(k)
    }

    fn send_one(&mut self, msgs: &[&[u8]], wait: bool) -> io::Result<usize> {
        let Some(m) = msgs.first() else {
            return Ok(0);
        };
        if wait {
            self.send(m, MessageKind::Alert)?;
        } else if self.send_nowait(m, MessageKind::Alert)? != NoWait::Sent {
            return Err(io::Error::other("a partial frame on a datagram connection"));
        }
        Ok(1)
    }

    /// UDP: how many datagrams already sent the collector's host refused (ICMP port
    /// unreachable), as the socket's error queue holds them (`IP_RECVERR`), read and emptied
    /// without waiting. What a short [`Conn::send_batch`] cannot say itself: the kernel
    /// reports such a refusal once, as the error of the next send, and a batch that stops
    /// there does not return that error. 0 on other connections.
    pub fn take_refusals(&mut self) -> u64 {
        let Conn::Udp(s) = self else { return 0 };
        let mut n = 0;
        let mut buf = [0u8; 64];
        let mut space = nix::cmsg_space!(nix::libc::sock_extended_err, nix::libc::sockaddr_in6);
        loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<SockaddrStorage>(
                s.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(m) => m,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return n,
            };
            // Only what the collector's side refused; a local error (EMSGSIZE) is the
            // failed send's own, and counted with it.
            let Ok(cmsgs) = msg.cmsgs() else { continue };
            for c in cmsgs {
                let ee = match c {
                    ControlMessageOwned::Ipv4RecvErr(ee, _)
                    | ControlMessageOwned::Ipv6RecvErr(ee, _) => ee,
                    _ => continue,
                };
                let remote = ee.ee_origin == nix::libc::SO_EE_ORIGIN_ICMP
                    || ee.ee_origin == nix::libc::SO_EE_ORIGIN_ICMP6;
                if remote && ee.ee_errno == nix::libc::ECONNREFUSED as u32 {
                    n += 1;
                }
            }
        }
    }
}

/// RFC 6587 octet counting: `LEN SP MSG`.
fn tcp_frame(msg: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(msg.len() + 8);
    frame.extend_from_slice(msg.len().to_string().as_bytes());
    frame.push(b' ');
    frame.extend_from_slice(msg);
    frame
}

fn open_local(path: &Path, timeout: Duration) -> io::Result<Conn> {
    let sock = UnixDatagram::unbound()?;
    match sock.connect(path) {
        Ok(()) => {
            sock.set_write_timeout(Some(timeout))?;
            Ok(Conn::UnixDgram(sock))
        }
        // EPROTOTYPE: the socket at `path` is SOCK_STREAM.
        Err(e) if e.raw_os_error() == Some(nix::libc::EPROTOTYPE) => {
            let s = UnixStream::connect(path)?;
            s.set_write_timeout(Some(timeout))?;
            Ok(Conn::UnixStream(s))
        }
        Err(e) => Err(e),
    }
}

/// One native journal entry: a datagram, or, when the kernel refuses one that large
/// (EMSGSIZE, ENOBUFS), the entry written to a sealed memfd whose descriptor is the
/// datagram's only content (`SCM_RIGHTS`), as the protocol defines for large entries.
pub fn send_journal(s: &UnixDatagram, entry: &[u8]) -> io::Result<()> {
    match s.send(entry) {
        Ok(n) if n == entry.len() => return Ok(()),
        Ok(n) => {
            return Err(io::Error::other(format!(
                "short journal datagram: {n} of {} bytes",
                entry.len()
            )));
        }
        Err(e)
            if e.raw_os_error() == Some(nix::libc::EMSGSIZE)
                || e.raw_os_error() == Some(nix::libc::ENOBUFS) => {}
        Err(e) => return Err(e),
    }
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    use nix::sys::socket::{ControlMessage, sendmsg};
    let fd = memfd_create(
        "wwatchd-journal",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut f = std::fs::File::from(fd);
    f.write_all(entry)?;
    fcntl(
        &f,
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_WRITE
                | SealFlag::F_SEAL_SEAL,
        ),
    )?;
    let fds = [f.as_raw_fd()];
    sendmsg::<()>(
        s.as_raw_fd(),
        &[],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

fn resolve(addr: &str) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{addr} resolved to no address"),
        )
    })
}

fn send_datagram(r: io::Result<usize>, len: usize) -> io::Result<()> {
    match r {
        Ok(n) if n == len => Ok(()),
        Ok(n) => Err(io::Error::other(format!(
            "short datagram send: {n} of {len} bytes"
        ))),
        Err(e) => Err(e),
    }
}

/// Cheap check before writing on TCP: has the collector closed its side? A write into a
/// connection the peer already closed still succeeds locally, and the message is then lost when
/// the RST comes back. Peeking for EOF (one non-blocking syscall) catches an orderly close
/// (collector restart) before we lose a message. A crash without FIN is still a loss window of
/// about one message; that is documented in `mod.rs`.
fn peer_closed(s: &TcpStream) -> io::Result<()> {
    let mut b = [0u8; 1];
    match recv(
        s.as_raw_fd(),
        &mut b,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(0) => Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "collector closed the connection",
        )),
        // The collector sent us something (rsyslog never does); nothing to do with it.
        Ok(_) => Ok(()),
        Err(nix::errno::Errno::EAGAIN) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// True for errors where resending the same message can never succeed.
pub fn is_permanent(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::EMSGSIZE)
}

impl Conn {
    /// Whether this failed send reports the loss of an *earlier* message: on a connected UDP
    /// socket the kernel keeps the ICMP port unreachable that a sent datagram drew, and the
    /// next send returns it as ECONNREFUSED (without sending). The datagram it concerns was
    /// handed to the kernel, and counted as sent, and the collector never had it. (A unix
    /// datagram socket says ECONNREFUSED for the send itself: nothing earlier was lost.)
    pub fn refused_earlier(&self, e: &io::Error) -> bool {
        matches!(self, Conn::Udp(_)) && e.raw_os_error() == Some(nix::libc::ECONNREFUSED)
    }
}
