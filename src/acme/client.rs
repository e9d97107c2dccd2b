//! The instant-acme adapter of `CertificateAuthority`.
//!
//! Adds what instant-acme leaves to its caller: persistent retries on `badNonce` (it gives up
//! after 3, and Pebble or a busy CA can reject far more), re-creating an account the CA no
//! longer knows, order polling that honours `Retry-After` within a timeout, the reasons for a
//! failed validation, and alternate chains. Owns no DNS and no key material but the account's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use instant_acme::{
    AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder, Order,
    OrderStatus,
};
use tokio::sync::RwLock;

use super::account::{self, LoadedAccount};
use super::alternates::{self, Signer};
use super::http::AcmeHttp;
use super::phase_gate::{Phase, PhaseGate};
use super::poll::{self, CaKind};
use super::problem::{is_bad_nonce, map_error, problem_type};
use super::{
    AcmeError, CaOrder, CertificateAuthority, Dns01Challenge, IssuedChains, RenewalWindow,
};
use crate::config::AcmeSettings;
use crate::names::DomainName;
use crate::store::Store;

const NONCE_RETRIES: usize = 12;

/// Why `wanted` cannot be ordered from the CA at `directory`, which lists `offered`.
pub fn profile_refusal(wanted: &str, directory: &str, offered: &[(String, String)]) -> String {
    if offered.is_empty() {
        return format!(
            "`acme.profile = \"{wanted}\"`: the CA at {directory} lists no certificate profiles (its directory has no `meta.profiles`), so it cannot be asked for one. Remove `acme.profile` (or `--profile`) to get the CA's default certificates; nothing was ordered"
        );
    }
    let list = offered
        .iter()
        .map(|(n, d)| {
            if d.is_empty() {
                n.clone()
            } else {
                format!("{n} ({d})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "`acme.profile = \"{wanted}\"`: the CA at {directory} offers no such profile; it offers: {list}. Set `acme.profile` (or `--profile`) to one of those, or remove it for the CA's default; nothing was ordered"
    )
}

/// Retries an instant-acme call while the CA rejects nonces.
macro_rules! nonce_retry {
    ($stage:expr, $call:expr) => {{
        let mut attempt = 0;
        loop {
            match $call {
                Err(e) if is_bad_nonce(&e) && attempt < NONCE_RETRIES => {
                    attempt += 1;
                    tracing::debug!(stage = $stage, attempt, "CA rejected the nonce; retrying");
                }
                other => break other,
            }
        }
    }};
}

/// Either a CA error worth retrying (bad nonce) or our final verdict.
enum Step {
    Acme(instant_acme::Error),
    Final(AcmeError),
}

async fn collect_challenges(order: &mut Order) -> Result<Vec<Dns01Challenge>, Step> {
    let mut challenges = Vec::new();
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz.map_err(Step::Acme)?;
        let identifier = authz.identifier().to_string();
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(Step::Final(AcmeError::Protocol(format!(
                    "the authorization for {identifier} is {other:?}"
                ))));
            }
        }
        let record_name = DomainName::parse(&identifier)
            .map_err(|e| {
                Step::Final(AcmeError::Protocol(format!(
                    "the CA returned an odd identifier: {e}"
                )))
            })?
            .challenge_name();
        let Some(ch) = authz.challenge(ChallengeType::Dns01) else {
            return Err(Step::Final(AcmeError::Protocol(format!(
                "the CA offers no dns-01 challenge for {identifier}"
            ))));
        };
        challenges.push(Dns01Challenge {
            identifier,
            record_name,
            value: ch.key_authorization().dns_value(),
        });
    }
    Ok(challenges)
}

/// Tells the CA every pending DNS-01 challenge is ready. `answered` (challenge URLs) lives
/// across retries: instant-acme keeps the authorizations it fetched and does not update a
/// challenge's status after `set_ready`, so a retry after a rejected nonce would otherwise
/// answer a challenge twice, which the CA refuses ("only status pending").
async fn set_all_ready(
    order: &mut Order,
    answered: &mut std::collections::HashSet<String>,
) -> Result<(), Step> {
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz.map_err(Step::Acme)?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        if let Some(mut ch) = authz.challenge(ChallengeType::Dns01)
            && ch.status == instant_acme::ChallengeStatus::Pending
            && !answered.contains(&ch.url)
        {
            ch.set_ready().await.map_err(Step::Acme)?;
            answered.insert(ch.url.clone());
        }
    }
    Ok(())
}

