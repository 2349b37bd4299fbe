//! `[[notify]]` (issue 19): webhooks told about backups, failures and `status` alerts,
//! retried within their bound, never changing the outcome they report, their URLs
//! (which hold tokens) never shown.
//!
//! The receiver is a small HTTP/1.1 server on 127.0.0.1 in the test itself (what a
//! webhook endpoint is: no database is faked); it answers the scripted statuses in turn
//! (then 200) and records every request.

mod ops_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

use ops_common::*;

const TOKEN: &str = "T0KEN-5ecret-77";

/// One request the receiver got: its path and JSON body.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    body: serde_json::Value,
}

struct Receiver {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    /// Starts the receiver; `statuses` are answered in turn, then 200.
    fn start(statuses: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(statuses.to_vec()));
        let h = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
                h.lock().unwrap().push(Hit {
                    path,
                    body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                });
                let status = {
                    let mut s = script.lock().unwrap();
                    if s.is_empty() {
                        200
                    } else {
                        s.remove(0)
                    }
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver { port, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}/{TOKEN}", self.port)
    }

    /// The requests so far whose path starts with `/prefix`.
    fn hits(&self, prefix: &str) -> Vec<Hit> {
        let p = format!("/{prefix}");
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path.starts_with(&p))
            .cloned()
            .collect()
    }
}

fn no_token(out: &std::process::Output) {
    for text in [stdout(out), stderr(out)] {
        assert!(!text.contains(TOKEN), "a webhook URL leaked: {text}");
    }
}

#[test]
fn webhooks_hear_of_backups_failures_and_alerts_and_never_change_the_outcome() {
    let w = Work::new();
    // The hook answers 503 to the first request: the success notification is retried.
    let rx = Receiver::start(&[503]);
    w.write(
        "dbseal.toml",
        &format!(
            "[store]\nurl = \"{}\"\n\n[[notify]]\nurl = \"${{HOOK_URL}}\"\non = [\"success\", \"failure\", \"alert\"]\n\n\
             [[notify]]\nslack_webhook = \"${{SLACK_URL}}\"\non = [\"failure\"]\ntimeout_seconds = 5\n",
            w.store().display()
        ),
    );
    let hook = rx.url("hook");
    let slack = rx.url("slack");
    let env = [("HOOK_URL", hook.as_str()), ("SLACK_URL", slack.as_str())];

    // A backup that succeeds: the hook hears it (after one retry), Slack does not.
    let mut c = w.cmd();
    for (k, v) in env {
        c.env(k, v);
    }
    let out = {
        use std::process::Stdio;
        let mut child = c
            .args(["--json", "backup", "stdin", "-d", "app", "-r", &w.recipient])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"some rows").unwrap();
        child.wait_with_output().unwrap()
    };
    ok(&out);
    no_token(&out);
    let id = json(&out)["backup_id"].as_str().unwrap().to_string();
    let hits = rx.hits("hook");
    assert_eq!(hits.len(), 2, "one 503, one retry: {hits:?}");
    let doc = &hits[1].body;
    assert_eq!(doc["source"], "dbseal");
    assert_eq!(doc["event"], "backup");
    assert_eq!(doc["result"], "success");
    assert_eq!(doc["datastore"], "app");
    assert_eq!(doc["backup_id"], id.as_str());
    assert!(
        doc["figures"]["stored_bytes"].as_u64().unwrap() > 0,
        "{doc}"
    );
    assert_eq!(doc["figures"]["plaintext_bytes"], 9);
    assert!(rx.hits("slack").is_empty());

    // A backup that fails: both hear it, Slack in its own format; the exit code is the
    // backup's.
    let out = w.run_env(
        &[
            "backup",
            "command",
            "-d",
            "app",
            "-r",
            &w.recipient,
            "--",
            "false",
        ],
        &env,
    );
    assert!(!out.status.success());
    no_token(&out);
    let hits = rx.hits("hook");
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert_eq!(hits[2].body["result"], "failure");
    assert!(
        hits[2].body["message"].as_str().unwrap().contains("false"),
        "{:?}",
        hits[2]
    );
    assert!(hits[2].body["backup_id"].is_null());
    let slack_hits = rx.hits("slack");
    assert_eq!(slack_hits.len(), 1, "{slack_hits:?}");
    let text = slack_hits[0].body["text"].as_str().unwrap();
    assert!(
        text.contains("dbseal backup of app") && text.contains("failure"),
        "{text}"
    );

    // A verification: its level and checks.
    let out = w.run_env(&["verify", "--latest", "-i", "identity.txt"], &env);
    ok(&out);
    let verified = rx.hits("hook").pop().unwrap();
    assert_eq!(
        (
            verified.body["event"].as_str(),
            verified.body["result"].as_str()
        ),
        (Some("verify"), Some("success"))
    );
    assert_eq!(verified.body["backup_id"], id.as_str());
    assert_eq!(verified.body["figures"]["level"], "content");

    // status: stale → exit 9 and an alert.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = w.run_env(&["status", "--max-age", "1s"], &env);
    fails_with(&out, 9);
    let alert = rx.hits("hook").pop().unwrap();
    assert_eq!(
        (alert.body["event"].as_str(), alert.body["result"].as_str()),
        (Some("status"), Some("alert"))
    );
    assert!(
        alert.body["message"].as_str().unwrap().contains("app"),
        "{alert:?}"
    );

    // config check shows the targets, not their URLs.
    let out = w.run_env(&["config", "check", "--json"], &env);
    let shown = ok(&out);
    assert!(shown.contains("\"notify\""), "{shown}");
    no_token(&out);
}

