//! Settings: the TOML configuration file, overridden by environment variables and flags
//! (flags > environment > file > defaults), validated into `Settings`.
//!
//! Owns: the file format, defaults, validation and the messages for bad settings.
//! Does not own: how settings are used. Secrets are never inline: the file names an
//! environment variable or a file that holds them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub mod cas;
pub mod checked;
pub mod discover;
mod keys;
mod redact;
pub use cas::{GOOGLE, GOOGLE_STAGING, ZEROSSL};
pub use keys::{KEYS, Key, Kind, UnknownKey};

use crate::names::DomainName;
use crate::pki::keys::KeyType;
use crate::secret::Secret;

/// Let's Encrypt production.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt staging.
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// A bad setting or unreadable configuration. Messages name the file or setting, what was
/// found, what was expected, and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file `{}`: {source}. Pass an existing file with `--config FILE` (or BROKERCERT_CONFIG)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("the configuration file `{}` is invalid: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation (with line and column).
        message: String,
    },
    /// A key the schema does not know (a typo, or a key in the wrong section).
    #[error("unknown key `{key}` in `{}`{}; {}. Every key is described in docs/configuration.md; `brokercert init` writes a commented example", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default(), advice(suggestion.as_deref(), valid))]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: String,
        /// 1-based line, when found.
        line: Option<usize>,
        /// The nearest valid key.
        suggestion: Option<String>,
        /// The valid keys at that level.
        valid: Vec<String>,
    },
    /// The file holds a secret inline but others can read it.
    #[error("the configuration file `{}` holds a secret inline (`{key}`) but is readable by its group or others (mode {mode:04o}); a file with inline secrets must be readable by its owner only (mode 0600). Run `chmod 600 {}`, or move the secret out of the file: set `{key}_env` to an environment variable's name or `{key}_file` to a file", path.display(), path.display())]
    ReadableSecrets {
        /// The file.
        path: PathBuf,
        /// The first inline secret found.
        key: String,
        /// The file's permission bits.
        mode: u32,
    },
    /// The file names commands to run but others can change it.
    #[error("the configuration file `{}` names a command to run (`{key}`) but is writable by its group or others (mode {mode:04o}); anyone who can write it could make brokercert run their command as this user. A file with commands must be writable by its owner only. Run `chmod go-w {}`", path.display(), path.display())]
    WritableCommands {
        /// The file.
        path: PathBuf,
        /// The first command setting found.
        key: String,
        /// The file's permission bits.
        mode: u32,
    },
    /// A trust root (`trust.extra_roots`) cannot be read or is not a root certificate.
    #[error("{0}")]
    Trust(String),
    /// A setting has a bad value.
    #[error("setting `{setting}`: found {found}, expected {expected}. {fix}")]
    Invalid {
        /// The setting's path, e.g. `certificate[0].domains`.
        setting: String,
        /// What was found.
        found: String,
        /// What is expected.
        expected: String,
        /// What to do.
        fix: String,
    },
}

fn advice(suggestion: Option<&str>, valid: &[String]) -> String {
    match suggestion {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!(
            "expected one of {}",
            valid
                .iter()
                .map(|v| format!("`{v}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The longest `dns.propagation_delay` accepted.
const MAX_PROPAGATION_DELAY: Duration = Duration::from_secs(600);

fn invalid(
    setting: impl Into<String>,
    found: impl Into<String>,
    expected: &str,
    fix: &str,
) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.into(),
        found: found.into(),
        expected: expected.into(),
        fix: fix.into(),
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| crate::bounds::parse(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// The configuration file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// State directory.
    pub state_dir: Option<PathBuf>,
    /// `[acme]`.
    #[serde(default)]
    pub acme: AcmeFile,
    /// `[route53]`.
    #[serde(default)]
    pub route53: Route53File,
    /// `[dns]`.
    #[serde(default)]
    pub dns: DnsFile,
    /// `[trust]`.
    #[serde(default)]
    pub trust: TrustFile,
    /// `[[certificate]]`.
    #[serde(default, rename = "certificate")]
    pub certificates: Vec<CertificateFile>,
    /// `[renew]`.
    #[serde(default)]
    pub renew: RenewFile,
    /// `[state]`: remote state (`state_dir = "s3://…"`).
    #[serde(default)]
    pub state: StateFile,
}

/// `[state]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    /// SSE-KMS key for the objects (default SSE-S3).
    pub kms_key_id: Option<String>,
    /// Endpoint override (an emulator).
    pub endpoint_url: Option<String>,
    /// The bucket's region (default us-east-1).
    pub region: Option<String>,
    /// Attempts per S3 request.
    pub max_attempts: Option<u32>,
    /// How long a lease lasts between extensions (default 5m).
    #[serde(default, deserialize_with = "de_duration")]
    pub lease_ttl: Option<Duration>,
}

/// Remote state: where, and how long a lease lasts.
#[derive(Debug, Clone)]
pub struct RemoteState {
    /// The bucket, prefix and connection.
    pub location: crate::store::s3::S3Location,
    /// `state.lease_ttl`.
    pub lease_ttl: Duration,
}

/// `[renew]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewFile {
    /// Longest random wait before working when not run from a terminal (default 5m).
    #[serde(default, deserialize_with = "de_duration")]
    pub jitter: Option<Duration>,
    /// Lifetime assumed when only the deployed certificate's expiry is known (default 90d).
    #[serde(default, deserialize_with = "de_duration")]
    pub assumed_lifetime: Option<Duration>,
    /// Ask the CA's renewal information (ARI) when it offers it (default true).
    pub ari: Option<bool>,
    /// Command (argv list) run after each renewal attempt that did something.
    #[serde(default)]
    pub notify_command: Vec<String>,
    /// Variables of brokercert's environment passed on to `notify_command` (besides PATH,
    /// HOME, LANG and the like); nothing else of it is.
    #[serde(default)]
    pub notify_pass_env: Vec<String>,
    /// URL a JSON summary is POSTed to after each renewal attempt that did something. It
    /// usually carries a token (Slack, Teams), so it is a secret: inline only in a file
    /// that only its owner can read; better from `notify_webhook_env` or `_file`.
    pub notify_webhook: Option<Secret>,
    /// Environment variable holding the webhook URL.
    pub notify_webhook_env: Option<String>,
    /// File holding the webhook URL.
    pub notify_webhook_file: Option<PathBuf>,
    /// Test only: allow an `http://` webhook (the default requires https).
    pub notify_webhook_allow_http: Option<bool>,
    /// Also notify on success (default true; failures are always notified).
    pub notify_success: Option<bool>,
    /// How many certificates one run renews at the same time (default 50, at most 100).
    pub concurrency: Option<usize>,
}

/// Renewal settings, resolved.
#[derive(Debug, Clone)]
pub struct RenewSettings {
    /// Longest random wait before working (non-interactive runs).
    pub jitter: Duration,
    /// Lifetime assumed when only the expiry is known.
    pub assumed_lifetime: Duration,
    /// Use ARI.
    pub ari: bool,
    /// Notification command.
    pub notify_command: Vec<String>,
    /// Variables passed on to the notification command.
    pub notify_pass_env: Vec<String>,
    /// Notification webhook: where its URL comes from (read when a notification is sent).
    pub notify_webhook: Option<WebhookSettings>,
    /// Notify on success too.
    pub notify_success: bool,
    /// Certificates renewed at the same time (at least 1).
    pub concurrency: usize,
}

/// Where the notification webhook's URL (a secret: it usually carries a token) comes from.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Environment variable holding the URL.
    pub env: Option<String>,
    /// File holding the URL.
    pub file: Option<PathBuf>,
    /// The URL written inline in the (owner-only) configuration file.
    pub inline: Option<Secret>,
    /// Test only: accept `http://`.
    pub allow_http: bool,
}

impl WebhookSettings {
    /// The URL, read from its source and checked to be https (unless allowed otherwise).
    /// Errors never contain the URL.
    pub fn url(&self) -> Result<Secret, String> {
        let url = crate::secret::load_or_inline(
            "notification webhook URL",
            self.env.as_deref(),
            self.file.as_deref(),
            self.inline.as_ref(),
            "renew.notify_webhook",
        )?;
        check_webhook_scheme(url.expose(), self.allow_http)?;
        Ok(url)
    }
}

/// The webhook must be https (its URL and body are secrets in transit), unless the
/// test-only `renew.notify_webhook_allow_http` says otherwise. The message leaves the URL
/// out: it usually carries a token.
fn check_webhook_scheme(url: &str, allow_http: bool) -> Result<(), String> {
    let url = url.trim();
    if url.starts_with("https://") || (allow_http && url.starts_with("http://")) {
        return Ok(());
    }
    Err(
        "the notification webhook URL (setting `renew.notify_webhook`) does not start with \
         `https://`; brokercert sends notifications only over https, since the URL usually \
         carries a token. Give the https URL your chat service shows (the URL itself is not \
         printed here)"
            .into(),
    )
}

/// `[acme]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeFile {
    /// `letsencrypt`, `letsencrypt-staging` or a directory URL.
    pub directory: Option<String>,
    /// Contact e-mail.
    pub email: Option<String>,
    /// Agree to the CA's terms of service when creating the account.
    pub agree_tos: Option<bool>,
    /// Test only: extra root certificates (PEM files) trusted for the CA's own HTTPS.
    #[serde(default)]
    pub https_roots: Vec<PathBuf>,
    /// External Account Binding key id.
    pub eab_kid: Option<String>,
    /// Environment variable holding the EAB HMAC key (base64url).
    pub eab_hmac_env: Option<String>,
    /// File holding the EAB HMAC key (base64url).
    pub eab_hmac_file: Option<PathBuf>,
    /// The EAB HMAC key inline (only from a file of mode 0600).
    pub eab_hmac: Option<Secret>,
    /// Prefer the alternate chain whose top certificate is issued by this CN.
    pub preferred_chain: Option<String>,
    /// Certificate profile to order (the CA's directory lists them in `meta.profiles`;
    /// Let's Encrypt: `classic`, `tlsserver`, `shortlived`). Unset = the CA's default.
    pub profile: Option<String>,
    /// How long to wait for validation and issuance.
    #[serde(default, deserialize_with = "de_duration")]
    pub order_timeout: Option<Duration>,
}

/// `[route53]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route53File {
    /// Endpoint override (an emulator).
    pub endpoint_url: Option<String>,
    /// AWS profile.
    pub profile: Option<String>,
    /// Signing region.
    pub region: Option<String>,
    /// How long to wait for INSYNC.
    #[serde(default, deserialize_with = "de_duration")]
    pub change_timeout: Option<Duration>,
    /// Route 53 API requests per second, for the whole run (default 5, the account limit).
    pub max_requests_per_second: Option<f64>,
    /// How long a change waits for other certificates' changes to the same zone, so
    /// they share one batch (default 50ms; only when several certificates renew at once).
    #[serde(default, deserialize_with = "de_duration")]
    pub batch_window: Option<Duration>,
    /// Attempts per Route 53 API call (standard retry mode), 1–20.
    pub max_attempts: Option<u32>,
    /// `auto`, `api` or `dns`: how the records at a name are read.
    pub read_records: Option<String>,
}

