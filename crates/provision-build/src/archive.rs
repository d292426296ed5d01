//! Reading a builder's image archive and preparing it for a registry push.
//!
//! Builders write an OCI image layout as a tarball (Buildah, Podman, Docker 25 and later) or
//! Docker's older `docker save` format (a `manifest.json` listing a config and layer tars).
//! Either becomes one single-platform image in Docker's v2 schema 2 format: Lambda and
//! SageMaker accept it everywhere, while OCI indexes and attestation manifests have tripped
//! some services up. Its layers must then be gzip tarballs; layers stored uncompressed (Podman,
//! `docker save`) are compressed here. The config blob is kept byte for byte, so the image's
//! identity (its config digest) is the builder's.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::Compression;
use provision_core::platform::Platform;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("could not {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("the image archive is not usable: {0}")]
    Invalid(String),
    #[error(
        "the builder made a {got} image, but {want} was asked for (does the builder support --platform?)"
    )]
    WrongPlatform { want: String, got: String },
    #[error(
        "the image has zstd-compressed layers, which Docker v2 images cannot carry; build with gzip or uncompressed layers"
    )]
    Zstd,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    let what = what.into();
    move |source| ArchiveError::Io { what, source }
}

/// An archive a builder wrote, in the temporary folder that holds it.
#[derive(Debug)]
pub struct ImageArchive {
    dir: TempDir,
    path: PathBuf,
}

impl ImageArchive {
    pub fn new(dir: TempDir, path: PathBuf) -> Self {
        ImageArchive { dir, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unpacks the archive and converts its image for `platform` (blocking: run it off the
    /// async runtime, see [`ImageArchive::prepare_async`]).
    pub fn prepare(self, platform: Platform) -> Result<PreparedImage, ArchiveError> {
        let root = self.dir.path().join("layout");
        fs::create_dir_all(&root).map_err(io_err("make a folder for the image"))?;
        {
            let file =
                File::open(&self.path).map_err(io_err(format!("open {}", self.path.display())))?;
            tar::Archive::new(BufReader::new(file))
                .unpack(&root)
                .map_err(io_err("unpack the image archive"))?;
        }
        // The unpacked copy is all that is needed from here on.
        let _ = fs::remove_file(&self.path);
        let parts = if root.join("index.json").is_file() {
            oci_parts(&root, platform)?
        } else if root.join("manifest.json").is_file() {
            docker_parts(&root)?
        } else {
            return Err(ArchiveError::Invalid(
                "it has neither index.json (OCI) nor manifest.json (docker save)".into(),
            ));
        };
        convert(self.dir, &root, parts, platform)
    }

    /// [`ImageArchive::prepare`] on a blocking thread.
    pub async fn prepare_async(self, platform: Platform) -> Result<PreparedImage, ArchiveError> {
        tokio::task::spawn_blocking(move || self.prepare(platform))
            .await
            .map_err(|e| ArchiveError::Invalid(format!("preparing the image stopped: {e}")))?
    }
}

/// A file to upload, addressed by the SHA-256 of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
    pub path: PathBuf,
    pub media_type: &'static str,
}

/// A single-platform Docker v2 image, ready to push: a manifest and the blobs it names.
#[derive(Debug)]
pub struct PreparedImage {
    _dir: TempDir,
    /// The manifest as it must be sent (its digest is over these exact bytes).
    pub manifest: String,
    /// `sha256:<hex>` of `manifest`.
    pub manifest_digest: String,
    pub config: Blob,
    pub layers: Vec<Blob>,
}

impl PreparedImage {
    pub fn manifest_media_type(&self) -> &'static str {
        MANIFEST_MEDIA_TYPE
    }

    /// Every blob the manifest names, the config first, each once.
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut out: Vec<&Blob> = Vec::with_capacity(self.layers.len() + 1);
        for b in std::iter::once(&self.config).chain(&self.layers) {
            if !out.iter().any(|o| o.digest == b.digest) {
                out.push(b);
            }
        }
        out
    }

