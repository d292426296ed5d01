//! Route 53 records as a resource kind, and the record helpers other crates build on (ACM's
//! validation records).
//!
//! Records carry no tags, so ownership works differently from other kinds: a record is this
//! stack's when the state recorded creating it (exact name and type in our zone). A record
//! that exists without that is someone else's, and is never overwritten or deleted, unless it
//! already says exactly what we would write (then nothing is lost by taking it over).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use provision_core::resource::{
    Cx, Desired, ErrorClass, Kind, Live, Lookup, Record as StateRecord, ResourceError, to_settings,
};
use serde::{Deserialize, Serialize};

fn aws<E, R>(operation: &str, err: SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    provision_aws::classify(operation, err)
}

/// Every Route 53 kind.
pub struct Route53Kinds {
    pub record: Arc<RecordKind>,
}

impl Route53Kinds {
    pub fn new(client: Client) -> Self {
        Route53Kinds {
            record: Arc::new(RecordKind { r53: client }),
        }
    }
    pub fn all(&self) -> Vec<Arc<dyn Kind>> {
        vec![self.record.clone()]
    }
}

/// Where an alias record points: another AWS resource's DNS name (a load balancer).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Alias {
    /// Lower case, with the trailing dot, as Route 53 reports it.
    pub dns_name: String,
    /// The target's own hosted zone (a load balancer's canonical hosted zone id).
    pub hosted_zone_id: String,
    pub evaluate_target_health: bool,
}

/// One record set: a name and type in a hosted zone, with either values and a TTL, or an alias.
///
/// Every key is always present (null or empty when unused), so that a record changed from an
/// alias to plain values, or back, reads as a change.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordSpec {
    pub hosted_zone_id: String,
    /// Fully qualified, lower case, with the trailing dot (see [`fqdn`]).
    pub name: String,
    /// `A`, `AAAA`, `CNAME`...
    pub record_type: String,
    pub ttl: Option<i64>,
    /// Sorted, so the order Route 53 lists them in never reads as a change.
    pub values: Vec<String>,
    pub alias: Option<Alias>,
}

impl RecordSpec {
    /// A record with plain values.
    pub fn values(
        hosted_zone_id: &str,
        name: &str,
        record_type: &str,
        ttl: i64,
        values: impl IntoIterator<Item = String>,
    ) -> Self {
        let mut values: Vec<String> = values.into_iter().collect();
        values.sort();
        values.dedup();
        RecordSpec {
            hosted_zone_id: hosted_zone_id.to_string(),
            name: fqdn(name),
            record_type: record_type.to_string(),
            ttl: Some(ttl),
            values,
            alias: None,
        }
    }

    /// An alias record to another AWS resource.
    pub fn alias(
        hosted_zone_id: &str,
        name: &str,
        record_type: &str,
        target_dns_name: &str,
        target_zone_id: &str,
    ) -> Self {
        RecordSpec {
            hosted_zone_id: hosted_zone_id.to_string(),
            name: fqdn(name),
            record_type: record_type.to_string(),
            ttl: None,
            values: Vec::new(),
            alias: Some(Alias {
                dns_name: fqdn(target_dns_name),
                hosted_zone_id: target_zone_id.to_string(),
                evaluate_target_health: true,
            }),
        }
    }

    /// `Z123/app.example.com/A`: what the state and the plan call the record.
    pub fn physical_id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.hosted_zone_id,
            self.name.trim_end_matches('.'),
            self.record_type
        )
    }

    /// What the record says, for messages: `alias to x.elb.amazonaws.com.` or its values.
    pub fn describe(&self) -> String {
        match &self.alias {
            Some(a) => format!("alias to {}", a.dns_name),
            None => self.values.join(", "),
        }
    }
}

/// What dependents read from a record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecordOut {
    pub name: String,
    pub record_type: String,
}

/// `name` as Route 53 reports it: lower case with the trailing dot.
pub fn fqdn(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    if lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}

