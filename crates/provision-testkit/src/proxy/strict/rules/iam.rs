//! IAM's input rules (<https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html>,
//! `API_PutRolePolicy.html`, `API_UpdateRole.html`) and quotas
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html>).

use http::StatusCode;

use super::super::request::Request;
use super::{Violation, bad, chars, constraint, max_len, pattern, refuse};

/// `[\w+=,.@-]+`: role and policy names.
fn name_char(c: char) -> bool {
    super::word(c) || "+=,.@-".contains(c)
}

/// Role descriptions: `[\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*`, at most 1000.
fn description_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{7E}' | '\u{A1}'..='\u{FF}')
}

/// Policy sizes count every character but white space (IAM quotas: "IAM doesn't count white
/// space when calculating the size of a policy against these limits").
fn policy_size(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

pub(super) fn check(req: &Request<'_>) -> Option<Violation> {
    if let Some(role) = req.param("RoleName") {
        if chars(role) > 64 {
            return bad(
                "iam.role_name",
                "ValidationError",
                constraint("roleName", role, &max_len(64)),
            );
        }
        if role.is_empty() || !role.chars().all(name_char) {
            return bad(
                "iam.role_name",
                "ValidationError",
                constraint("roleName", role, &pattern("[\\w+=,.@-]+")),
            );
        }
    }
    if let Some(policy) = req.param("PolicyName") {
        if chars(policy) > 128 {
            return bad(
                "iam.policy_name",
                "ValidationError",
                constraint("policyName", policy, &max_len(128)),
            );
        }
        if policy.is_empty() || !policy.chars().all(name_char) {
            return bad(
                "iam.policy_name",
                "ValidationError",
                constraint("policyName", policy, &pattern("[\\w+=,.@-]+")),
            );
        }
    }
    if matches!(req.operation(), "CreateRole" | "UpdateRole")
        && let Some(description) = req.param("Description")
    {
        if chars(description) > 1000 {
            return bad(
                "iam.role_description",
                "ValidationError",
                constraint("description", description, &max_len(1000)),
            );
        }
        if !description.chars().all(description_char) {
            return bad(
                "iam.role_description",
                "ValidationError",
                constraint(
                    "description",
                    description,
                    &pattern("[\\u0009\\u000A\\u000D\\u0020-\\u007E\\u00A1-\\u00FF]*"),
                ),
            );
        }
    }
    // MaxSessionDuration: 3600 to 43200 seconds (API_CreateRole).
    if let Some(duration) = req.param("MaxSessionDuration")
        && !duration
            .parse::<u32>()
            .is_ok_and(|d| (3600..=43200).contains(&d))
    {
        return bad(
            "iam.max_session_duration",
            "ValidationError",
            constraint(
                "maxSessionDuration",
                duration,
                "Member must have value between 3600 and 43200",
            ),
        );
    }
    let role = req.param("RoleName").unwrap_or("");
    // Role trust policy: 2,048 characters by default (quotas, "Role trust policy length").
    let trust = match req.operation() {
        "CreateRole" => req.param("AssumeRolePolicyDocument"),
        "UpdateAssumeRolePolicy" => req.param("PolicyDocument"),
        _ => None,
    };
    if let Some(trust) = trust
        && policy_size(trust) > 2048
    {
        return refuse(
            "iam.trust_policy_size",
            StatusCode::CONFLICT,
            "LimitExceeded",
            "Cannot exceed quota for ACLSizePerRole: 2048".into(),
        );
    }
    // Inline role policies: 10,240 characters (quotas, "Role policy size").
    if req.operation() == "PutRolePolicy"
        && let Some(document) = req.param("PolicyDocument")
        && policy_size(document) > 10240
    {
        return refuse(
            "iam.inline_policy_size",
            StatusCode::CONFLICT,
            "LimitExceeded",
            format!("Maximum policy size of 10240 bytes exceeded for role {role}"),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::testing::{form, rule};

    #[test]
    fn role_names_descriptions_and_policies() {
        let role = |name: &str, description: &str| {
            rule(form(
                "iam",
                "CreateRole",
                &[
                    ("RoleName", name),
                    ("Description", description),
                    ("AssumeRolePolicyDocument", "{}"),
                ],
            ))
        };
        assert_eq!(
            role("streamlit-app-local-app-task-role", "The app's task role"),
            None
        );
        assert_eq!(role(&"r".repeat(65), "d"), Some("iam.role_name"));
        assert_eq!(role("app role", "d"), Some("iam.role_name"));
        assert_eq!(role("r", &"d".repeat(1001)), Some("iam.role_description"));
        assert_eq!(role("r", "arrow →"), Some("iam.role_description"));

        let trust = format!("{{\"Statement\": \"{}\"}}", "x".repeat(2100));
        assert_eq!(
            rule(form(
                "iam",
                "CreateRole",
                &[("RoleName", "r"), ("AssumeRolePolicyDocument", &trust)]
            )),
            Some("iam.trust_policy_size")
        );
        let put = |name: &str, size: usize| {
            let doc = format!("{{\"Statement\": \"{}\"}}", "x".repeat(size));
            rule(form(
                "iam",
                "PutRolePolicy",
                &[
                    ("RoleName", "r"),
                    ("PolicyName", name),
                    ("PolicyDocument", &doc),
                ],
            ))
        };
        assert_eq!(put("invoke-endpoints", 100), None);
        assert_eq!(put("invoke endpoints", 100), Some("iam.policy_name"));
        assert_eq!(put("p", 10300), Some("iam.inline_policy_size"));
    }
}
