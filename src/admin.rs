//! admin: the `check`, `rules print|install|remove|status` and `status` commands, at the OS
//! edge.
//!
//! They share the daemon's configuration loader (`config::load`), derivation
//! (`kernel_rules::derive`) and key prefix, so what `rules print` shows is what `run` loads
//! (plus the hidden /home directories, found at run time).

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::Path;

use crate::config::{self, Source};
use crate::error::Error;
use crate::kernel_rules::{self, DAEMON_KEY_PREFIX, KernelRule, PrintFs, RealFs, WatchFs};
use crate::netlink::Control;

fn derived(source: &Source, fs: &dyn WatchFs) -> Result<Vec<KernelRule>, Error> {
    let loaded = config::load(source)?;
    for w in &loaded.warnings {
        eprintln!("wwatchd: warning: {w}");
    }
    Ok(kernel_rules::derive(
        &loaded.rules,
        &loaded.config.rules.watch_dirs,
        fs,
    )?)
}

/// `check`: validates the configuration and every rule file; prints the effective settings
/// (as TOML), the detection rules and the kernel audit rules they give. Reads files and
/// lists hidden directories under /home; needs no privileges and does not touch the kernel.
/// Every error found is in the returned `Error::Config`, one per line.
pub fn check(source: &Source, out: &mut dyn Write) -> Result<(), Error> {
    let loaded = config::load(source)?;
    let (derived, omitted) =
        kernel_rules::derive_report(&loaded.rules, &loaded.config.rules.watch_dirs, &RealFs)?;
    for d in &omitted.hidden_dirs {
        eprintln!(
            "wwatchd: warning: {}: no kernel rules of its own (over the cap of {} hidden \
             directories); creations below it are not seen",
            d.display(),
            kernel_rules::MAX_HIDDEN_DIRS
        );
    }
    let mut text = String::new();
    let from = match &loaded.file {
        Some(f) => format!("from {}", f.display()),
        None => format!("{} is absent: built-in defaults", source.path.display()),
    };
    text.push_str(&format!(
        "# wwatchd: effective settings, {from}
"
    ));
    for w in &loaded.warnings {
        text.push_str(&format!(
            "# warning: {w}
"
        ));
    }
    text.push('\n');
    text.push_str(&loaded.config.to_toml());
    text.push_str(&format!("\n# Detection rules ({}):\n", loaded.rules.len()));
    for r in &loaded.rules {
        text.push_str(&format!(
            "#   {} {:?} ({})\n",
            r.meta.rule_id, r.meta.name, r.meta.origin
        ));
    }
    text.push_str(&format!(
        "\n# Kernel audit rules ({}), auditctl syntax:\n",
        derived.len()
    ));
    for r in &derived {
        text.push_str(&r.to_auditctl());
        text.push('\n');
    }
    out.write_all(text.as_bytes()).map_err(sw)
}

fn control() -> Result<Control, Error> {
    Ok(Control::open()?)
}

/// A failed write of the command's output.
fn sw(err: std::io::Error) -> Error {
    Error::Io {
        what: "cannot write the output".into(),
        err,
        output: true,
    }
}

/// `rules print`: the daemon's derivation on this machine's file system (symbolic links
/// resolved, files watched by name), without the hidden /home directories it adds at run
/// time; for `rules.d/40-wwatchd.rules`.
pub fn rules_print(source: &Source, out: &mut dyn Write) -> Result<(), Error> {
    let rules = derived(source, &PrintFs)?;
    out.write_all(kernel_rules::rules_file_text(&rules).as_bytes())
        .map_err(sw)
}

/// `rules install`.
pub fn rules_install(source: &Source, out: &mut dyn Write) -> Result<(), Error> {
    let rules = derived(source, &RealFs)?;
    let mut ctl = control()?;
    let st = ctl.get_status()?;
    if st.enabled == 2 {
        return Err(Error::AuditLocked);
    }
    let report = kernel_rules::install(&mut ctl, &rules)?;
    writeln!(
        out,
        "{} added, {} already loaded, {} failed",
        report.added,
        report.present,
        report.failed.len()
    )
    .map_err(sw)?;
    for f in &report.failed {
        writeln!(out, "  {f}").map_err(sw)?;
    }
    if st.enabled == 0 {
        writeln!(
            out,
            "note: kernel audit is disabled (enabled 0); the rules do nothing until it is enabled"
        )
        .map_err(sw)?;
    }
    Ok(())
}

/// `rules remove`: every rule keyed `wwatchd-d-*`, nothing else.
pub fn rules_remove(out: &mut dyn Write) -> Result<(), Error> {
    let mut ctl = control()?;
    let n = kernel_rules::remove_ours(&mut ctl, DAEMON_KEY_PREFIX)?;
    writeln!(out, "removed {n} rules keyed {DAEMON_KEY_PREFIX}*").map_err(sw)
}

/// `rules status`: ours as loaded, and which derived ones are missing. Returns whether
/// all are loaded.
pub fn rules_status(source: &Source, out: &mut dyn Write) -> Result<bool, Error> {
    let rules = derived(source, &RealFs)?;
    let mut ctl = control()?;
    let listed = ctl.list_rules()?;
    let ours: Vec<_> = listed
        .iter()
        .filter(|l| l.has_key_with_prefix(DAEMON_KEY_PREFIX.as_bytes()))
        .collect();
    writeln!(
        out,
        "loaded rules keyed {DAEMON_KEY_PREFIX}*: {}",
        ours.len()
    )
    .map_err(sw)?;
    for l in &ours {
        let keys: Vec<String> = l
            .keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        writeln!(out, "  {}", keys.join(",")).map_err(sw)?;
    }
    let missing = kernel_rules::missing_from(&listed, &rules);
    if missing.is_empty() {
        writeln!(out, "all {} derived rules are loaded", rules.len()).map_err(sw)?;
    } else {
        writeln!(
            out,
            "missing {} of {} derived rules:",
            missing.len(),
            rules.len()
        )
        .map_err(sw)?;
        for m in &missing {
            writeln!(out, "  {}", m.to_auditctl()).map_err(sw)?;
        }
    }
    Ok(missing.is_empty())
}

/// `status`: kernel status and the daemon's counters.
pub fn status(status_file: &Path, out: &mut dyn Write) -> Result<(), Error> {
    let mut ctl = control()?;
    let s = ctl.get_status()?;
    writeln!(
        out,
        "kernel: enabled {} failure {} pid {} rate_limit {} backlog_limit {} lost {} backlog {}",
        s.enabled, s.failure, s.pid, s.rate_limit, s.backlog_limit, s.lost, s.backlog
    )
    .map_err(sw)?;
    match std::fs::read_to_string(status_file) {
        Ok(text) => {
            let alive = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("pid")?.as_u64())
                .map(|pid| Path::new(&format!("/proc/{pid}")).exists());
            writeln!(
                out,
                "daemon ({}{}):",
                status_file.display(),
                match alive {
                    Some(true) => ", running",
                    Some(false) => ", not running",
                    None => "",
                }
            )
            .map_err(sw)?;
            out.write_all(text.as_bytes()).map_err(sw)?;
        }
        Err(e) => {
            writeln!(out, "daemon: no status file {}: {e}", status_file.display()).map_err(sw)?
        }
    }
    Ok(())
}
