//! The `provision` command: argument parsing, the commands, and everything printed.
//! Only this crate prints.

pub mod cli;
mod commands;
pub mod printer;
pub mod run;

use std::process::ExitCode;

use clap::Parser;

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(&cli.global);
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
            report(run::Failure::new(format!(
                "could not start the async runtime: {e}"
            )));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(cli)) {
        Ok(code) => code,
        Err(failure) => {
            let exit = failure.exit;
            report(failure);
            ExitCode::from(exit)
        }
    }
}

#[allow(clippy::print_stderr)]
fn report(failure: run::Failure) {
    eprintln!("{:?}", miette::Report::new(failure));
}

fn init_tracing(global: &cli::Global) {
    use tracing_subscriber::EnvFilter;
    let default = match global.verbose {
        0 => "warn",
        1 => "warn,provision=debug",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
