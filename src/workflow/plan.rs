//! The `plan` use case (and `issue --dry-run`): every DNS change, ACME call and deployment
//! call `issue` would make for a certificate, read but not done ([`plan_certificate`]); and
//! the parts `renew --dry-run` shares: what is at the custom domain and the CNAME change a
//! run would make, what each deployment target serves and the calls a deployment would make.
//!
//! Owns: those listings (as [`Step`]s), from a read-only walk (hosted zones, records through
//! the zone's nameservers, the stored ACME account, each deployment's state). Does not own
//! printing them (`cli::plan`) nor any writing call: no ChangeResourceRecordSets, no ACME
//! request, no POST/PUT, no file written.

use crate::config::CertificateSpec;
use crate::deploy::from_config;
use crate::dns::plan::{CnamePlan, plan_cname};
use crate::dns::{ChangeAction, RecordType};
use crate::error::Error;
use crate::store::Store;
use crate::workflow::challenge_records::DnsView;
use crate::workflow::services::Services;

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

/// The choices of `plan` (and `issue --dry-run`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// `--force`: replace a CNAME that points elsewhere.
    pub force: bool,
    /// `--force-renewal` or `--new-key`: order even where the stored certificate is kept.
    pub order_anyway: bool,
}

/// Every call `issue` would make for `spec`, read but not done: the CNAME and TXT changes,
/// the ACME requests, the deployment and the verification; or only the last two when the
/// stored certificate is kept. On an error, the steps planned so far come with it.
pub async fn plan_certificate(
    services: &Services<'_>,
    view: &DnsView<'_>,
    spec: &CertificateSpec,
    opts: &PlanOptions,
) -> Result<Vec<Step>, (Vec<Step>, Error)> {
    let settings = services.settings();
    let force = opts.force;
    let mut steps = Vec::new();
    // Not due: `issue` orders nothing, touches no DNS, and only deploys where not served.
    let store = Store::new(&settings.state_dir);
    let now = services.clock().now();
    if !opts.order_anyway
        && let Ok((leaf, keep)) = crate::workflow::keep::keepable(settings, spec, &store, now)
    {
        steps.push(step(
            "acme",
            "keep",
            format!(
                "the stored certificate (serial {}) is not due for renewal until {}: `issue` keeps it and orders nothing (`--force-renewal` orders anyway)",
                leaf.serial_hex(),
                when(keep.due)
            ),
        ));
        return deploy_and_verify_steps(services, spec, steps).await;
    }
    macro_rules! tryp {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Err((steps, e.into())),
            }
        };
    }
    steps.push(step("dns", "read", "ListHostedZones"));

    // CNAME.
    match cname_steps(view, spec, force).await {
        Ok(mut c) => steps.append(&mut c),
        Err((mut c, e)) => {
            steps.append(&mut c);
            return Err((steps, e));
        }
    }

    // Challenge names and where their TXT goes.
    let targets = tryp!(view.challenge_targets(spec).await);
    for (challenge, zone, target) in &targets {
        let delegated = if target != challenge {
            format!(" (delegated from {challenge})")
        } else {
            String::new()
        };
        steps.push(step(
            "dns",
            "write",
            format!(
                "ChangeResourceRecordSets zone {}: UPSERT {target} TXT (one value per authorization, values kept){delegated}",
                zone.id
            ),
        ));
    }
    let mut zones: Vec<&crate::dns::HostedZone> = targets.iter().map(|(_, z, _)| z).collect();
    zones.sort_by(|a, b| a.id.cmp(&b.id));
    zones.dedup_by(|a, b| a.id == b.id);
    for z in &zones {
        let ns = match view.nameservers(z).await {
            Ok(ns) => ns
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => format!("(cannot list them now: {e})"),
        };
        steps.push(step(
            "dns",
            "wait",
            format!(
                "GetChange until INSYNC, then every nameserver of {} serves the values: {ns}",
                z.name
            ),
        ));
    }
    for (_, zone, target) in &targets {
        steps.push(step(
            "dns",
            "write",
            format!(
                "ChangeResourceRecordSets zone {}: DELETE this run's values at {target} TXT (after validation, or on failure)",
                zone.id
            ),
        ));
    }

    // ACME.
    let dir = &settings.acme.directory;
    steps.push(step("acme", "read", format!("GET {dir} (directory)")));
    match tryp!(store.load_account(dir)) {
        Some(_) => steps.push(step(
            "acme",
            "call",
            format!("use the account stored in {}", store.root().display()),
        )),
        None => steps.push(step(
            "acme",
            "write",
            format!(
                "newAccount{}{}{}",
                settings
                    .acme
                    .email
                    .as_deref()
                    .map(|e| format!(" (contact {e})"))
                    .unwrap_or_default(),
                if settings.acme.agree_tos {
                    ", terms of service agreed"
                } else {
                    ", terms NOT agreed"
                },
                if settings.acme.eab.is_some() {
                    ", with External Account Binding"
                } else {
                    ""
                }
            ),
        )),
    }
    // Without an account and without agreement `issue` stops here (exit 2): so does the plan.
    if !settings.acme.agree_tos && tryp!(store.load_account(dir)).is_none() {
        return Err((
            steps,
            Error::Acme(crate::acme::AcmeError::TermsNotAgreed {
                directory: dir.clone(),
                tos: None,
            }),
        ));
    }
    let names = spec
        .domains
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    steps.push(step("acme", "write", format!("newOrder for {names}")));
    steps.push(step(
        "acme",
        "read",
        format!(
            "{} authorization(s), answered with dns-01",
            spec.domains.len()
        ),
    ));
    steps.push(step(
        "acme",
        "write",
        "respond to each challenge, poll the order until ready",
    ));
    steps.push(step(
        "acme",
        "write",
        format!(
            "finalize with a CSR for {}, download the certificate{}",
            if spec.reuse_key {
                format!(
                    "the stored {} key (reuse_key; a new one if none is stored)",
                    spec.key_type
                )
            } else {
                format!("a new {} key", spec.key_type)
            },
            settings
                .acme
                .preferred_chain
                .as_deref()
                .map(|c| format!(" (preferring the chain issued by `{c}`)"))
                .unwrap_or_default()
        ),
    ));
    steps.push(step(
        "acme",
        "local",
        format!(
            "write {}/{{cert,chain,fullchain,privkey,root}}.pem",
            store.live_dir(&spec.name).display()
        ),
    ));

    deploy_and_verify_steps(services, spec, steps).await
}

