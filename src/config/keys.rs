//! The list of every key the configuration file accepts, and the check that rejects any
//! other key with "did you mean" advice and a line number.
//!
//! Owns: the key schema (`KEYS`), the unknown-key check and the nearest-key suggestion.
//! Does not own: the values' types or validation (serde and `Settings::from_file` do that).
//! A test proves every key here is accepted by the parser, and another that each appears in
//! docs/configuration.md, so neither the parser nor the documentation can drift from this list.

/// What a key holds (used by the schema test to build a sample file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Str,
    /// A path (string).
    Path,
    /// A secret written inline (only allowed when the file is mode 0600).
    Secret,
    /// `true` / `false`.
    Bool,
    /// An integer.
    Int,
    /// A duration such as `90s` or `2m`.
    Duration,
    /// A list of strings.
    StrList,
    /// A table (section).
    Table,
    /// An array of tables (`[[section]]`).
    TableArray,
}

/// One accepted key: its dotted path and, for `[[certificate.deploy]]`, the `type` it
/// belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Dotted path without indexes, e.g. `certificate.deploy.api_secret`.
    pub path: &'static str,
    /// Value kind.
    pub kind: Kind,
    /// For deploy keys: the `type` (`emqx-cloud` or `files`) that accepts it.
    pub variant: Option<&'static str>,
}

const fn k(path: &'static str, kind: Kind) -> Key {
    Key {
        path,
        kind,
        variant: None,
    }
}

const fn emqx(path: &'static str, kind: Kind) -> Key {
    Key {
        path,
        kind,
        variant: Some("emqx-cloud"),
    }
}

const fn files(path: &'static str, kind: Kind) -> Key {
    Key {
        path,
        kind,
        variant: Some("files"),
    }
}

use Kind::*;

/// Every key of the configuration file.
pub const KEYS: &[Key] = &[
    k("state_dir", Path),
    k("state", Table),
    k("state.kms_key_id", Str),
    k("state.endpoint_url", Str),
    k("state.region", Str),
    k("state.max_attempts", Int),
    k("state.lease_ttl", Duration),
    k("acme", Table),
    k("acme.directory", Str),
    k("acme.email", Str),
    k("acme.agree_tos", Bool),
    k("acme.https_roots", StrList),
    k("acme.eab_kid", Str),
    k("acme.eab_hmac_env", Str),
    k("acme.eab_hmac_file", Path),
    k("acme.eab_hmac", Secret),
    k("acme.preferred_chain", Str),
    k("acme.profile", Str),
    k("acme.order_timeout", Duration),
    k("route53", Table),
    k("route53.endpoint_url", Str),
    k("route53.profile", Str),
    k("route53.region", Str),
    k("route53.change_timeout", Duration),
    k("route53.max_attempts", Int),
    k("route53.max_requests_per_second", Int),
    k("route53.batch_window", Duration),
    k("route53.read_records", Str),
    k("dns", Table),
    k("dns.nameservers", StrList),
    k("dns.resolver", Str),
    k("dns.propagation_timeout", Duration),
    k("dns.propagation", Str),
    k("dns.propagation_delay", Duration),
    k("trust", Table),
    k("trust.extra_roots", StrList),
    k("trust.system_roots", Bool),
    k("renew", Table),
    k("renew.jitter", Duration),
    k("renew.assumed_lifetime", Duration),
    k("renew.ari", Bool),
    k("renew.notify_command", StrList),
    k("renew.notify_pass_env", StrList),
    k("renew.notify_webhook", Secret),
    k("renew.notify_webhook_env", Str),
    k("renew.notify_webhook_file", Path),
    k("renew.notify_webhook_allow_http", Bool),
    k("renew.notify_success", Bool),
    k("renew.concurrency", Int),
    k("certificate", TableArray),
    k("certificate.name", Str),
    k("certificate.domains", StrList),
    k("certificate.cname_target", Str),
    k("certificate.cname_ttl", Int),
    k("certificate.hosted_zone_id", Str),
    k("certificate.key_type", Str),
    k("certificate.reuse_key", Bool),
    k("certificate.deploy", TableArray),
    k("certificate.deploy.type", Str),
    emqx("certificate.deploy.deployment_id", Str),
    emqx("certificate.deploy.base_url", Str),
    emqx("certificate.deploy.api_key_env", Str),
    emqx("certificate.deploy.api_key_file", Path),
    emqx("certificate.deploy.api_key", Secret),
    emqx("certificate.deploy.api_secret_env", Str),
    emqx("certificate.deploy.api_secret_file", Path),
    emqx("certificate.deploy.api_secret", Secret),
    emqx("certificate.deploy.tls", Str),
    emqx("certificate.deploy.client_ca", Path),
    emqx("certificate.deploy.api_roots", StrList),
    emqx("certificate.deploy.poll_interval", Duration),
    emqx("certificate.deploy.poll_timeout", Duration),
    emqx("certificate.deploy.request_timeout", Duration),
    emqx("certificate.deploy.min_days_left", Int),
    emqx("certificate.deploy.deployment_type", Str),
    files("certificate.deploy.cert", Path),
    files("certificate.deploy.chain", Path),
    files("certificate.deploy.fullchain", Path),
    files("certificate.deploy.key", Path),
    files("certificate.deploy.root", Path),
    files("certificate.deploy.client_ca", Path),
    files("certificate.deploy.client_ca_source", Path),
    files("certificate.deploy.owner", Str),
    files("certificate.deploy.group", Str),
    files("certificate.deploy.mode", Str),
    files("certificate.deploy.key_mode", Str),
    files("certificate.deploy.reload", StrList),
    files("certificate.deploy.reload_pass_env", StrList),
    files("certificate.deploy.reload_timeout", Duration),
    k("certificate.verify", Table),
    k("certificate.verify.skip", Bool),
    k("certificate.verify.host", Str),
    k("certificate.verify.connect", Str),
    k("certificate.verify.mqtts_port", Int),
    k("certificate.verify.wss_port", Int),
    k("certificate.verify.wss_path", Str),
    k("certificate.verify.transports", StrList),
    k("certificate.verify.ca_file", Path),
    k("certificate.verify.username", Str),
    k("certificate.verify.password_env", Str),
    k("certificate.verify.password_file", Path),
    k("certificate.verify.client_cert", Path),
    k("certificate.verify.client_key", Path),
    k("certificate.verify.timeout", Duration),
    k("certificate.verify.settle_timeout", Duration),
    k("certificate.verify.anonymous_check", StrList),
];

