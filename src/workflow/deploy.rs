//! The deploy stage: check the certificate against every target's import rules first (so a
//! certificate some target would refuse spends no write anywhere), then install it on each
//! target in order and wait until each serves it.
//!
//! Owns: that ordering and the per-target outcome list. Does not own any target's protocol.

use time::OffsetDateTime;

use crate::config::CertificateSpec;
use crate::deploy::emqx_cloud::preflight;
use crate::deploy::{DeployError, DeployOutcome, DeployProgress, DeploymentTarget, Material};

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
