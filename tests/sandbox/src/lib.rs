//! The local test sandbox: real servers on 127.0.0.1 only — moto as the Route 53 API,
//! the sandbox's own DNS server answering from moto's record sets, and Pebble as the
//! ACME CA validating DNS-01 against that DNS server — started together in a fresh
//! directory and stopped (by PID) on drop.
//!
//! This file owns [`Sandbox`], [`SandboxOptions`], the sandbox directory and
//! [`SandboxError`]; the servers themselves live in `moto.rs`, `dns_server.rs` and
//! `pebble.rs`, child-process handling in `process.rs`; `ari_proxy.rs` can put an
//! ARI-capable front ([`AriProxy`]) before Pebble, and `route53_proxy.rs` a
//! fault-injecting front ([`Route53Proxy`]) before moto, and `caching_resolver.rs` is a
//! caching recursive resolver ([`CachingResolver`]) in front of the DNS server;
//! `connect_proxy.rs` ([`ConnectProxy`]) lets clients without a Route 53 endpoint setting
//! reach moto as `route53.amazonaws.com`. It refers to nothing else of the crate.
//!
//! ```text
//! let sb = Sandbox::start(SandboxOptions::new().zone("example.test")).await?;
//! let zone = sb.zone_id("example.test").unwrap();
//! sb.upsert(&zone, "_acme-challenge.example.test", "TXT", 60, &["\"token\""]).await?;
//! // run brokercert with sb.aws_env(), sb.acme_directory_url(), sb.pebble_tls_ca_path(),
//! // and sb.dns_addr() as the nameserver to check propagation against.
//! ```

pub mod ari_proxy;
pub mod caching_resolver;
pub mod connect_proxy;
pub mod dns_server;
pub mod emqx_cloud;
mod listen;
pub mod local_tls;
pub mod mosquitto;
pub mod moto;
pub mod pebble;
pub mod process;
mod route53_front;
pub mod route53_proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use ari_proxy::{AriProxy, AriWindow, SeenOrder};
pub use caching_resolver::{CachingResolver, ResolverEvent};
pub use connect_proxy::ConnectProxy;
pub use dns_server::{DnsFault, DnsFaults, DnsServer, DnsServerOptions, LoggedQuery};
pub use emqx_cloud::{
    ApiRequest, BEHAVIOURS, Behaviours, BudgetScope, Budgets, CnForm, DeploymentKind,
    DeploymentPorts, DeploymentSpec, DropPoint, EmqxCloudEmulator, ErrorBody, ExpireForm, NoTls,
    PostOverExisting, RetryAfter, TlsSnapshot, TlsStatus, TlsType,
};
pub use mosquitto::{Mosquitto, MosquittoConfig, MqttUser};
pub use moto::{HostedZoneInfo, MotoServer, RecordSetInfo};
pub use pebble::{EabKey, Pebble, PebbleOptions, PebbleTls};
pub use process::{ChildGuard, free_port, pid_is_alive};
pub use route53_proxy::{FaultPlan, ProxiedRequest, Route53Fault, Route53Proxy};

/// File name of all of Pebble's issuing roots, concatenated.
pub const ROOTS_FILE: &str = "pebble-roots.pem";
/// Empty AWS config file the sandbox points child processes at.
const AWS_CONFIG_NAME: &str = "aws-config";
/// Empty AWS credentials file the sandbox points child processes at.
const AWS_CREDENTIALS_NAME: &str = "aws-credentials";
/// Set to `1` to keep sandbox directories after the sandbox is dropped.
pub const KEEP_DIR_ENV: &str = "BROKERCERT_SANDBOX_KEEP";

