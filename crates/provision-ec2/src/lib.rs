//! EC2 networking as resource kinds: the VPC, its subnets, gateways, routes, security groups
//! and endpoints.
//!
//! EC2 has few idempotent creates: VPCs, subnets, internet gateways and Elastic IPs take no
//! client token. Those creates are sent without SDK retries, and carry their ownership tags
//! in the create call itself (`TagSpecifications`), so that when a reply is lost the engine
//! finds the resource by its tags instead of creating a second one.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use provision_aws::retry::{EC2_PROPAGATION, TRANSIENT, in_use, retry};
use provision_core::resource::{Cx, Owner, ResourceError, TAG_ID, TAG_STACK};

mod endpoint;
mod gateway;
mod routing;
mod security_group;
mod subnet;
mod vpc;
mod zones;

pub use endpoint::{VpcEndpoint, VpcEndpointOut, VpcEndpointSpec};
pub use gateway::{
    ElasticIp, ElasticIpOut, ElasticIpSpec, InternetGateway, InternetGatewayOut,
    InternetGatewaySpec, NatGateway, NatGatewayOut, NatGatewaySpec,
};
pub use routing::{
    Route, RouteOut, RouteSpec, RouteTable, RouteTableAssociation, RouteTableAssociationOut,
    RouteTableAssociationSpec, RouteTableOut, RouteTableSpec,
};
pub use security_group::{IngressRule, SecurityGroup, SecurityGroupOut, SecurityGroupSpec};
pub use subnet::{Subnet, SubnetOut, SubnetSpec};
pub use vpc::{Vpc, VpcOut, VpcSpec};
pub use zones::{AvailabilityZones, AvailabilityZonesOut, AvailabilityZonesSpec};

/// Where an IPv6 block association (of a VPC or a subnet) stands. EC2 reports `associating`,
/// `associated`, `disassociating`, `disassociated`, `failing` or `failed`
/// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_VpcCidrBlockState.html,
/// API_SubnetCidrBlockState.html): an association is asynchronous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Association {
    Pending,
    Associated,
    Gone,
}

pub(crate) fn association(state: Option<&str>) -> Association {
    match state {
        Some("associating") => Association::Pending,
        Some("disassociating" | "disassociated" | "failing" | "failed") => Association::Gone,
        // `associated`. moto reports a subnet's state as the text of a dict
        // ("{'State': 'associated'}"); it only ever reports associated ones that way.
        _ => Association::Associated,
    }
}

/// An IPv6 CIDR in the form EC2 and this crate compare: the address compressed as RFC 5952
/// says (what `Ipv6Addr` prints), then the prefix length. `None` if it is not one.
pub fn normalize_ipv6_cidr(cidr: &str) -> Option<String> {
    let (addr, len) = cidr.split_once('/')?;
    let addr: std::net::Ipv6Addr = addr.parse().ok()?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 128)?;
    Some(format!("{addr}/{len}"))
}

/// The `index`-th /64 of a VPC's Amazon-provided /56: what each subnet of a dual-stack VPC
/// gets (a /56 holds 256 of them). `None` if `vpc_block` is not an IPv6 /56.
/// (https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html: a subnet's IPv6 CIDR
/// is a /64 from the VPC's block.)
pub fn ipv6_subnet(vpc_block: &str, index: u8) -> Option<String> {
    let (addr, len) = vpc_block.split_once('/')?;
    if len != "56" {
        return None;
    }
    let base = u128::from(addr.parse::<std::net::Ipv6Addr>().ok()?);
    // A /56 leaves 8 bits of subnet id above the /64's 64 host bits.
    let mask_56 = !0u128 << (128 - 56);
    let subnet = (base & mask_56) | (u128::from(index) << 64);
    Some(format!("{}/64", std::net::Ipv6Addr::from(subnet)))
}

