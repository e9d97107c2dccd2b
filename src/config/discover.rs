//! Where the configuration file is, when `--config` does not say: the documented order
//! `--config FILE`, `BROKERCERT_CONFIG`, `./brokercert.toml`, then
//! `/etc/brokercert/brokercert.toml` for root or the XDG config path
//! (`$XDG_CONFIG_HOME/brokercert/brokercert.toml`, else `~/.config/brokercert/brokercert.toml`)
//! for everyone else. The first that exists wins; none is fine (flags and defaults only).
//!
//! Owns: the order and the names. Does not own reading the file (`Settings::load`).

use std::path::{Path, PathBuf};

/// The file name looked for.
pub const FILE_NAME: &str = "brokercert.toml";

/// Where a configuration file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--config FILE`.
    Flag,
    /// The `BROKERCERT_CONFIG` variable.
    Env,
    /// `./brokercert.toml`.
    WorkingDir,
    /// `/etc/brokercert/brokercert.toml` (root).
    System,
    /// The XDG config path (everyone else).
    User,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Flag => "--config",
            Source::Env => "BROKERCERT_CONFIG",
            Source::WorkingDir => "found in the working directory",
            Source::System => "the system configuration, for root",
            Source::User => "the user's XDG configuration",
        })
    }
}

/// The places looked at after `--config` and `BROKERCERT_CONFIG`, in order.
pub fn candidates(is_root: bool, env: &dyn Fn(&str) -> Option<String>) -> Vec<(PathBuf, Source)> {
    let mut out = vec![(PathBuf::from(FILE_NAME), Source::WorkingDir)];
    if is_root {
        out.push((
            PathBuf::from("/etc/brokercert").join(FILE_NAME),
            Source::System,
        ));
    } else {
        let base = env("XDG_CONFIG_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                env("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| PathBuf::from(h).join(".config"))
            });
        if let Some(b) = base {
            out.push((b.join("brokercert").join(FILE_NAME), Source::User));
        }
    }
    out
}

/// The configuration file to use: `given` (from `--config` or `BROKERCERT_CONFIG`) as is,
/// else the first candidate for which `exists` holds.
pub fn discover(
    given: Option<(PathBuf, Source)>,
    is_root: bool,
    env: &dyn Fn(&str) -> Option<String>,
    exists: &dyn Fn(&Path) -> bool,
) -> Option<(PathBuf, Source)> {
    given.or_else(|| {
        candidates(is_root, env)
            .into_iter()
            .find(|(p, _)| exists(p))
    })
}

/// Whether this process runs as root (its `/proc/self` belongs to uid 0).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_documented_order() {
        let home = env(&[("HOME", "/home/ann")]);
        let all = |_: &Path| true;
        let none = |_: &Path| false;
        // Given: used as is, found or not.
        let given = Some((PathBuf::from("/x.toml"), Source::Flag));
        assert_eq!(discover(given.clone(), false, &home, &none), given);
        // Then ./brokercert.toml.
        assert_eq!(
            discover(None, false, &home, &all),
            Some((PathBuf::from("brokercert.toml"), Source::WorkingDir))
        );
        // Then the user's XDG path, or the system path for root.
        let not_cwd = |p: &Path| p != Path::new("brokercert.toml");
        assert_eq!(
            discover(None, false, &home, &not_cwd),
            Some((
                PathBuf::from("/home/ann/.config/brokercert/brokercert.toml"),
                Source::User
            ))
        );
        let xdg = env(&[("HOME", "/home/ann"), ("XDG_CONFIG_HOME", "/cfg")]);
        assert_eq!(
            discover(None, false, &xdg, &not_cwd).map(|f| f.0),
            Some(PathBuf::from("/cfg/brokercert/brokercert.toml"))
        );
        assert_eq!(
            discover(None, true, &xdg, &not_cwd),
            Some((
                PathBuf::from("/etc/brokercert/brokercert.toml"),
                Source::System
            ))
        );
        assert_eq!(discover(None, false, &home, &none), None);
    }
}
