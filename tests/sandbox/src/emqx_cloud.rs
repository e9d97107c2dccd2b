//! An emulator of the EMQX Cloud Platform API's TLS endpoints, served over HTTPS on
//! 127.0.0.1 (certificate from a CA generated here, written as [`CA_FILE`]), where each
//! dedicated deployment is backed by a real [`Mosquitto`] broker that serves the uploaded
//! certificate on its mqtts and wss ports.
//!
//! The API as the emulator answers it (`{id}` is a deployment added by the test with
//! [`EmqxCloudEmulator::add_deployment`]; every path is under [`API_PREFIX`]):
//!
//! | request | answer |
//! |---|---|
//! | any, no/wrong Basic credentials | 401 |
//! | any, key without the TLS scope | 403 |
//! | any, unknown deployment (or another key's) | 404 |
//! | over the rolling-window budget (default 6 writes / 60 reads an hour per deployment) | 429 + `Retry-After: <seconds>` |
//! | `GET /deployments/{id}` | `{"id","deploymentType","status":"running","version":"5.x"}` |
//! | `/deployments/{id}/tls` of a serverless deployment | 400 `NOT_SUPPORTED` |
//! | `GET /deployments/{id}/tls` | 404 `TLS_NOT_FOUND`, or `{"tlsType","status","expire","cn"}` |
//! | `POST …/tls` `{"tlsType","cert","key","cacert"?}` | 200, GET shape with `"status":"pending"`; **409** `TLS_ALREADY_EXISTS` if one exists |
//! | `PUT …/tls` (same body) | 200 pending; 404 `TLS_NOT_FOUND` if none exists |
//! | `DELETE …/tls` | 204, the broker is stopped; 404 if none exists |
//! | a certificate the real service refuses | 422 `{"code":"WRONG_PROPERTIES","message":"Wrong Properties: …","rule":…}` |
//!
//! Error bodies are `{"code": "...", "message": "..."}`. Every request that passes
//! authentication and names a known deployment spends budget, including refused (4xx)
//! writes; 429s and injected faults don't, except the write faults
//! ([`EmqxCloudEmulator::fail_next_write`], [`EmqxCloudEmulator::stall_next_write`]),
//! which strike after the write was counted. Validation happens before a write is stored.
//!
//! After POST/PUT the status is `pending`; after [`EmqxCloudEmulator::set_pending_delay`]
//! (default 0) the deployment's Mosquitto is restarted with the new files: `running` on
//! success, `failed` when Mosquitto refuses them — the previous files are then served
//! again. GET keeps describing the latest upload (also when it `failed`).
//!
//! Which of these behaviours are documented and which are assumed (and the switches for the
//! assumptions: [`EmqxCloudEmulator::set_behaviours`]) is listed in one place: [`BEHAVIOURS`].
//!
//! Request and response bodies are never logged (they hold private keys);
//! [`EmqxCloudEmulator::requests`] records method, path and status only.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::KeyPair;
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::task::JoinHandle;

mod behaviours;

pub use behaviours::{
    BEHAVIOURS, Behaviour, Behaviours, BudgetScope, CnForm, ErrorBody, ExpireForm, NoTls,
    PostOverExisting, RetryAfter, Source,
};

use super::listen::{Conn, OnKill, listen};
use super::mosquitto::{Mosquitto, MosquittoConfig, MqttUser};
use super::{Result, SandboxError};
use brokercert::pki::{Certificate, KeyKind, PrivateKey, normalise_pem, parse_bundle};

/// The path prefix of every endpoint (the official tools require base URLs to end in it).
pub const API_PREFIX: &str = "/public_api/v1";
/// File name (in the emulator's directory) of the CA that signed its HTTPS certificate.
pub const CA_FILE: &str = "emqx-cloud-api-ca.pem";
/// The `version` `GET /deployments/{id}` reports.
pub const DEPLOYMENT_VERSION: &str = "5.8.6";

/// Key types the newest EMQX Cloud guide accepts: RSA 1024/2048, ECDSA P-256/P-384.
pub fn newest_guide_key_kinds() -> Vec<KeyKind> {
    vec![
        KeyKind::Rsa { bits: 1024 },
        KeyKind::Rsa { bits: 2048 },
        KeyKind::EcdsaP256,
        KeyKind::EcdsaP384,
    ]
}

/// Key types the older guides accept: RSA 1024/2048 only.
pub fn older_guide_key_kinds() -> Vec<KeyKind> {
    vec![KeyKind::Rsa { bits: 1024 }, KeyKind::Rsa { bits: 2048 }]
}

/// The newest guide's validity rule: refuse certificates with fewer days left.
pub const DEFAULT_MIN_DAYS_REMAINING: u32 = 60;

/// What kind of deployment (`deploymentType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeploymentKind {
    /// `dedicated`: custom certificates supported.
    Dedicated,
    /// `dedicatedFlex`: custom certificates supported.
    DedicatedFlex,
    /// `serverless`: no custom certificates (the TLS endpoints answer 400).
    Serverless,
}

impl DeploymentKind {
    /// The API's spelling.
    pub fn api_name(self) -> &'static str {
        match self {
            DeploymentKind::Dedicated => "dedicated",
            DeploymentKind::DedicatedFlex => "dedicatedFlex",
            DeploymentKind::Serverless => "serverless",
        }
    }

    fn has_broker(self) -> bool {
        !matches!(self, DeploymentKind::Serverless)
    }
}

/// A deployment the emulator knows, with the API key that may manage it. `Debug` shows
/// no secret.
#[derive(Clone)]
pub struct DeploymentSpec {
    /// The deployment ID in paths (e.g. `ge6a1a75`): letters, digits, `-`, `_`.
    pub id: String,
    /// Its type.
    pub kind: DeploymentKind,
    /// The Platform API key (Basic auth user).
    pub api_key: String,
    /// Its secret (Basic auth password).
    pub api_secret: String,
    /// Whether the key has the "TLS Certificate Management" scope (else 403 on `…/tls`).
    pub scopes_ok: bool,
    /// Whether the key also has the "Deployment Management" scope (else 403 on
    /// `GET /deployments/{id}`). Default false: the key the README tells users to create.
    pub deployment_scope: bool,
    /// The MQTT user the broker accepts; `None` = anonymous clients allowed.
    pub mqtt_user: Option<MqttUser>,
    /// When set, the leaf must cover this name or IP (the "connection address" rule).
    pub connection_address: Option<String>,
}

