//! Edge: is stderr the systemd journal? Under systemd a diagnostic written to stderr is
//! already in the journal, with the service's identity; sending it to `/dev/log` as well
//! (journald's socket on a systemd host) logged every diagnostic twice (seen in Debian 12
//! and 13 VMs, issue 13).
//!
//! systemd sets `JOURNAL_STREAM=DEVICE:INODE` for a service whose stdout or stderr it
//! connected to the journal (systemd.exec(5), "Environment variables in spawned
//! processes"). The variable is inherited by anything the service starts, whose stderr may
//! be elsewhere, so it counts only when it names the file that fd 2 is now.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

/// True when `JOURNAL_STREAM` is set and names the file open as stderr.
pub fn stderr_is_journal() -> bool {
    std::env::var_os("JOURNAL_STREAM")
        .and_then(|s| s.to_str().map(names_stderr))
        .unwrap_or(false)
}

/// Whether `stream` (`DEVICE:INODE`) is the file open as stderr now.
fn names_stderr(stream: &str) -> bool {
    match (parse_journal_stream(stream), stderr_id()) {
        (Some(named), Some(now)) => named == now,
        _ => false,
    }
}

fn stderr_id() -> Option<(u64, u64)> {
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let m = std::fs::File::from(fd).metadata().ok()?;
    Some((m.dev(), m.ino()))
}

/// `DEVICE:INODE`, both decimal, as systemd writes them.
pub fn parse_journal_stream(s: &str) -> Option<(u64, u64)> {
    let (dev, ino) = s.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_journal_stream("9:123456"), Some((9, 123456)));
        assert_eq!(parse_journal_stream("9"), None);
        assert_eq!(parse_journal_stream("9:"), None);
        assert_eq!(parse_journal_stream("x:1"), None);
        assert_eq!(parse_journal_stream("1:2:3"), None);
    }

    #[test]
    fn only_the_file_open_as_stderr_counts() {
        let (dev, ino) = stderr_id().expect("the test runner has a stderr");
        assert!(names_stderr(&format!("{dev}:{ino}")));
        assert!(!names_stderr(&format!("{dev}:{}", ino + 1)));
        assert!(!names_stderr("garbage"));
    }
}
