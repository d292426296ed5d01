use async_trait::async_trait;
use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::ClusterField;
use provision_aws::retry::{ECS_CLUSTER_IN_USE, ECS_SERVICE_LINKED_ROLE, TRANSIENT, retry};
use provision_core::resource::{
    Cx, Desired, Kind, Live, Lookup, Record, ResourceError, to_settings,
};
use provision_core::wait::{Backoff, Poll, until};
use serde::{Deserialize, Serialize};

use crate::{aws, tag_pairs, tags};

/// An ECS cluster, named by its node. Fargate needs nothing more of it.
pub struct Cluster {
    ecs: Client,
}

impl Cluster {
    pub fn new(ecs: Client) -> Self {
        Cluster { ecs }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ClusterSpec {}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClusterOut {
    pub cluster_name: String,
    pub cluster_arn: String,
}

fn cluster_live(c: &aws_sdk_ecs::types::Cluster) -> Result<Live, ResourceError> {
    let out = ClusterOut {
        cluster_name: c.cluster_name().unwrap_or_default().to_string(),
        cluster_arn: c.cluster_arn().unwrap_or_default().to_string(),
    };
    let value = serde_json::to_value(&out).map_err(|e| ResourceError::fatal(e.to_string()))?;
    let live = Live::new(&out.cluster_arn, to_settings(&ClusterSpec {}), value);
    Ok(match c.status() {
        Some("ACTIVE") | None => live.with_status("ACTIVE"),
        Some(s) => live.pending(s),
    })
}

impl Cluster {
    /// The cluster, unless it does not exist or is deleted (deleted clusters linger as INACTIVE).
    async fn describe(
        &self,
        name_or_arn: &str,
    ) -> Result<Option<aws_sdk_ecs::types::Cluster>, ResourceError> {
        let out = self
            .ecs
            .describe_clusters()
            .clusters(name_or_arn)
            .include(ClusterField::Tags)
            .send()
            .await
            .map_err(|e| aws("ecs:DescribeClusters", e))?;
        Ok(out
            .clusters()
            .iter()
            .find(|c| c.status() != Some("INACTIVE"))
            .cloned())
    }
}

#[async_trait]
impl Kind for Cluster {
    fn name(&self) -> &'static str {
        "ecs.cluster"
    }
    fn noun(&self) -> &'static str {
        "ECS cluster"
    }

    async fn read(&self, cx: &Cx, lookup: &Lookup<'_>) -> Result<Option<Live>, ResourceError> {
        let Some(id) = lookup.physical_id().or(lookup.recorded_name()) else {
            return Ok(None);
        };
        let Some(c) = self.describe(id).await? else {
            return Ok(None);
        };
        cx.ensure_ours(
            &format!("ECS cluster {}", c.cluster_name().unwrap_or(id)),
            tag_pairs(c.tags()),
        )?;
        cluster_live(&c).map(Some)
    }

    async fn create(&self, cx: &Cx, desired: &Desired) -> Result<Live, ResourceError> {
        let name = desired.name()?;
        // CreateCluster returns the existing cluster of that name: a retry makes no second one.
        // A fresh account's first cluster waits for ECS's service-linked role.
        let out = retry(cx, &[&ECS_SERVICE_LINKED_ROLE], || async {
            self.ecs
                .create_cluster()
                .cluster_name(name)
                .set_tags(Some(tags(cx)))
                .send()
                .await
                .map_err(|e| aws("ecs:CreateCluster", e))
        })
        .await?;
        let c = out
            .cluster()
            .ok_or_else(|| ResourceError::fatal("ecs:CreateCluster returned no cluster"))?;
        cluster_live(c)
    }

    async fn update(
        &self,
        _cx: &Cx,
        _desired: &Desired,
        live: &Live,
        _changed: &[String],
    ) -> Result<Live, ResourceError> {
        Ok(live.clone())
    }

    async fn wait_ready(&self, cx: &Cx, live: Live) -> Result<Live, ResourceError> {
        let arn = live.physical_id.clone();
        until(
            cx,
            &format!("ECS cluster {arn} to be active"),
            &provision_aws::timeouts::CLUSTER,
            Backoff::FAST,
            || async {
                let c = self.describe(&arn).await?.ok_or_else(|| {
                    ResourceError::fatal(format!("ECS cluster {arn} disappeared while starting"))
                })?;
                let l = cluster_live(&c)?;
                Ok(if l.ready {
                    Poll::Ready(l)
                } else {
                    Poll::Pending(l.status.unwrap_or_default())
                })
            },
        )
        .await
    }

    async fn delete(&self, cx: &Cx, record: &Record) -> Result<(), ResourceError> {
        let Some(id) = record.physical_id.as_deref().or(record.name.as_deref()) else {
            return Ok(());
        };
        let Some(c) = self.describe(id).await? else {
            return Ok(());
        };
        let name = c.cluster_name().unwrap_or(id).to_string();
        cx.ensure_ours(&format!("ECS cluster {name}"), tag_pairs(c.tags()))?;
        // The service went first, but its tasks take a moment to stop.
        retry(cx, &[&ECS_CLUSTER_IN_USE, &TRANSIENT], || async {
            match self.ecs.delete_cluster().cluster(id).send().await {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_cluster_not_found_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(aws("ecs:DeleteCluster", e)),
            }
        })
        .await
    }
}
