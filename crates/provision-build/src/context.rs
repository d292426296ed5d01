//! The content hash of a build context: what an image's tag is made of, like CDK's asset hash.
//!
//! It covers every file and directory `.dockerignore` lets through (the Dockerfile and
//! `.dockerignore` always count, as the builder always reads them), each with its path, type,
//! permission bits and content (a symlink's target, not what it points to), plus the
//! Dockerfile's name, the target platform and the build arguments. It leaves out what does not
//! change the image: modification times, owners, and the order the file system lists entries
//! in. Equal hashes mean the builder would be given the same inputs, so the image need not be
//! built again.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use provision_core::platform::Platform;
use sha2::{Digest, Sha256};

use crate::ignore::{DockerIgnore, PatternError};

/// Bumped when what the hash covers changes, so old tags are not mistaken for new ones.
const FORMAT: &str = "provision-image-context/1";

/// What an image is built from.
#[derive(Clone, Debug)]
pub struct Context {
    /// The folder sent to the builder.
    pub dir: PathBuf,
    /// The Dockerfile's path within `dir`.
    pub dockerfile: String,
    pub platform: Platform,
    pub build_args: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("could not read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} has no {dockerfile}", .dir.display())]
    NoDockerfile { dir: PathBuf, dockerfile: String },
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

/// One entry of a context, as it counts for the hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the context, `/`-separated.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits (`0o755`), as the builder copies them into the image.
    pub mode: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file and the SHA-256 of its content.
    File {
        sha256: String,
    },
    Directory,
    /// A symbolic link and where it points.
    Symlink {
        target: String,
    },
}

impl Context {
    /// A context with no build arguments.
    pub fn new(dir: impl Into<PathBuf>, platform: Platform) -> Self {
        Context {
            dir: dir.into(),
            dockerfile: "Dockerfile".to_string(),
            platform,
            build_args: BTreeMap::new(),
        }
    }

    /// The entries the builder is sent, sorted by path.
    pub fn entries(&self) -> Result<Vec<Entry>, ContextError> {
        let dockerfile = self.dir.join(&self.dockerfile);
        if !dockerfile.is_file() {
            return Err(ContextError::NoDockerfile {
                dir: self.dir.clone(),
                dockerfile: self.dockerfile.clone(),
            });
        }
        let ignore_path = self.dir.join(".dockerignore");
        let ignore = match fs::read_to_string(&ignore_path) {
            Ok(text) => DockerIgnore::parse(&text)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => DockerIgnore::default(),
            Err(source) => {
                return Err(ContextError::Read {
                    path: ignore_path,
                    source,
                });
            }
        };
        let always = [
            self.dockerfile.replace('\\', "/"),
            ".dockerignore".to_string(),
        ];
        let mut entries = Vec::new();
        walk(&self.dir, "", &ignore, &always, &mut entries)?;
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// The hash as 64 hex digits: the image's tag.
    pub fn hash(&self) -> Result<String, ContextError> {
        let entries = self.entries()?;
        let mut h = Sha256::new();
        let mut field = |s: &str| {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        };
        field(FORMAT);
        field(&self.dockerfile);
        field(self.platform.oci());
        for (k, v) in &self.build_args {
            field("arg");
            field(k);
            field(v);
        }
        for e in &entries {
            let (kind, content) = match &e.kind {
                EntryKind::File { sha256 } => ("file", sha256.as_str()),
                EntryKind::Directory => ("dir", ""),
                EntryKind::Symlink { target } => ("symlink", target.as_str()),
            };
            field(kind);
            field(&e.path);
            field(&format!("{:o}", e.mode));
            field(content);
        }
        Ok(hex::encode(h.finalize()))
    }
}

fn walk(
    dir: &Path,
    prefix: &str,
    ignore: &DockerIgnore,
    always: &[String],
    out: &mut Vec<Entry>,
) -> Result<(), ContextError> {
    let read = |path: &Path, source| ContextError::Read {
        path: path.to_path_buf(),
        source,
    };
    let listing = fs::read_dir(dir).map_err(|e| read(dir, e))?;
    for item in listing {
        let item = item.map_err(|e| read(dir, e))?;
        let name = item.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = item.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| read(&path, e))?;
        let excluded = ignore.excludes(&rel) && !always.contains(&rel);
        let file_type = meta.file_type();
        if file_type.is_dir() {
            if !excluded {
                out.push(Entry {
                    path: rel.clone(),
                    kind: EntryKind::Directory,
                    mode: mode(&meta),
                });
            }
            // Something under an excluded directory can only come back through a `!` pattern.
            if !excluded || ignore.has_exceptions() {
                walk(&path, &rel, ignore, always, out)?;
            }
        } else if excluded {
            continue;
        } else if file_type.is_symlink() {
            let target = fs::read_link(&path).map_err(|e| read(&path, e))?;
            out.push(Entry {
                path: rel,
                kind: EntryKind::Symlink {
                    target: target.to_string_lossy().into_owned(),
                },
                mode: mode(&meta),
            });
        } else if file_type.is_file() {
            let sha256 = file_sha256(&path).map_err(|e| read(&path, e))?;
            out.push(Entry {
                path: rel,
                kind: EntryKind::File { sha256 },
                mode: mode(&meta),
            });
        }
        // Sockets, pipes and devices are not sent to builders.
    }
    Ok(())
}