/// `[dns]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsFile {
    /// Ask these nameservers (`host:port`) instead of the zone's own.
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// Recursive resolver (`host:port`) for finding nameservers; default: the system's.
    pub resolver: Option<String>,
    /// How long to wait until every nameserver serves the TXT values.
    #[serde(default, deserialize_with = "de_duration")]
    pub propagation_timeout: Option<Duration>,
    /// `auto`, `authoritative`, `resolver` or `insync`.
    pub propagation: Option<String>,
    /// A fixed wait after the propagation check, before the CA is asked to validate.
    #[serde(default, deserialize_with = "de_duration")]
    pub propagation_delay: Option<Duration>,
}

/// `[trust]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustFile {
    /// Extra trust anchors (PEM files) for finding the root of an issued chain.
    #[serde(default)]
    pub extra_roots: Vec<PathBuf>,
    /// Also search the operating system's roots (default true).
    pub system_roots: Option<bool>,
}

/// `[[certificate]]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    /// Lineage name (directory name under `live/`).
    pub name: Option<String>,
    /// Names the certificate covers (first = the broker's custom domain).
    #[serde(default)]
    pub domains: Vec<String>,
    /// The deployment's connection address the first domain should be a CNAME to.
    pub cname_target: Option<String>,
    /// TTL of that CNAME (default 300).
    pub cname_ttl: Option<u32>,
    /// Hosted zone id to use instead of discovery.
    pub hosted_zone_id: Option<String>,
    /// Key type (default rsa2048).
    pub key_type: Option<String>,
    /// Keep the key across renewals (default false: a new key for every certificate).
    pub reuse_key: Option<bool>,
    /// `[[certificate.deploy]]`: where to install it.
    #[serde(default)]
    pub deploy: Vec<DeployFile>,
    /// `[certificate.verify]`: how to prove it works over MQTT.
    pub verify: Option<VerifyFile>,
}

/// `[[certificate.deploy]]` as written; `type` selects the target.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DeployFile {
    /// EMQX Cloud's Platform API.
    EmqxCloud(EmqxCloudFile),
    /// PEM files plus a reload command.
    Files(FilesFile),
}

