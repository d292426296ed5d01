//! Lambda's input rules (<https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html>,
//! `API_UpdateFunctionConfiguration.html`, `API_Environment.html`; reserved variables:
//! <https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime>;
//! quotas: <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>).

use serde_json::Value;

use super::super::super::call::percent_decode;
use super::super::request::Request;
use super::{Violation, bad, chars, constraint, max_len, number, pattern};

/// Variables Lambda sets itself and refuses to take from the caller.
const RESERVED: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// The function name of an `UpdateFunctionConfiguration` path.
fn name_in_path(path: &str) -> Option<String> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    segments.find(|s| *s == "functions")?;
    segments.next().map(percent_decode)
}

pub(super) fn check(req: &Request<'_>) -> Option<Violation> {
    let op = req.operation();
    if !matches!(op, "CreateFunction" | "UpdateFunctionConfiguration") {
        return None;
    }
    // FunctionName: a name of 1 to 64 of `[a-zA-Z0-9-_]` (ARN forms aside).
    let name = if op == "CreateFunction" {
        req.str("FunctionName").map(str::to_string)
    } else {
        name_in_path(req.path)
    }
    .unwrap_or_default();
    if !name.starts_with("arn:") && !name.contains(':') {
        if chars(&name) > 64 {
            return bad(
                "lambda.function_name",
                "ValidationException",
                constraint("functionName", &name, &max_len(64)),
            );
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(
                "lambda.function_name",
                "ValidationException",
                constraint(
                    "functionName",
                    &name,
                    &pattern(
                        "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
                    ),
                ),
            );
        }
    }
    // MemorySize: 128 to 10240 MB.
    if let Some(memory) = req.at("/MemorySize").and_then(number) {
        if memory < 128.0 {
            return bad(
                "lambda.memory_size",
                "ValidationException",
                constraint(
                    "memorySize",
                    &memory.to_string(),
                    "Member must have value greater than or equal to 128",
                ),
            );
        }
        if memory > 10240.0 {
            return bad(
                "lambda.memory_size",
                "ValidationException",
                constraint(
                    "memorySize",
                    &memory.to_string(),
                    "Member must have value less than or equal to 10240",
                ),
            );
        }
    }
    // Timeout: 1 to 900 seconds (the model says at least 1; the quota page says at most 900).
    if let Some(timeout) = req.at("/Timeout").and_then(number) {
        if timeout < 1.0 {
            return bad(
                "lambda.timeout",
                "ValidationException",
                constraint(
                    "timeout",
                    &timeout.to_string(),
                    "Member must have value greater than or equal to 1",
                ),
            );
        }
        if timeout > 900.0 {
            return bad(
                "lambda.timeout",
                "InvalidParameterValueException",
                format!(
                    "Value {timeout} for parameter Timeout is invalid. Timeout must be between 1 and 900 seconds."
                ),
            );
        }
    }
    // Description: at most 256 characters.
    if let Some(description) = req.str("Description")
        && chars(description) > 256
    {
        return bad(
            "lambda.description",
            "ValidationException",
            constraint("description", description, &max_len(256)),
        );
    }
    let variables = req.at("/Environment/Variables").and_then(Value::as_object);
    if let Some(variables) = variables {
        // Keys: `[a-zA-Z]([a-zA-Z0-9_])+` (API_Environment).
        if let Some(key) = variables.keys().find(|k| {
            let mut c = k.chars();
            !(k.len() >= 2
                && c.next().is_some_and(|c| c.is_ascii_alphabetic())
                && c.all(|c| c.is_ascii_alphanumeric() || c == '_'))
        }) {
            return bad(
                "lambda.environment_key",
                "ValidationException",
                constraint(
                    "environment.variables",
                    key,
                    &pattern("[a-zA-Z]([a-zA-Z0-9_])+"),
                ),
            );
        }
        let reserved: Vec<&str> = variables
            .keys()
            .map(String::as_str)
            .filter(|k| RESERVED.contains(k))
            .collect();
        if !reserved.is_empty() {
            // Lambda's own words.
            return bad(
                "lambda.environment_reserved",
                "InvalidParameterValueException",
                format!(
                    "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {}",
                    reserved.join(", ")
                ),
            );
        }
        // 4 KB for all variables, measured as their JSON (Lambda's message shows the string
        // it measured).
        let measured = Value::Object(variables.clone()).to_string();
        if measured.len() > 4096 {
            return bad(
                "lambda.environment_size",
                "InvalidParameterValueException",
                format!(
                    "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {measured}"
                ),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{json, rule};

    #[test]
    fn names_sizes_and_environment() {
        let create = |body: serde_json::Value| {
            let mut base = json!({
                "FunctionName": "streamlit-app-local-text-counterfactuals",
                "MemorySize": 1024,
                "Timeout": 9,
                "Environment": {"Variables": {"MLM_ENDPOINT_NAME": "sentiment-unmasking"}},
            });
            for (k, v) in body.as_object().unwrap() {
                base[k] = v.clone();
            }
            rule(json("lambda", "CreateFunction", base))
        };
        assert_eq!(create(json!({})), None);
        assert_eq!(
            create(json!({"FunctionName": "my.function"})),
            Some("lambda.function_name")
        );
        assert_eq!(
            create(json!({"FunctionName": "f".repeat(65)})),
            Some("lambda.function_name")
        );
        assert_eq!(
            create(json!({"MemorySize": 64})),
            Some("lambda.memory_size")
        );
        assert_eq!(
            create(json!({"MemorySize": 10241})),
            Some("lambda.memory_size")
        );
        assert_eq!(create(json!({"Timeout": 901})), Some("lambda.timeout"));
        assert_eq!(
            create(json!({"Description": "d".repeat(257)})),
            Some("lambda.description")
        );
        assert_eq!(
            create(json!({"Environment": {"Variables": {"AWS_REGION": "x"}}})),
            Some("lambda.environment_reserved")
        );
        assert_eq!(
            create(json!({"Environment": {"Variables": {"BIG": "v".repeat(4100)}}})),
            Some("lambda.environment_size")
        );
        assert_eq!(
            create(json!({"Environment": {"Variables": {"1X": "v"}}})),
            Some("lambda.environment_key")
        );
    }
}
