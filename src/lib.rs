//! wwatchd, the daemon crate: the commands and the OS edges around the pure core
//! (`wwatchd_core`), which holds the whole detection.
//!
//! ```text
//!  netlink ──► [core: record ─► event ─► file_event ─► rule ─► policy ─► alert] ──► syslog
//!  (sockets)    detector: one engine for both `run` (daemon/) and `scan` (scan.rs)    (sink,
//!                                                                                     spool)
//!  kernel_rules: the core's derived kernel rules installed, reconciled and removed
//!  config: files read through trust ─► the core's parser      enrich: names, /proc
//!  privilege: capabilities and --user      admin: check, rules, status
//!  new_terms_store: the new_terms rules' terms in the state directory (crash-safe)
//! ```
//!
//! The core's modules are re-exported under their own names, so `wwatchd::record` is
//! `wwatchd_core::record`.

pub use wwatchd_core::{
    alert, counters, detector, event, file_event, kernel_rule, new_terms, policy, record, rule,
    session, spool_format, syscalls,
};

pub mod cli;
pub mod commands;
pub mod error;

pub mod daemon;
pub mod netlink;
pub mod scan;
pub mod syslog;

pub mod admin;
pub mod config;
pub mod enrich;
pub mod host;
pub mod journal;
pub mod kernel_rules;
pub mod new_terms_store;
pub mod privilege;
pub mod trust;
pub mod world_writable;
