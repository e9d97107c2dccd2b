//! What `issue` does after storing: deploy to the configured targets, then verify.
//! A failure here leaves the new certificate stored and the previous one served where the
//! target allows; the message says what to run next.

use std::path::Path;
use std::time::Duration;

use super::output;
use super::progress_display::CertProgress;
use crate::clock::{Clock, SystemClock};
use crate::config::CertificateSpec;
use crate::deploy::{Material, from_config};
use crate::error::{Error, exit};
use crate::progress::Stage;
use crate::workflow::deploy::deploy_and_verify as deploy_then_verify;

/// Deploys (and verifies) a freshly stored certificate; returns an exit code. The time
/// each of the two steps took is pushed to `timings`, and each target's API requests to
/// `api_usage` (for `--timings`). `kept`: the stored certificate was kept (not a new one), so
/// a target that already serves it gets no write.
pub async fn deploy_and_verify(
    settings: &crate::config::Settings,
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
    let deploying = deploy_then_verify(settings, spec, &material, &targets, kept, true, progress);
    let done = match super::interrupt::unless_interrupted(progress, &then, deploying).await {
        Ok(d) => d,
        Err(code) => return code,
    };
    api_usage.extend(targets.iter().filter_map(|t| t.api_usage()));
    match done {
        Ok(d) => {
            timings.extend(d.timings);
            record_deployed(settings, spec, &material.leaf);
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

/// Remembers in the renewal state (`renewal/<name>.json`) until when the CA asked not to
/// be asked again (a rate limit's `Retry-After`), so that `renew` waits for it. Best effort.
pub fn record_rate_limit(
    settings: &crate::config::Settings,
    spec: &CertificateSpec,
    until: time::OffsetDateTime,
    error: &Error,
) {
    use crate::renew::state;
    let dir = settings.state_dir.join("renewal");
    let (mut st, _) = state::load(&dir, &spec.name);
    st.retry_not_before = Some(until);
    st.last_error = Some(error.to_string());
    st.last_code = Some(error.exit_code());
    if let Err(e) = state::save(&dir, &spec.name, &st) {
        output::warning(&format!("cannot save the renewal state: {e}"));
    }
}

/// Remembers in the renewal state (`renewal/<name>.json`) that `leaf` is deployed and
/// verified, as `renew` does after its own deployments, so that the next `renew` knows it is
/// done instead of observing the targets and verifying it once more. Best effort: a failure
/// only costs that next run the extra check.
pub fn record_deployed(
    settings: &crate::config::Settings,
    spec: &CertificateSpec,
    leaf: &crate::pki::certificate::Certificate,
) {
    use crate::renew::state;
    let dir = settings.state_dir.join("renewal");
    let (mut st, _) = state::load(&dir, &spec.name);
    let fingerprint = leaf.sha256_fingerprint().to_string();
    st.deployed_fingerprint = Some(fingerprint);
    st.last_success = Some(SystemClock.now());
    if let Err(e) = state::save(&dir, &spec.name, &st) {
        output::warning(&format!("cannot save the renewal state: {e}"));
    }
}
