//! The files of a client CA directory (`client-ca.crt` 0644, `client-ca.key`
//! 0600: the guide's names, so a CA made with its openssl commands can be used
//! as is) and of a client directory (`NAME.crt` 0644, `NAME.key` 0600, a copy
//! of `client-ca.crt`, and optionally the broker's `root.pem`): what MQTTX and
//! `mosquitto_pub --cafile root.pem --cert NAME.crt --key NAME.key` need.
//!
//! Owns: file names and modes, creating missing directories 0700, reading and
//! checking a CA directory and a server root file, refusing to replace a CA or
//! (without `--force`) another CA's certificate in a client directory, and
//! writing each set of files all-or-nothing (see `staged`). Does not own:
//! what the certificates contain (see `ca`, `issue`).

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::ca::{CaProblem, ClientCa};
use super::error::ClientPkiError;
use super::issue::ClientCertificate;
use super::name::ClientName;
pub use super::name::{CA_CERT_FILE, CA_KEY_FILE, SERVER_ROOT_FILE};
use super::staged::StagedFiles;
use crate::pki::{Certificate, PrivateKey, parse_bundle};

/// Mode of certificate files.
pub const CERT_MODE: u32 = 0o644;
/// Mode of key files.
pub const KEY_MODE: u32 = 0o600;
/// Mode of directories this module creates.
pub const DIR_MODE: u32 = 0o700;

/// The two files of a client CA directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// `DIR/client-ca.crt`.
    pub cert: PathBuf,
    /// `DIR/client-ca.key`.
    pub key: PathBuf,
}

impl CaFiles {
    /// The files in `dir`.
    pub fn in_dir(dir: &Path) -> CaFiles {
        CaFiles {
            cert: dir.join(CA_CERT_FILE),
            key: dir.join(CA_KEY_FILE),
        }
    }
}

/// The files of a client directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFiles {
    /// `OUT/NAME.crt`.
    pub cert: PathBuf,
    /// `OUT/NAME.key`.
    pub key: PathBuf,
    /// `OUT/client-ca.crt`.
    pub ca_cert: PathBuf,
    /// `OUT/root.pem`, when a server root was given.
    pub server_root: Option<PathBuf>,
}

impl ClientFiles {
    /// The files for `name` in `dir`.
    pub fn in_dir(dir: &Path, name: &ClientName, with_server_root: bool) -> ClientFiles {
        ClientFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            ca_cert: dir.join(CA_CERT_FILE),
            server_root: with_server_root.then(|| dir.join(SERVER_ROOT_FILE)),
        }
    }
}

