//! `provision completions`: a shell completion script on stdout.

use crate::cli::Cli;

pub(crate) fn completions(shell: crate::cli::Shell) {
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
    clap_complete::generate(shell, &mut cmd, "provision", &mut std::io::stdout());
}