impl DeploymentSpec {
    /// A dedicated deployment managed by this key, with the TLS scope.
    pub fn dedicated(
        id: impl Into<String>,
        api_key: impl Into<String>,
        api_secret: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            kind: DeploymentKind::Dedicated,
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            scopes_ok: true,
            deployment_scope: false,
            mqtt_user: None,
            connection_address: None,
        }
    }

    /// A serverless deployment managed by this key.
    pub fn serverless(
        id: impl Into<String>,
        api_key: impl Into<String>,
        api_secret: impl Into<String>,
    ) -> Self {
        Self {
            kind: DeploymentKind::Serverless,
            ..Self::dedicated(id, api_key, api_secret)
        }
    }

    /// Whether the key has the TLS scope.
    pub fn scopes_ok(mut self, yes: bool) -> Self {
        self.scopes_ok = yes;
        self
    }

    /// Whether the key also has the "Deployment Management" scope (`GET /deployments/{id}`).
    pub fn deployment_scope(mut self, yes: bool) -> Self {
        self.deployment_scope = yes;
        self
    }

    /// The broker accepts only this MQTT user.
    pub fn mqtt_user(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.mqtt_user = Some(MqttUser::new(username, password));
        self
    }

    /// The leaf must cover this name or IP address.
    pub fn connection_address(mut self, address: impl Into<String>) -> Self {
        self.connection_address = Some(address.into());
        self
    }
}

impl fmt::Debug for DeploymentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeploymentSpec")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("api_key", &self.api_key)
            .field("scopes_ok", &self.scopes_ok)
            .field("deployment_scope", &self.deployment_scope)
            .field("mqtt_user", &self.mqtt_user)
            .field("connection_address", &self.connection_address)
            .finish_non_exhaustive()
    }
}

/// The 127.0.0.1 ports of a dedicated deployment's broker (fixed for its lifetime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeploymentPorts {
    /// MQTT over TLS (EMQX Cloud's 8883).
    pub mqtts: u16,
    /// MQTT over WebSockets over TLS, path `/mqtt` (EMQX Cloud's 8084).
    pub wss: u16,
}

impl DeploymentPorts {
    /// `127.0.0.1:<mqtts>`.
    pub fn mqtts_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.mqtts))
    }

    /// `127.0.0.1:<wss>`.
    pub fn wss_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.wss))
    }

    /// `wss://127.0.0.1:<wss>/mqtt`.
    pub fn wss_url(&self) -> String {
        format!("wss://127.0.0.1:{}/mqtt", self.wss)
    }
}

/// `tlsType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsType {
    /// `one-way`: only clients verify the server.
    OneWay,
    /// `two-way`: the broker also requires client certificates signed by `cacert`.
    TwoWay,
}

impl TlsType {
    /// The API's spelling.
    pub fn api_name(self) -> &'static str {
        match self {
            TlsType::OneWay => "one-way",
            TlsType::TwoWay => "two-way",
        }
    }
}

/// `status` of a TLS configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsStatus {
    /// Uploaded, not yet applied.
    Pending,
    /// Applied: the broker serves it.
    Running,
    /// The broker refused it; the previous configuration keeps serving.
    Failed,
    /// Stopped (the Terraform provider knows this word; its meaning is not documented): the
    /// previous configuration keeps serving.
    Terminated,
}

impl TlsStatus {
    /// The API's spelling.
    pub fn api_name(self) -> &'static str {
        match self {
            TlsStatus::Pending => "pending",
            TlsStatus::Running => "running",
            TlsStatus::Failed => "failed",
            TlsStatus::Terminated => "terminated",
        }
    }
}

/// What the emulator stores about a deployment's TLS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSnapshot {
    /// `tlsType`.
    pub tls_type: TlsType,
    /// `status`.
    pub status: TlsStatus,
    /// `expire`: the leaf's notAfter, `YYYY-MM-DD HH:MM:SS` UTC (GET shows it in the form
    /// [`Behaviours::expire_form`] says).
    pub expire: String,
    /// The leaf's notAfter.
    pub not_after: OffsetDateTime,
    /// `cn`: the leaf's subject CN.
    pub cn: Option<String>,
    /// The leaf's serial number (lowercase hex).
    pub leaf_serial_hex: String,
    /// The leaf's SHA-256 fingerprint (lowercase hex).
    pub leaf_sha256: String,
}

/// Request budgets per deployment in a rolling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// POST/PUT/DELETE per window (documented: 6 an hour).
    pub writes: usize,
    /// GETs per window (documented: 60 an hour).
    pub reads: usize,
    /// The window (documented: an hour).
    pub window: Duration,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            writes: 6,
            reads: 60,
            window: Duration::from_secs(3600),
        }
    }
}

/// One request the emulator answered (no bodies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The URL path (no query).
    pub path: String,
    /// The status sent; 0 when the connection was dropped on purpose
    /// ([`EmqxCloudEmulator::drop_connection_on_next_put`]).
    pub status: u16,
}

/// When [`EmqxCloudEmulator::drop_connection_on_next_put`] drops the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropPoint {
    /// Before anything is stored: the PUT had no effect (it still spent budget).
    BeforeApply,
    /// After the PUT was validated and stored (and its apply scheduled): the client
    /// doesn't learn that it worked.
    AfterApply,
}

struct Settings {
    allowed_key_kinds: Vec<KeyKind>,
    min_days_remaining: u32,
    require_chain: bool,
    pending_delay: Option<Duration>,
    budgets: Budgets,
    latency: Duration,
    fail_requests: u32,
    fail_status: u16,
    fail_next_apply: bool,
    terminate_next_apply: bool,
    behaviours: Behaviours,
    drop_next_put: Option<DropPoint>,
    fail_next_write: Option<u16>,
    stall_next_write: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allowed_key_kinds: newest_guide_key_kinds(),
            min_days_remaining: DEFAULT_MIN_DAYS_REMAINING,
            require_chain: true,
            pending_delay: Some(Duration::ZERO),
            budgets: Budgets::default(),
            latency: Duration::ZERO,
            fail_requests: 0,
            fail_status: 503,
            fail_next_apply: false,
            terminate_next_apply: false,
            behaviours: Behaviours::default(),
            drop_next_put: None,
            fail_next_write: None,
            stall_next_write: None,
        }
    }
}

