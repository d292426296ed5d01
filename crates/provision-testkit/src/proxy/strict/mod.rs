//! Strict mode: the proxy holds provision to what real AWS accepts and gives, where the
//! emulator is lenient. Two parts, each switched on by [`Strict`]:
//!
//! - **rules** ([`rules`]): every request is checked against the AWS API reference's
//!   constraints for its operation (character sets, lengths, ranges, combinations, tags); a
//!   request that breaks one is answered as AWS answers it (status, code, message, in the
//!   service's wire shape) and never forwarded. ACM's idempotency memory is modelled here
//!   too: a `RequestCertificate` with a token seen in the last hour is answered with the ARN
//!   that token first produced, even if that certificate was deleted since. AWS documents it
//!   (API_RequestCertificate, `IdempotencyToken`: "Idempotency tokens time out after one hour.
//!   Therefore, if you call RequestCertificate multiple times with the same idempotency token
//!   within one hour, ACM recognizes that you are requesting only one certificate and will
//!   issue only one."); moto happens to do the same, the proxy does not rely on it.
//! - **injections** ([`transient`]): the eventual-consistency errors AWS gives and the
//!   emulator never does, once per resource.
//!
//! Refusals, injections and replays are counted in [`Stats::strict`](crate::proxy::Stats),
//! by rule and injection name. The memory strict mode keeps (which ids are new, which tokens
//! were seen) outlives [`Proxy::reset`](crate::proxy::Proxy::reset), like the latency
//! model's: those resources still exist.
//!
//! With the latency model on, its role propagation refusals (Lambda `CreateFunction`,
//! SageMaker `CreateModel` while a new role settles) count as the strict injection for that
//! role: the client already saw AWS's error for it, and strict mode does not add a second.

mod request;
pub(crate) mod rules;
mod transient;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::call::Call;
use super::wire::AwsError;
use super::xml;

pub(crate) use request::Request;
pub use transient::Injection;
pub(crate) use transient::{lambda_role_error, sagemaker_role_error};

/// Which parts of strict mode are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Strict {
    /// Refuse what AWS's input rules refuse; remember ACM idempotency tokens for an hour.
    pub rules: bool,
    /// Inject AWS's transient errors, once per resource.
    pub injections: bool,
}

impl Strict {
    /// Every rule and every injection.
    pub fn all() -> Strict {
        Strict {
            rules: true,
            injections: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("strict mode is all, rules or injections, not {0:?}")]
pub struct UnknownStrict(String);

impl FromStr for Strict {
    type Err = UnknownStrict;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Strict::all()),
            "rules" => Ok(Strict {
                rules: true,
                injections: false,
            }),
            "injections" => Ok(Strict {
                rules: false,
                injections: true,
            }),
            "off" | "none" => Ok(Strict::default()),
            _ => Err(UnknownStrict(s.to_string())),
        }
    }
}

/// How long ACM remembers an idempotency token.
const TOKEN_MEMORY: Duration = Duration::from_secs(3600);

/// What strict mode remembers of the calls it saw.
#[derive(Default)]
pub(crate) struct Memory {
    /// EC2 ids created through the proxy.
    fresh_ec2: HashSet<String>,
    /// Subnets created without an IPv6 block.
    ipv4_subnets: HashSet<String>,
    /// Role ARNs, cluster names, target group and certificate ARNs created through the proxy.
    fresh_roles: HashSet<String>,
    fresh_clusters: HashSet<String>,
    fresh_target_groups: HashSet<String>,
    fresh_certificates: HashSet<String>,
    /// Injections made: (kind, resource).
    spent: HashSet<(Injection, String)>,
    /// ACM idempotency tokens: the ARN each first produced, and when.
    tokens: HashMap<String, (String, Instant)>,
    deleted_certificates: HashSet<String>,
    /// Hosted zone names by id.
    zone_names: HashMap<String, String>,
}

impl Memory {
    /// Marks `(injection, resource)` as done; whether it was not yet.
    fn spend(&mut self, injection: Injection, resource: &str) -> bool {
        self.spent.insert((injection, resource.to_string()))
    }
}

