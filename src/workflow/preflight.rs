//! The checks a command that orders (`issue`, `renew`) runs before its first side effect:
//! everything that needs no network. Secrets resolvable, files present and readable (the
//! client CA, the verification's CA file, client certificate and key, the trust roots, the
//! CA's HTTPS roots), deployment and verification settings valid. A run that would fail at
//! deployment for one of these reasons fails here instead, with nothing ordered, stored or
//! changed (exit code 2).
//!
//! Owns: which checks run, and the trust anchors' loading. The checks themselves are the ones
//! the stages run later (`deploy::from_config`, `verify::probe_target`, [`load_anchors`]), so
//! the two can never disagree. Does not own printing (`cli::preflight`) nor `plan`.

use crate::config::{CertificateSpec, Settings};
use crate::deploy::from_config;
use crate::error::Error;
use crate::pki::anchors::TrustAnchors;
use crate::workflow::verify::{VerifyOptions, probe_target, wanted_after_deploy};

/// Builds the trust anchors from settings: bundled, system (optional), extra files (see
/// `config::checked`, which checks them at load).
pub fn load_anchors(settings: &Settings) -> Result<TrustAnchors, Error> {
    Ok(crate::config::checked::trust_anchors(settings)?)
}

/// The checks shared by every certificate of a run: trust anchors and the CA's HTTPS roots.
/// Returns the anchors it loaded. The HTTPS roots are read and parsed as the CA's client
/// will read them, without building that client (it reads the system's ~300 root files,
/// 10–20 ms of CPU; the CA connection builds it once). A run makes these checks once, not
/// once per certificate (`renew`'s `Run::shared_checks`).
pub fn check_run(settings: &Settings) -> Result<TrustAnchors, Error> {
    let anchors = load_anchors(settings)?;
    crate::acme::http::AcmeHttp::read_roots(&settings.acme.https_roots)?;
    Ok(anchors)
}

/// The checks of one certificate: its deployment targets (secrets, client CA, settings)
/// and, when it is verified after deployment, its verification settings and files.
pub fn check(settings: &Settings, spec: &CertificateSpec) -> Result<(), Error> {
    from_config::targets(spec)?;
    if !spec.deploy.is_empty() && wanted_after_deploy(spec) {
        probe_target(settings, spec, &VerifyOptions::default())?;
    }
    Ok(())
}
