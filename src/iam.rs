//! The least-privilege IAM policy for brokercert's Route 53 use, rendered for given hosted
//! zones and record names (`brokercert iam-policy`, `infra/iam-policy.json`).
//!
//! Owns: the policy's shape and the normalisation of record names that Route 53's condition
//! keys expect. Does not own: finding the zones (the CLI does that with `dns::zone`).
//!
//! The policy has the guide's three actions and nothing else:
//!
//! - `route53:ListHostedZones` on `*` (the action has no resource type),
//! - `route53:GetChange` on `arn:aws:route53:::change/*`,
//! - `route53:ChangeResourceRecordSets` on each hosted zone, in two statements per zone:
//!   TXT records at the `_acme-challenge` names (`UPSERT`, `DELETE`: brokercert adds its
//!   values to whatever set is there and removes exactly them again), and the CNAME at the
//!   broker's custom domain (`CREATE`, and `DELETE` for `--force` replacing another CNAME).
//!
//! Route 53 authorises a change batch as a whole: every name, type and action in it must be
//! allowed by one statement (`ForAllValues`). brokercert never mixes TXT and CNAME changes in
//! one batch, so the split costs nothing and keeps the CNAME permission off the challenge
//! names and the TXT permission off the broker's name.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::names::DomainName;

/// The IAM policy language version.
pub const POLICY_VERSION: &str = "2012-10-17";

/// Condition key: the record names of a change batch, normalised.
pub const KEY_NAMES: &str = "route53:ChangeResourceRecordSetsNormalizedRecordNames";
/// Condition key: the record types of a change batch.
pub const KEY_TYPES: &str = "route53:ChangeResourceRecordSetsRecordTypes";
/// Condition key: the actions (`CREATE`, `UPSERT`, `DELETE`) of a change batch.
pub const KEY_ACTIONS: &str = "route53:ChangeResourceRecordSetsActions";

/// Why no policy can be rendered. One paragraph: what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IamError {
    /// No zone, or a zone without any name.
    #[error(
        "there is nothing to grant: no record name in any hosted zone. Configure at least one \
         `[[certificate]]` with `domains` (or pass `--domain NAME`)"
    )]
    Empty,
    /// A zone id that is not a Route 53 id.
    #[error(
        "`{0}` is not a Route 53 hosted zone id: expected letters and digits such as \
         `Z0123456789ABCDEFGHIJ` (an optional `/hostedzone/` prefix is removed). Fix \
         `hosted_zone_id` (flag `--hosted-zone-id`)"
    )]
    BadZoneId(String),
}

/// Record names to grant, grouped by hosted zone id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    zones: BTreeMap<String, ZoneGrant>,
    /// Also allow `route53:ListResourceRecordSets` on each zone (`--with-read`).
    pub read: bool,
    /// The ARN partition: `aws`, `aws-cn` or `aws-us-gov` (empty: `aws`).
    pub partition: &'static str,
}

/// The ARN partition of an AWS region: `aws-cn` for China (`cn-…`), `aws-us-gov` for
/// GovCloud (`us-gov-…`), else `aws`.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// What one hosted zone grants: TXT at the challenge names, CNAME at the broker names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneGrant {
    /// Normalised `_acme-challenge.…` names (TXT; UPSERT, DELETE).
    pub txt_names: BTreeSet<String>,
    /// Normalised names of the broker's custom domain (CNAME; CREATE, DELETE).
    pub cname_names: BTreeSet<String>,
}

/// Strips an optional `/hostedzone/` prefix and checks the id's characters (letters, digits
/// and `_`, so that the placeholder `ZONE_ID` of the checked-in policy passes too).
pub fn normalize_zone_id(id: &str) -> Result<String, IamError> {
    let trimmed = id.trim();
    let bare = trimmed
        .strip_prefix("/hostedzone/")
        .or_else(|| trimmed.strip_prefix("hostedzone/"))
        .unwrap_or(trimmed);
    if bare.is_empty()
        || bare.len() > 64
        || !bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(IamError::BadZoneId(id.to_string()));
    }
    Ok(bare.to_string())
}

