//! Whether `issue` may keep the stored certificate instead of ordering a new one (certbot's
//! "certificate not yet due for renewal; no action taken").
//!
//! Owns: the comparison of the stored leaf with what the configuration asks for (the same
//! names, key type and CA) and the question "is it due?", answered by `policy::decide` with
//! the same rules `renew` uses. A pure function: reading the store and the renewal state,
//! the clock and the flags that override it (`--force-renewal`, `--new-key`) are the
//! caller's. Does not own deployment or verification of what is kept.

use std::time::Duration;

use time::OffsetDateTime;

use super::policy::{self, AriChoice, Current, Decision, Failures, Inputs, Reason};
use crate::names::DomainName;
use crate::pki::KeyKind;
use crate::pki::certificate::Certificate;
use crate::pki::keys::KeyType;

/// What the caller knows besides the stored leaf.
#[derive(Debug, Clone)]
pub struct Wanted<'a> {
    /// The configured names.
    pub domains: &'a [DomainName],
    /// The configured key type.
    pub key_type: KeyType,
    /// The configured CA's ACME directory URL.
    pub directory: &'a str,
    /// The directory that issued the stored leaf, when recorded (`None`: not known, e.g. a
    /// certificate stored by an older brokercert).
    pub issued_by: Option<&'a str>,
    /// The configured ACME profile (`acme.profile`), if any.
    pub profile: Option<&'a str>,
    /// The profile the stored leaf was ordered with, as recorded (`None`: none).
    pub issued_profile: Option<&'a str>,
    /// Now.
    pub now: OffsetDateTime,
    /// The lifetime assumed when only the expiry is known (`renew.assumed_lifetime`).
    pub assumed_lifetime: Duration,
    /// The strictest deployment target's import window, in days.
    pub import_min_days_left: Option<i64>,
    /// The CA's renewal window, when one was recorded for this leaf.
    pub ari: Option<AriChoice>,
}

/// Why a new order is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderBecause {
    /// Nothing stored.
    NothingStored,
    /// The stored certificate's names differ from the configured ones.
    NamesDiffer,
    /// The stored certificate's key is not of the configured type.
    KeyTypeDiffers,
    /// It came from another CA, or which CA issued it was not recorded.
    OtherCa,
    /// It was ordered with another profile than the configured one.
    OtherProfile,
    /// A deployment target would refuse it (too few days left for its import window).
    ImportWindow,
    /// Renewal is due.
    Due(Reason),
}

impl std::fmt::Display for OrderBecause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OrderBecause::NothingStored => "no certificate stored yet",
            OrderBecause::NamesDiffer => "the stored certificate covers other names",
            OrderBecause::KeyTypeDiffers => "the stored certificate has another key type",
            OrderBecause::OtherCa => {
                "the stored certificate is not known to come from the configured CA"
            }
            OrderBecause::OtherProfile => {
                "the stored certificate was ordered with another profile than `acme.profile`"
            }
            OrderBecause::ImportWindow => {
                "the stored certificate has too few days left for a deployment target"
            }
            OrderBecause::Due(Reason::Expired) => "the stored certificate has expired",
            OrderBecause::Due(Reason::AriWindow) => "the CA's renewal window (ARI) has begun",
            OrderBecause::Due(_) => "the stored certificate is due for renewal",
        })
    }
}

/// The stored certificate can be kept: it becomes due at `due` (by `by`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    /// When it becomes due.
    pub due: OffsetDateTime,
    /// What set that time.
    pub by: Reason,
}

/// Whether the stored `leaf` can be kept for `wanted`.
pub fn keep_stored(leaf: Option<&Certificate>, wanted: &Wanted<'_>) -> Result<Keep, OrderBecause> {
    let Some(leaf) = leaf else {
        return Err(OrderBecause::NothingStored);
    };
    let mut have: Vec<String> = leaf
        .dns_names()
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let mut want: Vec<String> = wanted
        .domains
        .iter()
        .map(|d| d.as_str().to_ascii_lowercase())
        .collect();
    have.sort();
    have.dedup();
    want.sort();
    want.dedup();
    if have != want {
        return Err(OrderBecause::NamesDiffer);
    }
    if leaf.key_kind() != key_kind(wanted.key_type) {
        return Err(OrderBecause::KeyTypeDiffers);
    }
    if wanted.issued_by != Some(wanted.directory) {
        return Err(OrderBecause::OtherCa);
    }
    if wanted.issued_profile != wanted.profile {
        return Err(OrderBecause::OtherProfile);
    }
    if let Some(min) = wanted.import_min_days_left
        && (leaf.not_after() - wanted.now).whole_days() <= min
    {
        return Err(OrderBecause::ImportWindow);
    }
    let decision = policy::decide(&Inputs {
        now: wanted.now,
        current: Some(Current {
            not_before: Some(leaf.not_before()),
            not_after: leaf.not_after(),
        }),
        ari: wanted.ari,
        failures: Failures::default(),
        force: false,
        assumed_lifetime: wanted.assumed_lifetime,
        import_min_days_left: None,
    });
    match decision {
        Decision::NotDue { next, by } => Ok(Keep { due: next, by }),
        Decision::Renew(r) => Err(OrderBecause::Due(r)),
        // Neither comes back without failures or an import window in the inputs.
        Decision::Backoff { .. } | Decision::ImportImpossible { .. } => {
            Err(OrderBecause::Due(Reason::Lifetime))
        }
    }
}

