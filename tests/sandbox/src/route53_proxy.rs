//! A fault-injecting HTTP reverse proxy in front of the Route 53 emulator (moto), for
//! tests of how the tool survives a misbehaving Route 53 API.
//!
//! Owns: its own plain-HTTP endpoint on 127.0.0.1, forwarding every request to moto
//! unchanged (SigV4 signatures stay valid: the `Host` header is forwarded as the client
//! sent it and moto does not check it), and the faults it injects instead of or on top of
//! moto's answer: AWS-style XML errors `Throttling` and `PriorRequestNotComplete` (400),
//! an HTTP 500, a connection reset before the request is forwarded, a connection reset
//! after moto applied the request (the answer is lost), two seconds of latency, and
//! `GetChange` answers rewritten from `INSYNC` to `PENDING` for a while (and, meanwhile,
//! `ChangeResourceRecordSets` answers too, as real Route 53 gives). Faults hit a
//! configurable percentage of requests (optionally only some operations, after letting
//! the first N of them through, at most M times), drawn from a seeded generator so a failing
//! run can be repeated; every request is logged with the fault it got.
//!
//! Does not own: moto (start it first, e.g. with [`super::Sandbox`]) or the sandbox's DNS
//! server, which keeps reading moto directly (DNS answers reflect what moto holds).
//!
//! ```text
//! let proxy = Route53Proxy::start(&sb.route53_endpoint()).await?;
//! proxy.set_faults(FaultPlan::rate(20).kinds(Route53Fault::ALL));
//! // point the tool's `route53.endpoint_url` at proxy.endpoint()
//! proxy.hold_changes_pending(Duration::from_secs(3));
//! assert!(proxy.requests().iter().any(|r| r.fault.is_some()));
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;

use super::listen::{Conn, OnKill, listen};
use super::{Result, SandboxError};

/// Latency added by [`Route53Fault::Latency`].
pub const LATENCY: Duration = Duration::from_secs(2);
/// Largest request body forwarded (change batches are a few KiB).
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

/// A fault the proxy can inject into one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route53Fault {
    /// 400 with `<Code>Throttling</Code>` (Rate exceeded); moto never sees the request.
    Throttling,
    /// 400 with `<Code>PriorRequestNotComplete</Code>`; moto never sees the request.
    PriorRequestNotComplete,
    /// HTTP 500 with an `InternalFailure` body; moto never sees the request.
    InternalError,
    /// The connection is dropped before the request is forwarded.
    ConnectionReset,
    /// The request is forwarded (and applied by moto), then the connection is dropped:
    /// the client never learns that it succeeded.
    AnswerLost,
    /// The request is forwarded after [`LATENCY`].
    Latency,
    /// 400 `InvalidChangeBatch` "… but it was not found", as Route 53 answers a DELETE of a
    /// record set that does not exist (moto accepts it); moto never sees the request. Only
    /// meaningful in a [`FaultPlan::script`] (not in [`Route53Fault::ALL`]).
    DeleteNotFound,
    /// 403 `AccessDenied`, as Route 53 answers an action the identity's policy lacks (e.g.
    /// `ListResourceRecordSets` under the guide's three-action policy); moto never sees the
    /// request. Not in [`Route53Fault::ALL`]: use it with [`FaultPlan::operations`].
    AccessDenied,
}

impl Route53Fault {
    /// Every fault kind.
    pub const ALL: &'static [Route53Fault] = &[
        Route53Fault::Throttling,
        Route53Fault::PriorRequestNotComplete,
        Route53Fault::InternalError,
        Route53Fault::ConnectionReset,
        Route53Fault::AnswerLost,
        Route53Fault::Latency,
    ];

    /// Short name, for logs and assertions.
    pub fn as_str(self) -> &'static str {
        match self {
            Route53Fault::Throttling => "Throttling",
            Route53Fault::PriorRequestNotComplete => "PriorRequestNotComplete",
            Route53Fault::InternalError => "500",
            Route53Fault::ConnectionReset => "reset",
            Route53Fault::AnswerLost => "answer-lost",
            Route53Fault::Latency => "latency",
            Route53Fault::DeleteNotFound => "delete-not-found",
            Route53Fault::AccessDenied => "AccessDenied",
        }
    }
}

