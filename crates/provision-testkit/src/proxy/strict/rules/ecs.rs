//! ECS's input rules (<https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CreateCluster.html>,
//! `API_CreateService.html`, `API_RegisterTaskDefinition.html`, `API_AwsVpcConfiguration.html`).

use serde_json::Value;

use super::super::request::Request;
use super::{Violation, bad, chars, number};

/// Clusters, services, task definition families and containers: "Up to 255 letters
/// (uppercase and lowercase), numbers, underscores, and hyphens are allowed."
fn ecs_name(rule: &'static str, what: &str, name: &str) -> Option<Violation> {
    let ok = !name.is_empty()
        && chars(name) <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        return None;
    }
    bad(
        rule,
        "InvalidParameterException",
        format!(
            "{what} name '{name}' is invalid: up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed."
        ),
    )
}

/// Fargate's task sizes (API_RegisterTaskDefinition, `cpu`): each CPU value with the memory
/// values it allows, in MiB.
fn fargate_allows(cpu: u32, memory: u32) -> bool {
    let steps = |from: u32, to: u32, step: u32| {
        memory >= from && memory <= to && (memory - from).is_multiple_of(step)
    };
    match cpu {
        256 => matches!(memory, 512 | 1024 | 2048),
        512 => steps(1024, 4096, 1024),
        1024 => steps(2048, 8192, 1024),
        2048 => steps(4096, 16384, 1024),
        4096 => steps(8192, 30720, 1024),
        8192 => steps(16384, 61440, 4096),
        16384 => steps(32768, 122880, 8192),
        _ => false,
    }
}

/// CPU units from `1024` or `1 vCPU`, memory MiB from `2048` or `2 GB`.
fn units(v: &Value, unit_word: &str) -> Option<u32> {
    if let Some(s) = v.as_str() {
        let lower = s.to_ascii_lowercase();
        if let Some(n) = lower.strip_suffix(unit_word) {
            return n
                .trim()
                .parse::<f64>()
                .ok()
                .map(|n| (n * 1024.0).round() as u32);
        }
    }
    number(v).map(|n| n as u32)
}

pub(super) fn check(req: &Request<'_>) -> Option<Violation> {
    match req.operation() {
        "CreateCluster" => ecs_name(
            "ecs.cluster_name",
            "Cluster",
            req.str("clusterName").unwrap_or("default"),
        ),
        "CreateService" => {
            if let Some(v) = ecs_name(
                "ecs.service_name",
                "Service",
                req.str("serviceName").unwrap_or(""),
            ) {
                return Some(v);
            }
            // clientToken: "Up to 36 ASCII characters in the range of 33-126 (inclusive)".
            if let Some(token) = req.str("clientToken")
                && (chars(token) > 36 || !token.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c)))
            {
                return bad(
                    "ecs.client_token",
                    "InvalidParameterException",
                    format!(
                        "clientToken '{token}' is invalid: up to 36 ASCII characters in the range of 33-126 are allowed."
                    ),
                );
            }
            // awsvpcConfiguration: up to 16 subnets and 5 security groups.
            let vpc = req.at("/networkConfiguration/awsvpcConfiguration");
            let count = |k: &str| {
                vpc.and_then(|v| v.get(k))
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            };
            if count("subnets") > 16 || count("securityGroups") > 5 {
                return bad(
                    "ecs.network_configuration",
                    "InvalidParameterException",
                    "awsvpcConfiguration allows up to 16 subnets and 5 security groups.".into(),
                );
            }
            None
        }
        "RegisterTaskDefinition" => {
            if let Some(v) = ecs_name("ecs.family", "Family", req.str("family").unwrap_or("")) {
                return Some(v);
            }
            let containers = req.at("/containerDefinitions").and_then(Value::as_array);
            for container in containers.into_iter().flatten() {
                let name = container.get("name").and_then(Value::as_str).unwrap_or("");
                if let Some(v) = ecs_name("ecs.container_name", "Container", name) {
                    return Some(v);
                }
            }
            let fargate = req
                .at("/requiresCompatibilities")
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().any(|v| v.as_str() == Some("FARGATE")));
            if fargate {
                let cpu = req.at("/cpu").and_then(|v| units(v, "vcpu"));
                let memory = req.at("/memory").and_then(|v| units(v, "gb"));
                let shown = |v: Option<u32>| v.map_or("no".to_string(), |n| n.to_string());
                if !matches!((cpu, memory), (Some(c), Some(m)) if fargate_allows(c, m)) {
                    // ECS's own message for a size Fargate does not offer.
                    return bad(
                        "ecs.fargate_task_size",
                        "ClientException",
                        format!(
                            "No Fargate configuration exists for given values: {} CPU, {} memory. See the Amazon ECS documentation for the valid values.",
                            shown(cpu),
                            shown(memory)
                        ),
                    );
                }
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{json, rule};

    #[test]
    fn fargate_sizes_names_and_tokens() {
        let register = |cpu: &str, memory: &str, container: &str| {
            rule(json(
                "ecs",
                "RegisterTaskDefinition",
                json!({
                    "family": "streamlit-app-local-app",
                    "requiresCompatibilities": ["FARGATE"],
                    "cpu": cpu,
                    "memory": memory,
                    "containerDefinitions": [{"name": container, "image": "x"}],
                }),
            ))
        };
        assert_eq!(register("512", "1024", "app"), None);
        assert_eq!(register("1 vCPU", "3 GB", "app"), None);
        assert_eq!(register("512", "512", "app"), Some("ecs.fargate_task_size"));
        assert_eq!(
            register("8192", "18432", "app"),
            Some("ecs.fargate_task_size")
        );
        assert_eq!(
            register("512", "1024", "app.main"),
            Some("ecs.container_name")
        );
        assert_eq!(
            rule(json(
                "ecs",
                "CreateCluster",
                json!({"clusterName": "a cluster"})
            )),
            Some("ecs.cluster_name")
        );
        let service = |token: &str| {
            rule(json(
                "ecs",
                "CreateService",
                json!({"serviceName": "app", "clientToken": token}),
            ))
        };
        assert_eq!(service(&"t".repeat(36)), None);
        assert_eq!(service(&"t".repeat(37)), Some("ecs.client_token"));
    }
}
