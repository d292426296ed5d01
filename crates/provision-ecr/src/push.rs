//! Pushing a prepared image with the ECR API: blobs the repository lacks are uploaded in parts
//! (several blobs at once), then the manifest is put under its tag.

use std::collections::HashSet;
use std::io::SeekFrom;
use std::sync::Arc;

use aws_sdk_ecr::Client;
use aws_sdk_ecr::primitives::Blob as Bytes;
use aws_sdk_ecr::types::{ImageIdentifier, LayerAvailability};
use provision_aws::retry::{ECR_UPLOAD_RESTART, TRANSIENT, retry};
use provision_build::{Blob, PreparedImage};
use provision_core::resource::{Cx, ResourceError};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::aws;

const MIB: u64 = 1024 * 1024;
/// ECR takes parts of at least 5 MiB (except the last) and at most 10 MiB.
pub const MIN_PART: u64 = 5 * MIB;
pub const MAX_PART: u64 = 10 * MIB;
/// `BatchCheckLayerAvailability` takes at most 100 digests a call.
const CHECK_BATCH: usize = 100;

/// The byte ranges (first and last byte, inclusive) of a blob of `size` bytes in parts of
/// `part` bytes, which is first brought within ECR's limits.
pub fn parts(size: u64, part: u64) -> Vec<(u64, u64)> {
    let part = part.clamp(MIN_PART, MAX_PART);
    let mut out = Vec::new();
    let mut first = 0;
    while first < size {
        let last = (first + part).min(size) - 1;
        out.push((first, last));
        first = last + 1;
    }
    out
}

