//! Integration tests: the real `provision` binary against a real AWS emulator (moto's server)
//! on loopback, one emulator per test. One test binary for the whole crate, because every
//! test binary links the AWS SDK and linking is slow.

// Tests fail loudly on anything unexpected; that is what unwrap and expect are for here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod backends;
mod cli;
mod drift;
mod images;
mod network;
mod ownership;
mod printer;
mod remote_state;
mod web;
