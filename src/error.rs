//! error: what stops a command, typed to the edge, and the sysexits code each one exits with.
//!
//! Every stage keeps its own error type (`ConfigErrors`, `DeriveError`, `NetlinkError`,
//! `PrivilegeError`, `SinkError`, ...); [`Error`] only says which stage failed and carries
//! its error unchanged, so `main` prints the stage's own message (file, line, field, what
//! to do) and picks the exit code by kind.

use std::fmt;

use wwatchd_core::config::ConfigErrors;
use wwatchd_core::kernel_rule::DeriveError;

use crate::kernel_rules::RuleError;
use crate::netlink::NetlinkError;
use crate::privilege::PrivilegeError;
use crate::syslog::SinkError;

/// sysexits(3) codes, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// EX_USAGE: the command was used incorrectly.
    Usage = 64,
    /// EX_NOINPUT: an input file did not exist or was not readable.
    NoInput = 66,
    /// EX_SOFTWARE: an internal software error.
    Software = 70,
    /// EX_IOERR: an error while doing I/O on the output.
    IoErr = 74,
    /// EX_NOPERM: insufficient permission (capabilities).
    NoPerm = 77,
    /// EX_CONFIG: a configuration or rule file is wrong.
    Config = 78,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// Why a command did not run or stopped.
#[derive(Debug)]
pub enum Error {
    /// The configuration or a rule file.
    Config(ConfigErrors),
    /// A detection rule cannot be pushed down into kernel rules.
    Derive(DeriveError),
    /// The syslog sink or its spool cannot be set up.
    Sink(SinkError),
    /// Switching user or dropping capabilities.
    Privilege(PrivilegeError),
    /// A request to the kernel's audit subsystem.
    Netlink(NetlinkError),
    /// Installing or removing kernel rules.
    KernelRules(RuleError),
    /// A thread could not start, or stopped on its own.
    Thread { name: &'static str, why: String },
    /// Kernel audit is locked (enabled 2): rules cannot change until reboot.
    AuditLocked,
    /// A command-line value (`--output`, `--timeout`, ...).
    Usage(String),
    /// Reading an input or writing the output of a command.
    Io {
        what: String,
        err: std::io::Error,
        output: bool,
    },
}

impl Error {
    /// The sysexits code for this error.
    pub fn exit(&self) -> Exit {
        use nix::errno::Errno;
        match self {
            Error::Config(_) | Error::Derive(_) | Error::Sink(_) => Exit::Config,
            Error::Privilege(PrivilegeError::NoSuchUser(_)) => Exit::Config,
            Error::Privilege(PrivilegeError::NotRoot { .. } | PrivilegeError::Missing(_)) => {
                Exit::NoPerm
            }
            Error::Privilege(PrivilegeError::Os { .. }) => Exit::Software,
            Error::Netlink(e) | Error::KernelRules(RuleError::Netlink(e)) => match e.errno() {
                Some(Errno::EPERM | Errno::EACCES) => Exit::NoPerm,
                _ => Exit::Software,
            },
            Error::KernelRules(RuleError::Invalid(_)) => Exit::Config,
            Error::Thread { .. } | Error::AuditLocked => Exit::Software,
            Error::Usage(_) => Exit::Usage,
            Error::Io { output: true, .. } => Exit::IoErr,
            Error::Io { output: false, .. } => Exit::NoInput,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => e.fmt(f),
            Error::Derive(e) => e.fmt(f),
            Error::Sink(e) => e.fmt(f),
            Error::Privilege(e) => e.fmt(f),
            Error::Netlink(e) => e.fmt(f),
            Error::KernelRules(e) => e.fmt(f),
            Error::Thread { name, why } => write!(f, "thread {name}: {why}"),
            Error::AuditLocked => {
                f.write_str("kernel audit is locked (enabled 2): rules cannot change until reboot")
            }
            Error::Usage(s) => f.write_str(s),
            Error::Io { what, err, .. } => write!(f, "{what}: {err}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigErrors> for Error {
    fn from(e: ConfigErrors) -> Self {
        Error::Config(e)
    }
}
impl From<DeriveError> for Error {
    fn from(e: DeriveError) -> Self {
        Error::Derive(e)
    }
}
impl From<SinkError> for Error {
    fn from(e: SinkError) -> Self {
        Error::Sink(e)
    }
}
impl From<PrivilegeError> for Error {
    fn from(e: PrivilegeError) -> Self {
        Error::Privilege(e)
    }
}
impl From<NetlinkError> for Error {
    fn from(e: NetlinkError) -> Self {
        Error::Netlink(e)
    }
}
impl From<RuleError> for Error {
    fn from(e: RuleError) -> Self {
        Error::KernelRules(e)
    }
}
