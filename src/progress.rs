//! Stage names and progress events, and the `Progress` sink the CLI renders (ground floor:
//! `deploy`, `dns` and `workflow` all report through it, none of them owns it).
//!
//! Owns: the vocabulary of what the workflow is doing. Does not own rendering.

use std::fmt;
use std::time::Duration;

/// The workflow's named stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Point the custom domain at the deployment.
    Cname,
    /// Find the hosted zone (and delegation) of every name.
    Zones,
    /// Place the ACME order.
    Order,
    /// Write the DNS-01 TXT values.
    PublishTxt,
    /// Wait for INSYNC and every nameserver.
    AwaitPropagation,
    /// Let the CA validate.
    Validate,
    /// Send the CSR, download the chain.
    Finalize,
    /// Split and verify the chain.
    SplitAndCheck,
    /// Write the files.
    Store,
    /// Remove the TXT values.
    Cleanup,
    /// Install the certificate on its deployment targets.
    Deploy,
    /// Prove the broker serves it (MQTT over TLS).
    Verify,
}

impl Stage {
    /// Stable machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Cname => "cname",
            Stage::Zones => "zones",
            Stage::Order => "order",
            Stage::PublishTxt => "publish-txt",
            Stage::AwaitPropagation => "await-propagation",
            Stage::Validate => "validate",
            Stage::Finalize => "finalize",
            Stage::SplitAndCheck => "split-and-check",
            Stage::Store => "store",
            Stage::Cleanup => "cleanup",
            Stage::Deploy => "deploy",
            Stage::Verify => "verify",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A wait in progress: what is awaited, how long it has been waited for, and when the
/// next check is. Renderers show it in place on a terminal (one line, rewritten).
#[derive(Debug, Clone, Copy)]
pub struct Waiting<'a> {
    /// What is awaited, e.g. `_acme-challenge.example.com TXT seen by 3/4 nameservers`.
    pub what: &'a str,
    /// Who or what is still missing, e.g. `ns-12.awsdns-01.org`.
    pub waiting_for: Option<&'a str>,
    /// Time waited so far.
    pub elapsed: Duration,
    /// Time until the next check, when the poller knows it.
    pub next_check: Option<Duration>,
}

impl Waiting<'_> {
    /// The human line: `WHAT — waiting for X (4.2 s; next check in 2 s)`.
    pub fn text(&self) -> String {
        let mut s = self.what.to_string();
        if let Some(w) = self.waiting_for {
            s.push_str(" — waiting for ");
            s.push_str(w);
        }
        s.push_str(" (");
        s.push_str(&human_duration(self.elapsed));
        if let Some(n) = self.next_check {
            s.push_str("; next check in ");
            s.push_str(&human_duration(n));
        }
        s.push(')');
        s
    }
}

/// Receives progress lines (human text) tagged with their stage.
pub trait Progress: Send + Sync {
    /// A stage started or made progress.
    fn update(&self, stage: Stage, message: &str);
    /// A stage finished.
    fn done(&self, stage: Stage, message: &str, took: Duration);
    /// A wait is in progress (called on every poll). By default rendered as an update.
    fn waiting(&self, stage: Stage, wait: &Waiting<'_>) {
        self.update(stage, &wait.text());
    }
    /// Other output follows: a renderer rewriting a line in place should end it now.
    fn pause(&self) {}
}

/// Discards progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn update(&self, _: Stage, _: &str) {}
    fn done(&self, _: Stage, _: &str, _: Duration) {}
}

/// Formats a duration for people: `420 ms`, `4.2 s`, `1 min 10 s`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "<1 ms".to_string()
    } else if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}
