//! What `Settings::load` checks beyond the file's shape, so that a configuration that can
//! never work fails at load — before any order, with exit code 2 from every command —
//! instead of when a stage first needs it: the extra trust roots (read and parsed) and the
//! verification settings of every certificate verified after its deployment. Secret
//! references stay lazy: they are resolved when used.
//!
//! Owns: those checks and the trust anchors' loading. Does not own the probe built from the
//! verification settings (`workflow::verify`) nor the deployment targets (`deploy`).

use super::{CertificateSpec, ConfigError, DeployFile, Settings};
use crate::pki::anchors::TrustAnchors;

/// Every check, for every certificate.
pub(super) fn check(settings: &Settings) -> Result<(), ConfigError> {
    trust_anchors(settings)?;
    for spec in &settings.certificates {
        if !spec.deploy.is_empty() && verified_after_deploy(spec) {
            check_verify(spec)?;
        }
    }
    Ok(())
}

/// Builds the trust anchors from settings: bundled, system (optional), extra files.
pub fn trust_anchors(settings: &Settings) -> Result<TrustAnchors, ConfigError> {
    let mut anchors = TrustAnchors::bundled();
    if settings.system_roots {
        anchors = anchors.with_system();
    }
    for p in &settings.extra_roots {
        let text = crate::bounded_read::read_text(p, crate::bounded_read::MAX_PEM_FILE).map_err(|e| {
            ConfigError::Trust(format!(
                "cannot read the extra trust root `{}` (setting `trust.extra_roots`, flag `--trust-root`): {e}",
                p.display()
            ))
        })?;
        anchors.add_extra_pem(text.as_bytes()).map_err(|e| {
            ConfigError::Trust(format!(
                "`{}` (setting `trust.extra_roots`) is not a PEM root certificate: {e}",
                p.display()
            ))
        })?;
    }
    Ok(anchors)
}

/// Whether deploying `spec` should be followed by verification.
pub fn verified_after_deploy(spec: &CertificateSpec) -> bool {
    match &spec.verify {
        Some(v) => v.skip != Some(true),
        None => spec
            .deploy
            .iter()
            .any(|d| matches!(d, DeployFile::EmqxCloud(_))),
    }
}

/// A problem with `spec`'s `[certificate.verify]`, described by `msg`.
pub fn verify_error(spec: &CertificateSpec, msg: String) -> ConfigError {
    ConfigError::Invalid {
        setting: format!("certificate `{}` verify", spec.name),
        found: msg,
        expected: "a usable verification setting".into(),
        fix: "Fix `[certificate.verify]` in the configuration.".into(),
    }
}

/// The transports verification knows.
pub const TRANSPORTS: &[&str] = &["mqtts", "wss"];

/// The checks of `[certificate.verify]` that need no file, secret or network (the probe
/// target makes the same ones, `workflow::verify::probe_target`).
pub fn check_verify(spec: &CertificateSpec) -> Result<(), ConfigError> {
    let Some(v) = &spec.verify else {
        return check_host(spec, None);
    };
    if v.skip == Some(true) {
        return Ok(());
    }
    check_host(spec, v.host.as_deref())?;
    if let Some(c) = &v.connect
        && c.parse::<std::net::IpAddr>().is_err()
    {
        return Err(verify_error(
            spec,
            format!("`connect = \"{c}\"` is not an IP address"),
        ));
    }
    for s in v.transports.iter().flatten() {
        if !TRANSPORTS.contains(&s.as_str()) {
            return Err(verify_error(
                spec,
                format!("transport `{s}`: expected \"mqtts\" or \"wss\""),
            ));
        }
    }
    if v.client_cert.is_some() != v.client_key.is_some() {
        return Err(verify_error(
            spec,
            "`client_cert` and `client_key` go together".into(),
        ));
    }
    for s in v.anonymous_check.iter().flatten() {
        if !TRANSPORTS.contains(&s.as_str()) {
            return Err(verify_error(
                spec,
                format!("anonymous_check `{s}`: expected \"mqtts\" or \"wss\""),
            ));
        }
    }
    Ok(())
}

fn check_host(spec: &CertificateSpec, host: Option<&str>) -> Result<(), ConfigError> {
    if host.is_none() && spec.domains.first().is_some_and(|d| d.is_wildcard()) {
        return Err(verify_error(
            spec,
            "the first domain is a wildcard, so there is no host to connect to; set `host`".into(),
        ));
    }
    Ok(())
}
