//! The connections a use case needs, built once from `Settings` and made on first use (a
//! run with nothing to do makes none): the CA, Route 53 (batched and rate-limited), the DNS
//! lookups, the MQTT probe, the clock. Each seam can be replaced (`with_*`): the in-process
//! tests of the use cases run them on fakes.
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
use crate::dns::lookup::{DnsLookup, WireLookup};
use crate::dns::provider::DnsProvider;
use crate::dns::route53::{Route53, Route53Settings};
use crate::error::Error;
use crate::store::Store;
use crate::verify::{MqttProbe, TlsMqttProbe};

/// The DNS provider as the use cases hold it: Route 53 in production, batched.
pub type Dns = Batching<Box<dyn DnsProvider>>;

/// The services of one run, for `settings`.
pub struct Services<'a> {
    settings: &'a Settings,
    /// Where the ACME account lives (the real state directory, even for a dry run).
    account_store: Store,
    ca: OnceCell<Box<dyn CertificateAuthority>>,
    route53: OnceCell<Dns>,
    lookup: OnceLock<Box<dyn DnsLookup>>,
    probe: OnceLock<Box<dyn MqttProbe>>,
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
            probe: OnceLock::new(),
            clock: &SystemClock,
        }
    }

    /// With this CA instead of the configured one (tests use a fake).
    pub fn with_ca(self, ca: Box<dyn CertificateAuthority>) -> Self {
        let _ = self.ca.set(ca);
        self
    }

    /// With this DNS provider instead of Route 53 (tests use an in-memory one); batched as
    /// Route 53 would be.
    pub fn with_dns(self, provider: Box<dyn DnsProvider>) -> Self {
        let _ = self.route53.set(batched(self.settings, provider));
        self
    }

    /// With these DNS lookups instead of the configured nameservers.
    pub fn with_lookup(self, lookup: Box<dyn DnsLookup>) -> Self {
        let _ = self.lookup.set(lookup);
        self
    }

    /// With this MQTT probe instead of the TLS one.
    pub fn with_probe(self, probe: Box<dyn MqttProbe>) -> Self {
        let _ = self.probe.set(probe);
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
    pub async fn route53(&self) -> &Dns {
        self.route53
            .get_or_init(|| async {
                let r53 = route53(self.settings).await;
                batched(self.settings, Box::new(r53))
            })
            .await
    }

    /// The DNS lookups (the configured nameservers or resolver, and strategy).
    pub fn lookup(&self) -> &dyn DnsLookup {
        self.lookup
            .get_or_init(|| Box::new(lookup(self.settings)))
            .as_ref()
    }

    /// The MQTT probe of the verify stage (TLS, resolving through `[verify]`'s resolver).
    pub fn probe(&self) -> &dyn MqttProbe {
        self.probe
            .get_or_init(|| {
                Box::new(TlsMqttProbe::new(crate::workflow::verify::resolver(
                    self.settings,
                )))
            })
            .as_ref()
    }
}

/// `provider` batched for this run: the certificates' changes to one zone go in one batch
/// (a window only when there are several), at the account's request rate.
fn batched(settings: &Settings, provider: Box<dyn DnsProvider>) -> Dns {
    let window = if settings.certificates.len() > 1 {
        settings.dns.route53_batch_window
    } else {
        Duration::ZERO
    };
    Batching::new(provider, window, settings.dns.route53_requests_per_second)
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