#[test]
fn an_unreachable_webhook_is_a_warning_within_its_bound() {
    let w = Work::new();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    w.write(
        "dbseal.toml",
        &format!(
            "[store]\nurl = \"{}\"\n\n[[notify]]\nurl = \"http://127.0.0.1:{port}/hook/{TOKEN}\"\non = [\"success\"]\ntimeout_seconds = 2\n",
            w.store().display()
        ),
    );
    let t = std::time::Instant::now();
    let out = w.run_stdin(
        &["backup", "stdin", "-d", "app", "-r", &w.recipient],
        b"rows",
    );
    let took = t.elapsed();
    ok(&out);
    no_token(&out);
    let err = stderr(&out);
    assert!(
        err.contains("notification of the backup success to http://127.0.0.1/… failed")
            && err.contains("the backup itself is unaffected"),
        "{err}"
    );
    // Retried until the bound, not beyond (2 s, plus the process's own time).
    assert!(took >= std::time::Duration::from_millis(500), "{took:?}");
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    // Counted: status's KPIs, table and metrics carry the failed notification.
    let metrics = w.path("status.prom");
    let out = w.run(&[
        "--json",
        "status",
        "--metrics-file",
        metrics.to_str().unwrap(),
    ]);
    let st = json(&out);
    assert_eq!(
        st["datastores"][0]["kpis"]["notifications_failed"], 1,
        "{st}"
    );
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains("dbseal_window_notifications_failed{datastore=\"app\""),
        "{prom}"
    );
    assert!(
        prom.lines()
            .any(|l| l.starts_with("dbseal_window_notifications_failed{") && l.ends_with(" 1")),
        "{prom}"
    );
    let text = stdout(&w.run(&["status"]));
    assert!(
        text.contains("1 notification(s) could not be delivered"),
        "{text}"
    );
    assert!(!text.contains(TOKEN) && !prom.contains(TOKEN));

    // A bad entry is refused when the file is read.
    w.write("dbseal.toml", "[[notify]]\nurl = \"ftp://x/y\"\n");
    let err = fails_with(&w.run(&["config", "check"]), 2);
    assert!(
        err.contains("[[notify]] #1") && err.contains("not an http(s) URL"),
        "{err}"
    );
    w.write("dbseal.toml", "[[notify]]\non = [\"failure\"]\n");
    let err = fails_with(&w.run(&["config", "check"]), 2);
    assert!(
        err.contains("set exactly one of url and slack_webhook"),
        "{err}"
    );
}

