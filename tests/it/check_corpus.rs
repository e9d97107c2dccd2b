//! `brokercert check` against a corpus of bad and awkward inputs, all generated here (rcgen,
//! and the openssl CLI for what rcgen cannot make: RSA 1024, DSA, X.509 v1). Each case
//! asserts the exit code and the key words of the verdict.

use std::path::{Path, PathBuf};
use std::process::Command;

use brokercert::error::exit;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime};

const NAME: &str = "mqtt.example.test";

fn key(alg: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::generate_for(alg).expect("key")
}

fn rsa(bits: rcgen::RsaKeySize) -> KeyPair {
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, bits).expect("rsa key")
}

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.distinguished_name.push(DnType::CommonName, cn);
    p
}

fn root(cn: &str, key: KeyPair) -> Ca {
    let params = ca_params(cn);
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

impl Ca {
    fn child(&self, cn: &str, key: KeyPair) -> Ca {
        let params = ca_params(cn);
        let pem = params
            .signed_by(&key, &Issuer::from_params(&self.params, &self.key))
            .unwrap()
            .pem();
        Ca { params, key, pem }
    }

    fn leaf_with(&self, names: &[&str], key: &KeyPair, days: (i64, i64)) -> String {
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(DnType::CommonName, names[0]);
        let now = OffsetDateTime::now_utc();
        p.not_before = now + Duration::days(days.0);
        p.not_after = now + Duration::days(days.1);
        p.signed_by(key, &Issuer::from_params(&self.params, &self.key))
            .unwrap()
            .pem()
    }

    fn leaf(&self, key: &KeyPair) -> String {
        self.leaf_with(&[NAME], key, (-1, 89))
    }
}

/// An ECDSA P-256 PKI: root → intermediate, and a fresh leaf key.
fn ecdsa_pki() -> (Ca, Ca) {
    let r = root("Corpus Root", key(&rcgen::PKCS_ECDSA_P256_SHA256));
    let i = r.child("Corpus Intermediate", key(&rcgen::PKCS_ECDSA_P256_SHA256));
    (r, i)
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn lineage(&self, cert: &str, chain: &str, key: &str, root: Option<&str>) -> PathBuf {
        let d = self.dir.path().join("live");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cert.pem"), cert).unwrap();
        std::fs::write(d.join("chain.pem"), chain).unwrap();
        std::fs::write(d.join("privkey.pem"), key).unwrap();
        if let Some(r) = root {
            std::fs::write(d.join("root.pem"), r).unwrap();
        }
        d
    }

    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn check(paths: &[&Path], extra: &[&str]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_brokercert"));
    cmd.arg("check")
        .args(paths)
        .args(["--domain", NAME])
        .args(extra)
        .env_remove("BROKERCERT_CONFIG");
    let out = cmd.output().unwrap();
    let o = Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    };
    assert!(
        !o.stdout.contains("PRIVATE KEY-----") && !o.stderr.contains("PRIVATE KEY-----"),
        "key material printed"
    );
    o
}

#[track_caller]
fn assert_fail(o: &Out, rule: &str, words: &[&str]) {
    assert_eq!(o.code, exit::CERTIFICATE, "{}\n{}", o.stdout, o.stderr);
    let line = o
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("FAIL {rule} ")))
        .unwrap_or_else(|| panic!("no FAIL {rule} line:\n{}", o.stdout));
    for w in words {
        assert!(line.contains(w), "`{w}` missing from: {line}");
    }
}