struct TlsRecord {
    snapshot: TlsSnapshot,
    config: MosquittoConfig,
    generation: u64,
}

struct Deployment {
    spec: DeploymentSpec,
    ports: Option<DeploymentPorts>,
    broker: Option<Arc<tokio::sync::Mutex<Mosquitto>>>,
    tls: Option<TlsRecord>,
    generation: u64,
    writes: usize,
    reads: usize,
    applies: usize,
}

#[derive(Default)]
struct State {
    settings: Settings,
    deployments: BTreeMap<String, Deployment>,
    /// Rolling windows of (writes, reads), per what [`Behaviours::budget_scope`] counts.
    windows: BTreeMap<String, (VecDeque<Instant>, VecDeque<Instant>)>,
    log: Vec<ApiRequest>,
}

struct Shared {
    state: Mutex<State>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Set when the emulator is dropped: kept-alive connections get no more answers.
    closed: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn track(&self, task: JoinHandle<()>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }
}

/// The EMQX Cloud Platform API emulator: HTTPS on 127.0.0.1, one Mosquitto per dedicated
/// deployment. Dropping it stops the server and every broker (by PID).
pub struct EmqxCloudEmulator {
    addr: SocketAddr,
    dir: PathBuf,
    ca_pem: String,
    ca_path: PathBuf,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    acceptor: JoinHandle<()>,
}

