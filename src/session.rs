//! session: audit session id → where the login came from, for the live pipeline.
//!
//! `netlink → record → [session] → event → file_event (+context) → rule → alert → syslog`
//!
//! sshd (with `pam_loginuid`) gives each login an audit session id, and its `USER_LOGIN`,
//! `USER_START` and `CRED_ACQ` records carry `ses=` with `addr=`, `hostname=`, `terminal=`
//! and `acct=` inside `msg='...'`. A file creation's SYSCALL record carries the same
//! `ses=`, which leads back to the source address. The table is bounded: the oldest
//! session is forgotten first.

#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::file_event::Context;
use crate::record::{Record, num};

/// `ses=4294967295`: no session.
const UNSET_SES: u64 = u32::MAX as u64;

/// What a session's login records said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Session {
    pub addr: Option<String>,
    pub hostname: Option<String>,
    pub terminal: Option<String>,
    pub acct: Option<String>,
}

impl Session {
    /// Copies the session into an event's context; an `addr` that parses as an IP address
    /// is also `source.ip`.
    pub fn fill(&self, ctx: &mut Context) {
        if let Some(a) = &self.addr {
            if a.parse::<IpAddr>().is_ok() {
                ctx.source_ip = Some(a.clone());
            }
            ctx.source_address = Some(a.clone());
        }
        ctx.source_hostname = self.hostname.clone();
        ctx.session_terminal = self.terminal.clone();
        ctx.session_account = self.acct.clone();
    }
}

/// A bounded map from session id to [`Session`].
#[derive(Debug)]
pub struct SessionTable {
    map: HashMap<u32, Session>,
    order: VecDeque<u32>,
    cap: usize,
}

/// A field's text. Only `acct` is hex-encoded when unsafe (audit_encode_nv_string in
/// libaudit's audit_log_acct_message); `addr`, `hostname` and `terminal` are written as they
/// are, so a host name like `cafe` must not be taken for hex.
fn text(rec: &Record<'_>, key: &[u8]) -> Option<String> {
    let v = rec.get(key)?;
    let s = if key == b"acct" {
        String::from_utf8_lossy(&v.decode().ok()??).into_owned()
    } else {
        String::from_utf8_lossy(v.unquoted()).into_owned()
    };
    // "?" is how PAM writes "unknown".
    (!s.is_empty() && s != "?" && s != "(none)").then_some(s)
}

