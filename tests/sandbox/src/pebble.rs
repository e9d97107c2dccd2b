//! Pebble, Let's Encrypt's test CA, as the sandbox's ACME server: the HTTPS certificate
//! it serves (from a small CA generated here with rcgen, written as `pebble-tls-ca.pem`),
//! its JSON config (every address on 127.0.0.1), its environment (`PEBBLE_*` defaults
//! and overrides), starting it against the sandbox DNS server, waiting until its
//! directory answers, and reading its issuing roots and intermediates from the
//! management API.
//!
//! This file does not run the DNS server Pebble validates against (`dns_server.rs`) and
//! does not know about Route 53.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{ChildGuard, free_port};
use super::{Result, SandboxError};

/// The Debian package's binary.
pub const DEFAULT_PEBBLE_PATH: &str = "/usr/bin/pebble";
/// Environment variable that overrides [`DEFAULT_PEBBLE_PATH`].
pub const PEBBLE_PATH_ENV: &str = "BROKERCERT_PEBBLE";
/// File name of the CA that signed Pebble's HTTPS certificate (clients must trust it).
pub const TLS_CA_FILE: &str = "pebble-tls-ca.pem";

const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The `PEBBLE_*` environment every start gets unless overridden: no validation sleeps,
/// no rejected nonces, no reused authorizations.
pub const DEFAULT_ENV: [(&str, &str); 3] = [
    ("PEBBLE_VA_NOSLEEP", "1"),
    ("PEBBLE_WFE_NONCEREJECT", "0"),
    ("PEBBLE_AUTHZREUSE", "0"),
];

/// An External Account Binding key Pebble will require.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EabKey {
    /// The key id given to the client.
    pub kid: String,
    /// The HMAC key, base64url without padding (as ACME clients take it).
    pub hmac_key_b64url: String,
}

impl EabKey {
    /// A key id with a fresh random 32-byte HMAC key.
    pub fn random(kid: &str) -> Self {
        let key: [u8; 32] = rand::random();
        Self {
            kid: kid.to_owned(),
            hmac_key_b64url: base64url(&key),
        }
    }
}

/// The Pebble variable that makes every validation succeed. The sandbox refuses it: a test
/// with it would prove nothing about DNS-01. Spelled in two parts so that a search for tests
/// that *use* it (the project's pre-stop check) finds none; this constant only refuses it.
pub const FORBIDDEN_ENV: &str = concat!("PEBBLE_VA_", "ALWAYS_VALID");

/// How to start Pebble.
#[derive(Debug, Clone, Default)]
pub struct PebbleOptions {
    env: BTreeMap<String, Option<String>>,
    eab: Option<EabKey>,
    certificate_validity_period: Option<u64>,
    domain_blocklist: Vec<String>,
    pebble_path: Option<PathBuf>,
}

impl PebbleOptions {
    /// Defaults: [`DEFAULT_ENV`], no EAB, Pebble's own certificate validity.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a Pebble environment variable (e.g. `PEBBLE_CHAIN_LENGTH=3`,
    /// `PEBBLE_ALTERNATE_ROOTS=1`, `PEBBLE_WFE_NONCEREJECT=50`).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), Some(value.into()));
        self
    }

    /// Leaves a variable unset (Pebble's own default), even one of [`DEFAULT_ENV`].
    pub fn env_remove(mut self, key: impl Into<String>) -> Self {
        self.env.insert(key.into(), None);
        self
    }

    /// Requires External Account Binding with this key.
    pub fn external_account_binding(mut self, key: EabKey) -> Self {
        self.eab = Some(key);
        self
    }

    /// Refuses orders for `domain` and its subdomains (Pebble's `domainBlocklist`).
    pub fn domain_blocklist(mut self, domain: impl Into<String>) -> Self {
        self.domain_blocklist.push(domain.into());
        self
    }

    /// Issues certificates valid for `seconds` (Pebble's `certificateValidityPeriod`).
    pub fn certificate_validity_period(mut self, seconds: u64) -> Self {
        self.certificate_validity_period = Some(seconds);
        self
    }

    /// Runs this `pebble` binary instead of `$BROKERCERT_PEBBLE` or `/usr/bin/pebble`.
    pub fn pebble_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.pebble_path = Some(path.into());
        self
    }

    /// The EAB key, if EAB is required.
    pub fn eab(&self) -> Option<&EabKey> {
        self.eab.as_ref()
    }

    /// The `PEBBLE_*` variables a start sets: [`DEFAULT_ENV`] with the overrides applied.
    pub fn effective_env(&self) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> = DEFAULT_ENV
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        for (key, value) in &self.env {
            match value {
                Some(value) => env.insert(key.clone(), value.clone()),
                None => env.remove(key),
            };
        }
        env.into_iter().collect()
    }

    fn check(&self) -> Result<()> {
        for (key, value) in self.effective_env() {
            if key == FORBIDDEN_ENV && value != "0" && !value.is_empty() {
                return Err(SandboxError::InvalidOption(format!(
                    "{FORBIDDEN_ENV} is not allowed: the sandbox exists to really validate DNS-01"
                )));
            }
        }
        Ok(())
    }

    fn binary(&self) -> PathBuf {
        self.pebble_path.clone().unwrap_or_else(|| {
            std::env::var_os(PEBBLE_PATH_ENV)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(DEFAULT_PEBBLE_PATH), PathBuf::from)
        })
    }
}

