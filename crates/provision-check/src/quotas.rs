//! The quotas a first deploy hits, read through the Service Quotas API (`GetServiceQuota`, else
//! `GetAWSDefaultServiceQuota` for quotas whose applied value Service Quotas does not hold),
//! each against what this stack adds and, where one cheap read tells, what the account
//! already uses. Where the API does not answer (an emulator), the quota is "not checked".
//!
//! Quota codes, from the Service Quotas console and the AWS General Reference's quota tables:
//! `vpc` L-F678F1CE VPCs per Region, L-FE5A380F NAT gateways per Availability Zone,
//! L-29B6F2EB Interface VPC endpoints per VPC; `ec2` L-0263D0A3 EC2-VPC Elastic IPs;
//! `elasticloadbalancing` L-53DA6B97 Application Load Balancers per Region; `fargate`
//! L-3032A538 Fargate On-Demand vCPU resource count; `sagemaker` L-96300102 Maximum total
//! concurrency that can be allocated across all serverless endpoints; `lambda` L-B99A9384
//! Concurrent executions. SageMaker's "Maximum number of serverless endpoints" is looked up by
//! name (`ListServiceQuotas`), its code being published nowhere we could cite.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_servicequotas::Client as Quotas;
use provision_config::{Capacity, Config};

use crate::{Area, Finding};

/// What the stack adds, by node: which of them the plan would create. `None` when there is no
/// plan to go by: then everything counts as new.
pub struct Additions<'a> {
    pub creates: Option<&'a BTreeSet<String>>,
}

impl Additions<'_> {
    fn new_node(&self, id: &str) -> bool {
        self.creates.is_none_or(|c| c.contains(id))
    }
}

/// The clients the quota checks read through.
pub struct Clients<'a> {
    pub quotas: &'a Quotas,
    pub ec2: &'a aws_sdk_ec2::Client,
    pub elbv2: &'a aws_sdk_elasticloadbalancingv2::Client,
}

/// One quota as Service Quotas reports it.
#[derive(Clone, Debug)]
struct Quota {
    value: f64,
    name: String,
}

/// The quota's applied value, else its default; `Err` says why neither could be read.
async fn quota(q: &Quotas, service: &str, code: &str) -> Result<Quota, String> {
    let applied = q
        .get_service_quota()
        .service_code(service)
        .quota_code(code)
        .send()
        .await;
    let first = match applied {
        Ok(out) => match out
            .quota()
            .and_then(|q| q.value().map(|v| (v, q.quota_name())))
        {
            Some((value, name)) => {
                return Ok(Quota {
                    value,
                    name: name.unwrap_or(code).to_string(),
                });
            }
            None => "GetServiceQuota returned no value".to_string(),
        },
        Err(e) => crate::error_text(&e).1,
    };
    // Service Quotas holds applied values only for some quotas; the default is the value then.
    // https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_GetServiceQuota.html
    match q
        .get_aws_default_service_quota()
        .service_code(service)
        .quota_code(code)
        .send()
        .await
    {
        Ok(out) => match out
            .quota()
            .and_then(|q| q.value().map(|v| (v, q.quota_name())))
        {
            Some((value, name)) => Ok(Quota {
                value,
                name: name.unwrap_or(code).to_string(),
            }),
            None => Err(first),
        },
        Err(e) => Err(format!("{first}; {}", crate::error_text(&e).1)),
    }
}