/// Runs a multi-request step (`Result<T, Step>`) again while the CA rejects nonces; work
/// already done (fetched authorizations, challenges set ready) is not repeated.
macro_rules! step_retry {
    ($what:expr, $call:expr) => {{
        let mut attempt = 0;
        loop {
            match $call {
                Ok(v) => break Ok(v),
                Err(Step::Acme(e)) if is_bad_nonce(&e) && attempt < NONCE_RETRIES => {
                    attempt += 1;
                    tracing::debug!(attempt, "CA rejected the nonce during {}; retrying", $what);
                }
                Err(Step::Acme(e)) => break Err(map_error(e, $what)),
                Err(Step::Final(e)) => break Err(e),
            }
        }
    }};
}

/// An ACME CA reached through instant-acme.
pub struct AcmeClient {
    http: AcmeHttp,
    settings: AcmeSettings,
    store: Store,
    account: RwLock<LoadedAccount>,
    /// New orders and authorization reads take turns (Pebble deadlocks on the mix).
    gate: Arc<PhaseGate>,
}

impl AcmeClient {
    /// Connects: builds the HTTPS client and loads (or creates) the account.
    pub async fn connect(settings: &AcmeSettings, store: &Store) -> Result<Self, AcmeError> {
        let http = AcmeHttp::new(&settings.https_roots)?;
        let account = account::load_or_create(&http, settings, store).await?;
        Ok(Self {
            http,
            settings: settings.clone(),
            store: store.clone(),
            account: RwLock::new(account),
            gate: Arc::new(PhaseGate::new()),
        })
    }

    /// The profiles the CA's directory lists (`meta.profiles`): name and description.
    pub async fn profiles(&self) -> Vec<(String, String)> {
        let acct = self.account.read().await;
        let mut out: Vec<(String, String)> = acct
            .account
            .profiles()
            .map(|p| (p.name.to_string(), p.description.to_string()))
            .collect();
        out.sort();
        out
    }

    /// The configured profile, checked against the CA's list before anything is ordered.
    async fn check_profile(&self) -> Result<(), AcmeError> {
        let Some(wanted) = &self.settings.profile else {
            return Ok(());
        };
        let offered = self.profiles().await;
        if offered.iter().any(|(name, _)| name == wanted) {
            return Ok(());
        }
        Err(AcmeError::Setup(profile_refusal(
            wanted,
            &self.settings.directory,
            &offered,
        )))
    }

    /// Whether this run created the account.
    pub async fn account_created(&self) -> bool {
        self.account.read().await.created
    }

    async fn place(
        &self,
        ids: &[Identifier],
        replaces: Option<&CertificateIdentifier<'_>>,
    ) -> Result<(Order, LoadedAccount), instant_acme::Error> {
        let acct = self.account.read().await.clone();
        let mut new = NewOrder::new(ids);
        if let Some(r) = replaces {
            new = new.replaces(r.clone());
        }
        if let Some(p) = &self.settings.profile {
            new = new.profile(p);
        }
        let _turn = self.gate.enter(Phase::NewOrder).await;
        let order = nonce_retry!("new order", acct.account.new_order(&new).await)?;
        Ok((order, acct))
    }

    /// `place`, creating the account again once if the CA no longer knows it.
    async fn place_or_recreate(
        &self,
        ids: &[Identifier],
        replaces: Option<&CertificateIdentifier<'_>>,
    ) -> Result<(Order, LoadedAccount), Step> {
        match self.place(ids, replaces).await {
            Err(e)
                if problem_type(&e) == Some("urn:ietf:params:acme:error:accountDoesNotExist") =>
            {
                // The CA forgot the stored account (a test CA restarted, or it was deactivated
                // elsewhere): the terms were agreed when it was made, so make it again.
                tracing::warn!("the CA no longer knows the stored account; creating a new one");
                let fresh = account::create(&self.http, &self.settings, &self.store, true)
                    .await
                    .map_err(Step::Final)?;
                *self.account.write().await = fresh;
                self.place(ids, replaces).await.map_err(Step::Acme)
            }
            other => other.map_err(Step::Acme),
        }
    }

