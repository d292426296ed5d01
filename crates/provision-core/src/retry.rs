//! Retrying what AWS fails for a while and then does: one module, named policies.
//!
//! Modelled on terraform-provider-aws's `internal/tfresource/retry.go`
//! (`RetryWhenAWSErrCodeEquals`, `RetryWhenAWSErrMessageContains`, `RetryWhenNewResourceNotFound`):
//! a [`Policy`] says which errors are transient (codes, code suffixes, message fragments), for
//! which operations, and for how long (a [`Timeout`] the user can raise with `--timeout`).
//! [`retry`] runs an operation under a set of policies; the first policy that matches an error
//! decides whether to wait and try again. Errors no policy matches are returned at once.
//!
//! The policies themselves name AWS error codes, so they live with the AWS layer
//! (`provision_aws::retry`); this module is the mechanism, and holds the engine's generic ones:
//! [`TRANSIENT`] (reads and deletes) and [`LOST_REPLY`] with [`create_or_find`] (creates).

use std::future::Future;
use std::time::{Duration, Instant};

use crate::resource::{Cx, ErrorClass, ResourceError};
use crate::wait::{Backoff, Timeout, human};

/// What an error must look like for a policy to retry it.
#[derive(Clone, Copy, Debug)]
pub enum Match {
    /// The AWS error code is exactly this (`InvalidRouteTableID.NotFound`).
    Code(&'static str),
    /// The AWS error code ends with this (`.NotFound`).
    CodeSuffix(&'static str),
    /// The code is this (any code when `None`) and the message contains the fragment:
    /// services report IAM propagation and the like only in the message.
    Message {
        code: Option<&'static str>,
        contains: &'static str,
    },
    /// The error's class (throttling and connection errors are [`ErrorClass::Transient`]).
    Class(ErrorClass),
}

impl Match {
    pub fn matches(&self, e: &ResourceError) -> bool {
        match self {
            Match::Code(c) => e.code.as_deref() == Some(*c),
            Match::CodeSuffix(s) => e.code.as_deref().is_some_and(|c| c.ends_with(s)),
            Match::Message { code, contains } => {
                code.is_none_or(|c| e.code.as_deref() == Some(c)) && e.message.contains(contains)
            }
            Match::Class(class) => e.class == *class,
        }
    }
}

/// A named rule for riding out one kind of transient error.
#[derive(Debug)]
pub struct Policy {
    /// Short and stable, for logs and tests: `ec2-propagation`.
    pub name: &'static str,
    /// Why the error is transient, for the progress line (`EC2 has not propagated the new id yet`).
    pub why: &'static str,
    /// The operations it applies to, as `service:Operation`; empty for any operation.
    pub operations: &'static [&'static str],
    /// Any of these makes an error retryable under this policy.
    pub matches: &'static [Match],
    /// How long, counted from the first error it matched.
    pub timeout: Timeout,
    pub backoff: Backoff,
}

impl Policy {
    /// Whether this policy retries `e`.
    pub fn applies(&self, e: &ResourceError) -> bool {
        let operation_ok = self.operations.is_empty()
            || e.operation()
                .is_some_and(|op| self.operations.contains(&op));
        operation_ok && self.matches.iter().any(|m| m.matches(e))
    }
}

/// Throttling, 5xx and connection errors that got past the SDK's own retries: a few more tries
/// with a longer backoff, then the error.
pub const TRANSIENT: Policy = Policy {
    name: "transient",
    why: "AWS answered with a transient error",
    operations: &[],
    matches: &[Match::Class(ErrorClass::Transient)],
    timeout: Timeout::new(
        "transient",
        Duration::from_secs(60),
        "throttling and server errors that outlast the SDK's own retries",
    ),
    backoff: Backoff {
        first: Duration::ZERO,
        initial: Duration::from_millis(800),
        max: Duration::from_secs(10),
        factor: 2.0,
    },
};

/// A create that failed with a transient error, or with "already exists", may have happened
/// though its reply was lost: the engine looks the resource up before trying again, and adopts
/// what it finds (see [`create_or_find`]). A conflict ([`ErrorClass::Conflict`]) is never taken
/// for this: something else is changing a resource of that name, which is not ours to adopt.
/// terraform-provider-aws does the same for creates it cannot make idempotent
/// (`tfresource.RetryWhenNotFound` after a create, internal/tfresource/retry.go).
pub const LOST_REPLY: Policy = Policy {
    name: "lost-reply",
    why: "the create may have happened though its reply was lost",
    operations: &[],
    matches: &[
        Match::Class(ErrorClass::Transient),
        Match::Class(ErrorClass::AlreadyExists),
    ],
    // The same deadline as other transient errors (`--timeout transient=`).
    timeout: TRANSIENT.timeout,
    backoff: Backoff {
        first: Duration::ZERO,
        initial: Duration::from_millis(500),
        max: Duration::from_secs(16),
        factor: 2.0,
    },
};

/// How [`create_or_find`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Created<T> {
    /// The create call answered.
    New(T),
    /// A create's reply was lost (or the resource was there already): found by looking it up.
    Found(T),
}

