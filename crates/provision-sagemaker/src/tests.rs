//! The model, configuration and endpoint kinds driven by the real engine against a small
//! in-memory SageMaker built on the SDK's mock client (`aws-smithy-mocks`).
//!
//! The emulator the integration tests use (moto) does not implement `UpdateEndpoint`, so the
//! switch of an endpoint to a new configuration is proved here: the new configuration is
//! created under a new name, the endpoint switches with `UpdateEndpoint` and is waited for
//! until it serves it, and only then is the old configuration deleted; a switch that fails
//! (SageMaker rolls the endpoint back) keeps the old configuration. The fake answers like
//! SageMaker does: `ValidationException`s for missing and duplicate names and for roles it
//! cannot assume yet, `Updating` before `InService`, the failure reason after a rollback.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::operation::create_endpoint::{CreateEndpointError, CreateEndpointOutput};
use aws_sdk_sagemaker::operation::create_endpoint_config::{
    CreateEndpointConfigError, CreateEndpointConfigOutput,
};
use aws_sdk_sagemaker::operation::create_model::{CreateModelError, CreateModelOutput};
use aws_sdk_sagemaker::operation::delete_endpoint::{DeleteEndpointError, DeleteEndpointOutput};
use aws_sdk_sagemaker::operation::delete_endpoint_config::{
    DeleteEndpointConfigError, DeleteEndpointConfigOutput,
};
use aws_sdk_sagemaker::operation::delete_model::{DeleteModelError, DeleteModelOutput};
use aws_sdk_sagemaker::operation::describe_endpoint::{
    DescribeEndpointError, DescribeEndpointOutput,
};
use aws_sdk_sagemaker::operation::describe_endpoint_config::{
    DescribeEndpointConfigError, DescribeEndpointConfigOutput,
};
use aws_sdk_sagemaker::operation::describe_model::{DescribeModelError, DescribeModelOutput};
use aws_sdk_sagemaker::operation::list_tags::{ListTagsError, ListTagsOutput};
use aws_sdk_sagemaker::operation::update_endpoint::{UpdateEndpointError, UpdateEndpointOutput};
use aws_sdk_sagemaker::types::{
    ContainerDefinition, EndpointStatus, PendingDeploymentSummary, ProductionVariant, Tag,
};
use aws_smithy_mocks::{MockResponse, Rule, RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use provision_core::engine::{Engine, Kinds, RunError, StateHandle};
use provision_core::event::{Event, EventSink};
use provision_core::graph::Graph;
use provision_core::resource::{Node, Ref, RunSettings, Stack};
use provision_core::state::{LocalStore, State, StateStore};
use serde_json::json;

use super::*;

const REGION_ARN: &str = "arn:aws:sagemaker:us-east-1:123456789012";
const ROLE: &str = "arn:aws:iam::123456789012:role/streamlit-app-test-sentiment-endpoint";

fn not_found(what: &str, name: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code("ValidationException")
        .message(format!(
            "Could not find {what} \"{REGION_ARN}:{what}/{name}\"."
        ))
        .build()
}

fn validation(message: String) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code("ValidationException")
        .message(message)
        .build()
}

#[derive(Clone)]
struct FakeEndpoint {
    config: String,
    status: EndpointStatus,
    /// The configuration it is switching to, how many more looks until the switch ends, and
    /// whether it then fails (with this reason) and rolls back.
    switch: Option<(String, u32, Option<String>)>,
    failure_reason: Option<String>,
    /// Its creation ends `Failed`, for this reason.
    fails_creation: Option<String>,
}

#[derive(Default)]
struct World {
    models: BTreeMap<String, ContainerDefinition>,
    configs: BTreeMap<String, ProductionVariant>,
    endpoints: BTreeMap<String, FakeEndpoint>,
    tags: HashMap<String, Vec<Tag>>,
    /// Mutating calls, in order: `UpdateEndpoint sentiment <config>`.
    log: Vec<String>,
    /// How many more CreateModel calls find the role not yet assumable.
    role_not_ready: u32,
    /// How many more endpoint creations end `Failed` because the role is not usable yet.
    endpoint_role_not_ready: u32,
    /// The reason the next switch fails with, if it is to fail.
    fail_next_switch: Option<String>,
    /// Deletions of configurations or models an endpoint still used.
    violations: Vec<String>,
}

