//! `brokercert issue`: wires the real adapters to the workflow and prints the outcome.

use super::output;
use super::progress_display::Renderer;
use super::{Cli, IssueArgs};
use crate::acme::client::AcmeClient;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::deploy::from_config;
use crate::dns::lookup::WireLookup;
use crate::dns::route53::{Route53, Route53Settings};
use crate::error::{Error, exit};
use crate::pki::anchors::TrustAnchors;
use crate::pki::certificate::Certificate;
use crate::renew::journal::{Journal, TxtJournal};
use crate::renew::keep::{Keep, OrderBecause, Wanted};
use crate::renew::policy::{AriChoice, Reason};
use crate::renew::state;
use crate::store::Store;
use crate::workflow::issue::{IssueOptions, timings_table};
use crate::workflow::{IssueServices, issue};

/// Builds the trust anchors from settings: bundled, system (optional), extra files.
pub fn load_anchors(settings: &Settings) -> Result<TrustAnchors, Error> {
    let mut anchors = TrustAnchors::bundled();
    if settings.system_roots {
        anchors = anchors.with_system();
    }
    for p in &settings.extra_roots {
        let text = crate::bounded_read::read_text(p, crate::bounded_read::MAX_PEM_FILE).map_err(|e| {
            Error::Certificate(format!(
                "cannot read the extra trust root `{}` (setting `trust.extra_roots`, flag `--trust-root`): {e}",
                p.display()
            ))
        })?;
        anchors.add_extra_pem(text.as_bytes()).map_err(|e| {
            Error::Certificate(format!(
                "`{}` (setting `trust.extra_roots`) is not a PEM root certificate: {e}",
                p.display()
            ))
        })?;
    }
    Ok(anchors)
}

