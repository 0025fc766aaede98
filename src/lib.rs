//! wwatchd: detect remote file drops into world-writable directories from kernel audit records.
//!
//! ```text
//!  netlink ──► record ──► event ──► file_event ──► rule ──► alert ──► syslog
//!  (socket)    (k=v view)  (correlate) (creation?)   (EQL)    (ECS JSON) (sink)
//!                                                     │
//!                                                     └──► audit_rules (kernel filters)
//! ```
//!
//! The core (`record`, `event`, `file_event`, `rule`, `alert`) does no I/O; the edges
//! (`netlink`, `audit_rules`, `enrich`, `syslog`, `scan`, `privilege`) talk to the OS.

pub mod admin;
pub mod alert;
pub mod audit_rules;
pub mod cli;
pub mod enrich;
pub mod event;
pub mod file_event;
pub mod netlink;
pub mod pipeline;
pub mod privilege;
pub mod record;
pub mod rule;
pub mod scan;
pub mod session;
pub mod syslog;
