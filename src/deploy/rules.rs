//! Import rules of a deployment target, checked before a single write is spent: one verdict
//! per rule with the evidence (found vs expected) and the fix.
//!
//! Owns: the pure checks and the `emqx-cloud` profile. Facts from EMQX Cloud's guide
//! revisions: RSA 1024/2048 and (newest) ECDSA P-256/P-384 keys; X.509 v3; PEM; unencrypted
//! key matching the leaf; leaf algorithm matching its issuer's; names covering the domain;
//! "cannot be imported within 60 days before ... the end of the validity period" — whose
//! exact meaning is unverified, so the day count is a setting (`min_days_left`).
//! Does not own: reading files (`material`) or talking to targets.

use time::OffsetDateTime;

use super::material::Material;
use crate::names::DomainName;
use crate::pki::certificate::{Certificate, KeyKind};

/// What a target accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRules {
    /// Profile name, for messages.
    pub profile: &'static str,
    /// Key kinds accepted for the leaf.
    pub allowed_keys: Vec<KeyKind>,
    /// Refuse when fewer than this many days of validity remain (0 = only "not expired").
    pub min_days_left: i64,
    /// Whether a CA-signed leaf must come with its intermediates.
    pub require_chain: bool,
}

impl ImportRules {
    /// EMQX Cloud, newest guide: RSA 1024/2048, ECDSA P-256/P-384; 60-day window.
    pub fn emqx_cloud() -> Self {
        Self {
            profile: "emqx-cloud",
            allowed_keys: vec![
                KeyKind::Rsa { bits: 1024 },
                KeyKind::Rsa { bits: 2048 },
                KeyKind::EcdsaP256,
                KeyKind::EcdsaP384,
            ],
            min_days_left: 60,
            require_chain: true,
        }
    }

    /// A broker that reads files (Mosquitto, HiveMQ, ...): any key its TLS stack knows.
    pub fn files() -> Self {
        Self {
            profile: "files",
            allowed_keys: Vec::new(),
            min_days_left: 0,
            require_chain: false,
        }
    }
}

/// The verdict on one rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// Stable rule id, e.g. `key-type`.
    pub rule: &'static str,
    /// Passed?
    pub ok: bool,
    /// What was found.
    pub found: String,
    /// What is expected.
    pub expected: String,
    /// How to fix a failure.
    pub fix: Option<String>,
}

fn verdict(
    rule: &'static str,
    ok: bool,
    found: impl Into<String>,
    expected: impl Into<String>,
    fix: Option<String>,
) -> Verdict {
    Verdict {
        rule,
        ok,
        found: found.into(),
        expected: expected.into(),
        fix: if ok { None } else { fix },
    }
}