/// What can go wrong while running the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `moto_server` was not found.
    #[error(
        "moto_server not found (looked at: {}); run `.ci/install` to create \
         .sandbox/venv with moto, or set BROKERCERT_MOTO_SERVER to the executable",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    MotoMissing {
        /// The paths tried.
        searched: Vec<PathBuf>,
    },
    /// A server did not become ready in time.
    #[error("{what} was not ready after {timeout:?}; its log {}:\n{tail}", log.display())]
    NotReady {
        /// Which server.
        what: String,
        /// How long we waited.
        timeout: Duration,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// A server exited while starting.
    #[error("{what} exited while starting ({status}); its log {}:\n{tail}", log.display())]
    Exited {
        /// Which server.
        what: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// A Route 53 call to moto failed.
    #[error("Route 53 emulator: {0}")]
    Route53(String),
    /// Pebble answered something unexpected.
    #[error("Pebble: {0}")]
    Pebble(String),
    /// An HTTPS request failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// Generating the sandbox's TLS material failed.
    #[error("certificate generation: {0}")]
    Cert(String),
    /// The DNS server failed.
    #[error("DNS server: {0}")]
    Dns(String),
    /// An option was refused.
    #[error("invalid sandbox option: {0}")]
    InvalidOption(String),
}

impl SandboxError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result of sandbox operations.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// A zone to create at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSpec {
    /// Zone name (`example.test`).
    pub name: String,
    /// Private (with a fake VPC) or public.
    pub private: bool,
}

/// How to start a [`Sandbox`] (builder style).
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// Pebble's options (environment overrides, EAB, …).
    pub pebble: PebbleOptions,
    /// Zones created before `start` returns.
    pub zones: Vec<ZoneSpec>,
    /// The `moto_server` executable (default: see [`moto::find_moto_server`]).
    pub moto_server: Option<PathBuf>,
    /// DNS server options.
    pub dns: DnsServerOptions,
    /// Keep the sandbox directory after drop (also `BROKERCERT_SANDBOX_KEEP=1`; it is
    /// always kept when the sandbox is dropped during a panic).
    pub keep_dir: bool,
    /// Create the sandbox directory in this directory instead of the system temp dir.
    pub parent_dir: Option<PathBuf>,
    /// Also start the EMQX Cloud Platform API emulator (in `<dir>/emqx-cloud`).
    pub emqx_cloud: bool,
}

impl SandboxOptions {
    /// Defaults: no zones, Pebble with [`pebble::DEFAULT_ENV`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a public hosted zone at start.
    pub fn zone(mut self, name: impl Into<String>) -> Self {
        self.zones.push(ZoneSpec {
            name: name.into(),
            private: false,
        });
        self
    }

    /// Creates a private hosted zone at start.
    pub fn private_zone(mut self, name: impl Into<String>) -> Self {
        self.zones.push(ZoneSpec {
            name: name.into(),
            private: true,
        });
        self
    }

    /// Sets a Pebble environment variable (e.g. `PEBBLE_CHAIN_LENGTH`, `3`).
    pub fn pebble_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.pebble = self.pebble.env(key, value);
        self
    }

    /// Leaves a Pebble environment variable unset (Pebble's own default).
    pub fn pebble_env_remove(mut self, key: impl Into<String>) -> Self {
        self.pebble = self.pebble.env_remove(key);
        self
    }

    /// Makes Pebble reject `percent` % of all nonces with `badNonce`
    /// (`PEBBLE_WFE_NONCEREJECT`; the sandbox's default is 0, Pebble's own 5).
    pub fn pebble_nonce_reject(self, percent: u8) -> Self {
        self.pebble_env("PEBBLE_WFE_NONCEREJECT", percent.min(100).to_string())
    }

    /// Makes Pebble refuse orders for `domain` and its subdomains (a CA that rejects the order).
    pub fn pebble_blocklist(mut self, domain: impl Into<String>) -> Self {
        self.pebble = self.pebble.domain_blocklist(domain);
        self
    }

    /// Makes Pebble require External Account Binding with this key.
    pub fn external_account_binding(mut self, key: EabKey) -> Self {
        self.pebble = self.pebble.external_account_binding(key);
        self
    }

    /// Uses this `moto_server` executable (or venv directory).
    pub fn moto_server(mut self, path: impl Into<PathBuf>) -> Self {
        self.moto_server = Some(path.into());
        self
    }

    /// Makes the DNS server ignore private zones.
    pub fn dns_public_zones_only(mut self, yes: bool) -> Self {
        self.dns.public_zones_only = yes;
        self
    }

    /// Makes the DNS server also answer on `addr` (UDP and TCP), e.g. `127.0.0.2:53`.
    pub fn dns_also_listen(mut self, addr: SocketAddr) -> Self {
        self.dns.also_listen.push(addr);
        self
    }

    /// Keeps the sandbox directory after drop.
    pub fn keep_dir(mut self, yes: bool) -> Self {
        self.keep_dir = yes;
        self
    }

    /// Creates the sandbox directory inside `dir`.
    pub fn parent_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.parent_dir = Some(dir.into());
        self
    }

    /// Also starts the EMQX Cloud Platform API emulator ([`Sandbox::emqx_cloud`]).
    pub fn emqx_cloud(mut self, yes: bool) -> Self {
        self.emqx_cloud = yes;
        self
    }
}

