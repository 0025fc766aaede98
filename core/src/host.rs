//! host: who the alerts are about (`host.*`) and who sends them (`agent.*`), as plain data.
//!
//! `… → alert [host.*, agent.*] → syslog`
//!
//! The daemon and `scan` gather a [`HostInfo`] at the OS edge (`wwatchd::host`) and hand it
//! to the detector; this module only holds it and parses the text of `/etc/os-release`.

#![forbid(unsafe_code)]

/// `host.os.*`, from `/etc/os-release` and `uname`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OsInfo {
    /// `host.os.family`: `ID_LIKE`'s first word, or `ID` (`debian`, `rhel`...).
    pub family: Option<String>,
    /// `host.os.full`: `PRETTY_NAME`.
    pub full: Option<String>,
    /// `host.os.kernel`: the kernel release (`uname -r`).
    pub kernel: Option<String>,
    /// `host.os.name`: `NAME`.
    pub name: Option<String>,
    /// `host.os.platform`: `ID`.
    pub platform: Option<String>,
    /// `host.os.version`: `VERSION_ID`.
    pub version: Option<String>,
}

/// The host the records come from, and what sends its alerts. Every field is optional:
/// what is unknown is left out of the alerts, never guessed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// `host.name` (and `host.hostname`): the kernel's host name.
    pub name: Option<String>,
    /// `host.id`: `/etc/machine-id`.
    pub id: Option<String>,
    /// `host.ip`: the non-loopback addresses.
    pub ip: Vec<String>,
    /// `host.architecture`: `uname -m`.
    pub architecture: Option<String>,
    pub os: OsInfo,
    /// Whether `host.hostname` is the host's own answer (true for this host, false for a
    /// name given on the command line or by the records).
    pub hostname_known: bool,
}

impl HostInfo {
    /// A host known by its name only (`scan --host NAME`).
    pub fn named(name: &str) -> HostInfo {
        HostInfo {
            name: Some(name.to_owned()),
            ..HostInfo::default()
        }
    }

    /// What identifies the host in ids: `host.id`, else the name, else empty.
    pub fn key(&self) -> &str {
        self.id.as_deref().or(self.name.as_deref()).unwrap_or("")
    }
}

/// `/etc/os-release` (os-release(5)): `KEY=value` lines, values optionally quoted with `"`
/// or `'`, backslash escapes inside double quotes; comments and blank lines ignored.
pub fn parse_os_release(text: &str) -> OsInfo {
    let mut os = OsInfo::default();
    let mut id_like = None;
    let mut id = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = unquote(v.trim());
        if v.is_empty() {
            continue;
        }
        match k.trim() {
            "NAME" => os.name = Some(v),
            "VERSION_ID" => os.version = Some(v),
            "PRETTY_NAME" => os.full = Some(v),
            "ID" => id = Some(v),
            "ID_LIKE" => id_like = Some(v),
            _ => {}
        }
    }
    os.family = id_like
        .as_deref()
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .or_else(|| id.clone());
    os.platform = id;
    os
}

fn unquote(v: &str) -> String {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        let inner = &v[1..v.len() - 1];
        if b[0] == b'\'' {
            return inner.to_owned();
        }
        let mut out = String::with_capacity(inner.len());
        let mut esc = false;
        for c in inner.chars() {
            if esc {
                out.push(c);
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else {
                out.push(c);
            }
        }
        return out;
    }
    v.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_of_debian_and_rhel() {
        let deb = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                   VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n# c\n\n";
        let os = parse_os_release(deb);
        assert_eq!(os.name.as_deref(), Some("Debian GNU/Linux"));
        assert_eq!(os.version.as_deref(), Some("12"));
        assert_eq!(os.family.as_deref(), Some("debian"));
        assert_eq!(os.platform.as_deref(), Some("debian"));
        assert_eq!(os.full.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        let rhel = "NAME='Rocky Linux'\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n\
                    VERSION_ID=\"9.4\"\nPRETTY_NAME=\"Rocky \\\"Blue\\\" Onyx\"\nbroken line\n";
        let os = parse_os_release(rhel);
        assert_eq!(os.name.as_deref(), Some("Rocky Linux"));
        assert_eq!(os.family.as_deref(), Some("rhel"));
        assert_eq!(os.platform.as_deref(), Some("rocky"));
        assert_eq!(os.full.as_deref(), Some("Rocky \"Blue\" Onyx"));
        assert_eq!(parse_os_release(""), OsInfo::default());
    }

    #[test]
    fn key_prefers_the_machine_id() {
        let mut h = HostInfo::named("web1");
        assert_eq!(h.key(), "web1");
        h.id = Some("abc".into());
        assert_eq!(h.key(), "abc");
        assert_eq!(HostInfo::default().key(), "");
    }
}
