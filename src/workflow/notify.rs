//! Notifications after a renewal attempt that did something: a command and/or a webhook,
//! configured in `[renew]`. Failures are always sent; successes unless `notify_success =
//! false`. A notification that cannot be delivered is a warning, never the run's failure.
//!
//! The command gets a clean environment (`crate::child_env`: PATH, HOME, LANG and the like,
//! plus `renew.notify_pass_env`) with `BROKERCERT_EVENT` (`success` or `failure`),
//! `BROKERCERT_CERTIFICATE` and `BROKERCERT_MESSAGE` (no secret is ever passed); the webhook receives
//! the same as JSON `{"event", "certificate", "message"}` (Slack-compatible `text` too).
//!
//! Owns: when to notify and how to deliver. Does not own printing: a delivery problem goes to
//! the caller's `warn`.

use std::time::Duration;

use super::renew::Outcome;
use crate::config::RenewSettings;

/// Sends the notifications for `name`'s outcome; a delivery problem goes to `warn`.
pub async fn notify(
    settings: &RenewSettings,
    name: &str,
    outcome: &Outcome,
    warn: &(dyn Fn(&str) + Sync),
) {
    let event = match outcome {
        Outcome::Failed { .. } => "failure",
        Outcome::NotDue { .. } | Outcome::BackingOff { .. } | Outcome::Held { .. } => return,
        _ => {
            if !settings.notify_success {
                return;
            }
            "success"
        }
    };
    let message = outcome.line(name);
    if let Some((program, args)) = settings.notify_command.split_first() {
        let run = crate::child_env::command(program, args, &settings.notify_pass_env)
            .env("BROKERCERT_EVENT", event)
            .env("BROKERCERT_CERTIFICATE", name)
            .env("BROKERCERT_MESSAGE", &message)
            .stdin(std::process::Stdio::null())
            .status();
        match tokio::time::timeout(Duration::from_secs(60), run).await {
            Ok(Ok(s)) if s.success() => {}
            Ok(Ok(s)) => warn(&format!(
                "the notification command `{program}` (setting `renew.notify_command`) exited with {s}"
            )),
            Ok(Err(e)) => warn(&format!(
                "cannot run the notification command `{program}` (setting `renew.notify_command`): {e}"
            )),
            Err(_) => warn(&format!(
                "the notification command `{program}` (setting `renew.notify_command`) took over 60 s; left running"
            )),
        }
    }
    if let Some(source) = &settings.notify_webhook {
        let url = match source.url() {
            Ok(u) => u,
            Err(e) => {
                warn(&format!("no notification sent to the webhook: {e}"));
                return;
            }
        };
        let body = serde_json::json!({
            "event": event,
            "certificate": name,
            "message": message,
            "text": format!("brokercert: {message}"),
        });
        // No redirects: one could lead the token-carrying body to another host or to http.
        let sent = match reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!source.allow_http)
            .build()
        {
            Ok(c) => c.post(url.expose()).json(&body).send().await,
            Err(e) => {
                warn(&format!("cannot build the webhook client: {e}"));
                return;
            }
        };
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => warn(&format!(
                "the notification webhook (setting `renew.notify_webhook`) answered HTTP {}",
                r.status().as_u16()
            )),
            Err(e) => warn(&format!(
                "cannot reach the notification webhook (setting `renew.notify_webhook`): {}",
                e.without_url()
            )),
        }
    }
}
