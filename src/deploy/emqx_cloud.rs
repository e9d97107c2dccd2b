//! The EMQX Cloud target: the Platform API's `/deployments/{id}/tls`.
//!
//! Facts (shared/reference/emqx.md): Basic auth with the API key and secret; GET (60/hour),
//! POST/PUT/DELETE (6/hour); asynchronous — after a write, GET until `running` or `failed`.
//! Owns: the client, the budgets (poll with a growing interval, honour `Retry-After`, never
//! blindly repeat a write: re-read the state first; count the reads and writes of a run),
//! the serverless refusal, and messages for 401/403/404/422/429. Response bodies are never
//! logged (they may echo keys).
//!
//! Only `/deployments/{id}/tls` is used on the normal path: that is what a key with the
//! documented scope "TLS Certificate Management" may call. `GET /deployments/{id}` belongs to
//! "Deployment Management"; it is read only to explain a TLS answer that looks like a
//! Serverless deployment, and a 403 there means "type unknown", never an error.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;
use time::OffsetDateTime;

use super::identity;
use super::rules::{self, ImportRules};
use super::{
    DeployError, DeployOutcome, DeployProgress, DeployedState, DeploymentTarget, Material,
};
use crate::progress::human_duration;
use crate::secret::Secret;

/// The international console's API.
pub const DEFAULT_BASE_URL: &str = "https://cloud-intl.emqx.com/public_api/v1";

/// One-way or two-way TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Clients verify the server.
    OneWay,
    /// And the server verifies clients against the client CA.
    TwoWay,
}

impl TlsMode {
    /// The API's word.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::OneWay => "one-way",
            TlsMode::TwoWay => "two-way",
        }
    }
}

/// `deploymentType` as the console names it, when the configuration states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentType {
    /// Dedicated: custom certificates supported.
    Dedicated,
    /// Dedicated Flex: custom certificates supported.
    DedicatedFlex,
    /// BYOC (bring your own cloud): custom certificates supported.
    Byoc,
    /// Serverless: no custom certificates.
    Serverless,
}

impl DeploymentType {
    /// Parses the setting `deployment_type` (the API's spelling, case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "dedicated" => Some(Self::Dedicated),
            "dedicatedflex" | "dedicated-flex" => Some(Self::DedicatedFlex),
            "byoc" => Some(Self::Byoc),
            "serverless" => Some(Self::Serverless),
            _ => None,
        }
    }
}

/// The Serverless refusal (one text for the setting and for the API's answer).
const SERVERLESS: &str = "is a Serverless deployment, which supports neither custom certificates nor custom-domain CNAMEs. Use a Dedicated deployment, or remove this deploy target";

/// Settings of one EMQX Cloud deployment target.
#[derive(Debug, Clone)]
pub struct EmqxCloudSettings {
    /// Certificate name (for messages).
    pub name: String,
    /// API base URL: https, normally ending in `/public_api/v1` (see [`EmqxCloud::warnings`]).
    pub base_url: String,
    /// Deployment id (not its name).
    pub deployment_id: String,
    /// API key.
    pub api_key: Secret,
    /// API secret.
    pub api_secret: Secret,
    /// One-way or two-way.
    pub tls: TlsMode,
    /// Client CA (PEM) for two-way.
    pub client_ca_pem: Option<String>,
    /// Extra roots trusted for the API's HTTPS (test only).
    pub api_roots: Vec<PathBuf>,
    /// First poll delay after a write; grows ×1.5 up to 60 s.
    pub poll_interval: Duration,
    /// Give up waiting for `running` after this long.
    pub poll_timeout: Duration,
    /// Longest `Retry-After` worth waiting for in-run.
    pub max_retry_after: Duration,
    /// Give up on one request after this long (a write that times out is re-read, never
    /// repeated blindly).
    pub request_timeout: Duration,
    /// The import rules (the validity window is `min_days_left`).
    pub rules: ImportRules,
    /// The deployment's type when the configuration states it (`deployment_type`): a
    /// Serverless one is refused before any request.
    pub deployment_type: Option<DeploymentType>,
}

