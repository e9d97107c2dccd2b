//! Proving a deployment works: an MQTT-over-TLS round trip like the guide's
//! MQTTX test (connect, subscribe, publish, receive) on mqtts and wss, with
//! strict certificate verification for the broker's name, a record of the
//! certificate actually served, and for two-way TLS a check that clients
//! without a certificate are refused.
//!
//! Owns: the [`MqttProbe`] seam and its real adapter [`TlsMqttProbe`].
//! Does not own: issuing or deploying certificates, and DNS policy: names are
//! resolved by the caller's [`Resolver`] unless [`ProbeTarget::connect_addr`]
//! overrides them (tests always override, so they never touch a resolver).
//!
//! Files: `target` (inputs), `resolve` (where to connect), `tls` (trust and
//! recording verifier), `connection` (TCP + TLS + WebSocket), `session`
//! (MQTT packets), `probe` (the sequence), `report` (results), `error`
//! (failure messages).

mod connection;
mod dns_resolver;
mod error;
mod failure;
mod presented;
mod probe;
mod report;
mod resolve;
mod session;
mod target;
mod tls;

use async_trait::async_trait;

pub use dns_resolver::DnsResolver;
pub use error::{Endpoint, Step, VerifyError};
pub use failure::VerifyFailure;
pub use probe::TlsMqttProbe;
pub use report::{ProbeReport, RoundTrip, ServerCertificate, TransportReport};
pub use resolve::{FnResolver, Resolver, SystemResolver, connect_addresses};
pub use target::{
    DEFAULT_MQTTS_PORT, DEFAULT_STEP_TIMEOUT, DEFAULT_WSS_PATH, DEFAULT_WSS_PORT, ProbeTarget,
    Secret, Transport, normalise_fingerprint,
};

/// Runs the guide's MQTT test against a broker.
///
/// `Ok` carries a report for every transport tried (each passed or failed);
/// `Err` means the target itself was unusable (no transport, unreadable CA
/// file or client identity, invalid host name).
#[async_trait]
pub trait MqttProbe: Send + Sync {
    /// Probes every transport of `target`.
    async fn probe(&self, target: &ProbeTarget) -> Result<ProbeReport, VerifyError>;
}
