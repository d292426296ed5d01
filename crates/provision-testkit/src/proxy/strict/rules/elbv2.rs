//! Elastic Load Balancing v2's input rules
//! (<https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html>,
//! `API_CreateTargetGroup.html`, `API_CreateRule.html`, `API_SetIpAddressType.html`,
//! `API_TargetGroupAttribute.html`).

use super::super::request::Request;
use super::{Known, Violation, bad, chars, hyphenated};

pub(super) fn check(req: &Request<'_>, known: &Known<'_>) -> Option<Violation> {
    match req.operation() {
        "CreateLoadBalancer" => {
            let name = req.param("Name").unwrap_or("");
            // "A maximum of 32 characters, alphanumeric characters or hyphens, must not begin
            // or end with a hyphen, and must not begin with "internal-"."
            if let Some(v) = elb_name("elbv2.load_balancer_name", "Load balancer", name) {
                return Some(v);
            }
            if name.starts_with("internal-") {
                return bad(
                    "elbv2.load_balancer_name",
                    "ValidationError",
                    format!("Load balancer name '{name}' cannot begin with 'internal-'"),
                );
            }
            let subnets: Vec<&str> = req
                .params(|k| {
                    k.starts_with("Subnets.member.")
                        || (k.starts_with("SubnetMappings.member.") && k.ends_with(".SubnetId"))
                })
                .map(|(_, v)| v)
                .collect();
            // An Application Load Balancer needs subnets from at least two Availability Zones.
            let application = req.param("Type").is_none_or(|t| t == "application");
            if application && subnets.len() < 2 {
                return bad(
                    "elbv2.load_balancer_subnets",
                    "ValidationError",
                    "At least two subnets in two different Availability Zones must be specified"
                        .into(),
                );
            }
            ip_address_type(req.param("IpAddressType"), &subnets, known)
        }
        "SetIpAddressType" => ip_address_type(req.param("IpAddressType"), &[], known),
        "CreateTargetGroup" => {
            let name = req.param("Name").unwrap_or("");
            if let Some(v) = elb_name("elbv2.target_group_name", "Target group", name) {
                return Some(v);
            }
            let ranges: [(&str, u32, u32); 5] = [
                ("HealthCheckIntervalSeconds", 5, 300),
                ("HealthCheckTimeoutSeconds", 2, 120),
                ("HealthyThresholdCount", 2, 10),
                ("UnhealthyThresholdCount", 2, 10),
                ("Port", 1, 65535),
            ];
            for (key, low, high) in ranges {
                if let Some(v) = req.param(key)
                    && !v.parse::<u32>().is_ok_and(|n| (low..=high).contains(&n))
                {
                    return bad(
                        "elbv2.target_group_settings",
                        "ValidationError",
                        format!("{key} must be between {low} and {high}, not {v}"),
                    );
                }
            }
            if let Some(path) = req.param("HealthCheckPath")
                && (!path.starts_with('/') || chars(path) > 1024)
            {
                return bad(
                    "elbv2.target_group_settings",
                    "ValidationError",
                    format!(
                        "Health check path '{path}' must begin with a '/' character and be at most 1024 characters"
                    ),
                );
            }
            None
        }
        "CreateRule" | "SetRulePriorities" => {
            // Priorities 1 to 50000 (API_CreateRule).
            for (_, p) in req.params(|k| k == "Priority" || k.ends_with(".Priority")) {
                if !p.parse::<u32>().is_ok_and(|n| (1..=50000).contains(&n)) {
                    return bad(
                        "elbv2.rule_priority",
                        "ValidationError",
                        format!("Priority '{p}' must be between 1 and 50000"),
                    );
                }
            }
            None
        }
        "ModifyTargetGroupAttributes" => {
            // deregistration_delay.timeout_seconds: 0-3600 (API_TargetGroupAttribute).
            for (key, value) in req.params(|k| k.ends_with(".Key")) {
                if value != "deregistration_delay.timeout_seconds" {
                    continue;
                }
                let prefix = &key[..key.len() - ".Key".len()];
                let seconds = req.param(&format!("{prefix}.Value")).unwrap_or("");
                if !seconds.parse::<u32>().is_ok_and(|n| n <= 3600) {
                    return bad(
                        "elbv2.target_group_settings",
                        "ValidationError",
                        format!(
                            "The value of 'deregistration_delay.timeout_seconds' must be between 0 and 3600, not '{seconds}'"
                        ),
                    );
                }
            }
            None
        }
        _ => None,
    }
}

