//! Backends: every `model_data_url` object exists and can be read (S3 `HeadObject`), and each
//! HuggingFace inference image exists in its registry where these credentials can read it
//! (ECR `BatchGetImage` on the registry account's repository).

use std::future::Future;

use aws_sdk_ecr::types::ImageIdentifier;
use provision_config::{Config, EndpointModel, huggingface};

use crate::{Area, Finding};

/// `s3://bucket/key` → (bucket, key).
pub fn parse_s3_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

/// Every endpoint's `model_data_url`, with its key path.
pub fn model_data_urls(config: &Config) -> Vec<(String, String)> {
    config
        .sagemaker_endpoints
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let url = match &e.model {
                EndpointModel::Huggingface { model_data_url, .. }
                | EndpointModel::ImageAndModelData { model_data_url, .. } => {
                    model_data_url.as_ref()?
                }
            };
            Some((
                format!("sagemaker_endpoints[{i}].model_data_url"),
                url.clone(),
            ))
        })
        .collect()
}

/// One `HeadObject` per `model_data_url` (concurrently); a missing object also asks
/// `HeadBucket`, to say whether the bucket or the key is wrong.
pub async fn model_data(s3: &aws_sdk_s3::Client, config: &Config) -> Vec<Finding> {
    let checks = model_data_urls(config)
        .into_iter()
        .map(|(key, url)| async move { model_object(s3, &config.region, &key, &url).await });
    futures_join_all(checks).await
}

async fn model_object(s3: &aws_sdk_s3::Client, region: &str, key: &str, url: &str) -> Finding {
    let Some((bucket, object)) = parse_s3_url(url) else {
        return Finding::problem(
            Area::Backends,
            key,
            format!("`{url}` is not an s3://bucket/key URL"),
        );
    };
    let err = match s3.head_object().bucket(bucket).key(object).send().await {
        Ok(out) => {
            return Finding::ok(
                Area::Backends,
                key,
                format!(
                    "{url} exists ({} bytes)",
                    out.content_length().unwrap_or_default()
                ),
            );
        }
        Err(e) => e,
    };
    // HEAD answers carry no error body: the status is what there is.
    let status = err.raw_response().map(|r| r.status().as_u16());
    match status {
        Some(404) => {
            let bucket_missing = match s3.head_bucket().bucket(bucket).send().await {
                Ok(_) => false,
                Err(e) => e.raw_response().map(|r| r.status().as_u16()) == Some(404),
            };
            let message = if bucket_missing {
                format!("the bucket `{bucket}` of {url} does not exist")
            } else {
                format!("there is no object `{object}` in the bucket `{bucket}` ({url})")
            };
            Finding::problem(Area::Backends, key, format!("{message}: SageMaker could not load the model, and the endpoint would fail after minutes of waiting"))
                .hint(format!("upload the model archive (`aws s3 cp model.tar.gz {url}`), or fix `{key}`"))
        }
        // S3 answers 301 for a bucket of another region: SageMaker reads model data from its
        // own region only.
        Some(301) => Finding::problem(
            Area::Backends,
            key,
            format!("the bucket `{bucket}` of {url} is not in {region}; SageMaker reads model data from the endpoint's region only"),
        )
        .hint(format!("copy the model data to a bucket in {region} and point `{key}` at it")),
        Some(403) => Finding::warning(
            Area::Backends,
            key,
            format!("{url} could not be read with these credentials (403): it may be missing, or readable by the endpoint's role only"),
        )
        .hint("check with `aws s3 ls` using a role that can read the bucket; the endpoint's role gets read access to `model_data_bucket`"),
        _ => {
            let (_, text) = crate::error_text(&err);
            Finding::not_checked(
                Area::Backends,
                key,
                format!("{url} could not be checked: s3:HeadObject: {text}"),
            )
        }
    }
}

/// One HuggingFace endpoint's inference image: its URI, and the key that chose it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HuggingfaceImage {
    pub subject: String,
    pub uri: String,
}

