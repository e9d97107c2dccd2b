//! `brokercert doctor` as a use case: everything a first issuance needs, checked from this
//! machine per certificate, as typed results (one [`Check`] per line, with its evidence and
//! fix). Nothing is ordered or deployed: the only write is one harmless TXT value at the
//! certificate's `_acme-challenge` name (where the least-privilege policy allows writes),
//! deleted again at once; the only deployment call is one read per EMQX Cloud target.
//!
//! Owns: which checks run, in which order, and what counts as needed (a [`Status::Fail`])
//! versus worth knowing ([`Status::Warn`]). Does not own printing (`cli::doctor`) nor any
//! protocol (`dns`, `acme`, `deploy`).

use std::net::SocketAddr;
use std::time::Duration;

use crate::acme::http::AcmeHttp;
use crate::config::{CertificateSpec, Settings};
use crate::deploy::from_config;
use crate::dns::lookup::{self, WireLookup};
use crate::dns::plan::TxtValue;
use crate::dns::provider::{ChangeStatus, DnsProvider};
use crate::dns::route53::{Route53, Route53Settings};
use crate::dns::strategy::Propagation;
use crate::dns::{HostedZone, RecordType};
use crate::store::Store;
use crate::workflow::challenge_records::{DnsView, Ledger};

pub use super::doctor_report::{Check, Report, Status};

/// How long one network check (HTTPS, TCP connect) may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew against the CA's `Date` up to which all is well.
pub const SKEW_OK: Duration = Duration::from_secs(60);
/// Clock skew from which the clock is called wrong (certificate and renewal times shift).
pub const SKEW_FAIL: Duration = Duration::from_secs(300);

fn check(
    section: &'static str,
    name: impl Into<String>,
    status: Status,
    evidence: impl Into<String>,
    fix: Option<String>,
) -> Check {
    Check {
        section,
        name: name.into(),
        status,
        evidence: evidence.into(),
        fix,
    }
}

/// Runs every check for each of `specs`.
pub async fn doctor(settings: &Settings, specs: &[&CertificateSpec]) -> Vec<Report> {
    let r53 = Route53Settings {
        max_attempts: Some(settings.dns.route53_max_attempts.unwrap_or(2).min(2)),
        ..crate::workflow::services::route53_settings(settings)
    };
    let credentials = Route53::credentials_source(&r53).await;
    let route53 = Route53::connect(&r53).await;
    let wire = crate::workflow::services::lookup(settings);
    let acme = acme_checks(settings).await;
    let state = crate::workflow::blocking::blocking(|| super::doctor_state::state_checks(settings));
    let mut reports = Vec::new();
    for spec in specs {
        let mut checks = Vec::new();
        aws_and_dns_checks(
            settings,
            spec,
            credentials.as_deref(),
            &route53,
            &wire,
            &mut checks,
        )
        .await;
        checks.extend(state.iter().cloned());
        checks.extend(acme.iter().cloned());
        deploy_checks(settings, spec, &mut checks).await;
        mqtt_checks(spec, &mut checks).await;
        reports.push(Report {
            name: spec.name.clone(),
            domains: spec.domains.iter().map(|d| d.to_string()).collect(),
            checks,
        });
    }
    reports
}