    /// Bytes of all layers, compressed.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// Where the config and layers are in the unpacked archive, with the digests it claims.
struct Parts {
    config: (PathBuf, Option<String>),
    layers: Vec<(PathBuf, Option<String>)>,
}

fn read_json(path: &Path) -> Result<(Vec<u8>, Value), ArchiveError> {
    let bytes = fs::read(path).map_err(io_err(format!("read {}", path.display())))?;
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| ArchiveError::Invalid(format!("{} is not JSON: {e}", path.display())))?;
    Ok((bytes, value))
}

/// The file of a blob in an OCI layout; refuses digests that are not plain SHA-256.
fn blob_path(root: &Path, digest: &str) -> Result<PathBuf, ArchiveError> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(root.join("blobs").join("sha256").join(hex))
        }
        _ => Err(ArchiveError::Invalid(format!(
            "unsupported digest `{digest}`"
        ))),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn read_blob_json(root: &Path, digest: &str) -> Result<Value, ArchiveError> {
    let (bytes, value) = read_json(&blob_path(root, digest)?)?;
    if sha256_hex(&bytes) != digest {
        return Err(ArchiveError::Invalid(format!(
            "blob {digest} does not match its digest"
        )));
    }
    Ok(value)
}

fn str_field<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// A manifest an index points to, with the platform it declares.
struct Candidate {
    digest: String,
    platform: Option<(String, String)>,
}

fn collect_manifests(
    root: &Path,
    index: &Value,
    depth: usize,
    out: &mut Vec<Candidate>,
) -> Result<(), ArchiveError> {
    if depth > 4 {
        return Err(ArchiveError::Invalid("indexes nest too deeply".into()));
    }
    let Some(manifests) = index.get("manifests").and_then(Value::as_array) else {
        return Err(ArchiveError::Invalid("an index has no manifests".into()));
    };
    for m in manifests {
        let media_type = str_field(m, "mediaType").unwrap_or(OCI_MANIFEST);
        let Some(digest) = str_field(m, "digest") else {
            continue;
        };
        // Provenance and SBOM attestations ride along as manifests of an unknown platform.
        let attestation = m
            .get("annotations")
            .and_then(|a| str_field(a, "vnd.docker.reference.type"))
            .is_some_and(|t| t == "attestation-manifest");
        let platform = m.get("platform").map(|p| {
            (
                str_field(p, "os").unwrap_or("").to_string(),
                str_field(p, "architecture").unwrap_or("").to_string(),
            )
        });
        if attestation
            || platform
                .as_ref()
                .is_some_and(|(os, arch)| os == "unknown" || arch == "unknown")
        {
            continue;
        }
        if media_type == OCI_INDEX || media_type == DOCKER_LIST {
            let nested = read_blob_json(root, digest)?;
            collect_manifests(root, &nested, depth + 1, out)?;
        } else {
            out.push(Candidate {
                digest: digest.to_string(),
                platform,
            });
        }
    }
    Ok(())
}

