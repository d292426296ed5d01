//! Polling with backoff, for waits on slow resources.
//!
//! Polls start short and back off to a cap, all scaled by `PROVISION_WAIT_SCALE`; a wait
//! gives up at its deadline with a message that says what it waited for and how to wait longer.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::resource::{Cx, ResourceError};

/// What one poll found.
pub enum Poll<T> {
    Ready(T),
    /// Not yet; the status is shown to the user (`pending`, `Creating`).
    Pending(String),
}

/// How a wait polls.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// Wait this long before the first poll (for resources that cannot be ready sooner).
    pub first: Duration,
    pub initial: Duration,
    pub max: Duration,
    pub factor: f64,
}

impl Backoff {
    /// For things that usually take seconds (Lambda state, ECS task definitions).
    pub const FAST: Backoff = Backoff {
        first: Duration::ZERO,
        initial: Duration::from_millis(250),
        max: Duration::from_secs(5),
        factor: 1.6,
    };
    /// For things that take minutes (NAT gateways, load balancers, endpoints).
    pub const SLOW: Backoff = Backoff {
        first: Duration::ZERO,
        initial: Duration::from_secs(2),
        max: Duration::from_secs(15),
        factor: 1.5,
    };

    pub fn after(mut self, first: Duration) -> Self {
        self.first = first;
        self
    }
}

/// A deadline the user can raise with `--timeout KEY=DURATION`: what a wait or a retry policy
/// allows by default. Every one a run uses is listed in one table (`provision_aws::timeouts::ALL`),
/// so the command line accepts exactly these keys and lists them in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout {
    /// The `--timeout` key: `nat-gateway`, `iam-propagation`.
    pub key: &'static str,
    /// The default, before `PROVISION_WAIT_SCALE`.
    pub default: Duration,
    /// What it bounds, for `--help`: `a NAT gateway to become available`.
    pub about: &'static str,
}

impl Timeout {
    pub const fn new(key: &'static str, default: Duration, about: &'static str) -> Timeout {
        Timeout {
            key,
            default,
            about,
        }
    }
}

/// Polls `check` until it is ready, the deadline `timeout` passes (or the user's override of
/// it), or the run is interrupted. `what` names the wait in progress and error messages.
pub async fn until<T, F, Fut>(
    cx: &Cx,
    what: &str,
    timeout: &Timeout,
    backoff: Backoff,
    mut check: F,
) -> Result<T, ResourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, ResourceError>>,
{
    let timeout_key = timeout.key;
    let deadline = cx.timeout(timeout);
    let start = Instant::now();
    let mut delay = backoff.initial;
    if !backoff.first.is_zero() {
        cx.sleep(cx.scaled(backoff.first)).await?;
    }
    let mut last_status = String::new();
    loop {
        match check().await? {
            Poll::Ready(v) => return Ok(v),
            Poll::Pending(status) => {
                let waited = start.elapsed();
                if waited >= deadline {
                    return Err(ResourceError::timeout(format!(
                        "gave up waiting for {what} after {}: still {status}",
                        human(waited)
                    ))
                    .with_hint(format!(
                        "AWS may just be slow; rerun `provision up` to keep waiting (nothing is lost), or allow more time with --timeout {timeout_key}=<minutes>m"
                    )));
                }
                if status != last_status {
                    cx.progress(format!("waiting for {what}: {status}"));
                    last_status = status;
                }
            }
        }
        let remaining = deadline.saturating_sub(start.elapsed());
        cx.sleep(
            cx.scaled(delay)
                .min(remaining.max(Duration::from_millis(10))),
        )
        .await?;
        delay = delay.mul_f64(backoff.factor).min(backoff.max);
    }
}

/// `1m 05s`, `42s`, `850ms`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else if secs >= 1 {
        format!("{secs}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}
