//! SageMaker's input rules (<https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateModel.html>,
//! `API_ContainerDefinition.html`, `API_CreateEndpointConfig.html`, `API_ProductionVariant.html`,
//! `API_ProductionVariantServerlessConfig.html`, `API_CreateEndpoint.html`).

use serde_json::Value;

use super::super::request::Request;
use super::{Violation, bad, chars, constraint, hyphenated, max_len, number, pattern};

const NAME_PATTERN: &str = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}";

/// Model, endpoint configuration, endpoint and variant names: `^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`.
fn name(rule: &'static str, field: &str, value: &str) -> Option<Violation> {
    if chars(value) > 63 {
        return bad(
            rule,
            "ValidationException",
            constraint(field, value, &max_len(63)),
        );
    }
    if !hyphenated(value) {
        return bad(
            rule,
            "ValidationException",
            constraint(field, value, &pattern(NAME_PATTERN)),
        );
    }
    None
}

fn container(c: &Value, field: &str) -> Option<Violation> {
    let s = |k: &str| c.get(k).and_then(Value::as_str);
    // Image: `[\S]+`, at most 255.
    if let Some(image) = s("Image")
        && (chars(image) > 255 || image.is_empty() || image.chars().any(char::is_whitespace))
    {
        return bad(
            "sagemaker.image",
            "ValidationException",
            constraint(&format!("{field}.image"), image, &pattern("[\\S]+")),
        );
    }
    // ModelDataUrl: `^(https|s3)://([^/]+)/?(.*)$`, at most 1024.
    if let Some(url) = s("ModelDataUrl") {
        let rest = url
            .strip_prefix("s3://")
            .or_else(|| url.strip_prefix("https://"));
        let host_ok = rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'));
        if chars(url) > 1024 || !host_ok {
            return bad(
                "sagemaker.model_data_url",
                "ValidationException",
                constraint(
                    &format!("{field}.modelDataUrl"),
                    url,
                    &pattern("^(https|s3)://([^/]+)/?(.*)$"),
                ),
            );
        }
    }
    // Environment: at most 100 entries; keys `[a-zA-Z_][a-zA-Z0-9_]*` of at most 1024, values of
    // at most 1024.
    if let Some(env) = c.get("Environment").and_then(Value::as_object) {
        if env.len() > 100 {
            return bad(
                "sagemaker.environment",
                "ValidationException",
                constraint(
                    &format!("{field}.environment"),
                    &env.len().to_string(),
                    "Member must have length less than or equal to 100",
                ),
            );
        }
        for (key, value) in env {
            let mut cs = key.chars();
            let key_ok = chars(key) <= 1024
                && cs
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && cs.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !key_ok {
                return bad(
                    "sagemaker.environment",
                    "ValidationException",
                    constraint(
                        &format!("{field}.environment"),
                        key,
                        &pattern("[a-zA-Z_][a-zA-Z0-9_]*"),
                    ),
                );
            }
            let value = value.as_str().unwrap_or("");
            if chars(value) > 1024 {
                return bad(
                    "sagemaker.environment",
                    "ValidationException",
                    constraint(&format!("{field}.environment.{key}"), value, &max_len(1024)),
                );
            }
        }
    }
    None
}

fn role_arn(arn: &str) -> bool {
    // `^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$`, 20 to 2048.
    let Some(rest) = arn.strip_prefix("arn:aws") else {
        return false;
    };
    let Some((partition, rest)) = rest.split_once(":iam::") else {
        return false;
    };
    let Some((account, role)) = rest.split_once(":role") else {
        return false;
    };
    let role = role.strip_prefix('/').unwrap_or(role);
    (20..=2048).contains(&chars(arn))
        && partition
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-')
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && !role.is_empty()
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-/".contains(c))
}

