//! `brokercert status [--json] [--offline]`: one table of every configured certificate —
//! names, key type, expiry and days left, the next renewal and why (the same `renew::policy`
//! decision `renew` makes, from the state in `renewal/<name>.json`), what each deployment
//! serves now, and the last run's result.
//!
//! Owns: their layout (the table and the JSON objects). Does not own gathering the facts
//! (`workflow::status`) nor the decision (`renew::policy`).

use clap::Args;
use time::OffsetDateTime;

use super::Cli;
use super::output;
use crate::error::exit;
use crate::workflow::status::{StatusOptions, StatusRow, status};

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

fn date(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| t.to_string())
}

fn json(r: &StatusRow) -> serde_json::Value {
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
fn table(rows: &[StatusRow]) -> String {
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
    let opts = StatusOptions {
        offline: args.offline,
        probe: args.probe,
    };
    let services = crate::workflow::Services::new(&settings);
    let rows = status(&services, &opts).await;
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
