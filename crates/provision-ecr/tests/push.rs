//! The ECR push against the emulator: a layer larger than one part goes up in parts, blobs
//! the repository has are never uploaded again, and putting a tag that is already there is a
//! success, not an error.

// The helpers are test code too (clippy only knows `#[test]` functions as such).
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::Write;
use std::sync::Arc;

use aws_sdk_ecr::types::LayerAvailability;
use flate2::Compression;
use provision_aws::ApiCalls;
use provision_build::{ImageArchive, PreparedImage};
use provision_core::platform::Platform;
use provision_core::resource::{Cx, Stack};
use provision_ecr::push::{self, MAX_PART};
use provision_testkit::Emulator;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

const REPOSITORY: &str = "push/test";

fn client(url: &str, calls: &ApiCalls) -> aws_sdk_ecr::Client {
    let conf = aws_sdk_ecr::Config::builder()
        .behavior_version(aws_sdk_ecr::config::BehaviorVersion::latest())
        .region(aws_sdk_ecr::config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_ecr::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .interceptor(calls.clone())
        .build();
    aws_sdk_ecr::Client::from_conf(conf)
}

fn cx() -> Cx {
    Cx::detached(
        "image/test/amd64",
        Stack {
            name: "streamlit-app-test".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
        },
    )
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Bytes that do not compress, without a random number crate.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A layer: a tarball holding one file, gzipped (stored, not compressed: the test is about
/// sizes and parts, not about compression).
fn layer(name: &str, content: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    b.append_data(&mut header, name, content).unwrap();
    let raw = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::none());
    gz.write_all(&raw).unwrap();
    (raw, gz.finish().unwrap())
}

/// An image as a builder's OCI archive, prepared for the push.
fn image(layers: &[(&str, Vec<u8>)], label: &str) -> PreparedImage {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut diff_ids = Vec::new();
    let mut descriptors = Vec::new();
    for (name, content) in layers {
        let (raw, gz) = layer(name, content);
        diff_ids.push(digest(&raw));
        descriptors.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(&gz), "size": gz.len()}));
        files.push((format!("blobs/sha256/{}", &digest(&gz)[7..]), gz));
    }
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "config": {"Labels": {"test": label}}, "rootfs": {"type": "layers", "diff_ids": diff_ids}})).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": descriptors,
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(&manifest), "size": manifest.len()}]})).unwrap();
    files.push((format!("blobs/sha256/{}", &digest(&config)[7..]), config));
    files.push((
        format!("blobs/sha256/{}", &digest(&manifest)[7..]),
        manifest,
    ));
    files.push(("index.json".into(), index));
    let mut b = tar::Builder::new(File::create(&path).unwrap());
    for (name, bytes) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        b.append_data(&mut header, name, bytes.as_slice()).unwrap();
    }
    b.finish().unwrap();
    ImageArchive::new(dir, path)
        .prepare(Platform::Amd64)
        .unwrap()
}

/// Calls of an ECR operation, however the ledger spells the service (`ecr`).
fn count(calls: &ApiCalls, operation: &str) -> u64 {
    calls
        .snapshot()
        .operations
        .iter()
        .filter(|(op, _)| {
            op.split_once(':')
                .is_some_and(|(svc, name)| svc.eq_ignore_ascii_case("ecr") && name == operation)
        })
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn layers_upload_in_parts_once_and_pushing_an_existing_tag_succeeds() {
    let emulator = Emulator::start().unwrap();
    let calls = ApiCalls::default();
    let ecr = client(emulator.url(), &calls);
    ecr.create_repository()
        .repository_name(REPOSITORY)
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Immutable)
        .send()
        .await
        .unwrap();
    let uploads = Arc::new(Semaphore::new(4));

    // A 23 MiB layer takes three parts of at most 10 MiB; a small one, one part.
    let big = noise(23 * 1024 * 1024, 0x9e37_79b9_7f4a_7c15);
    let first = image(
        &[
            ("app/model.bin", big.clone()),
            ("app/app.py", b"print('hello')\n".to_vec()),
        ],
        "one",
    );
    assert!(first.layers[0].size > 2 * MAX_PART);
    let pushed = push::push(&cx(), &ecr, REPOSITORY, "one", &first, uploads.clone())
        .await
        .unwrap();
    assert_eq!(
        (pushed.uploaded_blobs, pushed.skipped_blobs),
        (3, 0),
        "the config and two layers"
    );
    assert_eq!(pushed.digest, first.manifest_digest);
    assert_eq!(count(&calls, "InitiateLayerUpload"), 3);
    assert_eq!(
        count(&calls, "UploadLayerPart"),
        3 + 1 + 1,
        "three parts for the big layer"
    );
    assert_eq!(count(&calls, "CompleteLayerUpload"), 3);

    let blobs: Vec<String> = first.blobs().iter().map(|b| b.digest.clone()).collect();
    let available = ecr
        .batch_check_layer_availability()
        .repository_name(REPOSITORY)
        .set_layer_digests(Some(blobs))
        .send()
        .await
        .unwrap();
    assert!(
        available.failures().is_empty(),
        "{:?}",
        available.failures()
    );
    for l in available.layers() {
        assert_eq!(l.layer_availability(), Some(&LayerAvailability::Available));
        let blob = first
            .blobs()
            .into_iter()
            .find(|b| Some(b.digest.as_str()) == l.layer_digest())
            .unwrap();
        assert_eq!(l.layer_size(), Some(blob.size as i64), "every byte arrived");
    }
    let got = ecr
        .batch_get_image()
        .repository_name(REPOSITORY)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag("one")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.images()[0].image_manifest(),
        Some(first.manifest.as_str()),
        "the manifest is stored as sent"
    );

    // The same push again uploads nothing, and the tag already there counts as pushed.
    let again = push::push(&cx(), &ecr, REPOSITORY, "one", &first, uploads.clone())
        .await
        .unwrap();
    assert_eq!((again.uploaded_blobs, again.skipped_blobs), (0, 3));
    assert_eq!(again.digest, first.manifest_digest);
    assert_eq!(
        count(&calls, "InitiateLayerUpload"),
        3,
        "nothing uploaded twice"
    );

    // Another image sharing the big layer uploads only what is new.
    let second = image(
        &[
            ("app/model.bin", big),
            ("app/app.py", b"print('bye')\n".to_vec()),
        ],
        "two",
    );
    let pushed = push::push(&cx(), &ecr, REPOSITORY, "two", &second, uploads.clone())
        .await
        .unwrap();
    assert_eq!(
        (pushed.uploaded_blobs, pushed.skipped_blobs),
        (2, 1),
        "the shared layer is skipped"
    );
    assert_eq!(count(&calls, "UploadLayerPart"), 5 + 2);

    // A tag names its content for good: pushing other content under it keeps what is there.
    let kept = push::push(&cx(), &ecr, REPOSITORY, "one", &second, uploads)
        .await
        .unwrap();
    assert_eq!(kept.digest, first.manifest_digest);
}