/// Which requests get faults, and which.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Percentage of eligible requests that get a fault (0–100).
    pub percent: u32,
    /// The kinds, drawn uniformly for each faulted request.
    pub kinds: Vec<Route53Fault>,
    /// Only these operations are eligible (`None`: all), e.g. `["GetChange"]`.
    pub operations: Option<Vec<&'static str>>,
    /// The first this-many eligible requests pass untouched.
    pub skip_first: usize,
    /// At most this many faults are injected (`None`: no limit).
    pub max_faults: Option<usize>,
    /// Instead of drawing: the fault of each eligible request in turn (after the script
    /// ends, none).
    pub script: Option<Vec<Option<Route53Fault>>>,
    /// Seed of the generator deciding which requests are faulted.
    pub seed: u64,
}

impl FaultPlan {
    /// No faults.
    pub fn none() -> Self {
        Self::rate(0)
    }

    /// `percent` % of all requests get one of [`Route53Fault::ALL`].
    pub fn rate(percent: u32) -> Self {
        Self {
            percent: percent.min(100),
            kinds: Route53Fault::ALL.to_vec(),
            operations: None,
            skip_first: 0,
            max_faults: None,
            script: None,
            seed: 0x6272_6f6b_6572,
        }
    }

    /// Restricts the kinds.
    pub fn kinds(mut self, kinds: &[Route53Fault]) -> Self {
        self.kinds = kinds.to_vec();
        self
    }

    /// Restricts the operations (names as in [`operation_of`]).
    pub fn operations(mut self, ops: &[&'static str]) -> Self {
        self.operations = Some(ops.to_vec());
        self
    }

    /// Lets the first `n` eligible requests through.
    pub fn skip_first(mut self, n: usize) -> Self {
        self.skip_first = n;
        self
    }

    /// Eligible requests get exactly these faults in turn (`None`: passes), then none.
    pub fn script(steps: &[Option<Route53Fault>]) -> Self {
        let mut plan = Self::rate(100);
        plan.script = Some(steps.to_vec());
        plan
    }

    /// Injects at most `n` faults.
    pub fn max_faults(mut self, n: usize) -> Self {
        self.max_faults = Some(n);
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// One request the proxy handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    /// The Route 53 operation, from the method and path (`ChangeResourceRecordSets`, …).
    pub operation: &'static str,
    /// The fault injected, if any.
    pub fault: Option<Route53Fault>,
    /// Whether the answer (`GetChange`, or `ChangeResourceRecordSets` during a hold) was
    /// rewritten to `PENDING`.
    pub held_pending: bool,
    /// The status the client got (0: connection dropped).
    pub status: u16,
}

/// `GetChange` answers say `PENDING` until this rule is spent.
#[derive(Debug, Clone, Copy)]
enum Hold {
    /// For this long after the first `GetChange` once armed.
    For(Duration, Option<Instant>),
    /// For this many `GetChange` answers.
    Requests(usize),
}

#[derive(Debug)]
struct Settings {
    plan: FaultPlan,
    rng: StdRng,
    eligible_seen: usize,
    faults_done: usize,
    hold: Option<Hold>,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    settings: Mutex<Settings>,
    log: Mutex<Vec<ProxiedRequest>>,
}

impl Shared {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn log(&self) -> MutexGuard<'_, Vec<ProxiedRequest>> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The proxy; stopped on drop.
pub struct Route53Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    acceptor: JoinHandle<()>,
}

impl std::fmt::Debug for Route53Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route53Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl Route53Proxy {
    /// Starts the proxy on 127.0.0.1 (a free port) in front of `upstream`
    /// (`http://127.0.0.1:PORT`, moto), with no faults. Must run inside a tokio runtime.
    pub async fn start(upstream: &str) -> Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| SandboxError::Http(format!("building an HTTP client: {e}")))?;
        let (addr, incoming, acceptor) = listen("Route 53 proxy", None, OnKill::Reset).await?;
        let plan = FaultPlan::none();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            settings: Mutex::new(Settings {
                rng: StdRng::seed_from_u64(plan.seed),
                plan,
                eligible_seen: 0,
                faults_done: 0,
                hold: None,
            }),
            log: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let make = app.into_make_service_with_connect_info::<Conn>();
            if let Err(e) = axum::serve(incoming, make).await {
                tracing::warn!(error = %e, "Route 53 proxy stopped");
            }
        });
        tracing::debug!(%addr, upstream, "Route 53 fault proxy listening");
        Ok(Self {
            addr,
            shared,
            server,
            acceptor,
        })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint to give the tool (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// Replaces the fault plan (and restarts its generator and `skip_first` count).
    pub fn set_faults(&self, plan: FaultPlan) {
        let mut s = self.shared.settings();
        s.rng = StdRng::seed_from_u64(plan.seed);
        s.eligible_seen = 0;
        s.faults_done = 0;
        s.plan = plan;
    }

    /// Makes `GetChange` say `PENDING` for `duration`, counted from the next `GetChange`.
    pub fn hold_changes_pending(&self, duration: Duration) {
        self.shared.settings().hold = Some(Hold::For(duration, None));
    }

    /// Makes the next `count` `GetChange` answers say `PENDING`.
    pub fn hold_changes_pending_for_requests(&self, count: usize) {
        self.shared.settings().hold = Some(Hold::Requests(count));
    }

    /// `GetChange` says what moto says again.
    pub fn release_changes(&self) {
        self.shared.settings().hold = None;
    }

    /// Every request handled so far, oldest first.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.shared.log().clone()
    }

    /// Forgets the requests handled so far.
    pub fn clear_requests(&self) {
        self.shared.log().clear();
    }

    /// How many requests got a fault.
    pub fn faults_injected(&self) -> usize {
        self.shared
            .log()
            .iter()
            .filter(|r| r.fault.is_some())
            .count()
    }

    /// Stops the proxy (same as dropping).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Route53Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.server.abort();
    }
}

