//! `wwatchd scan`'s host identity: from the records' `node=`, else `--host`, else this host,
//! and the summary says which; this host's look-ups never go to another host's records.

use std::process::Command;

use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scp_sftp.log");

fn scan(args: &[&str], stdin: Option<&str>) -> (i32, Vec<Value>, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wwatchd"));
    c.arg("scan").arg("--no-progress").args(args);
    let out = match stdin {
        None => c.output().expect("run wwatchd"),
        Some(text) => {
            use std::io::Write;
            let mut child = c
                .arg("-")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run wwatchd");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        }
    };
    let docs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.code().unwrap_or(-1),
        docs,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn local_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn without_host_the_alerts_are_this_hosts() {
    let (code, docs, err) = scan(&[FIXTURE], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(docs.len(), 1);
    let h = &docs[0]["host"];
    assert_eq!(h["name"], local_name().as_str());
    assert_eq!(h["hostname"], local_name().as_str());
    assert_eq!(h["os"]["type"], "linux");
    assert!(h["architecture"].is_string(), "{h}");
    if let Ok(id) = std::fs::read_to_string("/etc/machine-id") {
        assert_eq!(h["id"], id.trim());
    }
    for ip in h["ip"].as_array().into_iter().flatten() {
        let a: std::net::IpAddr = ip.as_str().unwrap().parse().unwrap();
        assert!(!a.is_loopback(), "{a}");
    }
    assert!(
        err.contains(&format!("host {} (this host)", local_name())),
        "{err}"
    );
}

#[test]
fn with_host_the_alerts_name_it_and_carry_no_local_facts() {
    let (code, docs, err) = scan(&["--host", "web7", FIXTURE], None);
    assert_eq!(code, 0, "{err}");
    let h = &docs[0]["host"];
    assert_eq!(
        h,
        &serde_json::json!({"name": "web7", "os": {"type": "linux"}})
    );
    assert!(docs[0]["agent"].get("id").is_none(), "{}", docs[0]["agent"]);
    assert!(err.contains("host web7 (from --host)"), "{err}");
    // --host-id: host.id, and event.id/agent.id follow it.
    let id = "0123456789abcdef0123456789abcdef";
    let (_, with_id, _) = scan(&["--host", "web7", "--host-id", id, FIXTURE], None);
    assert_eq!(with_id[0]["host"]["id"], id);
    assert_ne!(with_id[0]["event"]["id"], docs[0]["event"]["id"]);
    assert!(with_id[0]["agent"]["id"].is_string());
}

#[test]
fn bad_host_options_are_usage_errors() {
    for (args, what) in [
        (vec!["--host", "web7", "--host-id", "XYZ"], "--host-id"),
        (
            vec!["--host-id", "0123456789abcdef0123456789abcdef"],
            "--host",
        ),
        (
            vec!["--host", "elsewhere", "--resolve-names"],
            "--resolve-names",
        ),
        (vec!["--host", ""], "--host"),
    ] {
        let mut a = args.clone();
        a.push(FIXTURE);
        let (code, docs, err) = scan(&a, None);
        assert_ne!(code, 0, "{args:?}");
        assert!(docs.is_empty());
        assert!(err.contains(what), "{args:?}: {err}");
    }
}

#[test]
fn records_with_node_name_their_host_and_get_no_local_facts() {
    let log = std::fs::read_to_string(FIXTURE).unwrap();
    let with_node: String = log.lines().map(|l| format!("node=db3 {l}\n")).collect();
    let (code, docs, err) = scan(&["--host", "web7"], Some(&with_node));
    assert_eq!(code, 0, "{err}");
    assert_eq!(docs.len(), 1);
    assert_eq!(
        docs[0]["host"],
        serde_json::json!({"name": "db3", "os": {"type": "linux"}})
    );
    assert!(
        err.contains("host from the records' node= (db3), else web7 (from --host)"),
        "{err}"
    );
    // Its source.ip is the log's own (the session's login records), as live.
    assert_eq!(docs[0]["source"]["ip"], "127.0.0.1");
}
