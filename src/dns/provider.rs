//! The DNS provider seam: list zones, submit one change batch, ask whether it is applied,
//! and (where allowed) read the record sets at a name or at many names of a zone at once.
//!
//! Owns: the `DnsProvider` trait and the INSYNC wait built on it.
//! Does not own: any provider's wire protocol (see `route53`).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

use super::{ChangeId, DnsError, HostedZone, RecordChange, RecordSet};

/// Whether a submitted change is live on the provider's nameservers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeStatus {
    /// Still being applied.
    Pending,
    /// Applied on all of the provider's nameservers.
    InSync,
}

/// A DNS hosting provider (Route 53 in production, moto in the sandbox).
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// Every hosted zone of the account.
    async fn hosted_zones(&self) -> Result<Vec<HostedZone>, DnsError>;
    /// Submits the changes as one atomic batch.
    async fn change(
        &self,
        zone_id: &str,
        changes: &[RecordChange],
        comment: &str,
    ) -> Result<ChangeId, DnsError>;
    /// The status of a submitted batch.
    async fn change_status(&self, change: &ChangeId) -> Result<ChangeStatus, DnsError>;
    /// The record sets at `name` in the zone, read through the provider's API (exact: no
    /// lagging nameserver, TTLs as stored). `Ok(None)`: not available (`route53.read_records
    /// = "dns"`, or the identity may not read records), so the caller reads DNS instead.
    async fn record_sets(
        &self,
        _zone_id: &str,
        _name: &str,
    ) -> Result<Option<Vec<RecordSet>>, DnsError> {
        Ok(None)
    }
    /// The record sets at each of `names` in the zone (lower case, no trailing dot), read
    /// through the provider's API in as few requests as it can (Route 53: one page walk of
    /// the zone). Every name asked is a key of the answer (an empty list: nothing there).
    /// `Ok(None)`: not available, as for [`DnsProvider::record_sets`]. By default, one
    /// [`DnsProvider::record_sets`] per name.
    async fn zone_record_sets(
        &self,
        zone_id: &str,
        names: &[String],
    ) -> Result<Option<HashMap<String, Vec<RecordSet>>>, DnsError> {
        read_each(self, zone_id, names).await
    }
    /// The status of a batch, always asked of the provider (`GetChange`) even when the
    /// submission's answer already said INSYNC: `doctor` uses it to prove the identity may
    /// call the action at all.
    async fn change_status_asked(&self, change: &ChangeId) -> Result<ChangeStatus, DnsError> {
        self.change_status(change).await
    }
    /// The status of a batch when it is known without asking (its submission's answer said
    /// INSYNC), so that callers spend none of the account's request rate on it.
    fn known_status(&self, _change: &ChangeId) -> Option<ChangeStatus> {
        None
    }
    /// The caller's work will make no further request of this provider (a certificate whose
    /// authorizations were all valid already: nothing to publish, nothing to clean up). A
    /// provider that holds batches for the work of several callers stops waiting for this
    /// one (`dns::batching`); others ignore it.
    fn finished_with_dns(&self) {}
}

/// A boxed provider is one (the use cases hold Route 53 or a test's provider behind a box);
/// every method forwards, so a provider's own answers (Route 53's page walk, its known
/// INSYNC) are kept.
#[async_trait]
impl<P: DnsProvider + ?Sized> DnsProvider for Box<P> {
    async fn hosted_zones(&self) -> Result<Vec<HostedZone>, DnsError> {
        (**self).hosted_zones().await
    }
    async fn change(
        &self,
        zone_id: &str,
        changes: &[RecordChange],
        comment: &str,
    ) -> Result<ChangeId, DnsError> {
        (**self).change(zone_id, changes, comment).await
    }
    async fn change_status(&self, change: &ChangeId) -> Result<ChangeStatus, DnsError> {
        (**self).change_status(change).await
    }
    async fn record_sets(
        &self,
        zone_id: &str,
        name: &str,
    ) -> Result<Option<Vec<RecordSet>>, DnsError> {
        (**self).record_sets(zone_id, name).await
    }
    async fn zone_record_sets(
        &self,
        zone_id: &str,
        names: &[String],
    ) -> Result<Option<HashMap<String, Vec<RecordSet>>>, DnsError> {
        (**self).zone_record_sets(zone_id, names).await
    }
    async fn change_status_asked(&self, change: &ChangeId) -> Result<ChangeStatus, DnsError> {
        (**self).change_status_asked(change).await
    }
    fn known_status(&self, change: &ChangeId) -> Option<ChangeStatus> {
        (**self).known_status(change)
    }
    fn finished_with_dns(&self) {
        (**self).finished_with_dns()
    }
}

/// The record sets at each of `names`, one [`DnsProvider::record_sets`] request per name.
pub async fn read_each<P: DnsProvider + ?Sized>(
    provider: &P,
    zone_id: &str,
    names: &[String],
) -> Result<Option<HashMap<String, Vec<RecordSet>>>, DnsError> {
    let mut out = HashMap::new();
    for name in names {
        match provider.record_sets(zone_id, name).await? {
            Some(sets) => out.insert(name.clone(), sets),
            None => return Ok(None),
        };
    }
    Ok(Some(out))
}

/// Polls `change_status` with a growing interval (250 ms doubling to 5 s) until INSYNC.
pub async fn await_insync(
    provider: &dyn DnsProvider,
    zone_id: &str,
    change: &ChangeId,
    timeout: Duration,
) -> Result<Duration, DnsError> {
    await_insync_reporting(provider, zone_id, change, timeout, &|_, _| {}).await
}

/// [`await_insync`], calling `pending(change, waited)` each time the change is still
/// pending (so a slow Route 53 shows up in the progress output instead of looking hung).
pub async fn await_insync_reporting(
    provider: &dyn DnsProvider,
    zone_id: &str,
    change: &ChangeId,
    timeout: Duration,
    pending: &(dyn Fn(&ChangeId, Duration) + Sync),
) -> Result<Duration, DnsError> {
    let start = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        let status = provider.change_status(change).await?;
        if status == ChangeStatus::InSync {
            return Ok(start.elapsed());
        }
        if start.elapsed() + delay > timeout {
            return Err(DnsError::ChangeTimeout {
                change: change.0.clone(),
                zone: zone_id.to_string(),
                status: "PENDING".into(),
                waited_secs: start.elapsed().as_secs(),
            });
        }
        tracing::debug!(change = %change.0, "Route 53 change pending; next check in {delay:?}");
        pending(change, start.elapsed());
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
