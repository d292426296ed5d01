//! The state being worked on: every change is saved before the next step, and a create's
//! physical id the moment the call returns.

use std::sync::Arc;

use async_trait::async_trait;

use tokio::sync::Mutex;

use crate::resource::{Journal, Live, LogicalId, ResourceError};
use crate::state::{Record, State, StateError, StateStore, Status};
use crate::time;

/// The state being worked on; every change is saved before the next step.
pub struct StateHandle {
    store: Arc<dyn StateStore>,
    state: Mutex<State>,
}

impl StateHandle {
    pub fn new(store: Arc<dyn StateStore>, state: State) -> Arc<Self> {
        Arc::new(StateHandle {
            store,
            state: Mutex::new(state),
        })
    }

    /// Applies `f` and saves. Writes are serialised, so the file always holds the latest change.
    pub async fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> Result<R, StateError> {
        let mut state = self.state.lock().await;
        let r = f(&mut state);
        state.serial += 1;
        state.updated_at = time::now_rfc3339();
        self.store.save(&state).await?;
        Ok(r)
    }

    pub async fn snapshot(&self) -> State {
        self.state.lock().await.clone()
    }

    pub async fn record(&self, id: &LogicalId) -> Option<Record> {
        self.state.lock().await.resources.get(id).cloned()
    }
}

/// Writes the physical id into the state as soon as a create returns.
pub(super) struct StateJournal {
    pub(super) handle: Arc<StateHandle>,
}

#[async_trait]
impl Journal for StateJournal {
    async fn created(&self, id: &LogicalId, live: &Live) -> Result<(), ResourceError> {
        self.handle
            .update(|s| {
                if let Some(r) = s.resources.get_mut(id) {
                    r.physical_id = Some(live.physical_id.clone());
                    r.outputs = live.outputs.clone();
                    if r.status == Status::Creating {
                        r.status = Status::Created;
                    }
                    r.updated_at = time::now_rfc3339();
                }
            })
            .await
            .map_err(|e| ResourceError::fatal(format!("could not record {id} in the state: {e}")))
    }
}

pub(super) fn state_failure(e: StateError) -> ResourceError {
    ResourceError::fatal(format!("could not write the state: {e}"))
        .with_hint("check the state file's folder is writable (or the S3 bucket reachable), then rerun; nothing is lost")
}