/// Every EC2 kind, sharing one client.
pub struct Ec2Kinds {
    pub availability_zones: std::sync::Arc<AvailabilityZones>,
    pub vpc: std::sync::Arc<Vpc>,
    pub subnet: std::sync::Arc<Subnet>,
    pub internet_gateway: std::sync::Arc<InternetGateway>,
    pub elastic_ip: std::sync::Arc<ElasticIp>,
    pub nat_gateway: std::sync::Arc<NatGateway>,
    pub route_table: std::sync::Arc<RouteTable>,
    pub route: std::sync::Arc<Route>,
    pub route_table_association: std::sync::Arc<RouteTableAssociation>,
    pub security_group: std::sync::Arc<SecurityGroup>,
    pub vpc_endpoint: std::sync::Arc<VpcEndpoint>,
}

impl Ec2Kinds {
    pub fn new(client: Client) -> Self {
        use std::sync::Arc;
        Ec2Kinds {
            availability_zones: Arc::new(AvailabilityZones {
                ec2: client.clone(),
            }),
            vpc: Arc::new(Vpc {
                ec2: client.clone(),
            }),
            subnet: Arc::new(Subnet {
                ec2: client.clone(),
            }),
            internet_gateway: Arc::new(InternetGateway {
                ec2: client.clone(),
            }),
            elastic_ip: Arc::new(ElasticIp {
                ec2: client.clone(),
            }),
            nat_gateway: Arc::new(NatGateway {
                ec2: client.clone(),
            }),
            route_table: Arc::new(RouteTable {
                ec2: client.clone(),
            }),
            route: Arc::new(Route {
                ec2: client.clone(),
            }),
            route_table_association: Arc::new(RouteTableAssociation {
                ec2: client.clone(),
            }),
            security_group: Arc::new(SecurityGroup {
                ec2: client.clone(),
            }),
            vpc_endpoint: Arc::new(VpcEndpoint { ec2: client }),
        }
    }

    pub fn all(&self) -> Vec<std::sync::Arc<dyn provision_core::Kind>> {
        vec![
            self.availability_zones.clone(),
            self.vpc.clone(),
            self.subnet.clone(),
            self.internet_gateway.clone(),
            self.elastic_ip.clone(),
            self.nat_gateway.clone(),
            self.route_table.clone(),
            self.route.clone(),
            self.route_table_association.clone(),
            self.security_group.clone(),
            self.vpc_endpoint.clone(),
        ]
    }
}

/// A config override that turns SDK retries off, for creates that take no client token: a
/// retried create whose first reply was lost would make a second resource.
pub(crate) fn no_retry() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_config(RetryConfig::disabled())
}

/// The ownership tags (and a `Name` tag, which the console shows) for a create call.
pub(crate) fn tag_spec(
    cx: &Cx,
    resource_type: ResourceType,
    name: Option<&str>,
) -> TagSpecification {
    let mut b = TagSpecification::builder().resource_type(resource_type);
    for (k, v) in cx.tags() {
        b = b.tags(Tag::builder().key(k).value(v).build());
    }
    if let Some(name) = name {
        b = b.tags(Tag::builder().key("Name").value(name).build());
    }
    b.build()
}

/// Filters that match this resource of this stack by its tags.
pub(crate) fn ours(cx: &Cx) -> Vec<Filter> {
    vec![
        Filter::builder()
            .name(format!("tag:{TAG_STACK}"))
            .values(cx.stack_name())
            .build(),
        Filter::builder()
            .name(format!("tag:{TAG_ID}"))
            .values(cx.id().as_str())
            .build(),
    ]
}

pub(crate) fn filter(name: &str, value: impl Into<String>) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Whether `tags` name this resource of this stack. Every lookup by tags checks this on the
/// client as well as asking the server to filter: emulators (moto, LocalStack) ignore some tag
/// filters and answer with every resource, which would hand one environment another's.
pub(crate) fn is_ours(cx: &Cx, tags: &[Tag]) -> bool {
    cx.owner(tag_pairs(tags)) == Owner::Ours
}

pub(crate) fn tag_pairs(tags: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter().filter_map(|t| Some((t.key()?, t.value()?)))
}

pub(crate) fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// EC2 errors are not modelled as types; its error codes are the documented way to tell them apart.
pub(crate) fn code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> &str {
    provision_aws::error_code(err).unwrap_or("")
}

