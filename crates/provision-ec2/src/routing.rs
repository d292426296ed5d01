use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::ResourceType;
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, TAG_STACK, to_settings,
};
use serde::{Deserialize, Serialize};

use crate::{
    aws, code, filter, is_not_found, is_ours, no_retry, normalize_ipv6_cidr, ours, propagated,
    set_name, tag_pairs, tag_spec, tag_value, while_in_use,
};

// ---------------------------------------------------------------------------------------------
// Route table

pub struct RouteTable {
    pub(crate) ec2: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RouteTableSpec {
    pub vpc_id: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RouteTableOut {
    pub route_table_id: String,
}

fn rt_live(t: &aws_sdk_ec2::types::RouteTable) -> Option<Live> {
    let id = t.route_table_id()?;
    let settings = to_settings(&RouteTableSpec {
        vpc_id: t.vpc_id().unwrap_or_default().to_string(),
        name: tag_value(t.tags(), "Name").unwrap_or_default().to_string(),
    });
    let out = RouteTableOut {
        route_table_id: id.to_string(),
    };
    Some(Live::new(id, settings, serde_json::to_value(out).ok()?))
}

impl RouteTable {
    async fn describe(
        &self,
        id: &str,
    ) -> Result<Option<aws_sdk_ec2::types::RouteTable>, ResourceError> {
        match self
            .ec2
            .describe_route_tables()
            .route_table_ids(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.route_tables().first().cloned()),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(aws("ec2:DescribeRouteTables", e)),
        }
    }
}

#[async_trait]
impl Kind for RouteTable {
    fn name(&self) -> &'static str {
        "ec2.route-table"
    }
    fn noun(&self) -> &'static str {
        "route table"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["vpc_id"]
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let found = match lookup.physical_id() {
            Some(id) => self.describe(id).await?,
            None => self
                .ec2
                .describe_route_tables()
                .set_filters(Some(ours(cx)))
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| aws("ec2:DescribeRouteTables", e))?
                .into_iter()
                .find(|t| is_ours(cx, t.tags())),
        };
        let Some(t) = found else { return Ok(None) };
        cx.ensure_ours(
            &format!("route table {}", t.route_table_id().unwrap_or("?")),
            tag_pairs(t.tags()),
        )?;
        Ok(rt_live(&t))
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: RouteTableSpec = desired.spec()?;
        let (ec2, spec_ref) = (&self.ec2, &spec);
        // The VPC may be a moment old.
        let out = propagated(cx, || async move {
            ec2.create_route_table()
                .vpc_id(&spec_ref.vpc_id)
                .client_token(&desired.token)
                .tag_specifications(tag_spec(cx, ResourceType::RouteTable, Some(&spec_ref.name)))
                // AWS honours the client token; not every emulator does. The engine's retry
                // looks by tags first, which is right on both.
                .customize()
                .config_override(no_retry())
                .send()
                .await
                .map_err(|e| aws("ec2:CreateRouteTable", e))
        })
        .await?;
        let t = out
            .route_table()
            .ok_or_else(|| ResourceError::fatal("ec2:CreateRouteTable returned no route table"))?;
        let mut live = rt_live(t)
            .ok_or_else(|| ResourceError::fatal("ec2:CreateRouteTable returned no id"))?;
        live.settings = to_settings(&spec);
        Ok(live)
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: RouteTableSpec = desired.spec()?;
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
        while_in_use(
            cx,
            &format!("route table {id}"),
            &provision_aws::timeouts::ROUTE_TABLE_DELETE,
            || {
                let ec2 = ec2.clone();
                let id = id.clone();
                async move {
                    match ec2.delete_route_table().route_table_id(&id).send().await {
                        Ok(_) => Ok(()),
                        Err(e) if is_not_found(&e) => Ok(()),
                        Err(e) => Err(aws("ec2:DeleteRouteTable", e)),
                    }
                }
            },
            || async { "it still has subnet associations or endpoint routes".to_string() },
        )
        .await
    }
}