#[test]
fn a_good_lineage_passes_every_rule() {
    let (r, i) = ecdsa_pki();
    let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let c = Case::new();
    let d = c.lineage(&i.leaf(&k), &i.pem, &k.serialize_pem(), Some(&r.pem));
    let o = check(&[&d], &[]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(o.stdout.contains("all 10 rules passed"), "{}", o.stdout);
    assert!(
        o.stdout.contains("PASS anchor") && o.stdout.contains("Corpus Root"),
        "{}",
        o.stdout
    );
}

#[test]
fn crlf_bom_and_text_between_blocks_are_accepted_and_noted() {
    let (r, i) = ecdsa_pki();
    let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let c = Case::new();
    let bundle = format!(
        "\u{feff}subject=CN = {NAME}\n{}issuer=CN = Corpus Intermediate\n{}{}",
        i.leaf(&k),
        i.pem,
        r.pem
    )
    .replace('\n', "\r\n");
    let f = c.file("bundle.pem", bundle);
    let kf = c.file("key.pem", k.serialize_pem());
    let o = check(&[&f, &kf], &[]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(
        o.stdout.contains("note:"),
        "normalisation is reported: {}",
        o.stdout
    );
}

#[test]
fn json_output_has_one_verdict_per_rule() {
    let (_r, i) = ecdsa_pki();
    let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let c = Case::new();
    let d = c.lineage(
        &i.leaf(&k),
        &i.pem,
        &key(&rcgen::PKCS_ECDSA_P256_SHA256).serialize_pem(),
        None,
    );
    let o = check(&[&d], &["--json"]);
    assert_eq!(o.code, exit::CERTIFICATE);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("JSON");
    assert_eq!(v["ok"], false);
    let verdicts = v["report"]["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 10);
    let km = verdicts
        .iter()
        .find(|x| x["rule"] == "key-matches")
        .unwrap();
    assert_eq!(km["ok"], false);
    assert!(km["fix"].as_str().unwrap().contains("privkey.pem"));
}

#[test]
fn key_problems() {
    let (_r, i) = ecdsa_pki();
    let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let leaf = i.leaf(&k);
    let c = Case::new();
    // 1. Another certificate's key.
    let d = c.lineage(
        &leaf,
        &i.pem,
        &key(&rcgen::PKCS_ECDSA_P256_SHA256).serialize_pem(),
        None,
    );
    assert_fail(&check(&[&d], &[]), "key-matches", &["another certificate"]);
    // 2. Encrypted PKCS#8 (made by openssl).
    c.file("plain.key", k.serialize_pem());
    c.openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        "plain.key",
        "-out",
        "enc.key",
        "-passout",
        "pass:corpus",
        "-v2",
        "aes-256-cbc",
    ]);
    let enc = std::fs::read_to_string(c.path("enc.key")).unwrap();
    let d = c.lineage(&leaf, &i.pem, &enc, None);
    assert_fail(
        &check(&[&d], &[]),
        "key-format",
        &["encrypted", "openssl pkey"],
    );
    // 3. Legacy `Proc-Type: 4,ENCRYPTED`.
    let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nq83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n-----END EC PRIVATE KEY-----\n";
    let d = c.lineage(&leaf, &i.pem, legacy, None);
    assert_fail(&check(&[&d], &[]), "key-format", &["encrypted"]);
    // 4. No key at all.
    let f = c.file("only-cert.pem", format!("{leaf}{}", i.pem));
    assert_fail(&check(&[&f], &[]), "key-format", &["no private key"]);
}

#[test]
fn key_types_the_profile_refuses() {
    let r = root("Corpus RSA Root", rsa(rcgen::RsaKeySize::_2048));
    let c = Case::new();
    for (label, k) in [
        ("RSA 3072", rsa(rcgen::RsaKeySize::_3072)),
        ("RSA 4096", rsa(rcgen::RsaKeySize::_4096)),
    ] {
        let d = c.lineage(&r.leaf(&k), &r.pem, &k.serialize_pem(), None);
        assert_fail(
            &check(&[&d], &[]),
            "key-type",
            &[label, "--key-type rsa2048"],
        );
    }
    let er = root("Corpus EC Root", key(&rcgen::PKCS_ECDSA_P384_SHA384));
    let ed = key(&rcgen::PKCS_ED25519);
    let d = c.lineage(&er.leaf(&ed), &er.pem, &ed.serialize_pem(), None);
    let o = check(&[&d], &[]);
    assert_fail(&o, "key-type", &["Ed25519"]);
    assert_fail(&o, "algorithm-matches-issuer", &["Ed25519"]);
    // The files profile takes any key.
    let o = check(&[&d], &["--profile", "files"]);
    assert!(o.stdout.contains("PASS key-type"), "{}", o.stdout);
}

#[test]
fn openssl_made_oddities_rsa1024_p521_dsa_and_v1() {
    let c = Case::new();
    // A CA and leaves made by openssl: RSA 1024 (allowed by EMQX Cloud), P-521, DSA, and v1.
    c.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=Corpus OpenSSL CA",
        "-days",
        "30",
    ]);
    let ext = c.file("ext.cnf", format!("subjectAltName=DNS:{NAME}\n"));
    let sign = |keyfile: &str, out: &str, with_ext: bool| {
        c.openssl(&[
            "req",
            "-new",
            "-key",
            keyfile,
            "-out",
            "leaf.csr",
            "-subj",
            &format!("/CN={NAME}"),
        ]);
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "20",
            "-out",
            out,
        ];
        let ext_path = ext.display().to_string();
        if with_ext {
            args.extend(["-extfile", ext_path.as_str()]);
            c.openssl(&args);
        } else {
            c.openssl(&args);
        }
    };
    let lineage = |cert: &str, keyfile: &str| {
        c.lineage(
            &std::fs::read_to_string(c.path(cert)).unwrap(),
            &std::fs::read_to_string(c.path("ca.crt")).unwrap(),
            &std::fs::read_to_string(c.path(keyfile)).unwrap(),
            None,
        )
    };
    c.openssl(&["genrsa", "-out", "rsa1024.key", "1024"]);
    sign("rsa1024.key", "rsa1024.crt", true);
    let o = check(
        &[&lineage("rsa1024.crt", "rsa1024.key")],
        &["--min-days-left", "0"],
    );
    assert!(
        o.stdout.contains("PASS key-type") && o.stdout.contains("RSA 1024"),
        "{}",
        o.stdout
    );

    c.openssl(&[
        "ecparam",
        "-name",
        "secp521r1",
        "-genkey",
        "-noout",
        "-out",
        "p521.sec1",
    ]);
    c.openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        "p521.sec1",
        "-out",
        "p521.key",
    ]);
    sign("p521.key", "p521.crt", true);
    assert_fail(
        &check(&[&lineage("p521.crt", "p521.key")], &[]),
        "key-type",
        &["P-521"],
    );

    c.openssl(&[
        "genpkey",
        "-genparam",
        "-algorithm",
        "DSA",
        "-pkeyopt",
        "dsa_paramgen_bits:2048",
        "-out",
        "dsa.param",
    ]);
    c.openssl(&["genpkey", "-paramfile", "dsa.param", "-out", "dsa.key"]);
    sign("dsa.key", "dsa.crt", true);
    assert_fail(
        &check(&[&lineage("dsa.crt", "dsa.key")], &[]),
        "key-type",
        &["other key"],
    );

    sign("rsa1024.key", "v1.crt", false);
    let o = check(&[&lineage("v1.crt", "rsa1024.key")], &[]);
    assert_fail(&o, "x509-v3", &["v1"]);
}

