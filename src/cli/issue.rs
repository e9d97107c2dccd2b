//! `brokercert issue`: loads the settings, checks them, takes the state lock, calls the
//! `issue` use case (`workflow::issue_all`) and renders what it reports: each certificate
//! kept or issued, its deployment and verification, failures with what to run next, and the
//! JSON objects of `--json`. (`issue --dry-run` is `plan`.)

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

use super::output;
use super::progress_display::{CertProgress, Renderer};
use super::{Cli, IssueArgs};
use crate::clock::{Clock, SystemClock};
use crate::config::{CertificateSpec, Settings};
use crate::error::{Error, exit};
use crate::pki::TrustAnchors;
use crate::pki::certificate::Certificate;
use crate::progress::Stage;
use crate::renew::keep::Keep;
use crate::renew::policy::Reason;
use crate::workflow::issue::{IssueOptions, Issued, timings_table};
use crate::workflow::issue_all::{
    AfterStore, IssueAllOptions, IssueOutcome, IssueSink, generate_key_ahead, issue_all,
};
use crate::workflow::preflight::{check, check_run};
use crate::workflow::renew::Stop;
use crate::workflow::services::Services;

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
    // Everything checkable without the network, before the first side effect; the trust
    // anchors the checks load verify every new chain.
    let anchors = match check_all(&settings) {
        Ok(anchors) => anchors,
        Err(code) => return code,
    };
    let opts = IssueAllOptions {
        force_renewal: args.force_renewal,
        issue: IssueOptions {
            force: args.force,
            preferred_chain: settings.acme.preferred_chain.clone(),
            change_timeout: settings.dns.change_timeout,
            propagation_timeout: settings.dns.propagation_timeout,
            replaces: None,
            resume: None,
            new_key: args.new_key,
        },
    };
    let services = Services::new(&settings);
    // A new key for the first certificate that will be ordered starts now, beside the lock
    // and the connections to Route 53 and the CA.
    generate_key_ahead(&services, &opts);
    let _lock = match super::lock_state(cli, &settings.state_dir, args.wait, "issue").await {
        Ok(l) => l,
        Err(code) => return code,
    };
    if let Err(code) = super::state_backend::attach(&settings) {
        return code;
    }
    let view = IssueView {
        renderer: Renderer::shared(cli.quiet, cli.verbose),
        args,
        code: Cell::new(exit::OK),
    };
    let stop = Stop::on(super::shutdown_signal());
    issue_all(&services, &anchors, &opts, &stop, &view).await;
    view.code.get()
}

/// Renders what the `issue` use case reports, and keeps the run's exit code: the first
/// certificate's that failed.
struct IssueView<'a> {
    renderer: Arc<Renderer>,
    args: &'a IssueArgs,
    code: Cell<i32>,
}

impl IssueView<'_> {
    fn failed(&self, code: i32) {
        if code != exit::OK && self.code.get() == exit::OK {
            self.code.set(code);
        }
    }

    /// Says how the deployment of a stored certificate went; its exit code. `kept`: the
    /// stored certificate was kept (not a new one).
    fn after_store(
        &self,
        spec: &CertificateSpec,
        live_dir: &Path,
        kept: bool,
        after: &AfterStore,
    ) -> i32 {
        let fail = |e: &Error| {
            output::error(&format!(
                "`{}`: {e}. The {} certificate is stored in {}; after fixing this, run `{}`",
                spec.name,
                if kept { "current" } else { "new" },
                live_dir.display(),
                crate::hint::command(&format!("deploy {}", spec.name))
            ));
            e.exit_code()
        };
        match after {
            AfterStore::NoTarget | AfterStore::Done { .. } => exit::OK,
            AfterStore::DeployFailed { error, .. } => fail(error),
            AfterStore::VerifyFailed { error, .. } => {
                output::error(&format!(
                    "`{}` was deployed but verification failed: {}. Check the broker and DNS, then run `{}`",
                    spec.name,
                    error,
                    crate::hint::command(&format!("verify {}", spec.name))
                ));
                error.exit_code()
            }
            AfterStore::Interrupted { .. } => exit::INTERRUPTED,
        }
    }

    fn issue_failed(&self, spec: &CertificateSpec, failure: &crate::workflow::IssueFailure) -> i32 {
        output::error(&format!("`{}`: {}", spec.name, failure.error));
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
        emit(
            self.args.json,
            serde_json::json!({
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
            }),
        );
        c
    }
}