/// EMQX Cloud through its Platform API.
pub struct EmqxCloud {
    s: EmqxCloudSettings,
    http: reqwest::Client,
    /// GETs sent in this run (each spends one of the 60 reads an hour).
    reads: AtomicUsize,
    /// POST/PUT/DELETEs sent in this run (each spends one of the 6 writes an hour).
    writes: AtomicUsize,
}

#[derive(Debug, Deserialize)]
struct TlsState {
    #[serde(rename = "tlsType")]
    tls_type: Option<String>,
    status: Option<String>,
    expire: Option<String>,
    cn: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DeploymentInfo {
    #[serde(rename = "deploymentType")]
    deployment_type: Option<String>,
}

#[derive(serde::Serialize)]
struct TlsBody<'a> {
    #[serde(rename = "tlsType")]
    tls_type: &'a str,
    cert: &'a str,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cacert: Option<&'a str>,
}

/// Whether EMQX Cloud's `expire` can name the certificate expiring at `not_after` (see
/// [`identity`]: exact when `expire` names its zone, within any time zone's offset when not).
pub fn same_expiry(expire: Option<&str>, not_after: OffsetDateTime) -> bool {
    expire
        .and_then(identity::parse_expire)
        .is_some_and(|e| e.matches(not_after))
}

enum Answer {
    Ok(String),
    NotFound,
}

impl EmqxCloud {
    /// A client for the deployment; fails on bad settings (URL, roots).
    pub fn new(s: EmqxCloudSettings) -> Result<Self, DeployError> {
        let target = format!("EMQX Cloud deployment {}", s.deployment_id);
        let parsed = reqwest::Url::parse(&s.base_url).ok();
        if parsed
            .as_ref()
            .is_none_or(|u| u.scheme() != "https" || u.host().is_none())
        {
            return Err(DeployError::Config {
                target,
                message: format!(
                    "`base_url` is `{}`, expected an https URL such as {DEFAULT_BASE_URL} (the console's Platform API page shows yours; other regions have their own)",
                    s.base_url
                ),
            });
        }
        if s.tls == TlsMode::TwoWay && s.client_ca_pem.is_none() {
            return Err(DeployError::Config {
                target,
                message: "`tls = \"two-way\"` needs `client_ca` (the CA that signs your devices' certificates; `brokercert client-ca create` makes one)".into(),
            });
        }
        let mut certs = Vec::new();
        for p in &s.api_roots {
            let pem = crate::bounded_read::read_file(p, crate::bounded_read::MAX_PEM_FILE)
                .map_err(|e| DeployError::Config {
                    target: target.clone(),
                    message: format!("cannot read `api_roots` file `{}`: {e}", p.display()),
                })?;
            certs.extend(reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                DeployError::Config {
                    target: target.clone(),
                    message: format!("`api_roots` file `{}` is not PEM: {e}", p.display()),
                }
            })?);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("brokercert/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10).min(s.request_timeout))
            .timeout(s.request_timeout)
            .tls_certs_merge(certs)
            .build()
            .map_err(|e| DeployError::Config {
                target,
                message: format!("cannot set up HTTPS: {e}"),
            })?;
        Ok(Self {
            s,
            http,
            reads: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
        })
    }

