//! wwatchd-core: the detection, as pure functions over bytes. No file, socket, process or
//! clock access happens here; the daemon crate (`wwatchd`) owns the OS edges and feeds this
//! crate records and the wall clock.
//!
//! ```text
//!  datagram ─► kernel_rule::wire ─► record ─► event ─► file_event ─► rule ─► policy ─► alert
//!  (bytes)     (split, status,      (k=v      (corre-   (creation?    (EQL)   (exceptions,  (ECS
//!              rule codec)          view)      late)     + session)           budget)       JSON)
//!                                                                                │
//!  detector: record ─► … ─► alert, one engine for `scan` and `run` ◄────────────────┘
//!  kernel_rule: detection rules ─► kernel audit rules (derive) ─► wire
//!  config: wwatchd.toml text ─► validated Config      syslog: alert ─► one syslog message
//!  spool_format: the disk spool's records and cursor, as bytes
//! ```
//!
//! "Rule" alone means a detection rule (`rule`); a kernel audit rule is a `KernelRule`.

#![forbid(unsafe_code)]
// No I/O: core/clippy.toml lists std's file, socket, process, environment, clock and thread
// APIs; using one is an error here.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod syscalls;

pub mod alert;
pub mod counters;
pub mod detector;
pub mod event;
pub mod file_event;
pub mod host;
pub mod ids;
pub mod new_terms;
pub mod policy;
pub mod record;
pub mod rule;
pub mod session;

pub mod config;
pub mod kernel_rule;
pub mod spool_format;
pub mod syslog;
