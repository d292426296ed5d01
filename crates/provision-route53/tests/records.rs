//! DNS records against the emulator: an IPv6 (AAAA) alias to a load balancer beside the IPv4
//! (A) one at the same name, for a dual-stack load balancer. Each is its own record, read back
//! as written, and deleting one leaves the other.

// The helpers are test code too (clippy only knows `#[test]` functions as such).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use provision_core::Kind;
use provision_core::resource::{Cx, Desired, LogicalId, Lookup, Record, Stack, to_settings};
use provision_core::state::Status;
use provision_route53::{RecordKind, RecordSpec};
use provision_testkit::Emulator;

fn client(url: &str) -> aws_sdk_route53::Client {
    let conf = aws_sdk_route53::Config::builder()
        .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
        .region(aws_sdk_route53::config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_route53::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    aws_sdk_route53::Client::from_conf(conf)
}

fn cx(id: &str) -> Cx {
    Cx::detached(
        id,
        Stack {
            name: "streamlit-app-dev".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
        },
    )
}

fn record(spec: &RecordSpec) -> Record {
    Record {
        kind: "route53.record".into(),
        status: Status::Ready,
        physical_id: Some(spec.physical_id()),
        name: None,
        token: String::new(),
        generation: 0,
        deps: Vec::new(),
        fingerprint: None,
        settings: to_settings(spec),
        outputs: serde_json::Value::Null,
        updated_at: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aaaa_alias_stands_beside_the_a_alias_and_each_is_its_own_record() {
    let emulator = Emulator::start().expect("moto starts");
    let r53 = client(emulator.url());
    let zone = r53
        .create_hosted_zone()
        .name("example.com")
        .caller_reference("records-test")
        .send()
        .await
        .unwrap();
    let zone_id = zone
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string();
    let kind = RecordKind::new(r53.clone());
    let lb = "dualstack.my-lb-1.us-east-1.elb.amazonaws.com";
    let specs: Vec<(&str, RecordSpec)> = ["A", "AAAA"]
        .into_iter()
        .map(|t| {
            (
                if t == "A" {
                    "web/record/a"
                } else {
                    "web/record/aaaa"
                },
                RecordSpec::alias(&zone_id, "dev.example.com", t, lb, "Z35SXDOTRQ7X7K"),
            )
        })
        .collect();
    for (id, spec) in &specs {
        let desired = Desired {
            id: LogicalId::new(*id),
            name: None,
            token: String::new(),
            settings: to_settings(spec),
        };
        kind.create(&cx(id), &desired).await.unwrap();
    }
    for (id, spec) in &specs {
        let logical = LogicalId::new(*id);
        let rec = record(spec);
        let lookup = Lookup {
            id: &logical,
            name: None,
            token: "",
            record: Some(&rec),
        };
        let live = kind.read(&cx(id), &lookup).await.unwrap().expect(id);
        assert_eq!(live.settings, to_settings(spec), "{id}");
    }

    // The IPv4 one goes; the IPv6 one stays.
    let (a_id, a) = &specs[0];
    kind.delete(&cx(a_id), &record(a)).await.unwrap();
    let types: Vec<String> = r53
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .send()
        .await
        .unwrap()
        .resource_record_sets()
        .iter()
        .filter(|r| r.name() == "dev.example.com.")
        .map(|r| r.r#type().as_str().to_string())
        .collect();
    assert_eq!(types, ["AAAA"]);
}
