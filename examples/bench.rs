//! Benchmark: brokercert against certbot + certbot-dns-route53 and lego (`--dns route53`)
//! on the local sandbox, and brokercert's own targets (full issue, no-op renew, fleet).
//! Prints tables; asserts nothing about speed (run it with `bash .ci/bench`; it is not
//! part of the test suite).
//!
//! All clients get the same servers: Pebble with `PEBBLE_VA_NOSLEEP=1` and
//! `PEBBLE_WFE_NONCEREJECT=0`, moto as Route 53, the sandbox DNS server. lego 4.9 has no
//! Route 53 endpoint setting, so it reaches moto as `route53.amazonaws.com` through the
//! sandbox's CONNECT proxy (`HTTPS_PROXY`, `AWS_CA_BUNDLE`), which refuses every other
//! target. All reuse an ACME account made before timing starts and issue a certificate for
//! a fresh name each run, with an RSA 2048 and with an ECDSA P-256 key; runs are
//! interleaved (brokercert, certbot, lego, for each key type, then again) so drift in the
//! machine's load hits all alike. Wall time is measured around the process, peak RSS is
//! the child's `ru_maxrss` from `wait4`.
//!
//! Flags: `--runs N` (default 10), `--fleet N` (default 50), `--noop N` (default 1000),
//! `--skip-certbot`, `--certbot PATH` (default `.sandbox/bench-venv/bin/certbot`),
//! `--skip-lego`, `--lego PATH` (default `lego` on `PATH`; skipped with a note if absent),
//! `--only SECTION` (repeatable: `cert`, `full`, `fleet`, `noop`; default all),
//! `--fleet-key TAG` (repeatable: `rsa`, `ecdsa`, `rsakeep`; default all fleet rows),
//! `--bin PATH` (the brokercert binary to measure instead of the one built next to this
//! example, e.g. an unstripped copy), `--compare PATH` (repeatable: other brokercert binaries, e.g. a copy built from another
//! commit, run interleaved with the one built next to this example in the `cert` and `noop`
//! sections, one row each), `--smaps` (also sample each brokercert run's
//! `/proc/PID/smaps` every few ms and report the resident size of the binary's code and
//! read-only data mappings at the last sample; costs CPU beside the runs, so wall times
//! taken with it are not comparable).
//! `BROKERCERT_BENCH_WRAP="valgrind --tool=callgrind --"` runs each brokercert run of the
//! `cert` and `noop` sections (not their warm-ups) under that command (.ci/symbol-order).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use brokercert::pki::keys::{KeyType, PrivateKey};
use brokercert_sandbox::{
    Budgets, ConnectProxy, DeploymentSpec, EmqxCloudEmulator, Route53Proxy, Sandbox, SandboxOptions,
};

const KEY: &str = "bench-api-key";
const SECRET: &str = "bench-api-secret";
/// One key type of the certificate-only table, as each client spells it.
struct CertKey {
    label: &'static str,
    /// A short tag for certificate names.
    tag: &'static str,
    brokercert: &'static str,
    certbot: &'static [&'static str],
    lego: &'static str,
}

/// The certificate-only table's key types (#20: both must meet the target).
const CERT_KEYS: [CertKey; 2] = [
    CertKey {
        label: "RSA 2048",
        tag: "r",
        brokercert: "rsa2048",
        certbot: &["--key-type", "rsa", "--rsa-key-size", "2048"],
        lego: "rsa2048",
    },
    CertKey {
        label: "ECDSA P-256",
        tag: "e",
        brokercert: "ecdsa-p256",
        certbot: &["--key-type", "ecdsa", "--elliptic-curve", "secp256r1"],
        lego: "ec256",
    },
];

/// Hosted zones the fleet is spread over.
const FLEET_ZONES: usize = 5;

struct Opts {
    runs: usize,
    fleet: usize,
    noop: usize,
    certbot: Option<PathBuf>,
    /// `None` with `--skip-lego`; else the path given, or `lego` looked up on `PATH`.
    lego: Option<PathBuf>,
    only: Vec<String>,
    fleet_keys: Vec<String>,
    bin: Option<PathBuf>,
    compare: Vec<PathBuf>,
    smaps: bool,
}

impl Opts {
    /// Whether the section named `name` runs (`--only`).
    fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }

    /// Whether the fleet row tagged `tag` runs (`--fleet-key`).
    fn wants_fleet_key(&self, tag: &str) -> bool {
        self.fleet_keys.is_empty() || self.fleet_keys.iter().any(|k| k == tag)
    }
}

const SECTIONS: [&str; 4] = ["cert", "full", "fleet", "noop"];
const FLEET_KEYS: [&str; 3] = ["rsa", "ecdsa", "rsakeep"];

