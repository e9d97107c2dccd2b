//! `brokercert iam-policy`: prints the least-privilege IAM policy for the configured
//! certificates (the shape is `iam::render`'s).
//!
//! Zones come from `hosted_zone_id` when a certificate sets it (no AWS call at all), else
//! from Route 53 `ListHostedZones` through the same adapter and zone rule as `issue`
//! (`dns::zone::choose_zone`: the longest public zone that holds the name). Names: the
//! `_acme-challenge` name of every domain (a wildcard maps to its base name) and the first
//! domain for the CNAME when `cname_target` is set. The policy goes to stdout; one line per
//! zone on stderr says where each zone id came from.
//!
//! A delegated `_acme-challenge` CNAME (pointing into another zone) is not followed here:
//! the policy then needs that target's name and zone too (see the README).

use clap::Args;

use super::Cli;
use super::output;
use crate::config::{Overrides, Settings};
use crate::dns::HostedZone;
use crate::dns::provider::DnsProvider;
use crate::dns::zone::choose_zone;
use crate::error::exit;
use crate::iam::{Grants, normalize_zone_id};
use crate::names::DomainName;

/// Flags of `iam-policy` (each overrides the configuration file, like `issue`'s).
#[derive(Debug, Args)]
pub struct IamPolicyArgs {
    /// Only this configured certificate (default: every `[[certificate]]`).
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// A name the certificate covers (repeatable; defines a certificate without a file).
    #[arg(long = "domain", short = 'd', value_name = "NAME")]
    pub domains: Vec<String>,
    /// The deployment's address the first domain is a CNAME to (adds the CNAME statement).
    #[arg(long, value_name = "HOST")]
    pub cname_target: Option<String>,
    /// Route 53 hosted zone id to use instead of discovery (then no AWS call is made).
    #[arg(long, value_name = "ID")]
    pub hosted_zone_id: Option<String>,
    /// Route 53 API endpoint (an emulator); default: AWS.
    #[arg(long, value_name = "URL")]
    pub route53_endpoint: Option<String>,
    /// Also allow `route53:ListResourceRecordSets` on each zone (exact reads of the zone,
    /// see `route53.read_records`).
    #[arg(long)]
    pub with_read: bool,
}

/// A failure: one paragraph and the exit code.
struct Failure {
    code: i32,
    message: String,
}

/// Runs `iam-policy`; returns the exit code.
pub async fn run(cli: &Cli, args: &IamPolicyArgs) -> i32 {
    match policy(cli, args).await {
        Ok((json, notes)) => {
            if !cli.quiet {
                for n in notes {
                    eprintln!("{n}");
                }
            }
            print!("{json}");
            exit::OK
        }
        Err(f) => {
            output::error(&f.message);
            f.code
        }
    }
}

