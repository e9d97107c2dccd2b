//! The environment of the commands brokercert runs for the user (a files target's `reload`,
//! `renew.notify_command`): a clean one, never the whole environment brokercert was given.
//!
//! brokercert's own environment can hold the ACME account key (`BROKERCERT_ACME_ACCOUNT`),
//! the EMQX Cloud API secret, the EAB HMAC, the AWS secret key and the MQTT password; a
//! child inherits none of them. It gets [`BASE`] (what a program needs to run and to speak
//! the user's language), the variables the caller sets (the `BROKERCERT_*` event
//! variables), and the names the user lists in the command's `*_pass_env` setting.
//!
//! Owns: building that environment. Does not own: running the command, its timeout or
//! reading its output (the callers do).

/// Variables every child gets when brokercert has them.
pub const BASE: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "USER",
    "LOGNAME",
];

/// A command for `program args` with a clean environment: [`BASE`], then each name of
/// `pass` that brokercert's environment has. Callers add their own `.env(…)` after.
pub fn command(program: &str, args: &[String], pass: &[String]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).env_clear();
    for name in BASE.iter().copied().chain(pass.iter().map(String::as_str)) {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_base_and_the_listed_variables_reach_the_child() {
        // The test process's own environment: PATH is always set; names made up here are not
        // touched by anything else (set_var is unsafe in edition 2024 only for concurrency
        // with other threads reading it, which this test binary's tests do not for these).
        unsafe {
            std::env::set_var("BROKERCERT_TEST_CHILD_SECRET", "s3cret-never-inherited");
            std::env::set_var("BROKERCERT_TEST_CHILD_PASSED", "passed-on-request");
        }
        let out = command("env", &[], &["BROKERCERT_TEST_CHILD_PASSED".into()])
            .output()
            .await
            .expect("run env");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("s3cret-never-inherited"), "{text}");
        assert!(
            text.contains("BROKERCERT_TEST_CHILD_PASSED=passed-on-request"),
            "{text}"
        );
        assert!(text.lines().any(|l| l.starts_with("PATH=")), "{text}");
        for line in text.lines() {
            let name = line.split('=').next().unwrap_or_default();
            assert!(
                BASE.contains(&name) || name == "BROKERCERT_TEST_CHILD_PASSED",
                "unexpected variable {name} reached the child"
            );
        }
    }
}
