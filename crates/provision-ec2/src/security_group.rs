use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, ResourceType, UserIdGroupPair};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use serde::{Deserialize, Serialize};

use crate::{
    aws, code, filter, is_not_found, is_ours, ours, propagated, tag_pairs, tag_spec, tag_value,
    while_in_use,
};

/// A security group with the ingress rules it should have, and no others.
/// Egress stays at AWS's default (all traffic out).
pub struct SecurityGroup {
    pub(crate) ec2: Client,
}

/// One inbound rule: TCP from a range of ports, from one source.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IngressRule {
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_ipv6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_group_id: Option<String>,
}

impl IngressRule {
    pub fn tcp_from_cidr(port: i32, cidr: &str) -> Self {
        let v6 = cidr.contains(':');
        IngressRule {
            protocol: "tcp".into(),
            from_port: port,
            to_port: port,
            cidr_ipv4: (!v6).then(|| cidr.to_string()),
            cidr_ipv6: v6.then(|| cidr.to_string()),
            source_group_id: None,
        }
    }
    pub fn tcp_from_group(port: i32, group_id: &str) -> Self {
        IngressRule {
            protocol: "tcp".into(),
            from_port: port,
            to_port: port,
            cidr_ipv4: None,
            cidr_ipv6: None,
            source_group_id: Some(group_id.to_string()),
        }
    }