/// A record name as Route 53's `ChangeResourceRecordSetsNormalizedRecordNames` presents it:
/// lower case, no trailing dot, and every byte other than `a-z`, `0-9`, `-`, `_` and `.`
/// written as `\` plus three octal digits (`*` is `\052`).
pub fn normalize_record_name(name: &str) -> String {
    let lower = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let mut out = String::with_capacity(lower.len());
    for b in lower.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\{b:03o}"));
        }
    }
    out
}

/// The TXT name DNS-01 uses for `domain` (a wildcard maps to its base name), normalised.
pub fn challenge_record_name(domain: &DomainName) -> String {
    normalize_record_name(domain.challenge_name().as_str())
}

impl Grants {
    /// No grants yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows TXT changes at `name` in `zone_id`.
    pub fn add_txt(&mut self, zone_id: &str, name: &str) -> Result<(), IamError> {
        let zone = normalize_zone_id(zone_id)?;
        self.zones
            .entry(zone)
            .or_default()
            .txt_names
            .insert(normalize_record_name(name));
        Ok(())
    }

    /// Allows the CNAME at `name` in `zone_id`.
    pub fn add_cname(&mut self, zone_id: &str, name: &str) -> Result<(), IamError> {
        let zone = normalize_zone_id(zone_id)?;
        self.zones
            .entry(zone)
            .or_default()
            .cname_names
            .insert(normalize_record_name(name));
        Ok(())
    }

    /// Adds one certificate whose names all live in `zone_id`: `_acme-challenge.<domain>`
    /// for every domain, and the first domain's CNAME when `with_cname`.
    pub fn add_certificate(
        &mut self,
        zone_id: &str,
        domains: &[DomainName],
        with_cname: bool,
    ) -> Result<(), IamError> {
        for d in domains {
            self.add_txt(zone_id, d.challenge_name().as_str())?;
        }
        if with_cname && let Some(first) = domains.first() {
            self.add_cname(zone_id, first.as_str())?;
        }
        Ok(())
    }

    /// The zones and their names, by zone id.
    pub fn zones(&self) -> impl Iterator<Item = (&str, &ZoneGrant)> {
        self.zones.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The policy document.
    pub fn policy(&self) -> Result<Policy, IamError> {
        render(self)
    }
}

/// An IAM policy document (field order as AWS shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Policy {
    /// `2012-10-17`.
    pub version: &'static str,
    /// The statements.
    pub statement: Vec<Statement>,
}

/// One `Allow` statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    /// Statement id (letters and digits).
    pub sid: String,
    /// Always `Allow`.
    pub effect: &'static str,
    /// Actions.
    pub action: Vec<&'static str>,
    /// Resources.
    pub resource: Vec<String>,
    /// Operator → condition key → allowed values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub condition: BTreeMap<&'static str, BTreeMap<&'static str, Vec<String>>>,
}