/// Route 53 reports `*` and other special characters as octal escapes (`\052`).
fn unescape(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(digits) = name.get(i + 1..i + 4)
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(v) = u8::from_str_radix(digits, 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The record set as a spec, normalised like desired specs are.
pub fn spec_of(hosted_zone_id: &str, rr: &ResourceRecordSet) -> RecordSpec {
    let mut values: Vec<String> = rr
        .resource_records()
        .iter()
        .map(|r| r.value().to_string())
        .collect();
    values.sort();
    RecordSpec {
        hosted_zone_id: hosted_zone_id.to_string(),
        name: fqdn(&unescape(rr.name())),
        record_type: rr.r#type().as_str().to_string(),
        ttl: rr.ttl(),
        values,
        alias: rr.alias_target().map(|a| Alias {
            dns_name: fqdn(a.dns_name()),
            hosted_zone_id: a.hosted_zone_id().to_string(),
            evaluate_target_health: a.evaluate_target_health(),
        }),
    }
}

fn build_error(e: impl std::fmt::Display) -> ResourceError {
    ResourceError::fatal(format!("could not build a Route 53 request: {e}"))
}

/// The record set a spec describes, for a change.
pub fn record_set(spec: &RecordSpec) -> Result<ResourceRecordSet, ResourceError> {
    let mut b = ResourceRecordSet::builder()
        .name(&spec.name)
        .r#type(RrType::from(spec.record_type.as_str()));
    match &spec.alias {
        Some(a) => {
            b = b.alias_target(
                AliasTarget::builder()
                    .dns_name(&a.dns_name)
                    .hosted_zone_id(&a.hosted_zone_id)
                    .evaluate_target_health(a.evaluate_target_health)
                    .build()
                    .map_err(build_error)?,
            );
        }
        None => {
            if let Some(ttl) = spec.ttl {
                b = b.ttl(ttl);
            }
            for v in &spec.values {
                b = b.resource_records(
                    ResourceRecord::builder()
                        .value(v)
                        .build()
                        .map_err(build_error)?,
                );
            }
        }
    }
    b.build().map_err(build_error)
}

fn zone_hint(zone: &str) -> String {
    format!(
        "no hosted zone {zone} in this account: check `hosted_zone_id` in the config (the id without /hostedzone/, as the Route 53 console shows it)"
    )
}

/// The record set of exactly this name and type in the zone, if there is one.
pub async fn find(
    r53: &Client,
    zone: &str,
    name: &str,
    record_type: &str,
) -> Result<Option<ResourceRecordSet>, ResourceError> {
    let name = fqdn(name);
    // Records are listed in order from the start name and type, so the first one is it if it exists.
    let out = match r53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .start_record_name(&name)
        .start_record_type(RrType::from(record_type))
        .max_items(1)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_hosted_zone()) =>
        {
            return Err(aws("route53:ListResourceRecordSets", e).with_hint(zone_hint(zone)));
        }
        Err(e) => return Err(aws("route53:ListResourceRecordSets", e)),
    };
    Ok(out
        .resource_record_sets()
        .iter()
        .find(|rr| {
            fqdn(&unescape(rr.name())) == name
                && rr.r#type().as_str() == record_type
                && rr.set_identifier().is_none()
        })
        .cloned())
}

/// Sends one change. `CREATE` fails if the record exists; `UPSERT` writes it whatever is
/// there; `DELETE` needs the record exactly as it is.
pub async fn change(
    r53: &Client,
    zone: &str,
    action: ChangeAction,
    rr: ResourceRecordSet,
) -> Result<(), ResourceError> {
    let batch = ChangeBatch::builder()
        .changes(
            Change::builder()
                .action(action.clone())
                .resource_record_set(rr)
                .build()
                .map_err(build_error)?,
        )
        .build()
        .map_err(build_error)?;
    match r53
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(batch)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_hosted_zone()) =>
        {
            Err(aws("route53:ChangeResourceRecordSets", e).with_hint(zone_hint(zone)))
        }
        // A CREATE that finds the record there (a lost reply, or someone else): look it up.
        Err(e)
            if action == ChangeAction::Create
                && e.as_service_error()
                    .is_some_and(|s| s.is_invalid_change_batch()) =>
        {
            let mut err = aws("route53:ChangeResourceRecordSets", e);
            err.class = ErrorClass::AlreadyExists;
            Err(err)
        }
        Err(e) => Err(aws("route53:ChangeResourceRecordSets", e)),
    }
}