/// `type = "emqx-cloud"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmqxCloudFile {
    /// Deployment ID (like `ge6a1a75`).
    pub deployment_id: String,
    /// API base URL.
    pub base_url: Option<String>,
    /// Variable holding the API key (default EMQX_CLOUD_API_KEY).
    pub api_key_env: Option<String>,
    /// File holding the API key.
    pub api_key_file: Option<PathBuf>,
    /// The API key inline (only from a file of mode 0600).
    pub api_key: Option<Secret>,
    /// Variable holding the API secret (default EMQX_CLOUD_API_SECRET).
    pub api_secret_env: Option<String>,
    /// File holding the API secret.
    pub api_secret_file: Option<PathBuf>,
    /// The API secret inline (only from a file of mode 0600).
    pub api_secret: Option<Secret>,
    /// `one-way` (default) or `two-way`.
    pub tls: Option<String>,
    /// Client CA certificate (PEM) for two-way TLS.
    pub client_ca: Option<PathBuf>,
    /// Extra roots trusted for the API's HTTPS (test only).
    #[serde(default)]
    pub api_roots: Vec<PathBuf>,
    /// First poll delay after a write (default 5s).
    #[serde(default, deserialize_with = "de_duration")]
    pub poll_interval: Option<Duration>,
    /// Give up waiting for `running` (default 30m).
    #[serde(default, deserialize_with = "de_duration")]
    pub poll_timeout: Option<Duration>,
    /// Give up on one API request after this long (default 60s); a write that times out is
    /// never repeated blindly: the state is re-read first.
    #[serde(default, deserialize_with = "de_duration")]
    pub request_timeout: Option<Duration>,
    /// Refuse to upload with fewer days left (default 60, the guide's import window).
    pub min_days_left: Option<i64>,
    /// The deployment's type (`dedicated`, `dedicatedFlex`, `byoc`, `serverless`), when
    /// known: `serverless` is refused before any request. Unset = not asked (reading it
    /// needs the "Deployment Management" scope).
    pub deployment_type: Option<String>,
}

/// `type = "files"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesFile {
    /// Leaf only.
    pub cert: Option<PathBuf>,
    /// Intermediates.
    pub chain: Option<PathBuf>,
    /// Leaf + intermediates.
    pub fullchain: Option<PathBuf>,
    /// Private key.
    pub key: Option<PathBuf>,
    /// Trust anchor.
    pub root: Option<PathBuf>,
    /// Where to copy the client CA.
    pub client_ca: Option<PathBuf>,
    /// The client CA to copy there.
    pub client_ca_source: Option<PathBuf>,
    /// Owner.
    pub owner: Option<String>,
    /// Group.
    pub group: Option<String>,
    /// Mode of certificate files, octal text (default "0644").
    pub mode: Option<String>,
    /// Mode of the key (default "0600").
    pub key_mode: Option<String>,
    /// Reload command as an argv list, e.g. ["systemctl", "reload", "mosquitto"].
    #[serde(default)]
    pub reload: Vec<String>,
    /// Variables of brokercert's environment passed on to `reload` (besides PATH, HOME,
    /// LANG and the like); nothing else of it is.
    #[serde(default)]
    pub reload_pass_env: Vec<String>,
    /// Reload timeout (default 60s).
    #[serde(default, deserialize_with = "de_duration")]
    pub reload_timeout: Option<Duration>,
}

/// `[certificate.verify]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyFile {
    /// Skip verification.
    pub skip: Option<bool>,
    /// Host name to connect to and verify (default: the first domain).
    pub host: Option<String>,
    /// Connect to this address instead of resolving the host (like curl --resolve).
    pub connect: Option<String>,
    /// mqtts port (default 8883).
    pub mqtts_port: Option<u16>,
    /// wss port (default 8084).
    pub wss_port: Option<u16>,
    /// wss path (default /mqtt).
    pub wss_path: Option<String>,
    /// Transports to test (default ["mqtts", "wss"]).
    pub transports: Option<Vec<String>>,
    /// CA file clients use (default: the stored root.pem).
    pub ca_file: Option<PathBuf>,
    /// MQTT user name.
    pub username: Option<String>,
    /// Variable holding the MQTT password.
    pub password_env: Option<String>,
    /// File holding the MQTT password.
    pub password_file: Option<PathBuf>,
    /// Client certificate for two-way TLS.
    pub client_cert: Option<PathBuf>,
    /// Its key.
    pub client_key: Option<PathBuf>,
    /// Per-step timeout (default 10s).
    #[serde(default, deserialize_with = "de_duration")]
    pub timeout: Option<Duration>,
    /// After a deploy: how long to keep probing while the broker still serves the previous
    /// certificate (default 15s; a broker that re-reads its files on a timer, like
    /// self-hosted EMQX every 120 s, needs longer).
    #[serde(default, deserialize_with = "de_duration")]
    pub settle_timeout: Option<Duration>,
    /// For two-way TLS: where to check that a client without a certificate is refused
    /// (default: every transport; a Mosquitto broker can refuse only on mqtts).
    pub anonymous_check: Option<Vec<String>>,
}

