//! Pipeline position: `… → alert → syslog` — tests of the sink against real sockets on loopback
//! and in temporary directories (the collector side is a plain std socket, no mocks).

use super::transport::SEND_BATCH;
use super::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::time::Instant;

/// A payload full of things that break naive syslog senders.
fn nasty() -> Value {
    json!({
        "@timestamp": "2026-11-08T07:05:09Z",
        "file": {"path": "/tmp/a\nb\rc\td\"e\\f\u{1b}[31mg<13>1 fake 2026 host app - - x%s%n\u{0}h\u{7f}i\u{85}j\u{2028}ü€😀"},
        "process": {"args": ["scp", "-t", "/tmp/\n<34>Oct 11 22:14:15 forged: hi"]},
    })
}

fn cfg(transport: Transport) -> SinkConfig {
    SinkConfig {
        transport,
        hostname: "testhost".to_owned(),
        pid: 77,
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        io_timeout: Duration::from_millis(500),
        shutdown_drain: Duration::from_millis(300),
        ..SinkConfig::default()
    }
}

/// Split a 5424 message into (header, JSON).
fn split_5424(msg: &str) -> (&str, Value) {
    let i = msg.find(" alert - ").expect("5424 alert header");
    let (h, j) = msg.split_at(i + " alert - ".len());
    (h, serde_json::from_str(j).expect("payload parses as JSON"))
}

/// Split a 3164 message into (header, JSON).
fn split_3164(msg: &str) -> (&str, Value) {
    let i = msg.find("]: ").expect("3164 tag");
    let (h, j) = msg.split_at(i + 3);
    (h, serde_json::from_str(j).expect("payload parses as JSON"))
}

fn assert_one_line(bytes: &[u8]) {
    assert!(
        !bytes.iter().any(|&b| b == b'\n' || b == b'\r' || b == 0),
        "raw newline/CR/NUL in {bytes:?}"
    );
}

/// Read one RFC 6587 octet-counted frame.
fn read_frame(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut len = Vec::new();
    if r.read_until(b' ', &mut len).ok()? == 0 {
        return None;
    }
    let n: usize = std::str::from_utf8(&len[..len.len() - 1])
        .ok()?
        .parse()
        .ok()?;
    let mut msg = vec![0; n];
    r.read_exact(&mut msg).ok()?;
    Some(msg)
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn syslog_tcp_octet_counting_with_utf8_and_nasty_payload() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut sink = Sink::new(cfg(Transport::Tcp {
        addr,
        format: Format::Rfc5424,
    }))
    .expect("sink");
    sink.send_alert(&nasty(), Severity::Warning);
    sink.send_alert(&json!({"n": "ééé"}), Severity::Error);
    let (conn, _) = listener.accept().expect("accept");
    sink.shutdown();
    let mut r = BufReader::new(conn);
    let m1 = read_frame(&mut r).expect("frame 1");
    let m2 = read_frame(&mut r).expect("frame 2");
    assert!(read_frame(&mut r).is_none(), "exactly two frames");
    assert_one_line(&m1);
    let (h, v) = split_5424(std::str::from_utf8(&m1).expect("utf8"));
    assert!(
        h.starts_with("<36>1 ") && h.contains(" testhost wwatchd 77 alert - "),
        "{h}"
    );
    assert_eq!(v, nasty());
    let (h, v) = split_5424(std::str::from_utf8(&m2).expect("utf8"));
    assert!(h.starts_with("<35>1 "), "{h}");
    assert_eq!(v, json!({"n": "ééé"}));
}

/// A UDP collector on loopback (reads time out after 5 s) and its address.
fn udp_collector() -> (UdpSocket, String) {
    let collector = UdpSocket::bind("127.0.0.1:0").expect("bind");
    collector
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let addr = collector.local_addr().expect("addr").to_string();
    (collector, addr)
}

#[test]
fn syslog_udp_delivery_one_datagram() {
    let (collector, addr) = udp_collector();
    let mut sink = Sink::new(cfg(Transport::Udp {
        addr,
        format: Format::Rfc3164,
    }))
    .expect("sink");
    sink.send_alert(&nasty(), Severity::Critical);
    let mut buf = vec![0; 65_536];
    let n = collector.recv(&mut buf).expect("datagram");
    assert_one_line(&buf[..n]);
    let (h, v) = split_3164(std::str::from_utf8(&buf[..n]).expect("utf8"));
    // Remote 3164 carries the hostname.
    assert!(
        h.starts_with("<34>") && h.ends_with(" testhost wwatchd[77]: "),
        "{h}"
    );
    assert_eq!(v, nasty());
    assert_eq!(sink.stats().snapshot().sent, 1);
}

/// UDP tells of a refused datagram only at the next send: the ICMP port unreachable that the
/// first datagram drew comes back as ECONNREFUSED, and that send sends nothing. The first one
/// is lost and counted as refused (it was counted as sent too); the one whose send reported it
/// stays queued and is delivered once the collector listens, followed by a diagnostic that
/// says a message was lost and why.
#[test]
fn syslog_udp_refused_datagram_is_counted_as_lost_kept_and_reported() {
    let probe = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = probe.local_addr().expect("addr");
    // Nothing listens on the port now.
    drop(probe);
    let mut sink = Sink::new(cfg(Transport::Udp {
        addr: addr.to_string(),
        format: Format::Rfc5424,
    }))
    .expect("sink");
    sink.send_alert(&json!({"seq": 0}), Severity::Warning);
    assert_eq!(sink.stats().snapshot().sent, 1, "handed to the kernel");
    // The ICMP error comes back over loopback at once.
    std::thread::sleep(Duration::from_millis(200));
    let collector = UdpSocket::bind(addr).expect("the collector comes up on the port");
    collector
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    sink.send_alert(&json!({"seq": 1}), Severity::Warning);
    let s = sink.stats().snapshot();
    assert_eq!((s.refused, s.sent), (1, 1), "{s:?}");
    assert!(
        sink.flush(Duration::from_secs(5)),
        "delivered after the backoff"
    );
    let mut buf = vec![0; 65_536];
    let n = collector.recv(&mut buf).expect("the kept alert");
    let (_, v) = split_5424(std::str::from_utf8(&buf[..n]).expect("utf8"));
    assert_eq!(v, json!({"seq": 1}));
    let n = collector.recv(&mut buf).expect("the diagnostic");
    let diag = std::str::from_utf8(&buf[..n]).expect("utf8");
    assert!(
        diag.contains(" diag - 1 or more syslog message(s) lost: sent over UDP, then refused"),
        "{diag}"
    );
    let s = sink.stats().snapshot();
    assert_eq!((s.refused, s.sent, s.dropped), (1, 3, 0), "{s:?}");
}