    /// Doubts about the settings worth a warning (not an error): a base URL that does not
    /// end in `/public_api/v1`, which every documented one does.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self
            .s
            .base_url
            .trim_end_matches('/')
            .ends_with("/public_api/v1")
        {
            out.push(format!(
                "{}: `base_url` `{}` does not end in /public_api/v1, as the documented Platform API URLs do (e.g. {DEFAULT_BASE_URL}); using it as given",
                self.target(),
                self.s.base_url
            ));
        }
        out
    }

    /// Requests sent so far by this client: (reads, writes).
    pub fn requests_sent(&self) -> (usize, usize) {
        (
            self.reads.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }

    fn target(&self) -> String {
        format!("EMQX Cloud deployment {}", self.s.deployment_id)
    }

    fn url(&self, path: &str) -> String {
        // The ID is checked at load (letters, digits, `-`, `_`); encoding it again keeps any
        // other caller from turning it into more path, a query or a fragment.
        format!(
            "{}/deployments/{}{path}",
            self.s.base_url.trim_end_matches('/'),
            percent_encode_segment(&self.s.deployment_id)
        )
    }

    fn api_error(&self, status: StatusCode, body: &str, retry_after: Option<u64>) -> DeployError {
        // Only a short, key-free `message`/`code` from the body is ever shown.
        let detail = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .map(|v| {
                let code = v
                    .get("code")
                    .map(|c| c.to_string().trim_matches('"').to_string());
                let msg = v
                    .get("message")
                    .or_else(|| v.get("msg"))
                    .and_then(|m| m.as_str())
                    .map(str::to_string);
                [code, msg]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ")
            })
            .filter(|d| !d.is_empty() && d.len() < 300 && !d.contains("BEGIN"))
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let id = &self.s.deployment_id;
        let message = match status.as_u16() {
            401 => format!(
                "the API key or secret was refused (401){detail}. Check EMQX Cloud → Settings → Platform API Key, and the variables or files the configuration names for them"
            ),
            403 => format!(
                "the API key may not manage TLS certificates (403){detail}. Create a key with the scope \"TLS Certificate Management\""
            ),
            404 => format!(
                "no deployment `{id}` (404){detail}. `deployment_id` is the deployment's ID (like ge6a1a75), not its name"
            ),
            400 => format!(
                "the API refused the request (400){detail}. A Serverless deployment has no custom certificates: if this is one, use a Dedicated deployment (setting `deployment_type = \"serverless\"` makes brokercert refuse it before any request)"
            ),
            422 => format!(
                "the certificate was refused (422 Wrong Properties){detail}. Run `{}` to see which import rule fails",
                crate::hint::command(&format!("check {}", self.s.name))
            ),
            429 => format!(
                "rate limited (429; EMQX Cloud allows 6 writes and 60 reads per hour){detail}. Try again in {} with `{}` (the certificate stays stored)",
                retry_after
                    .map(|s| human_duration(Duration::from_secs(s)))
                    .unwrap_or_else(|| "an hour".into()),
                crate::hint::command(&format!("deploy {}", self.s.name)),
            ),
            s if s >= 500 => {
                format!("the API failed ({s}){detail}; the state is re-read before any new write")
            }
            s => format!("unexpected answer {s}{detail}"),
        };
        DeployError::Api {
            target: self.target(),
            status: Some(status.as_u16()),
            message,
        }
    }

    /// `Retry-After` in seconds (given as seconds or as an HTTP date).
    fn retry_after(rsp: &reqwest::Response) -> Option<u64> {
        crate::retry_after::from_headers(rsp.headers()).map(|d| d.as_secs())
    }

    /// GET with 429 handling (reads are safe to repeat).
    async fn get(&self, path: &str) -> Result<Answer, DeployError> {
        self.get_with(path, true).await
    }

    /// GET; on 429, waits out `Retry-After` and asks again only when `wait_on_429`.
    async fn get_with(&self, path: &str, wait_on_429: bool) -> Result<Answer, DeployError> {
        let mut waited = Duration::ZERO;
        loop {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let rsp = self
                .http
                .get(self.url(path))
                .basic_auth(self.s.api_key.expose(), Some(self.s.api_secret.expose()))
                .send()
                .await
                .map_err(|e| self.transport_error(e))?;
            let status = rsp.status();
            let retry = Self::retry_after(&rsp);
            let body = crate::bounded_read::read_body_text(rsp, crate::bounded_read::MAX_RESPONSE)
                .await
                .unwrap_or_default();
            match status.as_u16() {
                200..=299 => return Ok(Answer::Ok(body)),
                404 if path == "/tls" => return Ok(Answer::NotFound),
                429 => {
                    let wait = Duration::from_secs(retry.unwrap_or(60));
                    if !wait_on_429 || waited + wait > self.s.max_retry_after {
                        return Err(self.api_error(status, &body, retry));
                    }
                    tokio::time::sleep(wait).await;
                    waited += wait;
                }
                _ => return Err(self.api_error(status, &body, retry)),
            }
        }
    }

    fn transport_error(&self, e: reqwest::Error) -> DeployError {
        DeployError::Api {
            target: self.target(),
            status: None,
            message: format!(
                "cannot reach the Platform API at {}: {}. Check `base_url` and network access",
                self.s.base_url,
                e.without_url()
            ),
        }
    }

    /// The deployment's type from `GET /deployments/{id}` ("Deployment Management" scope),
    /// read only to explain an unexpected TLS answer. `None` = unknown: a key with only the
    /// TLS scope gets 403 there, which is no error.
    async fn read_deployment_type(&self) -> Option<String> {
        match self.get("").await {
            Ok(Answer::Ok(body)) => serde_json::from_str::<DeploymentInfo>(&body)
                .ok()
                .and_then(|d| d.deployment_type),
            Ok(Answer::NotFound) | Err(_) => None,
        }
    }

    fn serverless_error(&self) -> DeployError {
        DeployError::Config {
            target: self.target(),
            message: SERVERLESS.into(),
        }
    }

    /// A TLS answer of 400 may mean a Serverless deployment (which has no TLS endpoint to
    /// manage): ask once what type it is, and say so when it is.
    async fn explain(&self, e: DeployError) -> DeployError {
        let bad_request = matches!(
            e,
            DeployError::Api {
                status: Some(400),
                ..
            }
        );
        if bad_request
            && self.s.deployment_type.is_none()
            && self
                .read_deployment_type()
                .await
                .is_some_and(|k| k.eq_ignore_ascii_case("serverless"))
        {
            return self.serverless_error();
        }
        e
    }

    async fn tls_state(&self) -> Result<Option<TlsState>, DeployError> {
        self.tls_state_with(true).await
    }

    /// The TLS configuration; `wait_on_429` as in [`Self::get_with`].
    async fn tls_state_with(&self, wait_on_429: bool) -> Result<Option<TlsState>, DeployError> {
        let answer = match self.get_with("/tls", wait_on_429).await {
            Ok(a) => a,
            Err(e) => return Err(self.explain(e).await),
        };
        match answer {
            Answer::NotFound => Ok(None),
            Answer::Ok(body) => {
                let st: TlsState = serde_json::from_str(&body).unwrap_or(TlsState {
                    tls_type: None,
                    status: None,
                    expire: None,
                    cn: None,
                });
                // `{}` also means "no TLS configured".
                Ok(if st.status.is_none() && st.tls_type.is_none() {
                    None
                } else {
                    Some(st)
                })
            }
        }
    }

    /// One write; `Ok(None)` = sent but the answer was lost or 5xx (state must be re-read).
    async fn write(
        &self,
        method: reqwest::Method,
        body: Option<&TlsBody<'_>>,
    ) -> Result<Option<StatusCode>, DeployError> {
        let mut req = self
            .http
            .request(method, self.url("/tls"))
            .basic_auth(self.s.api_key.expose(), Some(self.s.api_secret.expose()));
        if let Some(b) = body {
            req = req.json(b);
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        let rsp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(self.transport_error(e)),
            Err(_) => return Ok(None),
        };
        let status = rsp.status();
        let retry = Self::retry_after(&rsp);
        let text = crate::bounded_read::read_body_text(rsp, crate::bounded_read::MAX_RESPONSE)
            .await
            .unwrap_or_default();
        match status.as_u16() {
            200..=299 => Ok(Some(status)),
            500..=599 => Ok(None),
            _ => Err(self.api_error(status, &text, retry)),
        }
    }

    /// Whether the state can be `m` served in `mode` (by expiry and CN: see [`identity`]).
    fn serves(st: &TlsState, m: &Material, mode: TlsMode) -> bool {
        let expire = st.expire.as_deref().and_then(identity::parse_expire);
        identity::names_leaf(expire.as_ref(), st.cn.as_deref(), &m.leaf) == Some(true)
            && st.tls_type.as_deref() == Some(mode.as_str())
    }

    async fn await_running(
        &self,
        m: &Material,
        progress: &dyn DeployProgress,
    ) -> Result<(), DeployError> {
        let start = tokio::time::Instant::now();
        let mut delay = self.s.poll_interval;
        let mut last = "pending".to_string();
        loop {
            if start.elapsed() + delay > self.s.poll_timeout {
                return Err(DeployError::Timeout {
                    target: self.target(),
                    name: self.s.name.clone(),
                    status: last,
                    waited: start.elapsed(),
                });
            }
            progress.waiting(&crate::progress::Waiting {
                what: &format!("EMQX Cloud: {last}"),
                waiting_for: None,
                elapsed: start.elapsed(),
                next_check: Some(delay),
            });
            tokio::time::sleep(delay).await;
            delay = delay.mul_f64(1.5).min(Duration::from_secs(60));
            match self.tls_state().await? {
                Some(st) => {
                    let status = st.status.clone().unwrap_or_default();
                    match status.as_str() {
                        "running" if Self::serves(&st, m, self.s.tls) => return Ok(()),
                        "running" => {
                            // Still the previous certificate: the new one is not applied yet.
                            last = "running (previous certificate)".into();
                        }
                        "failed" => {
                            return Err(DeployError::Failed {
                                target: self.target(),
                                name: self.s.name.clone(),
                            });
                        }
                        // Known from the Terraform provider, not documented: it sounds final,
                        // and waiting out `poll_timeout` on it helps nobody.
                        "terminated" => {
                            return Err(DeployError::Terminated {
                                target: self.target(),
                                name: self.s.name.clone(),
                            });
                        }
                        "" => last = "(no status)".into(),
                        other => last = other.to_string(),
                    }
                }
                None => last = "not configured".into(),
            }
        }
    }
}

