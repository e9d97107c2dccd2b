//! `brokercert doctor`: runs the checks of `workflow::doctor` and prints them, one line per
//! check with its evidence and fix (or one JSON object per certificate under `--json`),
//! then the list of needed checks that fail.
//!
//! Owns: the flags, the wording and layout, the exit code (0, or 10 when a needed check
//! fails). Does not own the checks.

use clap::Args;

use super::Cli;
use super::output;
use crate::config::Overrides;
use crate::error::exit;
use crate::workflow::doctor::{self, Report, Status};

/// Flags of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check only this configured certificate (default: every one).
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// Machine-readable output: one JSON object per certificate (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// `brokercert doctor`.
pub async fn run(cli: &Cli, args: &DoctorArgs) -> i32 {
    output::set_json(args.json);
    let over = Overrides {
        state_dir: cli.state_dir.clone(),
        ..Default::default()
    };
    let settings = match super::common::load(cli.config.as_deref(), &over) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let specs: Vec<_> = settings
        .certificates
        .iter()
        .filter(|c| args.name.as_ref().is_none_or(|n| *n == c.name))
        .collect();
    if specs.is_empty() {
        let known = settings
            .certificates
            .iter()
            .map(|c| format!("`{}`", c.name))
            .collect::<Vec<_>>()
            .join(", ");
        output::error(&match &args.name {
            Some(n) if !known.is_empty() => format!(
                "no certificate `{n}` in the configuration (it has {known}); pass one of those \
                 to `--name`, or leave `--name` out to check them all"
            ),
            _ => "nothing to check: the configuration has no `[[certificate]]` section. Add \
                  one (see `brokercert init`)"
                .to_string(),
        });
        return exit::CONFIG;
    }
    let reports = doctor::doctor(&settings, &specs).await;
    let mut code = exit::OK;
    for r in &reports {
        let this = if r.failures().is_empty() {
            exit::OK
        } else {
            exit::DOCTOR
        };
        if this != exit::OK {
            code = this;
        }
        if args.json {
            output::emit_json("doctor", json(r, this));
        } else {
            output::say(&render(r));
        }
    }
    code
}

fn json(r: &Report, code: i32) -> serde_json::Map<String, serde_json::Value> {
    let mut f = serde_json::Map::new();
    f.insert("name".into(), r.name.clone().into());
    f.insert("ok".into(), r.failures().is_empty().into());
    f.insert("domains".into(), r.domains.clone().into());
    f.insert(
        "checks".into(),
        r.checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "section": c.section,
                    "check": c.name,
                    "status": c.status.as_str(),
                    "evidence": c.evidence,
                    "fix": c.fix,
                })
            })
            .collect::<Vec<_>>()
            .into(),
    );
    f.insert(
        "failed".into(),
        r.failures()
            .iter()
            .map(|c| serde_json::Value::from(c.name.clone()))
            .collect::<Vec<_>>()
            .into(),
    );
    f.insert("exit_code".into(), code.into());
    f
}

/// The text: a heading, the checks by section (`ok`/`warn`/`FAIL`/`skip`, the check, the
/// evidence, the fix on its own line), then the verdict with the failing checks listed.
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "Doctor for `{}` ({}) — nothing was ordered or deployed\n",
        r.name,
        r.domains.join(", ")
    );
    let mut section = "";
    for c in &r.checks {
        if c.section != section {
            section = c.section;
            out.push_str(&format!("{}\n", section.to_uppercase()));
        }
        let mark = match c.status {
            Status::Pass => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        out.push_str(&format!("  {mark:<5}{}: {}\n", c.name, c.evidence));
        if let Some(fix) = &c.fix
            && matches!(c.status, Status::Fail | Status::Warn)
        {
            out.push_str(&format!("         fix: {fix}\n"));
        }
    }
    let failures = r.failures();
    if failures.is_empty() {
        out.push_str("Every needed check passes: `brokercert issue` should work from here.");
    } else {
        out.push_str(&format!(
            "{} needed check(s) fail (exit code {}):\n",
            failures.len(),
            exit::DOCTOR
        ));
        let list = failures
            .iter()
            .map(|c| format!("  - {} {}", c.section, c.name))
            .collect::<Vec<_>>()
            .join("\n");
        out.push_str(&list);
    }
    out
}
