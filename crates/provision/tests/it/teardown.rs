//! Teardown under real conditions: something not ours keeps the VPC in use, and NAT gateways
//! take their time to delete.

use std::time::Duration;

use provision_testkit::proxy::{Latency, Modelled, ProxyConfig};

use crate::inventory::{self, Inventory};
use crate::support::Stack;

#[tokio::test]
async fn a_vpc_kept_in_use_by_something_foreign_fails_down_naming_it_and_a_rerun_finishes() {
    let stack = Stack::new().await;
    let outputs = stack.up().await;
    let state = stack.state();
    let vpc = state["resources"]["network/vpc"]["physical_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no VPC in the state: {outputs:#}"))
        .to_string();
    // Someone else's route table in our VPC (added by hand, or by another tool): AWS refuses
    // to delete the VPC with DependencyViolation while it is there.
    let foreign = stack
        .ec2()
        .create_route_table()
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .route_table()
        .and_then(|t| t.route_table_id())
        .unwrap()
        .to_string();

    let run = stack
        .run(&["down", "--yes", "--timeout", "vpc-delete=2s"])
        .await;
    assert_ne!(
        run.code, 0,
        "down succeeded with a foreign route table in the VPC"
    );
    assert!(
        run.stderr.contains(&foreign),
        "the error does not name what blocks the VPC:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains(&vpc), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    // The foreign route table is left alone, and the VPC is still recorded so a rerun can
    // finish.
    let tables = stack
        .ec2()
        .describe_route_tables()
        .route_table_ids(&foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tables.route_tables().len(),
        1,
        "down deleted a route table it does not own"
    );
    let left: Vec<String> = stack.state()["resources"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        left,
        vec!["network/vpc".to_string()],
        "what the state still records"
    );

    // The user removes what blocked it, as the message says; the rerun finishes.
    stack
        .ec2()
        .delete_route_table()
        .route_table_id(&foreign)
        .send()
        .await
        .unwrap();
    stack.down().await;
    inventory::assert_empty(&Inventory::read(&stack).await, "after the second `down`");
}

#[tokio::test]
async fn down_rides_out_what_aws_still_holds_after_a_delete() {
    // As on AWS: a NAT gateway reads back `deleting` for a while after DeleteNatGateway and
    // holds its subnet and Elastic IP until it is `deleted`; a deleted load balancer's network
    // interfaces hold its subnets and security groups for a while longer. The proxy answers
    // those deletes with DependencyViolation (or InvalidIPAddress.InUse) meanwhile.
    let stack = Stack::new()
        .await
        .through_proxy(|c| ProxyConfig {
            latency: Some(
                Latency::new(0.02)
                    .with(Modelled::NatGatewayDelete, Duration::from_secs(60))
                    .with(Modelled::LoadBalancerInterfaces, Duration::from_secs(60)),
            ),
            ..c
        })
        .await;
    stack.up().await;
    stack.proxy().reset();
    stack.down().await;
    let stats = stack.proxy().stats();
    for kind in ["nat_gateway_delete", "load_balancer_interfaces"] {
        assert!(
            stats.modelled.get(kind).copied().unwrap_or(0) > 0,
            "down never met {kind}: {:?}",
            stats.modelled
        );
    }
    inventory::assert_empty(&Inventory::read(&stack).await, "after `down`");
}
