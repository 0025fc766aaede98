//! session: audit session id → where the login came from, for the live pipeline.
//!
//! `netlink → record → [session] → event → file_event (+context) → rule → alert → syslog`
//!
//! sshd (with `pam_loginuid`) gives each login an audit session id, and its `USER_LOGIN`,
//! `USER_START` and `CRED_ACQ` records carry `ses=` with `addr=`, `hostname=`, `terminal=`
//! and `acct=` inside `msg='...'`. A file creation's SYSCALL record carries the same
//! `ses=`, which leads back to the source address. The table is bounded: the oldest
//! session is forgotten first.
//!
//! Services without `pam_loginuid` (vsftpd, for one) leave `ses` unset, but their PAM
//! records still carry `addr=` and the pid of the process that authenticated; the process
//! that then serves the client (and creates the files) is that process or its child, running
//! the same executable. So records with no session are also kept by pid, with their `exe`,
//! and an event with no known session is matched on pid or ppid *and* the same executable
//! (a reused pid running something else never matches). `CRED_DISP` / `USER_END` from that
//! pid forget the entry.

#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::file_event::Context;
use crate::record::{Record, Value, num};

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

/// A bounded map from session id to [`Session`], and from pid to the [`Session`] of a
/// service that authenticated a client without giving it an audit session.
#[derive(Debug)]
pub struct SessionTable {
    map: HashMap<u32, Session>,
    order: VecDeque<u32>,
    by_pid: HashMap<u32, (Vec<u8>, Session)>,
    pid_order: VecDeque<u32>,
    cap: usize,
}

/// A field's text. Only `acct` is hex-encoded when unsafe (audit_encode_nv_string in
/// libaudit's audit_log_acct_message); `addr`, `hostname` and `terminal` are written as they
/// are, so a host name like `cafe` must not be taken for hex.
/// The fields of a login record the table reads, found in one pass ([`Record::get_all`]).
struct LoginFields<'a> {
    ses: Option<Value<'a>>,
    pid: Option<Value<'a>>,
    res: Option<Value<'a>>,
    exe: Option<Value<'a>>,
    session: [Option<Value<'a>>; 4],
}

