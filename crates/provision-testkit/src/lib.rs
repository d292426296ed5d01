//! provision-testkit