/// What strict mode does with a request before it is forwarded.
pub(crate) enum Verdict {
    /// AWS refuses it: `rule`.
    Refuse { rule: &'static str, error: AwsError },
    /// A transient error, once for this resource.
    Inject {
        injection: Injection,
        error: AwsError,
    },
    /// ACM answers from its idempotency memory: this JSON body, without doing anything.
    Replay { name: &'static str, body: String },
}

/// Strict mode's settings and memory.
pub(crate) struct Enforcer {
    settings: Mutex<Strict>,
    memory: Mutex<Memory>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The hosted zone id of a Route 53 path (`/2013-04-01/hostedzone/{id}/rrset`).
pub(crate) fn zone_in_path(path: &str) -> Option<String> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    segments.find(|s| *s == "hostedzone")?;
    segments.next().map(str::to_string)
}

/// The text of the first `<tag>` in a document (ids in create replies).
fn first_text(doc: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = doc.find(&open)? + open.len();
    let end = doc[start..].find(&format!("</{tag}>"))? + start;
    Some(doc[start..end].trim().to_string())
}

impl Enforcer {
    pub(crate) fn new(settings: Strict) -> Enforcer {
        Enforcer {
            settings: Mutex::new(settings),
            memory: Mutex::new(Memory::default()),
        }
    }

    pub(crate) fn settings(&self) -> Strict {
        *lock(&self.settings)
    }

    pub(crate) fn set(&self, settings: Strict) {
        *lock(&self.settings) = settings;
    }

    /// The zone whose name a rule needs and strict mode does not know yet.
    pub(crate) fn zone_to_learn(&self, call: &Call, path: &str) -> Option<String> {
        if !self.settings().rules
            || call.signing_name != "route53"
            || call.operation != "ChangeResourceRecordSets"
        {
            return None;
        }
        let id = zone_in_path(path)?;
        (!lock(&self.memory).zone_names.contains_key(&id)).then_some(id)
    }

    /// Remembers a zone's name (from a `GetHostedZone` reply).
    pub(crate) fn learn_zone(&self, id: &str, reply: &[u8]) {
        let doc = std::str::from_utf8(reply).unwrap_or("");
        let name = xml::root(doc).and_then(|root| {
            xml::descend(doc, &root, &["HostedZone"])
                .first()
                .and_then(|zone| xml::child_text(doc, zone, "Name"))
        });
        if let Some(name) = name {
            lock(&self.memory).zone_names.insert(id.to_string(), name);
        }
    }

    /// What AWS's rules make of a request before anything else: a refusal or a replay.
    pub(crate) fn check(&self, req: &Request<'_>) -> Option<Verdict> {
        let settings = self.settings();
        let memory = lock(&self.memory);
        if settings.rules {
            let zone = zone_in_path(req.path).and_then(|id| memory.zone_names.get(&id).cloned());
            let known = rules::Known {
                zone_name: zone.as_deref(),
                ipv4_subnets: Some(&memory.ipv4_subnets),
            };
            if let Some(v) = rules::check(req, &known) {
                return Some(Verdict::Refuse {
                    rule: v.rule,
                    error: v.error,
                });
            }
            if let Some(token) = rules::idempotency_token(req)
                && let Some((arn, first)) = memory.tokens.get(token)
                && first.elapsed() < TOKEN_MEMORY
            {
                let name = if memory.deleted_certificates.contains(arn) {
                    "acm_idempotency_token_deleted_certificate"
                } else {
                    "acm_idempotency_token"
                };
                return Some(Verdict::Replay {
                    name,
                    body: serde_json::json!({ "CertificateArn": arn }).to_string(),
                });
            }
        }
        None
    }

    /// The transient error due for a request, if any (spent as it is returned).
    pub(crate) fn inject(&self, req: &Request<'_>) -> Option<Verdict> {
        if !self.settings().injections {
            return None;
        }
        let (injection, error) = transient::due(&mut lock(&self.memory), req)?;
        Some(Verdict::Inject { injection, error })
    }

    /// The latency model refused this call for a role that is still propagating: the
    /// strict injection for that role is spent (the client saw that error already). Returns
    /// the injection it stands for.
    pub(crate) fn model_refused_role(&self, req: &Request<'_>) -> Option<Injection> {
        let (injection, role) = match (req.signing_name(), req.operation()) {
            ("lambda", _) => (Injection::LambdaRole, req.str("Role")?),
            ("sagemaker", "CreateModel") => {
                (Injection::SageMakerRole, req.str("ExecutionRoleArn")?)
            }
            _ => return None,
        };
        let mut memory = lock(&self.memory);
        if !memory.fresh_roles.contains(role) {
            return None;
        }
        memory.spend(injection, role).then_some(injection)
    }

    /// Records what a successful reply created (new ids, tokens) or deleted.
    pub(crate) fn observe(&self, req: &Request<'_>, reply: &[u8]) {
        let doc = std::str::from_utf8(reply).unwrap_or("");
        let mut memory = lock(&self.memory);
        match (req.signing_name(), req.operation()) {
            ("ec2", op) => {
                let tag = match op {
                    "CreateVpc" => "vpcId",
                    "CreateSubnet" => "subnetId",
                    "CreateSecurityGroup" => "groupId",
                    "CreateInternetGateway" => "internetGatewayId",
                    "CreateRouteTable" => "routeTableId",
                    "CreateNatGateway" => "natGatewayId",
                    "AllocateAddress" => "allocationId",
                    "CreateVpcEndpoint" => "vpcEndpointId",
                    _ => return,
                };
                let Some(id) = first_text(doc, tag) else {
                    return;
                };
                if op == "CreateSubnet" {
                    let ipv6 = req.param("Ipv6CidrBlock").is_some()
                        || req.param("Ipv6Native") == Some("true");
                    if !ipv6 {
                        memory.ipv4_subnets.insert(id.clone());
                    }
                }
                memory.fresh_ec2.insert(id);
            }
            ("iam", "CreateRole") => {
                if let Some(arn) = first_text(doc, "Arn") {
                    memory.fresh_roles.insert(arn);
                }
            }
            ("ecs", "CreateCluster") => {
                let name = req.str("clusterName").unwrap_or("default").to_string();
                memory.fresh_clusters.insert(name);
            }
            ("elasticloadbalancing", "CreateTargetGroup") => {
                if let Some(arn) = first_text(doc, "TargetGroupArn") {
                    memory.fresh_target_groups.insert(arn);
                }
            }
            ("acm", "RequestCertificate") => {
                let arn = serde_json::from_slice::<Value>(reply).ok().and_then(|v| {
                    v.get("CertificateArn")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
                if let Some(arn) = arn {
                    if let Some(token) = rules::idempotency_token(req) {
                        let now = Instant::now();
                        let expired = memory
                            .tokens
                            .get(token)
                            .is_none_or(|(_, t)| t.elapsed() >= TOKEN_MEMORY);
                        if expired {
                            memory.tokens.insert(token.to_string(), (arn.clone(), now));
                        }
                    }
                    memory.fresh_certificates.insert(arn);
                }
            }
            ("acm", "DeleteCertificate") => {
                if let Some(arn) = req.str("CertificateArn") {
                    memory.deleted_certificates.insert(arn.to_string());
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rules::testing::call;
    use super::*;

    fn json_request<'a>(call: &'a Call, body: &'a str) -> Request<'a> {
        Request::new(call, &[], body.as_bytes(), "/")
    }

    #[test]
    fn an_acm_token_answers_its_first_certificate_for_an_hour_even_once_deleted() {
        let enforcer = Enforcer::new(Strict::all());
        let request = call("acm", "RequestCertificate");
        let body = r#"{"DomainName":"local.example.test","ValidationMethod":"DNS","IdempotencyToken":"provisionlocal"}"#;
        assert!(enforcer.check(&json_request(&request, body)).is_none());
        enforcer.observe(
            &json_request(&request, body),
            br#"{"CertificateArn":"arn:aws:acm:us-east-1:123456789012:certificate/1"}"#,
        );
        let replay = |expected: &str| match enforcer.check(&json_request(&request, body)) {
            Some(Verdict::Replay { name, body }) => {
                assert_eq!(name, expected);
                assert!(body.contains("certificate/1"), "{body}");
            }
            _ => panic!("no replay"),
        };
        replay("acm_idempotency_token");
        let delete = call("acm", "DeleteCertificate");
        enforcer.observe(
            &json_request(
                &delete,
                r#"{"CertificateArn":"arn:aws:acm:us-east-1:123456789012:certificate/1"}"#,
            ),
            b"{}",
        );
        replay("acm_idempotency_token_deleted_certificate");
        // Another token is another certificate.
        let other = body.replace("provisionlocal", "provisionlocal2");
        assert!(enforcer.check(&json_request(&request, &other)).is_none());
    }

    #[test]
    fn each_injection_comes_once_per_resource() {
        let enforcer = Enforcer::new(Strict::all());
        let create = call("ec2", "CreateVpc");
        enforcer.observe(
            &Request::new(&create, &[], b"", "/"),
            b"<CreateVpcResponse><vpc><vpcId>vpc-1</vpcId></vpc></CreateVpcResponse>",
        );
        let modify = call("ec2", "ModifyVpcAttribute");
        let form = |id: &str| vec![("VpcId".to_string(), id.to_string())];
        let injected = |id: &str| {
            let form = form(id);
            match enforcer.inject(&Request::new(&modify, &form, b"", "/")) {
                Some(Verdict::Inject { injection, error }) => Some((injection, error.code)),
                _ => None,
            }
        };
        assert_eq!(
            injected("vpc-1"),
            Some((Injection::Ec2VpcNotFound, "InvalidVpcID.NotFound"))
        );
        assert_eq!(injected("vpc-1"), None);
        // An id the proxy did not see created is not new.
        assert_eq!(injected("vpc-2"), None);

        let cluster = call("ecs", "CreateCluster");
        let first = enforcer.inject(&json_request(&cluster, r#"{"clusterName":"c"}"#));
        assert!(matches!(
            first,
            Some(Verdict::Inject {
                injection: Injection::EcsServiceLinkedRole,
                ..
            })
        ));
        assert!(
            enforcer
                .inject(&json_request(&cluster, r#"{"clusterName":"c"}"#))
                .is_none()
        );
    }

    #[test]
    fn strict_parses_from_its_names() {
        assert_eq!("all".parse::<Strict>().unwrap(), Strict::all());
        assert!("rules".parse::<Strict>().unwrap().rules);
        assert!(!"rules".parse::<Strict>().unwrap().injections);
        assert!("everything".parse::<Strict>().is_err());
    }
}
