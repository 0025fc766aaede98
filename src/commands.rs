//! commands: each subcommand from its parsed arguments to its result; `main` only maps the
//! result to an exit code.

use std::io;

use crate::cli::{Cli, Command, RuleSources, RulesCommand, RunArgs};
use crate::config::{self, Overrides, Source};
use crate::daemon::{self, RunConfig};
use crate::error::Error;
use crate::{admin, scan};

/// How a command that did not fail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// `rules status`: some derived rules are not loaded.
    Missing,
}

/// Runs the command `cli` names.
pub fn dispatch(cli: Cli) -> Result<Outcome, Error> {
    // Not locked for the whole run: the daemon's stdout sink writes from its own thread.
    let mut stdout = io::stdout();
    let done = |r: Result<(), Error>| r.map(|()| Outcome::Done);
    match cli.command {
        Command::Scan(args) => done(scan::command(args)),
        Command::Run(args) => {
            let source = run_source(args)?;
            let loaded = config::load(&source)?;
            for w in &loaded.warnings {
                eprintln!("wwatchd: warning: {w}");
            }
            done(daemon::run(RunConfig::new(&loaded, source)))
        }
        Command::Check(a) => done(admin::check(
            &Source::new(a.config, Overrides::default()),
            &mut stdout,
        )),
        Command::Rules { command } => match command {
            RulesCommand::Print(s) => done(admin::rules_print(&rule_source(s), &mut stdout)),
            RulesCommand::Install(s) => done(admin::rules_install(&rule_source(s), &mut stdout)),
            RulesCommand::Remove => done(admin::rules_remove(&mut stdout)),
            RulesCommand::Status(s) => {
                if admin::rules_status(&rule_source(s), &mut stdout)? {
                    Ok(Outcome::Done)
                } else {
                    Ok(Outcome::Missing)
                }
            }
        },
        Command::Status(a) => done(admin::status(&a.status_file, &mut stdout)),
    }
}

/// `--config`, `--rule` and `--watch-dir`.
fn rule_source(s: RuleSources) -> Source {
    let overrides = Overrides {
        rule_files: s.rules,
        watch_dirs: s.watch_dirs,
        ..Overrides::default()
    };
    Source::new(s.config, overrides)
}

/// The configuration source of `run`, its flags overriding the file.
fn run_source(a: RunArgs) -> Result<Source, Error> {
    let mut source = rule_source(a.sources);
    let o = &mut source.overrides;
    o.transport = a
        .output
        .map(|v| {
            v.parse()
                .map_err(|e| Error::Usage(format!("--output: {e}")))
        })
        .transpose()?;
    o.facility = a
        .facility
        .map(|v| {
            v.parse()
                .map_err(|e| Error::Usage(format!("--facility: {e}")))
        })
        .transpose()?;
    o.rcvbuf = a.rcvbuf;
    o.max_message_bytes = a.max_message_bytes;
    o.status_file = a.status_file;
    o.summary_interval = a.summary_interval;
    o.spool_dir = a.spool_dir;
    o.spool_max_bytes = a.spool_max_bytes;
    o.user = a.user;
    Ok(source)
}
