//! The whole stack through the proxy's strict mode: every request checked against AWS's input
//! rules (a request AWS would refuse is refused as AWS does), ACM's one-hour idempotency
//! memory, and, once per resource, the eventual-consistency errors real AWS gives and the
//! emulator never does. `up` must ride out every injection and break no rule, `down` must
//! leave nothing, and a second `up` after it must not be handed the deleted certificate back
//! by ACM's idempotency memory. Problems are collected over all four runs and reported
//! together, so one failure does not hide the next.

use provision_testkit::proxy::{Injection, ProxyConfig, Stats, Strict};

use crate::inventory::{self, Inventory};
use crate::support::{Run, Stack};

/// The injections `up` gives occasion to. Left out: `Ec2TagsNotFound` (provision tags
/// resources as it creates them and calls `CreateTags` only to repair drift, never on an id
/// it made moments ago).
const EXPECTED: &[Injection] = &[
    Injection::Ec2VpcNotFound,
    Injection::Ec2SecurityGroupNotFound,
    Injection::Ec2InternetGatewayNotFound,
    Injection::Ec2SubnetNotFound,
    Injection::Ec2RouteTableNotFound,
    Injection::EcsServiceLinkedRole,
    Injection::EcsClusterNotFound,
    Injection::EcsTargetGroupNotAttached,
    Injection::LambdaRole,
    Injection::SageMakerRole,
    Injection::SageMakerModelData,
    Injection::ListenerCertificateNotFound,
];

/// Where the explanations endpoint's model data lives (nothing reads it in the emulator).
const MODEL_DATA: &str = "s3://streamlit-app-models/sentiment-explanations/model.tar.gz";

/// The end of a failed run's output, enough to see why.
fn tail(run: &Run) -> String {
    let lines: Vec<&str> = run.stderr.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

/// What one phase left to report: a failed run, refusals, replays of deleted certificates.
fn phase_problems(phase: &str, run: &Run, stats: &Stats, problems: &mut Vec<String>) {
    eprintln!(
        "{phase}: exit {}, injected {:?}, refused {:?}, replayed {:?}",
        run.code, stats.strict.injected, stats.strict.refused, stats.strict.replayed
    );
    if run.code != 0 {
        problems.push(format!(
            "`{phase}` failed (exit {}):\n{}",
            run.code,
            tail(run)
        ));
    }
    if stats.strict.refusals() > 0 {
        problems.push(format!(
            "`{phase}` sent what AWS refuses ({:?}):\n  {}",
            stats.strict.refused,
            stats.strict.log.join("\n  ")
        ));
    }
    if let Some(n) = stats
        .strict
        .replayed
        .get("acm_idempotency_token_deleted_certificate")
    {
        problems.push(format!(
            "`{phase}` reused an ACM idempotency token within the hour: ACM answered {n} time(s) with the deleted certificate's ARN"
        ));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_stack_survives_aws_rules_and_transient_errors_and_down_leaves_nothing() {
    let stack = Stack::new()
        .await
        .through_proxy(|c| ProxyConfig {
            strict: Some(Strict::all()),
            ..c
        })
        .await
        // Model data gives SageMaker's "Could not access model data" its occasion.
        .with_config(|c| c["sagemaker_endpoints"][1]["model_data_url"] = MODEL_DATA.into());
    // It must exist: `up` checks it before creating anything.
    stack.put_object(MODEL_DATA).await;
    let expected = inventory::expected(&stack).await;
    let mut problems = Vec::new();

    let up = stack.run(&["up", "--yes", "--json"]).await;
    let stats = stack.proxy().stats();
    phase_problems("up", &up, &stats, &mut problems);
    let missing: Vec<&str> = EXPECTED
        .iter()
        .filter(|i| !stats.strict.injected.contains_key(i.name()))
        .map(|i| i.name())
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "injections that never fired during `up` (the run stopped before reaching them, or provision no longer makes those calls): {missing:?}"
        ));
    }
    if up.code == 0 {
        let live = Inventory::read(&stack).await;
        if live.counts() != expected {
            problems.push(format!(
                "after `up`: {:?} live, {expected:?} expected",
                live.counts()
            ));
        }
    }

    // Whatever `up` did, `down` must take it all away.
    stack.proxy().reset();
    let down = stack.run(&["down", "--yes", "--json"]).await;
    phase_problems("down", &down, &stack.proxy().stats(), &mut problems);
    let left = Inventory::read(&stack).await;
    if !left.is_empty() {
        problems.push(format!("`down` left behind: {:#?}", left.0));
    }

    // Within the hour, a new `up` must not be handed the deleted certificate back.
    stack.proxy().reset();
    let again = stack.run(&["up", "--yes", "--json"]).await;
    phase_problems("up again", &again, &stack.proxy().stats(), &mut problems);
    stack.proxy().reset();
    let down_again = stack.run(&["down", "--yes", "--json"]).await;
    phase_problems(
        "down again",
        &down_again,
        &stack.proxy().stats(),
        &mut problems,
    );
    let left = Inventory::read(&stack).await;
    if !left.is_empty() {
        problems.push(format!("the second `down` left behind: {:#?}", left.0));
    }

    assert!(
        problems.is_empty(),
        "under AWS's rules and transient errors:\n\n{}",
        problems.join("\n\n")
    );
}