#[derive(Clone, Default)]
struct Sagemaker(Arc<Mutex<World>>);

impl Sagemaker {
    fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut w = self.0.lock().unwrap();
        f(&mut w)
    }
    fn log(&self) -> Vec<String> {
        self.with(|w| w.log.clone())
    }
    fn position(&self, prefix: &str) -> usize {
        let log = self.log();
        log.iter()
            .position(|e| e.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix:?} not in {log:?}"))
    }

    fn client(&self) -> Client {
        let rules = self.rules();
        let refs: Vec<&Rule> = rules.iter().collect();
        mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, refs)
    }

    fn rules(&self) -> Vec<Rule> {
        let s = self.clone();
        let create_model = mock!(Client::create_model).then_compute_response(move |req| {
            s.with(|w| {
                let name = req.model_name().unwrap_or_default().to_string();
                if w.role_not_ready > 0 {
                    w.role_not_ready -= 1;
                    let role = req.execution_role_arn().unwrap_or_default();
                    return MockResponse::Error(CreateModelError::generic(validation(format!(
                        "Could not assume role {role}. Please ensure that the role exists and allows principal 'sagemaker.amazonaws.com' to assume the role."
                    ))));
                }
                let arn = format!("{REGION_ARN}:model/{name}");
                if w.models.contains_key(&name) {
                    return MockResponse::Error(CreateModelError::generic(validation(format!("Cannot create already existing model \"{arn}\"."))));
                }
                w.models.insert(name.clone(), req.primary_container().cloned().unwrap_or_else(|| ContainerDefinition::builder().build()));
                w.tags.insert(arn.clone(), req.tags().to_vec());
                w.log.push(format!("CreateModel {name}"));
                MockResponse::Output(CreateModelOutput::builder().model_arn(arn).build())
            })
        });
        let s = self.clone();
        let describe_model = mock!(Client::describe_model).then_compute_response(move |req| {
            s.with(|w| {
                let name = req.model_name().unwrap_or_default();
                match w.models.get(name) {
                    Some(c) => MockResponse::Output(
                        DescribeModelOutput::builder()
                            .model_name(name)
                            .model_arn(format!("{REGION_ARN}:model/{name}"))
                            .execution_role_arn(ROLE)
                            .primary_container(c.clone())
                            .build(),
                    ),
                    None => {
                        MockResponse::Error(DescribeModelError::generic(not_found("model", name)))
                    }
                }
            })
        });
        let s = self.clone();
        let delete_model = mock!(Client::delete_model).then_compute_response(move |req| {
            s.with(|w| {
                let name = req.model_name().unwrap_or_default().to_string();
                let served = w.endpoints.values().any(|e| {
                    w.configs
                        .get(&e.config)
                        .is_some_and(|v| v.model_name() == Some(name.as_str()))
                });
                if served {
                    w.violations
                        .push(format!("deleted model {name} while an endpoint served it"));
                }
                match w.models.remove(&name) {
                    Some(_) => {
                        w.log.push(format!("DeleteModel {name}"));
                        MockResponse::Output(DeleteModelOutput::builder().build())
                    }
                    None => {
                        MockResponse::Error(DeleteModelError::generic(not_found("model", &name)))
                    }
                }
            })
        });
        let s = self.clone();
        let create_config =
            mock!(Client::create_endpoint_config).then_compute_response(move |req| {
                s.with(|w| {
                    let name = req.endpoint_config_name().unwrap_or_default().to_string();
                    let arn = format!("{REGION_ARN}:endpoint-config/{name}");
                    if w.configs.contains_key(&name) {
                        return MockResponse::Error(CreateEndpointConfigError::generic(
                            validation(format!(
                                "Cannot create already existing endpoint configuration \"{arn}\"."
                            )),
                        ));
                    }
                    let Some(variant) = req.production_variants().first() else {
                        return MockResponse::Error(CreateEndpointConfigError::generic(
                            validation("no variant".into()),
                        ));
                    };
                    if !w
                        .models
                        .contains_key(variant.model_name().unwrap_or_default())
                    {
                        return MockResponse::Error(CreateEndpointConfigError::generic(not_found(
                            "model",
                            variant.model_name().unwrap_or_default(),
                        )));
                    }
                    w.configs.insert(name.clone(), variant.clone());
                    w.tags.insert(arn.clone(), req.tags().to_vec());
                    w.log.push(format!("CreateEndpointConfig {name}"));
                    MockResponse::Output(
                        CreateEndpointConfigOutput::builder()
                            .endpoint_config_arn(arn)
                            .build(),
                    )
                })
            });
        let s = self.clone();
        let describe_config =
            mock!(Client::describe_endpoint_config).then_compute_response(move |req| {
                s.with(|w| {
                    let name = req.endpoint_config_name().unwrap_or_default();
                    match w.configs.get(name) {
                        Some(v) => MockResponse::Output(
                            DescribeEndpointConfigOutput::builder()
                                .endpoint_config_name(name)
                                .endpoint_config_arn(format!("{REGION_ARN}:endpoint-config/{name}"))
                                .production_variants(v.clone())
                                .build(),
                        ),
                        None => MockResponse::Error(DescribeEndpointConfigError::generic(
                            not_found("endpoint configuration", name),
                        )),
                    }
                })
            });
        let s = self.clone();
        let delete_config =
            mock!(Client::delete_endpoint_config).then_compute_response(move |req| {
                s.with(|w| {
                    let name = req.endpoint_config_name().unwrap_or_default().to_string();
                    for (e, ep) in &w.endpoints {
                        if ep.config == name
                            || ep.switch.as_ref().is_some_and(|(to, _, _)| *to == name)
                        {
                            w.violations.push(format!(
                                "deleted configuration {name} while endpoint {e} used it"
                            ));
                        }
                    }
                    match w.configs.remove(&name) {
                        Some(_) => {
                            w.log.push(format!("DeleteEndpointConfig {name}"));
                            MockResponse::Output(DeleteEndpointConfigOutput::builder().build())
                        }
                        None => MockResponse::Error(DeleteEndpointConfigError::generic(not_found(
                            "endpoint configuration",
                            &name,
                        ))),
                    }
                })
            });
        let s = self.clone();
        let create_endpoint = mock!(Client::create_endpoint).then_compute_response(move |req| {
            s.with(|w| {
                let name = req.endpoint_name().unwrap_or_default().to_string();
                let config = req.endpoint_config_name().unwrap_or_default().to_string();
                let arn = format!("{REGION_ARN}:endpoint/{name}");
                if w.endpoints.contains_key(&name) {
                    return MockResponse::Error(CreateEndpointError::generic(validation(format!(
                        "Cannot create already existing endpoint \"{arn}\"."
                    ))));
                }
                let fails_creation = (w.endpoint_role_not_ready > 0).then(|| {
                    w.endpoint_role_not_ready -= 1;
                    format!("The execution role ARN \"{ROLE}\" is invalid. Please ensure that the role exists and that its trust relationship policy allows the action \"sts:AssumeRole\" for the service principal \"sagemaker.amazonaws.com\".")
                });
                w.endpoints.insert(
                    name.clone(),
                    FakeEndpoint {
                        config: config.clone(),
                        status: EndpointStatus::Creating,
                        switch: Some((config.clone(), 2, None)),
                        failure_reason: None,
                        fails_creation,
                    },
                );
                w.tags.insert(arn.clone(), req.tags().to_vec());
                w.log.push(format!("CreateEndpoint {name} {config}"));
                MockResponse::Output(CreateEndpointOutput::builder().endpoint_arn(arn).build())
            })
        });
        let s = self.clone();
        let update_endpoint = mock!(Client::update_endpoint).then_compute_response(move |req| {
            s.with(|w| {
                let name = req.endpoint_name().unwrap_or_default().to_string();
                let config = req.endpoint_config_name().unwrap_or_default().to_string();
                let arn = format!("{REGION_ARN}:endpoint/{name}");
                let fail = w.fail_next_switch.take();
                let known_config = w.configs.contains_key(&config);
                let Some(e) = w.endpoints.get_mut(&name) else {
                    return MockResponse::Error(UpdateEndpointError::generic(not_found(
                        "endpoint", &name,
                    )));
                };
                if e.status != EndpointStatus::InService {
                    return MockResponse::Error(UpdateEndpointError::generic(validation(format!(
                        "Cannot update in-progress endpoint \"{arn}\"."
                    ))));
                }
                if !known_config {
                    return MockResponse::Error(UpdateEndpointError::generic(not_found(
                        "endpoint configuration",
                        &config,
                    )));
                }
                e.status = EndpointStatus::Updating;
                e.switch = Some((config.clone(), 2, fail));
                e.failure_reason = None;
                w.log.push(format!("UpdateEndpoint {name} {config}"));
                MockResponse::Output(UpdateEndpointOutput::builder().endpoint_arn(arn).build())
            })
        });
        let s = self.clone();
        let describe_endpoint =
            mock!(Client::describe_endpoint).then_compute_response(move |req| {
                s.with(|w| {
                    let name = req.endpoint_name().unwrap_or_default();
                    let Some(e) = w.endpoints.get_mut(name) else {
                        return MockResponse::Error(DescribeEndpointError::generic(not_found(
                            "endpoint", name,
                        )));
                    };
                    let mut out = DescribeEndpointOutput::builder()
                        .endpoint_name(name)
                        .endpoint_arn(format!("{REGION_ARN}:endpoint/{name}"))
                        .endpoint_config_name(e.config.clone());
                    // Each look brings a creation or a switch closer to its end.
                    if let Some((to, looks, fail)) = e.switch.take() {
                        if looks > 0 {
                            out = out.pending_deployment_summary(
                                PendingDeploymentSummary::builder()
                                    .endpoint_config_name(&to)
                                    .build(),
                            );
                            e.switch = Some((to, looks - 1, fail));
                        } else if let Some(reason) = e.fails_creation.take() {
                            e.status = EndpointStatus::Failed;
                            e.failure_reason = Some(reason);
                        } else {
                            e.status = EndpointStatus::InService;
                            match fail {
                                Some(reason) => e.failure_reason = Some(reason),
                                None => e.config = to,
                            }
                            out = out.endpoint_config_name(e.config.clone());
                        }
                    }
                    if e.status == EndpointStatus::Deleting {
                        w.endpoints.remove(name);
                        return MockResponse::Error(DescribeEndpointError::generic(not_found(
                            "endpoint", name,
                        )));
                    }
                    MockResponse::Output(
                        out.endpoint_status(e.status.clone())
                            .set_failure_reason(e.failure_reason.clone())
                            .build(),
                    )
                })
            });
        let s = self.clone();
        let delete_endpoint = mock!(Client::delete_endpoint).then_compute_response(move |req| {
            s.with(|w| {
                let name = req.endpoint_name().unwrap_or_default().to_string();
                match w.endpoints.get_mut(&name) {
                    Some(e) => {
                        e.status = EndpointStatus::Deleting;
                        w.log.push(format!("DeleteEndpoint {name}"));
                        MockResponse::Output(DeleteEndpointOutput::builder().build())
                    }
                    None => MockResponse::Error(DeleteEndpointError::generic(not_found(
                        "endpoint", &name,
                    ))),
                }
            })
        });
        let s = self.clone();
        let list_tags = mock!(Client::list_tags).then_compute_response(move |req| {
            s.with(
                |w| match w.tags.get(req.resource_arn().unwrap_or_default()) {
                    Some(tags) => MockResponse::Output(
                        ListTagsOutput::builder()
                            .set_tags(Some(tags.clone()))
                            .build(),
                    ),
                    None => MockResponse::Error(ListTagsError::generic(validation(
                        "no such resource".into(),
                    ))),
                },
            )
        });
        vec![
            create_model,
            describe_model,
            delete_model,
            create_config,
            describe_config,
            delete_config,
            create_endpoint,
            update_endpoint,
            describe_endpoint,
            delete_endpoint,
            list_tags,
        ]
    }
}