/// Creates `dir` (and missing parents) with mode 0700 when it is missing; an
/// existing directory is left as it is.
pub fn prepare_dir(dir: &Path, flag: &'static str) -> Result<(), ClientPkiError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(ClientPkiError::NotADirectory {
                path: dir.to_path_buf(),
                flag,
            });
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ClientPkiError::Write {
                action: "inspect",
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    let write = |action| {
        move |source| ClientPkiError::Write {
            action,
            path: dir.to_path_buf(),
            source,
        }
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(write("create the directory"))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
        .map_err(write("set the permissions of"))
}

/// Refuses when `dir` already holds a client CA key or certificate.
pub fn refuse_existing_ca(dir: &Path) -> Result<(), ClientPkiError> {
    let files = CaFiles::in_dir(dir);
    let exists = |p: &Path| fs::symlink_metadata(p).is_ok();
    match (exists(&files.key), exists(&files.cert)) {
        (true, cert) => Err(ClientPkiError::CaExists {
            path: files.key,
            also: if cert {
                format!(" (and so does {})", files.cert.display())
            } else {
                String::new()
            },
        }),
        (false, true) => Err(ClientPkiError::CaExists {
            path: files.cert,
            also: String::new(),
        }),
        (false, false) => Ok(()),
    }
}

/// Writes `ca` to `dir` (created 0700 if missing): the certificate 0644 and the
/// key 0600, both or neither. Without `force` an existing CA is never replaced,
/// not even by a concurrent run.
pub fn write_ca(dir: &Path, ca: &ClientCa, force: bool) -> Result<CaFiles, ClientPkiError> {
    if !force {
        refuse_existing_ca(dir)?;
    }
    prepare_dir(dir, "--out")?;
    let files = CaFiles::in_dir(dir);
    let mut set = StagedFiles::new();
    set.stage(&files.key, ca.key().to_pem().as_bytes(), KEY_MODE, force)?;
    set.stage(
        &files.cert,
        ca.certificate().to_pem().as_bytes(),
        CERT_MODE,
        force,
    )?;
    match set.commit() {
        Err(ClientPkiError::Write { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
            refuse_existing_ca(dir)?;
            Err(ClientPkiError::Write {
                action: "create",
                path: files.key.clone(),
                source,
            })
        }
        other => other.map(|()| files),
    }
}

fn read(what: &'static str, path: &Path, fix: &str) -> Result<Vec<u8>, ClientPkiError> {
    crate::bounded_read::read_file(path, crate::bounded_read::MAX_PEM_FILE).map_err(|source| {
        ClientPkiError::Read {
            what,
            path: path.to_path_buf(),
            source,
            fix: fix.to_string(),
        }
    })
}

/// Reads the client CA in `dir` and checks that it can sign client
/// certificates at `now`.
pub fn load_ca(dir: &Path, now: OffsetDateTime) -> Result<ClientCa, ClientPkiError> {
    let fix = format!(
        "`--ca` takes the directory holding {CA_CERT_FILE} and {CA_KEY_FILE}; create one with `brokercert client-ca create --out DIR`"
    );
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(ClientPkiError::NotADirectory {
                path: dir.to_path_buf(),
                flag: "--ca",
            });
        }
        Ok(_) => {}
        Err(source) => {
            return Err(ClientPkiError::Read {
                what: "the client CA directory",
                path: dir.to_path_buf(),
                source,
                fix,
            });
        }
    }
    let files = CaFiles::in_dir(dir);
    let cert_text = read("the client CA certificate", &files.cert, &fix)?;
    let cert_error = |reason: String| ClientPkiError::CaCertificate {
        path: files.cert.clone(),
        reason,
    };
    let bundle = parse_bundle(&cert_text).map_err(|e| cert_error(e.to_string()))?;
    let cert = match bundle.certificates.as_slice() {
        [one] => one.clone(),
        [] => return Err(cert_error("it holds no certificate".to_string())),
        several => {
            return Err(cert_error(format!(
                "it holds {} certificates; expected the CA certificate alone",
                several.len()
            )));
        }
    };
    let key_text = read("the client CA key", &files.key, &fix)?;
    let key = PrivateKey::from_pem(&key_text).map_err(|source| ClientPkiError::CaKey {
        path: files.key.clone(),
        source,
    })?;
    let ca = ClientCa::from_parts(cert, key).map_err(|problem| match problem {
        CaProblem::KeyMismatch => ClientPkiError::CaKeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        },
        other => cert_error(other.to_string()),
    })?;
    ca.check_valid_at(now)
        .map_err(|problem| cert_error(problem.to_string()))?;
    Ok(ca)
}

