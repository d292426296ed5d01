//! The certificate for the domain and every name served at the load balancer (the app domain,
//! and `prod.<domain>` in prod), validated by DNS: ACM names a record per name, provision
//! writes each into the hosted zone, and the validation waits until ACM has issued the
//! certificate.

use provision_acm::{
    CertificateOut, CertificateSpec, CertificateValidationOut, CertificateValidationSpec,
    ValidationRecordSpec,
};
use provision_core::graph::{Graph, GraphError};
use provision_core::input::{Ref, Until};
use provision_core::resource::Node;
use serde_json::{Value, json};

use super::{WebKinds, certificate_spec};
use crate::Project;

/// Adds the certificate, its validation records and its validation; returns the validation,
/// whose outputs carry the certificate's ARN once it is issued.
pub(super) fn add(
    g: &mut Graph,
    project: &Project,
    k: &WebKinds,
) -> Result<Ref<CertificateValidationOut>, GraphError> {
    let config = &project.config;
    let zone = &config.hosted_zone_id;
    let spec: CertificateSpec = certificate_spec(&config.environment, &config.domain_name);
    let names = spec.names();
    let certificate: Ref<CertificateOut> = g.insert(
        Node::new("web/certificate", k.acm.certificate.clone())
            .named(config.domain_name.clone())
            .fixed(&spec),
    )?;

    let mut records = Vec::new();
    for name in &names {
        let (zone, name) = (zone.clone(), name.clone());
        let record: Ref<Value> = g.insert(
            Node::new(
                format!("web/certificate/validation-record/{name}"),
                k.acm.validation_record.clone(),
            )
            .spec(certificate.ready(), move |cert| {
                // Ready means ACM has named a record for every name, so this one is there.
                match cert.validation_records.iter().find(|r| r.domain == name) {
                    Some(r) => json!(ValidationRecordSpec::new(&zone, &cert.certificate_arn, r)),
                    None => {
                        json!({"missing": format!("ACM named no validation record for {name}")})
                    }
                }
            }),
        )?;
        records.push(record);
    }

    let zone = zone.clone();
    let validation = Node::new("web/certificate/validation", k.acm.validation.clone()).spec(
        certificate.exists(),
        move |cert| CertificateValidationSpec {
            certificate_arn: cert.certificate_arn,
            hosted_zone_id: zone.clone(),
            names: names.clone(),
        },
    );
    // The records' outputs are not read: ACM looks them up itself.
    let validation = records.iter().fold(validation, |node, record| {
        node.ordered_after(record, Until::Ready)
    });
    g.insert(validation)
}