struct Progress(Mutex<Vec<String>>);

impl EventSink for Progress {
    fn emit(&self, event: Event) {
        if let Event::Progress { id, message } = event {
            self.0.lock().unwrap().push(format!("{id}: {message}"));
        }
    }
}

/// The engine, the kinds on the fake, and a state file.
struct Run {
    fake: Sagemaker,
    kinds: SagemakerKinds,
    dir: tempfile::TempDir,
    progress: Arc<Progress>,
    timeout_scale: f64,
}

impl Run {
    fn new() -> Run {
        let fake = Sagemaker::default();
        let kinds = SagemakerKinds::new(fake.client());
        Run {
            fake,
            kinds,
            dir: tempfile::tempdir().unwrap(),
            progress: Arc::new(Progress(Mutex::new(Vec::new()))),
            timeout_scale: 1.0,
        }
    }

    fn store(&self) -> Arc<dyn StateStore> {
        Arc::new(LocalStore::new(self.dir.path().join("state.json")))
    }

    async fn state(&self) -> State {
        self.store()
            .load()
            .await
            .unwrap()
            .unwrap_or_else(|| State::new("streamlit-app-test", "123456789012", "us-east-1"))
    }

    /// model <- config <- endpoint `sentiment`, as the stack wires them.
    fn graph(&self, image: &str, memory: u32) -> Graph {
        let mut g = Graph::new();
        let stem = "streamlit-app-test-sentiment";
        let image = image.to_string();
        let model = Node::new("endpoint/sentiment/model", self.kinds.model.clone())
            .named(stem)
            .fixed(&ModelSpec {
                execution_role_arn: ROLE.into(),
                image,
                environment: BTreeMap::from([("HF_TASK".to_string(), "fill-mask".to_string())]),
                model_data_url: None,
            });
        let m: Ref<ModelOut> = model.handle();
        let config = Node::new(
            "endpoint/sentiment/config",
            self.kinds.endpoint_config.clone(),
        )
        .named(stem)
        .spec(m.ready(), move |model| EndpointConfigSpec {
            model_name: model.model_name,
            capacity: Capacity::Serverless {
                memory_size_in_mb: memory,
                max_concurrency: 1,
                provisioned_concurrency: None,
            },
        });
        let c: Ref<EndpointConfigOut> = config.handle();
        let endpoint = Node::new("endpoint/sentiment", self.kinds.endpoint.clone())
            .named("sentiment")
            .spec(c.ready(), |config| EndpointSpec {
                endpoint_config_name: config.endpoint_config_name,
                failed: false,
            });
        for n in [model, config, endpoint] {
            g.add(n).unwrap();
        }
        g
    }

