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
    /// The certificate's name, which `deploy`, `verify`, `remove` … take (default: its first
    /// domain).
    #[arg(long, short = 'n', value_name = "NAME")]
    pub name: Option<String>,
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
    /// Start with Let's Encrypt's staging CA (test certificates, generous limits): the
    /// default, and what a terminal session suggests first.
    #[arg(long, conflicts_with = "production")]
    pub staging: bool,
    /// Use Let's Encrypt's production CA right away.
    #[arg(long)]
    pub production: bool,
    /// Two-way TLS: create the private client CA now, in `client-ca/` next to the file.
    #[arg(long, conflicts_with = "no_client_ca")]
    pub create_client_ca: bool,
    /// Two-way TLS: do not create the client CA (the next steps say how).
    #[arg(long)]
    pub no_client_ca: bool,
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
    /// The certificate's name (`None`: its first domain).
    pub name: Option<String>,
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
    /// Let's Encrypt production (`Some(true)`) or staging (`Some(false)`, the default).
    pub production: Option<bool>,
    /// Two-way TLS: create the client CA (`None`: not decided, not created).
    pub create_client_ca: Option<bool>,
}

/// Runs `init`.
pub fn run(args: &InitArgs) -> i32 {
    let mut answers = Answers {
        name: args.name.clone(),
        domains: args.domains.clone(),
        deployment_id: args.deployment_id.clone(),
        cname_target: args.cname_target.clone(),
        tls: args.tls,
        email: args.email.clone(),
        agree_tos: args.agree_tos,
        mqtt_username: args.mqtt_username.clone(),
        client_cert: args.client_cert.clone().zip(args.client_key.clone()),
        production: match (args.production, args.staging) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        create_client_ca: match (args.create_client_ca, args.no_client_ca) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
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
    if let Err(message) = write(&args.output, &text, args.force) {
        output::error(&message);
        return exit::CONFIG;
    }
    let two_way = answers.deployment_id.is_some() && answers.tls == Some(TlsMode::TwoWay);
    // `client_ca = "client-ca/client-ca.crt"` in the file is relative to the file.
    let ca_dir = match args.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join("client-ca"),
        _ => PathBuf::from("client-ca"),
    };
    let mut next = Vec::new();
    let secrets = match (
        answers.deployment_id.is_some(),
        answers.mqtt_username.is_some(),
    ) {
        (true, true) => "EMQX_CLOUD_API_KEY, EMQX_CLOUD_API_SECRET, BROKERCERT_MQTT_PASSWORD",
        (true, false) => "EMQX_CLOUD_API_KEY, EMQX_CLOUD_API_SECRET",
        (false, true) => "BROKERCERT_MQTT_PASSWORD",
        (false, false) => "",
    };
    if !secrets.is_empty() {
        next.push(format!("export the secrets it names ({secrets})"));
    }
    if two_way {
        if answers.create_client_ca == Some(true) {
            let create = crate::workflow::client_ca::ClientCaOptions::in_dir(ca_dir.clone());
            use crate::clock::Clock;
            match crate::workflow::client_ca::create(&create, crate::clock::SystemClock.now()) {
                Ok(summary) => output::say(summary.trim_end_matches('\n')),
                Err(e) => {
                    output::error(&format!(
                        "wrote {}, but could not create the client CA: {e}",
                        args.output.display()
                    ));
                    return e.exit_code();
                }
            }
        } else if !ca_dir.join("client-ca.crt").exists() {
            next.push(format!(
                "create the client CA with `brokercert client-ca create --out {}`",
                crate::hint::shell_word(&ca_dir.display().to_string())
            ));
        }
    }
    next.push(format!(
        "run `brokercert issue --config {}`",
        crate::hint::shell_word(&args.output.display().to_string())
    ));
    if answers.production != Some(true) {
        next.push(
            "once it works, switch `directory` to \"letsencrypt\" in the file and run it again with `--force-renewal`"
                .to_string(),
        );
    }
    println!(
        "Wrote {}. Next: {}.",
        args.output.display(),
        next.join(", then ")
    );
    exit::OK
}

/// A broker address as people paste it (`mqtts://host:8883`, `wss://host:8084/mqtt`,
/// `host:8883`, `host.`): the host alone.
pub fn host_of(input: &str) -> &str {
    let s = input.trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let s = s.split(['/', '?', '#']).next().unwrap_or(s);
    let s = s.rsplit_once('@').map_or(s, |(_, host)| host);
    let s = match s.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => s,
    };
    s.trim_end_matches('.')
}

fn domain_answer(input: &str) -> Result<String, String> {
    let host = host_of(input);
    crate::names::DomainName::parse(host)
        .map(|d| d.to_string())
        .map_err(|e| e.to_string())
}

fn yes_no(input: &str) -> Result<bool, String> {
    match input.to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(true),
        "n" | "no" => Ok(false),
        _ => Err("answer y or n".into()),
    }
}

/// Reads the answers to questions from a terminal: an empty answer takes the default, a bad
/// one is explained and asked again; the end of input ends the questions.
struct Asker<I: Iterator<Item = std::io::Result<String>>> {
    lines: I,
}

