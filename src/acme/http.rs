//! The HTTP client instant-acme talks through: reqwest with the system roots plus any
//! configured extra roots (the sandbox's Pebble), remembering the `Link: rel="alternate"`
//! headers of certificate downloads so alternate chains can be fetched.
//!
//! Owns: transport, TLS trust for the CA's HTTPS, and the alternate-link memory.
//! Does not own: JWS signing or ACME semantics (instant-acme and `alternates`).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

use super::AcmeError;

/// reqwest-backed HTTP client for ACME.
#[derive(Clone)]
pub struct AcmeHttp {
    client: reqwest::Client,
    alternates: Arc<Mutex<HashMap<String, Vec<String>>>>,
    /// Until when the last 429 asked to wait (its `Retry-After`).
    rate_limited_until: Arc<Mutex<Option<time::OffsetDateTime>>>,
    /// The `Retry-After` of the last answer from each URL that carried one (order polling
    /// honours it).
    retry_after: Arc<Mutex<HashMap<String, std::time::Instant>>>,
}

impl AcmeHttp {
    /// The certificates of the PEM files in `extra_roots` (`acme.https_roots`), each checked
    /// to hold at least one. This is the part of [`AcmeHttp::new`] that can fail on the
    /// user's input, without building the client (which reads the system's roots): the
    /// preflight checks run it (`workflow::preflight::check_run`).
    pub fn read_roots(extra_roots: &[PathBuf]) -> Result<Vec<reqwest::Certificate>, AcmeError> {
        let mut certs = Vec::new();
        for p in extra_roots {
            let pem = crate::bounded_read::read_file(p, crate::bounded_read::MAX_PEM_FILE)
                .map_err(|e| {
                    AcmeError::Setup(format!(
                        "cannot read `{}` (setting `acme.https_roots`, flag `--acme-root`): {e}",
                        p.display()
                    ))
                })?;
            let found = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                AcmeError::Setup(format!(
                    "`{}` (setting `acme.https_roots`) holds no usable PEM certificate: {e}",
                    p.display()
                ))
            })?;
            if found.is_empty() {
                return Err(AcmeError::Setup(format!(
                    "`{}` (setting `acme.https_roots`) holds no PEM certificate; expected the CA's HTTPS root in PEM",
                    p.display()
                )));
            }
            certs.extend(found);
        }
        Ok(certs)
    }

    /// A client trusting the system roots plus the PEM files in `extra_roots`.
    pub fn new(extra_roots: &[PathBuf]) -> Result<Self, AcmeError> {
        let certs = Self::read_roots(extra_roots)?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("brokercert/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .tls_certs_merge(certs)
            .build()
            .map_err(|e| AcmeError::Setup(format!("cannot set up HTTPS: {e}")))?;
        Ok(Self {
            client,
            alternates: Arc::new(Mutex::new(HashMap::new())),
            rate_limited_until: Arc::new(Mutex::new(None)),
            retry_after: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The underlying reqwest client (for our own signed requests).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Alternate chain URLs announced when `url` was fetched.
    pub fn alternates_of(&self, url: &str) -> Vec<String> {
        self.alternates
            .lock()
            .map(|m| m.get(url).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// `e` with the wait the CA's last 429 asked for (its `Retry-After`), when `e` is a
    /// rate limit that does not carry it yet.
    pub fn with_retry_after(&self, e: AcmeError) -> AcmeError {
        match e {
            AcmeError::RateLimited {
                detail,
                until: None,
            } => AcmeError::RateLimited {
                detail,
                until: self
                    .rate_limited_until
                    .lock()
                    .ok()
                    .and_then(|mut s| s.take()),
            },
            other => other,
        }
    }

    /// How much longer the last answer from `url` asked to wait (its `Retry-After`), if it
    /// asked at all.
    pub fn retry_after_of(&self, url: &str) -> Option<Duration> {
        let until = *self.retry_after.lock().ok()?.get(url)?;
        Some(until.saturating_duration_since(std::time::Instant::now()))
    }

    /// Remembers the `Retry-After` of an answer from `url` (forgets it when there is none).
    fn remember_retry_after(&self, url: &str, headers: &http::HeaderMap) {
        if let Ok(mut m) = self.retry_after.lock() {
            match crate::retry_after::from_headers(headers) {
                Some(wait) => {
                    let now = std::time::Instant::now();
                    // A wait too long to represent is as good as a day: past any order timeout.
                    let until = now
                        .checked_add(wait)
                        .unwrap_or(now + Duration::from_secs(86_400));
                    m.insert(url.to_string(), until);
                }
                None => {
                    m.remove(url);
                }
            }
        }
    }

    /// Records the `Link: <…>;rel="alternate"` targets of a response to `url`.
    pub fn remember_links(&self, url: &str, headers: &http::HeaderMap) {
        let links = alternate_links(headers);
        if !links.is_empty()
            && let Ok(mut m) = self.alternates.lock()
        {
            m.insert(url.to_string(), links);
        }
    }
}

/// Parses `Link` headers for `rel="alternate"` targets.
pub fn alternate_links(headers: &http::HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    for v in headers.get_all(http::header::LINK) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let mut pieces = part.split(';');
            let Some(target) = pieces.next() else {
                continue;
            };
            let target = target.trim().trim_start_matches('<').trim_end_matches('>');
            if pieces.any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"alternate\"" || p == "rel=alternate"
            }) {
                out.push(target.to_string());
            }
        }
    }
    out
}

/// Pauses before sending a request again that got no answer at all.
const TRANSPORT_RETRIES: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(300)];

