//! provision-ecr