fn oci_parts(root: &Path, platform: Platform) -> Result<Parts, ArchiveError> {
    let (_, index) = read_json(&root.join("index.json"))?;
    let mut candidates = Vec::new();
    collect_manifests(root, &index, 0, &mut candidates)?;
    let arch = platform.as_str();
    let chosen = match candidates.iter().find(|c| {
        c.platform
            .as_ref()
            .is_some_and(|(os, a)| os == "linux" && a == arch)
    }) {
        Some(c) => c,
        None => match candidates.as_slice() {
            // One image that does not say its platform: its config will.
            [only] if only.platform.is_none() => only,
            [] => return Err(ArchiveError::Invalid("it holds no image".into())),
            many => {
                let found: Vec<String> = many
                    .iter()
                    .map(|c| {
                        c.platform
                            .as_ref()
                            .map(|(os, a)| format!("{os}/{a}"))
                            .unwrap_or_else(|| "unknown".into())
                    })
                    .collect();
                return Err(ArchiveError::WrongPlatform {
                    want: platform.oci().to_string(),
                    got: found.join(", "),
                });
            }
        },
    };
    let manifest = read_blob_json(root, &chosen.digest)?;
    let descriptor = |d: &Value| -> Result<(PathBuf, Option<String>), ArchiveError> {
        let digest = str_field(d, "digest")
            .ok_or_else(|| ArchiveError::Invalid("a descriptor has no digest".into()))?;
        Ok((blob_path(root, digest)?, Some(digest.to_string())))
    };
    let config = descriptor(
        manifest
            .get("config")
            .ok_or_else(|| ArchiveError::Invalid("the manifest has no config".into()))?,
    )?;
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .map(|ls| ls.iter().map(descriptor).collect::<Result<Vec<_>, _>>())
        .transpose()?
        .unwrap_or_default();
    Ok(Parts { config, layers })
}

/// A path inside the unpacked archive, refusing anything that would leave it.
fn inside(root: &Path, rel: &str) -> Result<PathBuf, ArchiveError> {
    let p = Path::new(rel);
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(ArchiveError::Invalid(format!(
            "manifest.json names a path outside the archive: {rel}"
        )));
    }
    Ok(root.join(p))
}

fn docker_parts(root: &Path) -> Result<Parts, ArchiveError> {
    let (_, manifest) = read_json(&root.join("manifest.json"))?;
    let entry = match manifest.as_array().map(Vec::as_slice) {
        Some([one]) => one,
        Some([]) | None => {
            return Err(ArchiveError::Invalid("manifest.json lists no image".into()));
        }
        Some(_) => {
            return Err(ArchiveError::Invalid(
                "manifest.json lists more than one image".into(),
            ));
        }
    };
    let config = str_field(entry, "Config")
        .ok_or_else(|| ArchiveError::Invalid("manifest.json has no Config".into()))?;
    let layers = entry
        .get("Layers")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    let rel = l.as_str().ok_or_else(|| {
                        ArchiveError::Invalid("a layer path is not a string".into())
                    })?;
                    Ok((inside(root, rel)?, None))
                })
                .collect::<Result<Vec<_>, ArchiveError>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(Parts {
        config: (inside(root, config)?, None),
        layers,
    })
}

/// Writes through to a file while hashing and counting what was written.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn file_digest(path: &Path) -> Result<(String, u64), ArchiveError> {
    let mut file = File::open(path).map_err(io_err(format!("open {}", path.display())))?;
    let mut h = Hashing {
        inner: io::sink(),
        hash: Sha256::new(),
        size: 0,
    };
    io::copy(&mut file, &mut h).map_err(io_err(format!("read {}", path.display())))?;
    Ok((format!("sha256:{}", hex::encode(h.hash.finalize())), h.size))
}

#[derive(Debug, PartialEq, Eq)]
enum Compressed {
    Gzip,
    Zstd,
    No,
}

fn sniff(path: &Path) -> Result<Compressed, ArchiveError> {
    let mut magic = [0u8; 4];
    let mut file = File::open(path).map_err(io_err(format!("open {}", path.display())))?;
    let mut n = 0;
    while n < magic.len() {
        match file.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(format!("read {}", path.display()))(e)),
        }
    }
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Compressed::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compressed::Zstd,
        _ => Compressed::No,
    })
}

