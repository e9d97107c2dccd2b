//! Stage names and progress events, and the `Progress` sink the CLI renders.
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
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Receives progress lines (human text) tagged with their stage.
pub trait Progress: Send + Sync {
    /// A stage started or made progress.
    fn update(&self, stage: Stage, message: &str);
    /// A stage finished.
    fn done(&self, stage: Stage, message: &str, took: Duration);
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
