//! `brokercert split BUNDLE`: cert.pem (leaf), chain.pem (intermediates) and root.pem (the
//! trust anchor) from any PEM bundle, the three parts EMQX Cloud's TLS form and MQTT clients
//! ask for. The decisions are `pki::split_bundle`'s; this reads the files, checks the output
//! directory, writes atomically (files 0644, a new directory 0755, whatever the umask) and
//! prints what was done.
//!
//! Nothing is written unless the bundle splits and every file may be written.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Args;

use super::output;
use crate::error::exit;
use crate::pki::{
    BundleError, Certificate, MAX_BUNDLE_BYTES, SplitBundle, SplitError, TrustAnchors,
    parse_bundle, split_bundle,
};
use crate::store::{StoreError, atomic_write, create_dirs};

/// The mode of an output directory `split` creates (and of its missing parents), whatever
/// the umask: the files are certificates, meant to be read by the broker and its clients.
const OUT_DIR_MODE: u32 = 0o755;

/// Flags of `split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// The PEM bundle: a fullchain.pem, a purchased certificate with its chain, a paste.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// Where to write cert.pem, chain.pem and root.pem (created 0755 if missing) [default:
    /// the bundle's directory].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Extra root certificate (PEM) that may be the chain's trust anchor (repeatable).
    #[arg(long = "trust-root", value_name = "FILE")]
    pub trust_roots: Vec<PathBuf>,
    /// Replace cert.pem, chain.pem or root.pem if they exist.
    #[arg(long)]
    pub force: bool,
}

/// A failure: the one-paragraph message and the exit code.
struct Failure {
    code: i32,
    message: String,
}

fn usage(message: String) -> Failure {
    Failure {
        code: exit::CONFIG,
        message,
    }
}

/// Runs `split`; returns the exit code.
pub fn run(args: &SplitArgs) -> i32 {
    match split(args) {
        Ok(()) => exit::OK,
        Err(f) => {
            output::error(&f.message);
            f.code
        }
    }
}

fn split(args: &SplitArgs) -> Result<(), Failure> {
    let path = &args.bundle;
    let shown = path.display();
    let bytes = read_limited(path, "the bundle")?;
    let mut anchors = TrustAnchors::bundled().with_system();
    for root in &args.trust_roots {
        let text = read_limited(root, "the --trust-root file")?;
        anchors.add_extra_pem(&text).map_err(|e| {
            usage(format!(
                "cannot use --trust-root `{}`: {e}. Pass a PEM file holding the root certificate",
                root.display()
            ))
        })?;
    }
    let split = split_bundle(&bytes, &anchors).map_err(|e| Failure {
        code: exit::CERTIFICATE,
        message: format!("cannot split `{shown}`: {e}. Nothing was written"),
    })?;

    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        },
    };
    if out.exists() && !out.is_dir() {
        return Err(usage(format!(
            "cannot split `{shown}` into `{}`: that is not a directory; expected a directory for cert.pem, chain.pem and root.pem. Pass --out DIR. Nothing was written",
            out.display()
        )));
    }
    let mut files: Vec<(&str, String)> = vec![
        ("cert.pem", split.cert_pem()),
        ("chain.pem", split.chain_pem()),
    ];
    if let Some(root) = split.root_pem() {
        files.push(("root.pem", root));
    }
    check_targets(path, &out, &files, args.force)?;

    create_dirs(&out, OUT_DIR_MODE).map_err(|e| Failure {
        code: exit::STORE,
        message: format!(
            "cannot create the output directory `{}`: {e}; expected a directory this user can write. Pass another --out DIR. Nothing was written",
            out.display()
        ),
    })?;
    let mut written: Vec<&str> = Vec::new();
    for (name, pem) in &files {
        atomic_write(&out.join(name), pem.as_bytes(), 0o644).map_err(|e| {
            let reason = match &e {
                StoreError::Io { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            let done = if written.is_empty() {
                "Nothing was written".to_string()
            } else {
                format!("Already written: {}", written.join(", "))
            };
            Failure {
                code: exit::STORE,
                message: format!(
                    "cannot write `{}`: {reason}; expected a directory this user can write. Check the permissions of `{}` or pass --out DIR. {done}",
                    out.join(name).display(),
                    out.display()
                ),
            }
        })?;
        written.push(name);
    }
    print_summary(path, &out, &split);
    Ok(())
}

/// Reads at most [`MAX_BUNDLE_BYTES`] (+1, to notice more) from a regular file; a directory,
/// a missing or unreadable file is a usage error, an oversized one a certificate error, both
/// found before reading the contents.
fn read_limited(path: &Path, what: &str) -> Result<Vec<u8>, Failure> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        usage(if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "cannot read {what} `{shown}`: there is no such file; expected the path of a PEM file (e.g. /etc/letsencrypt/live/NAME/fullchain.pem). Check the path"
            )
        } else {
            format!(
                "cannot read {what} `{shown}`: {e}; expected a PEM file this user can read. Check the path and its permissions"
            )
        })
    })?;
    if meta.is_dir() {
        let hint = ["fullchain.pem", "cert.pem", "certificate.pem"]
            .iter()
            .map(|f| path.join(f))
            .find(|p| p.is_file())
            .map(|p| format!(" such as `{}`", p.display()))
            .unwrap_or_default();
        return Err(usage(format!(
            "cannot read {what} `{shown}`: it is a directory; expected a PEM file. Pass the file inside it{hint}"
        )));
    }
    let too_large = |size: usize| Failure {
        code: exit::CERTIFICATE,
        message: format!(
            "cannot read {what} `{shown}`: it is too large: {}. Nothing was written",
            SplitError::from(BundleError::TooLarge {
                size,
                max: MAX_BUNDLE_BYTES,
            })
        ),
    };
    if meta.len() > MAX_BUNDLE_BYTES as u64 {
        return Err(too_large(usize::try_from(meta.len()).unwrap_or(usize::MAX)));
    }
    let file = std::fs::File::open(path).map_err(|e| {
        usage(if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!(
                "cannot read {what} `{shown}`: permission denied; expected a file this user can read. Fix its permissions (`ls -l {shown}`) or run as a user who may read it"
            )
        } else {
            format!("cannot read {what} `{shown}`: {e}; expected a readable PEM file. Check the path")
        })
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_BUNDLE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            usage(format!(
                "cannot read {what} `{shown}`: {e}; expected a readable PEM file. Check the path and the disk"
            ))
        })?;
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(too_large(bytes.len()));
    }
    Ok(bytes)
}

