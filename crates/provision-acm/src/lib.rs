//! provision-acm