    fn wrap(
        &self,
        order: Order,
        account: LoadedAccount,
        challenges: Vec<Dns01Challenge>,
    ) -> Box<dyn CaOrder> {
        Box::new(AcmeOrder {
            url: order.url().to_string(),
            order,
            challenges,
            http: self.http.clone(),
            account,
            directory: self.settings.directory.clone(),
            timeout: self.settings.order_timeout,
            gate: self.gate.clone(),
            ca_kind: CaKind::of_directory(&self.settings.directory),
        })
    }
}

#[async_trait]
impl CertificateAuthority for AcmeClient {
    async fn new_order(
        &self,
        names: &[DomainName],
        replaces: Option<&str>,
    ) -> Result<Box<dyn CaOrder>, AcmeError> {
        let replaces = replaces.map(parse_cert_id).transpose()?;
        self.check_profile().await?;
        let ids: Vec<Identifier> = names
            .iter()
            .map(|n| Identifier::Dns(n.to_string()))
            .collect();
        let names_text = names
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let (mut order, acct) = match self.place_or_recreate(&ids, replaces.as_ref()).await {
            Err(Step::Acme(e)) if replaces.is_some() && refused_for_replaces(&e) => {
                // The CA will not let this order replace that certificate (already replaced,
                // or it does not know it): a renewal must not get stuck on a hint, so order
                // again as a plain new certificate.
                tracing::warn!(
                    "the CA refused to mark the new order as replacing {}: {}; ordering without `replaces`",
                    replaces.as_ref().map(ToString::to_string).unwrap_or_default(),
                    problem_detail(&e)
                );
                self.place_or_recreate(&ids, None).await
            }
            Err(Step::Acme(instant_acme::Error::Unsupported(what))) if replaces.is_some() => {
                tracing::debug!("the CA offers no {what}; ordering without `replaces`");
                self.place_or_recreate(&ids, None).await
            }
            other => other,
        }
        .map_err(|step| match step {
            Step::Acme(e) => order_error(e, &names_text),
            Step::Final(e) => e,
        })
        .map_err(|e| self.http.with_retry_after(e))?;

        let challenges = {
            let _turn = self.gate.enter(Phase::Authorizations).await;
            step_retry!("fetch authorizations", collect_challenges(&mut order).await)?
        };
        Ok(self.wrap(order, acct, challenges))
    }

    async fn resume_order(&self, url: &str) -> Result<Option<Box<dyn CaOrder>>, AcmeError> {
        let acct = self.account.read().await.clone();
        let mut order =
            match nonce_retry!("resume order", acct.account.order(url.to_string()).await) {
                Ok(o) => o,
                // Gone, or not this account's (the CA forgot the account): a new order it is.
                Err(instant_acme::Error::Api(p)) => {
                    tracing::info!("the interrupted order {url} cannot be resumed: {p}");
                    return Ok(None);
                }
                Err(e) => return Err(map_error(e, "resume order")),
            };
        let challenges = match order.state().status {
            OrderStatus::Pending => {
                let _turn = self.gate.enter(Phase::Authorizations).await;
                match step_retry!("fetch authorizations", collect_challenges(&mut order).await) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::info!("the interrupted order {url} cannot be resumed: {e}");
                        return Ok(None);
                    }
                }
            }
            OrderStatus::Ready | OrderStatus::Processing | OrderStatus::Valid => Vec::new(),
            OrderStatus::Invalid => return Ok(None),
        };
        Ok(Some(self.wrap(order, acct, challenges)))
    }

    async fn renewal_info(&self, leaf_der: &[u8]) -> Result<Option<RenewalWindow>, AcmeError> {
        let id = cert_id_of(leaf_der)?;
        let acct = self.account.read().await.clone();
        match acct.account.renewal_info(&id).await {
            Ok((info, retry_after)) => Ok(Some(RenewalWindow {
                start: info.suggested_window.start,
                end: info.suggested_window.end,
                explanation_url: info.explanation_url,
                retry_after,
            })),
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(e) => Err(map_error(e, "renewal information (ARI)")),
        }
    }
}

