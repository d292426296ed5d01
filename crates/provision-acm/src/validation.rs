use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_acm::Client;
use aws_sdk_acm::types::{CertificateDetail, CertificateStatus};
use aws_sdk_route53::types::ChangeAction;
use provision_core::resource::{
    Cx, Desired, ErrorClass, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use provision_core::wait::{Backoff, Poll, until};
use provision_route53::{
    RecordOut, RecordSpec, change, delete_record, find, fqdn, not_ours, record_set, spec_of,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};

use crate::{describe, list_current};

// ---------------------------------------------------------------------------------------------
// Validation record

/// A CNAME record proving control of one of a certificate's names, in the stack's hosted zone.
///
/// ACM makes up the same record for the same name across certificates of an account, so
/// another certificate (another environment's, for the same domain) may rely on it too: a
/// delete leaves it in place while another current certificate of the region still needs it.
pub struct ValidationRecord {
    acm: Client,
    r53: aws_sdk_route53::Client,
}

impl ValidationRecord {
    pub fn new(acm: Client, r53: aws_sdk_route53::Client) -> Self {
        ValidationRecord { acm, r53 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ValidationRecordSpec {
    #[serde(flatten)]
    pub record: RecordSpec,
    /// The name it proves.
    pub domain: String,
    /// The certificate of this stack it validates.
    pub certificate_arn: String,
}

/// How long resolvers may keep a validation record: ACM checks again at every renewal.
pub(crate) const VALIDATION_TTL: i64 = 300;

impl ValidationRecordSpec {
    pub fn new(
        hosted_zone_id: &str,
        certificate_arn: &str,
        record: &crate::ValidationRecordOut,
    ) -> Self {
        ValidationRecordSpec {
            record: RecordSpec::values(
                hosted_zone_id,
                &record.name,
                &record.record_type,
                VALIDATION_TTL,
                [record.value.clone()],
            ),
            domain: record.domain.clone(),
            certificate_arn: certificate_arn.to_string(),
        }
    }
}

fn record_live(spec: &RecordSpec) -> Result<Live, ResourceError> {
    let out = RecordOut {
        name: spec.name.clone(),
        record_type: spec.record_type.clone(),
    };
    let value = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    // The certificate and domain it is for are not in DNS: the plan compares them with what
    // was applied.
    Ok(Live::new(spec.physical_id(), to_settings(spec), value))
}

impl ValidationRecord {
    /// Another current certificate of the account (in this region) that proves a name through
    /// this record, if any.
    async fn other_user(
        &self,
        spec: &ValidationRecordSpec,
    ) -> Result<Option<String>, ResourceError> {
        for summary in list_current(&self.acm).await? {
            let Some(arn) = summary.certificate_arn() else {
                continue;
            };
            if arn == spec.certificate_arn {
                continue;
            }
            let names = summary.subject_alternative_name_summaries();
            let covers = summary.domain_name().is_some_and(|d| d.eq_ignore_ascii_case(&spec.domain))
                || names.iter().any(|n| n.eq_ignore_ascii_case(&spec.domain))
                // The summary lists only some names (or none, in some emulators): look closer.
                || names.is_empty()
                || summary.has_additional_subject_alternative_names() == Some(true);
            if !covers {
                continue;
            }
            let Some(d) = describe(&self.acm, arn).await? else {
                continue;
            };
            let uses = d
                .domain_validation_options()
                .iter()
                .filter_map(|o| o.resource_record())
                .any(|r| fqdn(r.name()) == spec.record.name);
            if uses {
                return Ok(Some(arn.to_string()));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Kind for ValidationRecord {
    fn name(&self) -> &'static str {
        "acm.validation-record"
    }
    fn noun(&self) -> &'static str {
        "certificate validation record"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["hosted_zone_id", "name", "record_type"]
    }

    async fn read(&self, _cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let Some(recorded) = lookup.recorded_settings::<ValidationRecordSpec>() else {
            return Ok(None);
        };
        let want = &recorded.record;
        let Some(rr) = find(
            &self.r53,
            &want.hosted_zone_id,
            &want.name,
            &want.record_type,
        )
        .await?
        else {
            return Ok(None);
        };
        let found = spec_of(&want.hosted_zone_id, &rr);
        // Only an intent was recorded and the record says something else: ours was never
        // made; the create refuses to overwrite that one, and a delete leaves it alone.
        if lookup.physical_id().is_none() && found != *want {
            return Ok(None);
        }
        record_live(&found).map(Some)
    }

    async fn create(&self, _cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: ValidationRecordSpec = desired.spec()?;
        let want = &spec.record;
        if let Some(rr) = find(
            &self.r53,
            &want.hosted_zone_id,
            &want.name,
            &want.record_type,
        )
        .await?
        {
            let found = spec_of(&want.hosted_zone_id, &rr);
            if found == *want {
                // Written already (by an earlier run, or for another certificate of the name).
                return record_live(&found);
            }
            return Err(not_ours(&found, want));
        }
        // UPSERT: a retry after a lost reply writes the same record again.
        change(
            &self.r53,
            &want.hosted_zone_id,
            ChangeAction::Upsert,
            record_set(want)?,
        )
        .await?;
        record_live(want)
    }

    async fn update(
        &self,
        _cx: &Cx,
        desired: &Desired,
        _live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: ValidationRecordSpec = desired.spec()?;
        change(
            &self.r53,
            &spec.record.hosted_zone_id,
            ChangeAction::Upsert,
            record_set(&spec.record)?,
        )
        .await?;
        record_live(&spec.record)
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Ok(spec) = serde_json::from_value::<ValidationRecordSpec>(serde_json::Value::Object(
            record.settings.clone(),
        )) else {
            return Ok(());
        };
        if let Some(other) = self.other_user(&spec).await? {
            cx.progress(format!(
                "keeping {} {}: certificate {other} also proves {} through it",
                spec.record.record_type, spec.record.name, spec.domain
            ));
            return Ok(());
        }
        delete_record(&self.r53, &spec.record, record.physical_id.is_some()).await
    }
}

// ---------------------------------------------------------------------------------------------
// Validation (the wait for ISSUED)

/// The wait for a certificate to be issued, as a node of its own: it creates nothing, and is
/// ready once ACM has validated every name. Only what needs an issued certificate (an HTTPS
/// listener) depends on it.
pub struct CertificateValidation {
    acm: Client,
}

impl CertificateValidation {
    pub fn new(acm: Client) -> Self {
        CertificateValidation { acm }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CertificateValidationSpec {
    pub certificate_arn: String,
    /// Where the validation records are, for messages.
    pub hosted_zone_id: String,
    /// The names being validated, for messages.
    pub names: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CertificateValidationOut {
    /// The issued certificate.
    pub certificate_arn: String,
}

fn validation_live(d: &CertificateDetail) -> Result<Live, ResourceError> {
    let arn = d
        .certificate_arn()
        .ok_or_else(|| ResourceError::fatal("ACM described a certificate without its ARN"))?;
    let mut settings = Map::new();
    settings.insert("certificate_arn".into(), json!(arn));
    let value = serde_json::to_value(CertificateValidationOut {
        certificate_arn: arn.to_string(),
    })
    .map_err(|e| ResourceError::fatal(e.to_string()))?;
    let live = Live::new(arn, settings, value);
    Ok(match d.status() {
        Some(CertificateStatus::Issued) => live.with_status("ISSUED"),
        Some(s) => live.pending(s.as_str()),
        None => live.pending("unknown"),
    })
}

fn delegation_hint(spec: &CertificateValidationSpec) -> String {
    format!(
        "ACM validates by looking the CNAME records up in public DNS. Check that hosted zone {} is the zone {} is delegated to: the name servers of the domain (at the registrar, or NS records in the parent zone) must be the ones the zone lists (aws route53 get-hosted-zone --id {}). Then rerun `provision up`: nothing is lost, and it goes on waiting (allow longer with --timeout certificate=90m)",
        spec.hosted_zone_id,
        spec.names
            .first()
            .map(String::as_str)
            .unwrap_or("the domain"),
        spec.hosted_zone_id
    )
}

impl CertificateValidation {
    async fn current(&self, arn: &str) -> Result<Live, ResourceError> {
        let d = describe(&self.acm, arn).await?.ok_or_else(|| {
            ResourceError::fatal(format!("certificate {arn} does not exist"))
                .with_hint("rerun `provision up`: it requests the certificate again")
        })?;
        validation_live(&d)
    }
}

#[async_trait]
impl Kind for CertificateValidation {
    fn name(&self) -> &'static str {
        "acm.certificate-validation"
    }
    fn noun(&self) -> &'static str {
        "certificate validation"
    }

    async fn read(&self, _cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let arn = lookup.physical_id().map(str::to_string).or_else(|| {
            lookup
                .recorded_settings::<CertificateValidationSpec>()
                .map(|s| s.certificate_arn)
        });
        let Some(arn) = arn else { return Ok(None) };
        let Some(d) = describe(&self.acm, &arn).await? else {
            return Ok(None);
        };
        let mut live = validation_live(&d)?;
        // The zone and names are only for messages while waiting; ACM does not report the
        // zone, so they are carried over from what was applied.
        if let Some(recorded) = lookup.recorded_settings::<CertificateValidationSpec>() {
            live.settings
                .insert("hosted_zone_id".into(), json!(recorded.hosted_zone_id));
            live.settings.insert("names".into(), json!(recorded.names));
        }
        Ok(Some(live))
    }

    async fn create(&self, _cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: CertificateValidationSpec = desired.spec()?;
        let mut live = self.current(&spec.certificate_arn).await?;
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        _live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        // A new certificate (or new names to report): watch that one.
        self.create(cx, desired).await
    }

    async fn wait_ready(&self, cx: &Cx, live: Live) -> Result<Live, ResourceError> {
        let arn = live.physical_id.clone();
        let spec: CertificateValidationSpec =
            match serde_json::from_value(serde_json::Value::Object(live.settings.clone())) {
                Ok(s) => s,
                Err(_) => CertificateValidationSpec {
                    certificate_arn: arn.clone(),
                    hosted_zone_id: "(the config's hosted_zone_id)".into(),
                    names: Vec::new(),
                },
            };
        let names = if spec.names.is_empty() {
            "its names".to_string()
        } else {
            spec.names.join(", ")
        };
        let what = format!(
            "ACM to validate the certificate for {names} through the DNS records in hosted zone {} (usually a few minutes)",
            spec.hosted_zone_id
        );
        // Validation takes a minute at the very least.
        let backoff = Backoff {
            first: Duration::from_secs(15),
            initial: Duration::from_secs(10),
            max: Duration::from_secs(30),
            factor: 1.5,
        };
        let result = until(cx, &what, &provision_aws::timeouts::CERTIFICATE, backoff, || async {
            let d = describe(&self.acm, &arn)
                .await?
                .ok_or_else(|| ResourceError::fatal(format!("certificate {arn} disappeared while being validated")))?;
            match d.status() {
                Some(CertificateStatus::Issued) => {
                    let mut l = validation_live(&d)?;
                    l.settings = live.settings.clone();
                    Ok(Poll::Ready(l))
                }
                Some(s @ (CertificateStatus::Failed | CertificateStatus::ValidationTimedOut | CertificateStatus::Revoked | CertificateStatus::Expired | CertificateStatus::Inactive)) => {
                    let reason = d.failure_reason().map(|r| format!(" ({})", r.as_str())).unwrap_or_default();
                    Err(ResourceError::fatal(format!("ACM did not issue certificate {arn}: it is {}{reason}", s.as_str())).with_hint(format!(
                        "{}. A certificate that failed cannot be retried: delete it (aws acm delete-certificate --certificate-arn {arn}) and rerun `provision up`, which requests a new one",
                        delegation_hint(&spec)
                    )))
                }
                Some(s) => Ok(Poll::Pending(s.as_str().to_string())),
                None => Ok(Poll::Pending("unknown".into())),
            }
        })
        .await;
        match result {
            Err(mut e) if e.class == ErrorClass::Timeout => {
                e.hint = Some(delegation_hint(&spec));
                Err(e)
            }
            other => other,
        }
    }

    async fn delete(&self, _cx: &Cx, _record: &Record) -> Result<(), ResourceError> {
        // Nothing was created: the certificate and its records are nodes of their own.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_hint_points_at_the_delegation() {
        let spec = CertificateValidationSpec {
            certificate_arn: "arn".into(),
            hosted_zone_id: "Z123".into(),
            names: vec!["example.com".into(), "dev.example.com".into()],
        };
        let hint = delegation_hint(&spec);
        assert!(
            hint.contains("Z123") && hint.contains("example.com") && hint.contains("delegated"),
            "{hint}"
        );
        assert!(hint.contains("--timeout certificate="), "{hint}");
    }

    #[test]
    fn validation_records_carry_the_certificate() {
        let r = crate::ValidationRecordOut {
            domain: "dev.example.com".into(),
            name: "_abc.dev.example.com.".into(),
            record_type: "CNAME".into(),
            value: "_def.acm-validations.aws.".into(),
        };
        let spec = ValidationRecordSpec::new("Z1", "arn:cert", &r);
        let s = to_settings(&spec);
        assert_eq!(s["name"], "_abc.dev.example.com.");
        assert_eq!(s["values"], json!(["_def.acm-validations.aws."]));
        assert_eq!(s["certificate_arn"], "arn:cert");
        assert_eq!(s["ttl"], 300);
    }
}
