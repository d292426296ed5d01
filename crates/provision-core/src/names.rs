//! Deterministic physical names, within each service's limits.
//!
//! A name is built from the stack name (`<app>-<environment>`) and a suffix naming
//! the resource. When the result is longer than the service allows, it is cut and a short
//! hash of the full name is appended, so two long names never collide and the same inputs
//! always give the same name (a rerun finds what an earlier, interrupted run created).

use sha2::{Digest, Sha256};

/// Limits of the services' name fields.
pub mod limits {
    pub const LOAD_BALANCER: usize = 32;
    pub const TARGET_GROUP: usize = 32;
    pub const IAM_ROLE: usize = 64;
    pub const IAM_POLICY: usize = 128;
    pub const LAMBDA_FUNCTION: usize = 64;
    pub const SAGEMAKER: usize = 63;
    pub const ECS_CLUSTER: usize = 255;
    pub const ECS_SERVICE: usize = 255;
    pub const ECS_FAMILY: usize = 255;
    pub const SECURITY_GROUP: usize = 255;
    pub const ECR_REPOSITORY: usize = 256;
    pub const LOG_GROUP: usize = 512;
}

/// `prefix-suffix`, shortened with a hash to at most `max` characters.
pub fn fit(prefix: &str, suffix: &str, max: usize) -> String {
    let full = if suffix.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}-{suffix}")
    };
    shorten(&full, max)
}

/// `name` itself if it fits in `max`, else its first characters, `-`, and 7 hex digits of its hash.
pub fn shorten(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let hash = short_hash(name.as_bytes(), 7);
    let keep = max.saturating_sub(hash.len() + 1);
    let mut head: String = name.chars().take(keep).collect();
    while head.ends_with('-') || head.ends_with('_') || head.ends_with('.') {
        head.pop();
    }
    format!("{head}-{hash}")
}

/// The first `len` hex digits of the SHA-256 of `data`.
pub fn short_hash(data: &[u8], len: usize) -> String {
    let digest = Sha256::digest(data);
    let mut s = hex::encode(digest);
    s.truncate(len);
    s
}

/// A name safe for services that allow only letters, digits and hyphens: anything else
/// becomes a hyphen, runs of hyphens collapse, and the result is lower case.
pub fn dns_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept() {
        assert_eq!(fit("webshop-dev", "alb", 32), "webshop-dev-alb");
    }

    #[test]
    fn long_names_are_cut_with_a_stable_hash() {
        let a = fit("webshop-a-verylongenvironment", "alb", 32);
        let b = fit("webshop-a-verylongenvironment", "alb", 32);
        let c = fit("webshop-a-verylongenvironmenu", "alb", 32);
        assert_eq!(a, b);
        assert_ne!(a, c, "names that differ only past the cut must not collide");
        assert!(a.len() <= 32, "{a}");
        assert!(a.starts_with("webshop-a-verylongenviro"), "{a}");
        assert!(!a.contains("--"), "{a}");
    }

    #[test]
    fn every_limit_is_respected() {
        let env = "a".repeat(20);
        for max in [limits::LOAD_BALANCER, limits::IAM_ROLE, limits::SAGEMAKER] {
            let n = fit(
                &format!("webshop-{env}"),
                "recommendations-model-endpoint-execution-role",
                max,
            );
            assert!(n.len() <= max, "{n} is longer than {max}");
        }
    }

    #[test]
    fn dns_safe_names() {
        assert_eq!(dns_safe("ORDER_LAMBDA"), "order-lambda");
        assert_eq!(dns_safe("__a..b__"), "a-b");
    }
}