/// The part size to use given ECR's advice from `InitiateLayerUpload`.
fn part_size(advised: Option<i64>) -> u64 {
    match advised {
        Some(n) if n > 0 => (n as u64).clamp(MIN_PART, MAX_PART),
        _ => MAX_PART,
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// What a push did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// `sha256:<hex>` of the manifest the tag points to.
    pub digest: String,
    pub uploaded_blobs: usize,
    pub skipped_blobs: usize,
}

/// Pushes `image` into `repository` under `tag`. `uploads` bounds how many blobs upload at
/// once across every push of the run.
pub async fn push(
    cx: &Cx,
    ecr: &Client,
    repository: &str,
    tag: &str,
    image: &PreparedImage,
    uploads: Arc<Semaphore>,
) -> Result<Pushed, ResourceError> {
    let blobs = image.blobs();
    let present = available(ecr, repository, &blobs).await?;
    let missing: Vec<Blob> = blobs
        .iter()
        .filter(|b| !present.contains(&b.digest))
        .map(|b| (*b).clone())
        .collect();
    let bytes: u64 = missing.iter().map(|b| b.size).sum();
    let (uploaded_blobs, skipped_blobs) = (missing.len(), blobs.len() - missing.len());
    cx.progress(format!(
        "pushing to {repository}: {skipped_blobs} of {} blobs already there, uploading {uploaded_blobs} ({})",
        blobs.len(),
        mib(bytes)
    ));
    let mut tasks = JoinSet::new();
    for blob in missing {
        let (cx, ecr, repository, uploads) = (
            cx.clone(),
            ecr.clone(),
            repository.to_string(),
            uploads.clone(),
        );
        tasks.spawn(async move {
            let _permit = uploads
                .acquire_owned()
                .await
                .map_err(|_| ResourceError::fatal("the upload queue closed"))?;
            upload(&cx, &ecr, &repository, &blob).await
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined
            .unwrap_or_else(|e| Err(ResourceError::fatal(format!("an upload task failed: {e}"))));
        if let Err(e) = result {
            // The other uploads go on: what they finish is not uploaded again on a retry.
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let digest = put_manifest(cx, ecr, repository, tag, image).await?;
    Ok(Pushed {
        digest,
        uploaded_blobs,
        skipped_blobs,
    })
}

/// The digests among `blobs` the repository already has.
async fn available(
    ecr: &Client,
    repository: &str,
    blobs: &[&Blob],
) -> Result<HashSet<String>, ResourceError> {
    let mut present = HashSet::new();
    for chunk in blobs.chunks(CHECK_BATCH) {
        let out = ecr
            .batch_check_layer_availability()
            .repository_name(repository)
            .set_layer_digests(Some(chunk.iter().map(|b| b.digest.clone()).collect()))
            .send()
            .await
            .map_err(|e| aws("ecr:BatchCheckLayerAvailability", e))?;
        for layer in out.layers() {
            if layer.layer_availability() == Some(&LayerAvailability::Available)
                && let Some(d) = layer.layer_digest()
            {
                present.insert(d.to_string());
            }
        }
    }
    Ok(present)
}

/// Uploads one blob, starting over when an upload cannot go on (`ECR_UPLOAD_RESTART`: a part
/// or a completion whose reply was lost is retried by the SDK, and ECR refuses the repeat) or
/// a transient error outlasted the SDK's retries. The blob may be stored by then; else it
/// goes again from its first byte.
async fn upload(cx: &Cx, ecr: &Client, repository: &str, blob: &Blob) -> Result<(), ResourceError> {
    let mut again = false;
    retry(cx, &[&ECR_UPLOAD_RESTART, &TRANSIENT], || {
        let first = !std::mem::replace(&mut again, true);
        async move {
            if !first
                && available(ecr, repository, &[blob])
                    .await?
                    .contains(&blob.digest)
            {
                return Ok(());
            }
            upload_once(cx, ecr, repository, blob).await
        }
    })
    .await
}

async fn upload_once(
    cx: &Cx,
    ecr: &Client,
    repository: &str,
    blob: &Blob,
) -> Result<(), ResourceError> {
    if blob.size == 0 {
        return Err(ResourceError::fatal(format!(
            "blob {} is empty, which ECR cannot store",
            blob.digest
        )));
    }
    let started = ecr
        .initiate_layer_upload()
        .repository_name(repository)
        .send()
        .await
        .map_err(|e| aws("ecr:InitiateLayerUpload", e))?;
    let upload_id = started
        .upload_id()
        .ok_or_else(|| ResourceError::fatal("ecr:InitiateLayerUpload returned no upload id"))?;
    let ranges = parts(blob.size, part_size(started.part_size()));
    let mut file = tokio::fs::File::open(&blob.path).await.map_err(|e| {
        ResourceError::fatal(format!("could not open {}: {e}", blob.path.display()))
    })?;
    for (first, last) in &ranges {
        let mut buf = vec![0u8; (last - first + 1) as usize];
        file.seek(SeekFrom::Start(*first)).await.map_err(|e| {
            ResourceError::fatal(format!("could not read {}: {e}", blob.path.display()))
        })?;
        file.read_exact(&mut buf).await.map_err(|e| {
            ResourceError::fatal(format!("could not read {}: {e}", blob.path.display()))
        })?;
        ecr.upload_layer_part()
            .repository_name(repository)
            .upload_id(upload_id)
            .part_first_byte(*first as i64)
            .part_last_byte(*last as i64)
            .layer_part_blob(Bytes::new(buf))
            .send()
            .await
            .map_err(|e| aws("ecr:UploadLayerPart", e))?;
    }
    let done = match ecr
        .complete_layer_upload()
        .repository_name(repository)
        .upload_id(upload_id)
        .layer_digests(&blob.digest)
        .send()
        .await
    {
        Ok(done) => done,
        // Another push of the same layer finished first.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_layer_already_exists_exception()) =>
        {
            return Ok(());
        }
        Err(e) => return Err(aws("ecr:CompleteLayerUpload", e)),
    };
    if let Some(got) = done.layer_digest()
        && got != blob.digest
    {
        return Err(ResourceError::fatal(format!(
            "ECR stored blob {} as {got}: the upload was corrupted",
            blob.digest
        ))
        .with_hint("rerun `provision up`; the blob is uploaded again"));
    }
    cx.progress(format!(
        "uploaded {} ({}, {} part{})",
        short(&blob.digest),
        mib(blob.size),
        ranges.len(),
        if ranges.len() == 1 { "" } else { "s" }
    ));
    Ok(())
}

fn short(digest: &str) -> &str {
    let end = digest.len().min("sha256:".len() + 12);
    &digest[..end]
}

/// Puts the manifest under `tag`; returns the digest the tag then points to.
async fn put_manifest(
    cx: &Cx,
    ecr: &Client,
    repository: &str,
    tag: &str,
    image: &PreparedImage,
) -> Result<String, ResourceError> {
    let result = ecr
        .put_image()
        .repository_name(repository)
        .image_manifest(&image.manifest)
        .image_manifest_media_type(image.manifest_media_type())
        .image_digest(&image.manifest_digest)
        .image_tag(tag)
        .send()
        .await;
    match result {
        Ok(out) => Ok(out
            .image()
            .and_then(|i| i.image_id())
            .and_then(|id| id.image_digest())
            .unwrap_or(&image.manifest_digest)
            .to_string()),
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_image_already_exists_exception() || s.is_image_tag_already_exists_exception()
            }) =>
        {
            // The tag is there already (a retried call, or a concurrent run): it names the same
            // build inputs, so use what it points to.
            let digest = tagged_digest(ecr, repository, tag).await?;
            if digest != image.manifest_digest {
                cx.warn(format!(
                    "{repository}:{tag} already pointed to {digest}, built from the same files by an earlier run; keeping it"
                ));
            }
            Ok(digest)
        }
        Err(e) => {
            let mut err = aws("ecr:PutImage", e);
            if err.code.as_deref() == Some("LayersNotFoundException") {
                err.hint = Some("a layer vanished between upload and PutImage (a lifecycle rule?); rerun `provision up`".into());
            }
            Err(err)
        }
    }
}

/// The digest `tag` points to, if the repository holds it.
pub async fn find_tag(
    ecr: &Client,
    repository: &str,
    tag: &str,
) -> Result<Option<TaggedImage>, ResourceError> {
    let out = ecr
        .describe_images()
        .repository_name(repository)
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .send()
        .await;
    match out {
        Ok(out) => Ok(out.image_details().first().and_then(|d| {
            Some(TaggedImage {
                digest: d.image_digest()?.to_string(),
                registry_id: d.registry_id().unwrap_or_default().to_string(),
            })
        })),
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_image_not_found_exception() || s.is_repository_not_found_exception()
            }) =>
        {
            Ok(None)
        }
        Err(e) => Err(aws("ecr:DescribeImages", e)),
    }
}

/// An image a tag points to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedImage {
    pub digest: String,
    pub registry_id: String,
}

