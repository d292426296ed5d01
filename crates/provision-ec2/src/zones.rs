//! The availability zones the stack's subnets go in: read, never created.
//!
//! A zone qualifies when it is a plain availability zone (not a Local Zone or Wavelength Zone),
//! `available`, needs no opt-in, and offers every interface-endpoint service the stack puts in
//! its subnets (`com.amazonaws.<region>.ecr.api` and `.ecr.dkr`): an endpoint cannot be made in
//! a subnet of a zone its service is not offered in. The candidates are listed by name, which
//! stays stable as AWS adds zones; subnets take the first ones.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use provision_core::resource::{Cx, Desired, Kind, Live, Lookup, Record, ResourceError};
use serde::{Deserialize, Serialize};

use crate::{aws, filter};

const NOT_OFFERED: &str =
    "the region does not offer a VPC endpoint service the stack needs; choose another `region`";

/// How many zones the stack spreads over.
const NEEDED: usize = 2;

pub struct AvailabilityZones {
    pub(crate) ec2: Client,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AvailabilityZonesSpec {
    /// The interface-endpoint services (`com.amazonaws.us-east-1.ecr.api`) that every chosen
    /// zone must offer (`DescribeVpcEndpointServices`). Empty: any available zone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint_services: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AvailabilityZonesOut {
    /// The qualifying zones, sorted by name.
    pub names: Vec<String>,
}

/// Whether a zone described by EC2 can hold the stack's subnets: a plain availability zone,
/// available, without opt-in. Checked here as well as asked of the server: emulators ignore
/// some filters, and a field a server leaves out (moto reports no opt-in status) counts as
/// the default.
/// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_AvailabilityZone.html)
fn qualifies(z: &aws_sdk_ec2::types::AvailabilityZone) -> bool {
    let plain = z.zone_type().is_none_or(|t| t == "availability-zone");
    let available = z.state().is_some_and(|s| s.as_str() == "available");
    let no_opt_in = z
        .opt_in_status()
        .is_none_or(|s| s.as_str() == "opt-in-not-required");
    plain && available && no_opt_in
}

/// The names of the qualifying `zones` that are in every one of `offered`, sorted.
fn choose(
    zones: &[aws_sdk_ec2::types::AvailabilityZone],
    offered: &[BTreeSet<String>],
) -> Vec<String> {
    let names: BTreeSet<String> = zones
        .iter()
        .filter(|z| qualifies(z))
        .filter_map(|z| z.zone_name().map(str::to_string))
        .filter(|n| offered.iter().all(|o| o.contains(n)))
        .collect();
    names.into_iter().collect()
}

impl AvailabilityZones {
    /// The qualifying zones for `spec`, sorted by name; an error if fewer than two.
    async fn candidates(
        &self,
        cx: &Cx,
        spec: &AvailabilityZonesSpec,
    ) -> Result<Vec<String>, ResourceError> {
        let out = self
            .ec2
            .describe_availability_zones()
            .filters(filter("state", "available"))
            .filters(filter("zone-type", "availability-zone"))
            .send()
            .await
            .map_err(|e| aws("ec2:DescribeAvailabilityZones", e))?;
        let available = out
            .availability_zones()
            .iter()
            .filter(|z| qualifies(z))
            .count();
        let mut offered = Vec::new();
        for service in &spec.endpoint_services {
            offered.push(self.offered_in(service).await?);
        }
        let names = choose(out.availability_zones(), &offered);
        if names.len() < NEEDED {
            let region = &cx.stack().region;
            let why = if spec.endpoint_services.is_empty() {
                format!("region {region} has {available} available availability zone(s)")
            } else {
                format!(
                    "of the {available} available availability zone(s) of region {region}, {} offer{} {}",
                    names.len(),
                    if names.len() == 1 { "s" } else { "" },
                    spec.endpoint_services.join(" and ")
                )
            };
            return Err(
                ResourceError::fatal(format!("{why}; the stack needs {NEEDED}"))
                    .with_hint("choose another `region`"),
            );
        }
        Ok(names)
    }

    /// The zones `service` is offered in.
    async fn offered_in(&self, service: &str) -> Result<BTreeSet<String>, ResourceError> {
        let out = self
            .ec2
            .describe_vpc_endpoint_services()
            .service_names(service)
            .send()
            .await
            .map_err(|e| {
                let mut err = aws("ec2:DescribeVpcEndpointServices", e);
                // "The Vpc Endpoint Service '...' does not exist": not offered in this region.
                if err.code.as_deref() == Some("InvalidServiceName") {
                    err.hint = Some(NOT_OFFERED.into());
                }
                err
            })?;
        // The service asked for, by name: the answer may list others too.
        let detail = out
            .service_details()
            .iter()
            .find(|d| d.service_name() == Some(service))
            .ok_or_else(|| {
                ResourceError::fatal(format!(
                    "the VPC endpoint service {service} is not offered in this region"
                ))
                .with_hint(NOT_OFFERED)
            })?;
        Ok(detail.availability_zones().iter().cloned().collect())
    }