/// A fresh directory (mode 0755, so e.g. a broker running as another user can read
/// files in it), removed on drop unless kept.
#[derive(Debug)]
struct SandboxDir {
    path: PathBuf,
    keep: bool,
}

impl SandboxDir {
    fn create(parent: Option<&Path>, keep: bool) -> Result<Self> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let mut last_err = None;
        for _ in 0..16 {
            let path = parent.join(format!(
                "brokercert-sandbox-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path, keep }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => {
                    return Err(SandboxError::io(format!("creating {}", path.display()), e));
                }
            }
        }
        Err(SandboxError::io(
            format!("creating a sandbox directory in {}", parent.display()),
            last_err.unwrap_or_else(|| std::io::Error::other("no attempt made")),
        ))
    }
}

impl Drop for SandboxDir {
    fn drop(&mut self) {
        let keep_env = std::env::var(KEEP_DIR_ENV).is_ok_and(|v| v == "1");
        if self.keep || keep_env || std::thread::panicking() {
            eprintln!("brokercert sandbox: kept {}", self.path.display());
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!(
                "brokercert sandbox: removing {} failed: {e}",
                self.path.display()
            );
        }
    }
}

/// The parts of a [`Sandbox`] before it owns its directory.
struct Servers {
    emqx: Option<EmqxCloudEmulator>,
    pebble: Pebble,
    dns: DnsServer,
    moto: MotoServer,
    zones: Vec<(ZoneSpec, String)>,
    roots_path: PathBuf,
}

/// moto + DNS server + Pebble, all on 127.0.0.1, in one fresh directory.
///
/// Dropping it stops Pebble and moto by PID (SIGTERM, then SIGKILL) and the DNS server,
/// then removes the directory (kept during a panic, for the logs `moto.log` and
/// `pebble.log`).
#[derive(Debug)]
pub struct Sandbox {
    // Field order = drop order: the processes stop before the directory goes.
    emqx: Option<EmqxCloudEmulator>,
    pebble: Pebble,
    dns: DnsServer,
    moto: MotoServer,
    zones: Vec<(ZoneSpec, String)>,
    roots_path: PathBuf,
    dir: SandboxDir,
}

impl Sandbox {
    /// Starts moto, the DNS server, then Pebble; writes `pebble-tls-ca.pem` and
    /// `pebble-roots.pem`; creates the zones of `options`. About 1.3 s (moto's start).
    pub async fn start(options: SandboxOptions) -> Result<Self> {
        let started = Instant::now();
        let mut dir = SandboxDir::create(options.parent_dir.as_deref(), options.keep_dir)?;
        let mut result = Self::start_servers(&dir.path, &options).await;
        for _ in 0..2 {
            // moto exits at once when its port was taken meanwhile: start over.
            match &result {
                Err(SandboxError::Exited { what, .. }) if what == "moto_server" => {
                    result = Self::start_servers(&dir.path, &options).await;
                }
                _ => break,
            }
        }
        match result {
            Ok(servers) => {
                tracing::debug!(elapsed = ?started.elapsed(), dir = %dir.path.display(), "sandbox started");
                Ok(Self {
                    emqx: servers.emqx,
                    pebble: servers.pebble,
                    dns: servers.dns,
                    moto: servers.moto,
                    zones: servers.zones,
                    roots_path: servers.roots_path,
                    dir,
                })
            }
            Err(e) => {
                // Keep the logs of a failed start (an empty directory is removed).
                dir.keep = std::fs::read_dir(&dir.path).is_ok_and(|mut d| d.next().is_some());
                Err(e)
            }
        }
    }

