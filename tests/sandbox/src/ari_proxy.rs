//! An HTTPS reverse proxy that makes a running Pebble (2.4: no ACME Renewal Information)
//! look like an ARI-capable CA (RFC 9773), for renewal tests.
//!
//! Owns: its own HTTPS endpoint on 127.0.0.1 (a fresh local CA, written to [`CA_FILE`]),
//! forwarding every request to Pebble unchanged but for the hop-by-hop headers — the
//! `Host` header stays the proxy's, because Pebble builds every URL it hands out (directory,
//! `Location`, `Link`, order and authorization URLs) and checks each JWS `url` from the
//! request's `Host` (`relativeEndpoint` and `verifyPOST` in Pebble's `wfe/wfe.go`), so clients
//! never see Pebble's own address; and the ARI parts Pebble lacks: `renewalInfo` in the
//! directory, `GET /renewal-info/{certID}` with windows set by the test, recording the
//! `replaces` of each new-order and reflecting it in the order objects, and an
//! `alreadyReplaced` refusal switch. Likewise for certificate profiles (Pebble 2.4 has
//! none): `meta.profiles` in the directory when the test sets some
//! ([`AriProxy::set_profiles`]), and the `profile` each new-order carried, recorded and
//! reflected in the order object.
//!
//! Does not own: Pebble (start it first, e.g. with [`super::Sandbox`]), its management API
//! (roots and intermediates are read from Pebble directly), or any validation of
//! `replaces` (Pebble issues as usual; the proxy only records what was asked).
//!
//! ```text
//! let proxy = AriProxy::in_front_of(sb.pebble(), sb.dir()).await?;
//! // ACME client: directory proxy.directory_url(), trusting proxy.tls_ca_path()
//! proxy.set_window(&cert_id, AriWindow::relative(-1h, +1h));
//! proxy.reject_replaces(true);
//! assert_eq!(proxy.renewal_info_requests(), [cert_id]);
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinHandle;

use super::listen::{OnKill, listen};
use super::pebble::Pebble;
use super::{Result, SandboxError};

/// File name (in the directory given to [`AriProxy::start`]) of the CA that signed the
/// proxy's HTTPS certificate: what ACME clients must trust.
pub const CA_FILE: &str = "ari-proxy-tls-ca.pem";
/// Path of the renewal-information endpoint (`GET /renewal-info/{certID}`).
pub const RENEWAL_INFO_PATH: &str = "/renewal-info";
/// The `Retry-After` sent with renewal information unless [`AriProxy::set_retry_after`]
/// changes it (six hours, as Let's Encrypt suggests).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);
/// The problem type of a refused `replaces` (RFC 9773 §5).
pub const ALREADY_REPLACED: &str = "urn:ietf:params:acme:error:alreadyReplaced";

/// Largest request body forwarded (JWS requests are a few KiB; CSRs are small).
const MAX_BODY: usize = 1 << 20;
/// Headers that describe one hop, not the message: never forwarded either way.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
];

/// A suggested renewal window as the proxy answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AriWindow {
    /// Start of the window.
    pub start: OffsetDateTime,
    /// End of the window.
    pub end: OffsetDateTime,
    /// `explanationURL`, if any.
    pub explanation_url: Option<String>,
}

impl AriWindow {
    /// A window between two instants, without explanation.
    pub fn new(start: OffsetDateTime, end: OffsetDateTime) -> Self {
        Self {
            start,
            end,
            explanation_url: None,
        }
    }

    /// A window relative to now (negative offsets lie in the past; `relative(-1h, 1h)` is
    /// open now). Truncated to whole seconds, as RFC 3339 in JSON usually is.
    pub fn relative(start: time::Duration, end: time::Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        Self::new(now + start, now + end)
    }

    /// Adds an `explanationURL`.
    pub fn explanation(mut self, url: impl Into<String>) -> Self {
        self.explanation_url = Some(url.into());
        self
    }

    fn to_json(&self) -> serde_json::Value {
        let format = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        let mut body = serde_json::json!({
            "suggestedWindow": { "start": format(self.start), "end": format(self.end) },
        });
        if let Some(url) = &self.explanation_url {
            body["explanationURL"] = serde_json::Value::String(url.clone());
        }
        body
    }
}

