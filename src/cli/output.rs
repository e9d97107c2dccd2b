//! What the CLI prints: the summary on stdout (on stderr under `--json`, whose JSON Lines
//! this module writes), errors as one paragraph starting with `error:`. Progress is
//! `progress_display`'s.
//!
//! Owns: wording and layout. Does not own decisions.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use time::OffsetDateTime;

use crate::workflow::Issued;
use crate::workflow::cname::CnameOutcome;

/// The version of every `--json` object (docs/json.md). Bumped only when a documented field
/// changes meaning or goes away; new fields may appear without a bump.
pub const SCHEMA_VERSION: u32 = 1;

static JSON_MODE: AtomicBool = AtomicBool::new(false);

/// `--json`: stdout carries JSON Lines only; human text that would go there goes to stderr.
pub fn set_json(on: bool) {
    JSON_MODE.store(on, Ordering::SeqCst);
}

/// Whether `--json` is on.
pub fn json_mode() -> bool {
    JSON_MODE.load(Ordering::SeqCst)
}

/// Prints human result text: stdout normally, stderr under `--json`.
pub fn say(text: &str) {
    let text = crate::terminal_text::sanitize(text);
    super::progress_display::clear_shared();
    if json_mode() {
        let _ = writeln!(std::io::stderr(), "{text}");
    } else {
        let _ = writeln!(std::io::stdout(), "{text}");
    }
}

/// Prints lines as [`say`] does, in one write: a no-op `renew` over 1,000 certificates
/// prints a line each, and stdout, line-buffered, would make one syscall per line.
pub fn say_lines(lines: impl IntoIterator<Item = String>) {
    let mut text = String::new();
    for line in lines {
        text.push_str(&crate::terminal_text::sanitize(&line));
        text.push('\n');
    }
    if text.is_empty() {
        return;
    }
    super::progress_display::clear_shared();
    let _ = if json_mode() {
        std::io::stderr().lock().write_all(text.as_bytes())
    } else {
        std::io::stdout().lock().write_all(text.as_bytes())
    };
}

/// Prints one JSON object as one line on stdout (JSON Lines), with `schema_version` and
/// `command` first.
pub fn emit_json(command: &str, mut fields: serde_json::Map<String, serde_json::Value>) {
    let mut obj = serde_json::Map::new();
    obj.insert("schema_version".into(), SCHEMA_VERSION.into());
    obj.insert("command".into(), command.into());
    obj.append(&mut fields);
    let _ = writeln!(std::io::stdout(), "{}", serde_json::Value::Object(obj));
}

/// RFC 3339 for JSON (`2026-02-21T10:00:00Z`).
pub fn rfc3339(t: OffsetDateTime) -> serde_json::Value {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .map(serde_json::Value::from)
        .unwrap_or(serde_json::Value::Null)
}

/// Prints an error paragraph to stderr.
pub fn error(message: &str) {
    let message = crate::terminal_text::sanitize(message);
    super::progress_display::clear_shared();
    let _ = writeln!(std::io::stderr(), "error: {message}");
}

/// Prints `e` as an error paragraph and returns its exit code.
pub fn fail(e: impl Into<crate::error::Error>) -> i32 {
    let e = e.into();
    error(&e.to_string());
    e.exit_code()
}

/// Prints a warning paragraph to stderr.
pub fn warning(message: &str) {
    let message = crate::terminal_text::sanitize(message);
    super::progress_display::clear_shared();
    let _ = writeln!(std::io::stderr(), "warning: {message}");
}

/// A time for people: `2026-02-21 10:00:00 UTC`.
pub fn date(t: OffsetDateTime) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&fmt).unwrap_or_else(|_| t.to_string())
}

/// The human summary of an issued certificate.
pub fn issued_summary(i: &Issued, now: OffsetDateTime) -> String {
    let days = (i.not_after - now).whole_days();
    let mut chain = vec!["leaf".to_string()];
    chain.extend(i.chain.iter().cloned());
    chain.push(format!("{} ({})", i.anchor, i.anchor_source));
    let cname = match &i.cname {
        CnameOutcome::Skipped => None,
        CnameOutcome::AlreadyPresent => Some("already in place".to_string()),
        CnameOutcome::Created => Some("created".to_string()),
        CnameOutcome::Replaced(old) => Some(format!("created, replacing {old}")),
    };
    let live = i.paths.live_dir.display();
    let mut out = format!(
        "Issued certificate `{}` for {}\n  serial       {}\n  not after    {} ({days} days left)\n  key          {}\n  chain        {}\n",
        i.name,
        i.domains.join(", "),
        i.serial,
        date(i.not_after),
        if i.key_reused {
            format!("{} (reused: the same public key as before)", i.key_type)
        } else {
            i.key_type.to_string()
        },
        chain.join(" ← "),
    );
    if let Some(c) = cname {
        let target = i.cname_target.as_deref().unwrap_or("?");
        out.push_str(&format!(
            "  CNAME        {} → {target} ({c})\n",
            i.domains[0]
        ));
    }
    out.push_str(&format!(
        "  files        {live}/cert.pem, chain.pem, fullchain.pem, privkey.pem (0600), root.pem\n  MQTT clients use root.pem as their CA file\n"
    ));
    out
}

/// Writes `bytes` to stdout. A closed pipe is not an error (the reader had enough); any
/// other write error is reported once, without a panic.
pub fn write_stdout(bytes: &[u8]) -> i32 {
    use crate::error::exit;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => exit::OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            exit::INTERNAL
        }
    }
}