fn parse_opts() -> Result<Opts> {
    let mut o = Opts {
        runs: 10,
        fleet: 50,
        noop: 1000,
        certbot: Some(PathBuf::from(".sandbox/bench-venv/bin/certbot")),
        lego: Some(PathBuf::from("lego")),
        only: Vec::new(),
        fleet_keys: Vec::new(),
        bin: None,
        compare: Vec::new(),
        smaps: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<usize> {
            args.next()
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--runs" => o.runs = num("--runs")?.max(1),
            "--fleet" => o.fleet = num("--fleet")?.max(1),
            "--noop" => o.noop = num("--noop")?.max(1),
            "--skip-certbot" => o.certbot = None,
            "--skip-lego" => o.lego = None,
            "--lego" => o.lego = Some(PathBuf::from(args.next().context("--lego needs a path")?)),
            "--bin" | "--compare" => {
                let bin = PathBuf::from(args.next().with_context(|| format!("{a} needs a path"))?);
                if !bin.is_file() {
                    bail!(
                        "{a} {}: no such file; expected a brokercert binary",
                        bin.display()
                    );
                }
                match a.as_str() {
                    "--bin" => o.bin = Some(bin),
                    _ => o.compare.push(bin),
                }
            }
            "--smaps" => o.smaps = true,
            "--only" => {
                let section = args.next().unwrap_or_default();
                if !SECTIONS.contains(&section.as_str()) {
                    bail!(
                        "--only needs one of {}; got `{section}`",
                        SECTIONS.join(", ")
                    );
                }
                o.only.push(section);
            }
            "--fleet-key" => {
                let tag = args.next().unwrap_or_default();
                if !FLEET_KEYS.contains(&tag.as_str()) {
                    bail!(
                        "--fleet-key needs one of {}; got `{tag}`",
                        FLEET_KEYS.join(", ")
                    );
                }
                o.fleet_keys.push(tag);
            }
            "--certbot" => {
                o.certbot = Some(PathBuf::from(
                    args.next().context("--certbot needs a path")?,
                ))
            }
            other => bail!(
                "unknown flag `{other}`; expected --runs N, --fleet N, --noop N, --only SECTION, --fleet-key TAG, --bin PATH, --compare PATH, --smaps, --skip-certbot, --certbot PATH, --skip-lego or --lego PATH"
            ),
        }
    }
    Ok(o)
}

/// One measured process run.
#[derive(Debug, Clone)]
struct Sample {
    wall: Duration,
    max_rss_kib: u64,
    /// User + system CPU time of the child.
    cpu: Duration,
    stdout: String,
    /// With `--smaps`: Rss in KiB of the executable's code (`r-xp`) and read-only data
    /// (`r--p`) mappings at the last sample before the process ended.
    image_rss_kib: Option<(u64, u64)>,
}

/// Rss in KiB of `exe`'s executable and read-only mappings in `/proc/PID/smaps` (None if
/// unreadable, e.g. the process has ended).
fn image_rss(pid: u32, exe: &Path) -> Option<(u64, u64)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let exe = exe.canonicalize().ok()?;
    let exe = exe.to_str()?;
    let (mut code, mut rodata, mut perms) = (0, 0, None);
    let mut seen = false;
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // A mapping header: range perms offset dev inode path.
            let p = f.next().unwrap_or_default().to_string();
            let path = f.nth(3).unwrap_or_default();
            perms = (path == exe).then_some(p);
        } else if first == "Rss:"
            && let Some(p) = &perms
        {
            let kib: u64 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            seen = true;
            match p.as_str() {
                "r-xp" => code += kib,
                "r--p" => rodata += kib,
                _ => {}
            }
        }
    }
    seen.then_some((code, rodata))
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// User + system CPU time of this process so far (the sandbox's DNS server and proxies run
/// in it).
fn own_cpu() -> Duration {
    // SAFETY: an all-zero rusage is a valid value; getrusage fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// User + system CPU time of a running process (`/proc/PID/stat`), zero if unreadable.
fn proc_cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces) start at field 3.
    let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 (index 11 and 12 after the name).
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / hz)
}

/// Runs `cmd` to completion and measures its wall time and peak RSS (from `wait4`).
async fn measure(cmd: Command, what: &str) -> Result<Sample> {
    measure_with(cmd, what, None).await
}

/// [`measure`], sampling `/proc/PID/smaps` for `exe`'s mappings every 2 ms when `smaps_of`
/// is `Some(exe)`.
async fn measure_with(mut cmd: Command, what: &str, smaps_of: Option<&Path>) -> Result<Sample> {
    let out_path = std::env::temp_dir().join(format!(
        "brokercert-bench-{}-{}.out",
        std::process::id(),
        rand_suffix()
    ));
    let out = std::fs::File::create(&out_path)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let started = Instant::now();
    let child = cmd.spawn().with_context(|| format!("starting {what}"))?;
    let pid = child.id() as libc::pid_t;
    let sampler = smaps_of.map(|exe| {
        let exe = exe.to_path_buf();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = done.clone();
        let handle = std::thread::spawn(move || {
            let mut last = None;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match image_rss(pid as u32, &exe) {
                    Some(v) => last = Some(v),
                    None if last.is_some() => break,
                    None => {}
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            last
        });
        (done, handle)
    });
    let (status, rss, cpu) = tokio::task::spawn_blocking(move || {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value; wait4 fills it in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our own child, not yet reaped (`child` is never waited on).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        drop(child);
        (
            if r == pid { status } else { -1 },
            usage.ru_maxrss as u64,
            timeval(usage.ru_utime) + timeval(usage.ru_stime),
        )
    })
    .await?;
    let wall = started.elapsed();
    let image_rss_kib = sampler.and_then(|(done, handle)| {
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        handle.join().ok().flatten()
    });
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{what} failed (wait status {status}):\n{stdout}");
    }
    Ok(Sample {
        wall,
        max_rss_kib: rss,
        cpu,
        stdout,
        image_rss_kib,
    })
}

/// `program` if it names a file, else the first `PATH` entry holding it.
fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn med_ms(s: &[Sample]) -> f64 {
    median(s.iter().map(|x| ms(x.wall)).collect())
}

fn med_mib(s: &[Sample]) -> f64 {
    median(s.iter().map(|x| x.max_rss_kib as f64 / 1024.0).collect())
}

/// `, code X MiB, rodata Y MiB` (medians) when the samples have `--smaps` numbers.
fn image_note(s: &[Sample]) -> String {
    let v: Vec<(u64, u64)> = s.iter().filter_map(|x| x.image_rss_kib).collect();
    if v.is_empty() {
        return String::new();
    }
    let code = median(v.iter().map(|x| x.0 as f64 / 1024.0).collect());
    let ro = median(v.iter().map(|x| x.1 as f64 / 1024.0).collect());
    format!(" (binary's code {code:.1} MiB, read-only data {ro:.1} MiB resident)")
}

