//! brokercert: Let's Encrypt certificates for MQTT brokers, end to end.
//!
//! The library behind the `brokercert` command: Route 53 DNS-01 issuance with instant-acme,
//! chain splitting and checks, certbot-like storage. Decisions are pure functions; every side
//! effect sits behind a small trait (`DnsProvider`, `DnsLookup`, `CertificateAuthority`,
//! `Clock`) with a real adapter.

pub mod acme;
pub mod check;
pub mod cli;
pub mod clientpki;
pub mod clock;
pub mod config;
pub mod deploy;
pub mod dns;
pub mod error;
pub mod names;
pub mod pki;
pub mod sandbox;
pub mod secret;
pub mod store;
pub mod verify;
pub mod workflow;

pub use error::Error;