impl fmt::Debug for EmqxCloudEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmqxCloudEmulator")
            .field("addr", &self.addr)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl EmqxCloudEmulator {
    /// Generates the HTTPS certificate, writes [`CA_FILE`] into `dir` (created if missing;
    /// brokers get `dir/deployments/<id>/`) and starts serving on a free 127.0.0.1 port.
    /// Needs a tokio runtime.
    pub async fn start(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| SandboxError::io(format!("creating {}", dir.display()), e))?;
        // The emulator's own HTTPS certificate (localhost, 127.0.0.1, ::1) and its CA.
        let tls = super::local_tls::LocalTls::generate("brokercert sandbox EMQX Cloud API CA")?;
        let ca_path = dir.join(CA_FILE);
        std::fs::write(&ca_path, &tls.ca_pem)
            .map_err(|e| SandboxError::io(format!("writing {}", ca_path.display()), e))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls.server_config()?));
        let (addr, incoming, acceptor_task) =
            listen("EMQX Cloud emulator", Some(acceptor), OnKill::Abort).await?;

        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            tasks: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let make = app.into_make_service_with_connect_info::<Conn>();
            if let Err(e) = axum::serve(incoming, make).await {
                tracing::warn!(error = %e, "EMQX Cloud emulator stopped");
            }
        });
        tracing::debug!(%addr, "EMQX Cloud emulator listening");
        Ok(Self {
            addr,
            dir,
            ca_pem: tls.ca_pem,
            ca_path,
            shared,
            server,
            acceptor: acceptor_task,
        })
    }

    /// `https://127.0.0.1:PORT/public_api/v1`.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}{API_PREFIX}", self.addr.port())
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The emulator's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA clients must trust for the API's HTTPS (`<dir>/emqx-cloud-api-ca.pem`).
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_path
    }

    /// That CA as PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// An HTTPS client that trusts only the emulator's CA and uses no proxy.
    pub fn http_client(&self) -> Result<reqwest::Client> {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes())
            .map_err(|e| SandboxError::Http(format!("reading the emulator's CA: {e}")))?;
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SandboxError::Http(format!("building an HTTPS client: {e}")))
    }

    /// Adds a deployment. A dedicated one gets a (not yet started) Mosquitto whose ports
    /// [`EmqxCloudEmulator::deployment_ports`] tells at once.
    pub fn add_deployment(&self, spec: DeploymentSpec) -> Result<()> {
        let id_ok = !spec.id.is_empty()
            && spec.id.len() <= 64
            && spec
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            return Err(SandboxError::InvalidOption(format!(
                "deployment id {:?}: use 1-64 letters, digits, '-' or '_'",
                spec.id
            )));
        }
        if self.shared.lock().deployments.contains_key(&spec.id) {
            return Err(SandboxError::InvalidOption(format!(
                "deployment {} exists already",
                spec.id
            )));
        }
        let (broker, ports) = if spec.kind.has_broker() {
            let broker = Mosquitto::new(self.dir.join("deployments").join(&spec.id))?;
            let ports = DeploymentPorts {
                mqtts: broker.mqtts_port(),
                wss: broker.wss_port(),
            };
            (Some(Arc::new(tokio::sync::Mutex::new(broker))), Some(ports))
        } else {
            (None, None)
        };
        let id = spec.id.clone();
        let deployment = Deployment {
            spec,
            ports,
            broker,
            tls: None,
            generation: 0,
            writes: 0,
            reads: 0,
            applies: 0,
        };
        let mut state = self.shared.lock();
        if state.deployments.contains_key(&id) {
            return Err(SandboxError::InvalidOption(format!(
                "deployment {id} exists already"
            )));
        }
        state.deployments.insert(id, deployment);
        Ok(())
    }

    /// The broker ports of a dedicated deployment.
    pub fn deployment_ports(&self, id: &str) -> Option<DeploymentPorts> {
        self.shared.lock().deployments.get(id).and_then(|d| d.ports)
    }

    /// The stored TLS configuration, without spending the read budget.
    pub fn tls_snapshot(&self, id: &str) -> Option<TlsSnapshot> {
        self.shared
            .lock()
            .deployments
            .get(id)
            .and_then(|d| d.tls.as_ref())
            .map(|t| t.snapshot.clone())
    }

    /// Waits until the deployment's TLS status is not `pending` (or `timeout`); returns
    /// the last snapshot. Spends no budget.
    pub async fn wait_settled(&self, id: &str, timeout: Duration) -> Option<TlsSnapshot> {
        let start = Instant::now();
        loop {
            let snapshot = self.tls_snapshot(id);
            let settled = snapshot
                .as_ref()
                .is_none_or(|s| s.status != TlsStatus::Pending);
            if settled || start.elapsed() > timeout {
                return snapshot;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether the deployment's Mosquitto runs (waits while an apply holds it).
    pub async fn broker_running(&self, id: &str) -> bool {
        let broker = self
            .shared
            .lock()
            .deployments
            .get(id)
            .and_then(|d| d.broker.clone());
        match broker {
            Some(b) => b.lock().await.is_running(),
            None => false,
        }
    }

    /// The deployment's Mosquitto log file.
    pub fn broker_log_path(&self, id: &str) -> Option<PathBuf> {
        self.deployment_ports(id)
            .map(|_| self.dir.join("deployments").join(id).join("mosquitto.log"))
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.shared.lock().log.clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.lock().log.clear();
    }

    /// Writes (POST/PUT/DELETE) that spent the deployment's budget, ever.
    pub fn write_count(&self, id: &str) -> usize {
        self.shared
            .lock()
            .deployments
            .get(id)
            .map_or(0, |d| d.writes)
    }

    /// Reads (GET) that spent the deployment's budget, ever.
    pub fn read_count(&self, id: &str) -> usize {
        self.shared
            .lock()
            .deployments
            .get(id)
            .map_or(0, |d| d.reads)
    }

    /// Applies that finished (`running` or `failed`), ever.
    pub fn apply_count(&self, id: &str) -> usize {
        self.shared
            .lock()
            .deployments
            .get(id)
            .map_or(0, |d| d.applies)
    }

    /// Accepted key types (default [`newest_guide_key_kinds`]).
    pub fn set_allowed_key_kinds(&self, kinds: Vec<KeyKind>) {
        self.shared.lock().settings.allowed_key_kinds = kinds;
    }

    /// Refuse leaves with fewer than `days` days left (default
    /// [`DEFAULT_MIN_DAYS_REMAINING`]; 0 = only expired or not-yet-valid ones).
    pub fn set_min_days_remaining(&self, days: u32) {
        self.shared.lock().settings.min_days_remaining = days;
    }

    /// Refuse a lone leaf that is not self-signed (its chain is missing). Default true.
    pub fn set_require_chain(&self, yes: bool) {
        self.shared.lock().settings.require_chain = yes;
    }

    /// How long a POST/PUT stays `pending` before the broker is reconfigured (default 0).
    /// Affects later writes only.
    pub fn set_pending_delay(&self, delay: Duration) {
        self.shared.lock().settings.pending_delay = Some(delay);
    }

    /// Later POST/PUTs stay `pending` forever (nothing is applied).
    pub fn set_pending_forever(&self) {
        self.shared.lock().settings.pending_delay = None;
    }

    /// The next apply fails for real: Mosquitto is handed a key that doesn't match the
    /// certificate, refuses it, and is restarted with the previous files; status `failed`.
    pub fn fail_next_apply(&self) {
        self.shared.lock().settings.fail_next_apply = true;
    }

    /// The switches for the assumptions (see [`BEHAVIOURS`]); default: [`Behaviours::default`].
    pub fn set_behaviours(&self, behaviours: Behaviours) {
        self.shared.lock().settings.behaviours = behaviours;
    }

    /// The current switches.
    pub fn behaviours(&self) -> Behaviours {
        self.shared.lock().settings.behaviours
    }

    /// The next apply ends `terminated` instead of `running`; the previous files keep
    /// serving.
    pub fn terminate_next_apply(&self) {
        self.shared.lock().settings.terminate_next_apply = true;
    }

    /// Budgets (default 6 writes / 60 reads an hour), counted per deployment, key or
    /// account as [`Behaviours::budget_scope`] says.
    pub fn set_budgets(&self, budgets: Budgets) {
        self.shared.lock().settings.budgets = budgets;
    }

    /// Answers the next `count` requests with `status` (e.g. 503) before anything else.
    pub fn fail_next_requests(&self, count: u32, status: u16) {
        let mut state = self.shared.lock();
        state.settings.fail_requests = count;
        state.settings.fail_status = status;
    }

    /// Delays every answer by `latency` (default 0).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().settings.latency = latency;
    }

    /// Answers the next POST/PUT/DELETE with `status` (e.g. 502) after counting it against
    /// the write budget, without applying it (a gateway failing in front of the API).
    pub fn fail_next_write(&self, status: u16) {
        self.shared.lock().settings.fail_next_write = Some(status);
    }

    /// Holds the next POST/PUT/DELETE for `delay` after counting it against the write
    /// budget, then handles it as usual (if the client is still there to be answered: a
    /// client that timed out may or may not see it applied when it re-reads later).
    pub fn stall_next_write(&self, delay: Duration) {
        self.shared.lock().settings.stall_next_write = Some(delay);
    }

    /// Drops the connection of the next PUT without an answer, at `point`.
    pub fn drop_connection_on_next_put(&self, point: DropPoint) {
        self.shared.lock().settings.drop_next_put = Some(point);
    }

    /// Stops the server and every broker now (same as dropping).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for EmqxCloudEmulator {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.acceptor.abort();
        self.server.abort();
        let tasks = std::mem::take(
            &mut *self
                .shared
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for task in tasks {
            task.abort();
        }
        let brokers: Vec<_> = self
            .shared
            .lock()
            .deployments
            .values()
            .filter_map(|d| d.broker.clone())
            .collect();
        for broker in brokers {
            if let Ok(mut b) = broker.try_lock() {
                b.stop();
            } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                // Locked by an apply that was just aborted: stop it once the lock is free.
                // (Were the runtime shutting down, dropping the tasks drops the broker.)
                runtime.spawn(async move { broker.lock().await.stop() });
            }
        }
    }
}

// ------------------------------------------------------------------ the API

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (status, axum::Json(value)).into_response()
}

fn api_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    json(
        status,
        serde_json::json!({ "code": code, "message": message.into() }),
    )
}