/// Parses a duration printed by `--timings` (`<1 ms`, `420 ms`, `4.2 s`, `1 min 10 s`).
fn parse_human(s: &str) -> Option<f64> {
    let s = s.trim();
    if s == "<1 ms" {
        return Some(0.5);
    }
    if let Some(v) = s.strip_suffix(" ms") {
        return v.trim().parse().ok();
    }
    if let Some((m, rest)) = s.split_once(" min") {
        let mins: f64 = m.trim().parse().ok()?;
        let secs: f64 = rest
            .trim()
            .strip_suffix(" s")
            .unwrap_or("0")
            .trim()
            .parse()
            .ok()?;
        return Some((mins * 60.0 + secs) * 1000.0);
    }
    s.strip_suffix(" s")?
        .trim()
        .parse::<f64>()
        .ok()
        .map(|v| v * 1000.0)
}

/// The `timings:` block of `issue --timings` as (stage, ms) rows.
fn timings_of(stdout: &str) -> Vec<(String, f64)> {
    let mut rows = Vec::new();
    let mut inside = false;
    for line in stdout.lines() {
        if line.trim() == "timings:" {
            inside = true;
            continue;
        }
        if inside {
            let Some(rest) = line.strip_prefix("  ") else {
                break;
            };
            let mut parts = rest.splitn(2, ' ');
            let (Some(stage), Some(value)) = (parts.next(), parts.next()) else {
                break;
            };
            match parse_human(value) {
                Some(v) => rows.push((stage.to_string(), v)),
                None => break,
            }
        }
    }
    rows
}

struct Bench {
    sb: Sandbox,
    _emqx: EmqxCloudEmulator,
    bin: PathBuf,
    /// `--compare` binaries, run interleaved with `bin` in the `cert` and `noop` sections.
    compare: Vec<PathBuf>,
    /// `--smaps`.
    smaps: bool,
    dir: PathBuf,
    mqtts: u16,
    wss: u16,
    emqx_url: String,
    emqx_ca: PathBuf,
}

impl Bench {
    fn base_config(&self, state: &Path) -> String {
        self.config_via(state, &self.sb.route53_endpoint(), "")
    }

    /// The configuration with Route 53 at `r53` and `extra_route53` lines in `[route53]`.
    fn config_via(&self, state: &Path, r53: &str, extra_route53: &str) -> String {
        format!(
            r#"state_dir = "{state}"

[acme]
directory = "{dir}"
email = "ops@example.test"
agree_tos = true
https_roots = ["{tls}"]

[route53]
endpoint_url = "{r53}"
{extra_route53}
[dns]
nameservers = ["{dns}"]

[trust]
extra_roots = ["{roots}"]
system_roots = false

[renew]
jitter = "0s"
"#,
            state = state.display(),
            dir = self.sb.acme_directory_url(),
            tls = self.sb.pebble_tls_ca_path().display(),
            dns = self.sb.dns_addr(),
            roots = self.sb.pebble_roots_path().display(),
        )
    }

    fn write(&self, name: &str, text: &str) -> Result<PathBuf> {
        let p = self.dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    }

    fn brokercert(&self, config: &Path, args: &[&str]) -> Command {
        self.brokercert_under(&[], config, args)
    }

    /// All brokercert binaries measured in the compared sections: this example's first.
    fn bins(&self) -> Vec<PathBuf> {
        std::iter::once(self.bin.clone())
            .chain(self.compare.iter().cloned())
            .collect()
    }

    /// Row label for `bins()[i]`.
    fn label(&self, what: &str, i: usize) -> String {
        match i {
            0 if self.compare.is_empty() => what.to_string(),
            0 => format!("{what} ({})", self.bin.display()),
            _ => format!("{what} ({})", self.compare[i - 1].display()),
        }
    }

    /// Measures `bin` with `config` and `args`, with `--smaps` sampling if asked.
    async fn measure_bin(
        &self,
        bin: &Path,
        config: &Path,
        args: &[&str],
        what: &str,
    ) -> Result<Sample> {
        let wrapper = wrapper_from_env("BROKERCERT_BENCH_WRAP");
        let cmd = self.command(bin, &wrapper, config, args);
        measure_with(cmd, what, self.smaps.then_some(bin)).await
    }

    /// `brokercert` run under a wrapper command (`perf record -o FILE --`, `strace -f`, ...).
    fn brokercert_under(&self, wrapper: &[String], config: &Path, args: &[&str]) -> Command {
        self.command(&self.bin, wrapper, config, args)
    }

    /// `bin` (this example's brokercert or a `--compare` one), under `wrapper` if not empty.
    fn command(&self, bin: &Path, wrapper: &[String], config: &Path, args: &[&str]) -> Command {
        let mut cmd = match wrapper {
            [program, rest @ ..] => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
            [] => Command::new(bin),
        };
        cmd.arg("--config").arg(config).args(args);
        self.sb.configure_command(&mut cmd);
        cmd.env("EMQX_CLOUD_API_KEY", KEY)
            .env("EMQX_CLOUD_API_SECRET", SECRET)
            .env_remove("BROKERCERT_LOG");
        cmd
    }

    fn certbot(&self, certbot: &Path, args: &[&str]) -> Command {
        let cb = self.dir.join("certbot");
        let mut cmd = Command::new(certbot);
        cmd.args(args)
            .arg("--non-interactive")
            .arg("--config-dir")
            .arg(cb.join("config"))
            .arg("--work-dir")
            .arg(cb.join("work"))
            .arg("--logs-dir")
            .arg(cb.join("logs"))
            .arg("--server")
            .arg(self.sb.acme_directory_url());
        self.sb.configure_command(&mut cmd);
        cmd.env("REQUESTS_CA_BUNDLE", self.sb.pebble_tls_ca_path());
        cmd
    }

