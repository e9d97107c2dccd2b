//! What gets deployed: the leaf, its intermediates, the private key and the trust anchor,
//! read from a brokercert `live/<name>` directory or a certbot lineage
//! (`/etc/letsencrypt/live/<name>`).
//!
//! Owns: loading and normalising those files (CRLF, BOM, text between blocks are accepted)
//! and the PEM forms targets need. Never prints key material (its Debug hides the key).

use std::path::{Path, PathBuf};

use crate::pki::bundle::parse_bundle;
use crate::pki::certificate::Certificate;
use crate::pki::keys::PrivateKey;

use super::DeployError;

/// A certificate ready to deploy.
pub struct Material {
    /// The leaf.
    pub leaf: Certificate,
    /// Intermediates, leaf side first (no leaf, no self-signed root).
    pub intermediates: Vec<Certificate>,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The key, parsed (None if it could not be parsed: the rules say why).
    pub key: Option<PrivateKey>,
    /// The trust anchor (`root.pem`, or a self-signed certificate at the end of the chain).
    pub anchor: Option<Certificate>,
    /// Where it was read from.
    pub source: PathBuf,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("leaf", &self.leaf.display_name())
            .field("serial", &self.leaf.serial_hex())
            .field("intermediates", &self.intermediates.len())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<Certificate>, DeployError> {
    let bytes =
        crate::bounded_read::read_file(path, crate::bounded_read::MAX_PEM_FILE).map_err(|e| {
            DeployError::Material {
                path: path.to_path_buf(),
                message: format!("cannot read the {what}: {e}"),
            }
        })?;
    parse_bundle(&bytes)
        .map(|b| b.certificates)
        .map_err(|e| DeployError::Material {
            path: path.to_path_buf(),
            message: format!("the {what} is unusable: {e}"),
        })
}

impl Material {
    /// Reads `cert.pem` (or the first block of `fullchain.pem`), `chain.pem` (or the rest of
    /// `fullchain.pem`), `privkey.pem` and, if present, `root.pem` from `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self, DeployError> {
        if !dir.is_dir() {
            return Err(DeployError::Material {
                path: dir.to_path_buf(),
                message: "it is not a directory; expected a brokercert `live/<name>` directory or a certbot lineage such as /etc/letsencrypt/live/<name>".into(),
            });
        }
        let (leaf, mut intermediates) = if dir.join("cert.pem").exists() {
            let mut leaf = read_certs(&dir.join("cert.pem"), "certificate (cert.pem)")?;
            if leaf.len() != 1 {
                // A cert.pem holding the whole chain: split it like fullchain.pem.
                let rest = leaf.split_off(1);
                (leaf.remove(0), rest)
            } else {
                let chain = if dir.join("chain.pem").exists() {
                    read_certs(&dir.join("chain.pem"), "chain (chain.pem)")?
                } else {
                    Vec::new()
                };
                (leaf.remove(0), chain)
            }
        } else if dir.join("fullchain.pem").exists() {
            let mut all = read_certs(&dir.join("fullchain.pem"), "full chain (fullchain.pem)")?;
            let rest = all.split_off(1);
            (all.remove(0), rest)
        } else {
            return Err(DeployError::Material {
                path: dir.to_path_buf(),
                message: "it holds neither cert.pem nor fullchain.pem".into(),
            });
        };
        let mut anchor = None;
        if intermediates.last().is_some_and(|c| c.is_self_signed()) {
            anchor = intermediates.pop();
        }
        if anchor.is_none() && dir.join("root.pem").exists() {
            anchor = read_certs(&dir.join("root.pem"), "trust anchor (root.pem)")?
                .into_iter()
                .next();
        }
        let key_path = dir.join("privkey.pem");
        let key_pem = crate::bounded_read::read_text(&key_path, crate::bounded_read::MAX_PEM_FILE)
            .map_err(|e| DeployError::Material {
                path: key_path.clone(),
                message: format!("cannot read the private key: {e}"),
            })?;
        let key = PrivateKey::from_pem(&key_pem).ok();
        // Normalise the key to what we parsed (PKCS#8, LF endings) when possible.
        let key_pem = key.as_ref().map(|k| k.to_pem()).unwrap_or(key_pem);
        Ok(Self {
            leaf,
            intermediates,
            key_pem,
            key,
            anchor,
            source: dir.to_path_buf(),
        })
    }

    /// Leaf followed by the intermediates (EMQX Cloud's "certificate body", `fullchain.pem`).
    pub fn fullchain_pem(&self) -> String {
        let mut s = self.leaf.to_pem();
        s.push_str(&self.chain_pem());
        s
    }

    /// The intermediates only (`chain.pem`).
    pub fn chain_pem(&self) -> String {
        self.intermediates.iter().map(|c| c.to_pem()).collect()
    }
}
