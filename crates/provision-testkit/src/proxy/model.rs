//! The latency model: AWS's slow resources, scaled down. The emulator makes everything ready
//! at once; the model remembers when each slow resource was created (from the create call's
//! reply) and, until its scaled time has passed, rewrites the reads that report its state so
//! they say it is still pending. It also refuses what AWS refuses while a resource settles:
//! a new IAM role used by Lambda or SageMaker, a Lambda function updated while an update is in
//! progress, an HTTPS listener given a certificate that is not issued yet.
//!
//! The model only ever makes things slower than the emulator, never faster: a state it does
//! not recognise, or one that is already past pending, is left as the emulator wrote it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};

use super::call::{Call, percent_decode};
use super::wire::AwsError;
use super::xml;

/// A slow thing AWS does, with its own modelled time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Modelled {
    /// NAT gateway `pending` → `available` (`CreateNatGateway`, `DescribeNatGateways`).
    NatGateway,
    /// NAT gateway `deleting` → `deleted` (`DeleteNatGateway`).
    NatGatewayDelete,
    /// Interface VPC endpoint `pending` → `available` (gateway endpoints are at once).
    VpcEndpoint,
    /// Load balancer `provisioning` → `active`.
    LoadBalancer,
    /// ACM certificate `PENDING_VALIDATION` → `ISSUED`, counted from when its validation
    /// CNAME records exist in Route 53 (as the proxy saw them created), like real ACM.
    Certificate,
    /// SageMaker endpoint `Creating` → `InService`.
    Endpoint,
    /// SageMaker endpoint `Updating` → `InService`.
    EndpointUpdate,
    /// ECS service deployment `IN_PROGRESS` with its tasks pending → tasks running.
    EcsDeployment,
    /// Lambda function `State` `Pending` → `Active` after `CreateFunction`.
    Lambda,
    /// Lambda `LastUpdateStatus` `InProgress` → `Successful` after an update.
    LambdaUpdate,
    /// A new IAM role cannot be assumed by Lambda or SageMaker yet.
    RolePropagation,
    /// A deleted load balancer's network interfaces still hold its subnets and security
    /// groups (`DependencyViolation`), as on AWS for a while after `DeleteLoadBalancer`.
    LoadBalancerInterfaces,
}

impl Modelled {
    pub const ALL: [Modelled; 12] = [
        Modelled::NatGateway,
        Modelled::NatGatewayDelete,
        Modelled::VpcEndpoint,
        Modelled::LoadBalancer,
        Modelled::Certificate,
        Modelled::Endpoint,
        Modelled::EndpointUpdate,
        Modelled::EcsDeployment,
        Modelled::Lambda,
        Modelled::LambdaUpdate,
        Modelled::RolePropagation,
        Modelled::LoadBalancerInterfaces,
    ];

    /// The name used on the command line (`--latency nat_gateway=90`) and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Modelled::NatGateway => "nat_gateway",
            Modelled::NatGatewayDelete => "nat_gateway_delete",
            Modelled::VpcEndpoint => "vpc_endpoint",
            Modelled::LoadBalancer => "load_balancer",
            Modelled::Certificate => "certificate",
            Modelled::Endpoint => "endpoint",
            Modelled::EndpointUpdate => "endpoint_update",
            Modelled::EcsDeployment => "ecs_deployment",
            Modelled::Lambda => "lambda",
            Modelled::LambdaUpdate => "lambda_update",
            Modelled::RolePropagation => "role_propagation",
            Modelled::LoadBalancerInterfaces => "load_balancer_interfaces",
        }
    }

    /// The typical time on AWS (docs/aws-notes.md), unscaled.
    pub fn default_time(self) -> Duration {
        let secs = match self {
            // "1.5-2 min"
            Modelled::NatGateway => 105,
            // "NAT gateway deleted: ~1 min"
            Modelled::NatGatewayDelete => 60,
            // Interface endpoints take one to two minutes to become available.
            Modelled::VpcEndpoint => 90,
            // "2-3 min"
            Modelled::LoadBalancer => 150,
            // "1-5 min" once the validation records resolve; the short end of it.
            Modelled::Certificate => 120,
            // "5-10 min", serverless too.
            Modelled::Endpoint | Modelled::EndpointUpdate => 420,
            // "1-5 min" for a stable service.
            Modelled::EcsDeployment => 120,
            // "seconds"
            Modelled::Lambda | Modelled::LambdaUpdate => 5,
            // New roles fail for a few seconds (retry for up to about 2 minutes).
            Modelled::RolePropagation => 10,
            // Not in the notes: a load balancer's interfaces go within a minute or so of it.
            Modelled::LoadBalancerInterfaces => 45,
        };
        Duration::from_secs(secs)
    }
}

impl fmt::Display for Modelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown modelled kind {0:?}; known: {known}", known = Modelled::ALL.map(Modelled::name).join(", "))]
pub struct UnknownModelled(String);

