//! The Route 53 adapter of `DnsProvider`, on aws-sdk-route53.
//!
//! Needs only the three actions of the guide's IAM policy: `ListHostedZones`,
//! `ChangeResourceRecordSets` and `GetChange`; reads record sets with the optional
//! `ListResourceRecordSets` where allowed (`route53.read_records`). Owns: SDK set-up
//! (credentials chain, endpoint override for the emulator, the retry policy: standard mode,
//! bounded attempts), TXT quoting and unquoting, and error messages that name the missing IAM
//! action. Does not own: deciding what to change (`plan`).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_route53::Client;
use aws_sdk_route53::config::http::HttpResponse;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53::operation::list_resource_record_sets::ListResourceRecordSetsOutput;
use aws_sdk_route53::types::{self as r53};

use super::provider::{ChangeStatus, DnsProvider};
use super::{ChangeAction, ChangeId, DnsError, HostedZone, RecordChange, RecordSet, RecordType};

/// `route53.read_records`: how the records at a name are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadRecords {
    /// `ListResourceRecordSets` once per run; after an AccessDenied, DNS (said once).
    #[default]
    Auto,
    /// `ListResourceRecordSets` only (an AccessDenied is an error).
    Api,
    /// DNS only (the guide's three-action policy).
    Dns,
}

impl ReadRecords {
    /// Parses `auto`, `api` or `dns`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "auto" => ReadRecords::Auto,
            "api" => ReadRecords::Api,
            "dns" => ReadRecords::Dns,
            _ => return None,
        })
    }
}

/// How to reach Route 53.
#[derive(Debug, Clone, Default)]
pub struct Route53Settings {
    /// Endpoint override (the emulator); `None` = AWS (or `AWS_ENDPOINT_URL_ROUTE_53`).
    pub endpoint_url: Option<String>,
    /// Named profile from the shared AWS config; `None` = the default chain.
    pub profile: Option<String>,
    /// Signing region; Route 53 is global and signs in us-east-1 by default.
    pub region: Option<String>,
    /// Attempts per API call (the SDK's standard retry mode: exponential backoff with
    /// jitter, retrying throttling, 5xx, timeouts and dropped connections); `None` =
    /// [`DEFAULT_MAX_ATTEMPTS`].
    pub max_attempts: Option<u32>,
    /// `route53.read_records`.
    pub read_records: ReadRecords,
}

/// Attempts per Route 53 API call unless `route53.max_attempts` says otherwise: enough to
/// ride out a burst of throttling from other tools sharing the account's 10 requests/s
/// (the waits grow 1 s, 2 s, 4 s … up to 20 s), short enough that a dead endpoint fails
/// the run in about a minute instead of hanging.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// Longest wait for one attempt (connect, send, answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Record sets per page of a zone walk: Route 53's largest page ("If you specify a value
/// greater than 300, Route 53 returns only the first 300"; `maxitems` in
/// <https://docs.aws.amazon.com/Route53/latest/APIReference/API_ListResourceRecordSets.html>).
const MAX_ITEMS_PER_PAGE: i32 = 300;

/// Route 53 through the AWS SDK.
#[derive(Debug, Clone)]
pub struct Route53 {
    client: Client,
    max_attempts: u32,
    /// Changes whose `ChangeResourceRecordSets` answer already said INSYNC: asking
    /// `GetChange` about them again would spend a request of the account's rate for an
    /// answer we have. (Real Route 53 answers PENDING there, so it is polled as usual.)
    insync_on_submit: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// `route53.read_records`.
    read_records: ReadRecords,
    /// `auto` met an AccessDenied on `ListResourceRecordSets`: read DNS for the rest of the run.
    read_denied: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Route53 {
    /// The SDK configuration loader for the settings: region, retries, timeouts, profile.
    fn loader(settings: &Route53Settings) -> aws_config::ConfigLoader {
        let region = settings
            .region
            .clone()
            .unwrap_or_else(|| "us-east-1".into());
        let max_attempts = settings.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS).max(1);
        // Standard mode, deliberately: every call (ChangeResourceRecordSets included) is
        // retried on throttling, 5xx, timeouts and dropped connections. That is safe for
        // our writes: an UPSERT is idempotent, and a DELETE repeated after its answer was
        // lost fails as "not found", which the clean-up treats as done (it re-reads).
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .retry_config(RetryConfig::standard().with_max_attempts(max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            );
        if let Some(p) = &settings.profile {
            loader = loader.profile_name(p);
        }
        loader
    }

    /// Builds a client from the standard AWS credential chain and the settings.
    pub async fn connect(settings: &Route53Settings) -> Self {
        let max_attempts = settings.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS).max(1);
        let shared = Self::loader(settings).load().await;
        let mut conf = aws_sdk_route53::config::Builder::from(&shared);
        if let Some(url) = &settings.endpoint_url {
            conf = conf.endpoint_url(url);
        }
        Self {
            client: Client::from_conf(conf.build()),
            max_attempts,
            insync_on_submit: Default::default(),
            read_records: settings.read_records,
            read_denied: Default::default(),
        }
    }

