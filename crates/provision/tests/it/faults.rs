//! Fault tolerance: the whole stack deployed and torn down through a proxy that answers a
//! share of calls with the service's own throttling error or a 500, drops the reply of a share
//! of successful mutating calls (AWS did it, the client never heard so) and delays calls.
//! Every run must succeed, converge to exactly one of every resource, and leave nothing.

use std::time::Duration;

use provision_testkit::proxy::{DropReply, FaultFilter, Faults};

use crate::inventory::{self, Inventory};
use crate::support::Stack;

fn faults(drop_reply_as: DropReply) -> Faults {
    Faults {
        throttle: 0.08,
        server_error: 0.04,
        drop_reply: 0.25,
        delay: 0.1,
        delay_max: Duration::from_millis(100),
        drop_reply_as,
        only: FaultFilter::default(),
    }
}

/// Deploys, checks and tears down with `faults` on, for one seed.
async fn deploy_and_tear_down_under(seed: u64, faults: Faults) {
    let stack = Stack::new()
        .await
        .through_proxy(|c| provision_testkit::proxy::ProxyConfig {
            seed,
            faults: faults.clone(),
            ..c
        })
        .await;
    let expected = inventory::expected(&stack).await;

    stack.up().await;
    let stats = stack.proxy().stats();
    eprintln!("seed {seed}: up saw faults {:?}", stats.faults);
    assert!(
        stats.faults.drop_reply > 0 && stats.faults.throttle > 0,
        "seed {seed}: the run was not exercised: {:?}",
        stats.faults
    );
    inventory::assert_exact(
        &Inventory::read(&stack).await,
        &expected,
        &format!("seed {seed}, after `up` under faults"),
    );

    // Still under faults: a rerun finds everything as it is and changes nothing.
    stack.proxy().reset();
    let rerun = stack.up().await;
    assert_eq!(
        crate::support::mutating_calls(&rerun),
        0,
        "seed {seed}: the rerun changed things: {:?}",
        crate::support::mutating_operations(&rerun)
    );

    stack.proxy().reset();
    stack.down().await;
    eprintln!(
        "seed {seed}: down saw faults {:?}",
        stack.proxy().stats().faults
    );
    inventory::assert_empty(
        &Inventory::read(&stack).await,
        &format!("seed {seed}, after `down` under faults"),
    );
}

/// The seed for a run: `default`, or `PROVISION_TEST_SEED` to explore other fault sequences
/// (`PROVISION_TEST_SEED=$RANDOM cargo test -p provision --test it faults`).
/// (`offset` keeps the tests on different sequences then too.)
fn seed(default: u64, offset: u64) -> u64 {
    std::env::var("PROVISION_TEST_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(default, |s| s.wrapping_add(offset))
}

#[tokio::test]
async fn lost_replies_throttling_and_server_errors_never_duplicate_or_leak() {
    deploy_and_tear_down_under(seed(7, 0), faults(DropReply::Either)).await;
}

#[tokio::test]
async fn a_create_whose_reply_was_lost_is_found_by_name_token_or_tags() {
    // Every create and delete loses its reply (after AWS did it): each kind must find what
    // its create made (by name, client token or tags) and take a missing thing on delete as
    // deleted.
    let stack = Stack::new()
        .await
        .through_proxy(|c| provision_testkit::proxy::ProxyConfig {
            seed: 11,
            faults: Faults {
                drop_reply: 1.0,
                drop_reply_as: DropReply::ServerError,
                only: FaultFilter {
                    mutating_only: true,
                    services: Vec::new(),
                    operations: [
                        "CreateVpc",
                        "CreateSubnet",
                        "CreateInternetGateway",
                        "CreateRouteTable",
                        "CreateSecurityGroup",
                        "AllocateAddress",
                        "CreateNatGateway",
                        "CreateVpcEndpoint",
                        "CreateRole",
                        "CreateRepository",
                        "CreateLoadBalancer",
                        "CreateTargetGroup",
                        "CreateListener",
                        "CreateRule",
                        "RequestCertificate",
                        "CreateCluster",
                        "CreateService",
                        "RegisterTaskDefinition",
                        "CreateLogGroup",
                        "CreateFunction",
                        "CreateModel",
                        "CreateEndpointConfig",
                        "CreateEndpoint",
                    ]
                    .map(String::from)
                    .to_vec(),
                },
                ..Faults::none()
            },
            ..c
        })
        .await;
    let expected = inventory::expected(&stack).await;
    stack.up().await;
    let dropped = stack.proxy().stats().faults.drop_reply;
    assert!(dropped >= 20, "only {dropped} replies were dropped");
    inventory::assert_exact(
        &Inventory::read(&stack).await,
        &expected,
        "after `up` with every create's reply lost",
    );
    stack.down().await;
    inventory::assert_empty(&Inventory::read(&stack).await, "after `down`");
}

#[tokio::test]
async fn replies_lost_as_closed_connections_never_duplicate_or_leak() {
    // The same, another seed, and every lost reply a connection closed mid-call.
    deploy_and_tear_down_under(seed(23, 1), faults(DropReply::Reset)).await;
}