/// Command-line or environment overrides (all optional).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--directory`.
    pub directory: Option<String>,
    /// `--email`.
    pub email: Option<String>,
    /// `--agree-tos`.
    pub agree_tos: bool,
    /// `--acme-root` (repeatable).
    pub https_roots: Vec<PathBuf>,
    /// `--eab-kid`.
    pub eab_kid: Option<String>,
    /// `--preferred-chain`.
    pub preferred_chain: Option<String>,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--route53-endpoint`.
    pub route53_endpoint: Option<String>,
    /// `--nameserver` (repeatable).
    pub nameservers: Vec<String>,
    /// `--propagation-timeout`.
    pub propagation_timeout: Option<Duration>,
    /// `--trust-root` (repeatable).
    pub extra_roots: Vec<PathBuf>,
    /// `--name` selects or names the certificate.
    pub name: Option<String>,
    /// `--domain` (repeatable): defines a certificate without a file.
    pub domains: Vec<String>,
    /// `--cname-target`.
    pub cname_target: Option<String>,
    /// `--hosted-zone-id`.
    pub hosted_zone_id: Option<String>,
    /// `--key-type`.
    pub key_type: Option<String>,
    /// `--reuse-key`.
    pub reuse_key: bool,
    /// `AWS_PROFILE`.
    pub route53_profile: Option<String>,
}

impl Overrides {
    /// Fills every setting a flag left unset from its environment variable (flags >
    /// environment > file > defaults). `get` reads a variable; empty values count as unset.
    pub fn with_env(mut self, get: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        fn fill(slot: &mut Option<String>, v: Option<String>) {
            if slot.is_none() {
                *slot = v;
            }
        }
        if self.state_dir.is_none() {
            self.state_dir = var("BROKERCERT_STATE_DIR").map(PathBuf::from);
        }
        fill(&mut self.directory, var("BROKERCERT_DIRECTORY"));
        fill(&mut self.email, var("BROKERCERT_EMAIL"));
        fill(&mut self.eab_kid, var("BROKERCERT_EAB_KID"));
        fill(&mut self.profile, var("BROKERCERT_PROFILE"));
        fill(&mut self.route53_endpoint, var("AWS_ENDPOINT_URL_ROUTE_53"));
        fill(&mut self.route53_profile, var("AWS_PROFILE"));
        // AWS_REGION is deliberately not read: Route 53 is global and signs in us-east-1,
        // and a machine-wide AWS_REGION for other services must not change that.
        self
    }
}

/// ACME settings, validated.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// Directory URL.
    pub directory: String,
    /// Contact e-mail.
    pub email: Option<String>,
    /// Terms agreed.
    pub agree_tos: bool,
    /// Extra roots for the CA's HTTPS.
    pub https_roots: Vec<PathBuf>,
    /// EAB key id and where its HMAC comes from.
    pub eab: Option<EabSettings>,
    /// Preferred chain issuer CN.
    pub preferred_chain: Option<String>,
    /// Certificate profile to order (None = the CA's default).
    pub profile: Option<String>,
    /// Validation + issuance timeout.
    pub order_timeout: Duration,
    /// What to do with an account in `BROKERCERT_ACME_ACCOUNT` made on another directory:
    /// refuse (always, except in a dry run that switched to staging, which uses its own
    /// staging account instead).
    pub foreign_env_account: ForeignEnvAccount,
}

/// What to do with an account in `BROKERCERT_ACME_ACCOUNT` whose directory is not the
/// configured one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForeignEnvAccount {
    /// Stop with an error naming both directories (the default).
    #[default]
    Refuse,
    /// Leave it unused and load or create an account for the configured directory: for a
    /// dry run that switched a production configuration to staging.
    Skip,
}

/// External Account Binding: key id and the source of the HMAC (never the HMAC inline).
#[derive(Debug, Clone)]
pub struct EabSettings {
    /// Key id.
    pub kid: String,
    /// Environment variable with the HMAC.
    pub hmac_env: Option<String>,
    /// File with the HMAC.
    pub hmac_file: Option<PathBuf>,
    /// The HMAC written inline in the (owner-only) configuration file.
    pub hmac_inline: Option<Secret>,
}

/// DNS settings, validated.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// Nameservers replacing discovery.
    pub nameservers: Vec<SocketAddr>,
    /// Recursive resolver for discovery.
    pub resolver: Option<SocketAddr>,
    /// Propagation timeout.
    pub propagation_timeout: Duration,
    /// `dns.propagation` and `dns.propagation_delay`.
    pub strategy: crate::dns::strategy::Strategy,
    /// Route 53 endpoint override.
    pub route53_endpoint: Option<String>,
    /// AWS profile.
    pub route53_profile: Option<String>,
    /// Signing region.
    pub route53_region: Option<String>,
    /// INSYNC timeout.
    pub change_timeout: Duration,
    /// Route 53 requests per second (≤ 0: unlimited).
    pub route53_requests_per_second: f64,
    /// Batching window for concurrent changes to one zone.
    pub route53_batch_window: Duration,
    /// Attempts per Route 53 API call (`None`: the adapter's default).
    pub route53_max_attempts: Option<u32>,
    /// `route53.read_records`.
    pub route53_read_records: crate::dns::route53::ReadRecords,
}

/// One certificate to manage, validated.
#[derive(Debug, Clone)]
pub struct CertificateSpec {
    /// Lineage name.
    pub name: String,
    /// Names, first = primary.
    pub domains: Vec<DomainName>,
    /// CNAME target for the primary name.
    pub cname_target: Option<DomainName>,
    /// CNAME TTL.
    pub cname_ttl: u32,
    /// Explicit hosted zone.
    pub hosted_zone_id: Option<String>,
    /// Key type.
    pub key_type: KeyType,
    /// Sign each renewal's CSR with the stored key (when it is of `key_type`).
    pub reuse_key: bool,
    /// Deploy targets (relative paths already resolved).
    pub deploy: Vec<DeployFile>,
    /// Verification settings (relative paths already resolved).
    pub verify: Option<VerifyFile>,
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// State directory (for remote state: its local working copy).
    pub state_dir: PathBuf,
    /// `state_dir = "s3://…"`: the remote state the working copy mirrors.
    pub state_remote: Option<RemoteState>,
    /// ACME.
    pub acme: AcmeSettings,
    /// DNS.
    pub dns: DnsSettings,
    /// Extra trust anchors.
    pub extra_roots: Vec<PathBuf>,
    /// Use the system's roots as anchors too.
    pub system_roots: bool,
    /// Certificates.
    pub certificates: Vec<CertificateSpec>,
    /// `[renew]`.
    pub renew: RenewSettings,
}

/// The webhook's source, if one is configured; an inline URL is checked here already.
fn webhook_settings(r: &RenewFile) -> Result<Option<WebhookSettings>, ConfigError> {
    if r.notify_webhook.is_none()
        && r.notify_webhook_env.is_none()
        && r.notify_webhook_file.is_none()
    {
        return Ok(None);
    }
    let allow_http = r.notify_webhook_allow_http.unwrap_or(false);
    if let Some(inline) = &r.notify_webhook {
        check_webhook_scheme(inline.expose(), allow_http).map_err(|_| {
            invalid(
                "renew.notify_webhook",
                "a URL that is not https (not shown: it usually carries a token)",
                "an `https://` URL",
                "Give the https URL your chat service shows.",
            )
        })?;
    }
    Ok(Some(WebhookSettings {
        env: r.notify_webhook_env.clone(),
        file: r.notify_webhook_file.clone(),
        inline: r.notify_webhook.clone(),
        allow_http,
    }))
}

/// Checks an EMQX Cloud deployment ID: 1 to 64 letters, digits, `-` or `_` (the console
/// shows IDs like `ge6a1a75`). It becomes a path segment of every API URL, so nothing else
/// may pass (a `../../x?q=#` rewrote the path). `Err` says what is expected.
pub fn check_deployment_id(id: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(
            "the deployment's ID as the console shows it under Overview (like `ge6a1a75`: 1 to \
             64 letters, digits, `-` or `_`), not its name or URL"
                .into(),
        )
    }
}

/// The longest certificate name: the longest file brokercert derives from a name is
/// `.NAME.journal.json.tmp-PID-N` (40 characters more), and a file name has 255 bytes.
pub const MAX_NAME_LEN: usize = 200;

/// Expands the shortcuts (`letsencrypt`, `letsencrypt-staging`, and [`cas::SHORTCUTS`]:
/// `zerossl`, `google`, `google-staging`); other values must be https URLs.
pub fn directory_url(value: &str) -> Result<String, ConfigError> {
    match value.trim() {
        "letsencrypt" | "production" => Ok(LETSENCRYPT.into()),
        "letsencrypt-staging" | "staging" => Ok(LETSENCRYPT_STAGING.into()),
        v if let Some((_, url)) = cas::SHORTCUTS.iter().find(|(name, _)| *name == v) => {
            Ok((*url).into())
        }
        v if v.starts_with("https://") => Ok(v.into()),
        v => Err(invalid(
            "acme.directory",
            format!("`{v}`"),
            "`letsencrypt`, `letsencrypt-staging`, `zerossl`, `google`, `google-staging` or an https:// directory URL",
            "Set it in the configuration or with `--directory`.",
        )),
    }
}

fn parse_addr(setting: &str, value: &str, default_port: u16) -> Result<SocketAddr, ConfigError> {
    let v = value.trim();
    v.parse::<SocketAddr>()
        .or_else(|_| v.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, default_port)))
        .map_err(|_| {
            invalid(
                setting,
                format!("`{value}`"),
                "a numeric address like `192.0.2.53`, `192.0.2.53:5353` or `[2001:db8::53]:53`",
                "Fix the value in the configuration or the flag (host names are not resolved here, so that no lookup leaks to an unintended resolver).",
            )
        })
}

