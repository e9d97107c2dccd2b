//! `brokercert iam-policy` against the sandbox's Route 53 (moto): zones discovered with
//! ListHostedZones or taken from `hosted_zone_id`, names from the configured certificates.

use crate::support::{TestEnv, cert_section};
use brokercert_sandbox::SandboxOptions;
use serde_json::{Value, json};

const NAMES: &str = "route53:ChangeResourceRecordSetsNormalizedRecordNames";
const TYPES: &str = "route53:ChangeResourceRecordSetsRecordTypes";
const ACTIONS: &str = "route53:ChangeResourceRecordSetsActions";

fn statement<'a>(policy: &'a Value, sid: &str) -> &'a Value {
    policy["Statement"]
        .as_array()
        .expect("Statement is a list")
        .iter()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no statement {sid} in {policy:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn prints_the_policy_for_discovered_and_configured_zones() {
    let env = TestEnv::start(
        SandboxOptions::new()
            .zone("zone1.test")
            .private_zone("zone1.test")
            .zone("other.test"),
    )
    .await;
    let zone1 = env
        .sb
        .zones()
        .iter()
        .find(|(spec, _)| spec.name == "zone1.test" && !spec.private)
        .map(|(_, id)| id.clone())
        .unwrap();
    let other = env.sb.zone_id("other.test").unwrap();
    let certs = format!(
        "{}{}",
        cert_section(
            "mqtt-prod",
            &["MQTT.zone1.test", "*.mqtt.zone1.test", "zone1.test"],
            "cname_target = \"broker-1.emqx.test\"",
        ),
        cert_section(
            "other",
            &["*.other.test"],
            &format!("hosted_zone_id = \"/hostedzone/{other}\""),
        ),
    );
    let cfg = env.config(&certs);

    let run = env
        .run(&["iam-policy", "--config", cfg.to_str().unwrap()])
        .await;
    run.assert_ok();
    let policy: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is JSON ({e}):\n{}", run.stdout));
    assert_eq!(policy["Version"], "2012-10-17");
    let sids: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids.len(), 5, "{policy:#}");

    let list = statement(&policy, "FindHostedZones");
    assert_eq!(list["Action"], json!(["route53:ListHostedZones"]));
    assert_eq!(list["Resource"], json!(["*"]));
    let get = statement(&policy, "WatchChanges");
    assert_eq!(get["Action"], json!(["route53:GetChange"]));
    assert_eq!(get["Resource"], json!(["arn:aws:route53:::change/*"]));

    // The public zone1.test, not the private one of the same name.
    let txt = statement(&policy, &format!("AcmeChallengeTxt{zone1}"));
    assert_eq!(txt["Action"], json!(["route53:ChangeResourceRecordSets"]));
    assert_eq!(
        txt["Resource"],
        json!([format!("arn:aws:route53:::hostedzone/{zone1}")])
    );
    assert_eq!(
        txt["Condition"]["ForAllValues:StringLike"][NAMES],
        json!([
            "_acme-challenge.mqtt.zone1.test",
            "_acme-challenge.zone1.test"
        ]),
        "wildcards map to the base name, names are lower case"
    );
    assert_eq!(
        txt["Condition"]["ForAllValues:StringEquals"][TYPES],
        json!(["TXT"])
    );
    assert_eq!(
        txt["Condition"]["ForAllValues:StringEquals"][ACTIONS],
        json!(["UPSERT", "DELETE"])
    );

    let cname = statement(&policy, &format!("BrokerCname{zone1}"));
    assert_eq!(
        cname["Condition"]["ForAllValues:StringLike"][NAMES],
        json!(["mqtt.zone1.test"])
    );
    assert_eq!(
        cname["Condition"]["ForAllValues:StringEquals"][TYPES],
        json!(["CNAME"])
    );

    let txt_other = statement(&policy, &format!("AcmeChallengeTxt{other}"));
    assert_eq!(
        txt_other["Resource"],
        json!([format!("arn:aws:route53:::hostedzone/{other}")])
    );
    assert_eq!(
        txt_other["Condition"]["ForAllValues:StringLike"][NAMES],
        json!(["_acme-challenge.other.test"])
    );
    assert!(
        run.stderr.contains("discovered with ListHostedZones")
            && run.stderr.contains("configured `hosted_zone_id`"),
        "{}",
        run.stderr
    );

    // --name selects one certificate.
    let run = env
        .run(&[
            "iam-policy",
            "--config",
            cfg.to_str().unwrap(),
            "--name",
            "other",
            "--quiet",
        ])
        .await;
    run.assert_ok();
    let policy: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(policy["Statement"].as_array().unwrap().len(), 3);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_without_a_zone_is_a_clear_error() {
    let env = TestEnv::start(SandboxOptions::new().zone("zone1.test")).await;
    let cfg = env.config(&cert_section("nowhere", &["mqtt.elsewhere.test"], ""));
    let run = env
        .run(&["iam-policy", "--config", cfg.to_str().unwrap()])
        .await;
    run.assert_code(3);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.starts_with("error: certificate `nowhere`:")
            && run.stderr.contains("_acme-challenge.mqtt.elsewhere.test")
            && run.stderr.contains("zone1.test")
            && run.stderr.contains("hosted_zone_id"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);

    // A configured id that is not a zone id: refused before any AWS call.
    let cfg = env.config(&cert_section(
        "bad",
        &["mqtt.zone1.test"],
        "hosted_zone_id = \"Z1\\\"}\"",
    ));
    let run = env
        .run(&["iam-policy", "--config", cfg.to_str().unwrap()])
        .await;
    run.assert_code(2);
    assert!(
        run.stderr.contains("is not a Route 53 hosted zone id"),
        "{}",
        run.stderr
    );
}