    fn engine(&self) -> (Engine, tokio::sync::watch::Sender<bool>) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let stack = Stack {
            name: "streamlit-app-test".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
        };
        let settings = RunSettings {
            wait_scale: 0.001,
            timeout_scale: self.timeout_scale,
            ..RunSettings::default()
        };
        (Engine::new(stack, self.progress.clone(), settings, rx), tx)
    }

    async fn up(&self, graph: Graph) -> Result<(), RunError> {
        let (engine, _cancel) = self.engine();
        let state = self.state().await;
        let prepared = engine.plan(&graph, &state).await?;
        let handle = StateHandle::new(self.store(), state);
        let mut registry = Kinds::new();
        for k in self.kinds.all() {
            registry.add(k).unwrap();
        }
        engine
            .apply(Arc::new(graph), prepared, handle, &registry)
            .await
            .map(|_| ())
    }

    async fn down(&self) -> Result<(), RunError> {
        let (engine, _cancel) = self.engine();
        let handle = StateHandle::new(self.store(), self.state().await);
        let mut registry = Kinds::new();
        for k in self.kinds.all() {
            registry.add(k).unwrap();
        }
        engine.destroy(handle, &registry).await.map(|_| ())
    }

    fn serving(&self) -> String {
        self.fake.with(|w| w.endpoints["sentiment"].config.clone())
    }

    fn configs(&self) -> Vec<String> {
        self.fake.with(|w| w.configs.keys().cloned().collect())
    }

    fn memory_of(&self, config: &str) -> Option<i32> {
        self.fake.with(|w| {
            w.configs[config]
                .serverless_config()
                .and_then(|s| s.memory_size_in_mb())
        })
    }
}