/// A layer as a gzip blob: as it is if it is gzip already, else compressed into `out`.
fn gzip_layer(path: &Path, claimed: Option<&str>, out: PathBuf) -> Result<Blob, ArchiveError> {
    match sniff(path)? {
        Compressed::Zstd => Err(ArchiveError::Zstd),
        Compressed::Gzip => {
            let (digest, size) = file_digest(path)?;
            if let Some(claimed) = claimed
                && claimed != digest
            {
                return Err(ArchiveError::Invalid(format!(
                    "layer {claimed} does not match its digest"
                )));
            }
            Ok(Blob {
                digest,
                size,
                path: path.to_path_buf(),
                media_type: LAYER_MEDIA_TYPE,
            })
        }
        Compressed::No => {
            let mut input = File::open(path).map_err(io_err(format!("open {}", path.display())))?;
            let file = File::create(&out).map_err(io_err(format!("create {}", out.display())))?;
            let hashing = Hashing {
                inner: BufWriter::new(file),
                hash: Sha256::new(),
                size: 0,
            };
            // A fixed header (no name, no time) keeps the compressed bytes reproducible.
            let mut gz = flate2::GzBuilder::new().write(hashing, Compression::default());
            let mut raw = Hashing {
                inner: &mut gz,
                hash: Sha256::new(),
                size: 0,
            };
            io::copy(&mut input, &mut raw).map_err(io_err("compress a layer"))?;
            let raw_digest = format!("sha256:{}", hex::encode(raw.hash.finalize()));
            if let Some(claimed) = claimed
                && claimed != raw_digest
            {
                return Err(ArchiveError::Invalid(format!(
                    "layer {claimed} does not match its digest"
                )));
            }
            let mut hashing = gz.finish().map_err(io_err("compress a layer"))?;
            hashing
                .flush()
                .map_err(io_err("write a compressed layer"))?;
            Ok(Blob {
                digest: format!("sha256:{}", hex::encode(hashing.hash.finalize())),
                size: hashing.size,
                path: out,
                media_type: LAYER_MEDIA_TYPE,
            })
        }
    }
}

