//! Renewal phase 1: the DNS-01 values an interrupted run left (named in the journal) are
//! removed before anything else.
//!
//! Owns: that removal and marking it done in the journal. Does not own the journal's format
//! (`renew::journal`) nor the record-set arithmetic (`workflow::challenge_records`).

use std::ops::ControlFlow;

use super::{Attempt, Phase, RenewSink};
use crate::progress::{Progress, Stage};
use crate::renew::journal::IssueJournal;
use crate::workflow::challenge_records::{DnsView, Ledger};

/// Removes the leftovers of an interrupted run, if any; always continues (or fails).
pub(crate) async fn leftovers<S: RenewSink>(a: &Attempt<'_, S>) -> Phase {
    let pending = a.journal.data();
    if pending.txt.is_empty() {
        return Ok(ControlFlow::Continue(()));
    }
    Progress::update(
        a.progress,
        Stage::Cleanup,
        &format!(
            "removing {} DNS-01 value(s) an interrupted run left",
            pending.txt.len()
        ),
    );
    let services = a.run.services;
    let route53 = services.route53().await;
    let view = DnsView::new(route53, services.lookup()).await?;
    let failures = view
        .cleanup(
            &Ledger::from_entries(&pending.txt),
            "brokercert: remove DNS-01 values of an interrupted run",
        )
        .await;
    if let Some(f) = failures.first() {
        return Err(crate::error::Error::Dns(crate::dns::DnsError::Provider {
            operation: "ChangeResourceRecordSets",
            message: f.clone(),
        }));
    }
    IssueJournal::txt_removed(a.journal)?;
    Ok(ControlFlow::Continue(()))
}
