//! "Run `brokercert …`" hints that work when copied: each names the configuration file the
//! command ran with (`--config FILE`), so that the hinted command reads the same one.
//!
//! Owns: remembering that file for the process (the command line sets it once; a library
//! caller that never does gets plain `brokercert …` hints) and rendering a command line with
//! it. Does not own where the configuration is found (`config::discover`) or the hints'
//! wording.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static CONFIG: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Records the configuration file this run uses (once, at start).
pub fn set_config(path: Option<&Path>) {
    let _ = CONFIG.set(path.map(Path::to_path_buf));
}

/// `brokercert ARGS --config FILE` (just `brokercert ARGS` when no file is used). The flag
/// goes last, so the hint still reads `brokercert deploy NAME …` first.
pub fn command(args: &str) -> String {
    match CONFIG.get().and_then(|c| c.as_deref()) {
        Some(p) => format!(
            "brokercert {args} --config {}",
            shell_word(&p.to_string_lossy())
        ),
        None => format!("brokercert {args}"),
    }
}

/// `text` as one shell word: as is when it is made of safe characters, else single-quoted.
pub fn shell_word(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c));
    if safe {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_only_when_they_need_it() {
        assert_eq!(
            shell_word("/etc/brokercert/brokercert.toml"),
            "/etc/brokercert/brokercert.toml"
        );
        assert_eq!(shell_word("my dir/b.toml"), "'my dir/b.toml'");
        assert_eq!(shell_word("it's.toml"), r"'it'\''s.toml'");
    }
}
