//! moto in server mode as the Route 53 API: finding `moto_server`, starting it on
//! 127.0.0.1, waiting until it accepts connections, an `aws_sdk_route53::Client` with
//! static fake credentials pointed at it, and small helpers over that client
//! (create a zone, upsert a record set, list zones and record sets).
//!
//! This file does not answer DNS (`dns_server.rs` does, using the list helpers here) and
//! does not know about Pebble.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_route53::Client;
use aws_sdk_route53::config::retry::RetryConfig;
use aws_sdk_route53::config::timeout::TimeoutConfig;
use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_route53::error::DisplayErrorContext;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HostedZoneConfig, ResourceRecord, ResourceRecordSet, RrType,
    Vpc, VpcRegion,
};

use super::process::{ChildGuard, free_port};
use super::{Result, SandboxError};

/// Environment variable naming the `moto_server` executable (or the venv holding it).
pub const MOTO_SERVER_ENV: &str = "BROKERCERT_MOTO_SERVER";
/// Where `.ci/install` puts the executable, relative to the crate root.
pub const MOTO_SERVER_RELATIVE: &str = ".sandbox/venv/bin/moto_server";
/// The fake access key id and secret used everywhere in the sandbox.
pub const FAKE_ACCESS_KEY: &str = "testing";
/// The region of the sandbox (Route 53 is global; SigV4 signs for us-east-1).
pub const REGION: &str = "us-east-1";
/// The VPC id given to moto when creating private zones (moto does not check it).
pub const FAKE_VPC_ID: &str = "vpc-0b0c0e0f0a0d0e0f0";

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds `moto_server`: the explicit path if given, else `$BROKERCERT_MOTO_SERVER`, else
/// `.sandbox/venv/bin/moto_server` in `$CARGO_MANIFEST_DIR`, the current directory, or one
/// of their ancestors. A path that is a directory (a venv) gets `bin/moto_server` appended.
pub fn find_moto_server(explicit: Option<&Path>) -> Result<PathBuf> {
    let from_env = std::env::var_os(MOTO_SERVER_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(path) = explicit.map(Path::to_path_buf).or(from_env) {
        let path = if path.is_dir() {
            path.join("bin/moto_server")
        } else {
            path
        };
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(SandboxError::MotoMissing {
                searched: vec![path],
            })
        };
    }
    let mut roots = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        roots.push(PathBuf::from(dir));
    }
    if let Ok(dir) = std::env::current_dir() {
        roots.push(dir);
    }
    roots.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let mut searched = Vec::new();
    for root in roots {
        for dir in root.ancestors() {
            let candidate = dir.join(MOTO_SERVER_RELATIVE);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
            if !searched.contains(&candidate) {
                searched.push(candidate);
            }
        }
    }
    Err(SandboxError::MotoMissing { searched })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A running `moto_server` on 127.0.0.1; stopped (by PID) on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: ChildGuard,
    port: u16,
}

