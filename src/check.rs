//! `check`: one verdict per import rule for a certificate someone brings (a certbot lineage,
//! a brokercert `live/<name>` directory, or loose files), with the evidence and the fix.
//!
//! Owns: reading the inputs leniently (every problem becomes a verdict, not a crash) and the
//! input-format rules (PEM, key format, trust anchor); the certificate rules themselves are
//! `deploy::rules`. Does not own printing.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::deploy::Material;
use crate::deploy::rules::{self, ImportRules, Verdict};
use crate::names::DomainName;
use crate::pki::anchors::TrustAnchors;
use crate::pki::bundle::{PrivateKeyBlock, PrivateKeyFormat, parse_bundle};
use crate::pki::certificate::Certificate;
use crate::pki::keys::PrivateKey;

/// Inputs that cannot be read at all (missing, a directory where a file was expected, ...).
#[derive(Debug, thiserror::Error)]
#[error("cannot check `{}`: {message}", path.display())]
pub struct InputError {
    /// The path.
    pub path: PathBuf,
    /// What is wrong and what was expected.
    pub message: String,
}

/// The outcome of `check`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// What was checked.
    pub inputs: Vec<String>,
    /// The profile's name.
    pub profile: &'static str,
    /// The leaf, when one was found.
    pub leaf: Option<String>,
    /// Its serial.
    pub serial: Option<String>,
    /// Every verdict.
    pub verdicts: Vec<Verdict>,
    /// What was normalised while reading (CRLF, BOM, text between blocks).
    pub notes: Vec<String>,
}

impl CheckReport {
    /// Whether every rule passed.
    pub fn ok(&self) -> bool {
        self.verdicts.iter().all(|v| v.ok)
    }
}

struct Gathered {
    certs: Vec<Certificate>,
    keys: Vec<PrivateKeyBlock>,
    anchor_file: Option<Certificate>,
    problems: Vec<String>,
    notes: Vec<String>,
    files: usize,
}

fn read_file(path: &Path, g: &mut Gathered, is_root: bool) -> Result<(), InputError> {
    let meta = std::fs::metadata(path).map_err(|e| InputError {
        path: path.into(),
        message: format!("{e}; expected a PEM file or a certificate directory"),
    })?;
    if meta.is_dir() {
        return Err(InputError {
            path: path.into(),
            message: "is a directory, but a file was expected here".into(),
        });
    }
    let bytes = match crate::bounded_read::read_file(path, crate::bounded_read::MAX_PEM_FILE) {
        Ok(b) => b,
        // Too large (or endless, like /dev/zero): a failed `pem` rule, as an oversized
        // bundle always was, not an unreadable input.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            g.files += 1;
            g.problems.push(format!("{}: {e}", path.display()));
            return Ok(());
        }
        Err(e) => {
            return Err(InputError {
                path: path.into(),
                message: format!("cannot be read: {e}"),
            });
        }
    };
    g.files += 1;
    match parse_bundle(&bytes) {
        Ok(b) => {
            for n in b.notes {
                g.notes.push(format!("{}: {n}", path.display()));
            }
            if is_root {
                g.anchor_file = b.certificates.into_iter().next();
            } else {
                g.certs.extend(b.certificates);
            }
            g.keys.extend(b.private_keys);
        }
        Err(e) => g.problems.push(format!("{}: {e}", path.display())),
    }
    Ok(())
}

fn gather(paths: &[PathBuf]) -> Result<Gathered, InputError> {
    let mut g = Gathered {
        certs: Vec::new(),
        keys: Vec::new(),
        anchor_file: None,
        problems: Vec::new(),
        notes: Vec::new(),
        files: 0,
    };
    if let [dir] = paths
        && dir.is_dir()
    {
        // A certbot lineage or a brokercert live directory.
        let has = |f: &str| dir.join(f).is_file();
        if has("cert.pem") {
            read_file(&dir.join("cert.pem"), &mut g, false)?;
            // An empty chain.pem is normal next to a self-signed certificate.
            let chain_empty = crate::bounded_read::read_file(
                &dir.join("chain.pem"),
                crate::bounded_read::MAX_PEM_FILE,
            )
            .is_ok_and(|b| b.iter().all(u8::is_ascii_whitespace));
            if g.certs.len() <= 1 && has("chain.pem") && !chain_empty {
                read_file(&dir.join("chain.pem"), &mut g, false)?;
            }
        } else if has("fullchain.pem") {
            read_file(&dir.join("fullchain.pem"), &mut g, false)?;
        } else {
            return Err(InputError { path: dir.clone(), message: "holds neither cert.pem nor fullchain.pem; expected a certbot lineage (/etc/letsencrypt/live/NAME) or a brokercert live/NAME directory, or pass the files themselves".into() });
        }
        if has("privkey.pem") {
            read_file(&dir.join("privkey.pem"), &mut g, false)?;
        }
        if has("root.pem") {
            read_file(&dir.join("root.pem"), &mut g, true)?;
        }
        return Ok(g);
    }
    for p in paths {
        read_file(p, &mut g, false)?;
    }
    Ok(g)
}

fn v(
    rule: &'static str,
    ok: bool,
    found: impl Into<String>,
    expected: impl Into<String>,
    fix: impl Into<String>,
) -> Verdict {
    Verdict {
        rule,
        ok,
        found: found.into(),
        expected: expected.into(),
        fix: if ok { None } else { Some(fix.into()) },
    }
}