pub(crate) fn is_not_found<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    let c = code(err);
    c.ends_with(".NotFound") || c.ends_with("NotFound") || c == "InvalidVpcEndpointId.NotFound"
}

pub(crate) fn aws<E, R>(operation: &str, err: SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    provision_aws::classify(operation, err)
}

/// Runs a call that names an id created a moment ago (its own, or a parent's), riding out
/// EC2's eventual consistency (`EC2_PROPAGATION`): the new id may be unknown to this call for
/// a while. Never for reads that decide whether something exists.
pub(crate) async fn propagated<T, F, Fut>(cx: &Cx, call: F) -> Result<T, ResourceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ResourceError>>,
{
    retry(cx, &[&EC2_PROPAGATION], call).await
}

/// Sets the `Name` tag (the console's name column) of a resource.
pub(crate) async fn set_name(
    ec2: &Client,
    cx: &Cx,
    id: &str,
    name: &str,
) -> Result<(), ResourceError> {
    propagated(cx, || async move {
        ec2.create_tags()
            .resources(id)
            .tags(Tag::builder().key("Name").value(name).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws("ec2:CreateTags", e))
    })
    .await
}

/// Retries `op` while something still uses the resource (`EC2_IN_USE`: network interfaces
/// being released, a NAT gateway still deleting), until the deadline for `timeout`. On giving
/// up, `blockers` explains what is in the way.
pub(crate) async fn while_in_use<F, Fut, B, BFut>(
    cx: &Cx,
    what: &str,
    timeout: &provision_core::wait::Timeout,
    op: F,
    blockers: B,
) -> Result<(), ResourceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), ResourceError>>,
    B: FnOnce() -> BFut,
    BFut: std::future::Future<Output = String>,
{
    let policy = in_use(*timeout);
    match retry(cx, &[&policy, &TRANSIENT], op).await {
        Err(e) if policy.applies(&e) => {
            let why = blockers().await;
            let mut err = ResourceError::timeout(format!("{what} is still in use: {why}"))
                .with_hint(format!(
                    "delete what is listed (or wait for AWS to release it, which for Lambda network interfaces can take 40 minutes), then rerun `provision down`; or allow more time with --timeout {}=<minutes>m",
                    timeout.key
                ));
            // The last refusal's code, operation and request id, for AWS support.
            err.code = e.code;
            err.call = e.call;
            Err(err)
        }
        other => other,
    }
}

