//! The certificate on LocalStack: the request for the domain and the app domain, the DNS
//! validation records provision writes into the hosted zone (checked against what ACM asked
//! for), the wait for `ISSUED`, a rerun that changes nothing, and `down` that removes the
//! certificate and its records.
//!
//! LocalStack, like moto, does not look at DNS: it keeps a certificate `PENDING_VALIDATION` for
//! 10 seconds after the request and then reports it `ISSUED` (its `acm/provider.py` caps moto's
//! `ACM_VALIDATION_WAIT` at 10 s). So `ISSUED` here shows that provision waits for the status
//! and reads it; that the records would validate on AWS is shown by comparing them, name and
//! value, with the `ResourceRecord`s DescribeCertificate returns.

use std::collections::BTreeSet;

use aws_sdk_acm::types::CertificateStatus;

use crate::support::{ACCOUNT, Stack, mutating_calls, mutating_operations, state_ids};

/// The ARNs of the certificates tagged with this stack, found through ACM (not the state).
async fn certificates(stack: &Stack) -> Vec<String> {
    let acm = stack.acm();
    let mut out = Vec::new();
    let mut next = None;
    loop {
        let page = acm
            .list_certificates()
            .set_next_token(next.take())
            .send()
            .await
            .unwrap();
        for c in page.certificate_summary_list() {
            let arn = c.certificate_arn().unwrap().to_string();
            let tags = acm
                .list_tags_for_certificate()
                .certificate_arn(&arn)
                .send()
                .await
                .unwrap();
            if tags.tags().iter().any(|t| {
                t.key() == "provision:stack" && t.value() == Some(stack.stack_name().as_str())
            }) {
                out.push(arn);
            }
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => return out,
        }
    }
}

/// The zone's records other than its own SOA and NS, as (name, type, values).
async fn records(stack: &Stack) -> Vec<(String, String, Vec<String>)> {
    let out = stack
        .route53()
        .list_resource_record_sets()
        .hosted_zone_id(stack.zone_id())
        .send()
        .await
        .unwrap();
    out.resource_record_sets()
        .iter()
        .filter(|r| !matches!(r.r#type().as_str(), "SOA" | "NS"))
        .map(|r| {
            (
                r.name().to_ascii_lowercase(),
                r.r#type().as_str().to_string(),
                r.resource_records()
                    .iter()
                    .map(|v| v.value().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_certificate_is_requested_validated_through_its_records_kept_and_removed() {
    let stack = Stack::new().await;
    let domain = stack.domain();
    let app_domain = format!("{}.{domain}", stack.environment());

    // First the request and its records only: what a deploy does while ACM validates.
    let first = stack.up(&["web/certificate/validation-record/"]).await;
    assert!(mutating_calls(&first) > 0);
    let ids = state_ids(&stack.state());
    assert!(
        ids.iter().all(|id| id.starts_with("web/certificate")),
        "the run reached beyond the certificate: {ids:?}"
    );
    let arns = certificates(&stack).await;
    assert_eq!(arns.len(), 1, "exactly one certificate: {arns:?}");
    let arn = arns[0].clone();
    assert!(
        arn.starts_with(&format!("arn:aws:acm:us-east-1:{ACCOUNT}:certificate/")),
        "{arn}"
    );
    let described = stack
        .acm()
        .describe_certificate()
        .certificate_arn(&arn)
        .send()
        .await
        .unwrap();
    let cert = described.certificate().unwrap();
    assert_eq!(cert.domain_name(), Some(domain.as_str()));
    let names: BTreeSet<&str> = cert
        .subject_alternative_names()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([domain.as_str(), app_domain.as_str()])
    );
    assert_eq!(
        cert.key_algorithm().map(|k| k.as_str()),
        Some("RSA-2048"),
        "RSA 2048, as DescribeCertificate spells it"
    );

    // Every name's validation record is in the zone, exactly as ACM asked for it.
    let written = records(&stack).await;
    let options = cert.domain_validation_options();
    assert_eq!(options.len(), 2, "{options:?}");
    for option in options {
        assert_eq!(option.validation_method().map(|m| m.as_str()), Some("DNS"));
        let rr = option
            .resource_record()
            .expect("ACM names the record to write");
        let want = (
            fqdn(rr.name()),
            rr.r#type().as_str().to_string(),
            vec![rr.value().to_string()],
        );
        assert!(
            written.contains(&want),
            "no validation record {want:?} for {} in {written:?}",
            option.domain_name()
        );
    }
    assert_eq!(
        written.len(),
        options
            .iter()
            .filter_map(|o| o.resource_record().map(|r| fqdn(r.name())))
            .collect::<BTreeSet<_>>()
            .len(),
        "provision writes the validation records and nothing else: {written:?}"
    );

    // Then the whole certificate, which waits until ACM reports it issued.
    stack.up(&["web/certificate"]).await;
    let status = stack
        .acm()
        .describe_certificate()
        .certificate_arn(&arn)
        .send()
        .await
        .unwrap()
        .certificate()
        .and_then(|c| c.status().cloned());
    assert_eq!(status, Some(CertificateStatus::Issued));
    assert_eq!(
        certificates(&stack).await,
        std::slice::from_ref(&arn),
        "the wait reused the certificate"
    );

    let again = stack.up(&["web/certificate"]).await;
    assert_eq!(
        mutating_calls(&again),
        0,
        "a rerun changes nothing: {:?}",
        mutating_operations(&again)
    );
    let (code, plan) = stack.plan(&["web/certificate"]).await;
    assert_eq!(code, 0, "{plan:#}");

    stack.down().await;
    let gone = stack
        .acm()
        .describe_certificate()
        .certificate_arn(&arn)
        .send()
        .await;
    assert!(
        gone.as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "the certificate is deleted: {gone:?}"
    );
    assert_eq!(
        records(&stack).await,
        [],
        "the validation records are removed"
    );
}
