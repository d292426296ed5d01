//! provision-lambda