/// The ARI certificate identifier of a DER certificate: `base64url(AKI keyIdentifier)` `.`
/// `base64url(DER serial)` (RFC 9773 §4.1).
pub fn cert_id_of(leaf_der: &[u8]) -> Result<CertificateIdentifier<'static>, AcmeError> {
    use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};
    let (_, cert) = X509Certificate::from_der(leaf_der)
        .map_err(|e| AcmeError::Setup(format!("cannot read the certificate for ARI: {e}")))?;
    let aki = cert
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref(),
            _ => None,
        })
        .ok_or_else(|| {
            AcmeError::Setup(
                "the certificate has no Authority Key Identifier, so the CA's renewal information (ARI) cannot name it".into(),
            )
        })?;
    let serial = cert.tbs_certificate.raw_serial();
    Ok(CertificateIdentifier::new(aki.0.into(), serial.into()).into_owned())
}

fn parse_cert_id(text: &str) -> Result<CertificateIdentifier<'static>, AcmeError> {
    let (aki, serial) = text.split_once('.').ok_or_else(|| {
        AcmeError::Setup(format!(
            "`{text}` is not an ARI certificate identifier (AKI.serial)"
        ))
    })?;
    Ok(CertificateIdentifier {
        authority_key_identifier: aki.to_string().into(),
        serial: serial.to_string().into(),
    })
}

/// `base64url(AKI).base64url(serial)` of a DER certificate, as `replaces` carries it.
pub fn replaces_id(leaf_der: &[u8]) -> Result<String, AcmeError> {
    Ok(cert_id_of(leaf_der)?.to_string())
}

fn order_error(e: instant_acme::Error, names: &str) -> AcmeError {
    match problem_type(&e) {
        Some("urn:ietf:params:acme:error:rateLimited") => AcmeError::RateLimited {
            detail: e.to_string(),
            until: None,
        },
        Some(_) => AcmeError::Order {
            names: names.to_string(),
            detail: match &e {
                instant_acme::Error::Api(p) => p.detail.clone().unwrap_or_else(|| p.to_string()),
                other => other.to_string(),
            },
        },
        None => map_error(e, "new order"),
    }
}

/// Whether the CA refused an order because of its `replaces` field: `alreadyReplaced`
/// (RFC 9773 §5), or a `malformed` / `conflict` problem whose detail names `replaces`.
fn refused_for_replaces(e: &instant_acme::Error) -> bool {
    let instant_acme::Error::Api(p) = e else {
        return false;
    };
    match p.r#type.as_deref() {
        Some("urn:ietf:params:acme:error:alreadyReplaced") => true,
        Some("urn:ietf:params:acme:error:malformed" | "urn:ietf:params:acme:error:conflict") => p
            .detail
            .as_deref()
            .is_some_and(|d| d.to_ascii_lowercase().contains("replace")),
        _ => false,
    }
}

fn problem_detail(e: &instant_acme::Error) -> String {
    match e {
        instant_acme::Error::Api(p) => p.detail.clone().unwrap_or_else(|| p.to_string()),
        other => other.to_string(),
    }
}

struct AcmeOrder {
    url: String,
    order: Order,
    challenges: Vec<Dns01Challenge>,
    http: AcmeHttp,
    account: LoadedAccount,
    directory: String,
    timeout: Duration,
    gate: Arc<PhaseGate>,
    /// How quickly the order may be polled ([`poll::next_wait`]).
    ca_kind: CaKind,
}

