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
use crate::config::{AcmeSettings, EabSettings, ForeignEnvAccount};
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
        (None, Some(p)) => crate::bounded_read::read_text(p, crate::bounded_read::MAX_SMALL_FILE)
            .map_err(|e| {
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
    let rsp = http.client().get(directory).send().await.ok()?;
    let body = crate::bounded_read::read_body(rsp, crate::bounded_read::MAX_RESPONSE)
        .await
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
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
            Err(e) if super::problem::is_bad_nonce(&e) => last = Some(e),
            Err(e) => return Err(http.with_retry_after(super::problem::map_error(e, "account"))),
        }
    }
    Err(AcmeError::Account(format!(
        "the CA kept rejecting nonces: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

/// Environment variable that may hold the account credentials JSON (for CI runners).
pub const ACCOUNT_ENV: &str = "BROKERCERT_ACME_ACCOUNT";

/// Where the account credentials JSON came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Env,
    Store,
}

impl Source {
    fn describe(self) -> String {
        match self {
            Source::Env => format!("the ACME account in the variable {ACCOUNT_ENV}"),
            Source::Store => "the stored ACME account".to_string(),
        }
    }
}

/// The origin (`scheme://host[:port]`) of an URL, for comparing an old-format account's
/// URLs with the configured directory.
fn origin(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    Some(&url[.."https://".len() + end])
}

/// Checks the credentials JSON against the configured directory and pins it there: the
/// configured `acme.directory` always decides which CA is asked, whatever the JSON says.
///
/// - `directory` in the JSON (what instant-acme writes) must equal the configured one.
/// - Old-format JSON carries `urls` instead: every one of them must be https and on the
///   configured directory's origin; they are then dropped and the configured directory is
///   read instead.
/// - The account id (its URL at the CA) must be https on the same origin.
///
/// `Err` when the JSON is not an account or breaks the https rule.
fn pin_to_directory(json: &str, configured: &str, source: Source) -> Result<Pinned, AcmeError> {
    let not_an_account = || {
        AcmeError::Setup(match source {
            Source::Env => format!(
                "the variable {ACCOUNT_ENV} is set but does not hold ACME account credentials \
                 (expected the JSON brokercert stores under `accounts/` in its state directory). \
                 Put that file's contents in the variable (or secret), or unset it to use the \
                 stored account"
            ),
            Source::Store => format!(
                "the stored ACME account for {configured} is damaged; delete it from the state \
                 directory's `accounts/` to create a new one"
            ),
        })
    };
    let mut v: serde_json::Value = serde_json::from_str(json).map_err(|_| not_an_account())?;
    let obj = v.as_object_mut().ok_or_else(not_an_account)?;
    let want = origin(configured);
    let found = match (
        obj.get("directory").and_then(|d| d.as_str()),
        obj.get("urls"),
    ) {
        (Some(d), _) => d.trim_end_matches('/').to_string(),
        (None, Some(urls)) => {
            let urls: Vec<&str> = urls
                .as_object()
                .map(|m| m.values().filter_map(|u| u.as_str()).collect())
                .unwrap_or_default();
            if let Some(bad) = urls.iter().find(|u| !u.starts_with("https://")) {
                return Err(AcmeError::Setup(format!(
                    "{} names the CA endpoint `{bad}`, which is not https; brokercert talks to \
                     a CA only over https. Use an account made for {configured} (brokercert \
                     stores one under `accounts/` in its state directory)",
                    source.describe()
                )));
            }
            match urls.iter().find(|u| origin(u) != want) {
                Some(other) => other.to_string(),
                None if urls.is_empty() => return Err(not_an_account()),
                None => configured.to_string(),
            }
        }
        (None, None) => return Err(not_an_account()),
    };
    if found != configured.trim_end_matches('/') {
        return Ok(Pinned::Foreign(found));
    }
    let id = obj.get("id").and_then(|i| i.as_str()).unwrap_or_default();
    if !id.starts_with("https://") || origin(id) != want {
        return Err(AcmeError::Setup(format!(
            "{} has the id `{id}`, which is not an https URL at {configured}; use an account \
             made for that CA (brokercert stores one under `accounts/` in its state directory)",
            source.describe()
        )));
    }
    obj.remove("urls");
    obj.insert("directory".into(), configured.into());
    let creds = serde_json::from_value(v).map_err(|_| not_an_account())?;
    Ok(Pinned::Ours(Box::new(creds)))
}

/// The outcome of [`pin_to_directory`].
enum Pinned {
    /// Credentials for the configured directory, pinned to it.
    Ours(Box<AccountCredentials>),
    /// An account made on this other directory.
    Foreign(String),
}

/// The refusal of an account made on another CA's directory.
fn foreign(source: Source, found: &str, configured: &str) -> AcmeError {
    AcmeError::Setup(format!(
        "{} was made on the CA directory {found}, but the configuration's `acme.directory` is \
         {configured}; brokercert orders only from the configured CA. Put an account for \
         {configured} in its place (brokercert stores one under `accounts/` in its state \
         directory after its first run), or unset {ACCOUNT_ENV} to use or create the account \
         stored for {configured}",
        source.describe()
    ))
}

/// Where the account for the configured directory would come from (`BROKERCERT_ACME_ACCOUNT`
/// first, then the store), described for people; `None` when there is none yet (the first
/// `issue` creates it). Neither asks the CA nor creates anything (`doctor`). `Err`: the
/// account found is unusable here (damaged, or made on another directory).
pub fn locate(settings: &AcmeSettings, store: &Store) -> Result<Option<String>, AcmeError> {
    let configured = settings.directory.as_str();
    if let Some(json) = std::env::var(ACCOUNT_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        return match pin_to_directory(&json, configured, Source::Env)? {
            Pinned::Ours(_) => Ok(Some(Source::Env.describe())),
            Pinned::Foreign(found) => Err(foreign(Source::Env, &found, configured)),
        };
    }
    let Some(json) = store
        .load_account(configured)
        .map_err(|e| AcmeError::Setup(e.to_string()))?
    else {
        return Ok(None);
    };
    match pin_to_directory(&json, configured, Source::Store)? {
        Pinned::Ours(_) => Ok(Some(format!(
            "{} in {}",
            Source::Store.describe(),
            store.root().display()
        ))),
        Pinned::Foreign(found) => Err(foreign(Source::Store, &found, configured)),
    }
}

/// Loads the account from `BROKERCERT_ACME_ACCOUNT` or the store, or creates one. The
/// configured directory always decides: an account made on another directory is refused
/// (or, in a dry run switched to staging, left unused).
pub async fn load_or_create(
    http: &AcmeHttp,
    settings: &AcmeSettings,
    store: &Store,
) -> Result<LoadedAccount, AcmeError> {
    let configured = settings.directory.as_str();
    // A CI runner has no state directory: the account can come from a secret instead.
    let from_env = std::env::var(ACCOUNT_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let mut creds = None;
    if let Some(json) = from_env {
        match pin_to_directory(&json, configured, Source::Env)? {
            Pinned::Ours(c) => creds = Some(c),
            Pinned::Foreign(found) if settings.foreign_env_account == ForeignEnvAccount::Skip => {
                tracing::info!(
                    "the account in {ACCOUNT_ENV} is for {found}; this dry run uses {configured} \
                     and its own account there"
                );
            }
            Pinned::Foreign(found) => return Err(foreign(Source::Env, &found, configured)),
        }
    }
    let creds = match creds {
        Some(c) => c,
        None => {
            let stored = store
                .load_account(configured)
                .map_err(|e| AcmeError::Setup(e.to_string()))?;
            let Some(json) = stored else {
                return create(http, settings, store, false).await;
            };
            match pin_to_directory(&json, configured, Source::Store)? {
                Pinned::Ours(c) => c,
                Pinned::Foreign(found) => return Err(foreign(Source::Store, &found, configured)),
            }
        }
    };
    let key_pkcs8 = creds.private_key().secret_pkcs8_der().to_vec();
    let account = Account::builder_with_http(Box::new(http.clone()))
        .from_credentials(*creds)
        .await
        .map_err(|e| super::problem::map_error(e, "account"))?;
    Ok(LoadedAccount {
        account,
        key_pkcs8,
        created: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = "https://ca.example.test/dir";
    // A PKCS#8 key is not needed to test the directory checks: these fail before parsing it,
    // or use a real one made by instant-acme's own key type.
    fn creds_json(extra: serde_json::Value) -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let pkcs8 = URL_SAFE_NO_PAD.encode(key.serialize_der());
        let mut v =
            serde_json::json!({ "id": "https://ca.example.test/acct/1", "key_pkcs8": pkcs8 });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        v.to_string()
    }

    #[test]
    fn an_account_for_the_configured_directory_is_used() {
        let json = creds_json(serde_json::json!({ "directory": DIR }));
        assert!(matches!(
            pin_to_directory(&json, DIR, Source::Env),
            Ok(Pinned::Ours(_))
        ));
    }

    #[test]
    fn an_account_for_another_directory_is_foreign() {
        let json = creds_json(serde_json::json!({ "directory": "https://other.test/directory" }));
        match pin_to_directory(&json, DIR, Source::Env) {
            Ok(Pinned::Foreign(found)) => assert_eq!(found, "https://other.test/directory"),
            _ => panic!("expected a foreign account"),
        }
        let msg = foreign(Source::Env, "https://other.test/directory", DIR).to_string();
        assert!(
            msg.contains("https://other.test/directory") && msg.contains(DIR),
            "{msg}"
        );
    }

    #[test]
    fn an_http_directory_is_foreign_and_old_http_urls_are_refused() {
        let json = creds_json(serde_json::json!({ "directory": "http://ca.example.test/dir" }));
        assert!(matches!(
            pin_to_directory(&json, DIR, Source::Env),
            Ok(Pinned::Foreign(_))
        ));
        let urls = serde_json::json!({ "urls": {
            "newNonce": "http://ca.example.test/nonce",
            "newAccount": "http://ca.example.test/acct",
            "newOrder": "http://ca.example.test/order",
        }});
        let err = pin_to_directory(&creds_json(urls), DIR, Source::Env)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("not https"), "{err}");
    }

    #[test]
    fn old_format_urls_on_another_origin_are_foreign_and_on_ours_are_pinned() {
        let other = serde_json::json!({ "urls": {
            "newNonce": "https://other.test/nonce",
            "newAccount": "https://other.test/acct",
            "newOrder": "https://other.test/order",
        }});
        assert!(matches!(
            pin_to_directory(&creds_json(other), DIR, Source::Env),
            Ok(Pinned::Foreign(_))
        ));
        let ours = serde_json::json!({ "urls": {
            "newNonce": "https://ca.example.test/nonce",
            "newAccount": "https://ca.example.test/acct",
            "newOrder": "https://ca.example.test/order",
        }});
        assert!(matches!(
            pin_to_directory(&creds_json(ours), DIR, Source::Env),
            Ok(Pinned::Ours(_))
        ));
    }

    #[test]
    fn an_account_id_off_the_directory_origin_or_not_https_is_refused() {
        for id in ["http://ca.example.test/acct/1", "https://evil.test/acct/1"] {
            let json = creds_json(serde_json::json!({ "directory": DIR, "id": id }));
            let err = pin_to_directory(&json, DIR, Source::Env)
                .err()
                .expect("refused");
            assert!(err.to_string().contains(id), "{err}");
        }
    }
}