impl Policy {
    /// Pretty JSON with a final newline, as `brokercert iam-policy` prints it.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// The statements remote state (`state_dir = "s3://BUCKET/PREFIX"`) needs: the objects
/// under the prefix (read, write, delete: state, journals, leases), listing the prefix, the
/// bucket's public access block (checked before anything is written), and with `kms_key_id`
/// the KMS key (SSE-KMS).
pub fn state_statements(
    partition: &str,
    bucket: &str,
    prefix: &str,
    kms_key_id: Option<&str>,
) -> Vec<Statement> {
    let objects = if prefix.is_empty() {
        format!("arn:{partition}:s3:::{bucket}/*")
    } else {
        format!("arn:{partition}:s3:::{bucket}/{prefix}/*")
    };
    let listed = if prefix.is_empty() {
        "*".to_string()
    } else {
        format!("{prefix}/*")
    };
    let mut out = vec![
        Statement {
            sid: "BrokercertStateObjects".into(),
            effect: "Allow",
            action: vec!["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            resource: vec![objects],
            condition: BTreeMap::new(),
        },
        Statement {
            sid: "BrokercertStateList".into(),
            effect: "Allow",
            action: vec!["s3:ListBucket"],
            resource: vec![format!("arn:{partition}:s3:::{bucket}")],
            condition: BTreeMap::from([(
                "StringLike",
                BTreeMap::from([("s3:prefix", vec![listed])]),
            )]),
        },
        Statement {
            sid: "BrokercertStateBucketCheck".into(),
            effect: "Allow",
            action: vec!["s3:GetBucketPublicAccessBlock"],
            resource: vec![format!("arn:{partition}:s3:::{bucket}")],
            condition: BTreeMap::new(),
        },
    ];
    if let Some(key) = kms_key_id {
        let arn = if key.starts_with("arn:") {
            key.to_string()
        } else {
            format!("arn:{partition}:kms:*:*:key/{key}")
        };
        out.push(Statement {
            sid: "BrokercertStateKms".into(),
            effect: "Allow",
            action: vec!["kms:Decrypt", "kms:GenerateDataKey"],
            resource: vec![arn],
            condition: BTreeMap::new(),
        });
    }
    out
}

fn sid_part(zone: &str) -> String {
    zone.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

fn record_statement(
    sid: String,
    partition: &str,
    zone: &str,
    names: &BTreeSet<String>,
    rtype: &str,
    actions: &[&str],
) -> Statement {
    let mut condition = BTreeMap::new();
    condition.insert(
        "ForAllValues:StringLike",
        BTreeMap::from([(KEY_NAMES, names.iter().cloned().collect())]),
    );
    condition.insert(
        "ForAllValues:StringEquals",
        BTreeMap::from([
            (KEY_TYPES, vec![rtype.to_string()]),
            (KEY_ACTIONS, actions.iter().map(|a| a.to_string()).collect()),
        ]),
    );
    Statement {
        sid,
        effect: "Allow",
        action: vec!["route53:ChangeResourceRecordSets"],
        resource: vec![format!("arn:{partition}:route53:::hostedzone/{zone}")],
        condition,
    }
}

/// Renders the policy: zone listing and change polling, then per zone the TXT statement and
/// (when a CNAME is managed there) the CNAME statement.
pub fn render(grants: &Grants) -> Result<Policy, IamError> {
    if grants
        .zones
        .values()
        .all(|z| z.txt_names.is_empty() && z.cname_names.is_empty())
    {
        return Err(IamError::Empty);
    }
    let partition = if grants.partition.is_empty() {
        "aws"
    } else {
        grants.partition
    };
    let mut statement = vec![
        Statement {
            sid: "FindHostedZones".into(),
            effect: "Allow",
            action: vec!["route53:ListHostedZones"],
            resource: vec!["*".into()],
            condition: BTreeMap::new(),
        },
        Statement {
            sid: "WatchChanges".into(),
            effect: "Allow",
            action: vec!["route53:GetChange"],
            resource: vec![format!("arn:{partition}:route53:::change/*")],
            condition: BTreeMap::new(),
        },
    ];
    for (zone, g) in &grants.zones {
        if grants.read {
            statement.push(Statement {
                sid: format!("ReadRecords{}", sid_part(zone)),
                effect: "Allow",
                action: vec!["route53:ListResourceRecordSets"],
                resource: vec![format!("arn:{partition}:route53:::hostedzone/{zone}")],
                condition: BTreeMap::new(),
            });
        }
        if !g.txt_names.is_empty() {
            statement.push(record_statement(
                format!("AcmeChallengeTxt{}", sid_part(zone)),
                partition,
                zone,
                &g.txt_names,
                "TXT",
                &["UPSERT", "DELETE"],
            ));
        }
        if !g.cname_names.is_empty() {
            statement.push(record_statement(
                format!("BrokerCname{}", sid_part(zone)),
                partition,
                zone,
                &g.cname_names,
                "CNAME",
                &["CREATE", "DELETE"],
            ));
        }
    }
    Ok(Policy {
        version: POLICY_VERSION,
        statement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    fn value(p: &Policy) -> serde_json::Value {
        serde_json::from_str(&p.to_json()).unwrap()
    }

    #[test]
    fn partitions_and_the_optional_read_action() {
        assert_eq!(partition_of("us-east-1"), "aws");
        assert_eq!(partition_of("cn-northwest-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        let mut g = Grants::new();
        g.add_txt("Z1", "_acme-challenge.a.example.com").unwrap();
        g.partition = "aws-cn";
        g.read = true;
        let v = value(&g.policy().unwrap());
        let st = v["Statement"].as_array().unwrap();
        assert_eq!(st[1]["Resource"][0], "arn:aws-cn:route53:::change/*");
        assert_eq!(st[2]["Action"][0], "route53:ListResourceRecordSets");
        assert_eq!(st[2]["Resource"][0], "arn:aws-cn:route53:::hostedzone/Z1");
        assert_eq!(st[3]["Resource"][0], "arn:aws-cn:route53:::hostedzone/Z1");
        let text = g.policy().unwrap().to_json();
        assert!(!text.contains("arn:aws:"), "{text}");
        // Without --with-read: exactly the guide's three actions.
        g.read = false;
        let text = g.policy().unwrap().to_json();
        assert!(!text.contains("ListResourceRecordSets"), "{text}");
    }

    #[test]
    fn names_are_normalised_like_route53_does() {
        assert_eq!(
            normalize_record_name("MQTT.Example.com."),
            "mqtt.example.com"
        );
        assert_eq!(
            normalize_record_name("*.example.com"),
            "\\052.example.com",
            "`*` is written in octal"
        );
        assert_eq!(
            normalize_record_name("_acme-challenge.a-b.example.com"),
            "_acme-challenge.a-b.example.com"
        );
    }

    #[test]
    fn wildcards_use_the_base_name() {
        assert_eq!(
            challenge_record_name(&d("*.example.com")),
            "_acme-challenge.example.com"
        );
        let mut g = Grants::new();
        g.add_certificate("Z1", &[d("example.com"), d("*.example.com")], false)
            .unwrap();
        let (_, z) = g.zones().next().unwrap();
        assert_eq!(
            z.txt_names.iter().collect::<Vec<_>>(),
            ["_acme-challenge.example.com"],
            "apex and wildcard share one TXT name"
        );
        assert!(z.cname_names.is_empty());
    }

    #[test]
    fn zone_ids_lose_their_prefix_and_must_be_plain() {
        assert_eq!(normalize_zone_id("/hostedzone/Z123ABC").unwrap(), "Z123ABC");
        assert_eq!(normalize_zone_id(" Z9 ").unwrap(), "Z9");
        for bad in ["", "Z1/../x", "Z1\"", "arn:aws:route53:::hostedzone/Z1"] {
            let err = normalize_zone_id(bad).unwrap_err().to_string();
            assert!(err.contains("hosted_zone_id"), "{err}");
        }
    }

    #[test]
    fn one_certificate_with_cname() {
        let mut g = Grants::new();
        g.add_certificate(
            "/hostedzone/Z1",
            &[d("mqtt.example.com"), d("*.mqtt.example.com")],
            true,
        )
        .unwrap();
        let v = value(&g.policy().unwrap());
        assert_eq!(v["Version"], "2012-10-17");
        let st = v["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 4);
        assert_eq!(st[0]["Action"][0], "route53:ListHostedZones");
        assert_eq!(st[0]["Resource"][0], "*");
        assert!(st[0].get("Condition").is_none());
        assert_eq!(st[1]["Action"][0], "route53:GetChange");
        assert_eq!(st[1]["Resource"][0], "arn:aws:route53:::change/*");

        let txt = &st[2];
        assert_eq!(txt["Sid"], "AcmeChallengeTxtZ1");
        assert_eq!(txt["Resource"][0], "arn:aws:route53:::hostedzone/Z1");
        assert_eq!(
            txt["Condition"]["ForAllValues:StringLike"][KEY_NAMES],
            serde_json::json!(["_acme-challenge.mqtt.example.com"])
        );
        assert_eq!(
            txt["Condition"]["ForAllValues:StringEquals"][KEY_TYPES],
            serde_json::json!(["TXT"])
        );
        assert_eq!(
            txt["Condition"]["ForAllValues:StringEquals"][KEY_ACTIONS],
            serde_json::json!(["UPSERT", "DELETE"])
        );

        let cname = &st[3];
        assert_eq!(cname["Sid"], "BrokerCnameZ1");
        assert_eq!(
            cname["Condition"]["ForAllValues:StringLike"][KEY_NAMES],
            serde_json::json!(["mqtt.example.com"])
        );
        assert_eq!(
            cname["Condition"]["ForAllValues:StringEquals"][KEY_TYPES],
            serde_json::json!(["CNAME"])
        );
        assert_eq!(
            cname["Condition"]["ForAllValues:StringEquals"][KEY_ACTIONS],
            serde_json::json!(["CREATE", "DELETE"])
        );
    }

    #[test]
    fn several_zones_get_their_own_statements_and_names_are_deduplicated() {
        let mut g = Grants::new();
        g.add_certificate("Z2", &[d("b.example.org")], false)
            .unwrap();
        g.add_certificate("Z1", &[d("a.example.com")], true)
            .unwrap();
        g.add_txt("Z1", "_acme-challenge.A.example.com.").unwrap();
        let p = g.policy().unwrap();
        let sids: Vec<&str> = p.statement.iter().map(|s| s.sid.as_str()).collect();
        assert_eq!(
            sids,
            [
                "FindHostedZones",
                "WatchChanges",
                "AcmeChallengeTxtZ1",
                "BrokerCnameZ1",
                "AcmeChallengeTxtZ2"
            ]
        );
        assert_eq!(
            p.statement[2].condition["ForAllValues:StringLike"][KEY_NAMES],
            ["_acme-challenge.a.example.com"]
        );
    }

    #[test]
    fn state_in_s3_adds_the_bucket_prefix_and_kms_statements() {
        let v = serde_json::to_value(state_statements("aws", "b", "fleet", Some("1234"))).unwrap();
        assert_eq!(v[0]["Resource"][0], "arn:aws:s3:::b/fleet/*");
        assert_eq!(v[0]["Action"][1], "s3:PutObject");
        assert_eq!(v[1]["Condition"]["StringLike"]["s3:prefix"][0], "fleet/*");
        assert_eq!(v[2]["Action"][0], "s3:GetBucketPublicAccessBlock");
        assert_eq!(v[3]["Resource"][0], "arn:aws:kms:*:*:key/1234");
        assert_eq!(state_statements("aws-cn", "b", "", None).len(), 3);
    }

    #[test]
    fn nothing_to_grant_is_an_error() {
        assert_eq!(Grants::new().policy().unwrap_err(), IamError::Empty);
    }

    #[test]
    fn the_checked_in_policy_is_what_the_renderer_makes_for_the_placeholders() {
        let text = include_str!("../infra/iam-policy.json");
        let file: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
        let mut g = Grants::new();
        g.add_certificate("ZONE_ID", &[d("mqtt.example.com")], true)
            .unwrap();
        assert_eq!(
            file,
            value(&g.policy().unwrap()),
            "infra/iam-policy.json drifted from src/iam.rs; regenerate it with \
             `brokercert iam-policy --domain mqtt.example.com --cname-target \
             deployment.example.net --hosted-zone-id ZONE_ID`"
        );
    }
}
