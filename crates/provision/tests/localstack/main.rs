//! The LocalStack suite: the real `provision` binary against LocalStack community (in-process,
//! on loopback), for the parts LocalStack's free edition serves: the network tier, IAM roles,
//! the certificate with its DNS validation records, the log group, and the S3 state store with
//! its conditional-write lock. Each run is limited to those parts with `--target`.
//!
//! Not part of `cargo test --workspace` (`test = false` in Cargo.toml): run it with
//! `scripts/test-localstack`, or `cargo test -p provision --test localstack` (which starts
//! LocalStack through `scripts/localstack` unless `PROVISION_LOCALSTACK_URL` names a running
//! one). All tests share one LocalStack; each works in its own environment and hosted zone.

// Tests fail loudly on anything unexpected; that is what unwrap and expect are for here.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The crash tests report their kill points on stderr, which `-- --nocapture` shows.
#![allow(clippy::print_stderr)]

mod support;

mod certificate;
mod crash;
mod logs;
mod network;
mod remote_state;
mod roles;
