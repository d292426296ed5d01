//! Container images from folders, with no AWS in sight: the content hash of a build context
//! (with Docker's `.dockerignore` semantics), finding and running an image builder (Docker
//! with buildx, Podman or Buildah) as a child process, and turning the archive it writes into
//! a single-platform Docker v2 image ready to push blob by blob.

pub mod archive;
pub mod builder;
pub mod context;
pub mod ignore;

pub use archive::{ArchiveError, Blob, ImageArchive, PreparedImage};
pub use builder::{BuildError, BuildRequest, Builder, BuilderKind};
pub use context::{Context, ContextError, Entry, EntryKind};
pub use ignore::DockerIgnore;
