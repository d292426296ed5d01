//! The app's log group on LocalStack (`--target web/log-group`): created with its tags and a
//! 30-day retention, a rerun that changes nothing, a retention changed by hand that `plan`
//! shows and `up` puts back, and `down` that deletes it.

use crate::support::{ACCOUNT, REGION, Stack, mutating_calls, mutating_operations, state_ids};

/// The group of exactly this name, as CloudWatch Logs describes it.
async fn group(stack: &Stack, name: &str) -> Option<aws_sdk_cloudwatchlogs::types::LogGroup> {
    let out = stack
        .logs()
        .describe_log_groups()
        .log_group_name_prefix(name)
        .send()
        .await
        .unwrap();
    out.log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name))
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_group_is_made_with_its_retention_repaired_and_removed() {
    let stack = Stack::new().await;
    let name = format!("/ecs/{}/app", stack.stack_name());

    let first = stack.up(&["web/log-group"]).await;
    assert!(mutating_calls(&first) > 0);
    assert_eq!(state_ids(&stack.state()), ["web/log-group"]);
    let g = group(&stack, &name).await.expect("the log group exists");
    assert_eq!(g.retention_in_days(), Some(30));
    let arn = format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}");
    let tags = stack
        .logs()
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let tags = tags.tags().cloned().unwrap_or_default();
    assert_eq!(
        tags.get("provision:stack").map(String::as_str),
        Some(stack.stack_name().as_str()),
        "{tags:?}"
    );
    assert_eq!(
        tags.get("provision:id").map(String::as_str),
        Some("web/log-group")
    );

    let again = stack.up(&["web/log-group"]).await;
    assert_eq!(
        mutating_calls(&again),
        0,
        "a rerun changes nothing: {:?}",
        mutating_operations(&again)
    );

    // Someone shortens the retention by hand: plan shows it, up puts it back.
    stack
        .logs()
        .put_retention_policy()
        .log_group_name(&name)
        .retention_in_days(7)
        .send()
        .await
        .unwrap();
    let (code, plan) = stack.plan(&["web/log-group"]).await;
    assert_eq!(code, 2, "the change shows in the plan: {plan:#}");
    stack.up(&["web/log-group"]).await;
    assert_eq!(
        group(&stack, &name)
            .await
            .and_then(|g| g.retention_in_days()),
        Some(30)
    );
    let (code, plan) = stack.plan(&["web/log-group"]).await;
    assert_eq!(code, 0, "{plan:#}");

    stack.down().await;
    assert!(
        group(&stack, &name).await.is_none(),
        "the log group is deleted"
    );
}