#[test]
fn validity_problems() {
    let (_r, i) = ecdsa_pki();
    let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let c = Case::new();
    let d = c.lineage(
        &i.leaf_with(&[NAME], &k, (-100, -10)),
        &i.pem,
        &k.serialize_pem(),
        None,
    );
    // Expired: said so, never as a negative count of days left.
    assert_fail(
        &check(&[&d], &[]),
        "validity-window",
        &["expired 10 days ago"],
    );
    let d = c.lineage(
        &i.leaf_with(&[NAME], &k, (5, 95)),
        &i.pem,
        &k.serialize_pem(),
        None,
    );
    assert_fail(&check(&[&d], &[]), "validity-window", &["not valid until"]);
    let d = c.lineage(
        &i.leaf_with(&[NAME], &k, (-1, 30)),
        &i.pem,
        &k.serialize_pem(),
        None,
    );
    assert_fail(
        &check(&[&d], &[]),
        "validity-window",
        &["at least 60 days", "unverified"],
    );
}

#[test]
fn chain_problems() {
    let (r, i) = ecdsa_pki();
    let i2 = i.child("Corpus Intermediate 2", key(&rcgen::PKCS_ECDSA_P256_SHA256));
    let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let leaf = i.leaf(&k);
    let c = Case::new();
    let kp = c.file("key.pem", k.serialize_pem());
    // Wrong order: the intermediate first.
    let f = c.file("wrong-order.pem", format!("{}{leaf}", i.pem));
    assert_fail(
        &check(&[&f, &kp], &[]),
        "chain",
        &["first block is a CA", "brokercert split"],
    );
    // A duplicated leaf.
    let f = c.file("dup.pem", format!("{leaf}{leaf}{}", i.pem));
    assert_fail(
        &check(&[&f, &kp], &[]),
        "chain",
        &["leaf again", "remove the repeated leaf"],
    );
    // A missing intermediate: the leaf is under i2, but only i is sent.
    let leaf2 = i2.leaf(&k);
    let f = c.file("missing.pem", format!("{leaf2}{}", i.pem));
    let o = check(&[&f, &kp], &[]);
    assert_fail(&o, "chain", &["not signed by"]);
    // No anchor: the root is neither sent nor known.
    let f = c.file("noroot.pem", format!("{leaf}{}", i.pem));
    assert_fail(&check(&[&f, &kp], &[]), "anchor", &["Corpus Intermediate"]);
    // With the root it is found.
    let f = c.file("withroot.pem", format!("{leaf}{}{}", i.pem, r.pem));
    assert!(check(&[&f, &kp], &[]).stdout.contains("PASS anchor"));
}