/// Creates under [`LOST_REPLY`]: on an error the policy matches, looks the resource up with
/// `find` first, and returns what it finds; else waits and creates again, until the policy's
/// deadline. Any other error, from either call, is returned at once.
pub async fn create_or_find<T, C, CF, F, FF>(
    cx: &Cx,
    mut create: C,
    mut find: F,
) -> Result<Created<T>, ResourceError>
where
    C: FnMut() -> CF,
    CF: Future<Output = Result<T, ResourceError>>,
    F: FnMut() -> FF,
    FF: Future<Output = Result<Option<T>, ResourceError>>,
{
    let policy = &LOST_REPLY;
    let since = Instant::now();
    let mut delay = policy.backoff.initial;
    let mut attempts = 0u32;
    loop {
        let e = match create().await {
            Ok(v) => return Ok(Created::New(v)),
            Err(e) => e,
        };
        if !policy.applies(&e) {
            return Err(e);
        }
        match find().await {
            Ok(Some(found)) => {
                tracing::debug!(
                    target: "provision::engine",
                    id = %cx.id(),
                    after = %e.message,
                    "found what an earlier attempt created"
                );
                return Ok(Created::Found(found));
            }
            Ok(None) => {}
            Err(f) if f.is_transient() => {}
            Err(f) => return Err(f),
        }
        let waited = since.elapsed();
        let deadline = cx.timeout(&policy.timeout);
        if waited >= deadline {
            return Err(gave_up(e, policy, waited));
        }
        attempts += 1;
        tracing::debug!(
            target: "provision::engine",
            id = %cx.id(),
            policy = policy.name,
            attempt = attempts,
            code = e.code.as_deref().unwrap_or(""),
            error = %e.message,
            "not found after a failed create; creating again"
        );
        cx.progress(format!("retrying after: {}", e.message));
        let remaining = deadline.saturating_sub(waited);
        cx.sleep(
            cx.scaled(delay)
                .min(remaining.max(Duration::from_millis(10))),
        )
        .await?;
        delay = delay.mul_f64(policy.backoff.factor).min(policy.backoff.max);
    }
}

/// Runs `call` until it succeeds, fails with an error none of `policies` retries, or the
/// deadline of the policy that matched passes. Each retry is reported as progress, naming the
/// policy, so a slow run says why it is slow.
pub async fn retry<T, F, Fut>(
    cx: &Cx,
    policies: &[&Policy],
    mut call: F,
) -> Result<T, ResourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ResourceError>>,
{
    // Each policy's clock starts at the first error it matched.
    let mut started: Vec<Option<(Instant, Duration)>> = vec![None; policies.len()];
    let mut attempts = 0u32;
    loop {
        let e = match call().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(i) = policies.iter().position(|p| p.applies(&e)) else {
            return Err(e);
        };
        let policy = policies[i];
        let now = Instant::now();
        let (since, delay) = *started[i].get_or_insert((now, policy.backoff.initial));
        let waited = now.duration_since(since);
        let deadline = cx.timeout(&policy.timeout);
        if waited >= deadline {
            return Err(gave_up(e, policy, waited));
        }
        attempts += 1;
        tracing::debug!(
            target: "provision::engine",
            id = %cx.id(),
            policy = policy.name,
            attempt = attempts,
            code = e.code.as_deref().unwrap_or(""),
            operation = e.operation().unwrap_or(""),
            request_id = e.request_id().unwrap_or(""),
            error = %e.message,
            "retrying"
        );
        cx.progress(format!(
            "retrying ({}; {} so far): {}",
            policy.why,
            human(waited),
            e.message
        ));
        let pause = if attempts == 1 && !policy.backoff.first.is_zero() {
            policy.backoff.first
        } else {
            delay
        };
        let remaining = deadline.saturating_sub(waited);
        cx.sleep(
            cx.scaled(pause)
                .min(remaining.max(Duration::from_millis(10))),
        )
        .await?;
        if let Some((_, d)) = started[i].as_mut() {
            *d = d.mul_f64(policy.backoff.factor).min(policy.backoff.max);
        }
    }
}

