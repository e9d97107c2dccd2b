//! Keeps secrets written inline in a configuration file (`api_key`, `api_secret`,
//! `eab_hmac`) out of the errors that quote the file: the TOML parser's messages show the
//! offending line, and a type error can name the value itself.
//!
//! Owns: finding those values in the text and scrubbing them from a message. Does not own:
//! which keys are secrets (the schema in `keys.rs`, kind `Secret`) or the error types.

use super::keys::{KEYS, Kind};

/// What a redacted value reads as.
pub const REDACTED: &str = "‹redacted›";

/// The leaf names of the schema's secret keys (`api_secret`, …).
fn secret_leaves() -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .filter(|k| matches!(k.kind, Kind::Secret))
        .map(|k| k.path.rsplit('.').next().unwrap_or(k.path))
}

/// Where a secret's value starts in `line` (just after its `=`), if the line assigns one.
fn value_start(line: &str) -> Option<usize> {
    let mut best = None;
    for leaf in secret_leaves() {
        let mut from = 0;
        while let Some(i) = line[from..].find(leaf) {
            let at = from + i;
            let after = &line[at + leaf.len()..];
            let before_ok = at == 0
                || !line[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            let rest = after.trim_start_matches(['"', '\'']).trim_start();
            if before_ok && rest.starts_with('=') {
                let eq = line.len() - rest.len();
                best = Some(best.map_or(eq + 1, |b: usize| b.min(eq + 1)));
                break;
            }
            from = at + leaf.len();
        }
    }
    best
}

/// Every secret value written in `text`, as written and unquoted, longest first.
pub fn secret_values(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(start) = value_start(line) else {
            continue;
        };
        let raw = line[start..].trim();
        if raw.is_empty() {
            continue;
        }
        out.push(raw.to_string());
        for q in ['"', '\''] {
            if let Some(inner) = raw.strip_prefix(q) {
                let inner = inner.split(q).next().unwrap_or(inner);
                out.push(inner.to_string());
            }
        }
        out.extend(
            raw.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '}'))
                .filter(|t| t.len() >= 4)
                .map(str::to_string),
        );
    }
    // A value of under four characters is no real key or secret, and scrubbing it would
    // mangle the message (a `5` in every line and column number).
    out.retain(|v| v.trim().len() >= 4);
    out.sort_by_key(|v| std::cmp::Reverse(v.len()));
    out.dedup();
    out
}

/// `message` with every secret value of `text` replaced by [`REDACTED`].
pub fn scrub(message: &str, text: &str) -> String {
    let mut out = message.to_string();
    for v in secret_values(text) {
        out = out.replace(&v, REDACTED);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_secret_keys_are_found_in_every_form() {
        let text = "[acme]\neab_hmac = 'hmac-value-1'\n[[certificate.deploy]]\n\
                    api_secret = \"secret-value-2\" junk\n\"api_key\"=key-value-3\n\
                    x = { api_secret = \"inline-4\" }\nname = \"api_secret_not\"\n";
        let v = secret_values(text);
        for want in ["hmac-value-1", "secret-value-2", "key-value-3", "inline-4"] {
            assert!(v.iter().any(|x| x == want), "{want} not in {v:?}");
        }
        assert!(!v.iter().any(|x| x.contains("api_secret_not")), "{v:?}");
    }

    #[test]
    fn a_parse_error_quoting_the_line_is_scrubbed() {
        let text = "[[certificate]]\nname = \"a\"\n[[certificate.deploy]]\n\
                    api_secret = \"s3cret-9f2\" junk\n";
        let err = toml::from_str::<toml::Table>(text).expect_err("invalid");
        let raw = err.to_string();
        assert!(
            raw.contains("s3cret-9f2"),
            "the parser quotes the line: {raw}"
        );
        let clean = scrub(&raw, text);
        assert!(!clean.contains("s3cret-9f2"), "{clean}");
        assert!(clean.contains(REDACTED), "{clean}");
    }
}
