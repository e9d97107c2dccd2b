//! `brokercert status [--json] [--offline]`: one table of every configured certificate —
//! names, key type, expiry and days left, the next renewal and why (the same `renew::policy`
//! decision `renew` makes, from the state in `renewal/<name>.json`), what each deployment
//! serves now, and the last run's result.
//!
//! Owns: gathering those facts (reads only: the store, the renewal state, each target's
//! read API) and their layout. Does not own the decision (`renew::policy`), does not ask the
//! CA (the ARI window shown is the one the last `renew` stored) and never writes anything.

use clap::Args;
use time::OffsetDateTime;

use super::Cli;
use super::output;
use crate::clock::{Clock, SystemClock};
use crate::config::{CertificateSpec, Settings};
use crate::deploy::from_config;
use crate::error::exit;
use crate::pki::bundle::parse_bundle;
use crate::pki::certificate::Certificate;
use crate::renew::policy::{Decision, Reason};
use crate::renew::state;
use crate::store::Store;

/// Flags of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this certificate (default: every configured one).
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// The same as `--name`.
    #[arg(value_name = "NAME", conflicts_with = "name")]
    pub name_positional: Option<String>,
    /// Machine-readable output: one JSON object per certificate and line (docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// Do not contact the deployment targets (show only what is stored locally).
    #[arg(long, conflicts_with = "probe")]
    pub offline: bool,
    /// Also connect to the broker (TLS handshake, as `[certificate.verify]` says) and compare
    /// the serial it serves with the stored one.
    #[arg(long)]
    pub probe: bool,
}

/// What one deployment target serves now.
#[derive(Debug, Clone)]
struct Served {
    target: String,
    /// `running`, `pending`, `failed`, `files`, `none` (nothing configured), `unknown`
    /// (not contacted or unreadable).
    status: String,
    expire: Option<OffsetDateTime>,
    /// Whether the target named the time zone of `expire` (EMQX Cloud may not).
    expire_zone_known: bool,
    /// Whether what it serves is the stored certificate (by expiry and CN: EMQX Cloud
    /// reports only those); None when unknown.
    matches_stored: Option<bool>,
    error: Option<String>,
}

/// One row.
#[derive(Debug, Clone)]
struct Row {
    name: String,
    domains: Vec<String>,
    key_type: String,
    serial: Option<String>,
    not_after: Option<OffsetDateTime>,
    days_left: Option<i64>,
    /// `now`, or when it becomes due.
    next_renewal: Option<OffsetDateTime>,
    /// `missing`, `expired`, `ari_window`, `lifetime`, `backoff`, `import_impossible`.
    next_reason: &'static str,
    renew_now: bool,
    deployments: Vec<Served>,
    last_result: &'static str,
    last_at: Option<OffsetDateTime>,
    last_error: Option<String>,
    failures: u32,
    /// What fresh certificates from the configured CA leave of each target's import window.
    import_notes: Vec<String>,
}

fn reason_word(r: &Reason) -> &'static str {
    match r {
        Reason::Forced => "forced",
        Reason::Missing => "missing",
        Reason::Expired => "expired",
        Reason::AriWindow => "ari_window",
        Reason::Lifetime => "lifetime",
    }
}

fn reason_text(word: &str) -> &'static str {
    match word {
        "missing" => "no certificate stored",
        "expired" => "expired",
        "ari_window" => "the CA's renewal window (ARI)",
        "lifetime" => "1/3 of the lifetime left",
        "backoff" => "retry after a failure (backoff)",
        "import_impossible" => "never: a target refuses the CA's lifetime",
        _ => "forced",
    }
}

fn read_leaf(store: &Store, name: &str) -> Option<Certificate> {
    let text = store.read_live(name, "cert.pem").ok()??;
    parse_bundle(text.as_bytes())
        .ok()?
        .certificates
        .into_iter()
        .next()
}

/// What the broker serves over TLS, per transport (`--probe`).
async fn probe_served(
    settings: &Settings,
    spec: &CertificateSpec,
    leaf: Option<&Certificate>,
) -> Vec<Served> {
    let opts = crate::workflow::verify::VerifyOptions::default();
    let target = match crate::workflow::verify::probe_target(settings, spec, &opts) {
        Ok(Some(t)) => t,
        Ok(None) => return Vec::new(),
        Err(e) => {
            return vec![Served {
                target: "TLS probe".into(),
                status: "unknown".into(),
                expire: None,
                expire_zone_known: true,
                matches_stored: None,
                error: Some(e.to_string()),
            }];
        }
    };
    let services = crate::workflow::Services::new(settings);
    match services.probe().probe(&target).await {
        Ok(report) => report
            .transports
            .iter()
            .map(|t| {
                let cert = t.server_certificate.as_ref();
                Served {
                    target: format!("TLS probe {} {}", t.transport, t.url),
                    status: if cert.is_some() { "tls" } else { "unknown" }.into(),
                    expire: cert.and_then(|c| c.not_after),
                    expire_zone_known: true,
                    matches_stored: cert.map(|c| {
                        leaf.is_some_and(|l| c.serial_hex.eq_ignore_ascii_case(l.serial_hex()))
                    }),
                    error: if cert.is_none() {
                        t.outcome.as_ref().err().map(|e| e.to_string())
                    } else {
                        None
                    },
                }
            })
            .collect(),
        Err(e) => vec![Served {
            target: "TLS probe".into(),
            status: "unknown".into(),
            expire: None,
            expire_zone_known: true,
            matches_stored: None,
            error: Some(e.to_string()),
        }],
    }
}

