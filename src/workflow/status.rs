//! The `status` use case: the facts of every configured certificate — what is stored, when
//! `renew` would renew it and why (the same decision, from the stored state alone), what
//! each deployment target serves now (unless offline), what the broker serves over TLS (when
//! asked), the last run's result and what the CA's lifetimes leave of each target's import
//! window.
//!
//! Owns: gathering those facts; reads only (the store, the renewal state, each target's read
//! API, a TLS handshake). Does not own the decision (`renew::policy`, via
//! `workflow::renew::decide`), does not ask the CA (the ARI window is the one the last
//! `renew` stored), never writes, and does not own their layout (the CLI renders them).

use time::OffsetDateTime;

use super::services::Services;
use super::verify::{VerifyOptions, probe_target};
use crate::config::CertificateSpec;
use crate::deploy::from_config;
use crate::pki::bundle::parse_bundle;
use crate::pki::certificate::Certificate;
use crate::renew::policy::{Decision, Reason};
use crate::renew::state;
use crate::store::Store;

/// What to gather besides what is stored.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusOptions {
    /// Do not contact the deployment targets.
    pub offline: bool,
    /// Also connect to the broker (TLS handshake) and compare what it serves.
    pub probe: bool,
}

/// The facts of every certificate of the services' settings, in order, at the services'
/// clock.
pub async fn status(services: &Services<'_>, opts: &StatusOptions) -> Vec<StatusRow> {
    let now = services.clock().now();
    let mut rows = Vec::new();
    for spec in &services.settings().certificates {
        rows.push(row(services, spec, opts, now).await);
    }
    rows
}

/// What one deployment target serves now.
#[derive(Debug, Clone)]
pub struct Served {
    pub target: String,
    /// `running`, `pending`, `failed`, `files`, `none` (nothing configured), `unknown`
    /// (not contacted or unreadable).
    pub status: String,
    pub expire: Option<OffsetDateTime>,
    /// Whether the target named the time zone of `expire` (EMQX Cloud may not).
    pub expire_zone_known: bool,
    /// Whether what it serves is the stored certificate (by expiry and CN: EMQX Cloud
    /// reports only those); None when unknown.
    pub matches_stored: Option<bool>,
    pub error: Option<String>,
}

/// One certificate's facts.
#[derive(Debug, Clone)]
pub struct StatusRow {
    pub name: String,
    pub domains: Vec<String>,
    pub key_type: String,
    pub serial: Option<String>,
    pub not_after: Option<OffsetDateTime>,
    pub days_left: Option<i64>,
    /// `now`, or when it becomes due.
    pub next_renewal: Option<OffsetDateTime>,
    /// `missing`, `expired`, `ari_window`, `lifetime`, `backoff`, `import_impossible`.
    pub next_reason: &'static str,
    pub renew_now: bool,
    pub deployments: Vec<Served>,
    pub last_result: &'static str,
    pub last_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub failures: u32,
    /// What fresh certificates from the configured CA leave of each target's import window.
    pub import_notes: Vec<String>,
}

fn reason_word(r: &Reason) -> &'static str {
    match r {
        Reason::Forced => "forced",
        Reason::Missing => "missing",
        Reason::Expired => "expired",
        Reason::AriWindow => "ari_window",
        Reason::Lifetime => "lifetime",
    }
}

fn read_leaf(store: &Store, name: &str) -> Option<Certificate> {
    let text = store.read_live(name, "cert.pem").ok()??;
    parse_bundle(text.as_bytes())
        .ok()?
        .certificates
        .into_iter()
        .next()
}

/// What the broker serves over TLS, per transport (`--probe`).
async fn probe_served(
    services: &Services<'_>,
    spec: &CertificateSpec,
    leaf: Option<&Certificate>,
) -> Vec<Served> {
    let settings = services.settings();
    let opts = VerifyOptions::default();
    let target = match probe_target(settings, spec, &opts) {
        Ok(Some(t)) => t,
        Ok(None) => return Vec::new(),
        Err(e) => {
            return vec![Served {
                target: "TLS probe".into(),
                status: "unknown".into(),
                expire: None,
                expire_zone_known: true,
                matches_stored: None,
                error: Some(e.to_string()),
            }];
        }
    };
    match services.probe().probe(&target).await {
        Ok(report) => report
            .transports
            .iter()
            .map(|t| {
                let cert = t.server_certificate.as_ref();
                Served {
                    target: format!("TLS probe {} {}", t.transport, t.url),
                    status: if cert.is_some() { "tls" } else { "unknown" }.into(),
                    expire: cert.and_then(|c| c.not_after),
                    expire_zone_known: true,
                    matches_stored: cert.map(|c| {
                        leaf.is_some_and(|l| c.serial_hex.eq_ignore_ascii_case(l.serial_hex()))
                    }),
                    error: if cert.is_none() {
                        t.outcome.as_ref().err().map(|e| e.to_string())
                    } else {
                        None
                    },
                }
            })
            .collect(),
        Err(e) => vec![Served {
            target: "TLS probe".into(),
            status: "unknown".into(),
            expire: None,
            expire_zone_known: true,
            matches_stored: None,
            error: Some(e.to_string()),
        }],
    }
}