#[test]
fn syslog_unix_datagram_delivery_and_truncation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let collector = UnixDatagram::bind(&path).expect("bind");
    collector
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut sink = Sink::new(cfg(Transport::Local {
        path,
        format: Format::Rfc3164,
    }))
    .expect("sink");
    let big = json!({
        "file": {"path": format!("/tmp/{}", "ü".repeat(50_000))},
        "process": {"title": "😀".repeat(25_000), "args": ["€".repeat(34_000)]},
        "message": "m".repeat(100_000),
    });
    sink.send_alert(&big, Severity::Notice);
    sink.send_diagnostic("lost 3 records\nsecond line", Severity::Warning);
    let mut buf = vec![0; 300_000];
    let n = collector.recv(&mut buf).expect("alert datagram");
    assert!(n <= 8192, "{n} bytes over the cap");
    assert_one_line(&buf[..n]);
    let (h, v) = split_3164(std::str::from_utf8(&buf[..n]).expect("utf8"));
    // Local 3164 omits the hostname, like glibc.
    assert!(h.starts_with("<37>") && !h.contains("testhost"), "{h}");
    assert_eq!(v["wwatchd"]["truncated"], json!(true));
    assert!(
        v["file"]["path"]
            .as_str()
            .expect("s")
            .starts_with("/tmp/üü")
    );
    let n = collector.recv(&mut buf).expect("diag datagram");
    assert_one_line(&buf[..n]);
    let d = std::str::from_utf8(&buf[..n]).expect("utf8");
    assert!(
        d.ends_with("wwatchd[77]: wwatchd-diag: lost 3 records\\nsecond line"),
        "{d}"
    );
    assert_eq!(sink.stats().snapshot().truncated, 1);
}

#[test]
fn syslog_unix_stream_fallback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let listener = UnixListener::bind(&path).expect("bind");
    let mut sink = Sink::new(cfg(Transport::Local {
        path,
        format: Format::Rfc5424,
    }))
    .expect("sink");
    sink.send_alert(&json!({"a": 1}), Severity::Warning);
    let (conn, _) = listener.accept().expect("accept");
    sink.shutdown();
    let mut all = Vec::new();
    BufReader::new(conn).read_to_end(&mut all).expect("read");
    assert_eq!(all.last(), Some(&0), "stream messages end with NUL");
    let (_, v) = split_5424(std::str::from_utf8(&all[..all.len() - 1]).expect("utf8"));
    assert_eq!(v, json!({"a": 1}));
}

/// Read frames until the sink closes the connection.
fn read_all_frames(conn: TcpStream) -> Vec<String> {
    let mut r = BufReader::new(conn);
    std::iter::from_fn(|| read_frame(&mut r))
        .map(|m| String::from_utf8(m).expect("utf8"))
        .collect()
}

#[test]
fn syslog_tcp_collector_down_then_up_delivers_in_order_once() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut sink = Sink::new(cfg(Transport::Tcp {
        addr: addr.clone(),
        format: Format::Rfc5424,
    }))
    .expect("sink");
    for i in 0..20 {
        sink.send_alert(&json!({"seq": i}), Severity::Warning);
    }
    let s = sink.stats().snapshot();
    assert_eq!((s.sent, s.queued, s.dropped), (0, 20, 0));
    assert!(s.send_errors >= 1);

    let listener = TcpListener::bind(&addr).expect("collector comes up");
    let reader = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        read_all_frames(conn)
    });
    assert!(sink.flush(Duration::from_secs(5)), "queue drained");
    let s = sink.shutdown();
    assert_eq!((s.sent, s.queued, s.dropped), (20, 0, 0));
    let frames = reader.join().expect("reader");
    let seqs: Vec<Value> = frames
        .iter()
        .map(|f| split_5424(f).1["seq"].clone())
        .collect();
    assert_eq!(seqs, (0..20).map(|i| json!(i)).collect::<Vec<_>>());
}

#[test]
fn syslog_queue_overflow_counts_drops_and_reports_them() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut c = cfg(Transport::Tcp {
        addr: addr.clone(),
        format: Format::Rfc5424,
    });
    c.queue_capacity = 5;
    let mut sink = Sink::new(c).expect("sink");
    for i in 0..12 {
        sink.send_alert(&json!({"seq": i}), Severity::Warning);
    }
    let s = sink.stats().snapshot();
    assert_eq!((s.queued, s.dropped), (5, 7));

    let listener = TcpListener::bind(&addr).expect("collector comes up");
    let reader = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        read_all_frames(conn)
    });
    assert!(sink.flush(Duration::from_secs(5)));
    sink.shutdown();
    let frames = reader.join().expect("reader");
    assert_eq!(frames.len(), 6, "{frames:#?}");
    let seqs: Vec<Value> = frames[..5]
        .iter()
        .map(|f| split_5424(f).1["seq"].clone())
        .collect();
    assert_eq!(seqs, (7..12).map(|i| json!(i)).collect::<Vec<_>>());
    assert!(
        frames[5].contains(" wwatchd 77 diag - 7 syslog message(s) dropped"),
        "{}",
        frames[5]
    );
}

