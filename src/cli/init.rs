//! `brokercert init`: writes a commented `brokercert.toml` from flags, or on a terminal asks
//! for what the flags left out.
//!
//! Owns: the starting configuration's text and refusing to overwrite a file. Does not own
//! the file format (config.rs parses and validates; the text is checked with it before it is
//! written). Secrets are never written: the file names the environment variables that hold
//! them.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::output;
use crate::config::{Overrides, Settings, parse_text};
use crate::error::exit;

/// TLS mode of the EMQX Cloud deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsMode {
    /// The broker proves its identity; clients authenticate with a password.
    OneWay,
    /// Clients also present a certificate from your private client CA.
    TwoWay,
}

impl TlsMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::OneWay => "one-way",
            Self::TwoWay => "two-way",
        }
    }
}

/// Flags of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// A name the certificate covers (repeatable; the first is the broker's custom domain).
    #[arg(long = "domain", short = 'd', value_name = "NAME")]
    pub domains: Vec<String>,
    /// EMQX Cloud deployment ID (like `ge6a1a75`); without it no deploy section is written.
    #[arg(long, value_name = "ID")]
    pub deployment_id: Option<String>,
    /// The deployment's connection address the custom domain should be a CNAME to.
    #[arg(long, value_name = "HOST")]
    pub cname_target: Option<String>,
    /// TLS mode of the deployment.
    #[arg(long, value_enum, value_name = "MODE")]
    pub tls: Option<TlsMode>,
    /// Contact e-mail for the ACME account.
    #[arg(long)]
    pub email: Option<String>,
    /// Write `agree_tos = true` (you agree to the CA's terms of service).
    #[arg(long)]
    pub agree_tos: bool,
    /// MQTT user name for the verification's round trip (the password is read from
    /// `BROKERCERT_MQTT_PASSWORD`).
    #[arg(long, value_name = "NAME")]
    pub mqtt_username: Option<String>,
    /// Two-way TLS: the client certificate the verification presents (from `brokercert
    /// client-cert issue`; relative to the configuration file).
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Two-way TLS: the key of `--client-cert`.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Where to write the file.
    #[arg(
        long,
        short = 'o',
        value_name = "FILE",
        default_value = "brokercert.toml"
    )]
    pub output: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
    /// Never ask questions, even on a terminal.
    #[arg(long)]
    pub no_input: bool,
}

/// The answers that shape the file.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    /// Names (first = custom domain).
    pub domains: Vec<String>,
    /// Deployment ID.
    pub deployment_id: Option<String>,
    /// CNAME target.
    pub cname_target: Option<String>,
    /// TLS mode.
    pub tls: Option<TlsMode>,
    /// E-mail.
    pub email: Option<String>,
    /// Terms agreed.
    pub agree_tos: bool,
    /// MQTT user name for the verification.
    pub mqtt_username: Option<String>,
    /// Client certificate and key for the verification (two-way TLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Runs `init`.
pub fn run(args: &InitArgs) -> i32 {
    let mut answers = Answers {
        domains: args.domains.clone(),
        deployment_id: args.deployment_id.clone(),
        cname_target: args.cname_target.clone(),
        tls: args.tls,
        email: args.email.clone(),
        agree_tos: args.agree_tos,
        mqtt_username: args.mqtt_username.clone(),
        client_cert: args.client_cert.clone().zip(args.client_key.clone()),
    };
    let interactive = !args.no_input && std::io::stdin().is_terminal();
    if interactive && let Err(e) = ask(&mut answers) {
        output::error(&format!("cannot read the answers from the terminal: {e}"));
        return exit::CONFIG;
    }
    if answers.domains.is_empty() {
        output::error(
            "`brokercert init` needs the broker's custom domain, found none: pass `--domain mqtt.example.com` \
             (repeatable), or run it on a terminal to be asked",
        );
        return exit::CONFIG;
    }
    let text = render(&answers);
    if let Err(e) = validate(&text) {
        output::error(&format!(
            "the answers do not make a valid configuration: {e}"
        ));
        return exit::CONFIG;
    }
    match write(&args.output, &text, args.force) {
        Ok(()) => {
            println!(
                "Wrote {}. Next: export the secrets it names{}, then run `brokercert issue --config {}`.",
                args.output.display(),
                match (
                    answers.deployment_id.is_some(),
                    answers.mqtt_username.is_some()
                ) {
                    (true, true) => {
                        " (EMQX_CLOUD_API_KEY, EMQX_CLOUD_API_SECRET, BROKERCERT_MQTT_PASSWORD)"
                    }
                    (true, false) => " (EMQX_CLOUD_API_KEY, EMQX_CLOUD_API_SECRET)",
                    (false, true) => " (BROKERCERT_MQTT_PASSWORD)",
                    (false, false) => "",
                },
                args.output.display()
            );
            exit::OK
        }
        Err(message) => {
            output::error(&message);
            exit::CONFIG
        }
    }
}

