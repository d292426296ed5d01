//! Every deadline a run can hit, in one table: the `--timeout KEY=DURATION` keys.
//!
//! Waits (`provision_core::wait::until`) and retry policies (`crate::retry`) take a
//! [`Timeout`] from here, never a free string, so the command line can accept exactly these
//! keys, list them in `--help`, and suggest the nearest one for a typo. Defaults follow the
//! SDK waiter ceilings and terraform-provider-aws's timeouts (see `shared/docs/aws-notes.md`).

use std::time::Duration;

pub use provision_core::wait::Timeout;

const MIN: u64 = 60;

macro_rules! timeouts {
    ($($(#[$doc:meta])* $name:ident = $key:literal, $secs:expr, $about:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $name: Timeout = Timeout::new($key, Duration::from_secs($secs), $about);
        )*
        /// Every timeout, in the order `--help` lists them.
        pub const ALL: &[Timeout] = &[$($name),*];
    };
}

timeouts! {
    /// ACM DNS validation: minutes usually, sometimes over an hour (terraform allows 75 min).
    CERTIFICATE = "certificate", 60 * MIN, "the certificate to be issued (DNS validation)";
    /// terraform-provider-aws `certificateCrossServicePropagationTimeout` (internal/service/acm/certificate.go): 20 minutes.
    CERTIFICATE_DELETE = "certificate-delete", 20 * MIN, "the certificate to be free to delete";
    CERTIFICATE_VALIDATION_RECORDS = "certificate-records", 5 * MIN, "ACM to name the certificate's validation records";
    /// SDK waiter: 15 s x 40.
    NAT_GATEWAY = "nat-gateway", 15 * MIN, "a NAT gateway to become available";
    NAT_GATEWAY_DELETE = "nat-gateway-delete", 15 * MIN, "a NAT gateway to be deleted";
    VPC_ENDPOINT = "vpc-endpoint", 10 * MIN, "a VPC endpoint to become available";
    VPC_ENDPOINT_DELETE = "vpc-endpoint-delete", 10 * MIN, "a VPC endpoint to be deleted";
    INTERNET_GATEWAY_DETACH = "internet-gateway-detach", 15 * MIN, "the internet gateway to be free to detach";
    ELASTIC_IP_RELEASE = "elastic-ip-release", 10 * MIN, "the Elastic IP to be free to release";
    SECURITY_GROUP_DELETE = "security-group-delete", 20 * MIN, "a security group to be free to delete";
    ROUTE_TABLE_DELETE = "route-table-delete", 5 * MIN, "a route table to be free to delete";
    SUBNET_DELETE = "subnet-delete", 20 * MIN, "a subnet to be free to delete";
    /// Lambda's network interfaces can hold a VPC for 20 to 40 minutes.
    VPC_DELETE = "vpc-delete", 20 * MIN, "the VPC to be free to delete";
    /// SDK waiter: 15 s x 40.
    LOAD_BALANCER = "load-balancer", 15 * MIN, "the load balancer to become active";
    LOAD_BALANCER_DELETE = "load-balancer-delete", 10 * MIN, "the load balancer to be deleted";
    TARGET_GROUP_DELETE = "target-group-delete", 5 * MIN, "the target group to be free to delete";
    CLUSTER = "cluster", 5 * MIN, "the ECS cluster to become active";
    CLUSTER_DELETE = "cluster-delete", 10 * MIN, "the ECS cluster to be deleted";
    /// One deployment, running = desired; SDK waiter 15 s x 40 to 120.
    SERVICE = "service", 20 * MIN, "the ECS service to become stable";
    SERVICE_DELETE = "service-delete", 15 * MIN, "the ECS service to drain and be deleted";
    FUNCTION = "function", 15 * MIN, "a Lambda function to become active or finish updating";
    /// SDK waiter: 30 s x 120.
    ENDPOINT = "endpoint", 60 * MIN, "a SageMaker endpoint to be in service";
    ENDPOINT_DELETE = "endpoint-delete", 20 * MIN, "a SageMaker endpoint to be deleted";
    /// terraform-provider-aws `iamPropagationTimeout` (internal/service/iam/consts.go): 2 minutes.
    IAM_PROPAGATION = "iam-propagation", 2 * MIN, "a new IAM role or policy to be usable by a service";
    /// terraform-provider-aws `lambdaPropagationTimeout` (internal/service/lambda/consts.go): 5 minutes.
    LAMBDA_ROLE_PROPAGATION = "lambda-role-propagation", 5 * MIN, "a new IAM role to be usable by Lambda";
    /// terraform-provider-aws `ec2PropagationTimeout` (internal/service/ec2/consts.go): 5 minutes.
    EC2_PROPAGATION = "ec2-propagation", 5 * MIN, "a new EC2 id to be known to follow-up calls";
    /// The ECS service-linked role a fresh account gets on first use: terraform retries
    /// CreateCluster for `propagationTimeout` (2 minutes) and CreateService for
    /// `propagationTimeout + serviceCreateTimeout` (4 minutes).
    SERVICE_LINKED_ROLE = "service-linked-role", 4 * MIN, "the ECS service-linked role of a fresh account";
    /// terraform's `retryServiceCreate`: `propagationTimeout + serviceCreateTimeout`, 4 minutes.
    ECS_SERVICE_DEPENDENCIES = "ecs-service-dependencies", 4 * MIN, "ECS to see a new cluster, target group or role";
    /// ELBv2 CreateListener with a just-issued certificate (terraform: the listener's create timeout, 5 minutes).
    CERTIFICATE_PROPAGATION = "certificate-propagation", 5 * MIN, "a just-issued certificate to be usable by the load balancer";
    /// terraform-provider-aws `vpcIPv6CIDRBlockAssociationCreatedTimeout` (internal/service/ec2/wait.go): 10 minutes.
    IPV6_CIDR = "ipv6-cidr", 10 * MIN, "an IPv6 block to be associated with the VPC or a subnet";
    /// An ECR layer upload that broke off, started again.
    LAYER_UPLOAD = "layer-upload", 10 * MIN, "a broken-off image layer upload to be started again";
    /// Lambda's "an update is in progress" and similar conflicts.
    CONFLICT = "conflict", 5 * MIN, "another change to the same resource to finish";
    /// Throttling and 5xx that outlast the SDK's own retries.
    TRANSIENT = "transient", 60, "throttling and server errors that outlast the SDK's own retries";
}

/// The timeout named `key`, if there is one.
pub fn find(key: &str) -> Option<&'static Timeout> {
    ALL.iter().find(|t| t.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_kebab_case() {
        let mut seen = std::collections::BTreeSet::new();
        for t in ALL {
            assert!(seen.insert(t.key), "{} twice", t.key);
            assert!(
                t.key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                t.key
            );
            assert!(!t.about.is_empty() && !t.default.is_zero(), "{}", t.key);
        }
        assert_eq!(find("nat-gateway"), Some(&NAT_GATEWAY));
        assert_eq!(find("natgateway"), None);
    }

    #[test]
    fn the_core_transient_policy_uses_this_table() {
        assert_eq!(provision_core::retry::TRANSIENT.timeout, TRANSIENT);
    }
}