#[test]
fn syslog_tcp_collector_restart_loses_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut sink = Sink::new(cfg(Transport::Tcp {
        addr,
        format: Format::Rfc5424,
    }))
    .expect("sink");
    sink.send_alert(&json!({"seq": 0}), Severity::Warning);
    let (first, _) = listener.accept().expect("accept");
    let got_first = {
        let mut r = BufReader::new(first.try_clone().expect("clone"));
        read_frame(&mut r).expect("frame")
    };
    drop(first); // orderly close: the collector restarts
    std::thread::sleep(Duration::from_millis(50));
    sink.send_alert(&json!({"seq": 1}), Severity::Warning);
    assert!(sink.flush(Duration::from_secs(5)));
    let (second, _) = listener.accept().expect("reconnect");
    let s = sink.shutdown();
    assert_eq!(s.sent, 2);
    assert_eq!(s.reconnects, 1);
    let rest = read_all_frames(second);
    assert_eq!(
        split_5424(std::str::from_utf8(&got_first).expect("utf8")).1,
        json!({"seq": 0})
    );
    assert_eq!(rest.len(), 1);
    assert_eq!(split_5424(&rest[0]).1, json!({"seq": 1}));
}

#[derive(Default)]
struct VecSpool(std::collections::VecDeque<QueuedMessage>);