impl AcmeOrder {
    /// Waits before poll number `attempt` of this order ([`poll::next_wait`], honouring the
    /// CA's last `Retry-After` for it); a timeout when the wait would end past `deadline`.
    async fn wait_to_poll(
        &self,
        attempt: u32,
        deadline: Instant,
    ) -> Result<(), instant_acme::Error> {
        let wait = poll::next_wait(self.ca_kind, attempt, self.http.retry_after_of(&self.url));
        let until = Instant::now() + wait;
        if until > deadline {
            return Err(instant_acme::Error::Timeout(Some(until)));
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Polls the order until it is ready (or invalid) on [`poll::next_wait`]'s schedule.
    async fn poll_until_ready(&mut self) -> Result<OrderStatus, instant_acme::Error> {
        let deadline = Instant::now() + self.timeout;
        for attempt in 0.. {
            self.wait_to_poll(attempt, deadline).await?;
            let state = nonce_retry!("poll order", self.order.refresh().await)?;
            if let Some(error) = &state.error {
                return Err(instant_acme::Error::Api(error.clone()));
            }
            if let OrderStatus::Ready | OrderStatus::Invalid | OrderStatus::Valid = state.status {
                return Ok(state.status);
            }
        }
        Err(instant_acme::Error::Timeout(None))
    }

    /// Downloads the certificate of a finalized order, polling it while it is processing on
    /// [`poll::next_wait`]'s schedule (not at all when the finalize answer was already valid).
    async fn poll_certificate(&mut self) -> Result<String, instant_acme::Error> {
        let deadline = Instant::now() + self.timeout;
        for attempt in 0.. {
            if self.order.state().status == OrderStatus::Valid {
                return nonce_retry!("download certificate", self.order.certificate().await)?
                    .ok_or(instant_acme::Error::Str(
                        "no certificates received from ACME CA",
                    ));
            }
            self.wait_to_poll(attempt, deadline).await?;
            let state = nonce_retry!("poll order", self.order.refresh().await)?;
            if let Some(error) = &state.error {
                return Err(instant_acme::Error::Api(error.clone()));
            }
            if state.status == OrderStatus::Invalid {
                return Err(instant_acme::Error::Str(
                    "the order became invalid after finalization",
                ));
            }
        }
        Err(instant_acme::Error::Timeout(None))
    }

    async fn validation_failures(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let _turn = self.gate.enter(Phase::Authorizations).await;
        let mut authzs = self.order.authorizations();
        while let Some(Ok(mut authz)) = authzs.next().await {
            let _ = authz.refresh().await;
            if authz.status == AuthorizationStatus::Valid {
                continue;
            }
            let id = authz.identifier().to_string();
            let detail = authz
                .challenges
                .iter()
                .filter_map(|c| c.error.as_ref())
                .map(|p| p.detail.clone().unwrap_or_else(|| p.to_string()))
                .next()
                .unwrap_or_else(|| format!("authorization is {:?}", authz.status));
            out.push((id, detail));
        }
        out
    }
}

#[async_trait]
impl CaOrder for AcmeOrder {
    fn url(&self) -> &str {
        &self.url
    }

    fn challenges(&self) -> &[Dns01Challenge] {
        &self.challenges
    }

    fn status(&mut self) -> super::OrderStatus {
        match self.order.state().status {
            OrderStatus::Pending => super::OrderStatus::Pending,
            OrderStatus::Ready => super::OrderStatus::Ready,
            OrderStatus::Processing => super::OrderStatus::Processing,
            OrderStatus::Valid => super::OrderStatus::Valid,
            OrderStatus::Invalid => super::OrderStatus::Invalid,
        }
    }

    async fn submit_challenges(&mut self) -> Result<(), AcmeError> {
        let _turn = self.gate.enter(Phase::Authorizations).await;
        let mut answered = std::collections::HashSet::new();
        step_retry!(
            "submit challenges",
            set_all_ready(&mut self.order, &mut answered).await
        )
    }

    async fn await_ready(&mut self) -> Result<(), AcmeError> {
        let status = self.poll_until_ready().await;
        match status {
            Ok(OrderStatus::Ready | OrderStatus::Valid | OrderStatus::Processing) => Ok(()),
            Ok(OrderStatus::Invalid) | Err(instant_acme::Error::Api(_)) => {
                let failures = self.validation_failures().await;
                if failures.is_empty() {
                    Err(AcmeError::Protocol(format!(
                        "the order {} became invalid",
                        self.url
                    )))
                } else {
                    Err(AcmeError::Validation { failures })
                }
            }
            Ok(other) => Err(AcmeError::Protocol(format!(
                "unexpected order status {other:?}"
            ))),
            Err(instant_acme::Error::Timeout(_)) => Err(AcmeError::Timeout {
                stage: "validation",
                secs: self.timeout.as_secs(),
            }),
            Err(e) => Err(map_error(e, "poll order")),
        }
    }

    async fn finalize(&mut self, csr_der: &[u8]) -> Result<IssuedChains, AcmeError> {
        let sent = nonce_retry!("finalize", self.order.finalize_csr(csr_der).await);
        if let Err(e) = sent {
            // A finalize whose answer was lost leaves the order processing or valid: go on.
            let state = nonce_retry!("refresh order", self.order.refresh().await)
                .map_err(|e| map_error(e, "refresh order"))?;
            if !matches!(state.status, OrderStatus::Processing | OrderStatus::Valid) {
                return Err(self.http.with_retry_after(match &e {
                    instant_acme::Error::Api(_)
                        if problem_type(&e) == Some("urn:ietf:params:acme:error:rateLimited") =>
                    {
                        AcmeError::RateLimited {
                            detail: e.to_string(),
                            until: None,
                        }
                    }
                    instant_acme::Error::Api(p) => AcmeError::Order {
                        names: self
                            .challenges
                            .iter()
                            .map(|c| c.identifier.clone())
                            .collect::<Vec<_>>()
                            .join(", "),
                        detail: format!(
                            "the CA refused the CSR: {}",
                            p.detail.clone().unwrap_or_else(|| p.to_string())
                        ),
                    },
                    _ => map_error(e, "finalize"),
                }));
            }
        }
        let default = match self.poll_certificate().await {
            Ok(pem) => pem,
            Err(instant_acme::Error::Timeout(_)) => {
                return Err(AcmeError::Timeout {
                    stage: "issuance",
                    secs: self.timeout.as_secs(),
                });
            }
            Err(e) => return Err(map_error(e, "download certificate")),
        };
        let cert_url = self.order.state().certificate.clone().unwrap_or_default();
        let mut alternates = Vec::new();
        let urls = self.http.alternates_of(&cert_url);
        if !urls.is_empty() {
            let signer = Signer {
                account_url: self.account.account.id(),
                key_pkcs8: &self.account.key_pkcs8,
                directory_url: &self.directory,
            };
            for url in urls {
                match alternates::post_as_get(&self.http, &signer, &url).await {
                    Ok(pem) => alternates.push(pem),
                    Err(e) => tracing::warn!("could not download the alternate chain {url}: {e}"),
                }
            }
        }
        Ok(IssuedChains {
            default,
            alternates,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(kind: &str, detail: &str) -> instant_acme::Error {
        instant_acme::Error::Api(instant_acme::Problem {
            r#type: Some(kind.to_string()),
            detail: Some(detail.to_string()),
            status: Some(409),
            subproblems: Vec::new(),
        })
    }

    #[test]
    fn a_refused_replaces_is_recognised() {
        assert!(refused_for_replaces(&api(
            "urn:ietf:params:acme:error:alreadyReplaced",
            "already replaced"
        )));
        assert!(refused_for_replaces(&api(
            "urn:ietf:params:acme:error:malformed",
            "cannot parse the Replaces field"
        )));
        assert!(refused_for_replaces(&api(
            "urn:ietf:params:acme:error:conflict",
            "the certificate to replace is already being replaced"
        )));
        // Other refusals are the CA's verdict on the order itself: no second attempt.
        assert!(!refused_for_replaces(&api(
            "urn:ietf:params:acme:error:malformed",
            "bad identifier"
        )));
        assert!(!refused_for_replaces(&api(
            "urn:ietf:params:acme:error:rejectedIdentifier",
            "replaces is fine but the name is not"
        )));
        assert!(!refused_for_replaces(&api(
            "urn:ietf:params:acme:error:badNonce",
            "replaces"
        )));
    }

    #[test]
    fn cert_ids_round_trip_through_text() {
        let id = parse_cert_id("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE").unwrap();
        assert_eq!(id.to_string(), "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
        assert!(parse_cert_id("no-dot").is_err());
    }
}