async fn aws_and_dns_checks(
    settings: &Settings,
    spec: &CertificateSpec,
    credentials: Result<&str, &String>,
    route53: &Route53,
    wire: &WireLookup,
    out: &mut Vec<Check>,
) {
    match credentials {
        Ok(source) => out.push(check(
            "aws",
            "credentials",
            Status::Pass,
            format!("found (source: {source})"),
            None,
        )),
        Err(e) => {
            out.push(check(
                "aws",
                "credentials",
                Status::Fail,
                format!("no AWS credentials: {e}"),
                Some(
                    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE (or \
                     `route53.profile`), or run where an IAM role is available"
                        .into(),
                ),
            ));
            for name in ["ListHostedZones", "ChangeResourceRecordSets", "GetChange"] {
                out.push(check(
                    "aws",
                    name,
                    Status::Skip,
                    "not tried: no credentials",
                    None,
                ));
            }
            return;
        }
    }
    let view = match DnsView::new(route53, wire).await {
        Ok(v) => {
            out.push(check(
                "aws",
                "ListHostedZones",
                Status::Pass,
                format!("allowed ({} hosted zone(s) visible)", v.zones.len()),
                None,
            ));
            v
        }
        Err(e) => {
            out.push(check(
                "aws",
                "ListHostedZones",
                Status::Fail,
                e.to_string(),
                None,
            ));
            for name in ["ChangeResourceRecordSets", "GetChange"] {
                out.push(check(
                    "aws",
                    name,
                    Status::Skip,
                    "not tried: the hosted zones could not be listed",
                    None,
                ));
            }
            return;
        }
    };
    // Where each name's TXT goes (following a delegated `_acme-challenge` CNAME).
    let explicit = spec.hosted_zone_id.as_deref();
    let mut targets: Vec<(HostedZone, String)> = Vec::new();
    for d in &spec.domains {
        let challenge = d.challenge_name();
        match view.challenge_target(&challenge, explicit).await {
            Ok((zone, target)) => {
                out.push(check(
                    "aws",
                    format!("hosted zone for {d}"),
                    Status::Pass,
                    format!(
                        "{} ({}){}; its TXT goes to {target}",
                        zone.name,
                        zone.id,
                        if explicit.is_some() {
                            ", set by `hosted_zone_id`"
                        } else {
                            ", found by name"
                        }
                    ),
                    None,
                ));
                if !targets.iter().any(|(_, t)| *t == target.as_str()) {
                    targets.push((zone, target.to_string()));
                }
            }
            Err(e) => out.push(check(
                "aws",
                format!("hosted zone for {d}"),
                Status::Fail,
                e.to_string(),
                None,
            )),
        }
    }
    match targets.first() {
        Some((zone, target)) => exercise_writes(&view, route53, zone, target, out).await,
        None => {
            for name in ["ChangeResourceRecordSets", "GetChange"] {
                out.push(check(
                    "aws",
                    name,
                    Status::Skip,
                    "not tried: no hosted zone holds the certificate's names",
                    None,
                ));
            }
        }
    }
    let mut zones: Vec<&HostedZone> = targets.iter().map(|(z, _)| z).collect();
    zones.sort_by(|a, b| a.id.cmp(&b.id));
    zones.dedup_by(|a, b| a.id == b.id);
    for zone in zones {
        nameserver_checks(settings, &view, wire, zone, out).await;
    }
}

/// Writes one test value at `target` (UPSERT, existing values kept), asks `GetChange` about
/// it, and deletes exactly it again: the three actions a run needs, each reported.
async fn exercise_writes(
    view: &DnsView<'_>,
    route53: &Route53,
    zone: &HostedZone,
    target: &str,
    out: &mut Vec<Check>,
) {
    let value = format!(
        "brokercert-doctor-{}",
        time::OffsetDateTime::now_utc().unix_timestamp()
    );
    let values = [TxtValue {
        zone_id: zone.id.clone(),
        name: target.to_string(),
        value: value.clone(),
    }];
    let ledger = Ledger::default();
    let comment = "brokercert doctor: a test value, deleted at once";
    let change = match view.publish(&values, &ledger, comment).await {
        Ok(changes) => changes.into_iter().next().map(|(_, id)| id),
        Err(e) => {
            out.push(check(
                "aws",
                "ChangeResourceRecordSets",
                Status::Fail,
                format!("UPSERT of a test TXT value at {target} in {}: {e}", zone.id),
                None,
            ));
            out.push(check(
                "aws",
                "GetChange",
                Status::Skip,
                "not tried: no change was accepted to ask about",
                None,
            ));
            // The value may be there although the answer was lost.
            let _ = view.cleanup(&ledger, comment).await;
            return;
        }
    };
    let left = view.cleanup(&ledger, comment).await;
    if left.is_empty() {
        out.push(check(
            "aws",
            "ChangeResourceRecordSets",
            Status::Pass,
            format!(
                "allowed: a test TXT value `{value}` was written at {target} (UPSERT, other \
                 values kept) and deleted again (DELETE)"
            ),
            None,
        ));
    } else {
        out.push(check(
            "aws",
            "ChangeResourceRecordSets",
            Status::Fail,
            format!(
                "the test TXT value `{value}` was written at {target} but not deleted: {}",
                left.join("; ")
            ),
            None,
        ));
    }
    let Some(change) = change else {
        return;
    };
    match route53.change_status_asked(&change).await {
        Ok(st) => out.push(check(
            "aws",
            "GetChange",
            Status::Pass,
            format!(
                "allowed: change {} is {}",
                change.0,
                match st {
                    ChangeStatus::InSync => "INSYNC",
                    ChangeStatus::Pending => "PENDING",
                }
            ),
            None,
        )),
        Err(e) => out.push(check("aws", "GetChange", Status::Fail, e.to_string(), None)),
    }
}