async fn row(
    services: &Services<'_>,
    spec: &CertificateSpec,
    opts: &StatusOptions,
    now: OffsetDateTime,
) -> StatusRow {
    let settings = services.settings();
    let offline = opts.offline;
    let store = Store::new(&settings.state_dir);
    let leaf = read_leaf(&store, &spec.name);
    let (st, _warning) = state::load(&settings.state_dir.join("renewal"), &spec.name);
    let mut deployments = Vec::new();
    let mut min_days_left = None;
    let mut import_notes = Vec::new();
    match from_config::targets(spec) {
        Ok(targets) => {
            min_days_left = targets.iter().map(|t| t.rules().min_days_left).max();
            let windows: Vec<(String, i64)> = targets
                .iter()
                .map(|t| (t.describe(), t.rules().min_days_left))
                .collect();
            import_notes = crate::acme::lifetime::notes(&settings.acme, &windows, now.date());
            for t in &targets {
                let mut s = Served {
                    target: t.describe(),
                    status: "unknown".into(),
                    expire: None,
                    expire_zone_known: true,
                    matches_stored: None,
                    error: None,
                };
                if !offline {
                    match t.current().await {
                        Ok(Some(c)) => {
                            s.matches_stored = match &leaf {
                                Some(l) => c.names_leaf(l),
                                None => Some(false),
                            };
                            // The stored certificate's own expiry when it is the one served
                            // (the reported one may be in an unnamed time zone).
                            s.expire = match (&leaf, s.matches_stored) {
                                (Some(l), Some(true)) => Some(l.not_after()),
                                _ => c.expire.map(|e| e.at),
                            };
                            s.expire_zone_known = s.matches_stored == Some(true)
                                || c.expire.is_none_or(|e| e.slack.is_zero());
                            s.status = c.status;
                        }
                        Ok(None) => {
                            s.status = "none".into();
                            s.matches_stored = Some(false);
                        }
                        Err(e) => s.error = Some(e.to_string()),
                    }
                }
                deployments.push(s);
            }
        }
        Err(e) => deployments.push(Served {
            target: "(configuration)".into(),
            status: "unknown".into(),
            expire: None,
            expire_zone_known: true,
            matches_stored: None,
            error: Some(e.to_string()),
        }),
    }
    if opts.probe {
        deployments.extend(probe_served(services, spec, leaf.as_ref()).await);
    }
    let d = super::renew::decide::from_stored(settings, leaf.as_ref(), &st, min_days_left, now);
    let (next_renewal, next_reason, renew_now) = match &d {
        Decision::Renew(r) => (Some(now), reason_word(r), true),
        Decision::NotDue { next, by } => (Some(*next), reason_word(by), false),
        Decision::Backoff { until, .. } => (Some(*until), "backoff", false),
        Decision::ImportImpossible { .. } => (None, "import_impossible", false),
    };
    let (last_result, last_at) = match (st.failures, st.last_failure, st.last_success) {
        (n, Some(t), _) if n > 0 => ("failed", Some(t)),
        (_, _, Some(t)) => ("ok", Some(t)),
        _ => ("never", None),
    };
    StatusRow {
        name: spec.name.clone(),
        domains: spec.domains.iter().map(|d| d.to_string()).collect(),
        key_type: spec.key_type.to_string(),
        serial: leaf.as_ref().map(|l| l.serial_hex().to_string()),
        not_after: leaf.as_ref().map(|l| l.not_after()),
        days_left: leaf.as_ref().map(|l| (l.not_after() - now).whole_days()),
        next_renewal,
        next_reason,
        renew_now,
        deployments,
        last_result,
        last_at,
        last_error: if last_result == "failed" {
            st.last_error.clone()
        } else {
            None
        },
        failures: st.failures,
        import_notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::workflow::test_fakes::*;

    #[tokio::test]
    async fn status_reads_what_is_stored_and_served_and_contacts_nothing_offline() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = settings(dir.path());
        let clock = FixedClock(now());
        store_deployed(&settings, clock.0);
        let probe = FakeProbe::new(true);
        let services = Services::new(&settings)
            .with_probe(Box::new(probe))
            .with_clock(&clock);

        // Offline: the stored facts and renew's decision, no target read, no probe.
        let offline = StatusOptions {
            offline: true,
            probe: false,
        };
        let rows = status(&services, &offline).await;
        let [row] = &rows[..] else {
            panic!("one row: {rows:?}")
        };
        assert_eq!(row.not_after, Some(clock.0 + time::Duration::days(60)));
        assert_eq!(row.days_left, Some(60));
        assert_eq!(
            (row.next_reason, row.next_renewal, row.renew_now),
            ("lifetime", Some(clock.0 + time::Duration::days(30)), false)
        );
        assert_eq!(row.last_result, "ok");
        assert_eq!(row.deployments.len(), 1);
        assert_eq!(row.deployments[0].status, "unknown", "not contacted");

        // The files target is read, it serves nothing yet; the broker is probed.
        let online = StatusOptions {
            offline: false,
            probe: true,
        };
        let rows = status(&services, &online).await;
        let served: Vec<_> = rows[0]
            .deployments
            .iter()
            .map(|d| (d.status.as_str(), d.matches_stored))
            .collect();
        assert_eq!(served, [("none", Some(false)), ("unknown", None)]);
        assert_eq!(probe.probes.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
