//! The checks a command that orders (`issue`, `renew`) runs before its first side effect:
//! everything that needs no network. Secrets resolvable, files present and readable (the
//! client CA, the verification's CA file, client certificate and key, the trust roots, the
//! CA's HTTPS roots), deployment and verification settings valid. A run that would fail at
//! deployment for one of these reasons fails here instead, with nothing ordered, stored or
//! changed (exit code 2).
//!
//! Owns: printing every failure at once (`check_all`, for `issue`). The checks are
//! `workflow::preflight`'s. Does not own `plan`, which walks the same checks while listing
//! calls.

use crate::config::Settings;
use crate::error::Error;
use crate::workflow::preflight::{check, check_run};

/// Runs every check for every certificate of `settings`; prints each failure as one error
/// paragraph and returns the first failure's exit code.
pub fn check_all(settings: &Settings) -> Result<(), i32> {
    let mut first = None;
    let mut fail = |what: String, e: Error| {
        super::output::error(&format!(
            "{what}{e}. Nothing was ordered or changed: fix this first (the check needs no network)"
        ));
        first.get_or_insert(e.exit_code());
    };
    if let Err(e) = check_run(settings) {
        fail(String::new(), e);
    }
    for spec in &settings.certificates {
        if let Err(e) = check(settings, spec) {
            fail(format!("`{}`: ", spec.name), e);
        }
    }
    first.map_or(Ok(()), Err)
}
