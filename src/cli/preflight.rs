//! The checks a command that orders (`issue`, `renew`) runs before its first side effect:
//! everything that needs no network. Secrets resolvable, files present and readable (the
//! client CA, the verification's CA file, client certificate and key, the trust roots, the
//! CA's HTTPS roots), deployment and verification settings valid. A run that would fail at
//! deployment for one of these reasons fails here instead, with nothing ordered, stored or
//! changed (exit code 2).
//!
//! Owns: which checks run. The checks themselves are the ones the stages run later
//! (`deploy::from_config`, `verify::probe_target`, `issue::load_anchors`), so the two can
//! never disagree. Does not own `plan`, which walks the same checks while listing calls.

use super::verify::{VerifyOptions, probe_target, wanted_after_deploy};
use crate::config::{CertificateSpec, Settings};
use crate::deploy::from_config;
use crate::error::Error;

/// The checks shared by every certificate of a run: trust anchors and the CA's HTTPS roots.
pub fn check_run(settings: &Settings) -> Result<(), Error> {
    super::issue::load_anchors(settings)?;
    crate::acme::http::AcmeHttp::new(&settings.acme.https_roots)?;
    Ok(())
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

/// Runs every check for every certificate of `settings`; prints each failure as one error
/// paragraph and returns the first failure's exit code.
pub fn check_all(settings: &Settings) -> Result<(), i32> {
    let mut first = None;
    let mut fail = |what: String, e: Error| {
        super::output::error(&format!(
            "{what}{e}. Nothing was ordered or changed: fix this first (the check needs no network)"
        ));
        first.get_or_insert(e.exit_code());
    };
    if let Err(e) = check_run(settings) {
        fail(String::new(), e);
    }
    for spec in &settings.certificates {
        if let Err(e) = check(settings, spec) {
            fail(format!("`{}`: ", spec.name), e);
        }
    }
    first.map_or(Ok(()), Err)
}
