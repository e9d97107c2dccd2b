//! The verify stage: builds the probe's target from `[certificate.verify]` and the stored
//! certificate, probes until the broker settles, and judges the report.
//!
//! Owns: the probe target, the settle loop, the judgement of a report (`check`). Does not own
//! printing (the CLI renders the report) nor the MQTT/TLS protocol (`crate::verify`).

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{CertificateSpec, DeployFile, Settings};
use crate::error::Error;
use crate::pki::bundle::parse_bundle;
use crate::progress::{Progress, Stage, Waiting};
use crate::secret;
use crate::store::Store;
use crate::verify::{
    DnsResolver, MqttProbe, ProbeReport, ProbeTarget, Resolver, SystemResolver, Transport,
    VerifyFailure,
};

/// How long verification after a deploy waits for the broker to switch over by default.
pub const DEFAULT_SETTLE: std::time::Duration = std::time::Duration::from_secs(15);

/// Per-run choices for verification.
#[derive(Debug, Default, Clone)]
pub struct VerifyOptions {
    /// Connect here instead of resolving the host.
    pub connect: Option<IpAddr>,
    /// Expect this serial instead of the stored certificate's fingerprint.
    pub expect_serial: Option<String>,
    /// Expect this leaf (what was just deployed) instead of the stored one.
    pub expect_leaf: Option<crate::pki::certificate::Certificate>,
    /// Keep retrying this long while the broker is still switching over (after a deploy).
    pub settle: std::time::Duration,
}

impl VerifyOptions {
    /// Verification right after deploying `leaf`: expect exactly it, and give the broker
    /// `verify.settle_timeout` (default [`DEFAULT_SETTLE`]) to switch over (a reload or an
    /// asynchronous apply takes a moment; a broker re-reading files on a timer, longer).
    pub fn after_deploy(
        spec: &CertificateSpec,
        leaf: &crate::pki::certificate::Certificate,
    ) -> Self {
        Self {
            expect_leaf: Some(leaf.clone()),
            settle: spec
                .verify
                .as_ref()
                .and_then(|v| v.settle_timeout)
                .unwrap_or(DEFAULT_SETTLE),
            ..Default::default()
        }
    }
}

/// Whether deploying `spec` should be followed by verification.
pub fn wanted_after_deploy(spec: &CertificateSpec) -> bool {
    crate::config::checked::verified_after_deploy(spec)
}

fn cfg_err(spec: &CertificateSpec, msg: String) -> Error {
    Error::Config(crate::config::checked::verify_error(spec, msg))
}

fn parse_transport(s: &str) -> Option<Transport> {
    match s {
        "mqtts" => Some(Transport::Mqtts),
        "wss" => Some(Transport::Wss),
        _ => None,
    }
}