impl FromStr for Modelled {
    type Err = UnknownModelled;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Modelled::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownModelled(s.to_string()))
    }
}

/// The latency model's settings: the AWS time of each kind and one scale for all of them.
#[derive(Clone, Debug)]
pub struct Latency {
    /// Multiplies every modelled time: 0.05 turns one AWS minute into three seconds.
    pub scale: f64,
    times: BTreeMap<Modelled, Duration>,
    /// Whether a certificate's clock starts only once its validation CNAMEs were created in
    /// Route 53 through the proxy (like ACM, which validates by resolving them). Turn off for
    /// tests that create those records directly in the emulator.
    pub certificate_needs_validation_record: bool,
}

/// One row of the model, for the benchmark's critical path.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelledTime {
    pub kind: Modelled,
    pub aws_seconds: f64,
    pub scaled_seconds: f64,
}

impl Latency {
    /// The default AWS times, scaled by `scale`.
    pub fn new(scale: f64) -> Latency {
        Latency {
            scale,
            times: Modelled::ALL
                .into_iter()
                .map(|k| (k, k.default_time()))
                .collect(),
            certificate_needs_validation_record: true,
        }
    }

    /// Overrides one kind's AWS time (it is still scaled).
    pub fn with(mut self, kind: Modelled, aws_time: Duration) -> Latency {
        self.times.insert(kind, aws_time);
        self
    }

    /// The kind's time on AWS.
    pub fn aws(&self, kind: Modelled) -> Duration {
        self.times
            .get(&kind)
            .copied()
            .unwrap_or_else(|| kind.default_time())
    }

    /// The kind's time through the proxy (AWS time × scale).
    pub fn scaled(&self, kind: Modelled) -> Duration {
        let scale = if self.scale.is_finite() && self.scale > 0.0 {
            self.scale
        } else {
            0.0
        };
        self.aws(kind).mul_f64(scale)
    }

    /// Every kind's AWS and scaled time.
    pub fn table(&self) -> Vec<ModelledTime> {
        Modelled::ALL
            .into_iter()
            .map(|kind| ModelledTime {
                kind,
                aws_seconds: self.aws(kind).as_secs_f64(),
                scaled_seconds: self.scaled(kind).as_secs_f64(),
            })
            .collect()
    }
}

/// One request and what identification made of it.
pub(crate) struct Exchange<'a> {
    pub call: &'a Call,
    /// Query-protocol parameters.
    pub form: &'a [(String, String)],
    pub path: &'a str,
    pub body: &'a [u8],
}

/// The model's memory of when each slow resource started settling.
#[derive(Default)]
struct State {
    nat_created: HashMap<String, Instant>,
    nat_deleted: HashMap<String, Instant>,
    vpc_endpoints: HashMap<String, Instant>,
    load_balancers: HashMap<String, Instant>,
    certificates: HashMap<String, Certificate>,
    /// Route 53 records by normalised name, with when they were first created.
    dns_records: HashMap<String, Instant>,
    /// SageMaker endpoints by name: when their creation or update started, and which.
    endpoints: HashMap<String, (Instant, Modelled)>,
    /// ECS services by ARN: when their latest deployment started, and whether it was the
    /// service's creation (then no task runs at all).
    deployments: HashMap<String, (Instant, bool)>,
    lambda_created: HashMap<String, Instant>,
    lambda_updated: HashMap<String, Instant>,
    roles: HashMap<String, Instant>,
    /// What each NAT gateway holds until it is deleted: its subnet and Elastic IP allocation.
    nat_holds: HashMap<String, (String, String)>,
    /// What each load balancer's interfaces hold: its subnets and security groups.
    load_balancer_holds: HashMap<String, Vec<String>>,
    load_balancers_deleted: HashMap<String, Instant>,
}

struct Certificate {
    requested: Instant,
    /// Its validation record names, once a `DescribeCertificate` reply has named them.
    records: Option<Vec<String>>,
    /// Once issued, a certificate stays issued (deleting its validation records later does
    /// not revoke it).
    issued: bool,
}

enum CertState {
    NotModelled,
    Pending,
    Issued,
}

/// The model: settings plus memory.
pub(crate) struct Model {
    latency: Latency,
    state: Mutex<State>,
}

/// What the model did to one reply.
#[derive(Default)]
pub(crate) struct Observed {
    /// The reply's new body, if it was rewritten.
    pub body: Option<Vec<u8>>,
    /// The kinds shown still pending in it.
    pub pending: Vec<Modelled>,
}

