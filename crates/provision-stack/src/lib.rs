//! provision-stack
