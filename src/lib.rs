//! wwatchd: detect remote file drops into world-writable directories from kernel audit records.
//!
//! ```text
//!  netlink ──► record ──► event ──► file_event ──► rule ──► policy ──► alert ──► syslog
//!  (socket)    (k=v)     (correlate) (creation?)  (EQL)    (exceptions, (ECS JSON)
//!                                                   │        budget)
//!                                                   └──► audit_rules (kernel filters)
//!
//!  config: wwatchd.toml, rules/*.toml ──► rules, policy, sink and daemon settings
//! ```
//!
//! The core (`record`, `event`, `file_event`, `rule`, `policy`, `alert`) does no I/O; the
//! edges (`netlink`, `audit_rules`, `enrich`, `syslog`, `scan`, `config`'s loader,
//! `privilege`) talk to the OS.

pub mod admin;
pub mod alert;
pub mod audit_rules;
pub mod cli;
pub mod config;
pub mod enrich;
pub mod event;
pub mod file_event;
pub mod netlink;
pub mod pipeline;
pub mod policy;
pub mod privilege;
pub mod record;
pub mod rule;
pub mod scan;
pub mod session;
pub mod syslog;
pub mod world_writable;
