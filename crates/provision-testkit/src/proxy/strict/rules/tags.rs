//! Tags, whichever service they are sent to. The common limits
//! (<https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html>, "Tag naming limits
//! and requirements"): at most 50 tags per resource; keys of 1 to 128 and values of 0 to 256
//! Unicode characters; the `aws:` prefix is reserved; letters, numbers, spaces and
//! `_.:/=+-@` only. EC2 alone accepts any character
//! (<https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_Tags.html>, "Tag restrictions").

use serde_json::Value;

use super::super::super::call::Protocol;
use super::super::request::Request;
use super::{Violation, bad, chars};

pub(super) fn check(req: &Request<'_>) -> Option<Violation> {
    for set in tag_sets(req) {
        if let Some(v) = check_set(req.signing_name(), &set) {
            return Some(v);
        }
    }
    None
}

/// The tag sets of a request, one per tagged resource.
fn tag_sets(req: &Request<'_>) -> Vec<Vec<(String, String)>> {
    match req.call.protocol {
        Protocol::Ec2Query | Protocol::AwsQuery => {
            // TagSpecification.N.Tag.M.Key (EC2), Tag.M.Key (EC2 CreateTags),
            // Tags.member.M.Key (IAM, ELBv2).
            let mut groups: Vec<(String, Vec<(String, String)>)> = Vec::new();
            for (key, tag_key) in
                req.params(|k| k.ends_with(".Key") && (k.starts_with("Tag") || k.contains(".Tag.")))
            {
                let prefix = &key[..key.len() - ".Key".len()];
                let group = prefix.rsplit_once('.').map_or("", |(g, _)| g).to_string();
                let value = req
                    .param(&format!("{prefix}.Value"))
                    .unwrap_or("")
                    .to_string();
                match groups.iter_mut().find(|(g, _)| *g == group) {
                    Some((_, tags)) => tags.push((tag_key.to_string(), value)),
                    None => groups.push((group, vec![(tag_key.to_string(), value)])),
                }
            }
            groups.into_iter().map(|(_, tags)| tags).collect()
        }
        _ => {
            let Some(json) = req.json.as_ref() else {
                return Vec::new();
            };
            ["Tags", "tags"]
                .iter()
                .filter_map(|k| json.get(*k))
                .map(json_tags)
                .collect()
        }
    }
}

/// `[{"Key": k, "Value": v}]` (ACM, ECR, SageMaker), `[{"key": k, "value": v}]` (ECS) or
/// `{k: v}` (Lambda, Logs).
fn json_tags(v: &Value) -> Vec<(String, String)> {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    match v {
        Value::Array(items) => items
            .iter()
            .map(|t| {
                (
                    s(t.get("Key").or_else(|| t.get("key"))),
                    s(t.get("Value").or_else(|| t.get("value"))),
                )
            })
            .collect(),
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), s(Some(v)))).collect(),
        _ => Vec::new(),
    }
}

fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

fn check_set(service: &str, tags: &[(String, String)]) -> Option<Violation> {
    let (invalid, too_many) = match service {
        "ec2" => ("InvalidParameterValue", "TagLimitExceeded"),
        "iam" => ("InvalidInput", "LimitExceeded"),
        "elasticloadbalancing" => ("ValidationError", "TooManyTags"),
        "acm" => ("InvalidTagException", "TooManyTagsException"),
        "ecs" | "logs" => ("InvalidParameterException", "InvalidParameterException"),
        "lambda" => (
            "InvalidParameterValueException",
            "InvalidParameterValueException",
        ),
        "ecr" => ("InvalidTagParameterException", "TooManyTagsException"),
        "sagemaker" => ("ValidationException", "ValidationException"),
        _ => return None,
    };
    if tags.len() > 50 {
        return bad(
            "tags.count",
            too_many,
            format!(
                "The number of tags ({}) exceeds the limit of 50 tags per resource.",
                tags.len()
            ),
        );
    }
    for (key, value) in tags {
        if key.is_empty() || chars(key) > 128 {
            return bad(
                "tags.key_length",
                invalid,
                format!("Tag key '{key}' must be between 1 and 128 characters long."),
            );
        }
        if chars(value) > 256 {
            return bad(
                "tags.value_length",
                invalid,
                format!("Tag value of '{key}' must be at most 256 characters long."),
            );
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return bad(
                "tags.aws_prefix",
                invalid,
                format!("Tag keys starting with 'aws:' are reserved for internal use: '{key}'."),
            );
        }
        if service != "ec2" && !(key.chars().all(tag_char) && value.chars().all(tag_char)) {
            return bad(
                "tags.characters",
                invalid,
                format!(
                    "Tag '{key}' = '{value}' has characters outside letters, numbers, spaces and _.:/=+-@."
                ),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{form, json, rule};

    #[test]
    fn tags_are_checked_in_every_wire_shape() {
        let ec2 = |k: &str, v: &str| {
            rule(form(
                "ec2",
                "CreateVpc",
                &[
                    ("TagSpecification.1.ResourceType", "vpc"),
                    ("TagSpecification.1.Tag.1.Key", k),
                    ("TagSpecification.1.Tag.1.Value", v),
                ],
            ))
        };
        assert_eq!(ec2("provision:stack", "streamlit-app-local"), None);
        // EC2 allows any character, the others do not.
        assert_eq!(ec2("Name", "it's"), None);
        assert_eq!(ec2("aws:cloudformation", "x"), Some("tags.aws_prefix"));
        assert_eq!(ec2(&"k".repeat(129), "x"), Some("tags.key_length"));
        assert_eq!(ec2("k", &"v".repeat(257)), Some("tags.value_length"));

        let iam = |k: &str, v: &str| {
            rule(form(
                "iam",
                "CreateRole",
                &[
                    ("RoleName", "r"),
                    ("Tags.member.1.Key", k),
                    ("Tags.member.1.Value", v),
                ],
            ))
        };
        assert_eq!(iam("provision:stack", "a"), None);
        assert_eq!(iam("Name", "it's"), Some("tags.characters"));

        let many: serde_json::Map<String, serde_json::Value> =
            (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            rule(json(
                "logs",
                "CreateLogGroup",
                json!({"logGroupName": "/a", "tags": many})
            )),
            Some("tags.count")
        );
        assert_eq!(
            rule(json(
                "ecs",
                "CreateCluster",
                json!({"clusterName": "c", "tags": [{"key": "aws:x", "value": "v"}]})
            )),
            Some("tags.aws_prefix")
        );
        assert_eq!(
            rule(json(
                "ecs",
                "CreateCluster",
                json!({"clusterName": "c", "tags": [{"key": "a", "value": "v"}]})
            )),
            None
        );
    }
}
