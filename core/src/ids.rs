//! ids: stable identifiers for alerts (`event.id`) and the agent (`agent.id`).
//!
//! `… → alert [event.id] → syslog`
//!
//! An alert's `event.id` is a function of what identifies the detection, never of when or
//! how often it is sent: the host (`host.id`, the machine id, or the host name where the id
//! is unknown), the audit record's own stamp (seconds, milliseconds and serial, which the
//! kernel gives each event once per boot), the rule id and the created path's exact bytes.
//! So the same alert re-sent after a spool replay, a restart or a relay retry carries the
//! same id, and a scan of the log gives the id the daemon sent; two hosts never share one
//! because the host is hashed in. The hash is SHA-256 (an attacker chooses the file name,
//! so the id must not be forgeable to equal another alert's and make a SIEM drop that one
//! as a duplicate), shown as an RFC 9562 version 8 UUID: the first 122 bits of the digest
//! with the version and variant bits set.

#![forbid(unsafe_code)]

/// SHA-256 (FIPS 180-4) of `parts`, each preceded by its length (8 bytes, big-endian), so
/// that no two different lists of parts hash the same bytes.
///
/// The hash is the `sha2` crate's: it uses the CPU's SHA extensions where there are any
/// (detected at run time), about a tenth of the instructions of a portable compression
/// function, which was a twentieth of an alert's cost (README, "Dependencies").
pub fn digest_parts(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// The first 16 bytes of `d` as a UUID (RFC 9562 version 8, variant 10), lowercase.
pub fn uuid_v8(d: &[u8; 32]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(HEX[usize::from(x >> 4)]));
        s.push(char::from(HEX[usize::from(x & 15)]));
    }
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// What an alert's `event.id` is derived from.
pub struct AlertIdentity<'a> {
    /// `host.id` where known, else the host name, else empty.
    pub host: &'a str,
    pub sec: u64,
    pub msec: u16,
    pub serial: u64,
    pub rule_id: &'a str,
    /// The created path's exact bytes (the kernel's name when the path is unresolved).
    pub path: &'a [u8],
}

/// `event.id` of an alert: see the module documentation.
pub fn alert_id(a: &AlertIdentity<'_>) -> String {
    uuid_v8(&digest_parts(&[
        b"wwatchd-alert-1",
        a.host.as_bytes(),
        &a.sec.to_be_bytes(),
        &a.msec.to_be_bytes(),
        &a.serial.to_be_bytes(),
        a.rule_id.as_bytes(),
        a.path,
    ]))
}

/// `event.id` of a budget summary: the host, the rule and the window.
pub fn summary_id(host: &str, rule_id: &str, start_ms: u64, end_ms: u64, phase: &str) -> String {
    // `phase` tells apart the summaries of one window: `closed`, or `started:ACTOR` when
    // an actor's suppression began.
    uuid_v8(&digest_parts(&[
        b"wwatchd-summary-1",
        host.as_bytes(),
        rule_id.as_bytes(),
        &start_ms.to_be_bytes(),
        &end_ms.to_be_bytes(),
        phase.as_bytes(),
    ]))
}

/// `agent.id`: derived from the machine id, so it is stable across restarts and
/// reinstalls, differs between hosts, and does not reveal the machine id itself.
pub fn agent_id(machine_id: &str) -> String {
    uuid_v8(&digest_parts(&[b"wwatchd-agent-1", machine_id.as_bytes()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `digest_parts` hashes each part behind its length as 8 big-endian bytes: checked
    /// against SHA-256 of the framed bytes from FIPS 180-4's own vector ("abc").
    #[test]
    fn digest_parts_frames_each_part_with_its_length() {
        // SHA-256 of 00 00 00 00 00 00 00 03 'a' 'b' 'c', from Python's hashlib.
        let got: String = digest_parts(&[b"abc"])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            got,
            "c3494ca1a2cf8eeb8a11ded316fb55b83c3bbbedb6313cd50415251e5d09e12f"
        );
    }

    /// An id the daemon sent before the hash came from the `sha2` crate (the portable
    /// compression function of earlier versions): ids of re-sent alerts must not change.
    #[test]
    fn alert_ids_are_those_of_earlier_versions() {
        let id = alert_id(&AlertIdentity {
            host: "4c4c4544",
            sec: 1_795_833_032,
            msec: 600,
            serial: 481,
            rule_id: "r",
            path: b"/tmp/x",
        });
        assert_eq!(id, "9c3768f9-4f59-83cd-8852-c9a150934991");
    }

    #[test]
    fn ids_are_uuid_v8_and_depend_on_every_part() {
        let base = AlertIdentity {
            host: "4c4c4544",
            sec: 1_795_833_032,
            msec: 600,
            serial: 481,
            rule_id: "r",
            path: b"/tmp/x",
        };
        let id = alert_id(&base);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "8", "{id}");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_eq!(id, alert_id(&base), "stable");
        let variants = [
            AlertIdentity {
                host: "other",
                ..base
            },
            AlertIdentity { sec: 1, ..base },
            AlertIdentity { msec: 601, ..base },
            AlertIdentity {
                serial: 482,
                ..base
            },
            AlertIdentity {
                rule_id: "s",
                ..base
            },
            AlertIdentity {
                path: b"/tmp/y",
                ..base
            },
        ];
        for v in &variants {
            assert_ne!(alert_id(v), id);
        }
        // Length prefixes: moving bytes between parts changes the id.
        assert_ne!(
            alert_id(&AlertIdentity {
                host: "ab",
                rule_id: "c",
                ..base
            }),
            alert_id(&AlertIdentity {
                host: "a",
                rule_id: "bc",
                ..base
            })
        );
        assert_ne!(
            summary_id("h", "r", 1, 2, "closed"),
            summary_id("h", "r", 1, 3, "closed")
        );
        // The summary of an actor's start and the window's closing one differ.
        assert_ne!(
            summary_id("h", "r", 1, 2, "closed"),
            summary_id("h", "r", 1, 2, "started:nobody (65534)")
        );
        assert_ne!(agent_id("a"), agent_id("b"));
    }
}