/// The Route 53 operation a request is, from its method and path (REST API 2013-04-01).
pub fn operation_of(method: &Method, path: &str) -> &'static str {
    let p = path.trim_end_matches('/');
    let p = p.strip_prefix("/2013-04-01").unwrap_or(p);
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["hostedzone"]) => "ListHostedZones",
        ("POST", ["hostedzone"]) => "CreateHostedZone",
        ("GET", ["hostedzonesbyname"]) => "ListHostedZonesByName",
        ("GET", ["hostedzone", _]) => "GetHostedZone",
        ("POST", ["hostedzone", _, "rrset"]) => "ChangeResourceRecordSets",
        ("GET", ["hostedzone", _, "rrset"]) => "ListResourceRecordSets",
        ("GET", ["change", _]) => "GetChange",
        _ => "Other",
    }
}

/// Decides the fault for one request of `operation`, and whether a `GetChange` is held.
fn decide(shared: &Shared, operation: &'static str) -> (Option<Route53Fault>, bool) {
    let mut s = shared.settings();
    let held = if operation == "GetChange" {
        match s.hold {
            Some(Hold::Requests(0)) => {
                s.hold = None;
                false
            }
            Some(Hold::Requests(n)) => {
                s.hold = Some(Hold::Requests(n - 1));
                true
            }
            Some(Hold::For(d, None)) => {
                s.hold = Some(Hold::For(d, Some(Instant::now())));
                !d.is_zero()
            }
            Some(Hold::For(d, Some(since))) => since.elapsed() < d,
            None => false,
        }
    } else if operation == "ChangeResourceRecordSets" {
        // moto answers INSYNC at once; real Route 53 answers PENDING. During a hold the
        // change's own answer must not say what `GetChange` is made to deny. This does
        // not use up the hold.
        match s.hold {
            Some(Hold::Requests(n)) => n > 0,
            Some(Hold::For(d, None)) => !d.is_zero(),
            Some(Hold::For(d, Some(since))) => since.elapsed() < d,
            None => false,
        }
    } else {
        false
    };
    let eligible = s.plan.percent > 0
        && !s.plan.kinds.is_empty()
        && s.plan
            .operations
            .as_ref()
            .is_none_or(|ops| ops.contains(&operation));
    if !eligible {
        return (None, held);
    }
    s.eligible_seen += 1;
    if s.eligible_seen <= s.plan.skip_first
        || s.plan.max_faults.is_some_and(|max| s.faults_done >= max)
    {
        return (None, held);
    }
    if let Some(script) = &s.plan.script {
        let step = script
            .get(s.eligible_seen - s.plan.skip_first - 1)
            .copied()
            .flatten();
        if step.is_some() {
            s.faults_done += 1;
        }
        return (step, held);
    }
    let percent = s.plan.percent;
    let roll = s.rng.random_range(0..100u32);
    if roll >= percent {
        return (None, held);
    }
    let n = s.plan.kinds.len();
    let pick = s.rng.random_range(0..n);
    s.faults_done += 1;
    (Some(s.plan.kinds[pick]), held)
}