impl Spool for VecSpool {
    fn push(&mut self, msg: QueuedMessage) -> Result<(), QueuedMessage> {
        self.0.push_back(msg);
        Ok(())
    }
    fn front(&mut self) -> Option<&QueuedMessage> {
        self.0.front()
    }
    fn pop_front(&mut self) {
        self.0.pop_front();
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

/// A spool that stores nothing and says it has changes to sync until `sync` is called.
struct UnsyncedSpool(Arc<std::sync::atomic::AtomicBool>);

impl Spool for UnsyncedSpool {
    fn push(&mut self, msg: QueuedMessage) -> Result<(), QueuedMessage> {
        Err(msg)
    }
    fn front(&mut self) -> Option<&QueuedMessage> {
        None
    }
    fn pop_front(&mut self) {}
    fn len(&self) -> u64 {
        0
    }
    fn needs_sync(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    fn sync(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// An idle sink needs no timer: with everything delivered and no spool changes to make durable,
/// its thread sleeps until a message comes. Unsynced spool changes give it one (at most a
/// second), and once the spool is synced it needs none again.
#[test]
fn syslog_idle_sink_sets_a_timer_only_for_unsynced_spool_changes() {
    let (collector, addr) = udp_collector();
    let mut sink = Sink::new(cfg(Transport::Udp {
        addr: addr.clone(),
        format: Format::Rfc5424,
    }))
    .expect("sink");
    assert_eq!(sink.next_wake_in(), None, "a new sink");
    sink.send_alert(&json!({"n": 1}), Severity::Critical);
    let mut buf = vec![0; 65_536];
    collector.recv(&mut buf).expect("datagram");
    assert_eq!(sink.stats().snapshot().sent, 1);
    assert_eq!(sink.next_wake_in(), None, "everything delivered");

    let unsynced = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut sink = Sink::new(cfg(Transport::Udp {
        addr,
        format: Format::Rfc5424,
    }))
    .expect("sink")
    .with_spool(Box::new(UnsyncedSpool(Arc::clone(&unsynced))));
    let wake = sink.next_wake_in().expect("a timer for the sync");
    assert!(
        wake > Duration::ZERO && wake <= Duration::from_secs(1),
        "{wake:?}"
    );
    // The sync is due a second after the last one; the pump that the timer runs then does it.
    std::thread::sleep(wake + Duration::from_millis(50));
    sink.pump();
    assert!(
        !unsynced.load(Ordering::SeqCst),
        "the pump synced the spool"
    );
    assert_eq!(sink.next_wake_in(), None, "synced: no timer");
}

#[test]
fn syslog_spool_seam_takes_everything_while_down_and_is_delivered_first() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut c = cfg(Transport::Tcp {
        addr: addr.clone(),
        format: Format::Rfc5424,
    });
    c.queue_capacity = 3;
    let mut sink = Sink::new(c)
        .expect("sink")
        .with_spool(Box::new(VecSpool::default()));
    for i in 0..8 {
        sink.send_alert(&json!({"seq": i}), Severity::Warning);
    }
    // The collector is down: the first failed connect moved the queue to the spool, and every
    // message after it went there directly.
    let s = sink.stats().snapshot();
    assert_eq!(
        (s.queued, s.spooled, s.spool_pending, s.dropped),
        (0, 8, 8, 0)
    );
    let listener = TcpListener::bind(&addr).expect("collector comes up");
    let reader = std::thread::spawn(move || read_all_frames(listener.accept().expect("accept").0));
    assert!(sink.flush(Duration::from_secs(5)));
    sink.shutdown();
    let seqs: Vec<Value> = reader
        .join()
        .expect("reader")
        .iter()
        .map(|f| split_5424(f).1["seq"].clone())
        .collect();
    assert_eq!(seqs, (0..8).map(|i| json!(i)).collect::<Vec<_>>());
}

#[test]
fn syslog_spawned_thread_delivers_and_shuts_down() {
    let (collector, addr) = udp_collector();
    let (t, tx) = spawn(
        cfg(Transport::Udp {
            addr,
            format: Format::Rfc5424,
        }),
        16,
    )
    .expect("spawn");
    tx.send(SinkMessage::Alert {
        json: json!({"k": "v"}),
        severity: Severity::Error,
    })
    .expect("send");
    tx.send(SinkMessage::Diagnostic {
        text: "hello".to_owned(),
        severity: Severity::Informational,
    })
    .expect("send");
    tx.send(SinkMessage::Shutdown).expect("send");
    let s = t.handle.join().expect("sink thread");
    assert_eq!(s.sent, 2);
    assert_eq!(t.stats.snapshot().sent, 2);
    let mut buf = [0u8; 2048];
    let n = collector.recv(&mut buf).expect("alert");
    assert!(
        std::str::from_utf8(&buf[..n])
            .expect("utf8")
            .contains(" wwatchd 77 alert - {\"k\":\"v\"}")
    );
    let n = collector.recv(&mut buf).expect("diag");
    assert!(
        std::str::from_utf8(&buf[..n])
            .expect("utf8")
            .starts_with("<38>1 ")
    );
}

#[test]
fn syslog_shutdown_counts_undeliverable_as_dropped() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut sink = Sink::new(cfg(Transport::Tcp {
        addr,
        format: Format::Rfc5424,
    }))
    .expect("sink");
    sink.send_alert(&json!({"a": 1}), Severity::Warning);
    sink.send_alert(&json!({"a": 2}), Severity::Warning);
    let s = sink.shutdown();
    assert_eq!((s.sent, s.queued, s.dropped), (0, 0, 2));
}

#[test]
fn syslog_parse_transport() {
    assert_eq!(
        "local".parse::<Transport>().expect("ok"),
        Transport::default()
    );
    assert_eq!(
        "unix:/run/x.sock?format=rfc5424"
            .parse::<Transport>()
            .expect("ok"),
        Transport::Local {
            path: "/run/x.sock".into(),
            format: Format::Rfc5424
        }
    );
    assert_eq!(
        "udp://127.0.0.1:514".parse::<Transport>().expect("ok"),
        Transport::Udp {
            addr: "127.0.0.1:514".into(),
            format: Format::Rfc5424
        }
    );
    assert_eq!(
        "tcp://[::1]:6514?format=3164"
            .parse::<Transport>()
            .expect("ok"),
        Transport::Tcp {
            addr: "[::1]:6514".into(),
            format: Format::Rfc3164
        }
    );
    assert_eq!(
        "stdout".parse::<Transport>().expect("ok"),
        Transport::Stdout
    );
    for bad in [
        "tcp://host",
        "udp://:514",
        "unix:rel",
        "http://x:1",
        "tcp://h:1?fmt=x",
        "tcp://h:99999",
    ] {
        let e = bad.parse::<Transport>().expect_err(bad).to_string();
        assert!(e.contains(bad) && e.contains("tcp://host:port"), "{e}");
    }
    let t: Transport = "tcp://h:1?format=rfc5424".parse().expect("ok");
    assert_eq!(t.to_string().parse::<Transport>().expect("round trip"), t);
}

#[test]
fn syslog_parse_facility_and_severity() {
    assert_eq!("auth".parse::<Facility>().expect("ok"), Facility::Auth);
    assert_eq!("security".parse::<Facility>().expect("ok"), Facility::Auth);
    assert_eq!("LOCAL3".parse::<Facility>().expect("ok"), Facility::Local3);
    let e = "mail".parse::<Facility>().expect_err("mail").to_string();
    assert!(
        e.contains("\"mail\"") && e.contains("authpriv") && e.contains("local7"),
        "{e}"
    );
    for s in SEVERITY_NAMES {
        assert_eq!(s.parse::<Severity>().expect(s).to_string(), s);
    }
    assert!(
        "loud"
            .parse::<Severity>()
            .expect_err("loud")
            .to_string()
            .contains("warning")
    );
    let c = SinkConfig::default();
    assert_eq!(c.alert_severity("low"), Severity::Notice);
    assert_eq!(c.alert_severity("Medium"), Severity::Warning);
    assert_eq!(c.alert_severity("high"), Severity::Error);
    assert_eq!(c.alert_severity("critical"), Severity::Critical);
    assert_eq!(c.alert_severity("??"), Severity::Warning);
    assert_eq!(c.facility, Facility::Auth);
}

#[test]
fn syslog_config_validation_names_the_field() {
    let c = SinkConfig {
        max_message_bytes: 100,
        ..SinkConfig::default()
    };
    let e = Sink::new(c).expect_err("too small").to_string();
    assert!(e.contains("max_message_bytes") && e.contains("8192"), "{e}");
}

#[test]
fn syslog_min_cap_with_longest_hostname_stays_under_cap() {
    let mut c = cfg(Transport::Udp {
        addr: "127.0.0.1:9".to_owned(),
        format: Format::Rfc5424,
    });
    c.hostname = "h".repeat(400);
    c.pid = u32::MAX;
    c.facility = Facility::Local7;
    c.max_message_bytes = MIN_MESSAGE_BYTES;
    let sink = Sink::new(c).expect("sink");
    let mut m = serde_json::Map::new();
    for i in 0..2_000 {
        m.insert(format!("k{i}"), json!(i));
    }
    let msg = sink.format_alert(&Value::Object(m), Severity::Debug);
    assert!(msg.bytes.len() <= MIN_MESSAGE_BYTES, "{}", msg.bytes.len());
    let (h, v) = split_5424(std::str::from_utf8(&msg.bytes).expect("utf8"));
    assert!(h.starts_with("<191>1 "), "{h}");
    assert_eq!(v["wwatchd"]["truncated"], json!(true));
}

#[test]
fn syslog_udp_cap_above_datagram_limit_is_refused() {
    let mut c = cfg(Transport::Udp {
        addr: "127.0.0.1:9".to_owned(),
        format: Format::Rfc5424,
    });
    c.max_message_bytes = 100_000;
    let e = Sink::new(c).expect_err("too big for UDP").to_string();
    assert!(e.contains("UDP") && e.contains("tcp://"), "{e}");
}

#[test]
fn syslog_stdout_alert_is_bare_json() {
    let sink = Sink::new(cfg(Transport::Stdout)).expect("sink");
    let msg = sink.format_alert(&nasty(), Severity::Warning);
    assert_one_line(&msg.bytes);
    let v: Value = serde_json::from_slice(&msg.bytes).expect("bare JSON");
    assert_eq!(v, nasty());
    let d = sink.format_diagnostic("x", Severity::Warning);
    assert_eq!(d.bytes, b"wwatchd[77]: wwatchd-diag: warning: x");
}

#[test]
fn syslog_dropped_sink_counts_its_queue() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut sink = Sink::new(cfg(Transport::Tcp {
        addr,
        format: Format::Rfc5424,
    }))
    .expect("sink");
    sink.send_alert(&json!({"a": 1}), Severity::Warning);
    let stats = sink.stats();
    drop(sink);
    assert_eq!(stats.snapshot().dropped, 1);
}

#[test]
fn syslog_last_error_names_the_transport() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut sink = Sink::new(cfg(Transport::Tcp {
        addr: addr.clone(),
        format: Format::Rfc5424,
    }))
    .expect("sink");
    sink.send_alert(&json!({"a": 1}), Severity::Warning);
    let e = sink.stats().last_error().expect("an error was recorded");
    assert!(e.starts_with(&format!("connect tcp://{addr}")), "{e}");
}

#[test]
fn syslog_thread_retries_on_its_own_timer() {
    let addr = format!("127.0.0.1:{}", free_port());
    let (t, tx) = spawn(
        cfg(Transport::Tcp {
            addr: addr.clone(),
            format: Format::Rfc5424,
        }),
        16,
    )
    .expect("spawn");
    for i in 0..3 {
        tx.send(SinkMessage::Alert {
            json: json!({"seq": i}),
            severity: Severity::Warning,
        })
        .expect("send");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.stats.snapshot().queued < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(t.stats.snapshot().queued, 3);
    // No further messages and no Flush: the thread must reconnect by itself.
    let listener = TcpListener::bind(&addr).expect("collector comes up");
    let (conn, _) = listener.accept().expect("sink reconnects on its own");
    while t.stats.snapshot().sent < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(t.stats.snapshot().sent, 3);
    drop(tx); // closing the channel shuts the sink down
    let s = t.handle.join().expect("sink thread");
    assert_eq!((s.sent, s.dropped), (3, 0));
    let seqs: Vec<Value> = read_all_frames(conn)
        .iter()
        .map(|f| split_5424(f).1["seq"].clone())
        .collect();
    assert_eq!(seqs, vec![json!(0), json!(1), json!(2)]);
}

/// The pipeline's fast path (alert JSON rendered with `SafeFormatter`, no `Value`) gives the
/// same message bytes as the `Value` path, short or trimmed, and a batch keeps its order.
#[test]
fn rendered_alerts_equal_value_alerts_and_batches_keep_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let collector = UnixDatagram::bind(&path).expect("bind");
    collector
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut c = cfg(Transport::Local {
        path: path.clone(),
        format: Format::Rfc5424,
    });
    c.max_message_bytes = MIN_MESSAGE_BYTES;
    let (t, tx) = spawn(c.clone(), 16).expect("spawn");
    let small = json!({"n": 1, "file": {"path": "/tmp/x\u{85}\u{2028}\n"}});
    let big = json!({"n": 2, "process": {"title": "t".repeat(4000)}, "file": {"path": "/tmp/big"}});
    let rendered = |v: &Value| {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, SafeFormatter);
        serde::Serialize::serialize(v, &mut ser).expect("render");
        out
    };
    assert_eq!(rendered(&small), render_json(&small).into_bytes());
    tx.send(SinkMessage::Batch(vec![
        SinkMessage::AlertJson {
            json: rendered(&small),
            severity: Severity::Warning,
        },
        SinkMessage::AlertJson {
            json: rendered(&big),
            severity: Severity::Warning,
        },
        SinkMessage::Alert {
            json: json!({"n": 3}),
            severity: Severity::Warning,
        },
    ]))
    .expect("send");
    tx.send(SinkMessage::Shutdown).expect("send");
    let s = t.handle.join().expect("sink thread");
    assert_eq!((s.sent, s.dropped, s.truncated), (3, 0, 1));
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    for _ in 0..3 {
        let n = collector.recv(&mut buf).expect("message");
        assert!(n <= MIN_MESSAGE_BYTES);
        assert_one_line(&buf[..n]);
        let (_, v) = split_5424(std::str::from_utf8(&buf[..n]).expect("utf8"));
        got.push(v);
    }
    assert_eq!(got[0], small);
    assert_eq!(got[1]["n"], 2);
    assert_eq!(got[1]["file"]["path"], "/tmp/big");
    assert!(got[1]["process"]["title"].as_str().expect("title").len() < 4000);
    assert_eq!(got[2], json!({"n": 3}));
    // The same trimmed alert as the Value path gives.
    let value_path = Sink::new(c)
        .expect("sink")
        .format_alert(&big, Severity::Warning);
    let (_, v) = split_5424(std::str::from_utf8(&value_path.bytes).expect("utf8"));
    assert_eq!(v, got[1]);
}

