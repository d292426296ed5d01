//! Integration tests: the real `provision` binary against a real AWS emulator (moto's server)
//! on loopback, one emulator per test. One test binary for the whole crate, because every
//! test binary links the AWS SDK and linking is slow.

// Tests fail loudly on anything unexpected; that is what unwrap and expect are for here.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The crash and fault tests report what they tried (kill points, faults injected) on stderr,
// which `cargo test -- --nocapture` shows.
#![allow(clippy::print_stderr)]
// The test modules share their helpers through `pub`; a test binary exports nothing.
#![allow(unreachable_pub)]

mod support;

mod backends;
mod bad_input;
mod check;
mod cli;
mod crash;
mod credentials;
mod drift;
mod environments;
mod faults;
mod images;
mod interrupt;
mod inventory;
mod ipv6;
mod log;
mod network;
mod ownership;
mod pipe;
mod printer;
mod redeploy;
mod remote_state;
mod secrets;
mod strict;
mod teardown;
mod web;
