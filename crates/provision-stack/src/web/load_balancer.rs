//! The internet-facing application load balancer in the public subnets: its security group, the
//! app's target group, HTTP on 80 (a redirect to HTTPS, plus the rule that attaches the target
//! group early, which never matches) and HTTPS on 443 once the certificate is issued.

use std::collections::BTreeSet;

use provision_acm::CertificateValidationOut;
use provision_core::graph::{Graph, GraphError};
use provision_core::input::{Ref, Until};
use provision_core::names;
use provision_core::resource::Node;
use provision_ec2::{IngressRule, SecurityGroupOut, SecurityGroupSpec};
use provision_elbv2::{
    ListenerAction, ListenerOut, ListenerRuleSpec, ListenerSpec, LoadBalancerOut, LoadBalancerSpec,
    RuleConditionSpec, TargetGroupOut, TargetGroupSpec,
};
use serde_json::Value;

use super::{
    APP_PORT, ATTACH_RULE_PRIORITY, DEREGISTRATION_DELAY_SECONDS, HEALTH_CHECK_INTERVAL_SECONDS,
    HEALTH_CHECK_PATH, HEALTH_CHECK_TIMEOUT_SECONDS, HEALTHY_THRESHOLD, IP_ADDRESS_TYPE,
    LOAD_BALANCER_GROUP_DESCRIPTION, SSL_POLICY, UNHEALTHY_THRESHOLD, UNREACHABLE_SOURCE,
    target_group_name,
};
use crate::network::Network;
use crate::{Kinds, Project};

/// What the service and the DNS records use.
pub(super) struct LoadBalancer {
    pub load_balancer: Ref<LoadBalancerOut>,
    pub security_group: Ref<SecurityGroupOut>,
    pub target_group: Ref<TargetGroupOut>,
    /// What attaches the target group to the load balancer before there is an HTTPS listener.
    pub attach_rule: Ref<Value>,
}

pub(super) fn add(
    g: &mut Graph,
    project: &Project,
    kinds: &Kinds,
    net: &Network,
    validation: &Ref<CertificateValidationOut>,
) -> Result<LoadBalancer, GraphError> {
    let stack = project.stack_name();
    let k = &kinds.web.elbv2;
    let security_group = security_group(g, &stack, kinds, net)?;
    let subnets: Vec<_> = net.public_subnets.iter().map(Ref::ready).collect();
    let load_balancer: Ref<LoadBalancerOut> = g.insert(
        Node::new("web/load-balancer", k.load_balancer.clone())
            .named(names::fit(&stack, "alb", names::limits::LOAD_BALANCER))
            .spec((security_group.ready(), subnets), |(group, subnets)| {
                let mut subnet_ids: Vec<String> =
                    subnets.into_iter().map(|s| s.subnet_id).collect();
                subnet_ids.sort();
                LoadBalancerSpec {
                    scheme: "internet-facing".into(),
                    load_balancer_type: "application".into(),
                    // Dual stack: the public subnets have IPv6 /64s (ELB refuses `dualstack`
                    // otherwise), and an existing IPv4 load balancer switches in place
                    // (SetIpAddressType), after its subnets have theirs.
                    ip_address_type: IP_ADDRESS_TYPE.into(),
                    subnet_ids,
                    security_group_ids: vec![group.group_id],
                }
            })
            // An internet-facing load balancer needs the VPC's internet gateway attached.
            .ordered_after(&net.internet_gateway, Until::Ready),
    )?;
    let target_group: Ref<TargetGroupOut> = g.insert(
        Node::new("web/target-group", k.target_group.clone())
            .named(target_group_name(&stack, "HTTP", APP_PORT, "ip"))
            .spec(net.vpc.ready(), |vpc| TargetGroupSpec {
                protocol: "HTTP".into(),
                port: APP_PORT,
                vpc_id: vpc.vpc_id,
                target_type: "ip".into(),
                health_check_path: HEALTH_CHECK_PATH.into(),
                health_check_interval_seconds: HEALTH_CHECK_INTERVAL_SECONDS,
                health_check_timeout_seconds: HEALTH_CHECK_TIMEOUT_SECONDS,
                healthy_threshold_count: HEALTHY_THRESHOLD,
                unhealthy_threshold_count: UNHEALTHY_THRESHOLD,
                healthy_http_codes: "200".into(),
                deregistration_delay_seconds: DEREGISTRATION_DELAY_SECONDS,
            }),
    )?;
    let attach_rule = listeners(g, kinds, &load_balancer, &target_group, validation)?;
    Ok(LoadBalancer {
        load_balancer,
        security_group,
        target_group,
        attach_rule,
    })
}

