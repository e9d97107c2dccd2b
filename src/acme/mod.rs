//! ACME (RFC 8555) as this tool uses it: one account per CA, DNS-01 orders, our own CSR,
//! the default and alternate chains.
//!
//! Owns: the `CertificateAuthority` / `CaOrder` seam, `AcmeError`, and the instant-acme
//! adapter behind it (`client`), its HTTP transport (`http`), account persistence
//! (`account`), alternate-chain downloads (`alternates`) and the polling schedule (`poll`).
//! Does not own: DNS, keys, chains.

pub mod account;
pub mod alternates;
pub mod client;
pub mod http;
pub mod lifetime;
pub mod phase_gate;
pub mod poll;
pub mod problem;

use async_trait::async_trait;

use crate::names::DomainName;

/// A DNS-01 challenge to answer: put `value` in a TXT record at `record_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns01Challenge {
    /// The identifier as ordered (`*.example.com` for a wildcard).
    pub identifier: String,
    /// `_acme-challenge.<base name>`.
    pub record_name: DomainName,
    /// The TXT value (base64url SHA-256 of the key authorization).
    pub value: String,
}

/// The chains a finalised order offers: the default first.
#[derive(Debug, Clone)]
pub struct IssuedChains {
    /// PEM of the default chain.
    pub default: String,
    /// PEMs of alternate chains (may be empty).
    pub alternates: Vec<String>,
}

/// The text of [`AcmeError::RateLimited`]: until when to wait, when the CA said.
fn rate_limited_message(detail: &str, until: &Option<time::OffsetDateTime>) -> String {
    match until {
        Some(t) => format!(
            "the ACME CA's rate limit was hit: {detail}. The CA asks to wait until {} (its Retry-After): do not retry before then (`brokercert renew` waits for it on its own); test with `--directory letsencrypt-staging`",
            t.to_offset(time::UtcOffset::UTC)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| t.to_string())
        ),
        None => format!(
            "the ACME CA's rate limit was hit: {detail}. Wait before retrying (Let's Encrypt: 5 duplicate certificates per week, 5 failed validations per name per hour); test with `--directory letsencrypt-staging`"
        ),
    }
}

/// Failures talking to the ACME CA. One paragraph each, naming what to do.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// Local set-up (trust roots, EAB key, stored account) is unusable.
    #[error("{0}")]
    Setup(String),
    /// A new account is needed and the terms were not agreed.
    #[error(
        "no ACME account exists yet for {directory} and creating one means agreeing to the CA's \
         terms of service{}. Read them, then run again with `--agree-tos` (or `agree_tos = true` \
         in `[acme]`)",
        tos.as_ref().map(|t| format!(" ({t})")).unwrap_or_default()
    )]
    TermsNotAgreed {
        /// Directory URL.
        directory: String,
        /// Terms URL from the directory, if any.
        tos: Option<String>,
    },
    /// The CA refused to create or use the account.
    #[error("the ACME CA refused the account: {0}")]
    Account(String),
    /// The CA refused the order.
    #[error("the ACME CA refused the order for {names}: {detail}")]
    Order {
        /// Names ordered.
        names: String,
        /// The CA's explanation.
        detail: String,
    },
    /// The CA could not validate one or more names.
    #[error("{}", validation_message(.failures))]
    Validation {
        /// (identifier, CA's detail) per failed authorization.
        failures: Vec<(String, String)>,
    },
    /// The CA is rate limiting this account or these names.
    #[error("{}", rate_limited_message(.detail, .until))]
    RateLimited {
        /// The CA's explanation.
        detail: String,
        /// Until when the CA asks to wait (its `Retry-After`), when it said.
        until: Option<time::OffsetDateTime>,
    },
    /// Waiting for the CA took too long.
    #[error(
        "the ACME CA did not finish {stage} within {secs} s; raise `acme.order_timeout` or try again later"
    )]
    Timeout {
        /// What was awaited.
        stage: &'static str,
        /// Seconds waited.
        secs: u64,
    },
    /// Anything else the CA or transport did.
    #[error("ACME: {0}")]
    Protocol(String),
}

fn validation_message(failures: &[(String, String)]) -> String {
    let reasons = match failures {
        [(name, detail)] => format!("{name}: {detail}"),
        many => format!(
            "{}: {}",
            many.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            many.iter()
                .map(|(n, d)| format!("{n}: {d}"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    format!(
        "the ACME CA could not validate {reasons}. The TXT records were visible on the zone's \
         nameservers, so check that the CA sees the same DNS (public delegation of the zone, no \
         split horizon), then run again"
    )
}

/// When the CA suggests renewing a certificate (ACME Renewal Information, RFC 9773).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalWindow {
    /// Start of the suggested window.
    pub start: time::OffsetDateTime,
    /// End of the suggested window.
    pub end: time::OffsetDateTime,
    /// The CA's explanation (e.g. a revocation notice), if any.
    pub explanation_url: Option<String>,
    /// When to ask again (the response's `Retry-After`).
    pub retry_after: std::time::Duration,
}

/// An ACME CA: places DNS-01 orders.
#[async_trait]
pub trait CertificateAuthority: Send + Sync {
    /// Places an order for `names` and returns it with its pending DNS-01 challenges.
    /// `replaces` is the ARI certificate identifier (`base64url(AKI).base64url(serial)`) of
    /// the certificate this order renews, sent only when the CA offers ARI.
    async fn new_order(
        &self,
        names: &[DomainName],
        replaces: Option<&str>,
    ) -> Result<Box<dyn CaOrder>, AcmeError>;

    /// Picks up an order placed earlier (by a run that was interrupted). `None` when the CA
    /// no longer has it or it can no longer lead to a certificate (invalid, expired).
    async fn resume_order(&self, url: &str) -> Result<Option<Box<dyn CaOrder>>, AcmeError>;

    /// The CA's suggested renewal window for `leaf_der`; `None` when the CA has no ARI.
    async fn renewal_info(&self, leaf_der: &[u8]) -> Result<Option<RenewalWindow>, AcmeError>;
}

/// An order's state as the CA last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Authorizations to answer.
    Pending,
    /// Validated; waiting for the CSR.
    Ready,
    /// The CA is issuing.
    Processing,
    /// Issued; the certificate can be downloaded.
    Valid,
    /// Failed or expired: no certificate will come from it.
    Invalid,
}

/// An order in progress.
#[async_trait]
pub trait CaOrder: Send {
    /// The order URL.
    fn url(&self) -> &str;
    /// Challenges still to answer (authorizations already valid are left out).
    fn challenges(&self) -> &[Dns01Challenge];
    /// Tells the CA the TXT records are in place.
    async fn submit_challenges(&mut self) -> Result<(), AcmeError>;
    /// Waits until the order is ready for finalisation (or fails with the CA's reasons).
    async fn await_ready(&mut self) -> Result<(), AcmeError>;
    /// Sends our CSR and downloads the default and alternate chains. On an order that is
    /// already valid (finalised by an interrupted run) it only downloads.
    async fn finalize(&mut self, csr_der: &[u8]) -> Result<IssuedChains, AcmeError>;
    /// Where the order stands (`pending`, `ready`, `processing`, `valid`, `invalid`).
    fn status(&mut self) -> OrderStatus;
}