fn aws_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
         <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    );
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"))],
        body,
    )
        .into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let operation = operation_of(&method, uri.path());
    let (fault, held) = decide(&shared, operation);
    let record = |status: u16| {
        shared.log().push(ProxiedRequest {
            operation,
            fault,
            held_pending: held,
            status,
        });
        tracing::debug!(operation, ?fault, held, status, "Route 53 proxy request");
    };
    let early = match fault {
        Some(Route53Fault::Throttling) => Some(aws_error(
            StatusCode::BAD_REQUEST,
            "Throttling",
            "Rate exceeded",
        )),
        Some(Route53Fault::PriorRequestNotComplete) => Some(aws_error(
            StatusCode::BAD_REQUEST,
            "PriorRequestNotComplete",
            "The request was rejected because Route 53 was still processing a prior request.",
        )),
        Some(Route53Fault::DeleteNotFound) => Some(aws_error(
            StatusCode::BAD_REQUEST,
            "InvalidChangeBatch",
            "[Tried to delete resource record set but it was not found]",
        )),
        Some(Route53Fault::AccessDenied) => Some(aws_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "User: arn:aws:iam::123456789012:user/brokercert is not authorized to perform: \
             this route53 action",
        )),
        Some(Route53Fault::InternalError) => Some(aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "An internal error occurred.",
        )),
        Some(Route53Fault::ConnectionReset) => {
            conn.kill();
            record(0);
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        _ => None,
    };
    if let Some(rsp) = early {
        record(rsp.status().as_u16());
        return rsp;
    }
    if fault == Some(Route53Fault::Latency) {
        tokio::time::sleep(LATENCY).await;
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            record(400);
            return (StatusCode::BAD_REQUEST, format!("request body: {e}")).into_response();
        }
    };
    let mut rsp = forward(&shared, &method, &uri, &headers, body).await;
    if fault == Some(Route53Fault::AnswerLost) {
        conn.kill();
        record(0);
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if held && rsp.status().is_success() {
        rsp = rewrite_pending(rsp).await;
    }
    record(rsp.status().as_u16());
    rsp
}

async fn forward(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path_and_query}", shared.upstream);
    let mut req = shared.client.request(method.clone(), &url).body(body);
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            req = req.header(name, value);
        }
    }
    let rsp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            return aws_error(
                StatusCode::BAD_GATEWAY,
                "ProxyError",
                &format!("the Route 53 emulator did not answer: {e}"),
            );
        }
    };
    super::route53_front::relay(rsp).await
}

/// `<Status>INSYNC</Status>` → `<Status>PENDING</Status>` in a `GetChange` or
/// `ChangeResourceRecordSets` answer.
async fn rewrite_pending(rsp: Response) -> Response {
    let (mut parts, body) = rsp.into_parts();
    // The body grows by a byte: the length is recomputed from the new body.
    parts.headers.remove(header::CONTENT_LENGTH);
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes)
        .replace("<Status>INSYNC</Status>", "<Status>PENDING</Status>");
    Response::from_parts(parts, Body::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_from_paths() {
        assert_eq!(
            operation_of(&Method::GET, "/2013-04-01/hostedzone"),
            "ListHostedZones"
        );
        assert_eq!(
            operation_of(&Method::POST, "/2013-04-01/hostedzone/Z1/rrset/"),
            "ChangeResourceRecordSets"
        );
        assert_eq!(
            operation_of(&Method::GET, "/2013-04-01/change/C2"),
            "GetChange"
        );
    }
}
