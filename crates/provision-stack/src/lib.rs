//! The seed's architecture as a resource graph: which resources the config asks for, with
//! which settings and dependencies (names, domains, policies, environment variables).
//!
//! This crate knows the application; it makes no AWS call itself. The service crates' kinds
//! do the calls when the engine asks them to.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use provision_aws::Aws;
use provision_config::Config;
use provision_core::engine;
use provision_core::graph::{Graph, GraphError};
use provision_core::input::Derived;
use provision_core::resource::Kind;
use serde_json::Value;

pub mod backends;
pub mod images;
pub mod network;
pub mod web;

#[cfg(test)]
mod tests;

/// One client per service, all carrying the API call ledger.
#[derive(Clone)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub iam: aws_sdk_iam::Client,
    pub acm: aws_sdk_acm::Client,
    pub route53: aws_sdk_route53::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub sagemaker: aws_sdk_sagemaker::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub s3: aws_sdk_s3::Client,
}

macro_rules! client {
    ($krate:ident, $aws:expr) => {
        $krate::Client::from_conf(
            $krate::config::Builder::from($aws.sdk())
                .interceptor($aws.calls().clone())
                .retry_partition(provision_aws::retry_partition(stringify!($krate)))
                .build(),
        )
    };
}

impl Clients {
    pub fn new(aws: &Aws) -> Self {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(aws.sdk())
                .interceptor(aws.calls().clone())
                .retry_partition(provision_aws::retry_partition("s3"))
                // Emulators serve buckets by path, not by virtual host.
                .force_path_style(aws.endpoint_overridden())
                .build(),
        );
        Clients {
            ec2: client!(aws_sdk_ec2, aws),
            ecr: client!(aws_sdk_ecr, aws),
            iam: client!(aws_sdk_iam, aws),
            acm: client!(aws_sdk_acm, aws),
            route53: client!(aws_sdk_route53, aws),
            elbv2: client!(aws_sdk_elasticloadbalancingv2, aws),
            ecs: client!(aws_sdk_ecs, aws),
            logs: client!(aws_sdk_cloudwatchlogs, aws),
            sagemaker: client!(aws_sdk_sagemaker, aws),
            lambda: client!(aws_sdk_lambda, aws),
            s3,
        }
    }
}

/// Every resource kind the stack can use, each built once around its client.
pub struct Kinds {
    pub ec2: provision_ec2::Ec2Kinds,
    pub iam: provision_iam::IamKinds,
    pub images: images::ImageKinds,
    pub web: web::WebKinds,
    pub backends: backends::BackendKinds,
}

impl Kinds {
    pub fn new(clients: &Clients, project: &Project) -> Self {
        Kinds {
            ec2: provision_ec2::Ec2Kinds::new(clients.ec2.clone()),
            iam: provision_iam::IamKinds::new(clients.iam.clone()),
            images: images::ImageKinds::new(clients, project),
            web: web::WebKinds::new(clients),
            backends: backends::BackendKinds::new(clients),
        }
    }

    /// Every kind by name: how `down` finds the code to delete what the state records, whatever
    /// the config says now. Two kinds of one name are an error, not a silent overwrite.
    pub fn registry(&self) -> Result<engine::Kinds, StackError> {
        let mut all: Vec<Arc<dyn Kind>> = self.ec2.all();
        all.extend(self.iam.all());
        all.extend(self.images.all());
        all.extend(self.web.all());
        all.extend(self.backends.all());
        Ok(engine::Kinds::of(all)?)
    }
}

/// What the stack is built from: the config, and where its folders are.
#[derive(Clone, Debug)]
pub struct Project {
    pub config: Config,
    /// Where `streamlit_app/`, `functions/` and `endpoints/` are.
    pub root: PathBuf,
    /// The image builder to use (`docker`, `podman`, `buildah`), else detected.
    pub builder: Option<String>,
}

impl Project {
    /// `streamlit-app-<environment>`: the stack tag and the prefix of every name.
    pub fn stack_name(&self) -> String {
        self.config.stack_name()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Kinds(#[from] engine::DuplicateKind),
    #[error("{0}")]
    Invalid(String),
}

/// The stack's resources and outputs.
pub fn graph(project: &Project, kinds: &Kinds) -> Result<Graph, StackError> {
    let mut g = Graph::new();
    let net = network::add(&mut g, project, &kinds.ec2)?;
    let mut images = images::Images::new(project, &kinds.images);
    let backends = backends::add(&mut g, project, kinds, &mut images)?;
    let web = web::add(&mut g, project, kinds, &net, &mut images, &backends)?;
    images.finish(&mut g)?;

    g.set_outputs(Derived::new(
        (net.outputs(), backends.outputs(), web.outputs()),
        |(net, backends, web)| {
            let mut all = net;
            all.extend(backends);
            all.extend(web);
            all
        },
    ));
    // Every node must be reachable in a valid order before anything runs.
    g.order()?;
    Ok(g)
}

/// How a part of the stack contributes to the stack's outputs: derived from what it reads.
pub type OutputsPart = Derived<BTreeMap<String, Value>>;
