//! syslog (formats): the syslog vocabulary and one alert as one syslog message, as bytes.
//!
//! `… → alert → [syslog]`: severities, facilities, the RFC 3164 / RFC 5424 formats, where
//! messages go ([`Transport`], as configured) and [`format`](mod@format), which renders one message with
//! its size cap. The daemon's sink (`wwatchd::syslog`) does the delivery.

pub mod format;
pub mod journal;

pub use format::{MessageKind, SafeFormatter, fit_json, render_json};

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A syslog setting that does not parse. `Display` says which forms are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingError {
    BadTransport { value: String, reason: String },
    BadFacility { value: String },
    BadSeverity { value: String },
    BadFormat { value: String },
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingError::BadTransport { value, reason } => {
                write!(
                    f,
                    "syslog output {value:?}: {reason}; use one of: {TRANSPORT_FORMS}"
                )
            }
            SettingError::BadFacility { value } => {
                write!(
                    f,
                    "syslog facility {value:?} is not allowed; use one of: {FACILITY_NAMES}"
                )
            }
            SettingError::BadSeverity { value } => write!(
                f,
                "syslog severity {value:?} is unknown; use one of: {}",
                SEVERITY_NAMES.join(", ")
            ),
            SettingError::BadFormat { value } => {
                write!(
                    f,
                    "syslog format {value:?} is unknown; use rfc3164, rfc5424 or journal"
                )
            }
        }
    }
}

impl std::error::Error for SettingError {}

/// Syslog severity (RFC 5424 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Informational,
    Debug,
}

pub const SEVERITY_NAMES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

impl Severity {
    /// Numeric code 0..=7.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Map an alert rule's severity (`low`, `medium`, `high`, `critical`; case-insensitive) to a
    /// syslog severity: low→notice, medium→warning, high→err, critical→crit. Anything else maps
    /// to `default`.
    pub fn from_rule_severity(rule: &str, default: Severity) -> Severity {
        match rule.trim().to_ascii_lowercase().as_str() {
            "low" => Severity::Notice,
            "medium" => Severity::Warning,
            "high" => Severity::Error,
            "critical" => Severity::Critical,
            _ => default,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SEVERITY_NAMES[usize::from(self.code())])
    }
}

impl FromStr for Severity {
    type Err = SettingError;
    fn from_str(s: &str) -> Result<Severity, SettingError> {
        use Severity::*;
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "emerg" | "emergency" | "panic" => Emergency,
            "alert" => Alert,
            "crit" | "critical" => Critical,
            "err" | "error" => Error,
            "warning" | "warn" => Warning,
            "notice" => Notice,
            "info" | "informational" => Informational,
            "debug" => Debug,
            _ => {
                return Err(SettingError::BadSeverity {
                    value: s.to_owned(),
                });
            }
        })
    }
}

/// Syslog facility. Only the ones that make sense for a security daemon are accepted by
/// `FromStr`; all are representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Facility {
    Kern,
    User,
    Daemon,
    /// Default. Also accepts the historical name `security` (syslog(3): "deprecated synonym").
    Auth,
    Authpriv,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

const FACILITY_NAMES: &str = "auth, authpriv, daemon, user, security (= auth), local0, local1, local2, local3, local4, local5, local6, local7";

impl Facility {
    /// Numeric code as in `<syslog.h>` divided by 8.
    pub fn code(self) -> u8 {
        use Facility::*;
        match self {
            Kern => 0,
            User => 1,
            Daemon => 3,
            Auth => 4,
            Authpriv => 10,
            Local0 => 16,
            Local1 => 17,
            Local2 => 18,
            Local3 => 19,
            Local4 => 20,
            Local5 => 21,
            Local6 => 22,
            Local7 => 23,
        }
    }

    fn name(self) -> &'static str {
        use Facility::*;
        match self {
            Kern => "kern",
            User => "user",
            Daemon => "daemon",
            Auth => "auth",
            Authpriv => "authpriv",
            Local0 => "local0",
            Local1 => "local1",
            Local2 => "local2",
            Local3 => "local3",
            Local4 => "local4",
            Local5 => "local5",
            Local6 => "local6",
            Local7 => "local7",
        }
    }
}

impl fmt::Display for Facility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Facility {
    type Err = SettingError;
    fn from_str(s: &str) -> Result<Facility, SettingError> {
        use Facility::*;
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "auth" | "security" => Auth,
            "authpriv" => Authpriv,
            "daemon" => Daemon,
            "user" => User,
            "local0" => Local0,
            "local1" => Local1,
            "local2" => Local2,
            "local3" => Local3,
            "local4" => Local4,
            "local5" => Local5,
            "local6" => Local6,
            "local7" => Local7,
            // `kern` is reserved for the kernel; syslog daemons rewrite or reject it from userspace.
            _ => {
                return Err(SettingError::BadFacility {
                    value: s.to_owned(),
                });
            }
        })
    }
}

