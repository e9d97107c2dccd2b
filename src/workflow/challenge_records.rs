//! The DNS-01 records of one run: where each value goes (following a delegated
//! `_acme-challenge` CNAME), writing them one change batch per zone, waiting until every
//! nameserver serves them, and removing exactly them again.
//!
//! Owns: the `Ledger` of values this run wrote (filled *before* each write is sent, so an
//! interrupted run still cleans up) and the clean-up. Does not own the record-set
//! arithmetic (`dns::plan`) or the wire (`dns::route53`, `dns::lookup`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::try_join_all;

use crate::dns::lookup::{DnsLookup, Nameserver, PROBE_TIMEOUT, Rcode};
use crate::dns::plan::{self, TxtValue};
use crate::dns::propagation::{self, EarlierNegative, PropagationStatus};
use crate::dns::provider::{self, DnsProvider};
use crate::dns::strategy::{Decided, Propagation};
use crate::dns::zone::choose_zone;
use crate::dns::{ChangeId, DnsError, HostedZone, RecordSet, RecordType};
use crate::names::DomainName;

/// Longest `_acme-challenge` CNAME chain followed (lego follows 50; real setups use 1).
pub const MAX_CNAME_HOPS: usize = 10;
/// How long reading the current records may keep retrying while no nameserver answers.
pub const READ_RETRY_BUDGET: Duration = Duration::from_secs(10);

/// What [`DnsView::await_visible`] reports while it waits.
#[derive(Debug, Clone, Copy)]
pub enum Visibility<'a> {
    /// A Route 53 change batch: still PENDING, or INSYNC after `elapsed`.
    Change {
        /// Its hosted zone.
        zone_id: &'a str,
        /// The change's id.
        change: &'a str,
        /// Whether it reached INSYNC.
        insync: bool,
        /// Time waited.
        elapsed: Duration,
        /// Time until the next check.
        next_check: Option<Duration>,
    },
    /// How many nameservers serve a name's values.
    Nameservers {
        /// The TXT record name.
        name: &'a str,
        /// Their status.
        status: &'a PropagationStatus,
    },
    /// Something the user should know about how propagation is checked (one line).
    Note(&'a str),
}

/// The TXT values this run has written (or was about to write). Shared with the clean-up.
#[derive(Debug, Clone, Default)]
pub struct Ledger(Arc<Mutex<Vec<TxtValue>>>);

impl Ledger {
    fn add(&self, values: &[TxtValue]) {
        if let Ok(mut v) = self.0.lock() {
            for x in values {
                if !v.contains(x) {
                    v.push(x.clone());
                }
            }
        }
    }

    /// A ledger holding `values`, e.g. what an interrupted run recorded in its journal.
    pub fn from_entries(values: &[TxtValue]) -> Ledger {
        let l = Ledger::default();
        l.add(values);
        l
    }

    /// A copy of the entries.
    pub fn entries(&self) -> Vec<TxtValue> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }
}

/// A challenge name, the hosted zone its TXT goes in, and the name written there (itself, or
/// where a CNAME delegates it).
pub type ChallengeTarget = (DomainName, HostedZone, DomainName);

/// Zones and their nameservers, looked up once per run.
pub struct DnsView<'a> {
    /// The provider.
    pub provider: &'a dyn DnsProvider,
    /// Lookups.
    pub lookup: &'a dyn DnsLookup,
    /// The account's zones.
    pub zones: Vec<HostedZone>,
    ns: Mutex<HashMap<String, Vec<Nameserver>>>,
    /// Per zone id: how DNS is read and propagation proven there (`dns.propagation`).
    decided: tokio::sync::Mutex<HashMap<String, Decided>>,
    /// Per name: the first negative answer the resolver gave this run (resolver reads).
    negatives: Mutex<HashMap<String, EarlierNegative>>,
}

