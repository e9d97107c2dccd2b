//! The `files` target: brokers that read PEM files (Mosquitto, HiveMQ, ...). Writes the
//! configured files atomically with owner, group and mode, then runs the reload command
//! (an argv list, no shell). If writing or the reload fails, the previous files are put
//! back exactly (content, owner, group and mode) and the reload is run again, so the broker
//! keeps a working certificate; the error names each file and what became of it.
//!
//! A destination that is a symbolic link is followed: the new content is written to the
//! file the link finally points to, atomically in that file's directory, and the link
//! stays (a broker configured with a link, certbot `live/` style, keeps reading through
//! it). A link to nothing, a directory, a FIFO or any other special file, and a file that
//! cannot be read (so could not be put back) are refused before anything is written
//! (see `previous`).
//!
//! Owns: file writing, ownership, the reload and the order of the rollback. Does not own
//! what is written, nor what was there before (`previous`).

mod previous;
mod readiness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use super::rules::ImportRules;
use super::{
    DeployError, DeployOutcome, DeployProgress, DeployedState, DeploymentTarget, Material,
};
use crate::store::atomic_write;
use previous::{Destination, io_text, put_back};

/// Settings of a files target.
#[derive(Debug, Clone, Default)]
pub struct FilesSettings {
    /// Leaf only.
    pub cert: Option<PathBuf>,
    /// Intermediates only.
    pub chain: Option<PathBuf>,
    /// Leaf + intermediates.
    pub fullchain: Option<PathBuf>,
    /// Private key.
    pub key: Option<PathBuf>,
    /// Trust anchor (root.pem).
    pub root: Option<PathBuf>,
    /// Client CA (for `require_certificate`), copied from this PEM.
    pub client_ca: Option<(PathBuf, String)>,
    /// Owner (user name or uid).
    pub owner: Option<String>,
    /// Group (name or gid).
    pub group: Option<String>,
    /// Mode of certificate files (default 0644).
    pub mode: u32,
    /// Mode of the key file (default 0600).
    pub key_mode: u32,
    /// Reload command (argv).
    pub reload: Vec<String>,
    /// Reload timeout.
    pub reload_timeout: Duration,
    /// Variables passed on to `reload` besides [`crate::child_env::BASE`].
    pub reload_pass_env: Vec<String>,
}

/// One file to write: the setting naming it, where, what and with which mode.
struct Planned {
    setting: &'static str,
    path: PathBuf,
    text: String,
    mode: u32,
}

/// Writes files and reloads the broker.
pub struct FilesTarget {
    s: FilesSettings,
}

fn lookup_id(file: &str, name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

impl FilesTarget {
    /// A target; fails if owner/group are unknown or nothing is configured.
    pub fn new(s: FilesSettings) -> Result<Self, DeployError> {
        let t = Self { s };
        if t.planned_paths().is_empty() {
            return Err(DeployError::Config {
                target: t.describe(),
                message: "no file is configured: set at least `fullchain` (or `cert` + `chain`) and `key`".into(),
            });
        }
        if let Some(o) = &t.s.owner
            && lookup_id("/etc/passwd", o).is_none()
        {
            return Err(DeployError::Config {
                target: t.describe(),
                message: format!("`owner = \"{o}\"`: no such user on this machine"),
            });
        }
        if let Some(g) = &t.s.group
            && lookup_id("/etc/group", g).is_none()
        {
            return Err(DeployError::Config {
                target: t.describe(),
                message: format!("`group = \"{g}\"`: no such group on this machine"),
            });
        }
        Ok(t)
    }

    /// The configured destinations with the setting naming each.
    fn named_paths(&self) -> Vec<(&'static str, &Path)> {
        [
            ("cert", &self.s.cert),
            ("chain", &self.s.chain),
            ("fullchain", &self.s.fullchain),
            ("key", &self.s.key),
            ("root", &self.s.root),
        ]
        .into_iter()
        .filter_map(|(n, p)| p.as_deref().map(|p| (n, p)))
        .chain(
            self.s
                .client_ca
                .as_ref()
                .map(|(p, _)| ("client_ca", p.as_path())),
        )
        .collect()
    }

    fn planned_paths(&self) -> Vec<&Path> {
        self.named_paths().into_iter().map(|(_, p)| p).collect()
    }

    fn contents(&self, m: &Material) -> Result<Vec<Planned>, DeployError> {
        let mut out = Vec::new();
        let mut push = |setting, p: &Option<PathBuf>, text: String, mode: u32| {
            if let Some(p) = p {
                out.push(Planned {
                    setting,
                    path: p.clone(),
                    text,
                    mode,
                });
            }
        };
        push("cert", &self.s.cert, m.leaf.to_pem(), self.s.mode);
        push("chain", &self.s.chain, m.chain_pem(), self.s.mode);
        push(
            "fullchain",
            &self.s.fullchain,
            m.fullchain_pem(),
            self.s.mode,
        );
        push("key", &self.s.key, m.key_pem.clone(), self.s.key_mode);
        if self.s.root.is_some() {
            let anchor = m.anchor.as_ref().ok_or_else(|| DeployError::Material {
                path: m.source.clone(),
                message:
                    "`root` is configured but the certificate's trust anchor (root.pem) is unknown"
                        .into(),
            })?;
            push("root", &self.s.root, anchor.to_pem(), self.s.mode);
        }
        if let Some((p, pem)) = &self.s.client_ca {
            push("client_ca", &Some(p.clone()), pem.clone(), self.s.mode);
        }
        Ok(out)
    }

    fn write_one(&self, path: &Path, text: &str, mode: u32) -> Result<(), String> {
        atomic_write(path, text.as_bytes(), mode).map_err(io_text)?;
        let uid = self
            .s
            .owner
            .as_deref()
            .and_then(|o| lookup_id("/etc/passwd", o));
        let gid = self
            .s
            .group
            .as_deref()
            .and_then(|g| lookup_id("/etc/group", g));
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::chown(path, uid, gid)
                .map_err(|e| format!("cannot change the owner of `{}`: {e}", path.display()))?;
        }
        Ok(())
    }

    async fn reload(&self) -> Result<(), String> {
        let Some((prog, args)) = self.s.reload.split_first() else {
            return Ok(());
        };
        let mut cmd = crate::child_env::command(prog, args, &self.s.reload_pass_env);
        cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
        let out = tokio::time::timeout(self.s.reload_timeout, cmd.output())
            .await
            .map_err(|_| {
                format!(
                    "`{}` did not finish within {} s",
                    self.s.reload.join(" "),
                    self.s.reload_timeout.as_secs()
                )
            })?
            .map_err(|e| format!("cannot run `{}`: {e}", self.s.reload.join(" ")))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(format!(
            "`{}` failed ({}): {}",
            self.s.reload.join(" "),
            out.status,
            tail.join(" / ")
        ))
    }
}

