//! Runs `brokercert issue` end to end against the local sandbox (Pebble, moto, the sandbox
//! DNS server): the README's first command. `--keep-running` leaves the sandbox up and
//! prints the environment and configuration to use it by hand.

use std::process::{Command, ExitCode};

use brokercert::sandbox::{Sandbox, SandboxOptions};

#[tokio::main]
async fn main() -> ExitCode {
    let keep = std::env::args().any(|a| a == "--keep-running");
    match run(keep).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sandbox demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(keep: bool) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let exe = std::env::current_exe().context("locating this example")?;
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("brokercert"))
        .filter(|p| p.exists())
        .context(
            "the brokercert binary is not built next to this example: run `cargo build` first",
        )?;

    eprintln!(
        "sandbox: starting moto (Route 53), the sandbox DNS server and Pebble (ACME) on 127.0.0.1 …"
    );
    let sb = Sandbox::start(
        SandboxOptions::new()
            .zone("example.test")
            .zone("emqx-cloud.test"),
    )
    .await
    .context("starting the sandbox (run `bash .ci/install` first)")?;
    // The "deployment": its connection address resolves to this machine.
    let deployment = sb.zone_id("emqx-cloud.test").context("zone")?;
    sb.upsert(
        &deployment,
        "d1a2b3c4.emqx-cloud.test",
        "A",
        60,
        &["127.0.0.1"],
    )
    .await?;

    let state = sb.dir().join("state");
    let config = sb.dir().join("brokercert.toml");
    std::fs::write(
        &config,
        format!(
            r#"# Written by examples/sandbox.rs: every server below runs on 127.0.0.1.
state_dir = "{state}"

[acme]
directory = "{dir}"        # Pebble, Let's Encrypt's test CA
email = "ops@example.test"
agree_tos = true
https_roots = ["{tls}"]    # Pebble's HTTPS certificate is from the sandbox's own CA

[route53]
endpoint_url = "{r53}"     # moto

[dns]
nameservers = ["{dns}"]    # the sandbox DNS server, serving moto's records

[trust]
extra_roots = ["{roots}"]  # Pebble's issuing root(s)

[[certificate]]
name = "mqtt-demo"
domains = ["mqtt.example.test"]
cname_target = "d1a2b3c4.emqx-cloud.test"
"#,
            state = state.display(),
            dir = sb.acme_directory_url(),
            tls = sb.pebble_tls_ca_path().display(),
            r53 = sb.route53_endpoint(),
            dns = sb.dns_addr(),
            roots = sb.pebble_roots_path().display(),
        ),
    )?;
    eprintln!("sandbox: ready; configuration in {}\n", config.display());
    eprintln!("$ brokercert issue --config {} --timings", config.display());

    let mut cmd = Command::new(&bin);
    cmd.args(["issue", "--config"])
        .arg(&config)
        .arg("--timings");
    sb.configure_command(&mut cmd);
    let status = cmd.status().context("running brokercert")?;

    if keep {
        eprintln!("\nThe sandbox keeps running until Ctrl-C. To use it from another shell:");
        for (k, v) in sb.aws_env() {
            eprintln!("  export {k}={v}");
        }
        eprintln!("  {} issue --config {}", bin.display(), config.display());
        let _ = tokio::signal::ctrl_c().await;
    }
    drop(sb);
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
