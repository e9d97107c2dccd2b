//! The CNAME stage: the broker's custom domain points at the deployment's connection address.
//!
//! Owns: reading what is at the name now, applying `dns::plan::plan_cname`, and waiting for
//! INSYNC. Never overwrites a different record without `--force`.

use std::time::Duration;

use super::challenge_records::DnsView;
use crate::config::CertificateSpec;
use crate::dns::plan::{CnamePlan, plan_cname};
use crate::dns::provider::await_insync_reporting;
use crate::dns::{ChangeAction, DnsError, RecordType};
use crate::progress::{Progress, Stage, Waiting};

/// What the CNAME stage did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CnameOutcome {
    /// No `cname_target` configured.
    Skipped,
    /// The identical record was already there.
    AlreadyPresent,
    /// Created.
    Created,
    /// Replaced what was there (`--force`).
    Replaced(String),
}

/// Ensures `domains[0] CNAME cname_target` in the right zone.
pub async fn ensure_cname(
    view: &DnsView<'_>,
    spec: &CertificateSpec,
    force: bool,
    change_timeout: Duration,
    progress: &dyn Progress,
) -> Result<CnameOutcome, DnsError> {
    let Some(target) = &spec.cname_target else {
        return Ok(CnameOutcome::Skipped);
    };
    let name = &spec.domains[0];
    let zone = view.zone_for(name, spec.hosted_zone_id.as_deref())?;
    let existing = view
        .read_sets(
            &zone,
            name.as_str(),
            &[
                RecordType::Cname,
                RecordType::A,
                RecordType::Aaaa,
                RecordType::Txt,
            ],
        )
        .await?;
    match plan_cname(
        name.as_str(),
        target.as_str(),
        spec.cname_ttl,
        &existing,
        force,
    ) {
        CnamePlan::Keep => Ok(CnameOutcome::AlreadyPresent),
        CnamePlan::Conflict(found) => Err(DnsError::Conflict {
            name: name.to_string(),
            zone: format!("{} ({})", zone.name, zone.id),
            found,
            wanted: target.to_string(),
        }),
        CnamePlan::Write(changes) => {
            let replaced: Vec<String> = changes
                .iter()
                .filter(|c| c.action == ChangeAction::Delete)
                .map(|c| format!("{} {}", c.set.rtype, c.set.values.join(" ")))
                .collect();
            let id = view
                .provider
                .change(
                    &zone.id,
                    &changes,
                    "brokercert: point the broker's domain at the deployment",
                )
                .await?;
            let what = format!("Route 53 change for {name} CNAME in {}", zone.id);
            await_insync_reporting(
                view.provider,
                &zone.id,
                &id,
                change_timeout,
                &|_, elapsed| {
                    progress.waiting(
                        Stage::Cname,
                        &Waiting {
                            what: &what,
                            waiting_for: Some("INSYNC"),
                            elapsed,
                            next_check: None,
                        },
                    )
                },
            )
            .await?;
            Ok(if replaced.is_empty() {
                CnameOutcome::Created
            } else {
                CnameOutcome::Replaced(replaced.join(", "))
            })
        }
    }
}
