//! `brokercert issue`: wires the real adapters to the workflow and prints the outcome.

use super::output;
use super::progress_display::Renderer;
use super::{Cli, IssueArgs};
use crate::acme::client::AcmeClient;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::dns::lookup::WireLookup;
use crate::dns::route53::{Route53, Route53Settings};
use crate::error::{Error, exit};
use crate::pki::anchors::TrustAnchors;
use crate::renew::journal::{Journal, TxtJournal};
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
    let route53 = Route53::connect(&Route53Settings {
        endpoint_url: settings.dns.route53_endpoint.clone(),
        profile: settings.dns.route53_profile.clone(),
        region: settings.dns.route53_region.clone(),
        max_attempts: settings.dns.route53_max_attempts,
    })
    .await;
    let lookup = WireLookup::new(settings.dns.nameservers.clone(), settings.dns.resolver);
    let ca = match AcmeClient::connect(&settings.acme, &store).await {
        Ok(ca) => ca,
        Err(e) => return output::fail(e),
    };
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
            ca: &ca,
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
                let mut after_timings = Vec::new();
                let mut api_usage = Vec::new();
                let after = super::after_issue::deploy_and_verify(
                    &settings,
                    spec,
                    &issued.paths.live_dir,
                    &mut after_timings,
                    &mut api_usage,
                    &progress,
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
        "stage": null,
        "error": error.or_else(|| (code != exit::OK).then(|| "deployment or verification failed (see stderr)".to_string())),
        "exit_code": code,
    })
}
