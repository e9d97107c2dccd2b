//! What the commands share besides rendering: loading the settings (and selecting one
//! certificate).
//!
//! Owns: the messages when no certificate (or more than one) is configured. Does not own the
//! settings (`config`) nor any bookkeeping in the renewal state (the use cases in
//! `workflow` do that).

use super::{Cli, output};
use crate::config::{CertificateSpec, Overrides, Settings};
use crate::error::exit;
use std::path::Path;

/// Loads the settings and selects the certificate `name`, or the only one configured when
/// no name is given.
pub fn select(
    cli: &Cli,
    name: Option<&str>,
    command: &str,
) -> Result<(Settings, CertificateSpec), i32> {
    let settings = load_named(cli, name)?;
    match settings.certificates.as_slice() {
        [spec] => {
            let spec = spec.clone();
            Ok((settings, spec))
        }
        [] => {
            output::error(&format!(
                "no certificate to {command}: the configuration has no `[[certificate]]` section{}. Pass `--config FILE`, or run `brokercert init` to write one",
                cli.config
                    .as_deref()
                    .map(|p| format!(" (`{}`)", p.display()))
                    .unwrap_or_else(|| " (no configuration file was found)".into())
            ));
            Err(exit::CONFIG)
        }
        many => {
            let names: Vec<String> = many.iter().map(|c| format!("`{}`", c.name)).collect();
            output::error(&format!(
                "which certificate? The configuration has {}: {}. Name one, e.g. `{}`",
                many.len(),
                names.join(", "),
                crate::hint::command(&format!("{command} {}", many[0].name))
            ));
            Err(exit::CONFIG)
        }
    }
}

/// Loads settings for `renew`/`schedule`, keeping only `name` when given.
pub fn load_settings(cli: &Cli, name: Option<&str>) -> Result<Settings, i32> {
    load_settings_for(cli, name, "nothing to renew")
}

/// [`load_settings`] for any command; `nothing` opens the message when no certificate is
/// configured (`nothing to renew`, `nothing to show`).
pub fn load_settings_for(cli: &Cli, name: Option<&str>, nothing: &str) -> Result<Settings, i32> {
    let settings = load_named(cli, name)?;
    if settings.certificates.is_empty() {
        output::error(&format!(
            "{nothing}: {} has no `[[certificate]]` section. Add one (`brokercert init` writes \
             a commented file; see `brokercert issue --help`), or pass `--config FILE`",
            cli.config
                .as_deref()
                .map(|p| format!("the configuration `{}`", p.display()))
                .unwrap_or_else(|| "no configuration file was found, so the configuration".into())
        ));
        return Err(exit::CONFIG);
    }
    Ok(settings)
}

/// Loads the settings, keeping only the certificate `name` when given.
fn load_named(cli: &Cli, name: Option<&str>) -> Result<Settings, i32> {
    let over = Overrides {
        state_dir: cli.state_dir.clone(),
        name: name.map(str::to_string),
        ..Default::default()
    };
    load(cli.config.as_deref(), &over)
}

/// Loads the settings (`--config` or the discovered file, plus `over`); a problem is
/// printed and becomes exit code 2.
pub fn load(config: Option<&Path>, over: &Overrides) -> Result<Settings, i32> {
    Settings::load(config, over).map_err(|e| {
        output::error(&e.to_string());
        exit::CONFIG
    })
}