/// The HuggingFace inference image of each HuggingFace endpoint.
pub fn huggingface_images(config: &Config) -> Vec<HuggingfaceImage> {
    let mut out = Vec::new();
    for (i, e) in config.sagemaker_endpoints.iter().enumerate() {
        if let EndpointModel::Huggingface {
            use_gpu,
            pytorch_version,
            transformers_version,
            ubuntu_version,
            image_uri,
            ..
        } = &e.model
        {
            let (subject, uri) = match image_uri {
                Some(uri) => (
                    format!("sagemaker_endpoints[{i}].image_uri"),
                    Some(uri.clone()),
                ),
                None => (
                    format!(
                        "sagemaker_endpoints[{i}].pytorch_version/transformers_version/ubuntu_version"
                    ),
                    huggingface::image_uri(
                        &config.region,
                        huggingface::Versions {
                            pytorch: pytorch_version,
                            transformers: transformers_version,
                            ubuntu: ubuntu_version,
                            use_gpu: *use_gpu,
                        },
                    ),
                ),
            };
            if let Some(uri) = uri {
                out.push(HuggingfaceImage { subject, uri });
            }
        }
    }
    out
}

/// An ECR image reference: `<account>.dkr.ecr.<region>.<domain>/<repository>(:<tag>|@<digest>)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcrReference {
    pub account: String,
    pub region: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

pub fn parse_ecr_uri(uri: &str) -> Option<EcrReference> {
    let (host, path) = uri.split_once('/')?;
    let mut parts = host.split('.');
    let account = parts.next()?;
    if parts.next()? != "dkr" || parts.next()? != "ecr" {
        return None;
    }
    let region = parts.next()?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (repository, tag, digest) = if let Some((r, d)) = path.split_once('@') {
        (r, None, Some(d.to_string()))
    } else if let Some((r, t)) = path.rsplit_once(':') {
        (r, Some(t.to_string()), None)
    } else {
        (path, Some("latest".to_string()), None)
    };
    Some(EcrReference {
        account: account.to_string(),
        region: region.to_string(),
        repository: repository.to_string(),
        tag,
        digest,
    })
}

/// Each HuggingFace image exists in its registry (`BatchGetImage`, which the registries of
/// AWS's deep learning containers grant for pulls). Where these credentials cannot read the
/// repository, it says "not checked" and why.
pub async fn huggingface(ecr: &aws_sdk_ecr::Client, config: &Config) -> Vec<Finding> {
    let checks = huggingface_images(config)
        .into_iter()
        .map(|image| async move { huggingface_image(ecr, &config.region, &image).await });
    futures_join_all(checks).await
}

