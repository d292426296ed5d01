//! Crash safety: `provision` killed with SIGKILL at many points of `up` and of `down`.
//!
//! The kill point is the worst moment there is: the proxy lets the N-th mutating call reach
//! the emulator, holds its reply and everything after it, and the test kills the process
//! while it waits. So AWS has done the thing and `provision` never heard so. Each rerun is
//! killed again a few mutating calls further on, so the kills land all over the run,
//! including in the recovery of the previous kill. After every kill the emulator must hold at
//! most one of every resource; the last rerun must converge to exactly one of each, and
//! `down` (killed the same way) must then leave nothing.

use std::collections::BTreeMap;

use provision_testkit::proxy::Frozen;

use crate::inventory::{self, Inventory};
use crate::support::Stack;

/// How many mutating calls each run gets before it is killed; cycled, so the kill points fall
/// on different calls of each phase.
const UP_STEPS: &[u64] = &[3, 7, 5, 9, 4, 6, 8];
const DOWN_STEPS: &[u64] = &[2, 5, 3, 4];

/// What one killed-or-finished run did.
enum Outcome {
    Killed(Frozen),
    Finished,
}

/// Runs `provision <args>` and kills it (SIGKILL) once the proxy freezes after `step` mutating
/// calls. A run that ends first must have succeeded.
async fn run_until_killed(stack: &Stack, args: &[&str], step: u64) -> Outcome {
    let proxy = stack.proxy();
    proxy.reset();
    proxy.freeze_after(step);
    let mut child = stack
        .command(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("piped stderr");
    // Drain stderr as it comes, so a chatty run never blocks on a full pipe.
    let drain = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buf = String::new();
        let mut stderr = stderr;
        let _ = stderr.read_to_string(&mut buf).await;
        buf
    });
    let outcome = tokio::select! {
        frozen = proxy.frozen() => {
            child.start_kill().expect("SIGKILL");
            let _ = child.wait().await;
            Outcome::Killed(frozen)
        }
        status = child.wait() => {
            let status = status.expect("the binary runs");
            let stderr = drain.await.unwrap_or_default();
            assert!(
                status.success(),
                "`provision {}` failed before its kill point:\n{stderr}",
                args.join(" ")
            );
            return Outcome::Finished;
        }
    };
    proxy.unfreeze();
    outcome
}

/// Asserts no kind has more live things than the graph has nodes of it.
#[track_caller]
fn assert_no_duplicate(live: &Inventory, expected: &BTreeMap<String, usize>, context: &str) {
    let mut over = Vec::new();
    for (kind, have) in live.counts() {
        let want = expected.get(&kind).copied().unwrap_or(0);
        if have > want {
            over.push(format!(
                "{kind}: {have} live, at most {want} expected: {:?}",
                live.0[&kind]
            ));
        }
    }
    assert!(
        over.is_empty(),
        "{context}: duplicates:\n  {}",
        over.join("\n  ")
    );
}

#[tokio::test]
async fn up_and_down_killed_at_many_points_converge_without_a_duplicate_or_a_leak() {
    let stack = Stack::new().await.through_proxy(|c| c).await;
    let expected = inventory::expected(&stack).await;

    // `up`, killed again and again until a run gets to the end.
    let mut up_kills = Vec::new();
    for step in UP_STEPS.iter().cycle() {
        assert!(up_kills.len() < 40, "`up` never finished: {up_kills:?}");
        match run_until_killed(&stack, &["up", "--yes", "--json"], *step).await {
            Outcome::Killed(frozen) => {
                let context = format!("after a kill at {frozen:?}");
                assert_no_duplicate(&Inventory::read(&stack).await, &expected, &context);
                up_kills.push(frozen.operation.unwrap_or_default());
            }
            Outcome::Finished => break,
        }
    }
    eprintln!("up killed at {} points: {up_kills:?}", up_kills.len());
    assert!(
        up_kills.len() >= 8,
        "too few kill points in `up`: {up_kills:?}"
    );
    inventory::assert_exact(
        &Inventory::read(&stack).await,
        &expected,
        "after `up` converged",
    );
    // Converged means converged: nothing left to do.
    let (code, plan) = stack.plan().await;
    assert_eq!(code, 0, "a plan after convergence has changes: {plan:#}");

    // `down`, killed the same way.
    let mut down_kills = Vec::new();
    for step in DOWN_STEPS.iter().cycle() {
        assert!(
            down_kills.len() < 40,
            "`down` never finished: {down_kills:?}"
        );
        match run_until_killed(&stack, &["down", "--yes", "--json"], *step).await {
            Outcome::Killed(frozen) => {
                let context = format!("after a kill of `down` at {frozen:?}");
                assert_no_duplicate(&Inventory::read(&stack).await, &expected, &context);
                down_kills.push(frozen.operation.unwrap_or_default());
            }
            Outcome::Finished => break,
        }
    }
    eprintln!("down killed at {} points: {down_kills:?}", down_kills.len());
    assert!(
        down_kills.len() >= 4,
        "too few kill points in `down`: {down_kills:?}"
    );
    inventory::assert_empty(&Inventory::read(&stack).await, "after `down` finished");
    assert_eq!(
        inventory::state_resources(&stack),
        serde_json::json!({}),
        "the state still records resources after `down`"
    );
}

#[tokio::test]
async fn an_up_killed_at_a_create_whose_reply_never_came_finds_it_on_rerun() {
    // Every kill point of the test above holds a reply back; this one names the calls that
    // matter most, the creates with no idempotency token, whose retry would duplicate.
    let stack = Stack::new().await.through_proxy(|c| c).await;
    let expected = inventory::expected(&stack).await;
    stack.proxy().reset();
    // The first mutating calls of a fresh `up` include the VPC, the roles and the
    // repositories: kill right after the very first one.
    match run_until_killed(&stack, &["up", "--yes", "--json"], 1).await {
        Outcome::Killed(frozen) => eprintln!("killed after {frozen:?}"),
        Outcome::Finished => panic!("`up` made fewer than one mutating call"),
    }
    let state = inventory::state_resources(&stack);
    let creating: Vec<&String> = state
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, r)| r["status"] == "creating")
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !creating.is_empty(),
        "the intent to create was not recorded before the create: {state:#}"
    );
    stack.up().await;
    inventory::assert_exact(&Inventory::read(&stack).await, &expected, "after the rerun");
    stack.down().await;
    inventory::assert_empty(&Inventory::read(&stack).await, "after `down`");
}
