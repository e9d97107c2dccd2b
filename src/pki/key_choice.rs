//! Which private key a new certificate's CSR uses: a fresh one (the default, as certbot
//! does), or the key of the certificate it replaces (`reuse_key`, like certbot's and lego's
//! `--reuse-key`, for devices that pin the broker's public key).
//!
//! Owns the decision only. Generating and reading keys is [`super::keys`]; where the stored
//! key lives, and the run's `--new-key` flag, are the caller's.

use std::fmt;

use super::keys::{KeyType, PrivateKey};

/// The certificate's stored key, as the caller found it.
#[derive(Debug)]
pub enum StoredKey<'a> {
    /// No certificate stored yet (first issuance).
    Missing,
    /// The stored key, read.
    Key(&'a PrivateKey),
    /// A key file exists but cannot be used; why.
    Unreadable(&'a str),
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChoice {
    /// Sign the CSR with the stored key.
    Reuse,
    /// Generate a new key.
    Fresh(FreshBecause),
    /// `reuse_key` is set but the stored key cannot be read: stop, so that devices pinning
    /// the key are not broken by a silent change. Carries the reason.
    Unusable(String),
}

/// Why a new key is generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FreshBecause {
    /// `reuse_key` is off: every certificate gets a new key.
    Rotation,
    /// `--new-key` for this run.
    NewKeyFlag,
    /// Nothing stored yet.
    FirstCertificate,
    /// The stored key is not of the configured type (`key_type` changed).
    TypeChanged {
        /// The stored key's type, if it is one brokercert makes.
        stored: Option<KeyType>,
        /// The configured type.
        wanted: KeyType,
    },
}

impl fmt::Display for FreshBecause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreshBecause::Rotation => f.write_str("a new key for every certificate"),
            FreshBecause::NewKeyFlag => f.write_str("--new-key"),
            FreshBecause::FirstCertificate => f.write_str("no key stored yet"),
            FreshBecause::TypeChanged {
                stored: Some(s),
                wanted,
            } => write!(f, "key_type changed from {s} to {wanted}"),
            FreshBecause::TypeChanged {
                stored: None,
                wanted,
            } => write!(f, "the stored key is not a {wanted} key"),
        }
    }
}

/// Decides which key the CSR uses. `--new-key` wins over everything; without `reuse_key`
/// every certificate gets a new key; with it, the stored key is reused when it is of the
/// configured type, and a key that cannot be read stops the run.
pub fn choose_key(
    reuse_key: bool,
    new_key: bool,
    wanted: KeyType,
    stored: StoredKey<'_>,
) -> KeyChoice {
    if new_key {
        return KeyChoice::Fresh(FreshBecause::NewKeyFlag);
    }
    if !reuse_key {
        return KeyChoice::Fresh(FreshBecause::Rotation);
    }
    match stored {
        StoredKey::Missing => KeyChoice::Fresh(FreshBecause::FirstCertificate),
        StoredKey::Unreadable(why) => KeyChoice::Unusable(why.to_string()),
        StoredKey::Key(k) => match k.key_type() {
            Some(t) if t == wanted => KeyChoice::Reuse,
            stored => KeyChoice::Fresh(FreshBecause::TypeChanged { stored, wanted }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p256() -> PrivateKey {
        PrivateKey::generate(KeyType::EcdsaP256).unwrap()
    }

    #[test]
    fn without_reuse_key_every_certificate_gets_a_new_key() {
        let k = p256();
        assert_eq!(
            choose_key(false, false, KeyType::EcdsaP256, StoredKey::Key(&k)),
            KeyChoice::Fresh(FreshBecause::Rotation)
        );
    }

    #[test]
    fn reuse_key_reuses_a_stored_key_of_the_configured_type() {
        let k = p256();
        assert_eq!(
            choose_key(true, false, KeyType::EcdsaP256, StoredKey::Key(&k)),
            KeyChoice::Reuse
        );
    }

    #[test]
    fn new_key_flag_wins_over_reuse_key_and_over_an_unreadable_key() {
        let k = p256();
        for stored in [StoredKey::Key(&k), StoredKey::Unreadable("garbage")] {
            assert_eq!(
                choose_key(true, true, KeyType::EcdsaP256, stored),
                KeyChoice::Fresh(FreshBecause::NewKeyFlag)
            );
        }
    }

    #[test]
    fn reuse_key_on_a_first_certificate_generates_one() {
        assert_eq!(
            choose_key(true, false, KeyType::Rsa2048, StoredKey::Missing),
            KeyChoice::Fresh(FreshBecause::FirstCertificate)
        );
    }

    #[test]
    fn a_changed_key_type_gets_a_new_key_and_says_why() {
        let k = p256();
        let c = choose_key(true, false, KeyType::EcdsaP384, StoredKey::Key(&k));
        assert_eq!(
            c,
            KeyChoice::Fresh(FreshBecause::TypeChanged {
                stored: Some(KeyType::EcdsaP256),
                wanted: KeyType::EcdsaP384
            })
        );
        let KeyChoice::Fresh(why) = c else {
            unreachable!()
        };
        assert_eq!(
            why.to_string(),
            "key_type changed from ecdsa-p256 to ecdsa-p384"
        );
    }

    #[test]
    fn an_unreadable_stored_key_stops_reuse() {
        assert_eq!(
            choose_key(
                true,
                false,
                KeyType::Rsa2048,
                StoredKey::Unreadable("no key block")
            ),
            KeyChoice::Unusable("no key block".into())
        );
    }
}
