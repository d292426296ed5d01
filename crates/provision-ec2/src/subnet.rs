//! Subnets: an IPv4 block in one availability zone and, for dual stack, an IPv6 /64.

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
    propagated, set_name, tag_pairs, tag_spec, tag_value, while_in_use,
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
    /// The subnet's IPv6 /64, from its VPC's /56 ([`crate::ipv6_subnet`]); `None`: IPv4 only.
    /// Dual-stack load balancers need it in every one of their subnets.
    #[serde(default)]
    pub ipv6_cidr_block: Option<String>,
    /// Network interfaces made here get an IPv6 address (`AssignIpv6AddressOnCreation`);
    /// needs `ipv6_cidr_block`.
    #[serde(default)]
    pub assign_ipv6_address_on_creation: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SubnetOut {
    pub subnet_id: String,
    pub availability_zone: String,
}

/// The subnet's IPv6 block association that is not on its way out, if any, and where it stands.
fn ipv6_association(
    s: &aws_sdk_ec2::types::Subnet,
) -> Option<(
    &aws_sdk_ec2::types::SubnetIpv6CidrBlockAssociation,
    Association,
)> {
    s.ipv6_cidr_block_association_set()
        .iter()
        .map(|a| {
            let state = association(
                a.ipv6_cidr_block_state()
                    .and_then(|s| s.state())
                    .map(|s| s.as_str()),
            );
            (a, state)
        })
        .find(|(_, state)| *state != Association::Gone)
}

fn live(s: &aws_sdk_ec2::types::Subnet) -> Option<Live> {
    let id = s.subnet_id()?;
    let v6 = ipv6_association(s);
    let spec = SubnetSpec {
        vpc_id: s.vpc_id()?.to_string(),
        cidr_block: s.cidr_block()?.to_string(),
        availability_zone: s.availability_zone()?.to_string(),
        map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
        name: tag_value(s.tags(), "Name").unwrap_or_default().to_string(),
        ipv6_cidr_block: v6
            .and_then(|(a, _)| a.ipv6_cidr_block())
            .and_then(normalize_ipv6_cidr),
        assign_ipv6_address_on_creation: s.assign_ipv6_address_on_creation().unwrap_or(false),
    };
    let out = SubnetOut {
        subnet_id: id.to_string(),
        availability_zone: spec.availability_zone.clone(),
    };
    let live = Live::new(id, to_settings(&spec), serde_json::to_value(out).ok()?);
    Some(match v6 {
        Some((_, Association::Pending)) => live.pending("IPv6 block associating"),
        _ => live,
    })
}

impl Subnet {
    async fn describe(
        &self,
        id: &str,
    ) -> Result<Option<aws_sdk_ec2::types::Subnet>, ResourceError> {
        match self.ec2.describe_subnets().subnet_ids(id).send().await {
            Ok(out) => Ok(out.subnets().first().cloned()),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(aws("ec2:DescribeSubnets", e)),
        }
    }

    /// Waits until the subnet's IPv6 block is associated (`want`) or gone: EC2 does both
    /// asynchronously; terraform waits the same (`waitSubnetIPv6CIDRBlockAssociationCreated`,
    /// internal/service/ec2/wait.go).
    async fn ipv6_settled(&self, cx: &Cx, id: &str, want: bool) -> Result<Live, ResourceError> {
        until(
            cx,
            &format!(
                "the IPv6 block of subnet {id} to be {}",
                if want { "associated" } else { "released" }
            ),
            &provision_aws::timeouts::IPV6_CIDR,
            Backoff::FAST,
            || async {
                let s = self.describe(id).await?.ok_or_else(|| {
                    ResourceError::fatal(format!("subnet {id} disappeared while being changed"))
                })?;
                let done = match (want, ipv6_association(&s).map(|(_, st)| st)) {
                    (true, Some(Association::Associated)) | (false, None) => true,
                    (true, None) => {
                        return Err(ResourceError::fatal(format!(
                            "subnet {id} got no IPv6 block: {}",
                            s.ipv6_cidr_block_association_set()
                                .iter()
                                .filter_map(|a| a.ipv6_cidr_block_state()?.status_message())
                                .next()
                                .unwrap_or("EC2 gave no reason")
                        )));
                    }
                    _ => false,
                };
                Ok(match done {
                    true => Poll::Ready(live(&s).ok_or_else(|| {
                        ResourceError::fatal(format!("EC2 described subnet {id} incompletely"))
                    })?),
                    false => Poll::Pending("associating".into()),
                })
            },
        )
        .await
    }

