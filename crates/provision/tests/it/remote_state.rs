//! State in S3 (`--state s3://bucket/key`): the lock is a conditional write (`If-None-Match`),
//! the state a conditional overwrite (`If-Match` on the ETag read), so two machines cannot
//! apply at once and no update is lost.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use provision_core::state::{LockInfo, State, StateError, StateStore};
use provision_s3::{S3Location, S3Store};

use crate::support::{Stack, mutating_calls};

async fn bucket(stack: &Stack, name: &str) {
    stack
        .s3()
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap();
}

fn store(stack: &Stack, key: &str) -> S3Store {
    S3Store::new(
        stack.s3(),
        S3Location::parse(&format!("s3://team-state/{key}")).unwrap(),
    )
}

#[test]
fn locations_parse() {
    assert_eq!(
        S3Location::parse("s3://team-state/provision/dev.json"),
        Ok(S3Location {
            bucket: "team-state".into(),
            key: "provision/dev.json".into()
        })
    );
    for bad in [
        "s3://bucket",
        "s3://bucket/",
        "s3:///key",
        "https://x/y",
        "s3://b/dir/",
    ] {
        assert!(S3Location::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_write_is_refused_instead_of_losing_an_update() {
    let stack = Stack::new().await;
    bucket(&stack, "team-state").await;
    let ours = store(&stack, "dev.json");
    assert_eq!(ours.load().await.unwrap(), None);
    let mut state = State::new("streamlit-app-local", "123456789012", "us-east-1");
    ours.save(&state).await.unwrap();
    state.serial = 1;
    ours.save(&state).await.unwrap();

    // Another machine writes a newer version behind our back.
    let theirs = store(&stack, "dev.json");
    let mut newer = theirs.load().await.unwrap().unwrap();
    newer.serial = 7;
    theirs.save(&newer).await.unwrap();

    // Our next write is based on the version we read: refused, and their update survives.
    state.serial = 2;
    match ours.save(&state).await {
        Err(StateError::Conflict { location }) => assert_eq!(location, "s3://team-state/dev.json"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(theirs.load().await.unwrap().unwrap().serial, 7);

    // A first write never overwrites a state someone else created meanwhile.
    let late = store(&stack, "dev.json");
    assert!(matches!(
        late.save(&state).await,
        Err(StateError::Conflict { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_lock_holder_at_a_time_and_only_its_own_lock_is_released() {
    let stack = Stack::new().await;
    bucket(&stack, "team-state").await;
    let a = store(&stack, "dev.json");
    let b = store(&stack, "dev.json");
    let holder = LockInfo::for_this_process("up");
    a.lock(&holder).await.unwrap();
    match b.lock(&LockInfo::for_this_process("down")).await {
        Err(StateError::Locked {
            holder: h,
            location,
        }) => {
            assert_eq!(*h, holder);
            assert_eq!(location, "s3://team-state/dev.json");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    // b never held it, so b's unlock leaves a's lock alone.
    b.unlock().await.unwrap();
    assert!(matches!(
        b.lock(&LockInfo::for_this_process("down")).await,
        Err(StateError::Locked { .. })
    ));
    a.unlock().await.unwrap();
    b.lock(&LockInfo::for_this_process("down")).await.unwrap();
    b.unlock().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stack_deploys_with_its_state_in_s3_and_a_held_lock_refuses_a_run() {
    let stack = Stack::new().await;
    bucket(&stack, "team-state").await;
    let uri = "s3://team-state/provision/dev.json";

    // A lock left by a run on another machine: `up` is refused at once, with the holder.
    let other = LockInfo {
        holder: "alice@laptop".into(),
        pid: 4242,
        command: "up".into(),
        started_at: "2026-11-25T10:00:00Z".into(),
        version: "0.1.0".into(),
    };
    stack
        .s3()
        .put_object()
        .bucket("team-state")
        .key("provision/dev.json.lock")
        .body(ByteStream::from(serde_json::to_vec(&other).unwrap()))
        .send()
        .await
        .unwrap();
    let refused = stack.run(&["up", "--yes", "--state", uri]).await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("alice@laptop"),
        "the holder is named: {}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("provision unlock"),
        "the way out is named: {}",
        refused.stderr
    );

    // `unlock` removes it, naming whose it was.
    let unlock = stack.run(&["unlock", "--state", uri]).await.success();
    assert!(unlock.stderr.contains("alice@laptop"), "{}", unlock.stderr);

    let first = stack
        .run(&["up", "--yes", "--json", "--state", uri])
        .await
        .success()
        .json();
    assert!(mutating_calls(&first) > 0);
    let object = stack
        .s3()
        .get_object()
        .bucket("team-state")
        .key("provision/dev.json")
        .send()
        .await
        .unwrap();
    let text = object.body.collect().await.unwrap().into_bytes();
    let state: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert!(
        !state["resources"].as_object().unwrap().is_empty(),
        "the state is in S3"
    );
    assert!(!stack.state_path().exists(), "and not on disk");

    let second = stack
        .run(&["up", "--yes", "--json", "--state", uri])
        .await
        .success()
        .json();
    assert_eq!(
        mutating_calls(&second) - s3_writes(&second),
        0,
        "a rerun changes nothing in the stack"
    );
    let outputs = stack
        .run(&["outputs", "--json", "--state", uri])
        .await
        .success()
        .json();
    assert!(outputs.get("vpc_id").is_some());

    stack
        .run(&["down", "--yes", "--state", uri])
        .await
        .success();
    let after = stack
        .s3()
        .get_object()
        .bucket("team-state")
        .key("provision/dev.json")
        .send()
        .await
        .unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&after.body.collect().await.unwrap().into_bytes()).unwrap();
    assert!(state["resources"].as_object().unwrap().is_empty());
    let locks = stack
        .s3()
        .list_objects_v2()
        .bucket("team-state")
        .prefix("provision/dev.json.lock")
        .send()
        .await
        .unwrap();
    assert_eq!(locks.key_count(), Some(0), "no lock is left behind");
}

/// The lock's own writes (taking and releasing it), which every run makes.
fn s3_writes(result: &serde_json::Value) -> u64 {
    let ops = &result["api_calls"]["operations"];
    ["s3:PutObject", "s3:DeleteObject"]
        .iter()
        .map(|op| ops[*op].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_at_once_on_one_local_state_one_is_refused_at_once() {
    let stack = Arc::new(Stack::new().await);
    let (a, b) = tokio::join!(stack.run(&["up", "--yes"]), stack.run(&["up", "--yes"]));
    let (ok, refused) = if a.code == 0 { (a, b) } else { (b, a) };
    assert_eq!(ok.code, 0, "one run succeeds: {}", ok.stderr);
    assert_eq!(refused.code, 1, "the other is refused: {}", refused.stderr);
    assert!(
        refused.stderr.contains("is locked by"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("pid"),
        "the holder is named: {}",
        refused.stderr
    );
    // Nothing was duplicated.
    let vpcs = stack
        .ec2()
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:provision:stack")
                .values(stack.stack_name())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1);
}