fn ask(a: &mut Answers) -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut prompt = |q: &str| -> std::io::Result<Option<String>> {
        eprint!("{q}: ");
        std::io::stderr().flush()?;
        Ok(lines
            .next()
            .transpose()?
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty()))
    };
    if a.domains.is_empty()
        && let Some(d) = prompt("Broker's custom domain (e.g. mqtt.example.com)")?
    {
        a.domains = d
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    if a.email.is_none() {
        a.email = prompt("Contact e-mail for Let's Encrypt (optional)")?;
    }
    if !a.agree_tos {
        a.agree_tos = matches!(
            prompt(
                "Agree to the CA's terms of service (https://letsencrypt.org/repository/)? [y/N]"
            )?
            .as_deref(),
            Some("y" | "Y" | "yes")
        );
    }
    if a.deployment_id.is_none() {
        a.deployment_id = prompt("EMQX Cloud deployment ID (optional, e.g. ge6a1a75)")?;
    }
    if a.cname_target.is_none() {
        a.cname_target = prompt("Deployment's connection address for the CNAME (optional)")?;
    }
    if a.tls.is_none() && a.deployment_id.is_some() {
        a.tls = match prompt("TLS mode: one-way or two-way [one-way]")?.as_deref() {
            Some("two-way") => Some(TlsMode::TwoWay),
            _ => Some(TlsMode::OneWay),
        };
    }
    Ok(())
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The commented configuration for `a`.
pub fn render(a: &Answers) -> String {
    let mut t = String::new();
    t.push_str(
        "# brokercert configuration, written by `brokercert init`.\n\
         # Every key is described in docs/configuration.md.\n\
         # Precedence: command-line flags > environment variables > this file > defaults.\n\
         # Secrets are never written here: the file names the environment variables (or files)\n\
         # that hold them. Relative paths are relative to this file.\n\n",
    );
    t.push_str("# state_dir = \"/var/lib/brokercert\"\n\n[acme]\n");
    t.push_str(
        "# `letsencrypt`, `letsencrypt-staging` (try this first) or a directory URL.\n\
         directory = \"letsencrypt\"\n",
    );
    match &a.email {
        Some(e) => t.push_str(&format!("email = {}\n", quote(e))),
        None => t.push_str("# email = \"ops@example.com\"\n"),
    }
    t.push_str(&format!(
        "# Creating the account needs your agreement to the CA's terms (or pass --agree-tos).\nagree_tos = {}\n",
        a.agree_tos
    ));
    t.push_str(
        "\n[route53]\n\
         # Credentials come from the standard AWS chain (AWS_PROFILE, instance role, ...).\n\
         # `brokercert iam-policy` prints the least-privilege policy.\n\
         # profile = \"brokercert\"\n\n\
         [dns]\n\
         # How long to wait until every authoritative nameserver serves the TXT values.\n\
         propagation_timeout = \"2m\"\n\n",
    );
    t.push_str("[[certificate]]\n");
    let domains: Vec<String> = a.domains.iter().map(|d| quote(d)).collect();
    t.push_str(&format!(
        "# The first name is the broker's custom domain.\ndomains = [{}]\n",
        domains.join(", ")
    ));
    match &a.cname_target {
        Some(c) => t.push_str(&format!(
            "# The deployment's connection address; the custom domain becomes a CNAME to it.\ncname_target = {}\n",
            quote(c)
        )),
        None => t.push_str("# cname_target = \"xxxxxxxx.ala.us-east-1.emqxsl.com\"\n"),
    }
    t.push_str(
        "# RSA 2048 is accepted by every revision of EMQX Cloud's import rules.\n\
         key_type = \"rsa2048\"\n\
         # hosted_zone_id = \"Z0123456789ABCDEFGHIJ\"\n",
    );
    let tls = a.tls.unwrap_or(TlsMode::OneWay);
    if let Some(id) = &a.deployment_id {
        t.push_str(&format!(
            "\n[[certificate.deploy]]\n\
             type = \"emqx-cloud\"\n\
             deployment_id = {}\n\
             tls = \"{}\"\n\
             # The Platform API key and secret are read from these environment variables.\n\
             api_key_env = \"EMQX_CLOUD_API_KEY\"\n\
             api_secret_env = \"EMQX_CLOUD_API_SECRET\"\n",
            quote(id),
            tls.as_str()
        ));
        if tls == TlsMode::TwoWay {
            t.push_str(
                "# The private client CA (make it with `brokercert client-ca create --out client-ca`).\n\
                 client_ca = \"client-ca/client-ca.crt\"\n",
            );
        }
    }
    t.push_str(
        "\n[certificate.verify]\n\
         # MQTT credentials for the post-deploy round trip; the password is read from the\n\
         # environment variable named here.\n",
    );
    match &a.mqtt_username {
        Some(u) => t.push_str(&format!(
            "username = {}\npassword_env = \"BROKERCERT_MQTT_PASSWORD\"\n",
            quote(u)
        )),
        None => t.push_str(
            "# username = \"device-1\"\n\
             # password_env = \"BROKERCERT_MQTT_PASSWORD\"\n",
        ),
    }
    match &a.client_cert {
        Some((cert, key)) => t.push_str(&format!(
            "# A client certificate from the client CA (`brokercert client-cert issue`).\n\
             client_cert = {}\n\
             client_key = {}\n",
            quote(&cert.display().to_string()),
            quote(&key.display().to_string())
        )),
        None if tls == TlsMode::TwoWay && a.deployment_id.is_some() => t.push_str(
            "# A client certificate from the client CA (`brokercert client-cert issue`).\n\
             # client_cert = \"clients/device-1.crt\"\n\
             # client_key = \"clients/device-1.key\"\n",
        ),
        None => {}
    }
    t
}

fn validate(text: &str) -> Result<(), String> {
    let file = parse_text(text, Path::new("brokercert.toml")).map_err(|e| e.to_string())?;
    Settings::from_file(file, Path::new("."), &Overrides::default())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn write(path: &Path, text: &str, force: bool) -> Result<(), String> {
    if path.exists() && !force {
        return Err(format!(
            "`{}` already exists; `brokercert init` does not replace a configuration. Pass `--force` to replace it, or `--output FILE` to write elsewhere",
            path.display()
        ));
    }
    let fail = |e: std::io::Error| {
        format!(
            "cannot write `{}`: {e}. Check the directory exists and is writable, or choose another path with `--output FILE`",
            path.display()
        )
    };
    if force {
        return crate::store::atomic_write(path, text.as_bytes(), 0o644).map_err(|e| e.to_string());
    }
    // At most 0644 whatever the umask (a stricter umask still applies): a group- or
    // world-writable configuration naming commands is refused by every later run.
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(fail)?;
    f.write_all(text.as_bytes()).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_parses() {
        for tls in [None, Some(TlsMode::OneWay), Some(TlsMode::TwoWay)] {
            for id in [None, Some("ge6a1a75".to_string())] {
                let a = Answers {
                    domains: vec!["mqtt.example.com".into(), "*.example.com".into()],
                    deployment_id: id.clone(),
                    cname_target: Some("x.emqxsl.com".into()),
                    tls,
                    email: Some("ops@example.com".into()),
                    agree_tos: true,
                    mqtt_username: Some("device-1".into()),
                    client_cert: Some(("clients/d.crt".into(), "clients/d.key".into())),
                };
                let text = render(&a);
                validate(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            }
        }
    }
}