impl Default for AriWindow {
    /// Not yet time to renew: a window from 30 to 32 days from now.
    fn default() -> Self {
        Self::relative(time::Duration::days(30), time::Duration::days(32))
    }
}

/// A new-order request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenOrder {
    /// The identifier values ordered (`mqtt.example.test`).
    pub identifiers: Vec<String>,
    /// The `replaces` field, if the order had one.
    pub replaces: Option<String>,
    /// The `profile` field, if the order had one.
    pub profile: Option<String>,
    /// Whether the proxy refused it with `alreadyReplaced` instead of forwarding it.
    pub rejected: bool,
    /// The HTTP status the client got (201 for a created order).
    pub status: u16,
}

/// What the test sets.
#[derive(Debug)]
struct Settings {
    default_window: AriWindow,
    windows: HashMap<String, AriWindow>,
    retry_after: Duration,
    reject_replaces: bool,
    /// `meta.profiles` to advertise: name → description (none: not advertised).
    profiles: Vec<(String, String)>,
    /// Refuse the next new-orders with `rateLimited` and this `Retry-After` (seconds).
    rate_limit_orders: Option<(u32, u64)>,
}

/// What the proxy saw and remembers.
#[derive(Debug, Default)]
struct Log {
    renewal_info: Vec<String>,
    orders: Vec<SeenOrder>,
    /// finalize URL → `replaces`, to reflect `replaces` in later copies of the order.
    replaces_by_finalize: HashMap<String, String>,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    directory_path: String,
    new_order_path: String,
    new_nonce_url: String,
    client: reqwest::Client,
    settings: Mutex<Settings>,
    log: Mutex<Log>,
}

impl Shared {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running proxy. Dropping it stops serving (its tasks are aborted).
pub struct AriProxy {
    addr: SocketAddr,
    ca_pem: String,
    ca_path: PathBuf,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    acceptor: JoinHandle<()>,
}

impl std::fmt::Debug for AriProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AriProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl AriProxy {
    /// Starts a proxy in front of a running [`Pebble`], writing [`CA_FILE`] into `dir`.
    pub async fn in_front_of(pebble: &Pebble, dir: &Path) -> Result<Self> {
        Self::start(&pebble.directory_url(), pebble.tls_ca_pem(), dir).await
    }

    /// Starts a proxy in front of the ACME server whose directory is `directory_url`
    /// (HTTPS, trusted through `upstream_ca_pem`), writing [`CA_FILE`] into `dir`, and
    /// serves on a free 127.0.0.1 port. Needs a tokio runtime.
    pub async fn start(directory_url: &str, upstream_ca_pem: &str, dir: &Path) -> Result<Self> {
        let client = upstream_client(upstream_ca_pem)?;
        let endpoints = Endpoints::discover(&client, directory_url).await?;

        let tls = super::local_tls::LocalTls::generate("brokercert sandbox ARI proxy CA")?;
        let ca_path = dir.join(CA_FILE);
        std::fs::write(&ca_path, &tls.ca_pem)
            .map_err(|e| SandboxError::io(format!("writing {}", ca_path.display()), e))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls.server_config()?));
        let (addr, incoming, acceptor) = listen("ARI proxy", Some(acceptor), OnKill::Abort).await?;