const IMAGE: &str = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:1.13-transformers4.26-cpu-py39-ubuntu20.04";

#[tokio::test]
async fn a_memory_change_switches_the_endpoint_to_a_new_configuration_then_deletes_the_old_one() {
    let run = Run::new();
    run.up(run.graph(IMAGE, 2048)).await.unwrap();
    let old = run.serving();
    assert_eq!(run.memory_of(&old), Some(2048));
    assert!(
        old.starts_with("streamlit-app-test-sentiment-") && old.len() <= 63,
        "{old}"
    );
    assert!(
        run.progress
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|p| p == "endpoint/sentiment: endpoint sentiment is InService"),
        "up reports each endpoint's status"
    );
    let models_before = run.fake.with(|w| w.models.len());

    run.up(run.graph(IMAGE, 3072)).await.unwrap();
    let new = run.serving();
    assert_ne!(new, old, "a changed configuration has a new name");
    assert_eq!(run.memory_of(&new), Some(3072));
    assert_eq!(
        run.configs(),
        std::slice::from_ref(&new),
        "the old configuration is gone"
    );
    let created = run.fake.position(&format!("CreateEndpointConfig {new}"));
    let switched = run
        .fake
        .position(&format!("UpdateEndpoint sentiment {new}"));
    let deleted = run.fake.position(&format!("DeleteEndpointConfig {old}"));
    assert!(
        created < switched && switched < deleted,
        "{:?}",
        run.fake.log()
    );
    assert!(
        run.fake.with(|w| w.violations.is_empty()),
        "{:?}",
        run.fake.with(|w| w.violations.clone())
    );
    assert_eq!(
        run.fake.with(|w| w.models.len()),
        models_before,
        "the model did not change, so it stays"
    );
    assert!(!run.fake.log().iter().any(|e| e.starts_with("DeleteModel")));
    assert!(run.state().await.deposed.is_empty());

    // Nothing left to do: a rerun makes no call that changes anything.
    let calls = run.fake.log().len();
    run.up(run.graph(IMAGE, 3072)).await.unwrap();
    assert_eq!(run.fake.log().len(), calls);
}

