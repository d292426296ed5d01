//! The web tier's names, domains, policies and environment, without AWS.

use super::*;
use crate::backends::{EndpointHandle, FunctionHandle};
use provision_acm::CertificateSpec;
use provision_config::app_domain;

#[test]
fn the_app_domain_is_the_domain_in_prod_and_a_subdomain_elsewhere() {
    assert_eq!(app_domain("prod", "example.com"), "example.com");
    assert_eq!(app_domain("dev", "example.com"), "dev.example.com");
    assert_eq!(
        api_url(&app_domain("dev", "example.com")),
        "https://dev.example.com"
    );
    assert_eq!(
        api_url(&app_domain("prod", "example.com")),
        "https://example.com"
    );
}

#[test]
fn only_prod_gets_the_seeds_cname_and_never_at_the_apex() {
    assert_eq!(
        prod_alias("prod", "example.com"),
        Some(("prod.example.com".into(), "example.com".into()))
    );
    assert_eq!(prod_alias("dev", "example.com"), None);
    assert_eq!(alias_record_types("ipv4"), ["A"]);
    assert_eq!(alias_record_types("dualstack"), ["A", "AAAA"]);
}

#[test]
fn the_certificate_covers_every_name_served() {
    let dev = certificate_spec("dev", "example.com");
    assert_eq!(
        dev.names(),
        ["dev.example.com"],
        "not the bare domain: its validation record would be prod's too"
    );
    assert_eq!(served_names("dev", "example.com"), ["dev.example.com"]);
    // In prod, `prod.<domain>` is a CNAME to the domain, which is the load balancer's: a
    // browser asks the load balancer for `prod.<domain>` too.
    let prod: CertificateSpec = certificate_spec("prod", "example.com");
    assert_eq!(prod.names(), ["example.com", "prod.example.com"]);
    assert_eq!(
        served_names("prod", "example.com"),
        ["example.com", "prod.example.com"]
    );
    for env in ["dev", "prod"] {
        let names = certificate_spec(env, "example.com").names();
        for served in served_names(env, "example.com") {
            assert!(names.contains(&served), "{env}: {served} not in {names:?}");
        }
    }
}

/// EC2's character set for a VPC security group's description (API_CreateSecurityGroup:
/// "a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*"), at most 255 characters.
fn ec2_accepts(description: &str) -> bool {
    description.len() <= 255
        && description
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c))
}

#[test]
fn security_group_descriptions_are_in_ec2s_character_set() {
    for d in [
        LOAD_BALANCER_GROUP_DESCRIPTION,
        SERVICE_GROUP_DESCRIPTION,
        crate::network::VPC_ENDPOINTS_GROUP_DESCRIPTION,
    ] {
        assert!(ec2_accepts(d), "EC2 refuses the description {d:?}");
    }
    assert!(!ec2_accepts("The app's port"), "the apostrophe AWS refused");
}

#[test]
fn the_execution_role_pulls_the_apps_image_and_writes_its_log_group_only() {
    let repository =
        "arn:aws:ecr:eu-west-1:123456789012:repository/streamlit-app-dev/streamlit_app";
    let doc = roles::execution_policy("eu-west-1", "123456789012", "streamlit-app-dev", repository);
    assert_eq!(
        doc["Statement"],
        json!([
            {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": ["*"]},
            {"Effect": "Allow", "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": [repository]},
            {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": [
                "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/streamlit-app-dev/app",
                "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/streamlit-app-dev/app:*",
            ]},
        ])
    );
    // Never broader than AmazonECSTaskExecutionRolePolicy: its actions, narrowed to the app's
    // own repository and log group (only the token, which has no resource, stays on `*`).
    let seed: std::collections::BTreeSet<&str> = [
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ]
    .into();
    for statement in doc["Statement"].as_array().unwrap() {
        for action in statement["Action"].as_array().unwrap() {
            assert!(seed.contains(action.as_str().unwrap()), "{action}");
        }
        if statement["Resource"] == json!(["*"]) {
            assert_eq!(statement["Action"], json!(["ecr:GetAuthorizationToken"]));
        }
    }
}

