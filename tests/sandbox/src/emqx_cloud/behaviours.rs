//! Every behaviour of the EMQX Cloud emulator, with where it comes from: **documented** (the
//! page that says so) or **assumed** (nothing public says; we picked one). Each assumption
//! that could plausibly go either way is a switch in [`Behaviours`], and brokercert's tests
//! run against each setting (tests/it/emqx_reality.rs).
//!
//! Owns: this list and the switches. The emulator (`super`) reads them; it does not own
//! which of its behaviours are facts.

use std::fmt;

/// The Platform API's TLS page (endpoints, body, statuses, limits, error codes).
pub const DOCS_TLS_API: &str = "https://docs.emqx.com/en/cloud/latest/api/tls_certificate.html";
/// The Platform API page (Basic auth with key and secret, key scopes).
pub const DOCS_PLATFORM_API: &str = "https://docs.emqx.com/en/cloud/latest/api/api_platform.html";
/// The guide to importing a certificate (key types, validity window, chain, names).
pub const DOCS_TLS_GUIDE: &str = "https://docs.emqx.com/en/cloud/latest/deployments/tls_ssl.html";
/// The official Terraform provider's TLS resource (statuses `failed`, `terminated`; polling).
pub const TERRAFORM_TLS: &str =
    "https://github.com/emqx/terraform-provider-emqxcloud (resource emqxcloud_deployment_tls)";

/// Where a behaviour comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Stated on this page.
    Documented(&'static str),
    /// Not documented: our choice (a switch when it could plausibly go either way).
    Assumed,
}

/// One behaviour and its source.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// What the emulator does.
    pub what: &'static str,
    /// Where that comes from.
    pub source: Source,
    /// The [`Behaviours`] field that switches it, when it is a switch.
    pub switch: Option<&'static str>,
}

const fn documented(what: &'static str, page: &'static str) -> Behaviour {
    Behaviour {
        what,
        source: Source::Documented(page),
        switch: None,
    }
}

const fn assumed(what: &'static str, switch: Option<&'static str>) -> Behaviour {
    Behaviour {
        what,
        source: Source::Assumed,
        switch,
    }
}

/// The list: every behaviour the emulator has, documented or assumed.
pub const BEHAVIOURS: &[Behaviour] = &[
    documented(
        "HTTP Basic auth with the API key and secret; 401 when wrong",
        DOCS_PLATFORM_API,
    ),
    documented(
        "key scopes: `/deployments/{id}/tls` needs \"TLS Certificate Management\", `GET /deployments/{id}` needs \"Deployment Management\"; 403 without",
        DOCS_PLATFORM_API,
    ),
    documented("404 for an unknown deployment", DOCS_TLS_API),
    documented(
        "GET/POST/PUT/DELETE `/deployments/{id}/tls`; body `tlsType`, `cert`, `key`, `cacert` (two-way only)",
        DOCS_TLS_API,
    ),
    documented(
        "GET answers `tlsType`, `status`, `expire` (`YYYY-MM-DD HH:MM:SS` in the example)",
        DOCS_TLS_API,
    ),
    documented(
        "after POST/PUT the status is `pending`, then `running`",
        DOCS_TLS_API,
    ),
    documented(
        "DELETE answers 204 and disconnects clients on 8883/8084",
        DOCS_TLS_API,
    ),
    documented(
        "60 reads and 6 writes per 60 minutes; 429 beyond",
        DOCS_TLS_API,
    ),
    documented(
        "422 \"Wrong Properties\" for a certificate the service refuses",
        DOCS_TLS_API,
    ),
    documented(
        "import rules: RSA 1024/2048 or ECDSA P-256/P-384 key, X.509 v3, PEM, unencrypted key, leaf + intermediates in `cert`, key algorithm matching the issuing CA's, names covering the connection address, 60-day validity window",
        DOCS_TLS_GUIDE,
    ),
    documented(
        "statuses `failed` and `terminated` exist besides `pending`/`running`",
        TERRAFORM_TLS,
    ),
    documented(
        "Serverless deployments support no custom certificates",
        DOCS_TLS_GUIDE,
    ),
    assumed("the time zone and form of `expire`", Some("expire_form")),
    assumed("whether GET carries `cn`, and what it holds", Some("cn")),
    assumed(
        "POST over an existing configuration: 409 or replace it",
        Some("post_over_existing"),
    ),
    assumed("no TLS configured: 404 or 200 `{}`", Some("no_tls")),
    assumed(
        "whether the rate limits count per deployment, per key or per account",
        Some("budget_scope"),
    ),
    assumed(
        "429's `Retry-After`: seconds or an HTTP date",
        Some("retry_after"),
    ),
    assumed(
        "error bodies: `{\"code\": \"TEXT\", \"message\"}` or `{\"code\": number, \"msg\"}`",
        Some("error_body"),
    ),
    assumed(
        "`/tls` of a Serverless deployment answers 400 `NOT_SUPPORTED`",
        None,
    ),
    assumed(
        "a refused write (4xx) still spends budget; a 429 does not",
        None,
    ),
    assumed(
        "GET keeps describing the latest upload, also when it `failed`; the previous certificate keeps serving",
        None,
    ),
    assumed("a deployment of another key answers 404, not 403", None),
    assumed(
        "the budget window rolls (each request ages out after an hour)",
        None,
    ),
];

