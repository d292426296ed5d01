//! Errors as each AWS protocol writes them, so the SDK parses and classifies an injected
//! fault exactly as it would the real one. The throttling codes are all in aws-sdk-rust's
//! `THROTTLING_ERRORS` (aws-runtime's retry classifier); the 5xx statuses are retried by its
//! HTTP status classifier (500, 502, 503, 504). The tests check both against the SDK.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use super::call::{Call, Protocol};

/// An AWS error to put on the wire.
#[derive(Clone, Debug)]
pub(crate) struct AwsError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The service's own throttling error.
pub(crate) fn throttling(call: &Call) -> AwsError {
    let (status, code, message) = match call.protocol {
        Protocol::Ec2Query => (
            StatusCode::SERVICE_UNAVAILABLE,
            "RequestLimitExceeded",
            "Request limit exceeded.",
        ),
        Protocol::AwsQuery => (StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded"),
        Protocol::AwsJson => (
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate exceeded",
        ),
        Protocol::RestJson => (
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            "Rate exceeded",
        ),
        // Route 53 answers changes to a zone that is still applying an earlier one with its
        // own code; everything else is plain throttling.
        Protocol::RestXml if call.operation == "ChangeResourceRecordSets" => (
            StatusCode::BAD_REQUEST,
            "PriorRequestNotComplete",
            "The request was rejected because Route 53 was still processing a prior request.",
        ),
        Protocol::RestXml => (StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded"),
        Protocol::S3 => (
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        ),
    };
    AwsError {
        status,
        code,
        message: message.to_string(),
    }
}

/// The service's own internal error (HTTP 500).
pub(crate) fn internal_error(call: &Call) -> AwsError {
    let (code, message) = match call.protocol {
        Protocol::Ec2Query => ("InternalError", "An internal error has occurred."),
        Protocol::RestJson if call.signing_name == "lambda" => {
            ("ServiceException", "An internal error has occurred.")
        }
        Protocol::S3 => (
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        _ => ("InternalFailure", "An internal error has occurred."),
    };
    AwsError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code,
        message: message.to_string(),
    }
}

/// What the request looked like, where it shapes the error (JSON version, HEAD).
pub(crate) struct Shape<'a> {
    pub head: bool,
    pub content_type: Option<&'a str>,
    pub request_id: &'a str,
}

/// `error` written in `call`'s protocol.
pub(crate) fn render(call: &Call, error: &AwsError, shape: &Shape<'_>) -> Response<Full<Bytes>> {
    let id = shape.request_id;
    let code = error.code;
    let message = escape_xml(&error.message);
    // Client errors are the sender's fault, 5xx the service's (the query protocols say so).
    let fault = if error.status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    let (content_type, body): (String, String) = match call.protocol {
        Protocol::Ec2Query => (
            "text/xml;charset=UTF-8".into(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{id}</RequestID></Response>"
            ),
        ),
        Protocol::AwsQuery => {
            let ns = match call.signing_name.as_str() {
                "iam" => " xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"",
                "elasticloadbalancing" => {
                    " xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\""
                }
                "sts" => " xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"",
                _ => "",
            };
            (
                "text/xml".into(),
                format!(
                    "<ErrorResponse{ns}><Error><Type>{fault}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>"
                ),
            )
        }
        Protocol::RestXml => (
            "application/xml".into(),
            format!(
                "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>{fault}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>"
            ),
        ),
        Protocol::S3 => (
            "application/xml".into(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{id}</RequestId><HostId>{id}</HostId></Error>"
            ),
        ),
        Protocol::AwsJson => (
            shape
                .content_type
                .filter(|ct| ct.starts_with("application/x-amz-json"))
                .unwrap_or("application/x-amz-json-1.1")
                .to_string(),
            serde_json::json!({ "__type": code, "message": error.message }).to_string(),
        ),
        Protocol::RestJson => {
            let mut body = serde_json::json!({
                "Type": if error.status.is_server_error() { "Service" } else { "User" },
                "message": error.message,
            });
            if code == "TooManyRequestsException" {
                body["Reason"] = "CallerRateLimitExceeded".into();
            }
            ("application/json".into(), body.to_string())
        }
    };
    let body = if shape.head { String::new() } else { body };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = error.status;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(id) {
        let name = if call.protocol == Protocol::S3 {
            "x-amz-request-id"
        } else {
            "x-amzn-requestid"
        };
        headers.insert(name, v);
    }
    if matches!(call.protocol, Protocol::AwsJson | Protocol::RestJson) {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
    }
    response
}

pub(crate) fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
