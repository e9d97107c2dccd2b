//! Secrets (API secrets, passwords): read from an environment variable or a file, never from
//! the command line, and never printed (Debug and Display show `***`).
//!
//! Owns: the `Secret` wrapper and where secrets come from. Does not own their use.

use std::path::Path;

/// A secret string that does not print itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

/// Reads a secret from `env` (if set and non-empty), else from `file`; `Err` says where it
/// looked and how to provide it.
pub fn load(
    what: &str,
    env: Option<&str>,
    file: Option<&Path>,
    setting: &str,
) -> Result<Secret, String> {
    load_or_inline(what, env, file, None, setting)
}

/// Like [`load`], falling back to a value written inline in the configuration file (which
/// the loader accepts only from a file that only its owner can read).
pub fn load_or_inline(
    what: &str,
    env: Option<&str>,
    file: Option<&Path>,
    inline: Option<&Secret>,
    setting: &str,
) -> Result<Secret, String> {
    if let Some(var) = env
        && let Ok(v) = std::env::var(var)
        && !v.trim().is_empty()
    {
        return Ok(Secret(v.trim_end_matches(['\n', '\r']).to_string()));
    }
    if let Some(p) = file {
        return crate::bounded_read::read_text(p, crate::bounded_read::MAX_SMALL_FILE)
            .map(|v| Secret(v.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| {
                format!(
                    "cannot read the {what} from `{}` (setting `{setting}_file`): {e}",
                    p.display()
                )
            });
    }
    if let Some(v) = inline {
        return Ok(v.clone());
    }
    Err(format!(
        "no {what}: set the environment variable {} or `{setting}_file` (secrets are never taken from the command line)",
        env.unwrap_or("(none configured)")
    ))
}
