//! instant-acme's errors in our terms: which are a rejected nonce (safe to retry), and the
//! [`AcmeError`] each becomes, naming the stage.
//!
//! Owns: that mapping (next to the error type, so that `account` and `client` share it
//! without importing each other). Does not own retrying (the callers).

use super::AcmeError;

/// Whether an instant-acme error is a rejected nonce (safe to retry: the request was not processed).
pub fn is_bad_nonce(e: &instant_acme::Error) -> bool {
    matches!(e, instant_acme::Error::Api(p) if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:badNonce"))
}

/// The ACME problem type of `e`, when the CA answered with a problem document.
pub fn problem_type(e: &instant_acme::Error) -> Option<&str> {
    match e {
        instant_acme::Error::Api(p) => p.r#type.as_deref(),
        _ => None,
    }
}

/// An error and its causes, `outer: inner: innermost` (reqwest's own text hides the
/// cause: "error sending request" says nothing of a refused connection or a reset).
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

/// Maps an instant-acme error into ours, naming the stage.
pub fn map_error(e: instant_acme::Error, stage: &'static str) -> AcmeError {
    match problem_type(&e) {
        Some("urn:ietf:params:acme:error:rateLimited") => AcmeError::RateLimited {
            detail: e.to_string(),
            until: None,
        },
        Some(
            "urn:ietf:params:acme:error:accountDoesNotExist"
            | "urn:ietf:params:acme:error:unauthorized"
            | "urn:ietf:params:acme:error:externalAccountRequired"
            | "urn:ietf:params:acme:error:invalidContact"
            | "urn:ietf:params:acme:error:unsupportedContact",
        ) if stage == "account" => AcmeError::Account(e.to_string()),
        _ => match e {
            instant_acme::Error::Other(inner) => AcmeError::Protocol(format!(
                "{stage}: cannot reach the CA: {}. Check the directory URL and network access \
                 (for a test CA with its own HTTPS root, add the root with `--acme-root`)",
                with_causes(inner.as_ref())
            )),
            other => AcmeError::Protocol(format!("{stage}: {other}")),
        },
    }
}
