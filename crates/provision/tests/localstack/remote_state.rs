//! State in S3 on LocalStack's S3 (`--state s3://bucket/key`): the lock is a conditional create
//! (`If-None-Match: *`), the state a conditional overwrite (`If-Match` on the ETag read). The
//! store is tested directly, including many lock attempts at once, then through the binary: a
//! held lock refuses a run, `unlock` clears it, and of two runs started at once one is refused
//! while the other deploys the network with its state in S3.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use provision_core::state::{LockInfo, State, StateError, StateStore};
use provision_s3::{S3Location, S3Store};

use crate::network::{assert_network_gone, check_network};
use crate::support::{
    ACCOUNT, REGION, Stack, mutating_calls, mutating_operations, nat_gateway_turn,
};

/// A bucket of the test's own (bucket names are global to LocalStack).
async fn bucket(stack: &Stack) -> String {
    let name = format!("{}-state", stack.environment());
    stack
        .s3()
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap();
    name
}

fn store(stack: &Stack, bucket: &str, key: &str) -> S3Store {
    S3Store::new(
        stack.s3(),
        S3Location::parse(&format!("s3://{bucket}/{key}")).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_write_is_refused_instead_of_losing_an_update() {
    let stack = Stack::new().await;
    let bucket = bucket(&stack).await;
    let ours = store(&stack, &bucket, "dev.json");
    assert_eq!(ours.load().await.unwrap(), None);
    let mut state = State::new(&stack.stack_name(), ACCOUNT, REGION);
    ours.save(&state).await.unwrap();
    state.serial = 1;
    ours.save(&state).await.unwrap();

    // Another machine writes a newer version behind our back.
    let theirs = store(&stack, &bucket, "dev.json");
    let mut newer = theirs.load().await.unwrap().unwrap();
    newer.serial = 7;
    theirs.save(&newer).await.unwrap();

    // Our next write is based on the version we read: refused, and their update survives.
    state.serial = 2;
    match ours.save(&state).await {
        Err(StateError::Conflict { location }) => {
            assert_eq!(location, format!("s3://{bucket}/dev.json"))
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(theirs.load().await.unwrap().unwrap().serial, 7);

    // A first write never overwrites a state someone else created meanwhile.
    let late = store(&stack, &bucket, "dev.json");
    assert!(matches!(
        late.save(&state).await,
        Err(StateError::Conflict { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_lock_holder_at_a_time_and_only_its_own_lock_is_released() {
    let stack = Stack::new().await;
    let bucket = bucket(&stack).await;
    let a = store(&stack, &bucket, "dev.json");
    let b = store(&stack, &bucket, "dev.json");
    let holder = LockInfo::for_this_process("up");
    a.lock(&holder).await.unwrap();
    match b.lock(&LockInfo::for_this_process("down")).await {
        Err(StateError::Locked {
            holder: h,
            location,
        }) => {
            assert_eq!(*h, holder);
            assert_eq!(location, format!("s3://{bucket}/dev.json"));
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
async fn of_many_lock_attempts_at_once_exactly_one_wins() {
    let stack = Arc::new(Stack::new().await);
    let bucket = bucket(&stack).await;
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..16 {
        let s = store(&stack, &bucket, "race.json");
        attempts.spawn(async move {
            let info = LockInfo {
                holder: format!("machine-{i}"),
                pid: i,
                command: "up".into(),
                started_at: "2026-12-01T00:00:00Z".into(),
                version: String::new(),
            };
            (i, s.lock(&info).await)
        });
    }
    let mut winners = Vec::new();
    let mut refused = 0;
    while let Some(done) = attempts.join_next().await {
        match done.unwrap() {
            (i, Ok(())) => winners.push(i),
            (_, Err(StateError::Locked { .. })) => refused += 1,
            (i, Err(other)) => panic!("attempt {i}: neither the lock nor Locked: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one holder: {winners:?}");
    assert_eq!(refused, 15);
    // The lock object names the winner.
    let lock = stack
        .s3()
        .get_object()
        .bucket(&bucket)
        .key("race.json.lock")
        .send()
        .await
        .unwrap();
    let info: LockInfo =
        serde_json::from_slice(&lock.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(info.holder, format!("machine-{}", winners[0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_left_by_another_machine_refuses_a_run_until_unlocked() {
    let stack = Stack::new().await;
    let bucket = bucket(&stack).await;
    let uri = format!("s3://{bucket}/provision/dev.json");
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
        .bucket(&bucket)
        .key("provision/dev.json.lock")
        .body(ByteStream::from(serde_json::to_vec(&other).unwrap()))
        .send()
        .await
        .unwrap();
    let refused = stack.run(&["up", "--yes", "--state", &uri]).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
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
    let untouched = stack
        .ec2()
        .describe_vpcs()
        .filters(stack.stack_filter())
        .send()
        .await
        .unwrap();
    assert!(untouched.vpcs().is_empty(), "a refused run changes nothing");

    let unlock = stack.run(&["unlock", "--state", &uri]).await.success();
    assert!(unlock.stderr.contains("alice@laptop"), "{}", unlock.stderr);
    let locks = stack
        .s3()
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("provision/dev.json.lock")
        .send()
        .await
        .unwrap();
    assert_eq!(locks.key_count(), Some(0), "the lock is gone");
}

/// The lock's own writes (taking and releasing it), which every run makes.
fn lock_writes(result: &serde_json::Value) -> u64 {
    let ops = &result["api_calls"]["operations"];
    ["s3:PutObject", "s3:DeleteObject"]
        .iter()
        .map(|op| ops[*op].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_at_once_on_s3_state_one_deploys_the_network_the_other_is_refused() {
    let _turn = nat_gateway_turn().await;
    let stack = Arc::new(Stack::new().await);
    let bucket = bucket(&stack).await;
    let uri = format!("s3://{bucket}/provision/dev.json");
    stack.deploys_with_state(&uri);
    let args = [
        "up", "--yes", "--json", "--state", &uri, "--target", "network/",
    ];
    let (a, b) = tokio::join!(stack.run(&args), stack.run(&args));
    assert!(
        a.code == 0 || b.code == 0,
        "neither run deployed:\n{}\n{}",
        a.stderr,
        b.stderr
    );
    let refused = if a.code == 0 { b } else { a };
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
    // Exactly one network, checked through EC2.
    let network = check_network(&stack).await;

    // The state is in S3, not on disk, and records the network.
    let object = stack
        .s3()
        .get_object()
        .bucket(&bucket)
        .key("provision/dev.json")
        .send()
        .await
        .unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap();
    let ids: Vec<&String> = state["resources"].as_object().unwrap().keys().collect();
    assert!(ids.iter().any(|id| *id == "network/vpc"), "{ids:?}");
    assert!(!stack.state_path().exists(), "and not on disk");

    let second = stack.run(&args).await.success().json();
    assert_eq!(
        mutating_calls(&second) - lock_writes(&second),
        0,
        "a rerun changes nothing but the lock: {:?}",
        mutating_operations(&second)
    );

    stack
        .run(&["down", "--yes", "--state", &uri])
        .await
        .success();
    assert_network_gone(&stack, &network.vpc_id).await;
    let after = stack
        .s3()
        .get_object()
        .bucket(&bucket)
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
        .bucket(&bucket)
        .prefix("provision/dev.json.lock")
        .send()
        .await
        .unwrap();
    assert_eq!(locks.key_count(), Some(0), "no lock is left behind");
}