    /// Where the standard credential chain finds credentials for these settings, e.g.
    /// `Environment` (AWS_ACCESS_KEY_ID…), `ProfileFile`, `WebIdentityToken`, `EcsContainer`
    /// or `IMDSv2` (the SDK's provider name). Resolves them once; never returns them.
    /// `Err`: no source has credentials, with the SDK's account of each source it tried.
    pub async fn credentials_source(settings: &Route53Settings) -> Result<String, String> {
        use aws_sdk_route53::config::ProvideCredentials;
        let shared = Self::loader(settings).load().await;
        let Some(provider) = shared.credentials_provider() else {
            return Err("the AWS SDK has no credentials provider".into());
        };
        match provider.provide_credentials().await {
            // The SDK keeps the provider's name private but shows it in `Debug` (which
            // redacts the secret); only that name is taken from it.
            Ok(c) => Ok(format!("{c:?}")
                .split("provider_name: \"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("the AWS SDK's default chain")
                .to_string()),
            // `CredentialsNotLoaded` (the type is not re-exported): no source had any.
            Err(e) if format!("{e:?}").starts_with("CredentialsNotLoaded") => Err(
                "none of the AWS SDK's sources has any (environment variables, the shared \
                 config and credentials files, a web identity token, the ECS container \
                 endpoint, EC2 instance metadata)"
                    .into(),
            ),
            // A source that has credentials but failed (a broken profile, an expired SSO
            // session): its own account, on one line.
            Err(e) => Err(aws_smithy_types::error::display::DisplayErrorContext(&e)
                .to_string()
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")),
        }
    }

    /// Wraps an existing SDK client (its own retry configuration applies; messages assume
    /// [`DEFAULT_MAX_ATTEMPTS`]).
    pub fn from_client(client: Client) -> Self {
        Self {
            client,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            insync_on_submit: Default::default(),
            read_records: ReadRecords::Auto,
            read_denied: Default::default(),
        }
    }

    /// One `ListResourceRecordSets` page starting at `start` (a name, lower case without
    /// the trailing dot). `Ok(None)`: reading through the API is not available
    /// (`route53.read_records = "dns"`, or `auto` met an AccessDenied).
    async fn list_page(
        &self,
        zone_id: &str,
        start: Option<&str>,
        max_items: i32,
    ) -> Result<Option<ListResourceRecordSetsOutput>, DnsError> {
        let start = start.map(|n| (format!("{n}."), None, None));
        self.list_request(zone_id, start, max_items).await
    }

    /// One page continuing a walk at `next` (`NextRecordName`, `NextRecordType`,
    /// `NextRecordIdentifier` of the page before), or from the zone's start.
    async fn list_from(
        &self,
        zone_id: &str,
        next: Option<(String, r53::RrType, Option<String>)>,
        max_items: i32,
    ) -> Result<Option<ListResourceRecordSetsOutput>, DnsError> {
        let next = next.map(|(n, t, id)| (n, Some(t), id));
        self.list_request(zone_id, next, max_items).await
    }

    async fn list_request(
        &self,
        zone_id: &str,
        start: Option<(String, Option<r53::RrType>, Option<String>)>,
        max_items: i32,
    ) -> Result<Option<ListResourceRecordSetsOutput>, DnsError> {
        use std::sync::atomic::Ordering;
        if self.read_records == ReadRecords::Dns || self.read_denied.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let (name, rtype, identifier) = match start {
            Some((n, t, id)) => (Some(n), t, id),
            None => (None, None, None),
        };
        match self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(zone_id)
            .set_start_record_name(name)
            .set_start_record_type(rtype)
            .set_start_record_identifier(identifier)
            .max_items(max_items)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e)
                if self.read_records == ReadRecords::Auto && e.code() == Some("AccessDenied") =>
            {
                if !self.read_denied.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        "route53:ListResourceRecordSets is not allowed for this identity; \
                         reading the zone through DNS instead (`brokercert iam-policy \
                         --with-read` adds it; `route53.read_records = \"dns\"` skips trying)"
                    );
                }
                Ok(None)
            }
            Err(e) => Err(self.error("ListResourceRecordSets", e)),
        }
    }

    fn error<E>(&self, operation: &'static str, err: SdkError<E, HttpResponse>) -> DnsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        sdk_error(operation, self.max_attempts, err)
    }
}