pub async fn run(cli: &Cli, args: &IssueArgs) -> i32 {
    if args.dry_run {
        return super::plan::run_for_issue(cli, args).await;
    }
    output::set_json(args.json);
    let over = args.overrides(cli.state_dir.clone());
    let settings = match Settings::load(cli.config.as_deref(), &over) {
        Ok(s) => s,
        Err(e) => {
            output::error(&e.to_string());
            return exit::CONFIG;
        }
    };
    if settings.certificates.is_empty() {
        output::error(
            "no certificate to issue: the configuration has no `[[certificate]]` section and no \
             `--domain` was given. Add one, e.g. `brokercert issue --domain mqtt.example.com`",
        );
        return exit::CONFIG;
    }
    // Everything checkable without the network, before the first side effect.
    if let Err(code) = super::preflight::check_all(&settings) {
        return code;
    }
    // A new key for the first certificate that will be ordered starts now, beside the
    // connections to Route 53 and the CA below (`keys_ahead`); the loop decides again.
    let first_ordered = settings.certificates.iter().find(|spec| {
        args.force_renewal
            || args.new_key
            || keepable(
                &settings,
                spec,
                &Store::new(&settings.state_dir),
                SystemClock.now(),
            )
            .is_err()
    });
    if let Some(spec) = first_ordered
        && (!spec.reuse_key || args.new_key)
    {
        crate::workflow::keys_ahead::prefetch(spec.key_type);
    }
    let anchors = match load_anchors(&settings) {
        Ok(a) => a,
        Err(e) => {
            output::error(&e.to_string());
            return exit::CONFIG;
        }
    };
    let _lock = match super::lock_state(cli, &settings.state_dir, args.wait, "issue").await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let store = Store::new(&settings.state_dir);
    // The CA is asked only when a certificate is ordered: a run that keeps every stored
    // certificate makes no ACME request at all. When one will be ordered, the CA's
    // directory (and TLS handshake) is fetched beside Route 53's set-up; a failure there is
    // reported by the loop, which connects again.
    let ca_cell: tokio::sync::OnceCell<AcmeClient> = tokio::sync::OnceCell::new();
    let route53_settings = Route53Settings {
        endpoint_url: settings.dns.route53_endpoint.clone(),
        profile: settings.dns.route53_profile.clone(),
        region: settings.dns.route53_region.clone(),
        max_attempts: settings.dns.route53_max_attempts,
        read_records: settings.dns.route53_read_records,
    };
    let (route53, _) = tokio::join!(Route53::connect(&route53_settings), async {
        if first_ordered.is_some() {
            let _ = ca_cell
                .get_or_try_init(|| AcmeClient::connect(&settings.acme, &store))
                .await;
        }
    });
    let lookup = WireLookup::new(settings.dns.nameservers.clone(), settings.dns.resolver)
        .with_strategy(settings.dns.strategy);
    let clock = SystemClock;
    let renderer = Renderer::shared(cli.quiet, cli.verbose);
    let opts = IssueOptions {
        force: args.force,
        preferred_chain: settings.acme.preferred_chain.clone(),
        change_timeout: settings.dns.change_timeout,
        propagation_timeout: settings.dns.propagation_timeout,
        replaces: None,
        resume: None,
        new_key: args.new_key,
    };
    let mut code = exit::OK;
    for spec in &settings.certificates {
        let started = std::time::Instant::now();
        if !args.force_renewal && !args.new_key {
            match keepable(&settings, spec, &store, clock.now()) {
                Ok((leaf, keep)) => {
                    let this =
                        keep_stored(&settings, spec, &store, &leaf, &keep, args, &renderer).await;
                    if this != exit::OK && code == exit::OK {
                        code = this;
                    }
                    continue;
                }
                Err(why) => tracing::info!("`{}`: ordering a new certificate: {why}", spec.name),
            }
        }
        let ca = match ca_cell
            .get_or_try_init(|| AcmeClient::connect(&settings.acme, &store))
            .await
        {
            Ok(ca) => ca,
            Err(e) => {
                let failed = output::fail(e);
                return if code == exit::OK { failed } else { code };
            }
        };
        // TXT values only: one a failed clean-up leaves is removed by the next run.
        let journal = match Journal::open(&settings.state_dir.join("renewal"), &spec.name) {
            Ok(j) => j,
            Err(e) => {
                let failed = output::fail(e);
                if code == exit::OK {
                    code = failed;
                }
                continue;
            }
        };
        let txt_journal = TxtJournal(&journal);
        let progress = renderer.certificate(&spec.name);
        let svc = IssueServices {
            dns: &route53,
            lookup: &lookup,
            ca,
            store: &store,
            clock: &clock,
            anchors: &anchors,
            progress: &progress,
            journal: Some(&txt_journal),
        };
        let (this, json) = match issue(&svc, spec, &opts, super::shutdown_signal()).await {
            Ok(issued) => {
                output::say(output::issued_summary(&issued, clock.now()).trim_end());
                for w in &issued.cleanup_warnings {
                    output::warning(w);
                }
                record_issuer(&settings, spec, &issued.fingerprint);
                let mut after_timings = Vec::new();
                let mut api_usage = Vec::new();
                let after = super::after_issue::deploy_and_verify(
                    &settings,
                    spec,
                    &issued.paths.live_dir,
                    &mut after_timings,
                    &mut api_usage,
                    &progress,
                    false,
                )
                .await;
                if args.timings {
                    output::say(&timings_table(
                        &issued.timings,
                        &after_timings,
                        started.elapsed(),
                    ));
                    if let Some(t) = super::deploy::api_usage_table(&api_usage) {
                        output::say(&t);
                    }
                }
                (after, issued_json(&issued, after, None))
            }
            Err(failure) => {
                output::error(&format!("`{}`: {}", spec.name, failure.error));
                if let Error::Acme(crate::acme::AcmeError::RateLimited {
                    until: Some(until), ..
                }) = &failure.error
                {
                    super::after_issue::record_rate_limit(&settings, spec, *until, &failure.error);
                }
                for c in &failure.cleanup {
                    output::error(&format!("clean-up after the failure also failed: {c}"));
                }
                if failure.cleanup.is_empty() && !matches!(failure.error, Error::Config(_)) {
                    eprintln!(
                        "  (stage: {}; no DNS-01 record and no partial file was left behind)",
                        failure.stage
                    );
                }
                let c = failure.error.exit_code();
                let json = serde_json::json!({
                    "name": spec.name,
                    "ok": false,
                    "domains": spec.domains.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                    "serial": null,
                    "not_after": null,
                    "key_type": spec.key_type.to_string(),
                    "key_reused": false,
                    "live_dir": null,
                    "action": null,
                    "stage": failure.stage.as_str(),
                    "error": failure.error.to_string(),
                    "exit_code": c,
                });
                if matches!(failure.error, Error::Interrupted) {
                    emit(args.json, json);
                    if code == exit::OK {
                        code = c;
                    }
                    break;
                }
                (c, json)
            }
        };
        emit(args.json, json);
        if this != exit::OK && code == exit::OK {
            code = this;
        }
    }
    code
}

fn emit(on: bool, v: serde_json::Value) {
    if on && let serde_json::Value::Object(fields) = v {
        output::emit_json("issue", fields);
    }
}

/// The `issue` JSON object of a stored certificate (docs/json.md).
fn issued_json(i: &crate::workflow::Issued, code: i32, error: Option<String>) -> serde_json::Value {
    serde_json::json!({
        "name": i.name,
        "ok": code == exit::OK,
        "domains": i.domains,
        "serial": i.serial,
        "not_after": output::rfc3339(i.not_after),
        "key_type": i.key_type.to_string(),
        "key_reused": i.key_reused,
        "live_dir": i.paths.live_dir.display().to_string(),
        "action": "issued",
        "stage": null,
        "error": error.or_else(|| (code != exit::OK).then(|| "deployment or verification failed (see stderr)".to_string())),
        "exit_code": code,
    })
}

