//! The API call ledger and the debug log's record of every call.
//!
//! [`ApiCalls`] is an SDK interceptor on every client. It counts operations and attempts (for
//! `--json`, the benchmarks and the no-mutation guarantee), and records each operation as one
//! `tracing` event (target `provision::aws`, level debug): `service:Operation` as IAM spells
//! it, HTTP status, AWS error code, the **request id** AWS support asks for, attempts, duration
//! and the sizes of what was sent and received. The logical id comes from the span the caller
//! runs in (the engine's `node` span).
//!
//! Never headers or bodies: requests carry signatures and session tokens, and bodies carry
//! environment variables and policy documents. Only sizes, and the request id and error code,
//! which are read from the response and checked to be plain identifiers before they are kept.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata, OrchestratorError};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_types::request_id::RequestId;

use crate::{is_mutating, service_prefix};

/// The `tracing` target of the per-call events.
pub const TARGET: &str = "provision::aws";

/// One API operation, as counted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Operation {
    pub service: String,
    pub name: String,
}

impl Operation {
    /// Whether the operation changes anything, judged by AWS's naming conventions.
    pub fn is_mutating(&self) -> bool {
        is_mutating(&self.name)
    }

    fn of(cfg: &ConfigBag) -> Operation {
        match cfg.load::<Metadata>() {
            Some(m) => Operation {
                service: service_prefix(m.service()),
                name: m.name().to_string(),
            },
            None => Operation {
                service: "unknown".into(),
                name: "unknown".into(),
            },
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.service, self.name)
    }
}

/// Counts every API call made through clients that carry it (operations and attempts), and
/// logs each one.
#[derive(Clone, Debug, Default)]
pub struct ApiCalls {
    inner: Arc<Mutex<Ledger>>,
}

#[derive(Debug, Default)]
struct Ledger {
    operations: BTreeMap<Operation, u64>,
    attempts: u64,
}

/// A snapshot of the ledger.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CallCounts {
    pub operations: BTreeMap<String, u64>,
    pub total: u64,
    pub mutating: u64,
    /// HTTP attempts, retries included.
    pub attempts: u64,
}

impl ApiCalls {
    pub fn snapshot(&self) -> CallCounts {
        let ledger = match self.inner.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out = CallCounts {
            attempts: ledger.attempts,
            ..CallCounts::default()
        };
        for (op, n) in &ledger.operations {
            out.operations.insert(op.to_string(), *n);
            out.total += n;
            if op.is_mutating() {
                out.mutating += n;
            }
        }
        out
    }

    fn count_operation(&self, op: Operation) {
        if let Ok(mut ledger) = self.inner.lock() {
            *ledger.operations.entry(op).or_default() += 1;
        }
    }

    fn count_attempt(&self) {
        if let Ok(mut ledger) = self.inner.lock() {
            ledger.attempts += 1;
        }
    }
}

/// What one operation did so far, kept in the operation's own config bag between hooks.
#[derive(Clone, Debug)]
struct CallTrace {
    started: Instant,
    /// The size of the request body of the latest attempt.
    sent_bytes: Option<u64>,
    attempts: Vec<Attempt>,
}

impl Storable for CallTrace {
    type Storer = StoreReplace<Self>;
}

/// One HTTP attempt of an operation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Attempt {
    status: Option<u16>,
    request_id: Option<String>,
    /// S3's second id (`x-amz-id-2`), which S3 support asks for along with the request id.
    extended_request_id: Option<String>,
    /// The AWS error code, or, when no reply came, what went wrong.
    error: Option<String>,
    received_bytes: Option<u64>,
}

impl Attempt {
    fn from_response(response: &HttpResponse) -> Attempt {
        let status = response.status();
        let headers = response.headers();
        let body = response.body().bytes();
        let request_id = headers
            .request_id()
            .and_then(identifier)
            .or_else(|| body.and_then(request_id_in_body));
        let error = if status.is_success() {
            None
        } else {
            headers
                .get("x-amzn-errortype")
                .and_then(error_code_from_type)
                .or_else(|| body.and_then(error_code_in_body))
        };
        Attempt {
            status: Some(status.as_u16()),
            request_id,
            extended_request_id: headers.get("x-amz-id-2").and_then(identifier),
            error,
            received_bytes: response.body().content_length(),
        }
    }

    fn without_response<E: std::error::Error + 'static>(err: &OrchestratorError<E>) -> Attempt {
        let what = if err.is_timeout_error() {
            "timed out".to_string()
        } else if let Some(c) = err.as_connector_error() {
            if c.is_timeout() {
                "timed out".to_string()
            } else if c.is_io() {
                "connection failed".to_string()
            } else {
                crate::error_chain(c)
            }
        } else if let Some(e) = crate::credentials::credentials_error(err) {
            format!("no credentials: {}", crate::credentials::sdk_words(e))
        } else {
            // Before sending: endpoint, signing. These messages never carry secrets.
            crate::error_chain(err)
        };
        Attempt {
            error: Some(what),
            ..Attempt::default()
        }
    }

    /// `503 ThrottlingException request 1a2b`, for the earlier attempts of a retried call.
    fn summary(&self) -> String {
        let mut parts = vec![
            self.status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "no reply".to_string()),
        ];
        parts.extend(self.error.clone());
        if let Some(id) = &self.request_id {
            parts.push(format!("request {id}"));
        }
        parts.join(" ")
    }
}

