//! ACM's input rules (<https://docs.aws.amazon.com/acm/latest/APIReference/API_RequestCertificate.html>).

use serde_json::Value;

use super::super::request::Request;
use super::{Violation, bad, chars, constraint, max_len, pattern, word};

/// The `IdempotencyToken` of a `RequestCertificate`.
pub(crate) fn idempotency_token<'r>(req: &'r Request<'_>) -> Option<&'r str> {
    (req.signing_name() == "acm" && req.operation() == "RequestCertificate")
        .then(|| req.str("IdempotencyToken"))
        .flatten()
}

/// A DNS name as ACM accepts it: `(\*\.)?(((?!-)[A-Za-z0-9-]{0,62}[A-Za-z0-9])\.)+((?!-)[A-Za-z0-9-]{1,62}[A-Za-z0-9])`,
/// 1 to 253 characters.
fn domain_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    let labels: Vec<&str> = name.split('.').collect();
    chars(name) <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

pub(super) fn check(req: &Request<'_>) -> Option<Violation> {
    if req.operation() != "RequestCertificate" {
        return None;
    }
    // IdempotencyToken: "Length Constraints: Minimum length of 1. Maximum length of 32.
    // Pattern: \w+".
    if let Some(token) = idempotency_token(req) {
        if chars(token) > 32 {
            return bad(
                "acm.idempotency_token",
                "ValidationException",
                constraint("idempotencyToken", token, &max_len(32)),
            );
        }
        if token.is_empty() || !token.chars().all(word) {
            return bad(
                "acm.idempotency_token",
                "ValidationException",
                constraint("idempotencyToken", token, &pattern("\\w+")),
            );
        }
    }
    let domain = req.str("DomainName").unwrap_or("");
    if !domain_name(domain) {
        return bad(
            "acm.domain_name",
            "ValidationException",
            constraint(
                "domainName",
                domain,
                &pattern(
                    "^(\\*\\.)?(((?!-)[A-Za-z0-9-]{0,62}[A-Za-z0-9])\\.)+((?!-)[A-Za-z0-9-]{1,62}[A-Za-z0-9])$",
                ),
            ),
        );
    }
    // SubjectAlternativeNames: 1 to 100 names, each a domain name as above.
    if let Some(names) = req.at("/SubjectAlternativeNames").and_then(Value::as_array) {
        if names.is_empty() || names.len() > 100 {
            return bad(
                "acm.subject_alternative_names",
                "ValidationException",
                constraint(
                    "subjectAlternativeNames",
                    &names.len().to_string(),
                    "Member must have length between 1 and 100",
                ),
            );
        }
        if let Some(bad_name) = names
            .iter()
            .filter_map(Value::as_str)
            .find(|n| !domain_name(n))
        {
            return bad(
                "acm.subject_alternative_names",
                "ValidationException",
                constraint(
                    "subjectAlternativeNames",
                    bad_name,
                    &pattern(
                        "^(\\*\\.)?(((?!-)[A-Za-z0-9-]{0,62}[A-Za-z0-9])\\.)+((?!-)[A-Za-z0-9-]{1,62}[A-Za-z0-9])$",
                    ),
                ),
            );
        }
    }
    if let Some(method) = req.str("ValidationMethod")
        && !matches!(method, "DNS" | "EMAIL" | "HTTP")
    {
        return bad(
            "acm.validation_method",
            "ValidationException",
            constraint(
                "validationMethod",
                method,
                "Member must satisfy enum value set: [EMAIL, DNS, HTTP]",
            ),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{json, rule};

    #[test]
    fn idempotency_tokens_and_domain_names() {
        let request = |token: &str, domain: &str| {
            rule(json(
                "acm",
                "RequestCertificate",
                json!({"DomainName": domain, "ValidationMethod": "DNS", "IdempotencyToken": token}),
            ))
        };
        assert_eq!(request("provision_local_1a2b", "local.example.test"), None);
        assert_eq!(
            request("provision-local", "local.example.test"),
            Some("acm.idempotency_token")
        );
        assert_eq!(
            request(&"t".repeat(33), "local.example.test"),
            Some("acm.idempotency_token")
        );
        assert_eq!(request("t", "-bad.example.test"), Some("acm.domain_name"));
        assert_eq!(request("t", "localhost"), Some("acm.domain_name"));
    }
}
