//! Notifications: `[[notify]]` entries of dbseal.toml, told about backups, verifications,
//! prunes and `status` alerts.
//!
//! ```toml
//! [[notify]]
//! url = "${BACKUP_WEBHOOK}"              # a JSON document (below) is POSTed here
//! on = ["failure", "alert"]              # default: failure and alert
//!
//! [[notify]]
//! slack_webhook = "${SLACK_WEBHOOK}"     # Slack's incoming-webhook JSON (`text`)
//! on = ["failure", "success", "alert"]
//! timeout_seconds = 10                   # retries included (default 10)
//! ```
//!
//! The document: `{"source": "dbseal", "event": "backup" | "verify" | "prune" |
//! "status", "result": "success" | "failure" | "alert", "datastore", "backup_id",
//! "message", "host", "time", "figures": {…}}`.
//!
//! A notification never changes the outcome of the operation it reports: it is sent
//! after the operation ended, to every target at once, retried with backoff (0.5 s,
//! 1 s, 2 s…) on a connection error, a 5xx or a 429 until `timeout_seconds` has passed,
//! and a failure is only a warning. Webhook URLs are secrets (Slack's holds its token
//! in the path): they are scrubbed from every output with the configuration's other
//! secrets, and a warning names only the URL's scheme and host. An interrupted
//! operation (Ctrl-C, SIGTERM) sends nothing: its undoing has a deadline of its own.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::OpContext;
use crate::error::{Error, Result};

/// When a target is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum On {
    /// A backup, verification or prune failed.
    Failure,
    /// A backup, verification or prune succeeded.
    Success,
    /// `status` found a datastore unhealthy (stale, failed verification).
    Alert,
    /// In `on` only: every drill, passed or failed (a failed one also matches
    /// `failure`).
    Drill,
}

impl On {
    fn as_str(self) -> &'static str {
        match self {
            On::Failure => "failure",
            On::Success => "success",
            On::Alert => "alert",
            On::Drill => "drill",
        }
    }
}

fn default_on() -> Vec<On> {
    vec![On::Failure, On::Alert]
}

/// One `[[notify]]` entry.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// A webhook receiving dbseal's JSON document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A Slack incoming webhook (receives `{"text": …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_webhook: Option<String>,
    /// What it is told about (default: failures and alerts).
    #[serde(default = "default_on")]
    pub on: Vec<On>,
    /// How long one notification may take, retries included (default 10 s, at most 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

impl std::fmt::Debug for NotifyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyTarget")
            .field("url", &self.url.as_deref().map(shown))
            .field("slack_webhook", &self.slack_webhook.as_deref().map(shown))
            .field("on", &self.on)
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

impl NotifyTarget {
    /// Checks one entry (`origin`: the file, for the message).
    pub(crate) fn validate(&self, origin: &str, index: usize) -> Result<()> {
        let bad =
            |what: String| Error::Config(format!("{origin}: [[notify]] #{}: {what}", index + 1));
        let urls: Vec<&String> = self.url.iter().chain(&self.slack_webhook).collect();
        if urls.len() != 1 {
            return Err(bad("set exactly one of url and slack_webhook".into()));
        }
        for u in urls {
            let parsed =
                url::Url::parse(u).map_err(|e| bad(format!("{} is not a URL: {e}", shown(u))))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(bad(format!("{} is not an http(s) URL", shown(u))));
            }
        }
        if self.on.is_empty() {
            return Err(bad(
                "`on` is empty: list failure, success, alert and/or drill".into(),
            ));
        }
        if self
            .timeout_seconds
            .is_some_and(|t| !(1..=300).contains(&t))
        {
            return Err(bad("timeout_seconds must be 1 to 300".into()));
        }
        Ok(())
    }

    /// The secret URLs of this entry (for scrubbing).
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &String> {
        self.url.iter().chain(&self.slack_webhook)
    }
}

/// A URL as a message may show it: scheme and host only (the path and query of a
/// webhook often hold its token).
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("?")),
        Err(_) => "(a webhook URL)".into(),
    }
}

/// What happened, as the targets are told.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Always `dbseal`.
    pub source: &'static str,
    /// `backup`, `verify`, `prune`, `status` or `drill`.
    pub event: &'static str,
    /// `success`, `failure` or `alert`.
    pub result: On,
    /// The datastore, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datastore: Option<String>,
    /// The backup, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// One line for a human.
    pub message: String,
    /// This host's name.
    pub host: String,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// Figures of the operation (bytes, seconds, counts…).
    pub figures: serde_json::Value,
}

impl Event {
    /// An event of `event` (`backup`…) with result `on`.
    pub fn new(event: &'static str, on: On, message: impl Into<String>) -> Event {
        Event {
            source: "dbseal",
            event,
            result: on,
            datastore: None,
            backup_id: None,
            message: message.into(),
            host: hostname(),
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            figures: serde_json::Value::Object(Default::default()),
        }
    }

