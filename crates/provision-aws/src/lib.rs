//! provision-aws