/// An error with its causes (`error sending request: … : Connection refused`).
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = c.source();
    }
    parts.join(": ")
}

fn family(addr: &SocketAddr) -> &'static str {
    if addr.is_ipv4() { "IPv4" } else { "IPv6" }
}

fn transport_text(r: &Result<(), String>, ok: &str) -> String {
    match r {
        Ok(()) => ok.to_string(),
        Err(e) => e.clone(),
    }
}

/// The zone's nameservers per address (UDP and TCP 53), the recursive resolver, and the
/// propagation strategy `auto` would pick here.
async fn nameserver_checks(
    settings: &Settings,
    view: &DnsView<'_>,
    wire: &WireLookup,
    zone: &HostedZone,
    out: &mut Vec<Check>,
) {
    let configured = settings.dns.strategy.propagation;
    let servers = match view.nameservers(zone).await {
        Ok(s) => s,
        Err(e) => {
            out.push(check(
                "dns",
                format!("nameservers of {}", zone.name),
                if configured == Propagation::Insync {
                    Status::Warn
                } else {
                    Status::Fail
                },
                e.to_string(),
                None,
            ));
            return;
        }
    };
    let probes =
        futures::future::join_all(servers.iter().map(|s| lookup::probe_53(s.addr, &zone.name)))
            .await;
    let answering = probes
        .iter()
        .filter(|p| p.udp.is_ok() || p.tcp.is_ok())
        .count();
    for (s, p) in servers.iter().zip(&probes) {
        let both = p.udp.is_ok() && p.tcp.is_ok();
        let none = p.udp.is_err() && p.tcp.is_err();
        let status = match (configured, none, both) {
            (_, false, true) => Status::Pass,
            (Propagation::Authoritative, true, _) => Status::Fail,
            _ => Status::Warn,
        };
        out.push(check(
            "dns",
            format!("nameserver {s} {}", family(&s.addr)),
            status,
            format!(
                "UDP 53: {}; TCP 53: {}",
                transport_text(&p.udp, "answers"),
                transport_text(&p.tcp, "connects")
            ),
            none.then(|| {
                "allow DNS (UDP and TCP port 53) from this machine to the zone's nameservers, \
                 or set `dns.propagation = \"insync\"`"
                    .to_string()
            }),
        ));
    }
    // The recursive resolver: nameserver discovery, and reads under `resolver`/`insync`.
    match wire.resolvers() {
        Ok(resolvers) => {
            for r in resolvers {
                let answer =
                    lookup::exchange(r, &zone.name, RecordType::Soa, true, lookup::PROBE_TIMEOUT)
                        .await;
                let needed = configured == Propagation::Resolver;
                out.push(match answer {
                    Ok(a) => check(
                        "dns",
                        format!("resolver {r}"),
                        Status::Pass,
                        format!("answers ({} SOA: {})", zone.name, a.describe()),
                        None,
                    ),
                    Err(e) => check(
                        "dns",
                        format!("resolver {r}"),
                        if needed { Status::Fail } else { Status::Warn },
                        format!("no usable answer for {} SOA: {e}", zone.name),
                        Some("set `dns.resolver` to a resolver this machine may ask".into()),
                    ),
                });
            }
        }
        Err(e) => out.push(check(
            "dns",
            "resolver",
            if configured == Propagation::Resolver {
                Status::Fail
            } else {
                Status::Warn
            },
            e,
            Some("set `dns.resolver`".into()),
        )),
    }
    let auto_pick = if answering > 0 {
        "authoritative"
    } else {
        "insync"
    };
    let evidence = format!(
        "`dns.propagation = \"{configured}\"`; `auto` picks `{auto_pick}` here ({answering} of \
         {} nameserver address(es) answer on UDP or TCP 53)",
        servers.len()
    );
    out.push(match (configured, answering) {
        (Propagation::Authoritative, 0) => check(
            "dns",
            "propagation",
            Status::Fail,
            evidence,
            Some(
                "`authoritative` needs the nameservers on port 53: set `dns.propagation` to \
                 \"auto\" or \"insync\", or allow port 53"
                    .into(),
            ),
        ),
        (Propagation::Auto, 0) => check(
            "dns",
            "propagation",
            Status::Warn,
            evidence,
            Some(
                "issuance trusts Route 53's INSYNC here; set `dns.propagation = \"insync\"` to \
                 make that explicit"
                    .into(),
            ),
        ),
        _ => check("dns", "propagation", Status::Pass, evidence, None),
    });
}