impl IssueSink for IssueView<'_> {
    type Cert = CertProgress;

    fn certificate(&self, name: &str) -> CertProgress {
        self.renderer.certificate(name)
    }

    fn kept(&self, spec: &CertificateSpec, leaf: &Certificate, keep: &Keep, live_dir: &Path) {
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
            (leaf.not_after() - SystemClock.now()).whole_days(),
            live_dir.display(),
            crate::hint::command(&format!("issue --name {} --force-renewal", spec.name))
        ));
    }

    fn issued(&self, issued: &Issued) {
        output::say(output::issued_summary(issued, SystemClock.now()).trim_end());
        for w in &issued.cleanup_warnings {
            output::warning(w);
        }
    }

    fn warning(&self, text: &str) {
        output::warning(text);
    }

    fn note(&self, text: &str) {
        eprintln!("{text}");
    }

    fn interrupted_deploying(&self, cert: &CertProgress, name: &str, live_dir: &Path) {
        super::interrupt::say_interrupted(cert, &super::interrupt::after_deploy(name, live_dir));
    }

    fn done(&self, spec: &CertificateSpec, cert: Option<&CertProgress>, outcome: &IssueOutcome) {
        let code = match outcome {
            IssueOutcome::Kept {
                leaf,
                live_dir,
                after,
            } => {
                let code = self.after_store(spec, live_dir, true, after);
                emit(
                    self.args.json,
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
            IssueOutcome::Issued {
                issued,
                after,
                elapsed,
            } => {
                let code = self.after_store(spec, &issued.paths.live_dir, false, after);
                if self.args.timings {
                    let (after_timings, usage): (&[_], &[String]) = match after {
                        AfterStore::Done { timings, api_usage } => (timings, api_usage),
                        AfterStore::VerifyFailed {
                            timings, api_usage, ..
                        } => (timings, api_usage),
                        AfterStore::DeployFailed { api_usage, .. } => (&[], api_usage),
                        // The deployment's requests count once it finished (also when
                        // verifying was stopped).
                        AfterStore::Interrupted { api_usage }
                            if cert.is_some_and(|c| super::interrupt::during(c, Stage::Verify)) =>
                        {
                            (&[], api_usage)
                        }
                        AfterStore::Interrupted { .. } | AfterStore::NoTarget => (&[], &[]),
                    };
                    output::say(&timings_table(&issued.timings, after_timings, *elapsed));
                    if let Some(t) = super::render::api_usage_table(usage) {
                        output::say(&t);
                    }
                }
                emit(self.args.json, issued_json(issued, code, None));
                code
            }
            IssueOutcome::Held { message } => {
                output::error(&format!("{}: {message}", spec.name));
                exit::STORE
            }
            IssueOutcome::NotStarted { error } => {
                output::error(&error.to_string());
                error.exit_code()
            }
            IssueOutcome::Failed { failure } => self.issue_failed(spec, failure),
        };
        self.failed(code);
    }
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

/// Runs every check for every certificate of `settings`; prints each failure as one error
/// paragraph and returns the first failure's exit code, or the trust anchors the checks
/// loaded.
pub fn check_all(settings: &Settings) -> Result<TrustAnchors, i32> {
    let mut first = None;
    let mut fail = |what: String, e: Error| {
        super::output::error(&format!(
            "{what}{e}. Nothing was ordered or changed: fix this first (the check needs no network)"
        ));
        first.get_or_insert(e.exit_code());
    };
    let anchors = check_run(settings).map_err(|e| fail(String::new(), e)).ok();
    for spec in &settings.certificates {
        if let Err(e) = check(settings, spec) {
            fail(format!("`{}`: ", spec.name), e);
        }
    }
    match (first, anchors) {
        (None, Some(anchors)) => Ok(anchors),
        (code, _) => Err(code.unwrap_or(exit::CONFIG)),
    }
}
