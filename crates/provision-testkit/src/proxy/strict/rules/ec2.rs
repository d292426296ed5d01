//! EC2's input rules.

use super::super::request::Request;
use super::{Violation, alnum_or, bad, chars};

/// The characters EC2 accepts in a VPC security group's name and description, and in a rule's
/// description: "a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*".
/// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html>,
/// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_IpRange.html>.
const SECURITY_GROUP_EXTRA: &str = " ._-:/()#,@[]+=&;{}!$*";

/// EC2's own words for a description outside that set (seen in terraform-provider-aws #18874
/// and cds-snc/notification-terraform #561); the double space is AWS's.
const GROUP_DESCRIPTION_SET: &str = "Invalid security group description. Valid descriptions are strings less than 256 characters from the following set:  a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*";
const RULE_DESCRIPTION_SET: &str = "Invalid rule description. Valid descriptions are strings less than 256 characters from the following set:  a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*";

pub(super) fn check(req: &Request<'_>) -> Option<Violation> {
    let op = req.operation();
    if op == "CreateSecurityGroup" {
        if let Some(v) = group_name(req.param("GroupName").unwrap_or("")) {
            return Some(v);
        }
        if let Some(v) = group_description(req.param("GroupDescription").unwrap_or("")) {
            return Some(v);
        }
    }
    if matches!(
        op,
        "AuthorizeSecurityGroupIngress"
            | "AuthorizeSecurityGroupEgress"
            | "UpdateSecurityGroupRuleDescriptionsIngress"
            | "UpdateSecurityGroupRuleDescriptionsEgress"
    ) {
        // IpPermissions.N.IpRanges.M.Description, ...UserIdGroupPairs.M.Description, ...
        for (_, description) in
            req.params(|k| k.starts_with("IpPermissions.") && k.ends_with(".Description"))
        {
            if let Some(v) = rule_description(description) {
                return Some(v);
            }
        }
    }
    // "Up to 64 ASCII characters" for every ClientToken:
    // https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html
    if let Some(token) = req.param("ClientToken")
        && (chars(token) > 64 || !token.is_ascii())
    {
        return bad(
            "ec2.client_token",
            "InvalidParameterValue",
            format!(
                "Value ({token}) for parameter clientToken is invalid. Length exceeds maximum of 64 ASCII characters."
            ),
        );
    }
    None
}

/// "Constraints: Up to 255 characters in length. Cannot start with sg-." and the character set
/// above (API_CreateSecurityGroup). The sg- message is AWS's (pulumi/pulumi-awsx #477).
fn group_name(name: &str) -> Option<Violation> {
    if name.starts_with("sg-") {
        return bad(
            "ec2.security_group_name",
            "InvalidParameterValue",
            format!(
                "Value ({name}) for parameter GroupName is invalid. Group names may not be in the format sg-*."
            ),
        );
    }
    if !name.is_ascii() {
        return bad(
            "ec2.security_group_name",
            "InvalidParameterValue",
            format!(
                "Value ({name}) for parameter GroupName is invalid. Character sets beyond ASCII are not supported."
            ),
        );
    }
    if name.is_empty() || chars(name) > 255 || !name.chars().all(alnum_or(SECURITY_GROUP_EXTRA)) {
        return bad(
            "ec2.security_group_name",
            "InvalidParameterValue",
            format!(
                "Value ({name}) for parameter GroupName is invalid. Valid names are strings less than 256 characters from the following set:  a-zA-Z0-9. _-:/()#,@[]+=&;{{}}!$*"
            ),
        );
    }
    None
}

/// The same constraints for GroupDescription; the non-ASCII message is AWS's
/// (terraform-provider-aws #43854).
fn group_description(description: &str) -> Option<Violation> {
    if !description.is_ascii() {
        return bad(
            "ec2.security_group_description",
            "InvalidParameterValue",
            format!(
                "Value ({description}) for parameter GroupDescription is invalid. Character sets beyond ASCII are not supported."
            ),
        );
    }
    if description.is_empty()
        || chars(description) > 255
        || !description.chars().all(alnum_or(SECURITY_GROUP_EXTRA))
    {
        return bad(
            "ec2.security_group_description",
            "InvalidParameterValue",
            GROUP_DESCRIPTION_SET.to_string(),
        );
    }
    None
}

fn rule_description(description: &str) -> Option<Violation> {
    (chars(description) > 255 || !description.chars().all(alnum_or(SECURITY_GROUP_EXTRA))).then(
        || Violation {
            rule: "ec2.security_group_rule_description",
            error: super::super::super::wire::AwsError {
                status: http::StatusCode::BAD_REQUEST,
                code: "InvalidParameterValue",
                message: RULE_DESCRIPTION_SET.to_string(),
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{form, rule};

    #[test]
    fn security_group_names_and_descriptions_use_ec2s_character_set() {
        let create = |name: &str, description: &str| {
            rule(form(
                "ec2",
                "CreateSecurityGroup",
                &[("GroupName", name), ("GroupDescription", description)],
            ))
        };
        assert_eq!(
            create("app-alb", "Load balancer: HTTPS from anywhere"),
            None
        );
        assert_eq!(
            create("app-alb", "The app's load balancer"),
            Some("ec2.security_group_description")
        );
        assert_eq!(
            create("app-alb", "flèche →"),
            Some("ec2.security_group_description")
        );
        assert_eq!(
            create("app-alb", &"x".repeat(256)),
            Some("ec2.security_group_description")
        );
        assert_eq!(create("sg-app", "ok"), Some("ec2.security_group_name"));
        assert_eq!(create("app's", "ok"), Some("ec2.security_group_name"));
    }

    #[test]
    fn rule_descriptions_and_client_tokens() {
        let ingress = |d: &str| {
            rule(form(
                "ec2",
                "AuthorizeSecurityGroupIngress",
                &[
                    ("GroupId", "sg-1"),
                    ("IpPermissions.1.IpRanges.1.Description", d),
                ],
            ))
        };
        assert_eq!(ingress("HTTPS from the load balancer"), None);
        assert_eq!(
            ingress("the LB's port"),
            Some("ec2.security_group_rule_description")
        );
        let token = |t: &str| rule(form("ec2", "CreateNatGateway", &[("ClientToken", t)]));
        assert_eq!(token(&"a".repeat(64)), None);
        assert_eq!(token(&"a".repeat(65)), Some("ec2.client_token"));
    }
}
