//! Crash safety of the network tier on LocalStack: `provision up --target network/` killed with
//! SIGKILL at many points, then `down` killed the same way.
//!
//! As in the moto suite (`tests/it/crash.rs`), the kill point is the worst moment there is: the
//! proxy lets the N-th mutating call reach LocalStack, holds its reply and everything after it,
//! and the test kills the process while it waits, so AWS has done the thing and provision
//! never heard so. After every kill LocalStack must hold at most one of every network
//! resource; the last rerun must converge to exactly one of each, and `down` must then leave
//! nothing. LocalStack is shared with other tests, so everything is counted inside this
//! stack's VPCs or by its `provision:stack` tag (EC2 creates carry their tags in the create
//! call itself, so a duplicate made by a lost reply is tagged too).

use std::collections::BTreeMap;

use provision_testkit::proxy::Frozen;

use crate::support::{Stack, filter, nat_gateway_turn, state_ids};

/// How many mutating calls each run gets before it is killed; cycled, so the kill points fall
/// on different calls of each phase. The network tier's `up` makes about 27 mutating calls,
/// its `down` about 25.
const UP_STEPS: &[u64] = &[2, 4, 3, 5, 2, 6, 3];
const DOWN_STEPS: &[u64] = &[2, 5, 3, 4];

const TARGET: &[&str] = &["up", "--yes", "--json", "--target", "network/"];
const DOWN: &[&str] = &["down", "--yes", "--json"];

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

/// The network resources LocalStack holds for this stack, by the kind that makes them.
async fn inventory(stack: &Stack) -> BTreeMap<&'static str, Vec<String>> {
    let ec2 = stack.ec2();
    let mut inv: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let vpcs: Vec<String> = ec2
        .describe_vpcs()
        .filters(stack.stack_filter())
        .send()
        .await
        .unwrap()
        .vpcs()
        .iter()
        .filter_map(|v| v.vpc_id().map(str::to_string))
        .collect();
    for vpc in &vpcs {
        inv.entry("ec2.vpc").or_default().push(vpc.clone());
        for s in ec2
            .describe_subnets()
            .filters(filter("vpc-id", vpc))
            .send()
            .await
            .unwrap()
            .subnets()
        {
            inv.entry("ec2.subnet")
                .or_default()
                .push(s.subnet_id().unwrap_or("?").into());
        }
        for n in ec2
            .describe_nat_gateways()
            .filter(filter("vpc-id", vpc))
            .send()
            .await
            .unwrap()
            .nat_gateways()
        {
            let state = n.state().map(|s| s.as_str()).unwrap_or("");
            if !matches!(state, "deleted" | "deleting" | "failed") {
                inv.entry("ec2.nat-gateway")
                    .or_default()
                    .push(n.nat_gateway_id().unwrap_or("?").into());
            }
        }
        for t in ec2
            .describe_route_tables()
            .filters(filter("vpc-id", vpc))
            .send()
            .await
            .unwrap()
            .route_tables()
        {
            // The VPC's main table is AWS's, not the stack's.
            if t.associations().iter().any(|a| a.main() == Some(true)) {
                continue;
            }
            let id = t.route_table_id().unwrap_or("?").to_string();
            inv.entry("ec2.route-table").or_default().push(id.clone());
            for r in t.routes() {
                if r.destination_cidr_block() == Some("0.0.0.0/0") {
                    inv.entry("ec2.route")
                        .or_default()
                        .push(format!("{id}|0.0.0.0/0"));
                }
            }
            for a in t.associations() {
                if let Some(s) = a.subnet_id() {
                    inv.entry("ec2.route-table-association")
                        .or_default()
                        .push(format!("{id}|{s}"));
                }
            }
        }
        for g in ec2
            .describe_security_groups()
            .filters(filter("vpc-id", vpc))
            .send()
            .await
            .unwrap()
            .security_groups()
        {
            if g.group_name() != Some("default") {
                inv.entry("ec2.security-group")
                    .or_default()
                    .push(g.group_id().unwrap_or("?").into());
            }
        }
        for e in ec2
            .describe_vpc_endpoints()
            .filters(filter("vpc-id", vpc))
            .send()
            .await
            .unwrap()
            .vpc_endpoints()
        {
            let state = e
                .state()
                .map(|s| s.as_str().to_ascii_lowercase())
                .unwrap_or_default();
            if !matches!(state.as_str(), "deleted" | "deleting") {
                inv.entry("ec2.vpc-endpoint")
                    .or_default()
                    .push(e.vpc_endpoint_id().unwrap_or("?").into());
            }
        }
    }
    for g in ec2
        .describe_internet_gateways()
        .filters(stack.stack_filter())
        .send()
        .await
        .unwrap()
        .internet_gateways()
    {
        inv.entry("ec2.internet-gateway")
            .or_default()
            .push(g.internet_gateway_id().unwrap_or("?").into());
    }
    for a in ec2
        .describe_addresses()
        .filters(stack.stack_filter())
        .send()
        .await
        .unwrap()
        .addresses()
    {
        inv.entry("ec2.elastic-ip")
            .or_default()
            .push(a.allocation_id().unwrap_or("?").into());
    }
    inv
}