    fn permission(&self) -> IpPermission {
        let mut p = IpPermission::builder()
            .ip_protocol(&self.protocol)
            .from_port(self.from_port)
            .to_port(self.to_port);
        if let Some(c) = &self.cidr_ipv4 {
            p = p.ip_ranges(IpRange::builder().cidr_ip(c).build());
        }
        if let Some(c) = &self.cidr_ipv6 {
            p = p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).build());
        }
        if let Some(g) = &self.source_group_id {
            p = p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build());
        }
        p.build()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SecurityGroupSpec {
    pub vpc_id: String,
    pub group_name: String,
    pub description: String,
    /// Kept sorted, so that the order rules are listed in never reads as a change.
    pub ingress: BTreeSet<IngressRule>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SecurityGroupOut {
    pub group_id: String,
}

/// Flattens AWS's grouped permissions into one rule per source.
fn rules(perms: &[IpPermission]) -> BTreeSet<IngressRule> {
    let mut out = BTreeSet::new();
    for p in perms {
        let base = IngressRule {
            protocol: p.ip_protocol().unwrap_or("-1").to_string(),
            from_port: p.from_port().unwrap_or(-1),
            to_port: p.to_port().unwrap_or(-1),
            cidr_ipv4: None,
            cidr_ipv6: None,
            source_group_id: None,
        };
        for r in p.ip_ranges() {
            out.insert(IngressRule {
                cidr_ipv4: r.cidr_ip().map(str::to_string),
                ..base.clone()
            });
        }
        for r in p.ipv6_ranges() {
            out.insert(IngressRule {
                cidr_ipv6: r.cidr_ipv6().map(str::to_string),
                ..base.clone()
            });
        }
        for g in p.user_id_group_pairs() {
            out.insert(IngressRule {
                source_group_id: g.group_id().map(str::to_string),
                ..base.clone()
            });
        }
    }
    out
}

fn sg_live(g: &aws_sdk_ec2::types::SecurityGroup) -> Option<Live> {
    let id = g.group_id()?;
    let spec = SecurityGroupSpec {
        vpc_id: g.vpc_id().unwrap_or_default().to_string(),
        group_name: g.group_name().unwrap_or_default().to_string(),
        description: g.description().unwrap_or_default().to_string(),
        ingress: rules(g.ip_permissions()),
    };
    let _ = tag_value(g.tags(), "Name");
    let out = SecurityGroupOut {
        group_id: id.to_string(),
    };
    Some(Live::new(
        id,
        to_settings(&spec),
        serde_json::to_value(out).ok()?,
    ))
}

impl SecurityGroup {
    async fn authorize(
        &self,
        cx: &Cx,
        id: &str,
        rules: &BTreeSet<IngressRule>,
    ) -> Result<(), ResourceError> {
        if rules.is_empty() {
            return Ok(());
        }
        let ec2 = &self.ec2;
        // The group (or a source group) may be a moment old.
        propagated(cx, || async move {
            match ec2
                .authorize_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(rules.iter().map(IngressRule::permission).collect()))
                .send()
                .await
            {
                Ok(_) => Ok(()),
                // Added already by an interrupted run.
                Err(e) if code(&e) == "InvalidPermission.Duplicate" => Ok(()),
                Err(e) => Err(aws("ec2:AuthorizeSecurityGroupIngress", e)),
            }
        })
        .await
    }

    async fn revoke(&self, id: &str, rules: &BTreeSet<IngressRule>) -> Result<(), ResourceError> {
        if rules.is_empty() {
            return Ok(());
        }
        match self
            .ec2
            .revoke_security_group_ingress()
            .group_id(id)
            .set_ip_permissions(Some(rules.iter().map(IngressRule::permission).collect()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == "InvalidPermission.NotFound" => Ok(()),
            Err(e) => Err(aws("ec2:RevokeSecurityGroupIngress", e)),
        }
    }
}

#[async_trait]
impl Kind for SecurityGroup {
    fn name(&self) -> &'static str {
        "ec2.security-group"
    }
    fn noun(&self) -> &'static str {
        "security group"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["vpc_id", "group_name", "description"]
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let found = match lookup.physical_id() {
            Some(id) => match self
                .ec2
                .describe_security_groups()
                .group_ids(id)
                .send()
                .await
            {
                Ok(out) => out.security_groups().first().cloned(),
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(aws("ec2:DescribeSecurityGroups", e)),
            },
            None => self
                .ec2
                .describe_security_groups()
                .set_filters(Some(ours(cx)))
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| aws("ec2:DescribeSecurityGroups", e))?
                .into_iter()
                .find(|g| is_ours(cx, g.tags())),
        };
        let Some(g) = found.as_ref() else {
            return Ok(None);
        };
        cx.ensure_ours(
            &format!("security group {}", g.group_id().unwrap_or("?")),
            tag_pairs(g.tags()),
        )?;
        Ok(sg_live(g))
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: SecurityGroupSpec = desired.spec()?;
        // Names are unique per VPC, so a retried create fails instead of duplicating; the
        // engine then finds the group by its tags.
        let (ec2, spec_ref) = (&self.ec2, &spec);
        // The VPC may be a moment old.
        let out = propagated(cx, || async move {
            ec2.create_security_group()
                .vpc_id(&spec_ref.vpc_id)
                .group_name(&spec_ref.group_name)
                .description(&spec_ref.description)
                .tag_specifications(tag_spec(
                    cx,
                    ResourceType::SecurityGroup,
                    Some(&spec_ref.group_name),
                ))
                .send()
                .await
                .map_err(|e| aws("ec2:CreateSecurityGroup", e))
        })
        .await?;
        let id = out
            .group_id()
            .ok_or_else(|| ResourceError::fatal("ec2:CreateSecurityGroup returned no id"))?
            .to_string();
        let value = serde_json::to_value(SecurityGroupOut {
            group_id: id.clone(),
        })
        .map_err(|e| ResourceError::fatal(e.to_string()))?;
        let live = Live::new(&id, to_settings(&spec), value);
        cx.created(&live).await?;
        self.authorize(cx, &id, &spec.ingress).await?;
        Ok(live)
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: SecurityGroupSpec = desired.spec()?;
        let have: BTreeSet<IngressRule> = live
            .settings
            .get("ingress")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        // Add first, then remove: traffic allowed by both old and new rules never drops.
        let add: BTreeSet<IngressRule> = spec.ingress.difference(&have).cloned().collect();
        let remove: BTreeSet<IngressRule> = have.difference(&spec.ingress).cloned().collect();
        self.authorize(cx, &live.physical_id, &add).await?;
        self.revoke(&live.physical_id, &remove).await?;
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
        let blockers_ec2 = self.ec2.clone();
        let blockers_id = id.clone();
        // Network interfaces of a just-deleted load balancer or task keep the group busy for a while.
        while_in_use(
            cx,
            &format!("security group {id}"),
            &provision_aws::timeouts::SECURITY_GROUP_DELETE,
            || {
                let ec2 = ec2.clone();
                let id = id.clone();
                async move {
                    match ec2.delete_security_group().group_id(&id).send().await {
                        Ok(_) => Ok(()),
                        Err(e) if is_not_found(&e) => Ok(()),
                        Err(e) => Err(aws("ec2:DeleteSecurityGroup", e)),
                    }
                }
            },
            || async move {
                match blockers_ec2
                    .describe_network_interfaces()
                    .filters(filter("group-id", &blockers_id))
                    .send()
                    .await
                {
                    // Checked here too: the filter may be ignored.
                    Ok(out)
                        if out.network_interfaces().iter().any(|n| {
                            n.groups()
                                .iter()
                                .any(|g| g.group_id() == Some(blockers_id.as_str()))
                        }) =>
                    {
                        out.network_interfaces()
                            .iter()
                            .filter(|n| {
                                n.groups()
                                    .iter()
                                    .any(|g| g.group_id() == Some(blockers_id.as_str()))
                            })
                            .map(|n| {
                                format!(
                                    "network interface {} ({})",
                                    n.network_interface_id().unwrap_or("?"),
                                    n.description().unwrap_or("")
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                    _ => "another security group's rule refers to it".to_string(),
                }
            },
        )
        .await
    }
}
