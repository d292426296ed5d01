//! Why no AWS credentials could be loaded, in words the user can act on.
//!
//! The SDK's standard chain tries, in order: environment variables, the profile (from
//! `--profile`, `AWS_PROFILE` or `default`, which may use SSO, a role or a process), a web
//! identity token, the container role (ECS, EKS) and the instance role (EC2 instance metadata).
//! When it fails it returns one error, the last source's or the first hard failure's, and logs
//! the rest as SDK diagnostics (kept in the debug log, shown on stderr with `-v`). This module
//! looks at each source itself (environment variables, the profile files) and names what was
//! tried and what failed: a `--profile` that does not exist is reported as such, not as "no
//! credentials" or as the instance metadata service's refusal.
//! Source order: aws-config's `default_provider::credentials` (`DefaultCredentialsChain`).

use std::borrow::Cow;
use std::error::Error;

use aws_credential_types::provider::error::CredentialsError;
use aws_types::os_shim_internal::{Env, Fs};
use provision_core::resource::ResourceError;

use crate::error_chain;

/// The credentials error inside an SDK error, if loading credentials is what failed (the SDK
/// reports it as a dispatch failure: the request was never sent).
pub(crate) fn credentials_error<'a>(
    err: &'a (dyn Error + 'static),
) -> Option<&'a CredentialsError> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<CredentialsError>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// Where the profile's name came from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ProfileChoice {
    Flag(String),
    Environment(String),
    Default,
}

impl ProfileChoice {
    fn name(&self) -> &str {
        match self {
            ProfileChoice::Flag(n) | ProfileChoice::Environment(n) => n,
            ProfileChoice::Default => "default",
        }
    }

    fn describe(&self) -> String {
        match self {
            ProfileChoice::Flag(n) => format!("profile `{n}` (from --profile)"),
            ProfileChoice::Environment(n) => format!("profile `{n}` (from AWS_PROFILE)"),
            ProfileChoice::Default => "profile `default`".to_string(),
        }
    }

    fn explicit(&self) -> bool {
        !matches!(self, ProfileChoice::Default)
    }
}

/// What the profile files say about the chosen profile.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ProfileFound {
    /// Neither file could be read or parsed (the message says why).
    Unreadable(String),
    Missing,
    Sso,
    Present,
}

/// The environment the chain reads, as far as the diagnosis needs it (names only, never values).
struct Inputs {
    profile: ProfileChoice,
    found: ProfileFound,
    config_file: String,
    credentials_file: String,
    env: Env,
}

