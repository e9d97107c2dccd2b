//! The deploy stage: check the certificate against every target's import rules first (so a
//! certificate some target would refuse spends no write anywhere), then install it on each
//! target in order and wait until each serves it.
//!
//! Then, once for `issue`, `deploy` and `renew`: deploy-and-verify.
//!
//! Owns: that ordering, the per-target outcome list, deploy-then-verify, and recording a
//! verified deployment in the renewal state (the `deploy` command). Does not own any
//! target's protocol, nor printing (a [`DeploySink`]), nor what a failure means to the
//! command (its message and exit code).

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::services::Services;
use super::verify::{
    VerifyOptions, check, probe_settled, serves_another_certificate, wanted_after_deploy,
};
use crate::config::CertificateSpec;
use crate::deploy::emqx_cloud::preflight;
use crate::deploy::{DeployError, DeployOutcome, DeployProgress, DeploymentTarget, Material};
use crate::error::Error;
use crate::pki::certificate::Certificate;
use crate::progress::{Progress, Stage};
use crate::store::StoreError;
use crate::verify::ProbeReport;

/// Checks every target, then deploys to each; stops at the first failure. `skip_if_served`
/// lets a target that already serves the certificate spend nothing.
pub async fn deploy_all(
    spec: &CertificateSpec,
    material: &Material,
    targets: &[Box<dyn DeploymentTarget>],
    now: OffsetDateTime,
    skip_if_served: bool,
    progress: &dyn DeployProgress,
) -> Result<Vec<(String, DeployOutcome)>, DeployError> {
    for t in targets {
        preflight(t.as_ref(), material, &spec.domains, now)?;
    }
    let mut done = Vec::new();
    for t in targets {
        progress.update(&format!("deploying to {}", t.describe()));
        let outcome = t.deploy(material, skip_if_served, progress).await?;
        done.push((t.describe(), outcome));
    }
    Ok(done)
}

/// What deploy-and-verify reports besides stage progress (the CLI renders it).
pub trait DeploySink: Progress + DeployProgress {
    /// Removes a live progress line before anything permanent is printed.
    fn clear(&self);
    /// The deployment's outcome, per target.
    fn deployed(&self, outcomes: &[(String, DeployOutcome)]);
    /// The verification report (rendered up to its first failure, see `verify::check`).
    fn verified(&self, report: &ProbeReport);
}

/// A deployment (and verification) that went through.
#[derive(Debug)]
pub struct Deployed {
    /// Whether any target was written (not only found already serving the certificate).
    pub wrote: bool,
    /// How long deploying and verifying took (`--timings`).
    pub timings: Vec<(&'static str, Duration)>,
}

/// Where deploy-and-verify stopped.
#[derive(Debug)]
pub struct DeployFailed {
    /// `Stage::Deploy` or `Stage::Verify`.
    pub stage: Stage,
    /// Why.
    pub error: Error,
    /// How long the stages that ran took.
    pub timings: Vec<(&'static str, Duration)>,
}

/// Deploys `material` to every target, then verifies over MQTT when `verify` and the
/// configuration ask for it: the one deploy-then-verify of `issue`, `deploy` and `renew`.
/// `skip_if_served`: a target that already serves the certificate gets no write (see
/// [`deploy_unless_served`]).
pub async fn deploy_and_verify<S: DeploySink>(
    services: &Services<'_>,
    spec: &CertificateSpec,
    material: &Material,
    targets: &[Box<dyn DeploymentTarget>],
    skip_if_served: bool,
    verify: bool,
    sink: &S,
) -> Result<Deployed, DeployFailed> {
    let mut timings = Vec::new();
    let started = Instant::now();
    let deployed = if skip_if_served {
        deploy_unless_served(services, spec, material, targets, sink).await
    } else {
        deploy_all(spec, material, targets, services.clock().now(), false, sink).await
    };
    sink.clear();
    let outcomes = match deployed {
        Ok(o) => o,
        Err(e) => {
            return Err(DeployFailed {
                stage: Stage::Deploy,
                error: e.into(),
                timings,
            });
        }
    };
    timings.push(("deploy", started.elapsed()));
    let wrote = outcomes.iter().any(|(_, o)| *o != DeployOutcome::Unchanged);
    super::stall::after("deploy");
    sink.deployed(&outcomes);
    if !verify || !wanted_after_deploy(spec) {
        return Ok(Deployed { wrote, timings });
    }
    let started = Instant::now();
    let opts = VerifyOptions::after_deploy(spec, &material.leaf);
    let settings = services.settings();
    let verified = match probe_settled(services.probe(), settings, spec, &opts, sink).await {
        Ok(Some(r)) => {
            sink.verified(&r);
            check(&r, None)
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    timings.push(("verify", started.elapsed()));
    sink.clear();
    if let Err(error) = verified {
        return Err(DeployFailed {
            stage: Stage::Verify,
            error,
            timings,
        });
    }
    super::stall::after("verify");
    Ok(Deployed { wrote, timings })
}

/// The `deploy` command's use case: [`deploy_and_verify`] (a target already serving the
/// certificate gets no write), then, when it was verified, [`record_deployed`]. A failure to
/// record is returned beside the success: it only costs the next `renew` an extra check.
pub async fn deploy_recorded<S: DeploySink>(
    services: &Services<'_>,
    spec: &CertificateSpec,
    material: &Material,
    targets: &[Box<dyn DeploymentTarget>],
    verify: bool,
    sink: &S,
) -> Result<(Deployed, Option<StoreError>), DeployFailed> {
    let done = deploy_and_verify(services, spec, material, targets, true, verify, sink).await?;
    let unrecorded = if verify {
        record_deployed(services, spec, &material.leaf).err()
    } else {
        None
    };
    Ok((done, unrecorded))
}

/// Remembers that `leaf` of `spec` is deployed and verified (see
/// `renew::state::record_deployed`), at the services' clock.
pub fn record_deployed(
    services: &Services<'_>,
    spec: &CertificateSpec,
    leaf: &Certificate,
) -> Result<(), StoreError> {
    let dir = services.settings().state_dir.join("renewal");
    let now = services.clock().now();
    crate::renew::state::record_deployed(&dir, &spec.name, leaf.sha256_fingerprint(), now)
}

/// Deploys `material` to every target, skipping a target whose state says it already
/// serves it, unless the broker presents another certificate: EMQX Cloud names what it
/// serves only by its expiry, to the second, so a certificate issued in the same second as
/// the served one looks deployed there. Then it gets the write after all.
pub async fn deploy_unless_served<S: DeploySink>(
    services: &Services<'_>,
    spec: &CertificateSpec,
    material: &Material,
    targets: &[Box<dyn DeploymentTarget>],
    sink: &S,
) -> Result<Vec<(String, DeployOutcome)>, DeployError> {
    let now = services.clock().now();
    let outcomes = deploy_all(spec, material, targets, now, true, sink).await?;
    sink.clear();
    let (probe, settings) = (services.probe(), services.settings());
    if !outcomes.iter().any(|(_, o)| *o == DeployOutcome::Unchanged)
        || !serves_another_certificate(probe, settings, spec, &material.leaf, sink).await
    {
        return Ok(outcomes);
    }
    Progress::update(
        sink,
        Stage::Deploy,
        "the broker serves another certificate with the same expiry: deploying after all",
    );
    let again = deploy_all(spec, material, targets, services.clock().now(), false, sink).await;
    sink.clear();
    again
}