/// `expire`'s form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpireForm {
    /// `2034-05-22 02:43:21`: UTC without a zone marker (the docs' example). Default.
    #[default]
    Utc,
    /// `2034-05-22 10:43:21+08:00`: local time with its offset (hours) marked.
    Offset(i8),
    /// `2034-05-22 10:43:21`: local time at this offset (hours), without any marker.
    LocalNoMarker(i8),
}

/// What GET says in `cn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CnForm {
    /// The leaf's subject CN, when it has one (absent otherwise). Default.
    #[default]
    Subject,
    /// No `cn` field.
    Absent,
    /// `"cn": ""`.
    Empty,
}

/// POST when a TLS configuration exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PostOverExisting {
    /// 409 `TLS_ALREADY_EXISTS`. Default.
    #[default]
    Conflict,
    /// Replaces it, as PUT would.
    Replace,
}

/// GET when no TLS is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoTls {
    /// 404 `TLS_NOT_FOUND`. Default.
    #[default]
    NotFound,
    /// 200 `{}`.
    EmptyObject,
}

/// What the rate limits count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BudgetScope {
    /// Each deployment has its own budget. Default.
    #[default]
    Deployment,
    /// Each API key has one budget for all its deployments.
    Key,
    /// One budget for the whole account (every key).
    Account,
}

/// 429's `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetryAfter {
    /// Seconds. Default.
    #[default]
    Seconds,
    /// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
    HttpDate,
}

/// Error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorBody {
    /// `{"code": "TEXT", "message": "..."}`. Default.
    #[default]
    CodeMessage,
    /// `{"code": 40300, "msg": "..."}`.
    NumericMsg,
}

/// The switches: one per assumption that could plausibly go either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Behaviours {
    /// The time zone and form of `expire`.
    pub expire_form: ExpireForm,
    /// What GET says in `cn`.
    pub cn: CnForm,
    /// POST over an existing configuration.
    pub post_over_existing: PostOverExisting,
    /// GET when none is configured.
    pub no_tls: NoTls,
    /// What the rate limits count.
    pub budget_scope: BudgetScope,
    /// 429's `Retry-After`.
    pub retry_after: RetryAfter,
    /// Error bodies.
    pub error_body: ErrorBody,
}

impl Behaviours {
    /// Every non-default setting of every switch, one at a time (for tests that must pass
    /// with each), after the defaults.
    pub fn each_alternative() -> Vec<(String, Behaviours)> {
        let d = Behaviours::default();
        vec![
            ("defaults".into(), d),
            (
                "expire UTC+8 marked".into(),
                Behaviours {
                    expire_form: ExpireForm::Offset(8),
                    ..d
                },
            ),
            (
                "expire UTC+8 unmarked".into(),
                Behaviours {
                    expire_form: ExpireForm::LocalNoMarker(8),
                    ..d
                },
            ),
            (
                "cn absent".into(),
                Behaviours {
                    cn: CnForm::Absent,
                    ..d
                },
            ),
            (
                "cn empty".into(),
                Behaviours {
                    cn: CnForm::Empty,
                    ..d
                },
            ),
            (
                "POST replaces".into(),
                Behaviours {
                    post_over_existing: PostOverExisting::Replace,
                    ..d
                },
            ),
            (
                "no TLS is {}".into(),
                Behaviours {
                    no_tls: NoTls::EmptyObject,
                    ..d
                },
            ),
            (
                "budget per key".into(),
                Behaviours {
                    budget_scope: BudgetScope::Key,
                    ..d
                },
            ),
            (
                "budget per account".into(),
                Behaviours {
                    budget_scope: BudgetScope::Account,
                    ..d
                },
            ),
            (
                "Retry-After as a date".into(),
                Behaviours {
                    retry_after: RetryAfter::HttpDate,
                    ..d
                },
            ),
            (
                "numeric error codes".into(),
                Behaviours {
                    error_body: ErrorBody::NumericMsg,
                    ..d
                },
            ),
        ]
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Source::Documented(page) => write!(f, "{} (documented: {page})", self.what),
            Source::Assumed => match self.switch {
                Some(s) => write!(f, "{} (assumed; switch `{s}`)", self.what),
                None => write!(f, "{} (assumed)", self.what),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_switch_is_listed_with_its_source_and_has_an_alternative() {
        let switches = [
            "expire_form",
            "cn",
            "post_over_existing",
            "no_tls",
            "budget_scope",
            "retry_after",
            "error_body",
        ];
        for s in switches {
            let b = BEHAVIOURS
                .iter()
                .find(|b| b.switch == Some(s))
                .unwrap_or_else(|| panic!("{s} is not in BEHAVIOURS"));
            assert_eq!(b.source, Source::Assumed);
            assert!(b.to_string().contains(s));
        }
        assert!(
            BEHAVIOURS
                .iter()
                .filter_map(|b| b.switch)
                .all(|s| switches.contains(&s))
        );
        for b in BEHAVIOURS {
            if let Source::Documented(page) = b.source {
                assert!(page.starts_with("https://"), "{b}");
            }
        }
        assert!(Behaviours::each_alternative().len() > switches.len());
    }
}
