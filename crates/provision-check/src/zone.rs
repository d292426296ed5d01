//! The hosted zone: it exists, it is public, and its name is `domain_name` or a parent of it,
//! so the certificate's validation records and the app's alias record can be written in it.

use aws_sdk_route53::Client;
use provision_config::Config;

use crate::{Area, Finding};

/// The zone as Route 53 describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub id: String,
    /// Lower case, without the trailing dot.
    pub name: String,
    /// The name servers Route 53 assigned to the zone (its delegation set), lower case,
    /// without trailing dots. Empty for a private zone.
    pub name_servers: Vec<String>,
}

/// A domain name as DNS compares them: lower case, without the trailing dot.
pub fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `zone` is `domain` or one of its parents (`example.com` for `app.example.com`),
/// comparing whole labels (`ample.com` is no parent of `example.com`).
pub fn serves(zone: &str, domain: &str) -> bool {
    let (zone, domain) = (normalize(zone), normalize(domain));
    domain == zone || domain.ends_with(&format!(".{zone}"))
}

/// Reads the config's zone (`GetHostedZone`, one call) and judges it. Returns the zone when
/// it exists, for the delegation check.
pub async fn hosted_zone(route53: &Client, config: &Config) -> (Vec<Finding>, Option<Zone>) {
    const KEY: &str = "hosted_zone_id";
    let id = &config.hosted_zone_id;
    let out = match route53.get_hosted_zone().id(id).send().await {
        Ok(out) => out,
        Err(e) => {
            // NoSuchHostedZone: the id names no zone (AWS also answers it for an id in
            // another account). InvalidInput: the id is malformed.
            // https://docs.aws.amazon.com/Route53/latest/APIReference/API_GetHostedZone.html
            let missing = e
                .as_service_error()
                .is_some_and(|s| s.is_no_such_hosted_zone() || s.is_invalid_input());
            let err = provision_aws::classify("route53:GetHostedZone", e);
            let finding = if missing {
                Finding::problem(
                    Area::HostedZone,
                    KEY,
                    format!("there is no hosted zone `{id}` in this account ({})", err.message),
                )
                .hint(format!(
                    "`aws route53 list-hosted-zones-by-name --dns-name {}` shows the zones for the domain; put the id of the public zone `{}` is delegated to in `hosted_zone_id`",
                    config.domain_name, config.domain_name
                ))
            } else {
                let mut f = Finding::problem(
                    Area::HostedZone,
                    KEY,
                    format!("the hosted zone `{id}` could not be read: {}", err.message),
                );
                if let Some(h) = err.hint {
                    f = f.hint(h);
                }
                f
            };
            return (vec![finding], None);
        }
    };
    let Some(hz) = out.hosted_zone() else {
        return (
            vec![Finding::problem(
                Area::HostedZone,
                KEY,
                format!("route53:GetHostedZone returned no zone for `{id}`"),
            )],
            None,
        );
    };
    let zone = Zone {
        id: id.clone(),
        name: normalize(hz.name()),
        name_servers: out
            .delegation_set()
            .map(|d| d.name_servers().iter().map(|n| normalize(n)).collect())
            .unwrap_or_default(),
    };
    let mut findings = Vec::new();
    let private = hz.config().is_some_and(|c| c.private_zone());
    if private {
        findings.push(
            Finding::problem(
                Area::HostedZone,
                KEY,
                format!("the hosted zone `{id}` ({}) is private: ACM validates certificates through public DNS only, and visitors could not resolve the app's name", zone.name),
            )
            .hint(format!("use the id of the public hosted zone of {}", config.domain_name)),
        );
    }
    if !serves(&zone.name, &config.domain_name) {
        findings.push(
            Finding::problem(
                Area::HostedZone,
                KEY,
                format!(
                    "the hosted zone `{id}` is for {}, which is neither `domain_name` ({}) nor a parent of it: the certificate's validation records and the app's record could not be written in it",
                    zone.name, config.domain_name
                ),
            )
            .hint(format!(
                "use the id of the zone for {} (or a parent domain), or fix `domain_name`",
                config.domain_name
            )),
        );
    }
    if findings.is_empty() {
        findings.push(Finding::ok(
            Area::HostedZone,
            KEY,
            format!("public zone {} serves {}", zone.name, config.app_domain()),
        ));
    }
    (findings, Some(zone))
}

