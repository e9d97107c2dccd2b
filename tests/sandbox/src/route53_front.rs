//! The sandbox's Route 53 endpoint: a plain HTTP pass-through to moto that counts the
//! writes going by, so the sandbox DNS server can answer from a cached copy of moto's
//! records and still never miss a write (see `dns_server`).
//!
//! Owns: forwarding every request to moto unchanged (SigV4 stays valid, as in
//! [`super::Route53Proxy`]) and the [`WriteLog`]: once moto has answered a request that is
//! not a GET or HEAD, and *before* the client gets the answer, the zone it wrote (or, for
//! any other write, the zone list) gets a new generation. Whoever saw a write acknowledged
//! and then asks DNS finds that zone's generation moved.
//! Does not own: the DNS cache (the DNS server), faults (the fault proxy), or moto.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
];
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Write generations: per hosted zone id, and for the zone list (key `""`, bumped by any
/// write that is not a record change of one zone, such as creating a zone).
#[derive(Debug, Default)]
pub(super) struct WriteLog {
    generations: Mutex<HashMap<String, u64>>,
}

impl WriteLog {
    /// The generation of `key` (a zone id, or `""` for the zone list).
    pub(super) fn get(&self, key: &str) -> u64 {
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    fn bump(&self, key: &str) {
        *self
            .generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_string())
            .or_default() += 1;
    }

    /// Records a write to `path` (REST API 2013-04-01).
    fn wrote(&self, path: &str) {
        match zone_of_record_change(path) {
            Some(zone) => self.bump(zone),
            None => self.bump(""),
        }
    }
}

/// The zone id of `…/hostedzone/{id}/rrset` (ChangeResourceRecordSets).
fn zone_of_record_change(path: &str) -> Option<&str> {
    let p = path.trim_end_matches('/');
    let p = p.strip_suffix("/rrset")?;
    let (prefix, id) = p.rsplit_once('/')?;
    (prefix.ends_with("/hostedzone") && !id.is_empty()).then_some(id)
}

struct Front {
    upstream: String,
    client: reqwest::Client,
    writes: Arc<WriteLog>,
}

/// Serves the pass-through on `listener` until the task is dropped.
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    upstream: String,
    writes: Arc<WriteLog>,
) {
    let client = match reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "the sandbox Route 53 endpoint cannot build its HTTP client");
            return;
        }
    };
    let front = Arc::new(Front {
        upstream: upstream.trim_end_matches('/').to_string(),
        client,
        writes,
    });
    let app = Router::new().fallback(forward).with_state(front);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "the sandbox Route 53 endpoint stopped");
    }
}

async fn forward(
    State(front): State<Arc<Front>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body: Bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("request body: {e}")).into_response(),
    };
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path_and_query}", front.upstream);
    let mut req = front.client.request(method.clone(), &url).body(body);
    for (name, value) in &headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            req = req.header(name, value);
        }
    }
    let write = !matches!(method, Method::GET | Method::HEAD);
    let rsp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            // moto may have applied it before the connection broke.
            if write {
                front.writes.wrote(uri.path());
            }
            return (
                StatusCode::BAD_GATEWAY,
                format!("the Route 53 emulator did not answer: {e}"),
            )
                .into_response();
        }
    };
    let response = relay(rsp).await;
    if write {
        front.writes.wrote(uri.path());
    }
    response
}

/// moto's answer as ours: status, end-to-end headers and body.
pub(super) async fn relay(rsp: reqwest::Response) -> Response {
    let status = rsp.status();
    let mut out_headers = HeaderMap::new();
    for (name, value) in rsp.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out_headers.append(name.clone(), value.clone());
        }
    }
    let bytes = rsp.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_changes_bump_their_zone_and_other_writes_the_zone_list() {
        let log = WriteLog::default();
        log.wrote("/2013-04-01/hostedzone/Z1ABC/rrset");
        log.wrote("/2013-04-01/hostedzone/Z1ABC/rrset/");
        log.wrote("/2013-04-01/hostedzone");
        assert_eq!(log.get("Z1ABC"), 2);
        assert_eq!(log.get(""), 1);
        assert_eq!(log.get("Z2"), 0);
    }
}