impl MotoServer {
    /// Finds (see [`find_moto_server`]), starts and waits for moto; retries with another
    /// port if the chosen one was taken meanwhile. The log goes to `<dir>/moto.log`.
    pub async fn start(moto_server: Option<&Path>, dir: &Path) -> Result<Self> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut moto = Self::spawn(moto_server, dir)?;
            match moto.wait_ready(READY_TIMEOUT).await {
                Err(SandboxError::Exited { .. }) if attempt < 3 => continue,
                Err(e) => return Err(e),
                Ok(()) => return Ok(moto),
            }
        }
    }

    /// Starts moto on a free port without waiting for it (see [`MotoServer::wait_ready`]).
    pub fn spawn(moto_server: Option<&Path>, dir: &Path) -> Result<Self> {
        Self::spawn_on(moto_server, dir, free_port()?)
    }

    /// Starts moto on `port` without waiting for it (a test can hand it a port that is
    /// already taken).
    pub fn spawn_on(moto_server: Option<&Path>, dir: &Path, port: u16) -> Result<Self> {
        let exe = find_moto_server(moto_server)?;
        let mut cmd = Command::new(&exe);
        cmd.arg("-H")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(port.to_string())
            .current_dir(dir)
            // Python buffers stdout when it is a file: make the log useful as it happens.
            .env("PYTHONUNBUFFERED", "1")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        let child = ChildGuard::spawn("moto_server", cmd, &dir.join("moto.log"))?;
        Ok(Self { child, port })
    }

    /// Waits until moto answers its own API (about 1 s), the child exits, or `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(status) = self.child.try_exit_status() {
                return Err(SandboxError::Exited {
                    what: "moto_server".into(),
                    status: status.to_string(),
                    log: self.child.log_path().to_owned(),
                    tail: self.child.log_tail(4000),
                });
            }
            // The port answering is not enough: between `free_port` and moto's bind, another
            // server of this process (or of a fresh network namespace, where port numbers
            // repeat sooner) may have taken it. Only moto's own API counts; when moto cannot
            // bind, it exits and `start` retries on another port.
            if tokio::net::TcpStream::connect(addr).await.is_ok() && is_moto(addr).await {
                tracing::debug!(port = self.port, elapsed = ?start.elapsed(), "moto ready");
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(SandboxError::NotReady {
                    what: "moto_server".into(),
                    timeout,
                    log: self.child.log_path().to_owned(),
                    tail: self.child.log_tail(4000),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The port moto listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`: the Route 53 endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A Route 53 client for this server (see [`route53_client`]).
    pub fn client(&self) -> Client {
        route53_client(&self.endpoint())
    }

    /// PID of the `moto_server` process.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Log file of the `moto_server` process.
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
}

/// A Route 53 client for `endpoint` with static fake credentials (`testing`/`testing`),
/// region us-east-1, and short timeouts. It reads no environment, no `~/.aws`, and never
/// the instance-metadata service: requests are SigV4-signed for `route53` and go only
/// to `endpoint`.
///
/// Build one per tokio runtime: its connection pool belongs to the runtime that uses it first.
pub fn route53_client(endpoint: &str) -> Client {
    let credentials = Credentials::new(
        FAKE_ACCESS_KEY,
        FAKE_ACCESS_KEY,
        None,
        None,
        "brokercert-sandbox",
    );
    let config = aws_sdk_route53::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// A hosted zone as moto lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedZoneInfo {
    /// The id without the `/hostedzone/` prefix.
    pub id: String,
    /// The zone name, lowercased, with a trailing dot (`example.test.`).
    pub name: String,
    /// Whether it is a private zone.
    pub private: bool,
}

/// A resource record set as moto lists it (values verbatim, e.g. TXT values quoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSetInfo {
    /// Owner name as moto returns it (usually with a trailing dot).
    pub name: String,
    /// Type, e.g. `TXT`.
    pub rtype: String,
    /// TTL in seconds (absent for alias records).
    pub ttl: Option<i64>,
    /// The values, verbatim.
    pub values: Vec<String>,
    /// `SetIdentifier` of routing-policy sets.
    pub set_identifier: Option<String>,
}

fn route53_err<E>(what: &str, err: E) -> SandboxError
where
    E: std::error::Error,
{
    SandboxError::Route53(format!("{what}: {}", DisplayErrorContext(&err)))
}

/// Strips the `/hostedzone/` prefix that Route 53 puts on ids.
pub fn bare_zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

/// Lowercases a DNS name and ensures one trailing dot.
pub fn normalize_name(name: &str) -> String {
    let mut n = name.trim().trim_end_matches('.').to_ascii_lowercase();
    n.push('.');
    n
}

/// Creates a hosted zone and returns its bare id. A private zone is created with a
/// (fake) us-east-1 VPC, which moto requires for `PrivateZone = true`.
pub async fn create_zone(client: &Client, name: &str, private: bool) -> Result<String> {
    let reference = format!(
        "brokercert-sandbox-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let mut req = client
        .create_hosted_zone()
        .name(name)
        .caller_reference(reference);
    if private {
        req = req
            .vpc(
                Vpc::builder()
                    .vpc_region(VpcRegion::UsEast1)
                    .vpc_id(FAKE_VPC_ID)
                    .build(),
            )
            .hosted_zone_config(HostedZoneConfig::builder().private_zone(true).build());
    }
    let out = req
        .send()
        .await
        .map_err(|e| route53_err(&format!("CreateHostedZone {name}"), e))?;
    let zone = out.hosted_zone().ok_or_else(|| {
        SandboxError::Route53(format!(
            "CreateHostedZone {name}: no HostedZone in the answer"
        ))
    })?;
    Ok(bare_zone_id(zone.id()).to_owned())
}

/// Applies one change (`UPSERT`, `CREATE` or `DELETE`) of a simple record set.
pub async fn change(
    client: &Client,
    action: ChangeAction,
    zone_id: &str,
    name: &str,
    rtype: &str,
    ttl: i64,
    values: &[&str],
) -> Result<()> {
    let what = format!("ChangeResourceRecordSets {action} {name} {rtype} in {zone_id}");
    let mut set = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::from(rtype))
        .ttl(ttl);
    for value in values {
        let record = ResourceRecord::builder()
            .value(*value)
            .build()
            .map_err(|e| route53_err(&what, e))?;
        set = set.resource_records(record);
    }
    let set = set.build().map_err(|e| route53_err(&what, e))?;
    let change = Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|e| route53_err(&what, e))?;
    let batch = ChangeBatch::builder()
        .changes(change)
        .build()
        .map_err(|e| route53_err(&what, e))?;
    client
        .change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(batch)
        .send()
        .await
        .map_err(|e| route53_err(&what, e))?;
    Ok(())
}

/// UPSERTs a record set. Values are stored verbatim: TXT values should be quoted
/// (`"\"token\""`), as Route 53 expects.
pub async fn upsert(
    client: &Client,
    zone_id: &str,
    name: &str,
    rtype: &str,
    ttl: i64,
    values: &[&str],
) -> Result<()> {
    change(
        client,
        ChangeAction::Upsert,
        zone_id,
        name,
        rtype,
        ttl,
        values,
    )
    .await
}

/// All hosted zones (follows pagination).
pub async fn list_zones(client: &Client) -> Result<Vec<HostedZoneInfo>> {
    let mut zones = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = client
            .list_hosted_zones()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| route53_err("ListHostedZones", e))?;
        zones.extend(out.hosted_zones().iter().map(|z| HostedZoneInfo {
            id: bare_zone_id(z.id()).to_owned(),
            name: normalize_name(z.name()),
            private: z.config().is_some_and(|c| c.private_zone()),
        }));
        match out.next_marker() {
            Some(next) if out.is_truncated() && !next.is_empty() => marker = Some(next.to_owned()),
            _ => return Ok(zones),
        }
    }
}

/// All record sets of a zone (follows pagination).
pub async fn list_records(client: &Client, zone_id: &str) -> Result<Vec<RecordSetInfo>> {
    let mut sets = Vec::new();
    let mut start: Option<(String, RrType, Option<String>)> = None;
    loop {
        let mut req = client.list_resource_record_sets().hosted_zone_id(zone_id);
        if let Some((name, rtype, ident)) = start.take() {
            req = req
                .start_record_name(name)
                .start_record_type(rtype)
                .set_start_record_identifier(ident);
        }
        let out = req
            .send()
            .await
            .map_err(|e| route53_err(&format!("ListResourceRecordSets {zone_id}"), e))?;
        sets.extend(out.resource_record_sets().iter().map(|s| {
            RecordSetInfo {
                name: s.name().to_owned(),
                rtype: s.r#type().as_str().to_owned(),
                ttl: s.ttl(),
                values: s
                    .resource_records()
                    .iter()
                    .map(|r| r.value().to_owned())
                    .collect(),
                set_identifier: s.set_identifier().map(str::to_owned),
            }
        }));
        match (
            out.is_truncated(),
            out.next_record_name(),
            out.next_record_type(),
        ) {
            (true, Some(name), Some(rtype)) => {
                start = Some((
                    name.to_owned(),
                    rtype.clone(),
                    out.next_record_identifier().map(str::to_owned),
                ));
            }
            _ => return Ok(sets),
        }
    }
}

/// Whether the server at `addr` is moto: its `/moto-api/data.json` answers 200 with a JSON
/// object.
async fn is_moto(addr: SocketAddr) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
    else {
        return false;
    };
    let Ok(resp) = client
        .get(format!("http://{addr}/moto-api/data.json"))
        .send()
        .await
    else {
        return false;
    };
    resp.status() == reqwest::StatusCode::OK
        && resp
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|v| v.is_object())
}
