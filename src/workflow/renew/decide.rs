//! Renewal phase 3: decide whether the certificate is due — from what is deployed
//! (`observe`), the CA's renewal window (ARI, asked at most when the CA said to ask again)
//! and the backoff after failures.
//!
//! Owns: gathering the policy's inputs and turning its decision into done-or-continue; the
//! same decision from stored state alone, for `status` ([`from_stored`]).
//! Does not own the decision itself (`renew::policy`, pure) nor the ARI request (`acme`).

use std::ops::ControlFlow;
use std::time::Duration;

use time::OffsetDateTime;

use super::observe::{leaf_current, observe};
use super::{Attempt, Outcome, Phase, RenewSink, Run};
use crate::config::Settings;
use crate::deploy::DeploymentTarget;
use crate::error::exit;
use crate::pki::certificate::Certificate;
use crate::pki::issued::CheckError;
use crate::renew::policy::{self, AriChoice, Current, Decision, Failures, Inputs, Reason};
use crate::renew::state::{AriRecord, RenewalState};

/// Decides; continues with the reason to renew, or is done (not due, backing off).
pub(crate) async fn decide<S: RenewSink>(
    a: &Attempt<'_, S>,
    st: &mut RenewalState,
    targets: &[Box<dyn DeploymentTarget>],
    live: Option<&Certificate>,
) -> Phase<String> {
    let (run, spec) = (a.run, a.spec);
    let settings = run.settings();
    let opts = run.opts;
    let now = run.services.clock().now();
    let observed = observe(run.services, spec, targets, live, st).await;
    let ari = match (&observed.leaf, settings.renew.ari && !opts.force) {
        (Some(leaf), true) => ari_choice(run, st, leaf, now).await,
        _ => None,
    };
    let decision = policy::decide(&inputs(
        now,
        settings,
        st,
        targets,
        observed.current,
        ari,
        opts.force || opts.dry_run,
    ));
    let reason = match decision {
        Decision::NotDue { next, by } => {
            return Ok(ControlFlow::Break(Outcome::NotDue {
                next,
                by,
                expires: observed.current.map(|c| c.not_after).unwrap_or(next),
            }));
        }
        Decision::Backoff { until, .. } => {
            return Ok(ControlFlow::Break(backoff_outcome(st, until)));
        }
        Decision::ImportImpossible {
            lifetime_days,
            min_days_left,
        } => {
            return Err(CheckError::ImportImpossible {
                name: spec.name.clone(),
                lifetime_days,
                min_days_left,
            }
            .into());
        }
        Decision::Renew(r) => match r {
            Reason::Forced if opts.dry_run => "dry run",
            Reason::Forced => "--force",
            Reason::Missing => "nothing deployed yet",
            Reason::Expired => "the certificate has expired",
            Reason::AriWindow => "the CA's renewal window (ARI)",
            Reason::Lifetime => "1/3 of the lifetime left",
        },
    };
    Ok(ControlFlow::Continue(reason.to_string()))
}

/// When an earlier failure means waiting: until when.
pub(super) fn backing_off(st: &RenewalState, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let until = Failures {
        count: st.failures,
        last: st.last_failure,
        not_before: st.retry_not_before,
    }
    .wait_until()?;
    (now < until).then_some(until)
}

/// The outcome of a run that waits for the backoff.
pub(super) fn backoff_outcome(st: &RenewalState, until: OffsetDateTime) -> Outcome {
    Outcome::BackingOff {
        message: if st.failures == 0 && st.retry_not_before.is_some() {
            format!(
                "the CA asked not to be asked again before then: {}",
                st.last_error.as_deref().unwrap_or("(no message kept)")
            )
        } else {
            format!(
                "{} attempt(s) failed, the last with: {}",
                st.failures,
                st.last_error.as_deref().unwrap_or("(no message kept)")
            )
        },
        code: st.last_code.unwrap_or(exit::INTERNAL),
        until,
    }
}

