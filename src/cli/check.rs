//! `brokercert check PATH...`: one PASS/FAIL line per rule with evidence and fix, or `--json`.

use super::{CheckArgs, Cli, output};
use crate::check::check;
use crate::clock::{Clock, SystemClock};
use crate::config::{Overrides, Settings};
use crate::deploy::rules::ImportRules;
use crate::error::exit;
use crate::names::DomainName;
use crate::pki::anchors::TrustAnchors;

pub fn run(cli: &Cli, args: &CheckArgs) -> i32 {
    let mut rules = match args.profile.as_str() {
        "emqx-cloud" => ImportRules::emqx_cloud(),
        "files" => ImportRules::files(),
        other => {
            output::error(&format!(
                "`--profile {other}` is not a known target profile; expected `emqx-cloud` (EMQX Cloud's import rules) or `files` (brokers that read PEM files)"
            ));
            return exit::CONFIG;
        }
    };
    if let Some(d) = args.min_days_left {
        rules.min_days_left = d;
    }
    let mut names = Vec::new();
    for d in &args.domains {
        match DomainName::parse(d) {
            Ok(n) => names.push(n),
            Err(e) => {
                output::error(&format!("`--domain {d}`: {e}"));
                return exit::CONFIG;
            }
        }
    }
    // What fresh certificates from the configured CA leave of the import window.
    let mut import_notes = Vec::new();
    if let Some(name) = &args.name {
        let over = Overrides {
            name: Some(name.clone()),
            state_dir: cli.state_dir.clone(),
            ..Default::default()
        };
        match Settings::load(cli.config.as_deref(), &over) {
            Ok(s) => {
                if names.is_empty() {
                    names = s
                        .certificates
                        .first()
                        .map(|c| c.domains.clone())
                        .unwrap_or_default();
                }
                import_notes = crate::acme::lifetime::notes(
                    &s.acme,
                    &[(format!("profile {}", rules.profile), rules.min_days_left)],
                    SystemClock.now().date(),
                );
            }
            Err(e) => return output::fail(e),
        }
    }
    // `check NAME`: a configured certificate's stored files (what the 422 hint suggests).
    let mut paths = args.paths.clone();
    let mut name = args.name.clone();
    if let [only] = paths.as_slice()
        && !only.exists()
        && only.components().count() == 1
        && let Some(n) = only.to_str().map(str::to_string)
    {
        let over = Overrides {
            name: Some(n.clone()),
            state_dir: cli.state_dir.clone(),
            ..Default::default()
        };
        if let Ok(s) = Settings::load(cli.config.as_deref(), &over)
            && let Some(spec) = s.certificates.first()
        {
            paths = vec![crate::store::Store::new(&s.state_dir).live_dir(&spec.name)];
            if names.is_empty() {
                names = spec.domains.clone();
            }
            name = Some(n);
        }
    }
    let anchors = TrustAnchors::bundled().with_system();
    let report = match check(&paths, &names, &rules, &anchors, SystemClock.now()) {
        Ok(r) => r,
        Err(e) => {
            output::error(&e.to_string());
            return exit::CONFIG;
        }
    };
    let code = if report.ok() {
        exit::OK
    } else {
        exit::CERTIFICATE
    };
    if args.json {
        let report_value = match serde_json::to_value(&report) {
            Ok(v) => v,
            Err(e) => {
                output::error(&format!("cannot write JSON: {e}"));
                return exit::INTERNAL;
            }
        };
        let mut fields = serde_json::Map::new();
        fields.insert("name".into(), name.clone().into());
        fields.insert("ok".into(), report.ok().into());
        fields.insert("report".into(), report_value);
        fields.insert("exit_code".into(), code.into());
        fields.insert("import_outlook".into(), import_notes.clone().into());
        output::emit_json("check", fields);
    } else {
        output::say(&format!(
            "check {} ({}{}; profile {})",
            report.inputs.join(" "),
            report.leaf.as_deref().unwrap_or("no certificate"),
            report
                .serial
                .as_deref()
                .map(|s| format!(", serial {s}"))
                .unwrap_or_default(),
            report.profile
        ));
        for n in report.notes.iter().chain(&import_notes) {
            output::say(&format!("  note: {n}"));
        }
        for v in &report.verdicts {
            if v.ok {
                output::say(&format!("PASS {:<25} {}", v.rule, v.found));
            } else {
                output::say(&format!(
                    "FAIL {:<25} found {}, expected {}{}",
                    v.rule,
                    v.found,
                    v.expected,
                    v.fix
                        .as_ref()
                        .map(|f| format!(" — fix: {f}"))
                        .unwrap_or_default()
                ));
            }
        }
        let failed = report.verdicts.iter().filter(|v| !v.ok).count();
        if failed == 0 {
            output::say(&format!("all {} rules passed", report.verdicts.len()));
        } else {
            output::say(&format!(
                "{failed} of {} rules failed",
                report.verdicts.len()
            ));
        }
    }
    code
}