/// The error for a record that exists and is not ours.
pub fn not_ours(found: &RecordSpec, wanted: &RecordSpec) -> ResourceError {
    ResourceError::foreign(format!(
        "a {} record for {} already exists in hosted zone {} and says {} (provision would write {}); provision did not create it and will not overwrite it",
        found.record_type,
        found.name,
        found.hosted_zone_id,
        found.describe(),
        wanted.describe()
    ))
    .with_hint("if the record is left over from an earlier deployment, delete it in the Route 53 console and rerun; if something else uses it, deploy under another environment or domain")
}

fn live(spec: &RecordSpec) -> Result<Live, ResourceError> {
    let out = RecordOut {
        name: spec.name.clone(),
        record_type: spec.record_type.clone(),
    };
    let value = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    Ok(Live::new(spec.physical_id(), to_settings(spec), value))
}

/// A DNS record in a hosted zone (see the crate docs on ownership).
pub struct RecordKind {
    r53: Client,
}

impl RecordKind {
    pub fn new(r53: Client) -> Self {
        RecordKind { r53 }
    }
}

#[async_trait]
impl Kind for RecordKind {
    fn name(&self) -> &'static str {
        "route53.record"
    }
    fn noun(&self) -> &'static str {
        "DNS record"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["hosted_zone_id", "name", "record_type"]
    }

    async fn read(&self, _cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        // Without a recorded record there is no name to look for; the create then checks
        // what is there before writing.
        let Some(recorded) = lookup.recorded_settings::<RecordSpec>() else {
            return Ok(None);
        };
        let Some(rr) = find(
            &self.r53,
            &recorded.hosted_zone_id,
            &recorded.name,
            &recorded.record_type,
        )
        .await?
        else {
            return Ok(None);
        };
        let found = spec_of(&recorded.hosted_zone_id, &rr);
        // Only an intent was recorded: the record is ours only if it says what we meant to
        // write. Otherwise ours was never made, and the one there is someone else's: `up`
        // refuses to overwrite it (see create), `down` leaves it alone.
        if lookup.physical_id().is_none() && found != recorded {
            return Ok(None);
        }
        live(&found).map(Some)
    }

    async fn create(&self, _cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: RecordSpec = desired.spec()?;
        if let Some(rr) = find(
            &self.r53,
            &spec.hosted_zone_id,
            &spec.name,
            &spec.record_type,
        )
        .await?
        {
            let found = spec_of(&spec.hosted_zone_id, &rr);
            if found == spec {
                // Exactly what we would write: taking it over changes nothing.
                return live(&found);
            }
            return Err(not_ours(&found, &spec));
        }
        match change(
            &self.r53,
            &spec.hosted_zone_id,
            ChangeAction::Create,
            record_set(&spec)?,
        )
        .await
        {
            Ok(()) => {}
            // "Already exists", yet an exact lookup finds nothing: nobody holds the name, so an
            // UPSERT writes just what the CREATE would have. moto answers an identical CREATE seen
            // before in the zone's change journal this way whenever any record sorts after the
            // name (moto/route53/models.py, change_resource_record_sets: it tests
            // get_record_sets(start_name=...), a listing from that name on, for emptiness), which
            // every up after a down of the same stack sends.
            Err(e) if e.class == ErrorClass::AlreadyExists => {
                if let Some(rr) = find(
                    &self.r53,
                    &spec.hosted_zone_id,
                    &spec.name,
                    &spec.record_type,
                )
                .await?
                {
                    let found = spec_of(&spec.hosted_zone_id, &rr);
                    return if found == spec {
                        live(&found)
                    } else {
                        Err(not_ours(&found, &spec))
                    };
                }
                change(
                    &self.r53,
                    &spec.hosted_zone_id,
                    ChangeAction::Upsert,
                    record_set(&spec)?,
                )
                .await?;
            }
            Err(e) => return Err(e),
        }
        live(&spec)
    }

    async fn update(
        &self,
        _cx: &Cx,
        desired: &Desired,
        _live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        // Ours per the state: bring it back to what the config says.
        let spec: RecordSpec = desired.spec()?;
        change(
            &self.r53,
            &spec.hosted_zone_id,
            ChangeAction::Upsert,
            record_set(&spec)?,
        )
        .await?;
        live(&spec)
    }

    async fn delete(&self, _cx: &Cx, record: &StateRecord) -> Result<(), ResourceError> {
        let Ok(spec) = serde_json::from_value::<RecordSpec>(serde_json::Value::Object(
            record.settings.clone(),
        )) else {
            return Ok(());
        };
        delete_record(&self.r53, &spec, record.physical_id.is_some()).await
    }
}