/// The public key kind a certificate of `t` has.
pub fn key_kind(t: KeyType) -> KeyKind {
    match t {
        KeyType::Rsa2048 => KeyKind::Rsa { bits: 2048 },
        KeyType::Rsa3072 => KeyKind::Rsa { bits: 3072 },
        KeyType::Rsa4096 => KeyKind::Rsa { bits: 4096 },
        KeyType::EcdsaP256 => KeyKind::EcdsaP256,
        KeyType::EcdsaP384 => KeyKind::EcdsaP384,
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair};
    use time::macros::datetime;

    use super::*;

    const DIR: &str = "https://acme.test/directory";

    fn leaf(names: &[&str], nb: OffsetDateTime, na: OffsetDateTime) -> Certificate {
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.not_before = nb;
        p.not_after = na;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let c = p.self_signed(&key).unwrap();
        Certificate::from_der(c.der()).unwrap()
    }

    fn names(n: &[&str]) -> Vec<DomainName> {
        n.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn wanted<'a>(domains: &'a [DomainName], now: OffsetDateTime) -> Wanted<'a> {
        Wanted {
            domains,
            key_type: KeyType::EcdsaP256,
            directory: DIR,
            issued_by: Some(DIR),
            profile: None,
            issued_profile: None,
            now,
            assumed_lifetime: Duration::from_secs(90 * 86_400),
            import_min_days_left: None,
            ari: None,
        }
    }

    #[test]
    fn a_current_certificate_of_the_same_names_type_and_ca_is_kept_until_due() {
        let nb = datetime!(2026-01-01 00:00 UTC);
        let l = leaf(
            &["mqtt.example.test", "b.example.test"],
            nb,
            datetime!(2026-04-01 00:00 UTC),
        );
        let d = names(&["B.example.test", "mqtt.example.test"]);
        let now = datetime!(2026-01-10 00:00 UTC);
        let k = keep_stored(Some(&l), &wanted(&d, now)).expect("kept");
        assert_eq!(k.by, Reason::Lifetime);
        assert_eq!(k.due, datetime!(2026-03-02 00:00 UTC));
        // Due: 1/3 of the lifetime left.
        let late = datetime!(2026-03-05 00:00 UTC);
        assert_eq!(
            keep_stored(Some(&l), &wanted(&d, late)),
            Err(OrderBecause::Due(Reason::Lifetime))
        );
    }

    #[test]
    fn other_names_another_key_type_or_ca_or_nothing_stored_mean_a_new_order() {
        let nb = datetime!(2026-01-01 00:00 UTC);
        let l = leaf(&["mqtt.example.test"], nb, datetime!(2026-04-01 00:00 UTC));
        let now = datetime!(2026-01-10 00:00 UTC);
        let d = names(&["mqtt.example.test"]);
        assert_eq!(
            keep_stored(None, &wanted(&d, now)),
            Err(OrderBecause::NothingStored)
        );
        let more = names(&["mqtt.example.test", "b.example.test"]);
        assert_eq!(
            keep_stored(Some(&l), &wanted(&more, now)),
            Err(OrderBecause::NamesDiffer)
        );
        let mut w = wanted(&d, now);
        w.key_type = KeyType::Rsa2048;
        assert_eq!(keep_stored(Some(&l), &w), Err(OrderBecause::KeyTypeDiffers));
        let mut w = wanted(&d, now);
        w.issued_by = Some("https://staging.test/directory");
        assert_eq!(keep_stored(Some(&l), &w), Err(OrderBecause::OtherCa));
        let mut w = wanted(&d, now);
        w.issued_by = None;
        assert_eq!(keep_stored(Some(&l), &w), Err(OrderBecause::OtherCa));
        let mut w = wanted(&d, now);
        w.profile = Some("tlsserver");
        assert_eq!(keep_stored(Some(&l), &w), Err(OrderBecause::OtherProfile));
        let mut w = wanted(&d, now);
        w.import_min_days_left = Some(85);
        assert_eq!(keep_stored(Some(&l), &w), Err(OrderBecause::ImportWindow));
    }
}