impl Model {
    pub(crate) fn new(latency: Latency) -> Model {
        Model {
            latency,
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn latency(&self) -> &Latency {
        &self.latency
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind; keep using them.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn settling(&self, since: Instant, kind: Modelled) -> bool {
        since.elapsed() < self.latency.scaled(kind)
    }

    /// A refusal AWS would give this call right now, if any (answered without forwarding).
    pub(crate) fn refuse(&self, ex: &Exchange<'_>) -> Option<(Modelled, AwsError)> {
        let call = ex.call;
        match (call.signing_name.as_str(), call.operation.as_str()) {
            ("lambda", "CreateFunction") => {
                let role = json(ex.body).and_then(|v| str_field(&v, "Role"))?;
                self.role_refusal(&role, lambda_role_error)
            }
            ("lambda", "UpdateFunctionConfiguration" | "UpdateFunctionCode") => {
                let function = lambda_function_in_path(ex.path)?;
                if let Some(refusal) = self.lambda_conflict(&function) {
                    return Some(refusal);
                }
                if call.operation == "UpdateFunctionConfiguration" {
                    let role = json(ex.body).and_then(|v| str_field(&v, "Role"))?;
                    return self.role_refusal(&role, lambda_role_error);
                }
                None
            }
            ("sagemaker", "CreateModel") => {
                let role = json(ex.body).and_then(|v| str_field(&v, "ExecutionRoleArn"))?;
                self.role_refusal(&role, sagemaker_role_error)
            }
            ("ec2", "DeleteSubnet" | "DeleteSecurityGroup" | "ReleaseAddress") => {
                self.held(call.operation.as_str(), ex.form)
            }
            (
                "elasticloadbalancing",
                "CreateListener" | "ModifyListener" | "AddListenerCertificates",
            ) => {
                let mut state = self.state();
                let is_certificate =
                    |k: &str| k.starts_with("Certificates.") && k.ends_with("CertificateArn");
                ex.form
                    .iter()
                    .filter(|(k, _)| is_certificate(k))
                    .find(|(_, arn)| {
                        matches!(self.certificate(&mut state, arn), CertState::Pending)
                    })
                    .map(|(_, arn)| (Modelled::Certificate, unsupported_certificate(arn)))
            }
            _ => None,
        }
    }

    /// AWS's refusal to delete a subnet, a security group or an address that a NAT gateway
    /// (until it is deleted) or a load balancer's interfaces (until they are released) hold.
    fn held(&self, operation: &str, form: &[(String, String)]) -> Option<(Modelled, AwsError)> {
        let key = match operation {
            "DeleteSubnet" => "SubnetId",
            "DeleteSecurityGroup" => "GroupId",
            _ => "AllocationId",
        };
        let id = form_value(form, key)?;
        let state = self.state();
        let nat_holding = state.nat_holds.iter().any(|(nat, (subnet, allocation))| {
            (subnet == id || allocation == id)
                && state
                    .nat_deleted
                    .get(nat)
                    .is_none_or(|&deleted| self.settling(deleted, Modelled::NatGatewayDelete))
        });
        let kind = if nat_holding {
            Modelled::NatGatewayDelete
        } else if state.load_balancer_holds.iter().any(|(lb, held)| {
            held.iter().any(|h| h == id)
                && state
                    .load_balancers_deleted
                    .get(lb)
                    .is_none_or(|&deleted| self.settling(deleted, Modelled::LoadBalancerInterfaces))
        }) {
            Modelled::LoadBalancerInterfaces
        } else {
            return None;
        };
        let error = if operation == "ReleaseAddress" {
            AwsError {
                status: StatusCode::BAD_REQUEST,
                code: "InvalidIPAddress.InUse",
                message: format!("Address {id} is in use."),
            }
        } else {
            AwsError {
                status: StatusCode::BAD_REQUEST,
                code: "DependencyViolation",
                message: format!("resource {id} has a dependent object"),
            }
        };
        Some((kind, error))
    }

    fn role_refusal(
        &self,
        role: &str,
        error: impl FnOnce(&str) -> AwsError,
    ) -> Option<(Modelled, AwsError)> {
        let created = *self.state().roles.get(role)?;
        self.settling(created, Modelled::RolePropagation)
            .then(|| (Modelled::RolePropagation, error(role)))
    }

    fn lambda_conflict(&self, function: &str) -> Option<(Modelled, AwsError)> {
        let state = self.state();
        let conflict = |kind, message: String| {
            Some((
                kind,
                AwsError {
                    status: StatusCode::CONFLICT,
                    code: "ResourceConflictException",
                    message,
                },
            ))
        };
        if let Some(&created) = state.lambda_created.get(function)
            && self.settling(created, Modelled::Lambda)
        {
            return conflict(
                Modelled::Lambda,
                "The operation cannot be performed at this time. The function is currently in the following state: Pending".into(),
            );
        }
        if let Some(&updated) = state.lambda_updated.get(function)
            && self.settling(updated, Modelled::LambdaUpdate)
        {
            return conflict(
                Modelled::LambdaUpdate,
                format!(
                    "The operation cannot be performed at this time. An update is in progress for resource: {function}"
                ),
            );
        }
        None
    }

    fn certificate(&self, state: &mut State, arn: &str) -> CertState {
        let Some(cert) = state.certificates.get(arn) else {
            return CertState::NotModelled;
        };
        if cert.issued {
            return CertState::Issued;
        }
        let mut start = cert.requested;
        if self.latency.certificate_needs_validation_record {
            let Some(records) = cert.records.as_ref().filter(|r| !r.is_empty()) else {
                return CertState::Pending;
            };
            for name in records {
                match state.dns_records.get(name) {
                    Some(&created) => start = start.max(created),
                    None => return CertState::Pending,
                }
            }
        }
        if self.settling(start, Modelled::Certificate) {
            return CertState::Pending;
        }
        if let Some(cert) = state.certificates.get_mut(arn) {
            cert.issued = true;
        }
        CertState::Issued
    }

    /// Records what a successful (2xx) reply created, and rewrites the states it reports.
    pub(crate) fn observe(&self, ex: &Exchange<'_>, reply: &[u8]) -> Observed {
        let call = ex.call;
        let now = Instant::now();
        let mut out = Observed::default();
        match (call.signing_name.as_str(), call.operation.as_str()) {
            ("ec2", "CreateNatGateway") => self.rewrite_xml_items(
                reply,
                &["natGateway"],
                "natGatewayId",
                &["state"],
                &mut out,
                |m, st, item| {
                    st.nat_created.insert(item.id.clone(), now);
                    if let (Some(subnet), Some(allocation)) = (
                        form_value(ex.form, "SubnetId"),
                        form_value(ex.form, "AllocationId"),
                    ) {
                        st.nat_holds.insert(
                            item.id.clone(),
                            (subnet.to_string(), allocation.to_string()),
                        );
                    }
                    (item.state == "available" && m.settling(now, Modelled::NatGateway))
                        .then(|| (like(&item.state, "pending"), Modelled::NatGateway))
                },
            ),
            ("ec2", "DescribeNatGateways") => self.rewrite_xml_items(
                reply,
                &["natGatewaySet", "item"],
                "natGatewayId",
                &["state"],
                &mut out,
                |m, st, item| match item.state.as_str() {
                    "available" => st
                        .nat_created
                        .get(&item.id)
                        .filter(|t| m.settling(**t, Modelled::NatGateway))
                        .map(|_| (like(&item.state, "pending"), Modelled::NatGateway)),
                    "deleted" => st
                        .nat_deleted
                        .get(&item.id)
                        .filter(|t| m.settling(**t, Modelled::NatGatewayDelete))
                        .map(|_| (like(&item.state, "deleting"), Modelled::NatGatewayDelete)),
                    _ => None,
                },
            ),
            ("elasticloadbalancing", "DeleteLoadBalancer") => {
                if let Some(arn) = form_value(ex.form, "LoadBalancerArn") {
                    self.state()
                        .load_balancers_deleted
                        .insert(arn.to_string(), now);
                }
            }
            ("ec2", "DeleteNatGateway") => {
                if let Some(id) = form_value(ex.form, "NatGatewayId") {
                    self.state().nat_deleted.insert(id.to_string(), now);
                }
            }
            ("ec2", "CreateVpcEndpoint") => self.rewrite_xml_items(
                reply,
                &["vpcEndpoint"],
                "vpcEndpointId",
                &["state"],
                &mut out,
                |m, st, item| {
                    // Gateway endpoints (S3, DynamoDB) are available at once.
                    if !item
                        .child("vpcEndpointType")
                        .is_some_and(|t| t.eq_ignore_ascii_case("interface"))
                    {
                        return None;
                    }
                    st.vpc_endpoints.insert(item.id.clone(), now);
                    (item.state.eq_ignore_ascii_case("available")
                        && m.settling(now, Modelled::VpcEndpoint))
                    .then(|| (like(&item.state, "pending"), Modelled::VpcEndpoint))
                },
            ),
            ("ec2", "DescribeVpcEndpoints") => self.rewrite_xml_items(
                reply,
                &["vpcEndpointSet", "item"],
                "vpcEndpointId",
                &["state"],
                &mut out,
                |m, st, item| {
                    (item.state.eq_ignore_ascii_case("available")
                        && st
                            .vpc_endpoints
                            .get(&item.id)
                            .is_some_and(|t| m.settling(*t, Modelled::VpcEndpoint)))
                    .then(|| (like(&item.state, "pending"), Modelled::VpcEndpoint))
                },
            ),
            ("elasticloadbalancing", "CreateLoadBalancer") => self.rewrite_xml_items(
                reply,
                &["CreateLoadBalancerResult", "LoadBalancers", "member"],
                "LoadBalancerArn",
                &["State", "Code"],
                &mut out,
                |m, st, item| {
                    st.load_balancers.insert(item.id.clone(), now);
                    let held = ex
                        .form
                        .iter()
                        .filter(|(k, _)| {
                            k.starts_with("Subnets.member.")
                                || k.starts_with("SecurityGroups.member.")
                        })
                        .map(|(_, v)| v.clone())
                        .collect();
                    st.load_balancer_holds.insert(item.id.clone(), held);
                    (item.state == "active" && m.settling(now, Modelled::LoadBalancer))
                        .then_some(("provisioning", Modelled::LoadBalancer))
                },
            ),
            ("elasticloadbalancing", "DescribeLoadBalancers") => self.rewrite_xml_items(
                reply,
                &["DescribeLoadBalancersResult", "LoadBalancers", "member"],
                "LoadBalancerArn",
                &["State", "Code"],
                &mut out,
                |m, st, item| {
                    (item.state == "active"
                        && st
                            .load_balancers
                            .get(&item.id)
                            .is_some_and(|t| m.settling(*t, Modelled::LoadBalancer)))
                    .then_some(("provisioning", Modelled::LoadBalancer))
                },
            ),
            ("iam", "CreateRole") => {
                let doc = text(reply);
                let arn = xml::root(doc).and_then(|root| {
                    xml::descend(doc, &root, &["CreateRoleResult", "Role"])
                        .first()
                        .and_then(|role| xml::child_text(doc, role, "Arn"))
                });
                if let Some(arn) = arn {
                    self.state().roles.insert(arn, now);
                }
            }
            ("iam", "DeleteRole") => {
                if let Some(name) = form_value(ex.form, "RoleName") {
                    let suffix = format!("/{name}");
                    self.state().roles.retain(|arn, _| !arn.ends_with(&suffix));
                }
            }
            ("route53", "ChangeResourceRecordSets") => self.record_changes(ex.body, now),
            ("acm", "RequestCertificate") => {
                if let Some(arn) = json(reply).and_then(|v| str_field(&v, "CertificateArn")) {
                    self.state().certificates.insert(
                        arn,
                        Certificate {
                            requested: now,
                            records: None,
                            issued: false,
                        },
                    );
                }
            }
            ("acm", "DeleteCertificate") => {
                if let Some(arn) = json(ex.body).and_then(|v| str_field(&v, "CertificateArn")) {
                    self.state().certificates.remove(&arn);
                }
            }
            ("acm", "DescribeCertificate") => self.rewrite_json(reply, &mut out, |m, st, v| {
                let Some(cert) = v.get_mut("Certificate").and_then(Value::as_object_mut) else {
                    return Vec::new();
                };
                let Some(arn) = cert
                    .get("CertificateArn")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                else {
                    return Vec::new();
                };
                let records: Vec<String> = cert
                    .get("DomainValidationOptions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o.pointer("/ResourceRecord/Name").and_then(Value::as_str))
                    .map(normalise_record_name)
                    .collect();
                if let Some(known) = st.certificates.get_mut(&arn)
                    && !records.is_empty()
                {
                    known.records = Some(records);
                }
                if !matches!(m.certificate(st, &arn), CertState::Pending) {
                    return Vec::new();
                }
                let mut changed = set_if(cert, "Status", "ISSUED", "PENDING_VALIDATION");
                if let Some(options) = cert
                    .get_mut("DomainValidationOptions")
                    .and_then(Value::as_array_mut)
                {
                    for option in options.iter_mut().filter_map(Value::as_object_mut) {
                        changed |=
                            set_if(option, "ValidationStatus", "SUCCESS", "PENDING_VALIDATION");
                    }
                }
                kinds(changed, Modelled::Certificate)
            }),
            ("acm", "ListCertificates") => self.rewrite_json(reply, &mut out, |m, st, v| {
                let mut changed = false;
                for summary in objects(v, "CertificateSummaryList") {
                    let Some(arn) = summary
                        .get("CertificateArn")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                    else {
                        continue;
                    };
                    if matches!(m.certificate(st, &arn), CertState::Pending) {
                        changed |= set_if(summary, "Status", "ISSUED", "PENDING_VALIDATION");
                    }
                }
                kinds(changed, Modelled::Certificate)
            }),
            ("sagemaker", "CreateEndpoint" | "UpdateEndpoint" | "DeleteEndpoint") => {
                if let Some(name) = json(ex.body).and_then(|v| str_field(&v, "EndpointName")) {
                    let mut st = self.state();
                    match call.operation.as_str() {
                        "CreateEndpoint" => st.endpoints.insert(name, (now, Modelled::Endpoint)),
                        "UpdateEndpoint" => {
                            st.endpoints.insert(name, (now, Modelled::EndpointUpdate))
                        }
                        _ => st.endpoints.remove(&name),
                    };
                }
            }
            ("sagemaker", "DescribeEndpoint") => self.rewrite_json(reply, &mut out, |m, st, v| {
                v.as_object_mut()
                    .map(|e| m.endpoint(st, e))
                    .unwrap_or_default()
            }),
            ("sagemaker", "ListEndpoints") => self.rewrite_json(reply, &mut out, |m, st, v| {
                objects(v, "Endpoints")
                    .flat_map(|e| m.endpoint(st, e))
                    .collect()
            }),
            ("ecs", "CreateService" | "UpdateService") => {
                let starts_deployment = call.operation == "CreateService"
                    || json(ex.body).is_some_and(|v| {
                        v.get("taskDefinition").is_some()
                            || v.get("forceNewDeployment").and_then(Value::as_bool) == Some(true)
                    });
                let created = call.operation == "CreateService";
                self.rewrite_json(reply, &mut out, |m, st, v| {
                    let Some(service) = v.get_mut("service").and_then(Value::as_object_mut) else {
                        return Vec::new();
                    };
                    if starts_deployment
                        && let Some(arn) = service.get("serviceArn").and_then(Value::as_str)
                    {
                        st.deployments.insert(arn.to_string(), (now, created));
                    }
                    m.ecs_service(st, service)
                })
            }
            ("ecs", "DescribeServices") => self.rewrite_json(reply, &mut out, |m, st, v| {
                objects(v, "services")
                    .flat_map(|s| m.ecs_service(st, s))
                    .collect()
            }),
            ("lambda", "CreateFunction" | "UpdateFunctionConfiguration" | "UpdateFunctionCode") => {
                let created = call.operation == "CreateFunction";
                self.rewrite_json(reply, &mut out, |m, st, v| {
                    let Some(config) = v.as_object_mut() else {
                        return Vec::new();
                    };
                    if let Some(name) = config.get("FunctionName").and_then(Value::as_str) {
                        if created {
                            st.lambda_created.insert(name.to_string(), now);
                            st.lambda_updated.remove(name);
                        } else {
                            st.lambda_updated.insert(name.to_string(), now);
                        }
                    }
                    m.lambda_config(st, config)
                })
            }
            ("lambda", "GetFunction") => self.rewrite_json(reply, &mut out, |m, st, v| {
                v.get_mut("Configuration")
                    .and_then(Value::as_object_mut)
                    .map(|c| m.lambda_config(st, c))
                    .unwrap_or_default()
            }),
            ("lambda", "GetFunctionConfiguration") => {
                self.rewrite_json(reply, &mut out, |m, st, v| {
                    v.as_object_mut()
                        .map(|c| m.lambda_config(st, c))
                        .unwrap_or_default()
                })
            }
            ("lambda", "DeleteFunction") => {
                if let Some(name) = lambda_function_in_path(ex.path) {
                    let mut st = self.state();
                    st.lambda_created.remove(&name);
                    st.lambda_updated.remove(&name);
                }
            }
            _ => {}
        }
        out
    }

    /// Rewrites the state of each item of an XML reply the model says is still settling.
    fn rewrite_xml_items(
        &self,
        reply: &[u8],
        item_path: &[&str],
        id_field: &str,
        state_path: &[&str],
        out: &mut Observed,
        mut decide: impl FnMut(&Model, &mut State, &Item<'_>) -> Option<(&'static str, Modelled)>,
    ) {
        let doc = text(reply);
        let Some(root) = xml::root(doc) else {
            return;
        };
        let mut edits = xml::Edits::default();
        let mut st = self.state();
        for element in xml::descend(doc, &root, item_path) {
            let Some(id) = xml::child_text(doc, &element, id_field) else {
                continue;
            };
            let Some(state_element) = xml::descend(doc, &element, state_path).into_iter().next()
            else {
                continue;
            };
            let item = Item {
                doc,
                element: &element,
                id,
                state: xml::text(doc, &state_element),
            };
            if let Some((value, kind)) = decide(self, &mut st, &item) {
                edits.set_text(&state_element, value);
                out.pending.push(kind);
            }
        }
        if !edits.is_empty() {
            out.body = edits.apply(doc).map(String::into_bytes);
        }
    }

    /// Parses a JSON reply, lets `f` change it, and keeps the new body if it did.
    fn rewrite_json(
        &self,
        reply: &[u8],
        out: &mut Observed,
        f: impl FnOnce(&Model, &mut State, &mut Value) -> Vec<Modelled>,
    ) {
        let Some(mut value) = json(reply) else {
            return;
        };
        let pending = {
            let mut st = self.state();
            f(self, &mut st, &mut value)
        };
        if !pending.is_empty()
            && let Ok(body) = serde_json::to_vec(&value)
        {
            out.body = Some(body);
            out.pending = pending;
        }
    }

    fn record_changes(&self, request: &[u8], now: Instant) {
        let doc = text(request);
        let Some(root) = xml::root(doc) else {
            return;
        };
        let mut st = self.state();
        for change in xml::descend(doc, &root, &["ChangeBatch", "Changes", "Change"]) {
            let action = xml::child_text(doc, &change, "Action").unwrap_or_default();
            let Some(set) = xml::child(doc, &change, "ResourceRecordSet") else {
                continue;
            };
            let Some(name) = xml::child_text(doc, &set, "Name") else {
                continue;
            };
            let name = normalise_record_name(&name);
            match action.as_str() {
                "CREATE" | "UPSERT" => {
                    st.dns_records.entry(name).or_insert(now);
                }
                "DELETE" => {
                    st.dns_records.remove(&name);
                }
                _ => {}
            }
        }
    }

    fn endpoint(&self, st: &State, endpoint: &mut Map<String, Value>) -> Vec<Modelled> {
        let Some(name) = endpoint.get("EndpointName").and_then(Value::as_str) else {
            return Vec::new();
        };
        let Some(&(since, kind)) = st.endpoints.get(name) else {
            return Vec::new();
        };
        if !self.settling(since, kind) {
            return Vec::new();
        }
        let status = if kind == Modelled::EndpointUpdate {
            "Updating"
        } else {
            "Creating"
        };
        kinds(
            set_if(endpoint, "EndpointStatus", "InService", status),
            kind,
        )
    }

    /// A service whose latest deployment is still rolling out: its primary deployment
    /// `IN_PROGRESS` with no task running yet (and, for a new service, none at all).
    fn ecs_service(&self, st: &State, service: &mut Map<String, Value>) -> Vec<Modelled> {
        let Some(arn) = service.get("serviceArn").and_then(Value::as_str) else {
            return Vec::new();
        };
        let Some(&(since, created)) = st.deployments.get(arn) else {
            return Vec::new();
        };
        if !self.settling(since, Modelled::EcsDeployment) {
            return Vec::new();
        }
        let mut changed = false;
        if let Some(deployments) = service.get_mut("deployments").and_then(Value::as_array_mut) {
            for deployment in deployments.iter_mut().filter_map(Value::as_object_mut) {
                if deployment.get("status").and_then(Value::as_str) != Some("PRIMARY") {
                    continue;
                }
                changed |= set_str(deployment, "rolloutState", "IN_PROGRESS");
                changed |= hold_tasks(deployment);
            }
        }
        if created {
            changed |= hold_tasks(service);
        }
        kinds(changed, Modelled::EcsDeployment)
    }

    fn lambda_config(&self, st: &State, config: &mut Map<String, Value>) -> Vec<Modelled> {
        let Some(name) = config
            .get("FunctionName")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(&created) = st.lambda_created.get(&name)
            && self.settling(created, Modelled::Lambda)
            && set_if(config, "State", "Active", "Pending")
        {
            set_str(config, "StateReason", "The function is being created.");
            set_str(config, "StateReasonCode", "Creating");
            out.push(Modelled::Lambda);
        }
        if let Some(&updated) = st.lambda_updated.get(&name)
            && self.settling(updated, Modelled::LambdaUpdate)
            && set_if(config, "LastUpdateStatus", "Successful", "InProgress")
        {
            out.push(Modelled::LambdaUpdate);
        }
        out
    }
}

/// One item of an XML list reply (a NAT gateway, a load balancer...).
struct Item<'a> {
    doc: &'a str,
    element: &'a xml::Element,
    id: String,
    state: String,
}

impl Item<'_> {
    fn child(&self, name: &str) -> Option<String> {
        xml::child_text(self.doc, self.element, name)
    }
}

/// `value` in the case style of `original` (EC2 writes some states capitalised).
fn like(original: &str, value: &'static str) -> &'static str {
    match (original.chars().next(), value) {
        (Some(c), "pending") if c.is_uppercase() => "Pending",
        (Some(c), "deleting") if c.is_uppercase() => "Deleting",
        _ => value,
    }
}

/// No task of a deployment (or service) running yet: all of them pending.
fn hold_tasks(counts: &mut Map<String, Value>) -> bool {
    let desired = counts
        .get("desiredCount")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let running = counts.get("runningCount").and_then(Value::as_u64);
    if running == Some(0) || running.is_none() {
        return false;
    }
    counts.insert("runningCount".into(), Value::from(0u64));
    counts.insert("pendingCount".into(), Value::from(desired));
    true
}

fn kinds(changed: bool, kind: Modelled) -> Vec<Modelled> {
    if changed { vec![kind] } else { Vec::new() }
}

/// Sets `key` to `to` if it is `from` now; whether it did.
fn set_if(map: &mut Map<String, Value>, key: &str, from: &str, to: &str) -> bool {
    if map.get(key).and_then(Value::as_str) == Some(from) {
        map.insert(key.into(), Value::from(to));
        true
    } else {
        false
    }
}

/// Sets `key` to `value`; whether that changed it.
fn set_str(map: &mut Map<String, Value>, key: &str, value: &str) -> bool {
    if map.get(key).and_then(Value::as_str) == Some(value) {
        return false;
    }
    map.insert(key.into(), Value::from(value));
    true
}

/// The objects of the array `key` of a JSON object.
fn objects<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    v.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn json(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn text(body: &[u8]) -> &str {
    std::str::from_utf8(body).unwrap_or("")
}

fn form_value<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Route 53 names compare without case and with their final dot.
fn normalise_record_name(name: &str) -> String {
    let mut n = name.trim().to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

/// The function a Lambda REST path names (`/2015-03-31/functions/{name-or-arn}/...`), as a
/// bare name: ARNs and qualifiers are reduced to it, since replies name functions that way.
fn lambda_function_in_path(path: &str) -> Option<String> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    segments.find(|s| *s == "functions")?;
    let raw = percent_decode(segments.next()?);
    let parts: Vec<&str> = raw.split(':').collect();
    let name = match parts.as_slice() {
        // arn:aws:lambda:region:account:function:name[:qualifier]
        ["arn", _, _, _, _, "function", name, ..] => name,
        // account:function:name[:qualifier]
        [_, "function", name, ..] => name,
        // name[:qualifier]
        [name, ..] => name,
        [] => return None,
    };
    Some((*name).to_string())
}

/// The same words as strict mode's injection of it (one copy of AWS's message).
fn sagemaker_role_error(role: &str) -> AwsError {
    super::strict::sagemaker_role_error(role)
}

/// ELB's answer for a certificate that is not issued yet; its wording blames the
/// certificate's shape, but that is what AWS says.
fn unsupported_certificate(arn: &str) -> AwsError {
    AwsError {
        status: StatusCode::BAD_REQUEST,
        code: "UnsupportedCertificate",
        message: format!(
            "The certificate '{arn}' must have a fully-qualified domain name, a supported signature, and a supported key size."
        ),
    }
}

fn lambda_role_error(_role: &str) -> AwsError {
    super::strict::lambda_role_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_from_paths() {
        for (path, name) in [
            ("/2015-03-31/functions/f1/code", "f1"),
            ("/2015-03-31/functions/f1:live/configuration", "f1"),
            (
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af2/code",
                "f2",
            ),
            ("/2015-03-31/functions/123456789012:function:f3", "f3"),
        ] {
            assert_eq!(
                lambda_function_in_path(path).as_deref(),
                Some(name),
                "{path}"
            );
        }
    }

    #[test]
    fn what_a_nat_gateway_or_a_load_balancer_holds_cannot_be_deleted_until_it_lets_go() {
        let model = Model::new(Latency::new(1.0));
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(600))
            .expect("the clock is past ten minutes");
        let form = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let refused = |op: &str, key: &str, id: &str| {
            model
                .held(op, &form(key, id))
                .map(|(kind, error)| (kind, error.code))
        };
        {
            let mut st = model.state();
            st.nat_holds
                .insert("nat-1".into(), ("subnet-1".into(), "eipalloc-1".into()));
            st.load_balancer_holds
                .insert("lb-1".into(), vec!["subnet-2".into(), "sg-1".into()]);
        }
        // Live: everything it holds is held.
        assert_eq!(
            refused("DeleteSubnet", "SubnetId", "subnet-1"),
            Some((Modelled::NatGatewayDelete, "DependencyViolation"))
        );
        assert_eq!(
            refused("ReleaseAddress", "AllocationId", "eipalloc-1"),
            Some((Modelled::NatGatewayDelete, "InvalidIPAddress.InUse"))
        );
        assert_eq!(
            refused("DeleteSecurityGroup", "GroupId", "sg-1"),
            Some((Modelled::LoadBalancerInterfaces, "DependencyViolation"))
        );
        assert_eq!(refused("DeleteSubnet", "SubnetId", "subnet-3"), None);
        // Deleting: still held.
        model
            .state()
            .nat_deleted
            .insert("nat-1".into(), Instant::now());
        model
            .state()
            .load_balancers_deleted
            .insert("lb-1".into(), Instant::now());
        assert!(refused("DeleteSubnet", "SubnetId", "subnet-1").is_some());
        assert!(refused("DeleteSubnet", "SubnetId", "subnet-2").is_some());
        // Gone for longer than the modelled times: let go.
        model.state().nat_deleted.insert("nat-1".into(), long_ago);
        model
            .state()
            .load_balancers_deleted
            .insert("lb-1".into(), long_ago);
        assert_eq!(refused("DeleteSubnet", "SubnetId", "subnet-1"), None);
        assert_eq!(
            refused("ReleaseAddress", "AllocationId", "eipalloc-1"),
            None
        );
        assert_eq!(refused("DeleteSecurityGroup", "GroupId", "sg-1"), None);
    }

    #[test]
    fn every_kind_parses_from_its_name() {
        for kind in Modelled::ALL {
            assert_eq!(kind.name().parse::<Modelled>().unwrap(), kind);
        }
        assert!("nat".parse::<Modelled>().is_err());
    }
}