/// `web/security-group/load-balancer`: HTTPS from anywhere, IPv4 and IPv6, and HTTP to be
/// redirected.
fn security_group(
    g: &mut Graph,
    stack: &str,
    kinds: &Kinds,
    net: &Network,
) -> Result<Ref<SecurityGroupOut>, GraphError> {
    let group_name = names::fit(stack, "alb", names::limits::SECURITY_GROUP);
    g.insert(
        Node::new(
            "web/security-group/load-balancer",
            kinds.ec2.security_group.clone(),
        )
        .spec(net.vpc.ready(), move |vpc| {
            let mut ingress = BTreeSet::new();
            for cidr in ["0.0.0.0/0", "::/0"] {
                // 443 serves the app; 80 only answers with a redirect to 443.
                ingress.insert(IngressRule::tcp_from_cidr(443, cidr));
                ingress.insert(IngressRule::tcp_from_cidr(80, cidr));
            }
            SecurityGroupSpec {
                vpc_id: vpc.vpc_id,
                group_name: group_name.clone(),
                description: LOAD_BALANCER_GROUP_DESCRIPTION.into(),
                ingress,
            }
        }),
    )
}

/// The HTTP listener with its attaching rule, and the HTTPS listener. Returns the rule.
fn listeners(
    g: &mut Graph,
    kinds: &Kinds,
    load_balancer: &Ref<LoadBalancerOut>,
    target_group: &Ref<TargetGroupOut>,
    validation: &Ref<CertificateValidationOut>,
) -> Result<Ref<Value>, GraphError> {
    let k = &kinds.web.elbv2;
    let http: Ref<ListenerOut> = g.insert(
        Node::new("web/listener/http", k.listener.clone()).spec(load_balancer.exists(), |lb| {
            ListenerSpec {
                load_balancer_arn: lb.load_balancer_arn,
                protocol: "HTTP".into(),
                port: 80,
                ssl_policy: None,
                certificate_arn: None,
                default_action: ListenerAction::redirect_to_https(),
            }
        }),
    )?;
    // What attaches the target group to the load balancer before there is an HTTPS listener,
    // so the service can start while ACM validates; it never matches a request (see
    // UNREACHABLE_SOURCE), so plain HTTP never reaches the app.
    let attach_rule = g.insert(
        Node::new("web/listener/http/attach-rule", k.listener_rule.clone()).spec(
            (http.ready(), target_group.ready()),
            |(http, tg)| ListenerRuleSpec {
                listener_arn: http.listener_arn,
                priority: ATTACH_RULE_PRIORITY,
                conditions: vec![RuleConditionSpec::source_ip(&[UNREACHABLE_SOURCE])],
                action: ListenerAction::Forward {
                    target_group_arn: tg.target_group_arn,
                },
            },
        ),
    )?;
    g.add(Node::new("web/listener/https", k.listener.clone()).spec(
        (
            load_balancer.exists(),
            target_group.ready(),
            validation.ready(),
        ),
        |(lb, tg, cert)| ListenerSpec {
            load_balancer_arn: lb.load_balancer_arn,
            protocol: "HTTPS".into(),
            port: 443,
            ssl_policy: Some(SSL_POLICY.into()),
            certificate_arn: Some(cert.certificate_arn),
            default_action: ListenerAction::Forward {
                target_group_arn: tg.target_group_arn,
            },
        },
    ))?;
    Ok(attach_rule)
}