/// The error a policy stops retrying with: the last error, and how to allow more time.
fn gave_up(mut e: ResourceError, policy: &Policy, waited: Duration) -> ResourceError {
    let key = policy.timeout.key;
    e.message = format!(
        "{} (still failing after {} of retries: {})",
        e.message,
        human(waited),
        policy.why
    );
    let more =
        format!("allow more time with --timeout {key}=<minutes>m, or rerun: nothing is lost");
    e.hint = Some(match e.hint.take() {
        Some(h) => format!("{h}; {more}"),
        None => more,
    });
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{RunSettings, Stack};
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    const NOT_FOUND: Policy = Policy {
        name: "test-propagation",
        why: "the new id has not propagated",
        operations: &["ec2:CreateRoute"],
        matches: &[Match::CodeSuffix(".NotFound")],
        timeout: Timeout::new("test-propagation", Duration::from_secs(2), "test"),
        backoff: Backoff {
            first: Duration::ZERO,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
            factor: 2.0,
        },
    };

    fn cx(timeouts: HashMap<String, Duration>) -> Cx {
        let stack = Stack {
            name: "s".into(),
            account: "1".into(),
            region: "r".into(),
        };
        Cx::new(
            "network/route".into(),
            Arc::new(stack),
            Arc::new(NoEvents),
            Arc::new(RunSettings {
                timeouts,
                ..RunSettings::default()
            }),
        )
    }

    struct NoEvents;
    impl crate::event::EventSink for NoEvents {
        fn emit(&self, _: crate::event::Event) {}
    }

    fn not_found(op: &str) -> ResourceError {
        ResourceError::fatal(
            "InvalidRouteTableID.NotFound: The routeTable ID 'rtb-1' does not exist",
        )
        .with_code("InvalidRouteTableID.NotFound")
        .with_operation(op)
    }

    #[tokio::test]
    async fn retries_what_the_policy_names_until_it_succeeds() {
        let calls = AtomicU32::new(0);
        let out = retry(&cx(HashMap::new()), &[&NOT_FOUND], || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(not_found("ec2:CreateRoute"))
            } else {
                Ok("route")
            }
        })
        .await;
        assert_eq!(out.ok(), Some("route"));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn other_operations_and_codes_fail_at_once() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = retry(&cx(HashMap::new()), &[&NOT_FOUND], || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(not_found("ec2:DescribeRouteTables"))
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let out: Result<(), _> = retry(&cx(HashMap::new()), &[&NOT_FOUND], || async {
            Err(ResourceError::fatal("no")
                .with_code("InvalidParameterValue")
                .with_operation("ec2:CreateRoute"))
        })
        .await;
        assert_eq!(
            out.err().and_then(|e| e.code).as_deref(),
            Some("InvalidParameterValue")
        );
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline_the_user_set_and_says_how_to_wait_longer() {
        let timeouts = HashMap::from([("test-propagation".to_string(), Duration::from_millis(30))]);
        let out: Result<(), _> = retry(&cx(timeouts), &[&NOT_FOUND], || async {
            Err(not_found("ec2:CreateRoute"))
        })
        .await;
        let Err(e) = out else { panic!("gives up") };
        assert!(e.message.contains("still failing after"), "{}", e.message);
        assert!(
            e.hint
                .as_deref()
                .is_some_and(|h| h.contains("--timeout test-propagation=")),
            "{:?}",
            e.hint
        );
    }

    #[tokio::test]
    async fn a_lost_create_is_found_and_a_conflict_is_never_adopted() {
        let cx = cx(HashMap::new());
        let finds = AtomicU32::new(0);
        // The create happened, its reply was lost: the lookup finds it.
        let out = create_or_find(
            &cx,
            || async { Err::<&str, _>(ResourceError::transient("connection reset")) },
            || async {
                finds.fetch_add(1, Ordering::SeqCst);
                Ok(Some("found"))
            },
        )
        .await;
        assert_eq!(out.ok(), Some(Created::Found("found")));
        // It did not happen: nothing found, so it is created again.
        let creates = AtomicU32::new(0);
        let out = create_or_find(
            &cx,
            || async {
                if creates.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(ResourceError::new(ErrorClass::AlreadyExists, "taken"))
                } else {
                    Ok("made")
                }
            },
            || async { Ok(None) },
        )
        .await;
        assert_eq!(out.ok(), Some(Created::New("made")));
        // A conflict is reported, with no lookup and no adoption.
        let before = finds.load(Ordering::SeqCst);
        let out = create_or_find(
            &cx,
            || async {
                Err::<&str, _>(ResourceError::new(
                    ErrorClass::Conflict,
                    "update in progress",
                ))
            },
            || async {
                finds.fetch_add(1, Ordering::SeqCst);
                Ok(Some("someone else's"))
            },
        )
        .await;
        assert_eq!(out.err().map(|e| e.class), Some(ErrorClass::Conflict));
        assert_eq!(finds.load(Ordering::SeqCst), before);
    }

    #[test]
    fn messages_match_with_or_without_a_code() {
        let e =
            ResourceError::fatal("ValidationException: Could not access model data at s3://b/k")
                .with_code("ValidationException");
        assert!(
            Match::Message {
                code: Some("ValidationException"),
                contains: "Could not access model data"
            }
            .matches(&e)
        );
        assert!(
            Match::Message {
                code: None,
                contains: "Could not access model data"
            }
            .matches(&e)
        );
        assert!(
            !Match::Message {
                code: Some("InvalidParameterException"),
                contains: "Could not access model data"
            }
            .matches(&e)
        );
    }
}
