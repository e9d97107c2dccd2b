//! brokercert: Let's Encrypt certificates for MQTT brokers, end to end.
//!
//! The library behind the `brokercert` command: Route 53 DNS-01 issuance with instant-acme,
//! chain splitting and checks, certbot-like storage. Decisions are pure functions; every side
//! effect sits behind a small trait (`DnsProvider`, `DnsLookup`, `CertificateAuthority`,
//! `Clock`) with a real adapter.
//!
//! Everything except [`pki`] needs the default `full` feature; `pki` alone (parsing, chain
//! ordering and splitting) builds with `default-features = false`, which the fuzz targets use.

#[cfg(feature = "full")]
pub mod acme;
#[cfg(feature = "full")]
pub mod bounded_read;
#[cfg(feature = "full")]
pub mod bounds;
#[cfg(feature = "full")]
pub mod check;
#[cfg(feature = "full")]
pub mod child_env;
#[cfg(feature = "full")]
pub mod cli;
#[cfg(feature = "full")]
pub mod clientpki;
#[cfg(feature = "full")]
pub mod clock;
#[cfg(feature = "full")]
pub mod config;
#[cfg(feature = "full")]
pub mod deploy;
#[cfg(feature = "full")]
pub mod dns;
#[cfg(feature = "full")]
pub mod error;
#[cfg(feature = "full")]
pub mod hint;
#[cfg(feature = "full")]
pub mod iam;
#[cfg(all(test, feature = "full"))]
mod layering;
#[cfg(feature = "full")]
pub mod names;
pub mod pki;
#[cfg(feature = "full")]
pub mod progress;
#[cfg(feature = "full")]
pub mod renew;
#[cfg(feature = "full")]
pub mod retry_after;
#[cfg(feature = "full")]
pub mod secret;
#[cfg(feature = "full")]
pub mod store;
#[cfg(feature = "full")]
pub mod terminal_text;
#[cfg(feature = "full")]
pub mod verify;
#[cfg(feature = "full")]
pub mod workflow;

#[cfg(feature = "full")]
pub use error::Error;