/// The permission bits of `key` when group or others may access it.
pub fn loose_key_mode(key: &Path) -> Option<u32> {
    let mode = fs::metadata(key).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// Reads the broker's root certificate(s) from `path`: PEM certificates that
/// are all CAs, and no private key.
pub fn read_server_root(path: &Path) -> Result<Vec<Certificate>, ClientPkiError> {
    let text = read(
        "the server root",
        path,
        "`--server-root` takes the broker's root certificate, e.g. live/<name>/root.pem of the state directory",
    )?;
    let refuse = |reason: String| ClientPkiError::ServerRoot {
        path: path.to_path_buf(),
        reason,
    };
    let bundle = parse_bundle(&text).map_err(|e| refuse(e.to_string()))?;
    if !bundle.private_keys.is_empty() {
        return Err(refuse("it contains a private key".to_string()));
    }
    if bundle.certificates.is_empty() {
        return Err(refuse("it holds no certificate".to_string()));
    }
    if let Some(leaf) = bundle.certificates.iter().find(|c| !c.is_ca()) {
        return Err(refuse(format!(
            "{} is not a CA certificate (a server certificate or fullchain?)",
            leaf.display_name()
        )));
    }
    Ok(bundle.certificates)
}

/// What a client directory's copy of a shared file (`client-ca.crt`,
/// `root.pem`) needs: nothing when it already holds exactly `want`, otherwise
/// to be staged (replacing only with `force`; created only if still absent).
fn plan_copy(
    path: &Path,
    want: &[Certificate],
    wanted: &str,
    force: bool,
) -> Result<Option<bool>, ClientPkiError> {
    let found = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Some(false)),
        Err(e) => format!("something that cannot be inspected ({e})"),
        Ok(m) if m.is_dir() => "a directory".to_string(),
        Ok(_) => match crate::bounded_read::read_file(path, crate::bounded_read::MAX_PEM_FILE)
            .map(|t| parse_bundle(&t))
        {
            Err(e) => format!("a file that cannot be read ({e})"),
            Ok(Ok(b)) if b.certificates.as_slice() == want => return Ok(None),
            Ok(Ok(b)) => match b.certificates.as_slice() {
                [] => "no certificate".to_string(),
                [one] => certificate_name(one),
                [first, ..] => format!(
                    "{} certificates, the first {}",
                    b.certificates.len(),
                    certificate_name(first)
                ),
            },
            Ok(Err(_)) => "no certificate".to_string(),
        },
    };
    if force {
        return Ok(Some(true));
    }
    Err(ClientPkiError::WouldReplace {
        path: path.to_path_buf(),
        found,
        wanted: wanted.to_string(),
    })
}

/// A certificate's subject and serial, so two CAs of the same name differ.
fn certificate_name(c: &Certificate) -> String {
    format!("`{}` (serial {})", c.display_name(), c.serial_hex())
}

