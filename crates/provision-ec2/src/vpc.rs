use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use serde::{Deserialize, Serialize};

use crate::{
    aws, is_not_found, is_ours, no_retry, ours, propagated, set_name, tag_pairs, tag_spec,
    tag_value, vpc_blockers, while_in_use,
};

pub struct Vpc {
    pub(crate) ec2: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VpcSpec {
    pub cidr_block: String,
    /// The `Name` tag.
    pub name: String,
    /// DNS support and hostnames, which interface endpoints with private DNS need.
    pub dns: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VpcOut {
    pub vpc_id: String,
    pub cidr_block: String,
}

impl Vpc {
    fn live(v: &aws_sdk_ec2::types::Vpc) -> Option<Live> {
        let id = v.vpc_id()?;
        let cidr = v.cidr_block().unwrap_or_default();
        let settings = to_settings(&serde_json::json!({
            "cidr_block": cidr,
            "name": tag_value(v.tags(), "Name").unwrap_or_default(),
        }));
        // DNS attributes would need two more calls to read; the plan compares them with what
        // the state says was applied.
        let out = VpcOut {
            vpc_id: id.to_string(),
            cidr_block: cidr.to_string(),
        };
        let live = Live::new(id, settings, serde_json::to_value(out).ok()?);
        Some(match v.state().map(|s| s.as_str()) {
            Some("pending") => live.pending("pending"),
            _ => live,
        })
    }

    async fn set_dns(&self, cx: &Cx, vpc_id: &str, on: bool) -> Result<(), ResourceError> {
        // One attribute per call, support before hostnames (AWS requires support for hostnames).
        let ec2 = &self.ec2;
        propagated(cx, || async move {
            ec2.modify_vpc_attribute()
                .vpc_id(vpc_id)
                .enable_dns_support(AttributeBooleanValue::builder().value(on).build())
                .send()
                .await
                .map_err(|e| aws("ec2:ModifyVpcAttribute", e))
        })
        .await?;
        propagated(cx, || async move {
            ec2.modify_vpc_attribute()
                .vpc_id(vpc_id)
                .enable_dns_hostnames(AttributeBooleanValue::builder().value(on).build())
                .send()
                .await
                .map_err(|e| aws("ec2:ModifyVpcAttribute", e))
        })
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Kind for Vpc {
    fn name(&self) -> &'static str {
        "ec2.vpc"
    }
    fn noun(&self) -> &'static str {
        "VPC"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["cidr_block"]
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let found = match lookup.physical_id() {
            Some(id) => match self.ec2.describe_vpcs().vpc_ids(id).send().await {
                Ok(out) => out.vpcs().first().cloned(),
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(aws("ec2:DescribeVpcs", e)),
            },
            None => self
                .ec2
                .describe_vpcs()
                .set_filters(Some(ours(cx)))
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| aws("ec2:DescribeVpcs", e))?
                .into_iter()
                .find(|v| is_ours(cx, v.tags())),
        };
        let Some(v) = found.as_ref() else {
            return Ok(None);
        };
        cx.ensure_ours(
            &format!("VPC {}", v.vpc_id().unwrap_or("?")),
            tag_pairs(v.tags()),
        )?;
        Ok(Self::live(v))
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: VpcSpec = desired.spec()?;
        let out = self
            .ec2
            .create_vpc()
            .cidr_block(&spec.cidr_block)
            .tag_specifications(tag_spec(cx, ResourceType::Vpc, Some(&spec.name)))
            .customize()
            .config_override(no_retry())
            .send()
            .await
            .map_err(|e| aws("ec2:CreateVpc", e))?;
        let v = out
            .vpc()
            .ok_or_else(|| ResourceError::fatal("ec2:CreateVpc returned no VPC"))?;
        let mut live = Self::live(v)
            .ok_or_else(|| ResourceError::fatal("ec2:CreateVpc returned a VPC without an id"))?;
        cx.created(&live).await?;
        if spec.dns {
            self.set_dns(cx, &live.physical_id, true).await?;
        }
        live.ready = true;
        Ok(live)
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: VpcSpec = desired.spec()?;
        if changed.iter().any(|c| c == "dns") {
            self.set_dns(cx, &live.physical_id, spec.dns).await?;
        }
        if changed.iter().any(|c| c == "name") {
            set_name(&self.ec2, cx, &live.physical_id, &spec.name).await?;
        }
        let mut live = live.clone();
        live.settings.insert("name".into(), spec.name.into());
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
        if self.read(cx, &lookup).await?.is_none() {
            return Ok(());
        }
        cx.progress(format!("deleting VPC {id}"));
        let ec2 = self.ec2.clone();
        while_in_use(
            cx,
            &format!("VPC {id}"),
            &provision_aws::timeouts::VPC_DELETE,
            || {
                let ec2 = ec2.clone();
                async move {
                    match ec2.delete_vpc().vpc_id(id).send().await {
                        Ok(_) => Ok(()),
                        Err(e) if is_not_found(&e) => Ok(()),
                        Err(e) => Err(aws("ec2:DeleteVpc", e)),
                    }
                }
            },
            || vpc_blockers(&self.ec2, id),
        )
        .await
    }
}
