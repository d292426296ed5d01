//! provision-logs