/// The policy's inputs.
pub(super) fn inputs(
    now: OffsetDateTime,
    settings: &Settings,
    st: &RenewalState,
    targets: &[Box<dyn DeploymentTarget>],
    current: Option<Current>,
    ari: Option<AriChoice>,
    force: bool,
) -> Inputs {
    let floor = targets.iter().map(|t| t.rules().min_days_left).max();
    inputs_with_floor(now, settings, st, floor, current, ari, force)
}

/// The decision `renew` would make from what is stored alone — the stored `leaf`, its
/// state and the ARI window kept for it — with no network call (`status`).
/// `import_min_days_left`: the strictest target's import floor.
pub fn from_stored(
    settings: &Settings,
    leaf: Option<&Certificate>,
    st: &RenewalState,
    import_min_days_left: Option<i64>,
    now: OffsetDateTime,
) -> policy::Decision {
    let ari = match (leaf, &st.ari) {
        (Some(l), Some(r)) if settings.renew.ari && r.fingerprint == l.sha256_fingerprint() => {
            Some(choice(r))
        }
        _ => None,
    };
    policy::decide(&inputs_with_floor(
        now,
        settings,
        st,
        import_min_days_left,
        leaf.and_then(leaf_current),
        ari,
        false,
    ))
}

fn inputs_with_floor(
    now: OffsetDateTime,
    settings: &Settings,
    st: &RenewalState,
    import_min_days_left: Option<i64>,
    current: Option<Current>,
    ari: Option<AriChoice>,
    force: bool,
) -> Inputs {
    Inputs {
        now,
        current,
        ari,
        failures: Failures {
            count: st.failures,
            last: st.last_failure,
            not_before: st.retry_not_before,
        },
        force,
        assumed_lifetime: settings.renew.assumed_lifetime,
        import_min_days_left,
    }
}

/// The CA's renewal window for `leaf` (asked at most when the CA said to ask again).
async fn ari_choice<S: RenewSink>(
    run: &Run<'_, S>,
    st: &mut RenewalState,
    leaf: &Certificate,
    now: OffsetDateTime,
) -> Option<AriChoice> {
    let fp = leaf.sha256_fingerprint();
    let kept = st.ari.as_ref().filter(|r| r.fingerprint == fp).cloned();
    if let Some(r) = &kept
        && now < r.next_check
    {
        return Some(choice(r));
    }
    if kept.is_none()
        && let Some(t) = st.ari_absent_checked
        && now < t + time::Duration::hours(24)
    {
        return None;
    }
    let ca = match run.services.ca().await {
        Ok(ca) => ca,
        Err(e) => {
            run.sink
                .warning(&format!("cannot ask the CA when to renew (ARI): {e}"));
            return kept.as_ref().map(choice);
        }
    };
    match ca.renewal_info(leaf.der()).await {
        Ok(Some(w)) => {
            let chosen = match &kept {
                Some(r) if r.start == w.start && r.end == w.end => r.chosen,
                _ => policy::pick_in_window(w.start, w.end, rand::random::<f64>()),
            };
            let recheck = w
                .retry_after
                .clamp(Duration::from_secs(60), Duration::from_secs(12 * 3600));
            let rec = AriRecord {
                fingerprint: fp.to_string(),
                start: w.start,
                end: w.end,
                chosen,
                next_check: now + recheck,
                explanation_url: w.explanation_url,
            };
            if let Some(u) = &rec.explanation_url {
                run.sink.ari_explained(u);
            }
            let c = choice(&rec);
            st.ari = Some(rec);
            st.ari_absent_checked = None;
            Some(c)
        }
        Ok(None) => {
            st.ari = None;
            st.ari_absent_checked = Some(now);
            None
        }
        Err(e) => {
            run.sink.warning(&format!(
                "the CA's renewal information (ARI) is unavailable ({e}); using the lifetime rule"
            ));
            kept.as_ref().map(choice)
        }
    }
}

fn choice(r: &AriRecord) -> AriChoice {
    AriChoice {
        start: r.start,
        end: r.end,
        chosen: r.chosen,
    }
}