/// Refuses (before anything is written) to replace the bundle itself, or existing files
/// without `--force`.
fn check_targets(
    bundle: &Path,
    out: &Path,
    files: &[(&str, String)],
    force: bool,
) -> Result<(), Failure> {
    let bundle_real = std::fs::canonicalize(bundle).ok();
    let mut existing = Vec::new();
    for (name, _) in files {
        let target = out.join(name);
        if std::fs::symlink_metadata(&target).is_err() {
            continue;
        }
        if bundle_real.is_some() && std::fs::canonicalize(&target).ok() == bundle_real {
            return Err(usage(format!(
                "cannot split `{}` into `{}`: the bundle itself is {name} there, and split would replace it with only part of the chain; expected the bundle under another name. Rename it (e.g. to fullchain.pem) or pass --out DIR. Nothing was written",
                bundle.display(),
                out.display()
            )));
        }
        existing.push(*name);
    }
    if !existing.is_empty() && !force {
        let (list, verb) = match existing.as_slice() {
            [one] => (one.to_string(), "exists"),
            [init @ .., last] => (format!("{} and {last}", init.join(", ")), "exist"),
            [] => unreachable!(),
        };
        return Err(usage(format!(
            "cannot split `{}`: {list} already {verb} in `{}`; split does not overwrite files unless asked. Pass --force to replace them, or --out DIR to write elsewhere. Nothing was written",
            bundle.display(),
            out.display()
        )));
    }
    Ok(())
}

fn print_summary(bundle: &Path, out: &Path, split: &SplitBundle) {
    let mut text = format!(
        "Split `{}` ({} certificate block{}):\n",
        bundle.display(),
        split.blocks_read,
        if split.blocks_read == 1 { "" } else { "s" }
    );
    for action in &split.actions {
        text.push_str(&format!("  - {action}\n"));
    }
    text.push_str(&format!("Wrote to `{}`:\n", out.display()));
    text.push_str(&format!(
        "  cert.pem   {} (the leaf: EMQX Cloud's certificate body)\n",
        split.leaf.display_name()
    ));
    let chain = match split.intermediates.as_slice() {
        [] => "empty: no intermediates".to_string(),
        certs => format!(
            "{} ({} intermediate{}, leaf side first: the certificate chain)",
            certs
                .iter()
                .map(Certificate::display_name)
                .collect::<Vec<_>>()
                .join(" ← "),
            certs.len(),
            if certs.len() == 1 { "" } else { "s" }
        ),
    };
    text.push_str(&format!("  chain.pem  {chain}\n"));
    match &split.root {
        Some((root, _)) => text.push_str(&format!(
            "  root.pem   {} (the trust anchor: MQTT clients' CA file)\n",
            root.display_name()
        )),
        None => {
            text.push_str("  root.pem   not written: no root was found (see above)\n");
            text.push_str(&existing_root_note(out, split));
        }
    }
    super::output::say(text.trim_end_matches('\n'));
}

/// When no root was found but `root.pem` is already in the output directory: say whether it
/// is this chain's root, since it was left in place.
fn existing_root_note(out: &Path, split: &SplitBundle) -> String {
    let path = out.join("root.pem");
    let Ok(bytes) = crate::bounded_read::read_file(&path, crate::bounded_read::MAX_PEM_FILE) else {
        return String::new();
    };
    let top = split.intermediates.last().unwrap_or(&split.leaf);
    let matches = parse_bundle(&bytes).is_ok_and(|b| {
        b.certificates
            .iter()
            .any(|root| top.issued_by_name(root) && top.verify_signed_by(root))
    });
    if matches {
        "             (the root.pem already there is this chain's root and was left in place)\n"
            .to_string()
    } else {
        "             warning: the root.pem already there was left in place, but it is NOT this chain's root\n"
            .to_string()
    }
}
