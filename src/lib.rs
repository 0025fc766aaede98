//! wwatchd: detect remote file drops into world-writable directories from kernel audit records.
//!
//! ```text
//!  netlink ──► record ──► event ──► file_event ──► rule ──► alert ──► syslog
//!  (socket)    (k=v view)  (correlate) (creation?)   (EQL)    (ECS JSON) (sink)
//! ```
//!
//! The core (`record`, `event`, `file_event`, `rule`, `alert`) does no I/O; the edges
//! (`netlink`, `syslog`, `scan`) talk to the OS.

pub mod audit_rules;
pub mod netlink;
pub mod record;
