//! Ctrl-C: once finishes the calls in flight and stops; twice stops at once. Either way the
//! run ends through the binary's one exit path: exit 130, the error reported with the debug
//! log's path, and the log saying how the run ended.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::Stack;

fn interrupt(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_twice_stops_at_once_with_130_and_a_rerun_finishes() {
    let stack = Stack::new().await.through_proxy(|c| c).await;
    // The third mutating call's reply never comes back while frozen: after one Ctrl-C,
    // provision would wait for it for ever.
    stack.proxy().freeze_after(3);
    let mut child = stack
        .command(&["up", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let pid = child.id().expect("running");
    let frozen = stack.proxy().frozen().await;
    assert!(frozen.operation.is_some(), "{frozen:?}");

    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    interrupt(pid);
    // The second Ctrl-C only once the first one was taken in.
    while let Some(line) = stderr.next_line().await.unwrap() {
        seen.push(line.clone());
        if line.contains("interrupted: finishing the calls in flight") {
            break;
        }
    }
    interrupt(pid);
    while let Some(line) = stderr.next_line().await.unwrap() {
        seen.push(line);
    }
    let status = child.wait().await.unwrap();
    let text = seen.join("\n");
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("stopped at once (Ctrl-C twice)"), "{text}");
    assert!(
        text.contains("the debug log of this run is at .provision/logs/up.log"),
        "{text}"
    );
    let log = std::fs::read_to_string(stack.root().join(".provision/logs/up.log")).unwrap();
    assert!(log.contains("interrupted (Ctrl-C)"), "{log}");
    assert!(
        log.contains("ended: stopped at once (Ctrl-C twice)"),
        "{log}"
    );

    // The state recorded what was done; the rerun finishes the job.
    stack.proxy().unfreeze();
    stack.run(&["up", "--yes"]).await.success();
    let (code, _) = stack.plan().await;
    assert_eq!(code, 0, "the rerun converged");
}
