use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{ResourceType, VpcEndpointType};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use provision_core::wait::{Backoff, Poll, until};
use serde::{Deserialize, Serialize};

use crate::{
    aws, is_not_found, is_ours, no_retry, ours, propagated, set_name, tag_pairs, tag_spec,
    tag_value,
};

/// A VPC endpoint: a gateway endpoint (S3) on route tables, or an interface endpoint (ECR)
/// in subnets behind a security group.
pub struct VpcEndpoint {
    pub(crate) ec2: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VpcEndpointSpec {
    pub vpc_id: String,
    /// `com.amazonaws.<region>.s3`, `com.amazonaws.<region>.ecr.api`...
    pub service_name: String,
    /// `Gateway` or `Interface`.
    pub endpoint_type: String,
    pub route_table_ids: BTreeSet<String>,
    pub subnet_ids: BTreeSet<String>,
    pub security_group_ids: BTreeSet<String>,
    pub private_dns_enabled: bool,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VpcEndpointOut {
    pub vpc_endpoint_id: String,
}

/// The endpoint's state, lower case. The SDK's enum spells its values `Available`, but EC2
/// answers `available`, so values arrive as unknown variants; compare the text instead.
fn state(e: &aws_sdk_ec2::types::VpcEndpoint) -> String {
    e.state()
        .map(|s| s.as_str().to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_gone(e: &aws_sdk_ec2::types::VpcEndpoint) -> bool {
    matches!(
        state(e).as_str(),
        "deleted" | "deleting" | "failed" | "rejected" | "expired"
    )
}

fn endpoint_live(e: &aws_sdk_ec2::types::VpcEndpoint) -> Option<Live> {
    let id = e.vpc_endpoint_id()?;
    let spec = VpcEndpointSpec {
        vpc_id: e.vpc_id().unwrap_or_default().to_string(),
        service_name: e.service_name().unwrap_or_default().to_string(),
        endpoint_type: e
            .vpc_endpoint_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        route_table_ids: e.route_table_ids().iter().cloned().collect(),
        subnet_ids: e.subnet_ids().iter().cloned().collect(),
        security_group_ids: e
            .groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect(),
        // Private DNS exists only for interface endpoints (some emulators report it on
        // gateway endpoints too).
        private_dns_enabled: e.vpc_endpoint_type() == Some(&VpcEndpointType::Interface)
            && e.private_dns_enabled().unwrap_or(false),
        name: tag_value(e.tags(), "Name").unwrap_or_default().to_string(),
    };
    let value = serde_json::to_value(VpcEndpointOut {
        vpc_endpoint_id: id.to_string(),
    })
    .ok()?;
    let live = Live::new(id, to_settings(&spec), value);
    Some(match state(e).as_str() {
        "available" | "" => live,
        other => live.pending(other.to_string()),
    })
}

impl VpcEndpoint {
    async fn describe(
        &self,
        id: &str,
    ) -> Result<Option<aws_sdk_ec2::types::VpcEndpoint>, ResourceError> {
        match self
            .ec2
            .describe_vpc_endpoints()
            .vpc_endpoint_ids(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.vpc_endpoints().first().cloned()),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(aws("ec2:DescribeVpcEndpoints", e)),
        }
    }
}

#[async_trait]
impl Kind for VpcEndpoint {
    fn name(&self) -> &'static str {
        "ec2.vpc-endpoint"
    }
    fn noun(&self) -> &'static str {
        "VPC endpoint"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["vpc_id", "service_name", "endpoint_type"]
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let found = match lookup.physical_id() {
            Some(id) => self.describe(id).await?,
            None => self
                .ec2
                .describe_vpc_endpoints()
                .set_filters(Some(ours(cx)))
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| aws("ec2:DescribeVpcEndpoints", e))?
                .into_iter()
                .find(|e| !is_gone(e) && is_ours(cx, e.tags())),
        };
        let Some(e) = found.filter(|e| !is_gone(e)) else {
            return Ok(None);
        };
        cx.ensure_ours(
            &format!("VPC endpoint {}", e.vpc_endpoint_id().unwrap_or("?")),
            tag_pairs(e.tags()),
        )?;
        Ok(endpoint_live(&e))
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: VpcEndpointSpec = desired.spec()?;
        let (ec2, spec) = (&self.ec2, &spec);
        // The VPC, its subnets, route tables and group may be a moment old.
        let out = propagated(cx, || async move {
            let mut req = ec2
                .create_vpc_endpoint()
                .vpc_id(&spec.vpc_id)
                .service_name(&spec.service_name)
                .vpc_endpoint_type(VpcEndpointType::from(spec.endpoint_type.as_str()))
                .client_token(&desired.token)
                .tag_specifications(tag_spec(cx, ResourceType::VpcEndpoint, Some(&spec.name)));
            for r in &spec.route_table_ids {
                req = req.route_table_ids(r);
            }
            for s in &spec.subnet_ids {
                req = req.subnet_ids(s);
            }
            for g in &spec.security_group_ids {
                req = req.security_group_ids(g);
            }
            if spec.endpoint_type == "Interface" {
                req = req.private_dns_enabled(spec.private_dns_enabled);
            }
            // No SDK retry: AWS honours the client token, but not every emulator does, and the
            // engine's retry looks for the endpoint by its tags first, which is right on both.
            req.customize()
                .config_override(no_retry())
                .send()
                .await
                .map_err(|e| aws("ec2:CreateVpcEndpoint", e))
        })
        .await?;
        let e = out
            .vpc_endpoint()
            .ok_or_else(|| ResourceError::fatal("ec2:CreateVpcEndpoint returned no endpoint"))?;
        endpoint_live(e).ok_or_else(|| ResourceError::fatal("ec2:CreateVpcEndpoint returned no id"))
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: VpcEndpointSpec = desired.spec()?;
        let have: VpcEndpointSpec =
            serde_json::from_value(serde_json::Value::Object(live.settings.clone()))
                .map_err(|e| ResourceError::fatal(format!("unreadable endpoint settings: {e}")))?;
        let mut req = self
            .ec2
            .modify_vpc_endpoint()
            .vpc_endpoint_id(&live.physical_id);
        for r in spec.route_table_ids.difference(&have.route_table_ids) {
            req = req.add_route_table_ids(r);
        }
        for r in have.route_table_ids.difference(&spec.route_table_ids) {
            req = req.remove_route_table_ids(r);
        }
        for s in spec.subnet_ids.difference(&have.subnet_ids) {
            req = req.add_subnet_ids(s);
        }
        for s in have.subnet_ids.difference(&spec.subnet_ids) {
            req = req.remove_subnet_ids(s);
        }
        for g in spec.security_group_ids.difference(&have.security_group_ids) {
            req = req.add_security_group_ids(g);
        }
        for g in have.security_group_ids.difference(&spec.security_group_ids) {
            req = req.remove_security_group_ids(g);
        }
        if spec.endpoint_type == "Interface" && spec.private_dns_enabled != have.private_dns_enabled
        {
            req = req.private_dns_enabled(spec.private_dns_enabled);
        }
        // New subnets, route tables or groups may be a moment old.
        propagated(cx, || {
            let req = req.clone();
            async move {
                req.send()
                    .await
                    .map_err(|e| aws("ec2:ModifyVpcEndpoint", e))
            }
        })
        .await?;
        if spec.name != have.name {
            set_name(&self.ec2, cx, &live.physical_id, &spec.name).await?;
        }
        let mut live = live.clone();
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn wait_ready(&self, cx: &Cx, live: Live) -> Result<Live, ResourceError> {
        let id = live.physical_id.clone();
        until(
            cx,
            &format!("VPC endpoint {id} to be available"),
            &provision_aws::timeouts::VPC_ENDPOINT,
            Backoff::SLOW,
            || async {
                let e = self.describe(&id).await?.ok_or_else(|| {
                    ResourceError::fatal(format!("VPC endpoint {id} disappeared while starting"))
                })?;
                match state(&e).as_str() {
                    "available" | "" => Ok(Poll::Ready(
                        endpoint_live(&e).unwrap_or_else(|| live.clone()),
                    )),
                    "failed" | "rejected" => Err(ResourceError::fatal(format!(
                        "VPC endpoint {id} failed: {}",
                        e.last_error()
                            .and_then(|l| l.message())
                            .unwrap_or("no reason given")
                    ))),
                    other => Ok(Poll::Pending(other.to_string())),
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
        let out = match self
            .ec2
            .delete_vpc_endpoints()
            .vpc_endpoint_ids(&id)
            .send()
            .await
        {
            Ok(out) => Some(out),
            Err(e) => {
                // The SDK's retry of a delete whose reply was lost: the endpoint is going
                // already, and an emulator may answer the repeat with an error about its
                // routes. Look before failing.
                match self.describe(&id).await? {
                    None => return Ok(()),
                    Some(ep) if state(&ep) == "deleting" || state(&ep) == "deleted" => None,
                    Some(_) => return Err(aws("ec2:DeleteVpcEndpoints", e)),
                }
            }
        };
        if let Some(u) = out.as_ref().and_then(|o| o.unsuccessful().first()) {
            let message = u
                .error()
                .and_then(|e| e.message())
                .unwrap_or("no reason given");
            if !message.contains("does not exist") {
                return Err(ResourceError::fatal(format!(
                    "ec2:DeleteVpcEndpoints: {id}: {message}"
                )));
            }
        }
        // An interface endpoint's network interfaces hold its subnets until it is gone.
        until(
            cx,
            &format!("VPC endpoint {id} to be deleted"),
            &provision_aws::timeouts::VPC_ENDPOINT_DELETE,
            Backoff::SLOW,
            || async {
                Ok(match self.describe(&id).await? {
                    None => Poll::Ready(()),
                    Some(e) if state(&e) == "deleted" => Poll::Ready(()),
                    Some(e) => Poll::Pending(state(&e)),
                })
            },
        )
        .await
    }
}
