//! The proxy against a real emulator, through the real SDK: faults in each protocol's own
//! format and classified by the SDK as AWS's would be, seeded rates, dropped replies, the
//! kill point, the latency model, and the binary's control endpoints.
//!
//! Waits on modelled times poll, as a client of AWS would; nothing sleeps to synchronise.

// Helpers outside `#[test]` functions too: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_runtime::retries::classifiers::THROTTLING_ERRORS;
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use provision_testkit::Emulator;
use provision_testkit::proxy::{
    DropReply, FaultFilter, Faults, Latency, Modelled, Proxy, ProxyConfig,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// An emulator and a proxy in front of it.
struct Rig {
    emulator: Emulator,
    proxy: Proxy,
}

async fn rig(configure: impl FnOnce(ProxyConfig) -> ProxyConfig) -> Rig {
    let emulator = tokio::task::spawn_blocking(Emulator::start)
        .await
        .unwrap()
        .expect("the emulator starts (run scripts/setup first)");
    let proxy = Proxy::start(configure(ProxyConfig::new(emulator.url())))
        .await
        .unwrap();
    Rig { emulator, proxy }
}

/// An SDK configuration for `url` with `attempts` attempts per call and quick backoff.
async fn sdk(url: &str, attempts: u32) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(1))
                .with_max_backoff(Duration::from_millis(5)),
        )
        .load()
        .await
}