impl Intercept for ApiCalls {
    fn name(&self) -> &'static str {
        "provision::ApiCalls"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(CallTrace {
            started: Instant::now(),
            sent_bytes: None,
            attempts: Vec::new(),
        });
        Ok(())
    }

    // Once per operation, after the operation's own configuration (its name) is in the bag;
    // `read_before_execution` runs too early for that.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.count_operation(Operation::of(cfg));
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.count_attempt();
        Ok(())
    }

    // The request is handed to the connection after this hook, so its size is read here.
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let size = context.request().body().content_length();
        if let Some(trace) = cfg.get_mut_from_interceptor_state::<CallTrace>() {
            trace.sent_bytes = size;
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let attempt = match (context.response(), context.output_or_error()) {
            (Some(response), _) => Attempt::from_response(response),
            (None, Some(Err(err))) => Attempt::without_response(err),
            (None, _) => Attempt::default(),
        };
        if let Some(trace) = cfg.get_mut_from_interceptor_state::<CallTrace>() {
            trace.attempts.push(attempt);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = Operation::of(cfg);
        if let Some(trace) = cfg.get_mut_from_interceptor_state::<CallTrace>() {
            log_call(&operation, trace);
        }
        Ok(())
    }
}

/// The one event per operation, after its last attempt.
fn log_call(operation: &Operation, trace: &CallTrace) {
    let last = trace.attempts.last().cloned().unwrap_or_default();
    let earlier: Vec<String> = trace
        .attempts
        .iter()
        .take(trace.attempts.len().saturating_sub(1))
        .map(Attempt::summary)
        .collect();
    let duration_ms = u64::try_from(trace.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    // `Option` fields are left out of the line when `None`.
    tracing::debug!(
        target: TARGET,
        status = last.status,
        error = last.error.as_deref().map(tracing::field::display),
        request_id = last.request_id.as_deref().map(tracing::field::display),
        extended_request_id = last
            .extended_request_id
            .as_deref()
            .map(tracing::field::display),
        attempts = trace.attempts.len(),
        duration_ms,
        sent_bytes = trace.sent_bytes,
        received_bytes = last.received_bytes,
        earlier_attempts = (!earlier.is_empty()).then(|| tracing::field::display(earlier.join("; "))),
        "{operation}"
    );
}

/// A value from a response kept only if it looks like an identifier: AWS request ids and error
/// codes are letters, digits and a little punctuation. Anything else is not logged.
fn identifier(s: &str) -> Option<String> {
    let s = s.trim();
    let plain = !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '='));
    plain.then(|| s.to_string())
}

/// The request id in an EC2 reply's body: `<requestId>` in a success, `<RequestID>` in an error
/// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html). The SDK reads
/// only the `x-amzn-RequestId` header, which EC2 also sends; the body covers replies without it.
fn request_id_in_body(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body.get(..body.len().min(4096))?).ok()?;
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<requestid>")? + "<requestid>".len();
    let end = start + lower.get(start..)?.find('<')?;
    identifier(text.get(start..end)?)
}

/// The code in `x-amzn-ErrorType` (JSON protocols): `ValidationException:http://...`.
fn error_code_from_type(value: &str) -> Option<String> {
    identifier(value.split(':').next()?)
}

