//! `brokercert split` against bad and awkward bundles, through the real binary. Every
//! certificate and key is made here with rcgen (ECDSA P-256, fast in debug builds); nothing
//! secret is checked in. Each failure case asserts the message's key words, the exit code,
//! and that the directory is byte-for-byte unchanged afterwards.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use brokercert::error::exit;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};

// ---------------------------------------------------------------- certificates

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

fn key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
}

impl Ca {
    fn root(cn: &str) -> Ca {
        let params = ca_params(cn);
        let key = key();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    fn issue_ca(&self, cn: &str) -> Ca {
        let params = ca_params(cn);
        let key = key();
        let pem = params
            .signed_by(&key, &Issuer::from_params(&self.params, &self.key))
            .unwrap()
            .pem();
        Ca { params, key, pem }
    }

    /// This CA's name and key, signed by `other` (a cross-sign, like ISRG Root YR by X1).
    fn cross_signed_by(&self, other: &Ca) -> String {
        self.params
            .signed_by(&self.key, &Issuer::from_params(&other.params, &other.key))
            .unwrap()
            .pem()
    }

    fn leaf(&self, cn: &str) -> String {
        let mut p = CertificateParams::new(vec![cn.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.signed_by(&key(), &Issuer::from_params(&self.params, &self.key))
            .unwrap()
            .pem()
    }
}

/// root → intermediate 1 → intermediate 2 → leaf `mqtt.example.test`.
struct Chain {
    root: String,
    /// Leaf side first: [intermediate 2, intermediate 1].
    ints: Vec<String>,
    leaf: String,
}

fn chain() -> Chain {
    let root = Ca::root("Split Test Root");
    let i1 = root.issue_ca("Split Test Intermediate 1");
    let i2 = i1.issue_ca("Split Test Intermediate 2");
    let leaf = i2.leaf("mqtt.example.test");
    Chain {
        root: root.pem,
        ints: vec![i2.pem, i1.pem],
        leaf,
    }
}

fn self_signed(cn: &str) -> String {
    let mut p = CertificateParams::new(vec![cn.to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.self_signed(&key()).unwrap().pem()
}

// ---------------------------------------------------------------- running

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

fn split(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_brokercert"))
        .arg("split")
        .args(args)
        .env_remove("BROKERCERT_CONFIG")
        .env_remove("BROKERCERT_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("runs brokercert");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every file under `dir` with its bytes (to prove a failed run wrote nothing).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                // Unreadable files (the chmod 000 case) are recorded by name only.
                files.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    files
}

/// Runs `split` on `bundle` (written to `dir/<name>`) and asserts the failure: exit code,
/// key words in the single `error:` paragraph, and an unchanged directory.
fn assert_fails(dir: &Path, target: &Path, code: i32, words: &[&str]) -> Run {
    let before = snapshot(dir);
    let run = split(&[target.to_str().unwrap()]);
    assert_eq!(run.code, code, "exit code\n{}", run.all());
    assert!(run.stdout.is_empty(), "nothing on stdout: {}", run.stdout);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert_eq!(
        run.stderr.trim_end().lines().count(),
        1,
        "one paragraph: {}",
        run.stderr
    );
    for w in words {
        assert!(run.stderr.contains(w), "missing {w:?} in: {}", run.stderr);
    }
    assert!(
        run.stderr.contains(&target.display().to_string()),
        "names the file: {}",
        run.stderr
    );
    assert_eq!(snapshot(dir), before, "nothing may be written on failure");
    run
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// ---------------------------------------------------------------- awkward but fine

#[test]
fn crlf_bom_trailing_spaces_and_text_between_blocks_are_normalised() {
    let c = chain();
    let dir = tmp();
    let mut text = String::from("\u{feff}Bag Attributes\r\n    friendlyName: mqtt\r\n");
    for (i, pem) in [&c.leaf, &c.ints[0], &c.ints[1], &c.root]
        .iter()
        .enumerate()
    {
        text.push_str(&format!("subject=certificate {i}  \r\n"));
        text.push_str(&pem.replace('\n', " \r\n"));
    }
    let bundle = write(dir.path(), "bundle.pem", text);
    let run = split(&[bundle.to_str().unwrap()]);
    assert_eq!(run.code, exit::OK, "{}", run.all());
    for w in [
        "byte order mark",
        "CRLF line endings",
        "trailing whitespace",
        "text outside the PEM blocks",
        "4 certificate blocks",
    ] {
        assert!(run.stdout.contains(w), "missing {w:?}: {}", run.stdout);
    }
    assert!(!run.stdout.contains("reordered"), "{}", run.stdout);
    assert_eq!(read(dir.path(), "cert.pem"), c.leaf);
    assert_eq!(
        read(dir.path(), "chain.pem"),
        format!("{}{}", c.ints[0], c.ints[1])
    );
    assert_eq!(read(dir.path(), "root.pem"), c.root);
    let mode = std::fs::metadata(dir.path().join("cert.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
}

#[test]
fn blocks_out_of_order_are_reordered_and_the_order_is_reported() {
    let c = chain();
    let dir = tmp();
    let out = dir.path().join("out");
    // root, intermediate 1, leaf, intermediate 2.
    let text = format!("{}{}{}{}", c.root, c.ints[1], c.leaf, c.ints[0]);
    let bundle = write(dir.path(), "shuffled.pem", text);
    let run = split(&[bundle.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, exit::OK, "{}", run.all());
    assert!(
        run.stdout
            .contains("reordered blocks 3,4,2,1 → leaf, intermediate, intermediate, root"),
        "{}",
        run.stdout
    );
    assert_eq!(read(&out, "cert.pem"), c.leaf);
    assert_eq!(
        read(&out, "chain.pem"),
        format!("{}{}", c.ints[0], c.ints[1])
    );
    assert_eq!(read(&out, "root.pem"), c.root);
}

#[test]
fn a_duplicated_leaf_is_dropped_with_a_note() {
    let c = chain();
    let dir = tmp();
    let text = format!("{}{}{}{}", c.leaf, c.ints[0], c.ints[1], c.leaf);
    let bundle = write(dir.path(), "doubled.pem", text);
    let run = split(&[bundle.to_str().unwrap()]);
    assert_eq!(run.code, exit::OK, "{}", run.all());
    assert!(
        run.stdout
            .contains("removed a repeated leaf (block 4, the same certificate as block 1"),
        "{}",
        run.stdout
    );
    assert_eq!(read(dir.path(), "cert.pem"), c.leaf);
    assert_eq!(
        read(dir.path(), "chain.pem"),
        format!("{}{}", c.ints[0], c.ints[1])
    );
    // The root is not in the bundle nor anywhere else: said plainly, not fatal.
    assert!(!dir.path().join("root.pem").exists());
    assert!(
        run.stdout.contains("no root.pem")
            && run
                .stdout
                .contains("is issued by CN=Split Test Root, which is neither in the bundle"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_self_signed_leaf_is_its_own_root() {
    let leaf = self_signed("mqtt.example.test");
    let dir = tmp();
    let bundle = write(dir.path(), "selfsigned.crt", &leaf);
    let run = split(&[bundle.to_str().unwrap()]);
    assert_eq!(run.code, exit::OK, "{}", run.all());
    assert!(
        run.stdout.contains("is self-signed")
            && run
                .stdout
                .contains("clients must trust this certificate directly"),
        "{}",
        run.stdout
    );
    assert_eq!(read(dir.path(), "cert.pem"), leaf);
    assert_eq!(read(dir.path(), "root.pem"), leaf);
    assert_eq!(read(dir.path(), "chain.pem"), "");
}

#[test]
fn key_blocks_even_encrypted_ones_are_ignored_and_never_printed() {
    let c = chain();
    let dir = tmp();
    let plain_key = key().serialize_pem();
    // Encrypted-key markers around bytes that stand in for ciphertext.
    let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,0011223344556677889900AABBCCDDEE\n\nU2VjcmV0U2VjcmV0U2VjcmV0U2VjcmV0U2VjcmV0\n-----END RSA PRIVATE KEY-----\n";
    let pkcs8 = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nQ2lwaGVydGV4dENpcGhlcnRleHRDaXBoZXJ0ZXh0\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let text = format!(
        "{}{legacy}{}{pkcs8}{}{plain_key}",
        c.leaf, c.ints[0], c.ints[1]
    );
    let bundle = write(dir.path(), "with-keys.pem", text);
    let run = split(&[bundle.to_str().unwrap()]);
    assert_eq!(run.code, exit::OK, "{}", run.all());
    let all = run.all();
    assert!(
        all.contains("ignored block 2 (an encrypted private key, legacy OpenSSL encrypted"),
        "{all}"
    );
    assert!(
        all.contains("ignored block 4 (an encrypted private key, encrypted PKCS#8)"),
        "{all}"
    );
    assert!(
        all.contains("ignored block 6 (a private key, PKCS#8)"),
        "{all}"
    );
    for secret in [
        "U2VjcmV0U2VjcmV0",
        "Q2lwaGVydGV4dENp",
        plain_key.lines().nth(1).unwrap(),
    ] {
        assert!(!all.contains(secret), "key material printed: {all}");
    }
    for f in ["cert.pem", "chain.pem"] {
        assert!(
            !read(dir.path(), f).contains("PRIVATE KEY"),
            "{f} holds a key"
        );
    }
    assert_eq!(read(dir.path(), "cert.pem"), c.leaf);

    // A file with only a key is not a bundle: refused, the key not shown.
    let only_key = write(dir.path(), "only-key.pem", pkcs8);
    let run = assert_fails(
        dir.path(),
        &only_key,
        exit::CERTIFICATE,
        &[
            "1 private-key block (not shown)",
            "no certificate",
            "key file",
        ],
    );
    assert!(!run.stderr.contains("Q2lwaGVydGV4dENp"));
}

#[test]
fn lets_encrypt_2026_chain_without_its_root_finds_it_with_trust_root() {
    // leaf ← YE1 ← Root YE (cross-signed by X2): the anchor X2 is not in the bundle.
    let x2 = Ca::root("Split Test Root X2");
    let ye = Ca::root("Split Test Root YE");
    let ye_cross = ye.cross_signed_by(&x2);
    let ye1 = ye.issue_ca("Split Test YE1");
    let leaf = ye1.leaf("mqtt.example.test");
    let dir = tmp();
    let bundle = write(
        dir.path(),
        "fullchain.pem",
        format!("{leaf}{}{ye_cross}", ye1.pem),
    );
    let roots = write(dir.path(), "x2.pem", &x2.pem);
    let out = dir.path().join("out");
    let run = split(&[
        bundle.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--trust-root",
        roots.to_str().unwrap(),
    ]);
    assert_eq!(run.code, exit::OK, "{}", run.all());
    assert!(
        run.stdout
            .contains("root.pem: CN=Split Test Root X2, from the extra trust roots"),
        "{}",
        run.stdout
    );
    assert_eq!(read(&out, "chain.pem"), format!("{}{ye_cross}", ye1.pem));
    assert_eq!(read(&out, "root.pem"), x2.pem);
}

// ---------------------------------------------------------------- refused

#[test]
fn der_instead_of_pem_is_refused_with_the_conversion_command() {
    let c = chain();
    let der = pem::parse(&c.leaf).unwrap().into_contents();
    let dir = tmp();
    let bundle = write(dir.path(), "cert.der", der);
    assert_fails(
        dir.path(),
        &bundle,
        exit::CERTIFICATE,
        &[
            "binary DER",
            "CN=mqtt.example.test",
            "openssl x509 -inform der",
            "Nothing was written",
        ],
    );
}

#[test]
fn a_missing_intermediate_is_refused_naming_the_gap() {
    let c = chain();
    let dir = tmp();
    // leaf, intermediate 2, root: intermediate 1 is missing.
    let bundle = write(
        dir.path(),
        "gap.pem",
        format!("{}{}{}", c.leaf, c.ints[0], c.root),
    );
    assert_fails(
        dir.path(),
        &bundle,
        exit::CERTIFICATE,
        &[
            "don't form one chain",
            "block 2 (CN=Split Test Intermediate 2) is issued by CN=Split Test Intermediate 1, which is missing from the file",
            "block 3 (CN=Split Test Root) does not connect",
            "Add the missing certificate CN=Split Test Intermediate 1",
        ],
    );
}

#[test]
fn two_unrelated_server_certificates_are_refused() {
    let a = chain();
    let b = Ca::root("Other CA").leaf("other.example.test");
    let dir = tmp();
    let bundle = write(dir.path(), "two.pem", format!("{}{b}", a.leaf));
    assert_fails(
        dir.path(),
        &bundle,
        exit::CERTIFICATE,
        &[
            "block 1 (CN=mqtt.example.test) and block 2 (CN=other.example.test)",
            "exactly one server certificate",
        ],
    );
}

#[test]
fn truncated_base64_is_refused_with_the_block_number() {
    let c = chain();
    let dir = tmp();
    let second = &c.ints[0];
    let end = second.find("-----END").unwrap();
    // Cut the second block in the middle of its last base64 line.
    let cut = format!("{}\n-----END CERTIFICATE-----\n", &second[..end - 7]);
    let bundle = write(dir.path(), "cut.pem", format!("{}{cut}", c.leaf));
    assert_fails(
        dir.path(),
        &bundle,
        exit::CERTIFICATE,
        &["PEM block 2", "valid base64", "truncated", "copy it again"],
    );
    // And a file that stops before its END line.
    let bundle = write(
        dir.path(),
        "stops.pem",
        format!("{}{}", c.leaf, &second[..end]),
    );
    assert_fails(
        dir.path(),
        &bundle,
        exit::CERTIFICATE,
        &[
            "PEM block 2",
            "no -----END CERTIFICATE----- line",
            "truncated",
        ],
    );
}

#[test]
fn an_empty_file_is_refused() {
    let dir = tmp();
    let bundle = write(dir.path(), "empty.pem", "");
    assert_fails(
        dir.path(),
        &bundle,
        exit::CERTIFICATE,
        &["empty", "expected PEM text", "fullchain.pem"],
    );
    let bundle = write(dir.path(), "blank.pem", " \r\n\n\t\n");
    assert_fails(dir.path(), &bundle, exit::CERTIFICATE, &["empty"]);
}

#[test]
fn junk_text_without_pem_is_refused() {
    let dir = tmp();
    let bundle = write(
        dir.path(),
        "page.html",
        "<html><body>Your certificate is ready</body></html>\n",
    );
    assert_fails(
        dir.path(),
        &bundle,
        exit::CERTIFICATE,
        &[
            "no PEM block was found",
            "-----BEGIN CERTIFICATE-----",
            "pkcs12",
        ],
    );
}

#[test]
fn a_directory_instead_of_a_file_is_a_usage_error() {
    let dir = tmp();
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    write(&live, "fullchain.pem", chain().leaf);
    assert_fails(
        dir.path(),
        &live,
        exit::CONFIG,
        &["is a directory", "expected a PEM file", "fullchain.pem"],
    );
}

#[test]
fn a_missing_file_is_a_usage_error() {
    let dir = tmp();
    assert_fails(
        dir.path(),
        &dir.path().join("nope.pem"),
        exit::CONFIG,
        &["no such file", "Check the path"],
    );
}

#[test]
fn an_unreadable_file_is_a_usage_error() {
    let dir = tmp();
    let bundle = write(dir.path(), "locked.pem", chain().leaf);
    std::fs::set_permissions(&bundle, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root (CI containers often run tests as root) reads a mode-000 file anyway, so the
    // refusal can only be asserted for other users; as root the split simply succeeds.
    if std::fs::read(&bundle).is_ok() {
        eprintln!("running as root: chmod 000 does not block reads; skipping the assertion");
        return;
    }
    assert_fails(
        dir.path(),
        &bundle,
        exit::CONFIG,
        &["permission denied", "expected a file this user can read"],
    );
}

#[test]
fn ten_megabytes_of_junk_are_refused_fast_as_too_large() {
    let dir = tmp();
    // Cheap deterministic junk (xorshift), not a real secret.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let junk: Vec<u8> = (0..10 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let bundle = write(dir.path(), "junk.bin", junk);
    let start = Instant::now();
    assert_fails(
        dir.path(),
        &bundle,
        exit::CERTIFICATE,
        &[
            "too large",
            "10485760 bytes",
            "1048576 bytes",
            "expected a PEM file",
        ],
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn existing_files_are_kept_unless_forced() {
    let c = chain();
    let dir = tmp();
    let bundle = write(dir.path(), "bundle.pem", format!("{}{}", c.leaf, c.ints[0]));
    write(dir.path(), "chain.pem", "old chain\n");
    assert_fails(
        dir.path(),
        &bundle,
        exit::CONFIG,
        &["chain.pem already exists", "--force", "Nothing was written"],
    );
    let run = split(&[bundle.to_str().unwrap(), "--force"]);
    assert_eq!(run.code, exit::OK, "{}", run.all());
    assert_eq!(read(dir.path(), "chain.pem"), c.ints[0]);

    // The bundle itself is never replaced, not even with --force.
    let named_cert = write(dir.path(), "cert.pem", format!("{}{}", c.leaf, c.ints[0]));
    let before = snapshot(dir.path());
    let run = split(&[named_cert.to_str().unwrap(), "--force"]);
    assert_eq!(run.code, exit::CONFIG, "{}", run.all());
    assert!(
        run.stderr.contains("the bundle itself is cert.pem"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(dir.path()), before);
}