#[tokio::test]
async fn a_new_image_makes_a_new_model_and_configuration_and_the_old_ones_go_after_the_switch() {
    let run = Run::new();
    run.up(run.graph(IMAGE, 2048)).await.unwrap();
    let (old_model, old_config) = run.fake.with(|w| {
        (
            w.models.keys().next().cloned().unwrap(),
            w.endpoints["sentiment"].config.clone(),
        )
    });

    run.up(run.graph(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/hf@sha256:1234",
        2048,
    ))
    .await
    .unwrap();
    let new_config = run.serving();
    assert_ne!(new_config, old_config);
    let log = run.fake.log();
    let switched = run.fake.position("UpdateEndpoint sentiment");
    let config_gone = run
        .fake
        .position(&format!("DeleteEndpointConfig {old_config}"));
    let model_gone = run.fake.position(&format!("DeleteModel {old_model}"));
    assert!(
        switched < config_gone && config_gone < model_gone,
        "the old configuration goes before its model: {log:?}"
    );
    assert_eq!(run.fake.with(|w| w.models.len()), 1);
    assert!(run.fake.with(|w| w.violations.is_empty()));
}

#[tokio::test]
async fn a_failed_switch_keeps_the_old_configuration_serving_until_a_switch_succeeds() {
    let run = Run::new();
    run.up(run.graph(IMAGE, 2048)).await.unwrap();
    let a = run.serving();
    run.fake.with(|w| w.fail_next_switch = Some("The primary container for production variant AllTraffic did not pass the ping health check.".into()));

    let err = run.up(run.graph(IMAGE, 4096)).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("did not switch")
            && text.contains("ping health check")
            && text.contains(&format!("still serves {a}")),
        "{text}"
    );
    assert_eq!(
        run.serving(),
        a,
        "SageMaker rolled back to the old configuration"
    );
    assert!(
        run.configs().contains(&a),
        "the configuration in service is kept"
    );
    assert!(
        !run.fake
            .log()
            .iter()
            .any(|e| e.starts_with("DeleteEndpointConfig")),
        "{:?}",
        run.fake.log()
    );
    let state = run.state().await;
    assert_eq!(
        state.deposed.len(),
        1,
        "the old configuration waits, deposed, for a successful switch"
    );
    assert_eq!(
        state.deposed[0].record.physical_id.as_deref(),
        Some(a.as_str())
    );

    // The cause is fixed: the rerun switches, and only then deletes the old configuration.
    run.up(run.graph(IMAGE, 4096)).await.unwrap();
    let b = run.serving();
    assert_eq!(run.memory_of(&b), Some(4096));
    assert_eq!(run.configs(), [b]);
    assert!(run.state().await.deposed.is_empty());
    assert!(run.fake.with(|w| w.violations.is_empty()));
}

