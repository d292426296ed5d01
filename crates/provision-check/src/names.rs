//! Names already taken by something this stack does not own. The plan reads every resource
//! by its name (or tags), and a kind answers [`ErrorClass::Foreign`] for one that is tagged for
//! another stack or not at all: those failures are the findings, so no resource is read
//! twice. DNS records are not read by the plan before they are recorded (they carry no tags;
//! their create refuses to overwrite one it did not write), so the app's records are looked
//! up here.

use provision_config::{Config, EndpointModel, ImageSource};
use provision_core::engine::Failure;
use provision_core::resource::ErrorClass;
use provision_core::state::State;

use crate::{Area, Finding};

/// The config key that names an existing ECR image `repository:tag`.
fn image_key(config: &Config, repository: &str, tag: &str) -> Option<String> {
    let is = |i: &ImageSource| matches!(i, ImageSource::Ecr { repository: r, tag: t } if r == repository && t == tag);
    for (i, f) in config.lambda_functions.iter().enumerate() {
        if is(&f.image) {
            return Some(format!("lambda_functions[{i}].ecr_repo"));
        }
    }
    for (i, e) in config.sagemaker_endpoints.iter().enumerate() {
        if let EndpointModel::ImageAndModelData { image, .. } = &e.model
            && is(image)
        {
            return Some(format!("sagemaker_endpoints[{i}].image_repo_name"));
        }
    }
    None
}

/// The config key that names the endpoint `endpoint/<name>` (its node), if one does. An
/// endpoint is the one resource named by the config as is, so the one whose name another
/// environment of the account can hold (models and endpoint configurations carry the stack's
/// name, and so cannot collide).
fn endpoint_key(config: &Config, id: &str) -> Option<String> {
    let name = id.strip_prefix("endpoint/")?;
    config
        .sagemaker_endpoints
        .iter()
        .position(|e| e.endpoint_name == name)
        .map(|i| format!("sagemaker_endpoints[{i}].endpoint_name"))
}

/// The plan's read failures as findings: a foreign resource under the stack's name, an image
/// the config names that is not in ECR, or a resource that could not be read.
pub fn from_plan(config: &Config, failures: &[Failure]) -> Vec<Finding> {
    failures
        .iter()
        .map(|f| {
            let id = f.id.as_str();
            let finding = if let Some(image) = id.strip_prefix("image/ecr/") {
                let (repository, tag) = image.rsplit_once('/').unwrap_or((image, ""));
                let subject = image_key(config, repository, tag).unwrap_or_else(|| id.to_string());
                Finding::problem(Area::Images, subject, f.error.message.clone())
            } else if f.error.class == ErrorClass::Foreign {
                let subject = match endpoint_key(config, id) {
                    Some(key) => format!("{key} ({id}, {})", f.noun),
                    None => format!("{id} ({})", f.noun),
                };
                Finding::problem(
                    Area::Names,
                    subject,
                    format!("the name is taken: {}", f.error.message),
                )
            } else {
                Finding::problem(
                    Area::Resources,
                    format!("{id} ({})", f.noun),
                    format!("could not be read: {}", f.error.message),
                )
            };
            if f.error.class == ErrorClass::Foreign && endpoint_key(config, id).is_some() {
                return finding.hint(
                    "endpoint names are used as the config gives them: give this environment's endpoints names of their own (and update whatever refers to them, such as a function's environment)",
                );
            }
            match &f.error.hint {
                Some(h) => finding.hint(h.clone()),
                None => finding,
            }
        })
        .collect()
}

/// The DNS records the stack writes under fixed names: the app domain's alias `A` and `AAAA`
/// records (`web/dns/app`, `web/dns/app-aaaa`: the load balancer is dual stack) and, in
/// `prod`, the `prod.<domain>` CNAME (`web/dns/prod`).
pub fn records(config: &Config) -> Vec<(&'static str, String, &'static str, Option<String>)> {
    let mut out = vec![
        ("web/dns/app", config.app_domain(), "A", None),
        ("web/dns/app-aaaa", config.app_domain(), "AAAA", None),
    ];
    if config.is_prod() {
        out.push((
            "web/dns/prod",
            format!("prod.{}", config.domain_name),
            "CNAME",
            Some(config.domain_name.clone()),
        ));
    }
    out
}

/// Each record the stack would create that exists already and is not recorded as ours: the
/// create would refuse to overwrite it, at the very end of a deploy. One
/// `ListResourceRecordSets` per record the state does not record. A record the state holds even
/// only as an intent (a run killed between its create call and the answer) is left to the
/// record kind, which finds the record it wrote by its recorded value.
pub async fn dns_records(
    route53: &aws_sdk_route53::Client,
    config: &Config,
    state: &State,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (id, name, record_type, value) in records(config) {
        let recorded = state
            .resources
            .contains_key(&provision_core::LogicalId::from(id));
        if recorded {
            continue;
        }
        match provision_route53::find(route53, &config.hosted_zone_id, &name, record_type).await {
            Ok(None) => findings.push(Finding::ok(
                Area::Names,
                format!("{id} (DNS record)"),
                format!("no {record_type} record for {name} yet"),
            )),
            Ok(Some(rr)) => {
                let values: Vec<String> = rr
                    .resource_records()
                    .iter()
                    .map(|r| r.value().trim_end_matches('.').to_ascii_lowercase())
                    .collect();
                // The prod CNAME exactly as the stack writes it is adopted, not refused.
                let same = value
                    .as_ref()
                    .is_some_and(|v| values == [v.to_ascii_lowercase()]);
                if same {
                    findings.push(Finding::ok(
                        Area::Names,
                        format!("{id} (DNS record)"),
                        format!("{name} {record_type} exists already with the value provision writes; it is taken over"),
                    ));
                    continue;
                }
                let what = match rr.alias_target() {
                    Some(a) => format!("an alias to {}", a.dns_name().trim_end_matches('.')),
                    None => values.join(", "),
                };
                findings.push(
                    Finding::problem(
                        Area::Names,
                        format!("{id} (DNS record)"),
                        format!(
                            "the name is taken: the zone `{}` already has a {record_type} record for {name} ({what}) that provision did not write; `up` would refuse to overwrite it after creating everything else",
                            config.hosted_zone_id
                        ),
                    )
                    .hint(
                        "delete that record if it is no longer used, or deploy under another `environment` or `domain_name`",
                    ),
                );
            }
            Err(e) => findings.push(Finding::not_checked(
                Area::Names,
                format!("{id} (DNS record)"),
                format!(
                    "whether {name} {record_type} exists was not checked: {}",
                    e.message
                ),
            )),
        }
    }
    findings
}
