//! `provision completions`: a shell completion script on stdout.

use crate::cli::Cli;
use crate::printer::{self, StdoutError};

pub(crate) fn completions(shell: crate::cli::Shell) -> Result<(), StdoutError> {
    use clap::CommandFactory;
    use clap_complete::Shell as S;
    let shell = match shell {
        crate::cli::Shell::Bash => S::Bash,
        crate::cli::Shell::Zsh => S::Zsh,
        crate::cli::Shell::Fish => S::Fish,
        crate::cli::Shell::Elvish => S::Elvish,
        crate::cli::Shell::Powershell => S::PowerShell,
    };
    let mut cmd = Cli::command();
    // clap_complete panics on a failed write; it writes to memory, the printer to stdout.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "provision", &mut script);
    printer::print_text(&String::from_utf8_lossy(&script))
}
