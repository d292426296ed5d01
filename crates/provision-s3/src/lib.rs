//! State in S3, for teams: `--state s3://bucket/key`.
//!
//! The lock is an object beside the state (`<key>.lock`) written with `If-None-Match: *`, so
//! exactly one writer can create it; the state itself is written with `If-Match: <ETag of the
//! version this run read>`, so a write based on a stale read fails instead of losing someone
//! else's update. Both are S3 conditional writes: no DynamoDB table, no second service.

use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use provision_core::state::{LockInfo, State, StateError, StateStore};

/// `s3://bucket/key`, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
}

impl S3Location {
    /// Parses `s3://bucket/key`; the key must name an object, not a folder.
    pub fn parse(uri: &str) -> Result<S3Location, String> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| format!("`{uri}` is not an s3:// URI"))?;
        let (bucket, key) = rest.split_once('/').ok_or_else(|| {
            format!("`{uri}` names a bucket but no object key (write s3://bucket/path/state.json)")
        })?;
        if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
            return Err(format!("`{uri}` must be s3://bucket/path/state.json"));
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    fn lock_key(&self) -> String {
        format!("{}.lock", self.key)
    }
}

/// The state as an S3 object, locked by a second object.
pub struct S3Store {
    s3: Client,
    at: S3Location,
    /// The ETag of the state version this run last read or wrote.
    etag: Mutex<Option<String>>,
    /// The ETag of the lock object this run wrote, so it only ever deletes its own lock.
    lock_etag: Mutex<Option<String>>,
}

fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

impl S3Store {
    pub fn new(s3: Client, at: S3Location) -> Self {
        S3Store {
            s3,
            at,
            etag: Mutex::new(None),
            lock_etag: Mutex::new(None),
        }
    }

    fn backend<E>(&self, action: &str, err: SdkError<E, HttpResponse>) -> StateError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let e = provision_aws::classify(action, err);
        let mut message = e.message;
        if let Some(h) = e.hint {
            message.push_str(&format!(" ({h})"));
        }
        StateError::Backend {
            location: self.location(),
            message,
        }
    }

    async fn read_lock(&self) -> Option<LockInfo> {
        let out = self
            .s3
            .get_object()
            .bucket(&self.at.bucket)
            .key(self.at.lock_key())
            .send()
            .await
            .ok()?;
        let bytes = out.body.collect().await.ok()?.into_bytes();
        serde_json::from_slice(&bytes).ok()
    }

    /// Deletes the lock if its ETag is still `etag`, by a HEAD and then a plain DELETE: for
    /// stores that refuse conditional deletes. Someone taking the lock between the two calls
    /// would lose it, which the conditional delete rules out where it is offered.
    async fn delete_if_still(&self, etag: &str) -> Result<(), StateError> {
        let current = match self
            .s3
            .head_object()
            .bucket(&self.at.bucket)
            .key(self.at.lock_key())
            .send()
            .await
        {
            Ok(h) => h.e_tag().map(str::to_string),
            Err(e) if status(&e) == Some(404) => None,
            Err(e) => return Err(self.backend("s3:HeadObject (lock)", e)),
        };
        if current.as_deref() == Some(etag) {
            self.s3
                .delete_object()
                .bucket(&self.at.bucket)
                .key(self.at.lock_key())
                .send()
                .await
                .map_err(|e| self.backend("s3:DeleteObject (lock)", e))?;
        }
        Ok(())
    }

    fn set(slot: &Mutex<Option<String>>, value: Option<String>) {
        if let Ok(mut s) = slot.lock() {
            *s = value;
        }
    }

    fn get(slot: &Mutex<Option<String>>) -> Option<String> {
        slot.lock().ok().and_then(|s| s.clone())
    }
}

#[async_trait]
impl StateStore for S3Store {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.at.bucket, self.at.key)
    }

    async fn lock(&self, info: &LockInfo) -> Result<(), StateError> {
        let body = serde_json::to_vec(info).unwrap_or_default();
        match self
            .s3
            .put_object()
            .bucket(&self.at.bucket)
            .key(self.at.lock_key())
            .if_none_match("*")
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
        {
            Ok(out) => {
                Self::set(&self.lock_etag, out.e_tag().map(str::to_string));
                Ok(())
            }
            // 412: the lock object exists, so someone holds the state. 409: a concurrent
            // conditional write to the same key is in flight (also someone else).
            Err(e) if matches!(status(&e), Some(412 | 409)) => {
                let holder = self.read_lock().await.unwrap_or_else(|| LockInfo {
                    holder: "another run".into(),
                    pid: 0,
                    command: "?".into(),
                    started_at: "?".into(),
                    version: String::new(),
                });
                Err(StateError::Locked {
                    location: self.location(),
                    holder: Box::new(holder),
                })
            }
            Err(e) => Err(self.backend("s3:PutObject (lock)", e)),
        }
    }

    async fn unlock(&self) -> Result<(), StateError> {
        let Some(etag) = Self::get(&self.lock_etag) else {
            return Ok(());
        };
        // Delete only the lock this run wrote: if someone forced it away and took it, theirs
        // stays. One conditional delete does both the check and the delete, with no window
        // between them (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html):
        // 204 deleted; 412 the lock is someone else's now; 404 it is gone already; 409 a
        // concurrent write or delete of it won, so it is not ours either.
        match self
            .s3
            .delete_object()
            .bucket(&self.at.bucket)
            .key(self.at.lock_key())
            .if_match(&etag)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if matches!(status(&e), Some(412 | 404 | 409)) => {}
            // A store without conditional deletes (LocalStack 4.13.1 answers 501 Not
            // Implemented): look, then delete if it is still ours.
            Err(e) if status(&e) == Some(501) => self.delete_if_still(&etag).await?,
            Err(e) => return Err(self.backend("s3:DeleteObject (lock)", e)),
        }
        Self::set(&self.lock_etag, None);
        Ok(())
    }

    async fn force_unlock(&self) -> Result<Option<LockInfo>, StateError> {
        let holder = self.read_lock().await;
        self.s3
            .delete_object()
            .bucket(&self.at.bucket)
            .key(self.at.lock_key())
            .send()
            .await
            .map_err(|e| self.backend("s3:DeleteObject (lock)", e))?;
        Ok(holder)
    }

    async fn load(&self) -> Result<Option<State>, StateError> {
        let out = match self
            .s3
            .get_object()
            .bucket(&self.at.bucket)
            .key(&self.at.key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                Self::set(&self.etag, None);
                return Ok(None);
            }
            Err(e) => return Err(self.backend("s3:GetObject", e)),
        };
        Self::set(&self.etag, out.e_tag().map(str::to_string));
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StateError::Backend {
                location: self.location(),
                message: format!("reading the state failed: {e}"),
            })?
            .into_bytes();
        let text = String::from_utf8_lossy(&bytes);
        State::from_json(&text, &self.location()).map(Some)
    }

    async fn save(&self, state: &State) -> Result<(), StateError> {
        let mut req = self
            .s3
            .put_object()
            .bucket(&self.at.bucket)
            .key(&self.at.key)
            .content_type("application/json")
            .body(ByteStream::from(state.to_json().into_bytes()));
        // Write over exactly the version this run knows, or create it if there was none.
        req = match Self::get(&self.etag) {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        match req.send().await {
            Ok(out) => {
                Self::set(&self.etag, out.e_tag().map(str::to_string));
                Ok(())
            }
            Err(e) if matches!(status(&e), Some(412 | 409)) => Err(StateError::Conflict {
                location: self.location(),
            }),
            Err(e) => Err(self.backend("s3:PutObject", e)),
        }
    }
}
