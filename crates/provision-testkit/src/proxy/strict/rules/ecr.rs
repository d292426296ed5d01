//! ECR's input rules (<https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_CreateRepository.html>,
//! `API_PutImage.html`, `API_PutLifecyclePolicy.html`, `API_SetRepositoryPolicy.html`). ECR writes
//! its validation errors in its own style (`Invalid parameter at '...' failed to satisfy
//! constraint: '...'`).

use super::super::request::Request;
use super::{Violation, bad, chars};

const REPOSITORY_PATTERN: &str = "(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*";

/// `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`, 2 to 256 characters.
fn repository_name(name: &str) -> bool {
    let component = |c: &str| {
        // [a-z0-9]+ separated by single [._-]
        !c.is_empty()
            && c.split(['.', '_', '-']).all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            })
    };
    (2..=256).contains(&chars(name)) && name.split('/').all(component)
}

/// An image tag: 1 to 300 characters (API_PutImage), in the OCI distribution spec's
/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn image_tag(tag: &str) -> bool {
    let mut cs = tag.chars();
    chars(tag) <= 128
        && cs
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn invalid(rule: &'static str, field: &str, constraint: &str) -> Option<Violation> {
    bad(
        rule,
        "InvalidParameterException",
        format!("Invalid parameter at '{field}' failed to satisfy constraint: '{constraint}'"),
    )
}

pub(super) fn check(req: &Request<'_>) -> Option<Violation> {
    if let Some(name) = req.str("repositoryName")
        && !repository_name(name)
    {
        return invalid(
            "ecr.repository_name",
            "repositoryName",
            &format!("must satisfy regular expression '{REPOSITORY_PATTERN}'"),
        );
    }
    match req.operation() {
        "PutImage" => {
            if let Some(tag) = req.str("imageTag")
                && !image_tag(tag)
            {
                return invalid(
                    "ecr.image_tag",
                    "imageTag",
                    "must be 1 to 128 of [a-zA-Z0-9_.-], not starting with '.' or '-'",
                );
            }
            None
        }
        "PutImageTagMutability" | "CreateRepository" => {
            if let Some(m) = req.str("imageTagMutability")
                && !matches!(
                    m,
                    "MUTABLE" | "IMMUTABLE" | "MUTABLE_WITH_EXCLUSION" | "IMMUTABLE_WITH_EXCLUSION"
                )
            {
                return invalid(
                    "ecr.image_tag_mutability",
                    "imageTagMutability",
                    "must be one of MUTABLE, IMMUTABLE",
                );
            }
            None
        }
        "PutLifecyclePolicy" => {
            let text = req.str("lifecyclePolicyText").unwrap_or("");
            if !(100..=30720).contains(&chars(text)) {
                return invalid(
                    "ecr.lifecycle_policy",
                    "lifecyclePolicyText",
                    "Member must have length between 100 and 30720",
                );
            }
            None
        }
        "SetRepositoryPolicy" => {
            let text = req.str("policyText").unwrap_or("");
            if chars(text) > 10240 {
                return invalid(
                    "ecr.repository_policy",
                    "policyText",
                    "Member must have length less than or equal to 10240",
                );
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
    fn repository_names_and_tags() {
        let create = |name: &str| {
            rule(json(
                "ecr",
                "CreateRepository",
                json!({"repositoryName": name}),
            ))
        };
        assert_eq!(create("streamlit-app-local/app"), None);
        assert_eq!(create("Streamlit"), Some("ecr.repository_name"));
        assert_eq!(create("app--x"), Some("ecr.repository_name"));
        assert_eq!(create("a"), Some("ecr.repository_name"));
        let put = |tag: &str| {
            rule(json(
                "ecr",
                "PutImage",
                json!({"repositoryName": "app", "imageTag": tag, "imageManifest": "{}"}),
            ))
        };
        assert_eq!(put("sha-1a2b3c"), None);
        assert_eq!(put("-latest"), Some("ecr.image_tag"));
        assert_eq!(put("v1+build"), Some("ecr.image_tag"));
    }
}