impl Inputs {
    async fn read(profile_flag: Option<&str>) -> Inputs {
        let env = Env::real();
        let profile = match (profile_flag, env.get("AWS_PROFILE").ok()) {
            (Some(p), _) => ProfileChoice::Flag(p.to_string()),
            (None, Some(p)) if !p.is_empty() => ProfileChoice::Environment(p),
            _ => ProfileChoice::Default,
        };
        let files = aws_runtime::env_config::file::EnvConfigFiles::default();
        let found = match aws_config::profile::load(
            &Fs::real(),
            &env,
            &files,
            Some(Cow::Owned(profile.name().to_string())),
        )
        .await
        {
            Err(e) => ProfileFound::Unreadable(error_chain(&e)),
            Ok(set) => match set.get_profile(profile.name()) {
                None => ProfileFound::Missing,
                Some(p) if p.get("sso_start_url").is_some() || p.get("sso_session").is_some() => {
                    ProfileFound::Sso
                }
                Some(_) => ProfileFound::Present,
            },
        };
        let file = |var: &str, default: &str| match env.get(var) {
            Ok(path) if !path.is_empty() => path,
            _ => default.to_string(),
        };
        Inputs {
            found,
            config_file: file("AWS_CONFIG_FILE", "~/.aws/config"),
            credentials_file: file("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
            profile,
            env,
        }
    }

    fn is_set(&self, var: &str) -> bool {
        self.env.get(var).is_ok_and(|v| !v.is_empty())
    }
}

/// Explains a failure to load credentials: what failed first, then every source tried.
pub(crate) async fn explain(err: &CredentialsError, profile_flag: Option<&str>) -> ResourceError {
    let inputs = Inputs::read(profile_flag).await;
    explain_with(err, &inputs)
}

fn explain_with(err: &CredentialsError, inputs: &Inputs) -> ResourceError {
    let sdk_says = sdk_words(err);
    // A hard failure (not "this source is not configured") stops the chain at that source;
    // it is the first configured one.
    let hard = !matches!(err, CredentialsError::CredentialsNotLoaded(_));
    let profile = inputs.profile.describe();
    let files = format!("{} or {}", inputs.config_file, inputs.credentials_file);

    let env_line = match (
        inputs.is_set("AWS_ACCESS_KEY_ID"),
        inputs.is_set("AWS_SECRET_ACCESS_KEY"),
    ) {
        (false, false) => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set".to_string(),
        (true, false) => "AWS_ACCESS_KEY_ID is set, but AWS_SECRET_ACCESS_KEY is not".to_string(),
        (false, true) => "AWS_SECRET_ACCESS_KEY is set, but AWS_ACCESS_KEY_ID is not".to_string(),
        (true, true) => "set, but not usable".to_string(),
    };
    let profile_configured = matches!(inputs.found, ProfileFound::Sso | ProfileFound::Present);
    let web_identity = inputs.is_set("AWS_WEB_IDENTITY_TOKEN_FILE");
    let container = inputs.is_set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || inputs.is_set("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    // Which source the SDK's error is about.
    let culprit = if !hard {
        Source::None
    } else if profile_configured {
        Source::Profile
    } else if web_identity {
        Source::WebIdentity
    } else if container {
        Source::Container
    } else {
        Source::Instance
    };
    let profile_line = match &inputs.found {
        ProfileFound::Unreadable(e) => format!("could not read {files}: {e}"),
        ProfileFound::Missing => format!("not in {files}"),
        ProfileFound::Sso if culprit == Source::Profile => {
            format!("uses IAM Identity Center (SSO), and has no valid login: {sdk_says}")
        }
        ProfileFound::Present if culprit == Source::Profile => sdk_says.clone(),
        ProfileFound::Sso | ProfileFound::Present => "gave no credentials".to_string(),
    };
    let web_line = match (web_identity, culprit == Source::WebIdentity) {
        (false, _) => "AWS_WEB_IDENTITY_TOKEN_FILE is not set".to_string(),
        (true, true) => sdk_says.clone(),
        (true, false) => "gave no credentials".to_string(),
    };
    let container_line = match (container, culprit == Source::Container) {
        (false, _) => "not in a container with a role (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set)".to_string(),
        (true, true) => sdk_says.clone(),
        (true, false) => "gave no credentials".to_string(),
    };
    let instance_line = if inputs
        .env
        .get("AWS_EC2_METADATA_DISABLED")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"))
    {
        "not tried: AWS_EC2_METADATA_DISABLED is true".to_string()
    } else if culprit == Source::Instance {
        format!("no instance role: {sdk_says}")
    } else if culprit == Source::None {
        "no instance role (not on EC2, or the instance has none)".to_string()
    } else {
        "not tried".to_string()
    };

    let (headline, hint) = match (&inputs.found, culprit) {
        (ProfileFound::Missing, _) if inputs.profile.explicit() => (
            format!("{profile} is not in {files}"),
            format!(
                "check the name (`aws configure list-profiles` lists them), or create it with `aws configure --profile {}`",
                inputs.profile.name()
            ),
        ),
        (ProfileFound::Sso, Source::Profile) => (
            format!("{profile} uses IAM Identity Center (SSO), and has no valid login"),
            format!(
                "run `aws sso login --profile {}`, then run this again",
                inputs.profile.name()
            ),
        ),
        (_, Source::Profile) => (
            format!("{profile} could not provide credentials"),
            format!("check the profile's settings in {files}"),
        ),
        (_, Source::WebIdentity) => (
            "the web identity token (AWS_WEB_IDENTITY_TOKEN_FILE) could not be exchanged for credentials".to_string(),
            "check the token file and AWS_ROLE_ARN".to_string(),
        ),
        (_, Source::Container) => (
            "the container's role could not provide credentials".to_string(),
            "check the task or pod role".to_string(),
        ),
        _ => (
            "no AWS credentials found".to_string(),
            "pass a profile with --profile (or AWS_PROFILE), run `aws sso login` for an SSO profile, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_string(),
        ),
    };
    let message = format!(
        "{headline}\ntried, in order:\n  - environment variables: {env_line}\n  - {profile}: {profile_line}\n  - web identity token: {web_line}\n  - container role: {container_line}\n  - instance role: {instance_line}"
    );
    ResourceError::fatal(message).with_hint(hint)
}

/// The SDK's message without its generic preambles, which say nothing the list does not.
pub(crate) fn sdk_words(err: &CredentialsError) -> String {
    let mut text = error_chain(err);
    for preamble in [
        "an error occurred while loading credentials: ",
        "the credential provider was not enabled: ",
    ] {
        text = text.replace(preamble, "");
    }
    text
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// Nothing failed hard: no source was configured.
    None,
    Profile,
    WebIdentity,
    Container,
    Instance,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(profile: ProfileChoice, found: ProfileFound, env: &[(&str, &str)]) -> Inputs {
        Inputs {
            profile,
            found,
            config_file: "~/.aws/config".into(),
            credentials_file: "~/.aws/credentials".into(),
            env: Env::from_slice(env),
        }
    }

    #[test]
    fn a_missing_profile_is_named_not_reported_as_no_credentials() {
        // With a profile that does not exist, the chain goes on to instance metadata, whose
        // refusal is what the SDK returns.
        let err = CredentialsError::provider_error("failed to load IMDS session token");
        let e = explain_with(
            &err,
            &inputs(
                ProfileChoice::Flag("nope".into()),
                ProfileFound::Missing,
                &[],
            ),
        );
        let first = e.message.lines().next().unwrap();
        assert_eq!(
            first,
            "profile `nope` (from --profile) is not in ~/.aws/config or ~/.aws/credentials"
        );
        assert!(
            e.message
                .contains("instance role: no instance role: failed to load IMDS session token"),
            "{}",
            e.message
        );
        assert!(e.hint.unwrap().contains("aws configure list-profiles"));
    }

    #[test]
    fn an_sso_profile_without_login_says_to_log_in() {
        let err = CredentialsError::provider_error("failed to read `~/.aws/sso/cache/x.json`");
        let e = explain_with(
            &err,
            &inputs(
                ProfileChoice::Environment("dev".into()),
                ProfileFound::Sso,
                &[],
            ),
        );
        assert!(
            e.message.starts_with(
                "profile `dev` (from AWS_PROFILE) uses IAM Identity Center (SSO), and has no valid login"
            ),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("instance role: not tried"),
            "{}",
            e.message
        );
        assert_eq!(
            e.hint.as_deref(),
            Some("run `aws sso login --profile dev`, then run this again")
        );
    }

    #[test]
    fn nothing_configured_lists_every_source() {
        let err = CredentialsError::not_loaded("no credentials found in chain");
        let e = explain_with(
            &err,
            &inputs(
                ProfileChoice::Default,
                ProfileFound::Missing,
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
                    ("AWS_EC2_METADATA_DISABLED", "true"),
                ],
            ),
        );
        let lines: Vec<&str> = e.message.lines().collect();
        assert_eq!(lines[0], "no AWS credentials found");
        assert_eq!(
            lines[2],
            "  - environment variables: AWS_ACCESS_KEY_ID is set, but AWS_SECRET_ACCESS_KEY is not"
        );
        assert_eq!(
            lines[3],
            "  - profile `default`: not in ~/.aws/config or ~/.aws/credentials"
        );
        assert_eq!(
            lines[6],
            "  - instance role: not tried: AWS_EC2_METADATA_DISABLED is true"
        );
        // Values are never shown, only names.
        assert!(!e.message.contains("AKIAEXAMPLE"));
    }

    #[test]
    fn the_credentials_error_is_found_inside_the_sdk_error() {
        #[derive(Debug)]
        struct Wrapper(CredentialsError);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl Error for Wrapper {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let wrapped = Wrapper(CredentialsError::not_loaded("x"));
        assert!(credentials_error(&wrapped).is_some());
        assert!(credentials_error(&std::fmt::Error).is_none());
    }
}
