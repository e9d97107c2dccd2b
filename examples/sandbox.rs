//! Runs `brokercert issue` end to end against the local sandbox (Pebble, moto, the sandbox
//! DNS server): the README's first command. `--keep-running` leaves the sandbox up and
//! prints the environment and configuration to use it by hand.

use std::process::{Command, ExitCode};

use brokercert_sandbox::{DeploymentSpec, EmqxCloudEmulator, Sandbox, SandboxOptions};

/// Demo credentials of the emulated Platform API (not secrets of anything real).
const DEMO_KEY: &str = "demo-api-key";
const DEMO_SECRET: &str = "demo-api-secret";

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
    // The "deployment": its connection address resolves to this machine, and the emulated
    // Platform API reconfigures a real Mosquitto with what is uploaded.
    let deployment = sb.zone_id("emqx-cloud.test").context("zone")?;
    sb.upsert(
        &deployment,
        "d1a2b3c4.emqx-cloud.test",
        "A",
        60,
        &["127.0.0.1"],
    )
    .await?;
    let emqx = EmqxCloudEmulator::start(sb.dir().join("emqx-cloud"))
        .await
        .context("starting the EMQX Cloud emulator")?;
    emqx.add_deployment(DeploymentSpec::dedicated("d1a2b3c4", DEMO_KEY, DEMO_SECRET))?;
    let ports = emqx
        .deployment_ports("d1a2b3c4")
        .context("deployment ports")?;

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
name = "mqtt-prod"                  # the name README.md uses throughout
domains = ["mqtt.example.test"]
cname_target = "d1a2b3c4.emqx-cloud.test"

[[certificate.deploy]]
type = "emqx-cloud"
deployment_id = "d1a2b3c4"
base_url = "{emqx_url}"   # the emulator (real one: https://cloud-intl.emqx.com/public_api/v1)
api_roots = ["{emqx_ca}"]  # the emulator's HTTPS is from the sandbox's CA (test only)
poll_interval = "100ms"

[certificate.verify]         # EMQX Cloud's 8883 and 8084, here on the emulator's ports
mqtts_port = {mqtts}
wss_port = {wss}
"#,
            state = state.display(),
            dir = sb.acme_directory_url(),
            tls = sb.pebble_tls_ca_path().display(),
            r53 = sb.route53_endpoint(),
            dns = sb.dns_addr(),
            roots = sb.pebble_roots_path().display(),
            emqx_url = emqx.base_url(),
            emqx_ca = emqx.ca_pem_path().display(),
            mqtts = ports.mqtts,
            wss = ports.wss,
        ),
    )?;
    eprintln!("sandbox: ready; configuration in {}\n", config.display());
    eprintln!("$ brokercert issue --config {} --timings", config.display());

    let mut cmd = Command::new(&bin);
    cmd.args(["issue", "--config"])
        .arg(&config)
        .arg("--timings");
    sb.configure_command(&mut cmd);
    cmd.env("EMQX_CLOUD_API_KEY", DEMO_KEY)
        .env("EMQX_CLOUD_API_SECRET", DEMO_SECRET);
    let status = cmd.status().context("running brokercert")?;

    if keep {
        eprintln!("\nThe sandbox keeps running until Ctrl-C. To use it from another shell:");
        for (k, v) in sb.aws_env() {
            eprintln!("  export {k}={v}");
        }
        eprintln!("  export EMQX_CLOUD_API_KEY={DEMO_KEY} EMQX_CLOUD_API_SECRET={DEMO_SECRET}");
        eprintln!("  {} issue --config {}", bin.display(), config.display());
        let _ = tokio::signal::ctrl_c().await;
    }
    drop(emqx);
    drop(sb);
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
