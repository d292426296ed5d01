//! provision-iam