fn disk_spool(dir: &std::path::Path, max_bytes: u64) -> (Box<dyn Spool>, SpoolReport) {
    let (s, r) = DiskSpool::open(&SpoolConfig {
        dir: dir.to_owned(),
        max_bytes,
    })
    .expect("open spool");
    (Box::new(s), r)
}

fn seg_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .expect("list")
        .filter(|e| {
            e.as_ref()
                .expect("entry")
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count()
}

fn seqs(frames: &[String]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f.contains(" alert - "))
        .map(|f| split_5424(f).1["seq"].clone())
        .collect()
}

#[test]
fn syslog_collector_down_writes_through_to_disk_and_a_restart_delivers_it_first() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("spool");
    let addr = format!("127.0.0.1:{}", free_port());
    let tcp = || {
        cfg(Transport::Tcp {
            addr: addr.clone(),
            format: Format::Rfc5424,
        })
    };
    let (spool, report) = disk_spool(&dir, 1 << 20);
    assert_eq!(report.messages, 0);
    let mut sink = Sink::new(tcp()).expect("sink").with_spool(spool);
    for i in 0..20 {
        sink.send_alert(&json!({"seq": i}), Severity::Warning);
    }
    // On disk at once, not in memory: a crash of the daemon now would lose nothing.
    let s = sink.stats().snapshot();
    assert_eq!(
        (s.queued, s.spooled, s.spool_pending, s.dropped),
        (0, 20, 20, 0)
    );
    assert!(s.spool_bytes > 0);
    assert!(seg_count(&dir) >= 1);
    let s = sink.shutdown();
    assert_eq!((s.sent, s.dropped, s.spool_pending), (0, 0, 20));

    // The restart: old messages first, then new ones, each once.
    let (spool, report) = disk_spool(&dir, 1 << 20);
    assert_eq!(report.messages, 20);
    assert!(
        report.summary().contains("20 message(s)"),
        "{}",
        report.summary()
    );
    let mut sink = Sink::new(tcp()).expect("sink").with_spool(spool);
    assert_eq!(sink.stats().snapshot().spool_pending, 20);
    for i in 20..25 {
        sink.send_alert(&json!({"seq": i}), Severity::Warning);
    }
    assert_eq!(sink.spooled(), 25);
    let listener = TcpListener::bind(&addr).expect("collector comes up");
    let reader = std::thread::spawn(move || read_all_frames(listener.accept().expect("accept").0));
    assert!(sink.flush(Duration::from_secs(5)));
    sink.send_alert(&json!({"seq": 25}), Severity::Warning);
    let s = sink.shutdown();
    assert_eq!(
        (s.sent, s.dropped, s.spool_pending, s.spool_bytes),
        (26, 0, 0, 0)
    );
    let frames = reader.join().expect("reader");
    assert_eq!(seqs(&frames), (0..26).map(|i| json!(i)).collect::<Vec<_>>());
    assert_eq!(frames.len(), 26, "no diagnostics: nothing was lost");
    assert_eq!(seg_count(&dir), 0, "delivered segments are deleted");
}