    /// With the datastore and backup id.
    pub fn of(mut self, datastore: Option<&str>, backup_id: Option<&str>) -> Event {
        self.datastore = datastore.map(str::to_string);
        self.backup_id = backup_id.map(str::to_string);
        self
    }

    /// With figures.
    pub fn with_figures(mut self, figures: serde_json::Value) -> Event {
        self.figures = figures;
        self
    }

    /// The event of an operation's `result`: success with `ok`'s message and figures,
    /// or failure with the error's message.
    pub fn of_result<T>(
        event: &'static str,
        result: &Result<T>,
        ok: impl FnOnce(&T) -> (String, serde_json::Value),
    ) -> Event {
        match result {
            Ok(v) => {
                let (message, figures) = ok(v);
                Event::new(event, On::Success, message).with_figures(figures)
            }
            Err(e) => Event::new(event, On::Failure, e.to_string()),
        }
    }

    fn slack_text(&self) -> String {
        let what = match (&self.datastore, &self.backup_id) {
            (Some(d), Some(id)) => format!(" of {d} ({id})"),
            (Some(d), None) => format!(" of {d}"),
            _ => String::new(),
        };
        let mark = match self.result {
            On::Success => ":white_check_mark:",
            On::Alert => ":warning:",
            On::Failure | On::Drill => ":x:",
        };
        format!(
            "{mark} dbseal {}{what} on {}: {} — {}",
            self.event,
            self.host,
            self.result.as_str(),
            self.message
        )
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Tells every configured target that wants it about the event `make` builds; waits
/// for them (each bounded by its timeout), never fails. Without a configured target,
/// or when the operation was interrupted, does nothing (and builds no event).
pub async fn send(ctx: &OpContext, make: impl FnOnce() -> Event) {
    let Some(config) = ctx.config.as_deref() else {
        return;
    };
    if config.notify.is_empty() || ctx.cancel.is_cancelled() {
        return;
    }
    let mut event = make();
    event.message = ctx.scrub(&event.message);
    let sends = config
        .notify
        .iter()
        .filter(|t| {
            t.on.contains(&event.result) || (event.event == "drill" && t.on.contains(&On::Drill))
        })
        .map(|t| send_one(ctx, t, &event));
    futures::future::join_all(sends).await;
}

async fn send_one(ctx: &OpContext, target: &NotifyTarget, event: &Event) {
    let (url, body) = match (&target.url, &target.slack_webhook) {
        (Some(u), _) => (u, serde_json::to_vec(event)),
        (None, Some(u)) => (
            u,
            serde_json::to_vec(&serde_json::json!({ "text": event.slack_text() })),
        ),
        (None, None) => return,
    };
    let Ok(body) = body else {
        return;
    };
    let bound = Duration::from_secs(target.timeout_seconds.unwrap_or(10));
    let deadline = tokio::time::Instant::now() + bound;
    let client = match http_client() {
        Ok(c) => c,
        Err(e) => {
            ctx.warn(format!("notification to {} not sent: {e}", shown(url)));
            return;
        }
    };
    let mut backoff = Duration::from_millis(500);
    let mut attempts = 0u32;
    let failure = loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let sent = client
            .post(url.as_str())
            .header("content-type", "application/json")
            .timeout(left.max(Duration::from_millis(100)))
            .body(body.clone())
            .send()
            .await;
        let (retry, why) = match sent {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                let s = r.status();
                (
                    s.is_server_error() || s.as_u16() == 429,
                    format!("HTTP {}", s.as_u16()),
                )
            }
            // reqwest's error text holds the URL: describe it without.
            Err(e) if e.is_timeout() => (true, "timed out".to_string()),
            Err(e) if e.is_connect() => (true, "cannot connect".to_string()),
            Err(_) => (true, "request failed".to_string()),
        };
        let now = tokio::time::Instant::now();
        if !retry || now + backoff >= deadline {
            break why;
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2);
    };
    let message = format!(
        "notification of the {} {} to {} failed after {attempts} attempt(s) within {}s: {failure}",
        event.event,
        event.result.as_str(),
        shown(url),
        bound.as_secs(),
    );
    ctx.warn(format!(
        "{message} (the {} itself is unaffected)",
        event.event
    ));
    // Counted: status's KPIs and metrics carry the failures of the window.
    if let Some(ds) = &event.datastore {
        let outcome = super::history::Outcome::new(
            ds,
            super::history::Event::Notification,
            false,
            None,
            message,
        );
        super::history::record(ctx, outcome).await;
    }
}

fn http_client() -> Result<reqwest::Client> {
    crate::store::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Config(format!("cannot build an HTTP client: {e}")))
}
