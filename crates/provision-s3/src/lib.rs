//! provision-s3
