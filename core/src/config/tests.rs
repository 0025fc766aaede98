use super::*;
use crate::file_event::FileSchema;
use crate::rule;

fn errs(text: &str) -> Vec<String> {
    match parse(text, "w.toml") {
        Ok(c) => panic!("parsed: {c:?}\n{text}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn one(text: &str) -> String {
    let e = errs(text);
    assert_eq!(e.len(), 1, "{e:?}");
    e.into_iter().next().unwrap_or_default()
}

fn ok(text: &str) -> Config {
    match parse(text, "w.toml") {
        Ok(c) => c,
        Err(e) => panic!("{e}\n{text}"),
    }
}

#[test]
fn empty_file_is_the_defaults() {
    assert_eq!(ok(""), Config::default());
    assert_eq!(
        ok("# nothing\n\n[input]\n[output]\n[rules]\n[daemon]\n[budget]\n"),
        Config::default()
    );
    let d = Config::default();
    assert_eq!(d.budget.max_alerts, 100);
    assert_eq!(d.budget.window_secs, 300);
    assert!(!d.budget.dedup);
    assert_eq!(d.rules.builtin, BuiltinRules::All);
    assert!(d.exceptions.is_empty());
}

#[test]
fn unknown_keys_name_file_line_key_and_allowed_keys() {
    assert_eq!(
        one("[output]\ndestination = \"local\"\nfacilty = \"auth\"\n"),
        "w.toml:3: key `output.facilty`: unknown key; allowed: destination, format, \
         facility, max_message_bytes, queue_capacity, spool_dir, spool_max_bytes"
    );
    assert_eq!(
        one("\n[ouput]\n"),
        "w.toml:2: key `ouput`: unknown key; allowed: input, output, rules, daemon, budget, \
         exception"
    );
    assert_eq!(
        one("[[exception]]\nuser = \"bob\"\npaths = [\"/tmp/*\"]\n"),
        "w.toml:3: key `exception.paths`: unknown key; allowed: name, rule, user, process, \
         path, parent, source"
    );
}

#[test]
fn wrong_types_say_what_is_allowed() {
    assert_eq!(
        one("[budget]\nmax_alerts = \"100\"\n"),
        "w.toml:2: key `budget.max_alerts`: wrong type: string \"100\"; allowed: an integer"
    );
    assert_eq!(
        one("[budget]\ndedup = \"yes\"\n"),
        "w.toml:2: key `budget.dedup`: wrong type: string \"yes\"; allowed: a boolean"
    );
    assert_eq!(
        one("[output]\n\ndestination = 5\n"),
        "w.toml:3: key `output.destination`: wrong type: integer `5`; allowed: a string"
    );
    assert_eq!(
        one("[[exception]]\nprocess = true\n"),
        "w.toml:2: key `exception.process`: wrong type: boolean `true`; allowed: a string or \
         an array of strings"
    );
    assert_eq!(
        one("[[exception]]\nprocess = [\"scp\",\n  7]\n"),
        "w.toml:3: key `exception.process`: wrong type: integer `7`; allowed: a string"
    );
    let e = one("[output\n");
    assert!(e.starts_with("w.toml:1: "), "{e}");
    assert_eq!(
        one("input = 5\n"),
        "w.toml:1: key `input`: wrong type: integer `5`; allowed: a table"
    );
    assert_eq!(
        one("[exception]\nuser = 1\n"),
        "w.toml:1: key `exception`: wrong type: table; allowed: tables written [[exception]]"
    );
}

#[test]
fn values_out_of_range_or_unknown() {
    assert_eq!(
        one("[input]\nrcvbuf = 10\n"),
        "w.toml:2: key `input.rcvbuf`: 10 is out of range; allowed: 65536 to 1073741824 bytes"
    );
    assert_eq!(
        one("[output]\nfacility = \"kern\"\n"),
        "w.toml:2: key `output.facility`: \"kern\" is not a facility; allowed: auth, \
         authpriv, daemon, user, local0, local1, local2, local3, local4, local5, local6, local7"
    );
    let e = one("[output]\ndestination = \"udp://collector\"\n");
    assert!(
        e.starts_with("w.toml:2: key `output.destination`: ")
            && e.ends_with("allowed: local, unix:/PATH, udp://HOST:PORT, tcp://HOST:PORT, stdout"),
        "{e}"
    );
    assert_eq!(
        one("[output]\ndestination = \"udp://c:514\"\nmax_message_bytes = 70000\n"),
        "w.toml:3: key `output.max_message_bytes`: 70000 is out of range; allowed: 480 to \
         65507 bytes (over UDP)"
    );
    assert_eq!(
        one("[output]\ndestination = \"stdout\"\nformat = \"rfc5424\"\n"),
        "w.toml:3: key `output.format`: stdout writes plain JSON lines, without a syslog \
         header; allowed: auto"
    );
    assert_eq!(
        one("[output]\nformat = \"json\"\n"),
        "w.toml:2: key `output.format`: \"json\" is not a format; allowed: auto, rfc3164, rfc5424"
    );
    assert_eq!(
        one("[budget]\nwindow = 0\n"),
        "w.toml:2: key `budget.window`: 0 is out of range; allowed: 1 to 86400 seconds"
    );
    assert_eq!(
        one("[rules]\ndir = \"rules\"\n"),
        "w.toml:2: key `rules.dir`: \"rules\" is not an absolute path; allowed: a path \
         starting with /"
    );
    // Every error is reported, not only the first, in file order: one per table or
    // exception for the raw form, then every value.
    assert_eq!(
        errs(
            "[budget]\nwindow = 0\nmax_alerts = -1\n[daemon]\nsummary_interval = 0\n\
             [output]\nfacilty = 1\n[[exception]]\nuser = true\n[[exception]]\nuser = -1\n\
             [[exception]]\npath = \"x\"\nsource = \"::1/200\"\n"
        )
        .iter()
        .map(|e| e.split(": ").take(2).collect::<Vec<_>>().join(": "))
        .collect::<Vec<_>>(),
        [
            "w.toml:2: key `budget.window`",
            "w.toml:3: key `budget.max_alerts`",
            "w.toml:5: key `daemon.summary_interval`",
            "w.toml:7: key `output.facilty`",
            "w.toml:9: key `exception.user`",
            "w.toml:11: key `exception.user`",
            "w.toml:13: key `exception.path`",
            "w.toml:14: key `exception.source`",
        ]
    );
}

#[test]
fn output_settings() {
    let c = ok(
        "[output]\ndestination = \"tcp://127.0.0.1:5514\"\nformat = \"rfc3164\"\n\
                facility = \"local3\"\nmax_message_bytes = 4096\nqueue_capacity = 5\n",
    );
    assert_eq!(
        c.output.transport,
        Transport::Tcp {
            addr: "127.0.0.1:5514".into(),
            format: Format::Rfc3164
        }
    );
    assert_eq!(c.output.facility, Facility::Local3);
    assert_eq!(
        (c.output.max_message_bytes, c.output.queue_capacity),
        (4096, 5)
    );
    let c = ok("[output]\ndestination = \"udp://h:514\"\n");
    assert_eq!(
        c.output.transport,
        Transport::Udp {
            addr: "h:514".into(),
            format: Format::Rfc5424
        }
    );
    let c = ok("[output]\ndestination = \"unix:/run/x.sock?format=rfc5424\"\nformat = \"auto\"\n");
    assert_eq!(
        c.output.transport,
        Transport::Local {
            path: "/run/x.sock".into(),
            format: Format::Rfc5424
        }
    );
}

#[test]
fn exceptions_parse_with_every_condition() {
    let c = ok(r#"
[[exception]]
name = "ansible"
rule = "3e528511-7316-4a6e-83da-61b5f1c07fd4"
user = ["deploy", 1005, "1006"]
process = ["sftp-server", "/usr/lib/openssh/sftp-server"]
path = ["/tmp/ansible-tmp-*", "/var/tmp/ansible-tmp-*"]
parent = "sshd"
source = ["192.0.2.0/24", "2001:db8::1"]

[[exception]]
path = "/tmp/ssh-*"
"#);
    assert_eq!(c.exceptions.len(), 2);
    let e = &c.exceptions[0];
    assert_eq!(e.name.as_deref(), Some("ansible"));
    assert_eq!(e.origin, "w.toml:2");
    assert_eq!(
        e.users,
        [
            UserSpec::Name("deploy".into()),
            UserSpec::Id(1005),
            UserSpec::Id(1006)
        ]
    );
    assert_eq!(
        e.processes,
        [
            ProcSpec::Name("sftp-server".into()),
            ProcSpec::Executable("/usr/lib/openssh/sftp-server".into())
        ]
    );
    assert_eq!(e.paths.len(), 2);
    assert!(e.paths[0].is_case_insensitive());
    assert_eq!(e.parents, [ProcSpec::Name("sshd".into())]);
    assert_eq!(e.sources.len(), 2);
    assert_eq!(c.exceptions[1].rule, None);
    assert_eq!(c.exceptions[1].label(1), "exception #2 (w.toml:11)");
    // The effective settings print back to the same configuration.
    let again = ok(&c.to_toml());
    assert_eq!(again.exceptions.len(), 2);
    assert_eq!(again.exceptions[0].users, e.users);
    assert_eq!(again.exceptions[0].processes, e.processes);
    assert_eq!(again.exceptions[0].paths, e.paths);
    assert_eq!(again.exceptions[0].sources, e.sources);
    assert_eq!(again.budget, c.budget);
    assert_eq!(again.output, c.output);
}

#[test]
fn bad_exception_values() {
    assert_eq!(
        one("[[exception]]\nsource = [\"10.0.0.0/8\",\n  \"10.1.0.0/8\"]\n"),
        "w.toml:3: key `exception.source`: \"10.1.0.0/8\" has bits set after the /8 prefix; \
         write the network address (10.0.0.0/8); allowed: an IPv4 or IPv6 address or \
         network, e.g. 192.0.2.0/24 or 2001:db8::/32"
    );
    assert_eq!(
        one("[[exception]]\nsource = \"example.org\"\n"),
        "w.toml:2: key `exception.source`: \"example.org\" is not an IPv4 or IPv6 address; \
         allowed: an IPv4 or IPv6 address or network, e.g. 192.0.2.0/24 or 2001:db8::/32"
    );
    assert_eq!(
        one("[[exception]]\npath = [\"/tmp/*\", \"tmp/ansible-*\"]\n"),
        "w.toml:2: key `exception.path`: glob \"tmp/ansible-*\" can never match: file.path \
         is absolute; allowed: a glob starting with / or * (`*` any characters including /, \
         `?` one character, case-insensitive)"
    );
    assert_eq!(
        one("[[exception]]\npath = []\n"),
        "w.toml:2: key `exception.path`: an empty list matches nothing; remove the key or \
         name values"
    );
    assert_eq!(
        one("[[exception]]\npath = \"\"\n"),
        "w.toml:2: key `exception.path`: an empty string matches nothing; remove it"
    );
    assert_eq!(
        one("[[exception]]\nuser = -1\n"),
        "w.toml:2: key `exception.user`: -1 is not a user id; allowed: user names, or ids \
         0-4294967295"
    );
    assert_eq!(
        one("[[exception]]\nprocess = \"bin/scp\"\n"),
        "w.toml:2: key `exception.process`: \"bin/scp\" is neither a process name nor an \
         absolute executable path; allowed: a name (compared with process.name) or a path \
         starting with / (compared with process.executable)"
    );
    assert_eq!(
        one("\n[[exception]]\nname = \"x\"\nrule = \"r\"\n"),
        "w.toml:2: key `exception`: names no condition, so it would suppress every alert; \
         allowed: at least one of user, process, path, parent, source (to stop a rule, \
         remove its file or set rules.builtin = false)"
    );
    assert_eq!(
        one("[[exception]]\nname = \"a\"\nuser = 1\n[[exception]]\nname = \"a\"\nuser = 2\n"),
        "w.toml:5: key `exception.name`: the name \"a\" is already used by the exception at \
         w.toml:1; allowed: a name no other exception has"
    );
}

fn builtin() -> Rule {
    match rule::try_builtin(&FileSchema) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn exception_rules_resolve_by_id_or_name() {
    let mut c = ok(
        "[[exception]]\nrule = \"Remote File Creation in World Writeable Directory\"\nuser = 1\n\
         [[exception]]\nrule = \"3e528511-7316-4a6e-83da-61b5f1c07fd4\"\nuser = 2\n\
         [[exception]]\nuser = 3\n\n[[exception]]\nuser = 4\n\nrule = \"nope\"\n",
    );
    let e = c.resolve_rule_refs(&[builtin()]);
    assert_eq!(
        e.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "w.toml:13: key `exception.rule`: no loaded rule has the rule_id or name \"nope\"; \
          allowed: 3e528511-7316-4a6e-83da-61b5f1c07fd4 (\"Remote File Creation in World \
          Writeable Directory\")"
        ]
    );
    let id = Some("3e528511-7316-4a6e-83da-61b5f1c07fd4".to_owned());
    assert_eq!(c.exceptions[0].rule, id);
    assert_eq!(c.exceptions[1].rule, id);
    assert_eq!(c.exceptions[2].rule, None);
}

#[test]
fn to_toml_round_trips_the_defaults() {
    let d = Config::default();
    let text = d.to_toml();
    assert_eq!(ok(&text), d);
    assert!(
        text.contains("[budget]\nmax_alerts = 100\nwindow = 300\ndedup = false\n"),
        "{text}"
    );
    assert!(
        text.contains("destination = \"local\"\nformat = \"rfc3164\"\n"),
        "{text}"
    );
}

/// The shipped `etc/wwatchd.toml`: as shipped (all commented out) it is exactly the
/// defaults, and every commented key line holds its default.
#[test]
fn shipped_file_is_the_defaults() {
    let text = include_str!("../../../etc/wwatchd.toml");
    assert_eq!(ok(text), Config::default());
    // Uncomment the key lines of the settings (not the exception examples).
    let examples = text.find("#[[exception]]").unwrap_or(text.len());
    let (settings, _) = text.split_at(examples);
    let mut keys = 0;
    let uncommented: String = settings
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(k) if k.starts_with(|c: char| c.is_ascii_lowercase()) => {
                keys += 1;
                format!("{k}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    assert_eq!(ok(&uncommented), Config::default(), "{uncommented}");
    // Every key is there.
    let listed = Config::default().to_toml();
    let all = listed.lines().filter(|l| l.contains(" = ")).count();
    assert_eq!(keys, all, "keys in the shipped file vs. settings");
}

/// The exception examples of the shipped file are valid and do what they say.
#[test]
fn shipped_exception_examples_work() {
    use crate::file_event::Text;
    use crate::policy::tests::fe;
    use std::borrow::Cow;
    let text = include_str!("../../../etc/wwatchd.toml");
    let start = text.find("#[[exception]]").unwrap_or(text.len());
    let examples: String = text[start..]
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let mut c = ok(&examples);
    assert!(c.exceptions.len() >= 2, "{examples}");
    assert!(c.resolve_rule_refs(&[builtin()]).is_empty());
    let ids = ["3e528511-7316-4a6e-83da-61b5f1c07fd4"];
    let mut p = Policy::new(c.exceptions.clone(), Budget::default(), &ids);
    let with = |path: &'static str, proc_name: &'static str, exe: &'static str| {
        let mut e = fe();
        let t = |s: &'static str| {
            Some(Text {
                text: Cow::Borrowed(s),
                raw: None,
            })
        };
        e.path = t(path);
        e.process_name = t(proc_name);
        e.exe = t(exe);
        e
    };
    let sftp = "/usr/lib/openssh/sftp-server";
    fn v(p: &mut Policy, e: crate::file_event::FileEvent<'_>) -> crate::policy::Verdict {
        p.decide(0, &e, &mut |s| panic!("{s:?}"))
    }
    use crate::policy::Verdict::*;
    assert!(matches!(
        v(
            &mut p,
            with(
                "/tmp/ansible-tmp-1-2/AnsiballZ_ping.py",
                "sftp-server",
                sftp
            )
        ),
        Excepted(_)
    ));
    assert!(matches!(
        v(
            &mut p,
            with("/var/tmp/ansible-tmp-9/x", "sftp-server", sftp)
        ),
        Excepted(_)
    ));
    assert!(matches!(
        v(&mut p, with("/tmp/ssh-XXXXabcd", "sshd", "/usr/sbin/sshd")),
        Excepted(_)
    ));
    // Not the same drop by another tool, nor another path by sftp-server.
    assert_eq!(
        v(&mut p, with("/tmp/ansible-tmp-1/x", "scp", "/usr/bin/scp")),
        Send
    );
    assert_eq!(v(&mut p, with("/tmp/payload", "sftp-server", sftp)), Send);
    assert_eq!(
        v(&mut p, with("/tmp/ssh-XXXXabcd", "sftp-server", sftp)),
        Send
    );
}

/// `rules.builtin`: true, false, or an array naming built-in rules by file stem or
/// rule_id; unknown names and other types are errors naming the line, and the effective
/// settings print back the same choice (loading them: the daemon crate's config tests).
#[test]
fn builtin_rules_are_chosen_per_rule() {
    const SEED: &str = "3e528511-7316-4a6e-83da-61b5f1c07fd4";
    const COMP: &str = "61f88af8-7b6d-4103-829a-dae6ab96a2b9";
    const SEED_N: &str = "remote_file_creation_world_writeable";
    const COMP_N: &str = "remote_file_creation_world_writeable_sshd_session";
    const NT_N: &str = "remote_file_creation_world_writeable_new_terms";
    let pick = |text: &str| ok(text).rules.builtin;
    assert_eq!(pick("[rules]\nbuiltin = true\n"), BuiltinRules::All);
    assert_eq!(pick("[rules]\nbuiltin = false\n"), BuiltinRules::Off);
    assert_eq!(
        pick("[rules]\nbuiltin = [\"remote_file_creation_world_writeable_sshd_session\"]\n"),
        BuiltinRules::Only(vec![COMP_N.into()])
    );
    assert_eq!(
        pick(&format!(
            "[rules]\nbuiltin = [\"{COMP}\", \"{SEED}\", \"{COMP}\"]\n"
        )),
        BuiltinRules::Only(vec![SEED_N.into(), COMP_N.into()])
    );
    assert_eq!(
        pick("[rules]\nbuiltin = \"remote_file_creation_world_writeable\"\n"),
        BuiltinRules::Only(vec![SEED_N.into()])
    );
    // The new_terms seed shares the seed's rule_id: it is chosen by name only, and `true`
    // leaves it off.
    assert_eq!(
        pick(&format!("[rules]\nbuiltin = [\"{NT_N}\", \"{COMP}\"]\n")),
        BuiltinRules::Only(vec![COMP_N.into(), NT_N.into()])
    );
    assert!(!BuiltinRules::All.runs(NT_N));
    assert!(BuiltinRules::All.runs(SEED_N) && BuiltinRules::All.runs(COMP_N));
    assert!(!BuiltinRules::Only(vec![SEED_N.into()]).runs(NT_N));
    let e = one("[rules]\n\nbuiltin = [\"remote_file_creation_world_writeable\",\n  \"sshd\"]\n");
    assert!(
        e.starts_with("w.toml:4: key `rules.builtin`: \"sshd\" is not a built-in rule; allowed:")
            && e.contains(SEED)
            && e.contains(COMP)
            && e.contains(&format!("{NT_N} (by name only)")),
        "{e}"
    );
    let e = one("[rules]\nbuiltin = 1\n");
    assert!(e.starts_with("w.toml:2: key `rules.builtin`: "), "{e}");
    let e = one("[rules]\nbuiltin = []\n");
    assert!(e.starts_with("w.toml:2: key `rules.builtin`: "), "{e}");

    for text in [
        "[rules]\nbuiltin = false\n",
        "[rules]\nbuiltin = true\n",
        &format!("[rules]\nbuiltin = [\"{COMP}\"]\n"),
        &format!("[rules]\nbuiltin = [\"{NT_N}\"]\n"),
    ] {
        let c = ok(text);
        assert_eq!(ok(&c.to_toml()), c, "{text}");
    }
}