/// Checks the inputs against `rules` for `names` at `now`.
pub fn check(
    paths: &[PathBuf],
    names: &[DomainName],
    rules: &ImportRules,
    anchors: &TrustAnchors,
    now: OffsetDateTime,
) -> Result<CheckReport, InputError> {
    let g = gather(paths)?;
    let inputs: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let mut out = Vec::new();

    // PEM: every file parsed, and there is a certificate.
    let pem_ok = g.problems.is_empty() && !g.certs.is_empty();
    out.push(v(
        "pem",
        pem_ok,
        if g.problems.is_empty() {
            format!("{} certificate block(s) and {} private key(s) in {} file(s)", g.certs.len(), g.keys.len(), g.files)
        } else {
            g.problems.join("; ")
        },
        "PEM-encoded certificates (and an unencrypted PEM private key)",
        if g.certs.is_empty() && g.problems.is_empty() {
            "no certificate was found: pass the certificate file (cert.pem or fullchain.pem) too".to_string()
        } else {
            "convert DER with `openssl x509 -inform der -in FILE -out FILE.pem`, or re-download the file: it is damaged".to_string()
        },
    ));
    let Some(leaf) = g.certs.first().cloned() else {
        return Ok(CheckReport {
            inputs,
            profile: rules.profile,
            leaf: None,
            serial: None,
            verdicts: out,
            notes: g.notes,
        });
    };

    // Key format: present, unencrypted, PKCS#1 or PKCS#8.
    let key_block = g.keys.first();
    let key = key_block.and_then(|b| PrivateKey::from_block(b).ok());
    let (fmt_ok, fmt_found) = match key_block {
        None => (false, "no private key".to_string()),
        Some(b) if b.format.is_encrypted() => (false, format!("an encrypted key (`{}`)", b.label)),
        Some(b) if b.format == PrivateKeyFormat::Sec1Ec => {
            (false, "a SEC1 `EC PRIVATE KEY`".to_string())
        }
        Some(b) => (true, format!("an unencrypted `{}` key", b.label)),
    };
    out.push(v(
        "key-format",
        fmt_ok,
        fmt_found,
        "an unencrypted private key in PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`) PEM",
        match key_block {
            None => "pass the private key file too (privkey.pem)".to_string(),
            Some(b) if b.format.is_encrypted() => "decrypt it: `openssl pkey -in KEY -out KEY.plain` (EMQX Cloud needs a password-less key)".to_string(),
            _ => "convert it to PKCS#8: `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`".to_string(),
        },
    ));

    // The certificate rules (order: the first block is the leaf as uploaded).
    let mut intermediates: Vec<Certificate> = g.certs[1..].to_vec();
    let mut anchor = g.anchor_file.clone();
    if intermediates.last().is_some_and(|c| c.is_self_signed()) {
        anchor = intermediates.pop();
    }
    let leaf_is_ca = leaf.is_ca() && !leaf.is_self_signed();
    let material = Material {
        leaf: leaf.clone(),
        intermediates: intermediates.clone(),
        key_pem: String::new(),
        key,
        anchor: anchor.clone(),
        source: paths.first().cloned().unwrap_or_default(),
    };
    let mut verdicts = rules::check(&material, names, rules, now);
    // The rules read a deployment's key from `DIR/privkey.pem`; here the key is whichever
    // file held one, if any: say so, rather than "unreadable" with a path under a file.
    if material.key.is_none()
        && let Some(km) = verdicts.iter_mut().find(|x| x.rule == "key-matches")
    {
        *km = match key_block {
            None => v(
                "key-matches",
                false,
                "no private key given".to_string(),
                "the unencrypted private key of this leaf (PKCS#1 or PKCS#8)",
                "pass the private key file too (privkey.pem), e.g. `brokercert check fullchain.pem privkey.pem`",
            ),
            Some(_) => v(
                "key-matches",
                false,
                "a private key that cannot be read (encrypted, or not PEM)".to_string(),
                "the unencrypted private key of this leaf (PKCS#1 or PKCS#8)",
                "decrypt it: `openssl pkey -in KEY -out KEY.plain`",
            ),
        };
    }
    if leaf_is_ca && let Some(chain) = verdicts.iter_mut().find(|x| x.rule == "chain") {
        *chain = v(
            "chain",
            false,
            format!(
                "the first block is a CA certificate ({}), not the leaf",
                leaf.display_name()
            ),
            "the leaf first, then its intermediates in order",
            "put the blocks in order with `brokercert split BUNDLE`",
        );
    }
    out.extend(verdicts);

    // A reachable trust anchor.
    let top = intermediates.last().unwrap_or(&leaf);
    let (anchor_ok, anchor_found) = if leaf.is_self_signed() {
        (
            true,
            "a self-signed leaf: clients must trust this certificate itself".to_string(),
        )
    } else if let Some(a) = anchor.as_ref().filter(|a| top.verify_signed_by(a)) {
        (true, format!("{} (in the files)", a.display_name()))
    } else if let Some((a, source)) = anchors.find_issuer_of(top) {
        (true, format!("{} ({source})", a.display_name()))
    } else {
        (
            false,
            format!(
                "no root that signed {} (issuer {})",
                top.display_name(),
                top.issuer_display_name()
            ),
        )
    };
    out.push(v(
        "anchor",
        anchor_ok,
        anchor_found,
        "a trust anchor reachable from the top of the chain",
        "add the missing intermediate(s) or the root (root.pem); for a private CA pass its certificate too",
    ));

    Ok(CheckReport {
        inputs,
        profile: rules.profile,
        leaf: Some(leaf.display_name()),
        serial: Some(leaf.serial_hex().to_string()),
        verdicts: out,
        notes: g.notes,
    })
}
