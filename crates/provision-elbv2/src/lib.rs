//! provision-elbv2
