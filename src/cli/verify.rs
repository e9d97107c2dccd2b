//! `brokercert verify NAME` and the printing of a verification report (after `issue`,
//! `deploy`, `renew` too). The stage itself (probe target, settle loop, judgement) is
//! `workflow::verify`.

use super::output;
use super::progress_display::Renderer;
use super::render::report;
use super::{Cli, VerifyArgs};
use crate::error::exit;
use crate::workflow::verify::{VerifyOptions, probe_settled};

/// One transport's outcome as JSON (docs/json.md, `verify`).
pub fn transport_json(t: &crate::verify::TransportReport) -> serde_json::Value {
    let cert = t.server_certificate.as_ref();
    serde_json::json!({
        "transport": t.transport.to_string(),
        "url": t.url,
        "ok": t.is_ok(),
        "peer": t.outcome.as_ref().ok().map(|rt| rt.peer.to_string()),
        "round_trip_ms": t.outcome.as_ref().ok().map(|rt| rt.round_trip.as_millis() as u64),
        "served_serial": cert.map(|c| c.serial_hex.clone()),
        "served_not_after": cert.and_then(|c| c.not_after).map(output::rfc3339),
        "error": t.outcome.as_ref().err().map(|e| e.to_string()),
    })
}

pub async fn run_verify(cli: &Cli, args: &VerifyArgs) -> i32 {
    output::set_json(args.json);
    let (settings, spec) = match super::common::select(cli, args.name.get(), "verify") {
        Ok(x) => x,
        Err(code) => return code,
    };
    let opts = VerifyOptions {
        connect: args.connect,
        expect_serial: args.expect_serial.clone(),
        ..Default::default()
    };
    let renderer = Renderer::shared(cli.quiet, cli.verbose);
    let progress = renderer.certificate(&spec.name);
    let services = crate::workflow::Services::new(&settings);
    let probed = probe_settled(services.probe(), &settings, &spec, &opts, &progress).await;
    renderer.clear();
    let (code, transports, skipped, error) = match probed {
        Ok(None) => {
            output::warning(&format!(
                "verification of `{}` is switched off (`skip = true`)",
                spec.name
            ));
            (exit::OK, Vec::new(), true, None)
        }
        Ok(Some(r)) => {
            let transports = r.transports.iter().map(transport_json).collect();
            match report(&r, opts.expect_serial.as_deref()) {
                Ok(()) => (exit::OK, transports, false, None),
                Err(e) => {
                    output::error(&format!("`{}`: {e}", spec.name));
                    (e.exit_code(), transports, false, Some(e.to_string()))
                }
            }
        }
        Err(e) => {
            output::error(&format!("`{}`: {e}", spec.name));
            (e.exit_code(), Vec::new(), false, Some(e.to_string()))
        }
    };
    if args.json {
        let serde_json::Value::Object(fields) = serde_json::json!({
            "name": spec.name,
            "ok": code == exit::OK,
            "skipped": skipped,
            "transports": transports,
            "error": error,
            "exit_code": code,
        }) else {
            return exit::INTERNAL;
        };
        output::emit_json("verify", fields);
    }
    code
}