/// `{"code": "TEXT", "message": …}` rewritten as `{"code": <status>00, "msg": …}` (the
/// [`ErrorBody::NumericMsg`] assumption); other fields stay.
async fn numeric_error(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_slice(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    fields.insert(
        "code".into(),
        serde_json::json!(u32::from(parts.status.as_u16()) * 100),
    );
    if let Some(message) = fields.remove("message") {
        fields.insert("msg".into(), message);
    }
    let text = serde_json::Value::Object(fields).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(text))
}

/// A 422 "Wrong Properties": which rule and why.
#[derive(Debug)]
struct Wrong {
    rule: &'static str,
    message: String,
}

fn wrong(rule: &'static str, message: impl Into<String>) -> Wrong {
    Wrong {
        rule,
        message: message.into(),
    }
}

impl IntoResponse for Wrong {
    fn into_response(self) -> Response {
        json(
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!({
                "code": "WRONG_PROPERTIES",
                "message": format!("Wrong Properties: {}", self.message),
                "rule": self.rule,
            }),
        )
    }
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if shared.closed.load(Ordering::SeqCst) {
        conn.kill();
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let latency = shared.lock().settings.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = route(&shared, &conn, &method, &path, &headers, &body).await;
    let error_body = shared.lock().settings.behaviours.error_body;
    let response = if error_body == ErrorBody::NumericMsg && response.status().as_u16() >= 400 {
        numeric_error(response).await
    } else {
        response
    };
    let status = if conn.is_killed() {
        0
    } else {
        response.status().as_u16()
    };
    tracing::debug!(%method, path, status, remote = %conn.remote, "EMQX Cloud emulator request");
    shared.lock().log.push(ApiRequest {
        method: method.to_string(),
        path,
        status,
    });
    response
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Deployment,
    Tls,
}

async fn route(
    shared: &Arc<Shared>,
    conn: &Conn,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    {
        let mut state = shared.lock();
        if state.settings.fail_requests > 0 {
            state.settings.fail_requests -= 1;
            let status = StatusCode::from_u16(state.settings.fail_status)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return api_error(status, "INJECTED_FAULT", "injected fault, try again later");
        }
    }
    let segments: Vec<&str> = path
        .strip_prefix(API_PREFIX)
        .map(|rest| rest.split('/').collect())
        .unwrap_or_default();
    let (id, endpoint) = match segments.as_slice() {
        ["", "deployments", id] if !id.is_empty() => (*id, Endpoint::Deployment),
        ["", "deployments", id, "tls"] if !id.is_empty() => (*id, Endpoint::Tls),
        _ => return api_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint"),
    };
    let allowed = match endpoint {
        Endpoint::Deployment => *method == Method::GET,
        Endpoint::Tls => [Method::GET, Method::POST, Method::PUT, Method::DELETE].contains(method),
    };
    if !allowed {
        return api_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("{method} is not allowed here"),
        );
    }
    let Some((key, secret)) = basic_auth(headers) else {
        return unauthorized("missing or malformed Basic credentials");
    };
    let is_write = *method != Method::GET;
    let kind = {
        let mut state = shared.lock();
        match authorize(&mut state, &key, &secret, id, endpoint, is_write) {
            Ok(kind) => kind,
            Err(response) => return *response,
        }
    };
    if is_write {
        let (fail, stall) = {
            let mut state = shared.lock();
            (
                state.settings.fail_next_write.take(),
                state.settings.stall_next_write.take(),
            )
        };
        if let Some(status) = fail {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            return api_error(status, "INJECTED_FAULT", "injected write failure");
        }
        if let Some(delay) = stall {
            tokio::time::sleep(delay).await;
        }
    }
    if endpoint == Endpoint::Deployment {
        return json(
            StatusCode::OK,
            serde_json::json!({
                "id": id,
                "deploymentType": kind.api_name(),
                "status": "running",
                "version": DEPLOYMENT_VERSION,
            }),
        );
    }
    if !kind.has_broker() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "NOT_SUPPORTED",
            "Serverless deployments do not support custom TLS/SSL certificates; use a \
             Dedicated deployment",
        );
    }
    match *method {
        Method::GET => tls_get(shared, id),
        Method::POST => tls_write(shared, conn, id, body, true),
        Method::PUT => tls_write(shared, conn, id, body, false),
        _ => tls_delete(shared, id).await,
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response = api_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"EMQX Cloud Platform API\""),
    );
    response
}

/// `Authorization: Basic base64(key:secret)`.
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (key, secret) = text.split_once(':')?;
    Some((key.to_owned(), secret.to_owned()))
}

/// 401 → 403 → 404 → 429, then spends budget; returns the deployment's kind.
fn authorize(
    state: &mut State,
    key: &str,
    secret: &str,
    id: &str,
    endpoint: Endpoint,
    is_write: bool,
) -> Result<DeploymentKind, Box<Response>> {
    let key_known = state
        .deployments
        .values()
        .any(|d| d.spec.api_key == key && d.spec.api_secret == secret);
    if !key_known {
        return Err(Box::new(unauthorized("invalid API key or secret")));
    }
    let target = state
        .deployments
        .get(id)
        .filter(|d| d.spec.api_key == key && d.spec.api_secret == secret);
    let scope = |d: &Deployment| match endpoint {
        Endpoint::Tls => d.spec.scopes_ok,
        Endpoint::Deployment => d.spec.deployment_scope,
    };
    let scopes_ok = match target {
        Some(d) => scope(d),
        None => state
            .deployments
            .values()
            .filter(|d| d.spec.api_key == key)
            .any(scope),
    };
    if !scopes_ok {
        return Err(Box::new(api_error(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            match endpoint {
                Endpoint::Tls => "this API key lacks the TLS Certificate Management scope",
                Endpoint::Deployment => "this API key lacks the Deployment Management scope",
            },
        )));
    }
    let budgets = state.settings.budgets;
    let scope = state.settings.behaviours.budget_scope;
    let retry_form = state.settings.behaviours.retry_after;
    let Some(d) = state
        .deployments
        .get_mut(id)
        .filter(|d| d.spec.api_key == key && d.spec.api_secret == secret)
    else {
        return Err(Box::new(api_error(
            StatusCode::NOT_FOUND,
            "DEPLOYMENT_NOT_FOUND",
            format!("deployment {id} not found"),
        )));
    };
    let window_key = match scope {
        BudgetScope::Deployment => format!("deployment {id}"),
        BudgetScope::Key => format!("key {key}"),
        BudgetScope::Account => "account".to_owned(),
    };
    let kind = d.spec.kind;
    if is_write {
        d.writes += 1;
    } else {
        d.reads += 1;
    }
    let counted = (id.to_owned(), is_write);
    let (writes, reads) = state.windows.entry(window_key).or_default();
    let now = Instant::now();
    let (recent, limit) = if is_write {
        (writes, budgets.writes)
    } else {
        (reads, budgets.reads)
    };
    while recent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= budgets.window)
    {
        recent.pop_front();
    }
    if recent.len() >= limit {
        let retry_after = recent
            .front()
            .map_or(budgets.window, |t| {
                budgets.window.saturating_sub(now.duration_since(*t))
            })
            .as_secs_f64()
            .ceil()
            .max(1.0) as u64;
        let mut response = api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            format!(
                "rate limit: {limit} {} per {} s",
                if is_write { "writes" } else { "reads" },
                budgets.window.as_secs()
            ),
        );
        let value = match retry_form {
            RetryAfter::Seconds => retry_after.to_string(),
            RetryAfter::HttpDate => http_date(
                OffsetDateTime::now_utc() + time::Duration::seconds(retry_after as i64 + 1),
            ),
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        // A 429 spends nothing.
        if let Some(d) = state.deployments.get_mut(&counted.0) {
            if counted.1 {
                d.writes -= 1;
            } else {
                d.reads -= 1;
            }
        }
        return Err(Box::new(response));
    }
    recent.push_back(now);
    Ok(kind)
}

