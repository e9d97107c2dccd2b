//! Opening one verified connection to a listener: TCP to the override address
//! (or the resolver's answers), TLS with SNI and certificate verification for
//! the broker's name, and for wss the WebSocket upgrade (`Host` header and
//! `Sec-WebSocket-Protocol: mqtt`). The result is a byte stream for MQTT.
//!
//! This is why the probe does not use rumqttc's event loop: rumqttc 0.25
//! always resolves the broker's name itself (`lookup_host`), so it cannot
//! connect to an override address while keeping the name for SNI,
//! verification and the Host header.
//!
//! Owns: the connect sequence and its per-step timeouts.
//! Does not own: trust decisions (see `tls`), MQTT (see `session`) or what a
//! failure means (see `error`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use ws_stream_tungstenite::WsStream;

use super::error::{Endpoint, Step, VerifyError, connect_error, handshake_error, websocket_error};
use super::presented::ServerCertificate;
use super::resolve::{Resolver, connect_addresses};
use super::target::Transport;
use super::tls::PresentedChain;

/// A bidirectional byte stream (TLS, or WebSocket over TLS).
pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// What [`open`] needs besides the endpoint.
pub(crate) struct Dial<'a> {
    pub resolver: &'a dyn Resolver,
    pub connect_addr: Option<std::net::IpAddr>,
    pub server_name: &'a ServerName<'static>,
    pub config: Arc<ClientConfig>,
    pub seen: &'a PresentedChain,
    pub trust_label: &'a str,
    pub trust_from_ca_file: bool,
    pub presents_client_cert: bool,
    pub two_way_expected: bool,
    pub timeout: Duration,
}

/// An open connection and the chain the server presented.
pub(crate) struct Opened {
    pub stream: Box<dyn ByteStream>,
    pub server_certificate: Option<ServerCertificate>,
}

async fn timed<T, E>(
    endpoint: &Endpoint,
    step: Step,
    limit: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<Result<T, E>, VerifyError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| VerifyError::Timeout {
            endpoint: endpoint.boxed(),
            step,
            timeout: limit,
        })
}

/// Connects to `endpoint`; fills in `endpoint.addr` with the address used.
/// On failure also returns the chain presented, if the handshake got that far.
pub(crate) async fn open(
    endpoint: &mut Endpoint,
    dial: &Dial<'_>,
) -> Result<Opened, (VerifyError, Option<ServerCertificate>)> {
    let tcp = tcp_connect(endpoint, dial).await.map_err(|e| (e, None))?;

    let connector = TlsConnector::from(dial.config.clone());
    let handshake = connector.connect(dial.server_name.clone(), tcp);
    let tls = match timed(endpoint, Step::TlsHandshake, dial.timeout, handshake).await {
        Err(timeout) => return Err((timeout, dial.seen.get())),
        Ok(Err(e)) => {
            let served = dial.seen.get();
            let err = handshake_error(
                endpoint,
                &e,
                served.clone(),
                dial.trust_label,
                dial.trust_from_ca_file,
                dial.presents_client_cert,
            );
            return Err((err, served));
        }
        Ok(Ok(tls)) => tls,
    };
    let served = dial.seen.get();
    tracing::debug!(endpoint = %endpoint, "TLS handshake done");

    let stream: Box<dyn ByteStream> = match endpoint.transport {
        Transport::Mqtts => Box::new(tls),
        Transport::Wss => {
            let url = endpoint.url();
            let mut request = url.as_str().into_client_request().map_err(|e| {
                (
                    VerifyError::WebSocket {
                        endpoint: endpoint.boxed(),
                        reason: format!("{url} is not a valid WebSocket URL ({e})"),
                    },
                    served.clone(),
                )
            })?;
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
            let upgrade = async_tungstenite::tokio::client_async(request, tls);
            match timed(endpoint, Step::WebSocketUpgrade, dial.timeout, upgrade).await {
                Err(timeout) => return Err((timeout, served)),
                Ok(Err(e)) => {
                    let err = websocket_error(
                        endpoint,
                        &e,
                        dial.presents_client_cert,
                        dial.two_way_expected,
                    );
                    return Err((err, served));
                }
                Ok(Ok((ws, _response))) => Box::new(WsStream::new(ws)),
            }
        }
    };
    Ok(Opened {
        stream,
        server_certificate: served,
    })
}

async fn tcp_connect(endpoint: &mut Endpoint, dial: &Dial<'_>) -> Result<TcpStream, VerifyError> {
    let resolving = connect_addresses(
        dial.resolver,
        &endpoint.host,
        endpoint.port,
        dial.connect_addr,
    );
    let addrs: Vec<SocketAddr> = timed(endpoint, Step::Resolve, dial.timeout, resolving)
        .await?
        .map_err(|e| VerifyError::Resolve {
            endpoint: endpoint.boxed(),
            reason: e.to_string(),
        })?;
    let mut last = None;
    for addr in addrs {
        endpoint.addr = Some(addr);
        match timed(
            endpoint,
            Step::TcpConnect,
            dial.timeout,
            TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(tcp)) => {
                // Best effort: small MQTT packets should not wait for Nagle.
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Ok(Err(e)) => last = Some(connect_error(endpoint, &e)),
            Err(timeout) => last = Some(timeout),
        }
    }
    Err(last.unwrap_or_else(|| VerifyError::Resolve {
        endpoint: endpoint.boxed(),
        reason: "no address to connect to".to_string(),
    }))
}