/// A quota found by its name (for quotas whose code we cannot cite), applied value first.
async fn quota_by_name(q: &Quotas, service: &str, name: &str) -> Result<Quota, String> {
    let mut why = String::new();
    for defaults in [false, true] {
        let mut token: Option<String> = None;
        for _ in 0..20 {
            let page = if defaults {
                q.list_aws_default_service_quotas()
                    .service_code(service)
                    .set_next_token(token.clone())
                    .max_results(100)
                    .send()
                    .await
                    .map(|o| (o.quotas().to_vec(), o.next_token().map(str::to_string)))
                    .map_err(|e| crate::error_text(&e).1)
            } else {
                q.list_service_quotas()
                    .service_code(service)
                    .set_next_token(token.clone())
                    .max_results(100)
                    .send()
                    .await
                    .map(|o| (o.quotas().to_vec(), o.next_token().map(str::to_string)))
                    .map_err(|e| crate::error_text(&e).1)
            };
            let (quotas, next) = match page {
                Ok(p) => p,
                Err(e) => {
                    why = e;
                    break;
                }
            };
            if let Some(found) = quotas
                .iter()
                .find(|x| x.quota_name().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                && let Some(value) = found.value()
            {
                return Ok(Quota {
                    value,
                    name: name.to_string(),
                });
            }
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
    }
    if why.is_empty() {
        why = format!("no quota named \"{name}\" is listed for {service}");
    }
    Err(why)
}

/// Judges one quota: `used` by the account now (if counted), `adds` by this stack.
fn judge(
    subject: &str,
    service: &str,
    code: &str,
    found: Result<Quota, String>,
    used: Result<Option<f64>, String>,
    adds: f64,
    unit: &str,
) -> Finding {
    let quota = match found {
        Ok(q) => q,
        Err(why) => {
            return Finding::not_checked(
                Area::Quotas,
                subject,
                format!("{service} {code}: the quota could not be read ({why})"),
            );
        }
    };
    let used_text = match &used {
        Ok(Some(u)) => format!("{u} in use, "),
        Ok(None) => String::new(),
        Err(why) => format!("use not counted ({why}), "),
    };
    let in_use = used.ok().flatten().unwrap_or(0.0);
    let text = format!(
        "{} ({service} {code}): {}{adds} {unit}added by this stack, quota {}",
        quota.name, used_text, quota.value
    );
    if in_use + adds > quota.value {
        Finding::problem(Area::Quotas, subject, format!("{text}: the deploy would fail when it reaches the quota"))
            .hint(format!(
                "ask for more in the Service Quotas console (service {service}, quota {code}), or free some up first"
            ))
    } else {
        Finding::ok(Area::Quotas, subject, text)
    }
}

/// Every quota, concurrently.
pub async fn quotas(c: &Clients<'_>, config: &Config, additions: &Additions<'_>) -> Vec<Finding> {
    let new_vpc = additions.new_node("network/vpc");
    let vpc = async {
        let adds = if new_vpc { 1.0 } else { 0.0 };
        let used = count_vpcs(c.ec2).await;
        judge(
            "VPCs",
            "vpc",
            "L-F678F1CE",
            quota(c.quotas, "vpc", "L-F678F1CE").await,
            used,
            adds,
            "",
        )
    };
    let eip = async {
        let adds = if additions.new_node("network/elastic-ip") {
            1.0
        } else {
            0.0
        };
        let used = c
            .ec2
            .describe_addresses()
            .send()
            .await
            .map(|o| Some(o.addresses().len() as f64))
            .map_err(|e| crate::error_text(&e).1);
        judge(
            "Elastic IPs",
            "ec2",
            "L-0263D0A3",
            quota(c.quotas, "ec2", "L-0263D0A3").await,
            used,
            adds,
            "",
        )
    };
    let nat = async {
        let adds = if additions.new_node("network/nat-gateway") {
            1.0
        } else {
            0.0
        };
        let used = busiest_zone_nat_gateways(c.ec2).await;
        judge(
            "NAT gateways per zone",
            "vpc",
            "L-FE5A380F",
            quota(c.quotas, "vpc", "L-FE5A380F").await,
            used,
            adds,
            "",
        )
    };
    let endpoints = async {
        // The ECR `api` and `dkr` interface endpoints, in the stack's own VPC (the S3 one is
        // a gateway endpoint, which this quota does not count).
        let adds = [
            "network/vpc-endpoint/ecr-api",
            "network/vpc-endpoint/ecr-dkr",
        ]
        .iter()
        .filter(|id| additions.new_node(id))
        .count() as f64;
        let adds = if new_vpc { 2.0 } else { adds };
        judge(
            "interface endpoints per VPC",
            "vpc",
            "L-29B6F2EB",
            quota(c.quotas, "vpc", "L-29B6F2EB").await,
            Ok(None),
            adds,
            "",
        )
    };
    let alb = async {
        let adds = if additions.new_node("web/load-balancer") {
            1.0
        } else {
            0.0
        };
        let used = count_albs(c.elbv2).await;
        judge(
            "Application Load Balancers",
            "elasticloadbalancing",
            "L-53DA6B97",
            quota(c.quotas, "elasticloadbalancing", "L-53DA6B97").await,
            used,
            adds,
            "",
        )
    };
    let fargate = async {
        // One task of 256 CPU units (0.25 vCPU); running tasks elsewhere are not counted
        // (that takes a read of every cluster's tasks).
        let adds = if additions.new_node("web/service") {
            0.25
        } else {
            0.0
        };
        judge(
            "Fargate vCPU",
            "fargate",
            "L-3032A538",
            quota(c.quotas, "fargate", "L-3032A538").await,
            Ok(None),
            adds,
            "vCPU ",
        )
    };
    let serverless: Vec<(String, u32)> = config
        .sagemaker_endpoints
        .iter()
        .filter_map(|e| match e.capacity {
            Capacity::Serverless {
                max_concurrency, ..
            } => Some((e.endpoint_name.clone(), max_concurrency)),
            Capacity::Instances { .. } => None,
        })
        .filter(|(name, _)| additions.new_node(&format!("endpoint/{name}")))
        .collect();
    let count = serverless.len() as f64;
    let concurrency: f64 = serverless.iter().map(|(_, c)| *c as f64).sum();
    let sm_count = async {
        let name = "Maximum number of serverless endpoints";
        let found = quota_by_name(c.quotas, "sagemaker", name).await;
        judge(
            "serverless endpoints",
            "sagemaker",
            "(by name)",
            found,
            Ok(None),
            count,
            "",
        )
    };
    let sm_concurrency = async {
        judge(
            "serverless concurrency",
            "sagemaker",
            "L-96300102",
            quota(c.quotas, "sagemaker", "L-96300102").await,
            Ok(None),
            concurrency,
            "",
        )
    };
    let lambda = async {
        // The stack reserves no concurrency: its functions share the account's pool, of which
        // Lambda always keeps 10 unreserved. A pool that small (new accounts) throttles.
        let functions = config.lambda_functions.len();
        let found = quota(c.quotas, "lambda", "L-B99A9384").await;
        let small = found.as_ref().ok().map(|q| q.value).filter(|v| *v <= 10.0);
        let f = judge(
            "Lambda concurrency",
            "lambda",
            "L-B99A9384",
            found,
            Ok(None),
            0.0,
            "",
        );
        match small {
            Some(v) if functions > 0 && f.severity == crate::Severity::Ok => Finding::warning(
                Area::Quotas,
                "Lambda concurrency",
                format!("{}: the stack's {functions} function(s) share {v} concurrent executions; invocations beyond that are throttled", f.message),
            )
            .hint("ask for more in the Service Quotas console (service lambda, quota L-B99A9384); new accounts start low"),
            _ => f,
        }
    };
    let (a, b, c1, d, e, f, g, h, i) = tokio::join!(
        vpc,
        eip,
        nat,
        endpoints,
        alb,
        fargate,
        sm_count,
        sm_concurrency,
        lambda
    );
    vec![a, b, c1, d, e, f, g, h, i]
}

async fn count_vpcs(ec2: &aws_sdk_ec2::Client) -> Result<Option<f64>, String> {
    let mut n = 0usize;
    let mut token = None;
    loop {
        let out = ec2
            .describe_vpcs()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| crate::error_text(&e).1)?;
        n += out.vpcs().len();
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(Some(n as f64)),
        }
    }
}

