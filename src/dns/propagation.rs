//! Waiting until a TXT record is served by every authoritative nameserver of its zone.
//!
//! Owns: the polling loop (all nameservers in parallel, short backoff, no fixed sleeps) and
//! the evidence in its timeout error (what each nameserver answered last, which lag).
//! Does not own: finding the nameservers (`lookup`).

use std::time::Duration;

use futures::future::join_all;

use super::lookup::{DnsLookup, Nameserver};
use super::{DnsError, RecordType};

/// Progress report: how many nameservers serve the values, and who is still missing.
#[derive(Debug, Clone)]
pub struct PropagationStatus {
    /// Nameservers that already serve every expected value.
    pub ready: usize,
    /// All nameservers asked.
    pub total: usize,
    /// Names of the ones still lagging.
    pub waiting_for: Vec<String>,
    /// Time since the first query.
    pub elapsed: Duration,
    /// Time until the next round of queries (when not all are ready).
    pub next_check: Duration,
}

/// Polls every nameserver until each serves all `expected` TXT values at `name`.
/// Returns how long it took.
pub async fn await_txt(
    lookup: &dyn DnsLookup,
    nameservers: &[Nameserver],
    name: &str,
    expected: &[String],
    timeout: Duration,
    mut progress: impl FnMut(&PropagationStatus) + Send,
) -> Result<Duration, DnsError> {
    let start = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    let mut done = vec![false; nameservers.len()];
    let mut last: Vec<String> = vec!["not asked yet".into(); nameservers.len()];
    loop {
        let pending: Vec<usize> = (0..nameservers.len()).filter(|&i| !done[i]).collect();
        let answers = join_all(
            pending
                .iter()
                .map(|&i| lookup.query(&nameservers[i], name, RecordType::Txt)),
        )
        .await;
        for (&i, answer) in pending.iter().zip(answers) {
            match answer {
                Ok(a) => {
                    let seen = a.values_at(name, RecordType::Txt);
                    let missing: Vec<&String> =
                        expected.iter().filter(|v| !seen.contains(v)).collect();
                    if missing.is_empty() {
                        done[i] = true;
                    } else {
                        last[i] = format!(
                            "answered {}; missing {}",
                            a.describe(),
                            missing
                                .iter()
                                .map(|v| format!("\"{v}\""))
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                    }
                }
                Err(e) => last[i] = format!("no usable answer: {e}"),
            }
        }
        let status = PropagationStatus {
            ready: done.iter().filter(|d| **d).count(),
            total: nameservers.len(),
            waiting_for: (0..nameservers.len())
                .filter(|&i| !done[i])
                .map(|i| nameservers[i].to_string())
                .collect(),
            elapsed: start.elapsed(),
            next_check: delay,
        };
        progress(&status);
        if status.ready == status.total {
            return Ok(start.elapsed());
        }
        if start.elapsed() + delay > timeout {
            let evidence = (0..nameservers.len())
                .map(|i| {
                    if done[i] {
                        format!("{}: OK", nameservers[i])
                    } else {
                        format!("{}: {}", nameservers[i], last[i])
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            return Err(DnsError::PropagationTimeout {
                name: name.to_string(),
                waited_secs: start.elapsed().as_secs(),
                evidence,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