/// `on = ["drill"]` hears every drill (a failed one here: a backup of standard input
/// cannot be restored into a database) and nothing else; a `success` target does not
/// hear a failed drill.
#[test]
fn a_drill_target_hears_drills_only() {
    let w = Work::new();
    let rx = Receiver::start(&[]);
    w.write(
        "dbseal.toml",
        &format!(
            "[store]\nurl = \"{}\"\n\n[[notify]]\nurl = \"${{DRILL_URL}}\"\non = [\"drill\"]\n\n\
             [[notify]]\nurl = \"${{OK_URL}}\"\non = [\"success\"]\n",
            w.store().display()
        ),
    );
    let (drill, success) = (rx.url("drill"), rx.url("ok"));
    let env = [("DRILL_URL", drill.as_str()), ("OK_URL", success.as_str())];
    let backup = w.run_env(
        &[
            "backup",
            "command",
            "-d",
            "app",
            "-r",
            &w.recipient,
            "--",
            "echo",
            "rows",
        ],
        &env,
    );
    ok(&backup);
    assert!(rx.hits("drill").is_empty(), "a backup is not a drill");
    assert_eq!(rx.hits("ok").len(), 1);
    let out = w.run_env(
        &[
            "drill",
            "-d",
            "app",
            "-i",
            "identity.txt",
            "--restore-to",
            "postgres://127.0.0.1:1/x",
        ],
        &env,
    );
    let err = fails_with(&out, 2);
    assert!(
        err.contains("drill of `app` failed") && err.contains("database kind"),
        "{err}"
    );
    no_token(&out);
    let hits = rx.hits("drill");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(
        (
            hits[0].body["event"].as_str(),
            hits[0].body["result"].as_str()
        ),
        (Some("drill"), Some("failure"))
    );
    assert_eq!(
        rx.hits("ok").len(),
        1,
        "the success target heard no failed drill"
    );
}

/// A drill that restores and verifies but misses its RTO objective is announced as a
/// failure naming the objective, with the drill's figures (Redis, the real server).
#[test]
fn a_missed_drill_objective_is_announced_as_a_failure_with_its_figures() {
    let url = url::Url::parse(&need("DBSEAL_TEST_REDIS_URL")).unwrap();
    let (host, port) = (
        url.host_str().unwrap().to_string(),
        url.port().unwrap_or(6379),
    );
    let redis = |db: u32, args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-h", &host, "-p", &port.to_string(), "-n", &db.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(out.status.success());
    };
    redis(10, &["FLUSHDB"]);
    redis(10, &["SET", "notify:k", "v"]);
    let w = Work::new();
    let rx = Receiver::start(&[]);
    w.write(
        "dbseal.toml",
        &format!(
            "[store]\nurl = \"{store}\"\n[encryption]\nrecipients = [\"{r}\"]\nidentity = \"identity.txt\"\n\
             [datastores.cache]\nkind = \"redis\"\nurl = \"redis://{host}:{port}/10\"\n\
             scratch_url = \"redis://{host}:{port}/0\"\nrto = \"0s\"\n\n\
             [[notify]]\nurl = \"${{HOOK_URL}}\"\non = [\"failure\"]\n",
            store = w.store().display(),
            r = w.recipient,
        ),
    );
    let hook = rx.url("hook");
    let env = [("HOOK_URL", hook.as_str())];
    ok(&w.run_env(&["backup", "--datastore", "cache"], &env));
    assert!(rx.hits("hook").is_empty(), "a success is not a failure");
    let out = w.run_env(&["drill"], &env);
    let err = fails_with(&out, 9);
    assert!(err.contains("over its objective 0s"), "{err}");
    no_token(&out);
    let hits = rx.hits("hook");
    assert_eq!(hits.len(), 1, "{hits:?}");
    let body = &hits[0].body;
    assert_eq!(
        (body["event"].as_str(), body["result"].as_str()),
        (Some("drill"), Some("failure")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("`cache`: RTO") && message.contains("over its objective 0s"),
        "{message}"
    );
    let d = &body["figures"][0];
    assert_eq!(
        (
            d["datastore"].as_str(),
            d["verified"].as_bool(),
            d["passed"].as_bool()
        ),
        (Some("cache"), Some(true), Some(false)),
        "{body}"
    );
    assert_eq!(d["rto_objective_seconds"], 0.0, "{body}");
    assert!(d["rto_seconds"].as_f64().unwrap() > 0.0, "{body}");
    redis(10, &["FLUSHDB"]);
}