/// The CA: directory over HTTPS, terms, profiles, the account, clock skew. The same for
/// every certificate (one directory per configuration), so run once.
async fn acme_checks(settings: &Settings) -> Vec<Check> {
    let mut out = Vec::new();
    let dir = &settings.acme.directory;
    let http = match AcmeHttp::new(&settings.acme.https_roots) {
        Ok(h) => h,
        Err(e) => {
            out.push(check(
                "acme",
                "directory",
                Status::Fail,
                e.to_string(),
                None,
            ));
            return out;
        }
    };
    let started = std::time::Instant::now();
    let rsp = tokio::time::timeout(CHECK_TIMEOUT, http.client().get(dir).send()).await;
    let rsp = match rsp {
        Ok(Ok(r)) if r.status().is_success() => r,
        other => {
            let what = match other {
                Ok(Ok(r)) => format!("answered HTTP {}", r.status().as_u16()),
                Ok(Err(e)) => chain_text(&e.without_url()),
                Err(_) => format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
            };
            out.push(check(
                "acme",
                "directory",
                Status::Fail,
                format!("GET {dir}: {what}"),
                Some(
                    "check `acme.directory` (flag `--directory`) and HTTPS access to the CA \
                     from this machine"
                        .into(),
                ),
            ));
            for name in ["terms", "profiles", "clock"] {
                out.push(check(
                    "acme",
                    name,
                    Status::Skip,
                    "not checked: the directory is unreachable",
                    None,
                ));
            }
            account_check(settings, &mut out);
            return out;
        }
    };
    let date = rsp
        .headers()
        .get(http::header::DATE)
        .and_then(|d| d.to_str().ok())
        .map(str::to_string);
    let body = crate::bounded_read::read_body_text(rsp, crate::bounded_read::MAX_RESPONSE).await;
    let json: serde_json::Value = body
        .ok()
        .and_then(|b| serde_json::from_str(&b).ok())
        .unwrap_or_default();
    if json.get("newOrder").is_none() {
        out.push(check(
            "acme",
            "directory",
            Status::Fail,
            format!("GET {dir}: the answer is not an ACME directory (no `newOrder`)"),
            Some("`acme.directory` must be the CA's ACME directory URL".into()),
        ));
        return out;
    }
    out.push(check(
        "acme",
        "directory",
        Status::Pass,
        format!(
            "GET {dir}: an ACME directory over HTTPS ({} ms)",
            started.elapsed().as_millis()
        ),
        None,
    ));
    let meta = json.get("meta").cloned().unwrap_or_default();
    let terms = meta.get("termsOfService").and_then(|t| t.as_str());
    let has_account = matches!(
        crate::acme::account::locate(&settings.acme, &Store::new(&settings.state_dir)),
        Ok(Some(_))
    );
    out.push(match (terms, settings.acme.agree_tos || has_account) {
        (None, _) => check("acme", "terms", Status::Pass, "the CA names none", None),
        (Some(t), true) => check(
            "acme",
            "terms",
            Status::Pass,
            format!(
                "{t} ({})",
                if has_account {
                    "agreed when the account was made"
                } else {
                    "agreed in the configuration"
                }
            ),
            None,
        ),
        (Some(t), false) => check(
            "acme",
            "terms",
            Status::Fail,
            format!("{t}: not agreed, and there is no account yet"),
            Some("read them, then set `acme.agree_tos = true` (or pass `--agree-tos`)".into()),
        ),
    });
    let profiles = meta
        .get("profiles")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "));
    out.push(check(
        "acme",
        "profiles",
        Status::Pass,
        match profiles {
            Some(p) if !p.is_empty() => p,
            _ => "none advertised (`meta.profiles` absent)".into(),
        },
        None,
    ));
    account_check(settings, &mut out);
    out.push(clock_check(date.as_deref()));
    out
}