    /// `lego … run` for `domain` in `zone_id`: Route 53 is moto behind `proxy`, lookups go
    /// to the sandbox DNS server, Pebble's TLS CA is trusted. `--dns.disable-cp`: with it
    /// lego checks the TXT record at `--dns.resolvers` only; without it, lego would also
    /// dial the zone's (real-looking) nameserver names on port 53, which must not leave
    /// the machine.
    fn lego(
        &self,
        lego: &Path,
        proxy: &ConnectProxy,
        zone_id: &str,
        domain: &str,
        key_type: &str,
    ) -> Command {
        let mut cmd = Command::new(lego);
        cmd.arg("--server")
            .arg(self.sb.acme_directory_url())
            .args(["--accept-tos", "--email", "ops@example.test", "--path"])
            .arg(self.dir.join("lego"))
            .args([
                "--key-type",
                key_type,
                "--dns",
                "route53",
                "--dns.disable-cp",
            ])
            .arg("--dns.resolvers")
            .arg(self.sb.dns_addr().to_string())
            .args(["--domains", domain, "run"]);
        self.sb.configure_command(&mut cmd);
        for key in [
            "HTTP_PROXY",
            "http_proxy",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
            "LEGO_PATH",
            "AWS_PROPAGATION_TIMEOUT",
            "AWS_POLLING_INTERVAL",
            "AWS_TTL",
        ] {
            cmd.env_remove(key);
        }
        cmd.env("HTTPS_PROXY", proxy.url())
            .env("AWS_CA_BUNDLE", proxy.ca_path())
            .env("AWS_HOSTED_ZONE_ID", zone_id)
            .env("LEGO_CA_CERTIFICATES", self.sb.pebble_tls_ca_path());
        cmd
    }

