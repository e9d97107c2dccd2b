//! Renewal phase 2: a stored certificate newer than what was deployed is finished — deployed
//! (a previous run stopped between storing and deploying) or verified (it stopped between
//! deploying and verifying) — without a new order.
//!
//! Owns: telling those apart from what the targets serve. Does not own the deployment
//! (`workflow::deploy`) nor the decision whether the stored certificate is still usable
//! (`renew::policy`).

use std::ops::ControlFlow;

use super::decide::{backing_off, backoff_outcome, inputs};
use super::observe::{leaf_current, observe_targets};
use super::{Attempt, Outcome, Phase, RenewSink};
use crate::deploy::DeploymentTarget;
use crate::pki::certificate::Certificate;
use crate::progress::{Progress, Stage};
use crate::renew::policy::{self, Decision, Failures};
use crate::renew::state::RenewalState;

/// Deploys or verifies a stored certificate that was not (done), else continues.
pub(crate) async fn finish<S: RenewSink>(
    a: &Attempt<'_, S>,
    st: &mut RenewalState,
    targets: &[Box<dyn DeploymentTarget>],
    live: Option<&Certificate>,
) -> Phase {
    let (run, spec) = (a.run, a.spec);
    let (settings, opts) = (run.settings(), run.opts);
    let now = run.services.clock().now();
    if !opts.force
        && let Some(leaf) = live
        && !targets.is_empty()
        && st.deployed_fingerprint.as_deref() != Some(leaf.sha256_fingerprint())
        && !opts.dry_run
    {
        let served = observe_targets(targets).await;
        let mut i = inputs(now, settings, st, targets, leaf_current(leaf), None, false);
        i.failures = Failures::default();
        let usable = matches!(policy::decide(&i), Decision::NotDue { .. });
        // Served: older (or nothing, or a failed apply) → deploy the stored one; the same →
        // it was deployed but never verified → verify it; newer → someone else deployed a
        // later certificate: leave it, and decide on what is served.
        let same = served.is_some_and(|e| e.matches(leaf.not_after()));
        let older = !same && served.is_none_or(|e| e.at < leaf.not_after());
        if usable && (older || same) {
            if let Some(until) = backing_off(st, now) {
                return Ok(ControlFlow::Break(backoff_outcome(st, until)));
            }
            let reason = if older {
                Progress::update(
                    a.progress,
                    Stage::Deploy,
                    &format!(
                        "the stored certificate (serial {}) is not deployed yet: deploying it",
                        leaf.serial_hex()
                    ),
                );
                "deployed the certificate an earlier run stored"
            } else {
                Progress::update(
                    a.progress,
                    Stage::Verify,
                    &format!(
                        "the stored certificate (serial {}) is deployed but was not verified: verifying it",
                        leaf.serial_hex()
                    ),
                );
                "verified the certificate an earlier run deployed"
            };
            // A target seen serving an older certificate gets the write. "The same" is judged
            // by the expiry EMQX Cloud reports (in a time zone it does not name), so the
            // target and the broker's served serial check it again before skipping a write.
            let live_dir = run.store.live_dir(&spec.name);
            let wrote = a.deploy_and_verify(&live_dir, targets, !older).await?;
            // The same expiry looked deployed, but the broker served another certificate
            // (one issued in the same second), so it was written after all: say so.
            let reason = if wrote {
                "deployed the certificate an earlier run stored"
            } else {
                reason
            };
            st.deployed_fingerprint = Some(leaf.sha256_fingerprint().to_string());
            return Ok(ControlFlow::Break(Outcome::Renewed {
                reason: reason.into(),
                serial: leaf.serial_hex().to_string(),
                expires: leaf.not_after(),
                targets: targets.len(),
            }));
        }
    }
    Ok(ControlFlow::Continue(()))
}
