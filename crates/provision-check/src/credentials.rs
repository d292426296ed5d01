//! Credentials and account: which identity is in use, whether it is the config's account,
//! and, before any call, whether the profile asked for exists at all (the SDK would otherwise
//! report a missing profile as "no credentials").

use std::borrow::Cow;

use aws_runtime::env_config::file::EnvConfigFiles as ProfileFiles;
use aws_types::os_shim_internal::{Env, Fs};
use provision_aws::Aws;

use crate::{Area, Finding};

/// Who the credentials belong to (STS `GetCallerIdentity`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub arn: String,
}

/// Where the profile to use was named: `--profile`, else `AWS_PROFILE`.
pub fn selected_profile(flag: Option<&str>) -> Option<(String, &'static str)> {
    if let Some(p) = flag.filter(|p| !p.trim().is_empty()) {
        return Some((p.to_string(), "--profile"));
    }
    std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .map(|p| (p, "AWS_PROFILE"))
}

/// A problem when the selected profile is defined in neither `~/.aws/config` nor
/// `~/.aws/credentials` (or the files `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE`
/// name). Reads local files only.
pub async fn profile(flag: Option<&str>) -> Option<Finding> {
    let (name, source) = selected_profile(flag)?;
    // The SDK's own loader, so the files and their syntax are read exactly as it reads them.
    let loaded = aws_config::profile::load(
        &Fs::real(),
        &Env::real(),
        &ProfileFiles::default(),
        Some(Cow::Owned(name.clone())),
    )
    .await;
    let set = match loaded {
        Ok(set) => set,
        Err(e) => {
            return Some(
                Finding::problem(
                    Area::Credentials,
                    source,
                    format!(
                        "the AWS profile files could not be read: {}",
                        crate::chain(&e)
                    ),
                )
                .hint("fix ~/.aws/config (or the file AWS_CONFIG_FILE names)"),
            );
        }
    };
    if set.get_profile(&name).is_some() {
        return None;
    }
    let mut known: Vec<&str> = set.profiles().collect();
    known.sort_unstable();
    let defined = if known.is_empty() {
        "no profile is defined".to_string()
    } else {
        format!("the defined ones are {}", known.join(", "))
    };
    Some(
        Finding::problem(
            Area::Credentials,
            source,
            format!("the AWS profile `{name}` is not defined in ~/.aws/config or ~/.aws/credentials; {defined}"),
        )
        .hint("pass the name of a defined profile (`aws configure list-profiles` lists them), or create it with `aws configure --profile NAME` or `aws configure sso`"),
    )
}

/// Which identity the credentials are, and whether it is in the config's account. The
/// identity is `None` when no call could be made (no or bad credentials): every other AWS
/// check then has nothing to stand on.
pub async fn identity(
    aws: &Aws,
    expected_account: &str,
    profile_flag: Option<&str>,
) -> (Vec<Finding>, Option<Identity>) {
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(aws.sdk())
            .interceptor(aws.calls().clone())
            .retry_partition(provision_aws::retry_partition("sts-check"))
            .build(),
    );
    let out = match sts.get_caller_identity().send().await {
        Ok(out) => out,
        Err(e) => {
            let err = provision_aws::classify("sts:GetCallerIdentity", e);
            let hint = err.hint.clone().unwrap_or_else(|| {
                "set AWS_PROFILE or pass --profile, run `aws sso login` for SSO profiles, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_string()
            });
            let subject = selected_profile(profile_flag)
                .map(|(_, s)| s)
                .unwrap_or("credentials");
            return (
                vec![
                    Finding::problem(
                        Area::Credentials,
                        subject,
                        format!("no working AWS credentials: {}", err.message),
                    )
                    .hint(hint),
                ],
                None,
            );
        }
    };
    let identity = Identity {
        account: out.account().unwrap_or_default().to_string(),
        arn: out.arn().unwrap_or_default().to_string(),
    };
    let mut findings = vec![Finding::ok(
        Area::Credentials,
        "credentials",
        format!("{} (account {})", identity.arn, identity.account),
    )];
    if identity.account == expected_account {
        findings.push(Finding::ok(
            Area::Credentials,
            "account",
            format!("the credentials are for account {expected_account}, as the config says"),
        ));
    } else {
        findings.push(
            Finding::problem(
                Area::Credentials,
                "account",
                format!(
                    "the config deploys into account {expected_account}, but these credentials are for account {}",
                    identity.account
                ),
            )
            .hint("use credentials for the right account (--profile or AWS_PROFILE), or fix `account` in the config"),
        );
    }
    (findings, Some(identity))
}
