//! Read-only checks that find what would make `provision up` fail, before anything is
//! created: the credentials and account, the hosted zone and its delegation, the image
//! builder, image folders and images in ECR, model data in S3, HuggingFace images, the quotas
//! a first deploy hits, and names already taken by resources this stack does not own.
//!
//! Each check is a function that returns [`Finding`]s; none prints and none changes anything.
//! The binary runs them (`provision check`, and the fast ones before every `up` and `plan`) and
//! reports every finding at once.

use std::fmt;

use serde::Serialize;

pub mod backends;
pub mod credentials;
pub mod dns;
pub mod images;
pub mod names;
pub mod quotas;
pub mod zone;

pub use credentials::Identity;
pub use zone::Zone;

/// What a check is about, for grouping the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    Credentials,
    HostedZone,
    Delegation,
    Images,
    Builder,
    Backends,
    Quotas,
    Names,
    /// A resource of the stack could not be read (so the plan could not be made).
    Resources,
}

impl Area {
    /// A heading for the report.
    pub fn title(self) -> &'static str {
        match self {
            Area::Credentials => "credentials and account",
            Area::HostedZone => "hosted zone",
            Area::Delegation => "DNS delegation",
            Area::Images => "images",
            Area::Builder => "image builder",
            Area::Backends => "backends",
            Area::Quotas => "quotas",
            Area::Names => "names taken",
            Area::Resources => "reading the stack's resources",
        }
    }
}

/// How bad a finding is. Ordered: a report is as bad as its worst finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Checked and fine.
    Ok,
    /// Could not be checked here (no quota API, no DNS, no rights to read); says why.
    NotChecked,
    /// `up` would work, but something deserves a look.
    Warning,
    /// `up` would fail (or hang) because of it.
    Problem,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::NotChecked => "not checked",
            Severity::Warning => "warning",
            Severity::Problem => "problem",
        }
    }
}

/// One result of one check: what it is about (a config key path such as
/// `sagemaker_endpoints[1].model_data_url`, or a tool such as `--builder docker`), what was
/// found, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub area: Area,
    pub severity: Severity,
    pub subject: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Finding {
    pub fn new(
        area: Area,
        severity: Severity,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            area,
            severity,
            subject: subject.into(),
            message: message.into(),
            hint: None,
        }
    }
    pub fn ok(area: Area, subject: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding::new(area, Severity::Ok, subject, message)
    }
    pub fn problem(area: Area, subject: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding::new(area, Severity::Problem, subject, message)
    }
    pub fn warning(area: Area, subject: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding::new(area, Severity::Warning, subject, message)
    }
    pub fn not_checked(
        area: Area,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding::new(area, Severity::NotChecked, subject, message)
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Finding {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// The clients the checks read through, all carrying the API call ledger.
#[derive(Clone)]
pub struct Clients {
    pub route53: aws_sdk_route53::Client,
    pub s3: aws_sdk_s3::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub quotas: aws_sdk_servicequotas::Client,
}

impl Clients {
    pub fn new(aws: &provision_aws::Aws) -> Clients {
        // The stack's clients (path-style S3 on emulators, the ledger, retries), plus one for
        // Service Quotas, which only the checks use.
        let stack = provision_stack::Clients::new(aws);
        let quotas = aws_sdk_servicequotas::Client::from_conf(
            aws_sdk_servicequotas::config::Builder::from(aws.sdk())
                .interceptor(aws.calls().clone())
                .retry_partition(provision_aws::retry_partition("servicequotas"))
                .build(),
        );
        Clients {
            route53: stack.route53,
            s3: stack.s3,
            ecr: stack.ecr,
            ec2: stack.ec2,
            elbv2: stack.elbv2,
            quotas,
        }
    }
}

/// The checks that run before every `up` and `plan`, concurrently: the hosted zone (one
/// `GetHostedZone`), then the app's DNS records the state does not record yet (one
/// `ListResourceRecordSets` each, first deploy only); model data (one `HeadObject` per
/// `model_data_url`); HuggingFace images (one `BatchGetImage` per HuggingFace endpoint).
/// Returns the zone, when it exists, for [`zone::delegation`].
pub async fn fast(
    clients: &Clients,
    config: &provision_config::Config,
    state: &provision_core::state::State,
) -> (Vec<Finding>, Option<Zone>) {
    let zone_and_records = async {
        let (mut findings, zone) = zone::hosted_zone(&clients.route53, config).await;
        if zone.is_some() {
            findings.extend(names::dns_records(&clients.route53, config, state).await);
        }
        (findings, zone)
    };
    let ((mut findings, zone), model_data, huggingface) = tokio::join!(
        zone_and_records,
        backends::model_data(&clients.s3, config),
        backends::huggingface(&clients.ecr, config),
    );
    findings.extend(model_data);
    findings.extend(huggingface);
    (findings, zone)
}

/// What `--skip-checks` skips, for the message that says so.
pub const FAST_CHECKS: &str = "the AWS profile, the hosted zone, the app's DNS records, model data in S3, HuggingFace images and the image builder";

/// The exit code of `provision check`: 0 when every check passed, 2 when there are only
/// warnings (or checks that could not be made), 1 when something would make `up` fail.
pub fn exit_code(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Problem) => 1,
        Some(Severity::Warning | Severity::NotChecked) => 2,
        _ => 0,
    }
}

/// The findings that would make `up` fail.
pub fn problems(findings: &[Finding]) -> impl Iterator<Item = &Finding> {
    findings.iter().filter(|f| f.severity == Severity::Problem)
}

/// Every finding in report order: by area, worst first within an area, then as found.
pub fn sorted(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| a.area.cmp(&b.area).then(b.severity.cmp(&a.severity)));
    findings
}

/// The AWS error code of an SDK error, or the error's text when it is not a service error
/// (for "not checked" messages).
pub(crate) fn error_text<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> (Option<String>, String)
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    match err {
        aws_sdk_s3::error::SdkError::ServiceError(s) => {
            let e = s.err();
            let code = e.code().map(str::to_string);
            let text = match (e.code(), e.message()) {
                (Some(c), Some(m)) if !m.is_empty() => format!("{c}: {m}"),
                (Some(c), _) => c.to_string(),
                (None, Some(m)) => m.to_string(),
                (None, None) => format!("{err}"),
            };
            (code, text)
        }
        other => (None, chain(other)),
    }
}

/// An error and its sources, joined.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = e.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_the_worst_finding() {
        let ok = Finding::ok(Area::HostedZone, "hosted_zone_id", "fine");
        let skipped = Finding::not_checked(Area::Quotas, "quotas", "no API");
        let bad = Finding::problem(Area::Images, "lambda_functions[0].folder_name", "missing");
        assert_eq!(exit_code(&[]), 0);
        assert_eq!(exit_code(std::slice::from_ref(&ok)), 0);
        assert_eq!(exit_code(&[ok.clone(), skipped.clone()]), 2);
        assert_eq!(exit_code(&[skipped, bad.clone(), ok]), 1);
        assert_eq!(problems(std::slice::from_ref(&bad)).count(), 1);
    }

    #[test]
    fn findings_sort_by_area_then_worst_first() {
        let sorted = sorted(vec![
            Finding::ok(Area::Images, "a", "fine"),
            Finding::problem(Area::Images, "b", "bad"),
            Finding::ok(Area::Credentials, "c", "fine"),
        ]);
        let subjects: Vec<&str> = sorted.iter().map(|f| f.subject.as_str()).collect();
        assert_eq!(subjects, ["c", "b", "a"]);
    }
}
