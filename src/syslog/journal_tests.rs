//! Tests of the journal output against a unix datagram socket that reads the native protocol
//! as journald does (datagrams, and memfds passed with SCM_RIGHTS for large entries). A real
//! systemd-journald is tested in the VM suite (tests/vm/).

use super::*;
use serde_json::json;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// One entry as journald receives it: the datagram, or the memfd it carries.
fn receive(sock: &UnixDatagram) -> (Vec<u8>, bool) {
    let mut buf = vec![0u8; 1 << 20];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let (n, fd) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .expect("recvmsg");
        let mut fd = None;
        for c in msg.cmsgs().expect("cmsgs") {
            if let ControlMessageOwned::ScmRights(fds) = c {
                fd = fds.first().copied();
            }
        }
        (msg.bytes, fd)
    };
    match fd {
        Some(fd) => {
            assert_eq!(n, 0, "a memfd entry has no payload of its own");
            let owned: OwnedFd = reopen(fd);
            let mut f = std::fs::File::from(owned);
            let mut v = Vec::new();
            f.read_to_end(&mut v).expect("read memfd");
            (v, true)
        }
        None => (buf[..n].to_vec(), false),
    }
}

/// Takes ownership of a descriptor received with SCM_RIGHTS, through `/proc/self/fd` (a
/// new descriptor for the same file), so this test needs no `unsafe`.
fn reopen(fd: std::os::fd::RawFd) -> OwnedFd {
    let f = std::fs::File::open(format!("/proc/self/fd/{fd}")).expect("reopen received fd");
    let _ = nix::unistd::close(fd);
    f.into()
}

fn field<'a>(f: &'a [(String, Vec<u8>)], k: &str) -> Option<&'a [u8]> {
    f.iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_slice())
}

#[test]
fn journal_destination_parses_and_rejects_the_network() {
    assert_eq!(
        "journal".parse::<Transport>().unwrap(),
        Transport::Local {
            path: "/run/systemd/journal/socket".into(),
            format: Format::Journal
        }
    );
    assert_eq!(
        "unix:/run/j.sock?format=journal"
            .parse::<Transport>()
            .unwrap(),
        Transport::Local {
            path: "/run/j.sock".into(),
            format: Format::Journal
        }
    );
    assert!("udp://h:1?format=journal".parse::<Transport>().is_err());
    assert!("journal?format=rfc5424".parse::<Transport>().is_err());
    let c = SinkConfig {
        transport: Transport::Tcp {
            addr: "127.0.0.1:1".into(),
            format: Format::Journal,
        },
        ..SinkConfig::default()
    };
    assert!(c.validate().is_err());
    let c = SinkConfig {
        transport: Transport::Local {
            path: "/dev/log".into(),
            format: Format::Journal,
        },
        ..SinkConfig::default()
    };
    assert!(c.validate().is_err());
    let c = SinkConfig {
        transport: "journal".parse().unwrap(),
        ..SinkConfig::default()
    };
    assert!(c.validate().is_ok());
}

#[test]
fn journal_entries_carry_the_alert_and_exact_path_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("socket");
    let journald = UnixDatagram::bind(&path).expect("bind");
    journald
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let mut sink = Sink::new(SinkConfig {
        transport: Transport::Local {
            path,
            format: Format::Journal,
        },
        pid: 77,
        ..SinkConfig::default()
    })
    .expect("sink");
    // A hostile name: newline, a forged syslog line, a byte that is not UTF-8.
    let exact: &[u8] = b"/tmp/a\n<13>Oct 11 22:14:15 forged: x\xe9";
    let doc = json!({
        "event": {"id": "e-1"},
        "rule": {"id": "r-1"},
        "file": {"path": String::from_utf8_lossy(exact)},
        "user": {"name": "alice", "id": "1001"},
        "source": {"ip": "192.0.2.9"},
        "wwatchd": {"raw": {"file.path": exact.iter().map(|b| format!("{b:02x}")).collect::<String>()}},
    });
    let mut rendered = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut rendered, SafeFormatter);
    serde::Serialize::serialize(&doc, &mut ser).unwrap();
    sink.send_alert_rendered(rendered.clone(), Severity::Warning);
    sink.send_diagnostic("loss: 3 records\nnext line", Severity::Notice);

    let (alert, via_memfd) = receive(&journald);
    assert!(!via_memfd);
    let f = journal::parse(&alert).expect("a valid native entry");
    assert_eq!(field(&f, "MESSAGE"), Some(&rendered[..]));
    let back: Value = serde_json::from_slice(field(&f, "MESSAGE").unwrap()).unwrap();
    assert_eq!(back, doc);
    assert_eq!(field(&f, "PRIORITY"), Some(&b"4"[..]));
    assert_eq!(field(&f, "SYSLOG_IDENTIFIER"), Some(&b"wwatchd"[..]));
    assert_eq!(field(&f, "SYSLOG_FACILITY"), Some(&b"4"[..]));
    assert_eq!(field(&f, "SYSLOG_PID"), Some(&b"77"[..]));
    assert_eq!(field(&f, "WWATCHD_KIND"), Some(&b"alert"[..]));
    assert_eq!(field(&f, "WWATCHD_EVENT_ID"), Some(&b"e-1"[..]));
    assert_eq!(field(&f, "WWATCHD_RULE_ID"), Some(&b"r-1"[..]));
    assert_eq!(field(&f, "WWATCHD_FILE_PATH"), Some(exact));
    assert_eq!(field(&f, "WWATCHD_USER"), Some(&b"alice"[..]));
    assert_eq!(field(&f, "WWATCHD_SOURCE_IP"), Some(&b"192.0.2.9"[..]));

    let (diag, _) = receive(&journald);
    let f = journal::parse(&diag).expect("a valid native entry");
    assert_eq!(field(&f, "WWATCHD_KIND"), Some(&b"diag"[..]));
    assert_eq!(field(&f, "PRIORITY"), Some(&b"5"[..]));
    assert!(field(&f, "WWATCHD_RULE_ID").is_none());
    assert_eq!(sink.stats().snapshot().sent, 2);
}

#[test]
fn journal_entry_too_large_for_a_datagram_goes_in_a_sealed_memfd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("socket");
    let journald = UnixDatagram::bind(&path).expect("bind");
    journald
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let sender = UnixDatagram::unbound().unwrap();
    sender.connect(&path).unwrap();
    // Larger than any unix datagram the kernel takes (sk_sndbuf is at most wmem_max).
    let wmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(212_992);
    let big = "x".repeat(wmem_max * 2 + 4096);
    let entry = journal::entry(
        MessageKind::Alert,
        Severity::Error,
        Facility::Auth,
        1,
        big.as_bytes(),
        None,
    );
    transport::send_journal(&sender, &entry).expect("sent through a memfd");
    let (got, via_memfd) = receive(&journald);
    assert!(via_memfd, "a {}-byte entry went as a datagram", entry.len());
    assert_eq!(got, entry);
    let f = journal::parse(&got).unwrap();
    assert_eq!(field(&f, "MESSAGE").map(<[u8]>::len), Some(big.len()));
}