/// The state directory, or for `s3://BUCKET/PREFIX` the remote state and its local working
/// copy (`<default state directory>/s3-<bucket>-<hash of the URL>`).
fn state_location(
    file: &FileConfig,
    base: &Path,
    over: &Overrides,
) -> Result<(PathBuf, Option<RemoteState>), ConfigError> {
    let (setting, given) = match (&over.state_dir, &file.state_dir) {
        (Some(p), _) => ("--state-dir", Some(p.clone())),
        (None, Some(p)) => ("state_dir", Some(p.clone())),
        (None, None) => ("state_dir", None),
    };
    let text = given.as_deref().and_then(Path::to_str).unwrap_or_default();
    let Some(parsed) = crate::store::s3::S3Location::parse(text) else {
        let dir = match (&over.state_dir, &file.state_dir) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) => resolve(base, p),
            (None, None) => crate::store::Store::default_root(),
        };
        return Ok((dir, None));
    };
    let mut location = parsed.map_err(|found| {
        invalid(
            setting,
            found,
            "`s3://BUCKET/PREFIX` or a directory",
            "Correct the bucket name or prefix.",
        )
    })?;
    location.kms_key_id = file.state.kms_key_id.clone();
    location.endpoint_url = file.state.endpoint_url.clone().or_else(|| {
        std::env::var("AWS_ENDPOINT_URL_S3")
            .ok()
            .filter(|v| !v.is_empty())
    });
    location.region = file.state.region.clone();
    if let Some(n) = file.state.max_attempts {
        location.max_attempts = n.clamp(1, 20);
    }
    let lease_ttl = file
        .state
        .lease_ttl
        .unwrap_or(crate::renew::lease::DEFAULT_TTL);
    if lease_ttl < Duration::from_secs(10) {
        return Err(invalid(
            "state.lease_ttl",
            humantime::format_duration(lease_ttl).to_string(),
            "at least 10s",
            "Raise it: the lease is extended every third of it while a run works.",
        ));
    }
    use sha2::Digest as _;
    let hash = hex::encode(&sha2::Sha256::digest(location.url().as_bytes())[..4]);
    let local = crate::store::Store::default_root().join(format!("s3-{}-{hash}", location.bucket));
    Ok((
        local,
        Some(RemoteState {
            location,
            lease_ttl,
        }),
    ))
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl Settings {
    /// Reads `path` (if given), applies the environment, then `over` (flags).
    pub fn load(path: Option<&Path>, over: &Overrides) -> Result<Self, ConfigError> {
        let over = over.clone().with_env(|k| std::env::var(k).ok());
        let (file, base) = match path {
            Some(p) => {
                let file = parse_file(p)?;
                let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
                (file, base)
            }
            None => (FileConfig::default(), PathBuf::from(".")),
        };
        let settings = Self::from_file(file, &base, &over)?;
        // What can never work fails here, before any command does anything.
        checked::check(&settings)?;
        Ok(settings)
    }

    /// Validates a parsed file plus overrides; relative paths are taken from `base`.
    pub fn from_file(file: FileConfig, base: &Path, over: &Overrides) -> Result<Self, ConfigError> {
        let directory = directory_url(
            over.directory
                .as_deref()
                .or(file.acme.directory.as_deref())
                .unwrap_or("letsencrypt"),
        )?;
        let eab_kid = over.eab_kid.clone().or(file.acme.eab_kid.clone());
        if eab_kid.is_none()
            && let Some((ca, how)) = cas::eab_required(&directory)
        {
            return Err(invalid(
                "acme.eab_kid",
                format!("none, with `acme.directory` {directory} ({ca})"),
                &format!("an External Account Binding key id: {ca} requires one for every account"),
                &format!(
                    "To get one, {how}. Then set `eab_kid` in `[acme]` (or `--eab-kid` / BROKERCERT_EAB_KID) and the HMAC key in BROKERCERT_EAB_HMAC or `eab_hmac_file`. Nothing was sent to the CA."
                ),
            ));
        }
        let eab = eab_kid.map(|kid| EabSettings {
            kid,
            hmac_env: Some(
                file.acme
                    .eab_hmac_env
                    .clone()
                    .unwrap_or_else(|| "BROKERCERT_EAB_HMAC".into()),
            ),
            hmac_file: file.acme.eab_hmac_file.as_deref().map(|p| resolve(base, p)),
            hmac_inline: file.acme.eab_hmac.clone(),
        });
        let mut https_roots: Vec<PathBuf> = file
            .acme
            .https_roots
            .iter()
            .map(|p| resolve(base, p))
            .collect();
        https_roots.extend(over.https_roots.iter().cloned());
        let acme = AcmeSettings {
            directory,
            email: over.email.clone().or(file.acme.email.clone()),
            agree_tos: over.agree_tos || file.acme.agree_tos.unwrap_or(false),
            https_roots,
            eab,
            preferred_chain: over
                .preferred_chain
                .clone()
                .or(file.acme.preferred_chain.clone()),
            profile: over
                .profile
                .clone()
                .or(file.acme.profile.clone())
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty()),
            order_timeout: file.acme.order_timeout.unwrap_or(Duration::from_secs(300)),
            foreign_env_account: ForeignEnvAccount::Refuse,
        };
        if let Some(e) = &acme.email
            && (!e.contains('@') || e.contains(char::is_whitespace))
        {
            return Err(invalid(
                "acme.email",
                format!("`{e}`"),
                "an e-mail address",
                "Fix it or leave it out.",
            ));
        }

        let ns_values: Vec<String> = if over.nameservers.is_empty() {
            file.dns.nameservers.clone()
        } else {
            over.nameservers.clone()
        };
        let nameservers = ns_values
            .iter()
            .map(|v| parse_addr("dns.nameservers", v, 53))
            .collect::<Result<Vec<_>, _>>()?;
        let resolver = file
            .dns
            .resolver
            .as_deref()
            .map(|v| parse_addr("dns.resolver", v, 53))
            .transpose()?;
        let dns = DnsSettings {
            nameservers,
            resolver,
            propagation_timeout: over
                .propagation_timeout
                .or(file.dns.propagation_timeout)
                .unwrap_or(Duration::from_secs(120)),
            strategy: crate::dns::strategy::Strategy {
                propagation: match file.dns.propagation.as_deref() {
                    None => crate::dns::strategy::Propagation::Auto,
                    Some(v) => crate::dns::strategy::Propagation::parse(v).ok_or_else(|| {
                        invalid(
                            "dns.propagation",
                            format!("`{v}`"),
                            crate::dns::strategy::Propagation::NAMES,
                            "Use one of these, or leave it out for `auto`.",
                        )
                    })?,
                },
                delay: match file.dns.propagation_delay {
                    Some(d) if d > MAX_PROPAGATION_DELAY => {
                        return Err(invalid(
                            "dns.propagation_delay",
                            format!("`{}`", humantime::format_duration(d)),
                            "at most `10m`",
                            "Lower it (Route 53 reports INSYNC once every one of its \
                             nameservers has the change; a short delay is plenty).",
                        ));
                    }
                    d => d.unwrap_or_default(),
                },
            },
            route53_endpoint: over
                .route53_endpoint
                .clone()
                .or(file.route53.endpoint_url.clone()),
            route53_profile: over
                .route53_profile
                .clone()
                .or(file.route53.profile.clone()),
            route53_region: file.route53.region.clone(),
            change_timeout: file
                .route53
                .change_timeout
                .unwrap_or(Duration::from_secs(300)),
            route53_requests_per_second: file.route53.max_requests_per_second.unwrap_or(5.0),
            route53_batch_window: match file.route53.batch_window {
                Some(w) if w < crate::bounds::MIN_BATCH_WINDOW => Err(w),
                w => Ok(w.unwrap_or(Duration::from_millis(50))),
            }
            .map_err(|w| {
                invalid(
                    "route53.batch_window",
                    format!("`{}`", humantime::format_duration(w)),
                    "at least `1ms` (a shorter window would busy-loop)",
                    "Raise it in the configuration (the default is `50ms`).",
                )
            })?,
            route53_max_attempts: match file.route53.max_attempts {
                Some(n) if !(1..=20).contains(&n) => {
                    return Err(invalid(
                        "route53.max_attempts",
                        n.to_string(),
                        "a whole number from 1 (no retries) to 20",
                        "Leave it out for the default (8)",
                    ));
                }
                other => other,
            },
            route53_read_records: match file.route53.read_records.as_deref() {
                None => crate::dns::route53::ReadRecords::Auto,
                Some(v) => crate::dns::route53::ReadRecords::parse(v).ok_or_else(|| {
                    invalid(
                        "route53.read_records",
                        format!("`{v}`"),
                        "`auto`, `api` or `dns`",
                        "Use one of these, or leave it out for `auto`.",
                    )
                })?,
            },
        };

        let mut extra_roots: Vec<PathBuf> = file
            .trust
            .extra_roots
            .iter()
            .map(|p| resolve(base, p))
            .collect();
        extra_roots.extend(over.extra_roots.iter().cloned());

        let mut cert_files = file.certificates.clone();
        if !over.domains.is_empty() {
            // Flags define the certificate (merged with a same-named one from the file).
            let existing = over.name.as_ref().and_then(|n| {
                cert_files
                    .iter()
                    .find(|c| c.name.as_ref() == Some(n))
                    .cloned()
            });
            let mut c = existing.unwrap_or_default();
            c.name = over.name.clone().or(c.name);
            c.domains = over.domains.clone();
            cert_files = vec![c];
        } else if let Some(sel) = &over.name {
            let configured: Vec<String> = cert_files
                .iter()
                .filter_map(|c| c.name.clone().or_else(|| c.domains.first().cloned()))
                .map(|n| format!("`{n}`"))
                .collect();
            cert_files.retain(|c| {
                c.name.as_ref() == Some(sel) || c.name.is_none() && c.domains.first() == Some(sel)
            });
            if cert_files.is_empty() {
                let fix = if configured.is_empty() {
                    "The configuration defines no certificate: pass `--config FILE` (looked for \
                     in BROKERCERT_CONFIG, ./brokercert.toml and the user's or system's \
                     configuration), or add `--domain` to define the certificate on the command line."
                        .to_string()
                } else {
                    format!(
                        "The configuration names {}; use one of them, or add `--domain` to define the certificate on the command line.",
                        configured.join(", ")
                    )
                };
                return Err(invalid(
                    "--name",
                    format!("`{sel}`"),
                    "the name of a `[[certificate]]` in the configuration",
                    &fix,
                ));
            }
        }
        let has_cert_overrides = over.cname_target.is_some()
            || over.hosted_zone_id.is_some()
            || over.key_type.is_some()
            || over.reuse_key;
        if has_cert_overrides {
            match cert_files.as_mut_slice() {
                [c] => {
                    c.cname_target = over.cname_target.clone().or(c.cname_target.take());
                    c.hosted_zone_id = over.hosted_zone_id.clone().or(c.hosted_zone_id.take());
                    c.key_type = over.key_type.clone().or(c.key_type.take());
                    if over.reuse_key {
                        c.reuse_key = Some(true);
                    }
                }
                [] => {
                    return Err(invalid(
                        "--domain",
                        "no certificate",
                        "a certificate for `--cname-target`, `--hosted-zone-id`, `--key-type` or `--reuse-key` to apply to",
                        "Add `--domain NAME` or a `[[certificate]]` section.",
                    ));
                }
                _ => {
                    return Err(invalid(
                        "--name",
                        format!("{} certificates in the configuration", cert_files.len()),
                        "one certificate for `--cname-target`, `--hosted-zone-id`, `--key-type` or `--reuse-key` to apply to",
                        "Pick one with `--name NAME`.",
                    ));
                }
            }
        }
        let mut certificates = Vec::new();
        for (i, c) in cert_files.iter().enumerate() {
            let mut spec = validate_certificate(i, c)?;
            resolve_paths(&mut spec, base);
            certificates.push(spec);
        }
        for (i, c) in certificates.iter().enumerate() {
            if certificates[..i].iter().any(|o| o.name == c.name) {
                return Err(invalid(
                    format!("certificate[{i}].name"),
                    format!("`{}` a second time", c.name),
                    "a unique name per certificate",
                    "Rename one of them.",
                ));
            }
        }

        let (state_dir, state_remote) = state_location(&file, base, over)?;
        Ok(Settings {
            state_dir,
            state_remote,
            acme,
            dns,
            extra_roots,
            system_roots: file.trust.system_roots.unwrap_or(true),
            certificates,
            renew: RenewSettings {
                jitter: file.renew.jitter.unwrap_or(Duration::from_secs(300)),
                assumed_lifetime: file
                    .renew
                    .assumed_lifetime
                    .unwrap_or(Duration::from_secs(90 * 86_400)),
                ari: file.renew.ari.unwrap_or(true),
                notify_command: file.renew.notify_command.clone(),
                notify_pass_env: file.renew.notify_pass_env.clone(),
                notify_webhook: webhook_settings(&file.renew)?,
                notify_success: file.renew.notify_success.unwrap_or(true),
                concurrency: file.renew.concurrency.unwrap_or(50).clamp(1, 100),
            },
        })
    }
}