/// The deployment and verification part of the plan (also all of it when the stored
/// certificate is kept).
async fn deploy_and_verify_steps(
    services: &Services<'_>,
    spec: &CertificateSpec,
    mut steps: Vec<Step>,
) -> Result<Vec<Step>, (Vec<Step>, Error)> {
    let settings = services.settings();
    macro_rules! tryp {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Err((steps, e.into())),
            }
        };
    }
    // Deployment.
    let deploy_targets = tryp!(from_config::targets(spec));
    if deploy_targets.is_empty() {
        steps.push(step("deploy", "skip", "no deployment target configured"));
    }
    let windows: Vec<(String, i64)> = deploy_targets
        .iter()
        .map(|t| (t.describe(), t.rules().min_days_left))
        .collect();
    let today = services.clock().now().date();
    for n in crate::acme::lifetime::notes(&settings.acme, &windows, today) {
        steps.push(step("deploy", "note", n));
    }
    steps.extend(deploy_steps(&deploy_targets).await);

    // Verification.
    if !deploy_targets.is_empty() && crate::workflow::verify::wanted_after_deploy(spec) {
        match crate::workflow::verify::probe_target(settings, spec, &Default::default()) {
            Ok(Some(t)) => {
                let addr = t
                    .connect_addr
                    .map(|a| format!(" at {a}"))
                    .unwrap_or_default();
                for tr in &t.transports {
                    let port = match tr {
                        crate::verify::Transport::Mqtts => t.mqtts_port,
                        crate::verify::Transport::Wss => t.wss_port,
                    };
                    steps.push(step(
                        "verify",
                        "read",
                        format!(
                            "{tr} {}:{port}{addr}: TLS handshake, subscribe/publish/receive, expect the new certificate",
                            t.host
                        ),
                    ));
                }
            }
            Ok(None) => steps.push(step("verify", "skip", "switched off (`skip = true`)")),
            Err(e) => return Err((steps, e)),
        }
    }
    Ok(steps)
}

/// A time as the plan says it: `2026-02-21 10:00:00 UTC`.
fn when(t: time::OffsetDateTime) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&fmt).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod plan_tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::workflow::test_fakes::*;

    #[tokio::test]
    async fn a_kept_certificate_plans_no_dns_and_no_acme_only_its_deployment() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = settings(dir.path());
        let clock = FixedClock(now());
        let fingerprint = store_certificate(&settings, clock.0);
        // Issued by the configured CA: `issue` would keep it.
        let renewal = settings.state_dir.join("renewal");
        let (mut st, _) = crate::renew::state::load(&renewal, "broker");
        st.record_issuer(&fingerprint, &settings.acme);
        crate::renew::state::save(&renewal, "broker", &st).expect("state");
        let zone = MemoryZone::with(vec![]);
        let services = Services::new(&settings)
            .with_dns(Box::new(zone))
            .with_lookup(Box::new(OfflineLookup))
            .with_clock(&clock);
        let view = DnsView::new(services.route53().await, services.lookup())
            .await
            .expect("view");
        let steps = plan_certificate(
            &services,
            &view,
            &settings.certificates[0],
            &PlanOptions::default(),
        )
        .await
        .expect("plan");
        assert_eq!((steps[0].section, steps[0].kind), ("acme", "keep"));
        assert!(
            steps[0]
                .text
                .contains(&when(clock.0 + time::Duration::days(30))),
            "{steps:#?}"
        );
        assert!(
            steps
                .iter()
                .all(|s| s.section != "dns" && !(s.section == "acme" && s.kind == "write")),
            "{steps:#?}"
        );
        assert!(steps.iter().any(|s| s.section == "deploy"), "{steps:#?}");

        // --force-renewal: the order is planned, with its TXT change.
        let anyway = PlanOptions {
            force: false,
            order_anyway: true,
        };
        let steps = plan_certificate(&services, &view, &settings.certificates[0], &anyway)
            .await
            .expect("plan");
        assert!(
            steps
                .iter()
                .any(|s| s.section == "acme" && s.text.starts_with("newOrder")),
            "{steps:#?}"
        );
        assert_eq!(
            zone.changes.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "nothing written"
        );
    }
}