#[tokio::test]
async fn reverting_after_a_failed_switch_keeps_the_configuration_in_service() {
    let run = Run::new();
    run.up(run.graph(IMAGE, 2048)).await.unwrap();
    let a = run.serving();
    run.fake
        .with(|w| w.fail_next_switch = Some("out of capacity".into()));
    run.up(run.graph(IMAGE, 4096)).await.unwrap_err();

    // Back to 2048: its configuration's name is the one in service (the name follows the
    // settings), which SageMaker refuses to create twice; it is found and kept, and the
    // failed one is deleted.
    run.up(run.graph(IMAGE, 2048)).await.unwrap();
    assert_eq!(run.serving(), a);
    assert_eq!(
        run.configs(),
        std::slice::from_ref(&a),
        "only the configuration in service is left"
    );
    assert!(
        !run.fake
            .log()
            .iter()
            .any(|e| *e == format!("DeleteEndpointConfig {a}")),
        "{:?}",
        run.fake.log()
    );
    assert!(run.state().await.deposed.is_empty());
    assert!(run.fake.with(|w| w.violations.is_empty()));
}

#[tokio::test]
async fn a_new_role_is_retried_until_sagemaker_can_assume_it() {
    let run = Run::new();
    run.fake.with(|w| w.role_not_ready = 3);
    run.up(run.graph(IMAGE, 2048)).await.unwrap();
    assert_eq!(
        run.fake
            .log()
            .iter()
            .filter(|e| e.starts_with("CreateModel"))
            .count(),
        1
    );
    assert_eq!(
        run.fake.with(|w| w.role_not_ready),
        0,
        "three refusals, then the create"
    );
}

