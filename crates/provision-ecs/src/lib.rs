//! provision-ecs
