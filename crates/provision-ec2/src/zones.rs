use async_trait::async_trait;
use aws_sdk_ec2::Client;
use provision_core::resource::{Cx, Desired, Kind, Live, Lookup, Record, ResourceError, Settings};
use serde::{Deserialize, Serialize};

use crate::{aws, filter};

/// The region's availability zones: read, never created. Subnets take the first ones in
/// name order, which stays stable as AWS adds zones.
pub struct AvailabilityZones {
    pub(crate) ec2: Client,
}

/// Nothing to set: the zones are AWS's.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AvailabilityZonesSpec {}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AvailabilityZonesOut {
    pub names: Vec<String>,
}

impl AvailabilityZones {
    async fn zones(&self, cx: &Cx) -> Result<Vec<String>, ResourceError> {
        let out = self
            .ec2
            .describe_availability_zones()
            .filters(filter("state", "available"))
            .filters(filter("zone-type", "availability-zone"))
            .send()
            .await
            .map_err(|e| aws("ec2:DescribeAvailabilityZones", e))?;
        let mut names: Vec<String> = out
            .availability_zones()
            .iter()
            .filter_map(|z| z.zone_name().map(str::to_string))
            .collect();
        names.sort();
        if names.len() < 2 {
            return Err(ResourceError::fatal(format!(
                "region {} has {} available availability zone(s); the stack needs 2",
                cx.stack().region,
                names.len()
            )));
        }
        Ok(names)
    }

    fn live(cx: &Cx, names: Vec<String>) -> Live {
        Live::new(
            cx.stack().region.clone(),
            Settings::new(),
            serde_json::json!({ "names": names }),
        )
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
        let names = self.zones(cx).await?;
        // Keep the zones already in use: subnets must not move because AWS added a zone.
        let kept = lookup
            .record
            .and_then(|r| serde_json::from_value::<AvailabilityZonesOut>(r.outputs.clone()).ok())
            .map(|o| o.names)
            .filter(|kept| !kept.is_empty() && kept.iter().all(|k| names.contains(k)));
        Ok(Some(Self::live(cx, kept.unwrap_or(names))))
    }
    async fn create(&self, cx: &Cx, _desired: &Desired) -> Result<Live, ResourceError> {
        Ok(Self::live(cx, self.zones(cx).await?))
    }
    async fn delete(&self, _cx: &Cx, _record: &Record) -> Result<(), ResourceError> {
        Ok(())
    }
}
