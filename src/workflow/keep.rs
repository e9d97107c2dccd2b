//! Whether `issue` may keep the stored certificate instead of ordering: gathers what
//! `renew::keep` decides on (the stored leaf, the renewal state's issuer, profile and ARI
//! window, the targets' import windows).
//!
//! Owns: gathering those. Does not own the decision (`renew::keep`, pure) nor printing.

use crate::config::Settings;
use crate::deploy::from_config;
use crate::pki::certificate::Certificate;
use crate::renew::keep::{Keep, OrderBecause, Wanted};
use crate::renew::policy::AriChoice;
use crate::renew::state;
use crate::store::Store;

/// The stored certificate of `spec` and when it becomes due, when `issue` may keep it (see
/// `renew::keep`); else why a new one is ordered.
pub fn keepable(
    settings: &Settings,
    spec: &crate::config::CertificateSpec,
    store: &Store,
    now: time::OffsetDateTime,
) -> Result<(Certificate, Keep), OrderBecause> {
    let leaf = crate::workflow::renew::observe::read_live(store, &spec.name)
        .ok()
        .flatten();
    let Some(leaf) = leaf else {
        return Err(OrderBecause::NothingStored);
    };
    let (st, _) = state::load(&settings.state_dir.join("renewal"), &spec.name);
    let fp = leaf.sha256_fingerprint();
    let ari = st
        .ari
        .as_ref()
        .filter(|r| r.fingerprint == fp)
        .map(|r| AriChoice {
            start: r.start,
            end: r.end,
            chosen: r.chosen,
        });
    // Targets whose settings are broken are reported by the deployment (or, before any
    // order, by the checks); here they only lack an import window.
    let import_min_days_left = from_config::targets(spec)
        .ok()
        .and_then(|t| t.iter().map(|t| t.rules().min_days_left).max());
    let keep = crate::renew::keep::keep_stored(
        Some(&leaf),
        &Wanted {
            domains: &spec.domains,
            key_type: spec.key_type,
            directory: &settings.acme.directory,
            issued_by: st.issuer_of(fp),
            profile: settings.acme.profile.as_deref(),
            issued_profile: st.profile_of(fp),
            now,
            assumed_lifetime: settings.renew.assumed_lifetime,
            import_min_days_left,
            ari,
        },
    )?;
    Ok((leaf, keep))
}