/// Quotes a TXT value for Route 53: `"…"`, escaping `"` and `\`, split into
/// 255-byte character-strings.
pub fn quote_txt(value: &str) -> String {
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return "\"\"".into();
    }
    let mut parts = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let mut end = (start + 255).min(bytes.len());
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        parts.push(format!("\"{}\"", escape(&value[start..end])));
        start = end;
    }
    parts.join(" ")
}

/// The value of a TXT record as Route 53 stores it (`"abc" "def"`, with `\"` and `\\`
/// escapes): its character-strings joined. Inverse of [`quote_txt`].
pub fn unquote_txt(stored: &str) -> String {
    let mut out = String::new();
    let mut chars = stored.chars();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '\\') => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            (_, '"') => quoted = !quoted,
            (true, c) => out.push(c),
            (false, c) if c.is_whitespace() => {}
            (false, c) => out.push(c),
        }
    }
    out
}

fn from_rr_type(t: &r53::RrType) -> Option<RecordType> {
    Some(match t {
        r53::RrType::Txt => RecordType::Txt,
        r53::RrType::Cname => RecordType::Cname,
        r53::RrType::A => RecordType::A,
        r53::RrType::Aaaa => RecordType::Aaaa,
        r53::RrType::Ns => RecordType::Ns,
        r53::RrType::Soa => RecordType::Soa,
        _ => return None,
    })
}

/// The innermost error of a chain (e.g. `Connection reset by peer (os error 104)` under
/// three layers of HTTP client wrapping).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

