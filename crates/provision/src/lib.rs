//! The `provision` command: argument parsing, the commands, and everything printed.
//! Only this crate prints.

pub mod cli;
mod commands;
pub mod debug_log;
pub mod printer;
pub mod run;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::debug_log::{DebugLog, RUN_TARGET};
use crate::run::{Ending, Failure};

/// How a run ended: the command's own exit code, or the failure it ended with.
pub type Outcome = Result<ExitCode, Failure>;

/// Runs the command line. Returns how it ended and the debug log it wrote, for `main` to
/// report and turn into the exit code; nothing here exits the process.
pub fn run_command_line() -> (Outcome, Option<&'static DebugLog>) {
    // clap prints --help, --version and usage errors itself, and exits 0 or 2.
    let matches = cli::Cli::command().get_matches();
    let command = matches.subcommand_name().unwrap_or("provision").to_string();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let log = match debug_log::init(&cli.global, &command) {
        Ok(log) => log,
        Err(failure) => return (Err(failure), None),
    };
    tracing::info!(
        target: RUN_TARGET,
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        "provision {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    let color = printer::use_color(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(color)
                .terminal_links(false)
                // Messages stay on one line each, so they can be searched and grepped.
                .wrap_lines(false)
                .build(),
        )
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let failure = Failure::new(format!("could not start the async runtime: {e}"));
            return (Err(failure), Some(log));
        }
    };
    let outcome = runtime.block_on(run::run(cli));
    // A run stopped at once (Ctrl-C twice) leaves tasks and builds in flight: do not wait for
    // them.
    runtime.shutdown_background();
    (outcome, Some(log))
}

/// The exit code of a run, decided here and nowhere else: the command's own (0; 2 for `plan`
/// with changes and `refresh` with drift), 1 for an error, 130 when interrupted, and 0 when
/// the reader of stdout went away, as ripgrep does. Reports the failure, if any, naming the
/// debug log.
pub fn finish(outcome: Outcome, log: Option<&DebugLog>) -> ExitCode {
    match outcome {
        Ok(code) => {
            tracing::info!(target: RUN_TARGET, "done: {code:?}");
            code
        }
        Err(failure) => {
            let code = match failure.ending {
                Ending::Error => ExitCode::FAILURE,
                Ending::Interrupted => ExitCode::from(130),
                Ending::StdoutClosed => ExitCode::SUCCESS,
            };
            tracing::info!(
                target: RUN_TARGET,
                ending = ?failure.ending,
                hint = failure.hint.as_deref().map(tracing::field::display),
                "ended: {}",
                failure.message
            );
            if failure.ending != Ending::StdoutClosed {
                let path = log.and_then(DebugLog::path);
                printer::report(failure, path.as_deref());
            }
            code
        }
    }
}
