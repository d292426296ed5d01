//! Drift: `refresh` reports what changed behind provision's back without changing anything,
//! `plan` shows how `up` would put it back, and `up` does.

use crate::support::Stack;

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_reported_then_repaired() {
    let stack = Stack::new().await;
    stack.up().await;
    let clean = stack.run(&["refresh"]).await;
    assert_eq!(
        clean.code, 0,
        "no drift after up: {}\n{}",
        clean.stdout, clean.stderr
    );
    assert!(clean.stdout.contains("No drift"), "{}", clean.stdout);

    // Behind provision's back: a setting changed and a resource deleted.
    let ec2 = stack.ec2();
    let subnets = ec2
        .describe_subnets()
        .filters(stack.tag_filter())
        .send()
        .await
        .unwrap();
    let public = subnets
        .subnets()
        .iter()
        .find(|s| s.map_public_ip_on_launch() == Some(true))
        .unwrap()
        .subnet_id()
        .unwrap()
        .to_string();
    ec2.modify_subnet_attribute()
        .subnet_id(&public)
        .map_public_ip_on_launch(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let endpoints = ec2
        .describe_vpc_endpoints()
        .filters(stack.tag_filter())
        .send()
        .await
        .unwrap();
    let s3 = endpoints
        .vpc_endpoints()
        .iter()
        .find(|e| e.service_name().is_some_and(|s| s.ends_with(".s3")))
        .unwrap()
        .vpc_endpoint_id()
        .unwrap()
        .to_string();
    ec2.delete_vpc_endpoints()
        .vpc_endpoint_ids(&s3)
        .send()
        .await
        .unwrap();

    let report = stack.run(&["refresh", "--json"]).await;
    assert_eq!(report.code, 2, "drift exits 2: {}", report.stderr);
    let json = report.json();
    assert_eq!(json["api_calls"]["mutating"], 0, "refresh changes nothing");
    let drift = json["drift"].as_array().unwrap();
    let by_id = |id: &str| {
        drift
            .iter()
            .find(|d| d["id"] == id)
            .unwrap_or_else(|| panic!("no drift for {id}: {drift:#?}"))
    };
    assert_eq!(
        by_id("network/vpc-endpoint/s3")["drift"]["drift"],
        "deleted"
    );
    let subnet = drift
        .iter()
        .find(|d| d["physical_id"] == public.as_str())
        .expect("the subnet's drift");
    assert_eq!(
        subnet["drift"]["changes"][0]["setting"],
        "map_public_ip_on_launch"
    );
    assert_eq!(subnet["drift"]["changes"][0]["old"], true);
    assert_eq!(subnet["drift"]["changes"][0]["new"], false);

    let human = stack.run(&["refresh"]).await;
    assert!(
        human.stdout.contains("deleted")
            && human
                .stdout
                .contains("map_public_ip_on_launch: true -> false"),
        "{}",
        human.stdout
    );

    // plan shows the repair, up makes it, and the stack is clean again.
    let (code, plan) = stack.plan().await;
    assert_eq!(code, 2);
    let steps = plan["plan"]["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["id"] == "network/vpc-endpoint/s3" && s["action"] == "create")
    );
    stack.up().await;
    let subnet_now = ec2
        .describe_subnets()
        .subnet_ids(&public)
        .send()
        .await
        .unwrap();
    assert_eq!(
        subnet_now.subnets()[0].map_public_ip_on_launch(),
        Some(true)
    );
    let endpoints = ec2
        .describe_vpc_endpoints()
        .filters(stack.tag_filter())
        .send()
        .await
        .unwrap();
    let live: Vec<_> = endpoints
        .vpc_endpoints()
        .iter()
        .filter(|e| e.state().map(|s| s.as_str().to_ascii_lowercase()) == Some("available".into()))
        .collect();
    assert_eq!(live.len(), 3, "the S3 endpoint is back");
    assert_eq!(stack.run(&["refresh"]).await.code, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn status_lists_every_resource_with_its_live_state() {
    let stack = Stack::new().await;
    stack.up().await;
    let run = stack.run(&["status", "--json"]).await.success();
    let json = run.json();
    let resources = json["resources"].as_array().unwrap();
    let state = stack.state();
    assert_eq!(
        resources.len(),
        state["resources"].as_object().unwrap().len()
    );
    let nat = resources
        .iter()
        .find(|r| r["id"] == "network/nat-gateway")
        .unwrap();
    assert_eq!(nat["status"], "available");
    assert!(
        resources
            .iter()
            .all(|r| !r["status"].as_str().unwrap().starts_with("missing"))
    );
}
