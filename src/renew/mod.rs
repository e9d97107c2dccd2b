//! Renewal's pure parts: deciding when (`policy`) and whether `issue` may keep what is stored
//! (`keep`), remembering between runs (`state`), surviving a kill (`journal`), one run at a
//! time (`lock`; across machines, for state in S3: `lease`).
//!
//! Owns the decisions and the memory `brokercert renew` and `brokercert schedule` add on top
//! of the issue, deploy and verify stages. Does not own those stages, nor the run itself:
//! the renewal use case, which sequences all of this, is `workflow::renew`.

pub mod journal;
pub mod keep;
pub mod lease;
pub mod lock;
pub mod policy;
pub mod state;