    async fn start_servers(dir: &Path, options: &SandboxOptions) -> Result<Servers> {
        // moto takes ~1 s to import: start it first, wait for it last.
        let mut moto = MotoServer::spawn(options.moto_server.as_deref(), dir)?;
        // Everyone reaches moto through the DNS server's Route 53 endpoint, so the DNS
        // server sees every write and can answer from a copy in between.
        let dns = DnsServer::start_with(
            &moto.endpoint(),
            DnsServerOptions {
                route53_front: true,
                ..options.dns.clone()
            },
        )?;
        let pebble = Pebble::start(dir, dns.addr(), &options.pebble).await?;
        moto.wait_ready(Duration::from_secs(30)).await?;

        let roots = pebble.issuing_roots().await?;
        if roots.is_empty() {
            return Err(SandboxError::Pebble("no issuing root at /roots/0".into()));
        }
        let roots_path = dir.join(ROOTS_FILE);
        let mut all_roots = String::new();
        for root in &roots {
            all_roots.push_str(root.trim_end());
            all_roots.push('\n');
        }
        std::fs::write(&roots_path, all_roots)
            .map_err(|e| SandboxError::io(format!("writing {}", roots_path.display()), e))?;
        // Empty AWS config files: the SDK reads them (finding nothing) instead of ~/.aws.
        for name in [AWS_CONFIG_NAME, AWS_CREDENTIALS_NAME] {
            let p = dir.join(name);
            std::fs::write(&p, "")
                .map_err(|e| SandboxError::io(format!("writing {}", p.display()), e))?;
        }

        let client = moto::route53_client(&dns.route53_front().unwrap_or_else(|| moto.endpoint()));
        let mut zones = Vec::new();
        for spec in &options.zones {
            let id = moto::create_zone(&client, &spec.name, spec.private).await?;
            zones.push((spec.clone(), id));
        }
        let emqx = if options.emqx_cloud {
            Some(EmqxCloudEmulator::start(dir.join("emqx-cloud")).await?)
        } else {
            None
        };
        Ok(Servers {
            emqx,
            pebble,
            dns,
            moto,
            zones,
            roots_path,
        })
    }

    /// The sandbox directory (logs, Pebble config, PEM files).
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// Pebble's ACME directory, `https://127.0.0.1:PORT/dir`.
    pub fn acme_directory_url(&self) -> String {
        self.pebble.directory_url()
    }

    /// The CA to trust for Pebble's HTTPS (`<dir>/pebble-tls-ca.pem`).
    pub fn pebble_tls_ca_path(&self) -> &Path {
        self.pebble.tls_ca_path()
    }

    /// All of Pebble's issuing roots, concatenated (`<dir>/pebble-roots.pem`).
    pub fn pebble_roots_path(&self) -> &Path {
        &self.roots_path
    }

    /// The Route 53 endpoint, `http://127.0.0.1:PORT`.
    pub fn route53_endpoint(&self) -> String {
        self.dns
            .route53_front()
            .unwrap_or_else(|| self.moto.endpoint())
    }