pub(super) fn check(req: &Request<'_>) -> Option<Violation> {
    let s = |k: &str| req.str(k).unwrap_or("");
    match req.operation() {
        "CreateModel" => {
            if let Some(v) = name("sagemaker.model_name", "modelName", s("ModelName")) {
                return Some(v);
            }
            let role = s("ExecutionRoleArn");
            if !role.is_empty() && !role_arn(role) {
                return bad(
                    "sagemaker.execution_role_arn",
                    "ValidationException",
                    constraint(
                        "executionRoleArn",
                        role,
                        &pattern("^arn:aws[a-z\\-]*:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+$"),
                    ),
                );
            }
            if let Some(primary) = req.at("/PrimaryContainer")
                && let Some(v) = container(primary, "primaryContainer")
            {
                return Some(v);
            }
            for (i, c) in req
                .at("/Containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if let Some(v) = container(c, &format!("containers.{}", i + 1)) {
                    return Some(v);
                }
            }
            None
        }
        "CreateEndpointConfig" => {
            if let Some(v) = name(
                "sagemaker.endpoint_config_name",
                "endpointConfigName",
                s("EndpointConfigName"),
            ) {
                return Some(v);
            }
            for (i, variant) in req
                .at("/ProductionVariants")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let field = format!("productionVariants.{}", i + 1);
                let text = |k: &str| variant.get(k).and_then(Value::as_str).unwrap_or("");
                if let Some(v) = name(
                    "sagemaker.variant_name",
                    &format!("{field}.variantName"),
                    text("VariantName"),
                ) {
                    return Some(v);
                }
                if let Some(v) = name(
                    "sagemaker.model_name",
                    &format!("{field}.modelName"),
                    text("ModelName"),
                ) {
                    return Some(v);
                }
                let Some(serverless) = variant.get("ServerlessConfig") else {
                    continue;
                };
                // MemorySizeInMB: 1024 to 6144 in steps of 1024; MaxConcurrency: 1 to 200.
                let memory = serverless
                    .get("MemorySizeInMB")
                    .and_then(number)
                    .unwrap_or(0.0);
                if !(1024.0..=6144.0).contains(&memory) || memory % 1024.0 != 0.0 {
                    return bad(
                        "sagemaker.serverless_memory",
                        "ValidationException",
                        constraint(
                            &format!("{field}.serverlessConfig.memorySizeInMB"),
                            &memory.to_string(),
                            "Member must be one of 1024, 2048, 3072, 4096, 5120, 6144",
                        ),
                    );
                }
                let concurrency = serverless
                    .get("MaxConcurrency")
                    .and_then(number)
                    .unwrap_or(0.0);
                if !(1.0..=200.0).contains(&concurrency) {
                    return bad(
                        "sagemaker.serverless_concurrency",
                        "ValidationException",
                        constraint(
                            &format!("{field}.serverlessConfig.maxConcurrency"),
                            &concurrency.to_string(),
                            "Member must have value between 1 and 200",
                        ),
                    );
                }
                if let Some(provisioned) = serverless.get("ProvisionedConcurrency").and_then(number)
                    && !(provisioned >= 1.0 && provisioned <= concurrency)
                {
                    return bad(
                        "sagemaker.serverless_concurrency",
                        "ValidationException",
                        format!(
                            "ProvisionedConcurrency ({provisioned}) must be between 1 and MaxConcurrency ({concurrency})."
                        ),
                    );
                }
            }
            None
        }
        "CreateEndpoint" | "UpdateEndpoint" => {
            name("sagemaker.endpoint_name", "endpointName", s("EndpointName")).or_else(|| {
                name(
                    "sagemaker.endpoint_config_name",
                    "endpointConfigName",
                    s("EndpointConfigName"),
                )
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{json, rule};

    const ROLE: &str = "arn:aws:iam::123456789012:role/streamlit-app-local-sagemaker-role";

    #[test]
    fn names_containers_and_serverless_settings() {
        let model = |name: &str, url: &str, env_key: &str| {
            rule(json(
                "sagemaker",
                "CreateModel",
                json!({
                    "ModelName": name,
                    "ExecutionRoleArn": ROLE,
                    "PrimaryContainer": {"Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/x:1", "ModelDataUrl": url, "Environment": {env_key: "v"}},
                }),
            ))
        };
        assert_eq!(
            model(
                "sentiment-unmasking-1",
                "s3://bucket/model.tar.gz",
                "HF_TASK"
            ),
            None
        );
        assert_eq!(
            model("sentiment_unmasking", "s3://bucket/m", "HF_TASK"),
            Some("sagemaker.model_name")
        );
        assert_eq!(
            model(&"m".repeat(64), "s3://bucket/m", "HF_TASK"),
            Some("sagemaker.model_name")
        );
        assert_eq!(
            model("m", "bucket/model.tar.gz", "HF_TASK"),
            Some("sagemaker.model_data_url")
        );
        assert_eq!(
            model("m", "s3://bucket/m", "HF-TASK"),
            Some("sagemaker.environment")
        );

        let config = |memory: u32, concurrency: u32| {
            rule(json(
                "sagemaker",
                "CreateEndpointConfig",
                json!({
                    "EndpointConfigName": "sentiment-unmasking-1",
                    "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m", "ServerlessConfig": {"MemorySizeInMB": memory, "MaxConcurrency": concurrency}}],
                }),
            ))
        };
        assert_eq!(config(3072, 1), None);
        assert_eq!(config(3000, 1), Some("sagemaker.serverless_memory"));
        assert_eq!(config(8192, 1), Some("sagemaker.serverless_memory"));
        assert_eq!(config(1024, 201), Some("sagemaker.serverless_concurrency"));
        assert_eq!(
            rule(json(
                "sagemaker",
                "CreateEndpoint",
                json!({"EndpointName": "-x", "EndpointConfigName": "c"})
            )),
            Some("sagemaker.endpoint_name")
        );
    }
}