/// Writes a client directory (created 0700 if missing): `NAME.crt`, `NAME.key`
/// (0600), `client-ca.crt` and, with `server_root`, `root.pem`; all or none.
/// Existing `NAME.crt` and `NAME.key` are replaced (a new certificate for the
/// same client). A `client-ca.crt` or `root.pem` that already holds the same
/// certificates is left as it is (so `--out` may be the CA directory itself);
/// one that holds anything else is replaced only with `force`, since `--out`
/// may be another CA's directory.
pub fn write_client(
    dir: &Path,
    name: &ClientName,
    issued: &ClientCertificate,
    ca_cert: &Certificate,
    server_root: Option<&[Certificate]>,
    force: bool,
) -> Result<ClientFiles, ClientPkiError> {
    prepare_dir(dir, "--out")?;
    let files = ClientFiles::in_dir(dir, name, server_root.is_some());
    let mut copies = vec![(
        files.ca_cert.as_path(),
        std::slice::from_ref(ca_cert),
        format!(
            "a copy of the client CA certificate {}",
            certificate_name(ca_cert)
        ),
    )];
    if let (Some(path), Some(roots)) = (&files.server_root, server_root) {
        copies.push((
            path.as_path(),
            roots,
            "the server root given with `--server-root`".to_string(),
        ));
    }
    // Everything that can be refused is refused before anything is staged.
    let copies = copies
        .into_iter()
        .map(|(path, want, wanted)| Ok((path, want, plan_copy(path, want, &wanted, force)?)))
        .collect::<Result<Vec<_>, ClientPkiError>>()?;
    let mut set = StagedFiles::new();
    set.stage(
        &files.cert,
        issued.cert.to_pem().as_bytes(),
        CERT_MODE,
        true,
    )?;
    set.stage(&files.key, issued.key.to_pem().as_bytes(), KEY_MODE, true)?;
    for (path, want, plan) in copies {
        if let Some(replace) = plan {
            let pem: String = want.iter().map(Certificate::to_pem).collect();
            set.stage(path, pem.as_bytes(), CERT_MODE, replace)?;
        }
    }
    set.commit()?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clientpki::ca::{CaSubject, create_ca};
    use crate::clientpki::issue::issue_client_certificate;
    use crate::pki::test_support::{NOW, TestCa, ecdsa_p256};
    use crate::pki::{KeyError, KeyType};

    fn p256() -> PrivateKey {
        PrivateKey::generate(KeyType::EcdsaP256).unwrap()
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_ca_round_trips_through_its_directory_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("new").join("ca");
        let ca = create_ca(&CaSubject::default(), p256(), 30, NOW).unwrap();
        let files = write_ca(&dir, &ca, false).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&files.cert), 0o644);
        assert_eq!(mode(&files.key), 0o600);
        assert_eq!(loose_key_mode(&files.key), None);
        let back = load_ca(&dir, NOW).unwrap();
        assert_eq!(back.certificate(), ca.certificate());
        assert_eq!(back.key().pkcs8_der(), ca.key().pkcs8_der());

        let again = create_ca(&CaSubject::default(), p256(), 30, NOW).unwrap();
        let e = write_ca(&dir, &again, false).unwrap_err();
        assert!(matches!(e, ClientPkiError::CaExists { .. }), "{e}");
        assert!(e.to_string().contains("client-ca.key"), "{e}");
        assert_eq!(load_ca(&dir, NOW).unwrap().certificate(), ca.certificate());
        write_ca(&dir, &again, true).unwrap();
        assert_eq!(
            load_ca(&dir, NOW).unwrap().certificate(),
            again.certificate()
        );
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
    }

    #[test]
    fn an_existing_directory_keeps_its_mode() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let ca = create_ca(&CaSubject::default(), p256(), 30, NOW).unwrap();
        write_ca(tmp.path(), &ca, false).unwrap();
        assert_eq!(mode(tmp.path()), 0o755);
    }

    #[test]
    fn loading_names_the_file_that_is_wrong() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let e = load_ca(&dir.join("missing"), NOW).unwrap_err();
        assert!(
            matches!(e, ClientPkiError::Read { .. }) && e.exit_code() == 2,
            "{e}"
        );
        assert!(e.to_string().contains("client-ca create"), "{e}");

        let ca = create_ca(&CaSubject::default(), p256(), 30, NOW).unwrap();
        write_ca(dir, &ca, false).unwrap();
        let key_path = dir.join(CA_KEY_FILE);
        let cert_path = dir.join(CA_CERT_FILE);

        fs::write(&key_path, p256().to_pem()).unwrap();
        let e = load_ca(dir, NOW).unwrap_err();
        assert!(
            matches!(e, ClientPkiError::CaKeyMismatch { .. }) && e.exit_code() == 6,
            "{e}"
        );
        assert!(
            e.to_string().contains(&key_path.display().to_string()),
            "{e}"
        );

        fs::write(&key_path, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAECAwQFBgcICQoLDA0ODw==\n-----END ENCRYPTED PRIVATE KEY-----\n").unwrap();
        let e = load_ca(dir, NOW).unwrap_err();
        assert!(
            matches!(
                &e,
                ClientPkiError::CaKey {
                    source: KeyError::Encrypted { .. },
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("must be unencrypted"), "{e}");

        fs::remove_file(&key_path).unwrap();
        let e = load_ca(dir, NOW).unwrap_err();
        assert!(
            e.to_string().contains("client-ca.key") && e.exit_code() == 2,
            "{e}"
        );

        // A client certificate is not a CA.
        let client =
            issue_client_certificate(&ca, &ClientName::parse("c").unwrap(), p256(), 1, NOW)
                .unwrap();
        fs::write(&cert_path, client.cert.to_pem()).unwrap();
        fs::write(&key_path, client.key.to_pem()).unwrap();
        let e = load_ca(dir, NOW).unwrap_err();
        assert!(
            matches!(e, ClientPkiError::CaCertificate { .. }) && e.exit_code() == 6,
            "{e}"
        );
        assert!(e.to_string().contains("not a CA certificate"), "{e}");

        // An expired CA.
        write_ca(dir, &ca, true).unwrap();
        let e = load_ca(dir, NOW + time::Duration::days(60)).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");

        fs::write(&cert_path, "not pem").unwrap();
        let e = load_ca(dir, NOW).unwrap_err();
        assert!(e.to_string().contains("client-ca.crt"), "{e}");

        let file = dir.join("file");
        fs::write(&file, "").unwrap();
        let e = load_ca(&file, NOW).unwrap_err();
        assert!(matches!(e, ClientPkiError::NotADirectory { .. }), "{e}");
    }

    #[test]
    fn a_client_directory_holds_what_mqtt_clients_need() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = create_ca(&CaSubject::default(), p256(), 30, NOW).unwrap();
        let name = ClientName::parse("sensor-01").unwrap();
        let issued = issue_client_certificate(&ca, &name, p256(), 10, NOW).unwrap();
        let root = TestCa::root("Server Root", ecdsa_p256()).cert;
        let out = tmp.path().join("clients");
        let files = write_client(
            &out,
            &name,
            &issued,
            ca.certificate(),
            Some(std::slice::from_ref(&root)),
            false,
        )
        .unwrap();
        assert_eq!(files.cert, out.join("sensor-01.crt"));
        assert_eq!(mode(&out), 0o700);
        assert_eq!(mode(&files.cert), 0o644);
        assert_eq!(mode(&files.key), 0o600);
        assert_eq!(mode(&files.ca_cert), 0o644);
        let server_root = files.server_root.clone().unwrap();
        assert_eq!(fs::read_to_string(&server_root).unwrap(), root.to_pem());
        assert_eq!(
            fs::read_to_string(&files.ca_cert).unwrap(),
            ca.certificate().to_pem()
        );
        assert_eq!(
            PrivateKey::from_pem(fs::read(&files.key).unwrap())
                .unwrap()
                .pkcs8_der(),
            issued.key.pkcs8_der()
        );

        // Into the CA directory itself: the CA's files stay as they are.
        let ca_dir = tmp.path().join("ca");
        let ca_files = write_ca(&ca_dir, &ca, false).unwrap();
        let before = fs::metadata(&ca_files.cert).unwrap().modified().unwrap();
        write_client(&ca_dir, &name, &issued, ca.certificate(), None, false).unwrap();
        assert_eq!(
            fs::metadata(&ca_files.cert).unwrap().modified().unwrap(),
            before
        );
        assert!(load_ca(&ca_dir, NOW).is_ok());
    }

    #[test]
    fn the_server_root_must_be_ca_certificates_without_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let root = TestCa::root("Server Root", ecdsa_p256());
        let path = tmp.path().join("root.pem");
        fs::write(&path, root.cert.to_pem()).unwrap();
        assert_eq!(read_server_root(&path).unwrap(), vec![root.cert.clone()]);

        let leaf = root.leaf(&["mqtt.example.test"], &ecdsa_p256());
        fs::write(&path, leaf.to_pem()).unwrap();
        let e = read_server_root(&path).unwrap_err();
        assert!(
            e.to_string().contains("not a CA certificate") && e.exit_code() == 6,
            "{e}"
        );

        fs::write(
            &path,
            format!("{}{}", root.cert.to_pem(), root.key.serialize_pem()),
        )
        .unwrap();
        let e = read_server_root(&path).unwrap_err();
        assert!(e.to_string().contains("private key"), "{e}");
        assert!(!e.to_string().contains("BEGIN"), "{e}");

        let e = read_server_root(&tmp.path().join("nope.pem")).unwrap_err();
        assert!(
            e.to_string().contains("nope.pem") && e.exit_code() == 2,
            "{e}"
        );
    }
}