impl<'a> LoginFields<'a> {
    fn of(rec: &Record<'a>) -> LoginFields<'a> {
        let [ses, pid, res, exe, addr, hostname, terminal, acct] = rec.get_all([
            b"ses",
            b"pid",
            b"res",
            b"exe",
            b"addr",
            b"hostname",
            b"terminal",
            b"acct",
        ]);
        LoginFields {
            ses,
            pid,
            res,
            exe,
            session: [addr, hostname, terminal, acct],
        }
    }

    /// What the record says of its session.
    fn session(&self) -> Session {
        let [addr, hostname, terminal, acct] = self.session;
        Session {
            addr: text(addr, false),
            hostname: text(hostname, false),
            terminal: text(terminal, false),
            acct: text(acct, true),
        }
    }
}

/// A session field's bytes, if it says something; `acct` may be hex-encoded.
fn known(v: Option<Value<'_>>, decode: bool) -> Option<Cow<'_, [u8]>> {
    let v = v?;
    let b = if decode {
        v.decode().ok()??
    } else {
        Cow::Borrowed(v.unquoted())
    };
    // "?" is how PAM writes "unknown".
    (!b.is_empty() && *b != *b"?" && *b != *b"(none)").then_some(b)
}

/// A session field's text.
fn text(v: Option<Value<'_>>, decode: bool) -> Option<String> {
    known(v, decode).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Sets `slot` to the field's text if it says something and differs: later records fill in
/// what earlier ones lacked, never erase.
fn update(slot: &mut Option<String>, v: Option<Value<'_>>, decode: bool) {
    let Some(b) = known(v, decode) else {
        return;
    };
    let same = slot
        .as_deref()
        .is_some_and(|s| match std::str::from_utf8(&b) {
            Ok(t) => s == t,
            // Invalid UTF-8 is kept lossily: compare what it would become.
            Err(_) => *s == *String::from_utf8_lossy(&b),
        });
    if !same {
        *slot = Some(String::from_utf8_lossy(&b).into_owned());
    }
}

impl SessionTable {
    pub fn new(cap: usize) -> SessionTable {
        SessionTable {
            map: HashMap::new(),
            order: VecDeque::new(),
            by_pid: HashMap::new(),
            pid_order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Sessions and session-less service logins remembered.
    pub fn len(&self) -> usize {
        self.map.len() + self.by_pid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && self.by_pid.is_empty()
    }

    /// The session of an event: by its audit session id, or else (no session) by the
    /// service process that authenticated it: `pid` or `ppid` with the same `exe`.
    pub fn lookup(
        &self,
        ses: Option<u32>,
        pid: Option<u32>,
        ppid: Option<u32>,
        exe: Option<&[u8]>,
    ) -> Option<&Session> {
        if let Some(s) = ses.filter(|&s| u64::from(s) < UNSET_SES) {
            return self.map.get(&s);
        }
        let exe = exe?;
        [pid, ppid]
            .into_iter()
            .flatten()
            .filter_map(|p| self.by_pid.get(&p))
            .find(|(e, _)| e.as_slice() == exe)
            .map(|(_, s)| s)
    }

    fn observe_no_session(&mut self, rec: &Record<'_>, f: &LoginFields<'_>) -> bool {
        let Some(pid) = f
            .pid
            .and_then(|v| v.as_u64().ok())
            .and_then(|p| u32::try_from(p).ok())
        else {
            return false;
        };
        if matches!(rec.rtype, num::CRED_DISP | num::USER_END) {
            return self.by_pid.remove(&pid).is_some();
        }
        let success = f.res.is_some_and(|v| v.unquoted() == b"success");
        let exe = f.exe.and_then(|v| v.decode().ok().flatten());
        let (Some(exe), true) = (exe, success) else {
            return false;
        };
        let new = f.session();
        if new.addr.is_none() && new.hostname.is_none() {
            return false;
        }
        if !self.by_pid.contains_key(&pid) {
            while self.by_pid.len() >= self.cap {
                match self.pid_order.pop_front() {
                    Some(old) => {
                        self.by_pid.remove(&old);
                    }
                    None => break,
                }
            }
            self.pid_order.push_back(pid);
        }
        self.by_pid.insert(pid, (exe.into_owned(), new));
        // Forgotten entries leave stale pids in the order queue; keep it bounded too.
        if self.pid_order.len() > 2 * self.cap {
            let live = &self.by_pid;
            self.pid_order.retain(|p| live.contains_key(p));
        }
        true
    }

    pub fn get(&self, ses: u32) -> Option<&Session> {
        self.map.get(&ses)
    }

    /// Learns from a `USER_LOGIN`, `USER_START` or `CRED_ACQ` record; ignores others.
    /// Returns whether the record was used.
    pub fn observe(&mut self, rec: &Record<'_>) -> bool {
        if !matches!(
            rec.rtype,
            num::USER_LOGIN | num::USER_START | num::CRED_ACQ | num::CRED_DISP | num::USER_END
        ) {
            return false;
        }
        let ending = matches!(rec.rtype, num::CRED_DISP | num::USER_END);
        if ending
            && rec
                .get(b"ses")
                .and_then(|v| v.as_u64().ok())
                .is_some_and(|s| s < UNSET_SES)
        {
            // The session's processes may still be finishing; keep it until it ages out.
            return false;
        }
        let f = LoginFields::of(rec);
        let Some(ses) = f.ses.and_then(|v| v.as_u64().ok()) else {
            return false;
        };
        if ses >= UNSET_SES {
            return self.observe_no_session(rec, &f);
        }
        if ending {
            return false;
        }
        let ses = ses as u32;
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
        // A session's records repeat its fields: a slot is rewritten (and allocated) only
        // when the text differs.
        let e = self.map.entry(ses).or_default();
        let [addr, hostname, terminal, acct] = f.session;
        for (slot, v, decode) in [
            (&mut e.addr, addr, false),
            (&mut e.hostname, hostname, false),
            (&mut e.terminal, terminal, false),
            (&mut e.acct, acct, true),
        ] {
            update(slot, v, decode);
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

/// A `CONFIG_CHANGE` record that set the kernel's audit `enabled` flag (`op=set
/// audit_enabled=N old=M ... res=1`, from `auditctl -e N`): the new value. The kernel writes
/// this record only while audit is on, so it tells of a switch *off* (or to locked, 2) at once;
/// a switch back on from 0 leaves no record and is seen by polling the status.
pub fn audit_enabled_set(rec: &Record<'_>) -> Option<u64> {
    if rec.rtype != num::CONFIG_CHANGE
        || rec.get(b"op").is_none_or(|v| v.unquoted() != b"set")
        || rec.get(b"res").is_some_and(|v| v.unquoted() != b"1")
    {
        return None;
    }
    rec.get(b"audit_enabled")?.as_u64().ok()
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
        let unset = b"type=USER_LOGIN msg=audit(1.000:12): pid=5 uid=0 auid=4294967295 ses=4294967295 msg='op=login acct=\"x\" exe=\"/usr/sbin/sshd\" addr=10.0.0.1 res=failed'";
        assert!(!t.observe(&Record::from_log_line(unset).unwrap()));
    }

    /// vsftpd: no audit session; the PAM records' pid is the parent of the process that
    /// writes the files (tests/fixtures/vsftpd.log).
    #[test]
    fn service_logins_without_session_match_by_pid_and_exe() {
        let cred = b"type=CRED_ACQ msg=audit(1795833038.852:552): pid=26515 uid=0 auid=4294967295 ses=4294967295 msg='op=PAM:setcred grantors=pam_listfile,pam_permit,pam_cap,pam_shells acct=\"wwalice\" exe=\"/usr/sbin/vsftpd\" hostname=127.0.0.1 addr=127.0.0.1 terminal=ftp res=success'";
        let mut t = SessionTable::new(8);
        assert!(t.observe(&Record::from_log_line(cred).unwrap()));
        let vsftpd = Some(&b"/usr/sbin/vsftpd"[..]);
        let unset = Some(u32::MAX);
        let s = t.lookup(unset, Some(26517), Some(26515), vsftpd).unwrap();
        assert_eq!(s.addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(s.acct.as_deref(), Some("wwalice"));
        // The authenticating process itself.
        assert!(t.lookup(None, Some(26515), Some(1), vsftpd).is_some());
        // Same pid, another program: a reused pid is not the service.
        assert!(
            t.lookup(unset, Some(26517), Some(26515), Some(b"/usr/bin/touch"))
                .is_none()
        );
        // An event with a session of its own never borrows a service's address.
        assert!(
            t.lookup(Some(3), Some(26517), Some(26515), vsftpd)
                .is_none()
        );
        // Failed logins are not kept; the end of the service's session forgets it.
        let failed = b"type=CRED_ACQ msg=audit(1.000:1): pid=77 uid=0 auid=4294967295 ses=4294967295 msg='op=PAM:setcred acct=\"x\" exe=\"/usr/sbin/vsftpd\" addr=10.0.0.9 res=failed'";
        assert!(!t.observe(&Record::from_log_line(failed).unwrap()));
        assert!(t.lookup(unset, Some(77), None, vsftpd).is_none());
        let disp = b"type=CRED_DISP msg=audit(1795833040.1:600): pid=26515 uid=0 auid=4294967295 ses=4294967295 msg='op=PAM:setcred acct=\"wwalice\" exe=\"/usr/sbin/vsftpd\" hostname=127.0.0.1 addr=127.0.0.1 terminal=ftp res=success'";
        assert!(t.observe(&Record::from_log_line(disp).unwrap()));
        assert!(t.lookup(unset, Some(26517), Some(26515), vsftpd).is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn service_logins_are_bounded() {
        let mut t = SessionTable::new(3);
        for pid in 1..=50 {
            let line = format!(
                "type=CRED_ACQ msg=audit(1.000:{pid}): pid={pid} uid=0 ses=4294967295 msg='op=PAM:setcred exe=\"/usr/sbin/vsftpd\" addr=10.0.0.{pid} res=success'"
            );
            assert!(t.observe(&Record::from_log_line(line.as_bytes()).unwrap()));
        }
        assert_eq!(t.len(), 3);
        assert!(t.pid_order.len() <= 6);
        let exe = Some(&b"/usr/sbin/vsftpd"[..]);
        assert!(t.lookup(None, Some(47), None, exe).is_none());
        assert_eq!(
            t.lookup(None, Some(50), None, exe).unwrap().addr.as_deref(),
            Some("10.0.0.50")
        );
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
    fn audit_enabled_changes_are_detected() {
        let off = b"type=CONFIG_CHANGE msg=audit(1.000:30): op=set audit_enabled=0 old=1 auid=0 ses=3 subj=unconfined res=1";
        assert_eq!(
            audit_enabled_set(&Record::from_log_line(off).unwrap()),
            Some(0)
        );
        let locked = b"type=CONFIG_CHANGE msg=audit(1.000:31): op=set audit_enabled=2 old=1 auid=0 ses=3 res=1";
        assert_eq!(
            audit_enabled_set(&Record::from_log_line(locked).unwrap()),
            Some(2)
        );
        // Refused (res=0), another setting, another record type: nothing.
        let refused = b"type=CONFIG_CHANGE msg=audit(1.000:32): op=set audit_enabled=0 old=2 auid=0 ses=3 res=0";
        assert_eq!(
            audit_enabled_set(&Record::from_log_line(refused).unwrap()),
            None
        );
        let failure = b"type=CONFIG_CHANGE msg=audit(1.000:33): op=set audit_failure=1 old=1 auid=4294967295 ses=4294967295 res=1";
        assert_eq!(
            audit_enabled_set(&Record::from_log_line(failure).unwrap()),
            None
        );
        let user = b"type=USER_MAC_CONFIG_CHANGE msg=audit(1.000:34): pid=1 uid=0 msg='op=set audit_enabled=0 res=1'";
        assert_eq!(
            audit_enabled_set(&Record::from_log_line(user).unwrap()),
            None
        );
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
