//! Renewal phase 4: issue a new certificate (journaled, so an interrupted run resumes the
//! order), then deploy and verify it; for a dry run, list what a real run would change.
//!
//! Owns: the issue options of a renewal (the `replaces` ARI identifier, the resumed order)
//! and the dry run's listing. Does not own the stages (`workflow::issue`,
//! `workflow::deploy`) nor the decision (`decide`).

use super::outcome::date;
use super::{Attempt, Outcome, RenewSink};
use crate::acme::client::replaces_id;
use crate::config::CertificateSpec;
use crate::deploy::{DeploymentTarget, Material};
use crate::error::Error;
use crate::pki::certificate::Certificate;
use crate::renew::state::RenewalState;
use crate::workflow::blocking::blocking;
use crate::workflow::challenge_records::DnsView;
use crate::workflow::issue::{IssueOptions, Issued, Resume};
use crate::workflow::plan::{cname_steps, deploy_steps};
use crate::workflow::preflight::check;
use crate::workflow::{IssueServices, issue};

/// Issues, then deploys and verifies: always done (renewed, a dry run's plan) or failed.
pub(crate) async fn issue_and_deploy<S: RenewSink>(
    a: &Attempt<'_, S>,
    st: &mut RenewalState,
    targets: &[Box<dyn DeploymentTarget>],
    live: Option<&Certificate>,
    resume: Option<Resume>,
    reason: String,
) -> Result<Outcome, Error> {
    let (run, spec, journal) = (a.run, a.spec, a.journal);
    let (settings, opts) = (run.settings(), run.opts);
    // First everything checkable without the network, so that a missing secret or file
    // fails before the order.
    let anchors = run.shared_checks().await?;
    check(settings, spec)?;
    // The new key starts now, before the CA and Route 53 connections and the zones stage,
    // for the issue stage to take (`keys_ahead`): in a fleet the keys are the floor, and
    // they used to start 0.2 s into the run.
    if resume.as_ref().is_none_or(|r| r.key_pem.is_none()) && (!spec.reuse_key || opts.new_key) {
        crate::workflow::keys_ahead::prefetch(spec.key_type);
    }
    run.before_ordering().await?;
    let replaces = match (live, resume.is_none() && settings.renew.ari) {
        (Some(leaf), true) if st.ari.is_some() => replaces_id(leaf.der()).ok(),
        _ => None,
    };
    blocking(|| journal.set_replaces(replaces.as_deref()))?;
    let services = run.services;
    let route53 = services.route53().await;
    let lookup = services.lookup();
    let ca = services.ca().await?;
    let svc = IssueServices {
        dns: route53,
        lookup,
        ca,
        store: run.store,
        clock: services.clock(),
        anchors,
        progress: a.progress,
        journal: Some(journal),
    };
    let issue_opts = IssueOptions {
        force: false,
        preferred_chain: settings.acme.preferred_chain.clone(),
        change_timeout: settings.dns.change_timeout,
        propagation_timeout: settings.dns.propagation_timeout,
        replaces,
        resume,
        new_key: opts.new_key,
    };
    // A dry run validates for real (its TXT values are its only writes, removed afterwards)
    // but only plans the CNAME: the order goes without it.
    let rehearsal;
    let ordered = if opts.dry_run {
        rehearsal = CertificateSpec {
            cname_target: None,
            ..spec.clone()
        };
        &rehearsal
    } else {
        spec
    };
    // Taking part in the run's Route 53 batching: this certificate's changes wait for the
    // others' at each step, so a fleet sends one batch per zone for all of them.
    let issued = match route53
        .participate(issue(&svc, ordered, &issue_opts, run.stop.wait()))
        .await
    {
        Ok(i) => i,
        Err(f) => {
            // An order that failed for good cannot be resumed; a journal naming it would
            // make every later run try it again.
            if !matches!(f.error, Error::Interrupted) {
                journal.drop_order()?;
            }
            let mut e = f.error;
            if let Some(c) = f.cleanup.first() {
                e = Error::CleanupFailed {
                    error: Box::new(e),
                    stage: f.stage.to_string(),
                    cleanup: c.clone(),
                };
            }
            return Err(e);
        }
    };
    for w in &issued.cleanup_warnings {
        run.sink.warning(w);
    }
    blocking(|| journal.set_replaces(None))?;
    st.ari = None;

    if opts.dry_run {
        return dry_run_plan(a, &issued, targets).await;
    }

    // A later `issue` keeps this certificate only for the same CA and profile.
    st.record_issuer(&issued.fingerprint, &settings.acme);
    if !targets.is_empty() {
        // Freshly issued: never "already served" (EMQX Cloud only reports the expiry, which two
        // certificates issued in the same second share).
        let live_dir = &issued.paths.live_dir;
        a.deploy_and_verify(live_dir, targets, false).await?;
    }
    st.deployed_fingerprint = Some(issued.fingerprint.clone());
    Ok(Outcome::Renewed {
        reason,
        serial: issued.serial.clone(),
        expires: issued.not_after,
        targets: targets.len(),
    })
}

/// What a real run would change, read but not done (the dry run validated and issued into a
/// throw-away directory).
async fn dry_run_plan<S: RenewSink>(
    a: &Attempt<'_, S>,
    issued: &Issued,
    targets: &[Box<dyn DeploymentTarget>],
) -> Result<Outcome, Error> {
    let (spec, settings, services) = (a.spec, a.run.settings(), a.run.services);
    let route53 = services.route53().await;
    let material = Material::from_dir(&issued.paths.live_dir)?;
    let mut plan = vec![format!(
        "validated and issued serial {} (expires {}) from {} into a throw-away directory; its DNS-01 values are removed",
        issued.serial,
        date(issued.not_after),
        settings.acme.directory
    )];
    // What a real run would change, read but not done.
    let view = DnsView::new(route53, services.lookup()).await?;
    let cname = cname_steps(&view, spec, false).await.map_err(|(_, e)| e)?;
    for t in targets {
        crate::deploy::emqx_cloud::preflight(
            t.as_ref(),
            &material,
            &spec.domains,
            services.clock().now(),
        )?;
    }
    let deploy = deploy_steps(targets).await;
    for s in cname.iter().chain(&deploy) {
        match s.kind {
            "write" if s.section == "deploy" => plan.push(format!("would send to {}", s.text)),
            "write" => plan.push(format!("would send {}", s.text)),
            "keep" => plan.push(s.text.clone()),
            _ => {}
        }
    }
    if targets.is_empty() {
        plan.push("no deployment target configured".into());
    } else {
        plan.push(format!(
            "import rules pass for {}",
            targets
                .iter()
                .map(|t| t.describe())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Outcome::DryRun { plan })
}