/// The stored certificate of `spec` and when it becomes due, when `issue` may keep it (see
/// `renew::keep`); else why a new one is ordered.
pub(super) fn keepable(
    settings: &Settings,
    spec: &crate::config::CertificateSpec,
    store: &Store,
    now: time::OffsetDateTime,
) -> Result<(Certificate, Keep), OrderBecause> {
    let leaf = super::renew::read_live(store, &spec.name).ok().flatten();
    let Some(leaf) = leaf else {
        return Err(OrderBecause::NothingStored);
    };
    let (st, _) = state::load(&settings.state_dir.join("renewal"), &spec.name);
    let fp = leaf.sha256_fingerprint();
    let ari = st
        .ari
        .as_ref()
        .filter(|r| r.fingerprint == fp)
        .map(|r| AriChoice {
            start: r.start,
            end: r.end,
            chosen: r.chosen,
        });
    // Targets whose settings are broken are reported by the deployment (or, before any
    // order, by the checks); here they only lack an import window.
    let import_min_days_left = from_config::targets(spec)
        .ok()
        .and_then(|t| t.iter().map(|t| t.rules().min_days_left).max());
    let keep = crate::renew::keep::keep_stored(
        Some(&leaf),
        &Wanted {
            domains: &spec.domains,
            key_type: spec.key_type,
            directory: &settings.acme.directory,
            issued_by: st.issuer_of(fp),
            profile: settings.acme.profile.as_deref(),
            issued_profile: st.profile_of(fp),
            now,
            assumed_lifetime: settings.renew.assumed_lifetime,
            import_min_days_left,
            ari,
        },
    )?;
    Ok((leaf, keep))
}

/// `issue` on a certificate that is not due: no order; the stored certificate is deployed
/// where it is not served yet (no write where it is) and verified. Returns the exit code.
async fn keep_stored(
    settings: &Settings,
    spec: &crate::config::CertificateSpec,
    store: &Store,
    leaf: &Certificate,
    keep: &Keep,
    args: &IssueArgs,
    renderer: &std::sync::Arc<Renderer>,
) -> i32 {
    let now = SystemClock.now();
    let live_dir = store.live_dir(&spec.name);
    output::say(&format!(
        "Kept certificate `{}` for {}: not due for renewal until {} ({}); no order placed\n  serial       {}\n  not after    {} ({} days left)\n  files        {}\n  `{}` orders a new one anyway",
        spec.name,
        spec.domains
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        output::date(keep.due),
        match keep.by {
            Reason::AriWindow => "the CA's renewal window",
            _ => "1/3 of the lifetime left",
        },
        leaf.serial_hex(),
        output::date(leaf.not_after()),
        (leaf.not_after() - now).whole_days(),
        live_dir.display(),
        crate::hint::command(&format!("issue --name {} --force-renewal", spec.name))
    ));
    let progress = renderer.certificate(&spec.name);
    let mut timings = Vec::new();
    let mut api_usage = Vec::new();
    let code = super::after_issue::deploy_and_verify(
        settings,
        spec,
        &live_dir,
        &mut timings,
        &mut api_usage,
        &progress,
        true,
    )
    .await;
    emit(
        args.json,
        serde_json::json!({
            "name": spec.name,
            "ok": code == exit::OK,
            "domains": leaf.dns_names(),
            "serial": leaf.serial_hex(),
            "not_after": output::rfc3339(leaf.not_after()),
            "key_type": spec.key_type.to_string(),
            "key_reused": false,
            "live_dir": live_dir.display().to_string(),
            "action": "kept",
            "stage": null,
            "error": (code != exit::OK).then_some("deployment or verification failed (see stderr)"),
            "exit_code": code,
        }),
    );
    code
}

/// Remembers which CA issued the certificate now stored for `spec`, so that a later `issue`
/// keeps it only for the same CA. Best effort: without it, the next `issue` orders again.
fn record_issuer(settings: &Settings, spec: &crate::config::CertificateSpec, fingerprint: &str) {
    let dir = settings.state_dir.join("renewal");
    let (mut st, _) = state::load(&dir, &spec.name);
    st.record_issuer(fingerprint, &settings.acme);
    // A new certificate is a success `status` shows (LAST RUN) and ends renew's backoff.
    st.last_success = Some(SystemClock.now());
    st.failures = 0;
    st.last_failure = None;
    st.last_error = None;
    st.last_code = None;
    if let Err(e) = state::save(&dir, &spec.name, &st) {
        output::warning(&format!("cannot save the renewal state: {e}"));
    }
}