#[test]
fn syslog_full_disk_spool_drops_oldest_counts_and_reports() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("spool");
    let addr = format!("127.0.0.1:{}", free_port());
    let (spool, _) = disk_spool(&dir, MIN_SPOOL_MAX_BYTES);
    let mut sink = Sink::new(cfg(Transport::Tcp {
        addr: addr.clone(),
        format: Format::Rfc5424,
    }))
    .expect("sink")
    .with_spool(spool);
    let pad = "p".repeat(1000);
    for i in 0..200 {
        sink.send_alert(&json!({"seq": i, "pad": pad}), Severity::Warning);
    }
    let s = sink.stats().snapshot();
    assert!(s.spool_dropped > 0, "{s:?}");
    assert_eq!(s.spool_dropped + s.spool_pending, 200, "{s:?}");
    assert!(s.spool_bytes <= MIN_SPOOL_MAX_BYTES, "{s:?}");
    assert_eq!(s.dropped, 0, "the sink itself lost nothing");
    let listener = TcpListener::bind(&addr).expect("collector comes up");
    let reader = std::thread::spawn(move || read_all_frames(listener.accept().expect("accept").0));
    assert!(sink.flush(Duration::from_secs(5)));
    sink.shutdown();
    let frames = reader.join().expect("reader");
    let first = s.spool_dropped;
    assert_eq!(
        seqs(&frames),
        (first..200).map(|i| json!(i)).collect::<Vec<_>>()
    );
    let last = frames.last().expect("frames");
    assert!(
        last.contains(&format!(
            " diag - {first} spooled message(s) dropped, oldest first: the disk spool was full"
        )),
        "{last}"
    );
}

#[test]
fn syslog_long_replay_in_batches_keeps_order_with_new_alerts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("spool");
    let addr = format!("127.0.0.1:{}", free_port());
    let (spool, _) = disk_spool(&dir, 8 << 20);
    let mut sink = Sink::new(cfg(Transport::Tcp {
        addr: addr.clone(),
        format: Format::Rfc5424,
    }))
    .expect("sink")
    .with_spool(spool);
    let n = 3 * PUMP_BATCH + 7;
    for i in 0..n {
        sink.send_alert(&json!({"seq": i}), Severity::Warning);
    }
    let listener = TcpListener::bind(&addr).expect("collector comes up");
    let reader = std::thread::spawn(move || read_all_frames(listener.accept().expect("accept").0));
    // New alerts arrive while the backlog is replayed: they go behind it.
    let mut next = n;
    let mut rounds = 0;
    while sink.spooled() > 0 {
        std::thread::sleep(Duration::from_millis(20));
        let sent = sink.pump();
        assert!(sent <= PUMP_BATCH);
        sink.send_alert(&json!({"seq": next}), Severity::Warning);
        next += 1;
        rounds += 1;
        assert!(rounds < 500, "replay does not progress");
    }
    // Each round pumps twice (pump, and send_alert's own).
    assert!(rounds >= 2, "the backlog went out in several batches");
    assert!(sink.flush(Duration::from_secs(5)));
    sink.shutdown();
    let frames = reader.join().expect("reader");
    assert_eq!(
        seqs(&frames),
        (0..next).map(|i| json!(i)).collect::<Vec<_>>()
    );
}

#[test]
fn syslog_spool_config_is_validated() {
    let mut c = SinkConfig {
        spool: Some(SpoolConfig {
            dir: "/var/lib/wwatchd/spool".into(),
            max_bytes: 1000,
        }),
        ..SinkConfig::default()
    };
    let e = c.validate().expect_err("small").to_string();
    assert!(e.contains("spool_max_bytes") && e.contains("65536"), "{e}");
    c.max_message_bytes = 65_000;
    c.spool = Some(SpoolConfig {
        dir: "/x".into(),
        max_bytes: 100_000,
    });
    let e = c.validate().expect_err("8 messages").to_string();
    assert!(e.contains("520000"), "{e}");
    c.max_message_bytes = 8192;
    c.spool = Some(SpoolConfig {
        dir: "relative".into(),
        max_bytes: 1 << 20,
    });
    let e = c.validate().expect_err("relative").to_string();
    assert!(e.contains("spool_dir") && e.contains("absolute"), "{e}");
}

/// A handle on `sink` whose channel the test reads itself: no sink thread runs, so what
/// reaches the collector was sent by `deliver` on the calling thread.
fn direct_handle(sink: Sink) -> (SinkHandle, crossbeam_channel::Receiver<SinkMessage>) {
    let (tx, rx) = crossbeam_channel::bounded(16);
    let handle = SinkHandle {
        tx,
        shared: Some(Arc::new(Shared::new(sink))),
    };
    (handle, rx)
}

fn alert(seq: u64) -> SinkMessage {
    SinkMessage::Alert {
        json: json!({"seq": seq}),
        severity: Severity::Warning,
    }
}

