//! Notifications after a renewal attempt that did something: a command and/or a webhook,
//! configured in `[renew]`. Failures are always sent; successes unless `notify_success =
//! false`. A notification that cannot be delivered is a warning, never the run's failure.
//!
//! The command gets `BROKERCERT_EVENT` (`success` or `failure`), `BROKERCERT_CERTIFICATE` and
//! `BROKERCERT_MESSAGE` in its environment (no secret is ever passed); the webhook receives
//! the same as JSON `{"event", "certificate", "message"}` (Slack-compatible `text` too).

use std::time::Duration;

use super::output;
use super::renew::Outcome;
use crate::config::RenewSettings;

/// Sends the notifications for `name`'s outcome.
pub async fn notify(settings: &RenewSettings, name: &str, outcome: &Outcome) {
    let event = match outcome {
        Outcome::Failed { .. } => "failure",
        Outcome::NotDue { .. } | Outcome::BackingOff { .. } => return,
        _ => {
            if !settings.notify_success {
                return;
            }
            "success"
        }
    };
    let message = outcome.line(name);
    if let Some((program, args)) = settings.notify_command.split_first() {
        let run = tokio::process::Command::new(program)
            .args(args)
            .env("BROKERCERT_EVENT", event)
            .env("BROKERCERT_CERTIFICATE", name)
            .env("BROKERCERT_MESSAGE", &message)
            .stdin(std::process::Stdio::null())
            .status();
        match tokio::time::timeout(Duration::from_secs(60), run).await {
            Ok(Ok(s)) if s.success() => {}
            Ok(Ok(s)) => output::warning(&format!(
                "the notification command `{program}` (setting `renew.notify_command`) exited with {s}"
            )),
            Ok(Err(e)) => output::warning(&format!(
                "cannot run the notification command `{program}` (setting `renew.notify_command`): {e}"
            )),
            Err(_) => output::warning(&format!(
                "the notification command `{program}` (setting `renew.notify_command`) took over 60 s; left running"
            )),
        }
    }
    if let Some(url) = &settings.notify_webhook {
        let body = serde_json::json!({
            "event": event,
            "certificate": name,
            "message": message,
            "text": format!("brokercert: {message}"),
        });
        let sent = match reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
        {
            Ok(c) => c.post(url).json(&body).send().await,
            Err(e) => {
                output::warning(&format!("cannot build the webhook client: {e}"));
                return;
            }
        };
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => output::warning(&format!(
                "the notification webhook (setting `renew.notify_webhook`) answered HTTP {}",
                r.status().as_u16()
            )),
            Err(e) => output::warning(&format!(
                "cannot reach the notification webhook (setting `renew.notify_webhook`): {}",
                e.without_url()
            )),
        }
    }
}