/// The GET shape of `snapshot`, with `expire` and `cn` as the switches say.
fn snapshot_json(snapshot: &TlsSnapshot, b: &Behaviours) -> serde_json::Value {
    let mut value = serde_json::json!({
        "tlsType": snapshot.tls_type.api_name(),
        "status": snapshot.status.api_name(),
        "expire": expire_text(snapshot.not_after, b.expire_form),
    });
    match b.cn {
        CnForm::Subject => {
            if let Some(cn) = &snapshot.cn {
                value["cn"] = serde_json::json!(cn);
            }
        }
        CnForm::Empty => value["cn"] = serde_json::json!(""),
        CnForm::Absent => {}
    }
    value
}

/// `expire` in `form`.
fn expire_text(t: OffsetDateTime, form: ExpireForm) -> String {
    let at = |hours: i8| {
        time::UtcOffset::from_hms(hours, 0, 0)
            .map(|o| format_expire_local(t.to_offset(o)))
            .unwrap_or_else(|_| format_expire(t))
    };
    match form {
        ExpireForm::Utc => format_expire(t),
        ExpireForm::LocalNoMarker(h) => at(h),
        ExpireForm::Offset(h) => format!(
            "{}{}{:02}:00",
            at(h),
            if h < 0 { '-' } else { '+' },
            h.unsigned_abs()
        ),
    }
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

fn tls_not_found(id: &str) -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "TLS_NOT_FOUND",
        format!("deployment {id} has no TLS/SSL configuration"),
    )
}

fn tls_get(shared: &Shared, id: &str) -> Response {
    let state = shared.lock();
    let b = state.settings.behaviours;
    match state.deployments.get(id).and_then(|d| d.tls.as_ref()) {
        Some(tls) => json(StatusCode::OK, snapshot_json(&tls.snapshot, &b)),
        None if b.no_tls == NoTls::EmptyObject => json(StatusCode::OK, serde_json::json!({})),
        None => tls_not_found(id),
    }
}

/// The POST/PUT body. `Debug` is deliberately not derived (it holds a private key).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlsBody {
    tls_type: String,
    cert: String,
    key: String,
    #[serde(default)]
    cacert: Option<String>,
}

fn tls_write(shared: &Arc<Shared>, conn: &Conn, id: &str, body: &[u8], create: bool) -> Response {
    let mut create = create;
    let parsed: TlsBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        // Only the position: serde's message could quote the body.
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                format!(
                    "the body must be JSON {{\"tlsType\",\"cert\",\"key\",\"cacert\"}} \
                     ({:?} error at line {} column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            );
        }
    };
    let tls_type = match parsed.tls_type.as_str() {
        "one-way" => TlsType::OneWay,
        "two-way" => TlsType::TwoWay,
        _ => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "tlsType must be \"one-way\" or \"two-way\"",
            );
        }
    };
    let (rules, user, address) = {
        let mut state = shared.lock();
        if !create && let Some(DropPoint::BeforeApply) = state.settings.drop_next_put {
            state.settings.drop_next_put = None;
            conn.kill();
            return api_error(StatusCode::INTERNAL_SERVER_ERROR, "DROPPED", "dropped");
        }
        let rules = Rules {
            allowed: state.settings.allowed_key_kinds.clone(),
            min_days: state.settings.min_days_remaining,
            require_chain: state.settings.require_chain,
        };
        let Some(d) = state.deployments.get(id) else {
            return tls_not_found(id);
        };
        let replace = state.settings.behaviours.post_over_existing == PostOverExisting::Replace;
        match (&d.tls, create) {
            (Some(_), true) if replace => create = false,
            (Some(_), true) => {
                return api_error(
                    StatusCode::CONFLICT,
                    "TLS_ALREADY_EXISTS",
                    format!("deployment {id} already has a TLS/SSL configuration; use PUT"),
                );
            }
            (None, false) => return tls_not_found(id),
            _ => {}
        }
        (
            rules,
            d.spec.mqtt_user.clone(),
            d.spec.connection_address.clone(),
        )
    };
    let valid = match validate(
        &parsed,
        tls_type,
        &rules,
        address.as_deref(),
        OffsetDateTime::now_utc(),
    ) {
        Ok(v) => v,
        Err(w) => return w.into_response(),
    };
    let mut config = MosquittoConfig {
        cert_chain_pem: valid.cert_chain_pem,
        key_pem: valid.key_pem,
        client_ca_pem: valid.client_ca_pem,
        users: Vec::new(),
    };
    if let Some(user) = user {
        config.users.push(user);
    }

    let mut state = shared.lock();
    let drop_after = !create && state.settings.drop_next_put == Some(DropPoint::AfterApply);
    if drop_after {
        state.settings.drop_next_put = None;
    }
    let delay = state.settings.pending_delay;
    let behaviours = state.settings.behaviours;
    let Some(d) = state.deployments.get_mut(id) else {
        return tls_not_found(id);
    };
    if create != d.tls.is_none() {
        // Another write won the race meanwhile.
        return api_error(StatusCode::CONFLICT, "CONFLICT", "concurrent TLS change");
    }
    d.generation += 1;
    let generation = d.generation;
    let snapshot = TlsSnapshot {
        tls_type,
        status: TlsStatus::Pending,
        expire: valid.expire,
        not_after: valid.not_after,
        cn: valid.cn,
        leaf_serial_hex: valid.serial_hex,
        leaf_sha256: valid.sha256,
    };
    let response = json(StatusCode::OK, snapshot_json(&snapshot, &behaviours));
    d.tls = Some(TlsRecord {
        snapshot,
        config,
        generation,
    });
    drop(state);
    if let Some(delay) = delay {
        let task = tokio::spawn(apply(shared.clone(), id.to_owned(), generation, delay));
        shared.track(task);
    }
    if drop_after {
        conn.kill();
    }
    response
}

