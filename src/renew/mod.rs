//! Renewal: deciding when (`policy`) and whether `issue` may keep what is stored (`keep`), remembering between runs (`state`), surviving a kill
//! (`journal`), one run at a time (`lock`; across machines for remote state: `lease`), and the run itself (`run`).
//!
//! Owns everything `brokercert renew` and `brokercert schedule` add on top of the issue,
//! deploy and verify stages. Does not own those stages.

pub mod journal;
pub mod keep;
pub mod lease;
pub mod lock;
pub mod policy;
pub mod state;
