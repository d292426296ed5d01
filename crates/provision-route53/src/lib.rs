//! provision-route53