#[async_trait]
impl DeploymentTarget for EmqxCloud {
    fn describe(&self) -> String {
        self.target()
    }

    fn rules(&self) -> ImportRules {
        self.s.rules.clone()
    }

    fn warnings(&self) -> Vec<String> {
        EmqxCloud::warnings(self)
    }

    fn api_usage(&self) -> Option<String> {
        let (reads, writes) = self.requests_sent();
        Some(format!(
            "{}: {reads} read{} (of 60 an hour), {writes} write{} (of 6 an hour)",
            self.target(),
            if reads == 1 { "" } else { "s" },
            if writes == 1 { "" } else { "s" },
        ))
    }

    fn plan(&self, current: Option<&DeployedState>) -> Vec<String> {
        if self.s.deployment_type == Some(DeploymentType::Serverless) {
            return vec![format!("nothing: {} {SERVERLESS}", self.target())];
        }
        let mut out = vec![format!(
            "GET {} → {}",
            self.url("/tls"),
            match current {
                None => "no TLS configured".to_string(),
                Some(c) => format!(
                    "{}{}",
                    c.status,
                    c.expire
                        .map(|e| format!(", certificate expires {e}"))
                        .unwrap_or_default()
                ),
            }
        )];
        let method = if current.is_some() { "PUT" } else { "POST" };
        out.push(format!(
            "{method} {} ({}; 1 of the 6 writes EMQX Cloud allows per hour)",
            self.url("/tls"),
            self.s.tls.as_str()
        ));
        out.push(format!(
            "GET {} until `running` (every {}, up to {})",
            self.url("/tls"),
            human_duration(self.s.poll_interval),
            human_duration(self.s.poll_timeout)
        ));
        out
    }