impl<I: Iterator<Item = std::io::Result<String>>> Asker<I> {
    /// `None`: no answer (empty, or the end of input).
    fn ask<T>(
        &mut self,
        question: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> std::io::Result<Option<T>> {
        loop {
            eprint!("{question}: ");
            std::io::stderr().flush()?;
            let Some(line) = self.lines.next().transpose()? else {
                eprintln!();
                return Ok(None);
            };
            let line = line.trim();
            if line.is_empty() {
                return Ok(None);
            }
            match parse(line) {
                Ok(v) => return Ok(Some(v)),
                Err(why) => eprintln!("  `{line}`: {why}; try again (or press Enter to skip)"),
            }
        }
    }
}

fn ask(a: &mut Answers) -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut q = Asker {
        lines: stdin.lock().lines(),
    };
    while a.domains.is_empty() {
        let Some(list) = q.ask(
            "Broker's custom domain (e.g. mqtt.example.com; mqtts://host:8883 works too)",
            |s| {
                s.split([',', ' '])
                    .filter(|p| !p.is_empty())
                    .map(domain_answer)
                    .collect::<Result<Vec<_>, _>>()
            },
        )?
        else {
            break;
        };
        a.domains = list;
    }
    if a.email.is_none() {
        a.email = q.ask("Contact e-mail for Let's Encrypt (optional)", |s| {
            if s.contains('@') && !s.contains(char::is_whitespace) {
                Ok(s.to_string())
            } else {
                Err("that is not an e-mail address".into())
            }
        })?;
    }
    if a.production.is_none() {
        a.production = q
            .ask(
                "Start with Let's Encrypt staging (test certificates, no rate-limit worries; switch to production once it works)? [Y/n]",
                yes_no,
            )?
            .map(|staging| !staging);
    }
    if !a.agree_tos {
        a.agree_tos = q
            .ask(
                "Agree to the CA's terms of service (https://letsencrypt.org/repository/)? [y/N]",
                yes_no,
            )?
            .unwrap_or(false);
    }
    if a.deployment_id.is_none() {
        a.deployment_id = q.ask("EMQX Cloud deployment ID (optional, e.g. ge6a1a75)", |s| {
            crate::config::check_deployment_id(s)
                .map(|()| s.to_string())
                .map_err(|expected| format!("expected {expected}"))
        })?;
    }
    if a.cname_target.is_none() {
        a.cname_target = q.ask(
            "Deployment's connection address for the CNAME (optional; mqtts://… works too)",
            domain_answer,
        )?;
    }
    if a.tls.is_none() && a.deployment_id.is_some() {
        a.tls = Some(
            q.ask("TLS mode: one-way or two-way [one-way]", |s| match s {
                "one-way" | "one" | "1" => Ok(TlsMode::OneWay),
                "two-way" | "two" | "2" => Ok(TlsMode::TwoWay),
                _ => Err("expected one-way or two-way".into()),
            })?
            .unwrap_or(TlsMode::OneWay),
        );
    }
    if a.tls == Some(TlsMode::TwoWay) && a.create_client_ca.is_none() {
        a.create_client_ca = Some(
            q.ask(
                "Two-way TLS needs a private client CA. Create it now in client-ca/? [Y/n]",
                yes_no,
            )?
            .unwrap_or(true),
        );
    }
    if a.mqtt_username.is_none() {
        a.mqtt_username = q.ask(
            "MQTT user name, if the broker requires one (optional; the password is read from BROKERCERT_MQTT_PASSWORD)",
            |s| {
                if s.contains(char::is_whitespace) {
                    Err("a user name has no spaces".into())
                } else {
                    Ok(s.to_string())
                }
            },
        )?;
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
    if a.production == Some(true) {
        t.push_str(
            "# `letsencrypt` (production), `letsencrypt-staging` (for trying) or a directory URL.\n\
             directory = \"letsencrypt\"\n",
        );
    } else {
        t.push_str(
            "# Staging first: its certificates are not trusted by clients, but its rate limits\n\
             # forgive mistakes. Once `brokercert issue` works, switch to production with\n\
             # directory = \"letsencrypt\" and run `brokercert issue --force-renewal`.\n\
             directory = \"letsencrypt-staging\"\n",
        );
    }
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
    match &a.name {
        Some(n) => t.push_str(&format!(
            "# The name other commands take (`brokercert deploy NAME`); also live/NAME/.\nname = {}\n",
            quote(n)
        )),
        None => t.push_str("# name = \"mqtt-prod\"   # default: the first domain\n"),
    }
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
    fn a_pasted_broker_address_gives_its_host() {
        for (input, host) in [
            ("mqtts://mqtt.example.com:8883", "mqtt.example.com"),
            ("wss://mqtt.example.com:8084/mqtt", "mqtt.example.com"),
            ("mqtt.example.com:8883", "mqtt.example.com"),
            ("mqtt.example.com.", "mqtt.example.com"),
            (" mqtt.example.com ", "mqtt.example.com"),
        ] {
            assert_eq!(host_of(input), host, "{input}");
        }
        assert!(domain_answer("mqtts://bad_host!:8883").is_err());
    }

    #[test]
    fn every_combination_parses() {
        for tls in [None, Some(TlsMode::OneWay), Some(TlsMode::TwoWay)] {
            for id in [None, Some("ge6a1a75".to_string())] {
                let a = Answers {
                    name: Some("mqtt-prod".into()),
                    domains: vec!["mqtt.example.com".into(), "*.example.com".into()],
                    deployment_id: id.clone(),
                    cname_target: Some("x.emqxsl.com".into()),
                    tls,
                    email: Some("ops@example.com".into()),
                    agree_tos: true,
                    mqtt_username: Some("device-1".into()),
                    client_cert: Some(("clients/d.crt".into(), "clients/d.key".into())),
                    production: Some(id.is_some()),
                    create_client_ca: None,
                };
                let text = render(&a);
                validate(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            }
        }
    }
}