/// Builds the probe target from the settings and the stored certificate.
pub fn probe_target(
    settings: &Settings,
    spec: &CertificateSpec,
    opts: &VerifyOptions,
) -> Result<Option<ProbeTarget>, Error> {
    let v = spec.verify.clone().unwrap_or_default();
    if v.skip == Some(true) {
        return Ok(None);
    }
    let host = match &v.host {
        Some(h) => h.clone(),
        None if spec.domains[0].is_wildcard() => {
            return Err(cfg_err(
                spec,
                "the first domain is a wildcard, so there is no host to connect to; set `host`"
                    .into(),
            ));
        }
        None => spec.domains[0].to_string(),
    };
    let mut t = ProbeTarget::new(host);
    t.connect_addr = match (opts.connect, &v.connect) {
        (Some(ip), _) => Some(ip),
        (None, Some(c)) => Some(
            c.parse()
                .map_err(|_| cfg_err(spec, format!("`connect = \"{c}\"` is not an IP address")))?,
        ),
        (None, None) => None,
    };
    if let Some(p) = v.mqtts_port {
        t.mqtts_port = p;
    }
    if let Some(p) = v.wss_port {
        t.wss_port = p;
    }
    if let Some(p) = &v.wss_path {
        t.wss_path = p.clone();
    }
    if let Some(list) = &v.transports {
        t.transports = list
            .iter()
            .map(|s| {
                parse_transport(s).ok_or_else(|| {
                    cfg_err(
                        spec,
                        format!("transport `{s}`: expected \"mqtts\" or \"wss\""),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
    }
    let store = Store::new(&settings.state_dir);
    let read = |p: &std::path::Path, what: &str| {
        crate::bounded_read::read_text(p, crate::bounded_read::MAX_SMALL_FILE).map_err(|e| {
            cfg_err(
                spec,
                format!("cannot read the {what} `{}`: {e}", p.display()),
            )
        })
    };
    t.ca_pem = match &v.ca_file {
        Some(p) => Some(read(p, "CA file")?),
        None => store.read_live(&spec.name, "root.pem")?,
    };
    t.username = v.username.clone();
    if v.password_env.is_some() || v.password_file.is_some() {
        t.password = Some(
            secret::load(
                "MQTT password",
                v.password_env.as_deref(),
                v.password_file.as_deref(),
                "verify.password",
            )
            .map_err(|m| cfg_err(spec, m))?,
        );
    }
    match (&v.client_cert, &v.client_key) {
        (Some(c), Some(k)) => {
            t.client_cert_pem = Some(read(c, "client certificate")?);
            t.client_key_pem = Some(secret::Secret::new(read(k, "client key")?));
        }
        (None, None) => {}
        _ => {
            return Err(cfg_err(
                spec,
                "`client_cert` and `client_key` go together".into(),
            ));
        }
    }
    let two_way = spec
        .deploy
        .iter()
        .any(|d| matches!(d, DeployFile::EmqxCloud(e) if e.tls.as_deref() == Some("two-way")));
    t.check_refuses_anonymous_tls = two_way || t.client_cert_pem.is_some();
    if let Some(list) = &v.anonymous_check {
        t.anonymous_check_transports = Some(
            list.iter()
                .map(|s| {
                    parse_transport(s).ok_or_else(|| {
                        cfg_err(
                            spec,
                            format!("anonymous_check `{s}`: expected \"mqtts\" or \"wss\""),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        );
    }
    if let Some(leaf) = &opts.expect_leaf {
        t.expect_cert_fingerprint = Some(leaf.sha256_fingerprint().to_string());
        t.expect_cert_serial = Some(leaf.serial_hex().to_string());
    } else if opts.expect_serial.is_none()
        && let Some(pem) = store.read_live(&spec.name, "cert.pem")?
        && let Some(leaf) = parse_bundle(pem.as_bytes())
            .ok()
            .and_then(|b| b.certificates.into_iter().next())
    {
        t.expect_cert_fingerprint = Some(leaf.sha256_fingerprint().to_string());
        t.expect_cert_serial = Some(leaf.serial_hex().to_string());
    }
    if let Some(d) = v.timeout {
        t.timeout = d;
    }
    Ok(Some(t))
}

/// The resolver verification uses: the configured DNS servers, else the system's.
pub fn resolver(settings: &Settings) -> Arc<dyn Resolver> {
    let mut servers: Vec<_> = settings.dns.resolver.into_iter().collect();
    servers.extend(settings.dns.nameservers.iter().copied());
    if servers.is_empty() {
        Arc::new(SystemResolver)
    } else {
        Arc::new(DnsResolver::new(servers))
    }
}

/// The first failure in `r`: a transport that failed, or one serving another serial than
/// `expect_serial`.
pub fn check(r: &ProbeReport, expect_serial: Option<&str>) -> Result<(), Error> {
    for t in &r.transports {
        match &t.outcome {
            Ok(_) => {
                if let (Some(want), Some(c)) = (expect_serial, &t.server_certificate)
                    && !c.serial_hex.eq_ignore_ascii_case(want)
                {
                    return Err(VerifyFailure::WrongSerial {
                        url: t.url.clone(),
                        serial: c.serial_hex.clone(),
                        not_after: c.not_after_text(),
                        expected: want.to_string(),
                    }
                    .into());
                }
            }
            Err(e) => {
                return Err(VerifyFailure::Transport {
                    transport: t.transport,
                    error: e.clone(),
                }
                .into());
            }
        }
    }
    Ok(())
}

/// Probes until the broker passes or the settle time is over; `None` when verification is
/// skipped by configuration. The report is returned whether it passed or not.
pub async fn probe_settled(
    probe: &dyn MqttProbe,
    settings: &Settings,
    spec: &CertificateSpec,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<Option<ProbeReport>, Error> {
    let Some(target) = probe_target(settings, spec, opts)? else {
        return Ok(None);
    };
    // A broker picks up new files or a new configuration a moment after it was told to:
    // retry with a short backoff within the settle time, then report what it served last.
    let start = tokio::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        progress.update(
            Stage::Verify,
            &format!("MQTT round trip with {}", target.host),
        );
        let r = probe.probe(&target).await.map_err(|e| {
            progress.pause();
            Error::from(VerifyFailure::Probe(e))
        })?;
        if r.is_ok() || start.elapsed() + delay > opts.settle {
            for t in &r.transports {
                if let Ok(rt) = &t.outcome {
                    progress.done(
                        Stage::Verify,
                        &format!("{} round trip OK", t.transport),
                        rt.round_trip,
                    );
                }
            }
            progress.pause();
            return Ok(Some(r));
        }
        tracing::debug!("verification not passing yet; retrying in {delay:?}");
        let failing = r
            .transports
            .iter()
            .filter(|t| !t.is_ok())
            .map(|t| t.transport.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        progress.waiting(
            Stage::Verify,
            &Waiting {
                what: &format!("{} does not pass yet ({failing})", target.host),
                waiting_for: Some("the broker to serve the new certificate"),
                elapsed: start.elapsed(),
                next_check: Some(delay),
            },
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(2));
    }
}

/// One probe, without waiting for the broker to settle: whether the broker presents a leaf
/// other than `leaf` (a different certificate, not merely a failed connection). EMQX Cloud
/// names what it serves only by its expiry, to the second, so "already served" needs this
/// second opinion when two certificates expire in the same second.
pub async fn serves_another_certificate(
    probe: &dyn MqttProbe,
    settings: &Settings,
    spec: &CertificateSpec,
    leaf: &crate::pki::certificate::Certificate,
    progress: &dyn Progress,
) -> bool {
    let opts = VerifyOptions {
        expect_leaf: Some(leaf.clone()),
        settle: std::time::Duration::ZERO,
        ..Default::default()
    };
    match probe_settled(probe, settings, spec, &opts, progress).await {
        Ok(Some(report)) => report.transports.iter().any(|t| {
            t.server_certificate.as_ref().is_some_and(|c| {
                !c.sha256_fingerprint
                    .eq_ignore_ascii_case(leaf.sha256_fingerprint())
            })
        }),
        _ => false,
    }
}
