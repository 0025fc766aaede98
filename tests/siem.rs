//! The SIEM recipes of etc/siem/, run as written against the real programs.
//!
//! - `rsyslog-elasticsearch.conf`: `rsyslogd -N1` validates it (with the omelasticsearch
//!   module, package rsyslog-elasticsearch); then a real rsyslogd runs it, with only its
//!   server address pointed at a stand-in for Elasticsearch's `_bulk` API on loopback, and
//!   wwatchd's sink sends it the golden alerts over a unix socket as it sends to /dev/log.
//!   Every alert must arrive as a `create` into `logs-wwatchd.alert-default` with its
//!   `event.id` as `_id` and the alert's JSON as the document; diagnostics must not.
//! - `syslog-ng.conf`: `syslog-ng --syntax-only`, when syslog-ng is installed.
//!
//! Without rsyslogd the test says so and checks nothing; tools/test-all.sh installs rsyslog
//! and rsyslog-elasticsearch.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wwatchd::syslog::{Format, Severity, Sink, SinkConfig, Transport};

fn recipe(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("etc/siem")
        .join(name)
}

fn rsyslogd() -> Option<&'static str> {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

fn has_omelasticsearch() -> bool {
    ["/usr/lib/x86_64-linux-gnu/rsyslog", "/usr/lib/rsyslog"]
        .iter()
        .any(|d| Path::new(d).join("omelasticsearch.so").exists())
}

/// A stand-in for Elasticsearch: answers every request, keeps every `_bulk` body.
struct FakeEs {
    port: u16,
    bulks: Arc<Mutex<Vec<String>>>,
}

fn serve(mut s: TcpStream, bulks: &Mutex<Vec<String>>) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(s.try_clone()?);
    loop {
        let mut request = String::new();
        if r.read_line(&mut request)? == 0 {
            return Ok(());
        }
        let mut len = 0usize;
        let mut expect = false;
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("expect:") && lower.contains("100-continue") {
                expect = true;
            }
        }
        if expect {
            s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        let body = String::from_utf8_lossy(&body).into_owned();
        let reply = if request.contains("_bulk") {
            let n = body.lines().filter(|l| l.contains("\"create\"")).count();
            let items: Vec<String> = (0..n)
                .map(|_| r#"{"create":{"status":201}}"#.to_owned())
                .collect();
            bulks.lock().unwrap().push(body);
            format!(
                r#"{{"took":1,"errors":false,"items":[{}]}}"#,
                items.join(",")
            )
        } else {
            r#"{"status":"green"}"#.to_owned()
        };
        write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        )?;
    }
}

impl FakeEs {
    fn start() -> FakeEs {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = l.local_addr().unwrap().port();
        let bulks = Arc::new(Mutex::new(Vec::new()));
        let b = bulks.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let b = b.clone();
                std::thread::spawn(move || {
                    let _ = serve(s, &b);
                });
            }
        });
        FakeEs { port, bulks }
    }

    /// The (action, document) pairs received so far.
    fn pairs(&self) -> Vec<(Value, Value)> {
        let mut v = Vec::new();
        for body in self.bulks.lock().unwrap().iter() {
            let lines: Vec<&str> = body.lines().filter(|l| !l.is_empty()).collect();
            for p in lines.chunks(2) {
                if let [a, d] = p {
                    v.push((
                        serde_json::from_str(a).unwrap_or(Value::Null),
                        serde_json::from_str(d).unwrap_or(Value::Null),
                    ));
                }
            }
        }
        v
    }
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn golden_alerts() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".alerts.jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Starts rsyslogd on the recipe as written, but pointed at `es_port` and with its files
/// and a private unix socket in `tmp`; returns the running daemon and that socket.
fn start_recipe_rsyslog(rsyslogd: &str, es_port: u16, tmp: &Path) -> (Daemon, PathBuf) {
    let sock = tmp.join("log.sock");
    let text = std::fs::read_to_string(recipe("rsyslog-elasticsearch.conf")).unwrap();
    let errors = tmp.join("es-errors.json");
    let edited = text
        .replace(
            r#"server="localhost" serverport="9200""#,
            &format!(r#"server="127.0.0.1" serverport="{}""#, es_port),
        )
        .replace(
            "/var/log/rsyslog-wwatchd-es-errors.json",
            &errors.display().to_string(),
        );
    assert_ne!(
        edited, text,
        "the recipe's server line moved; update this test"
    );
    let conf = tmp.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{dir}\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" socket=\"{sock}\" ratelimit.interval=\"0\")\n{edited}",
            dir = tmp.display(),
            sock = sock.display()
        ),
    )
    .unwrap();
    let child = Command::new(rsyslogd)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(tmp.join("rsyslogd.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rsyslogd");
    let _daemon = Daemon(child);
    let t = Instant::now();
    while !sock.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "rsyslogd made no socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    (_daemon, sock)
}