/// Reads and parses a configuration file: unknown keys are refused with the nearest valid
/// key, and a file holding inline secrets must be readable by its owner only.
pub fn parse_file(p: &Path) -> Result<FileConfig, ConfigError> {
    let text = crate::bounded_read::read_text(p, crate::bounded_read::MAX_SMALL_FILE).map_err(
        |source| ConfigError::Read {
            path: p.to_path_buf(),
            source,
        },
    )?;
    let file = parse_text(&text, p)?;
    let mode = || {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .map_err(|source| ConfigError::Read {
                path: p.to_path_buf(),
                source,
            })
    };
    if let Some(key) = file.inline_secret() {
        let mode = mode()?;
        if mode & 0o077 != 0 {
            return Err(ConfigError::ReadableSecrets {
                path: p.to_path_buf(),
                key,
                mode,
            });
        }
    }
    if let Some(key) = file.command_setting() {
        let mode = mode()?;
        if mode & 0o022 != 0 {
            return Err(ConfigError::WritableCommands {
                path: p.to_path_buf(),
                key,
                mode,
            });
        }
    }
    Ok(file)
}

/// Parses configuration text (`p` names it in messages): unknown keys are refused with the
/// nearest valid key. Does not check the file's permissions.
pub fn parse_text(text: &str, p: &Path) -> Result<FileConfig, ConfigError> {
    // The parser quotes the offending line, and a type error names the value: inline
    // secrets are scrubbed from both.
    let parse_err = |e: toml::de::Error| ConfigError::Parse {
        path: p.to_path_buf(),
        message: redact::scrub(e.to_string().trim(), text).replace('\n', " "),
    };
    let table: toml::Table = toml::from_str(text).map_err(parse_err)?;
    keys::check(&table, text).map_err(|u| ConfigError::UnknownKey {
        path: p.to_path_buf(),
        key: u.key,
        line: u.line,
        suggestion: u.suggestion,
        valid: u.valid,
    })?;
    // The configuration is deserialised from the table already parsed, not from the text a
    // second time (a fleet of 1,000 certificate sections: milliseconds of every run). Only
    // when that fails is the text parsed again, for the error that quotes the line.
    match table.try_into() {
        Ok(config) => Ok(config),
        Err(_) => toml::from_str(text).map_err(parse_err),
    }
}

