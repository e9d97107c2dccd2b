//! `brokercert plan` (and `issue --dry-run`): every DNS change, ACME call and deployment call
//! `issue` would make, printed, with nothing changed.
//!
//! Owns: the read-only walk (list hosted zones, read records through the zone's nameservers,
//! read the stored ACME account, GET each deployment's state) and the listing. It never
//! calls a writing API: no ChangeResourceRecordSets, no ACME request at all (so no account
//! and no order), no POST/PUT, no file written, no reload. Does not own the decisions it
//! describes (`dns::plan`, `deploy`).

use clap::Args;

use super::output;
use super::{Cli, IssueArgs};
use crate::clock::{Clock, SystemClock};
use crate::config::{CertificateSpec, Settings};
use crate::deploy::from_config;
use crate::error::{Error, exit};
use crate::store::Store;
use crate::workflow::challenge_records::DnsView;
use crate::workflow::plan::{Step, cname_steps, deploy_steps, step};

/// Flags of `plan` (the same selection and overrides as `issue`).
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Everything `issue` accepts.
    #[command(flatten)]
    pub issue: Box<IssueArgs>,
}

/// `brokercert plan`.
pub async fn run(cli: &Cli, args: &PlanArgs) -> i32 {
    run_for_issue(cli, &args.issue).await
}

/// `brokercert issue --dry-run` (and `plan`).
pub async fn run_for_issue(cli: &Cli, args: &IssueArgs) -> i32 {
    output::set_json(args.json);
    let over = args.overrides(cli.state_dir.clone());
    let settings = match super::common::load(cli.config.as_deref(), &over) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if settings.certificates.is_empty() {
        output::error(
            "nothing to plan: the configuration has no `[[certificate]]` section and no \
             `--domain` was given",
        );
        return exit::CONFIG;
    }
    let route53 = crate::workflow::services::route53(&settings).await;
    let lookup = crate::workflow::services::lookup(&settings);
    // Listing the hosted zones is the first network call; when AWS cannot be reached its
    // SDK retries for tens of seconds: say what the plan is waiting for meanwhile.
    let renderer = super::progress_display::Renderer::shared(cli.quiet, cli.verbose);
    let viewing = {
        let progress = renderer.certificate("plan");
        let what = format!(
            "Route 53 ListHostedZones at {}",
            settings
                .dns
                .route53_endpoint
                .as_deref()
                .unwrap_or("AWS (credentials from the standard chain)")
        );
        waiting_for(&progress, &what, DnsView::new(&route53, &lookup)).await
    };
    renderer.clear();
    let view = match viewing {
        Ok(v) => v,
        Err(e) => return output::fail(e),
    };
    let mut code = exit::OK;
    let store = Store::new(&settings.state_dir);
    for spec in &settings.certificates {
        let keep = (!args.force_renewal && !args.new_key)
            .then(|| crate::workflow::keep::keepable(&settings, spec, &store, SystemClock.now()).ok())
            .flatten()
            .map(|(leaf, k)| {
                format!(
                    "the stored certificate (serial {}) is not due for renewal until {}: `issue` keeps it and orders nothing (`--force-renewal` orders anyway)",
                    leaf.serial_hex(),
                    output::date(k.due)
                )
            });
        let (steps, error) = match plan_one(&settings, spec, &view, args.force, keep).await {
            Ok(s) => (s, None),
            Err((s, e)) => (s, Some(e)),
        };
        let this = error.as_ref().map(Error::exit_code).unwrap_or(exit::OK);
        if args.json {
            let mut fields = serde_json::Map::new();
            fields.insert("name".into(), spec.name.clone().into());
            fields.insert("ok".into(), error.is_none().into());
            fields.insert(
                "steps".into(),
                steps
                    .iter()
                    .map(|s| {
                        serde_json::json!({"section": s.section, "kind": s.kind, "text": s.text})
                    })
                    .collect::<Vec<_>>()
                    .into(),
            );
            fields.insert("error".into(), error.as_ref().map(|e| e.to_string()).into());
            fields.insert("exit_code".into(), this.into());
            output::emit_json("plan", fields);
        } else {
            output::say(&render(spec, &steps, error.is_some()));
        }
        if let Some(e) = error {
            output::error(&format!("`{}`: {e}", spec.name));
            if code == exit::OK {
                code = this;
            }
        }
    }
    code
}

/// Runs `work`, showing on `progress` that it waits for `what` (at once, then every second).
async fn waiting_for<T>(
    progress: &super::progress_display::CertProgress,
    what: &str,
    work: impl std::future::Future<Output = T>,
) -> T {
    use crate::progress::{Progress, Stage, Waiting};
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tokio::pin!(work);
    loop {
        tokio::select! {
            r = &mut work => return r,
            _ = tick.tick() => progress.waiting(
                Stage::Zones,
                &Waiting {
                    what,
                    waiting_for: Some("an answer"),
                    elapsed: started.elapsed(),
                    next_check: None,
                },
            ),
        }
    }
}

fn render(spec: &CertificateSpec, steps: &[Step], failed: bool) -> String {
    let names = spec
        .domains
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = format!("Plan for `{}` ({names}) — nothing was changed\n", spec.name);
    let mut section = "";
    for s in steps {
        if s.section != section {
            section = s.section;
            out.push_str(&format!("{}\n", section.to_uppercase()));
        }
        out.push_str(&format!("  {:<6} {}\n", s.kind, s.text));
    }
    let writes = steps.iter().filter(|s| s.kind == "write").count();
    if failed {
        out.push_str(
            "`issue` would stop here, before the rest (the error below says why and what to fix)",
        );
        return out;
    }
    out.push_str(&format!(
        "{writes} write(s) planned; run `{}` to make them",
        crate::hint::command(&if spec.name.is_empty() {
            "issue".to_string()
        } else {
            format!("issue --name {}", spec.name)
        })
    ));
    out
}

async fn plan_one(
    settings: &Settings,
    spec: &CertificateSpec,
    view: &DnsView<'_>,
    force: bool,
    keep: Option<String>,
) -> Result<Vec<Step>, (Vec<Step>, Error)> {
    let mut steps = Vec::new();
    // Not due: `issue` orders nothing, touches no DNS, and only deploys where not served.
    if let Some(why) = keep {
        steps.push(step("acme", "keep", why));
        return deploy_and_verify_steps(settings, spec, steps).await;
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
    let mut targets = Vec::new();
    for d in &spec.domains {
        let challenge = d.challenge_name();
        if targets
            .iter()
            .any(|(c, _, _): &(crate::names::DomainName, _, _)| *c == challenge)
        {
            continue;
        }
        let (zone, target) = tryp!(
            view.challenge_target(&challenge, spec.hosted_zone_id.as_deref())
                .await
        );
        targets.push((challenge, zone, target));
    }
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
    let store = Store::new(&settings.state_dir);
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

    deploy_and_verify_steps(settings, spec, steps).await
}

/// The deployment and verification part of the plan (also all of it when the stored
/// certificate is kept).
async fn deploy_and_verify_steps(
    settings: &Settings,
    spec: &CertificateSpec,
    mut steps: Vec<Step>,
) -> Result<Vec<Step>, (Vec<Step>, Error)> {
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
    let today = time::OffsetDateTime::now_utc().date();
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