    async fn readiness(&self) -> Vec<super::Readiness> {
        // Exactly one GET of the TLS configuration: it proves the key, its scope and the
        // deployment id at once, and spends one of the hour's 60 reads.
        let get = format!("GET {}", self.url("/tls"));
        let budget = "1 of the 60 reads EMQX Cloud allows per hour";
        vec![match self.tls_state_with(false).await {
            Ok(st) => super::Readiness {
                check: "API key".into(),
                ok: true,
                evidence: format!(
                    "valid, and may read the TLS configuration ({get} → {}; {budget})",
                    match st {
                        None => "no TLS configured".to_string(),
                        Some(st) => format!(
                            "{} {}, expires {}",
                            st.tls_type.as_deref().unwrap_or("TLS"),
                            st.status.as_deref().unwrap_or("(no status)"),
                            st.expire.as_deref().unwrap_or("(not said)")
                        ),
                    }
                ),
                fix: None,
            },
            Err(e) => super::Readiness {
                check: "API key".into(),
                ok: false,
                evidence: format!("{get} ({budget}): {e}"),
                fix: None,
            },
        }]
    }

    async fn current(&self) -> Result<Option<DeployedState>, DeployError> {
        let st = self.tls_state().await?;
        if st.is_none() {
            // `/tls` answers 404 both when no TLS is configured and when the deployment does
            // not exist: the deployment itself tells them apart where the key may read it
            // (404: an error naming the id). A key with only the TLS scope gets 403 there,
            // and then "no TLS configured" stands.
            if let Err(
                e @ DeployError::Api {
                    status: Some(404), ..
                },
            ) = self.get("").await
            {
                return Err(e);
            }
        }
        Ok(st.map(|st| DeployedState {
            status: st.status.unwrap_or_default(),
            expire: st.expire.as_deref().and_then(identity::parse_expire),
            tls_type: st.tls_type,
            cn: st.cn,
        }))
    }

