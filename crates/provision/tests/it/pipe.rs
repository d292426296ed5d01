//! A reader that stops early (`provision graph --dot | head -1`) ends the run with 0 and
//! nothing on stderr, as ripgrep's does: no panic, no exit 101.

use crate::support::{Run, Stack};

/// Runs the binary with stdout a pipe whose reader is already gone, so the first write fails
/// with a broken pipe whatever the output's size.
async fn with_stdout_closed(stack: &Stack, args: &[&str]) -> Run {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    // Not `output()`, which would replace stdout with a pipe of its own.
    let child = stack
        .command(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .wait_with_output()
        .await
        .expect("the binary ends")
        .into()
}

#[track_caller]
fn ends_quietly(args: &[&str], run: &Run) {
    assert_eq!(
        run.code,
        0,
        "`provision {}` with stdout closed:\n{}",
        args.join(" "),
        run.stderr
    );
    assert_eq!(run.stderr, "", "`provision {}`", args.join(" "));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_the_run_with_0() {
    let stack = Stack::new().await;
    for args in [
        &["completions", "bash"][..],
        &["graph", "--dot"],
        &["graph", "--json"],
        &["graph"],
    ] {
        ends_quietly(args, &with_stdout_closed(&stack, args).await);
    }

    stack.up().await;
    for args in [
        &["outputs", "--json"][..],
        &["outputs"],
        &["plan"],
        &["status"],
    ] {
        ends_quietly(args, &with_stdout_closed(&stack, args).await);
    }
    // The debug log says how the run ended.
    let log = std::fs::read_to_string(stack.root().join(".provision/logs/status.log")).unwrap();
    assert!(
        log.contains("ended: stdout was closed before the result was written"),
        "{log}"
    );
    // Closing stdout changes nothing else: a normal run still prints and exits 0.
    let run = stack.run(&["outputs", "--json"]).await.success();
    assert!(run.json()["api_url"].is_string(), "{}", run.stdout);
}