fn sdk_error<E>(operation: &'static str, attempts: u32, err: SdkError<E, HttpResponse>) -> DnsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().map(str::to_string);
    let detail = err.message().map(str::to_string);
    let message = match (code.as_deref(), &err) {
        (Some("AccessDenied"), _) if operation == "ListResourceRecordSets" => format!(
            "AccessDenied: the AWS identity may not call route53:ListResourceRecordSets{}, \
             which `route53.read_records = \"api\"` needs. Add it with `brokercert iam-policy \
             --with-read`, or set `route53.read_records` to `\"auto\"` or `\"dns\"` to read \
             the zone through DNS",
            detail.map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        (Some("AccessDenied"), _) => format!(
            "AccessDenied: the AWS identity may not call route53:{operation}{} (IAM action \
             `route53:{operation}` is missing from its policy). Run `brokercert iam-policy` \
             (with your `--config`) to print the least-privilege policy (the guide's three \
             actions, scoped to your zone) and attach it to the identity brokercert runs as",
            detail.map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        (Some("Throttling" | "PriorRequestNotComplete"), _) => format!(
            "{} after {attempts} attempt(s) with backoff: Route 53 allows 10 requests per \
             second per account (bursts of 50) and limits record changes per second too, and \
             another tool may be using the budget. Try again in a minute, or raise \
             `route53.max_attempts`",
            code.unwrap_or_default()
        ),
        (code, SdkError::ServiceError(se)) if se.raw().status().is_server_error() => {
            format!(
                "{} (HTTP {}) after {attempts} attempt(s) with backoff: the Route 53 API is \
                 failing on its side. This is usually brief: run again in a few minutes, or \
                 check the AWS Health Dashboard",
                code.unwrap_or("a server error"),
                se.raw().status().as_u16()
            )
        }
        (Some("InvalidChangeBatch"), _) => format!(
            "InvalidChangeBatch: {}. Usually a record changed between reading and writing it; \
             run again",
            detail.unwrap_or_default()
        ),
        (Some("NoSuchHostedZone"), _) => format!(
            "NoSuchHostedZone: {}. Check `hosted_zone_id`",
            detail.unwrap_or_default()
        ),
        (Some(code), _) => format!("{code}: {}", detail.unwrap_or_default()),
        (None, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) => format!(
            "could not reach the Route 53 API after {attempts} attempt(s) (last: {}). Check \
             network access to route53.amazonaws.com or `route53.endpoint_url`, then run again",
            root_cause(&err)
        ),
        (None, SdkError::ResponseError(_)) => format!(
            "the Route 53 API's answer was cut off or unreadable after {attempts} attempt(s) \
             (last: {}). Check network access to route53.amazonaws.com or \
             `route53.endpoint_url`, then run again",
            root_cause(&err)
        ),
        (None, _)
            if err.to_string().contains("credentials")
                || format!("{err:?}").contains("Credentials") =>
        {
            format!(
                "no AWS credentials: {}. Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE \
             (or `route53.profile`), or run where an IAM role is available",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            )
        }
        (None, _) => aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
    };
    DnsError::Provider { operation, message }
}

/// Adds the record sets of a `ListResourceRecordSets` page at the names that are keys of
/// `found` (lower case, no trailing dot): TXT values unquoted, an alias shown as
/// `ALIAS target`, and the records of a routing policy (same name and type) as one set.
fn collect_sets(page: &[r53::ResourceRecordSet], found: &mut HashMap<String, Vec<RecordSet>>) {
    for rr in page {
        let name = rr.name().trim_end_matches('.').to_ascii_lowercase();
        let Some(sets) = found.get_mut(&name) else {
            continue;
        };
        let Some(rtype) = from_rr_type(rr.r#type()) else {
            continue;
        };
        let mut values: Vec<String> = rr
            .resource_records()
            .iter()
            .map(|r| match rtype {
                RecordType::Txt => unquote_txt(r.value()),
                _ => r.value().trim_end_matches('.').to_ascii_lowercase(),
            })
            .collect();
        // An alias record has no values of its own: show where it points, so a
        // conflict with it is visible.
        if let Some(alias) = rr.alias_target() {
            values.push(format!("ALIAS {}", alias.dns_name().trim_end_matches('.')));
        }
        let ttl = rr.ttl().and_then(|t| u32::try_from(t).ok()).unwrap_or(0);
        match sets.iter_mut().find(|s| s.rtype == rtype) {
            // Routing-policy records share a name and type: every value counts.
            Some(s) => s.values.extend(values),
            None => sets.push(RecordSet {
                name,
                rtype,
                ttl,
                values,
            }),
        }
    }
}

fn rr_type(t: RecordType) -> r53::RrType {
    match t {
        RecordType::Txt => r53::RrType::Txt,
        RecordType::Cname => r53::RrType::Cname,
        RecordType::A => r53::RrType::A,
        RecordType::Aaaa => r53::RrType::Aaaa,
        RecordType::Ns => r53::RrType::Ns,
        RecordType::Soa => r53::RrType::Soa,
    }
}

fn to_sdk_change(c: &RecordChange) -> Result<r53::Change, DnsError> {
    let build_err = |e: aws_sdk_route53::error::BuildError| DnsError::Provider {
        operation: "ChangeResourceRecordSets",
        message: format!("could not build the request: {e}"),
    };
    let mut set = r53::ResourceRecordSet::builder()
        .name(format!("{}.", c.set.name))
        .r#type(rr_type(c.set.rtype))
        .ttl(i64::from(c.set.ttl));
    for v in &c.set.values {
        let value = match c.set.rtype {
            RecordType::Txt => quote_txt(v),
            RecordType::Cname | RecordType::Ns => format!("{}.", v.trim_end_matches('.')),
            _ => v.clone(),
        };
        set = set.resource_records(
            r53::ResourceRecord::builder()
                .value(value)
                .build()
                .map_err(build_err)?,
        );
    }
    r53::Change::builder()
        .action(match c.action {
            ChangeAction::Create => r53::ChangeAction::Create,
            ChangeAction::Upsert => r53::ChangeAction::Upsert,
            ChangeAction::Delete => r53::ChangeAction::Delete,
        })
        .resource_record_set(set.build().map_err(build_err)?)
        .build()
        .map_err(build_err)
}

#[async_trait]
impl DnsProvider for Route53 {
    async fn hosted_zones(&self) -> Result<Vec<HostedZone>, DnsError> {
        let mut zones = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_hosted_zones()
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| self.error("ListHostedZones", e))?;
            for z in out.hosted_zones() {
                zones.push(HostedZone {
                    id: z.id().trim_start_matches("/hostedzone/").to_string(),
                    name: z.name().trim_end_matches('.').to_ascii_lowercase(),
                    private: z.config().is_some_and(|c| c.private_zone()),
                });
            }
            match (out.is_truncated(), out.next_marker()) {
                (true, Some(m)) => marker = Some(m.to_string()),
                _ => break,
            }
        }
        Ok(zones)
    }

    async fn change(
        &self,
        zone_id: &str,
        changes: &[RecordChange],
        comment: &str,
    ) -> Result<ChangeId, DnsError> {
        let sdk_changes = changes
            .iter()
            .map(to_sdk_change)
            .collect::<Result<Vec<_>, _>>()?;
        let batch = r53::ChangeBatch::builder()
            .set_changes(Some(sdk_changes))
            .comment(comment)
            .build()
            .map_err(|e| DnsError::Provider {
                operation: "ChangeResourceRecordSets",
                message: format!("could not build the request: {e}"),
            })?;
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| self.error("ChangeResourceRecordSets", e))?;
        let info = out.change_info().ok_or_else(|| DnsError::Provider {
            operation: "ChangeResourceRecordSets",
            message: "the answer carried no ChangeInfo".into(),
        })?;
        let id = info.id().trim_start_matches("/change/").to_string();
        if *info.status() == r53::ChangeStatus::Insync
            && let Ok(mut known) = self.insync_on_submit.lock()
        {
            known.insert(id.clone());
        }
        Ok(ChangeId(id))
    }

    async fn change_status(&self, change: &ChangeId) -> Result<ChangeStatus, DnsError> {
        if let Some(status) = self.known_status(change) {
            return Ok(status);
        }
        self.change_status_asked(change).await
    }

    async fn change_status_asked(&self, change: &ChangeId) -> Result<ChangeStatus, DnsError> {
        let out = self
            .client
            .get_change()
            .id(&change.0)
            .send()
            .await
            .map_err(|e| self.error("GetChange", e))?;
        Ok(match out.change_info().map(|i| i.status()) {
            Some(r53::ChangeStatus::Insync) => ChangeStatus::InSync,
            _ => ChangeStatus::Pending,
        })
    }

    async fn record_sets(
        &self,
        zone_id: &str,
        name: &str,
    ) -> Result<Option<Vec<RecordSet>>, DnsError> {
        let wanted = name.trim_end_matches('.').to_ascii_lowercase();
        let Some(out) = self.list_page(zone_id, Some(&wanted), 100).await? else {
            return Ok(None);
        };
        let mut found = HashMap::from([(wanted.clone(), Vec::new())]);
        collect_sets(out.resource_record_sets(), &mut found);
        Ok(Some(found.remove(&wanted).unwrap_or_default()))
    }

    /// One walk of the zone's pages from its start, picking out `names`: a fleet's
    /// challenge names cost one request per zone instead of one each. A zone too large to
    /// walk in fewer pages than names asked is read name by name instead, so this never
    /// costs more than `2 × names − 1` requests.
    async fn zone_record_sets(
        &self,
        zone_id: &str,
        names: &[String],
    ) -> Result<Option<HashMap<String, Vec<RecordSet>>>, DnsError> {
        let mut found: HashMap<String, Vec<RecordSet>> = names
            .iter()
            .map(|n| (n.trim_end_matches('.').to_ascii_lowercase(), Vec::new()))
            .collect();
        if found.len() <= 1 {
            return super::provider::read_each(self, zone_id, names).await;
        }
        let max_pages = found.len() - 1;
        let mut next: Option<(String, r53::RrType, Option<String>)> = None;
        for _ in 0..max_pages {
            let Some(out) = self
                .list_from(zone_id, next.take(), MAX_ITEMS_PER_PAGE)
                .await?
            else {
                return Ok(None);
            };
            collect_sets(out.resource_record_sets(), &mut found);
            match (
                out.is_truncated(),
                out.next_record_name(),
                out.next_record_type(),
            ) {
                (true, Some(n), Some(t)) => {
                    next = Some((
                        n.to_string(),
                        t.clone(),
                        out.next_record_identifier().map(str::to_string),
                    ));
                }
                _ => {
                    return Ok(Some(
                        names
                            .iter()
                            .map(|n| {
                                let key = n.trim_end_matches('.').to_ascii_lowercase();
                                (n.clone(), found.get(&key).cloned().unwrap_or_default())
                            })
                            .collect(),
                    ));
                }
            }
        }
        tracing::debug!(
            zone = zone_id,
            names = names.len(),
            "the zone has more than {max_pages} pages of records: reading each name instead"
        );
        super::provider::read_each(self, zone_id, names).await
    }

    fn known_status(&self, change: &ChangeId) -> Option<ChangeStatus> {
        self.insync_on_submit
            .lock()
            .is_ok_and(|known| known.contains(&change.0))
            .then_some(ChangeStatus::InSync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_unquoting_inverts_quoting() {
        for v in ["", "abc", "a\"b\\c", &"x".repeat(600)] {
            assert_eq!(unquote_txt(&quote_txt(v)), v);
        }
        assert_eq!(unquote_txt("\"ab\" \"cd\""), "abcd");
    }

    #[test]
    fn txt_quoting() {
        assert_eq!(quote_txt("abc"), "\"abc\"");
        assert_eq!(quote_txt("a\"b\\c"), "\"a\\\"b\\\\c\"");
        let long = "x".repeat(300);
        let q = quote_txt(&long);
        assert!(q.starts_with(&format!("\"{}\" \"", "x".repeat(255))), "{q}");
    }
}