    async fn deploy(
        &self,
        m: &Material,
        skip_if_served: bool,
        progress: &dyn DeployProgress,
    ) -> Result<DeployOutcome, DeployError> {
        if self.s.deployment_type == Some(DeploymentType::Serverless) {
            return Err(self.serverless_error());
        }
        let before = self.tls_state().await?;
        if let Some(st) = &before
            && skip_if_served
            && st.status.as_deref() == Some("running")
            && Self::serves(st, m, self.s.tls)
        {
            progress.update("EMQX Cloud already serves this certificate; no write spent");
            return Ok(DeployOutcome::Unchanged);
        }
        let fullchain = m.fullchain_pem();
        let body = TlsBody {
            tls_type: self.s.tls.as_str(),
            cert: &fullchain,
            key: &m.key_pem,
            cacert: if self.s.tls == TlsMode::TwoWay {
                self.s.client_ca_pem.as_deref()
            } else {
                None
            },
        };
        let (method, outcome) = if before.is_some() {
            (reqwest::Method::PUT, DeployOutcome::Replaced)
        } else {
            (reqwest::Method::POST, DeployOutcome::Created)
        };
        progress.update(&format!(
            "EMQX Cloud: {} /deployments/{}/tls ({})",
            method,
            self.s.deployment_id,
            self.s.tls.as_str()
        ));
        match self.write(method.clone(), Some(&body)).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                // The answer was lost or the API failed: re-read before anything else.
                let now = self.tls_state().await?;
                let applied = now.as_ref().is_some_and(|st| {
                    same_expiry(st.expire.as_deref(), m.leaf.not_after())
                        && identity::cn_names(st.cn.as_deref(), &m.leaf)
                });
                // The API shows only the expiry (and maybe the CN): when the certificate
                // served before can have the same, the re-read cannot tell the two apart.
                let ambiguous = before.as_ref().is_some_and(|st| {
                    same_expiry(st.expire.as_deref(), m.leaf.not_after())
                        && identity::cn_names(st.cn.as_deref(), &m.leaf)
                });
                if applied && ambiguous {
                    return Err(DeployError::Api {
                        target: self.target(),
                        status: None,
                        message: format!(
                            "the {method} got no usable answer, and re-reading the state cannot tell whether it took effect: EMQX Cloud shows only the expiry (in a time zone it does not name), and the certificate served before can have the same one. It was not repeated (EMQX Cloud allows 6 writes per hour). Run `{}` to see which certificate the broker serves, and `{}` if it is the old one",
                            crate::hint::command(&format!("verify {}", self.s.name)),
                            crate::hint::command(&format!("deploy {}", self.s.name))
                        ),
                    });
                }
                if !applied {
                    return Err(DeployError::Api {
                        target: self.target(),
                        status: None,
                        message: format!(
                            "the {method} got no usable answer and re-reading the state shows it did not take effect. It was not repeated (EMQX Cloud allows 6 writes per hour); the previous certificate, if any, is still served. Run `{}` again",
                            crate::hint::command(&format!("deploy {}", self.s.name))
                        ),
                    });
                }
            }
            Err(e) => return Err(e),
        }
        self.await_running(m, progress).await?;
        Ok(outcome)
    }

    async fn remove(&self) -> Result<(), DeployError> {
        if self.tls_state().await?.is_none() {
            return Ok(());
        }
        match self.write(reqwest::Method::DELETE, None).await? {
            Some(_) => Ok(()),
            None => match self.tls_state().await? {
                None => Ok(()),
                Some(_) => Err(DeployError::Api {
                    target: self.target(),
                    status: None,
                    message: "the DELETE got no usable answer and the TLS configuration is still there; it was not repeated. Run `brokercert remove` again".into(),
                }),
            },
        }
    }
}

