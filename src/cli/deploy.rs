//! `brokercert deploy NAME` and `brokercert remove NAME`.

use std::io::{IsTerminal, Write};

use super::common::select;
use super::output;
use super::progress_display::Renderer;
use super::render::api_usage_table;
use super::{Cli, DeployArgs, RemoveArgs};
use crate::config::CertificateSpec;
use crate::deploy::{Material, from_config};
use crate::error::exit;
use crate::progress::Stage;
use crate::store::Store;
use crate::store::StoreError;
use crate::workflow::deploy::{DeployFailed, Deployed, deploy_recorded};

pub async fn run_deploy(cli: &Cli, args: &DeployArgs) -> i32 {
    let (settings, spec) = match select(cli, args.name.get(), "deploy") {
        Ok(x) => x,
        Err(code) => return code,
    };
    if spec.deploy.is_empty() {
        output::error(&format!(
            "certificate `{}` has no deploy target: add a `[[certificate.deploy]]` section (type = \"emqx-cloud\" or \"files\") to the configuration",
            spec.name
        ));
        return exit::CONFIG;
    }
    let _lock = match super::lock_state(cli, &settings.state_dir, args.wait, "deploy").await {
        Ok(l) => l,
        Err(code) => return code,
    };
    if let Err(code) = super::state_backend::attach(&settings) {
        return code;
    }
    let store = Store::new(&settings.state_dir);
    let dir = args
        .from
        .clone()
        .unwrap_or_else(|| store.live_dir(&spec.name));
    if args.from.is_none() && !dir.exists() {
        output::error(&format!(
            "no stored certificate `{}` in {}: run `{}` first, or deploy existing files with `{}`",
            spec.name,
            settings.state_dir.display(),
            crate::hint::command(&format!("issue --name {}", spec.name)),
            crate::hint::command(&format!("deploy {} --from DIR", spec.name)),
        ));
        return exit::CONFIG;
    }
    let material = match Material::from_dir(&dir) {
        Ok(m) => m,
        Err(e) => return output::fail(e),
    };
    let targets = match from_config::targets(&spec) {
        Ok(t) => t,
        Err(e) => return output::fail(e),
    };
    let renderer = Renderer::shared(cli.quiet, cli.verbose);
    let progress = renderer.certificate(&spec.name);
    let started = std::time::Instant::now();
    let then = super::interrupt::after_deploy(&spec.name, &dir);
    let verify = !args.no_verify;
    let services = crate::workflow::Services::new(&settings);
    let deploying = deploy_recorded(&services, &spec, &material, &targets, verify, &progress);
    let code = match super::interrupt::unless_interrupted(&progress, &then, deploying).await {
        Ok(done) => finish_deploy(&spec, done),
        // Stopped while verifying: the deployment is done, its timings are still shown.
        Err(code) if super::interrupt::during(&progress, Stage::Verify) => code,
        Err(code) => return code,
    };
    if args.timings {
        output::say(&crate::workflow::issue::timings_table(
            &[],
            &[],
            started.elapsed(),
        ));
        let usage: Vec<String> = targets.iter().filter_map(|t| t.api_usage()).collect();
        if let Some(t) = api_usage_table(&usage) {
            output::say(&t);
        }
    }
    code
}

/// Says what failed, or that the deployment could not be recorded; the exit code.
fn finish_deploy(
    spec: &CertificateSpec,
    done: Result<(Deployed, Option<StoreError>), DeployFailed>,
) -> i32 {
    match done {
        Ok((_, unrecorded)) => {
            if let Some(e) = unrecorded {
                output::warning(&format!("cannot save the renewal state: {e}"));
            }
            exit::OK
        }
        Err(f) if f.stage == Stage::Verify => {
            output::error(&format!(
                "`{}` was deployed but verification failed: {}. Check the broker, then run `{}`",
                spec.name,
                f.error,
                crate::hint::command(&format!("verify {}", spec.name))
            ));
            f.error.exit_code()
        }
        Err(f) => {
            output::error(&format!("`{}`: {}", spec.name, f.error));
            f.error.exit_code()
        }
    }
}

pub async fn run_remove(cli: &Cli, args: &RemoveArgs) -> i32 {
    let (settings, spec) = match select(cli, args.name.get(), "remove") {
        Ok(x) => x,
        Err(code) => return code,
    };
    let targets = match from_config::targets(&spec) {
        Ok(t) => t,
        Err(e) => return output::fail(e),
    };
    if targets.is_empty() {
        output::error(&format!(
            "certificate `{}` has no deploy target to remove TLS from",
            spec.name
        ));
        return exit::CONFIG;
    }
    let names: Vec<String> = targets.iter().map(|t| t.describe()).collect();
    output::warning(&format!(
        "removing the TLS configuration of {} disconnects every client on ports 8883 (mqtts) and 8084 (wss)",
        names.join(", ")
    ));
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            output::error(
                "not removing without confirmation: run again with `--yes` (stdin is not a terminal)",
            );
            return exit::CONFIG;
        }
        eprint!("Type the certificate name `{}` to confirm: ", spec.name);
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_err() || line.trim() != spec.name {
            output::error("not confirmed; nothing was removed");
            return exit::CONFIG;
        }
    }
    let _lock = match super::lock_state(cli, &settings.state_dir, args.wait, "remove").await {
        Ok(l) => l,
        Err(code) => return code,
    };
    if let Err(code) = super::state_backend::attach(&settings) {
        return code;
    }
    for t in &targets {
        if let Err(e) = t.remove().await {
            return output::fail(e);
        }
        output::say(&format!(
            "Removed the TLS configuration of {}",
            t.describe()
        ));
    }
    exit::OK
}