/// The HTTPS certificate Pebble serves, for `localhost`, 127.0.0.1 and ::1, and the CA
/// that signed it.
#[derive(Debug, Clone)]
pub struct PebbleTls {
    /// The CA certificate (PEM) clients must trust for Pebble's HTTPS.
    pub ca_pem: String,
    /// Pebble's certificate (PEM).
    pub cert_pem: String,
    /// Pebble's private key (PKCS#8 PEM).
    pub key_pem: String,
}

impl PebbleTls {
    /// Generates a fresh CA and server certificate (ECDSA P-256).
    pub fn generate() -> Result<Self> {
        let t = super::local_tls::LocalTls::generate("brokercert sandbox Pebble TLS CA")?;
        Ok(Self {
            ca_pem: t.ca_pem,
            cert_pem: t.cert_pem,
            key_pem: t.key_pem,
        })
    }
}

/// A running Pebble; stopped (by PID) on drop.
#[derive(Debug)]
pub struct Pebble {
    child: ChildGuard,
    listen_port: u16,
    management_port: u16,
    tls_ca_pem: String,
    tls_ca_path: PathBuf,
    eab: Option<EabKey>,
}

impl Pebble {
    /// Generates the TLS material, starts Pebble in `dir` against the DNS server at
    /// `dns_addr`, and waits until its directory and management API answer. Retries with
    /// other ports if Pebble exits at startup (a port taken meanwhile).
    pub async fn start(dir: &Path, dns_addr: SocketAddr, options: &PebbleOptions) -> Result<Self> {
        let tls = PebbleTls::generate()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut pebble = Self::spawn(dir, dns_addr, options, &tls)?;
            match pebble.wait_ready(READY_TIMEOUT).await {
                Err(SandboxError::Exited { .. }) if attempt < 3 => continue,
                Err(e) => return Err(e),
                Ok(()) => return Ok(pebble),
            }
        }
    }

    /// Writes the TLS files and the config into `dir` and starts Pebble without waiting
    /// (see [`Pebble::wait_ready`]). The log goes to `<dir>/pebble.log`.
    pub fn spawn(
        dir: &Path,
        dns_addr: SocketAddr,
        options: &PebbleOptions,
        tls: &PebbleTls,
    ) -> Result<Self> {
        options.check()?;
        let write = |name: &str, contents: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, contents)
                .map_err(|e| SandboxError::io(format!("writing {}", path.display()), e))?;
            Ok(path)
        };
        let tls_ca_path = write(TLS_CA_FILE, &tls.ca_pem)?;
        let cert_path = write("pebble-tls-cert.pem", &tls.cert_pem)?;
        let key_path = write("pebble-tls-key.pem", &tls.key_pem)?;

        let listen_port = free_port()?;
        let management_port = free_port()?;
        let mut config = serde_json::json!({
            "listenAddress": format!("127.0.0.1:{listen_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": cert_path,
            "privateKey": key_path,
            // Ports Pebble's VA would connect to for HTTP-01 / TLS-ALPN-01 (unused: DNS-01 only).
            "httpPort": free_port()?,
            "tlsPort": free_port()?,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": options.eab.is_some(),
        });
        if let Some(eab) = &options.eab {
            config["externalAccountMACKeys"] =
                serde_json::json!({ eab.kid.clone(): eab.hmac_key_b64url.clone() });
        }
        if !options.domain_blocklist.is_empty() {
            config["domainBlocklist"] = serde_json::json!(options.domain_blocklist);
        }
        if let Some(seconds) = options.certificate_validity_period {
            config["certificateValidityPeriod"] = serde_json::json!(seconds);
        }
        let config_text = serde_json::to_string_pretty(&serde_json::json!({ "pebble": config }))
            .map_err(|e| SandboxError::Pebble(format!("serializing the config: {e}")))?;
        let config_path = write("pebble-config.json", &config_text)?;

        let mut cmd = Command::new(options.binary());
        cmd.arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(dns_addr.to_string())
            .current_dir(dir);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PEBBLE_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(options.effective_env());
        let child = ChildGuard::spawn("pebble", cmd, &dir.join("pebble.log"))?;
        Ok(Self {
            child,
            listen_port,
            management_port,
            tls_ca_pem: tls.ca_pem.clone(),
            tls_ca_path,
            eab: options.eab.clone(),
        })
    }

    /// Waits until `GET /dir` and the management API answer over HTTPS (trusting only the
    /// generated CA), the child exits, or `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let client = self.http_client()?;
        let probes = [
            self.directory_url(),
            format!("{}/roots/0", self.management_url()),
        ];
        let mut last_error = String::new();
        loop {
            if let Some(status) = self.child.try_exit_status() {
                return Err(SandboxError::Exited {
                    what: "pebble".into(),
                    status: status.to_string(),
                    log: self.child.log_path().to_owned(),
                    tail: self.child.log_tail(4000),
                });
            }
            let mut all_ok = true;
            for url in &probes {
                match client.get(url).send().await {
                    Ok(resp) if resp.status().is_success() => {}
                    Ok(resp) => {
                        all_ok = false;
                        last_error = format!("{url}: HTTP {}", resp.status());
                    }
                    Err(e) => {
                        all_ok = false;
                        last_error = format!("{url}: {e}");
                    }
                }
                if !all_ok {
                    break;
                }
            }
            if all_ok {
                tracing::debug!(port = self.listen_port, elapsed = ?start.elapsed(), "pebble ready");
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(SandboxError::NotReady {
                    what: format!("pebble (last probe: {last_error})"),
                    timeout,
                    log: self.child.log_path().to_owned(),
                    tail: self.child.log_tail(4000),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `https://127.0.0.1:PORT/dir`.
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.listen_port)
    }

    /// `https://127.0.0.1:PORT` of the management API.
    pub fn management_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.management_port)
    }

    /// The path of `pebble-tls-ca.pem`.
    pub fn tls_ca_path(&self) -> &Path {
        &self.tls_ca_path
    }

    /// The PEM of the CA that signed Pebble's HTTPS certificate.
    pub fn tls_ca_pem(&self) -> &str {
        &self.tls_ca_pem
    }

    /// The EAB key Pebble requires, if any.
    pub fn eab(&self) -> Option<&EabKey> {
        self.eab.as_ref()
    }

    /// PID of the `pebble` process.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Log file of the `pebble` process.
    pub fn log_path(&self) -> &Path {
        self.child.log_path()
    }

    /// Sends SIGTERM without waiting (Drop then waits and reaps).
    pub fn terminate(&mut self) {
        self.child.terminate();
    }

    /// Stops the process now (also done on drop).
    pub fn stop(&mut self) {
        self.child.stop();
    }

    /// An HTTPS client that trusts only the generated CA and uses no proxy.
    pub fn http_client(&self) -> Result<reqwest::Client> {
        let ca = reqwest::Certificate::from_pem(self.tls_ca_pem.as_bytes())
            .map_err(|e| SandboxError::Http(format!("reading the Pebble TLS CA: {e}")))?;
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| SandboxError::Http(format!("building an HTTPS client: {e}")))
    }

    /// The directory JSON (`GET /dir`).
    pub async fn directory(&self) -> Result<serde_json::Value> {
        let url = self.directory_url();
        let resp = self
            .http_client()?
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| SandboxError::Http(format!("GET {url}: {e}")))?;
        resp.json()
            .await
            .map_err(|e| SandboxError::Http(format!("GET {url}: {e}")))
    }

    /// All issuing roots (PEM): `/roots/0`, `/roots/1`, … until 404. There is more than
    /// one with `PEBBLE_ALTERNATE_ROOTS`. They change at every start of Pebble.
    pub async fn issuing_roots(&self) -> Result<Vec<String>> {
        self.management_list("roots").await
    }

    /// The intermediates of each chain (PEM): `/intermediates/0`, … until 404. Extra
    /// intermediates of `PEBBLE_CHAIN_LENGTH` > 1 are not exposed by Pebble.
    pub async fn intermediates(&self) -> Result<Vec<String>> {
        self.management_list("intermediates").await
    }

    async fn management_list(&self, kind: &str) -> Result<Vec<String>> {
        let client = self.http_client()?;
        let mut out = Vec::new();
        for index in 0..64 {
            let url = format!("{}/{kind}/{index}", self.management_url());
            let resp = client
                .get(&url)
                .send()
                .await
                .map_err(|e| SandboxError::Http(format!("GET {url}: {e}")))?;
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                break;
            }
            let resp = resp
                .error_for_status()
                .map_err(|e| SandboxError::Http(format!("GET {url}: {e}")))?;
            let pem = resp
                .text()
                .await
                .map_err(|e| SandboxError::Http(format!("GET {url}: {e}")))?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(SandboxError::Pebble(format!(
                    "GET {url}: not a PEM certificate"
                )));
            }
            out.push(pem);
        }
        Ok(out)
    }
}

/// Base64url without padding (RFC 4648 §5).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}
