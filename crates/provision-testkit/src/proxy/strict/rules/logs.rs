//! CloudWatch Logs' input rules (<https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html>,
//! `API_PutRetentionPolicy.html`).

use super::super::request::Request;
use super::{Violation, bad, chars, constraint, max_len, number, pattern};

/// The retention periods Logs accepts, in days (API_PutRetentionPolicy).
const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

pub(super) fn check(req: &Request<'_>) -> Option<Violation> {
    // logGroupName: 1 to 512 of `[\.\-_/#A-Za-z0-9]+`.
    if let Some(name) = req.str("logGroupName") {
        if chars(name) > 512 {
            return bad(
                "logs.log_group_name",
                "InvalidParameterException",
                constraint("logGroupName", name, &max_len(512)),
            );
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/#".contains(c))
        {
            return bad(
                "logs.log_group_name",
                "InvalidParameterException",
                constraint("logGroupName", name, &pattern("[\\.\\-_/#A-Za-z0-9]+")),
            );
        }
    }
    if req.operation() == "PutRetentionPolicy" {
        let days = req.at("/retentionInDays").and_then(number).unwrap_or(0.0);
        if days.fract() != 0.0 || !RETENTION_DAYS.contains(&(days as u32)) {
            let allowed: Vec<String> = RETENTION_DAYS.iter().map(u32::to_string).collect();
            return bad(
                "logs.retention_in_days",
                "InvalidParameterException",
                constraint(
                    "retentionInDays",
                    &days.to_string(),
                    &format!(
                        "Member must satisfy enum value set: [{}]",
                        allowed.join(", ")
                    ),
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
    fn group_names_and_retention() {
        let create = |name: &str| {
            rule(json(
                "logs",
                "CreateLogGroup",
                json!({"logGroupName": name}),
            ))
        };
        assert_eq!(create("/ecs/streamlit-app-local/app"), None);
        assert_eq!(create("/ecs/app:main"), Some("logs.log_group_name"));
        let retain = |days: u32| {
            rule(json(
                "logs",
                "PutRetentionPolicy",
                json!({"logGroupName": "/a", "retentionInDays": days}),
            ))
        };
        assert_eq!(retain(30), None);
        assert_eq!(retain(31), Some("logs.retention_in_days"));
    }
}
