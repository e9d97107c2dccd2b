//! Deployment: installing a stored certificate where the broker serves it.
//!
//! Owns: the `DeploymentTarget` seam, `DeployError`, and the targets: `emqx_cloud` (the
//! Platform API) and `files` (brokers that read PEM files, e.g. Mosquitto). `rules` holds the
//! pure pre-upload checks, `material` the loading of what is deployed. Does not own
//! verification (see `verify`) or issuance.

pub mod emqx_cloud;
pub mod files;
pub mod from_config;
pub mod identity;
pub mod material;
pub mod rules;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

pub use material::Material;
pub use rules::{ImportRules, Verdict};

/// What a deployment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployOutcome {
    /// Installed where nothing was configured before.
    Created,
    /// Replaced the previous certificate.
    Replaced,
    /// The target already serves this certificate: no write spent.
    Unchanged,
}

/// What a target reports it serves now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedState {
    /// Target's status word (`running`, `pending`, `failed`, `files`).
    pub status: String,
    /// Expiry of what is served, when the target says (with how far off the reading may be:
    /// EMQX Cloud's `expire` names no time zone).
    pub expire: Option<identity::Expire>,
    /// `one-way` / `two-way`, when the target says.
    pub tls_type: Option<String>,
    /// Subject CN of what is served, when the target says.
    pub cn: Option<String>,
}

/// One thing `brokercert doctor` checked about a target: what, whether it passed, the
/// evidence, and (when it failed and the evidence does not already say it) the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Short name of the check, e.g. `API key`, `key path`, `reload command`.
    pub check: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was seen.
    pub evidence: String,
    /// What to do about a failure.
    pub fix: Option<String>,
}

impl DeployedState {
    /// Whether what is served can be `leaf`, judged by the reported expiry and CN (None =
    /// the target reports no expiry). A match within the expiry's slack is not proof: where
    /// the broker is reachable, its served serial decides.
    pub fn names_leaf(&self, leaf: &crate::pki::certificate::Certificate) -> Option<bool> {
        identity::names_leaf(self.expire.as_ref(), self.cn.as_deref(), leaf)
    }
}

/// Progress of a deployment (human text).
pub trait DeployProgress: Send + Sync {
    /// A step.
    fn update(&self, message: &str);
    /// A wait in progress (called on every poll); by default rendered as an update.
    fn waiting(&self, wait: &crate::progress::Waiting<'_>) {
        self.update(&wait.text());
    }
}

impl<F: Fn(&str) + Send + Sync> DeployProgress for F {
    fn update(&self, message: &str) {
        self(message)
    }
}

/// A place a certificate is deployed to.
#[async_trait]
pub trait DeploymentTarget: Send + Sync {
    /// Human name, e.g. `EMQX Cloud deployment ge6a1a75`.
    fn describe(&self) -> String;
    /// The import rules checked before any write.
    fn rules(&self) -> ImportRules;
    /// What is served now (None = no TLS configured).
    async fn current(&self) -> Result<Option<DeployedState>, DeployError>;
    /// Installs `m` and waits until it is live.
    async fn deploy(
        &self,
        m: &Material,
        skip_if_served: bool,
        progress: &dyn DeployProgress,
    ) -> Result<DeployOutcome, DeployError>;
    /// Removes the TLS configuration.
    async fn remove(&self) -> Result<(), DeployError>;
    /// Whether a deployment could work from this machine, without writing anything
    /// (`brokercert doctor`). By default: what it serves now can be read.
    async fn readiness(&self) -> Vec<Readiness> {
        vec![match self.current().await {
            Ok(_) => Readiness {
                check: "read".into(),
                ok: true,
                evidence: "what it serves now can be read".into(),
                fix: None,
            },
            Err(e) => Readiness {
                check: "read".into(),
                ok: false,
                evidence: e.to_string(),
                fix: None,
            },
        }]
    }
    /// What `deploy` would do, one human line per call or write, given what `current`
    /// reported (`brokercert plan`). Must not write anything.
    fn plan(&self, current: Option<&DeployedState>) -> Vec<String> {
        let _ = current;
        vec![format!("deploy to {}", self.describe())]
    }
    /// The API requests this target sent so far in this run, against its budget, as one
    /// human line (`--timings`); `None` for targets without a request budget.
    fn api_usage(&self) -> Option<String> {
        None
    }
    /// Doubts about the target's settings worth a warning (not an error).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Deployment failures: one paragraph each, naming the target, what happened, what to run next.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The files to deploy are unusable.
    #[error("`{}`: {message}", path.display())]
    Material {
        /// File or directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A setting of the target is missing or wrong.
    #[error("{target}: {message}")]
    Config {
        /// Target.
        target: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The certificate breaks the target's import rules: nothing was written.
    #[error("{target} would refuse this certificate, so nothing was uploaded: {failures}")]
    Rejected {
        /// Target.
        target: String,
        /// The failed rules with evidence and fixes.
        failures: String,
    },
    /// The target's API answered with an error.
    #[error("{target}: {message}")]
    Api {
        /// Target.
        target: String,
        /// HTTP status, if any.
        status: Option<u16>,
        /// Explanation and fix.
        message: String,
    },
    /// The target reports the configuration failed.
    #[error(
        "{target} reports that applying the certificate failed (status `failed`). The previous certificate, if any, is still served; check the certificate with `{}`, then run `{}` again",
        crate::hint::command(&format!("check {name}")),
        crate::hint::command(&format!("deploy {name}"))
    )]
    Failed {
        /// Target.
        target: String,
        /// Certificate name.
        name: String,
    },
    /// The target reports the configuration `terminated`.
    #[error(
        "{target} reports the TLS configuration `terminated`: it is not being applied (the deployment may be stopped, or being deleted). The previous certificate, if any, is still served; check the deployment in the EMQX Cloud console, start it if it is stopped, then run `brokercert deploy {name}` again"
    )]
    Terminated {
        /// Target.
        target: String,
        /// Certificate name.
        name: String,
    },
    /// Waiting for the target took too long.
    #[error("{target} was still `{status}` after {}; it may still finish: run `{}` later, or raise `poll_timeout`", crate::progress::human_duration(*waited), crate::hint::command(&format!("verify {name}")))]
    Timeout {
        /// Target.
        target: String,
        /// Certificate name.
        name: String,
        /// Last status.
        status: String,
        /// Time waited.
        waited: Duration,
    },
    /// Writing files or running the reload command failed.
    #[error("{target}: {message}")]
    Files {
        /// Target.
        target: String,
        /// What failed and what state the files are in.
        message: String,
    },
}
