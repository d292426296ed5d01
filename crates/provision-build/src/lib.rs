//! provision-build
