use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, CpuArchitecture, KeyValuePair, LogConfiguration, LogDriver,
    NetworkMode, OsFamily, PortMapping, RuntimePlatform, TaskDefinitionField, TaskDefinitionStatus,
    TransportProtocol,
};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use serde::{Deserialize, Serialize};

use crate::{aws, tag_pairs, tags};

/// A task definition family with one container, named by its node. Revisions are immutable:
/// a change registers a new one (the old ones stay, so running tasks and rollbacks keep
/// working); a delete deregisters and deletes every revision of the family.
pub struct TaskDefinition {
    ecs: Client,
}

impl TaskDefinition {
    pub fn new(ecs: Client) -> Self {
        TaskDefinition { ecs }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TaskDefinitionSpec {
    /// CPU units (`256` is a quarter vCPU).
    pub cpu: String,
    /// MiB.
    pub memory: String,
    /// `X86_64` or `ARM64`.
    pub cpu_architecture: String,
    /// `LINUX`.
    pub operating_system_family: String,
    /// `awsvpc`, which Fargate requires.
    pub network_mode: String,
    /// `FARGATE`.
    pub requires_compatibilities: Vec<String>,
    /// The role ECS uses to pull the image and write logs.
    pub execution_role_arn: String,
    /// The role the app's code runs as.
    pub task_role_arn: String,
    pub container_name: String,
    /// By digest, so a rerun never picks up another image under the same tag.
    pub image: String,
    pub container_port: i32,
    /// Sorted by name.
    pub environment: BTreeMap<String, String>,
    /// Where the container's output goes (the `awslogs` driver).
    pub log_group: String,
    pub log_region: String,
    pub log_stream_prefix: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TaskDefinitionOut {
    /// The revision, `arn:...:task-definition/<family>:<revision>`.
    pub task_definition_arn: String,
    pub family: String,
    pub revision: i32,
}

fn td_live(td: &aws_sdk_ecs::types::TaskDefinition) -> Result<Live, ResourceError> {
    let arn = td
        .task_definition_arn()
        .ok_or_else(|| ResourceError::fatal("ECS described a task definition without its ARN"))?;
    let container = td.container_definitions().first();
    let log_options: HashMap<String, String> = container
        .and_then(|c| c.log_configuration())
        .filter(|l| *l.log_driver() == LogDriver::Awslogs)
        .and_then(|l| l.options().cloned())
        .unwrap_or_default();
    let option = |k: &str| log_options.get(k).cloned().unwrap_or_default();
    let mut requires: Vec<String> = td
        .requires_compatibilities()
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    requires.sort();
    let spec = TaskDefinitionSpec {
        cpu: td.cpu().unwrap_or_default().to_string(),
        memory: td.memory().unwrap_or_default().to_string(),
        cpu_architecture: td
            .runtime_platform()
            .and_then(|p| p.cpu_architecture())
            .map(|a| a.as_str())
            .unwrap_or("X86_64")
            .to_string(),
        operating_system_family: td
            .runtime_platform()
            .and_then(|p| p.operating_system_family())
            .map(|o| o.as_str())
            .unwrap_or("LINUX")
            .to_string(),
        network_mode: td
            .network_mode()
            .map(|m| m.as_str())
            .unwrap_or_default()
            .to_string(),
        requires_compatibilities: requires,
        execution_role_arn: td.execution_role_arn().unwrap_or_default().to_string(),
        task_role_arn: td.task_role_arn().unwrap_or_default().to_string(),
        container_name: container
            .and_then(|c| c.name())
            .unwrap_or_default()
            .to_string(),
        image: container
            .and_then(|c| c.image())
            .unwrap_or_default()
            .to_string(),
        container_port: container
            .and_then(|c| c.port_mappings().first())
            .and_then(|p| p.container_port())
            .unwrap_or_default(),
        environment: container
            .map(|c| {
                c.environment()
                    .iter()
                    .filter_map(|kv| {
                        Some((
                            kv.name()?.to_string(),
                            kv.value().unwrap_or_default().to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        log_group: option("awslogs-group"),
        log_region: option("awslogs-region"),
        log_stream_prefix: option("awslogs-stream-prefix"),
    };
    let out = TaskDefinitionOut {
        task_definition_arn: arn.to_string(),
        family: td.family().unwrap_or_default().to_string(),
        revision: td.revision(),
    };
    let value = serde_json::to_value(out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    Ok(Live::new(arn, to_settings(&spec), value))
}

fn build_error(e: impl std::fmt::Display) -> ResourceError {
    ResourceError::fatal(format!("could not build an ECS request: {e}"))
}

impl TaskDefinition {
    /// A revision (by ARN) or a family's latest active revision (by family), with its tags;
    /// `None` if there is none or it was deregistered.
    async fn describe(
        &self,
        which: &str,
    ) -> Result<
        Option<(
            aws_sdk_ecs::types::TaskDefinition,
            Vec<aws_sdk_ecs::types::Tag>,
        )>,
        ResourceError,
    > {
        match self
            .ecs
            .describe_task_definition()
            .task_definition(which)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .task_definition()
                .filter(|td| td.status() == Some(&TaskDefinitionStatus::Active))
                .map(|td| (td.clone(), out.tags().to_vec()))),
            // ECS answers a task definition that does not exist with a ClientException (its
            // error for a bad identifier); permission problems have their own error.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_client_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("ecs:DescribeTaskDefinition", e)),
        }
    }

    async fn register(
        &self,
        cx: &Cx,
        family: &str,
        spec: &TaskDefinitionSpec,
    ) -> Result<Live, ResourceError> {
        let log = LogConfiguration::builder()
            .log_driver(LogDriver::Awslogs)
            .options("awslogs-group", &spec.log_group)
            .options("awslogs-region", &spec.log_region)
            .options("awslogs-stream-prefix", &spec.log_stream_prefix)
            .build()
            .map_err(build_error)?;
        let container = ContainerDefinition::builder()
            .name(&spec.container_name)
            .image(&spec.image)
            .essential(true)
            .port_mappings(
                PortMapping::builder()
                    .container_port(spec.container_port)
                    .protocol(TransportProtocol::Tcp)
                    .build(),
            )
            .set_environment(Some(
                spec.environment
                    .iter()
                    .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
                    .collect(),
            ))
            .log_configuration(log)
            .build();
        let out = self
            .ecs
            .register_task_definition()
            .family(family)
            .cpu(&spec.cpu)
            .memory(&spec.memory)
            .network_mode(NetworkMode::from(spec.network_mode.as_str()))
            .set_requires_compatibilities(Some(
                spec.requires_compatibilities
                    .iter()
                    .map(|c| Compatibility::from(c.as_str()))
                    .collect(),
            ))
            .runtime_platform(
                RuntimePlatform::builder()
                    .cpu_architecture(CpuArchitecture::from(spec.cpu_architecture.as_str()))
                    .operating_system_family(OsFamily::from(spec.operating_system_family.as_str()))
                    .build(),
            )
            .execution_role_arn(&spec.execution_role_arn)
            .task_role_arn(&spec.task_role_arn)
            .container_definitions(container)
            .set_tags(Some(tags(cx)))
            .send()
            .await
            .map_err(|e| aws("ecs:RegisterTaskDefinition", e))?;
        let td = out.task_definition().ok_or_else(|| {
            ResourceError::fatal("ecs:RegisterTaskDefinition returned no task definition")
        })?;
        let mut live = td_live(td)?;
        live.settings = to_settings(spec);
        Ok(live)
    }

    /// Every revision of the family, active ones first.
    async fn revisions(&self, family: &str) -> Result<(Vec<String>, Vec<String>), ResourceError> {
        let mut lists = Vec::new();
        for status in [TaskDefinitionStatus::Active, TaskDefinitionStatus::Inactive] {
            let mut arns = Vec::new();
            let mut next: Option<String> = None;
            loop {
                let out = self
                    .ecs
                    .list_task_definitions()
                    .family_prefix(family)
                    .status(status.clone())
                    .set_next_token(next.take())
                    .send()
                    .await
                    .map_err(|e| aws("ecs:ListTaskDefinitions", e))?;
                // The "prefix" is in fact the whole family name; keep exactly this family.
                arns.extend(
                    out.task_definition_arns()
                        .iter()
                        .filter(|a| family_of(a) == Some(family))
                        .cloned(),
                );
                match out.next_token() {
                    Some(t) if !t.is_empty() => next = Some(t.to_string()),
                    _ => break,
                }
            }
            lists.push(arns);
        }
        let inactive = lists.pop().unwrap_or_default();
        let active = lists.pop().unwrap_or_default();
        Ok((active, inactive))
    }
}

/// The family of a revision's ARN (`arn:...:task-definition/<family>:<revision>`).
fn family_of(arn: &str) -> Option<&str> {
    let (_, rest) = arn.rsplit_once("task-definition/")?;
    Some(rest.rsplit_once(':').map(|(f, _)| f).unwrap_or(rest))
}

#[async_trait]
impl Kind for TaskDefinition {
    fn name(&self) -> &'static str {
        "ecs.task-definition"
    }
    fn noun(&self) -> &'static str {
        "task definition"
    }
    /// Every change is a new revision, with its own ARN.
    fn update_changes_outputs(&self) -> bool {
        true
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        // The recorded revision, else the family's latest (a lost reply hid its registration).
        let Some(which) = lookup.physical_id().or(lookup.recorded_name()) else {
            return Ok(None);
        };
        let Some((td, tags)) = self.describe(which).await? else {
            return Ok(None);
        };
        cx.ensure_ours(
            &format!(
                "task definition {}",
                td.task_definition_arn().unwrap_or(which)
            ),
            tag_pairs(&tags),
        )?;
        td_live(&td).map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let spec: TaskDefinitionSpec = desired.spec()?;
        self.register(cx, desired.name()?, &spec).await
    }

    async fn update(
        &self,
        cx: &Cx,
        desired: &Desired,
        _live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        // A new revision; the service moves to it, and the old one stays for running tasks.
        let spec: TaskDefinitionSpec = desired.spec()?;
        self.register(cx, desired.name()?, &spec).await
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(family) = record.name.clone().or_else(|| {
            record
                .physical_id
                .as_deref()
                .and_then(family_of)
                .map(str::to_string)
        }) else {
            return Ok(());
        };
        if let Some(arn) = record.physical_id.as_deref()
            && let Some((td, tags)) = self.describe(arn).await?
        {
            cx.ensure_ours(
                &format!(
                    "task definition {}",
                    td.task_definition_arn().unwrap_or(arn)
                ),
                tag_pairs(&tags),
            )?;
        }
        let (active, mut inactive) = self.revisions(&family).await?;
        if !active.is_empty() {
            cx.progress(format!(
                "deregistering {} revision(s) of task definition {family}",
                active.len()
            ));
        }
        for arn in active {
            self.ecs
                .deregister_task_definition()
                .task_definition(&arn)
                .send()
                .await
                .map_err(|e| aws("ecs:DeregisterTaskDefinition", e))?;
            inactive.push(arn);
        }
        // Deregistered revisions stay visible until deleted; DeleteTaskDefinitions takes ten at a time.
        for batch in inactive.chunks(10) {
            let out = self
                .ecs
                .delete_task_definitions()
                .set_task_definitions(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| aws("ecs:DeleteTaskDefinitions", e))?;
            if let Some(f) = out.failures().first() {
                cx.warn(format!(
                    "could not delete task definition {}: {}",
                    f.arn().unwrap_or("?"),
                    f.reason().or(f.detail()).unwrap_or("no reason given")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_come_from_revision_arns() {
        assert_eq!(
            family_of("arn:aws:ecs:us-east-1:1:task-definition/streamlit-app-dev-app:12"),
            Some("streamlit-app-dev-app")
        );
        assert_eq!(
            family_of("arn:aws:ecs:us-east-1:1:task-definition/f"),
            Some("f")
        );
        assert_eq!(family_of("nothing"), None);
    }

    #[test]
    fn environment_is_sorted_and_reads_as_one_setting() {
        let spec = TaskDefinitionSpec {
            cpu: "256".into(),
            memory: "2048".into(),
            cpu_architecture: "ARM64".into(),
            operating_system_family: "LINUX".into(),
            network_mode: "awsvpc".into(),
            requires_compatibilities: vec!["FARGATE".into()],
            execution_role_arn: "e".into(),
            task_role_arn: "t".into(),
            container_name: "app".into(),
            image: "i@sha256:0".into(),
            container_port: 8080,
            environment: BTreeMap::from([
                ("B".to_string(), "2".to_string()),
                ("A".to_string(), "1".to_string()),
            ]),
            log_group: "/g".into(),
            log_region: "us-east-1".into(),
            log_stream_prefix: "app".into(),
        };
        let s = to_settings(&spec);
        let keys: Vec<&String> = s["environment"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["A", "B"]);
    }
}
