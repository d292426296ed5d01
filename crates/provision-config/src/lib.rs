//! The deployment config: exactly the keys of the original CDK stack's `cdk.json` context.
//!
//! Parsing goes through `serde_json::Value` and a hand-written validator rather than
//! `#[derive(Deserialize)]`, so that every problem is reported at once, each with its full
//! key path (`sagemaker_endpoints[1].serverless_config.memory_size_in_mb`), a plain-words
//! message and, for unknown keys, a did-you-mean. Nothing here touches AWS: a config that
//! passes validation is one AWS should accept.
//!
//! This is the app's crate, not the engine's: `provision-core` knows resources, graphs and
//! state, and nothing of Streamlit, `cdk.json` or HuggingFace. It is a crate of its own rather
//! than a module of `provision-stack` because the stack links every AWS SDK crate, while the
//! config needs none: the fuzz target and anything else that only reads configs stay a small
//! build (`scripts/check-architecture` checks it has no SDK dependency).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

pub mod huggingface;

pub use provision_core::platform::Platform;
pub use provision_core::suggest::did_you_mean;

/// The application name every physical name starts with (the CDK stack's prefix).
pub const APP_NAME: &str = "streamlit-app";

/// An IAM policy statement as the CDK stack takes it: `Allow` these actions on these resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyStatement {
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// Where a function's or endpoint's container image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ImageSource {
    /// Built by `provision` from a folder holding a `Dockerfile`; `folder` is relative to the
    /// project root (for example `functions/text_counterfactuals`).
    Build { folder: String },
    /// An image that already exists in an ECR repository of the target account.
    Ecr { repository: String, tag: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LambdaFunction {
    pub environment_variable_name: String,
    pub image: ImageSource,
    pub platform: Platform,
    pub timeout_minutes: u32,
    pub memory_size: u32,
    pub environment_variables: BTreeMap<String, String>,
    pub policy_statements: Vec<PolicyStatement>,
}

/// How an endpoint gets compute: serverless, or instances (the seed's `production_variants`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Capacity {
    Serverless {
        memory_size_in_mb: u32,
        max_concurrency: u32,
        provisioned_concurrency: Option<u32>,
    },
    Instances {
        instance_type: String,
        initial_instance_count: u32,
        initial_variant_weight: f32,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "endpoint_type", rename_all = "snake_case")]
pub enum EndpointModel {
    Huggingface {
        model_name: Option<String>,
        model_task: Option<String>,
        model_data_url: Option<String>,
        use_gpu: bool,
        pytorch_version: String,
        transformers_version: String,
        ubuntu_version: String,
        image_uri: Option<String>,
    },
    ImageAndModelData {
        image: ImageSource,
        platform: Platform,
        model_data_bucket: Option<String>,
        model_data_url: Option<String>,
        container_environment: BTreeMap<String, String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SagemakerEndpoint {
    pub environment_variable_name: String,
    pub endpoint_name: String,
    pub capacity: Capacity,
    pub model: EndpointModel,
    /// Attach `AmazonSageMakerFullAccess` to the endpoint's role, as the CDK stack did. Off by
    /// default: the role then gets only what the endpoint runs on (its image, its logs, its
    /// metrics and its model data).
    pub sagemaker_full_access: bool,
}

/// A validated deployment config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub account: String,
    pub region: String,
    pub environment: String,
    /// The bare zone id, without any `/hostedzone/` prefix.
    pub hosted_zone_id: String,
    /// Lower case, without a trailing dot.
    pub domain_name: String,
    pub platform: Platform,
    pub lambda_functions: Vec<LambdaFunction>,
    pub sagemaker_endpoints: Vec<SagemakerEndpoint>,
    pub streamlit_environment_variables: BTreeMap<String, String>,
    pub ecs_policy_statements: Vec<PolicyStatement>,
}

impl Config {
    /// The domain the app is served on: `domain_name` in `prod`, else `<environment>.<domain_name>`.
    pub fn app_domain(&self) -> String {
        app_domain(&self.environment, &self.domain_name)
    }

    /// The value of the `provision:stack` tag and the prefix of every physical name.
    pub fn stack_name(&self) -> String {
        format!("{APP_NAME}-{}", self.environment)
    }

    pub fn is_prod(&self) -> bool {
        self.environment == "prod"
    }
}

/// The app's domain for an environment (see [`Config::app_domain`]).
pub fn app_domain(environment: &str, domain_name: &str) -> String {
    if environment == "prod" {
        domain_name.to_string()
    } else {
        format!("{environment}.{domain_name}")
    }
}

/// One problem in a config, at one key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {} is not valid JSON: {message} (line {line}, column {column})", path.display())]
    Syntax {
        path: PathBuf,
        message: String,
        line: usize,
        column: usize,
    },
    #[error("config file {} has {} problem{}:{}", path.display(), issues.len(), if issues.len() == 1 { "" } else { "s" }, list(issues))]
    Invalid { path: PathBuf, issues: Vec<Issue> },
}

fn list(issues: &[Issue]) -> String {
    issues.iter().map(|i| format!("\n  - {i}")).collect()
}

impl ConfigError {
    pub fn issues(&self) -> &[Issue] {
        match self {
            ConfigError::Invalid { issues, .. } => issues,
            _ => &[],
        }
    }
}