/// Whether a failed send is worth repeating: the connection failed or broke, with no
/// answer (a timeout is not repeated: the 60 s are already spent).
fn retry_transport(e: &reqwest::Error) -> bool {
    !e.is_timeout() && (e.is_connect() || e.is_request())
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(c) => c.to_bytes(),
                Err(never) => match never {},
            };
            let url = parts.uri.to_string();
            let asked = std::time::Instant::now();
            let mut attempt = 0;
            let rsp = loop {
                let sent = this
                    .client
                    .request(parts.method.clone(), &url)
                    .headers(parts.headers.clone())
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) => break r,
                    Err(e) if retry_transport(&e) && attempt < TRANSPORT_RETRIES.len() => {
                        // The request got no answer (a refused or dropped connection, often
                        // a pooled one the CA had just closed). Sending it again is safe: a
                        // POST the CA did process comes back as badNonce (its nonce is spent),
                        // which the ACME layer retries with a fresh nonce.
                        tracing::debug!(%url, error = %e, "no answer from the CA; sending again");
                        tokio::time::sleep(TRANSPORT_RETRIES[attempt]).await;
                        attempt += 1;
                    }
                    Err(e) => return Err(instant_acme::Error::Other(Box::new(e))),
                }
            };
            tracing::trace!(method = %parts.method, %url, status = %rsp.status(), took = ?asked.elapsed(), "ACME request");
            this.remember_links(&url, rsp.headers());
            this.remember_retry_after(&url, rsp.headers());
            if rsp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS
                && let Some(wait) = crate::retry_after::from_headers(rsp.headers())
                && let Ok(mut slot) = this.rate_limited_until.lock()
            {
                *slot = Some(time::OffsetDateTime::now_utc() + wait);
            }
            let status = rsp.status();
            let headers = rsp.headers().clone();
            let bytes = crate::bounded_read::read_body(rsp, crate::bounded_read::MAX_RESPONSE)
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let mut out = http::Response::new(Full::new(bytes));
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(BytesResponse::from(out))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_whose_connection_drops_is_sent_again() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // First connection: closed without an answer.
            let (first, _) = listener.accept().await.unwrap();
            drop(first);
            // Second: answered.
            let (mut second, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = second.read(&mut buf).await.unwrap();
            second
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await
                .unwrap();
        });
        let http = AcmeHttp::new(&[]).unwrap();
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("http://{addr}/new-order"))
            .body(BodyWrapper::from(b"{}".to_vec()))
            .unwrap();
        let rsp = http.request(req).await.expect("answered on the second try");
        assert_eq!(rsp.parts.status, http::StatusCode::OK);
        server.await.unwrap();
    }

    #[test]
    fn the_last_retry_after_of_each_url_is_remembered_and_forgotten() {
        let http = AcmeHttp::new(&[]).expect("client");
        let url = "https://127.0.0.1:14000/my-order/1";
        assert_eq!(http.retry_after_of(url), None);
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "3".parse().expect("value"));
        http.remember_retry_after(url, &headers);
        let left = http.retry_after_of(url).expect("remembered");
        assert!(left > Duration::from_millis(2900) && left <= Duration::from_secs(3));
        assert_eq!(
            http.retry_after_of("https://127.0.0.1:14000/my-order/2"),
            None
        );
        // A later answer without the header: no wait asked any more.
        http.remember_retry_after(url, &http::HeaderMap::new());
        assert_eq!(http.retry_after_of(url), None);
        // A wait too long to represent is kept as a long one, not a panic.
        headers.insert(
            http::header::RETRY_AFTER,
            "18446744073709551615".parse().expect("value"),
        );
        http.remember_retry_after(url, &headers);
        assert!(http.retry_after_of(url).expect("kept") > Duration::from_secs(3600));
    }

    #[test]
    fn parses_alternate_links() {
        let mut h = http::HeaderMap::new();
        h.append(
            http::header::LINK,
            "<https://ca/dir>;rel=\"index\"".parse().unwrap(),
        );
        h.append(
            http::header::LINK,
            "<https://ca/cert/1/1>;rel=\"alternate\", <https://ca/cert/1/2>; rel=\"alternate\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            alternate_links(&h),
            vec!["https://ca/cert/1/1", "https://ca/cert/1/2"]
        );
    }
}