async fn row(
    settings: &Settings,
    spec: &CertificateSpec,
    args: &StatusArgs,
    now: OffsetDateTime,
) -> Row {
    let offline = args.offline;
    let store = Store::new(&settings.state_dir);
    let leaf = read_leaf(&store, &spec.name);
    let (st, _warning) = state::load(&settings.state_dir.join("renewal"), &spec.name);
    let mut deployments = Vec::new();
    let mut min_days_left = None;
    let mut import_notes = Vec::new();
    match from_config::targets(spec) {
        Ok(targets) => {
            min_days_left = targets.iter().map(|t| t.rules().min_days_left).max();
            let windows: Vec<(String, i64)> = targets
                .iter()
                .map(|t| (t.describe(), t.rules().min_days_left))
                .collect();
            import_notes = crate::acme::lifetime::notes(&settings.acme, &windows, now.date());
            for t in &targets {
                let mut s = Served {
                    target: t.describe(),
                    status: "unknown".into(),
                    expire: None,
                    expire_zone_known: true,
                    matches_stored: None,
                    error: None,
                };
                if !offline {
                    match t.current().await {
                        Ok(Some(c)) => {
                            s.matches_stored = match &leaf {
                                Some(l) => c.names_leaf(l),
                                None => Some(false),
                            };
                            // The stored certificate's own expiry when it is the one served
                            // (the reported one may be in an unnamed time zone).
                            s.expire = match (&leaf, s.matches_stored) {
                                (Some(l), Some(true)) => Some(l.not_after()),
                                _ => c.expire.map(|e| e.at),
                            };
                            s.expire_zone_known = s.matches_stored == Some(true)
                                || c.expire.is_none_or(|e| e.slack.is_zero());
                            s.status = c.status;
                        }
                        Ok(None) => {
                            s.status = "none".into();
                            s.matches_stored = Some(false);
                        }
                        Err(e) => s.error = Some(e.to_string()),
                    }
                }
                deployments.push(s);
            }
        }
        Err(e) => deployments.push(Served {
            target: "(configuration)".into(),
            status: "unknown".into(),
            expire: None,
            expire_zone_known: true,
            matches_stored: None,
            error: Some(e.to_string()),
        }),
    }
    if args.probe {
        deployments.extend(probe_served(settings, spec, leaf.as_ref()).await);
    }
    let d = crate::workflow::renew::decide::from_stored(
        settings,
        leaf.as_ref(),
        &st,
        min_days_left,
        now,
    );
    let (next_renewal, next_reason, renew_now) = match &d {
        Decision::Renew(r) => (Some(now), reason_word(r), true),
        Decision::NotDue { next, by } => (Some(*next), reason_word(by), false),
        Decision::Backoff { until, .. } => (Some(*until), "backoff", false),
        Decision::ImportImpossible { .. } => (None, "import_impossible", false),
    };
    let (last_result, last_at) = match (st.failures, st.last_failure, st.last_success) {
        (n, Some(t), _) if n > 0 => ("failed", Some(t)),
        (_, _, Some(t)) => ("ok", Some(t)),
        _ => ("never", None),
    };
    Row {
        name: spec.name.clone(),
        domains: spec.domains.iter().map(|d| d.to_string()).collect(),
        key_type: spec.key_type.to_string(),
        serial: leaf.as_ref().map(|l| l.serial_hex().to_string()),
        not_after: leaf.as_ref().map(|l| l.not_after()),
        days_left: leaf.as_ref().map(|l| (l.not_after() - now).whole_days()),
        next_renewal,
        next_reason,
        renew_now,
        deployments,
        last_result,
        last_at,
        last_error: if last_result == "failed" {
            st.last_error.clone()
        } else {
            None
        },
        failures: st.failures,
        import_notes,
    }
}

fn date(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| t.to_string())
}