fn key_type_fix(allowed: &[KeyKind]) -> String {
    if allowed
        .iter()
        .any(|k| matches!(k, KeyKind::Rsa { bits: 2048 }))
    {
        "request an RSA 2048 key: `--key-type rsa2048` (or `key_type = \"rsa2048\"`)".into()
    } else {
        format!(
            "request one of: {}",
            allowed
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Checks `m` against `rules` for `names` at `now`; every rule gets a verdict.
pub fn check(
    m: &Material,
    names: &[DomainName],
    rules: &ImportRules,
    now: OffsetDateTime,
) -> Vec<Verdict> {
    let mut out = Vec::new();
    let leaf = &m.leaf;
    let kind = leaf.key_kind();

    out.push(verdict(
        "key-type",
        rules.allowed_keys.is_empty() || rules.allowed_keys.contains(&kind),
        kind.to_string(),
        if rules.allowed_keys.is_empty() {
            "any".to_string()
        } else {
            rules
                .allowed_keys
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
        Some(key_type_fix(&rules.allowed_keys)),
    ));
    out.push(verdict(
        "x509-v3",
        leaf.version() == 3,
        format!("X.509 v{}", leaf.version()),
        "X.509 v3",
        Some("re-issue the certificate; every ACME CA issues v3".into()),
    ));
    let key_ok = m.key.as_ref().is_some_and(|k| k.matches_certificate(leaf));
    out.push(verdict(
        "key-matches",
        key_ok,
        match &m.key {
            None => "a private key that cannot be read (encrypted, or not PEM)".to_string(),
            Some(_) if !key_ok => "a private key of another certificate".to_string(),
            Some(k) => format!("an unencrypted {} key matching the leaf", k.key_kind()),
        },
        "the unencrypted private key of this leaf (PKCS#1 or PKCS#8)",
        Some(if m.key.is_none() {
            format!(
                "decrypt it: `openssl pkey -in {0}/privkey.pem -out {0}/privkey.pem.plain`",
                m.source.display()
            )
        } else {
            "use the privkey.pem issued together with this certificate".into()
        }),
    ));
    let uncovered: Vec<&str> = names
        .iter()
        .map(|n| n.as_str())
        .filter(|n| !leaf.covers_name(n))
        .collect();
    out.push(verdict(
        "names",
        uncovered.is_empty(),
        format!("names {}", leaf.dns_names().join(", ")),
        if names.is_empty() {
            "cover the broker's domain (none given to compare with: pass --domain)".to_string()
        } else {
            format!(
                "cover {}",
                names
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        Some(format!(
            "issue a certificate that includes {}",
            uncovered.join(", ")
        )),
    ));
    let issuer: Option<&Certificate> = m.intermediates.first().or(if leaf.is_self_signed() {
        Some(leaf)
    } else {
        m.anchor.as_ref()
    });
    let (alg_ok, alg_found) = match issuer {
        Some(i) => (
            i.key_kind().family() == kind.family(),
            format!(
                "leaf {} under an issuer with a {} key",
                kind.family(),
                i.key_kind().family()
            ),
        ),
        None => (false, "no issuer certificate to compare with".to_string()),
    };
    out.push(verdict(
        "algorithm-matches-issuer",
        alg_ok || (issuer.is_none() && !rules.require_chain),
        alg_found,
        "the leaf's key algorithm equal to its issuing CA's",
        Some(if kind.family() == crate::pki::certificate::SignatureFamily::Rsa {
            "ask the CA for its RSA chain (Let's Encrypt issues RSA leaves from RSA intermediates)".into()
        } else {
            "request an RSA key if the CA's chain is RSA: `--key-type rsa2048`".into()
        }),
    ));
    let self_signed = leaf.is_self_signed();
    let mut link_problem = None;
    let mut prev = leaf;
    for (i, c) in m.intermediates.iter().enumerate() {
        if c == leaf {
            link_problem = Some(format!("block {} of the chain is the leaf again", i + 1));
            break;
        }
        if !prev.verify_signed_by(c) {
            link_problem = Some(format!(
                "{} is not signed by chain block {} ({})",
                prev.display_name(),
                i + 1,
                c.display_name()
            ));
            break;
        }
        prev = c;
    }
    let missing_chain = !self_signed && m.intermediates.is_empty() && rules.require_chain;
    out.push(verdict(
        "chain",
        link_problem.is_none() && !missing_chain,
        link_problem.clone().unwrap_or_else(|| {
            if self_signed {
                "a self-signed leaf (clients must trust it directly)".into()
            } else if m.intermediates.is_empty() {
                "no intermediates".into()
            } else {
                format!("{} intermediate(s), each link signed", m.intermediates.len())
            }
        }),
        "the leaf followed by its intermediates, in order, without the leaf repeated",
        Some(match &link_problem {
            Some(p) if p.contains("leaf again") => "remove the repeated leaf from chain.pem".into(),
            Some(_) => "put the intermediates in order (leaf's issuer first), or run `brokercert split` on the bundle".into(),
            None => "add the intermediates (chain.pem) the CA sent with the certificate".into(),
        }),
    ));
    let days_left = (leaf.not_after() - now).whole_days();
    let not_yet = now < leaf.not_before();
    out.push(verdict(
        "validity-window",
        !not_yet && days_left >= rules.min_days_left.max(0) && now < leaf.not_after(),
        if not_yet {
            format!("not valid until {}", leaf.not_before())
        } else {
            days_left_text(leaf.not_after(), now)
        },
        if rules.min_days_left > 0 {
            format!("at least {} days left ({} import window)", rules.min_days_left, rules.profile)
        } else {
            "a currently valid certificate".to_string()
        },
        Some(if rules.min_days_left > 0 {
            format!(
                "renew now (`brokercert issue`); the guide says a certificate cannot be imported within {} days of its end. That rule's exact meaning is unverified: if the console accepts it, lower `min_days_left` for this target",
                rules.min_days_left
            )
        } else {
            "renew it: `brokercert issue`".into()
        }),
    ));
    out
}

/// What is left of a validity ending at `not_after`: `30 days left (until 2026-03-01)`, or
/// `expired 980 days ago (on 2023-07-01)` (never a negative count).
pub fn days_left_text(not_after: time::OffsetDateTime, now: time::OffsetDateTime) -> String {
    if now >= not_after {
        let ago = (now - not_after).whole_days();
        match ago {
            0 => format!("expired today (on {})", not_after.date()),
            1 => format!("expired 1 day ago (on {})", not_after.date()),
            n => format!("expired {n} days ago (on {})", not_after.date()),
        }
    } else {
        format!(
            "{} days left (until {})",
            (not_after - now).whole_days(),
            not_after.date()
        )
    }
}

/// The failed verdicts as one paragraph.
pub fn describe_failures(verdicts: &[Verdict]) -> Option<String> {
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.ok)
        .map(|v| {
            format!(
                "{}: found {}, expected {}{}",
                v.rule,
                v.found,
                v.expected,
                v.fix
                    .as_ref()
                    .map(|f| format!(" — {f}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    (!failed.is_empty()).then(|| failed.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::keys::PrivateKey;
    use crate::pki::test_support::{NOW, TestCa, ecdsa_p256, rsa_2048, self_signed_leaf};

    fn material(chain: Vec<Certificate>, key_pem: &str) -> Material {
        let mut chain = chain;
        let leaf = chain.remove(0);
        Material {
            leaf,
            intermediates: chain,
            key_pem: key_pem.to_string(),
            key: PrivateKey::from_pem(key_pem).ok(),
            anchor: None,
            source: "/live/test".into(),
        }
    }

    fn names(n: &[&str]) -> Vec<DomainName> {
        n.iter().map(|s| DomainName::parse(s).unwrap()).collect()
    }

    fn failed(v: &[Verdict]) -> Vec<&'static str> {
        v.iter().filter(|v| !v.ok).map(|v| v.rule).collect()
    }

    fn chain_with_key(key: rcgen::KeyPair) -> (Vec<Certificate>, String) {
        let root = TestCa::root("Rules Root", ecdsa_p256());
        let int = root.intermediate("Rules Intermediate", ecdsa_p256());
        let leaf = int.leaf(&["broker.example.test"], &key);
        (vec![leaf, int.cert.clone()], key.serialize_pem())
    }

    #[test]
    fn a_good_chain_passes_every_rule() {
        let (chain, key) = chain_with_key(ecdsa_p256());
        let v = check(
            &material(chain, &key),
            &names(&["broker.example.test"]),
            &ImportRules::emqx_cloud(),
            NOW,
        );
        assert!(failed(&v).is_empty(), "{v:#?}");
        assert_eq!(v.len(), 7, "one verdict per rule");
    }

    #[test]
    fn wrong_key_type_names_the_fix() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let (chain, pem) = chain_with_key(key);
        let v = check(
            &material(chain, &pem),
            &names(&["broker.example.test"]),
            &ImportRules::emqx_cloud(),
            NOW,
        );
        assert!(failed(&v).contains(&"key-type"), "{v:#?}");
        let kt = v.iter().find(|v| v.rule == "key-type").unwrap();
        assert!(kt.fix.as_deref().unwrap().contains("--key-type rsa2048"));
        assert!(kt.found.contains("Ed25519"));
    }

    #[test]
    fn mismatched_key_uncovered_name_and_repeated_leaf() {
        let (mut chain, _) = chain_with_key(ecdsa_p256());
        let other = ecdsa_p256().serialize_pem();
        chain.insert(1, chain[0].clone());
        let v = check(
            &material(chain, &other),
            &names(&["other.example.test"]),
            &ImportRules::emqx_cloud(),
            NOW,
        );
        let f = failed(&v);
        assert!(
            f.contains(&"key-matches") && f.contains(&"names") && f.contains(&"chain"),
            "{v:#?}"
        );
        let chain_v = v.iter().find(|v| v.rule == "chain").unwrap();
        assert!(chain_v.found.contains("leaf again"), "{chain_v:?}");
        assert!(
            describe_failures(&v)
                .unwrap()
                .contains("remove the repeated leaf")
        );
    }

    #[test]
    fn an_expired_certificate_is_said_to_have_expired_not_to_have_negative_days_left() {
        use time::macros::datetime;
        let end = datetime!(2024-01-01 00:00 UTC);
        assert_eq!(
            days_left_text(end, datetime!(2026-09-07 12:00 UTC)),
            "expired 980 days ago (on 2024-01-01)"
        );
        assert_eq!(
            days_left_text(end, datetime!(2023-12-01 00:00 UTC)),
            "31 days left (until 2024-01-01)"
        );
    }

    #[test]
    fn validity_window_is_a_setting_and_explains_itself() {
        let (chain, key) = ecdsa_chain_with_key();
        let m = material(chain, &key);
        let mut rules = ImportRules::emqx_cloud();
        rules.min_days_left = 90;
        let v = check(&m, &names(&["broker.example.test"]), &rules, NOW);
        let w = v.iter().find(|v| v.rule == "validity-window").unwrap();
        assert!(
            !w.ok
                && w.found.contains("days left")
                && w.fix.as_deref().unwrap().contains("unverified"),
            "{w:?}"
        );
        rules.min_days_left = 0;
        assert!(
            check(&m, &names(&["broker.example.test"]), &rules, NOW)
                .iter()
                .all(|v| v.ok)
        );
    }

    fn ecdsa_chain_with_key() -> (Vec<Certificate>, String) {
        chain_with_key(ecdsa_p256())
    }

    #[test]
    fn rsa_leaf_under_ecdsa_ca_fails_the_algorithm_rule() {
        let (chain, key) = chain_with_key(rsa_2048());
        let v = check(
            &material(chain, &key),
            &names(&["broker.example.test"]),
            &ImportRules::emqx_cloud(),
            NOW,
        );
        assert_eq!(failed(&v), vec!["algorithm-matches-issuer"], "{v:#?}");
    }

    #[test]
    fn self_signed_leaf_is_accepted_and_flagged() {
        let key = ecdsa_p256();
        let leaf = self_signed_leaf("broker.example.test", &key);
        let v = check(
            &material(vec![leaf], &key.serialize_pem()),
            &names(&["broker.example.test"]),
            &ImportRules::emqx_cloud(),
            NOW,
        );
        assert!(failed(&v).is_empty(), "{v:#?}");
        assert!(v.iter().any(|v| v.found.contains("self-signed")));
    }
}
