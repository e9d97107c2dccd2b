//! `brokercert plan` (and `issue --dry-run`): every DNS change, ACME call and deployment call
//! `issue` would make, printed, with nothing changed.
//!
//! Owns: the listing (text or JSON) and what it says while Route 53 is slow to answer. Does
//! not own the read-only walk that finds the steps (`workflow::plan`) nor the decisions it
//! describes (`dns::plan`, `deploy`).

use clap::Args;

use super::output;
use super::{Cli, IssueArgs};
use crate::config::CertificateSpec;
use crate::error::{Error, exit};
use crate::workflow::challenge_records::DnsView;
use crate::workflow::plan::{PlanOptions, Step, plan_certificate};
use crate::workflow::services::Services;

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
    let services = Services::new(&settings);
    let route53 = services.route53().await;
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
        waiting_for(&progress, &what, DnsView::new(route53, services.lookup())).await
    };
    renderer.clear();
    let view = match viewing {
        Ok(v) => v,
        Err(e) => return output::fail(e),
    };
    let mut code = exit::OK;
    for spec in &settings.certificates {
        let opts = PlanOptions {
            force: args.force,
            order_anyway: args.force_renewal || args.new_key,
        };
        let (steps, error) = match plan_certificate(&services, &view, spec, &opts).await {
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
