//! A newcomer's first hour (issue #21): `issue` keeps a certificate that is not due, every
//! check that needs no network runs before anything is ordered, `--dry-run` leaves nothing
//! behind, and the hints can be run as printed. Against the sandbox and the EMQX Cloud
//! emulator (a real Mosquitto behind it).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use brokercert::sandbox::{
    Budgets, DeploymentPorts, DeploymentSpec, EmqxCloudEmulator, SandboxOptions,
};
use serde_json::Value;
use support::{Run, TestEnv, cert_section, certs};

const KEY: &str = "first-hour-key";
const SECRET: &str = "first-hour-secret";
const ID: &str = "dep1";

/// A sandbox (zones `example.test`, `emqx-cloud.test`), the EMQX Cloud emulator with
/// deployment `dep1`, and the `[[certificate]]` section `mqtt-prod` deploying there (with
/// `extra` appended to its deploy section).
struct Cloud {
    env: TestEnv,
    emu: EmqxCloudEmulator,
    ports: DeploymentPorts,
}

impl Cloud {
    async fn start() -> Cloud {
        let env = TestEnv::start(
            SandboxOptions::new()
                .zone("example.test")
                .zone("emqx-cloud.test"),
        )
        .await;
        let emu = EmqxCloudEmulator::start(env.work.path().join("emqx"))
            .await
            .expect("emulator");
        emu.add_deployment(DeploymentSpec::dedicated(ID, KEY, SECRET))
            .expect("deployment");
        emu.set_budgets(Budgets {
            writes: 1000,
            reads: 1000,
            window: Duration::from_secs(3600),
        });
        let ports = emu.deployment_ports(ID).expect("ports");
        Cloud { env, emu, ports }
    }

    fn section(&self, deploy_extra: &str) -> String {
        cert_section(
            "mqtt-prod",
            &["mqtt.example.test"],
            &format!(
                r#"cname_target = "{ID}.emqx-cloud.test"

[[certificate.deploy]]
type = "emqx-cloud"
deployment_id = "{ID}"
base_url = "{base}"
api_roots = ["{ca}"]
poll_interval = "50ms"
poll_timeout = "20s"
{deploy_extra}

[certificate.verify]
connect = "127.0.0.1"
mqtts_port = {mqtts}
wss_port = {wss}
timeout = "3s"
"#,
                base = self.emu.base_url(),
                ca = self.emu.ca_pem_path().display(),
                mqtts = self.ports.mqtts,
                wss = self.ports.wss,
            ),
        )
    }

    fn config(&self, deploy_extra: &str) -> PathBuf {
        self.env.config(&self.section(deploy_extra))
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.env
            .run_with_env(
                args,
                &[
                    ("EMQX_CLOUD_API_KEY", KEY),
                    ("EMQX_CLOUD_API_SECRET", SECRET),
                ],
            )
            .await
    }

    fn live_serial(&self) -> String {
        certs(&self.env.live("mqtt-prod", "cert.pem"))[0]
            .serial_hex()
            .to_string()
    }
}

fn json(run: &Run) -> Value {
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line: {run:?}"));
    serde_json::from_str(line).expect("JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_keeps_a_certificate_that_is_not_due_and_force_renewal_orders_anyway() {
    let c = Cloud::start().await;
    let cfg = c.config("");
    let cfg_s = cfg.to_str().unwrap();

    let first = c.run(&["issue", "--config", cfg_s, "--json"]).await;
    first.assert_ok();
    assert_eq!(json(&first)["action"], "issued", "{first:?}");
    let serial = c.live_serial();
    let writes = c.emu.write_count(ID);
    assert_eq!(writes, 1, "one upload");

    // Again: the stored certificate is kept, the deployment (already serving it) gets no
    // write, the broker is verified, and the summary says so.
    let again = c.run(&["issue", "--config", cfg_s, "--json"]).await;
    again.assert_ok();
    let j = json(&again);
    assert_eq!(j["action"], "kept", "{again:?}");
    assert_eq!(j["ok"], true);
    assert_eq!(j["serial"].as_str(), Some(serial.as_str()));
    assert_eq!(c.live_serial(), serial, "no new certificate stored");
    assert_eq!(c.emu.write_count(ID), writes, "no write to EMQX Cloud");
    assert!(
        again.stderr.contains("Kept certificate `mqtt-prod`")
            && again.stderr.contains("not due for renewal until")
            && again.stderr.contains(&format!(
                "brokercert issue --name mqtt-prod --force-renewal --config {cfg_s}"
            )),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("already served this certificate"),
        "{}",
        again.stderr
    );
    assert!(again.stderr.contains("Verified mqtts"), "{}", again.stderr);

    // `--force-renewal` orders a new one and deploys it.
    let forced = c
        .run(&["issue", "--config", cfg_s, "--json", "--force-renewal"])
        .await;
    forced.assert_ok();
    assert_eq!(json(&forced)["action"], "issued");
    assert_ne!(c.live_serial(), serial);
    assert_eq!(c.emu.write_count(ID), writes + 1);

    // Another key type is another certificate: ordered without any flag (EMQX Cloud then
    // refuses an ECDSA leaf under Pebble's RSA chain; what matters is the order).
    let before = c.live_serial();
    let ecdsa = c.env.config(&c.section("").replace(
        "domains = [\"mqtt.example.test\"]",
        "domains = [\"mqtt.example.test\"]\nkey_type = \"ecdsa-p256\"",
    ));
    let changed = c
        .run(&["issue", "--config", ecdsa.to_str().unwrap(), "--json"])
        .await;
    assert_eq!(json(&changed)["action"], "issued", "{changed:?}");
    assert_ne!(c.live_serial(), before);
    c.emu.stop();
}