#[test]
fn self_signed_leaf_is_accepted_with_a_note() {
    let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut p = CertificateParams::new(vec![NAME.to_string()]).unwrap();
    p.not_after = OffsetDateTime::now_utc() + Duration::days(300);
    let cert = p.self_signed(&k).unwrap().pem();
    let c = Case::new();
    let d = c.lineage(&cert, "", &k.serialize_pem(), None);
    let o = check(&[&d], &[]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(
        o.stdout
            .contains("clients must trust this certificate itself"),
        "{}",
        o.stdout
    );
}

#[test]
fn names_and_algorithm_mismatch() {
    let (_r, i) = ecdsa_pki();
    let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let c = Case::new();
    let d = c.lineage(
        &i.leaf_with(&["other.example.test"], &k, (-1, 89)),
        &i.pem,
        &k.serialize_pem(),
        None,
    );
    assert_fail(&check(&[&d], &[]), "names", &["other.example.test", NAME]);
    // An RSA leaf under the ECDSA intermediate.
    let rk = rsa(rcgen::RsaKeySize::_2048);
    let d = c.lineage(&i.leaf(&rk), &i.pem, &rk.serialize_pem(), None);
    assert_fail(
        &check(&[&d], &[]),
        "algorithm-matches-issuer",
        &["RSA", "ECDSA"],
    );
}

#[test]
fn unreadable_and_malformed_inputs() {
    let (_r, i) = ecdsa_pki();
    let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let leaf = i.leaf(&k);
    let c = Case::new();
    let kp = c.file("key.pem", k.serialize_pem());
    // DER instead of PEM.
    let der = pem::parse(&leaf).unwrap().into_contents();
    let f = c.file("cert.der", der);
    assert_fail(
        &check(&[&f, &kp], &[]),
        "pem",
        &["DER", "openssl x509 -inform der"],
    );
    // Truncated base64.
    let cut = &leaf[..leaf.len() / 2];
    let f = c.file(
        "truncated.pem",
        format!("{cut}\n-----END CERTIFICATE-----\n"),
    );
    assert_fail(&check(&[&f, &kp], &[]), "pem", &["truncated.pem"]);
    // An empty file.
    let f = c.file("empty.pem", "");
    assert_fail(&check(&[&f, &kp], &[]), "pem", &["empty"]);
    // 10 MB of junk: refused quickly as too large.
    let junk: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|n| (n.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let f = c.file("junk.bin", junk);
    let started = std::time::Instant::now();
    let o = check(&[&f, &kp], &[]);
    assert_fail(&o, "pem", &["junk.bin"]);
    assert!(
        o.stdout.to_lowercase().contains("large") || o.stdout.contains("MiB"),
        "{}",
        o.stdout
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // A directory where a file is expected, and a missing file: usage errors (exit 2).
    let sub = c.dir.path().join("adir");
    std::fs::create_dir(&sub).unwrap();
    let o = check(&[&kp, &sub], &[]);
    assert_eq!(o.code, exit::CONFIG, "{}", o.stderr);
    assert!(o.stderr.contains("is a directory"), "{}", o.stderr);
    let o = check(&[&c.dir.path().join("nope.pem")], &[]);
    assert_eq!(o.code, exit::CONFIG);
    assert!(o.stderr.contains("nope.pem"), "{}", o.stderr);
    // An unreadable file (root reads everything, so only checked for other users).
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(true);
    if !is_root {
        use std::os::unix::fs::PermissionsExt;
        let f = c.file("locked.pem", &leaf);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
        let o = check(&[&f], &[]);
        assert_eq!(o.code, exit::CONFIG);
        assert!(o.stderr.contains("cannot be read"), "{}", o.stderr);
    }
}
