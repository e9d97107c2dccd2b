//! Turning `[[certificate.deploy]]` sections into targets: loads secrets from their
//! variables or files (only now, when they are needed) and reads the client CA.
//!
//! Owns: defaults and the messages for missing or bad target settings.

use std::time::Duration;

use super::emqx_cloud::{DEFAULT_BASE_URL, DeploymentType, EmqxCloud, EmqxCloudSettings, TlsMode};
use super::files::{FilesSettings, FilesTarget};
use super::rules::ImportRules;
use super::{DeployError, DeploymentTarget};
use crate::config::{CertificateSpec, DeployFile, EmqxCloudFile, FilesFile};
use crate::pki::bundle::parse_bundle;
use crate::secret;

fn config_err(target: String, message: String) -> DeployError {
    DeployError::Config { target, message }
}

fn read_client_ca(target: &str, path: &std::path::Path) -> Result<String, DeployError> {
    let text =
        crate::bounded_read::read_text(path, crate::bounded_read::MAX_PEM_FILE).map_err(|e| {
            config_err(
                target.into(),
                format!("cannot read `client_ca` `{}`: {e}", path.display()),
            )
        })?;
    let bundle = parse_bundle(text.as_bytes()).map_err(|e| {
        config_err(
            target.into(),
            format!("`client_ca` `{}` is unusable: {e}", path.display()),
        )
    })?;
    match bundle.certificates.first() {
        Some(c) if c.is_ca() => Ok(crate::pki::bundle::normalise_pem(&bundle.certificates)),
        Some(c) => Err(config_err(
            target.into(),
            format!(
                "`client_ca` `{}` holds {}, which is not a CA certificate (basicConstraints CA:TRUE); point it at the client CA, not a client certificate",
                path.display(),
                c.display_name()
            ),
        )),
        None => Err(config_err(
            target.into(),
            format!("`client_ca` `{}` holds no certificate", path.display()),
        )),
    }
}

fn emqx(spec: &CertificateSpec, e: &EmqxCloudFile) -> Result<EmqxCloud, DeployError> {
    // Checked at load too; a library caller building settings by hand gets the same check.
    crate::config::check_deployment_id(&e.deployment_id).map_err(|expected| {
        config_err(
            "EMQX Cloud".into(),
            format!(
                "`deployment_id = {:?}`: expected {expected}",
                e.deployment_id
            ),
        )
    })?;
    let target = format!("EMQX Cloud deployment {}", e.deployment_id);
    let tls = match e.tls.as_deref().unwrap_or("one-way") {
        "one-way" => TlsMode::OneWay,
        "two-way" => TlsMode::TwoWay,
        other => {
            return Err(config_err(
                target,
                format!("`tls = \"{other}\"`: expected \"one-way\" or \"two-way\""),
            ));
        }
    };
    let key_env = e
        .api_key_env
        .clone()
        .unwrap_or_else(|| "EMQX_CLOUD_API_KEY".into());
    let secret_env = e
        .api_secret_env
        .clone()
        .unwrap_or_else(|| "EMQX_CLOUD_API_SECRET".into());
    let api_key = secret::load_or_inline(
        "Platform API key",
        Some(&key_env),
        e.api_key_file.as_deref(),
        e.api_key.as_ref(),
        "api_key",
    )
    .map_err(|m| config_err(target.clone(), m))?;
    let api_secret = secret::load_or_inline(
        "Platform API secret",
        Some(&secret_env),
        e.api_secret_file.as_deref(),
        e.api_secret.as_ref(),
        "api_secret",
    )
    .map_err(|m| config_err(target.clone(), m))?;
    let client_ca_pem = e
        .client_ca
        .as_deref()
        .map(|p| read_client_ca(&target, p))
        .transpose()?;
    let deployment_type = match e.deployment_type.as_deref() {
        None => None,
        Some(t) => Some(DeploymentType::parse(t).ok_or_else(|| {
            config_err(
                target.clone(),
                format!(
                    "`deployment_type = \"{t}\"`: expected \"dedicated\", \"dedicatedFlex\", \"byoc\" or \"serverless\" (the type the console shows on the deployment's overview), or leave it out"
                ),
            )
        })?),
    };
    let mut rules = ImportRules::emqx_cloud();
    if let Some(d) = e.min_days_left {
        rules.min_days_left = d;
    }
    EmqxCloud::new(EmqxCloudSettings {
        name: spec.name.clone(),
        base_url: e
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.into()),
        deployment_id: e.deployment_id.clone(),
        api_key,
        api_secret,
        tls,
        client_ca_pem,
        api_roots: e.api_roots.clone(),
        poll_interval: crate::bounds::at_least(
            "`certificate.deploy.poll_interval`",
            e.poll_interval.unwrap_or(Duration::from_secs(5)),
            crate::bounds::MIN_POLL_INTERVAL,
        )
        .map_err(|m| config_err("EMQX Cloud".into(), m))?,
        poll_timeout: e.poll_timeout.unwrap_or(Duration::from_secs(30 * 60)),
        max_retry_after: Duration::from_secs(120),
        request_timeout: e.request_timeout.unwrap_or(Duration::from_secs(60)),
        rules,
        deployment_type,
    })
}

fn parse_mode(
    target: &str,
    field: &str,
    v: Option<&str>,
    default: u32,
) -> Result<u32, DeployError> {
    match v {
        None => Ok(default),
        Some(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| {
                config_err(
                    target.into(),
                    format!("`{field} = \"{s}\"`: expected an octal mode like \"0640\""),
                )
            }),
    }
}

fn files(f: &FilesFile) -> Result<FilesTarget, DeployError> {
    let target = "files target".to_string();
    let client_ca = match (&f.client_ca, &f.client_ca_source) {
        (Some(dest), Some(src)) => Some((dest.clone(), read_client_ca(&target, src)?)),
        (Some(_), None) => {
            return Err(config_err(
                target,
                "`client_ca` is set but `client_ca_source` (the client CA to copy) is not".into(),
            ));
        }
        _ => None,
    };
    FilesTarget::new(FilesSettings {
        cert: f.cert.clone(),
        chain: f.chain.clone(),
        fullchain: f.fullchain.clone(),
        key: f.key.clone(),
        root: f.root.clone(),
        client_ca,
        owner: f.owner.clone(),
        group: f.group.clone(),
        mode: parse_mode(&target, "mode", f.mode.as_deref(), 0o644)?,
        key_mode: parse_mode(&target, "key_mode", f.key_mode.as_deref(), 0o600)?,
        reload: f.reload.clone(),
        reload_timeout: f.reload_timeout.unwrap_or(Duration::from_secs(60)),
        reload_pass_env: f.reload_pass_env.clone(),
    })
}

/// The targets configured for `spec`, in order.
pub fn targets(spec: &CertificateSpec) -> Result<Vec<Box<dyn DeploymentTarget>>, DeployError> {
    spec.deploy
        .iter()
        .map(|d| -> Result<Box<dyn DeploymentTarget>, DeployError> {
            let target: Box<dyn DeploymentTarget> = match d {
                DeployFile::EmqxCloud(e) => Box::new(emqx(spec, e)?),
                DeployFile::Files(f) => Box::new(files(f)?),
            };
            for w in target.warnings() {
                tracing::warn!("{w}");
            }
            Ok(target)
        })
        .collect()
}