impl FileConfig {
    /// The first setting that names a command brokercert runs (`renew.notify_command`, a
    /// files target's `reload`), if any.
    pub fn command_setting(&self) -> Option<String> {
        if !self.renew.notify_command.is_empty() {
            return Some("renew.notify_command".into());
        }
        for (i, c) in self.certificates.iter().enumerate() {
            for (j, d) in c.deploy.iter().enumerate() {
                if let DeployFile::Files(f) = d
                    && !f.reload.is_empty()
                {
                    return Some(format!("certificate[{i}].deploy[{j}].reload"));
                }
            }
        }
        None
    }

    /// The setting of the first secret written inline, if any.
    pub fn inline_secret(&self) -> Option<String> {
        if self.acme.eab_hmac.is_some() {
            return Some("acme.eab_hmac".into());
        }
        if self.renew.notify_webhook.is_some() {
            return Some("renew.notify_webhook".into());
        }
        for (i, c) in self.certificates.iter().enumerate() {
            for (j, d) in c.deploy.iter().enumerate() {
                if let DeployFile::EmqxCloud(e) = d {
                    if e.api_key.is_some() {
                        return Some(format!("certificate[{i}].deploy[{j}].api_key"));
                    }
                    if e.api_secret.is_some() {
                        return Some(format!("certificate[{i}].deploy[{j}].api_secret"));
                    }
                }
            }
        }
        None
    }
}

fn resolve_paths(spec: &mut CertificateSpec, base: &Path) {
    let fix = |p: &mut Option<PathBuf>| {
        if let Some(x) = p.as_mut() {
            *x = resolve(base, x);
        }
    };
    for d in &mut spec.deploy {
        match d {
            DeployFile::EmqxCloud(e) => {
                fix(&mut e.api_key_file);
                fix(&mut e.api_secret_file);
                fix(&mut e.client_ca);
                for r in &mut e.api_roots {
                    *r = resolve(base, r);
                }
            }
            DeployFile::Files(f) => {
                for p in [
                    &mut f.cert,
                    &mut f.chain,
                    &mut f.fullchain,
                    &mut f.key,
                    &mut f.root,
                    &mut f.client_ca,
                    &mut f.client_ca_source,
                ] {
                    fix(p);
                }
            }
        }
    }
    if let Some(v) = spec.verify.as_mut() {
        for p in [
            &mut v.ca_file,
            &mut v.password_file,
            &mut v.client_cert,
            &mut v.client_key,
        ] {
            fix(p);
        }
    }
}

