use async_trait::async_trait;
use aws_sdk_acm::Client;
use aws_sdk_acm::types::{CertificateDetail, KeyAlgorithm, Tag, ValidationMethod};
use provision_aws::retry::{CERTIFICATE_IN_USE, TRANSIENT, retry};
use provision_core::resource::{Cx, Desired, Kind, Live, Lookup, Owner, Record, ResourceError};
use provision_core::wait::{Backoff, Poll, until};
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};

use crate::{aws, describe, list_current, tags};

/// A public certificate for a domain and its other names, validated through DNS.
pub struct Certificate {
    acm: Client,
}

impl Certificate {
    pub fn new(acm: Client) -> Self {
        Certificate { acm }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CertificateSpec {
    pub domain_name: String,
    /// The other names it covers, sorted; the domain name itself is not repeated.
    pub subject_alternative_names: Vec<String>,
    /// `DNS`.
    pub validation_method: String,
    /// `RSA_2048`, as RequestCertificate spells it.
    pub key_algorithm: String,
}

impl CertificateSpec {
    /// A DNS-validated RSA 2048 certificate for `domain_name` and `others` (normalised).
    pub fn dns(domain_name: &str, others: impl IntoIterator<Item = String>) -> Self {
        let domain_name = domain_name.to_ascii_lowercase();
        CertificateSpec {
            subject_alternative_names: alternative_names(&domain_name, others),
            domain_name,
            validation_method: "DNS".into(),
            key_algorithm: "RSA_2048".into(),
        }
    }

    /// Every name the certificate covers: the domain name first.
    pub fn names(&self) -> Vec<String> {
        let mut names = vec![self.domain_name.clone()];
        names.extend(self.subject_alternative_names.iter().cloned());
        names
    }
}

/// The names other than the domain name, lower case, sorted, once each.
fn alternative_names(domain_name: &str, names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = names
        .into_iter()
        .map(|n| n.to_ascii_lowercase())
        .filter(|n| n != domain_name)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The CNAME that proves control of one name.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ValidationRecordOut {
    pub domain: String,
    pub name: String,
    pub record_type: String,
    pub value: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CertificateOut {
    pub certificate_arn: String,
    pub domain_name: String,
    /// One per name, once ACM has made them up.
    pub validation_records: Vec<ValidationRecordOut>,
}

/// DescribeCertificate spells key algorithms `RSA-2048`; RequestCertificate takes `RSA_2048`.
fn key_algorithm(d: &CertificateDetail) -> Option<String> {
    d.key_algorithm().map(|k| k.as_str().replace('-', "_"))
}

fn records(d: &CertificateDetail) -> Vec<ValidationRecordOut> {
    d.domain_validation_options()
        .iter()
        .filter_map(|o| {
            let r = o.resource_record()?;
            Some(ValidationRecordOut {
                domain: o.domain_name().to_ascii_lowercase(),
                name: r.name().to_ascii_lowercase(),
                record_type: r.r#type().as_str().to_string(),
                value: r.value().to_string(),
            })
        })
        .collect()
}

/// Whether ACM has said, for every name, which record proves it.
fn records_known(d: &CertificateDetail) -> bool {
    let options = d.domain_validation_options();
    !options.is_empty() && options.iter().all(|o| o.resource_record().is_some())
}

fn certificate_live(d: &CertificateDetail) -> Result<Live, ResourceError> {
    let arn = d
        .certificate_arn()
        .ok_or_else(|| ResourceError::fatal("ACM described a certificate without its ARN"))?;
    let domain_name = d.domain_name().unwrap_or_default().to_ascii_lowercase();
    let mut settings = Map::new();
    settings.insert("domain_name".into(), json!(domain_name));
    settings.insert(
        "subject_alternative_names".into(),
        json!(alternative_names(
            &domain_name,
            d.subject_alternative_names().iter().cloned()
        )),
    );
    // Reported per name; left out (compared with what was applied) when ACM says nothing.
    if let Some(m) = d
        .domain_validation_options()
        .iter()
        .find_map(|o| o.validation_method())
    {
        settings.insert("validation_method".into(), json!(m.as_str()));
    }
    if let Some(k) = key_algorithm(d) {
        settings.insert("key_algorithm".into(), json!(k));
    }
    let out = CertificateOut {
        certificate_arn: arn.to_string(),
        domain_name,
        validation_records: records(d),
    };
    let value = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    let status = d
        .status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let live = Live::new(arn, settings, value);
    Ok(if records_known(d) {
        live.with_status(status)
    } else {
        live.pending("waiting for ACM to say which DNS records prove the names")
    })
}

impl Certificate {
    /// A certificate of this stack for `domain_name` that a lost reply hid: the only way to
    /// find one without its ARN is to look at every current certificate for the domain.
    async fn search(
        &self,
        cx: &Cx,
        domain_name: &str,
    ) -> Result<Option<CertificateDetail>, ResourceError> {
        for summary in list_current(&self.acm).await? {
            let (Some(arn), Some(domain)) = (summary.certificate_arn(), summary.domain_name())
            else {
                continue;
            };
            if !domain.eq_ignore_ascii_case(domain_name) {
                continue;
            }
            let pairs = tags(&self.acm, arn).await?;
            // Other stacks and environments may have certificates for the same domain.
            if cx.owner(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) == Owner::Ours {
                return describe(&self.acm, arn).await;
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Kind for Certificate {
    fn name(&self) -> &'static str {
        "acm.certificate"
    }
    fn noun(&self) -> &'static str {
        "certificate"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &[
            "domain_name",
            "subject_alternative_names",
            "validation_method",
            "key_algorithm",
        ]
    }
    /// Certificates have no names: a new one can exist beside the old one until the listener
    /// has switched to it.
    fn create_before_delete(&self) -> bool {
        true
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let found = match lookup.physical_id() {
            Some(arn) => describe(&self.acm, arn).await?,
            None => {
                let domain = lookup
                    .recorded_settings::<CertificateSpec>()
                    .map(|s| s.domain_name)
                    .or_else(|| lookup.name.map(str::to_string));
                match domain {
                    Some(d) => self.search(cx, &d).await?,
                    None => None,
                }
            }
        };
        found.as_ref().map(certificate_live).transpose()
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: CertificateSpec = desired.spec()?;
        let mut req = self
            .acm
            .request_certificate()
            .domain_name(&spec.domain_name)
            .validation_method(ValidationMethod::from(spec.validation_method.as_str()))
            .key_algorithm(KeyAlgorithm::from(spec.key_algorithm.as_str()))
            // The same token within an hour returns the same certificate: a retry after a
            // lost reply does not request a second one.
            .idempotency_token(&desired.token)
            .set_subject_alternative_names(
                (!spec.subject_alternative_names.is_empty()).then(|| spec.names()),
            );
        for (k, v) in cx.tags() {
            req = req.tags(
                Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| ResourceError::fatal(e.to_string()))?,
            );
        }
        let out = req
            .send()
            .await
            .map_err(|e| aws("acm:RequestCertificate", e))?;
        let arn = out
            .certificate_arn()
            .ok_or_else(|| ResourceError::fatal("acm:RequestCertificate returned no ARN"))?
            .to_string();
        let value = serde_json::to_value(CertificateOut {
            certificate_arn: arn.clone(),
            domain_name: spec.domain_name.clone(),
            validation_records: Vec::new(),
        })
        .map_err(|e| ResourceError::fatal(e.to_string()))?;
        let settings = provision_core::resource::to_settings(&spec);
        Ok(Live::new(arn, settings, value).pending("requested"))
    }

    async fn wait_ready(&self, cx: &Cx, live: Live) -> Result<Live, ResourceError> {
        let arn = live.physical_id.clone();
        let settings = live.settings.clone();
        // ACM takes a few seconds after the request to make up the validation records.
        until(
            cx,
            &format!("ACM to publish the validation records of certificate {arn}"),
            &provision_aws::timeouts::CERTIFICATE,
            Backoff::FAST,
            || async {
                let d = describe(&self.acm, &arn).await?.ok_or_else(|| {
                    ResourceError::fatal(format!(
                        "certificate {arn} disappeared while being requested"
                    ))
                })?;
                let mut l = certificate_live(&d)?;
                if !l.ready {
                    return Ok(Poll::Pending("no validation records yet".into()));
                }
                // Keep the settings as requested where ACM reports nothing more.
                for (k, v) in &settings {
                    l.settings.entry(k.clone()).or_insert_with(|| v.clone());
                }
                Ok(Poll::Ready(l))
            },
        )
        .await
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(arn) = record.physical_id.as_deref() else {
            return Ok(());
        };
        if describe(&self.acm, arn).await?.is_none() {
            return Ok(());
        }
        let pairs = tags(&self.acm, arn).await?;
        cx.ensure_ours(
            &format!("certificate {arn}"),
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )?;
        // A listener deleted a moment ago may still hold the certificate for a while.
        retry(cx, &[&CERTIFICATE_IN_USE, &TRANSIENT], || async {
            match self
                .acm
                .delete_certificate()
                .certificate_arn(arn)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(aws("acm:DeleteCertificate", e)),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternative_names_leave_out_the_domain_and_are_sorted() {
        let spec = CertificateSpec::dns(
            "Example.com",
            [
                "dev.example.com".to_string(),
                "example.com".to_string(),
                "a.example.com".to_string(),
            ],
        );
        assert_eq!(spec.domain_name, "example.com");
        assert_eq!(
            spec.subject_alternative_names,
            ["a.example.com", "dev.example.com"]
        );
        assert_eq!(
            spec.names(),
            ["example.com", "a.example.com", "dev.example.com"]
        );
        // prod: the app domain is the domain itself.
        let prod = CertificateSpec::dns("example.com", ["example.com".to_string()]);
        assert!(prod.subject_alternative_names.is_empty());
        assert_eq!(
            provision_core::resource::to_settings(&prod)["key_algorithm"],
            "RSA_2048"
        );
    }
}
