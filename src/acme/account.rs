//! The ACME account: created once per CA directory, stored 0600 in the state directory,
//! reused on every later run; External Account Binding for CAs that require it.
//!
//! Owns: loading, creating and re-creating (when the CA forgot it) the account, and reading
//! the EAB HMAC from its environment variable or file. Never logs key material.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};

use super::AcmeError;
use super::http::AcmeHttp;
use crate::config::{AcmeSettings, EabSettings};
use crate::store::Store;

/// A usable account and what is needed to sign our own requests with it.
#[derive(Clone)]
pub struct LoadedAccount {
    /// instant-acme's handle.
    pub account: Account,
    /// The account key (PKCS#8 DER). Never printed.
    pub key_pkcs8: Vec<u8>,
    /// True when this run created it.
    pub created: bool,
}

impl std::fmt::Debug for LoadedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedAccount")
            .field("id", &self.account.id())
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

fn eab_key(eab: &EabSettings) -> Result<ExternalAccountKey, AcmeError> {
    let from_env = eab
        .hmac_env
        .as_ref()
        .and_then(|v| std::env::var(v).ok())
        .filter(|v| !v.trim().is_empty());
    let text = match (from_env, &eab.hmac_file) {
        (Some(v), _) => v,
        (None, None) if eab.hmac_inline.is_some() => eab
            .hmac_inline
            .as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default(),
        (None, Some(p)) => std::fs::read_to_string(p).map_err(|e| {
            AcmeError::Setup(format!(
                "cannot read the EAB HMAC key file `{}` (setting `acme.eab_hmac_file`): {e}",
                p.display()
            ))
        })?,
        (None, None) => {
            return Err(AcmeError::Setup(format!(
                "`acme.eab_kid` is set but no EAB HMAC key was found: set the environment \
                 variable {} or `acme.eab_hmac_file` to the base64url HMAC key your CA gave you",
                eab.hmac_env.as_deref().unwrap_or("BROKERCERT_EAB_HMAC")
            )));
        }
    };
    let text = text.trim();
    let key = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(text))
        .map_err(|_| {
            AcmeError::Setup(
                "the EAB HMAC key is not base64url text; copy it exactly as the CA shows it".into(),
            )
        })?;
    Ok(ExternalAccountKey::new(eab.kid.clone(), &key))
}

async fn directory_tos(http: &AcmeHttp, directory: &str) -> Option<String> {
    let v: serde_json::Value = http
        .client()
        .get(directory)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["meta"]["termsOfService"].as_str().map(str::to_string)
}

/// Creates a new account (terms must be agreed) and stores it.
pub async fn create(
    http: &AcmeHttp,
    settings: &AcmeSettings,
    store: &Store,
    terms_agreed_before: bool,
) -> Result<LoadedAccount, AcmeError> {
    if !settings.agree_tos && !terms_agreed_before {
        return Err(AcmeError::TermsNotAgreed {
            directory: settings.directory.clone(),
            tos: directory_tos(http, &settings.directory).await,
        });
    }
    let contact = settings.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let eab = settings.eab.as_ref().map(eab_key).transpose()?;
    let mut last = None;
    for _ in 0..8 {
        match Account::builder_with_http(Box::new(http.clone()))
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                settings.directory.clone(),
                eab.as_ref(),
            )
            .await
        {
            Ok((account, creds)) => {
                let json = serde_json::to_string(&creds)
                    .map_err(|e| AcmeError::Setup(format!("cannot serialise the account: {e}")))?;
                let path = store
                    .save_account(&settings.directory, &json)
                    .map_err(|e| AcmeError::Setup(e.to_string()))?;
                tracing::info!(account = account.id(), path = %path.display(), "created ACME account");
                return Ok(LoadedAccount {
                    key_pkcs8: creds.private_key().secret_pkcs8_der().to_vec(),
                    account,
                    created: true,
                });
            }
            Err(e) if super::client::is_bad_nonce(&e) => last = Some(e),
            Err(e) => return Err(super::client::map_error(e, "account")),
        }
    }
    Err(AcmeError::Account(format!(
        "the CA kept rejecting nonces: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

/// Environment variable that may hold the account credentials JSON (for CI runners).
pub const ACCOUNT_ENV: &str = "BROKERCERT_ACME_ACCOUNT";

/// Loads the account from `BROKERCERT_ACME_ACCOUNT` or the store, or creates one.
pub async fn load_or_create(
    http: &AcmeHttp,
    settings: &AcmeSettings,
    store: &Store,
) -> Result<LoadedAccount, AcmeError> {
    // A CI runner has no state directory: the account can come from a secret instead.
    let from_env = std::env::var(ACCOUNT_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let creds: AccountCredentials = if let Some(json) = from_env {
        serde_json::from_str(&json).map_err(|_| {
            AcmeError::Setup(format!(
                "the variable {ACCOUNT_ENV} is set but does not hold ACME account credentials \
                 (expected the JSON brokercert stores under `accounts/` in its state directory). \
                 Put that file's contents in the variable (or secret), or unset it to use the \
                 stored account"
            ))
        })?
    } else {
        let stored = store
            .load_account(&settings.directory)
            .map_err(|e| AcmeError::Setup(e.to_string()))?;
        let Some(json) = stored else {
            return create(http, settings, store, false).await;
        };
        serde_json::from_str(&json).map_err(|_| {
            AcmeError::Setup(format!(
                "the stored ACME account for {} is damaged; delete it from `{}/accounts` to create a new one",
                settings.directory,
                store.root().display()
            ))
        })?
    };
    let key_pkcs8 = creds.private_key().secret_pkcs8_der().to_vec();
    let account = Account::builder_with_http(Box::new(http.clone()))
        .from_credentials(creds)
        .await
        .map_err(|e| super::client::map_error(e, "account"))?;
    Ok(LoadedAccount {
        account,
        key_pkcs8,
        created: false,
    })
}
