//! The `provision` binary. Its one exit path: every run, however it ends (an error, Ctrl-C
//! twice, a closed stdout), comes back here and exits with the code `provision::finish`
//! decides.

fn main() -> std::process::ExitCode {
    let (outcome, log) = provision::run_command_line();
    provision::finish(outcome, log)
}