#[test]
fn names_fit_their_limits() {
    let long = "streamlit-app-a-very-long-environment-name";
    let tg = target_group_name(long, "HTTP", 8080, "ip");
    assert!(tg.len() <= names::limits::TARGET_GROUP, "{tg}");
    assert_ne!(
        target_group_name("s", "HTTP", 8080, "ip"),
        target_group_name("s", "HTTP", 8081, "ip")
    );
    assert!(names::fit(long, "alb", names::limits::LOAD_BALANCER).len() <= 32);
}

#[test]
fn the_task_policy_names_exactly_the_stacks_backends() {
    let endpoints = vec![
        "arn:aws:sagemaker:us-east-1:1:endpoint/sentiment-unmasking".to_string(),
        "arn:aws:sagemaker:us-east-1:1:endpoint/sentiment-explanations".to_string(),
    ];
    let functions =
        vec!["arn:aws:lambda:us-east-1:1:function:streamlit-app-dev-counterfactuals".to_string()];
    let extra = vec![
        PolicyStatement {
            actions: vec!["s3:GetObject".into()],
            resources: vec!["arn:aws:s3:::bucket/*".into()],
        },
        // No resource: IAM would refuse the whole document.
        PolicyStatement {
            actions: vec!["s3:ListBucket".into()],
            resources: vec![],
        },
    ];
    let doc = task_policy(&endpoints, &functions, &extra).unwrap();
    assert_eq!(
        doc,
        json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["sagemaker:InvokeEndpoint"], "Resource": [
                    "arn:aws:sagemaker:us-east-1:1:endpoint/sentiment-explanations",
                    "arn:aws:sagemaker:us-east-1:1:endpoint/sentiment-unmasking",
                ]},
                {"Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": [
                    "arn:aws:lambda:us-east-1:1:function:streamlit-app-dev-counterfactuals",
                ]},
                {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::bucket/*"]},
            ]
        })
    );
    // No wildcard and no foreign account anywhere (the seed granted ECR on another account).
    let text = doc.to_string();
    assert!(!text.contains("\"*\"") && !text.contains("ecr:"), "{text}");
    // Nothing to grant: no policy at all.
    assert_eq!(task_policy(&[], &[], &extra[1..]), None);
    let only_sagemaker = task_policy(&endpoints[..1], &[], &[]).unwrap();
    assert_eq!(
        only_sagemaker["Statement"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn backends_become_environment_variables() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(repo.join("config/local.json")).unwrap();
    let root = repo.join("examples/offline");
    let config = provision_config::parse(&text, std::path::Path::new("local.json"), &root).unwrap();
    let project = Project {
        config,
        root,
        builder: None,
    };
    let backends = Backends {
        functions: vec![FunctionHandle {
            environment_variable_name: "COUNTERFACTUAL_LAMBDA".into(),
            function_name: "streamlit-app-local-counterfactuals".into(),
            function: Ref::new("function/x"),
        }],
        endpoints: vec![EndpointHandle {
            environment_variable_name: "SENTIMENT_UNMASKING_MODEL".into(),
            endpoint_name: "sentiment-unmasking".into(),
            endpoint: Ref::new("endpoint/x"),
        }],
    };
    let env = app_environment(&project, &backends);
    assert_eq!(env["APP_TITLE"], "Explainable sentiment analysis");
    assert_eq!(
        env["COUNTERFACTUAL_LAMBDA"],
        "streamlit-app-local-counterfactuals"
    );
    assert_eq!(env["SENTIMENT_UNMASKING_MODEL"], "sentiment-unmasking");
    assert!(has_task_policy(&backends, &[]));
    assert!(!has_task_policy(&Backends::default(), &[]));
}
