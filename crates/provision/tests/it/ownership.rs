//! Ownership: provision changes and deletes only what is tagged as this stack's. A state file
//! edited (or copied) to point at someone else's resource is refused, and that resource survives.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use crate::support::Stack;

/// Points the state's record of `id` at another physical resource.
fn repoint(stack: &Stack, id: &str, physical: &str) {
    let mut state = stack.state();
    state["resources"][id]["physical_id"] = physical.into();
    stack.write_state(&state);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_pointing_at_a_foreign_resource_is_refused_and_the_resource_survives() {
    let stack = Stack::new().await;
    stack.up().await;
    let ec2 = stack.ec2();

    // Someone else's VPCs: one untagged, one tagged for another stack.
    let plain = ec2
        .create_vpc()
        .cidr_block("172.16.0.0/16")
        .send()
        .await
        .unwrap();
    let plain = plain.vpc().unwrap().vpc_id().unwrap().to_string();
    let tagged = ec2
        .create_vpc()
        .cidr_block("172.17.0.0/16")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Vpc)
                .tags(
                    Tag::builder()
                        .key("provision:stack")
                        .value("streamlit-app-prod")
                        .build(),
                )
                .tags(
                    Tag::builder()
                        .key("provision:id")
                        .value("network/vpc")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let tagged = tagged.vpc().unwrap().vpc_id().unwrap().to_string();

    for (foreign, whose) in [
        (&plain, "not managed by provision"),
        (&tagged, "belongs to stack streamlit-app-prod"),
    ] {
        repoint(&stack, "network/vpc", foreign);
        let plan = stack.run(&["plan"]).await;
        assert_eq!(plan.code, 1, "plan refuses: {}", plan.stderr);
        assert!(
            plan.stderr.contains(foreign.as_str()) && plan.stderr.contains(whose),
            "{}",
            plan.stderr
        );
        let up = stack.run(&["up", "--yes"]).await;
        assert_eq!(up.code, 1);
        assert!(up.stderr.contains("refusing to manage"), "{}", up.stderr);
    }

    // down deletes everything that is ours and refuses the foreign VPC.
    let down = stack.run(&["down", "--yes"]).await;
    assert_eq!(down.code, 1, "down reports the refusal: {}", down.stderr);
    assert!(
        down.stderr.contains("refusing to manage"),
        "{}",
        down.stderr
    );
    for vpc in [&plain, &tagged] {
        let out = ec2
            .describe_vpcs()
            .vpc_ids(vpc.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(out.vpcs().len(), 1, "{vpc} must survive");
    }
    let subnets = ec2
        .describe_subnets()
        .filters(
            Filter::builder()
                .name("tag:provision:stack")
                .values(stack.stack_name())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        subnets.subnets().is_empty(),
        "everything else of ours is gone"
    );
    let state = stack.state();
    let left: Vec<&String> = state["resources"].as_object().unwrap().keys().collect();
    assert_eq!(
        left,
        ["network/vpc"],
        "only the refused record stays, for the user to fix"
    );
}

/// Some kinds' describe calls carry no tags (load balancers, repositories, log groups,
/// SageMaker endpoints), so a rerun trusts the id the state recorded and reads once; before
/// any change, though, the tags are checked.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_to_a_foreign_resource_the_state_points_at_is_refused() {
    let stack = Stack::new().await;
    stack.up().await;
    let elb = stack.elbv2();
    let state = stack.state();
    let ours = state["resources"]["web/load-balancer"]["physical_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mine = elb
        .describe_load_balancers()
        .load_balancer_arns(&ours)
        .send()
        .await
        .unwrap();
    let subnets: Vec<String> = mine.load_balancers()[0]
        .availability_zones()
        .iter()
        .filter_map(|z| z.subnet_id().map(str::to_string))
        .collect();
    // Someone else's load balancer in the same subnets, untagged, without our security group.
    let foreign = elb
        .create_load_balancer()
        .name("someone-elses-alb")
        .set_subnets(Some(subnets))
        .send()
        .await
        .unwrap();
    let foreign = foreign.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let groups_before = elb
        .describe_load_balancers()
        .load_balancer_arns(&foreign)
        .send()
        .await
        .unwrap()
        .load_balancers()[0]
        .security_groups()
        .to_vec();
    repoint(&stack, "web/load-balancer", &foreign);

    let up = stack.run(&["up", "--yes", "--json"]).await;
    assert_eq!(up.code, 1, "up must refuse: {}", up.stderr);
    assert!(
        up.stderr.contains("refusing to manage") && up.stderr.contains("someone-elses-alb"),
        "{}",
        up.stderr
    );
    let after = elb
        .describe_load_balancers()
        .load_balancer_arns(&foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.load_balancers()[0].security_groups(),
        groups_before.as_slice(),
        "the foreign load balancer is untouched"
    );
}