#[async_trait]
impl DeploymentTarget for FilesTarget {
    fn describe(&self) -> String {
        let first = self
            .planned_paths()
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!("files target ({first}, ...)")
    }

    fn rules(&self) -> ImportRules {
        ImportRules::files()
    }

    async fn readiness(&self) -> Vec<super::Readiness> {
        let mut out: Vec<super::Readiness> = self
            .named_paths()
            .into_iter()
            .map(|(setting, p)| readiness::writable(setting, p))
            .collect();
        out.push(readiness::reload_present(&self.s.reload));
        out
    }

    fn plan(&self, current: Option<&DeployedState>) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(c) = current {
            out.push(format!(
                "read: the files hold a certificate expiring {}",
                c.expire
                    .map(|e| e.at.to_string())
                    .unwrap_or_else(|| "(unknown)".into())
            ));
        }
        let key = self.s.key.as_deref();
        for p in self.planned_paths() {
            let mode = if Some(p) == key {
                self.s.key_mode
            } else {
                self.s.mode
            };
            out.push(format!("write {} (mode {:04o})", p.display(), mode));
        }
        if self.s.owner.is_some() || self.s.group.is_some() {
            out.push(format!(
                "chown {}:{}",
                self.s.owner.as_deref().unwrap_or(""),
                self.s.group.as_deref().unwrap_or("")
            ));
        }
        if self.s.reload.is_empty() {
            out.push("no reload command".into());
        } else {
            out.push(format!("run {}", self.s.reload.join(" ")));
        }
        out
    }

    async fn current(&self) -> Result<Option<DeployedState>, DeployError> {
        let Some(p) = self.s.fullchain.as_ref().or(self.s.cert.as_ref()) else {
            return Ok(None);
        };
        // Only a regular file (or a link to one) is read: a FIFO there would block.
        if !std::fs::metadata(p).is_ok_and(|m| m.is_file()) {
            return Ok(None);
        }
        let Ok(bytes) = crate::bounded_read::read_file(p, crate::bounded_read::MAX_PEM_FILE) else {
            return Ok(None);
        };
        let leaf = crate::pki::bundle::parse_bundle(&bytes)
            .ok()
            .and_then(|b| b.certificates.into_iter().next());
        Ok(leaf.map(|l| DeployedState {
            status: "files".into(),
            expire: Some(super::identity::Expire::exact(l.not_after())),
            tls_type: None,
            cn: l.subject_cn(),
        }))
    }

    async fn deploy(
        &self,
        m: &Material,
        skip_if_served: bool,
        progress: &dyn DeployProgress,
    ) -> Result<DeployOutcome, DeployError> {
        let files = self.contents(m)?;
        let failed = |message: String| DeployError::Files {
            target: self.describe(),
            message,
        };
        let dests = files
            .iter()
            .map(|f| Destination::survey(&f.path, f.setting))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| failed(format!("{e}; nothing was written")))?;
        if skip_if_served
            && dests
                .iter()
                .zip(&files)
                .all(|(d, f)| d.held(f.text.as_bytes()))
        {
            progress.update("the files already hold this certificate");
            return Ok(DeployOutcome::Unchanged);
        }
        let planned: Vec<(&Destination, &[u8])> = dests
            .iter()
            .zip(&files)
            .map(|(d, f)| (d, f.text.as_bytes()))
            .collect();
        for (i, (d, f)) in dests.iter().zip(&files).enumerate() {
            if let Err(e) = self.write_one(&d.path, &f.text, f.mode) {
                return Err(failed(format!("{e}; {}", put_back(&planned, i + 1))));
            }
        }
        progress.update(&format!("wrote {} file(s)", files.len()));
        if !self.s.reload.is_empty() {
            progress.update(&format!("running `{}`", self.s.reload.join(" ")));
            if let Err(e) = self.reload().await {
                let report = put_back(&planned, planned.len());
                // Bring the broker back onto the restored files.
                let again = match self.reload().await {
                    Ok(()) => String::new(),
                    Err(a) => format!("; reloading with them failed too: {a}"),
                };
                return Err(failed(format!("{e}; {report}{again}")));
            }
        }
        Ok(if dests.iter().any(Destination::existed) {
            DeployOutcome::Replaced
        } else {
            DeployOutcome::Created
        })
    }

    async fn remove(&self) -> Result<(), DeployError> {
        for p in self.planned_paths() {
            if let Err(e) = std::fs::remove_file(p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(DeployError::Files {
                    target: self.describe(),
                    message: format!("cannot remove `{}`: {e}", p.display()),
                });
            }
        }
        self.reload().await.map_err(|message| DeployError::Files {
            target: self.describe(),
            message,
        })
    }
}
