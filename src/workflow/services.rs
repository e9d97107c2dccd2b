//! The connections a use case needs, built once from `Settings` and made on first use (a
//! run with nothing to do makes none): the CA, Route 53 (batched and rate-limited), the DNS
//! lookups, the clock.
//!
//! Owns: building those from the settings, once. Does not own what is done with them, nor
//! the settings themselves (`config`).

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::acme::CertificateAuthority;
use crate::acme::client::AcmeClient;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::dns::batching::Batching;
use crate::dns::lookup::WireLookup;
use crate::dns::route53::{Route53, Route53Settings};
use crate::error::Error;
use crate::store::Store;

/// The services of one run, for `settings`.
pub struct Services<'a> {
    settings: &'a Settings,
    /// Where the ACME account lives (the real state directory, even for a dry run).
    account_store: Store,
    ca: OnceCell<Box<dyn CertificateAuthority>>,
    route53: OnceCell<Batching<Route53>>,
    lookup: OnceLock<WireLookup>,
    clock: &'a dyn Clock,
}

impl<'a> Services<'a> {
    /// For `settings`, on the system clock; nothing is connected yet.
    pub fn new(settings: &'a Settings) -> Self {
        Self {
            settings,
            account_store: Store::new(&settings.state_dir),
            ca: OnceCell::new(),
            route53: OnceCell::new(),
            lookup: OnceLock::new(),
            clock: &SystemClock,
        }
    }

    /// With this CA instead of the configured one (tests use a fake).
    pub fn with_ca(self, ca: Box<dyn CertificateAuthority>) -> Self {
        let _ = self.ca.set(ca);
        self
    }

    /// With this clock instead of the system's.
    pub fn with_clock(mut self, clock: &'a dyn Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The settings these services were built from.
    pub fn settings(&self) -> &'a Settings {
        self.settings
    }

    /// The clock.
    pub fn clock(&self) -> &'a dyn Clock {
        self.clock
    }

    /// The ACME CA, connected (and the account loaded or registered) on first use.
    pub async fn ca(&self) -> Result<&dyn CertificateAuthority, Error> {
        let ca = self
            .ca
            .get_or_try_init(|| async {
                let c = AcmeClient::connect(&self.settings.acme, &self.account_store).await?;
                Ok::<_, Error>(Box::new(c) as Box<dyn CertificateAuthority>)
            })
            .await?;
        Ok(ca.as_ref())
    }

    /// Route 53, shared by the certificates of this run: their changes to one zone go in
    /// one batch, the zones are listed once, and requests keep to the account's rate.
    pub async fn route53(&self) -> &Batching<Route53> {
        self.route53
            .get_or_init(|| async {
                let r53 = route53(self.settings).await;
                let window = if self.settings.certificates.len() > 1 {
                    self.settings.dns.route53_batch_window
                } else {
                    Duration::ZERO
                };
                Batching::new(r53, window, self.settings.dns.route53_requests_per_second)
            })
            .await
    }

    /// The DNS lookups (the configured nameservers or resolver, and strategy).
    pub fn lookup(&self) -> &WireLookup {
        self.lookup.get_or_init(|| lookup(self.settings))
    }
}

/// Route 53 as `[dns]` configures it (one client; [`Services::route53`] adds the batching).
pub async fn route53(settings: &Settings) -> Route53 {
    Route53::connect(&route53_settings(settings)).await
}

/// The Route 53 client's settings from `[dns]`.
pub fn route53_settings(settings: &Settings) -> Route53Settings {
    Route53Settings {
        endpoint_url: settings.dns.route53_endpoint.clone(),
        profile: settings.dns.route53_profile.clone(),
        region: settings.dns.route53_region.clone(),
        max_attempts: settings.dns.route53_max_attempts,
        read_records: settings.dns.route53_read_records,
    }
}

/// The DNS lookups as `[dns]` configures them.
pub fn lookup(settings: &Settings) -> WireLookup {
    WireLookup::new(settings.dns.nameservers.clone(), settings.dns.resolver)
        .with_strategy(settings.dns.strategy)
}