fn json(r: &Row) -> serde_json::Value {
    serde_json::json!({
        "name": r.name,
        "domains": r.domains,
        "key_type": r.key_type,
        "serial": r.serial,
        "not_after": r.not_after.map(output::rfc3339),
        "days_left": r.days_left,
        "next_renewal": r.next_renewal.map(output::rfc3339),
        "next_reason": r.next_reason,
        "renew_now": r.renew_now,
        "deployments": r.deployments.iter().map(|d| serde_json::json!({
            "target": d.target,
            "status": d.status,
            "expire": d.expire.map(output::rfc3339),
            "expire_zone_known": d.expire_zone_known,
            "matches_stored": d.matches_stored,
            "error": d.error,
        })).collect::<Vec<_>>(),
        "last_run": {
            "result": r.last_result,
            "at": r.last_at.map(output::rfc3339),
            "error": r.last_error,
            "failures": r.failures,
        },
        "import_outlook": r.import_notes,
    })
}

/// The human table: one line per certificate, then one indented line per deployment.
fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.key_type.clone(),
                r.not_after.map(date).unwrap_or_else(|| "-".into()),
                r.days_left
                    .map(|d| format!("{d} d"))
                    .unwrap_or_else(|| "-".into()),
                match (r.renew_now, r.next_renewal) {
                    (true, _) => "now".into(),
                    (false, Some(t)) => date(t),
                    (false, None) => "never".into(),
                },
                reason_text(r.next_reason).to_string(),
                match (r.last_result, r.last_at) {
                    ("failed", Some(t)) => format!("FAILED {} ({}x)", date(t), r.failures),
                    (word, Some(t)) => format!("{word} {}", date(t)),
                    (word, None) => word.to_string(),
                },
            ]
        })
        .collect();
    let head = [
        "NAME",
        "KEY",
        "NOT AFTER",
        "LEFT",
        "NEXT RENEWAL",
        "WHY",
        "LAST RUN",
    ];
    let mut width = head.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: &[String]| {
        let mut s = String::new();
        for (i, (text, w)) in c.iter().zip(width).enumerate() {
            if i + 1 == c.len() {
                s.push_str(text);
            } else {
                s.push_str(&format!("{text:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(&head.map(String::from));
    out.push('\n');
    for (r, c) in rows.iter().zip(&cells) {
        out.push_str(&line(c));
        out.push('\n');
        out.push_str(&format!("  names: {}\n", r.domains.join(", ")));
        if let Some(s) = &r.serial {
            out.push_str(&format!("  serial: {s}\n"));
        }
        if let Some(e) = &r.last_error {
            out.push_str(&format!("  last error: {e}\n"));
        }
        if r.deployments.is_empty() {
            out.push_str("  deploy: no target configured\n");
        }
        for d in &r.deployments {
            let what = match (&d.error, d.status.as_str()) {
                (Some(e), _) => format!("cannot read: {e}"),
                (None, "unknown") => "not contacted (--offline)".to_string(),
                (None, "none") => "serves nothing (no TLS configured)".to_string(),
                (None, status) => {
                    let mut s = status.to_string();
                    if let Some(e) = d.expire {
                        s.push_str(&format!(", expires {}", date(e)));
                        if !d.expire_zone_known {
                            s.push_str(" (if the target's time is UTC: it names no zone)");
                        }
                    }
                    match d.matches_stored {
                        Some(true) => s.push_str(" — the stored certificate"),
                        Some(false) => s.push_str(" — NOT the stored certificate"),
                        None => {}
                    }
                    s
                }
            };
            out.push_str(&format!("  deploy: {}: {what}\n", d.target));
        }
        for n in &r.import_notes {
            out.push_str(&format!("  import window: {n}\n"));
        }
    }
    out
}

/// `brokercert status`.
pub async fn run(cli: &Cli, args: &StatusArgs) -> i32 {
    output::set_json(args.json);
    let name = args.name.as_deref().or(args.name_positional.as_deref());
    let settings = match super::common::load_settings_for(cli, name, "nothing to show") {
        Ok(s) => s,
        Err(code) => return code,
    };
    // State in S3: fill the working copy, unless a run on this machine holds it (and keeps
    // it current).
    let _lock = match &settings.state_remote {
        Some(_) => super::take_state_lock(&settings.state_dir, None, "status", true)
            .await
            .ok(),
        None => None,
    };
    if _lock.is_some()
        && let Err(code) = super::state_backend::attach(&settings)
    {
        return code;
    }
    let now = SystemClock.now();
    let mut rows = Vec::new();
    for spec in &settings.certificates {
        rows.push(row(&settings, spec, args, now).await);
    }
    if args.json {
        for r in &rows {
            if let serde_json::Value::Object(fields) = json(r) {
                output::emit_json("status", fields);
            }
        }
    } else {
        output::say(table(&rows).trim_end_matches('\n'));
    }
    exit::OK
}
