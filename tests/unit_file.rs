//! The systemd unit (`debian/wwatchd.service`, installed by the .deb): the settings the
//! daemon's detection depends on. `systemd-analyze verify` runs in tools/test-all.sh and
//! tools/test-deb.sh; this test pins what verify cannot know.

use std::collections::BTreeMap;

fn unit() -> BTreeMap<String, Vec<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/debian/wwatchd.service");
    let text = std::fs::read_to_string(path).unwrap();
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in text.lines().map(str::trim) {
        if l.starts_with('#') || l.starts_with('[') || l.is_empty() {
            continue;
        }
        let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{path}: {l}"));
        m.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    m
}

fn one<'a>(u: &'a BTreeMap<String, Vec<String>>, k: &str) -> &'a str {
    match u.get(k).map(Vec::as_slice) {
        Some([v]) => v,
        other => panic!("{k}: {other:?}"),
    }
}

fn words(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.split_whitespace().collect();
    v.sort_unstable();
    v
}

/// The kernel resolves our rules' paths (-F dir=/tmp, /dev/shm) in the service's mount
/// namespace: a private /tmp or /dev would be watched instead of the real ones (measured:
/// with an empty directory bind-mounted on /tmp the daemon missed a drop into the real /tmp,
/// and still saw /dev/shm). DynamicUser and RootDirectory would imply a private /tmp too.
#[test]
fn the_daemon_sees_the_real_tmp_and_dev_shm() {
    let u = unit();
    assert_eq!(one(&u, "PrivateTmp"), "no");
    assert_eq!(one(&u, "PrivateDevices"), "no");
    for k in [
        "DynamicUser",
        "RootDirectory",
        "RootImage",
        "TemporaryFileSystem",
        "BindPaths",
        "InaccessiblePaths",
        "JoinsNamespaceOf",
        "PrivateUsers",
        "PrivateNetwork",
        "ProtectProc",
    ] {
        assert!(!u.contains_key(k), "{k} must not be set: {:?}", u[k]);
    }
}

#[test]
fn capabilities_and_user_are_the_daemons() {
    let u = unit();
    assert_eq!(one(&u, "User"), "wwatchd");
    let caps = [
        "CAP_AUDIT_CONTROL",
        "CAP_AUDIT_READ",
        "CAP_NET_ADMIN",
        "CAP_SETPCAP",
    ];
    assert_eq!(words(one(&u, "AmbientCapabilities")), caps);
    assert_eq!(words(one(&u, "CapabilityBoundingSet")), caps);
    assert_eq!(one(&u, "NoNewPrivileges"), "yes");
    assert_eq!(
        words(one(&u, "RestrictAddressFamilies")),
        ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"]
    );
    // The privilege drop calls capset, which ~@privileged removes; it must come back.
    let filters = &u["SystemCallFilter"];
    assert_eq!(
        filters.last().map(String::as_str),
        Some("capset"),
        "{filters:?}"
    );
}

#[test]
fn directories_and_commands() {
    let u = unit();
    assert_eq!(one(&u, "ExecStart"), "/usr/bin/wwatchd run");
    assert_eq!(one(&u, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one(&u, "Restart"), "on-failure");
    assert_eq!(one(&u, "ProtectSystem"), "strict");
    assert_eq!(one(&u, "ProtectHome"), "read-only");
    // /run/wwatchd/status.json is `run`'s default status file.
    assert_eq!(one(&u, "RuntimeDirectory"), "wwatchd");
    assert_eq!(one(&u, "StateDirectory"), "wwatchd");
    assert_eq!(one(&u, "StateDirectoryMode"), "0750");
    assert!(
        !u.contains_key("ReadWritePaths"),
        "only the two directories are writable"
    );
    assert!(
        one(&u, "After")
            .split_whitespace()
            .any(|w| w == "auditd.service")
    );
}
