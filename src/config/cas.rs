//! ACME CAs brokercert knows by name: the directory shortcuts besides Let's Encrypt's, and
//! which of them require External Account Binding (EAB) and where to get the key.
//!
//! Sources (each CA's own documentation):
//! - ZeroSSL: <https://zerossl.com/documentation/acme/> — server URL
//!   `https://acme.zerossl.com/v2/DV90`, EAB credentials from the dashboard's Developer
//!   section (or its REST API); no staging environment is documented.
//! - Google Trust Services (Public CA):
//!   <https://cloud.google.com/certificate-manager/docs/public-ca-tutorial> — production
//!   `https://dv.acme-v02.api.pki.goog/directory`, staging
//!   `https://dv.acme-v02.test-api.pki.goog/directory`; EAB key ID and HMAC from
//!   `gcloud publicca external-account-keys create` (to be used within 7 days).
//!
//! Owns: those URLs and texts. Does not own the Let's Encrypt shortcuts (`config`) or any
//! request.

/// ZeroSSL's ACME directory.
pub const ZEROSSL: &str = "https://acme.zerossl.com/v2/DV90";
/// Google Trust Services' production ACME directory.
pub const GOOGLE: &str = "https://dv.acme-v02.api.pki.goog/directory";
/// Google Trust Services' staging ACME directory.
pub const GOOGLE_STAGING: &str = "https://dv.acme-v02.test-api.pki.goog/directory";

/// The shortcut names for these CAs and their URLs.
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("zerossl", ZEROSSL),
    ("google", GOOGLE),
    ("google-staging", GOOGLE_STAGING),
];

/// When the CA at `directory` requires External Account Binding: its name and where to get
/// a key id and HMAC key.
pub fn eab_required(directory: &str) -> Option<(&'static str, &'static str)> {
    match directory {
        ZEROSSL => Some((
            "ZeroSSL",
            "generate EAB credentials in the ZeroSSL dashboard, Developer section (https://app.zerossl.com/developer; see https://zerossl.com/documentation/acme/)",
        )),
        GOOGLE => Some((
            "Google Trust Services",
            "run `gcloud publicca external-account-keys create` (keyId is the key id, b64MacKey the HMAC key; use it within 7 days; see https://cloud.google.com/certificate-manager/docs/public-ca-tutorial)",
        )),
        GOOGLE_STAGING => Some((
            "Google Trust Services (staging)",
            "create a staging EAB key with `gcloud publicca external-account-keys create` against the staging API, as https://cloud.google.com/certificate-manager/docs/public-ca-tutorial describes (production keys do not work on staging)",
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shortcut_requires_eab_and_says_where_to_get_it() {
        for (name, url) in SHORTCUTS {
            let (ca, how) = eab_required(url).unwrap_or_else(|| panic!("{name}"));
            assert!(!ca.is_empty() && how.contains("https://"), "{name}");
            assert!(url.starts_with("https://"));
        }
        assert!(eab_required(crate::config::LETSENCRYPT).is_none());
    }
}