async fn count_albs(elb: &aws_sdk_elasticloadbalancingv2::Client) -> Result<Option<f64>, String> {
    let mut n = 0usize;
    let mut marker = None;
    loop {
        let out = elb
            .describe_load_balancers()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| crate::error_text(&e).1)?;
        n += out
            .load_balancers()
            .iter()
            .filter(|lb| {
                lb.r#type().is_some_and(|t| {
                    *t == aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum::Application
                })
            })
            .count();
        match out.next_marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => return Ok(Some(n as f64)),
        }
    }
}

/// The NAT gateways (pending or available) of the zone that has the most: the stack adds one
/// in its first zone, which may be that one.
async fn busiest_zone_nat_gateways(ec2: &aws_sdk_ec2::Client) -> Result<Option<f64>, String> {
    use aws_sdk_ec2::types::Filter;
    let out = ec2
        .describe_nat_gateways()
        .filter(
            Filter::builder()
                .name("state")
                .values("pending")
                .values("available")
                .build(),
        )
        .send()
        .await
        .map_err(|e| crate::error_text(&e).1)?;
    let subnets: BTreeSet<String> = out
        .nat_gateways()
        .iter()
        .filter_map(|n| n.subnet_id().map(str::to_string))
        .collect();
    if subnets.is_empty() {
        return Ok(Some(0.0));
    }
    let zones = ec2
        .describe_subnets()
        .set_subnet_ids(Some(subnets.into_iter().collect()))
        .send()
        .await
        .map_err(|e| crate::error_text(&e).1)?;
    let zone_of: BTreeMap<String, String> = zones
        .subnets()
        .iter()
        .filter_map(|s| {
            Some((
                s.subnet_id()?.to_string(),
                s.availability_zone()?.to_string(),
            ))
        })
        .collect();
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for n in out.nat_gateways() {
        if let Some(zone) = n.subnet_id().and_then(|s| zone_of.get(s)) {
            *per_zone.entry(zone).or_default() += 1;
        }
    }
    Ok(Some(per_zone.values().copied().max().unwrap_or(0) as f64))
}