fn elb_name(rule: &'static str, what: &str, name: &str) -> Option<Violation> {
    if chars(name) > 32 {
        return bad(
            rule,
            "ValidationError",
            format!("{what} name '{name}' cannot be longer than '32' characters"),
        );
    }
    if !hyphenated(name) {
        return bad(
            rule,
            "ValidationError",
            format!(
                "{what} name '{name}' can contain only alphanumeric characters and hyphens, and cannot begin or end with a hyphen"
            ),
        );
    }
    None
}

/// `ipv4`, `dualstack` or `dualstack-without-public-ipv4`; dual-stack needs every subnet to
/// have an IPv6 CIDR block (checked for the subnets the proxy saw created).
fn ip_address_type(kind: Option<&str>, subnets: &[&str], known: &Known<'_>) -> Option<Violation> {
    let kind = kind?;
    if !matches!(kind, "ipv4" | "dualstack" | "dualstack-without-public-ipv4") {
        return bad(
            "elbv2.ip_address_type",
            "ValidationError",
            format!(
                "1 validation error detected: Value '{kind}' at 'ipAddressType' failed to satisfy constraint: Member must satisfy enum value set: [ipv4, dualstack, dualstack-without-public-ipv4]"
            ),
        );
    }
    if kind.starts_with("dualstack")
        && let Some(ipv4) = known.ipv4_subnets
        && let Some(subnet) = subnets.iter().find(|s| ipv4.contains(**s))
    {
        return bad(
            "elbv2.ip_address_type",
            "InvalidConfigurationRequest",
            format!(
                "Subnet '{subnet}' does not have an IPv6 CIDR block; a dualstack load balancer needs one in every subnet"
            ),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::super::request::Request;
    use super::super::Known;
    use super::super::testing::{call, form, rule};

    #[test]
    fn dualstack_needs_ipv6_subnets() {
        let ipv4: HashSet<String> = HashSet::from(["subnet-4".to_string()]);
        let known = Known {
            ipv4_subnets: Some(&ipv4),
            ..Known::default()
        };
        let create = call("elasticloadbalancing", "CreateLoadBalancer");
        let check = |kind: &str, subnet: &str| {
            let form: Vec<(String, String)> = [
                ("Name", "alb"),
                ("IpAddressType", kind),
                ("Subnets.member.1", subnet),
                ("Subnets.member.2", "subnet-6"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            super::check(&Request::new(&create, &form, b"", "/"), &known).map(|v| v.rule)
        };
        assert_eq!(check("ipv4", "subnet-4"), None);
        assert_eq!(check("dualstack", "subnet-6b"), None);
        assert_eq!(
            check("dualstack", "subnet-4"),
            Some("elbv2.ip_address_type")
        );
        assert_eq!(check("ipv6", "subnet-6b"), Some("elbv2.ip_address_type"));
    }

    #[test]
    fn load_balancer_and_target_group_names() {
        let lb = |name: &str| {
            rule(form(
                "elasticloadbalancing",
                "CreateLoadBalancer",
                &[
                    ("Name", name),
                    ("Subnets.member.1", "subnet-1"),
                    ("Subnets.member.2", "subnet-2"),
                ],
            ))
        };
        assert_eq!(lb("streamlit-app-local-alb"), None);
        assert_eq!(lb(&"a".repeat(33)), Some("elbv2.load_balancer_name"));
        assert_eq!(lb("-alb"), Some("elbv2.load_balancer_name"));
        assert_eq!(lb("app_alb"), Some("elbv2.load_balancer_name"));
        assert_eq!(lb("internal-alb"), Some("elbv2.load_balancer_name"));
        assert_eq!(
            rule(form(
                "elasticloadbalancing",
                "CreateLoadBalancer",
                &[("Name", "a"), ("Subnets.member.1", "subnet-1")]
            )),
            Some("elbv2.load_balancer_subnets")
        );
        let tg = |name: &str, path: &str| {
            rule(form(
                "elasticloadbalancing",
                "CreateTargetGroup",
                &[("Name", name), ("Port", "8501"), ("HealthCheckPath", path)],
            ))
        };
        assert_eq!(tg("streamlit-app-local-app", "/_stcore/health"), None);
        assert_eq!(tg("app-", "/"), Some("elbv2.target_group_name"));
        assert_eq!(tg("app", "health"), Some("elbv2.target_group_settings"));
        assert_eq!(
            rule(form(
                "elasticloadbalancing",
                "CreateRule",
                &[("Priority", "0")]
            )),
            Some("elbv2.rule_priority")
        );
    }
}
