//! The CPU architecture images are built for and run on, in each spelling the tools and
//! services use.

use serde::Serialize;

/// CPU architecture of an image and of what runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Amd64,
    Arm64,
}

impl Platform {
    /// The config spelling (`amd64`, `arm64`).
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Amd64 => "amd64",
            Platform::Arm64 => "arm64",
        }
    }
    /// OCI platform string, as builders and image indexes spell it.
    pub fn oci(self) -> &'static str {
        match self {
            Platform::Amd64 => "linux/amd64",
            Platform::Arm64 => "linux/arm64",
        }
    }
    /// ECS `runtimePlatform.cpuArchitecture`.
    pub fn ecs_cpu_architecture(self) -> &'static str {
        match self {
            Platform::Amd64 => "X86_64",
            Platform::Arm64 => "ARM64",
        }
    }
    /// Lambda `Architectures` entry.
    pub fn lambda_architecture(self) -> &'static str {
        match self {
            Platform::Amd64 => "x86_64",
            Platform::Arm64 => "arm64",
        }
    }
}
