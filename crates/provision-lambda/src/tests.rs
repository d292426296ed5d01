//! The function kind driven by the real engine against a small in-memory Lambda built on the
//! SDK's mock client (`aws-smithy-mocks`). The emulator answers every call at once and
//! never refuses a new role, so what this proves needs a Lambda that behaves like AWS's:
//! new functions start `Pending`, an update runs (`LastUpdateStatus: InProgress`) and refuses
//! a second update meanwhile (`ResourceConflictException`), and a role just created cannot be
//! assumed for a few seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::operation::create_function::{CreateFunctionError, CreateFunctionOutput};
use aws_sdk_lambda::operation::delete_function::{DeleteFunctionError, DeleteFunctionOutput};
use aws_sdk_lambda::operation::get_function::{GetFunctionError, GetFunctionOutput};
use aws_sdk_lambda::operation::update_function_code::{
    UpdateFunctionCodeError, UpdateFunctionCodeOutput,
};
use aws_sdk_lambda::operation::update_function_configuration::{
    UpdateFunctionConfigurationError, UpdateFunctionConfigurationOutput,
};
use aws_sdk_lambda::types::error::{
    InvalidParameterValueException, ResourceConflictException, ResourceNotFoundException,
};
use aws_sdk_lambda::types::{EnvironmentResponse, FunctionCodeLocation};
use aws_smithy_mocks::{MockResponse, Rule, RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use provision_core::engine::{Engine, Kinds, RunError, StateHandle};
use provision_core::event::{Event, EventSink};
use provision_core::graph::Graph;
use provision_core::resource::{Node, RunSettings, Stack};
use provision_core::state::{LocalStore, State as StateFile, StateStore};

use super::*;

const ROLE: &str =
    "arn:aws:iam::123456789012:role/streamlit-app-test-counterfactual-lambda-function";
const IMAGE: &str =
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/streamlit-app-test/functions/f@sha256:aaa";

#[derive(Clone)]
struct FakeFunction {
    spec: FunctionSpec,
    state: State,
    update: Option<LastUpdateStatus>,
    /// Looks (GetFunction calls) until the pending state or running update ends.
    looks: u32,
    tags: HashMap<String, String>,
}

#[derive(Default)]
struct World {
    functions: HashMap<String, FakeFunction>,
    log: Vec<String>,
    role_not_ready: u32,
    /// Update calls refused because another update was running: what a caller that does not
    /// wait would get.
    conflicts: u32,
    /// Someone else's change starts between the next look and the next configuration update
    /// (this many times): the update is refused however carefully the caller waited.
    races: u32,
}

#[derive(Clone, Default)]
struct Lambda(Arc<Mutex<World>>);

fn meta(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn configuration(name: &str, f: &FakeFunction) -> FunctionConfiguration {
    FunctionConfiguration::builder()
        .function_name(name)
        .function_arn(format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{name}"
        ))
        .role(&f.spec.role_arn)
        .memory_size(f.spec.memory_size as i32)
        .timeout(f.spec.timeout_seconds as i32)
        .architectures(Architecture::from(f.spec.architecture.as_str()))
        .set_environment((!f.spec.environment.is_empty()).then(|| {
            EnvironmentResponse::builder()
                .set_variables(Some(f.spec.environment.clone().into_iter().collect()))
                .build()
        }))
        .package_type(PackageType::Image)
        .state(f.state.clone())
        .set_last_update_status(f.update.clone())
        .build()
}

impl Lambda {
    fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
    fn log(&self) -> Vec<String> {
        self.with(|w| w.log.clone())
    }
    fn spec(&self, name: &str) -> FunctionSpec {
        self.with(|w| w.functions[name].spec.clone())
    }

    fn client(&self) -> Client {
        let rules = self.rules();
        let refs: Vec<&Rule> = rules.iter().collect();
        mock_client!(aws_sdk_lambda, RuleMode::MatchAny, refs)
    }

    fn rules(&self) -> Vec<Rule> {
        let l = self.clone();
        let create = mock!(Client::create_function).then_compute_response(move |req| {
            l.with(|w| {
                let name = req.function_name().unwrap_or_default().to_string();
                if w.role_not_ready > 0 {
                    w.role_not_ready -= 1;
                    let m = "The role defined for the function cannot be assumed by Lambda.";
                    return MockResponse::Error(
                        CreateFunctionError::InvalidParameterValueException(
                            InvalidParameterValueException::builder()
                                .message(m)
                                .meta(meta("InvalidParameterValueException", m))
                                .build(),
                        ),
                    );
                }
                if w.functions.contains_key(&name) {
                    let m = format!("Function already exist: {name}");
                    return MockResponse::Error(CreateFunctionError::ResourceConflictException(
                        ResourceConflictException::builder()
                            .message(&m)
                            .meta(meta("ResourceConflictException", &m))
                            .build(),
                    ));
                }
                let f = FakeFunction {
                    spec: FunctionSpec {
                        image_uri: req
                            .code()
                            .and_then(|c| c.image_uri())
                            .unwrap_or_default()
                            .to_string(),
                        role_arn: req.role().unwrap_or_default().to_string(),
                        architecture: req
                            .architectures()
                            .first()
                            .map(|a| a.as_str().to_string())
                            .unwrap_or_else(|| "x86_64".into()),
                        memory_size: req.memory_size().unwrap_or(128) as u32,
                        timeout_seconds: req.timeout().unwrap_or(3) as u32,
                        environment: req
                            .environment()
                            .and_then(|e| e.variables())
                            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                            .unwrap_or_default(),
                    },
                    state: State::Pending,
                    update: None,
                    looks: 2,
                    tags: req.tags().cloned().unwrap_or_default(),
                };
                let c = configuration(&name, &f);
                w.functions.insert(name.clone(), f);
                w.log.push(format!("CreateFunction {name}"));
                MockResponse::Output(
                    CreateFunctionOutput::builder()
                        .function_name(&name)
                        .set_function_arn(c.function_arn().map(str::to_string))
                        .state(State::Pending)
                        .build(),
                )
            })
        });
        let l = self.clone();
        let get = mock!(Client::get_function).then_compute_response(move |req| {
            l.with(|w| {
                let name = req.function_name().unwrap_or_default();
                let Some(f) = w.functions.get_mut(name) else {
                    let m = format!("Function not found: {name}");
                    return MockResponse::Error(GetFunctionError::ResourceNotFoundException(
                        ResourceNotFoundException::builder()
                            .message(&m)
                            .meta(meta("ResourceNotFoundException", &m))
                            .build(),
                    ));
                };
                if f.looks > 0 {
                    f.looks -= 1;
                } else {
                    f.state = State::Active;
                    if f.update == Some(LastUpdateStatus::InProgress) {
                        f.update = Some(LastUpdateStatus::Successful);
                    }
                }
                MockResponse::Output(
                    GetFunctionOutput::builder()
                        .configuration(configuration(name, f))
                        .code(
                            FunctionCodeLocation::builder()
                                .repository_type("ECR")
                                .image_uri(&f.spec.image_uri)
                                .build(),
                        )
                        .set_tags(Some(f.tags.clone()))
                        .build(),
                )
            })
        });
        let l = self.clone();
        let update_code = mock!(Client::update_function_code).then_compute_response(move |req| {
            l.with(|w| {
                let name = req.function_name().unwrap_or_default().to_string();
                let Some(f) = w.functions.get_mut(&name) else {
                    return MockResponse::Error(UpdateFunctionCodeError::ResourceNotFoundException(ResourceNotFoundException::builder().build()));
                };
                if f.update == Some(LastUpdateStatus::InProgress) || f.state == State::Pending {
                    w.conflicts += 1;
                    let m = format!("The operation cannot be performed at this time. An update is in progress for resource: {name}");
                    return MockResponse::Error(UpdateFunctionCodeError::ResourceConflictException(
                        ResourceConflictException::builder().message(&m).meta(meta("ResourceConflictException", &m)).build(),
                    ));
                }
                f.spec.image_uri = req.image_uri().unwrap_or_default().to_string();
                if let Some(a) = req.architectures().first() {
                    f.spec.architecture = a.as_str().to_string();
                }
                f.update = Some(LastUpdateStatus::InProgress);
                f.looks = 2;
                w.log.push(format!("UpdateFunctionCode {name}"));
                MockResponse::Output(UpdateFunctionCodeOutput::builder().function_name(&name).build())
            })
        });
        let l = self.clone();
        let update_config = mock!(Client::update_function_configuration).then_compute_response(move |req| {
            l.with(|w| {
                let name = req.function_name().unwrap_or_default().to_string();
                let Some(f) = w.functions.get_mut(&name) else {
                    return MockResponse::Error(UpdateFunctionConfigurationError::ResourceNotFoundException(ResourceNotFoundException::builder().build()));
                };
                if w.races > 0 {
                    w.races -= 1;
                    f.update = Some(LastUpdateStatus::InProgress);
                    f.looks = 2;
                }
                if f.update == Some(LastUpdateStatus::InProgress) || f.state == State::Pending {
                    w.conflicts += 1;
                    let m = format!("The operation cannot be performed at this time. An update is in progress for resource: {name}");
                    return MockResponse::Error(UpdateFunctionConfigurationError::ResourceConflictException(
                        ResourceConflictException::builder().message(&m).meta(meta("ResourceConflictException", &m)).build(),
                    ));
                }
                if let Some(m) = req.memory_size() {
                    f.spec.memory_size = m as u32;
                }
                if let Some(t) = req.timeout() {
                    f.spec.timeout_seconds = t as u32;
                }
                if let Some(r) = req.role() {
                    f.spec.role_arn = r.to_string();
                }
                if let Some(e) = req.environment() {
                    f.spec.environment = e.variables().map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
                }
                f.update = Some(LastUpdateStatus::InProgress);
                f.looks = 2;
                w.log.push(format!("UpdateFunctionConfiguration {name}"));
                MockResponse::Output(UpdateFunctionConfigurationOutput::builder().function_name(&name).build())
            })
        });
        let l = self.clone();
        let delete = mock!(Client::delete_function).then_compute_response(move |req| {
            l.with(|w| {
                let name = req.function_name().unwrap_or_default().to_string();
                match w.functions.remove(&name) {
                    Some(_) => {
                        w.log.push(format!("DeleteFunction {name}"));
                        MockResponse::Output(DeleteFunctionOutput::builder().build())
                    }
                    None => MockResponse::Error(DeleteFunctionError::ResourceNotFoundException(
                        ResourceNotFoundException::builder().build(),
                    )),
                }
            })
        });
        vec![create, get, update_code, update_config, delete]
    }
}

struct Progress(Mutex<Vec<String>>);

impl EventSink for Progress {
    fn emit(&self, event: Event) {
        if let Event::Progress { message, .. } = event {
            self.0.lock().unwrap().push(message);
        }
    }
}

struct Run {
    fake: Lambda,
    kinds: LambdaKinds,
    dir: tempfile::TempDir,
}

const NAME: &str = "streamlit-app-test-counterfactual-lambda";

impl Run {
    fn new() -> Run {
        let fake = Lambda::default();
        let kinds = LambdaKinds::new(fake.client());
        Run {
            fake,
            kinds,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn graph(&self, spec: FunctionSpec) -> Graph {
        let mut g = Graph::new();
        g.add(
            Node::new(
                "function/COUNTERFACTUAL_LAMBDA",
                self.kinds.function.clone(),
            )
            .named(NAME)
            .fixed(&spec),
        )
        .unwrap();
        g
    }

    async fn up(&self, spec: FunctionSpec) -> Result<(), RunError> {
        let graph = self.graph(spec);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let stack = Stack {
            name: "streamlit-app-test".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
        };
        let settings = RunSettings {
            wait_scale: 0.001,
            ..RunSettings::default()
        };
        let engine = Engine::new(
            stack,
            Arc::new(Progress(Mutex::new(Vec::new()))),
            settings,
            rx,
        );
        let store: Arc<dyn StateStore> =
            Arc::new(LocalStore::new(self.dir.path().join("state.json")));
        let state =
            store.load().await.unwrap().unwrap_or_else(|| {
                StateFile::new("streamlit-app-test", "123456789012", "us-east-1")
            });
        let prepared = engine.plan(&graph, &state).await?;
        let handle = StateHandle::new(store, state);
        let mut registry = Kinds::new();
        for k in self.kinds.all() {
            registry.add(k).unwrap();
        }
        engine
            .apply(Arc::new(graph), prepared, handle, &registry)
            .await
            .map(|_| ())
    }
}

fn spec() -> FunctionSpec {
    FunctionSpec {
        image_uri: IMAGE.into(),
        role_arn: ROLE.into(),
        architecture: "x86_64".into(),
        memory_size: 1024,
        timeout_seconds: 540,
        environment: BTreeMap::from([(
            "MLM_ENDPOINT_NAME".to_string(),
            "sentiment-unmasking".to_string(),
        )]),
    }
}

#[tokio::test]
async fn a_new_function_waits_for_its_role_then_for_active() {
    let run = Run::new();
    run.fake.with(|w| w.role_not_ready = 2);
    run.up(spec()).await.unwrap();
    assert_eq!(
        run.fake.log(),
        ["CreateFunction streamlit-app-test-counterfactual-lambda"]
    );
    assert_eq!(
        run.fake.with(|w| w.role_not_ready),
        0,
        "two refusals, then the create"
    );
    let f = run.fake.with(|w| w.functions[NAME].clone());
    assert_eq!(
        f.state,
        State::Active,
        "up returned only once the function was active"
    );
    assert_eq!(f.spec, spec());
    assert_eq!(
        f.tags.get("provision:stack").map(String::as_str),
        Some("streamlit-app-test")
    );
}

#[tokio::test]
async fn a_memory_change_is_one_configuration_update_waited_for() {
    let run = Run::new();
    run.up(spec()).await.unwrap();
    run.up(FunctionSpec {
        memory_size: 2048,
        ..spec()
    })
    .await
    .unwrap();
    assert_eq!(
        run.fake.log()[1..],
        ["UpdateFunctionConfiguration streamlit-app-test-counterfactual-lambda"]
    );
    assert_eq!(run.fake.spec(NAME).memory_size, 2048);
    assert_eq!(
        run.fake.with(|w| w.functions[NAME].update.clone()),
        Some(LastUpdateStatus::Successful)
    );

    run.up(FunctionSpec {
        memory_size: 2048,
        ..spec()
    })
    .await
    .unwrap();
    assert_eq!(run.fake.log().len(), 2, "a rerun changes nothing");
}

#[tokio::test]
async fn an_image_and_a_setting_change_update_code_then_configuration_one_at_a_time() {
    let run = Run::new();
    run.up(spec()).await.unwrap();
    let new = FunctionSpec {
        image_uri: format!("{}b", IMAGE),
        timeout_seconds: 60,
        environment: BTreeMap::new(),
        ..spec()
    };
    run.up(new.clone()).await.unwrap();
    assert_eq!(
        run.fake.log()[1..],
        [
            "UpdateFunctionCode streamlit-app-test-counterfactual-lambda",
            "UpdateFunctionConfiguration streamlit-app-test-counterfactual-lambda"
        ]
    );
    assert_eq!(
        run.fake.with(|w| w.conflicts),
        0,
        "each update waited for the one before"
    );
    assert_eq!(run.fake.spec(NAME), new, "emptied environment included");
}

#[tokio::test]
async fn a_change_while_the_function_is_still_pending_waits_for_it() {
    let run = Run::new();
    run.up(spec()).await.unwrap();
    // Someone else's update is running when ours comes.
    run.fake.with(|w| {
        let f = w.functions.get_mut(NAME).unwrap();
        f.update = Some(LastUpdateStatus::InProgress);
        f.looks = 3;
    });
    run.up(FunctionSpec {
        memory_size: 4096,
        ..spec()
    })
    .await
    .unwrap();
    assert_eq!(run.fake.with(|w| w.conflicts), 0);
    assert_eq!(run.fake.spec(NAME).memory_size, 4096);
}

#[tokio::test]
async fn a_failed_function_reports_why() {
    let run = Run::new();
    run.up(spec()).await.unwrap();
    run.fake.with(|w| {
        let f = w.functions.get_mut(NAME).unwrap();
        f.state = State::Failed;
        f.looks = u32::MAX;
    });
    let err = run.up(spec()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("function streamlit-app-test-counterfactual-lambda failed"),
        "{err}"
    );
}

#[tokio::test]
async fn a_function_of_another_stack_is_refused() {
    let run = Run::new();
    run.fake.with(|w| {
        w.functions.insert(
            NAME.into(),
            FakeFunction {
                spec: spec(),
                state: State::Active,
                update: None,
                looks: 0,
                tags: HashMap::from([(
                    "provision:stack".to_string(),
                    "streamlit-app-prod".to_string(),
                )]),
            },
        );
    });
    let err = run
        .up(FunctionSpec {
            memory_size: 128,
            ..spec()
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("belongs to stack streamlit-app-prod"),
        "{err}"
    );
    assert_eq!(run.fake.spec(NAME).memory_size, 1024);
}

#[tokio::test]
async fn an_update_that_races_another_change_is_sent_again_once_that_change_is_done() {
    let run = Run::new();
    run.up(spec()).await.unwrap();
    run.fake.with(|w| w.races = 2);
    run.up(FunctionSpec {
        memory_size: 3008,
        ..spec()
    })
    .await
    .unwrap();
    assert_eq!(run.fake.with(|w| w.conflicts), 2, "refused twice");
    assert_eq!(
        run.fake.log()[1..],
        ["UpdateFunctionConfiguration streamlit-app-test-counterfactual-lambda"],
        "then sent once more, and accepted"
    );
    assert_eq!(run.fake.spec(NAME).memory_size, 3008);
}