/// How much of the project a config is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checks {
    /// Everything, folders included: for commands that build and deploy.
    Full,
    /// The config alone: for commands that only need to know the stack (`down`, `outputs`),
    /// which must work even after a payload folder was removed.
    ConfigOnly,
}

/// Reads, parses and validates the config at `path`. Folders named by the config are
/// checked under `root` (the project directory).
pub fn load(path: &Path, root: &Path) -> Result<Config, ConfigError> {
    load_with(path, root, Checks::Full)
}

pub fn load_with(path: &Path, root: &Path, checks: Checks) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_with(&text, path, root, checks)
}

/// Parses and validates config text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path, root: &Path) -> Result<Config, ConfigError> {
    parse_with(text, path, root, Checks::Full)
}

pub fn parse_with(
    text: &str,
    path: &Path,
    root: &Path,
    checks: Checks,
) -> Result<Config, ConfigError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: syntax_message(&e),
        line: e.line(),
        column: e.column(),
    })?;
    let mut v = Validator {
        issues: Vec::new(),
        root: root.to_path_buf(),
        checks,
    };
    let config = v.config(&value);
    match config {
        Some(c) if v.issues.is_empty() => Ok(c),
        _ => Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            issues: v.issues,
        }),
    }
}

fn syntax_message(e: &serde_json::Error) -> String {
    // serde_json appends " at line X column Y"; we report those separately.
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

const TOP_KEYS: &[&str] = &[
    "account",
    "region",
    "environment",
    "hosted_zone_id",
    "domain_name",
    "platform",
    "lambda_functions",
    "sagemaker_endpoints",
    "streamlit_environment_variables",
    "ecs_policy_statements",
];

const FUNCTION_KEYS: &[&str] = &[
    "function_type",
    "environment_variable_name",
    "folder_name",
    "ecr_repo",
    "tag",
    "platform",
    "timeout",
    "memory_size",
    "environment_variables",
    "policy_statements",
];

const ENDPOINT_COMMON_KEYS: &[&str] = &[
    "endpoint_type",
    "environment_variable_name",
    "endpoint_name",
    "serverless_config",
    "production_variants",
    "sagemaker_full_access",
];

const HUGGINGFACE_KEYS: &[&str] = &[
    "model_name",
    "model_task",
    "model_data_url",
    "use_gpu",
    "pytorch_version",
    "transformers_version",
    "ubuntu_version",
    "image_uri",
];

const CUSTOM_ENDPOINT_KEYS: &[&str] = &[
    "dockerfile_folder",
    "image_repo_name",
    "image_tag",
    "platform",
    "model_data_bucket",
    "model_data_url",
    "container_environment",
];

/// Environment variables Lambda sets itself and refuses in a function's configuration.
const LAMBDA_RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// A key path under construction, such as `sagemaker_endpoints[1].serverless_config`.
#[derive(Clone)]
struct KeyPath(String);

impl KeyPath {
    fn root() -> Self {
        KeyPath(String::new())
    }
    fn key(&self, k: &str) -> Self {
        if self.0.is_empty() {
            KeyPath(k.to_string())
        } else {
            KeyPath(format!("{}.{k}", self.0))
        }
    }
    fn index(&self, i: usize) -> Self {
        KeyPath(format!("{}[{i}]", self.0))
    }
}

struct Validator {
    issues: Vec<Issue>,
    root: PathBuf,
    checks: Checks,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl Validator {
    fn issue(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.issues.push(Issue {
            path: path.0.clone(),
            message: message.into(),
        });
    }

    /// Checks `v` is an object and has no keys outside `known`.
    fn object<'v>(
        &mut self,
        path: &KeyPath,
        v: &'v Value,
        known: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(map) = v.as_object() else {
            self.issue(path, format!("must be an object, got {}", type_name(v)));
            return None;
        };
        for k in map.keys() {
            if !known.contains(&k.as_str()) {
                let mut msg = "unknown key".to_string();
                if let Some(s) = did_you_mean(k, known) {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                } else {
                    msg.push_str(&format!("; expected one of: {}", known.join(", ")));
                }
                self.issue(&path.key(k), msg);
            }
        }
        Some(map)
    }

    fn string(&mut self, path: &KeyPath, v: &Value) -> Option<String> {
        match v {
            Value::String(s) if s.trim().is_empty() => {
                self.issue(path, "must not be empty");
                None
            }
            Value::String(s) => Some(s.clone()),
            _ => {
                self.issue(path, format!("must be a string, got {}", type_name(v)));
                None
            }
        }
    }

    fn required_string(
        &mut self,
        path: &KeyPath,
        map: &Map<String, Value>,
        key: &str,
    ) -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => {
                self.issue(&path.key(key), "is required");
                None
            }
            Some(v) => self.string(&path.key(key), v),
        }
    }

    fn optional_string(
        &mut self,
        path: &KeyPath,
        map: &Map<String, Value>,
        key: &str,
    ) -> Option<Option<String>> {
        match map.get(key) {
            None | Some(Value::Null) => Some(None),
            Some(v) => self.string(&path.key(key), v).map(Some),
        }
    }

    /// An integer in `[min, max]`; `None` (with an issue) when it is anything else.
    fn integer(&mut self, path: &KeyPath, v: &Value, min: u64, max: u64) -> Option<u32> {
        let n = match v {
            Value::Number(n) => match n.as_u64() {
                Some(n) => n,
                None if n.as_i64().is_some() => {
                    self.issue(path, format!("must be between {min} and {max}, got {n}"));
                    return None;
                }
                None => {
                    self.issue(path, format!("must be a whole number, got {n}"));
                    return None;
                }
            },
            _ => {
                self.issue(path, format!("must be a number, got {}", type_name(v)));
                return None;
            }
        };
        if n < min || n > max {
            self.issue(path, format!("must be between {min} and {max}, got {n}"));
            return None;
        }
        u32::try_from(n).ok()
    }

    fn optional_integer(
        &mut self,
        path: &KeyPath,
        map: &Map<String, Value>,
        key: &str,
        min: u64,
        max: u64,
        default: u32,
    ) -> Option<u32> {
        match map.get(key) {
            None | Some(Value::Null) => Some(default),
            Some(v) => self.integer(&path.key(key), v, min, max),
        }
    }

    fn boolean(
        &mut self,
        path: &KeyPath,
        map: &Map<String, Value>,
        key: &str,
        default: bool,
    ) -> Option<bool> {
        match map.get(key) {
            None | Some(Value::Null) => Some(default),
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                self.issue(
                    &path.key(key),
                    format!("must be true or false, got {}", type_name(v)),
                );
                None
            }
        }
    }

    fn platform(
        &mut self,
        path: &KeyPath,
        map: &Map<String, Value>,
        key: &str,
        default: Platform,
    ) -> Option<Platform> {
        match map.get(key) {
            None | Some(Value::Null) => Some(default),
            Some(Value::String(s)) if s == "amd64" => Some(Platform::Amd64),
            Some(Value::String(s)) if s == "arm64" => Some(Platform::Arm64),
            Some(v) => {
                let got = match v {
                    Value::String(s) => format!("`{s}`"),
                    other => type_name(other).to_string(),
                };
                let hint = match v.as_str() {
                    Some("x86_64" | "x86-64" | "X86_64" | "amd" | "linux/amd64") => {
                        " (write `amd64`)"
                    }
                    Some("aarch64" | "ARM64" | "arm" | "graviton" | "linux/arm64") => {
                        " (write `arm64`)"
                    }
                    _ => "",
                };
                self.issue(
                    &path.key(key),
                    format!("must be \"arm64\" or \"amd64\", got {got}{hint}"),
                );
                None
            }
        }
    }

    /// An object of environment variables. Values may be strings, numbers or booleans (as the
    /// CDK stack accepted), and become strings; names must be valid variable names.
    fn env_map(&mut self, path: &KeyPath, v: Option<&Value>) -> Option<BTreeMap<String, String>> {
        let v = match v {
            None | Some(Value::Null) => return Some(BTreeMap::new()),
            Some(v) => v,
        };
        let Some(map) = v.as_object() else {
            self.issue(
                path,
                format!(
                    "must be an object of NAME: value pairs, got {}",
                    type_name(v)
                ),
            );
            return None;
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (k, val) in map {
            let p = path.key(k);
            if !is_env_name(k) {
                self.issue(
                    &p,
                    "is not a valid environment variable name (letters, digits and `_`, not starting with a digit)",
                );
                ok = false;
                continue;
            }
            let s = match val {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    self.issue(
                        &p,
                        format!(
                            "must be a string, number or boolean, got {}",
                            type_name(other)
                        ),
                    );
                    ok = false;
                    continue;
                }
            };
            out.insert(k.clone(), s);
        }
        ok.then_some(out)
    }

    fn statements(&mut self, path: &KeyPath, v: Option<&Value>) -> Option<Vec<PolicyStatement>> {
        let v = match v {
            None | Some(Value::Null) => return Some(Vec::new()),
            Some(v) => v,
        };
        let Some(items) = v.as_array() else {
            self.issue(
                path,
                format!(
                    "must be a list of {{\"actions\": [...], \"resources\": [...]}} objects, got {}",
                    type_name(v)
                ),
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let p = path.index(i);
            let Some(map) = self.object(&p, item, &["actions", "resources"]) else {
                ok = false;
                continue;
            };
            let actions = self.string_list(&p.key("actions"), map.get("actions"), |s| {
                if is_iam_action(s) {
                    None
                } else {
                    Some(format!(
                        "`{s}` is not an IAM action (write `service:Action`, for example `sagemaker:InvokeEndpoint`)"
                    ))
                }
            });
            let resources = self.string_list(&p.key("resources"), map.get("resources"), |s| {
                if s == "*" || s.starts_with("arn:") {
                    None
                } else {
                    Some(format!("`{s}` is not an ARN (write `arn:...` or `*`)"))
                }
            });
            match (actions, resources) {
                (Some(actions), Some(resources)) => {
                    out.push(PolicyStatement { actions, resources })
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A non-empty list of strings, each checked by `check` (which returns a problem or `None`).
    fn string_list(
        &mut self,
        path: &KeyPath,
        v: Option<&Value>,
        check: impl Fn(&str) -> Option<String>,
    ) -> Option<Vec<String>> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            self.issue(path, "is required");
            return None;
        };
        let Some(items) = v.as_array() else {
            self.issue(
                path,
                format!("must be a list of strings, got {}", type_name(v)),
            );
            return None;
        };
        if items.is_empty() {
            self.issue(path, "must not be empty");
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => match check(s) {
                    None => out.push(s.to_string()),
                    Some(problem) => {
                        self.issue(&path.index(i), problem);
                        ok = false;
                    }
                },
                None => {
                    self.issue(
                        &path.index(i),
                        format!("must be a string, got {}", type_name(item)),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// A folder name under `parent/` (`functions` or `endpoints`) that must hold a Dockerfile.
    fn build_folder(&mut self, path: &KeyPath, name: &str, parent: &str) -> Option<String> {
        let rel = Path::new(name);
        let escapes = rel.is_absolute()
            || rel.components().any(|c| !matches!(c, Component::Normal(_)))
            || name.contains('\\');
        if escapes {
            self.issue(
                path,
                format!(
                    "`{name}` must be a folder name inside `{parent}/`, not a path that leaves it"
                ),
            );
            return None;
        }
        let folder = format!("{parent}/{name}");
        self.dockerfile_folder(path, &folder)
    }

    /// Checks `root/folder` exists, stays inside the project (symlinks included) and has a Dockerfile.
    fn dockerfile_folder(&mut self, path: &KeyPath, folder: &str) -> Option<String> {
        if self.checks == Checks::ConfigOnly {
            return Some(folder.to_string());
        }
        let dir = self.root.join(folder);
        if !dir.is_dir() {
            self.issue(
                path,
                format!(
                    "folder `{}` does not exist (looked in {})",
                    folder,
                    dir.display()
                ),
            );
            return None;
        }
        if let (Ok(root), Ok(real)) = (self.root.canonicalize(), dir.canonicalize())
            && !real.starts_with(&root)
        {
            self.issue(
                path,
                format!(
                    "folder `{folder}` resolves to {}, outside the project {}",
                    real.display(),
                    root.display()
                ),
            );
            return None;
        }
        if !dir.join("Dockerfile").is_file() {
            self.issue(path, format!("folder `{folder}` has no Dockerfile"));
            return None;
        }
        Some(folder.to_string())
    }

    fn config(&mut self, value: &Value) -> Option<Config> {
        let root_path = KeyPath::root();
        // A whole `cdk.json` is accepted: its `context` holds our keys; CDK's own feature
        // flags (`@aws-cdk/...`) and other top-level keys are not ours to judge.
        let (value, path) = match value.as_object() {
            Some(m) if m.contains_key("context") && !m.contains_key("account") => {
                (&m["context"], root_path.key("context"))
            }
            _ => (value, root_path),
        };
        let Some(map) = value.as_object() else {
            self.issue(
                &path,
                format!("the config must be a JSON object, got {}", type_name(value)),
            );
            return None;
        };
        let ours: Map<String, Value> = map
            .iter()
            .filter(|(k, _)| {
                !(k.starts_with("@aws-cdk/")
                    || k.starts_with("aws-cdk:")
                    || k.starts_with("@aws-cdk-"))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let ours = Value::Object(ours);
        let map = self.object(&path, &ours, TOP_KEYS)?;

        let account = self.required_string(&path, map, "account").and_then(|a| {
            if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) {
                Some(a)
            } else {
                self.issue(
                    &path.key("account"),
                    format!("must be a 12-digit AWS account id, got `{a}`"),
                );
                None
            }
        });
        let region = self.required_string(&path, map, "region").and_then(|r| {
            if is_region(&r) {
                Some(r)
            } else {
                self.issue(
                    &path.key("region"),
                    format!("`{r}` is not an AWS region name (for example `us-east-1`)"),
                );
                None
            }
        });
        let environment = self.required_string(&path, map, "environment").and_then(|e| {
            if is_dns_label(&e) && e.len() <= 20 {
                Some(e)
            } else {
                self.issue(
                    &path.key("environment"),
                    format!(
                        "`{e}` must be 1 to 20 lower-case letters, digits or hyphens, not starting or ending with a hyphen (it becomes part of the app's domain and of resource names)"
                    ),
                );
                None
            }
        });
        let hosted_zone_id = self
            .required_string(&path, map, "hosted_zone_id")
            .and_then(|z| {
                let bare = z.trim_start_matches("/hostedzone/").to_string();
                if !bare.is_empty()
                    && bare.len() <= 32
                    && bare.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                {
                    Some(bare)
                } else {
                    self.issue(
                        &path.key("hosted_zone_id"),
                        format!("`{z}` is not a Route 53 hosted zone id (upper-case letters and digits, like `Z0123456789ABCDEFGHIJ`)"),
                    );
                    None
                }
            });
        let domain_name = self
            .required_string(&path, map, "domain_name")
            .and_then(|d| {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                if is_domain(&d) {
                    Some(d)
                } else {
                    self.issue(
                        &path.key("domain_name"),
                        format!("`{d}` is not a valid domain name"),
                    );
                    None
                }
            });
        if let (Some(e), Some(d)) = (&environment, &domain_name) {
            let app = app_domain(e, d);
            if app.len() > 253 {
                self.issue(
                    &path.key("domain_name"),
                    format!("the app domain `{app}` is longer than DNS allows (253)"),
                );
            }
            if app.len() > 64 {
                // ACM puts the first name in the certificate's CN, which is capped at 64.
                self.issue(
                    &path.key("domain_name"),
                    format!("the app domain `{app}` is longer than the 64 characters ACM allows in a certificate"),
                );
            }
        }
        let platform = self.platform(&path, map, "platform", Platform::Amd64);
        let streamlit_env = self.env_map(
            &path.key("streamlit_environment_variables"),
            map.get("streamlit_environment_variables"),
        );
        let ecs_statements = self.statements(
            &path.key("ecs_policy_statements"),
            map.get("ecs_policy_statements"),
        );
        let functions = self.functions(&path.key("lambda_functions"), map.get("lambda_functions"));
        let endpoints = self.endpoints(
            &path.key("sagemaker_endpoints"),
            map.get("sagemaker_endpoints"),
        );
        if self.dockerfile_folder(&path, "streamlit_app").is_none()
            && let Some(last) = self.issues.last_mut()
        {
            last.message = format!("the app image: {}", last.message);
        }

        // The HuggingFace image comes from a registry per region; where none is known the
        // endpoint cannot deploy, and must say which image to use.
        if let (Some(region), Some(endpoints)) = (&region, &endpoints) {
            for (i, e) in endpoints.iter().enumerate() {
                if let EndpointModel::Huggingface {
                    image_uri: None, ..
                } = &e.model
                    && huggingface::registry_account(region).is_none()
                {
                    self.issue(
                        &path.key("sagemaker_endpoints").index(i).key("image_uri"),
                        format!(
                            "is required in region `{region}`, which has no HuggingFace inference image that provision knows of (it knows {})",
                            huggingface::REGIONS.join(", ")
                        ),
                    );
                }
            }
        }

        // Every name the app receives must be distinct, or one would silently overwrite another.
        if let (Some(functions), Some(endpoints), Some(env)) =
            (&functions, &endpoints, &streamlit_env)
        {
            let mut seen: BTreeMap<&str, String> = BTreeMap::new();
            for k in env.keys() {
                seen.insert(k, path.key("streamlit_environment_variables").key(k).0);
            }
            let named = functions
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    (
                        &f.environment_variable_name,
                        path.key("lambda_functions").index(i),
                    )
                })
                .chain(endpoints.iter().enumerate().map(|(i, e)| {
                    (
                        &e.environment_variable_name,
                        path.key("sagemaker_endpoints").index(i),
                    )
                }));
            for (name, p) in named {
                let p = p.key("environment_variable_name");
                if let Some(first) = seen.get(name.as_str()) {
                    self.issue(
                        &p,
                        format!("`{name}` is already used by {first}; each function and endpoint needs its own variable"),
                    );
                } else {
                    seen.insert(name, p.0.clone());
                }
            }
        }

        Some(Config {
            account: account?,
            region: region?,
            environment: environment?,
            hosted_zone_id: hosted_zone_id?,
            domain_name: domain_name?,
            platform: platform?,
            lambda_functions: functions?,
            sagemaker_endpoints: endpoints?,
            streamlit_environment_variables: streamlit_env?,
            ecs_policy_statements: ecs_statements?,
        })
    }

    fn list<'v>(&mut self, path: &KeyPath, v: Option<&'v Value>) -> Option<&'v [Value]> {
        match v {
            None | Some(Value::Null) => Some(&[]),
            Some(Value::Array(items)) => Some(items),
            Some(other) => {
                self.issue(path, format!("must be a list, got {}", type_name(other)));
                None
            }
        }
    }

    fn functions(&mut self, path: &KeyPath, v: Option<&Value>) -> Option<Vec<LambdaFunction>> {
        let items = self.list(path, v)?;
        let mut out = Vec::new();
        let mut ok = true;
        // A function's name is its variable's name in DNS-safe form (`A_B` gives `a-b`), so
        // two variables may not map to one name, and a variable must give a name at all.
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            match self.function(&path.index(i), item) {
                Some(f) => {
                    let p = path.index(i).key("environment_variable_name");
                    let name = provision_core::names::dns_safe(&f.environment_variable_name);
                    if name.is_empty() {
                        self.issue(
                            &p,
                            "needs a letter or digit: the function is named after it",
                        );
                        ok = false;
                    } else if let Some(first) = names.get(&name) {
                        self.issue(
                            &p,
                            format!(
                                "`{}` gives the same function name (`{name}`) as lambda_functions[{first}]; use a name that differs in more than `_` and case",
                                f.environment_variable_name
                            ),
                        );
                        ok = false;
                    } else {
                        names.insert(name, i);
                    }
                    out.push(f);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn function(&mut self, path: &KeyPath, v: &Value) -> Option<LambdaFunction> {
        let map = self.object(path, v, FUNCTION_KEYS)?;
        let kind = self.required_string(path, map, "function_type");
        if let Some(k) = &kind
            && k != "from_docker_image"
        {
            self.issue(
                &path.key("function_type"),
                format!(
                    "`{k}` is not a supported function type; the only one is `from_docker_image`"
                ),
            );
        }
        let env_name = self.env_var_name(path, map);
        let image = self.image_source(path, map, ("folder_name", "functions"), ("ecr_repo", "tag"));
        let platform = self.platform(path, map, "platform", Platform::Amd64);
        let timeout = self.optional_integer(path, map, "timeout", 1, 15, 5);
        let memory = self.optional_integer(path, map, "memory_size", 128, 10_240, 512);
        let env = self.env_map(
            &path.key("environment_variables"),
            map.get("environment_variables"),
        );
        if let Some(env) = &env {
            for k in env.keys() {
                if LAMBDA_RESERVED_ENV.contains(&k.as_str()) {
                    self.issue(
                        &path.key("environment_variables").key(k),
                        "is set by Lambda itself and cannot be configured",
                    );
                }
            }
            let size: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
            if size > 4096 {
                self.issue(
                    &path.key("environment_variables"),
                    format!("total {size} bytes; Lambda allows 4 KB of environment variables"),
                );
            }
        }
        let statements =
            self.statements(&path.key("policy_statements"), map.get("policy_statements"));
        if kind.as_deref() != Some("from_docker_image") {
            return None;
        }
        Some(LambdaFunction {
            environment_variable_name: env_name?,
            image: image?,
            platform: platform?,
            timeout_minutes: timeout?,
            memory_size: memory?,
            environment_variables: env?,
            policy_statements: statements?,
        })
    }

    fn env_var_name(&mut self, path: &KeyPath, map: &Map<String, Value>) -> Option<String> {
        let name = self.required_string(path, map, "environment_variable_name")?;
        if is_env_name(&name) {
            Some(name)
        } else {
            self.issue(
                &path.key("environment_variable_name"),
                format!("`{name}` is not a valid environment variable name (letters, digits and `_`, not starting with a digit)"),
            );
            None
        }
    }

    /// Exactly one of a build folder, or a repository and tag.
    fn image_source(
        &mut self,
        path: &KeyPath,
        map: &Map<String, Value>,
        (folder_key, parent): (&str, &str),
        (repo_key, tag_key): (&str, &str),
    ) -> Option<ImageSource> {
        let folder = self.optional_string(path, map, folder_key)?;
        let repo = self.optional_string(path, map, repo_key)?;
        let tag = self.optional_string(path, map, tag_key)?;
        match (folder, repo, tag) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                self.issue(
                    path,
                    format!("give either `{folder_key}` (build the image) or `{repo_key}` and `{tag_key}` (use an image in ECR), not both"),
                );
                None
            }
            (Some(folder), None, None) => self
                .build_folder(&path.key(folder_key), &folder, parent)
                .map(|folder| ImageSource::Build { folder }),
            (None, Some(repo), Some(tag)) => {
                let mut ok = true;
                if !is_ecr_repository(&repo) {
                    self.issue(
                        &path.key(repo_key),
                        format!("`{repo}` is not a valid ECR repository name (lower case, 2 to 256 characters, `/`-separated parts)"),
                    );
                    ok = false;
                }
                if !is_image_tag(&tag) {
                    self.issue(
                        &path.key(tag_key),
                        format!("`{tag}` is not a valid image tag (up to 128 letters, digits, `_`, `.` and `-`)"),
                    );
                    ok = false;
                }
                ok.then_some(ImageSource::Ecr {
                    repository: repo,
                    tag,
                })
            }
            (None, Some(_), None) => {
                self.issue(&path.key(tag_key), format!("is required with `{repo_key}`"));
                None
            }
            (None, None, Some(_)) => {
                self.issue(&path.key(repo_key), format!("is required with `{tag_key}`"));
                None
            }
            (None, None, None) => {
                self.issue(
                    path,
                    format!("needs an image: `{folder_key}` (a folder under {parent}/ with a Dockerfile) or `{repo_key}` and `{tag_key}`"),
                );
                None
            }
        }
    }

    fn endpoints(&mut self, path: &KeyPath, v: Option<&Value>) -> Option<Vec<SagemakerEndpoint>> {
        let items = self.list(path, v)?;
        let mut out: Vec<SagemakerEndpoint> = Vec::new();
        let mut ok = true;
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            match self.endpoint(&path.index(i), item) {
                Some(e) => {
                    // SageMaker endpoint names are case-insensitive.
                    let key = e.endpoint_name.to_ascii_lowercase();
                    if let Some(first) = names.get(&key) {
                        self.issue(
                            &path.index(i).key("endpoint_name"),
                            format!(
                                "`{}` is already the name of sagemaker_endpoints[{first}]",
                                e.endpoint_name
                            ),
                        );
                        ok = false;
                    } else {
                        names.insert(key, i);
                    }
                    out.push(e);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn endpoint(&mut self, path: &KeyPath, v: &Value) -> Option<SagemakerEndpoint> {
        let Some(obj) = v.as_object() else {
            self.issue(path, format!("must be an object, got {}", type_name(v)));
            return None;
        };
        let kind = match obj.get("endpoint_type") {
            None | Some(Value::Null) => {
                self.issue(
                    &path.key("endpoint_type"),
                    "is required: `huggingface` or `image_and_model_data`",
                );
                None
            }
            Some(v) => self.string(&path.key("endpoint_type"), v),
        };
        let extra: &[&str] = match kind.as_deref() {
            Some("huggingface") => HUGGINGFACE_KEYS,
            Some("image_and_model_data") => CUSTOM_ENDPOINT_KEYS,
            Some(other) => {
                let hint = did_you_mean(other, &["huggingface", "image_and_model_data"])
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                self.issue(
                    &path.key("endpoint_type"),
                    format!("`{other}` is not an endpoint type (`huggingface` or `image_and_model_data`){hint}"),
                );
                return None;
            }
            None => return None,
        };
        let known: Vec<&str> = ENDPOINT_COMMON_KEYS.iter().chain(extra).copied().collect();
        let map = self.object(path, v, &known)?;
        let env_name = self.env_var_name(path, map);
        let endpoint_name = self.required_string(path, map, "endpoint_name").and_then(|n| {
            if is_sagemaker_name(&n) {
                Some(n)
            } else {
                self.issue(
                    &path.key("endpoint_name"),
                    format!("`{n}` is not a valid SageMaker endpoint name (1 to 63 letters, digits and hyphens, starting and ending with a letter or digit)"),
                );
                None
            }
        });
        let capacity = self.capacity(path, map);
        let full_access = self.boolean(path, map, "sagemaker_full_access", false);
        let model = match kind.as_deref() {
            Some("huggingface") => self.huggingface(path, map),
            _ => self.custom_model(path, map),
        };
        if let (
            Some(Capacity::Serverless { .. }),
            Some(EndpointModel::ImageAndModelData {
                platform: Platform::Arm64,
                ..
            }),
        ) = (&capacity, &model)
        {
            self.issue(
                &path.key("platform"),
                "serverless endpoints run on x86_64 only; use `amd64` or `production_variants` with a Graviton instance type",
            );
            return None;
        }
        if let (
            Some(Capacity::Serverless { .. }),
            Some(EndpointModel::Huggingface { use_gpu: true, .. }),
        ) = (&capacity, &model)
        {
            self.issue(
                &path.key("use_gpu"),
                "serverless endpoints have no GPUs; use `production_variants` with a GPU instance type, or set `use_gpu` to false",
            );
            return None;
        }
        Some(SagemakerEndpoint {
            environment_variable_name: env_name?,
            endpoint_name: endpoint_name?,
            capacity: capacity?,
            model: model?,
            sagemaker_full_access: full_access?,
        })
    }

    fn capacity(&mut self, path: &KeyPath, map: &Map<String, Value>) -> Option<Capacity> {
        let serverless = map.get("serverless_config").filter(|v| !is_empty(v));
        let variants = map.get("production_variants").filter(|v| !is_empty(v));
        match (serverless, variants) {
            (Some(_), Some(_)) => {
                self.issue(
                    path,
                    "give either `serverless_config` or `production_variants`, not both",
                );
                None
            }
            (None, None) => {
                self.issue(
                    path,
                    "needs `serverless_config` ({\"memory_size_in_mb\": ..., \"max_concurrency\": ...}) or `production_variants` ({\"instance_type\": ..., \"initial_instance_count\": ...})",
                );
                None
            }
            (Some(s), None) => {
                let p = path.key("serverless_config");
                let m = self.object(
                    &p,
                    s,
                    &[
                        "memory_size_in_mb",
                        "max_concurrency",
                        "provisioned_concurrency",
                    ],
                )?;
                let memory = match m.get("memory_size_in_mb") {
                    None | Some(Value::Null) => {
                        self.issue(&p.key("memory_size_in_mb"), "is required");
                        None
                    }
                    Some(v) => {
                        let mp = p.key("memory_size_in_mb");
                        match v.as_u64() {
                            Some(n) if (1024..=6144).contains(&n) && n % 1024 == 0 => {
                                Some(n as u32)
                            }
                            _ => {
                                let got = match v {
                                    Value::Number(n) => n.to_string(),
                                    other => type_name(other).to_string(),
                                };
                                self.issue(
                                    &mp,
                                    format!("must be 1024, 2048, 3072, 4096, 5120 or 6144 (1024 to 6144 in steps of 1024), got {got}"),
                                );
                                None
                            }
                        }
                    }
                };
                let concurrency = match m.get("max_concurrency") {
                    None | Some(Value::Null) => {
                        self.issue(&p.key("max_concurrency"), "is required");
                        None
                    }
                    Some(v) => self.integer(&p.key("max_concurrency"), v, 1, 200),
                };
                let provisioned = match m.get("provisioned_concurrency") {
                    None | Some(Value::Null) => Some(None),
                    Some(v) => self
                        .integer(&p.key("provisioned_concurrency"), v, 1, 200)
                        .map(Some),
                };
                if let (Some(Some(prov)), Some(max)) = (provisioned, concurrency)
                    && prov > max
                {
                    self.issue(
                        &p.key("provisioned_concurrency"),
                        format!("must not exceed max_concurrency ({max}), got {prov}"),
                    );
                    return None;
                }
                Some(Capacity::Serverless {
                    memory_size_in_mb: memory?,
                    max_concurrency: concurrency?,
                    provisioned_concurrency: provisioned?,
                })
            }
            (None, Some(v)) => {
                let p = path.key("production_variants");
                if v.is_array() {
                    self.issue(
                        &p,
                        "is one object of variant settings, as in the CDK stack ({\"instance_type\": \"ml.m5.large\", \"initial_instance_count\": 1}), not a list",
                    );
                    return None;
                }
                let m = self.object(
                    &p,
                    v,
                    &[
                        "instance_type",
                        "initial_instance_count",
                        "initial_variant_weight",
                    ],
                )?;
                let instance_type = self.required_string(&p, m, "instance_type").and_then(|t| {
                    if is_instance_type(&t) {
                        Some(t)
                    } else {
                        self.issue(
                            &p.key("instance_type"),
                            format!("`{t}` is not a SageMaker instance type (like `ml.m5.large`)"),
                        );
                        None
                    }
                });
                let count = self.optional_integer(&p, m, "initial_instance_count", 1, 100, 1);
                let weight = match m.get("initial_variant_weight") {
                    None | Some(Value::Null) => Some(1.0),
                    Some(Value::Number(n))
                        if n.as_f64().is_some_and(|w| (0.0..=1.0).contains(&w)) =>
                    {
                        n.as_f64().map(|w| w as f32)
                    }
                    Some(other) => {
                        self.issue(
                            &p.key("initial_variant_weight"),
                            format!("must be a number from 0 to 1, got {other}"),
                        );
                        None
                    }
                };
                Some(Capacity::Instances {
                    instance_type: instance_type?,
                    initial_instance_count: count?,
                    initial_variant_weight: weight?,
                })
            }
        }
    }

    fn s3_url(
        &mut self,
        path: &KeyPath,
        map: &Map<String, Value>,
        key: &str,
    ) -> Option<Option<String>> {
        let url = self.optional_string(path, map, key)?;
        match url {
            None => Some(None),
            Some(u) => {
                let ok = u
                    .strip_prefix("s3://")
                    .and_then(|rest| rest.split_once('/'))
                    .is_some_and(|(bucket, key)| is_bucket_name(bucket) && !key.is_empty());
                if ok {
                    Some(Some(u))
                } else {
                    self.issue(
                        &path.key(key),
                        format!(
                            "`{u}` is not an S3 object URI (write `s3://bucket/path/model.tar.gz`)"
                        ),
                    );
                    None
                }
            }
        }
    }

    fn huggingface(&mut self, path: &KeyPath, map: &Map<String, Value>) -> Option<EndpointModel> {
        let model_name = self.optional_string(path, map, "model_name");
        let model_task = self.optional_string(path, map, "model_task");
        let model_data_url = self.s3_url(path, map, "model_data_url");
        let use_gpu = self.boolean(path, map, "use_gpu", false);
        let mut version = |key: &str, default: &str| -> Option<String> {
            let v = self.optional_string(path, map, key)?;
            let v = v.unwrap_or_else(|| default.to_string());
            if v.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                Some(v)
            } else {
                self.issue(
                    &path.key(key),
                    format!("`{v}` is not a version number (like `{default}`)"),
                );
                None
            }
        };
        let pytorch = version("pytorch_version", "1.13");
        let transformers = version("transformers_version", "4.26");
        let ubuntu = version("ubuntu_version", "20.04");
        let image_uri = self.optional_string(path, map, "image_uri").and_then(|u| match u {
            Some(u) if !(u.contains(':') || u.contains('@')) || u.contains(char::is_whitespace) => {
                self.issue(
                    &path.key("image_uri"),
                    format!("`{u}` is not an image URI with a tag or digest (like `123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:tag`)"),
                );
                None
            }
            other => Some(other),
        });
        if let (Some(None), Some(None)) = (&model_name, &model_data_url) {
            self.issue(
                path,
                "a huggingface endpoint needs `model_name` (a model on the HuggingFace hub) or `model_data_url` (an s3:// URI of model data)",
            );
            return None;
        }
        Some(EndpointModel::Huggingface {
            model_name: model_name?,
            model_task: model_task?,
            model_data_url: model_data_url?,
            use_gpu: use_gpu?,
            pytorch_version: pytorch?,
            transformers_version: transformers?,
            ubuntu_version: ubuntu?,
            image_uri: image_uri?,
        })
    }

    fn custom_model(&mut self, path: &KeyPath, map: &Map<String, Value>) -> Option<EndpointModel> {
        let image = self.image_source(
            path,
            map,
            ("dockerfile_folder", "endpoints"),
            ("image_repo_name", "image_tag"),
        );
        let platform = self.platform(path, map, "platform", Platform::Amd64);
        let bucket = self
            .optional_string(path, map, "model_data_bucket")
            .and_then(|b| match b {
                Some(b) if !is_bucket_name(&b) => {
                    self.issue(
                        &path.key("model_data_bucket"),
                        format!("`{b}` is not a valid S3 bucket name"),
                    );
                    None
                }
                other => Some(other),
            });
        let url = self.s3_url(path, map, "model_data_url");
        let env = self.env_map(
            &path.key("container_environment"),
            map.get("container_environment"),
        );
        Some(EndpointModel::ImageAndModelData {
            image: image?,
            platform: platform?,
            model_data_bucket: bucket?,
            model_data_url: url?,
            container_environment: env?,
        })
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_domain(s: &str) -> bool {
    s.len() <= 253 && s.contains('.') && s.split('.').all(is_dns_label)
}

fn is_region(s: &str) -> bool {
    // e.g. us-east-1, eu-central-2, us-gov-west-1, cn-north-1, ap-southeast-5
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|p| !p.is_empty())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

fn is_iam_action(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    match s.split_once(':') {
        Some((service, action)) => {
            !service.is_empty()
                && service
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !action.is_empty()
                && action
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
        }
        None => false,
    }
}

fn is_sagemaker_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_instance_type(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts[0] == "ml"
        && parts[1..].iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// ECR repository names: lower case, `/`-separated components of alphanumerics joined by `.`, `_` or `-`.
pub fn is_ecr_repository(s: &str) -> bool {
    (2..=256).contains(&s.len())
        && s.split('/').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
        })
}

fn is_image_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && (s.as_bytes()[0].is_ascii_alphanumeric() || s.as_bytes()[0] == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_bucket_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
        && !s.contains("..")
}

#[cfg(test)]
mod tests;
