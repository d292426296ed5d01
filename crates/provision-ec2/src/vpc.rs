//! The VPC: its IPv4 block, DNS attributes and, for dual stack, an Amazon-provided IPv6 /56.

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use provision_core::wait::{Backoff, Poll, until};
use serde::{Deserialize, Serialize};

use crate::{
    Association, association, aws, is_not_found, is_ours, no_retry, normalize_ipv6_cidr, ours,
    propagated, set_name, tag_pairs, tag_spec, tag_value, vpc_blockers, while_in_use,
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
    /// An Amazon-provided IPv6 /56 beside the IPv4 block (`AmazonProvidedIpv6CidrBlock`),
    /// for dual-stack subnets. Off by default.
    #[serde(default)]
    pub ipv6: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VpcOut {
    pub vpc_id: String,
    pub cidr_block: String,
    /// The VPC's IPv6 /56 once associated, for the subnets' /64s ([`crate::ipv6_subnet`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_cidr_block: Option<String>,
}

/// The VPC's IPv6 block association that is not on its way out, if any.
fn ipv6_association(
    v: &aws_sdk_ec2::types::Vpc,
) -> Option<&aws_sdk_ec2::types::VpcIpv6CidrBlockAssociation> {
    v.ipv6_cidr_block_association_set().iter().find(|a| {
        association(
            a.ipv6_cidr_block_state()
                .and_then(|s| s.state())
                .map(|s| s.as_str()),
        ) != Association::Gone
    })
}

impl Vpc {
    fn live(v: &aws_sdk_ec2::types::Vpc) -> Option<Live> {
        let id = v.vpc_id()?;
        let cidr = v.cidr_block().unwrap_or_default();
        let v6 = ipv6_association(v);
        let v6_state = association(
            v6.and_then(|a| a.ipv6_cidr_block_state())
                .and_then(|s| s.state())
                .map(|s| s.as_str()),
        );
        let settings = to_settings(&serde_json::json!({
            "cidr_block": cidr,
            "name": tag_value(v.tags(), "Name").unwrap_or_default(),
            "ipv6": v6.is_some(),
        }));
        // DNS attributes would need two more calls to read; the plan compares them with what
        // the state says was applied.
        let out = VpcOut {
            vpc_id: id.to_string(),
            cidr_block: cidr.to_string(),
            ipv6_cidr_block: v6
                .filter(|_| v6_state == Association::Associated)
                .and_then(|a| a.ipv6_cidr_block())
                .and_then(normalize_ipv6_cidr),
        };
        let live = Live::new(id, settings, serde_json::to_value(out).ok()?);
        Some(match v.state().map(|s| s.as_str()) {
            Some("pending") => live.pending("pending"),
            _ if v6.is_some() && v6_state == Association::Pending => {
                live.pending("IPv6 block associating")
            }
            _ => live,
        })
    }

    async fn describe(&self, id: &str) -> Result<Option<aws_sdk_ec2::types::Vpc>, ResourceError> {
        match self.ec2.describe_vpcs().vpc_ids(id).send().await {
            Ok(out) => Ok(out.vpcs().first().cloned()),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(aws("ec2:DescribeVpcs", e)),
        }
    }

    /// Waits until the VPC's IPv6 block is associated (`want`) or gone, which EC2 does
    /// asynchronously; terraform waits the same (`waitVPCIPv6CIDRBlockAssociationCreated`,
    /// 10 minutes, internal/service/ec2/wait.go).
    async fn ipv6_settled(&self, cx: &Cx, id: &str, want: bool) -> Result<Live, ResourceError> {
        until(
            cx,
            &format!(
                "the IPv6 block of VPC {id} to be {}",
                if want { "associated" } else { "released" }
            ),
            &provision_aws::timeouts::IPV6_CIDR,
            Backoff::FAST,
            || async {
                let v = self.describe(id).await?.ok_or_else(|| {
                    ResourceError::fatal(format!("VPC {id} disappeared while being changed"))
                })?;
                let state = ipv6_association(&v).map(|a| {
                    association(
                        a.ipv6_cidr_block_state()
                            .and_then(|s| s.state())
                            .map(|s| s.as_str()),
                    )
                });
                let done = match (want, state) {
                    (true, Some(Association::Associated)) | (false, None) => true,
                    (true, None) => {
                        return Err(ResourceError::fatal(format!(
                            "VPC {id} got no IPv6 block: {}",
                            v.ipv6_cidr_block_association_set()
                                .iter()
                                .filter_map(|a| a.ipv6_cidr_block_state()?.status_message())
                                .next()
                                .unwrap_or("EC2 gave no reason")
                        )));
                    }
                    _ => false,
                };
                Ok(if done {
                    let mut live = Self::live(&v).ok_or_else(|| {
                        ResourceError::fatal(format!("EC2 described VPC {id} without its id"))
                    })?;
                    live.ready = true;
                    Poll::Ready(live)
                } else {
                    Poll::Pending("associating".into())
                })
            },
        )
        .await
    }

    /// Adds an Amazon-provided IPv6 block, or removes the VPC's (every subnet must have
    /// released its /64 first: EC2 refuses otherwise).
    async fn set_ipv6(&self, cx: &Cx, id: &str, on: bool) -> Result<Live, ResourceError> {
        let ec2 = &self.ec2;
        if on {
            propagated(cx, || async move {
                ec2.associate_vpc_cidr_block()
                    .vpc_id(id)
                    .amazon_provided_ipv6_cidr_block(true)
                    .send()
                    .await
                    .map_err(|e| aws("ec2:AssociateVpcCidrBlock", e))
            })
            .await?;
        } else if let Some(v) = self.describe(id).await? {
            for a in v.ipv6_cidr_block_association_set() {
                let gone = association(
                    a.ipv6_cidr_block_state()
                        .and_then(|s| s.state())
                        .map(|s| s.as_str()),
                ) == Association::Gone;
                let Some(association_id) = a.association_id().filter(|_| !gone) else {
                    continue;
                };
                ec2.disassociate_vpc_cidr_block()
                    .association_id(association_id)
                    .send()
                    .await
                    .map_err(|e| aws("ec2:DisassociateVpcCidrBlock", e))?;
            }
        }
        self.ipv6_settled(cx, id, on).await
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
            .set_amazon_provided_ipv6_cidr_block(spec.ipv6.then_some(true))
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
        if spec.ipv6 {
            // Subnets need the /56 to carve their /64s from.
            live = self.ipv6_settled(cx, &live.physical_id, true).await?;
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
        let mut live = match changed.iter().any(|c| c == "ipv6") {
            true => self.set_ipv6(cx, &live.physical_id, spec.ipv6).await?,
            false => live.clone(),
        };
        live.settings.insert("name".into(), spec.name.into());
        Ok(live)
    }

    async fn wait_ready(&self, cx: &Cx, live: Live) -> Result<Live, ResourceError> {
        // Found pending (a crash during the create, or an association under way).
        let wants_ipv6 = live.settings.get("ipv6").and_then(|v| v.as_bool()) == Some(true);
        if wants_ipv6 {
            return self.ipv6_settled(cx, &live.physical_id, true).await;
        }
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
