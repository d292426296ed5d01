//! provision-ec2