fn convert(
    dir: TempDir,
    root: &Path,
    parts: Parts,
    platform: Platform,
) -> Result<PreparedImage, ArchiveError> {
    let (config_path, claimed) = &parts.config;
    let (config_bytes, config) = read_json(config_path)?;
    let config_digest = sha256_hex(&config_bytes);
    if let Some(claimed) = claimed
        && *claimed != config_digest
    {
        return Err(ArchiveError::Invalid(format!(
            "config {claimed} does not match its digest"
        )));
    }
    let os = str_field(&config, "os").unwrap_or("");
    let arch = str_field(&config, "architecture").unwrap_or("");
    if os != "linux" || arch != platform.as_str() {
        return Err(ArchiveError::WrongPlatform {
            want: platform.oci().to_string(),
            got: format!("{os}/{arch}"),
        });
    }
    let diff_ids = config
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .map(Vec::len);
    if let Some(n) = diff_ids
        && n != parts.layers.len()
    {
        return Err(ArchiveError::Invalid(format!(
            "the config lists {n} layers but the manifest {}",
            parts.layers.len()
        )));
    }
    let compressed = root.join("compressed");
    fs::create_dir_all(&compressed).map_err(io_err("make a folder for compressed layers"))?;
    let mut layers = Vec::with_capacity(parts.layers.len());
    for (i, (path, claimed)) in parts.layers.iter().enumerate() {
        layers.push(gzip_layer(
            path,
            claimed.as_deref(),
            compressed.join(format!("{i}.tar.gz")),
        )?);
    }
    let config = Blob {
        digest: config_digest,
        size: config_bytes.len() as u64,
        path: config_path.clone(),
        media_type: CONFIG_MEDIA_TYPE,
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "size": config.size, "digest": config.digest},
        "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "size": l.size, "digest": l.digest})).collect::<Vec<_>>(),
    });
    let manifest =
        serde_json::to_string(&manifest).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    Ok(PreparedImage {
        _dir: dir,
        manifest_digest: sha256_hex(manifest.as_bytes()),
        manifest,
        config,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Read;

    /// A tarball holding one file, as a layer.
    fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        b.append_data(&mut header, name, content).unwrap();
        b.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn digest(bytes: &[u8]) -> String {
        sha256_hex(bytes)
    }

    /// Writes an archive of `files` and returns it ready to prepare.
    fn archive(files: &[(String, Vec<u8>)]) -> ImageArchive {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        for (name, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            b.append_data(&mut header, name, bytes.as_slice()).unwrap();
        }
        b.finish().unwrap();
        ImageArchive::new(dir, path)
    }

    fn blob(bytes: &[u8]) -> (String, Vec<u8>) {
        (
            format!("blobs/sha256/{}", &digest(bytes)[7..]),
            bytes.to_vec(),
        )
    }

    fn config(arch: &str, diff_ids: &[&[u8]]) -> Vec<u8> {
        let ids: Vec<String> = diff_ids.iter().map(|d| digest(d)).collect();
        serde_json::to_vec(&json!({"architecture": arch, "os": "linux", "config": {"Cmd": ["serve"]}, "rootfs": {"type": "layers", "diff_ids": ids}})).unwrap()
    }

    /// An OCI layout with an image per architecture and a provenance attestation, the way
    /// `buildx` writes one: an index pointing to an index.
    fn oci_archive(gzip_layers: bool) -> (ImageArchive, Vec<u8>, Vec<u8>) {
        let raw_a = layer_tar("app/a.txt", b"first layer");
        let raw_b = layer_tar("app/b.txt", b"second layer");
        let (la, lb) = if gzip_layers {
            (gzip(&raw_a), gzip(&raw_b))
        } else {
            (raw_a.clone(), raw_b.clone())
        };
        let layer_type = if gzip_layers {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        } else {
            "application/vnd.oci.image.layer.v1.tar"
        };
        let mut files = Vec::new();
        let mut manifests = Vec::new();
        for arch in ["amd64", "arm64"] {
            let cfg = config(arch, &[&raw_a, &raw_b]);
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&cfg), "size": cfg.len()},
                "layers": [
                    {"mediaType": layer_type, "digest": digest(&la), "size": la.len()},
                    {"mediaType": layer_type, "digest": digest(&lb), "size": lb.len()},
                ],
            }))
            .unwrap();
            manifests.push(json!({"mediaType": OCI_MANIFEST, "digest": digest(&manifest), "size": manifest.len(), "platform": {"os": "linux", "architecture": arch}}));
            files.push(blob(&cfg));
            files.push(blob(&manifest));
        }
        let attestation = br#"{"schemaVersion":2}"#.to_vec();
        manifests.push(json!({"mediaType": OCI_MANIFEST, "digest": digest(&attestation), "size": attestation.len(),
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}));
        files.push(blob(&attestation));
        let nested = serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
        )
        .unwrap();
        files.push(blob(&nested));
        files.push(blob(&la));
        files.push(blob(&lb));
        files.push((
            "index.json".into(),
            serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_INDEX, "digest": digest(&nested), "size": nested.len()}]})).unwrap(),
        ));
        files.push((
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ));
        (archive(&files), raw_a, raw_b)
    }

    fn gunzip(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn check_docker_manifest(image: &PreparedImage) -> Value {
        let m: Value = serde_json::from_str(&image.manifest).unwrap();
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(m["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(m["config"]["digest"], image.config.digest.as_str());
        for (l, blob) in m["layers"].as_array().unwrap().iter().zip(&image.layers) {
            assert_eq!(l["mediaType"], LAYER_MEDIA_TYPE);
            assert_eq!(l["digest"], blob.digest.as_str());
            let bytes = fs::read(&blob.path).unwrap();
            assert_eq!(
                digest(&bytes),
                blob.digest,
                "a layer's digest is over its gzip bytes"
            );
            assert_eq!(l["size"], bytes.len());
        }
        assert_eq!(image.manifest_digest, digest(image.manifest.as_bytes()));
        m
    }

    #[test]
    fn oci_layouts_become_single_platform_docker_images() {
        let (archive, raw_a, raw_b) = oci_archive(true);
        let image = archive.prepare(Platform::Arm64).unwrap();
        let m = check_docker_manifest(&image);
        assert_eq!(m["layers"].as_array().unwrap().len(), 2);
        let cfg: Value = serde_json::from_slice(&fs::read(&image.config.path).unwrap()).unwrap();
        assert_eq!(
            cfg["architecture"], "arm64",
            "the arm64 image was chosen, not the attestation or amd64"
        );
        assert_eq!(gunzip(&image.layers[0].path), raw_a);
        assert_eq!(gunzip(&image.layers[1].path), raw_b);
        assert_eq!(image.blobs().len(), 3);
    }

    #[test]
    fn uncompressed_layers_are_gzipped() {
        let (archive, raw_a, _) = oci_archive(false);
        let image = archive.prepare(Platform::Amd64).unwrap();
        check_docker_manifest(&image);
        assert_eq!(
            gunzip(&image.layers[0].path),
            raw_a,
            "the layer's content is unchanged"
        );
        assert_ne!(image.layers[0].digest, digest(&raw_a));
    }

    #[test]
    fn docker_save_archives_are_read() {
        let raw = layer_tar("var/task/app.py", b"def handler(e, c): pass\n");
        let cfg = config("amd64", &[&raw]);
        let files = vec![
            ("abc/layer.tar".to_string(), raw.clone()),
            ("cfg.json".to_string(), cfg.clone()),
            ("manifest.json".to_string(), serde_json::to_vec(&json!([{"Config": "cfg.json", "RepoTags": ["x:latest"], "Layers": ["abc/layer.tar"]}])).unwrap()),
        ];
        let image = archive(&files).prepare(Platform::Amd64).unwrap();
        check_docker_manifest(&image);
        assert_eq!(
            image.config.digest,
            digest(&cfg),
            "the config is kept byte for byte"
        );
        assert_eq!(gunzip(&image.layers[0].path), raw);
    }

    #[test]
    fn the_wrong_platform_is_refused() {
        let raw = layer_tar("a", b"a");
        let cfg = config("amd64", &[&raw]);
        let files = vec![
            ("l.tar".to_string(), raw),
            ("c.json".to_string(), cfg),
            (
                "manifest.json".to_string(),
                serde_json::to_vec(&json!([{"Config": "c.json", "Layers": ["l.tar"]}])).unwrap(),
            ),
        ];
        let err = archive(&files).prepare(Platform::Arm64).unwrap_err();
        assert!(matches!(err, ArchiveError::WrongPlatform { .. }), "{err}");
        assert!(err.to_string().contains("linux/amd64"), "{err}");
    }

    #[test]
    fn paths_outside_the_archive_are_refused() {
        let files = vec![(
            "manifest.json".to_string(),
            serde_json::to_vec(&json!([{"Config": "../etc/passwd", "Layers": []}])).unwrap(),
        )];
        let err = archive(&files).prepare(Platform::Amd64).unwrap_err();
        assert!(matches!(err, ArchiveError::Invalid(_)), "{err}");
    }

    #[test]
    fn corrupt_blobs_are_refused() {
        let raw = layer_tar("a", b"a");
        let cfg = config("amd64", &[&raw]);
        let gz = gzip(&raw);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&cfg), "size": cfg.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(&gz), "size": gz.len()}],
        }))
        .unwrap();
        let mut tampered = gz.clone();
        tampered.push(0);
        let files = vec![
            blob(&cfg),
            blob(&manifest),
            (format!("blobs/sha256/{}", &digest(&gz)[7..]), tampered),
            ("index.json".to_string(), serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest(&manifest), "size": manifest.len()}]})).unwrap()),
        ];
        let err = archive(&files).prepare(Platform::Amd64).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }
}
