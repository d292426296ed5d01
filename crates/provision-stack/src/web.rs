//! The web tier: certificate, DNS, load balancer, ECS cluster and the Fargate service.
//!
//! (Being built: the web tier issue fills this module.)

use std::collections::BTreeMap;
use std::sync::Arc;

use provision_core::graph::{Graph, GraphError};
use provision_core::resource::Kind;

use crate::backends::Backends;
use crate::images::Images;
use crate::network::Network;
use crate::{Clients, Kinds, OutputsPart, Project};

pub struct WebKinds {}

impl WebKinds {
    pub fn new(_clients: &Clients) -> Self {
        WebKinds {}
    }
    pub fn all(&self) -> Vec<Arc<dyn Kind>> {
        Vec::new()
    }
}

pub struct Web {}

impl Web {
    pub fn outputs(&self) -> OutputsPart {
        Box::new(|_| Ok(BTreeMap::new()))
    }
}

pub fn add(
    _g: &mut Graph,
    _project: &Project,
    _kinds: &Kinds,
    _net: &Network,
    _images: &mut Images<'_>,
    _backends: &Backends,
) -> Result<Web, GraphError> {
    Ok(Web {})
}