/// Checks `m` against the target's rules; `Err(Rejected)` lists every failure.
pub fn preflight(
    target: &dyn DeploymentTarget,
    m: &Material,
    names: &[crate::names::DomainName],
    now: OffsetDateTime,
) -> Result<(), DeployError> {
    let verdicts = rules::check(m, names, &target.rules(), now);
    match rules::describe_failures(&verdicts) {
        None => Ok(()),
        Some(failures) => Err(DeployError::Rejected {
            target: target.describe(),
            failures,
        }),
    }
}

/// `segment` percent-encoded for use as one URL path segment (RFC 3986 unreserved characters
/// stay as they are).
fn percent_encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(base_url: &str) -> EmqxCloudSettings {
        EmqxCloudSettings {
            name: "c".into(),
            base_url: base_url.into(),
            deployment_id: "dep1".into(),
            api_key: Secret::new("k"),
            api_secret: Secret::new("s"),
            tls: TlsMode::OneWay,
            client_ca_pem: None,
            api_roots: Vec::new(),
            poll_interval: Duration::from_secs(1),
            poll_timeout: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            rules: ImportRules::emqx_cloud(),
            deployment_type: None,
        }
    }

    #[test]
    fn any_https_base_url_is_used_and_an_unusual_path_warned_about() {
        let documented = EmqxCloud::new(settings(DEFAULT_BASE_URL)).unwrap();
        assert!(documented.warnings().is_empty());
        let other = EmqxCloud::new(settings("https://127.0.0.1:9/api/v2")).unwrap();
        let w = other.warnings();
        assert!(
            w.len() == 1 && w[0].contains("/public_api/v1") && w[0].contains("using it as given"),
            "{w:?}"
        );
        for bad in ["http://127.0.0.1:9/public_api/v1", "not a url", "https://"] {
            let e = EmqxCloud::new(settings(bad)).err().expect(bad).to_string();
            assert!(e.contains("expected an https URL"), "{e}");
        }
    }

    #[test]
    fn expire_without_a_zone_is_read_as_utc_with_slack() {
        let t = identity::parse_expire("2034-05-22 02:43:21").unwrap();
        assert_eq!(t.at.unix_timestamp(), 2_031_878_601);
        assert!(same_expiry(
            Some("2034-05-22 10:43:21"),
            time::macros::datetime!(2034-05-22 02:43:21 UTC)
        ));
        assert!(!same_expiry(
            Some("not a date"),
            time::macros::datetime!(2034-05-22 02:43:21 UTC)
        ));
    }
}
