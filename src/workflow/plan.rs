//! The read-only parts of a plan shared by `plan` and `renew --dry-run`: what is at the
//! custom domain and the CNAME change a run would make, and what each deployment target
//! serves and the calls a deployment would make.
//!
//! Owns: those listings (as [`Step`]s). Does not own printing them (`cli::plan`) nor any
//! writing call: everything here only reads.

use crate::config::CertificateSpec;
use crate::dns::plan::{CnamePlan, plan_cname};
use crate::dns::{ChangeAction, RecordType};
use crate::error::Error;
use crate::workflow::challenge_records::DnsView;

/// One planned call.
#[derive(Debug, Clone)]
pub struct Step {
    /// `dns`, `acme`, `deploy`, `verify`.
    pub section: &'static str,
    /// `read`, `write`, `wait`, `call`.
    pub kind: &'static str,
    pub text: String,
}

/// A planned call.
pub fn step(section: &'static str, kind: &'static str, text: impl Into<String>) -> Step {
    Step {
        section,
        kind,
        text: text.into(),
    }
}

/// The CNAME part of the plan: what is at the custom domain and the change `issue` would
/// make there (shared with `renew --dry-run`, which only plans the CNAME).
pub async fn cname_steps(
    view: &DnsView<'_>,
    spec: &CertificateSpec,
    force: bool,
) -> Result<Vec<Step>, (Vec<Step>, Error)> {
    let mut steps = Vec::new();
    macro_rules! tryp {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Err((steps, e.into())),
            }
        };
    }
    if let Some(target) = &spec.cname_target {
        let name = &spec.domains[0];
        let zone = tryp!(view.zone_for(name, spec.hosted_zone_id.as_deref()));
        let existing = tryp!(
            view.read_sets(
                &zone,
                name.as_str(),
                &[
                    RecordType::Cname,
                    RecordType::A,
                    RecordType::Aaaa,
                    RecordType::Txt
                ],
            )
            .await
        );
        steps.push(step(
            "dns",
            "read",
            format!(
                "{name} CNAME/A/AAAA/TXT from the nameservers of {}",
                zone.name
            ),
        ));
        match plan_cname(
            name.as_str(),
            target.as_str(),
            spec.cname_ttl,
            &existing,
            force,
        ) {
            CnamePlan::Keep => steps.push(step(
                "dns",
                "keep",
                format!("{name} CNAME {target} is already in place"),
            )),
            CnamePlan::Conflict(found) => {
                return Err((
                    steps,
                    Error::Dns(crate::dns::DnsError::Conflict {
                        name: name.to_string(),
                        zone: format!("{} ({})", zone.name, zone.id),
                        found,
                        wanted: target.to_string(),
                    }),
                ));
            }
            CnamePlan::Write(changes) => {
                let list = changes
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {} {} {} (TTL {})",
                            match c.action {
                                ChangeAction::Create => "CREATE",
                                ChangeAction::Upsert => "UPSERT",
                                ChangeAction::Delete => "DELETE",
                            },
                            c.set.name.trim_end_matches('.'),
                            c.set.rtype,
                            c.set.values.join(" "),
                            c.set.ttl
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                steps.push(step(
                    "dns",
                    "write",
                    format!("ChangeResourceRecordSets zone {}: {list}", zone.id),
                ));
                steps.push(step("dns", "wait", "GetChange until INSYNC"));
            }
        }
    }
    Ok(steps)
}

/// What each deployment target serves now and the calls a deployment would make there.
pub async fn deploy_steps(targets: &[Box<dyn crate::deploy::DeploymentTarget>]) -> Vec<Step> {
    let mut steps = Vec::new();
    for t in targets {
        let current = match t.current().await {
            Ok(c) => c,
            Err(e) => {
                steps.push(step(
                    "deploy",
                    "read",
                    format!("{}: cannot read what it serves now: {e}", t.describe()),
                ));
                None
            }
        };
        for line in t.plan(current.as_ref()) {
            let kind = if line.starts_with("GET") || line.starts_with("read") {
                "read"
            } else {
                "write"
            };
            steps.push(step("deploy", kind, format!("{}: {line}", t.describe())));
        }
    }
    steps
}