async fn huggingface_image(
    ecr: &aws_sdk_ecr::Client,
    region: &str,
    image: &HuggingfaceImage,
) -> Finding {
    let subject = image.subject.as_str();
    let Some(r) = parse_ecr_uri(&image.uri) else {
        return Finding::not_checked(
            Area::Backends,
            subject,
            format!("{} is not an ECR image, so it was not checked", image.uri),
        );
    };
    if r.region != region {
        return Finding::not_checked(
            Area::Backends,
            subject,
            format!(
                "{} is in {}, not {region}, so it was not checked here",
                image.uri, r.region
            ),
        );
    }
    let id = match (&r.digest, &r.tag) {
        (Some(d), _) => ImageIdentifier::builder().image_digest(d).build(),
        (None, Some(t)) => ImageIdentifier::builder().image_tag(t).build(),
        (None, None) => ImageIdentifier::builder().build(),
    };
    let out = ecr
        .batch_get_image()
        .registry_id(&r.account)
        .repository_name(&r.repository)
        .image_ids(id)
        // Every manifest type, so the answer is about existence, not about a conversion
        // (ECR answers UnsupportedImageType for a type it was not asked to accept).
        // https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_BatchGetImage.html
        .accepted_media_types("application/vnd.docker.distribution.manifest.v2+json")
        .accepted_media_types("application/vnd.docker.distribution.manifest.list.v2+json")
        .accepted_media_types("application/vnd.oci.image.manifest.v1+json")
        .accepted_media_types("application/vnd.oci.image.index.v1+json")
        .send()
        .await;
    match out {
        Ok(out) if !out.images().is_empty() => {
            Finding::ok(Area::Backends, subject, format!("{} exists", image.uri))
        }
        Ok(out) => {
            let failure = out.failures().first();
            let code = failure
                .and_then(|f| f.failure_code())
                .map(|c| c.as_str().to_string())
                .unwrap_or_else(|| "ImageNotFound".to_string());
            let why = format!(
                "{code}: {}",
                failure.and_then(|f| f.failure_reason()).unwrap_or("")
            );
            if !matches!(
                code.as_str(),
                "ImageNotFound" | "ImageTagDoesNotMatchDigest"
            ) {
                return Finding::not_checked(
                    Area::Backends,
                    subject,
                    format!(
                        "whether {} exists was not checked: ecr:BatchGetImage answered {why}",
                        image.uri
                    ),
                );
            }
            Finding::problem(
                Area::Backends,
                subject,
                format!("{} does not exist ({why}): SageMaker could not pull it, and the endpoint would fail after minutes of waiting", image.uri),
            )
            .hint("AWS's deep learning containers list the HuggingFace inference images that exist (available_images.md in aws/deep-learning-containers): choose versions from there, or set `image_uri`")
        }
        Err(e) => {
            let (code, text) = crate::error_text(&e);
            let why = match code.as_deref() {
                Some("RepositoryNotFoundException" | "AccessDeniedException") => format!(
                    "these credentials cannot read the repository {} of account {} ({text}); reading it needs ecr:BatchGetImage on that registry",
                    r.repository, r.account
                ),
                _ => format!("ecr:BatchGetImage: {text}"),
            };
            Finding::not_checked(
                Area::Backends,
                subject,
                format!("whether {} exists was not checked: {why}", image.uri),
            )
        }
    }
}

/// Runs futures concurrently and keeps their order.
pub(crate) async fn futures_join_all<F, T>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: Future<Output = T>,
{
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<T>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_some() {
                continue;
            }
            match f.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => out[i] = Some(v),
                std::task::Poll::Pending => pending = true,
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_split_into_bucket_and_key() {
        assert_eq!(
            parse_s3_url("s3://b/models/m.tar.gz"),
            Some(("b", "models/m.tar.gz"))
        );
        assert_eq!(parse_s3_url("s3://b/"), None);
        assert_eq!(parse_s3_url("https://b/k"), None);
    }

    #[test]
    fn ecr_uris_name_account_region_repository_and_tag() {
        let r = parse_ecr_uri("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:1.13-transformers4.26-cpu-py39-ubuntu20.04").unwrap();
        assert_eq!(r.account, "763104351884");
        assert_eq!(r.region, "us-east-1");
        assert_eq!(r.repository, "huggingface-pytorch-inference");
        assert_eq!(
            r.tag.as_deref(),
            Some("1.13-transformers4.26-cpu-py39-ubuntu20.04")
        );
        let d =
            parse_ecr_uri("123456789012.dkr.ecr.eu-west-1.amazonaws.com/a/b@sha256:00").unwrap();
        assert_eq!(
            (d.repository.as_str(), d.digest.as_deref()),
            ("a/b", Some("sha256:00"))
        );
        assert!(parse_ecr_uri("docker.io/library/python:3.12").is_none());
    }

    #[tokio::test]
    async fn join_all_keeps_the_order() {
        let out = futures_join_all((0..5u64).map(|i| async move {
            tokio::time::sleep(std::time::Duration::from_millis(50 - i * 10)).await;
            i
        }))
        .await;
        assert_eq!(out, [0, 1, 2, 3, 4]);
    }
}