/// Where a read goes.
#[derive(Clone, Copy)]
enum Source<'s> {
    /// These authoritative nameserver addresses.
    Servers(&'s [Nameserver]),
    /// The recursive resolver.
    Resolver,
}

impl<'a> DnsView<'a> {
    /// Lists the zones once.
    pub async fn new(
        provider: &'a dyn DnsProvider,
        lookup: &'a dyn DnsLookup,
    ) -> Result<Self, DnsError> {
        Ok(Self {
            zones: provider.hosted_zones().await?,
            provider,
            lookup,
            ns: Mutex::new(HashMap::new()),
            decided: tokio::sync::Mutex::new(HashMap::new()),
            negatives: Mutex::new(HashMap::new()),
        })
    }

    /// How DNS is read and propagation proven for `zone`: `dns.propagation`, with `auto`
    /// (and `authoritative`) probing the zone's nameservers once: when none answers on UDP
    /// or TCP 53 within [`PROBE_TIMEOUT`], `auto` falls back to `insync` (said once, as a
    /// warning naming the setting) and `authoritative` fails at once naming it.
    pub async fn decide(&self, zone: &HostedZone) -> Result<Decided, DnsError> {
        let mut decided = self.decided.lock().await;
        if let Some(d) = decided.get(&zone.id) {
            return Ok(*d);
        }
        let mode = self.lookup.strategy().propagation;
        let d = match mode {
            Propagation::Resolver => Decided::Resolver,
            Propagation::Insync => Decided::Insync,
            Propagation::Auto | Propagation::Authoritative => {
                let servers = self.nameservers(zone).await?;
                let probes = futures::future::join_all(
                    servers
                        .iter()
                        .map(|s| self.lookup.answers_on_53(s, &zone.name)),
                )
                .await;
                if probes.iter().any(Result::is_ok) {
                    Decided::Authoritative
                } else {
                    let evidence = servers
                        .iter()
                        .zip(&probes)
                        .map(|(s, p)| match p {
                            Ok(()) => format!("{s}: answered"),
                            Err(e) => format!("{s}: {e}"),
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    if mode == Propagation::Authoritative {
                        return Err(DnsError::NameserversSilent {
                            zone: zone.name.clone(),
                            secs: PROBE_TIMEOUT.as_secs(),
                            evidence,
                        });
                    }
                    tracing::warn!(
                        "none of the authoritative nameservers of `{}` answered on UDP or TCP \
                         port 53 within {} s ({evidence}): this network seems to allow DNS only \
                         through its own resolver. Trusting Route 53's INSYNC instead (Route 53 \
                         reports it once every one of its nameservers has the change) and \
                         reading through the resolver; set `dns.propagation = \"insync\"` to \
                         make this explicit",
                        zone.name,
                        PROBE_TIMEOUT.as_secs()
                    );
                    Decided::Insync
                }
            }
        };
        decided.insert(zone.id.clone(), d);
        Ok(d)
    }

    /// The zone for `name` (the explicit id wins).
    pub fn zone_for(
        &self,
        name: &DomainName,
        explicit: Option<&str>,
    ) -> Result<HostedZone, DnsError> {
        choose_zone(name, &self.zones, explicit).cloned()
    }

    /// The zone's authoritative nameservers (cached).
    pub async fn nameservers(&self, zone: &HostedZone) -> Result<Vec<Nameserver>, DnsError> {
        if let Some(ns) = self.ns.lock().ok().and_then(|m| m.get(&zone.id).cloned()) {
            return Ok(ns);
        }
        let ns = self.lookup.nameservers(&zone.name).await?;
        if let Ok(mut m) = self.ns.lock() {
            m.insert(zone.id.clone(), ns.clone());
        }
        Ok(ns)
    }

    /// The record sets of the given types at `name`, as the zone's nameservers serve them now.
    /// A nameserver that fails (SERVFAIL, no answer) is skipped for the next; when none
    /// answers, the round is repeated with a growing pause for up to [`READ_RETRY_BUDGET`]
    /// (a DNS hiccup must not abort an issuance before anything was written).
    pub async fn read_sets(
        &self,
        zone: &HostedZone,
        name: &str,
        types: &[RecordType],
    ) -> Result<Vec<RecordSet>, DnsError> {
        // Route 53's own view, where the identity may read it (`route53.read_records`).
        if let Some(sets) = self.provider.record_sets(&zone.id, name).await? {
            return Ok(sets
                .into_iter()
                .filter(|s| types.contains(&s.rtype))
                .collect());
        }
        let servers = match self.decide(zone).await? {
            Decided::Authoritative => self.nameservers(zone).await?,
            Decided::Resolver | Decided::Insync => vec![],
        };
        let source = if servers.is_empty() {
            Source::Resolver
        } else {
            Source::Servers(&servers)
        };
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            match self.read_sets_once(zone, source, name, types).await {
                Ok(sets) => return Ok(sets),
                Err(e) if started.elapsed() + pause < READ_RETRY_BUDGET => {
                    tracing::debug!(
                        "no nameserver answered {name}: {e}; asking again in {pause:?}"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn read_sets_once(
        &self,
        zone: &HostedZone,
        source: Source<'_>,
        name: &str,
        types: &[RecordType],
    ) -> Result<Vec<RecordSet>, DnsError> {
        // One query per type, all at the same time (each answer is a round trip).
        let answers =
            futures::future::join_all(types.iter().map(|&t| self.read_type(zone, source, name, t)))
                .await;
        let mut out: Vec<RecordSet> = Vec::new();
        for sets in answers {
            for set in sets? {
                if !out.iter().any(|o| o.rtype == set.rtype) {
                    out.push(set);
                }
            }
        }
        Ok(out)
    }

    /// The sets at `name` in the answer to one type's query, from the first nameserver
    /// that answers NOERROR or NXDOMAIN (or from the resolver, remembering a negative
    /// answer it may cache).
    async fn read_type(
        &self,
        zone: &HostedZone,
        source: Source<'_>,
        name: &str,
        t: RecordType,
    ) -> Result<Vec<RecordSet>, DnsError> {
        let servers = match source {
            Source::Servers(s) => s,
            Source::Resolver => {
                let a = self.lookup.recursive_query(name, t).await?;
                if !matches!(a.rcode, Rcode::NoError | Rcode::NxDomain) {
                    return Err(DnsError::Lookup {
                        name: name.into(),
                        rtype: t,
                        server: "the recursive resolver".into(),
                        message: format!("answered {}", a.describe()),
                        failure: crate::dns::lookup::QueryFailure::Other,
                    });
                }
                if let Some(ttl) = a.negative_ttl
                    && let Ok(mut n) = self.negatives.lock()
                {
                    n.entry(name.to_ascii_lowercase())
                        .or_insert(EarlierNegative {
                            at: tokio::time::Instant::now(),
                            ttl,
                        });
                }
                return Ok(a.sets_at(name));
            }
        };
        let mut last_err = None;
        for s in servers {
            match self.lookup.query(s, name, t).await {
                Ok(a) if matches!(a.rcode, Rcode::NoError | Rcode::NxDomain) => {
                    return Ok(a.sets_at(name));
                }
                Ok(a) => {
                    last_err = Some(DnsError::Lookup {
                        name: name.into(),
                        rtype: t,
                        server: s.to_string(),
                        message: format!("answered {}", a.describe()),
                        failure: crate::dns::lookup::QueryFailure::Other,
                    })
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| DnsError::Nameservers {
            zone: zone.name.clone(),
            message: "the zone has no nameservers".into(),
        }))
    }

    /// The TXT set at `name` as each of the zone's nameservers serves it now (`None`: no TXT
    /// set there), asking all of them at once: the clean-up must see past one that lags
    /// behind Route 53. Nameservers that fail are left out; when none answers, the round is
    /// repeated with a growing pause for up to [`READ_RETRY_BUDGET`].
    async fn served_txt_sets(
        &self,
        zone: &HostedZone,
        name: &str,
    ) -> Result<(Vec<Option<RecordSet>>, bool), DnsError> {
        if let Some(sets) = self.provider.record_sets(&zone.id, name).await? {
            let txt = sets.into_iter().find(|set| set.rtype == RecordType::Txt);
            return Ok((vec![txt], true));
        }
        if self.decide(zone).await? != Decided::Authoritative {
            // A resolver's answer carries a TTL that counts down in its cache, so a set read
            // there cannot be repeated exactly in a DELETE.
            let sets = self
                .read_sets(zone, name, &[RecordType::Txt])
                .await?
                .into_iter()
                .find(|set| set.rtype == RecordType::Txt);
            return Ok((vec![sets], false));
        }
        let servers = self.nameservers(zone).await?;
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            let answers = futures::future::join_all(servers.iter().map(|s| async move {
                let sets = self.read_type(
                    zone,
                    Source::Servers(std::slice::from_ref(s)),
                    name,
                    RecordType::Txt,
                );
                sets.await
                    .map(|sets| sets.into_iter().find(|set| set.rtype == RecordType::Txt))
            }))
            .await;
            let mut served = Vec::new();
            let mut last_err = None;
            for a in answers {
                match a {
                    Ok(set) => served.push(set),
                    Err(e) => last_err = Some(e),
                }
            }
            match last_err {
                Some(e) if served.is_empty() => {
                    if started.elapsed() + pause >= READ_RETRY_BUDGET {
                        return Err(e);
                    }
                    tracing::debug!(
                        "no nameserver answered {name}: {e}; asking again in {pause:?}"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                _ => return Ok((served, true)),
            }
        }
    }

    /// Where the DNS-01 TXT of each of `spec`'s names goes, once per challenge name (a
    /// wildcard shares its base name's), in the order of its domains: decided before anything
    /// is ordered, so a name no hosted zone can hold fails with no order placed.
    pub async fn challenge_targets(
        &self,
        spec: &crate::config::CertificateSpec,
    ) -> Result<Vec<ChallengeTarget>, DnsError> {
        let mut targets: Vec<ChallengeTarget> = Vec::new();
        for d in &spec.domains {
            let challenge = d.challenge_name();
            if targets.iter().any(|(c, _, _)| *c == challenge) {
                continue;
            }
            let (zone, target) = self
                .challenge_target(&challenge, spec.hosted_zone_id.as_deref())
                .await?;
            targets.push((challenge, zone, target));
        }
        Ok(targets)
    }

    /// Where the TXT for `challenge_name` must go: the name itself, or the end of the CNAME
    /// chain starting there (delegated validation). Every link must be in one of our zones.
    pub async fn challenge_target(
        &self,
        challenge_name: &DomainName,
        explicit_zone: Option<&str>,
    ) -> Result<(HostedZone, DomainName), DnsError> {
        let mut current = challenge_name.clone();
        let mut zone = self
            .zone_for(&current, explicit_zone)
            .map_err(|e| match e {
                // Name the user's domain, not the `_acme-challenge` label they never typed.
                DnsError::NoZone { zones, .. } => DnsError::NoZone {
                    name: challenge_name
                        .as_str()
                        .trim_start_matches("_acme-challenge.")
                        .to_string(),
                    zones,
                },
                other => other,
            })?;
        let mut chain = vec![current.to_string()];
        for _ in 0..MAX_CNAME_HOPS {
            let sets = self
                .read_sets(&zone, current.as_str(), &[RecordType::Cname])
                .await?;
            let Some(target) = sets
                .iter()
                .find(|s| s.rtype == RecordType::Cname)
                .and_then(|s| s.values.first())
            else {
                return Ok((zone, current));
            };
            let next = DomainName::parse(target).map_err(|e| DnsError::Lookup {
                name: current.to_string(),
                rtype: RecordType::Cname,
                server: zone.name.clone(),
                message: format!("its CNAME target is unusable: {e}"),
                failure: crate::dns::lookup::QueryFailure::Other,
            })?;
            if chain.contains(&next.to_string()) {
                chain.push(next.to_string());
                break;
            }
            chain.push(next.to_string());
            zone = self.zone_for(&next, None).map_err(|_| DnsError::Provider {
                operation: "ListHostedZones",
                message: format!(
                    "`{challenge_name}` is a CNAME to `{next}` (delegated validation), but no \
                     hosted zone of this AWS account holds `{next}`, so brokercert cannot write \
                     the TXT record there. Create the zone in this account, or remove the CNAME"
                ),
            })?;
            current = next;
        }
        Err(DnsError::CnameLoop {
            name: challenge_name.to_string(),
            max: MAX_CNAME_HOPS,
            chain: chain.join(" → "),
        })
    }

    /// Writes the values: one change batch per zone, existing values kept. Each value enters
    /// the ledger before its batch is sent. Returns the submitted changes.
    pub async fn publish(
        &self,
        values: &[TxtValue],
        ledger: &Ledger,
        comment: &str,
    ) -> Result<Vec<(HostedZone, ChangeId)>, DnsError> {
        let mut submitted = Vec::new();
        for (zone_id, names) in plan::group_by_zone(values) {
            let zone = self
                .zones
                .iter()
                .find(|z| z.id == zone_id)
                .cloned()
                .ok_or_else(|| DnsError::Provider {
                    operation: "ChangeResourceRecordSets",
                    message: format!("zone {zone_id} disappeared during the run"),
                })?;
            // Every name's exact current set decides its UPSERT; read all at once, so that
            // a batching provider answers them with one read of the zone.
            let existing = try_join_all(
                names
                    .keys()
                    .map(|name| self.read_sets(&zone, name, &[RecordType::Txt])),
            )
            .await?;
            let mut changes = Vec::new();
            for ((name, ours), existing) in names.iter().zip(&existing) {
                let existing = existing.iter().find(|s| s.rtype == RecordType::Txt);
                changes.push(plan::add_txt_values(name, existing, ours));
            }
            let entries: Vec<TxtValue> = values
                .iter()
                .filter(|v| v.zone_id == zone_id)
                .cloned()
                .collect();
            ledger.add(&entries);
            let id = self.provider.change(&zone.id, &changes, comment).await?;
            submitted.push((zone, id));
        }
        Ok(submitted)
    }

    /// Waits for every submitted change to be INSYNC, then for every value to be served by
    /// every nameserver of its zone.
    pub async fn await_visible(
        &self,
        changes: &[(HostedZone, ChangeId)],
        values: &[TxtValue],
        change_timeout: Duration,
        propagation_timeout: Duration,
        progress: &(dyn Fn(Visibility<'_>) + Sync),
    ) -> Result<(), DnsError> {
        try_join_all(changes.iter().map(|(zone, id)| async move {
            let took = provider::await_insync_reporting(
                self.provider,
                &zone.id,
                id,
                change_timeout,
                &|_, elapsed| {
                    progress(Visibility::Change {
                        zone_id: &zone.id,
                        change: &id.0,
                        insync: false,
                        elapsed,
                        next_check: None,
                    })
                },
            )
            .await?;
            progress(Visibility::Change {
                zone_id: &zone.id,
                change: &id.0,
                insync: true,
                elapsed: took,
                next_check: None,
            });
            Ok::<_, DnsError>(())
        }))
        .await?;
        let mut checks = Vec::new();
        for (zone_id, names) in plan::group_by_zone(values) {
            let Some(zone) = self.zones.iter().find(|z| z.id == zone_id) else {
                continue;
            };
            let decided = self.decide(zone).await?;
            let servers = match decided {
                Decided::Authoritative => self.nameservers(zone).await?,
                Decided::Resolver | Decided::Insync => vec![],
            };
            if decided == Decided::Insync {
                progress(Visibility::Note(&format!(
                    "zone {}: Route 53's INSYNC is the proof (dns.propagation = {}); no DNS query",
                    zone.name,
                    self.lookup.strategy().propagation
                )));
                continue;
            }
            for (name, expected) in names {
                let servers = servers.clone();
                let earlier = self
                    .negatives
                    .lock()
                    .ok()
                    .and_then(|n| n.get(&name.to_ascii_lowercase()).copied());
                checks.push(async move {
                    let report = |s: &PropagationStatus| {
                        progress(Visibility::Nameservers {
                            name: &name,
                            status: s,
                        })
                    };
                    match decided {
                        Decided::Resolver => {
                            propagation::await_txt_via_resolver(
                                self.lookup,
                                &name,
                                &expected,
                                propagation_timeout,
                                earlier,
                                |text| progress(Visibility::Note(text)),
                                report,
                            )
                            .await
                        }
                        _ => {
                            propagation::await_txt(
                                self.lookup,
                                &servers,
                                &name,
                                &expected,
                                propagation_timeout,
                                report,
                            )
                            .await
                        }
                    }
                });
            }
        }
        try_join_all(checks).await?;
        let delay = self.lookup.strategy().delay;
        if !delay.is_zero() {
            progress(Visibility::Note(&format!(
                "waiting dns.propagation_delay ({}) before asking the CA",
                crate::progress::human_duration(delay)
            )));
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }

    /// Removes exactly the ledger's values, leaving any other value at the same names.
    /// Returns one message per failure (empty = clean).
    ///
    /// The current set is read from every nameserver, and ours are removed from the set
    /// that holds the most of them. When no nameserver serves any TXT there at all (the run
    /// stopped before its values reached any, or someone removed them), ours are deleted
    /// exactly as this tool writes them on an empty name: Route 53 removes them if that is the
    /// set, answers "not found" if it is gone, and refuses anything else, which is reported.
    /// When nameservers serve other values but none of ours, ours were never written or are
    /// gone, and nothing is sent (a DELETE of ours alone could not match that set anyway).
    pub async fn cleanup(&self, ledger: &Ledger, comment: &str) -> Vec<String> {
        let entries = ledger.entries();
        let mut failures = Vec::new();
        for (zone_id, names) in plan::group_by_zone(&entries) {
            let Some(zone) = self.zones.iter().find(|z| z.id == zone_id).cloned() else {
                continue;
            };
            let mut changes = Vec::new();
            let mut unseen = Vec::new();
            let served = futures::future::join_all(
                names.keys().map(|name| self.served_txt_sets(&zone, name)),
            )
            .await;
            for ((name, ours), served) in names.iter().zip(served) {
                match served {
                    Ok((served, exact)) => match plan::freshest_with_ours(&served, ours) {
                        Some(set) if !exact && set.values.iter().all(|v| ours.contains(v)) => {
                            unseen.push(plan::delete_as_written(name, &set.values));
                        }
                        Some(set) if !exact => {
                            let set = RecordSet {
                                ttl: set.ttl.max(plan::CHALLENGE_TTL),
                                ..set.clone()
                            };
                            changes.extend(plan::remove_txt_values(Some(&set), ours));
                        }
                        Some(set) => changes.extend(plan::remove_txt_values(Some(set), ours)),
                        // A resolver's answer may be an older copy: delete ours as written
                        // (Route 53 refuses that if the set holds other values too).
                        None if served.iter().all(Option::is_none) || !exact => {
                            unseen.push(plan::delete_as_written(name, ours));
                        }
                        None => tracing::debug!(
                            "{name}: the nameservers serve other TXT values but none of ours"
                        ),
                    },
                    Err(e) => failures.push(format!(
                        "could not read `{name}` TXT to remove our values: {e}"
                    )),
                }
            }
            if !changes.is_empty()
                && let Err(e) = self.provider.change(&zone.id, &changes, comment).await
            {
                // The change may have been applied although its answer was lost (and the
                // SDK's retry of a DELETE then fails as "not found"), or another writer
                // removed the values: what counts is whether any of ours is still there.
                let changed: std::collections::BTreeMap<String, Vec<String>> = names
                    .iter()
                    .filter(|(n, _)| changes.iter().any(|c| &c.set.name == *n))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect();
                if self.none_of_ours_left(&zone, &changed).await {
                    tracing::debug!(
                        "the clean-up change failed ({e}), but none of our values is left"
                    );
                } else {
                    failures.push(format!(
                        "could not remove the DNS-01 TXT values at {} in zone {} ({e}); delete \
                         them by hand in the Route 53 console, or run the same command again",
                        changed.keys().cloned().collect::<Vec<_>>().join(", "),
                        zone.name
                    ));
                }
            }
            for delete in unseen {
                let name = delete.set.name.clone();
                tracing::debug!(
                    "no nameserver serves our values at {name} yet: deleting them as written"
                );
                match self.provider.change(&zone.id, &[delete], comment).await {
                    Ok(_) => {}
                    Err(DnsError::Provider { message, .. })
                        if message.contains("but it was not found") =>
                    {
                        tracing::debug!("{name}: our values were already gone ({message})");
                    }
                    Err(e) => failures.push(format!(
                        "could not remove the DNS-01 TXT values at {name} in zone {}: no \
                         nameserver serves them yet, so the set they are in could not be read, \
                         and deleting them as written was refused ({e}); delete them by hand in \
                         the Route 53 console, or run the same command again once the zone's \
                         nameservers have caught up",
                        zone.name
                    )),
                }
            }
        }
        failures
    }

    /// Whether re-reading shows that none of `names`' values of ours is served any more, by
    /// any nameserver.
    async fn none_of_ours_left(
        &self,
        zone: &HostedZone,
        names: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> bool {
        let served =
            futures::future::join_all(names.keys().map(|name| self.served_txt_sets(zone, name)))
                .await;
        for (ours, served) in names.values().zip(served) {
            match served {
                Ok((served, _)) => {
                    if plan::freshest_with_ours(&served, ours).is_some() {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    //! The clean-up's answers from real Route 53 that moto never gives: "not found" for a
    //! set already gone, and a refused DELETE when the set holds someone else's values too.
    use super::*;
    use crate::dns::RecordChange;
    use crate::dns::lookup::Answer;
    use crate::dns::provider::ChangeStatus;
    use async_trait::async_trait;

    /// Every nameserver answers NOERROR with these TXT values at the name (none: all lag
    /// behind Route 53 and the name was empty before).
    struct Lagging(Vec<&'static str>);

    #[async_trait]
    impl DnsLookup for Lagging {
        async fn nameservers(&self, _: &str) -> Result<Vec<Nameserver>, DnsError> {
            Ok(vec![Nameserver {
                name: "ns1".into(),
                addr: "127.0.0.1:53".parse().expect("address"),
            }])
        }
        async fn query(
            &self,
            _: &Nameserver,
            name: &str,
            rtype: RecordType,
        ) -> Result<Answer, DnsError> {
            Ok(Answer {
                rcode: Rcode::NoError,
                authoritative: true,
                negative_ttl: None,
                records: self
                    .0
                    .iter()
                    .map(|v| crate::dns::lookup::AnswerRecord {
                        name: name.to_string(),
                        rtype,
                        ttl: 300,
                        value: v.to_string(),
                    })
                    .collect(),
            })
        }
    }

    /// Answers every change with `refusal` (or accepts it), remembering what was sent.
    struct Route53Answers {
        refusal: Option<&'static str>,
        sent: Mutex<Vec<RecordChange>>,
    }

    #[async_trait]
    impl DnsProvider for Route53Answers {
        async fn hosted_zones(&self) -> Result<Vec<HostedZone>, DnsError> {
            Ok(vec![])
        }
        async fn change(
            &self,
            _: &str,
            changes: &[RecordChange],
            _: &str,
        ) -> Result<ChangeId, DnsError> {
            self.sent.lock().expect("lock").extend_from_slice(changes);
            match self.refusal {
                Some(m) => Err(DnsError::Provider {
                    operation: "ChangeResourceRecordSets",
                    message: m.into(),
                }),
                None => Ok(ChangeId("C1".into())),
            }
        }
        async fn change_status(&self, _: &ChangeId) -> Result<ChangeStatus, DnsError> {
            Ok(ChangeStatus::InSync)
        }
    }

    async fn cleanup_with(refusal: Option<&'static str>) -> (Vec<String>, Vec<RecordChange>) {
        cleanup_seeing(vec![], refusal).await
    }

    async fn cleanup_seeing(
        served: Vec<&'static str>,
        refusal: Option<&'static str>,
    ) -> (Vec<String>, Vec<RecordChange>) {
        let provider = Route53Answers {
            refusal,
            sent: Mutex::new(vec![]),
        };
        let view = DnsView {
            provider: &provider,
            lookup: &Lagging(served),
            zones: vec![HostedZone {
                id: "Z1".into(),
                name: "example.test".into(),
                private: false,
            }],
            ns: Mutex::new(HashMap::new()),
            decided: tokio::sync::Mutex::new(HashMap::new()),
            negatives: Mutex::new(HashMap::new()),
        };
        let ledger = Ledger::from_entries(&[TxtValue {
            zone_id: "Z1".into(),
            name: "_acme-challenge.mqtt.example.test".into(),
            value: "ours".into(),
        }]);
        let failures = view.cleanup(&ledger, "test").await;
        let sent = provider.sent.lock().expect("lock").clone();
        (failures, sent)
    }

    #[tokio::test]
    async fn values_no_nameserver_serves_yet_are_deleted_as_written() {
        let (failures, sent) = cleanup_with(None).await;
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(
            sent,
            [plan::delete_as_written(
                "_acme-challenge.mqtt.example.test",
                &["ours".into()]
            )]
        );
    }

    #[tokio::test]
    async fn other_values_without_ours_are_left_alone() {
        // Ours were never written (stopped before the change went) or are gone: nothing to
        // send, and no false alarm.
        let (failures, sent) = cleanup_seeing(vec!["someone-elses"], None).await;
        assert!(failures.is_empty(), "{failures:?}");
        assert!(sent.is_empty(), "{sent:?}");
        // With ours among them, only ours go.
        let (failures, sent) = cleanup_seeing(vec!["someone-elses", "ours"], None).await;
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].set.values, ["someone-elses"]);
    }

    #[tokio::test]
    async fn values_already_gone_are_not_a_failure() {
        let (failures, sent) = cleanup_with(Some(
            "InvalidChangeBatch: Tried to delete resource record set \
             [name='_acme-challenge.mqtt.example.test.', type='TXT'] but it was not found",
        ))
        .await;
        assert_eq!(sent.len(), 1);
        assert!(failures.is_empty(), "{failures:?}");
    }

    #[tokio::test]
    async fn a_refused_delete_is_reported_with_the_way_out() {
        let (failures, _) = cleanup_with(Some(
            "InvalidChangeBatch: Tried to delete resource record set \
             [name='_acme-challenge.mqtt.example.test.', type='TXT'] but the values provided \
             do not match the current values",
        ))
        .await;
        assert_eq!(failures.len(), 1, "{failures:?}");
        let f = &failures[0];
        for part in [
            "_acme-challenge.mqtt.example.test",
            "example.test",
            "no nameserver serves them yet",
            "do not match",
            "run the same command again",
        ] {
            assert!(f.contains(part), "`{part}` missing: {f}");
        }
    }
}
