//! A real Mosquitto broker for the sandbox: one `mosquitto -c <conf>` process with a
//! TLS listener (mqtts) and a WebSockets-over-TLS listener (wss, clients use path
//! `/mqtt`), both on 127.0.0.1 ports fixed when the [`Mosquitto`] is made, so a restart
//! with another certificate (see [`Mosquitto::reconfigure`]) keeps the addresses.
//!
//! Mosquitto 2.0.11 facts this file relies on (checked on this machine and in its source):
//! - `listener PORT 127.0.0.1` plus `socket_domain ipv4` binds the websockets listener to
//!   127.0.0.1 only. The global `bind_address` is **not** used: it configures Mosquitto's
//!   *default* listener and so opens an extra plain-MQTT listener on port 1883.
//! - Started as root it drops to user `mosquitto` right after reading the config, before it
//!   reads certificates; `user root` keeps it root (and is ignored when not started as
//!   root), so the files here can stay private (0600 key) in any directory.
//! - `require_certificate true` is honoured on both listeners (also websockets); with
//!   TLS 1.3 a client without a certificate completes its handshake and is then refused
//!   with a `certificate required` alert.
//! - It exits at start when it can't load the certificate or key (e.g. "key values
//!   mismatch"); [`Mosquitto::start`] then returns [`SandboxError::Exited`] with its log.
//!
//! This file knows nothing about EMQX Cloud (see `emqx_cloud.rs`).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha512};

use super::process::{ChildGuard, free_port};
use super::{Result, SandboxError};

/// The Debian package's binary.
pub const DEFAULT_MOSQUITTO_PATH: &str = "/usr/sbin/mosquitto";
/// Environment variable that overrides [`DEFAULT_MOSQUITTO_PATH`].
pub const MOSQUITTO_PATH_ENV: &str = "BROKERCERT_MOSQUITTO";
/// The path MQTT-over-WebSockets clients use (Mosquitto accepts any path).
pub const WSS_PATH: &str = "/mqtt";
/// How long a start may take before [`SandboxError::NotReady`].
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The log file in the broker's directory (appended to across restarts).
pub const LOG_FILE: &str = "mosquitto.log";

/// An MQTT username and password the broker accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttUser {
    /// The username (no `:` and no line breaks).
    pub username: String,
    /// The password.
    pub password: String,
}

impl MqttUser {
    /// A user.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for MqttUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttUser")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What the broker serves: the TLS material and who may log in. `Debug` shows no key.
#[derive(Clone, PartialEq, Eq)]
pub struct MosquittoConfig {
    /// PEM: the leaf followed by the intermediates (Mosquitto's `certfile`).
    pub cert_chain_pem: String,
    /// PEM private key of the leaf (Mosquitto's `keyfile`).
    pub key_pem: String,
    /// PEM client CA: when set, both listeners require a client certificate signed by it
    /// (two-way TLS).
    pub client_ca_pem: Option<String>,
    /// Users allowed to connect; when empty, anonymous clients are allowed.
    pub users: Vec<MqttUser>,
}

impl MosquittoConfig {
    /// One-way TLS with this certificate chain and key, anonymous clients allowed.
    pub fn one_way(cert_chain_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        Self {
            cert_chain_pem: cert_chain_pem.into(),
            key_pem: key_pem.into(),
            client_ca_pem: None,
            users: Vec::new(),
        }
    }

    /// Requires client certificates signed by this CA (two-way TLS).
    pub fn with_client_ca(mut self, client_ca_pem: impl Into<String>) -> Self {
        self.client_ca_pem = Some(client_ca_pem.into());
        self
    }

    /// Adds a user (anonymous clients are then refused).
    pub fn with_user(mut self, user: MqttUser) -> Self {
        self.users.push(user);
        self
    }
}

impl fmt::Debug for MosquittoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MosquittoConfig")
            .field("cert_chain_pem_bytes", &self.cert_chain_pem.len())
            .field("key_pem", &"[elided]")
            .field("two_way", &self.client_ca_pem.is_some())
            .field("users", &self.users)
            .finish()
    }
}

