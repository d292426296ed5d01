//! Releasing the state lock in S3: one conditional delete (`If-Match` on the lock's ETag) that
//! leaves a lock someone else took meanwhile, against the emulator; and, where the store does
//! not offer conditional deletes (LocalStack 4.13.1 answers 501 Not Implemented, which moto
//! cannot be made to do), a look and then a plain delete, with the SDK's mock client.

// The helpers are test code too (clippy only knows `#[test]` functions as such).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::delete_object::DeleteObjectOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_smithy_mocks::{MockResponseInterceptor, RuleMode, create_mock_http_client, mock};
use provision_aws::ApiCalls;
use provision_core::state::{LockInfo, StateError, StateStore};
use provision_s3::{S3Location, S3Store};
use provision_testkit::Emulator;

const BUCKET: &str = "team-state";
const LOCK: &str = "provision/dev.json.lock";

fn client(url: &str, calls: &ApiCalls) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(url)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .interceptor(calls.clone())
        .build();
    Client::from_conf(conf)
}

fn store(s3: Client) -> S3Store {
    S3Store::new(
        s3,
        S3Location::parse(&format!("s3://{BUCKET}/provision/dev.json")).unwrap(),
    )
}

fn calls_to(calls: &ApiCalls, operation: &str) -> u64 {
    calls
        .snapshot()
        .operations
        .get(operation)
        .copied()
        .unwrap_or(0)
}

async fn lock_exists(s3: &Client) -> bool {
    s3.head_object()
        .bucket(BUCKET)
        .key(LOCK)
        .send()
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_deletes_its_own_lock_in_one_conditional_call_and_never_a_lock_taken_since() {
    let emulator = Emulator::start().expect("moto starts");
    let (ours_calls, theirs_calls) = (ApiCalls::default(), ApiCalls::default());
    let (ours_s3, theirs_s3) = (
        client(emulator.url(), &ours_calls),
        client(emulator.url(), &theirs_calls),
    );
    // Looks at the bucket from outside, so its calls are not counted as ours.
    let look = client(emulator.url(), &ApiCalls::default());
    look.create_bucket().bucket(BUCKET).send().await.unwrap();
    let (ours, theirs) = (store(ours_s3), store(theirs_s3));

    // Released normally: one DeleteObject, no HeadObject, and the lock is gone.
    ours.lock(&LockInfo::for_this_process("up")).await.unwrap();
    ours.unlock().await.unwrap();
    assert!(!lock_exists(&look).await);
    assert_eq!(calls_to(&ours_calls, "s3:DeleteObject"), 1);
    assert_eq!(calls_to(&ours_calls, "s3:HeadObject"), 0);

    // Our lock is forced away (`provision unlock` on another machine) and taken there; our
    // release, when it finally comes, is refused by S3 (412) and their lock stays.
    ours.lock(&LockInfo::for_this_process("up")).await.unwrap();
    theirs.force_unlock().await.unwrap();
    theirs
        .lock(&LockInfo::for_this_process("down"))
        .await
        .unwrap();
    ours.unlock().await.unwrap();
    assert!(lock_exists(&look).await, "their lock was deleted");
    assert!(matches!(
        ours.lock(&LockInfo::for_this_process("up")).await,
        Err(StateError::Locked { .. })
    ));

    // A lock that is gone already (404) is released without an error.
    theirs.force_unlock().await.unwrap();
    ours.lock(&LockInfo::for_this_process("up")).await.unwrap();
    theirs.force_unlock().await.unwrap();
    ours.unlock().await.unwrap();

    theirs
        .lock(&LockInfo::for_this_process("up"))
        .await
        .unwrap();
    theirs.unlock().await.unwrap();
    assert!(!lock_exists(&look).await);
}

/// A store that answers a conditional delete with 501, holding a lock whose ETag is `current`.
fn without_conditional_deletes(current: &'static str) -> (S3Store, [aws_smithy_mocks::Rule; 4]) {
    let put = mock!(Client::put_object)
        .then_output(|| PutObjectOutput::builder().e_tag("\"ours\"").build());
    let conditional = mock!(Client::delete_object)
        .match_requests(|r| r.if_match().is_some())
        .sequence()
        .http_status(
            501,
            Some(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>"
                    .into(),
            ),
        )
        .repeatedly()
        .build();
    let head = mock!(Client::head_object)
        .then_output(move || HeadObjectOutput::builder().e_tag(current).build());
    let plain = mock!(Client::delete_object)
        .match_requests(|r| r.if_match().is_none())
        .then_output(|| DeleteObjectOutput::builder().build());
    // What `mock_client!` builds, without the SDK's `test-util` feature (which would rebuild
    // the S3 SDK for every crate of the workspace).
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for rule in [&put, &conditional, &head, &plain] {
        interceptor = interceptor.with_rule(rule);
    }
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .build();
    (
        store(Client::from_conf(conf)),
        [put, conditional, head, plain],
    )
}

#[tokio::test]
async fn without_conditional_deletes_the_lock_is_looked_at_then_deleted_if_still_ours() {
    let (ours, [_, conditional, head, plain]) = without_conditional_deletes("\"ours\"");
    ours.lock(&LockInfo::for_this_process("up")).await.unwrap();
    ours.unlock().await.unwrap();
    assert_eq!(conditional.num_calls(), 1);
    assert_eq!(head.num_calls(), 1);
    assert_eq!(plain.num_calls(), 1, "still ours: deleted");

    let (ours, [_, conditional, head, plain]) = without_conditional_deletes("\"theirs\"");
    ours.lock(&LockInfo::for_this_process("up")).await.unwrap();
    ours.unlock().await.unwrap();
    assert_eq!(conditional.num_calls(), 1);
    assert_eq!(head.num_calls(), 1);
    assert_eq!(plain.num_calls(), 0, "someone else's now: left alone");
}
