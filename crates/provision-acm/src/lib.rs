//! ACM certificates, DNS-validated, as three kinds so dependents wait only for what they need:
//!
//! - [`Certificate`]: the request. Ready once ACM says which CNAME records prove each name
//!   (seconds after the request), which is what the validation records need.
//! - [`ValidationRecord`]: one such CNAME in the hosted zone, written by `provision` itself.
//! - [`CertificateValidation`]: creates nothing; ready once the certificate is `ISSUED`, which
//!   is what an HTTPS listener needs. Everything that needs only the certificate's ARN, or
//!   nothing of it, goes ahead while ACM validates.
//!
//! DescribeCertificate does not report tags. A certificate read by the ARN the state recorded
//! is taken as ours (the state recorded requesting it); one found any other way (after a crash
//! lost the reply) must carry our tags, and a delete always checks them.

use std::sync::Arc;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use provision_core::resource::{Kind, ResourceError};

mod certificate;
mod validation;

pub use certificate::{Certificate, CertificateOut, CertificateSpec, ValidationRecordOut};
pub use validation::{
    CertificateValidation, CertificateValidationOut, CertificateValidationSpec, ValidationRecord,
    ValidationRecordSpec,
};

pub(crate) fn aws<E, R>(operation: &str, err: SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    provision_aws::classify(operation, err)
}

/// Every ACM kind. Validation records are written through Route 53.
pub struct AcmKinds {
    pub certificate: Arc<Certificate>,
    pub validation_record: Arc<ValidationRecord>,
    pub validation: Arc<CertificateValidation>,
}

impl AcmKinds {
    pub fn new(acm: aws_sdk_acm::Client, route53: aws_sdk_route53::Client) -> Self {
        AcmKinds {
            certificate: Arc::new(Certificate::new(acm.clone())),
            validation_record: Arc::new(ValidationRecord::new(acm.clone(), route53)),
            validation: Arc::new(CertificateValidation::new(acm)),
        }
    }

    pub fn all(&self) -> Vec<Arc<dyn Kind>> {
        vec![
            self.certificate.clone(),
            self.validation_record.clone(),
            self.validation.clone(),
        ]
    }
}

/// DescribeCertificate, or `None` if there is no such certificate.
pub(crate) async fn describe(
    acm: &aws_sdk_acm::Client,
    arn: &str,
) -> Result<Option<aws_sdk_acm::types::CertificateDetail>, ResourceError> {
    match acm.describe_certificate().certificate_arn(arn).send().await {
        Ok(out) => Ok(out.certificate().cloned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(aws("acm:DescribeCertificate", e)),
    }
}

/// The certificate's tags as (key, value) pairs.
pub(crate) async fn tags(
    acm: &aws_sdk_acm::Client,
    arn: &str,
) -> Result<Vec<(String, String)>, ResourceError> {
    let out = acm
        .list_tags_for_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .map_err(|e| aws("acm:ListTagsForCertificate", e))?;
    Ok(out
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// Every certificate of the account in this region that is issued or being validated.
pub(crate) async fn list_current(
    acm: &aws_sdk_acm::Client,
) -> Result<Vec<aws_sdk_acm::types::CertificateSummary>, ResourceError> {
    use aws_sdk_acm::types::CertificateStatus;
    let mut all = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = acm
            .list_certificates()
            .certificate_statuses(CertificateStatus::PendingValidation)
            .certificate_statuses(CertificateStatus::Issued)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| aws("acm:ListCertificates", e))?;
        all.extend(out.certificate_summary_list().iter().cloned());
        match out.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => return Ok(all),
        }
    }
}