/// Whether the zone's parent delegates it to the zone's own name servers, asked of a
/// recursive resolver ([`crate::dns`]). ACM looks the validation records up in public DNS: if
/// the parent names other servers, it never sees them and the certificate stays pending.
pub async fn delegation(zone: &Zone) -> Finding {
    const KEY: &str = "hosted_zone_id";
    if zone.name_servers.is_empty() {
        return Finding::not_checked(
            Area::Delegation,
            KEY,
            format!(
                "the zone {} has no delegation set (a private zone)",
                zone.name
            ),
        );
    }
    let server = match crate::dns::server() {
        Ok(s) => s,
        Err(e) => {
            return Finding::not_checked(
                Area::Delegation,
                KEY,
                format!("the delegation of {} was not checked: {e}", zone.name),
            )
            .hint(format!(
                "set {}=IP to ask another DNS server",
                crate::dns::SERVER_ENV
            ));
        }
    };
    let ours = {
        let mut v = zone.name_servers.clone();
        v.sort();
        v
    };
    let hang = "ACM looks the certificate's validation records up through public DNS, so it would never find them and `up` would wait for the certificate until its deadline";
    let fix = format!(
        "at the registrar (or the parent zone) of {}, set its name servers to {}",
        zone.name,
        ours.join(", ")
    );
    match crate::dns::query_ns(server, &zone.name, std::time::Duration::from_secs(3)).await {
        Err(e) => Finding::not_checked(
            Area::Delegation,
            KEY,
            format!("DNS could not be reached, so the delegation of {} was not checked: {e}", zone.name),
        )
        .hint(format!(
            "check it with `dig NS {}`, or set {}=IP to ask another DNS server",
            zone.name,
            crate::dns::SERVER_ENV
        )),
        Ok(crate::dns::Answer::NameServers(found)) if found == ours => Finding::ok(
            Area::Delegation,
            KEY,
            format!("{} is delegated to the zone's name servers ({})", zone.name, ours.join(", ")),
        ),
        Ok(crate::dns::Answer::NameServers(found)) => Finding::problem(
            Area::Delegation,
            KEY,
            format!(
                "{} is delegated to {}, not to this zone's name servers ({}): {hang}",
                zone.name,
                found.join(", "),
                ours.join(", ")
            ),
        )
        .hint(format!("{fix}; or, if another hosted zone of that name is the one in use, put its id in `hosted_zone_id`")),
        Ok(crate::dns::Answer::NoSuchDomain) => Finding::problem(
            Area::Delegation,
            KEY,
            format!("DNS says {} does not exist (NXDOMAIN): the domain is not registered or not delegated to anyone; {hang}", zone.name),
        )
        .hint(fix),
        Ok(crate::dns::Answer::NoData) => Finding::problem(
            Area::Delegation,
            KEY,
            format!("{} has no NS records in public DNS: it is not delegated as a zone of its own; {hang}", zone.name),
        )
        .hint(fix),
        Ok(crate::dns::Answer::Failed(rcode)) => Finding::warning(
            Area::Delegation,
            KEY,
            format!(
                "the DNS server {server} failed to resolve {} (RCODE {rcode}{}); a delegation to name servers that do not serve the zone fails this way, and {hang}",
                zone.name,
                if rcode == 2 { ", server failure" } else { "" }
            ),
        )
        .hint(format!("check it with `dig NS {}`; {fix}", zone.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_serves_its_name_and_its_subdomains_only() {
        assert!(serves("example.com.", "example.com"));
        assert!(serves("Example.COM", "app.example.com"));
        assert!(serves("example.com", "a.b.example.com."));
        assert!(!serves("ample.com", "example.com"), "whole labels only");
        assert!(
            !serves("app.example.com", "example.com"),
            "a child is no parent"
        );
        assert!(!serves("other.test", "example.test"));
    }
}