/// Deletes the record `spec` names, if it is there and ours: recorded as created (`recorded`),
/// or saying exactly what `spec` says.
pub async fn delete_record(
    r53: &Client,
    spec: &RecordSpec,
    recorded: bool,
) -> Result<(), ResourceError> {
    let Some(rr) = find(r53, &spec.hosted_zone_id, &spec.name, &spec.record_type).await? else {
        return Ok(());
    };
    if !recorded && spec_of(&spec.hosted_zone_id, &rr) != *spec {
        return Ok(());
    }
    // DELETE needs the record exactly as it is now.
    match change(r53, &spec.hosted_zone_id, ChangeAction::Delete, rr).await {
        Ok(()) => Ok(()),
        // Gone between the read and the delete.
        Err(e) if e.code.as_deref() == Some("InvalidChangeBatch") => {
            match find(r53, &spec.hosted_zone_id, &spec.name, &spec.record_type).await? {
                None => Ok(()),
                Some(_) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_fully_qualified_and_lower_case() {
        assert_eq!(fqdn("Dev.Example.com"), "dev.example.com.");
        assert_eq!(fqdn("dev.example.com."), "dev.example.com.");
        assert_eq!(unescape("\\052.example.com."), "*.example.com.");
        assert_eq!(unescape("plain.example.com."), "plain.example.com.");
    }

    #[test]
    fn a_record_set_reads_back_as_its_spec() {
        let spec = RecordSpec::values(
            "Z1",
            "_x.Example.com",
            "CNAME",
            300,
            ["b.".to_string(), "a.".to_string()],
        );
        assert_eq!(spec.values, ["a.", "b."]);
        let rr = record_set(&spec).unwrap();
        assert_eq!(spec_of("Z1", &rr), spec);

        let alias = RecordSpec::alias(
            "Z1",
            "dev.example.com",
            "A",
            "My-LB-1.us-east-1.elb.amazonaws.com",
            "Z35",
        );
        let rr = record_set(&alias).unwrap();
        assert_eq!(spec_of("Z1", &rr), alias);
        assert_eq!(alias.physical_id(), "Z1/dev.example.com/A");
        assert_eq!(
            alias.alias.as_ref().map(|a| a.dns_name.as_str()),
            Some("my-lb-1.us-east-1.elb.amazonaws.com.")
        );
    }

    #[test]
    fn unused_keys_are_still_reported() {
        let alias = RecordSpec::alias("Z1", "dev.example.com", "A", "lb", "Z35");
        let s = to_settings(&alias);
        assert!(s.contains_key("ttl") && s.contains_key("values"), "{s:?}");
    }
}