async fn policy(cli: &Cli, args: &IamPolicyArgs) -> Result<(String, Vec<String>), Failure> {
    let config_error = |message: String| Failure {
        code: exit::CONFIG,
        message,
    };
    let over = Overrides {
        state_dir: cli.state_dir.clone(),
        route53_endpoint: args.route53_endpoint.clone(),
        name: args.name.clone(),
        domains: args.domains.clone(),
        cname_target: args.cname_target.clone(),
        hosted_zone_id: args.hosted_zone_id.clone(),
        ..Default::default()
    };
    let settings =
        Settings::load(cli.config.as_deref(), &over).map_err(|e| config_error(e.to_string()))?;
    if settings.certificates.is_empty() {
        return Err(config_error(
            "no certificate to write a policy for: the configuration has no `[[certificate]]` \
             section and no `--domain` was given. Pass `--config FILE` (or BROKERCERT_CONFIG), \
             or e.g. `brokercert iam-policy --domain mqtt.example.com --cname-target \
             <deployment address>`"
                .into(),
        ));
    }
    for c in &settings.certificates {
        if let Some(id) = &c.hosted_zone_id {
            normalize_zone_id(id)
                .map_err(|e| config_error(format!("certificate `{}`: {e}", c.name)))?;
        }
    }

    // List the zones only when some certificate needs discovery.
    let zones: Option<Vec<HostedZone>> = if settings
        .certificates
        .iter()
        .any(|c| c.hosted_zone_id.is_none())
    {
        let route53 = crate::workflow::services::route53(&settings).await;
        let zones = route53.hosted_zones().await.map_err(|e| Failure {
            code: exit::DNS,
            message: format!(
                "cannot discover the hosted zones for the IAM policy: {e}. Set \
                     `hosted_zone_id` for each certificate (or pass `--hosted-zone-id ID`) to \
                     render the policy without calling AWS, or run with credentials that may \
                     call route53:ListHostedZones"
            ),
        })?;
        Some(zones)
    } else {
        None
    };

    let mut grants = Grants::new();
    let mut notes = Vec::new();
    grants.read = args.with_read;
    // ARNs name the partition of the region Route 53 is signed for.
    let env_region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .ok();
    grants.partition = match (&settings.dns.route53_region, &env_region) {
        (Some(r), _) => crate::iam::partition_of(r),
        (None, Some(r)) if crate::iam::partition_of(r) != "aws" => {
            let p = crate::iam::partition_of(r);
            notes.push(format!(
                "iam-policy: warning: AWS_REGION is `{r}` (partition {p}), but `route53.region` \
                 is not set, so brokercert signs Route 53 requests for us-east-1 (the `aws` \
                 partition), which {p} accounts cannot use. Set `route53.region` in `[route53]` \
                 (e.g. `cn-northwest-1` for China, `us-gov-west-1` for GovCloud) and \
                 `route53.endpoint_url` to that partition's Route 53 endpoint. The ARNs below \
                 are for {p}"
            ));
            p
        }
        _ => "aws",
    };
    for c in &settings.certificates {
        let zone_of = |name: &DomainName| -> Result<(String, String), Failure> {
            match (&zones, &c.hosted_zone_id) {
                (None, Some(id)) => Ok((
                    normalize_zone_id(id).map_err(|e| config_error(e.to_string()))?,
                    "configured `hosted_zone_id`, not checked against AWS".into(),
                )),
                (Some(zones), explicit) => {
                    let z = choose_zone(name, zones, explicit.as_deref()).map_err(|e| Failure {
                        code: exit::DNS,
                        message: format!("certificate `{}`: {e}", c.name),
                    })?;
                    let how = if explicit.is_some() {
                        "configured `hosted_zone_id`"
                    } else {
                        "discovered with ListHostedZones"
                    };
                    Ok((z.id.clone(), format!("{}, {how}", z.name)))
                }
                (None, None) => unreachable!("zones are listed when an id is missing"),
            }
        };
        for d in &c.domains {
            let challenge = d.challenge_name();
            let (zone, how) = zone_of(&challenge)?;
            grants
                .add_txt(&zone, challenge.as_str())
                .map_err(|e| config_error(e.to_string()))?;
            notes.push(format!(
                "iam-policy: `{}`: TXT {challenge} in zone {zone} ({how})",
                c.name
            ));
        }
        if c.cname_target.is_some() {
            let first = &c.domains[0];
            let (zone, how) = zone_of(first)?;
            grants
                .add_cname(&zone, first.as_str())
                .map_err(|e| config_error(e.to_string()))?;
            notes.push(format!(
                "iam-policy: `{}`: CNAME {first} in zone {zone} ({how})",
                c.name
            ));
        }
    }
    let mut policy = grants.policy().map_err(|e| config_error(e.to_string()))?;
    if let Some(remote) = &settings.state_remote {
        let l = &remote.location;
        policy.statement.extend(crate::iam::state_statements(
            grants.partition,
            &l.bucket,
            &l.prefix,
            l.kms_key_id.as_deref(),
        ));
        notes.push(format!("iam-policy: state in {}", l.url()));
    }
    Ok((policy.to_json(), notes))
}
