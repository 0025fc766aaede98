//! host: this host's identity for the alerts (`host.*`), read at the OS edge.
//!
//! `[host] ─► HostInfo ─► detector ─► alert (host.*, agent.id, event.id)`
//!
//! Read once at start: the kernel's host name, `/etc/machine-id` (`host.id`, and from it
//! `agent.id`), the non-loopback interface addresses (`host.ip`), `/etc/os-release`
//! (`host.os.*`), the kernel release and the architecture. What cannot be read is left out.

use std::net::IpAddr;

use wwatchd_core::host::{HostInfo, parse_os_release};

/// Where `/etc/machine-id` may be (systemd's, then D-Bus's older copy).
const MACHINE_ID: [&str; 2] = ["/etc/machine-id", "/var/lib/dbus/machine-id"];
const OS_RELEASE: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// A machine id as machine-id(5) defines it: 32 lowercase hex digits, not all zero.
pub fn valid_machine_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        && s.bytes().any(|c| c != b'0')
}

/// This host's facts.
pub fn local() -> HostInfo {
    let name = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty());
    let id = MACHINE_ID
        .iter()
        .find_map(|p| read_trimmed(p))
        .filter(|id| valid_machine_id(id));
    let mut os = OS_RELEASE
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    os.kernel = read_trimmed("/proc/sys/kernel/osrelease");
    let architecture =
        read_trimmed("/proc/sys/kernel/arch").or_else(|| Some(std::env::consts::ARCH.to_owned()));
    HostInfo {
        name,
        id,
        ip: addresses(),
        architecture,
        os,
        hostname_known: true,
    }
}

/// The interfaces' addresses, without loopback and IPv6 link-local ones (which name no
/// host outside its link), each once, in interface order.
fn addresses() -> Vec<String> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for a in addrs {
        let Some(sa) = a.address else { continue };
        let ip = if let Some(v4) = sa.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = sa.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        let link_local = matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
        if ip.is_loopback() || ip.is_unspecified() || link_local {
            continue;
        }
        let s = ip.to_string();
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ids() {
        assert!(valid_machine_id("4c4c4544004d3510805ac4c04f4e3633"));
        assert!(!valid_machine_id("4C4C4544004D3510805AC4C04F4E3633"));
        assert!(!valid_machine_id("00000000000000000000000000000000"));
        assert!(!valid_machine_id("uninitialized"));
    }

    #[test]
    fn local_host_has_no_loopback_address() {
        let h = local();
        for ip in &h.ip {
            let a: IpAddr = ip.parse().expect("an IP address");
            assert!(!a.is_loopback(), "{ip}");
        }
        assert!(h.architecture.is_some());
    }
}