        let shared = Arc::new(Shared {
            upstream: endpoints.origin,
            directory_path: endpoints.directory_path,
            new_order_path: endpoints.new_order_path,
            new_nonce_url: endpoints.new_nonce_url,
            client,
            settings: Mutex::new(Settings {
                default_window: AriWindow::default(),
                windows: HashMap::new(),
                retry_after: DEFAULT_RETRY_AFTER,
                reject_replaces: false,
                profiles: Vec::new(),
                rate_limit_orders: None,
            }),
            log: Mutex::new(Log::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(incoming, app).await {
                tracing::warn!(error = %e, "ARI proxy stopped");
            }
        });
        tracing::debug!(%addr, upstream = %shared.upstream, "ARI proxy listening");
        Ok(Self {
            addr,
            ca_pem: tls.ca_pem,
            ca_path,
            shared,
            server,
            acceptor,
        })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// The ACME directory through the proxy, `https://127.0.0.1:PORT/dir`.
    pub fn directory_url(&self) -> String {
        format!("{}{}", self.base_url(), self.shared.directory_path)
    }

    /// The directory's `renewalInfo`, `https://127.0.0.1:PORT/renewal-info`.
    pub fn renewal_info_url(&self) -> String {
        format!("{}{RENEWAL_INFO_PATH}", self.base_url())
    }

    /// The CA file clients must trust for the proxy's HTTPS (`<dir>/ari-proxy-tls-ca.pem`).
    pub fn tls_ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The PEM of that CA.
    pub fn tls_ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The window answered for certificates without their own (default: [`AriWindow::default`]).
    pub fn set_default_window(&self, window: AriWindow) {
        self.shared.settings().default_window = window;
    }

    /// The window answered for the certificate `cert_id` (`base64url(AKI).base64url(serial)`).
    pub fn set_window(&self, cert_id: impl Into<String>, window: AriWindow) {
        self.shared
            .settings()
            .windows
            .insert(cert_id.into(), window);
    }

    /// The `Retry-After` of renewal-information answers (whole seconds; default
    /// [`DEFAULT_RETRY_AFTER`]).
    pub fn set_retry_after(&self, after: Duration) {
        self.shared.settings().retry_after = after;
    }

    /// While on, every new-order with `replaces` is refused with `alreadyReplaced` (409),
    /// as Let's Encrypt does for a certificate already replaced; orders without it pass.
    pub fn reject_replaces(&self, yes: bool) {
        self.shared.settings().reject_replaces = yes;
    }

    /// Refuses the next `count` new-orders with 429 `rateLimited` and `Retry-After:
    /// <retry_after_secs>`, as Let's Encrypt does when a limit is reached.
    pub fn rate_limit_next_orders(&self, count: u32, retry_after_secs: u64) {
        self.shared.settings().rate_limit_orders = Some((count, retry_after_secs));
    }

    /// Advertises these profiles (name, description) in the directory's `meta.profiles`;
    /// empty (the default) advertises none, as Pebble 2.4.
    pub fn set_profiles(&self, profiles: &[(&str, &str)]) {
        self.shared.settings().profiles = profiles
            .iter()
            .map(|(n, d)| ((*n).to_string(), (*d).to_string()))
            .collect();
    }

    /// The certificate ids asked for at `/renewal-info/`, in order.
    pub fn renewal_info_requests(&self) -> Vec<String> {
        self.shared.log().renewal_info.clone()
    }

    /// Every new-order request seen, in order.
    pub fn new_orders(&self) -> Vec<SeenOrder> {
        self.shared.log().orders.clone()
    }

    /// The `replaces` values of the new-order requests seen (refused ones included).
    pub fn replaces_seen(&self) -> Vec<String> {
        self.shared
            .log()
            .orders
            .iter()
            .filter_map(|o| o.replaces.clone())
            .collect()
    }

    /// Stops serving now (same as dropping).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for AriProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        // Dropping axum's serve future also tells open connections to close.
        self.server.abort();
    }
}

// ------------------------------------------------------------------ set-up

/// Where the upstream CA's endpoints are, from its directory.
struct Endpoints {
    origin: String,
    directory_path: String,
    new_order_path: String,
    new_nonce_url: String,
}

impl Endpoints {
    async fn discover(client: &reqwest::Client, directory_url: &str) -> Result<Self> {
        let dir_url = reqwest::Url::parse(directory_url)
            .map_err(|e| SandboxError::InvalidOption(format!("{directory_url}: {e}")))?;
        let directory: serde_json::Value = client
            .get(directory_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| SandboxError::Http(format!("GET {directory_url}: {e}")))?
            .json()
            .await
            .map_err(|e| SandboxError::Http(format!("GET {directory_url}: {e}")))?;
        let url_of = |key: &str| -> Result<reqwest::Url> {
            let text = directory[key].as_str().ok_or_else(|| {
                SandboxError::Pebble(format!("the directory {directory_url} has no {key}"))
            })?;
            reqwest::Url::parse(text)
                .map_err(|e| SandboxError::Pebble(format!("the directory's {key}: {e}")))
        };
        let new_nonce = url_of("newNonce")?;
        Ok(Self {
            origin: dir_url.origin().ascii_serialization(),
            directory_path: dir_url.path().to_string(),
            new_order_path: url_of("newOrder")?.path().to_string(),
            new_nonce_url: format!(
                "{}{}",
                dir_url.origin().ascii_serialization(),
                new_nonce.path()
            ),
        })
    }
}