fn account_check(settings: &Settings, out: &mut Vec<Check>) {
    out.push(
        match crate::acme::account::locate(&settings.acme, &Store::new(&settings.state_dir)) {
            Ok(Some(source)) => check("acme", "account", Status::Pass, source, None),
            Ok(None) => check(
                "acme",
                "account",
                Status::Pass,
                format!(
                    "none yet for {}: the first `issue` creates it{}",
                    settings.acme.directory,
                    settings
                        .acme
                        .email
                        .as_deref()
                        .map(|e| format!(" (contact {e})"))
                        .unwrap_or_default()
                ),
                None,
            ),
            Err(e) => check("acme", "account", Status::Fail, e.to_string(), None),
        },
    );
}

/// This machine's clock against the CA's `Date` header (HTTP date, whole seconds).
fn clock_check(date: Option<&str>) -> Check {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let Some(theirs) = date.and_then(|d| time::PrimitiveDateTime::parse(d, &fmt).ok()) else {
        return check(
            "acme",
            "clock",
            Status::Warn,
            format!(
                "the CA's answer has no usable `Date` header ({})",
                date.unwrap_or("none")
            ),
            None,
        );
    };
    let ours = time::OffsetDateTime::now_utc();
    let skew = ours - theirs.assume_utc();
    let abs = skew.unsigned_abs();
    let evidence = format!(
        "{} s {} the CA's `Date` ({})",
        abs.as_secs(),
        if skew.is_negative() {
            "behind"
        } else {
            "ahead of"
        },
        date.unwrap_or_default()
    );
    let fix = Some(
        "synchronise the clock (`timedatectl set-ntp true`, or `chronyc makestep`)".to_string(),
    );
    if abs <= SKEW_OK {
        check("acme", "clock", Status::Pass, evidence, None)
    } else if abs <= SKEW_FAIL {
        check("acme", "clock", Status::Warn, evidence, fix)
    } else {
        check("acme", "clock", Status::Fail, evidence, fix)
    }
}

async fn deploy_checks(settings: &Settings, spec: &CertificateSpec, out: &mut Vec<Check>) {
    let targets = match from_config::targets(spec) {
        Ok(t) => t,
        Err(e) => {
            out.push(check(
                "deploy",
                "targets",
                Status::Fail,
                e.to_string(),
                None,
            ));
            return;
        }
    };
    if targets.is_empty() {
        out.push(check(
            "deploy",
            "targets",
            Status::Skip,
            "no deployment target configured",
            None,
        ));
    }
    let today = time::OffsetDateTime::now_utc().date();
    for t in &targets {
        for r in t.readiness().await {
            out.push(check(
                "deploy",
                format!("{}: {}", t.describe(), r.check),
                if r.ok { Status::Pass } else { Status::Fail },
                r.evidence,
                r.fix,
            ));
        }
        out.extend(import_window_check(
            &settings.acme,
            &t.describe(),
            t.rules().min_days_left,
            today,
        ));
    }
}

/// How long a fresh certificate from the configured CA and profile can still be imported
/// into a target that refuses its last `min_days_left` days (EMQX Cloud): a warning while
/// some days remain, a failure once none do; nothing where the CA's lifetimes are unknown.
fn import_window_check(
    acme: &crate::config::AcmeSettings,
    target: &str,
    min_days_left: i64,
    today: time::Date,
) -> Option<Check> {
    let o = crate::acme::lifetime::import_outlook(
        &acme.directory,
        acme.profile.as_deref(),
        min_days_left,
        today,
    )?;
    Some(check(
        "deploy",
        format!("{target}: import window"),
        if o.importable_days_today > 0 {
            Status::Warn
        } else {
            Status::Fail
        },
        o.message(target, min_days_left),
        None,
    ))
}