async fn tls_delete(shared: &Shared, id: &str) -> Response {
    let broker = {
        let mut state = shared.lock();
        let Some(d) = state.deployments.get_mut(id) else {
            return tls_not_found(id);
        };
        if d.tls.take().is_none() {
            return tls_not_found(id);
        }
        d.generation += 1;
        d.broker.clone()
    };
    if let Some(broker) = broker {
        broker.lock().await.stop();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Applies generation `generation` of the deployment's TLS record to its broker after
/// `delay`, unless a newer write or a DELETE superseded it.
async fn apply(shared: Arc<Shared>, id: String, generation: u64, delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let Some(broker) = shared
        .lock()
        .deployments
        .get(&id)
        .and_then(|d| d.broker.clone())
    else {
        return;
    };
    let mut broker = broker.lock().await;
    let (config, sabotage) = {
        let mut state = shared.lock();
        let current = state
            .deployments
            .get(&id)
            .and_then(|d| d.tls.as_ref())
            .filter(|t| t.generation == generation)
            .map(|t| t.config.clone());
        let Some(config) = current else {
            return;
        };
        if std::mem::take(&mut state.settings.terminate_next_apply) {
            if let Some(d) = state.deployments.get_mut(&id) {
                d.applies += 1;
                if let Some(tls) = d.tls.as_mut() {
                    tls.snapshot.status = TlsStatus::Terminated;
                }
            }
            return;
        }
        let sabotage = std::mem::take(&mut state.settings.fail_next_apply);
        (config, sabotage)
    };
    let previous = broker.config().cloned();
    let to_apply = if sabotage {
        match KeyPair::generate() {
            Ok(other) => MosquittoConfig {
                key_pem: other.serialize_pem(),
                ..config
            },
            Err(e) => {
                tracing::warn!(error = %e, "could not make a mismatching key; applying as is");
                config
            }
        }
    } else {
        config
    };
    let status = match broker.reconfigure(to_apply).await {
        Ok(()) => TlsStatus::Running,
        Err(e) => {
            tracing::info!(deployment = %id, error = %e, "broker refused the new TLS files");
            if let Some(previous) = previous
                && let Err(e) = broker.reconfigure(previous).await
            {
                tracing::warn!(deployment = %id, error = %e, "restoring the previous TLS files failed");
            }
            TlsStatus::Failed
        }
    };
    let mut state = shared.lock();
    if let Some(d) = state.deployments.get_mut(&id) {
        d.applies += 1;
        if let Some(tls) = d.tls.as_mut().filter(|t| t.generation == generation) {
            tls.snapshot.status = status;
        }
    }
}

// ------------------------------------------------------------------ validation

struct Rules {
    allowed: Vec<KeyKind>,
    min_days: u32,
    require_chain: bool,
}

struct Valid {
    cert_chain_pem: String,
    key_pem: String,
    client_ca_pem: Option<String>,
    expire: String,
    not_after: OffsetDateTime,
    cn: Option<String>,
    serial_hex: String,
    sha256: String,
}

/// The checks EMQX Cloud documents for an imported certificate, in a fixed order.
fn validate(
    body: &TlsBody,
    tls_type: TlsType,
    rules: &Rules,
    connection_address: Option<&str>,
    now: OffsetDateTime,
) -> Result<Valid, Wrong> {
    // The key: PEM, one block, not encrypted (read once the certificate's key type passed).
    let key_bundle = parse_bundle(body.key.as_bytes())
        .map_err(|e| wrong("pem", format!("the private key is not PEM: {e}")))?;
    let block = match key_bundle.private_keys.as_slice() {
        [one] => one,
        [] => return Err(wrong("pem", "the key field holds no private key block")),
        several => {
            return Err(wrong(
                "pem",
                format!(
                    "the key field holds {} private keys; give exactly one",
                    several.len()
                ),
            ));
        }
    };
    if block.format.is_encrypted() {
        return Err(wrong(
            "encrypted_key",
            format!(
                "the private key is encrypted ({}); it must be password-less",
                block.format
            ),
        ));
    }

    // The certificate body: PEM, leaf first, then intermediates.
    let cert_bundle = parse_bundle(body.cert.as_bytes())
        .map_err(|e| wrong("pem", format!("the certificate is not PEM: {e}")))?;
    if !cert_bundle.private_keys.is_empty() {
        return Err(wrong(
            "pem",
            "the cert field contains a private key; send the key only in the key field",
        ));
    }
    let certs = cert_bundle.certificates;
    let Some(leaf) = certs.first() else {
        return Err(wrong("pem", "the cert field holds no CERTIFICATE block"));
    };
    if let Some((i, c)) = certs.iter().enumerate().find(|(_, c)| c.version() != 3) {
        return Err(wrong(
            "x509_version",
            format!(
                "certificate {} ({}) is X.509 version {}; version 3 is required",
                i + 1,
                c.display_name(),
                c.version()
            ),
        ));
    }
    let kind = leaf.key_kind();
    if !rules.allowed.contains(&kind) {
        let list = rules
            .allowed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        return Err(wrong(
            "key_type",
            format!("the certificate's key is {kind}; EMQX Cloud accepts {list}"),
        ));
    }
    let key = PrivateKey::from_block(block)
        .map_err(|e| wrong("key", format!("the private key is unreadable: {e}")))?;
    if !key.matches_certificate(leaf) {
        return Err(wrong(
            "key_mismatch",
            format!(
                "the private key does not belong to the certificate ({})",
                leaf.display_name()
            ),
        ));
    }
    check_chain(&certs, rules.require_chain)?;
    let issuer_family = leaf.signature_algorithm_family();
    if kind.family() != issuer_family {
        return Err(wrong(
            "algorithm",
            format!(
                "the certificate's key is {} but its CA signed it with {}; the key \
                 algorithm must match the issuing CA's",
                kind.family(),
                issuer_family
            ),
        ));
    }
    check_validity(leaf, rules.min_days, now)?;
    if let Some(address) = connection_address
        && !leaf.covers_name(address)
    {
        return Err(wrong(
            "name",
            format!("the certificate does not cover the connection address {address}"),
        ));
    }

    let client_ca_pem = match tls_type {
        TlsType::OneWay => None,
        TlsType::TwoWay => Some(client_ca(body.cacert.as_deref())?),
    };
    Ok(Valid {
        cert_chain_pem: normalise_pem(&certs),
        key_pem: key.to_pem(),
        client_ca_pem,
        expire: format_expire(leaf.not_after()),
        not_after: leaf.not_after(),
        cn: leaf.subject_cn(),
        serial_hex: leaf.serial_hex().to_owned(),
        sha256: leaf.sha256_fingerprint().to_owned(),
    })
}

/// Each certificate must be issued by the next; no repeats; a CA-signed leaf needs its
/// chain (when `require_chain`).
fn check_chain(certs: &[Certificate], require_chain: bool) -> Result<(), Wrong> {
    for (i, cert) in certs.iter().enumerate() {
        if let Some(j) = certs[..i].iter().position(|c| c.der() == cert.der()) {
            return Err(wrong(
                "chain",
                format!(
                    "certificate {} ({}) repeats certificate {}",
                    i + 1,
                    cert.display_name(),
                    j + 1
                ),
            ));
        }
    }
    for (i, pair) in certs.windows(2).enumerate() {
        let (child, parent) = (&pair[0], &pair[1]);
        if !(child.issued_by_name(parent) && child.verify_signed_by(parent)) {
            return Err(wrong(
                "chain",
                format!(
                    "certificate {} ({}) did not issue certificate {} ({}, issued by {}); \
                     send the leaf first, then each issuer in order",
                    i + 2,
                    parent.display_name(),
                    i + 1,
                    child.display_name(),
                    child.issuer_display_name()
                ),
            ));
        }
    }
    if require_chain
        && let [leaf] = certs
        && !leaf.is_self_signed()
    {
        return Err(wrong(
            "chain",
            format!(
                "the certificate is signed by {} but no certificate chain was included; \
                 append the intermediate certificates after the leaf",
                leaf.issuer_display_name()
            ),
        ));
    }
    Ok(())
}

fn check_validity(leaf: &Certificate, min_days: u32, now: OffsetDateTime) -> Result<(), Wrong> {
    if now < leaf.not_before() {
        return Err(wrong(
            "validity",
            format!(
                "the certificate is not valid before {}",
                format_expire(leaf.not_before())
            ),
        ));
    }
    if now > leaf.not_after() {
        return Err(wrong(
            "validity",
            format!(
                "the certificate expired at {}",
                format_expire(leaf.not_after())
            ),
        ));
    }
    let left = leaf.not_after() - now;
    if left < time::Duration::days(i64::from(min_days)) {
        return Err(wrong(
            "validity",
            format!(
                "the certificate expires at {} ({} days from now); EMQX Cloud cannot \
                 import a certificate with fewer than {min_days} days of validity left",
                format_expire(leaf.not_after()),
                left.whole_days()
            ),
        ));
    }
    Ok(())
}

fn client_ca(cacert: Option<&str>) -> Result<String, Wrong> {
    let text = cacert.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        wrong(
            "cacert",
            "two-way TLS needs the client CA certificate in cacert",
        )
    })?;
    let bundle = parse_bundle(text.as_bytes())
        .map_err(|e| wrong("cacert", format!("the client CA is not PEM: {e}")))?;
    if !bundle.private_keys.is_empty() {
        return Err(wrong("cacert", "the cacert field contains a private key"));
    }
    if bundle.certificates.is_empty() {
        return Err(wrong(
            "cacert",
            "the cacert field holds no CERTIFICATE block",
        ));
    }
    Ok(normalise_pem(&bundle.certificates))
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, as the API's `expire`.
fn format_expire(t: OffsetDateTime) -> String {
    format_expire_local(t.to_offset(time::UtcOffset::UTC))
}

/// `YYYY-MM-DD HH:MM:SS` in `t`'s own offset.
fn format_expire_local(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expire_format() {
        let t = time::macros::datetime!(2034-05-22 02:43:21 UTC);
        assert_eq!(format_expire(t), "2034-05-22 02:43:21");
        assert_eq!(expire_text(t, ExpireForm::Utc), "2034-05-22 02:43:21");
        assert_eq!(
            expire_text(t, ExpireForm::LocalNoMarker(8)),
            "2034-05-22 10:43:21"
        );
        assert_eq!(
            expire_text(t, ExpireForm::Offset(8)),
            "2034-05-22 10:43:21+08:00"
        );
        assert_eq!(
            expire_text(t, ExpireForm::Offset(-5)),
            "2034-05-21 21:43:21-05:00"
        );
        assert_eq!(http_date(t), "Mon, 22 May 2034 02:43:21 GMT");
    }

    #[test]
    fn basic_auth_parses_key_and_secret() {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode("key:sec:ret"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).expect("hv"),
        );
        assert_eq!(
            basic_auth(&headers),
            Some(("key".to_owned(), "sec:ret".to_owned()))
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_auth(&headers), None);
    }
}