/// Routes and associations carry no tags; they are ours if their route table is.
fn ensure_table_is_ours(cx: &Cx, t: &aws_sdk_ec2::types::RouteTable) -> Result<(), ResourceError> {
    if tag_value(t.tags(), TAG_STACK) == Some(cx.stack_name()) {
        Ok(())
    } else {
        Err(ResourceError::foreign(format!(
            "refusing to manage a route in route table {}: the table does not belong to stack {}",
            t.route_table_id().unwrap_or("?"),
            cx.stack_name()
        ))
        .with_hint(
            "restore the state file; provision only changes route tables tagged with its stack",
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Route

pub struct Route {
    pub(crate) ec2: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RouteSpec {
    pub route_table_id: String,
    /// IPv4 (`0.0.0.0/0`) or IPv6 (`::/0`: sent as `DestinationIpv6CidrBlock`).
    pub destination_cidr_block: String,
    /// An internet gateway (public routes)...
    pub gateway_id: Option<String>,
    /// ...or a NAT gateway (private routes).
    pub nat_gateway_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RouteOut {
    pub route_table_id: String,
    pub destination_cidr_block: String,
}

/// The destination for the IPv4 parameter (`DestinationCidrBlock`), if it is IPv4.
fn ipv4(destination: &str) -> Option<String> {
    (!destination.contains(':')).then(|| destination.to_string())
}

/// The destination for the IPv6 parameter (`DestinationIpv6CidrBlock`), if it is IPv6.
fn ipv6(destination: &str) -> Option<String> {
    destination.contains(':').then(|| destination.to_string())
}

/// Whether `r` is the route for `destination`, IPv4 or IPv6 (compared in one written form).
fn routes_to(r: &aws_sdk_ec2::types::Route, destination: &str) -> bool {
    match ipv6(destination) {
        None => r.destination_cidr_block() == Some(destination),
        Some(d) => {
            let want = normalize_ipv6_cidr(&d);
            want.is_some()
                && r.destination_ipv6_cidr_block()
                    .and_then(normalize_ipv6_cidr)
                    == want
        }
    }
}

fn route_id(spec: &RouteSpec) -> String {
    format!("{}|{}", spec.route_table_id, spec.destination_cidr_block)
}

impl Route {
    async fn find(
        &self,
        cx: &Cx,
        table: &str,
        destination: &str,
    ) -> Result<Option<Live>, ResourceError> {
        let out = match self
            .ec2
            .describe_route_tables()
            .route_table_ids(table)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(aws("ec2:DescribeRouteTables", e)),
        };
        let Some(t) = out.route_tables().first() else {
            return Ok(None);
        };
        ensure_table_is_ours(cx, t)?;
        let Some(r) = t.routes().iter().find(|r| routes_to(r, destination)) else {
            return Ok(None);
        };
        let spec = RouteSpec {
            route_table_id: table.to_string(),
            destination_cidr_block: destination.to_string(),
            gateway_id: r.gateway_id().map(str::to_string),
            nat_gateway_id: r.nat_gateway_id().map(str::to_string),
        };
        let out = RouteOut {
            route_table_id: table.to_string(),
            destination_cidr_block: destination.to_string(),
        };
        let value = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
        let live = Live::new(route_id(&spec), to_settings(&spec), value);
        // A route whose target is gone reads `blackhole`: it exists but routes nothing.
        Ok(Some(match r.state().map(|s| s.as_str()) {
            Some("blackhole") => live.with_status("blackhole"),
            _ => live,
        }))
    }
}

#[async_trait]
impl Kind for Route {
    fn name(&self) -> &'static str {
        "ec2.route"
    }
    fn noun(&self) -> &'static str {
        "route"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["route_table_id", "destination_cidr_block"]
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let Some(spec) = lookup.recorded_settings::<RouteSpec>() else {
            return Ok(None);
        };
        self.find(cx, &spec.route_table_id, &spec.destination_cidr_block)
            .await
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: RouteSpec = desired.spec()?;
        let (ec2, spec_ref) = (&self.ec2, &spec);
        // The table and the gateway may be a moment old.
        let exists = propagated(cx, || async move {
            let mut req = ec2
                .create_route()
                .route_table_id(&spec_ref.route_table_id)
                .set_destination_cidr_block(ipv4(&spec_ref.destination_cidr_block))
                .set_destination_ipv6_cidr_block(ipv6(&spec_ref.destination_cidr_block));
            if let Some(g) = &spec_ref.gateway_id {
                req = req.gateway_id(g);
            }
            if let Some(n) = &spec_ref.nat_gateway_id {
                req = req.nat_gateway_id(n);
            }
            match req.send().await {
                Ok(_) => Ok(false),
                Err(e) if code(&e) == "RouteAlreadyExists" => Ok(true),
                Err(e) => Err(aws("ec2:CreateRoute", e)),
            }
        })
        .await?;
        // A route for this destination exists (an interrupted run made it): point it at our target.
        if exists {
            return self.replace(cx, &spec).await;
        }
        let value = serde_json::to_value(RouteOut {
            route_table_id: spec.route_table_id.clone(),
            destination_cidr_block: spec.destination_cidr_block.clone(),
        })
        .map_err(|e| ResourceError::fatal(e.to_string()))?;
        Ok(Live::new(route_id(&spec), to_settings(&spec), value))
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        _live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        let spec: RouteSpec = desired.spec()?;
        self.replace(cx, &spec).await
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Ok(spec) =
            serde_json::from_value::<RouteSpec>(serde_json::Value::Object(record.settings.clone()))
        else {
            return Ok(());
        };
        if self
            .find(cx, &spec.route_table_id, &spec.destination_cidr_block)
            .await?
            .is_none()
        {
            return Ok(());
        }
        match self
            .ec2
            .delete_route()
            .route_table_id(&spec.route_table_id)
            .set_destination_cidr_block(ipv4(&spec.destination_cidr_block))
            .set_destination_ipv6_cidr_block(ipv6(&spec.destination_cidr_block))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(aws("ec2:DeleteRoute", e)),
        }
    }
}

impl Route {
    async fn replace(&self, cx: &Cx, spec: &RouteSpec) -> Result<Live, ResourceError> {
        let ec2 = &self.ec2;
        // The new target may be a moment old.
        propagated(cx, || async move {
            let mut req = ec2
                .replace_route()
                .route_table_id(&spec.route_table_id)
                .set_destination_cidr_block(ipv4(&spec.destination_cidr_block))
                .set_destination_ipv6_cidr_block(ipv6(&spec.destination_cidr_block));
            if let Some(g) = &spec.gateway_id {
                req = req.gateway_id(g);
            }
            if let Some(n) = &spec.nat_gateway_id {
                req = req.nat_gateway_id(n);
            }
            req.send().await.map_err(|e| aws("ec2:ReplaceRoute", e))
        })
        .await?;
        self.find(cx, &spec.route_table_id, &spec.destination_cidr_block)
            .await?
            .ok_or_else(|| ResourceError::transient("the replaced route is not visible yet"))
    }
}

// ---------------------------------------------------------------------------------------------
// Route table association

pub struct RouteTableAssociation {
    pub(crate) ec2: Client,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RouteTableAssociationSpec {
    pub route_table_id: String,
    pub subnet_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RouteTableAssociationOut {
    pub association_id: String,
}

impl RouteTableAssociation {
    async fn find(&self, cx: &Cx, subnet_id: &str) -> Result<Option<Live>, ResourceError> {
        let tables = self
            .ec2
            .describe_route_tables()
            .filters(filter("association.subnet-id", subnet_id))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| aws("ec2:DescribeRouteTables", e))?;
        // The table that holds the subnet's association, checked here: the filter may be ignored.
        let Some((t, a)) = tables.iter().find_map(|t| {
            t.associations()
                .iter()
                .find(|a| a.subnet_id() == Some(subnet_id))
                .map(|a| (t, a))
        }) else {
            return Ok(None);
        };
        ensure_table_is_ours(cx, t)?;
        let id = a.route_table_association_id().unwrap_or_default();
        let spec = RouteTableAssociationSpec {
            route_table_id: t.route_table_id().unwrap_or_default().to_string(),
            subnet_id: subnet_id.to_string(),
        };
        let value = serde_json::to_value(RouteTableAssociationOut {
            association_id: id.to_string(),
        })
        .map_err(|e| ResourceError::fatal(e.to_string()))?;
        Ok(Some(Live::new(id, to_settings(&spec), value)))
    }
}

#[async_trait]
impl Kind for RouteTableAssociation {
    fn name(&self) -> &'static str {
        "ec2.route-table-association"
    }
    fn noun(&self) -> &'static str {
        "route table association"
    }
    fn replace_on(&self) -> &'static [&'static str] {
        &["subnet_id"]
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let Some(spec) = lookup.recorded_settings::<RouteTableAssociationSpec>() else {
            return Ok(None);
        };
        self.find(cx, &spec.subnet_id).await
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: RouteTableAssociationSpec = desired.spec()?;
        let (ec2, spec_ref) = (&self.ec2, &spec);
        // The table and the subnet may be a moment old.
        let associated = propagated(cx, || async move {
            match ec2
                .associate_route_table()
                .route_table_id(&spec_ref.route_table_id)
                .subnet_id(&spec_ref.subnet_id)
                .send()
                .await
            {
                Ok(out) => Ok(Some(out)),
                Err(e) if code(&e) == "Resource.AlreadyAssociated" => Ok(None),
                Err(e) => Err(aws("ec2:AssociateRouteTable", e)),
            }
        })
        .await?;
        match associated {
            Some(out) => {
                let id = out.association_id().unwrap_or_default();
                let value = serde_json::to_value(RouteTableAssociationOut {
                    association_id: id.to_string(),
                })
                .map_err(|e| ResourceError::fatal(e.to_string()))?;
                Ok(Live::new(id, to_settings(&spec), value))
            }
            None => self.find(cx, &spec.subnet_id).await?.ok_or_else(|| {
                ResourceError::transient("the subnet's association is not visible yet")
            }),
        }
    }

    async fn update(
        &self,
        _cx: &Cx,
        desired: &Desired,
        live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        // The subnet moves to another route table.
        let spec: RouteTableAssociationSpec = desired.spec()?;
        let out = self
            .ec2
            .replace_route_table_association()
            .association_id(&live.physical_id)
            .route_table_id(&spec.route_table_id)
            .send()
            .await
            .map_err(|e| aws("ec2:ReplaceRouteTableAssociation", e))?;
        let id = out
            .new_association_id()
            .unwrap_or(&live.physical_id)
            .to_string();
        let value = serde_json::to_value(RouteTableAssociationOut {
            association_id: id.clone(),
        })
        .map_err(|e| ResourceError::fatal(e.to_string()))?;
        Ok(Live::new(id, to_settings(&spec), value))
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Ok(spec) = serde_json::from_value::<RouteTableAssociationSpec>(
            serde_json::Value::Object(record.settings.clone()),
        ) else {
            return Ok(());
        };
        let Some(live) = self.find(cx, &spec.subnet_id).await? else {
            return Ok(());
        };
        match self
            .ec2
            .disassociate_route_table()
            .association_id(&live.physical_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(aws("ec2:DisassociateRouteTable", e)),
        }
    }
}
