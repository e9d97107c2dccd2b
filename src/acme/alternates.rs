//! Downloading the alternate certificate chains a CA offers (`Link: rel="alternate"`,
//! RFC 8555 §7.4.2). instant-acme only fetches the default chain, so this module signs its
//! own POST-as-GET requests (JWS, ES256, `kid` = account URL) with the account key.
//!
//! Owns: that one signed request. Does not own: choosing among chains (`pki::chain`).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::AcmeError;
use super::http::AcmeHttp;

/// What is needed to sign a request as the account.
pub struct Signer<'a> {
    /// Account URL (`kid`).
    pub account_url: &'a str,
    /// The account's PKCS#8 P-256 key.
    pub key_pkcs8: &'a [u8],
    /// The directory URL (for `newNonce`).
    pub directory_url: &'a str,
}

async fn fresh_nonce(http: &AcmeHttp, directory_url: &str) -> Result<String, AcmeError> {
    let dir = http
        .client()
        .get(directory_url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| AcmeError::Protocol(format!("cannot read the ACME directory: {e}")))?;
    let dir = crate::bounded_read::read_body(dir, crate::bounded_read::MAX_RESPONSE)
        .await
        .map_err(|e| AcmeError::Protocol(format!("cannot read the ACME directory: {e}")))?;
    let dir: serde_json::Value = serde_json::from_slice(&dir)
        .map_err(|e| AcmeError::Protocol(format!("the ACME directory is not JSON: {e}")))?;
    let url = dir["newNonce"]
        .as_str()
        .ok_or_else(|| AcmeError::Protocol("the ACME directory has no newNonce".into()))?;
    let rsp = http
        .client()
        .head(url)
        .send()
        .await
        .map_err(|e| AcmeError::Protocol(format!("cannot get a nonce: {e}")))?;
    rsp.headers()
        .get("replay-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| AcmeError::Protocol("the CA sent no Replay-Nonce".into()))
}

/// POST-as-GET `url` signed as the account; returns the body. Retries bad nonces.
pub async fn post_as_get(
    http: &AcmeHttp,
    signer: &Signer<'_>,
    url: &str,
) -> Result<String, AcmeError> {
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, signer.key_pkcs8)
        .map_err(|_| AcmeError::Setup("the stored ACME account key is not a P-256 key".into()))?;
    let rng = SystemRandom::new();
    let mut last = String::new();
    for _ in 0..10 {
        let nonce = fresh_nonce(http, signer.directory_url).await?;
        let protected = serde_json::json!({
            "alg": "ES256", "kid": signer.account_url, "nonce": nonce, "url": url,
        });
        let protected = URL_SAFE_NO_PAD.encode(protected.to_string());
        let signing_input = format!("{protected}.");
        let sig = key
            .sign(&rng, signing_input.as_bytes())
            .map_err(|_| AcmeError::Setup("signing with the account key failed".into()))?;
        let body = serde_json::json!({
            "protected": protected, "payload": "", "signature": URL_SAFE_NO_PAD.encode(sig.as_ref()),
        });
        let rsp = http
            .client()
            .post(url)
            .header("content-type", "application/jose+json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| AcmeError::Protocol(format!("cannot download {url}: {e}")))?;
        let status = rsp.status();
        let text = crate::bounded_read::read_body_text(rsp, crate::bounded_read::MAX_RESPONSE)
            .await
            .map_err(|e| AcmeError::Protocol(format!("cannot read {url}: {e}")))?;
        if status.is_success() {
            return Ok(text);
        }
        if text.contains("badNonce") {
            last = text;
            continue;
        }
        return Err(AcmeError::Protocol(format!(
            "downloading {url} failed with {status}: {text}"
        )));
    }
    Err(AcmeError::Protocol(format!(
        "downloading {url} kept failing with bad nonces: {last}"
    )))
}
