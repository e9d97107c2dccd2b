//! `brokercert issue`: wires the real adapters to the workflow and prints the outcome; then
//! deploys and verifies the stored certificate (`workflow::deploy::deploy_and_verify`). A
//! failure there leaves the new certificate stored and the previous one served where the
//! target allows; the message says what to run next. (`issue --dry-run` is `plan`.)

use super::output;
use super::progress_display::CertProgress;
use super::progress_display::Renderer;
use super::{Cli, IssueArgs};
use crate::clock::{Clock, SystemClock};
use crate::config::CertificateSpec;
use crate::config::Settings;
use crate::deploy::Material;
use crate::deploy::from_config;
use crate::error::{Error, exit};
use crate::pki::certificate::Certificate;
use crate::progress::Stage;
use crate::renew::journal::{Journal, TxtJournal};
use crate::renew::keep::Keep;
use crate::renew::policy::Reason;
use crate::renew::state;
use crate::store::Store;
use crate::workflow::deploy::deploy_and_verify as deploy_then_verify;
use crate::workflow::issue::{IssueOptions, timings_table};
use crate::workflow::keep::keepable;
use crate::workflow::lease_turn;
use crate::workflow::preflight::load_anchors;
use crate::workflow::preflight::{check, check_run};
use crate::workflow::services::Services;
use crate::workflow::{IssueServices, issue};
use std::path::Path;
use std::time::Duration;

pub async fn run(cli: &Cli, args: &IssueArgs) -> i32 {
    output::set_json(args.json);
    let over = args.overrides(cli.state_dir.clone());
    let settings = match super::common::load(cli.config.as_deref(), &over) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if settings.certificates.is_empty() {
        output::error(
            "no certificate to issue: the configuration has no `[[certificate]]` section and no \
             `--domain` was given. Add one, e.g. `brokercert issue --domain mqtt.example.com`",
        );
        return exit::CONFIG;
    }
    // Everything checkable without the network, before the first side effect.
    if let Err(code) = check_all(&settings) {
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
    if let Err(code) = super::state_backend::attach(&settings) {
        return code;
    }
    let store = Store::new(&settings.state_dir);
    // The CA is asked only when a certificate is ordered: a run that keeps every stored
    // certificate makes no ACME request at all. When one will be ordered, the CA's
    // directory (and TLS handshake) is fetched beside Route 53's set-up; a failure there is
    // reported by the loop, which connects again.
    let services = Services::new(&settings);
    let (route53, _) = tokio::join!(services.route53(), async {
        if first_ordered.is_some() {
            let _ = services.ca().await;
        }
    });
    let lookup = services.lookup();
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
                        keep_stored(&services, spec, &store, &leaf, &keep, args, &renderer).await;
                    if this != exit::OK && code == exit::OK {
                        code = this;
                    }
                    continue;
                }
                Err(why) => tracing::info!("`{}`: ordering a new certificate: {why}", spec.name),
            }
        }
        // State in S3: this certificate's leases while it is ordered (see `workflow::lease_turn`).
        let say = |m: &str| eprintln!("{m}");
        let _lease = match lease_turn::lease_certificate(&settings, spec, "issue", &say) {
            Ok(lease_turn::Turn::Go(l)) => l,
            Ok(lease_turn::Turn::Skip(message)) => {
                output::error(&format!("{}: {message}", spec.name));
                code = exit::STORE;
                continue;
            }
            Err(e) => {
                let failed = output::fail(e);
                if code == exit::OK {
                    code = failed;
                }
                continue;
            }
        };
        let ca = match services.ca().await {
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
            dns: route53,
            lookup,
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
                let after = deploy_and_verify(
                    &services,
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
                    if let Some(t) = super::render::api_usage_table(&api_usage) {
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
                    super::common::record_rate_limit(&settings, spec, *until, &failure.error);
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

/// `issue` on a certificate that is not due: no order; the stored certificate is deployed
/// where it is not served yet (no write where it is) and verified. Returns the exit code.
async fn keep_stored(
    services: &Services<'_>,
    spec: &crate::config::CertificateSpec,
    store: &Store,
    leaf: &Certificate,
    keep: &Keep,
    args: &IssueArgs,
    renderer: &std::sync::Arc<Renderer>,
) -> i32 {
    let now = services.clock().now();
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
    let code = deploy_and_verify(
        services,
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

/// Deploys (and verifies) a freshly stored certificate; returns an exit code. The time
/// each of the two steps took is pushed to `timings`, and each target's API requests to
/// `api_usage` (for `--timings`). `kept`: the stored certificate was kept (not a new one), so
/// a target that already serves it gets no write.
pub async fn deploy_and_verify(
    services: &Services<'_>,
    spec: &CertificateSpec,
    live_dir: &Path,
    timings: &mut Vec<(&'static str, Duration)>,
    api_usage: &mut Vec<String>,
    progress: &CertProgress,
    kept: bool,
) -> i32 {
    if spec.deploy.is_empty() {
        return exit::OK;
    }
    let settings = services.settings();
    let fail = |e: Error| {
        output::error(&format!(
            "`{}`: {e}. The {} certificate is stored in {}; after fixing this, run `{}`",
            spec.name,
            if kept { "current" } else { "new" },
            live_dir.display(),
            crate::hint::command(&format!("deploy {}", spec.name))
        ));
        e.exit_code()
    };
    let material = match Material::from_dir(live_dir) {
        Ok(m) => m,
        Err(e) => return fail(e.into()),
    };
    let targets = match from_config::targets(spec) {
        Ok(t) => t,
        Err(e) => return fail(e.into()),
    };
    // Ctrl-C from here on stops waiting, not the deployment already sent.
    let then = super::interrupt::after_deploy(&spec.name, live_dir);
    let deploying = deploy_then_verify(services, spec, &material, &targets, kept, true, progress);
    let done = super::interrupt::unless_interrupted(progress, &then, deploying).await;
    // The deployment's requests count once it finished (also when verifying was stopped).
    if done.is_ok() || super::interrupt::during(progress, Stage::Verify) {
        api_usage.extend(targets.iter().filter_map(|t| t.api_usage()));
    }
    let done = match done {
        Ok(d) => d,
        Err(code) => return code,
    };
    match done {
        Ok(d) => {
            timings.extend(d.timings);
            super::common::record_deployed(settings, spec, &material.leaf);
            exit::OK
        }
        Err(f) if f.stage == Stage::Deploy => fail(f.error),
        Err(f) => {
            timings.extend(f.timings);
            output::error(&format!(
                "`{}` was deployed but verification failed: {}. Check the broker and DNS, then run `{}`",
                spec.name,
                f.error,
                crate::hint::command(&format!("verify {}", spec.name))
            ));
            f.error.exit_code()
        }
    }
}

/// Runs every check for every certificate of `settings`; prints each failure as one error
/// paragraph and returns the first failure's exit code.
pub fn check_all(settings: &Settings) -> Result<(), i32> {
    let mut first = None;
    let mut fail = |what: String, e: Error| {
        super::output::error(&format!(
            "{what}{e}. Nothing was ordered or changed: fix this first (the check needs no network)"
        ));
        first.get_or_insert(e.exit_code());
    };
    if let Err(e) = check_run(settings) {
        fail(String::new(), e);
    }
    for spec in &settings.certificates {
        if let Err(e) = check(settings, spec) {
            fail(format!("`{}`: ", spec.name), e);
        }
    }
    first.map_or(Ok(()), Err)
}