/// How many of each kind the network tier has: its nodes in `provision graph --json`, less
/// the availability-zone lookup, which makes nothing.
async fn expected(stack: &Stack) -> BTreeMap<String, usize> {
    let graph = stack.run(&["graph", "--json"]).await.success().json();
    let mut counts = BTreeMap::new();
    for node in graph["nodes"].as_array().expect("graph nodes") {
        let id = node["id"].as_str().expect("an id");
        let kind = node["kind"].as_str().expect("a kind");
        if id.starts_with("network/") && kind != "ec2.availability-zones" {
            *counts.entry(kind.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

fn counts(inv: &BTreeMap<&'static str, Vec<String>>) -> BTreeMap<String, usize> {
    inv.iter()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(k, ids)| (k.to_string(), ids.len()))
        .collect()
}

#[track_caller]
fn assert_no_duplicate(
    inv: &BTreeMap<&'static str, Vec<String>>,
    expected: &BTreeMap<String, usize>,
    context: &str,
) {
    let over: Vec<String> = counts(inv)
        .into_iter()
        .filter(|(kind, have)| *have > expected.get(kind).copied().unwrap_or(0))
        .map(|(kind, have)| format!("{kind}: {have} live: {:?}", inv[kind.as_str()]))
        .collect();
    assert!(
        over.is_empty(),
        "{context}: duplicates:\n  {}",
        over.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_network_killed_at_many_points_converges_without_a_duplicate_or_a_leak() {
    let _turn = nat_gateway_turn().await;
    let stack = Stack::new().await.through_proxy().await;
    let expected = expected(&stack).await;
    assert_eq!(expected.get("ec2.vpc"), Some(&1), "{expected:?}");

    let mut up_kills = Vec::new();
    for step in UP_STEPS.iter().cycle() {
        assert!(up_kills.len() < 40, "`up` never finished: {up_kills:?}");
        match run_until_killed(&stack, TARGET, *step).await {
            Outcome::Killed(frozen) => {
                let context = format!("after a kill at {frozen:?}");
                assert_no_duplicate(&inventory(&stack).await, &expected, &context);
                up_kills.push(frozen.operation.unwrap_or_default());
            }
            Outcome::Finished => break,
        }
    }
    eprintln!("up killed at {} points: {up_kills:?}", up_kills.len());
    assert!(
        up_kills.len() >= 6,
        "too few kill points in `up`: {up_kills:?}"
    );
    assert_eq!(
        counts(&inventory(&stack).await),
        expected,
        "after `up` converged: not exactly one of every network resource"
    );
    let (code, plan) = stack.plan(&["network/"]).await;
    assert_eq!(code, 0, "a plan after convergence has changes: {plan:#}");

    let mut down_kills = Vec::new();
    for step in DOWN_STEPS.iter().cycle() {
        assert!(
            down_kills.len() < 40,
            "`down` never finished: {down_kills:?}"
        );
        match run_until_killed(&stack, DOWN, *step).await {
            Outcome::Killed(frozen) => {
                let context = format!("after a kill of `down` at {frozen:?}");
                assert_no_duplicate(&inventory(&stack).await, &expected, &context);
                down_kills.push(frozen.operation.unwrap_or_default());
            }
            Outcome::Finished => break,
        }
    }
    eprintln!("down killed at {} points: {down_kills:?}", down_kills.len());
    assert!(
        down_kills.len() >= 3,
        "too few kill points in `down`: {down_kills:?}"
    );
    let left = inventory(&stack).await;
    assert!(left.is_empty(), "left behind after `down`: {left:#?}");
    assert!(
        state_ids(&stack.state()).is_empty(),
        "the state still records resources after `down`"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_up_killed_right_after_its_first_create_finds_it_on_rerun() {
    let _turn = nat_gateway_turn().await;
    let stack = Stack::new().await.through_proxy().await;
    let expected = expected(&stack).await;
    match run_until_killed(&stack, TARGET, 1).await {
        Outcome::Killed(frozen) => eprintln!("killed after {frozen:?}"),
        Outcome::Finished => panic!("`up` made fewer than one mutating call"),
    }
    let state = stack.state();
    let creating: Vec<&String> = state["resources"]
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
    stack.proxy().reset();
    stack.up(&["network/"]).await;
    assert_eq!(
        counts(&inventory(&stack).await),
        expected,
        "after the rerun: not exactly one of every network resource"
    );
    stack.down().await;
    let left = inventory(&stack).await;
    assert!(left.is_empty(), "left behind after `down`: {left:#?}");
}