/// A Mosquitto broker on two fixed 127.0.0.1 ports; the process is stopped (by PID) on
/// drop.
#[derive(Debug)]
pub struct Mosquitto {
    dir: PathBuf,
    binary: PathBuf,
    mqtts_port: u16,
    wss_port: u16,
    child: Option<ChildGuard>,
    config: Option<MosquittoConfig>,
    generation: u64,
}

impl Mosquitto {
    /// A broker (not started) whose files go to `dir` (created if missing), on two free
    /// ports chosen now (see [`stable_port`]).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let mqtts_port = stable_port()?;
        let mut wss_port = stable_port()?;
        for _ in 0..8 {
            if wss_port != mqtts_port {
                break;
            }
            wss_port = stable_port()?;
        }
        Self::with_ports(dir, mqtts_port, wss_port)
    }

    /// A broker (not started) on these ports.
    pub fn with_ports(dir: impl Into<PathBuf>, mqtts_port: u16, wss_port: u16) -> Result<Self> {
        if mqtts_port == wss_port {
            return Err(SandboxError::InvalidOption(format!(
                "the mqtts and wss ports must differ (both {mqtts_port})"
            )));
        }
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| SandboxError::io(format!("creating {}", dir.display()), e))?;
        let binary = std::env::var_os(MOSQUITTO_PATH_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_MOSQUITTO_PATH), PathBuf::from);
        Ok(Self {
            dir,
            binary,
            mqtts_port,
            wss_port,
            child: None,
            config: None,
            generation: 0,
        })
    }

    /// Runs this `mosquitto` binary instead of `$BROKERCERT_MOSQUITTO` or the default.
    pub fn set_binary(&mut self, path: impl Into<PathBuf>) {
        self.binary = path.into();
    }

    /// The TLS (mqtts) port.
    pub fn mqtts_port(&self) -> u16 {
        self.mqtts_port
    }

    /// The WebSockets-over-TLS (wss) port.
    pub fn wss_port(&self) -> u16 {
        self.wss_port
    }

    /// `127.0.0.1:<mqtts port>`.
    pub fn mqtts_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.mqtts_port))
    }

    /// `127.0.0.1:<wss port>`.
    pub fn wss_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.wss_port))
    }

    /// `wss://127.0.0.1:<wss port>/mqtt`.
    pub fn wss_url(&self) -> String {
        format!("wss://127.0.0.1:{}{WSS_PATH}", self.wss_port)
    }

    /// The broker's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log file (`log_dest stderr`, appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// The last `max_bytes` of the log.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        super::process::log_tail(&self.log_path(), max_bytes)
    }

    /// PID of the running process.
    pub fn pid(&mut self) -> Option<u32> {
        if self.is_running() {
            self.child.as_ref().map(ChildGuard::pid)
        } else {
            None
        }
    }

    /// The configuration the running broker serves (`None` when stopped or after a
    /// refused start).
    pub fn config(&self) -> Option<&MosquittoConfig> {
        self.config.as_ref()
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(ChildGuard::is_running)
    }

    /// Starts the broker with `config` and waits until both ports accept TCP. Refused if it
    /// already runs (use [`Mosquitto::reconfigure`]).
    pub async fn start(&mut self, config: MosquittoConfig) -> Result<()> {
        if self.is_running() {
            return Err(SandboxError::InvalidOption(
                "mosquitto already runs; use reconfigure".into(),
            ));
        }
        self.launch(config).await
    }

    /// Restarts the broker in place (same ports) with `config` and waits until both ports
    /// accept TCP; starts it if it was stopped. Connected clients are disconnected. When
    /// Mosquitto refuses the new files nothing serves afterwards: restart it with the
    /// previous [`Mosquitto::config`] to roll back.
    pub async fn reconfigure(&mut self, config: MosquittoConfig) -> Result<()> {
        self.stop();
        self.launch(config).await
    }

    /// Stops the process (SIGTERM to its PID, SIGKILL after a grace period). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.stop();
        }
        self.config = None;
    }

    async fn launch(&mut self, config: MosquittoConfig) -> Result<()> {
        self.stop();
        self.generation += 1;
        let conf_path = self.write_files(&config)?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-c").arg(&conf_path).current_dir(&self.dir);
        let log_path = self.log_path();
        let mut child = ChildGuard::spawn("mosquitto", cmd, &log_path)?;
        child.set_stop_grace(Duration::from_millis(1000));
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_exit_status() {
                return Err(SandboxError::Exited {
                    what: "mosquitto".into(),
                    status: status.to_string(),
                    log: log_path.clone(),
                    tail: child.log_tail(3000),
                });
            }
            if accepts(self.mqtts_addr()).await && accepts(self.wss_addr()).await {
                // Both listeners are bound, so both certificates were loaded; the security
                // (password file) setup happens before the listeners.
                if let Some(status) = child.try_exit_status() {
                    return Err(SandboxError::Exited {
                        what: "mosquitto".into(),
                        status: status.to_string(),
                        log: log_path.clone(),
                        tail: child.log_tail(3000),
                    });
                }
                tracing::debug!(
                    pid = child.pid(),
                    mqtts = self.mqtts_port,
                    wss = self.wss_port,
                    elapsed = ?started.elapsed(),
                    "mosquitto ready"
                );
                self.child = Some(child);
                self.config = Some(config);
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                let tail = child.log_tail(3000);
                child.stop();
                return Err(SandboxError::NotReady {
                    what: format!(
                        "mosquitto (ports {} and {})",
                        self.mqtts_port, self.wss_port
                    ),
                    timeout: READY_TIMEOUT,
                    log: log_path.clone(),
                    tail,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Writes `gen-N/{cert,key,client-ca}.pem`, `gen-N/passwd` and `gen-N/mosquitto.conf`;
    /// returns the config's path. Each start gets its own files, so the previous ones stay
    /// intact for a rollback.
    fn write_files(&self, config: &MosquittoConfig) -> Result<PathBuf> {
        let gen_dir = self.dir.join(format!("gen-{}", self.generation));
        std::fs::create_dir_all(&gen_dir)
            .map_err(|e| SandboxError::io(format!("creating {}", gen_dir.display()), e))?;
        let cert = write_file(&gen_dir.join("cert.pem"), &config.cert_chain_pem, 0o644)?;
        let key = write_file(&gen_dir.join("key.pem"), &config.key_pem, 0o600)?;
        let client_ca = match &config.client_ca_pem {
            Some(pem) => Some(write_file(&gen_dir.join("client-ca.pem"), pem, 0o644)?),
            None => None,
        };
        let passwd = if config.users.is_empty() {
            None
        } else {
            let mut text = String::new();
            for user in &config.users {
                text.push_str(&password_line(user)?);
                text.push('\n');
            }
            Some(write_file(&gen_dir.join("passwd"), &text, 0o600)?)
        };
        let conf = config_text(
            self.mqtts_port,
            self.wss_port,
            &cert,
            &key,
            client_ca.as_deref(),
            passwd.as_deref(),
        );
        write_file(&gen_dir.join("mosquitto.conf"), &conf, 0o644)
    }
}

/// The text of `mosquitto.conf`: two TLS listeners on 127.0.0.1, no default listener.
fn config_text(
    mqtts_port: u16,
    wss_port: u16,
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    passwd: Option<&Path>,
) -> String {
    let mut c = String::new();
    c.push_str("# Written by brokercert's sandbox.\n");
    // Stay root when started as root (files need not be readable by user `mosquitto`).
    c.push_str("user root\n");
    c.push_str("log_dest stderr\n");
    c.push_str("log_type error\nlog_type warning\nlog_type notice\nlog_type information\n");
    c.push_str("persistence false\n");
    match passwd {
        Some(p) => {
            c.push_str("allow_anonymous false\n");
            c.push_str(&format!("password_file {}\n", p.display()));
        }
        None => c.push_str("allow_anonymous true\n"),
    }
    let tls = |c: &mut String| {
        c.push_str(&format!("certfile {}\n", cert.display()));
        c.push_str(&format!("keyfile {}\n", key.display()));
        if let Some(ca) = client_ca {
            c.push_str(&format!("cafile {}\n", ca.display()));
            c.push_str("require_certificate true\n");
            c.push_str("use_identity_as_username false\n");
        }
    };
    c.push_str(&format!("\nlistener {mqtts_port} 127.0.0.1\n"));
    c.push_str("socket_domain ipv4\nprotocol mqtt\n");
    tls(&mut c);
    c.push_str(&format!("\nlistener {wss_port} 127.0.0.1\n"));
    c.push_str("socket_domain ipv4\nprotocol websockets\n");
    tls(&mut c);
    c
}

/// One `password_file` line in Mosquitto's `$6$` format: base64 of a 12-byte salt and of
/// SHA-512(password ‖ salt).
fn password_line(user: &MqttUser) -> Result<String> {
    if user.username.is_empty() || user.username.chars().any(|c| c == ':' || c.is_control()) {
        return Err(SandboxError::InvalidOption(format!(
            "MQTT username {:?} is empty or has ':' or control characters",
            user.username
        )));
    }
    let salt: [u8; 12] = rand::random();
    let mut hasher = Sha512::new();
    hasher.update(user.password.as_bytes());
    hasher.update(salt);
    let hash = hasher.finalize();
    Ok(format!(
        "{}:$6${}${}",
        user.username,
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    ))
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e| SandboxError::io(format!("writing {}", path.display()), e);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(contents.as_bytes()).map_err(err)?;
    Ok(path.to_owned())
}

/// A 127.0.0.1 port that is free now and lies below the kernel's ephemeral range, so the
/// local end of some outgoing connection is unlikely to take it between restarts of a
/// broker that must keep its ports. Falls back to [`free_port`] when that range starts
/// too low.
pub fn stable_port() -> Result<u16> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            t.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    const LOW: u16 = 20000;
    if ephemeral_low > LOW + 1000 {
        for _ in 0..64 {
            let port = rand::random_range(LOW..ephemeral_low);
            if std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok() {
                return Ok(port);
            }
        }
    }
    free_port()
}

/// Whether a TCP connection to `addr` succeeds within 200 ms.
async fn accepts(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr)
        )
        .await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_binds_loopback_only_and_has_no_default_listener() {
        let text = config_text(
            18883,
            18084,
            Path::new("/d/cert.pem"),
            Path::new("/d/key.pem"),
            Some(Path::new("/d/ca.pem")),
            None,
        );
        assert!(text.contains("listener 18883 127.0.0.1\nsocket_domain ipv4\n"));
        assert!(text.contains("listener 18084 127.0.0.1\nsocket_domain ipv4\nprotocol websockets"));
        assert!(!text.contains("bind_address"), "would open port 1883");
        assert_eq!(text.matches("require_certificate true").count(), 2);
        assert!(text.contains("allow_anonymous true"));
    }

    #[test]
    fn password_line_is_mosquitto_sha512() {
        let line = password_line(&MqttUser::new("alice", "s3cret")).expect("line");
        let (user, hash) = line.split_once(':').expect("colon");
        assert_eq!(user, "alice");
        let parts: Vec<&str> = hash.split('$').collect();
        assert_eq!(parts[..2], ["", "6"]);
        let salt = STANDARD.decode(parts[2]).expect("salt");
        let digest = STANDARD.decode(parts[3]).expect("hash");
        assert_eq!(salt.len(), 12);
        let mut h = Sha512::new();
        h.update(b"s3cret");
        h.update(&salt);
        assert_eq!(digest, h.finalize().to_vec());
        assert!(password_line(&MqttUser::new("a:b", "x")).is_err());
    }
}