    async fn set_assign_ipv6(&self, cx: &Cx, id: &str, on: bool) -> Result<(), ResourceError> {
        let ec2 = &self.ec2;
        // One attribute per call (ModifySubnetAttribute).
        propagated(cx, || async move {
            ec2.modify_subnet_attribute()
                .subnet_id(id)
                .assign_ipv6_address_on_creation(AttributeBooleanValue::builder().value(on).build())
                .send()
                .await
                .map_err(|e| aws("ec2:ModifySubnetAttribute", e))
        })
        .await?;
        Ok(())
    }

    /// Moves the subnet to IPv6 block `want` (or none): releases the one it has, then
    /// associates the new one and waits for it.
    async fn set_ipv6(&self, cx: &Cx, id: &str, want: Option<&str>) -> Result<(), ResourceError> {
        let current = self.describe(id).await?;
        if let Some((a, _)) = current.as_ref().and_then(ipv6_association) {
            if a.ipv6_cidr_block().and_then(normalize_ipv6_cidr).as_deref() == want {
                return Ok(());
            }
            // EC2 refuses to release a block new interfaces are still given addresses from.
            if current
                .as_ref()
                .and_then(|s| s.assign_ipv6_address_on_creation())
                == Some(true)
            {
                self.set_assign_ipv6(cx, id, false).await?;
            }
            if let Some(association_id) = a.association_id() {
                self.ec2
                    .disassociate_subnet_cidr_block()
                    .association_id(association_id)
                    .send()
                    .await
                    .map_err(|e| aws("ec2:DisassociateSubnetCidrBlock", e))?;
            }
            self.ipv6_settled(cx, id, false).await?;
        }
        if let Some(block) = want {
            let ec2 = &self.ec2;
            propagated(cx, || async move {
                ec2.associate_subnet_cidr_block()
                    .subnet_id(id)
                    .ipv6_cidr_block(block)
                    .send()
                    .await
                    .map_err(|e| aws("ec2:AssociateSubnetCidrBlock", e))
            })
            .await?;
            self.ipv6_settled(cx, id, true).await?;
        }
        Ok(())
    }

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
                .set_ipv6_cidr_block(spec_ref.ipv6_cidr_block.clone())
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
        if spec.ipv6_cidr_block.is_some() {
            // Made with the subnet, but associated asynchronously.
            live = self.ipv6_settled(cx, &live.physical_id, true).await?;
        }
        if spec.map_public_ip_on_launch {
            self.set_public_ip(cx, &live.physical_id, true).await?;
        }
        if spec.assign_ipv6_address_on_creation {
            self.set_assign_ipv6(cx, &live.physical_id, true).await?;
        }
        live.settings = to_settings(&spec);
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
        let spec: SubnetSpec = desired.spec()?;
        let mut live = live.clone();
        let is = |key: &str| changed.iter().any(|c| c == key);
        // The block first: addresses can be assigned from it only once it is there, and it
        // can be released only once they are not.
        if is("ipv6_cidr_block") {
            self.set_ipv6(cx, &live.physical_id, spec.ipv6_cidr_block.as_deref())
                .await?;
        }
        if is("assign_ipv6_address_on_creation")
            || (is("ipv6_cidr_block") && spec.assign_ipv6_address_on_creation)
        {
            self.set_assign_ipv6(cx, &live.physical_id, spec.assign_ipv6_address_on_creation)
                .await?;
        }
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