/// Message format on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// BSD syslog, what glibc's syslog(3) sends to /dev/log. Default for `local`.
    #[default]
    Rfc3164,
    /// Structured header with year, microseconds and MSGID. Default for UDP/TCP.
    Rfc5424,
    /// systemd-journald's native protocol ([`journal`]): no syslog header; the JSON in
    /// `MESSAGE` with indexed `WWATCHD_*` fields. Local sockets only (`journal`).
    Journal,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Rfc3164 => "rfc3164",
            Format::Rfc5424 => "rfc5424",
            Format::Journal => "journal",
        })
    }
}

impl FromStr for Format {
    type Err = SettingError;
    fn from_str(s: &str) -> Result<Format, SettingError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rfc3164" | "3164" | "bsd" => Ok(Format::Rfc3164),
            "rfc5424" | "5424" => Ok(Format::Rfc5424),
            "journal" => Ok(Format::Journal),
            _ => Err(SettingError::BadFormat {
                value: s.to_owned(),
            }),
        }
    }
}

/// Where messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Local syslog socket, datagram (falls back to stream if the socket is SOCK_STREAM).
    Local { path: PathBuf, format: Format },
    /// `host:port`, resolved on every (re)connect.
    Udp { addr: String, format: Format },
    /// `host:port`, RFC 6587 octet-counted frames.
    Tcp { addr: String, format: Format },
    /// One JSON line per alert on stdout, no syslog header; diagnostics on stderr.
    Stdout,
}

impl Default for Transport {
    fn default() -> Transport {
        Transport::Local {
            path: PathBuf::from("/dev/log"),
            format: Format::Rfc3164,
        }
    }
}

const TRANSPORT_FORMS: &str = "local, journal, unix:/path, udp://host:port, tcp://host:port, \
                               stdout (optionally followed by ?format=rfc3164 or \
                               ?format=rfc5424; unix:/path also ?format=journal)";

impl FromStr for Transport {
    type Err = SettingError;
    /// `local`, `unix:/path`, `udp://host:port`, `tcp://host:port`, `stdout`; any but `stdout`
    /// may end in `?format=rfc3164|rfc5424`.
    fn from_str(s: &str) -> Result<Transport, SettingError> {
        let bad = |reason: &str| SettingError::BadTransport {
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (base, format) = match s.trim().split_once('?') {
            Some((b, q)) => {
                let f = q
                    .strip_prefix("format=")
                    .ok_or_else(|| bad("the only option is ?format=…"))?;
                (b, Some(f.parse::<Format>()?))
            }
            None => (s.trim(), None),
        };
        let check_addr = |a: &str| -> Result<String, SettingError> {
            let port = a.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()));
            match port {
                Some((h, Ok(p))) if !h.is_empty() && p != 0 => Ok(a.to_owned()),
                _ => Err(bad("expected host:port with a port number 1-65535")),
            }
        };
        if base == "journal" {
            return match format {
                None | Some(Format::Journal) => Ok(Transport::Local {
                    path: PathBuf::from(journal::SOCKET),
                    format: Format::Journal,
                }),
                Some(_) => Err(bad("journal takes no other format")),
            };
        }
        if format == Some(Format::Journal) && !base.starts_with("unix:") {
            return Err(bad(
                "?format=journal is for unix:/path (journald's socket) only",
            ));
        }
        if base == "local" {
            return Ok(Transport::Local {
                path: PathBuf::from("/dev/log"),
                format: format.unwrap_or_default(),
            });
        }
        if base == "stdout" {
            return match format {
                None => Ok(Transport::Stdout),
                Some(_) => Err(bad("stdout writes plain JSON lines and takes no format")),
            };
        }
        if let Some(p) = base.strip_prefix("unix:") {
            if !p.starts_with('/') {
                return Err(bad("a unix socket path must be absolute"));
            }
            return Ok(Transport::Local {
                path: PathBuf::from(p),
                format: format.unwrap_or_default(),
            });
        }
        if let Some(a) = base.strip_prefix("udp://") {
            return Ok(Transport::Udp {
                addr: check_addr(a)?,
                format: format.unwrap_or(Format::Rfc5424),
            });
        }
        if let Some(a) = base.strip_prefix("tcp://") {
            return Ok(Transport::Tcp {
                addr: check_addr(a)?,
                format: format.unwrap_or(Format::Rfc5424),
            });
        }
        Err(bad("unknown transport"))
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Local { path, format } => {
                write!(f, "unix:{}?format={format}", path.display())
            }
            Transport::Udp { addr, format } => write!(f, "udp://{addr}?format={format}"),
            Transport::Tcp { addr, format } => write!(f, "tcp://{addr}?format={format}"),
            Transport::Stdout => f.write_str("stdout"),
        }
    }
}

/// Smallest accepted `max_message_bytes`: room for a header and the replacement stub.
pub const MIN_MESSAGE_BYTES: usize = 480;

/// Largest UDP payload over IPv4 (65535 - 8 UDP - 20 IP header bytes).
pub const MAX_UDP_BYTES: usize = 65_507;
