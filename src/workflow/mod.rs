//! The workflow: named stages run in order, each a call through a seam (DNS provider,
//! lookups, CA, store, clock), with progress reported as it goes.
//!
//! Owns: sequencing, the clean-up guarantee and the outcome summary. Does not own any
//! protocol or decision logic (those live in `dns`, `acme`, `pki`).

pub mod blocking;
pub mod challenge_records;
pub mod client_ca;
pub mod cname;
pub mod deploy;
pub mod doctor;
pub mod doctor_report;
pub mod doctor_state;
pub mod issue;
pub mod issue_all;
pub mod keep;
pub mod keys_ahead;
pub mod lease_turn;
pub mod notify;
pub mod plan;
pub mod preflight;
pub mod renew;
pub mod services;
pub mod stall;
pub mod status;
#[cfg(test)]
pub(crate) mod test_fakes;
pub mod verify;

pub use issue::{IssueFailure, IssueServices, Issued, issue};
pub use services::Services;