    /// The DNS server (UDP and TCP).
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns.addr()
    }

    /// A new Route 53 client for moto (static fake credentials; one per tokio runtime).
    pub fn route53_client(&self) -> aws_sdk_route53::Client {
        moto::route53_client(&self.route53_endpoint())
    }

    /// The DNS server's fault-injection switch.
    pub fn dns_faults(&self) -> DnsFaults {
        self.dns.faults()
    }

    /// The questions the DNS server received so far.
    pub fn dns_queries(&self) -> Vec<LoggedQuery> {
        self.dns.queries()
    }

    /// Pebble (issuing roots, intermediates, EAB key, …).
    pub fn pebble(&self) -> &Pebble {
        &self.pebble
    }

    /// The EMQX Cloud API emulator, when started with [`SandboxOptions::emqx_cloud`].
    pub fn emqx_cloud(&self) -> Option<&EmqxCloudEmulator> {
        self.emqx.as_ref()
    }

    /// moto.
    pub fn moto(&self) -> &MotoServer {
        &self.moto
    }

    /// The DNS server.
    pub fn dns(&self) -> &DnsServer {
        &self.dns
    }

    /// PIDs of the child processes (moto, Pebble).
    pub fn pids(&self) -> Vec<u32> {
        vec![self.moto.pid(), self.pebble.pid()]
    }

    /// The bare id of a zone created at start from [`SandboxOptions`] (the public one
    /// if a public and a private zone share the name).
    pub fn zone_id(&self, name: &str) -> Option<String> {
        let wanted = moto::normalize_name(name);
        let mut matching = self
            .zones
            .iter()
            .filter(|(spec, _)| moto::normalize_name(&spec.name) == wanted);
        let first = matching.clone().next();
        matching
            .find(|(spec, _)| !spec.private)
            .or(first)
            .map(|(_, id)| id.clone())
    }

    /// The zones created at start, with their bare ids, in the order of the options.
    pub fn zones(&self) -> &[(ZoneSpec, String)] {
        &self.zones
    }

    /// Creates a hosted zone; returns its bare id.
    pub async fn create_zone(&self, name: &str, private: bool) -> Result<String> {
        moto::create_zone(&self.route53_client(), name, private).await
    }

    /// UPSERTs a record set (TXT values quoted, as Route 53 wants: `"\"token\""`).
    pub async fn upsert(
        &self,
        zone_id: &str,
        name: &str,
        rtype: &str,
        ttl: i64,
        values: &[&str],
    ) -> Result<()> {
        moto::upsert(&self.route53_client(), zone_id, name, rtype, ttl, values).await
    }

    /// The record sets of a zone, verbatim.
    pub async fn list_records(&self, zone_id: &str) -> Result<Vec<RecordSetInfo>> {
        moto::list_records(&self.route53_client(), zone_id).await
    }

    /// Pebble's issuing roots now (PEM).
    pub async fn issuing_roots(&self) -> Result<Vec<String>> {
        self.pebble.issuing_roots().await
    }

    /// The environment a child `brokercert` process needs to reach moto with fake
    /// credentials and never read `~/.aws` or the instance-metadata service. Remove
    /// [`Sandbox::AWS_ENV_REMOVE`] too (see [`Sandbox::configure_command`]).
    pub fn aws_env(&self) -> Vec<(String, String)> {
        let dir = self.dir();
        [
            ("AWS_ACCESS_KEY_ID", moto::FAKE_ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", moto::FAKE_ACCESS_KEY.to_owned()),
            ("AWS_REGION", moto::REGION.to_owned()),
            ("AWS_DEFAULT_REGION", moto::REGION.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_ENDPOINT_URL_ROUTE_53", self.route53_endpoint()),
            (
                "AWS_CONFIG_FILE",
                dir.join(AWS_CONFIG_NAME).display().to_string(),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.join(AWS_CREDENTIALS_NAME).display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Variables a child must not inherit: they would select another profile, other
    /// credentials or endpoints.
    pub const AWS_ENV_REMOVE: &'static [&'static str] = &[
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_USE_FIPS_ENDPOINT",
        "AWS_USE_DUALSTACK_ENDPOINT",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    ];

    /// Removes [`Sandbox::AWS_ENV_REMOVE`] from a command and sets [`Sandbox::aws_env`]
    /// (for tokio's `Command`, pass `cmd.as_std_mut()`).
    pub fn configure_command(&self, cmd: &mut std::process::Command) {
        for key in Self::AWS_ENV_REMOVE {
            cmd.env_remove(key);
        }
        cmd.envs(self.aws_env());
    }

    /// Stops everything now (same as dropping).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // SIGTERM both first so their grace periods overlap; the fields' own Drop
        // (ChildGuard) then waits, SIGKILLs if needed and reaps.
        self.pebble.terminate();
        self.moto.terminate();
        self.dns.stop();
        self.pebble.stop();
        self.moto.stop();
    }
}