fn s3(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

/// A failed call: its HTTP status, AWS error code and message.
type Failure = (u16, String, String);

/// The HTTP status, AWS error code and message of a failed call.
fn failure<T: Debug, E: ProvideErrorMetadata + Debug>(result: Result<T, SdkError<E>>) -> Failure {
    let err = result.expect_err("the call fails");
    let status = err.raw_response().map_or(0, |r| r.status().as_u16());
    let code = err.code().unwrap_or_default().to_string();
    let message = err.message().unwrap_or_default().to_string();
    (status, code, message)
}

/// Polls `ready` every 50 ms until it holds; returns the time since `since`. This waits for
/// a modelled time to pass, which is the behaviour under test.
async fn until<F, Fut>(since: Instant, limit: Duration, mut ready: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        if ready().await {
            return since.elapsed();
        }
        assert!(since.elapsed() < limit, "not ready within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const LAMBDA_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const SAGEMAKER_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"sagemaker.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// An empty zip archive: all moto needs of a function's code.
fn empty_zip() -> aws_sdk_lambda::primitives::Blob {
    let mut zip = b"PK\x05\x06".to_vec();
    zip.extend([0u8; 18]);
    aws_sdk_lambda::primitives::Blob::new(zip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttles_in_each_services_own_format_and_the_sdk_retries_them() {
    let rig = rig(|c| ProxyConfig {
        faults: Faults {
            throttle: 1.0,
            ..Faults::none()
        },
        ..c
    })
    .await;
    let sdk = sdk(rig.proxy.url(), 3).await;
    let checks: Vec<(&str, &str, u16, Failure)> = vec![
        (
            "EC2:DescribeVpcs",
            "RequestLimitExceeded",
            503,
            failure(aws_sdk_ec2::Client::new(&sdk).describe_vpcs().send().await),
        ),
        (
            "IAM:ListRoles",
            "Throttling",
            400,
            failure(aws_sdk_iam::Client::new(&sdk).list_roles().send().await),
        ),
        (
            "Elastic Load Balancing v2:DescribeLoadBalancers",
            "Throttling",
            400,
            failure(
                aws_sdk_elasticloadbalancingv2::Client::new(&sdk)
                    .describe_load_balancers()
                    .send()
                    .await,
            ),
        ),
        (
            "STS:GetCallerIdentity",
            "Throttling",
            400,
            failure(
                aws_sdk_sts::Client::new(&sdk)
                    .get_caller_identity()
                    .send()
                    .await,
            ),
        ),
        (
            "ECR:DescribeRepositories",
            "ThrottlingException",
            400,
            failure(
                aws_sdk_ecr::Client::new(&sdk)
                    .describe_repositories()
                    .send()
                    .await,
            ),
        ),
        (
            "ECS:ListClusters",
            "ThrottlingException",
            400,
            failure(aws_sdk_ecs::Client::new(&sdk).list_clusters().send().await),
        ),
        (
            "ACM:ListCertificates",
            "ThrottlingException",
            400,
            failure(
                aws_sdk_acm::Client::new(&sdk)
                    .list_certificates()
                    .send()
                    .await,
            ),
        ),
        (
            "CloudWatch Logs:DescribeLogGroups",
            "ThrottlingException",
            400,
            failure(
                aws_sdk_cloudwatchlogs::Client::new(&sdk)
                    .describe_log_groups()
                    .send()
                    .await,
            ),
        ),
        (
            "SageMaker:ListEndpoints",
            "ThrottlingException",
            400,
            failure(
                aws_sdk_sagemaker::Client::new(&sdk)
                    .list_endpoints()
                    .send()
                    .await,
            ),
        ),
        (
            "Lambda:ListFunctions",
            "TooManyRequestsException",
            429,
            failure(
                aws_sdk_lambda::Client::new(&sdk)
                    .list_functions()
                    .send()
                    .await,
            ),
        ),
        (
            "Route53:ListHostedZones",
            "Throttling",
            400,
            failure(
                aws_sdk_route53::Client::new(&sdk)
                    .list_hosted_zones()
                    .send()
                    .await,
            ),
        ),
        (
            "Route53:ChangeResourceRecordSets",
            "PriorRequestNotComplete",
            400,
            failure(
                aws_sdk_route53::Client::new(&sdk)
                    .change_resource_record_sets()
                    .hosted_zone_id("Z0000000000000")
                    .change_batch(cname_change("a.example.test", "b.example.test"))
                    .send()
                    .await,
            ),
        ),
        (
            "S3:ListBuckets",
            "SlowDown",
            503,
            failure(s3(&sdk).list_buckets().send().await),
        ),
    ];
    let stats = rig.proxy.stats();
    for (operation, code, status, (got_status, got_code, _)) in &checks {
        assert_eq!(
            (got_code.as_str(), *got_status),
            (*code, *status),
            "{operation}"
        );
        assert!(
            THROTTLING_ERRORS.contains(code),
            "{code} is not a throttling error to the SDK"
        );
        // Three attempts: the SDK classified the error as retryable.
        assert_eq!(stats.calls(operation), 3, "{operation}: {stats:#?}");
    }
    assert_eq!(stats.faults.throttle, 3 * checks.len() as u64);
    assert_eq!(stats.forwarded, 0);

    // At a share below one, the SDK's retries get every call through.
    rig.proxy.reset();
    rig.proxy.set_faults(Faults {
        throttle: 0.4,
        ..Faults::none()
    });
    let sdk = self::sdk(rig.proxy.url(), 8).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    for _ in 0..20 {
        ec2.describe_vpcs().send().await.unwrap();
    }
    let stats = rig.proxy.stats();
    assert!(stats.faults.throttle > 0, "{stats:#?}");
    assert_eq!(stats.forwarded, 20);
    assert_eq!(stats.total, 20 + stats.faults.throttle);
}

fn cname_change(name: &str, value: &str) -> aws_sdk_route53::types::ChangeBatch {
    cname_batch(aws_sdk_route53::types::ChangeAction::Upsert, name, value)
}

fn cname_batch(
    action: aws_sdk_route53::types::ChangeAction,
    name: &str,
    value: &str,
) -> aws_sdk_route53::types::ChangeBatch {
    use aws_sdk_route53::types::{Change, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
    ChangeBatch::builder()
        .changes(
            Change::builder()
                .action(action)
                .resource_record_set(
                    ResourceRecordSet::builder()
                        .name(name)
                        .r#type(RrType::Cname)
                        .ttl(300)
                        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_the_services_own_and_retried() {
    let rig = rig(|c| ProxyConfig {
        faults: Faults {
            server_error: 1.0,
            ..Faults::none()
        },
        ..c
    })
    .await;
    let sdk = sdk(rig.proxy.url(), 3).await;
    let checks = vec![
        (
            "EC2:DescribeVpcs",
            "InternalError",
            failure(aws_sdk_ec2::Client::new(&sdk).describe_vpcs().send().await),
        ),
        (
            "IAM:ListRoles",
            "InternalFailure",
            failure(aws_sdk_iam::Client::new(&sdk).list_roles().send().await),
        ),
        (
            "ECS:ListClusters",
            "InternalFailure",
            failure(aws_sdk_ecs::Client::new(&sdk).list_clusters().send().await),
        ),
        (
            "Lambda:ListFunctions",
            "ServiceException",
            failure(
                aws_sdk_lambda::Client::new(&sdk)
                    .list_functions()
                    .send()
                    .await,
            ),
        ),
        (
            "Route53:ListHostedZones",
            "InternalFailure",
            failure(
                aws_sdk_route53::Client::new(&sdk)
                    .list_hosted_zones()
                    .send()
                    .await,
            ),
        ),
        (
            "S3:ListBuckets",
            "InternalError",
            failure(s3(&sdk).list_buckets().send().await),
        ),
    ];
    let stats = rig.proxy.stats();
    for (operation, code, (status, got, _)) in &checks {
        assert_eq!((got.as_str(), *status), (*code, 500), "{operation}");
        assert_eq!(stats.calls(operation), 3, "{operation} was not retried");
    }
    assert_eq!(stats.faults.server_error, 3 * checks.len() as u64);
}

/// What one call through a faulty proxy came to.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Outcome {
    Ok,
    Throttled,
    ServerError,
}

async fn outcomes(url: &str, n: usize) -> Vec<Outcome> {
    let ec2 = aws_sdk_ec2::Client::new(&sdk(url, 1).await);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(match ec2.describe_vpcs().send().await {
            Ok(_) => Outcome::Ok,
            Err(e) if e.code() == Some("RequestLimitExceeded") => Outcome::Throttled,
            Err(e) if e.code() == Some("InternalError") => Outcome::ServerError,
            Err(e) => panic!("unexpected error {e:?}"),
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_come_at_their_rates_and_repeat_with_the_seed() {
    let faults = Faults {
        throttle: 0.2,
        server_error: 0.1,
        delay: 0.1,
        delay_max: Duration::from_millis(20),
        ..Faults::none()
    };
    let rig = rig(|c| ProxyConfig {
        seed: 1,
        faults: faults.clone(),
        ..c
    })
    .await;
    let first = outcomes(rig.proxy.url(), 200).await;
    let stats = rig.proxy.stats();
    let count = |o| first.iter().filter(|x| **x == o).count() as u64;
    assert_eq!(stats.faults.throttle, count(Outcome::Throttled));
    assert_eq!(stats.faults.server_error, count(Outcome::ServerError));
    // 200 calls: 40 throttled expected (sd 5.7), 16 server errors (of the 160 left; sd 3.8),
    // 20 delays (sd 4.2).
    assert!((20..=60).contains(&stats.faults.throttle), "{stats:#?}");
    assert!((5..=30).contains(&stats.faults.server_error), "{stats:#?}");
    assert!((8..=35).contains(&stats.faults.delay), "{stats:#?}");

    // The same seed and request order give the same faults, after a reset...
    rig.proxy.reset();
    assert_eq!(outcomes(rig.proxy.url(), 200).await, first);
    assert_eq!(rig.proxy.stats().faults, stats.faults);
    // ... and another seed others.
    let other = Proxy::start(ProxyConfig {
        seed: 2,
        faults,
        ..ProxyConfig::new(rig.emulator.url())
    })
    .await
    .unwrap();
    assert_ne!(outcomes(other.url(), 200).await, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_faults_spare_other_calls() {
    let rig = rig(|c| ProxyConfig {
        faults: Faults {
            throttle: 1.0,
            only: FaultFilter {
                mutating_only: true,
                services: vec!["ec2".into()],
                operations: vec![],
            },
            ..Faults::none()
        },
        ..c
    })
    .await;
    let sdk = sdk(rig.proxy.url(), 1).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    ec2.describe_vpcs().send().await.unwrap();
    aws_sdk_iam::Client::new(&sdk)
        .create_role()
        .role_name("spared")
        .assume_role_policy_document(LAMBDA_TRUST)
        .send()
        .await
        .unwrap();
    let (_, code, _) = failure(ec2.create_vpc().cidr_block("10.9.0.0/16").send().await);
    assert_eq!(code, "RequestLimitExceeded");
    assert_eq!(rig.proxy.stats().faults.throttle, 1);
}

/// VPCs of the emulator with this CIDR block, read directly (not through the proxy).
async fn vpcs_with(emulator: &Emulator, cidr: &str) -> usize {
    aws_sdk_ec2::Client::new(&sdk(emulator.url(), 1).await)
        .describe_vpcs()
        .send()
        .await
        .unwrap()
        .vpcs()
        .iter()
        .filter(|v| v.cidr_block() == Some(cidr))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_reply_leaves_the_resource_while_the_client_sees_a_failure() {
    let rig = rig(|c| ProxyConfig {
        faults: Faults {
            drop_reply: 1.0,
            drop_reply_as: DropReply::Reset,
            ..Faults::none()
        },
        ..c
    })
    .await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk(rig.proxy.url(), 1).await);

    // A closed connection: the SDK never hears of the VPC.
    let err = ec2
        .create_vpc()
        .cidr_block("10.1.0.0/16")
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "{err:?}"
    );
    assert_eq!(vpcs_with(&rig.emulator, "10.1.0.0/16").await, 1);
    // Reads are never dropped.
    ec2.describe_vpcs().send().await.unwrap();

    // A 500 instead.
    rig.proxy.set_faults(Faults {
        drop_reply: 1.0,
        drop_reply_as: DropReply::ServerError,
        ..Faults::none()
    });
    let (status, code, _) = failure(ec2.create_vpc().cidr_block("10.2.0.0/16").send().await);
    assert_eq!((status, code.as_str()), (500, "InternalError"));
    assert_eq!(vpcs_with(&rig.emulator, "10.2.0.0/16").await, 1);

    // Why creates without a client token must not be retried by the SDK: each attempt made
    // one more VPC.
    let retrying = aws_sdk_ec2::Client::new(&sdk(rig.proxy.url(), 3).await);
    let _ = failure(retrying.create_vpc().cidr_block("10.3.0.0/16").send().await);
    assert_eq!(vpcs_with(&rig.emulator, "10.3.0.0/16").await, 3);
    // The SDK retries a closed connection just the same.
    rig.proxy.set_faults(Faults {
        drop_reply: 1.0,
        drop_reply_as: DropReply::Reset,
        ..Faults::none()
    });
    let _ = failure(retrying.create_vpc().cidr_block("10.8.0.0/16").send().await);
    assert_eq!(vpcs_with(&rig.emulator, "10.8.0.0/16").await, 3);
    assert_eq!(rig.proxy.stats().dropped_replies(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_point_freezes_right_after_the_nth_mutating_call() {
    let rig = rig(|c| c).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk(rig.proxy.url(), 1).await);
    let create = |cidr: &'static str| {
        let ec2 = ec2.clone();
        async move { ec2.create_vpc().cidr_block(cidr).send().await }
    };
    rig.proxy.freeze_after(3);
    // Reads do not count.
    ec2.describe_vpcs().send().await.unwrap();
    create("10.4.0.0/16").await.unwrap();
    ec2.describe_vpcs().send().await.unwrap();
    create("10.4.0.0/16").await.unwrap();
    let third = tokio::spawn(create("10.4.0.0/16"));

    let frozen = tokio::time::timeout(Duration::from_secs(30), rig.proxy.frozen())
        .await
        .expect("the proxy freezes");
    assert_eq!(frozen.operation.as_deref(), Some("EC2:CreateVpc"));
    assert_eq!(frozen.after, 3);
    assert!(rig.proxy.is_frozen());
    // The third VPC exists, but its creator has not heard so.
    assert_eq!(vpcs_with(&rig.emulator, "10.4.0.0/16").await, 3);
    assert!(!third.is_finished());

    // Later requests, reads too, are held and never reach the emulator.
    let fourth = tokio::spawn(create("10.4.0.0/16"));
    let read = tokio::spawn({
        let ec2 = ec2.clone();
        async move { ec2.describe_vpcs().send().await }
    });
    rig.proxy.wait_held(3).await;
    assert_eq!(vpcs_with(&rig.emulator, "10.4.0.0/16").await, 3);

    // Unfreezing releases them without an answer; the fourth is never forwarded.
    rig.proxy.unfreeze();
    assert!(third.await.unwrap().is_err());
    assert!(fourth.await.unwrap().is_err());
    assert!(read.await.unwrap().is_err());
    assert_eq!(vpcs_with(&rig.emulator, "10.4.0.0/16").await, 3);
    create("10.4.0.0/16").await.unwrap();
    assert_eq!(vpcs_with(&rig.emulator, "10.4.0.0/16").await, 4);
    let stats = rig.proxy.stats();
    assert_eq!(stats.calls("EC2:CreateVpc"), 5);
    assert_eq!(stats.held, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nat_gateway_is_pending_for_its_modelled_time() {
    // 105 s and 60 s on AWS: 1.05 s and 0.6 s here.
    let rig = rig(|c| ProxyConfig {
        latency: Some(Latency::new(0.01)),
        ..c
    })
    .await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk(rig.proxy.url(), 1).await);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.5.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap();
    let subnet = ec2
        .create_subnet()
        .vpc_id(vpc)
        .cidr_block("10.5.1.0/24")
        .send()
        .await
        .unwrap();
    let subnet = subnet.subnet().unwrap().subnet_id().unwrap();
    let eip = ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .unwrap();

    let started = Instant::now();
    let nat = ec2
        .create_nat_gateway()
        .subnet_id(subnet)
        .allocation_id(eip.allocation_id().unwrap())
        .send()
        .await
        .unwrap();
    let nat = nat.nat_gateway().unwrap();
    use aws_sdk_ec2::types::NatGatewayState;
    assert_eq!(nat.state(), Some(&NatGatewayState::Pending));
    let id = nat.nat_gateway_id().unwrap().to_string();
    let state = || {
        let (ec2, id) = (ec2.clone(), id.clone());
        async move {
            ec2.describe_nat_gateways()
                .nat_gateway_ids(id)
                .send()
                .await
                .unwrap()
                .nat_gateways()[0]
                .state()
                .cloned()
        }
    };
    assert_eq!(state().await, Some(NatGatewayState::Pending));
    let available = until(started, Duration::from_secs(20), || async {
        state().await == Some(NatGatewayState::Available)
    })
    .await;
    assert!(available >= Duration::from_millis(1050), "{available:?}");

    let deleting = Instant::now();
    ec2.delete_nat_gateway()
        .nat_gateway_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(state().await, Some(NatGatewayState::Deleting));
    let deleted = until(deleting, Duration::from_secs(20), || async {
        state().await == Some(NatGatewayState::Deleted)
    })
    .await;
    assert!(deleted >= Duration::from_millis(600), "{deleted:?}");
    let stats = rig.proxy.stats();
    assert!(stats.modelled["nat_gateway"] >= 2, "{stats:#?}");
    assert!(stats.modelled["nat_gateway_delete"] >= 1, "{stats:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_role_is_not_usable_by_lambda_until_it_has_propagated() {
    // Role propagation 10 s → 1 s; Lambda Pending and InProgress 15 s → 1.5 s, long enough
    // for the calls that check them on a busy machine.
    let rig = rig(|c| ProxyConfig {
        latency: Some(
            Latency::new(0.1)
                .with(Modelled::Lambda, Duration::from_secs(15))
                .with(Modelled::LambdaUpdate, Duration::from_secs(15)),
        ),
        ..c
    })
    .await;
    let sdk = sdk(rig.proxy.url(), 1).await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let created = Instant::now();
    let role = iam
        .create_role()
        .role_name("fn-role")
        .assume_role_policy_document(LAMBDA_TRUST)
        .send()
        .await
        .unwrap();
    let role = role.role().unwrap().arn().to_string();
    let create = || {
        lambda
            .create_function()
            .function_name("f")
            .runtime(aws_sdk_lambda::types::Runtime::Python312)
            .handler("app.handler")
            .role(&role)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(empty_zip())
                    .build(),
            )
            .send()
    };
    let (status, code, message) = failure(create().await);
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (
            400,
            "InvalidParameterValueException",
            "The role defined for the function cannot be assumed by Lambda."
        )
    );
    // Retried as a client of AWS would, until the role has propagated.
    let mut function_created;
    let function = loop {
        // Taken before the call: the model starts the function's clock at its reply.
        function_created = Instant::now();
        match create().await {
            Ok(function) => break function,
            Err(e) => assert_eq!(e.code(), Some("InvalidParameterValueException")),
        }
        assert!(
            created.elapsed() < Duration::from_secs(20),
            "the role never became usable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let usable = created.elapsed();
    assert!(usable >= Duration::from_secs(1), "{usable:?}");

    use aws_sdk_lambda::types::{LastUpdateStatus, State};
    assert_eq!(function.state(), Some(&State::Pending));
    let get = || {
        let lambda = lambda.clone();
        async move {
            lambda
                .get_function_configuration()
                .function_name("f")
                .send()
                .await
                .unwrap()
        }
    };
    let fetched = lambda
        .get_function()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert_eq!(
        fetched.configuration().unwrap().state(),
        Some(&State::Pending)
    );
    // Updates are refused while the function is pending.
    let (status, code, _) = failure(
        lambda
            .update_function_configuration()
            .function_name("f")
            .timeout(10)
            .send()
            .await,
    );
    assert_eq!((status, code.as_str()), (409, "ResourceConflictException"));
    let active = until(function_created, Duration::from_secs(20), || async {
        get().await.state() == Some(&State::Active)
    })
    .await;
    assert!(active >= Duration::from_millis(1500), "{active:?}");

    let updated_at = Instant::now();
    let updated = lambda
        .update_function_configuration()
        .function_name("f")
        .timeout(10)
        .send()
        .await
        .unwrap();
    assert_eq!(
        updated.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    let (status, code, _) = failure(
        lambda
            .update_function_code()
            .function_name("f")
            .zip_file(empty_zip())
            .send()
            .await,
    );
    assert_eq!((status, code.as_str()), (409, "ResourceConflictException"));
    let done = until(updated_at, Duration::from_secs(20), || async {
        get().await.last_update_status() == Some(&LastUpdateStatus::Successful)
    })
    .await;
    assert!(done >= Duration::from_millis(1500), "{done:?}");
    let stats = rig.proxy.stats();
    assert!(stats.modelled["role_propagation"] >= 1, "{stats:#?}");
    assert!(stats.modelled["lambda"] >= 1, "{stats:#?}");
    assert!(stats.modelled["lambda_update"] >= 1, "{stats:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_slow_resource_reads_pending_for_its_modelled_time() {
    // Times: load balancer 1.5 s, interface endpoint 0.9 s, certificate 1.2 s after its
    // record, ECS deployment 1.2 s, SageMaker endpoint 3 s, role propagation 0.8 s.
    let latency = Latency::new(0.01)
        .with(Modelled::Endpoint, Duration::from_secs(300))
        .with(Modelled::RolePropagation, Duration::from_secs(80));
    let rig = rig(|c| ProxyConfig {
        latency: Some(latency.clone()),
        ..c
    })
    .await;
    assert_eq!(
        rig.proxy.latency().unwrap().scaled(Modelled::LoadBalancer),
        Duration::from_millis(1500)
    );
    let sdk = sdk(rig.proxy.url(), 1).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let acm = aws_sdk_acm::Client::new(&sdk);
    let route53 = aws_sdk_route53::Client::new(&sdk);
    let sagemaker = aws_sdk_sagemaker::Client::new(&sdk);
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let iam = aws_sdk_iam::Client::new(&sdk);

    // The network: a VPC, two subnets in two zones.
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.6.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let mut subnets = Vec::new();
    for (cidr, zone) in [("10.6.1.0/24", "us-east-1a"), ("10.6.2.0/24", "us-east-1b")] {
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(cidr)
            .availability_zone(zone)
            .send()
            .await
            .unwrap();
        subnets.push(subnet.subnet().unwrap().subnet_id().unwrap().to_string());
    }

    // Interface VPC endpoint.
    let endpoint_started = Instant::now();
    let vpce = ec2
        .create_vpc_endpoint()
        .vpc_id(&vpc)
        .service_name("com.amazonaws.us-east-1.ecr.api")
        .vpc_endpoint_type(aws_sdk_ec2::types::VpcEndpointType::Interface)
        .subnet_ids(&subnets[0])
        .send()
        .await
        .unwrap();
    let vpce = vpce.vpc_endpoint().unwrap();
    assert_eq!(vpce.state().map(|s| s.as_str()), Some("pending"));
    let vpce_id = vpce.vpc_endpoint_id().unwrap().to_string();

    // Load balancer.
    let lb_started = Instant::now();
    let lb = elb
        .create_load_balancer()
        .name("lb")
        .set_subnets(Some(subnets.clone()))
        .send()
        .await
        .unwrap();
    let lb = &lb.load_balancers()[0];
    let lb_arn = lb.load_balancer_arn().unwrap().to_string();
    use aws_sdk_elasticloadbalancingv2::types::LoadBalancerStateEnum;
    let lb_state = || async {
        elb.describe_load_balancers()
            .load_balancer_arns(&lb_arn)
            .send()
            .await
            .unwrap()
            .load_balancers()[0]
            .state()
            .and_then(|s| s.code())
            .cloned()
    };
    assert_eq!(lb_state().await, Some(LoadBalancerStateEnum::Provisioning));

    // Certificate: pending until its validation record exists, then for its time.
    use aws_sdk_acm::types::CertificateStatus;
    let cert = acm
        .request_certificate()
        .domain_name("app.example.test")
        .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
        .send()
        .await
        .unwrap();
    let cert_arn = cert.certificate_arn().unwrap().to_string();
    let describe_cert = || async {
        acm.describe_certificate()
            .certificate_arn(&cert_arn)
            .send()
            .await
            .unwrap()
            .certificate()
            .cloned()
            .unwrap()
    };
    let described = describe_cert().await;
    assert_eq!(
        described.status(),
        Some(&CertificateStatus::PendingValidation)
    );
    let record = described.domain_validation_options()[0]
        .resource_record()
        .unwrap()
        .clone();
    // An HTTPS listener cannot use it yet.
    let https_listener = || {
        elb.create_listener()
            .load_balancer_arn(&lb_arn)
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Https)
            .port(443)
            .certificates(
                aws_sdk_elasticloadbalancingv2::types::Certificate::builder()
                    .certificate_arn(&cert_arn)
                    .build(),
            )
            .default_actions(
                aws_sdk_elasticloadbalancingv2::types::Action::builder()
                    .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::FixedResponse)
                    .fixed_response_config(
                        aws_sdk_elasticloadbalancingv2::types::FixedResponseActionConfig::builder()
                            .status_code("404")
                            .build(),
                    )
                    .build(),
            )
            .send()
    };
    let (status, code, _) = failure(https_listener().await);
    assert_eq!((status, code.as_str()), (400, "UnsupportedCertificate"));

    // SageMaker: the new role is refused at first.
    let role_created = Instant::now();
    let role = iam
        .create_role()
        .role_name("sm-role")
        .assume_role_policy_document(SAGEMAKER_TRUST)
        .send()
        .await
        .unwrap();
    let role = role.role().unwrap().arn().to_string();
    let create_model = || {
        sagemaker
            .create_model()
            .model_name("m")
            .execution_role_arn(&role)
            .primary_container(
                aws_sdk_sagemaker::types::ContainerDefinition::builder()
                    .image("123456789012.dkr.ecr.us-east-1.amazonaws.com/m:1")
                    .build(),
            )
            .send()
    };
    let (status, code, message) = failure(create_model().await);
    assert_eq!((status, code.as_str()), (400, "ValidationException"));
    assert!(message.starts_with("Could not assume role"), "{message}");

    // ECS: a new service runs no task until its deployment's time has passed.
    ecs.create_cluster().cluster_name("c").send().await.unwrap();
    ecs.register_task_definition()
        .family("t")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("app:1")
                .memory(512)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let service_started = Instant::now();
    let service = ecs
        .create_service()
        .cluster("c")
        .service_name("s")
        .task_definition("t")
        .desired_count(1)
        .send()
        .await
        .unwrap();
    let running = |s: &aws_sdk_ecs::types::Service| {
        let primary = s
            .deployments()
            .iter()
            .find(|d| d.status() == Some("PRIMARY"))
            .unwrap();
        (s.running_count(), primary.running_count())
    };
    assert_eq!(running(service.service().unwrap()), (0, 0));
    assert_eq!(
        service.service().unwrap().deployments()[0].rollout_state(),
        Some(&aws_sdk_ecs::types::DeploymentRolloutState::InProgress)
    );
    let describe_service = || async {
        ecs.describe_services()
            .cluster("c")
            .services("s")
            .send()
            .await
            .unwrap()
            .services()[0]
            .clone()
    };
    assert_eq!(running(&describe_service().await), (0, 0));

    // Now the clocks: the role...
    let usable = until(role_created, Duration::from_secs(20), || async {
        create_model().await.is_ok()
    })
    .await;
    assert!(usable >= Duration::from_millis(800), "{usable:?}");
    sagemaker
        .create_endpoint_config()
        .endpoint_config_name("ec")
        .production_variants(
            aws_sdk_sagemaker::types::ProductionVariant::builder()
                .variant_name("v")
                .model_name("m")
                .serverless_config(
                    aws_sdk_sagemaker::types::ProductionVariantServerlessConfig::builder()
                        .memory_size_in_mb(2048)
                        .max_concurrency(1)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let endpoint_created = Instant::now();
    sagemaker
        .create_endpoint()
        .endpoint_name("e")
        .endpoint_config_name("ec")
        .send()
        .await
        .unwrap();
    use aws_sdk_sagemaker::types::EndpointStatus;
    let endpoint_status = || async {
        sagemaker
            .describe_endpoint()
            .endpoint_name("e")
            .send()
            .await
            .unwrap()
            .endpoint_status()
            .cloned()
    };
    assert_eq!(endpoint_status().await, Some(EndpointStatus::Creating));

    // ... the interface endpoint, the load balancer, the ECS deployment...
    let vpce_ready = until(endpoint_started, Duration::from_secs(20), || async {
        let out = ec2
            .describe_vpc_endpoints()
            .vpc_endpoint_ids(&vpce_id)
            .send()
            .await
            .unwrap();
        out.vpc_endpoints()[0].state().map(|s| s.as_str()) == Some("available")
    })
    .await;
    assert!(vpce_ready >= Duration::from_millis(900), "{vpce_ready:?}");
    let lb_ready = until(lb_started, Duration::from_secs(20), || async {
        lb_state().await == Some(LoadBalancerStateEnum::Active)
    })
    .await;
    assert!(lb_ready >= Duration::from_millis(1500), "{lb_ready:?}");
    let service_ready = until(service_started, Duration::from_secs(20), || async {
        running(&describe_service().await) == (1, 1)
    })
    .await;
    assert!(
        service_ready >= Duration::from_millis(1200),
        "{service_ready:?}"
    );

    // ... the certificate: still pending long after its time, since no record exists; then
    // issued its time after the record was created.
    assert!(lb_started.elapsed() > Duration::from_millis(1200));
    assert_eq!(
        describe_cert().await.status(),
        Some(&CertificateStatus::PendingValidation)
    );
    let zone = route53
        .create_hosted_zone()
        .name("example.test")
        .caller_reference("proxy-test")
        .send()
        .await
        .unwrap();
    let record_created = Instant::now();
    route53
        .change_resource_record_sets()
        .hosted_zone_id(zone.hosted_zone().unwrap().id())
        .change_batch(cname_change(record.name(), record.value()))
        .send()
        .await
        .unwrap();
    let issued = until(record_created, Duration::from_secs(20), || async {
        describe_cert().await.status() == Some(&CertificateStatus::Issued)
    })
    .await;
    assert!(issued >= Duration::from_millis(1200), "{issued:?}");
    https_listener().await.unwrap();
    // Issued stays issued, whatever happens to the record afterwards.
    route53
        .change_resource_record_sets()
        .hosted_zone_id(zone.hosted_zone().unwrap().id())
        .change_batch(cname_batch(
            aws_sdk_route53::types::ChangeAction::Delete,
            record.name(),
            record.value(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe_cert().await.status(),
        Some(&CertificateStatus::Issued)
    );

    // ... and the endpoint.
    let in_service = until(endpoint_created, Duration::from_secs(20), || async {
        endpoint_status().await == Some(EndpointStatus::InService)
    })
    .await;
    assert!(in_service >= Duration::from_millis(3000), "{in_service:?}");

    let modelled = rig.proxy.stats().modelled;
    for kind in [
        "vpc_endpoint",
        "load_balancer",
        "certificate",
        "endpoint",
        "ecs_deployment",
        "role_propagation",
    ] {
        assert!(
            modelled.get(kind).is_some_and(|n| *n > 0),
            "{kind}: {modelled:?}"
        );
    }
}

/// One HTTP/1.1 request on a fresh connection: status and body.
async fn raw(addr: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_and_is_controlled_over_http() {
    let emulator = tokio::task::spawn_blocking(Emulator::start)
        .await
        .unwrap()
        .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_provision-proxy"))
        .args([
            "--upstream",
            emulator.url(),
            "--seed",
            "3",
            "--latency-scale",
            "0.01",
            "--latency",
            "nat_gateway=30",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = stdout.next_line().await.unwrap().unwrap();
    let addr = url.trim_start_matches("http://").to_string();

    let sdk = sdk(&url, 1).await;
    aws_sdk_sts::Client::new(&sdk)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    let (status, body) = raw(&addr, "GET", "/__proxy/stats").await;
    assert_eq!(status, 200, "{body}");
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["total"], 1, "{stats}");
    assert_eq!(stats["operations"]["STS:GetCallerIdentity"]["calls"], 1);
    assert_eq!(
        stats["operations"]["STS:GetCallerIdentity"]["mutating"],
        false
    );

    let (status, body) = raw(&addr, "GET", "/__proxy/model").await;
    assert_eq!(status, 200);
    let model: serde_json::Value = serde_json::from_str(&body).unwrap();
    let nat = model
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["kind"] == "nat_gateway")
        .unwrap();
    assert_eq!(nat["aws_seconds"], 30.0);
    assert_eq!(nat["scaled_seconds"], 0.3);

    // The kill point over HTTP.
    assert_eq!(raw(&addr, "POST", "/__proxy/freeze?after=1").await.0, 200);
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let create =
        tokio::spawn(async move { ec2.create_vpc().cidr_block("10.7.0.0/16").send().await });
    let (status, body) = raw(&addr, "GET", "/__proxy/frozen?timeout_ms=30000").await;
    assert_eq!(status, 200, "{body}");
    let frozen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(frozen["operation"], "EC2:CreateVpc");
    // The emulator's own API is never held, faulted or counted.
    assert_eq!(raw(&addr, "POST", "/moto-api/reset").await.0, 200);
    assert_eq!(raw(&addr, "POST", "/__proxy/unfreeze").await.0, 200);
    assert!(create.await.unwrap().is_err());

    let (status, _) = raw(&addr, "POST", "/__proxy/faults?throttle=1&services=sts").await;
    assert_eq!(status, 200);
    let (_, code, _) = failure(
        aws_sdk_sts::Client::new(&sdk)
            .get_caller_identity()
            .send()
            .await,
    );
    assert_eq!(code, "Throttling");
    let (status, _) = raw(&addr, "POST", "/__proxy/faults?throttle=2").await;
    assert_eq!(status, 400);

    assert_eq!(raw(&addr, "POST", "/__proxy/reset").await.0, 200);
    let (_, body) = raw(&addr, "GET", "/__proxy/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["total"], 0, "{stats}");

    // Strict mode: off unless asked for, then switched on over HTTP; a refusal shows in the
    // stats under its rule.
    let strict = |body: String| serde_json::from_str::<serde_json::Value>(&body).unwrap();
    let (status, body) = raw(&addr, "GET", "/__proxy/strict").await;
    assert_eq!(
        (status, strict(body)),
        (
            200,
            serde_json::json!({"rules": false, "injections": false})
        )
    );
    let (status, body) = raw(&addr, "POST", "/__proxy/strict?mode=rules").await;
    assert_eq!(
        (status, strict(body)),
        (200, serde_json::json!({"rules": true, "injections": false}))
    );
    assert_eq!(
        raw(&addr, "POST", "/__proxy/strict?mode=loose").await.0,
        400
    );
    let refused = aws_sdk_iam::Client::new(&sdk)
        .create_role()
        .role_name("a role")
        .assume_role_policy_document(LAMBDA_TRUST)
        .send()
        .await;
    assert_eq!(failure(refused).1, "ValidationError");
    let (_, body) = raw(&addr, "GET", "/__proxy/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["strict"]["refused"]["iam.role_name"], 1, "{stats}");

    // --print-model gives the same table for a benchmark's critical path, unscaled.
    let printed = tokio::process::Command::new(env!("CARGO_BIN_EXE_provision-proxy"))
        .args(["--print-model", "--latency", "endpoint=600"])
        .output()
        .await
        .unwrap();
    assert!(printed.status.success());
    let table: serde_json::Value = serde_json::from_slice(&printed.stdout).unwrap();
    let endpoint = table
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["kind"] == "endpoint")
        .unwrap();
    assert_eq!(endpoint["aws_seconds"], 600.0);
    child.kill().await.unwrap();
}

/// A proxy in strict mode `strict` and an SDK with one attempt per call, so each refusal and
/// injection is seen as the client gets it.
async fn strict_rig(strict: provision_testkit::proxy::Strict) -> (Rig, SdkConfig) {
    let rig = rig(|c| ProxyConfig {
        strict: Some(strict),
        ..c
    })
    .await;
    let sdk = sdk(rig.proxy.url(), 1).await;
    (rig, sdk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_rules_refuse_what_aws_refuses_in_each_services_wire_shape() {
    use provision_testkit::proxy::Strict;
    let (rig, sdk) = strict_rig(Strict {
        rules: true,
        injections: false,
    })
    .await;
    let direct = self::sdk(rig.emulator.url(), 1).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.7.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();

    // EC2 (its own query dialect): an apostrophe in a security group description.
    let sg = |description: &'static str| {
        ec2.create_security_group()
            .vpc_id(&vpc)
            .group_name("app-alb")
            .description(description)
            .send()
    };
    assert_eq!(
        failure(sg("The app's load balancer").await),
        (
            400,
            "InvalidParameterValue".into(),
            "Invalid security group description. Valid descriptions are strings less than 256 characters from the following set:  a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*".into()
        )
    );
    // Nothing was forwarded: the group does not exist.
    let groups = aws_sdk_ec2::Client::new(&sdk)
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values("app-alb")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(groups.security_groups().is_empty());
    sg("The load balancer").await.unwrap();

    // IAM (query XML with <Type>Sender</Type>).
    let (status, code, message) = failure(
        aws_sdk_iam::Client::new(&sdk)
            .create_role()
            .role_name("app role")
            .assume_role_policy_document(LAMBDA_TRUST)
            .send()
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "ValidationError"));
    assert!(message.contains("'roleName'"), "{message}");

    // ELBv2 (query XML).
    let (status, code, _) = failure(
        aws_sdk_elasticloadbalancingv2::Client::new(&sdk)
            .create_target_group()
            .name("app_targets")
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
            .port(8501)
            .vpc_id(&vpc)
            .send()
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "ValidationError"));

    // ACM (JSON 1.1 `__type`).
    let acm = aws_sdk_acm::Client::new(&sdk);
    let err = acm
        .request_certificate()
        .domain_name("app.example.test")
        .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
        .idempotency_token("app-example-test")
        .send()
        .await
        .expect_err("a hyphen is not \\w");
    assert_eq!(err.code(), Some("ValidationException"));

    // ECS: typed by the SDK as its ClientException.
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let err = ecs
        .register_task_definition()
        .family("app")
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .cpu("512")
        .memory("512")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("app:1")
                .build(),
        )
        .send()
        .await
        .expect_err("512 CPU with 512 MiB is no Fargate size");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_client_exception()),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some(
            "No Fargate configuration exists for given values: 512 CPU, 512 memory. See the Amazon ECS documentation for the valid values."
        )
    );
    // ... and its tags rule, typed as InvalidParameterException.
    let err = ecs
        .create_cluster()
        .cluster_name("c")
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("aws:owner")
                .value("me")
                .build(),
        )
        .send()
        .await
        .expect_err("aws: is reserved");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_exception()),
        "{err:?}"
    );

    // Lambda (REST-JSON with x-amzn-ErrorType).
    let (status, code, _) = failure(
        aws_sdk_lambda::Client::new(&sdk)
            .create_function()
            .function_name("f")
            .runtime(aws_sdk_lambda::types::Runtime::Python312)
            .handler("app.handler")
            .role("arn:aws:iam::123456789012:role/r")
            .memory_size(64)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(empty_zip())
                    .build(),
            )
            .send()
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "ValidationException"));

    // SageMaker (JSON 1.1).
    let (status, code, message) = failure(
        aws_sdk_sagemaker::Client::new(&sdk)
            .create_endpoint_config()
            .endpoint_config_name("c")
            .production_variants(
                aws_sdk_sagemaker::types::ProductionVariant::builder()
                    .variant_name("AllTraffic")
                    .model_name("m")
                    .serverless_config(
                        aws_sdk_sagemaker::types::ProductionVariantServerlessConfig::builder()
                            .memory_size_in_mb(3000)
                            .max_concurrency(1)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "ValidationException"));
    assert!(message.contains("memorySizeInMB"), "{message}");

    // CloudWatch Logs and ECR (JSON 1.1).
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    logs.create_log_group()
        .log_group_name("/ecs/app")
        .send()
        .await
        .unwrap();
    let err = logs
        .put_retention_policy()
        .log_group_name("/ecs/app")
        .retention_in_days(31)
        .send()
        .await
        .expect_err("31 days is no retention period");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_exception()),
        "{err:?}"
    );
    let err = aws_sdk_ecr::Client::new(&sdk)
        .create_repository()
        .repository_name("App")
        .send()
        .await
        .expect_err("repository names are lowercase");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_exception()),
        "{err:?}"
    );

    // Route 53 (REST-XML): a CNAME at the apex of a zone made without the proxy.
    let zone = aws_sdk_route53::Client::new(&direct)
        .create_hosted_zone()
        .name("example.test")
        .caller_reference("strict")
        .send()
        .await
        .unwrap();
    let zone = zone.hosted_zone().unwrap().id().to_string();
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
    };
    let cname = |name: &str| {
        ChangeBatch::builder()
            .changes(
                Change::builder()
                    .action(ChangeAction::Upsert)
                    .resource_record_set(
                        ResourceRecordSet::builder()
                            .name(name)
                            .r#type(RrType::Cname)
                            .ttl(300)
                            .resource_records(
                                ResourceRecord::builder()
                                    .value("lb.example.net")
                                    .build()
                                    .unwrap(),
                            )
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let route53 = aws_sdk_route53::Client::new(&sdk);
    let err = route53
        .change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(cname("example.test."))
        .send()
        .await
        .expect_err("no CNAME at the apex");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_change_batch()),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some(
            "[RRSet of type CNAME with DNS name example.test. is not permitted at apex in zone example.test.]"
        )
    );
    route53
        .change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(cname("www.example.test."))
        .send()
        .await
        .unwrap();

    let stats = rig.proxy.stats();
    for rule in [
        "ec2.security_group_description",
        "iam.role_name",
        "elbv2.target_group_name",
        "acm.idempotency_token",
        "ecs.fargate_task_size",
        "tags.aws_prefix",
        "lambda.memory_size",
        "sagemaker.serverless_memory",
        "logs.retention_in_days",
        "ecr.repository_name",
        "route53.cname_at_apex",
    ] {
        assert_eq!(
            stats.strict.refused.get(rule),
            Some(&1),
            "{rule}: {:#?}",
            stats.strict
        );
    }
    assert_eq!(stats.strict.refusals(), 11, "{:#?}", stats.strict);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acm_answers_a_token_seen_within_the_hour_with_its_first_certificate_even_deleted() {
    use provision_testkit::proxy::Strict;
    let (rig, sdk) = strict_rig(Strict::all()).await;
    let acm = aws_sdk_acm::Client::new(&sdk);
    let request = || {
        acm.request_certificate()
            .domain_name("app.example.test")
            .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
            .idempotency_token("provisionlocal")
            .send()
    };
    let first = request()
        .await
        .unwrap()
        .certificate_arn()
        .unwrap()
        .to_string();
    acm.delete_certificate()
        .certificate_arn(&first)
        .send()
        .await
        .unwrap();
    let again = request()
        .await
        .unwrap()
        .certificate_arn()
        .unwrap()
        .to_string();
    assert_eq!(again, first, "ACM remembers the token for an hour");
    let gone = acm
        .describe_certificate()
        .certificate_arn(&again)
        .send()
        .await;
    assert_eq!(failure(gone).1, "ResourceNotFoundException");
    let stats = rig.proxy.stats();
    assert_eq!(
        stats
            .strict
            .replayed
            .get("acm_idempotency_token_deleted_certificate"),
        Some(&1),
        "{:#?}",
        stats.strict
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_injections_come_once_per_new_resource_in_each_services_wire_shape() {
    use provision_testkit::proxy::{Injection, Strict};
    let (rig, sdk) = strict_rig(Strict {
        rules: false,
        injections: true,
    })
    .await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);

    /// The error of the first try, then the retry's success.
    macro_rules! once {
        ($call:expr, $status:expr, $code:expr, $message:expr) => {{
            let (status, code, message) = failure($call.send().await);
            assert_eq!((status, code.as_str()), ($status, $code), "{message}");
            let expected: String = $message;
            assert!(
                message.starts_with(&expected),
                "{message:?} is not {expected:?}"
            );
            $call.send().await.expect("the retry goes through")
        }};
    }

    let vpc = ec2
        .create_vpc()
        .cidr_block("10.8.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    once!(
        ec2.modify_vpc_attribute()
            .vpc_id(&vpc)
            .enable_dns_hostnames(
                aws_sdk_ec2::types::AttributeBooleanValue::builder()
                    .value(true)
                    .build()
            ),
        400,
        "InvalidVpcID.NotFound",
        format!("The vpc ID '{vpc}' does not exist")
    );
    once!(
        ec2.create_tags().resources(&vpc).tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("Name")
                .value("v")
                .build()
        ),
        400,
        "InvalidVpcID.NotFound",
        format!("The vpc ID '{vpc}' does not exist")
    );
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.8.1.0/24")
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap();
    let subnet = subnet.subnet().unwrap().subnet_id().unwrap().to_string();
    let subnet_b = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.8.2.0/24")
        .availability_zone("us-east-1b")
        .send()
        .await
        .unwrap();
    let subnet_b = subnet_b.subnet().unwrap().subnet_id().unwrap().to_string();
    once!(
        ec2.modify_subnet_attribute()
            .subnet_id(&subnet)
            .map_public_ip_on_launch(
                aws_sdk_ec2::types::AttributeBooleanValue::builder()
                    .value(true)
                    .build()
            ),
        400,
        "InvalidSubnetID.NotFound",
        format!("The subnet ID '{subnet}' does not exist")
    );
    let group = ec2
        .create_security_group()
        .vpc_id(&vpc)
        .group_name("g")
        .description("g")
        .send()
        .await
        .unwrap();
    let group = group.group_id().unwrap().to_string();
    once!(
        ec2.authorize_security_group_ingress()
            .group_id(&group)
            .ip_protocol("tcp")
            .from_port(443)
            .to_port(443)
            .cidr_ip("0.0.0.0/0"),
        400,
        "InvalidGroup.NotFound",
        format!("The security group '{group}' does not exist")
    );
    let igw = ec2.create_internet_gateway().send().await.unwrap();
    let igw = igw
        .internet_gateway()
        .unwrap()
        .internet_gateway_id()
        .unwrap()
        .to_string();
    once!(
        ec2.attach_internet_gateway()
            .internet_gateway_id(&igw)
            .vpc_id(&vpc),
        400,
        "InvalidInternetGatewayID.NotFound",
        format!("The internetGateway ID '{igw}' does not exist")
    );
    let table = ec2.create_route_table().vpc_id(&vpc).send().await.unwrap();
    let table = table
        .route_table()
        .unwrap()
        .route_table_id()
        .unwrap()
        .to_string();
    once!(
        ec2.create_route()
            .route_table_id(&table)
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id(&igw),
        400,
        "InvalidRouteTableID.NotFound",
        format!("The routeTable ID '{table}' does not exist")
    );
    // Once per resource: the association of the same table goes through at once.
    ec2.associate_route_table()
        .route_table_id(&table)
        .subnet_id(&subnet)
        .send()
        .await
        .unwrap();

    // IAM propagation, as Lambda (REST-JSON) and SageMaker (JSON 1.1) report it.
    let iam = aws_sdk_iam::Client::new(&sdk);
    let role = iam
        .create_role()
        .role_name("fn-role")
        .assume_role_policy_document(LAMBDA_TRUST)
        .send()
        .await
        .unwrap();
    let role = role.role().unwrap().arn().to_string();
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    once!(
        lambda
            .create_function()
            .function_name("f")
            .runtime(aws_sdk_lambda::types::Runtime::Python312)
            .handler("app.handler")
            .role(&role)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(empty_zip())
                    .build()
            ),
        400,
        "InvalidParameterValueException",
        "The role defined for the function cannot be assumed by Lambda.".to_string()
    );
    let sm_role = iam
        .create_role()
        .role_name("sm-role")
        .assume_role_policy_document(SAGEMAKER_TRUST)
        .send()
        .await
        .unwrap();
    let sm_role = sm_role.role().unwrap().arn().to_string();
    let sagemaker = aws_sdk_sagemaker::Client::new(&sdk);
    let create_model = || {
        sagemaker
            .create_model()
            .model_name("m")
            .execution_role_arn(&sm_role)
            .primary_container(
                aws_sdk_sagemaker::types::ContainerDefinition::builder()
                    .image("123456789012.dkr.ecr.us-east-1.amazonaws.com/m:1")
                    .model_data_url("s3://models/m.tar.gz")
                    .build(),
            )
            .send()
    };
    let (status, code, message) = failure(create_model().await);
    assert_eq!((status, code.as_str()), (400, "ValidationException"));
    assert!(
        message.starts_with(&format!("Could not assume role {sm_role}.")),
        "{message}"
    );
    let (status, code, message) = failure(create_model().await);
    assert_eq!((status, code.as_str()), (400, "ValidationException"));
    assert!(
        message.starts_with("Could not access model data at s3://models/m.tar.gz."),
        "{message}"
    );
    create_model().await.unwrap();

    // ELBv2: a certificate issued moments ago is not found yet.
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let lb = elb
        .create_load_balancer()
        .name("lb")
        .subnets(&subnet)
        .subnets(&subnet_b)
        .send()
        .await
        .unwrap();
    let lb = lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let target_group = elb
        .create_target_group()
        .name("tg")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(8501)
        .vpc_id(&vpc)
        .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Ip)
        .send()
        .await
        .unwrap();
    let target_group = target_group.target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let cert = aws_sdk_acm::Client::new(&sdk)
        .request_certificate()
        .domain_name("app.example.test")
        .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
        .send()
        .await
        .unwrap();
    let cert = cert.certificate_arn().unwrap().to_string();
    let err = elb
        .create_listener()
        .load_balancer_arn(&lb)
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Https)
        .port(443)
        .certificates(
            aws_sdk_elasticloadbalancingv2::types::Certificate::builder()
                .certificate_arn(&cert)
                .build(),
        )
        .default_actions(
            aws_sdk_elasticloadbalancingv2::types::Action::builder()
                .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
                .target_group_arn(&target_group)
                .build(),
        )
        .send()
        .await
        .expect_err("the new certificate is not found yet");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_certificate_not_found_exception()),
        "{err:?}"
    );
    assert_eq!(
        err.message(),
        Some(format!("Certificate '{cert}' not found").as_str())
    );

    // ECS on a fresh account, a new cluster, a new target group.
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    once!(
        ecs.create_cluster().cluster_name("c"),
        400,
        "InvalidParameterException",
        "Unable to assume the service linked role. Please verify that the ECS service linked role exists.".to_string()
    );
    ecs.register_task_definition()
        .family("t")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("app:1")
                .memory(512)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let create_service = || {
        ecs.create_service()
            .cluster("c")
            .service_name("s")
            .task_definition("t")
            .desired_count(1)
            .load_balancers(
                aws_sdk_ecs::types::LoadBalancer::builder()
                    .target_group_arn(&target_group)
                    .container_name("app")
                    .container_port(8501)
                    .build(),
            )
            .send()
    };
    let err = create_service().await.expect_err("the service-linked role");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_exception()),
        "{err:?}"
    );
    assert!(
        err.message()
            .unwrap_or("")
            .starts_with("Unable to assume the service linked role")
    );
    let err = create_service().await.expect_err("the new cluster");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_cluster_not_found_exception()),
        "{err:?}"
    );
    let err = create_service().await.expect_err("the new target group");
    assert_eq!(
        err.message(),
        Some(format!("The target group with targetGroupArn {target_group} does not have an associated load balancer.").as_str())
    );
    create_service().await.unwrap();

    let stats = rig.proxy.stats();
    let expected: std::collections::BTreeMap<String, u64> = Injection::ALL
        .iter()
        .map(|i| {
            let n = if *i == Injection::EcsServiceLinkedRole {
                2
            } else {
                1
            };
            (i.name().to_string(), n)
        })
        .collect();
    assert_eq!(stats.strict.injected, expected);
    assert_eq!(stats.strict.refusals(), 0);
}
