//! An EMQX Cloud emulator beside the sandbox, a configuration deploying to it, and runs of
//! `brokercert` that check nothing secret is printed.

use std::path::PathBuf;

use brokercert_sandbox::{DeploymentPorts, DeploymentSpec, EmqxCloudEmulator, SandboxOptions};

use super::{Run, TestEnv, cert_section, certs};

pub const KEY: &str = "test-api-key";
pub const SECRET: &str = "test-api-secret-do-not-print";
pub const MQTT_PASSWORD: &str = "mqtt-password-do-not-print";

pub struct Cloud {
    pub env: TestEnv,
    pub emu: EmqxCloudEmulator,
    pub ports: DeploymentPorts,
}

/// The EMQX Cloud fixture: a sandbox with zones `example.test` and `emqx-cloud.test`, the
/// emulator (with its documented hourly budgets) holding `spec`'s deployment, and an A
/// record for `<id>.emqx-cloud.test` (the CNAME target) at 127.0.0.1.
pub async fn cloud(spec: DeploymentSpec) -> Cloud {
    let env = TestEnv::start(
        SandboxOptions::new()
            .zone("example.test")
            .zone("emqx-cloud.test"),
    )
    .await;
    let emu = EmqxCloudEmulator::start(env.work.path().join("emqx"))
        .await
        .expect("emulator");
    let id = spec.id.clone();
    emu.add_deployment(spec).expect("deployment");
    let ports = emu
        .deployment_ports(&id)
        .unwrap_or(DeploymentPorts { mqtts: 1, wss: 1 });
    let z = env.sb.zone_id("emqx-cloud.test").unwrap();
    env.sb
        .upsert(
            &z,
            &format!("{id}.emqx-cloud.test"),
            "A",
            60,
            &["127.0.0.1"],
        )
        .await
        .unwrap();
    Cloud { env, emu, ports }
}

/// [`cloud`] with the hourly budgets lifted to 1000 calls, for tests that make many.
pub async fn cloud_lifted(spec: DeploymentSpec) -> Cloud {
    let c = cloud(spec).await;
    c.emu.set_budgets(super::LIFTED_BUDGETS);
    c
}

/// `[certificate.verify]` line that connects to the broker at 127.0.0.1 whatever the names
/// resolve to.
pub const CONNECT_LOCAL: &str = r#"connect = "127.0.0.1""#;

impl Cloud {
    /// A configuration: one certificate, CNAME to the deployment, deploy + verify sections.
    pub fn config(&self, id: &str, deploy_extra: &str, verify_extra: &str) -> PathBuf {
        self.env
            .config(&self.section(id, deploy_extra, verify_extra))
    }

    /// [`Cloud::config`] with `tail` (e.g. a `[renew]` table) after the verify section.
    pub fn config_with(
        &self,
        id: &str,
        deploy_extra: &str,
        verify_extra: &str,
        tail: &str,
    ) -> PathBuf {
        self.env.config(&format!(
            "{}\n{tail}\n",
            self.section(id, deploy_extra, verify_extra)
        ))
    }

    /// The `[[certificate]]` section of [`Cloud::config`].
    pub fn section(&self, id: &str, deploy_extra: &str, verify_extra: &str) -> String {
        cert_section(
            "mqtt-prod",
            &["mqtt.example.test"],
            &format!(
                r#"cname_target = "{id}.emqx-cloud.test"


[[certificate.deploy]]
type = "emqx-cloud"
deployment_id = "{id}"
base_url = "{base}"
api_roots = ["{ca}"]
poll_interval = "50ms"
poll_timeout = "20s"
{deploy_extra}

[certificate.verify]
mqtts_port = {mqtts}
wss_port = {wss}
timeout = "5s"
{verify_extra}
"#,
                base = self.emu.base_url(),
                ca = self.emu.ca_pem_path().display(),
                mqtts = self.ports.mqtts,
                wss = self.ports.wss,
            ),
        )
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[]).await
    }

    /// Runs with the API credentials (and `extra` variables); nothing secret may be printed.
    pub async fn run_env(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut env = vec![
            ("EMQX_CLOUD_API_KEY", KEY),
            ("EMQX_CLOUD_API_SECRET", SECRET),
        ];
        env.extend_from_slice(extra);
        let r = self.env.run_with_env(args, &env).await;
        for (_, v) in &env[1..] {
            assert!(
                !r.stdout.contains(v) && !r.stderr.contains(v),
                "a secret leaked"
            );
        }
        assert!(
            !r.stdout.contains("PRIVATE KEY-----") && !r.stderr.contains("PRIVATE KEY-----"),
            "key material leaked"
        );
        r
    }

    pub fn live_serial(&self) -> String {
        certs(&self.env.live("mqtt-prod", "cert.pem"))[0]
            .serial_hex()
            .to_string()
    }

    pub fn served_serial(&self, id: &str) -> Option<String> {
        self.emu.tls_snapshot(id).map(|s| s.leaf_serial_hex)
    }
}