fn upstream_client(ca_pem: &str) -> Result<reqwest::Client> {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())
        .map_err(|e| SandboxError::Http(format!("reading the upstream TLS CA: {e}")))?;
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .no_proxy()
        // HTTP/1.1: Pebble builds its URLs from the forwarded `Host` header, which an
        // HTTP/2 request would replace with Pebble's own address (`:authority`).
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| SandboxError::Http(format!("building an HTTPS client: {e}")))
}

// ------------------------------------------------------------------ requests

/// An upstream answer, possibly edited before it goes back.
struct Upstream {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Upstream {
    fn json(&self) -> Option<serde_json::Value> {
        let json = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        if json {
            serde_json::from_slice(&self.body).ok()
        } else {
            None
        }
    }

    fn set_json(&mut self, value: &serde_json::Value) {
        if let Ok(body) = serde_json::to_vec(value) {
            self.body = Bytes::from(body);
        }
    }

    fn into_response(self) -> Response {
        let mut rsp = Response::new(Body::from(self.body));
        *rsp.status_mut() = self.status;
        *rsp.headers_mut() = self.headers;
        rsp
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    if parts.method == Method::GET
        && let Some(id) = path
            .strip_prefix(RENEWAL_INFO_PATH)
            .and_then(|rest| rest.strip_prefix('/'))
    {
        return renewal_info(&shared, id);
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("reading the body: {e}")).into_response();
        }
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    let new_order = (parts.method == Method::POST && path == shared.new_order_path)
        .then(|| NewOrderRequest::parse(&body));
    let reject = shared.settings().reject_replaces;
    if let Some(order) = &new_order
        && order.replaces.is_some()
        && reject
    {
        return already_replaced(&shared, order).await;
    }
    if let Some(order) = &new_order {
        let limited = {
            let mut settings = shared.settings();
            match settings.rate_limit_orders {
                Some((n, secs)) if n > 0 => {
                    settings.rate_limit_orders = (n > 1).then_some((n - 1, secs));
                    Some(secs)
                }
                _ => None,
            }
        };
        if let Some(secs) = limited {
            return rate_limited(&shared, order, secs).await;
        }
    }

    let pq = parts
        .uri
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_string());
    let mut up = match forward(&shared, parts.method.clone(), &pq, &parts.headers, body).await {
        Ok(up) => up,
        Err(e) => {
            tracing::warn!("ARI proxy: {e}");
            return (StatusCode::BAD_GATEWAY, e).into_response();
        }
    };

    if parts.method == Method::GET && path == shared.directory_path {
        add_renewal_info(&mut up, host.as_deref());
        let profiles = shared.settings().profiles.clone();
        add_profiles(&mut up, &profiles);
    } else if let Some(order) = new_order {
        reflect_new_order(&shared, &mut up, order);
    } else {
        reflect_replaces(&shared, &mut up);
    }
    up.into_response()
}