    /// Keeps `current` (the zones the subnets are in: they must not move because AWS added a
    /// zone) while every one still qualifies; else the candidates.
    fn keep(current: Option<Vec<String>>, candidates: Vec<String>) -> Vec<String> {
        current
            .filter(|kept| kept.len() >= NEEDED && kept.iter().all(|k| candidates.contains(k)))
            .unwrap_or(candidates)
    }

    fn live(cx: &Cx, spec: &AvailabilityZonesSpec, names: Vec<String>) -> Live {
        Live::new(
            cx.stack().region.clone(),
            provision_core::resource::to_settings(spec),
            serde_json::json!({ "names": names }),
        )
    }

    fn names_of(outputs: &serde_json::Value) -> Option<Vec<String>> {
        serde_json::from_value::<AvailabilityZonesOut>(outputs.clone())
            .ok()
            .map(|o| o.names)
    }
}

#[async_trait]
impl Kind for AvailabilityZones {
    fn name(&self) -> &'static str {
        "ec2.availability-zones"
    }
    fn noun(&self) -> &'static str {
        "availability zones"
    }
    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        // Judged by the settings last applied; a change of them is an update.
        let spec: AvailabilityZonesSpec = lookup.recorded_settings().unwrap_or_default();
        let candidates = self.candidates(cx, &spec).await?;
        let kept = lookup.record.and_then(|r| Self::names_of(&r.outputs));
        Ok(Some(Self::live(cx, &spec, Self::keep(kept, candidates))))
    }
    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: AvailabilityZonesSpec = desired.spec()?;
        Ok(Self::live(cx, &spec, self.candidates(cx, &spec).await?))
    }
    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: AvailabilityZonesSpec = desired.spec()?;
        let candidates = self.candidates(cx, &spec).await?;
        Ok(Self::live(
            cx,
            &spec,
            Self::keep(Self::names_of(&live.outputs), candidates),
        ))
    }
    async fn delete(&self, _cx: &Cx, _record: &Record) -> Result<(), ResourceError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{
        AvailabilityZone, AvailabilityZoneOptInStatus, AvailabilityZoneState,
    };

    fn zone(name: &str, zone_type: &str, state: &str, opt_in: Option<&str>) -> AvailabilityZone {
        AvailabilityZone::builder()
            .zone_name(name)
            .zone_type(zone_type)
            .state(AvailabilityZoneState::from(state))
            .set_opt_in_status(opt_in.map(AvailabilityZoneOptInStatus::from))
            .build()
    }

    #[test]
    fn only_plain_available_zones_without_opt_in_qualify() {
        assert!(qualifies(&zone(
            "us-east-1a",
            "availability-zone",
            "available",
            Some("opt-in-not-required")
        )));
        assert!(qualifies(&zone(
            "us-east-1a",
            "availability-zone",
            "available",
            None
        )));
        assert!(!qualifies(&zone(
            "us-east-1-bos-1a",
            "local-zone",
            "available",
            Some("opted-in")
        )));
        assert!(!qualifies(&zone(
            "us-east-1b",
            "availability-zone",
            "impaired",
            Some("opt-in-not-required")
        )));
        assert!(!qualifies(&zone(
            "us-west-2-wl1-las-wlz-1",
            "wavelength-zone",
            "available",
            Some("not-opted-in")
        )));
    }

    #[test]
    fn zones_must_offer_every_endpoint_service() {
        let zones = [
            zone("us-east-1c", "availability-zone", "available", None),
            zone("us-east-1a", "availability-zone", "available", None),
            zone("us-east-1b", "availability-zone", "available", None),
            zone(
                "us-east-1-bos-1a",
                "local-zone",
                "available",
                Some("opted-in"),
            ),
        ];
        let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        // ecr.dkr is not offered in us-east-1a.
        let offered = [
            set(&["us-east-1a", "us-east-1b", "us-east-1c"]),
            set(&["us-east-1b", "us-east-1c", "us-east-1-bos-1a"]),
        ];
        assert_eq!(choose(&zones, &offered), ["us-east-1b", "us-east-1c"]);
        assert_eq!(
            choose(&zones, &[]),
            ["us-east-1a", "us-east-1b", "us-east-1c"],
            "no services: every qualifying zone, by name"
        );
    }

    #[test]
    fn the_zones_in_use_stay_while_they_qualify() {
        let candidates = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        // AWS added a zone that sorts first: the subnets stay where they are.
        assert_eq!(
            AvailabilityZones::keep(
                Some(candidates(&["us-east-1b", "us-east-1c"])),
                candidates(&["us-east-1a", "us-east-1b", "us-east-1c"])
            ),
            candidates(&["us-east-1b", "us-east-1c"])
        );
        // A zone in use no longer qualifies: the candidates.
        assert_eq!(
            AvailabilityZones::keep(
                Some(candidates(&["us-east-1b", "us-east-1e"])),
                candidates(&["us-east-1a", "us-east-1b", "us-east-1c"])
            ),
            candidates(&["us-east-1a", "us-east-1b", "us-east-1c"])
        );
        assert_eq!(
            AvailabilityZones::keep(None, candidates(&["us-east-1a", "us-east-1b"])),
            candidates(&["us-east-1a", "us-east-1b"])
        );
    }
}
