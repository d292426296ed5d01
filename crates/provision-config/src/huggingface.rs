//! Where the HuggingFace inference containers for SageMaker live, region by region.
//!
//! AWS publishes them from a deep learning container registry account per region (the table
//! the SageMaker Python SDK ships in `image_uri_config/huggingface.json`). A region missing
//! from the table has no such image that we know of, and the config must name one with
//! `image_uri`: validation says so before anything is deployed.

/// The ECR repository of the PyTorch inference containers.
pub const REPOSITORY: &str = "huggingface-pytorch-inference";

/// The registry account that serves the containers in `region`, if it is known.
pub fn registry_account(region: &str) -> Option<&'static str> {
    let account = match region {
        "af-south-1" => "626614931356",
        "ap-east-1" => "871362719292",
        "ap-northeast-3" => "364406365360",
        "eu-south-1" => "692866216735",
        "me-south-1" => "217643126080",
        "cn-north-1" | "cn-northwest-1" => "727897471807",
        "us-gov-west-1" => "442386744353",
        "ap-northeast-1" | "ap-northeast-2" | "ap-south-1" | "ap-southeast-1"
        | "ap-southeast-2" | "ca-central-1" | "eu-central-1" | "eu-north-1" | "eu-west-1"
        | "eu-west-2" | "eu-west-3" | "sa-east-1" | "us-east-1" | "us-east-2" | "us-west-1"
        | "us-west-2" => "763104351884",
        _ => return None,
    };
    Some(account)
}

/// The regions [`registry_account`] knows, for messages.
pub const REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-north-1",
    "eu-south-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "me-south-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// The versions that pick an image, as the config gives them.
#[derive(Clone, Copy, Debug)]
pub struct Versions<'a> {
    pub pytorch: &'a str,
    pub transformers: &'a str,
    pub ubuntu: &'a str,
    pub use_gpu: bool,
}

/// `<pytorch>-transformers<transformers>-<cpu-py39|gpu-py36-cu111>-ubuntu<ubuntu>`.
pub fn tag(v: Versions<'_>) -> String {
    let device = if v.use_gpu {
        "gpu-py36-cu111"
    } else {
        "cpu-py39"
    };
    format!(
        "{}-transformers{}-{device}-ubuntu{}",
        v.pytorch, v.transformers, v.ubuntu
    )
}

/// The inference container for `region`, or `None` where no registry is known.
pub fn image_uri(region: &str, v: Versions<'_>) -> Option<String> {
    let account = registry_account(region)?;
    // China's regions have their own domain.
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    Some(format!(
        "{account}.dkr.ecr.{region}.{domain}/{REPOSITORY}:{}",
        tag(v)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Versions<'static> = Versions {
        pytorch: "1.13",
        transformers: "4.26",
        ubuntu: "20.04",
        use_gpu: false,
    };

    #[test]
    fn the_default_image_is_the_cpu_one() {
        assert_eq!(
            image_uri("us-east-1", DEFAULTS).as_deref(),
            Some(
                "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:1.13-transformers4.26-cpu-py39-ubuntu20.04"
            )
        );
    }

    #[test]
    fn gpu_and_versions_shape_the_tag() {
        let v = Versions {
            pytorch: "1.9",
            transformers: "4.12",
            ubuntu: "18.04",
            use_gpu: true,
        };
        assert_eq!(tag(v), "1.9-transformers4.12-gpu-py36-cu111-ubuntu18.04");
    }

    #[test]
    fn regions_with_their_own_registry() {
        for (region, account) in [
            ("af-south-1", "626614931356"),
            ("ap-east-1", "871362719292"),
            ("ap-northeast-3", "364406365360"),
            ("eu-south-1", "692866216735"),
            ("me-south-1", "217643126080"),
            ("cn-north-1", "727897471807"),
            ("cn-northwest-1", "727897471807"),
            ("us-gov-west-1", "442386744353"),
            ("eu-west-1", "763104351884"),
            ("ap-southeast-2", "763104351884"),
        ] {
            assert_eq!(registry_account(region), Some(account), "{region}");
        }
        assert_eq!(
            image_uri("cn-north-1", DEFAULTS).as_deref(),
            Some(
                "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/huggingface-pytorch-inference:1.13-transformers4.26-cpu-py39-ubuntu20.04"
            )
        );
    }

    #[test]
    fn unknown_regions_have_no_image() {
        for region in ["mars-east-1", "eu-central-9", "", "US-EAST-1"] {
            assert_eq!(image_uri(region, DEFAULTS), None, "{region}");
        }
    }

    #[test]
    fn the_region_list_matches_the_table() {
        for region in REGIONS {
            assert!(registry_account(region).is_some(), "{region}");
        }
    }
}
