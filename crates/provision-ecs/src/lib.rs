//! ECS as resource kinds: the cluster, the task definition (a family of immutable revisions)
//! and the Fargate service, each read in one Describe call that reports its tags too.

use std::sync::Arc;

use aws_sdk_ecs::types::Tag;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use provision_core::resource::{Cx, Kind, ResourceError};

mod cluster;
mod service;
mod task_definition;

pub use cluster::{Cluster, ClusterOut, ClusterSpec};
pub use service::{CircuitBreaker, Service, ServiceOut, ServiceSpec, service_node_name};
pub use task_definition::{TaskDefinition, TaskDefinitionOut, TaskDefinitionSpec};

pub(crate) fn aws<E, R>(operation: &str, err: SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    provision_aws::classify(operation, err)
}

/// Every ECS kind, sharing one client.
pub struct EcsKinds {
    pub cluster: Arc<Cluster>,
    pub task_definition: Arc<TaskDefinition>,
    pub service: Arc<Service>,
}

impl EcsKinds {
    pub fn new(client: aws_sdk_ecs::Client) -> Self {
        EcsKinds {
            cluster: Arc::new(Cluster::new(client.clone())),
            task_definition: Arc::new(TaskDefinition::new(client.clone())),
            service: Arc::new(Service::new(client)),
        }
    }

    pub fn all(&self) -> Vec<Arc<dyn Kind>> {
        vec![
            self.cluster.clone(),
            self.task_definition.clone(),
            self.service.clone(),
        ]
    }
}

/// The ownership tags for a create call.
pub(crate) fn tags(cx: &Cx) -> Vec<Tag> {
    cx.tags()
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

pub(crate) fn tag_pairs(tags: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter()
        .filter_map(|t| Some((t.key()?, t.value().unwrap_or_default())))
}