/// What still sits in a VPC: network interfaces (with what made them), and other blockers.
pub async fn vpc_blockers(ec2: &Client, vpc_id: &str) -> String {
    let mut items = Vec::new();
    if let Ok(out) = ec2
        .describe_network_interfaces()
        .filters(filter("vpc-id", vpc_id))
        .send()
        .await
    {
        // Each list is checked against the VPC here too: the filter may be ignored.
        for eni in out
            .network_interfaces()
            .iter()
            .filter(|n| n.vpc_id() == Some(vpc_id))
        {
            let id = eni.network_interface_id().unwrap_or("?");
            let desc = eni.description().unwrap_or("");
            let owner = eni.requester_id().unwrap_or("");
            items.push(format!(
                "network interface {id} ({desc}{}{owner})",
                if owner.is_empty() { "" } else { ", made by " }
            ));
        }
    }
    if let Ok(out) = ec2
        .describe_nat_gateways()
        .filter(filter("vpc-id", vpc_id))
        .send()
        .await
    {
        for n in out
            .nat_gateways()
            .iter()
            .filter(|n| n.vpc_id() == Some(vpc_id))
        {
            let state = n.state().map(|s| s.as_str()).unwrap_or("?");
            if state != "deleted" {
                items.push(format!(
                    "NAT gateway {} ({state})",
                    n.nat_gateway_id().unwrap_or("?")
                ));
            }
        }
    }
    if let Ok(out) = ec2
        .describe_vpc_endpoints()
        .filters(filter("vpc-id", vpc_id))
        .send()
        .await
    {
        for e in out
            .vpc_endpoints()
            .iter()
            .filter(|e| e.vpc_id() == Some(vpc_id))
        {
            items.push(format!(
                "VPC endpoint {}",
                e.vpc_endpoint_id().unwrap_or("?")
            ));
        }
    }
    if let Ok(out) = ec2
        .describe_subnets()
        .filters(filter("vpc-id", vpc_id))
        .send()
        .await
    {
        for s in out.subnets().iter().filter(|s| s.vpc_id() == Some(vpc_id)) {
            items.push(format!("subnet {}", s.subnet_id().unwrap_or("?")));
        }
    }
    if let Ok(out) = ec2
        .describe_security_groups()
        .filters(filter("vpc-id", vpc_id))
        .send()
        .await
    {
        for g in out
            .security_groups()
            .iter()
            .filter(|g| g.vpc_id() == Some(vpc_id))
        {
            if g.group_name() != Some("default") {
                items.push(format!(
                    "security group {} ({})",
                    g.group_id().unwrap_or("?"),
                    g.group_name().unwrap_or("")
                ));
            }
        }
    }
    if let Ok(out) = ec2
        .describe_route_tables()
        .filters(filter("vpc-id", vpc_id))
        .send()
        .await
    {
        for t in out
            .route_tables()
            .iter()
            .filter(|t| t.vpc_id() == Some(vpc_id))
        {
            // The main route table goes with the VPC; any other one keeps it.
            if !t.associations().iter().any(|a| a.main() == Some(true)) {
                items.push(format!("route table {}", t.route_table_id().unwrap_or("?")));
            }
        }
    }
    if let Ok(out) = ec2
        .describe_internet_gateways()
        .filters(filter("attachment.vpc-id", vpc_id))
        .send()
        .await
    {
        for g in out
            .internet_gateways()
            .iter()
            .filter(|g| g.attachments().iter().any(|a| a.vpc_id() == Some(vpc_id)))
        {
            items.push(format!(
                "internet gateway {}",
                g.internet_gateway_id().unwrap_or("?")
            ));
        }
    }
    if items.is_empty() {
        "AWS did not say what (nothing is listed in it any more; retry)".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_get_the_numbered_64s_of_the_vpc_56() {
        assert_eq!(
            ipv6_subnet("2600:1f18:4b2:5a00::/56", 0).as_deref(),
            Some("2600:1f18:4b2:5a00::/64")
        );
        assert_eq!(
            ipv6_subnet("2600:1f18:4b2:5a00::/56", 1).as_deref(),
            Some("2600:1f18:4b2:5a01::/64")
        );
        assert_eq!(
            ipv6_subnet("2600:1f18:4b2:5a00::/56", 255).as_deref(),
            Some("2600:1f18:4b2:5aff::/64")
        );
        // Not a /56, not IPv6.
        assert_eq!(ipv6_subnet("2600:1f18:4b2:5a00::/64", 0), None);
        assert_eq!(ipv6_subnet("10.0.0.0/16", 0), None);
    }

    #[test]
    fn ipv6_cidrs_compare_in_one_written_form() {
        assert_eq!(
            normalize_ipv6_cidr("2600:1F18:04b2:5A00:0000::/64").as_deref(),
            Some("2600:1f18:4b2:5a00::/64")
        );
        assert_eq!(normalize_ipv6_cidr("::/0").as_deref(), Some("::/0"));
        assert_eq!(normalize_ipv6_cidr("::/129"), None);
        assert_eq!(normalize_ipv6_cidr("0.0.0.0/0"), None);
    }

    #[test]
    fn association_states_are_read_as_ec2_documents_them() {
        assert_eq!(association(Some("associating")), Association::Pending);
        assert_eq!(association(Some("associated")), Association::Associated);
        for gone in ["disassociating", "disassociated", "failing", "failed"] {
            assert_eq!(association(Some(gone)), Association::Gone, "{gone}");
        }
        // moto's rendering of a subnet's associated state.
        assert_eq!(
            association(Some("{'State': 'associated'}")),
            Association::Associated
        );
    }
}