/// An unknown key: where it is and the advice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// Dotted path of the unknown key.
    pub key: String,
    /// 1-based line in the file, when found.
    pub line: Option<usize>,
    /// The nearest valid key, if one is close.
    pub suggestion: Option<String>,
    /// The valid keys at that level (for when nothing is close).
    pub valid: Vec<String>,
}

/// Checks `table` (the parsed file) against `KEYS`; `text` is the source for line numbers.
pub fn check(table: &toml::Table, text: &str) -> Result<(), UnknownKey> {
    walk("", table, None, text)
}

fn children(prefix: &str, variant: Option<&str>) -> Vec<&'static Key> {
    KEYS.iter()
        .filter(|key| {
            let parent = key.path.rsplit_once('.').map_or("", |(p, _)| p);
            parent == prefix
                && (key.variant.is_none() || variant.is_none() || key.variant == variant)
        })
        .collect()
}

fn walk(
    prefix: &str,
    table: &toml::Table,
    variant: Option<&str>,
    text: &str,
) -> Result<(), UnknownKey> {
    let allowed = children(prefix, variant);
    for (name, value) in table {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let Some(key) = allowed.iter().find(|k| k.path == path) else {
            let valid: Vec<String> = allowed.iter().map(|k| k.path.to_string()).collect();
            return Err(UnknownKey {
                line: find_line(text, prefix, name),
                suggestion: suggest(&path, name, &valid),
                key: path,
                valid,
            });
        };
        match (key.kind, value) {
            (Kind::Table, toml::Value::Table(t)) => walk(&path, t, None, text)?,
            (Kind::TableArray, toml::Value::Array(items)) => {
                for item in items {
                    if let toml::Value::Table(t) = item {
                        // Deploy targets: the keys depend on `type`; an unknown type is
                        // left to the parser, whose message lists the valid types.
                        let v = t.get("type").and_then(toml::Value::as_str);
                        let v = v.filter(|v| KEYS.iter().any(|k| k.variant == Some(*v)));
                        if path == "certificate.deploy" && v.is_none() {
                            continue;
                        }
                        walk(&path, t, v, text)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The nearest key: a sibling within a small edit distance, else a key anywhere with the
/// same last segment (e.g. a top-level `email` → `acme.email`).
fn suggest(path: &str, name: &str, siblings: &[String]) -> Option<String> {
    let best = siblings
        .iter()
        .map(|s| (distance(s, path), s))
        .min_by_key(|(d, _)| *d);
    if let Some((d, s)) = best
        && d <= (name.len() / 3).max(2)
    {
        return Some(s.clone());
    }
    KEYS.iter()
        .find(|k| k.path.rsplit('.').next() == Some(name))
        .map(|k| k.path.to_string())
}

/// Levenshtein distance (keys are short ASCII).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The first line where `name` is written inside the section `prefix` (a heuristic over
/// plain `key = value` lines, `[section]` headers and dotted keys).
fn find_line(text: &str, prefix: &str, name: &str) -> Option<usize> {
    let mut section = String::new();
    let full = if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(h) = line.strip_prefix('[') {
            let h = h.trim_start_matches('[');
            let h = h.split(']').next().unwrap_or("").trim();
            if h == full || h.starts_with(&format!("{full}.")) {
                return Some(i + 1);
            }
            section = h.to_string();
            continue;
        }
        let Some((lhs, _)) = line.split_once('=') else {
            continue;
        };
        let lhs = lhs.trim().trim_matches('"');
        let dotted = if section.is_empty() {
            lhs.to_string()
        } else {
            format!("{section}.{lhs}")
        };
        if dotted == full || dotted.starts_with(&format!("{full}.")) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> UnknownKey {
        let t: toml::Table = toml::from_str(text).unwrap();
        check(&t, text).unwrap_err()
    }

    #[test]
    fn a_typo_suggests_the_nearest_key_with_its_line() {
        let e = err("state_dir = \"s\"\n\n[acme]\nemail = \"a@b.c\"\nemial = \"x\"\n");
        assert_eq!(e.key, "acme.emial");
        assert_eq!(e.line, Some(5));
        assert_eq!(e.suggestion.as_deref(), Some("acme.email"));
    }

    #[test]
    fn a_key_in_the_wrong_section_points_to_the_right_one() {
        let e = err("email = \"a@b.c\"\n");
        assert_eq!(e.suggestion.as_deref(), Some("acme.email"));
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn deploy_keys_depend_on_the_type() {
        let ok = "[[certificate]]\ndomains=['a.example.com']\n[[certificate.deploy]]\ntype='files'\nfullchain='f'\n";
        let t: toml::Table = toml::from_str(ok).unwrap();
        assert!(check(&t, ok).is_ok());
        let e = err(
            "[[certificate]]\ndomains=['a.example.com']\n[[certificate.deploy]]\ntype='emqx-cloud'\ndeployment_id='x'\nfullchain='f'\n",
        );
        assert_eq!(e.key, "certificate.deploy.fullchain");
        assert_eq!(e.line, Some(6));
        let e = err("[[certificate]]\ndomains=['a.example.com']\n[certificate.verfy]\nskip=true\n");
        assert_eq!(e.suggestion.as_deref(), Some("certificate.verify"));
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn nothing_close_lists_the_valid_keys() {
        let e = err("[trust]\nzzzzzzzzzz = 1\n");
        assert_eq!(e.suggestion, None);
        assert!(e.valid.contains(&"trust.extra_roots".to_string()));
    }

    /// A sample value of each kind.
    fn sample(kind: Kind) -> &'static str {
        match kind {
            Str | Path | Secret => "\"x\"",
            Bool => "true",
            Int => "1",
            Duration => "\"1s\"",
            StrList => "[\"x\"]",
            Table | TableArray => unreachable!(),
        }
    }

    /// Every key in `KEYS` is accepted by the real parser (so the list holds no key the
    /// parser would reject), and the unknown-key check accepts the same file.
    #[test]
    fn every_listed_key_parses() {
        let mut text = String::new();
        let mut section = |header: &str, prefix: &str, variant: Option<&str>| {
            text.push_str(header);
            text.push('\n');
            if let Some(v) = variant {
                text.push_str(&format!("type = \"{v}\"\n"));
            }
            for key in KEYS {
                let Some(rest) = key.path.strip_prefix(prefix) else {
                    continue;
                };
                if rest.contains('.')
                    || matches!(key.kind, Table | TableArray)
                    || rest == "type"
                    || (key.variant.is_some() && key.variant != variant)
                {
                    continue;
                }
                text.push_str(&format!("{rest} = {}\n", sample(key.kind)));
            }
        };
        section("", "", None);
        for s in ["acme", "route53", "dns", "trust", "renew", "state"] {
            section(&format!("[{s}]"), &format!("{s}."), None);
        }
        section("[[certificate]]", "certificate.", None);
        section(
            "[[certificate.deploy]]",
            "certificate.deploy.",
            Some("emqx-cloud"),
        );
        section(
            "[[certificate.deploy]]",
            "certificate.deploy.",
            Some("files"),
        );
        section("[certificate.verify]", "certificate.verify.", None);
        let table: toml::Table = toml::from_str(&text).unwrap();
        check(&table, &text).unwrap();
        let parsed: Result<super::super::FileConfig, _> = toml::from_str(&text);
        assert!(parsed.is_ok(), "{text}\n{parsed:?}");
        // Every leaf key made it into the sample.
        for key in KEYS {
            if matches!(key.kind, Table | TableArray) {
                continue;
            }
            let leaf = key.path.rsplit('.').next().unwrap_or(key.path);
            assert!(text.contains(&format!("{leaf} = ")), "{}", key.path);
        }
    }

    /// The other direction: every field the parser accepts is in `KEYS` (else the
    /// unknown-key check would refuse a valid setting). serde names the accepted fields
    /// when it meets an unknown one.
    #[test]
    fn every_field_the_parser_accepts_is_listed() {
        let probes = [
            ("", "zz_probe = 1\n"),
            ("acme.", "[acme]\nzz_probe = 1\n"),
            ("route53.", "[route53]\nzz_probe = 1\n"),
            ("dns.", "[dns]\nzz_probe = 1\n"),
            ("trust.", "[trust]\nzz_probe = 1\n"),
            ("renew.", "[renew]\nzz_probe = 1\n"),
            ("certificate.", "[[certificate]]\nzz_probe = 1\n"),
            (
                "certificate.deploy.",
                "[[certificate]]\nname = \"a\"\n[[certificate.deploy]]\ntype = \"emqx-cloud\"\nzz_probe = 1\n",
            ),
            (
                "certificate.deploy.",
                "[[certificate]]\nname = \"a\"\n[[certificate.deploy]]\ntype = \"files\"\nzz_probe = 1\n",
            ),
            (
                "certificate.verify.",
                "[[certificate]]\nname = \"a\"\n[certificate.verify]\nzz_probe = 1\n",
            ),
        ];
        for (prefix, text) in probes {
            let err = match toml::from_str::<super::super::FileConfig>(text) {
                Ok(_) => panic!("`zz_probe` was accepted in {text}"),
                Err(e) => e.to_string(),
            };
            let expected = err
                .split_once("expected one of ")
                .or_else(|| err.split_once("expected "))
                .map(|(_, rest)| rest)
                .unwrap_or_else(|| panic!("no field list in: {err}"));
            // The field names are the back-quoted words of the first line.
            let first_line = expected.lines().next().unwrap_or_default();
            let fields: Vec<&str> = first_line.split('`').skip(1).step_by(2).collect();
            assert!(!fields.is_empty(), "{err}");
            for f in fields {
                let path = format!("{prefix}{f}");
                assert!(
                    KEYS.iter().any(|k| k.path == path),
                    "the parser accepts `{path}` but KEYS does not list it ({err})"
                );
            }
        }
    }

    /// docs/configuration.md documents every key (as `` `key` `` in a table row).
    #[test]
    fn every_key_is_documented() {
        let docs = include_str!("../../docs/configuration.md");
        let missing: Vec<&str> = KEYS
            .iter()
            .filter(|k| !matches!(k.kind, Table | TableArray))
            .map(|k| k.path)
            .filter(|p| !docs.contains(&format!("| `{p}` |")))
            .collect();
        assert!(
            missing.is_empty(),
            "not in docs/configuration.md: {missing:?}"
        );
    }
}
