//! What is deployed now: the stored certificate when it is the one deployed (no network),
//! else what the deployment targets report, else what the broker serves over TLS.
//!
//! Owns: those readings. Does not own what is decided from them (`decide`).

use crate::config::{CertificateSpec, DeployFile};
use crate::deploy::DeploymentTarget;
use crate::deploy::identity::Expire;
use crate::error::Error;
use crate::pki::bundle::first_certificate;
use crate::pki::certificate::Certificate;
use crate::renew::policy::Current;
use crate::renew::state::RenewalState;
use crate::store::Store;
use crate::workflow::services::Services;
use crate::workflow::verify::{VerifyOptions, probe_target};

/// What is deployed now, and how it was learned.
pub(super) struct Observed {
    pub(super) current: Option<Current>,
    /// The full certificate, when known (local store or files target): ARI needs it.
    pub(super) leaf: Option<Certificate>,
}

/// The stored certificate of `name` (its leaf), if any.
pub fn read_live(store: &Store, name: &str) -> Result<Option<Certificate>, Error> {
    read_live_in(
        &crate::store::StateFiles::by_path(&store.root().join("live")),
        name,
    )
}

/// [`read_live`] from the store's `live` directory held open (a run over many
/// certificates).
pub fn read_live_in(
    live: &crate::store::StateFiles,
    name: &str,
) -> Result<Option<Certificate>, Error> {
    let Some(text) = live.read(&format!("{name}/cert.pem"))? else {
        return Ok(None);
    };
    Ok(first_certificate(text.as_bytes()))
}

/// What `leaf` says about what is deployed.
pub(super) fn leaf_current(leaf: &Certificate) -> Option<Current> {
    Some(Current {
        not_before: Some(leaf.not_before()),
        not_after: leaf.not_after(),
    })
}

/// The earliest expiry any target reports (None when no target says). EMQX Cloud's
/// `expire` names no time zone: the reading carries its slack (see `deploy::identity`).
pub(super) async fn observe_targets(targets: &[Box<dyn DeploymentTarget>]) -> Option<Expire> {
    let mut best: Option<Expire> = None;
    for t in targets {
        match t.current().await {
            // A failed or pending configuration serves nothing reliable: as if none.
            Ok(Some(s)) if !matches!(s.status.as_str(), "running" | "files") => return None,
            Ok(Some(s)) => {
                if let Some(exp) = s.expire
                    && best.is_none_or(|b| exp.earliest() < b.earliest())
                {
                    best = Some(exp);
                }
            }
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("cannot read what {} serves: {e}", t.describe());
            }
        }
    }
    best
}

/// What is deployed: the local certificate when it is the one deployed (no network), else
/// what the targets report, else what the broker serves over TLS.
pub(super) async fn observe(
    services: &Services<'_>,
    spec: &CertificateSpec,
    targets: &[Box<dyn DeploymentTarget>],
    live: Option<&Certificate>,
    st: &RenewalState,
) -> Observed {
    if let Some(leaf) = live
        && (targets.is_empty()
            || st.deployed_fingerprint.as_deref() == Some(leaf.sha256_fingerprint()))
    {
        return Observed {
            current: leaf_current(leaf),
            leaf: Some(leaf.clone()),
        };
    }
    if !targets.is_empty() {
        if let Some(e) = observe_targets(targets).await {
            // Never later than the real expiry, whatever time zone it was given in.
            let c = Current {
                not_before: None,
                not_after: e.earliest(),
            };
            // A files target's file is the certificate itself: ARI can use it.
            let leaf = files_leaf(spec).filter(|l| e.matches(l.not_after()));
            return Observed {
                current: leaf.as_ref().and_then(leaf_current).or(Some(c)),
                leaf,
            };
        }
        if let Some(c) = probe_served(services, spec).await {
            return Observed {
                current: Some(c),
                leaf: None,
            };
        }
        return Observed {
            current: None,
            leaf: None,
        };
    }
    Observed {
        current: None,
        leaf: None,
    }
}

/// The certificate a files target wrote, if any.
fn files_leaf(spec: &CertificateSpec) -> Option<Certificate> {
    spec.deploy.iter().find_map(|d| match d {
        DeployFile::Files(f) => {
            let p = f.fullchain.as_ref().or(f.cert.as_ref())?;
            let bytes =
                crate::bounded_read::read_file(p, crate::bounded_read::MAX_PEM_FILE).ok()?;
            first_certificate(&bytes)
        }
        _ => None,
    })
}

/// The certificate the broker serves, from a TLS handshake (no MQTT needed to succeed).
async fn probe_served(services: &Services<'_>, spec: &CertificateSpec) -> Option<Current> {
    let opts = VerifyOptions::default();
    let target = probe_target(services.settings(), spec, &opts).ok()??;
    let report = services.probe().probe(&target).await.ok()?;
    report.transports.iter().find_map(|t| {
        let c = t.server_certificate.as_ref()?;
        Some(Current {
            not_before: c.not_before,
            not_after: c.not_after?,
        })
    })
}
