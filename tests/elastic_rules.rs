//! Elastic's real Linux file rules (tests/elastic-rules/, see its README) against wwatchd:
//! every `file where` rule loads for `scan`, and each either derives kernel audit rules or
//! is refused for live use with its file, line and reason (issue 11).

use std::path::{Path, PathBuf};

use wwatchd_core::file_event::FileSchema;
use wwatchd_core::kernel_rule::{self, WatchFs};
use wwatchd_core::rule::{kinds, parse_rule_toml};

fn corpus(sub: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/elastic-rules")
        .join(sub);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

/// A fixed Debian 12 (usrmerge) view, so the table does not depend on the test machine.
struct Debian;

const DIRS: &[&str] = &[
    "/etc",
    "/etc/apt",
    "/etc/cron.d",
    "/etc/init.d",
    "/etc/ssh",
    "/etc/systemd",
    "/etc/systemd/system",
    "/etc/udev",
    "/etc/udev/rules.d",
    "/etc/pam.d",
    "/etc/profile.d",
    "/etc/update-motd.d",
    "/etc/ld.so.conf.d",
    "/etc/default",
    "/etc/dbus-1",
    "/etc/modprobe.d",
    "/etc/NetworkManager",
    "/etc/sudoers.d",
    "/etc/security",
    "/etc/apparmor.d",
    "/etc/selinux",
    "/etc/polkit-1",
    "/etc/ssl",
    "/etc/ssl/certs",
    "/etc/xdg",
    "/etc/xdg/autostart",
    "/var",
    "/var/log",
    "/var/tmp",
    "/var/spool",
    "/var/spool/cron",
    "/var/www",
    "/var/lib",
    "/tmp",
    "/dev",
    "/dev/shm",
    "/home",
    "/root",
    "/run",
    "/usr",
    "/usr/lib",
    "/usr/bin",
    "/usr/sbin",
    "/usr/share",
    "/usr/local",
    "/usr/local/bin",
    "/usr/lib/systemd",
    "/usr/lib/systemd/system",
    "/usr/lib/python3",
    "/usr/lib/x86_64-linux-gnu",
    "/opt",
    "/srv",
    "/boot",
    "/boot/grub",
];
const LINKS: &[(&str, &str)] = &[
    ("/lib64", "/usr/lib64"),
    ("/lib", "/usr/lib"),
    ("/bin", "/usr/bin"),
    ("/sbin", "/usr/sbin"),
    ("/var/run", "/run"),
];

impl WatchFs for Debian {
    fn is_dir(&self, p: &Path) -> bool {
        DIRS.contains(&self.resolve(p).to_str().unwrap_or(""))
    }
    fn resolve(&self, p: &Path) -> PathBuf {
        for (link, target) in LINKS {
            if let Ok(rest) = p.strip_prefix(link) {
                return if rest.as_os_str().is_empty() {
                    PathBuf::from(target)
                } else {
                    Path::new(target).join(rest)
                };
            }
        }
        p.to_path_buf()
    }
    fn subdirs_starting_with(&self, _: &Path, _: &str) -> Vec<String> {
        Vec::new()
    }
}

/// What the daemon makes of one rule, for the corpus tables: the kernel watches it derives,
/// or that it never matches wwatchd's events, or its refusal for live use (which must name
/// the file and line and suggest --watch-dir); counts each outcome.
fn verdict(
    rule: &wwatchd_core::rule::Rule,
    origin: &str,
    derived: &mut usize,
    refused: &mut usize,
    never: &mut usize,
) -> String {
    match kernel_rule::derive(std::slice::from_ref(rule), &[], &Debian) {
        Ok(rules) if rules.is_empty() => {
            *never += 1;
            "never matches wwatchd's events".to_owned()
        }
        Ok(rules) => {
            *derived += 1;
            for r in &rules {
                r.to_spec().unwrap();
            }
            let watches: Vec<String> = rules
                .iter()
                .filter(|r| r.arch == kernel_rule::Arch::X86_64)
                .map(|r| match (&r.dir, &r.path) {
                    (Some(d), _) => format!("dir={}", d.display()),
                    (_, Some(p)) => format!("path={}", p.display()),
                    _ => String::new(),
                })
                .collect();
            format!("derives {}", watches.join(" "))
        }
        Err(e) => {
            *refused += 1;
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("{origin}:")) && msg.contains("(--watch-dir DIR)"),
                "{msg}"
            );
            assert!(e.line.is_some(), "{msg}");
            format!("refused live: line {}: {}", e.line.unwrap_or(0), e.why)
        }
    }
}

#[test]
fn every_elastic_file_rule_loads_and_derives_or_is_refused_with_its_location() {
    let files = corpus("eql");
    assert_eq!(files.len(), 57, "the corpus README says 57 EQL rules");
    let (mut derived, mut refused, mut never) = (0, 0, 0);
    let mut table = String::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let origin = f.display().to_string();
        let rule = match parse_rule_toml(&text, &origin, &FileSchema) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let k: Vec<&str> = kinds::kinds(rule.query.ast())
            .iter()
            .map(|a| a.as_str())
            .collect();
        let name = f.file_name().unwrap().to_string_lossy();
        let verdict = verdict(&rule, &origin, &mut derived, &mut refused, &mut never);
        table.push_str(&format!("{name} [{}]: {verdict}\n", k.join(",")));
    }
    eprintln!("{table}derived {derived}, refused {refused}, never {never}");
    assert_eq!(derived + refused + never, 57);
}

/// Issue 11: Elastic's KQL file rules compile; each with a literal directory derives
/// kernel rules, and the others are refused live with their file, line and reason. The
/// one that names an Auditbeat-only field is refused for it, at its line and column.
#[test]
fn every_elastic_kuery_file_rule_compiles_and_derives_or_is_refused() {
    let files = corpus("kuery");
    assert_eq!(files.len(), 14, "the corpus README says 14 KQL rules");
    let (mut derived, mut refused, mut never, mut unknown) = (0, 0, 0, 0);
    let mut table = String::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let origin = f.display().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        let rule = match parse_rule_toml(&text, &origin, &FileSchema).map_err(|e| e.to_string()) {
            Ok(r) => r,
            Err(msg) if name.contains("auditd_sensitive_cloud") => {
                // `data_stream.dataset`, Auditbeat's data stream: wwatchd's events have none.
                let line = text
                    .lines()
                    .position(|l| l.starts_with("data_stream.dataset:"))
                    .unwrap()
                    + 1;
                assert_eq!(
                    msg,
                    format!(
                        "{origin}:{line}:1: key `rule.query`: unknown field `data_stream.dataset`: \
                         wwatchd's events never carry it (Kibana would send it to Elasticsearch \
                         as it is, where it matches no event)"
                    )
                );
                unknown += 1;
                table.push_str(&format!("{name}: refused: {msg}\n"));
                continue;
            }
            Err(msg) => panic!("{msg}"),
        };
        assert_eq!(rule.query.language(), wwatchd_core::rule::Language::Kuery);
        let k: Vec<&str> = kinds::kinds(rule.query.ast())
            .iter()
            .map(|a| a.as_str())
            .collect();
        let verdict = verdict(&rule, &origin, &mut derived, &mut refused, &mut never);
        table.push_str(&format!("{name} [{}]: {verdict}\n", k.join(",")));
    }
    eprintln!(
        "{table}derived {derived}, refused {refused}, never {never}, unknown field {unknown}"
    );
    assert_eq!(derived + refused + never + unknown, 14);
    assert_eq!(unknown, 1);
}