#[test]
fn rsyslog_recipe_validates_and_indexes_alerts_into_the_data_stream() {
    let Some(rsyslogd) = rsyslogd() else {
        eprintln!("skipped: rsyslogd is not installed (tools/test-all.sh installs it)");
        return;
    };
    if !has_omelasticsearch() {
        panic!(
            "rsyslogd is installed but not its omelasticsearch module: apt-get install \
             rsyslog-elasticsearch (tools/test-all.sh does)"
        );
    }
    let check = Command::new(rsyslogd)
        .args(["-N1", "-f"])
        .arg(recipe("rsyslog-elasticsearch.conf"))
        .output()
        .expect("rsyslogd -N1");
    let text = String::from_utf8_lossy(&check.stderr).into_owned()
        + &String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && !text.contains("error"),
        "rsyslogd -N1 etc/siem/rsyslog-elasticsearch.conf:\n{text}"
    );

    // The recipe as written, but for where Elasticsearch and the files are.
    let es = FakeEs::start();
    let tmp = tempfile::tempdir().unwrap();
    let (_daemon, sock) = start_recipe_rsyslog(rsyslogd, es.port, tmp.path());
    // wwatchd's sink, as to /dev/log: RFC 3164, facility auth, tag wwatchd.
    let alerts = golden_alerts();
    assert!(alerts.len() >= 20, "{}", alerts.len());
    let mut sink = Sink::new(SinkConfig {
        transport: Transport::Local {
            path: sock.clone(),
            format: Format::Rfc3164,
        },
        ..SinkConfig::default()
    })
    .unwrap();
    sink.send_diagnostic(
        "loss: this is not JSON and must not be indexed",
        Severity::Notice,
    );
    for a in &alerts {
        sink.send_alert(a, Severity::Warning);
    }
    // The first alert again, as a spool replay would send it.
    sink.send_alert(&alerts[0], Severity::Warning);
    assert_eq!(sink.stats().snapshot().sent, alerts.len() as u64 + 2);

    let want = alerts.len() + 1;
    let t = Instant::now();
    while es.pairs().len() < want && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let pairs = es.pairs();
    assert_eq!(pairs.len(), want, "documents indexed: {pairs:?}");
    for (i, (action, doc)) in pairs.iter().enumerate() {
        let create = &action["create"];
        assert_eq!(create["_index"], "logs-wwatchd.alert-default", "{action}");
        assert_eq!(create["_id"], doc["event"]["id"], "{action}");
        assert!(create.get("_type").is_none(), "{action}");
        let original = &alerts[i % alerts.len()];
        assert_eq!(doc, original, "document {i} is not the alert's JSON");
    }
    assert_eq!(
        pairs[0].0["create"]["_id"],
        pairs[want - 1].0["create"]["_id"]
    );
}

#[test]
fn syslog_ng_recipe_is_valid() {
    let Some(bin) = ["/usr/sbin/syslog-ng", "/sbin/syslog-ng"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("skipped: syslog-ng is not installed");
        return;
    };
    let out = Command::new(bin)
        .arg("--syntax-only")
        .arg("-f")
        .arg(recipe("syslog-ng.conf"))
        .output()
        .expect("syslog-ng --syntax-only");
    assert!(
        out.status.success(),
        "syslog-ng --syntax-only etc/siem/syslog-ng.conf:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