impl SessionTable {
    pub fn new(cap: usize) -> SessionTable {
        SessionTable {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, ses: u32) -> Option<&Session> {
        self.map.get(&ses)
    }

    /// Learns from a `USER_LOGIN`, `USER_START` or `CRED_ACQ` record; ignores others.
    /// Returns whether the record was used.
    pub fn observe(&mut self, rec: &Record<'_>) -> bool {
        if !matches!(rec.rtype, num::USER_LOGIN | num::USER_START | num::CRED_ACQ) {
            return false;
        }
        let Some(ses) = rec.get(b"ses").and_then(|v| v.as_u64().ok()) else {
            return false;
        };
        if ses >= UNSET_SES {
            return false;
        }
        let ses = ses as u32;
        let new = Session {
            addr: text(rec, b"addr"),
            hostname: text(rec, b"hostname"),
            terminal: text(rec, b"terminal"),
            acct: text(rec, b"acct"),
        };
        if !self.map.contains_key(&ses) {
            while self.map.len() >= self.cap {
                match self.order.pop_front() {
                    Some(old) => {
                        self.map.remove(&old);
                    }
                    None => break,
                }
            }
            self.order.push_back(ses);
        }
        // Later records of the session fill in what earlier ones lacked, never erase.
        let e = self.map.entry(ses).or_default();
        for (slot, v) in [
            (&mut e.addr, new.addr),
            (&mut e.hostname, new.hostname),
            (&mut e.terminal, new.terminal),
            (&mut e.acct, new.acct),
        ] {
            if v.is_some() {
                *slot = v;
            }
        }
        true
    }
}

/// A `CONFIG_CHANGE` record that removed audit rules (`op=remove_rule`, an auditd reload's
/// `-D`): our rules may be gone, so reconcile now.
pub fn is_rule_removal(rec: &Record<'_>) -> bool {
    rec.rtype == num::CONFIG_CHANGE
        && rec
            .get(b"op")
            .is_some_and(|v| v.unquoted().windows(6).any(|w| w == b"remove"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &[u8] = b"type=USER_LOGIN msg=audit(1.000:9): pid=5 uid=0 auid=1001 ses=4 subj=unconfined msg='op=login id=1001 exe=\"/usr/sbin/sshd\" hostname=192.0.2.7 addr=192.0.2.7 terminal=/dev/pts/1 res=success'";
    const START: &[u8] = b"type=USER_START msg=audit(1.000:10): pid=5 uid=0 auid=1001 ses=4 subj=unconfined msg='op=PAM:session_open grantors=pam_unix acct=\"alice\" exe=\"/usr/sbin/sshd\" hostname=192.0.2.7 addr=192.0.2.7 terminal=ssh res=success'";

    #[test]
    fn user_login_gives_source_ip() {
        let mut t = SessionTable::new(8);
        assert!(t.observe(&Record::from_log_line(LOGIN).unwrap()));
        assert!(t.observe(&Record::from_log_line(START).unwrap()));
        let s = t.get(4).unwrap();
        let mut ctx = Context::default();
        s.fill(&mut ctx);
        assert_eq!(ctx.source_ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(ctx.source_address.as_deref(), Some("192.0.2.7"));
        assert_eq!(ctx.session_account.as_deref(), Some("alice"));
        // acct hex-encoded (it had a space).
        let hex = b"type=CRED_ACQ msg=audit(1.000:13): pid=5 uid=0 ses=9 msg='op=PAM:setcred acct=6A6F686E20646F65 addr=10.1.1.1 res=success'";
        t.observe(&Record::from_log_line(hex).unwrap());
        assert_eq!(t.get(9).unwrap().acct.as_deref(), Some("john doe"));
        // USER_START's terminal ("ssh") is newer than USER_LOGIN's.
        assert_eq!(ctx.session_terminal.as_deref(), Some("ssh"));
    }

    #[test]
    fn host_names_are_not_ips_and_unknowns_are_skipped() {
        let line = b"type=CRED_ACQ msg=audit(1.000:11): pid=5 uid=0 auid=4294967295 ses=7 msg='op=PAM:setcred acct=\"bob\" exe=\"/usr/sbin/sshd\" hostname=cafe addr=? terminal=ssh res=success'";
        let mut t = SessionTable::new(8);
        t.observe(&Record::from_log_line(line).unwrap());
        let mut ctx = Context::default();
        t.get(7).unwrap().fill(&mut ctx);
        assert_eq!(ctx.source_ip, None);
        assert_eq!(ctx.source_address, None);
        assert_eq!(ctx.source_hostname.as_deref(), Some("cafe"));
        let unset = b"type=USER_LOGIN msg=audit(1.000:12): pid=5 uid=0 auid=4294967295 ses=4294967295 msg='op=login acct=\"x\" addr=10.0.0.1 res=failed'";
        assert!(!t.observe(&Record::from_log_line(unset).unwrap()));
    }

    #[test]
    fn table_is_bounded_oldest_first() {
        let mut t = SessionTable::new(3);
        for ses in 1..=5 {
            let line = format!(
                "type=USER_LOGIN msg=audit(1.000:{ses}): pid=5 uid=0 ses={ses} msg='op=login addr=10.0.0.{ses} res=success'"
            );
            t.observe(&Record::from_log_line(line.as_bytes()).unwrap());
        }
        assert_eq!(t.len(), 3);
        assert!(t.get(1).is_none() && t.get(2).is_none());
        assert_eq!(t.get(5).unwrap().addr.as_deref(), Some("10.0.0.5"));
    }

    #[test]
    fn config_change_removals_are_detected() {
        let rm = b"type=CONFIG_CHANGE msg=audit(1.000:20): auid=0 ses=3 subj=unconfined op=remove_rule key=\"wwatchd-d-tmp-b64\" list=4 res=1";
        assert!(is_rule_removal(&Record::from_log_line(rm).unwrap()));
        let add = b"type=CONFIG_CHANGE msg=audit(1.000:21): auid=0 ses=3 op=add_rule key=\"wwatchd-d-tmp-b64\" list=4 res=1";
        assert!(!is_rule_removal(&Record::from_log_line(add).unwrap()));
        let other = b"type=USER_LOGIN msg=audit(1.000:22): pid=1 uid=0 ses=1 msg='op=remove_rule res=success'";
        assert!(!is_rule_removal(&Record::from_log_line(other).unwrap()));
    }
}