    /// `[[certificate]]` sections: `count` names spread over the fleet zones, with `extra`
    /// lines in every section.
    fn fleet_certificates_with(prefix: &str, count: usize, extra: &str) -> String {
        let mut s = String::new();
        for i in 0..count {
            let zone = i % FLEET_ZONES;
            let _ = write!(
                s,
                "\n[[certificate]]\nname = \"{prefix}{i}\"\ndomains = [\"{prefix}{i}.fleet{zone}.test\"]\n{extra}"
            );
        }
        s
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut report = String::new();
    let result = run(&mut report).await;
    // What was measured is printed even when a later section failed.
    println!("{report}");
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(report: &mut String) -> Result<()> {
    let opts = parse_opts()?;
    let exe = std::env::current_exe().context("locating this example")?;
    let bin = match &opts.bin {
        Some(bin) => bin.clone(),
        None => exe
            .parent()
            .and_then(|d| d.parent())
            .map(|d| d.join("brokercert"))
            .filter(|p| p.exists())
            .context("the brokercert binary is not built next to this example: run `cargo build --release --bin brokercert` and `cargo build --release --example bench` (two commands: together, the binary gets the sandbox's dependency features), or `bash .ci/bench`")?,
    };
    if let Some(cb) = &opts.certbot
        && !cb.exists()
    {
        bail!(
            "certbot not found at {}: run `bash .ci/bench` (it installs certbot and certbot-dns-route53 into .sandbox/bench-venv), or pass --skip-certbot",
            cb.display()
        );
    }

    let lego = opts.lego.as_deref().and_then(|l| {
        let found = find_program(l);
        if found.is_none() {
            eprintln!(
                "bench: lego not found at `{}`; skipping it. Install it with `apt-get install lego` (Debian/Ubuntu, 4.9.x), or pass --lego PATH (or --skip-lego to silence this)",
                l.display()
            );
        }
        found
    });
    let mut so = SandboxOptions::new()
        .zone("example.test")
        .zone("emqx-cloud.test")
        .pebble_env("PEBBLE_VA_NOSLEEP", "1")
        .pebble_env("PEBBLE_WFE_NONCEREJECT", "0");
    for z in 0..FLEET_ZONES {
        so = so.zone(format!("fleet{z}.test"));
    }
    let sb = Sandbox::start(so)
        .await
        .context("starting the sandbox (run `bash .ci/install` first)")?;
    let deployment = sb.zone_id("emqx-cloud.test").context("zone")?;
    sb.upsert(&deployment, "d1.emqx-cloud.test", "A", 60, &["127.0.0.1"])
        .await?;
    let emqx = EmqxCloudEmulator::start(sb.dir().join("emqx-cloud"))
        .await
        .context("starting the EMQX Cloud emulator")?;
    emqx.add_deployment(DeploymentSpec::dedicated("d1", KEY, SECRET))?;
    emqx.set_pending_delay(Duration::ZERO);
    // EMQX Cloud allows 6 writes an hour; the benchmark uploads once per run.
    emqx.set_budgets(Budgets {
        writes: 10_000,
        reads: 100_000,
        window: Duration::from_secs(3600),
    });
    let ports = emqx.deployment_ports("d1").context("deployment ports")?;
    let dir = sb.dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let b = Bench {
        emqx_url: emqx.base_url(),
        emqx_ca: emqx.ca_pem_path().to_path_buf(),
        _emqx: emqx,
        sb,
        bin,
        compare: opts.compare.clone(),
        smaps: opts.smaps,
        dir,
        mqtts: ports.mqtts,
        wss: ports.wss,
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        report,
        "brokercert benchmark — {} runs each, medians; {} CPU(s); brokercert {}",
        opts.runs,
        cpus,
        env!("CARGO_PKG_VERSION")
    );

    if opts.wants("cert") {
        // 1. Certificate only: brokercert vs certbot, interleaved.
        let state = b.dir.join("state-single");
        let single = b.write("single.toml", &b.base_config(&state))?;
        eprintln!("bench: warming up (ACME accounts) …");
        measure(
            b.brokercert(
                &single,
                &["issue", "--name", "warm", "--domain", "warm.example.test"],
            ),
            "brokercert warm-up",
        )
        .await?;
        if let Some(cb) = &opts.certbot {
            measure(
                b.certbot(
                    cb,
                    &[
                        "register",
                        "--agree-tos",
                        "-m",
                        "ops@example.test",
                        "--no-eff-email",
                    ],
                ),
                "certbot register",
            )
            .await?;
        }
        // lego: Route 53 through the CONNECT proxy; its first run registers the account.
        let lego_proxy = match &lego {
            Some(_) => Some(
                ConnectProxy::start(&b.sb.route53_endpoint(), &b.dir)
                    .await
                    .context("starting the CONNECT proxy for lego")?,
            ),
            None => None,
        };
        let example_zone = b.sb.zone_id("example.test").context("zone")?;
        let lego_run = |lego: &Path, proxy: &ConnectProxy, domain: &str, key: &str| {
            b.lego(lego, proxy, &example_zone, domain, key)
        };
        if let (Some(l), Some(p)) = (&lego, &lego_proxy) {
            measure(
                lego_run(l, p, "warm-lego.example.test", "rsa2048"),
                "lego warm-up",
            )
            .await?;
        }
        // Both key types, every client (and every `--compare` binary), interleaved run by
        // run: the rows of one table share the machine's load.
        let bins = b.bins();
        let mut ours: [Vec<Sample>; 2] = Default::default();
        let mut others: Vec<[Vec<Sample>; 2]> = vec![Default::default(); bins.len() - 1];
        let mut theirs: [Vec<Sample>; 2] = Default::default();
        let mut legos: [Vec<Sample>; 2] = Default::default();
        for i in 0..opts.runs {
            for (k, key) in CERT_KEYS.iter().enumerate() {
                eprintln!(
                    "bench: certificate only ({}), run {}/{} …",
                    key.label,
                    i + 1,
                    opts.runs
                );
                for (j, bin) in bins.iter().enumerate() {
                    // A fresh name for each run, key type and binary: `br3`, `br3x1`, …
                    let name = match j {
                        0 => format!("b{}{i}", key.tag),
                        _ => format!("b{}{i}x{j}", key.tag),
                    };
                    let domain = format!("{name}.example.test");
                    let s = b
                        .measure_bin(
                            bin,
                            &single,
                            &[
                                "issue",
                                "--name",
                                &name,
                                "--domain",
                                &domain,
                                "--key-type",
                                key.brokercert,
                                "--timings",
                            ],
                            "brokercert issue",
                        )
                        .await?;
                    match j {
                        0 => ours[k].push(s),
                        _ => others[j - 1][k].push(s),
                    }
                }
                if let Some(cb) = &opts.certbot {
                    let name = format!("c{}{i}", key.tag);
                    let domain = format!("{name}.example.test");
                    let mut args = vec![
                        "certonly",
                        "--dns-route53",
                        "-d",
                        &domain,
                        "--cert-name",
                        &name,
                    ];
                    args.extend_from_slice(key.certbot);
                    theirs[k].push(measure(b.certbot(cb, &args), "certbot certonly").await?);
                }
                if let (Some(l), Some(p)) = (&lego, &lego_proxy) {
                    let domain = format!("l{}{i}.example.test", key.tag);
                    legos[k].push(measure(lego_run(l, p, &domain, key.lego), "lego run").await?);
                }
            }
        }
        if let Some(p) = &lego_proxy {
            let elsewhere: Vec<String> = p
                .targets()
                .into_iter()
                .filter(|t| t != brokercert_sandbox::connect_proxy::ROUTE53_TARGET)
                .collect();
            if !elsewhere.is_empty() {
                bail!(
                    "lego asked the CONNECT proxy for {elsewhere:?} (refused); expected route53.amazonaws.com:443 only"
                );
            }
        }
        let _ = writeln!(
            report,
            "\n## Certificate only (order → DNS-01 → finalize → store)\n"
        );
        let _ = writeln!(
            report,
            "| key | client | wall (median) | min | max | peak RSS (median) |"
        );
        let _ = writeln!(report, "|---|---|---:|---:|---:|---:|");
        let row = |r: &mut String, key: &str, who: &str, s: &[Sample]| {
            let walls: Vec<f64> = s.iter().map(|x| ms(x.wall)).collect();
            let min = walls.iter().copied().fold(f64::INFINITY, f64::min);
            let max = walls.iter().copied().fold(0.0, f64::max);
            let _ = writeln!(
                r,
                "| {key} | {who} | {:.0} ms | {min:.0} ms | {max:.0} ms | {:.1} MiB{} |",
                med_ms(s),
                med_mib(s),
                image_note(s)
            );
        };
        for (k, key) in CERT_KEYS.iter().enumerate() {
            row(report, key.label, &b.label("brokercert issue", 0), &ours[k]);
            for (j, s) in others.iter().enumerate() {
                row(
                    report,
                    key.label,
                    &b.label("brokercert issue", j + 1),
                    &s[k],
                );
            }
            if !theirs[k].is_empty() {
                row(
                    report,
                    key.label,
                    "certbot certonly --dns-route53",
                    &theirs[k],
                );
            }
            if !legos[k].is_empty() {
                row(
                    report,
                    key.label,
                    "lego run --dns route53 --dns.disable-cp",
                    &legos[k],
                );
            }
        }
        let _ = writeln!(report);
        for (k, key) in CERT_KEYS.iter().enumerate() {
            let ms_ours = med_ms(&ours[k]);
            let _ = writeln!(
                report,
                "- {}: brokercert {ms_ours:.0} ms (target ≤ 150 ms: {}), peak {:.1} MiB (target ≤ 12 MiB: {})",
                key.label,
                if ms_ours <= 150.0 { "met" } else { "not met" },
                med_mib(&ours[k]),
                if med_mib(&ours[k]) <= 12.0 {
                    "met"
                } else {
                    "not met"
                },
            );
            if !theirs[k].is_empty() {
                let speed = med_ms(&theirs[k]) / ms_ours;
                let _ = writeln!(
                    report,
                    "  - **{speed:.1}× faster than certbot** (target ≥ 15×: {}) at **{:.0} %** of its peak memory",
                    if speed >= 15.0 { "met" } else { "not met" },
                    med_mib(&ours[k]) / med_mib(&theirs[k]) * 100.0
                );
            }
            if !legos[k].is_empty() {
                let _ = writeln!(
                    report,
                    "  - **{:.1}× faster than lego** at **{:.0} %** of its peak memory",
                    med_ms(&legos[k]) / ms_ours,
                    med_mib(&ours[k]) / med_mib(&legos[k]) * 100.0
                );
            }
        }
        for (k, key) in CERT_KEYS.iter().enumerate() {
            stage_table(
                report,
                &format!("brokercert issue ({}), per stage", key.label),
                &ours[k],
            );
        }
    }
    if opts.wants("full") {
        // 2. Full issue: deploy to the EMQX Cloud emulator (no pending delay) and verify.
        let state = b.dir.join("state-full");
        let full = b.write(
        "full.toml",
        &format!(
            "{}\n[[certificate]]\nname = \"mqtt\"\ndomains = [\"mqtt.example.test\"]\ncname_target = \"d1.emqx-cloud.test\"\n\n[[certificate.deploy]]\ntype = \"emqx-cloud\"\ndeployment_id = \"d1\"\nbase_url = \"{}\"\napi_roots = [\"{}\"]\npoll_interval = \"50ms\"\n\n[certificate.verify]\nmqtts_port = {}\nwss_port = {}\n",
            b.base_config(&state),
            b.emqx_url,
            b.emqx_ca.display(),
            b.mqtts,
            b.wss
        ),
    )?;
        measure(
            b.brokercert(&full, &["issue", "--force"]),
            "brokercert full warm-up",
        )
        .await?;
        let mut full_runs = Vec::new();
        for i in 0..opts.runs {
            eprintln!("bench: full issue, run {}/{} …", i + 1, opts.runs);
            full_runs.push(
                measure(
                    b.brokercert(&full, &["issue", "--timings"]),
                    "brokercert issue (deploy + verify)",
                )
                .await?,
            );
        }
        let _ = writeln!(
            report,
            "\n## Full issue: certificate, EMQX Cloud deployment (emulator, 0 s pending), MQTT verification\n"
        );
        let _ = writeln!(
            report,
            "median {:.0} ms (target ≤ 1000 ms), peak RSS {:.1} MiB",
            med_ms(&full_runs),
            med_mib(&full_runs)
        );
        stage_table(report, "full issue, per stage", &full_runs);
    }
    if opts.wants("fleet") {
        // 3. Fleet: one `renew --force` over N certificates in 5 zones vs one certificate,
        //    through a counting proxy in front of moto; with the default 5 requests/s limit
        //    and with the limit off (moto has none; real Route 53 does).
        let proxy = Route53Proxy::start(&b.sb.route53_endpoint())
            .await
            .context("starting the Route 53 counting proxy")?;
        let fleet_runs = opts.runs.clamp(1, 5);
        let _ = writeln!(
            report,
            "\n## Fleet: `renew --force`, {} certificates in {FLEET_ZONES} hosted zones vs 1 ({fleet_runs} runs each)\n",
            opts.fleet
        );
        let _ = writeln!(
            report,
            "| key type | 1 certificate | {} certificates | ratio (target ≤ 4×) | Route 53 requests (1 / {}) | peak RSS |",
            opts.fleet, opts.fleet
        );
        let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|");
        // The default key type (RSA 2048, what every EMQX Cloud revision accepts) and ECDSA
        // P-256: each certificate gets a new key, and 50 RSA keys are seconds of CPU. The
        // `reuse_key` row keeps each RSA key (certbot's `--reuse-key`), so what it measures is
        // the orchestration without the key generation.
        let mut cpu_report = format!(
            "\nCPU time of one fleet run (medians), against the CPU time the wall time offers on {cpus} CPUs:\n\n| key type | brokercert | Pebble | moto | sandbox DNS server and proxies | total | wall × CPUs |\n|---|---:|---:|---:|---:|---:|---:|\n"
        );
        let mut floor_report = format!(
            "\nThe floor of each fleet run: the CPU time its own keys took (`key generated` debug lines), spread over {cpus} CPUs; an RSA key's time varies several-fold from key to key, so every run has its own floor (medians; #20's target: ≤ 1.2× the floor):\n\n| key type | keys' CPU | floor | wall | wall ÷ floor (median of runs) |\n|---|---:|---:|---:|---:|\n"
        );
        for (label, tag, extra) in [
            ("RSA 2048 (default)", "rsa", ""),
            ("ECDSA P-256", "ecdsa", "key_type = \"ecdsa-p256\"\n"),
            (
                "RSA 2048, `reuse_key = true`",
                "rsakeep",
                "reuse_key = true\n",
            ),
        ] {
            if !opts.wants_fleet_key(tag) {
                continue;
            }
            let one = b.write(
                &format!("fleet-1-{tag}.toml"),
                &format!(
                    "{}{}",
                    b.config_via(
                        &b.dir.join(format!("state-fleet-1-{tag}")),
                        &proxy.endpoint(),
                        ""
                    ),
                    Bench::fleet_certificates_with(&format!("s{tag}"), 1, extra)
                ),
            )?;
            let many = b.write(
                &format!("fleet-n-{tag}.toml"),
                &format!(
                    "{}{}",
                    b.config_via(
                        &b.dir.join(format!("state-fleet-n-{tag}")),
                        &proxy.endpoint(),
                        ""
                    ),
                    Bench::fleet_certificates_with(&format!("f{tag}"), opts.fleet, extra)
                ),
            )?;
            let mut t_one = Vec::new();
            let mut t_many = Vec::new();
            let mut calls_one = Vec::new();
            let mut calls_many = Vec::new();
            let mut cpu_many: Vec<Vec<Duration>> = Vec::new();
            let mut keys_cpu_many: Vec<f64> = Vec::new();
            let mut floor_ratios: Vec<f64> = Vec::new();
            // `BROKERCERT_BENCH_FLEET_WRAP="perf record -g -o /tmp/fleet.data --"` runs each
            // fleet run under that command, to see where its CPU goes.
            let wrapper = wrapper_from_env("BROKERCERT_BENCH_FLEET_WRAP");
            let mut failed: Option<String> = None;
            if extra.contains("reuse_key") {
                // Untimed: the first certificates make the keys the timed runs keep.
                eprintln!("bench: fleet ({label}), first issuance (not timed) …");
                for config in [&one, &many] {
                    let mut cmd = b.brokercert(config, &["renew", "--force", "--no-jitter"]);
                    cmd.env("AWS_ENDPOINT_URL_ROUTE_53", proxy.endpoint());
                    measure(cmd, "renew --force (first issuance)").await?;
                }
            }
            for i in 0..fleet_runs {
                eprintln!(
                    "bench: fleet ({label}), run {}/{fleet_runs} (1 and {} certificates) …",
                    i + 1,
                    opts.fleet
                );
                // The environment beats the file: point both at the counting proxy.
                let via_proxy = |config: &Path| {
                    let mut cmd = b.brokercert_under(
                        if config == many { &wrapper } else { &[] },
                        config,
                        &["renew", "--force", "--no-jitter"],
                    );
                    cmd.env("AWS_ENDPOINT_URL_ROUTE_53", proxy.endpoint());
                    cmd
                };
                proxy.clear_requests();
                t_one.push(measure(via_proxy(&one), "renew --force (1 certificate)").await?);
                calls_one.push(proxy.requests().len() as f64);
                proxy.clear_requests();
                let mut fleet_cmd = via_proxy(&many);
                if std::env::var_os("BROKERCERT_BENCH_FLEET_OUTPUT").is_some() {
                    fleet_cmd
                        .arg("-vv")
                        .env("BROKERCERT_LOG", "brokercert=trace");
                } else {
                    // One line per key with its CPU time: this run's own floor.
                    fleet_cmd.env("BROKERCERT_LOG", "brokercert::workflow::keys_ahead=debug");
                }
                let pids = b.sb.pids();
                let others = || pids.iter().map(|p| proc_cpu(*p)).collect::<Vec<_>>();
                let (before_self, before) = (own_cpu(), others());
                let fleet_run = match measure(fleet_cmd, "renew --force (fleet)").await {
                    Ok(r) => r,
                    Err(e) => {
                        // Say so in the table and go on with the next row.
                        let first = e
                            .to_string()
                            .lines()
                            .find(|l| l.contains("FAILED"))
                            .unwrap_or("")
                            .chars()
                            .take(200)
                            .collect::<String>();
                        eprintln!("bench: fleet run failed: {e:#}");
                        failed = Some(first);
                        break;
                    }
                };
                // `BROKERCERT_BENCH_FLEET_OUTPUT=FILE` keeps the last fleet run's output (-vv).
                if let Some(keep) = std::env::var_os("BROKERCERT_BENCH_FLEET_OUTPUT") {
                    std::fs::write(&keep, &fleet_run.stdout)
                        .with_context(|| format!("writing {}", Path::new(&keep).display()))?;
                }
                // Where the CPU went: [brokercert, moto, Pebble, the sandbox in this process].
                let after = others();
                let mut cpu = vec![fleet_run.cpu];
                cpu.extend(after.iter().zip(&before).map(|(a, b)| a.saturating_sub(*b)));
                cpu.push(own_cpu().saturating_sub(before_self));
                cpu_many.push(cpu);
                let key_cpu = keys_cpu(&fleet_run.stdout);
                if key_cpu > Duration::ZERO {
                    floor_ratios.push(ms(fleet_run.wall) / (ms(key_cpu) / cpus.max(1) as f64));
                    keys_cpu_many.push(ms(key_cpu));
                }
                t_many.push(fleet_run);
                let requests = proxy.requests();
                calls_many.push(requests.len() as f64);
                let mut ops: Vec<&str> = requests.iter().map(|r| r.operation).collect();
                ops.sort_unstable();
                ops.dedup();
                let by_op: Vec<String> = ops
                    .iter()
                    .map(|op| {
                        format!(
                            "{op} {}",
                            requests.iter().filter(|r| r.operation == *op).count()
                        )
                    })
                    .collect();
                eprintln!("bench: fleet Route 53 requests: {}", by_op.join(", "));
            }
            if let Some(why) = &failed {
                let _ = writeln!(
                    report,
                    "| {label} | failed after {} good run(s): {} | | | | |",
                    t_many.len(),
                    why.replace('|', "/")
                );
                continue;
            }
            let _ = writeln!(
                report,
                "| {label} | {:.0} ms | {:.0} ms | **{:.1}×** | {:.0} / {:.0} | {:.1} MiB |",
                med_ms(&t_one),
                med_ms(&t_many),
                med_ms(&t_many) / med_ms(&t_one),
                median(calls_one),
                median(calls_many),
                med_mib(&t_many)
            );
            if !keys_cpu_many.is_empty() {
                let _ = writeln!(
                    floor_report,
                    "| {label} | {:.0} ms | {:.0} ms | {:.0} ms | **{:.2}×** |",
                    median(keys_cpu_many.clone()),
                    median(keys_cpu_many) / cpus.max(1) as f64,
                    med_ms(&t_many),
                    median(floor_ratios),
                );
            }
            let part = |i: usize| median(cpu_many.iter().map(|c| ms(c[i])).collect());
            let _ = writeln!(
                cpu_report,
                "| {label} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
                part(0),
                part(2),
                part(1),
                part(3),
                part(0) + part(1) + part(2) + part(3),
                med_ms(&t_many) * cpus as f64
            );
        }
        proxy.stop();
        let _ = write!(report, "{cpu_report}");
        let _ = write!(report, "{floor_report}");
        // The CPU floor of the RSA row: generating the fleet's keys alone, on every CPU.
        for (label, kt) in [
            ("RSA 2048", KeyType::Rsa2048),
            ("ECDSA P-256", KeyType::EcdsaP256),
        ] {
            let started = Instant::now();
            let tasks: Vec<_> = (0..opts.fleet)
                .map(|_| tokio::task::spawn_blocking(move || PrivateKey::generate(kt)))
                .collect();
            for t in tasks {
                t.await?.context("generating a key")?;
            }
            let _ = writeln!(
                report,
                "\nGenerating {} {label} keys alone takes {:.0} ms here ({cpus} CPUs): part of every fleet run, as each renewal gets a new key.",
                opts.fleet,
                ms(started.elapsed())
            );
        }
    }
    if opts.wants("noop") {
        // 4. No-op renew with N certificates in state, nothing due.
        let noop = b.write(
            "noop.toml",
            &format!(
                "{}{}",
                // moto has no request rate limit: filling the state goes at full speed.
                b.config_via(
                    &b.dir.join("state-noop"),
                    &b.sb.route53_endpoint(),
                    "max_requests_per_second = 1000\n"
                ),
                // ECDSA keys: filling the state is not what is measured, and 1,000 RSA keys
                // would take half a minute of CPU.
                Bench::fleet_certificates_with("n", opts.noop, "key_type = \"ecdsa-p256\"\n")
            ),
        )?;
        eprintln!(
            "bench: issuing {} certificates for the no-op run …",
            opts.noop
        );
        measure(
            b.brokercert(&noop, &["renew", "--no-jitter", "--force"]),
            "renew (first issuance)",
        )
        .await?;
        let bins = b.bins();
        let mut t_noops: Vec<Vec<Sample>> = vec![Vec::new(); bins.len()];
        for _ in 0..opts.runs {
            for (k, bin) in bins.iter().enumerate() {
                let s = b
                    .measure_bin(bin, &noop, &["renew", "--no-jitter"], "renew (nothing due)")
                    .await?;
                if s.stdout.contains(": renewed (") {
                    bail!("the no-op renew renewed something:\n{}", s.stdout);
                }
                t_noops[k].push(s);
            }
        }
        let t_noop = t_noops[0].clone();
        let connects = count_connects(&b, &noop).await;
        let _ = writeln!(
            report,
            "\n## No-op `renew`: {} certificates in state, nothing due\n",
            opts.noop
        );
        let _ = writeln!(
            report,
            "median {:.1} ms (target ≤ 50 ms), peak RSS {:.1} MiB; network connections made: {connects}",
            med_ms(&t_noop),
            med_mib(&t_noop)
        );
        if bins.len() > 1 {
            for (k, s) in t_noops.iter().enumerate() {
                let _ = writeln!(
                    report,
                    "- {}: median {:.1} ms, peak RSS {:.1} MiB{}",
                    b.label("renew", k),
                    med_ms(s),
                    med_mib(s),
                    image_note(s)
                );
            }
        }
    }
    Ok(())
}

/// The CPU time of every key a run generated, from its `key generated … cpu_us=N` lines.
fn keys_cpu(output: &str) -> Duration {
    output
        .lines()
        .filter(|l| l.contains("key generated"))
        .filter_map(|l| {
            let v = l.split("cpu_us=").nth(1)?;
            let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .map(Duration::from_micros)
        .sum()
}

/// The wrapper command in the environment variable `var` (empty: none), split on spaces.
fn wrapper_from_env(var: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Per-stage medians from the runs' `--timings` blocks.
fn stage_table(report: &mut String, title: &str, runs: &[Sample]) {
    let per_run: Vec<Vec<(String, f64)>> = runs.iter().map(|s| timings_of(&s.stdout)).collect();
    let Some(first) = per_run.iter().find(|r| !r.is_empty()) else {
        return;
    };
    let _ = writeln!(report, "\n{title} (median of `--timings`):\n");
    let _ = writeln!(report, "| stage | median |");
    let _ = writeln!(report, "|---|---:|");
    for (stage, _) in first {
        let v: Vec<f64> = per_run
            .iter()
            .filter_map(|r| r.iter().find(|(s, _)| s == stage).map(|(_, v)| *v))
            .collect();
        let _ = writeln!(report, "| {stage} | {:.0} ms |", median(v));
    }
}

/// Runs the no-op renew under `strace -f -e connect` and counts inet connections
/// (`n/a` without strace).
async fn count_connects(b: &Bench, config: &Path) -> String {
    if Command::new("strace").arg("-V").output().is_err() {
        return "n/a (strace not installed)".into();
    }
    let log = b.dir.join("noop.strace");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=connect", "-o"])
        .arg(&log)
        .arg(&b.bin)
        .arg("--config")
        .arg(config)
        .args(["renew", "--no-jitter"]);
    b.sb.configure_command(&mut cmd);
    match measure(cmd, "strace renew").await {
        Ok(_) => {}
        Err(e) => return format!("n/a ({e})"),
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let n = text
        .lines()
        .filter(|l| l.contains("AF_INET") || l.contains("AF_INET6"))
        .count();
    n.to_string()
}
