//! Route 53's rules for record changes
//! (<https://docs.aws.amazon.com/Route53/latest/APIReference/API_ChangeResourceRecordSets.html>,
//! `API_ResourceRecordSet.html`, `API_AliasTarget.html`; CNAME at the apex:
//! <https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/ResourceRecordTypes.html#CNAMEFormat>
//! "you can't create a CNAME record for the zone apex"). Route 53 answers a bad batch with
//! `InvalidChangeBatch` and its messages in brackets (`[RRSet of type CNAME ...]`), a missing
//! or doubled alias/TTL with `InvalidInput`.

use super::super::super::xml;
use super::super::request::Request;
use super::{Known, Violation, bad, chars};

const TYPES: &[&str] = &[
    "A", "AAAA", "CAA", "CNAME", "DS", "HTTPS", "MX", "NAPTR", "NS", "PTR", "SOA", "SPF", "SRV",
    "SSHFP", "SVCB", "TLSA", "TXT",
];

/// Names compare without case and with their final dot.
fn normal(name: &str) -> String {
    let mut n = name.trim().to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

pub(super) fn check(req: &Request<'_>, known: &Known<'_>) -> Option<Violation> {
    if req.operation() != "ChangeResourceRecordSets" {
        return None;
    }
    let doc = req.text();
    let root = xml::root(doc)?;
    for change in xml::descend(doc, &root, &["ChangeBatch", "Changes", "Change"]) {
        let action = xml::child_text(doc, &change, "Action").unwrap_or_default();
        let Some(set) = xml::child(doc, &change, "ResourceRecordSet") else {
            continue;
        };
        let field = |k: &str| xml::child_text(doc, &set, k);
        let name = field("Name").unwrap_or_default();
        let kind = field("Type").unwrap_or_default();
        let identifier = field("SetIdentifier").unwrap_or_else(|| "null".into());
        if !matches!(action.as_str(), "CREATE" | "DELETE" | "UPSERT") {
            return bad(
                "route53.action",
                "InvalidInput",
                format!(
                    "1 validation error detected: Value '{action}' at 'changeBatch.changes.1.member.action' failed to satisfy constraint: Member must satisfy enum value set: [UPSERT, CREATE, DELETE]"
                ),
            );
        }
        if !TYPES.contains(&kind.as_str()) {
            return bad(
                "route53.record_type",
                "InvalidInput",
                format!(
                    "1 validation error detected: Value '{kind}' at 'changeBatch.changes.1.member.resourceRecordSet.type' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                    TYPES.join(", ")
                ),
            );
        }
        // At most 255 characters, labels of at most 63.
        let normal_name = normal(&name);
        if chars(&normal_name) > 255
            || normal_name
                .trim_end_matches('.')
                .split('.')
                .any(|l| l.is_empty() || l.len() > 63)
        {
            return bad(
                "route53.record_name",
                "InvalidChangeBatch",
                format!(
                    "[FATAL problem: DomainLabelTooLong (Domain label is too long) encountered with '{name}']"
                ),
            );
        }
        // Exactly one of an alias target or a TTL with records (API_ResourceRecordSet).
        let alias = xml::child(doc, &set, "AliasTarget");
        let ttl = field("TTL");
        let records = xml::child(doc, &set, "ResourceRecords").is_some();
        let shape = format!(
            "in Change with [Action={action}, Name={name}, Type={kind}, SetIdentifier={identifier}]"
        );
        let found = match (alias.is_some(), ttl.is_some() || records) {
            (true, true) => Some("more than one"),
            (false, false) => Some("none"),
            (false, true) if ttl.is_none() || !records => Some("none"),
            _ => None,
        };
        if let Some(found) = found {
            return bad(
                "route53.alias_or_records",
                "InvalidInput",
                format!(
                    "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords]], but found {found} {shape}"
                ),
            );
        }
        if let Some(alias) = alias {
            let target_zone = xml::child_text(doc, &alias, "HostedZoneId").unwrap_or_default();
            let target = xml::child_text(doc, &alias, "DNSName").unwrap_or_default();
            // Alias records are A, AAAA, CNAME, ... never NS or SOA, and need a target.
            if target_zone.is_empty() || target.is_empty() || matches!(kind.as_str(), "NS" | "SOA")
            {
                return bad(
                    "route53.alias_target",
                    "InvalidChangeBatch",
                    format!(
                        "[Tried to create an alias that targets {target}, type {kind} in zone {target_zone}, but the alias target name does not lie within the target zone]"
                    ),
                );
            }
        }
        if let Some(zone) = known.zone_name {
            let zone = normal(zone);
            if normal_name != zone && !normal_name.ends_with(&format!(".{zone}")) {
                return bad(
                    "route53.record_in_zone",
                    "InvalidChangeBatch",
                    format!("[RRSet with DNS name {normal_name} is not permitted in zone {zone}]"),
                );
            }
            if kind == "CNAME" && normal_name == zone && action != "DELETE" {
                return bad(
                    "route53.cname_at_apex",
                    "InvalidChangeBatch",
                    format!(
                        "[RRSet of type CNAME with DNS name {normal_name} is not permitted at apex in zone {zone}]"
                    ),
                );
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::super::request::Request;
    use super::super::Known;
    use super::super::testing::call;

    fn change(set: &str, zone: &str) -> Option<&'static str> {
        let body = format!(
            "<ChangeResourceRecordSetsRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeBatch><Changes><Change><Action>UPSERT</Action><ResourceRecordSet>{set}</ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"
        );
        let call = call("route53", "ChangeResourceRecordSets");
        let known = Known {
            zone_name: Some(zone),
            ..Known::default()
        };
        super::check(
            &Request::new(
                &call,
                &[],
                body.as_bytes(),
                "/2013-04-01/hostedzone/Z1/rrset",
            ),
            &known,
        )
        .map(|v| v.rule)
    }

    #[test]
    fn apex_cnames_alias_shapes_and_zones() {
        let cname = |name: &str| {
            format!(
                "<Name>{name}</Name><Type>CNAME</Type><TTL>300</TTL><ResourceRecords><ResourceRecord><Value>x.example.net</Value></ResourceRecord></ResourceRecords>"
            )
        };
        assert_eq!(
            change(&cname("_abc.local.example.test."), "example.test"),
            None
        );
        assert_eq!(
            change(&cname("example.test."), "example.test."),
            Some("route53.cname_at_apex")
        );
        assert_eq!(
            change(&cname("other.test."), "example.test."),
            Some("route53.record_in_zone")
        );
        let alias = "<Name>local.example.test</Name><Type>A</Type><AliasTarget><HostedZoneId>Z35SXDOTRQ7X7K</HostedZoneId><DNSName>alb-1.us-east-1.elb.amazonaws.com</DNSName><EvaluateTargetHealth>true</EvaluateTargetHealth></AliasTarget>";
        assert_eq!(change(alias, "example.test"), None);
        let both = alias.replace("<AliasTarget>", "<TTL>60</TTL><AliasTarget>");
        assert_eq!(
            change(&both, "example.test"),
            Some("route53.alias_or_records")
        );
        assert_eq!(
            change(
                "<Name>a.example.test</Name><Type>A</Type><TTL>60</TTL>",
                "example.test"
            ),
            Some("route53.alias_or_records")
        );
    }
}