/// `deliver` sends on the caller's thread when the sink is idle on UDP; while a message is
/// still in the channel it queues behind it instead, so it never overtakes one.
#[test]
fn syslog_deliver_sends_directly_when_idle_and_never_overtakes_the_channel() {
    let (collector, addr) = udp_collector();
    let mut sink = Sink::new(cfg(Transport::Udp {
        addr,
        format: Format::Rfc5424,
    }))
    .expect("sink");
    // Not connected yet: the first message goes to the channel, for the sink thread.
    let stats = sink.stats();
    sink.send_alert(&json!({"seq": 0}), Severity::Warning);
    let (handle, rx) = direct_handle(sink);
    let mut buf = [0u8; 2048];
    let mut seq = || {
        let n = collector.recv(&mut buf).expect("datagram");
        split_5424(std::str::from_utf8(&buf[..n]).expect("utf8")).1["seq"].clone()
    };
    assert_eq!(seq(), json!(0));

    handle.deliver(alert(1)).expect("delivered");
    assert_eq!(stats.snapshot().sent, 2, "sent before deliver returned");
    assert!(rx.try_recv().is_err(), "nothing went through the channel");
    assert_eq!(seq(), json!(1));

    // One message waits in the channel: the next must not go first.
    handle.try_send(alert(2)).expect("channel");
    handle.deliver(alert(3)).expect("queued");
    assert_eq!(stats.snapshot().sent, 2);
    let waiting: Vec<_> = rx.try_iter().collect();
    assert_eq!(waiting, vec![alert(2), alert(3)]);
}

/// A receiver that does not read fills its queue; `deliver` then neither blocks nor loses
/// the message: it stays queued in the sink and the sink thread is woken.
#[test]
fn syslog_deliver_never_blocks_on_a_full_receiver_and_keeps_the_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let _collector = UnixDatagram::bind(&path).expect("bind");
    let mut sink = Sink::new(cfg(Transport::Local {
        path,
        format: Format::Rfc5424,
    }))
    .expect("sink");
    let stats = sink.stats();
    sink.send_alert(&json!({"seq": 0}), Severity::Warning);
    assert_eq!(stats.snapshot().sent, 1, "connected");
    let (handle, rx) = direct_handle(sink);
    let mut seq = 1;
    // The kernel's queue for an unread unix datagram socket holds max_dgram_qlen messages
    // (512 by default); well before this many a send would block.
    while stats.snapshot().queued == 0 && seq < 100_000 {
        handle.deliver(alert(seq)).expect("delivered or queued");
        seq += 1;
    }
    assert_eq!(
        stats.snapshot().queued,
        1,
        "the message that would block waits"
    );
    assert_eq!(stats.snapshot().sent, seq - 1);
    assert_eq!(
        stats.snapshot().send_errors,
        0,
        "a full receiver is not an error"
    );
    assert_eq!(rx.try_recv().expect("woken"), SinkMessage::Wake);
    // The sink thread would now send it; until it has, nothing overtakes it.
    handle.deliver(alert(seq)).expect("queued");
    assert_eq!(stats.snapshot().sent, seq - 1);
    assert_eq!(rx.try_recv().expect("behind the queue"), alert(seq));
}

/// A TCP sink connected to a collector the test holds: the sink (its first message sent,
/// so connected), the collector's side and the sink's counters.
fn tcp_direct_sink() -> (Sink, TcpStream, Arc<SinkStats>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut sink = Sink::new(cfg(Transport::Tcp {
        addr,
        format: Format::Rfc5424,
    }))
    .expect("sink");
    let stats = sink.stats();
    sink.send_alert(&json!({"seq": 0}), Severity::Warning);
    assert_eq!(stats.snapshot().sent, 1, "connected");
    let (peer, _) = listener.accept().expect("accept");
    (sink, peer, stats)
}

fn seq_of(frame: &[u8]) -> u64 {
    let (_, v) = split_5424(std::str::from_utf8(frame).expect("utf8"));
    v["seq"].as_u64().expect("seq")
}

/// Over TCP too, `deliver` sends on the caller's thread when the sink is idle: the frame is
/// on the connection before it returns, and nothing went through the channel.
#[test]
fn syslog_deliver_over_tcp_sends_directly_when_idle() {
    let (sink, peer, stats) = tcp_direct_sink();
    let (handle, rx) = direct_handle(sink);
    handle.deliver(alert(1)).expect("delivered");
    assert_eq!(stats.snapshot().sent, 2, "sent before deliver returned");
    assert!(rx.try_recv().is_err(), "nothing went through the channel");
    let mut r = BufReader::new(peer);
    let got: Vec<u64> = (0..2)
        .map(|_| seq_of(&read_frame(&mut r).expect("frame")))
        .collect();
    assert_eq!(got, [0, 1]);
}