fn validate_certificate(i: usize, c: &CertificateFile) -> Result<CertificateSpec, ConfigError> {
    let at = |field: &str| format!("certificate[{i}].{field}");
    if c.domains.is_empty() {
        return Err(invalid(
            at("domains"),
            "no names",
            "at least one domain name, e.g. `domains = [\"mqtt.example.com\"]`",
            "Add it to the `[[certificate]]` section or pass `--domain NAME`.",
        ));
    }
    let mut domains = Vec::new();
    for d in &c.domains {
        let n = DomainName::parse(d).map_err(|e| {
            invalid(
                at("domains"),
                format!("`{d}`"),
                "fully qualified domain names",
                &format!("{e}."),
            )
        })?;
        if !domains.contains(&n) {
            domains.push(n);
        }
    }
    let name = c
        .name
        .clone()
        .unwrap_or_else(|| domains[0].base().to_string());
    if name.is_empty()
        || name.starts_with('.')
        || name.starts_with('-')
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
    {
        return Err(invalid(
            at("name"),
            format!("`{name}`"),
            "letters, digits, `.`, `_` and `-`, not starting with `.` or `-` (it becomes a \
             directory name and a command-line argument)",
            "Choose another name.",
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(
            at("name"),
            format!("a name of {} characters", name.len()),
            &format!(
                "at most {MAX_NAME_LEN} characters, so that every file brokercert derives from \
                 it (such as `.NAME.journal.json.tmp-PID-N`) fits the 255-byte limit on a file name"
            ),
            if c.name.is_none() {
                "The name defaults to the first domain; set a shorter `name` for this certificate."
            } else {
                "Choose a shorter name."
            },
        ));
    }
    let cname_target = match &c.cname_target {
        Some(t) => {
            let t = DomainName::parse(t).map_err(|e| {
                invalid(
                    at("cname_target"),
                    format!("`{t}`"),
                    "the deployment's connection address (a host name)",
                    &format!("{e}."),
                )
            })?;
            if domains[0].is_wildcard() {
                return Err(invalid(
                    at("cname_target"),
                    format!("a CNAME for the wildcard `{}`", domains[0]),
                    "the first domain to be a plain host name",
                    "Put the broker's host name first in `domains`.",
                ));
            }
            if t == domains[0] {
                return Err(invalid(
                    at("cname_target"),
                    format!("`{t}`, the domain itself"),
                    "the deployment's own address",
                    "Copy the connection address from the EMQX Cloud console.",
                ));
            }
            Some(t)
        }
        None => None,
    };
    let key_type = match &c.key_type {
        Some(k) => k
            .parse()
            .map_err(|e: <KeyType as std::str::FromStr>::Err| {
                invalid(
                    at("key_type"),
                    format!("`{k}`"),
                    "a key type",
                    &e.to_string(),
                )
            })?,
        None => KeyType::default(),
    };
    for (j, d) in c.deploy.iter().enumerate() {
        if let DeployFile::EmqxCloud(e) = d {
            check_deployment_id(&e.deployment_id).map_err(|expected| {
                invalid(
                    at(&format!("deploy[{j}].deployment_id")),
                    format!("{:?}", e.deployment_id),
                    &expected,
                    "Copy the ID from the deployment's Overview page in the EMQX Cloud console.",
                )
            })?;
            if let Some(p) = e.poll_interval
                && p < crate::bounds::MIN_POLL_INTERVAL
            {
                return Err(invalid(
                    at(&format!("deploy[{j}].poll_interval")),
                    format!("`{}`", humantime::format_duration(p)),
                    "at least `10ms` (a shorter interval would busy-loop)",
                    "Raise it (the default is `5s`).",
                ));
            }
        }
    }
    Ok(CertificateSpec {
        name,
        domains,
        cname_target,
        cname_ttl: c.cname_ttl.unwrap_or(300),
        hosted_zone_id: c.hosted_zone_id.clone(),
        key_type,
        reuse_key: c.reuse_key.unwrap_or(false),
        deploy: c.deploy.clone(),
        verify: c.verify.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, over: &Overrides) -> Result<Settings, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "t.toml".into(),
            message: e.to_string(),
        })?;
        Settings::from_file(file, Path::new("/etc/brokercert"), over)
    }

    #[test]
    fn full_file_parses_with_defaults() {
        let s = load(
            r#"
            state_dir = "state"
            [acme]
            directory = "letsencrypt-staging"
            email = "ops@example.com"
            agree_tos = true
            https_roots = ["pebble.pem"]
            [dns]
            nameservers = ["127.0.0.1:5353"]
            propagation_timeout = "30s"
            [[certificate]]
            name = "mqtt-prod"
            domains = ["MQTT.example.com", "*.example.com"]
            cname_target = "abc123.ala.us-east-1.emqxsl.com"
            "#,
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.acme.directory, LETSENCRYPT_STAGING);
        assert_eq!(s.state_dir, Path::new("/etc/brokercert/state"));
        assert_eq!(
            s.acme.https_roots,
            vec![PathBuf::from("/etc/brokercert/pebble.pem")]
        );
        assert_eq!(
            s.dns.nameservers,
            vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(s.dns.propagation_timeout, Duration::from_secs(30));
        let c = &s.certificates[0];
        assert_eq!(c.domains[0].as_str(), "mqtt.example.com");
        assert_eq!(c.key_type, KeyType::Rsa2048);
        assert_eq!(c.cname_ttl, 300);
    }

    #[test]
    fn route53_max_attempts_is_bounded_and_optional() {
        let none = load("", &Overrides::default()).unwrap();
        assert_eq!(none.dns.route53_max_attempts, None);
        let three = load("[route53]\nmax_attempts = 3\n", &Overrides::default()).unwrap();
        assert_eq!(three.dns.route53_max_attempts, Some(3));
        for bad in [0, 21] {
            let err = load(
                &format!("[route53]\nmax_attempts = {bad}\n"),
                &Overrides::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("route53.max_attempts") && err.contains("from 1"),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_valid_ones() {
        let err = load("[acme]\ndirectroy = \"x\"\n", &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("directroy") && err.contains("directory"),
            "{err}"
        );
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_file() {
        let text = "[acme]\nemail='file@example.com'\ndirectory='letsencrypt-staging'\n";
        let env = |k: &str| match k {
            "BROKERCERT_EMAIL" => Some("env@example.com".to_string()),
            "BROKERCERT_DIRECTORY" => Some("letsencrypt".to_string()),
            "BROKERCERT_EAB_KID" => Some(String::new()),
            _ => None,
        };
        let s = load(text, &Overrides::default()).unwrap();
        assert_eq!(s.acme.email.as_deref(), Some("file@example.com"));
        assert_eq!(s.acme.directory, LETSENCRYPT_STAGING);
        let s = load(text, &Overrides::default().with_env(env)).unwrap();
        assert_eq!(s.acme.email.as_deref(), Some("env@example.com"));
        assert_eq!(s.acme.directory, LETSENCRYPT);
        assert!(s.acme.eab.is_none(), "an empty variable is unset");
        let flags = Overrides {
            email: Some("flag@example.com".into()),
            ..Default::default()
        };
        let s = load(text, &flags.with_env(env)).unwrap();
        assert_eq!(s.acme.email.as_deref(), Some("flag@example.com"));
        let s = load("", &Overrides::default()).unwrap();
        assert_eq!(s.acme.email, None);
        assert_eq!(s.acme.directory, LETSENCRYPT);
    }

    #[test]
    fn inline_secrets_need_an_owner_only_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.toml");
        std::fs::write(&p, "[acme]\neab_kid = 'k'\neab_hmac = 'c2VjcmV0'\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = parse_file(&p).unwrap_err().to_string();
        assert!(
            err.contains(&format!("chmod 600 {}", p.display())) && err.contains("acme.eab_hmac"),
            "{err}"
        );
        assert!(!err.contains("c2VjcmV0"), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = parse_file(&p).unwrap();
        assert_eq!(
            file.acme.eab_hmac.as_ref().map(|s| s.expose().to_string()),
            Some("c2VjcmV0".into())
        );
        assert!(!format!("{file:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn flags_define_a_certificate_without_a_file() {
        let over = Overrides {
            domains: vec!["mqtt.example.com".into()],
            cname_target: Some("d.emqxsl.com".into()),
            key_type: Some("ecdsa-p256".into()),
            ..Default::default()
        };
        let s = load("", &over).unwrap();
        assert_eq!(s.certificates.len(), 1);
        assert_eq!(s.certificates[0].name, "mqtt.example.com");
        assert_eq!(s.certificates[0].key_type, KeyType::EcdsaP256);
        assert_eq!(s.acme.directory, LETSENCRYPT);
    }

    #[test]
    fn name_selects_and_flags_override() {
        let text = "[[certificate]]\nname='a'\ndomains=['a.example.com']\n[[certificate]]\nname='b'\ndomains=['b.example.com']\n";
        let over = Overrides {
            name: Some("b".into()),
            key_type: Some("rsa4096".into()),
            ..Default::default()
        };
        let s = load(text, &over).unwrap();
        assert_eq!(s.certificates.len(), 1);
        assert_eq!(s.certificates[0].key_type, KeyType::Rsa4096);
        let over = Overrides {
            name: Some("c".into()),
            ..Default::default()
        };
        let err = load(text, &over).unwrap_err().to_string();
        assert!(err.contains("--name") && err.contains("`c`"), "{err}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = load(
            "[[certificate]]\ndomains=['localhost']\n",
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("certificate[0].domains") && err.contains("localhost"),
            "{err}"
        );
        let err = load(
            "[[certificate]]\ndomains=['a.example.com']\nkey_type='rsa1024'\n",
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("key_type") && err.contains("rsa2048"), "{err}");
        let err = load("[acme]\ndirectory='http://x'\n", &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("acme.directory"), "{err}");
        let err = load(
            "[dns]\nnameservers=['not an address']\n",
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("dns.nameservers"), "{err}");
    }

    #[test]
    fn propagation_strategy_is_read_and_checked() {
        use crate::dns::strategy::Propagation;
        let s = load("", &Overrides::default()).unwrap();
        assert_eq!(s.dns.strategy.propagation, Propagation::Auto);
        assert_eq!(s.dns.strategy.delay, Duration::ZERO);
        let s = load(
            "[dns]\npropagation='insync'\npropagation_delay='10s'\n",
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.dns.strategy.propagation, Propagation::Insync);
        assert_eq!(s.dns.strategy.delay, Duration::from_secs(10));
        let err = load("[dns]\npropagation='fast'\n", &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dns.propagation") && err.contains("`insync`"),
            "{err}"
        );
        let err = load("[dns]\npropagation_delay='1h'\n", &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("dns.propagation_delay"), "{err}");
    }
}