#[tokio::test]
async fn an_endpoint_that_fails_on_its_new_role_is_deleted_and_created_again() {
    let run = Run::new();
    run.fake.with(|w| w.endpoint_role_not_ready = 1);
    run.up(run.graph(IMAGE, 2048)).await.unwrap();
    let endpoint_calls: Vec<String> = run
        .fake
        .log()
        .into_iter()
        .filter(|e| e.contains("Endpoint "))
        .collect();
    assert_eq!(endpoint_calls.len(), 3, "{endpoint_calls:?}");
    assert!(endpoint_calls[0].starts_with("CreateEndpoint sentiment "));
    assert_eq!(endpoint_calls[1], "DeleteEndpoint sentiment");
    assert!(endpoint_calls[2].starts_with("CreateEndpoint sentiment "));
    let e = run.fake.with(|w| w.endpoints["sentiment"].clone());
    assert_eq!(e.status, EndpointStatus::InService);
}

#[tokio::test]
async fn a_role_that_never_becomes_usable_fails_within_the_bound() {
    let mut run = Run::new();
    run.timeout_scale = 0.005;
    run.fake.with(|w| w.role_not_ready = u32::MAX);
    let err = run.up(run.graph(IMAGE, 2048)).await.unwrap_err();
    match err {
        RunError::Failed { failures, .. } => {
            // The last refusal, in SageMaker's words, and how long it was retried.
            let message = &failures[0].error.message;
            assert!(message.contains("Could not assume role"), "{message}");
            assert!(message.contains("still failing after"), "{message}");
            assert_eq!(
                failures[0].error.code.as_deref(),
                Some("ValidationException")
            );
            assert!(
                failures[0]
                    .error
                    .hint
                    .as_deref()
                    .is_some_and(|h| h.contains("iam-propagation"))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        run.fake
            .with(|w| w.models.is_empty() && w.endpoints.is_empty())
    );
}

#[tokio::test]
async fn down_deletes_the_endpoint_then_its_configuration_then_its_model() {
    let run = Run::new();
    run.up(run.graph(IMAGE, 2048)).await.unwrap();
    run.down().await.unwrap();
    assert!(
        run.fake
            .with(|w| w.models.is_empty() && w.configs.is_empty() && w.endpoints.is_empty())
    );
    assert!(run.fake.position("DeleteEndpoint") < run.fake.position("DeleteEndpointConfig"));
    assert!(run.fake.position("DeleteEndpointConfig") < run.fake.position("DeleteModel"));
}

#[tokio::test]
async fn resources_of_another_stack_are_refused() {
    let run = Run::new();
    // An endpoint of this name exists already, made by someone else.
    run.fake.with(|w| {
        w.endpoints.insert(
            "sentiment".into(),
            FakeEndpoint {
                config: "theirs".into(),
                status: EndpointStatus::InService,
                switch: None,
                failure_reason: None,
                fails_creation: None,
            },
        );
        w.tags.insert(
            format!("{REGION_ARN}:endpoint/sentiment"),
            vec![Tag::builder().key("owner").value("data-team").build()],
        );
    });
    let err = run.up(run.graph(IMAGE, 2048)).await.unwrap_err();
    assert!(
        err.to_string().contains("not managed by provision"),
        "{err}"
    );
    assert_eq!(run.serving(), "theirs");
}

#[test]
fn physical_names_follow_the_settings() {
    let a = physical_name(
        "streamlit-app-dev-sentiment",
        &provision_core::resource::to_settings(&json!({"x": 1})),
    );
    let b = physical_name(
        "streamlit-app-dev-sentiment",
        &provision_core::resource::to_settings(&json!({"x": 2})),
    );
    assert_ne!(a, b);
    assert!(
        a.starts_with("streamlit-app-dev-sentiment-")
            && a.len() == "streamlit-app-dev-sentiment-".len() + 8
    );
    let long = physical_name(&"e".repeat(200), &Settings::new());
    assert!(long.len() <= 63, "{long}");
    let valid = |s: &str| {
        s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
            && !s.contains("--")
    };
    assert!(valid(&a) && valid(&long), "{a} {long}");
}
