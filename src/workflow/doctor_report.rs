//! `doctor`'s report: one [`Check`] per line, with its [`Status`], evidence and fix, and the
//! checks of one certificate ([`Report`]).
//!
//! Owns: those types, shared by the checks (`workflow::doctor`, `workflow::doctor_state`).
//! Does not own any check nor their rendering (`cli::doctor`).

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Passed.
    Pass,
    /// Works, but worth knowing (e.g. `auto` falls back to INSYNC here).
    Warn,
    /// Needed and failing: `issue` would fail.
    Fail,
    /// Not checked, because something it needs failed first.
    Skip,
}

impl Status {
    /// `ok`, `warn`, `fail` or `skip` (JSON and text).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One check: a line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `aws`, `dns`, `state`, `acme`, `deploy` or `mqtt`.
    pub section: &'static str,
    /// What was checked, e.g. `credentials`, `ChangeResourceRecordSets`.
    pub name: String,
    /// The outcome.
    pub status: Status,
    /// What was seen.
    pub evidence: String,
    /// What to do (failures and warnings; absent where the evidence already says it).
    pub fix: Option<String>,
}

/// Every check of one certificate.
#[derive(Debug, Clone)]
pub struct Report {
    /// Certificate name.
    pub name: String,
    /// Its names.
    pub domains: Vec<String>,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// The needed checks that fail.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .collect()
    }
}