/// The error code in an error reply's body, as the SDK's protocol parsers read it: XML
/// `<Code>` (query and REST-XML protocols: EC2, IAM, ELB, Route 53, S3, STS) or JSON `__type`
/// / `code` (JSON protocols; a `__type` may carry a namespace before `#`).
fn error_code_in_body(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body.get(..body.len().min(16 * 1024))?).ok()?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(trimmed).ok()?;
        let code = ["__type", "code", "Code"]
            .iter()
            .find_map(|k| value.get(*k).and_then(|v| v.as_str()))?;
        let code = code.rsplit('#').next()?;
        return error_code_from_type(code);
    }
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text.get(start..)?.find('<')?;
    identifier(text.get(start..end)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bodies as the AWS API references show them.
    const EC2_ERROR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InvalidVpcID.NotFound</Code><Message>The vpc ID 'vpc-1' does not exist</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"#;
    const EC2_OK: &str = r#"<DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId><vpcSet/></DescribeVpcsResponse>"#;
    const IAM_ERROR: &str = r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>The role with name x cannot be found.</Message></Error><RequestId>4a4b2d1c-example</RequestId></ErrorResponse>"#;

    #[test]
    fn ec2_request_ids_are_read_from_the_body() {
        assert_eq!(
            request_id_in_body(EC2_ERROR.as_bytes()).as_deref(),
            Some("ea966190-f9aa-478e-9ede-example")
        );
        assert_eq!(
            request_id_in_body(EC2_OK.as_bytes()).as_deref(),
            Some("7a62c49f-347e-4fc4-9331-6e8eEXAMPLE")
        );
        assert_eq!(request_id_in_body(b"{}"), None);
    }

    #[test]
    fn error_codes_are_read_from_each_protocol() {
        assert_eq!(
            error_code_in_body(EC2_ERROR.as_bytes()).as_deref(),
            Some("InvalidVpcID.NotFound")
        );
        assert_eq!(
            error_code_in_body(IAM_ERROR.as_bytes()).as_deref(),
            Some("NoSuchEntity")
        );
        assert_eq!(
            error_code_in_body(
                br#"{"__type":"com.amazonaws.ecs#ClusterNotFoundException","message":"x"}"#
            )
            .as_deref(),
            Some("ClusterNotFoundException")
        );
        assert_eq!(
            error_code_in_body(br#"{"code":"ResourceNotFoundException"}"#).as_deref(),
            Some("ResourceNotFoundException")
        );
        assert_eq!(
            error_code_from_type(
                "ValidationException:http://internal.amazon.com/coral/com.amazon.coral.validate/"
            )
            .as_deref(),
            Some("ValidationException")
        );
    }

    #[test]
    fn only_identifiers_are_kept() {
        assert_eq!(identifier(" abc-123 ").as_deref(), Some("abc-123"));
        // A body that is not an id (HTML, a message, a value) is never logged.
        assert_eq!(identifier("<html>"), None);
        assert_eq!(identifier("two words"), None);
        assert_eq!(identifier(&"x".repeat(200)), None);
    }

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().map(|v| v.clone()).unwrap_or_default())
                .into_owned()
        }
    }

    async fn sts(endpoint: &str, calls: &ApiCalls, max_attempts: u32) -> aws_sdk_sts::Client {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_credential_types::Credentials::new(
                "AKIDEXAMPLE",
                "calls-test-secret-key",
                Some("calls-test-session-token".into()),
                None,
                "test",
            ))
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(max_attempts)
                    .with_initial_backoff(std::time::Duration::from_millis(1)),
            )
            .load()
            .await;
        aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&sdk)
                .interceptor(calls.clone())
                .build(),
        )
    }

    /// Against the emulator, directly and through the test proxy (which throttles every
    /// attempt): one debug line per call, inside the caller's span, with the request id the SDK
    /// itself reports, and nothing from the request's headers.
    #[tokio::test]
    async fn every_call_is_logged_once_with_its_request_id_in_the_callers_span() {
        use tracing::Instrument;
        let emulator = provision_testkit::Emulator::start().expect("the emulator starts");
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let calls = ApiCalls::default();

        let out = sts(emulator.url(), &calls, 3)
            .await
            .get_caller_identity()
            .send()
            .instrument(tracing::info_span!("node", id = %"network/vpc"))
            .await
            .expect("GetCallerIdentity");
        let id = out.request_id().expect("moto sends a request id");
        let text = log.text();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("sts:GetCallerIdentity"))
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = lines[0];
        for part in [
            "node{id=network/vpc}",
            TARGET,
            "status=200",
            &format!("request_id={id}"),
            "attempts=1",
            "duration_ms=",
            "sent_bytes=",
            "received_bytes=",
        ] {
            assert!(line.contains(part), "no {part} in {line}");
        }
        assert!(!line.contains("error="), "{line}");

        let proxy = provision_testkit::proxy::Proxy::start(provision_testkit::proxy::ProxyConfig {
            faults: provision_testkit::proxy::Faults {
                throttle: 1.0,
                ..provision_testkit::proxy::Faults::none()
            },
            ..provision_testkit::proxy::ProxyConfig::new(emulator.url())
        })
        .await
        .expect("the proxy starts");
        let err = sts(proxy.url(), &calls, 3)
            .await
            .get_caller_identity()
            .send()
            .instrument(tracing::info_span!("node", id = %"web/service"))
            .await
            .expect_err("every attempt is throttled");
        let id = err
            .request_id()
            .expect("the proxy's error has a request id");
        let text = log.text();
        let line = text
            .lines()
            .find(|l| l.contains("node{id=web/service}") && l.contains("sts:GetCallerIdentity"))
            .unwrap_or_else(|| panic!("no line for the throttled call:\n{text}"));
        for part in [
            "status=400",
            "error=Throttling",
            &format!("request_id={id}"),
            "attempts=3",
            "earlier_attempts=400 Throttling request ",
        ] {
            assert!(line.contains(part), "no {part} in {line}");
        }
        assert_eq!(calls.snapshot().attempts, 4);
        for secret in ["calls-test-secret-key", "calls-test-session-token"] {
            assert!(!text.contains(secret), "{secret} was logged:\n{text}");
        }
        // The SDK's own debug lines show the access key id (not a secret); ours show nothing
        // of the request's headers.
        for line in text.lines().filter(|l| l.contains(TARGET)) {
            assert!(!line.contains("AKIDEXAMPLE"), "{line}");
        }
    }
}