fn file_sha256(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut h = Sha256::new();
    io::copy(&mut file, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

#[cfg(unix)]
fn mode(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode(meta: &fs::Metadata) -> u32 {
    match (meta.is_dir(), meta.permissions().readonly()) {
        (true, _) => 0o755,
        (false, true) => 0o444,
        (false, false) => 0o644,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Folder(tempfile::TempDir);

    impl Folder {
        fn new() -> Self {
            let f = Folder(tempfile::tempdir().unwrap());
            f.write("Dockerfile", "FROM scratch\nCOPY . /app/\n");
            f
        }
        fn path(&self) -> &Path {
            self.0.path()
        }
        fn write(&self, rel: &str, text: &str) {
            let p = self.0.path().join(rel);
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).unwrap();
            }
            fs::write(&p, text).unwrap();
        }
        fn hash(&self, platform: Platform) -> String {
            Context::new(self.path(), platform).hash().unwrap()
        }
        fn paths(&self) -> Vec<String> {
            Context::new(self.path(), Platform::Amd64)
                .entries()
                .unwrap()
                .into_iter()
                .map(|e| e.path)
                .collect()
        }
    }

    #[test]
    fn same_content_same_hash_whatever_the_order_files_were_made_in() {
        let a = Folder::new();
        a.write("z.txt", "z");
        a.write("src/a.py", "print(1)");
        a.write("m.txt", "m");
        let b = Folder::new();
        b.write("m.txt", "m");
        b.write("src/a.py", "print(1)");
        b.write("z.txt", "z");
        assert_eq!(a.hash(Platform::Amd64), b.hash(Platform::Amd64));
        assert_eq!(a.hash(Platform::Amd64).len(), 64);
    }

    #[test]
    fn content_names_and_platform_change_the_hash() {
        let f = Folder::new();
        f.write("app.py", "v1");
        let v1 = f.hash(Platform::Amd64);
        assert_ne!(v1, f.hash(Platform::Arm64), "the platform counts");
        f.write("app.py", "v2");
        let v2 = f.hash(Platform::Amd64);
        assert_ne!(v1, v2, "content counts");
        fs::rename(f.path().join("app.py"), f.path().join("main.py")).unwrap();
        assert_ne!(v2, f.hash(Platform::Amd64), "names count");
        f.write("Dockerfile", "FROM scratch\n");
        let df = f.hash(Platform::Amd64);
        f.write("empty/.keep", "");
        fs::remove_file(f.path().join("empty/.keep")).unwrap();
        assert_ne!(
            df,
            f.hash(Platform::Amd64),
            "empty directories are copied too, so they count"
        );
    }

    #[test]
    fn build_args_count() {
        let f = Folder::new();
        let plain = Context::new(f.path(), Platform::Amd64);
        let mut with_arg = plain.clone();
        with_arg.build_args.insert("VERSION".into(), "1".into());
        let (a, b) = (plain.hash().unwrap(), with_arg.hash().unwrap());
        assert!(!a.is_empty());
        assert_ne!(a, b);
    }

    #[test]
    fn ignored_files_do_not_count() {
        let f = Folder::new();
        f.write(
            ".dockerignore",
            "# build output\n*.log\n**/__pycache__\ndata\n!data/keep.txt\n",
        );
        f.write("app.py", "x");
        f.write("data/keep.txt", "k");
        f.write("pkg/app.py", "y");
        let before = f.hash(Platform::Amd64);
        f.write("debug.log", "noise");
        f.write("pkg/__pycache__/app.cpython-312.pyc", "bytecode");
        f.write("data/big.bin", "weights");
        assert_eq!(
            before,
            f.hash(Platform::Amd64),
            "files .dockerignore excludes must not change the tag"
        );
        assert_eq!(
            f.paths(),
            vec![
                ".dockerignore",
                "Dockerfile",
                "app.py",
                "data/keep.txt",
                "pkg",
                "pkg/app.py"
            ],
            "exactly what Docker would send"
        );
        f.write("data/keep.txt", "changed");
        assert_ne!(before, f.hash(Platform::Amd64), "a re-included file counts");
    }

    #[test]
    fn the_dockerfile_and_dockerignore_always_count() {
        let f = Folder::new();
        f.write(".dockerignore", "*\n");
        f.write("app.py", "x");
        assert_eq!(f.paths(), vec![".dockerignore", "Dockerfile"]);
        let before = f.hash(Platform::Amd64);
        f.write("Dockerfile", "FROM scratch\nCMD [\"x\"]\n");
        assert_ne!(before, f.hash(Platform::Amd64));
    }

    #[cfg(unix)]
    #[test]
    fn file_modes_count() {
        use std::os::unix::fs::PermissionsExt;
        let f = Folder::new();
        f.write("run.sh", "#!/bin/sh\n");
        let set = |m: u32| {
            fs::set_permissions(f.path().join("run.sh"), fs::Permissions::from_mode(m)).unwrap()
        };
        set(0o644);
        let plain = f.hash(Platform::Amd64);
        set(0o755);
        let executable = f.hash(Platform::Amd64);
        assert_ne!(plain, executable, "an executable bit ends up in the image");
        set(0o644);
        assert_eq!(plain, f.hash(Platform::Amd64));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_count_by_target_and_times_do_not_count() {
        let f = Folder::new();
        f.write("a.txt", "a");
        f.write("b.txt", "b");
        std::os::unix::fs::symlink("a.txt", f.path().join("link")).unwrap();
        let to_a = f.hash(Platform::Amd64);
        fs::remove_file(f.path().join("link")).unwrap();
        std::os::unix::fs::symlink("b.txt", f.path().join("link")).unwrap();
        assert_ne!(to_a, f.hash(Platform::Amd64));

        let before = f.hash(Platform::Amd64);
        // Rewriting a file with the same bytes changes only its modification time.
        f.write("a.txt", "a");
        assert_eq!(before, f.hash(Platform::Amd64));
    }

    #[test]
    fn a_folder_without_a_dockerfile_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Context::new(dir.path(), Platform::Amd64)
            .hash()
            .unwrap_err();
        assert!(matches!(err, ContextError::NoDockerfile { .. }), "{err}");
    }
}
