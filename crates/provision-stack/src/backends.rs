//! The machine-learning backends: SageMaker endpoints and Lambda functions.
//!
//! (Being built: the backends issue fills this module.)

use std::collections::BTreeMap;
use std::sync::Arc;

use provision_core::graph::{Graph, GraphError};
use provision_core::resource::{Kind, Ref};
use serde::{Deserialize, Serialize};

use crate::images::Images;
use crate::{Clients, Kinds, OutputsPart, Project};

/// What the web tier reads from a function.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FunctionOut {
    pub function_name: String,
    pub function_arn: String,
}

/// What the web tier reads from an endpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EndpointOut {
    pub endpoint_name: String,
    pub endpoint_arn: String,
}

pub struct FunctionHandle {
    pub environment_variable_name: String,
    pub function_name: String,
    pub function: Ref<FunctionOut>,
}

pub struct EndpointHandle {
    pub environment_variable_name: String,
    pub endpoint_name: String,
    pub endpoint: Ref<EndpointOut>,
}

#[derive(Default)]
pub struct Backends {
    pub functions: Vec<FunctionHandle>,
    pub endpoints: Vec<EndpointHandle>,
}

impl Backends {
    pub fn outputs(&self) -> OutputsPart {
        Box::new(|_| Ok(BTreeMap::new()))
    }
}

pub struct BackendKinds {}

impl BackendKinds {
    pub fn new(_clients: &Clients) -> Self {
        BackendKinds {}
    }
    pub fn all(&self) -> Vec<Arc<dyn Kind>> {
        Vec::new()
    }
}

pub fn add(_g: &mut Graph, _project: &Project, _kinds: &Kinds, _images: &mut Images<'_>) -> Result<Backends, GraphError> {
    Ok(Backends::default())
}