async fn forward(
    shared: &Shared,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> std::result::Result<Upstream, String> {
    let url = format!("{}{path_and_query}", shared.upstream);
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    let rsp = shared
        .client
        .request(method.clone(), &url)
        .headers(out)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let status = rsp.status();
    let mut headers = rsp.headers().clone();
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    let body = rsp
        .bytes()
        .await
        .map_err(|e| format!("{method} {url}: reading the answer: {e}"))?;
    Ok(Upstream {
        status,
        headers,
        body,
    })
}

/// `renewalInfo` in the directory, on the host the client used.
fn add_renewal_info(up: &mut Upstream, host: Option<&str>) {
    let Some(mut dir) = up.json() else { return };
    if let Some(obj) = dir.as_object_mut() {
        let base = host.map_or_else(String::new, |h| format!("https://{h}"));
        obj.insert(
            "renewalInfo".into(),
            serde_json::Value::String(format!("{base}{RENEWAL_INFO_PATH}")),
        );
        up.set_json(&dir);
    }
}

/// `meta.profiles` in the directory (when any are set).
fn add_profiles(up: &mut Upstream, profiles: &[(String, String)]) {
    if profiles.is_empty() {
        return;
    }
    let Some(mut dir) = up.json() else { return };
    let listed: serde_json::Map<String, serde_json::Value> = profiles
        .iter()
        .map(|(n, d)| (n.clone(), serde_json::Value::String(d.clone())))
        .collect();
    if let Some(obj) = dir.as_object_mut() {
        let meta = obj.entry("meta").or_insert_with(|| serde_json::json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("profiles".into(), serde_json::Value::Object(listed));
        }
        up.set_json(&dir);
    }
}

fn renewal_info(shared: &Shared, id: &str) -> Response {
    if !is_cert_id(id) {
        return problem(
            StatusCode::BAD_REQUEST,
            "urn:ietf:params:acme:error:malformed",
            &format!("`{id}` is not a certificate identifier (base64url(AKI).base64url(serial))"),
            None,
        );
    }
    shared.log().renewal_info.push(id.to_string());
    let (window, retry_after) = {
        let s = shared.settings();
        let w = s.windows.get(id).unwrap_or(&s.default_window).clone();
        (w, s.retry_after)
    };
    let mut rsp = axum::Json(window.to_json()).into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().to_string()) {
        rsp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    rsp
}

fn is_cert_id(id: &str) -> bool {
    let Some((aki, serial)) = id.split_once('.') else {
        return false;
    };
    [aki, serial]
        .iter()
        .all(|part| !part.is_empty() && URL_SAFE_NO_PAD.decode(part).is_ok())
}

/// The parts of a new-order JWS the proxy cares about.
#[derive(Debug, Default)]
struct NewOrderRequest {
    identifiers: Vec<String>,
    replaces: Option<String>,
    profile: Option<String>,
}

impl NewOrderRequest {
    /// Reads the flattened JWS's payload; anything unreadable is left for Pebble to refuse.
    fn parse(body: &[u8]) -> Self {
        let payload = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|jws| jws["payload"].as_str().map(str::to_string))
            .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok());
        let Some(payload) = payload else {
            return Self::default();
        };
        Self {
            identifiers: payload["identifiers"]
                .as_array()
                .map(|ids| {
                    ids.iter()
                        .filter_map(|i| i["value"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            replaces: payload["replaces"].as_str().map(str::to_string),
            profile: payload["profile"].as_str().map(str::to_string),
        }
    }
}

/// Refuses a new-order itself (Pebble never sees it): records it as rejected and answers
/// the problem `kind` with a fresh nonce from upstream, as the client needs one to go on.
async fn refuse_order(
    shared: &Shared,
    order: &NewOrderRequest,
    status: StatusCode,
    kind: &str,
    detail: &str,
) -> Response {
    let nonce = match shared.client.head(&shared.new_nonce_url).send().await {
        Ok(rsp) => rsp.headers().get("replay-nonce").cloned(),
        Err(e) => {
            tracing::warn!(
                "ARI proxy: no fresh nonce from {}: {e}",
                shared.new_nonce_url
            );
            None
        }
    };
    shared.log().orders.push(SeenOrder {
        identifiers: order.identifiers.clone(),
        replaces: order.replaces.clone(),
        profile: order.profile.clone(),
        rejected: true,
        status: status.as_u16(),
    });
    problem(status, kind, detail, nonce)
}

/// Refuses a new-order as a rate-limited CA does: 429 `rateLimited` with `Retry-After`.
async fn rate_limited(shared: &Shared, order: &NewOrderRequest, secs: u64) -> Response {
    let mut rsp = refuse_order(
        shared,
        order,
        StatusCode::TOO_MANY_REQUESTS,
        "urn:ietf:params:acme:error:rateLimited",
        "too many new orders recently (sandbox)",
    )
    .await;
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        rsp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    rsp
}

/// Refuses a new-order with `replaces` as Let's Encrypt does for an already replaced
/// certificate: 409 `alreadyReplaced`.
async fn already_replaced(shared: &Shared, order: &NewOrderRequest) -> Response {
    let detail = format!(
        "the certificate {} has already been replaced",
        order.replaces.as_deref().unwrap_or_default()
    );
    refuse_order(
        shared,
        order,
        StatusCode::CONFLICT,
        ALREADY_REPLACED,
        &detail,
    )
    .await
}

fn problem(status: StatusCode, kind: &str, detail: &str, nonce: Option<HeaderValue>) -> Response {
    let body = serde_json::json!({ "type": kind, "detail": detail, "status": status.as_u16() });
    let mut rsp = Response::new(Body::from(body.to_string()));
    *rsp.status_mut() = status;
    let headers = rsp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(nonce) = nonce {
        headers.insert("replay-nonce", nonce);
    }
    rsp
}

/// Records a forwarded new-order and, when the order was created, echoes its `replaces`
/// (an ARI CA MUST reflect it) and remembers it for later copies of the order.
fn reflect_new_order(shared: &Shared, up: &mut Upstream, order: NewOrderRequest) {
    if up.status == StatusCode::CREATED
        && let Some(profile) = &order.profile
        && let Some(mut state) = up.json()
        && let Some(obj) = state.as_object_mut()
    {
        obj.insert("profile".into(), serde_json::Value::String(profile.clone()));
        up.set_json(&state);
    }
    if up.status == StatusCode::CREATED
        && let Some(replaces) = &order.replaces
        && let Some(mut state) = up.json()
        && let Some(obj) = state.as_object_mut()
    {
        obj.insert(
            "replaces".into(),
            serde_json::Value::String(replaces.clone()),
        );
        if let Some(finalize) = obj.get("finalize").and_then(|f| f.as_str()) {
            shared
                .log()
                .replaces_by_finalize
                .insert(finalize.to_string(), replaces.clone());
        }
        up.set_json(&state);
    }
    shared.log().orders.push(SeenOrder {
        identifiers: order.identifiers,
        replaces: order.replaces,
        profile: order.profile,
        rejected: false,
        status: up.status.as_u16(),
    });
}

/// Puts `replaces` back into any later copy of an order placed with it (order fetches,
/// finalize answers): Pebble 2.4 drops the field.
fn reflect_replaces(shared: &Shared, up: &mut Upstream) {
    if shared.log().replaces_by_finalize.is_empty() {
        return;
    }
    let Some(mut state) = up.json() else { return };
    let replaces = state["finalize"]
        .as_str()
        .and_then(|f| shared.log().replaces_by_finalize.get(f).cloned());
    if let (Some(replaces), Some(obj)) = (replaces, state.as_object_mut())
        && !obj.contains_key("replaces")
    {
        obj.insert("replaces".into(), serde_json::Value::String(replaces));
        up.set_json(&state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_ids_are_two_base64url_parts() {
        assert!(is_cert_id("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"));
        assert!(!is_cert_id("aYhba4dGQEHhs3uEe6CuLN4ByNQ"));
        assert!(!is_cert_id(".AIdlQyE"));
        assert!(!is_cert_id("a+b.AIdlQyE"));
    }

    #[test]
    fn reads_replaces_from_the_jws_payload() {
        let payload = URL_SAFE_NO_PAD
            .encode(br#"{"identifiers":[{"type":"dns","value":"a.test"}],"replaces":"aYhb.AIdl"}"#);
        let jws = format!(r#"{{"protected":"e30","payload":"{payload}","signature":"AA"}}"#);
        let order = NewOrderRequest::parse(jws.as_bytes());
        assert_eq!(order.identifiers, vec!["a.test"]);
        assert_eq!(order.replaces.as_deref(), Some("aYhb.AIdl"));
        assert!(NewOrderRequest::parse(b"not json").replaces.is_none());
    }

    #[test]
    fn window_json_is_rfc3339() {
        let w = AriWindow::new(
            time::macros::datetime!(2025-01-02 03:04:05 UTC),
            time::macros::datetime!(2025-01-03 03:04:05 UTC),
        )
        .explanation("https://example.test/why");
        assert_eq!(
            w.to_json(),
            serde_json::json!({
                "suggestedWindow": {"start": "2025-01-02T03:04:05Z", "end": "2025-01-03T03:04:05Z"},
                "explanationURL": "https://example.test/why",
            })
        );
    }
}
