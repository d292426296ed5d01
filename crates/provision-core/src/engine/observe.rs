//! Observing: reading recorded resources as they are now, and the drift that shows.

use std::sync::Arc;

use serde::Serialize;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::plan::{Change, diff};
use crate::resource::{Cx, Kind, Live, LogicalId, Lookup, ResourceError, Settings};
use crate::retry::{TRANSIENT, retry};
use crate::state::{Record, State, Status};

use super::{Engine, Kinds};

impl Engine {
    /// Reads every recorded resource as it is now, concurrently. Makes no mutating call.
    pub async fn observe(&self, state: &State, kinds: &Kinds) -> Vec<Observation> {
        let semaphore = Arc::new(Semaphore::new(self.concurrency));
        let mut reads = JoinSet::new();
        for (id, record) in &state.resources {
            let (id, record) = (id.clone(), record.clone());
            let kind = kinds.get(&record.kind).cloned();
            let cx = self.detached_cx(&id);
            let semaphore = semaphore.clone();
            let span = tracing::info_span!("node", id = %id);
            reads.spawn(tracing::Instrument::instrument(
                async move {
                    let _permit = semaphore.acquire_owned().await;
                    let (noun, live) = match kind {
                        None => (
                            record.kind.clone(),
                            Err(ResourceError::fatal(format!(
                                "`{}` is not a kind this provision knows",
                                record.kind
                            ))),
                        ),
                        Some(kind) => {
                            let lookup = Lookup {
                                id: &id,
                                name: record.name.as_deref(),
                                token: &record.token,
                                record: Some(&record),
                            };
                            (
                                kind.noun().to_string(),
                                read_with_retry(kind.as_ref(), &cx, &lookup).await,
                            )
                        }
                    };
                    Observation {
                        id,
                        noun,
                        record,
                        live,
                    }
                },
                span,
            ));
        }
        let mut out = Vec::new();
        while let Some(joined) = reads.join_next().await {
            if let Ok(o) = joined {
                out.push(o);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

/// A recorded resource as AWS shows it now.
#[derive(Debug)]
pub struct Observation {
    pub id: LogicalId,
    pub noun: String,
    pub record: Record,
    /// `Ok(None)`: it is gone.
    pub live: Result<Option<Live>, ResourceError>,
}

/// How a resource differs from what the state says was applied.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "drift", rename_all = "snake_case")]
pub enum Drift {
    /// Deleted outside provision.
    Deleted,
    /// Settings changed outside provision (old = recorded, new = live).
    Changed { changes: Vec<Change> },
}

impl Observation {
    /// The drift this observation shows, if any. Only settings the service reports can drift;
    /// an intent that never became a resource is not drift.
    pub fn drift(&self) -> Option<Drift> {
        match &self.live {
            Err(_) => None,
            Ok(None) if self.record.status == Status::Creating => None,
            Ok(None) => Some(Drift::Deleted),
            Ok(Some(live)) => {
                let recorded: Settings = self
                    .record
                    .settings
                    .iter()
                    .filter(|(k, _)| live.settings.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let changes = diff(&live.settings, &recorded, None, &[])
                    .into_iter()
                    .filter(|c| c.old.is_some())
                    .map(|c| Change {
                        setting: c.setting,
                        old: c.old,
                        new: c.new,
                        forces_replacement: false,
                    })
                    .collect::<Vec<_>>();
                (!changes.is_empty()).then_some(Drift::Changed { changes })
            }
        }
    }
}

/// Reads, riding out transient errors under [`TRANSIENT`] (the SDK already retried each call),
/// and says what it found.
pub(super) async fn read_with_retry(
    kind: &dyn Kind,
    cx: &Cx,
    lookup: &Lookup<'_>,
) -> Result<Option<Live>, ResourceError> {
    let live = retry(cx, &[&TRANSIENT], || kind.read(cx, lookup)).await?;
    tracing::debug!(
        target: "provision::engine",
        id = %lookup.id,
        kind = kind.name(),
        found = live.is_some(),
        physical_id = live.as_ref().map_or("", |l| l.physical_id.as_str()),
        "read"
    );
    Ok(live)
}