/// The broker's MQTT ports (verify settings, default 8883/8084) reachable with a TCP
/// connection at the custom domain (or `verify.connect`).
async fn mqtt_checks(spec: &CertificateSpec, out: &mut Vec<Check>) {
    use crate::verify::{DEFAULT_MQTTS_PORT, DEFAULT_WSS_PORT};
    let v = spec.verify.clone().unwrap_or_default();
    if v.skip == Some(true) {
        out.push(check(
            "mqtt",
            "ports",
            Status::Skip,
            "verification is switched off (`verify.skip = true`)",
            None,
        ));
        return;
    }
    let host = v.host.clone().unwrap_or_else(|| {
        spec.domains[0]
            .as_str()
            .trim_start_matches("*.")
            .to_string()
    });
    let connect: Option<std::net::IpAddr> = match v.connect.as_deref().map(str::parse) {
        None => None,
        Some(Ok(ip)) => Some(ip),
        Some(Err(_)) => {
            out.push(check(
                "mqtt",
                "ports",
                Status::Fail,
                format!(
                    "`verify.connect = \"{}\"` is not an IP address",
                    v.connect.as_deref().unwrap_or_default()
                ),
                Some("give `connect` as an IP address, or remove it".into()),
            ));
            return;
        }
    };
    let transports = v
        .transports
        .clone()
        .unwrap_or_else(|| vec!["mqtts".into(), "wss".into()]);
    for t in transports {
        let (port, setting) = match t.as_str() {
            "mqtts" => (v.mqtts_port.unwrap_or(DEFAULT_MQTTS_PORT), "mqtts_port"),
            "wss" => (v.wss_port.unwrap_or(DEFAULT_WSS_PORT), "wss_port"),
            _ => continue,
        };
        let name = format!("{t} {host}:{port}");
        let addrs: Result<Vec<SocketAddr>, String> = match connect {
            Some(ip) => Ok(vec![SocketAddr::new(ip, port)]),
            None => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map(|a| a.collect())
                .map_err(|e| e.to_string()),
        };
        let addrs = match addrs {
            Ok(a) if !a.is_empty() => a,
            Ok(_) | Err(_) => {
                out.push(check(
                    "mqtt",
                    name,
                    if spec.cname_target.is_some() {
                        Status::Warn
                    } else {
                        Status::Fail
                    },
                    format!("`{host}` does not resolve to an address from here"),
                    Some(if spec.cname_target.is_some() {
                        "expected before the first `issue`, which creates its CNAME".into()
                    } else {
                        "point the name at the broker, or set `verify.connect`".into()
                    }),
                ));
                continue;
            }
        };
        let via = if connect.is_some() {
            " (`verify.connect`)"
        } else {
            ""
        };
        let mut last = String::new();
        let mut reached = None;
        for a in &addrs {
            match tokio::time::timeout(CHECK_TIMEOUT, tokio::net::TcpStream::connect(a)).await {
                Ok(Ok(_)) => {
                    reached = Some(*a);
                    break;
                }
                Ok(Err(e)) => last = format!("{a}: {e}"),
                Err(_) => last = format!("{a}: no connection within {} s", CHECK_TIMEOUT.as_secs()),
            }
        }
        out.push(match reached {
            Some(a) => check(
                "mqtt",
                name,
                Status::Pass,
                format!("TCP connection to {a}{via} accepted"),
                None,
            ),
            None => check(
                "mqtt",
                name,
                Status::Fail,
                format!("no TCP connection{via}: {last}"),
                Some(format!(
                    "open port {port} on the broker (and any firewall between), or set \
                     `verify.{setting}` to the port it listens on"
                )),
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_import_window_is_a_warning_while_days_remain_and_a_failure_after() {
        let mut acme = crate::config::AcmeSettings {
            directory: crate::config::LETSENCRYPT.into(),
            email: None,
            agree_tos: false,
            https_roots: Vec::new(),
            eab: None,
            preferred_chain: None,
            order_timeout: std::time::Duration::from_secs(60),
            foreign_env_account: Default::default(),
            profile: None,
        };
        let target = "EMQX Cloud deployment d1";
        let before = time::macros::date!(2027 - 03 - 01); // 64-day certificates: 4 days
        let c = import_window_check(&acme, target, 60, before).expect("a known CA");
        assert_eq!(c.status, Status::Warn, "{c:?}");
        let after = time::macros::date!(2028 - 03 - 01); // 45-day certificates: none
        let c = import_window_check(&acme, target, 60, after).expect("a known CA");
        assert_eq!(c.status, Status::Fail, "{c:?}");
        acme.directory = "https://127.0.0.1:9/directory".into();
        assert!(import_window_check(&acme, target, 60, after).is_none());
    }

    #[test]
    fn the_clock_is_judged_against_the_http_date() {
        let now = time::OffsetDateTime::now_utc();
        let fmt = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        let at = |offset: i64| {
            (now + time::Duration::seconds(offset))
                .format(&fmt)
                .expect("format")
        };
        assert_eq!(clock_check(Some(&at(0))).status, Status::Pass);
        assert_eq!(clock_check(Some(&at(-120))).status, Status::Warn);
        let far = clock_check(Some(&at(3600)));
        assert_eq!(far.status, Status::Fail);
        assert!(far.evidence.contains("behind"), "{far:?}");
        assert_eq!(clock_check(None).status, Status::Warn);
    }
}