/// A collector that stops reading fills the connection: `deliver` never waits for it. The
/// message the socket took none or part of stays first in the queue (with the rest of its
/// frame, if part), the sink thread is woken, later messages queue behind it; once the
/// collector reads again, the sink thread finishes the frame and every message arrives
/// whole, once, in order.
#[test]
fn syslog_deliver_over_tcp_never_waits_and_a_half_written_frame_is_finished() {
    let (sink, peer, stats) = tcp_direct_sink();
    let (handle, rx) = direct_handle(sink);
    let pad = "p".repeat(1500);
    let big = |seq: u64| SinkMessage::Alert {
        json: json!({"seq": seq, "pad": pad}),
        severity: Severity::Warning,
    };
    let mut seq = 1;
    while stats.snapshot().queued == 0 && seq < 100_000 {
        handle.deliver(big(seq)).expect("delivered or queued");
        seq += 1;
    }
    assert_eq!(
        stats.snapshot().queued,
        1,
        "the message the socket did not take waits"
    );
    assert_eq!(
        stats.snapshot().sent,
        seq - 1,
        "all before it were sent whole"
    );
    assert_eq!(
        stats.snapshot().send_errors,
        0,
        "a full connection is not an error"
    );
    assert_eq!(rx.try_recv().expect("woken"), SinkMessage::Wake);
    // Loopback TCP takes the part of a frame that fits (seen at the same message in every
    // run here): this test is of that case.
    let half = handle
        .shared
        .as_ref()
        .expect("shared")
        .lock()
        .half_written();
    assert!(half, "the socket took part of a frame");
    // Behind the waiting one, never before it.
    for extra in [seq, seq + 1] {
        handle.deliver(big(extra)).expect("queued");
        assert_eq!(rx.try_recv().expect("behind the queue"), big(extra));
    }
    let last = seq + 1;
    // The collector reads again; the sink thread's work: finish, then the channel's two.
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(peer);
        let mut got = Vec::new();
        while let Some(f) = read_frame(&mut r) {
            let n = seq_of(&f);
            got.push(n);
            if n == last {
                break;
            }
        }
        got
    });
    {
        let mut sink = handle.shared.as_ref().expect("shared").lock();
        sink.pump();
        assert!(!sink.half_written());
        for extra in [seq, seq + 1] {
            sink.send_alert(&json!({"seq": extra, "pad": pad}), Severity::Warning);
        }
    }
    let got = reader.join().expect("reader");
    assert_eq!(got, (0..=last).collect::<Vec<_>>(), "whole, once, in order");
    assert_eq!(stats.snapshot().sent, last + 1);
    assert_eq!(stats.snapshot().send_errors, 0);
}

/// Alerts of one batch go over UDP in `sendmmsg` calls of at most [`SEND_BATCH`]: all of them,
/// in order, each its own datagram, counted as sent.
#[test]
fn syslog_deliver_batch_over_udp_sends_every_datagram_in_order() {
    let (collector, addr) = udp_collector();
    let mut sink = Sink::new(cfg(Transport::Udp {
        addr,
        format: Format::Rfc5424,
    }))
    .expect("sink");
    let stats = sink.stats();
    sink.send_alert(&json!({"seq": 0}), Severity::Warning);
    let (handle, rx) = direct_handle(sink);
    let n = 2 * SEND_BATCH as u64 + 7;
    handle
        .deliver(SinkMessage::Batch((1..=n).map(alert).collect()))
        .expect("delivered");
    assert!(rx.try_recv().is_err(), "nothing went through the channel");
    assert_eq!(stats.snapshot().sent, n + 1);
    let mut buf = [0u8; 2048];
    for want in 0..=n {
        let got = collector.recv(&mut buf).expect("datagram");
        let v = split_5424(std::str::from_utf8(&buf[..got]).expect("utf8")).1;
        assert_eq!(v, json!({"seq": want}));
    }
}

/// The same over a unix datagram socket (`/dev/log`), whose receiver holds only a few
/// unread datagrams (`net.unix.max_dgram_qlen`): the sink waits for room, as the sink
/// thread does, and the collector reads meanwhile.
#[test]
fn syslog_batch_over_unix_datagram_sends_every_message_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log");
    let collector = UnixDatagram::bind(&path).expect("bind");
    collector
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let n = 3 * SEND_BATCH as u64 + 3;
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        (0..n)
            .map(|_| {
                let got = collector.recv(&mut buf).expect("datagram");
                split_5424(std::str::from_utf8(&buf[..got]).expect("utf8")).1
            })
            .collect::<Vec<_>>()
    });
    let mut sink = Sink::new(cfg(Transport::Local {
        path,
        format: Format::Rfc5424,
    }))
    .expect("sink");
    sink.queue_message(SinkMessage::Batch((0..n).map(alert).collect()));
    while sink.queued() > 0 {
        assert!(sink.pump() > 0, "{:?}", sink.stats().snapshot());
    }
    let got = reader.join().expect("reader");
    let want: Vec<_> = (0..n).map(|i| json!({"seq": i})).collect();
    assert_eq!(got, want);
    let s = sink.stats().snapshot();
    assert_eq!((s.sent, s.send_errors), (n, 0), "{s:?}");
}

/// A batch to a port where nothing listens: each datagram draws an ICMP port unreachable,
/// which the kernel reports once, as the error of a later send. Over loopback it comes back
/// at once, so the second datagram's send fails, and `sendmmsg` returns 1 and keeps that
/// error to itself; if the machine delays it, the batch goes whole and the next send is the
/// one refused. Either way every refusal is on the socket's error queue, and the count of
/// refused datagrams and the datagrams the collector gets add up to all that was sent, with
/// none twice and the diagnostic of the loss after them.
#[test]
fn syslog_udp_refusals_inside_a_batch_are_each_counted_and_the_rest_kept() {
    let probe = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = probe.local_addr().expect("addr");
    drop(probe);
    let mut sink = Sink::new(cfg(Transport::Udp {
        addr: addr.to_string(),
        format: Format::Rfc5424,
    }))
    .expect("sink");
    sink.queue_message(SinkMessage::Batch((0..10).map(alert).collect()));
    sink.pump();
    std::thread::sleep(Duration::from_millis(200));
    let collector = UdpSocket::bind(addr).expect("the collector comes up on the port");
    collector
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    sink.queue_message(alert(10));
    assert!(
        sink.flush(Duration::from_secs(5)),
        "delivered after the backoff"
    );
    let refused = sink.stats().snapshot().refused;
    assert!((1..=10).contains(&refused), "{:?}", sink.stats().snapshot());
    let mut buf = [0u8; 2048];
    for want in refused..=10 {
        let got = collector.recv(&mut buf).expect("a kept alert");
        let v = split_5424(std::str::from_utf8(&buf[..got]).expect("utf8")).1;
        assert_eq!(v, json!({"seq": want}));
    }
    let got = collector.recv(&mut buf).expect("the diagnostic");
    let diag = std::str::from_utf8(&buf[..got]).expect("utf8");
    assert!(diag.contains("1 or more syslog message(s) lost"), "{diag}");
    let s = sink.stats().snapshot();
    assert_eq!(
        (s.sent, s.dropped),
        (12, 0),
        "every alert and the diagnostic: {s:?}"
    );
}