async fn tagged_digest(ecr: &Client, repository: &str, tag: &str) -> Result<String, ResourceError> {
    find_tag(ecr, repository, tag)
        .await?
        .map(|t| t.digest)
        .ok_or_else(|| {
            ResourceError::transient(format!(
                "ECR says {repository}:{tag} exists but does not describe it yet"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_blob_exactly_within_ecr_limits() {
        for size in [
            1,
            MIN_PART - 1,
            MIN_PART,
            MAX_PART,
            MAX_PART + 1,
            3 * MAX_PART + 12345,
        ] {
            for advised in [1, MIN_PART, 8 * MIB, MAX_PART, 100 * MIB] {
                let ps = parts(size, advised);
                assert_eq!(ps.first().map(|p| p.0), Some(0));
                assert_eq!(ps.last().map(|p| p.1), Some(size - 1));
                for w in ps.windows(2) {
                    assert_eq!(w[0].1 + 1, w[1].0, "parts are contiguous");
                }
                let (last, rest) = ps.split_last().unwrap();
                for (a, b) in rest {
                    let len = b - a + 1;
                    assert!((MIN_PART..=MAX_PART).contains(&len), "part of {len} bytes");
                }
                assert!(last.1 - last.0 < MAX_PART);
            }
        }
        assert!(parts(0, MAX_PART).is_empty());
    }

    #[test]
    fn a_part_size_is_always_one_ecr_takes() {
        assert_eq!(part_size(None), MAX_PART);
        assert_eq!(part_size(Some(20 * MIB as i64)), MAX_PART);
        assert_eq!(part_size(Some(1)), MIN_PART);
        assert_eq!(part_size(Some(-1)), MAX_PART);
        assert_eq!(part_size(Some(6 * MIB as i64)), 6 * MIB);
    }
}
