use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{DomainType, NatGatewayState, ResourceType};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use provision_core::wait::{Backoff, Poll, until};
use serde::{Deserialize, Serialize};

use crate::{
    aws, code, is_not_found, is_ours, no_retry, ours, propagated, set_name, tag_pairs, tag_spec,
    tag_value, while_in_use,
};

// ---------------------------------------------------------------------------------------------
// Internet gateway

pub struct InternetGateway {
    pub(crate) ec2: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InternetGatewaySpec {
    /// The VPC it is attached to.
    pub vpc_id: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InternetGatewayOut {
    pub internet_gateway_id: String,
}

fn igw_live(g: &aws_sdk_ec2::types::InternetGateway) -> Option<Live> {
    let id = g.internet_gateway_id()?;
    let vpc_id = g
        .attachments()
        .iter()
        .find(|a| a.state().map(|s| s.as_str()) != Some("detached"))
        .and_then(|a| a.vpc_id())
        .unwrap_or_default();
    let settings = to_settings(&InternetGatewaySpec {
        vpc_id: vpc_id.to_string(),
        name: tag_value(g.tags(), "Name").unwrap_or_default().to_string(),
    });
    let out = InternetGatewayOut {
        internet_gateway_id: id.to_string(),
    };
    Some(Live::new(id, settings, serde_json::to_value(out).ok()?))
}

impl InternetGateway {
    async fn attach(&self, cx: &Cx, id: &str, vpc_id: &str) -> Result<(), ResourceError> {
        let ec2 = &self.ec2;
        // The gateway and the VPC may be a moment old.
        propagated(cx, || async move {
            match ec2
                .attach_internet_gateway()
                .internet_gateway_id(id)
                .vpc_id(vpc_id)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                // Attached already by an interrupted run: that is the goal.
                Err(e) if code(&e) == "Resource.AlreadyAssociated" => Ok(()),
                Err(e) => Err(aws("ec2:AttachInternetGateway", e)),
            }
        })
        .await
    }

    async fn detach(&self, cx: &Cx, id: &str, vpc_id: &str) -> Result<(), ResourceError> {
        let ec2 = self.ec2.clone();
        // Detaching fails while the VPC has public addresses mapped (a NAT gateway being deleted).
        while_in_use(
            cx,
            &format!("internet gateway {id}"),
            &provision_aws::timeouts::INTERNET_GATEWAY_DETACH,
            || {
                let ec2 = ec2.clone();
                async move {
                    match ec2
                        .detach_internet_gateway()
                        .internet_gateway_id(id)
                        .vpc_id(vpc_id)
                        .send()
                        .await
                    {
                        Ok(_) => Ok(()),
                        Err(e) if is_not_found(&e) || code(&e) == "Gateway.NotAttached" => Ok(()),
                        Err(e) => Err(aws("ec2:DetachInternetGateway", e)),
                    }
                }
            },
            || crate::vpc_blockers(&self.ec2, vpc_id),
        )
        .await
    }
}

#[async_trait]
impl Kind for InternetGateway {
    fn name(&self) -> &'static str {
        "ec2.internet-gateway"
    }
    fn noun(&self) -> &'static str {
        "internet gateway"
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let found = match lookup.physical_id() {
            Some(id) => match self
                .ec2
                .describe_internet_gateways()
                .internet_gateway_ids(id)
                .send()
                .await
            {
                Ok(out) => out.internet_gateways().first().cloned(),
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(aws("ec2:DescribeInternetGateways", e)),
            },
            None => self
                .ec2
                .describe_internet_gateways()
                .set_filters(Some(ours(cx)))
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| aws("ec2:DescribeInternetGateways", e))?
                .into_iter()
                .find(|g| is_ours(cx, g.tags())),
        };
        let Some(g) = found.as_ref() else {
            return Ok(None);
        };
        cx.ensure_ours(
            &format!(
                "internet gateway {}",
                g.internet_gateway_id().unwrap_or("?")
            ),
            tag_pairs(g.tags()),
        )?;
        Ok(igw_live(g))
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: InternetGatewaySpec = desired.spec()?;
        let out = self
            .ec2
            .create_internet_gateway()
            .tag_specifications(tag_spec(
                cx,
                ResourceType::InternetGateway,
                Some(&spec.name),
            ))
            .customize()
            .config_override(no_retry())
            .send()
            .await
            .map_err(|e| aws("ec2:CreateInternetGateway", e))?;
        let g = out
            .internet_gateway()
            .ok_or_else(|| ResourceError::fatal("ec2:CreateInternetGateway returned no gateway"))?;
        let mut live = igw_live(g)
            .ok_or_else(|| ResourceError::fatal("ec2:CreateInternetGateway returned no id"))?;
        cx.created(&live).await?;
        self.attach(cx, &live.physical_id, &spec.vpc_id).await?;
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: InternetGatewaySpec = desired.spec()?;
        if changed.iter().any(|c| c == "vpc_id") {
            if let Some(old) = live
                .settings
                .get("vpc_id")
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
            {
                self.detach(cx, &live.physical_id, old).await?;
            }
            self.attach(cx, &live.physical_id, &spec.vpc_id).await?;
        }
        if changed.iter().any(|c| c == "name") {
            set_name(&self.ec2, cx, &live.physical_id, &spec.name).await?;
        }
        let mut live = live.clone();
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let lookup = Lookup {
            id: cx.id(),
            name: None,
            token: "",
            record: Some(record),
        };
        let Some(live) = self.read(cx, &lookup).await? else {
            return Ok(());
        };
        if let Some(vpc) = live
            .settings
            .get("vpc_id")
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
        {
            cx.progress(format!(
                "detaching internet gateway {} from {vpc}",
                live.physical_id
            ));
            self.detach(cx, &live.physical_id, vpc).await?;
        }
        match self
            .ec2
            .delete_internet_gateway()
            .internet_gateway_id(&live.physical_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(aws("ec2:DeleteInternetGateway", e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Elastic IP

pub struct ElasticIp {
    pub(crate) ec2: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ElasticIpSpec {
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ElasticIpOut {
    pub allocation_id: String,
    pub public_ip: String,
}

fn eip_live(a: &aws_sdk_ec2::types::Address) -> Option<Live> {
    let id = a.allocation_id()?;
    let settings = to_settings(&ElasticIpSpec {
        name: tag_value(a.tags(), "Name").unwrap_or_default().to_string(),
    });
    let out = ElasticIpOut {
        allocation_id: id.to_string(),
        public_ip: a.public_ip().unwrap_or_default().to_string(),
    };
    Some(Live::new(id, settings, serde_json::to_value(out).ok()?))
}

#[async_trait]
impl Kind for ElasticIp {
    fn name(&self) -> &'static str {
        "ec2.elastic-ip"
    }
    fn noun(&self) -> &'static str {
        "Elastic IP"
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let by_id = lookup.physical_id();
        let req = match by_id {
            Some(id) => self.ec2.describe_addresses().allocation_ids(id),
            None => self.ec2.describe_addresses().set_filters(Some(ours(cx))),
        };
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(aws("ec2:DescribeAddresses", e)),
        };
        // DescribeAddresses answers in one page.
        let found = match by_id {
            Some(_) => out.addresses().first(),
            None => out.addresses().iter().find(|a| is_ours(cx, a.tags())),
        };
        let Some(a) = found else {
            return Ok(None);
        };
        cx.ensure_ours(
            &format!("Elastic IP {}", a.allocation_id().unwrap_or("?")),
            tag_pairs(a.tags()),
        )?;
        Ok(eip_live(a))
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: ElasticIpSpec = desired.spec()?;
        let out = self
            .ec2
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(tag_spec(cx, ResourceType::ElasticIp, Some(&spec.name)))
            .customize()
            .config_override(no_retry())
            .send()
            .await
            .map_err(|e| aws("ec2:AllocateAddress", e))?;
        let id = out
            .allocation_id()
            .ok_or_else(|| ResourceError::fatal("ec2:AllocateAddress returned no allocation id"))?;
        let out_value = serde_json::to_value(ElasticIpOut {
            allocation_id: id.to_string(),
            public_ip: out.public_ip().unwrap_or_default().to_string(),
        })
        .map_err(|e| ResourceError::fatal(e.to_string()))?;
        Ok(Live::new(id, to_settings(&spec), out_value))
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: ElasticIpSpec = desired.spec()?;
        set_name(&self.ec2, cx, &live.physical_id, &spec.name).await?;
        let mut live = live.clone();
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let lookup = Lookup {
            id: cx.id(),
            name: None,
            token: "",
            record: Some(record),
        };
        let Some(live) = self.read(cx, &lookup).await? else {
            return Ok(());
        };
        let id = live.physical_id.clone();
        let ec2 = self.ec2.clone();
        // Release fails while a NAT gateway that is still deleting holds the address.
        while_in_use(
            cx,
            &format!("Elastic IP {id}"),
            &provision_aws::timeouts::ELASTIC_IP_RELEASE,
            || {
                let ec2 = ec2.clone();
                let id = id.clone();
                async move {
                    match ec2.release_address().allocation_id(&id).send().await {
                        Ok(_) => Ok(()),
                        Err(e) if is_not_found(&e) => Ok(()),
                        // `InvalidIPAddress.InUse` while a deleting NAT gateway holds it.
                        Err(e) => Err(aws("ec2:ReleaseAddress", e)),
                    }
                }
            },
            || async { "a NAT gateway or network interface still holds it".to_string() },
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// NAT gateway

pub struct NatGateway {
    pub(crate) ec2: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NatGatewaySpec {
    pub subnet_id: String,
    pub allocation_id: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NatGatewayOut {
    pub nat_gateway_id: String,
}

/// NAT gateways take 1 to 2 minutes; there is no point asking before the first minute.
const NAT_FIRST_POLL: Duration = Duration::from_secs(45);

fn nat_live(n: &aws_sdk_ec2::types::NatGateway) -> Option<Live> {
    let id = n.nat_gateway_id()?;
    let settings = to_settings(&NatGatewaySpec {
        subnet_id: n.subnet_id().unwrap_or_default().to_string(),
        allocation_id: n
            .nat_gateway_addresses()
            .first()
            .and_then(|a| a.allocation_id())
            .unwrap_or_default()
            .to_string(),
        name: tag_value(n.tags(), "Name").unwrap_or_default().to_string(),
    });
    let out = NatGatewayOut {
        nat_gateway_id: id.to_string(),
    };
    let live = Live::new(id, settings, serde_json::to_value(out).ok()?);
    Some(match n.state() {
        Some(NatGatewayState::Available) => live.with_status("available"),
        Some(s) => live.pending(s.as_str().to_string()),
        None => live.pending("unknown"),
    })
}

/// Deleted and failed gateways linger in listings for an hour; they are not the resource.
fn is_gone(n: &aws_sdk_ec2::types::NatGateway) -> bool {
    matches!(
        n.state(),
        Some(NatGatewayState::Deleted | NatGatewayState::Deleting | NatGatewayState::Failed)
    )
}

impl NatGateway {
    async fn describe(
        &self,
        id: &str,
    ) -> Result<Option<aws_sdk_ec2::types::NatGateway>, ResourceError> {
        match self
            .ec2
            .describe_nat_gateways()
            .nat_gateway_ids(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.nat_gateways().first().cloned()),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(aws("ec2:DescribeNatGateways", e)),
        }
    }
}

#[async_trait]
impl Kind for NatGateway {
    fn name(&self) -> &'static str {
        "ec2.nat-gateway"
    }
    fn noun(&self) -> &'static str {
        "NAT gateway"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["subnet_id", "allocation_id"]
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let found = match lookup.physical_id() {
            Some(id) => self.describe(id).await?,
            // Only a live gateway carrying this node's tags: moto and LocalStack ignore the
            // tag filter and list every gateway, another environment's included.
            None => self
                .ec2
                .describe_nat_gateways()
                .set_filter(Some(ours(cx)))
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| aws("ec2:DescribeNatGateways", e))?
                .into_iter()
                .find(|n| !is_gone(n) && is_ours(cx, n.tags())),
        };
        let Some(n) = found.filter(|n| !is_gone(n)) else {
            return Ok(None);
        };
        cx.ensure_ours(
            &format!("NAT gateway {}", n.nat_gateway_id().unwrap_or("?")),
            tag_pairs(n.tags()),
        )?;
        Ok(nat_live(&n))
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: NatGatewaySpec = desired.spec()?;
        // The client token makes a retried create return the same gateway. The subnet and the
        // address may be a moment old.
        let (ec2, spec_ref) = (&self.ec2, &spec);
        let out = propagated(cx, || async move {
            ec2.create_nat_gateway()
                .subnet_id(&spec_ref.subnet_id)
                .allocation_id(&spec_ref.allocation_id)
                .client_token(&desired.token)
                .tag_specifications(tag_spec(cx, ResourceType::Natgateway, Some(&spec_ref.name)))
                // As for VPC endpoints: the engine's retry looks by tags first.
                .customize()
                .config_override(no_retry())
                .send()
                .await
                .map_err(|e| aws("ec2:CreateNatGateway", e))
        })
        .await?;
        let n = out
            .nat_gateway()
            .ok_or_else(|| ResourceError::fatal("ec2:CreateNatGateway returned no gateway"))?;
        nat_live(n).ok_or_else(|| ResourceError::fatal("ec2:CreateNatGateway returned no id"))
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: NatGatewaySpec = desired.spec()?;
        set_name(&self.ec2, cx, &live.physical_id, &spec.name).await?;
        let mut live = live.clone();
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn wait_ready(&self, cx: &Cx, live: Live) -> Result<Live, ResourceError> {
        let id = live.physical_id.clone();
        until(
            cx,
            &format!("NAT gateway {id} to be available"),
            &provision_aws::timeouts::NAT_GATEWAY,
            Backoff::SLOW.after(NAT_FIRST_POLL),
            || async {
                let n = self
                    .describe(&id)
                    .await?
                    .ok_or_else(|| ResourceError::fatal(format!("NAT gateway {id} disappeared while starting")))?;
                match n.state() {
                    Some(NatGatewayState::Available) => Ok(Poll::Ready(nat_live(&n).unwrap_or_else(|| live.clone()))),
                    Some(NatGatewayState::Failed) => Err(ResourceError::fatal(format!(
                        "NAT gateway {id} failed: {}",
                        n.failure_message().unwrap_or("no reason given")
                    ))
                    .with_hint("rerun `provision up`: it deletes nothing, and creates a new NAT gateway in place of the failed one")),
                    Some(s) => Ok(Poll::Pending(s.as_str().to_string())),
                    None => Ok(Poll::Pending("unknown".into())),
                }
            },
        )
        .await
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let lookup = Lookup {
            id: cx.id(),
            name: None,
            token: "",
            record: Some(record),
        };
        let Some(live) = self.read(cx, &lookup).await? else {
            return Ok(());
        };
        let id = live.physical_id.clone();
        match self
            .ec2
            .delete_nat_gateway()
            .nat_gateway_id(&id)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(aws("ec2:DeleteNatGateway", e)),
        }
        // Its subnet, address and the internet gateway stay in use until it is fully deleted.
        until(
            cx,
            &format!("NAT gateway {id} to be deleted"),
            &provision_aws::timeouts::NAT_GATEWAY_DELETE,
            Backoff::SLOW.after(Duration::from_secs(30)),
            || async {
                Ok(match self.describe(&id).await? {
                    None => Poll::Ready(()),
                    Some(n) if n.state() == Some(&NatGatewayState::Deleted) => Poll::Ready(()),
                    Some(n) => Poll::Pending(
                        n.state()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                    ),
                })
            },
        )
        .await
    }
}
