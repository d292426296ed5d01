use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use serde::{Deserialize, Serialize};

use crate::{
    aws, is_not_found, is_ours, no_retry, ours, propagated, set_name, tag_pairs, tag_spec,
    tag_value, while_in_use,
};

pub struct Subnet {
    pub(crate) ec2: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SubnetSpec {
    pub vpc_id: String,
    pub cidr_block: String,
    pub availability_zone: String,
    /// Instances launched here get a public IP (public subnets).
    pub map_public_ip_on_launch: bool,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SubnetOut {
    pub subnet_id: String,
    pub availability_zone: String,
}

fn live(s: &aws_sdk_ec2::types::Subnet) -> Option<Live> {
    let id = s.subnet_id()?;
    let spec = SubnetSpec {
        vpc_id: s.vpc_id()?.to_string(),
        cidr_block: s.cidr_block()?.to_string(),
        availability_zone: s.availability_zone()?.to_string(),
        map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
        name: tag_value(s.tags(), "Name").unwrap_or_default().to_string(),
    };
    let out = SubnetOut {
        subnet_id: id.to_string(),
        availability_zone: spec.availability_zone.clone(),
    };
    Some(Live::new(
        id,
        to_settings(&spec),
        serde_json::to_value(out).ok()?,
    ))
}

impl Subnet {
    async fn set_public_ip(&self, cx: &Cx, id: &str, on: bool) -> Result<(), ResourceError> {
        let ec2 = &self.ec2;
        propagated(cx, || async move {
            ec2.modify_subnet_attribute()
                .subnet_id(id)
                .map_public_ip_on_launch(AttributeBooleanValue::builder().value(on).build())
                .send()
                .await
                .map_err(|e| aws("ec2:ModifySubnetAttribute", e))
        })
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Kind for Subnet {
    fn name(&self) -> &'static str {
        "ec2.subnet"
    }
    fn noun(&self) -> &'static str {
        "subnet"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["vpc_id", "cidr_block", "availability_zone"]
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let found = match lookup.physical_id() {
            Some(id) => match self.ec2.describe_subnets().subnet_ids(id).send().await {
                Ok(out) => out.subnets().first().cloned(),
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(aws("ec2:DescribeSubnets", e)),
            },
            None => self
                .ec2
                .describe_subnets()
                .set_filters(Some(ours(cx)))
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| aws("ec2:DescribeSubnets", e))?
                .into_iter()
                .find(|s| is_ours(cx, s.tags())),
        };
        let Some(s) = found.as_ref() else {
            return Ok(None);
        };
        cx.ensure_ours(
            &format!("subnet {}", s.subnet_id().unwrap_or("?")),
            tag_pairs(s.tags()),
        )?;
        Ok(live(s))
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: SubnetSpec = desired.spec()?;
        // The VPC may be a moment old.
        let (ec2, spec_ref) = (&self.ec2, &spec);
        let out = propagated(cx, || async move {
            ec2.create_subnet()
                .vpc_id(&spec_ref.vpc_id)
                .cidr_block(&spec_ref.cidr_block)
                .availability_zone(&spec_ref.availability_zone)
                .tag_specifications(tag_spec(cx, ResourceType::Subnet, Some(&spec_ref.name)))
                .customize()
                .config_override(no_retry())
                .send()
                .await
                .map_err(|e| aws("ec2:CreateSubnet", e))
        })
        .await?;
        let s = out
            .subnet()
            .ok_or_else(|| ResourceError::fatal("ec2:CreateSubnet returned no subnet"))?;
        let mut live = live(s).ok_or_else(|| {
            ResourceError::fatal("ec2:CreateSubnet returned an incomplete subnet")
        })?;
        cx.created(&live).await?;
        if spec.map_public_ip_on_launch {
            self.set_public_ip(cx, &live.physical_id, true).await?;
            live.settings
                .insert("map_public_ip_on_launch".into(), true.into());
        }
        Ok(live)
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: SubnetSpec = desired.spec()?;
        let mut live = live.clone();
        for c in changed {
            match c.as_str() {
                "map_public_ip_on_launch" => {
                    self.set_public_ip(cx, &live.physical_id, spec.map_public_ip_on_launch)
                        .await?
                }
                "name" => set_name(&self.ec2, cx, &live.physical_id, &spec.name).await?,
                _ => {}
            }
        }
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(id) = record.physical_id.as_deref() else {
            return Ok(());
        };
        let lookup = Lookup {
            id: cx.id(),
            name: None,
            token: "",
            record: Some(record),
        };
        let Some(live) = self.read(cx, &lookup).await? else {
            return Ok(());
        };
        let vpc_id = live
            .settings
            .get("vpc_id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let ec2 = self.ec2.clone();
        while_in_use(
            cx,
            &format!("subnet {id}"),
            &provision_aws::timeouts::SUBNET_DELETE,
            || {
                let ec2 = ec2.clone();
                async move {
                    match ec2.delete_subnet().subnet_id(id).send().await {
                        Ok(_) => Ok(()),
                        Err(e) if is_not_found(&e) => Ok(()),
                        Err(e) => Err(aws("ec2:DeleteSubnet", e)),
                    }
                }
            },
            || async move { crate::vpc_blockers(&self.ec2, &vpc_id).await },
        )
        .await
    }
}
