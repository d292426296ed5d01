//! The app domain's records in the hosted zone: an alias to the load balancer (A, and AAAA if it
//! answered on IPv6), and in `prod` the seed's `prod.<domain>` CNAME.

use provision_core::graph::{Graph, GraphError};
use provision_core::input::Ref;
use provision_core::resource::Node;
use provision_elbv2::LoadBalancerOut;
use provision_route53::RecordSpec;

use super::{IP_ADDRESS_TYPE, WebKinds, alias_record_types, prod_alias};
use crate::Project;

pub(super) fn add(
    g: &mut Graph,
    project: &Project,
    k: &WebKinds,
    load_balancer: &Ref<LoadBalancerOut>,
) -> Result<(), GraphError> {
    let config = &project.config;
    // The load balancer is dual stack (see its spec), so the app domain gets an A and an AAAA
    // alias (Route 53 answers each from the load balancer's own addresses). An alias needs the
    // load balancer's DNS name, known once it exists, not once it is active. `prod.<domain>`
    // is a CNAME, which stands for every record type of its target.
    for record_type in alias_record_types(IP_ADDRESS_TYPE) {
        let id = if record_type == "A" {
            "web/dns/app".to_string()
        } else {
            format!("web/dns/app-{}", record_type.to_ascii_lowercase())
        };
        let (zone, name) = (config.hosted_zone_id.clone(), config.app_domain());
        g.add(
            Node::new(id, k.route53.record.clone()).spec(load_balancer.exists(), move |lb| {
                RecordSpec::alias(
                    &zone,
                    &name,
                    record_type,
                    &lb.dns_name,
                    &lb.canonical_hosted_zone_id,
                )
            }),
        )?;
    }
    if let Some((name, target)) = prod_alias(&config.environment, &config.domain_name) {
        let spec = RecordSpec::values(&config.hosted_zone_id, &name, "CNAME", 300, [target]);
        g.add(Node::new("web/dns/prod", k.route53.record.clone()).fixed(&spec))?;
    }
    Ok(())
}
