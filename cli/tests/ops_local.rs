//! verify --latest and its records, status (exit 9, Prometheus metrics) and prune
//! (retention, dry run, never-delete rules, debris) on a local store. These need no
//! database: the backups are of standard input.

mod ops_common;

use std::path::Path;

use ops_common::*;

fn s<'a>(w: &'a Work, args: &[&'a str]) -> Vec<String> {
    let mut v = vec![
        "--store".to_string(),
        w.store().to_str().unwrap().to_string(),
    ];
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

fn run(w: &Work, args: &[&str]) -> std::process::Output {
    let args = s(w, args);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    w.run(&refs)
}

fn record(w: &Work, ds: &str, id: &str) -> Option<serde_json::Value> {
    let p = w.store().join(ds).join(id).join("verified.json");
    std::fs::read(&p)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap())
}

#[test]
fn verify_latest_records_verdicts_and_status_reports_them() {
    let w = Work::new();
    let _old = stdin_backup(&w, "app", "old");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let newest = stdin_backup(&w, "app", "new");
    let other = stdin_backup(&w, "other", "x");

    // Before any verification: healthy (recent), verification "never".
    let st = json(&run(&w, &["--json", "status"]));
    assert_eq!(st["datastores"].as_array().unwrap().len(), 2);
    assert!(st["datastores"][0]["last_verification"].is_null());
    assert_eq!(st["datastores"][0]["healthy"], true);

    // verify --latest: content level with the identity; one record per newest backup.
    let out = run(&w, &["--json", "verify", "--latest", "-i", "identity.txt"]);
    let results = json(&out);
    assert_eq!(results.as_array().unwrap().len(), 2, "{results}");
    assert!(results
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["ok"] == true && r["level"] == "content"));
    let rec = record(&w, "app", &newest).expect("verified.json next to the manifest");
    assert_eq!(
        (rec["ok"].clone(), rec["level"].clone()),
        (true.into(), "content".into())
    );
    assert_eq!(rec["tool"]["name"], "dbseal");
    assert!(rec["verified_at"].as_str().is_some());
    assert!(
        record(&w, "app", &_old).is_none(),
        "only the newest is verified"
    );
    assert!(record(&w, "other", &other).is_some());
    // The record does not disturb listing (the folder stays one complete backup).
    assert_eq!(
        json(&run(&w, &["--json", "list"]))
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // --datastore narrows; --no-record leaves no trace; stored level without a key.
    let before = std::fs::read(w.store().join("other").join(&other).join("verified.json")).unwrap();
    ok(&run(
        &w,
        &["verify", "--latest", "-d", "other", "--no-record"],
    ));
    assert_eq!(
        before,
        std::fs::read(w.store().join("other").join(&other).join("verified.json")).unwrap()
    );
    ok(&run(&w, &["verify", "--latest", "-d", "other"]));
    assert_eq!(record(&w, "other", &other).unwrap()["level"], "stored");
    let err = fails_with(&run(&w, &["verify", "--latest", "-d", "nope"]), 3);
    assert!(err.contains("nope"), "{err}");

    // status: newest, size, last verification, and a Prometheus textfile.
    let metrics = w.path("metrics/dbseal.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let out = run(
        &w,
        &[
            "--json",
            "status",
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    );
    let st = json(&out);
    let app = &st["datastores"][0];
    assert_eq!(app["datastore"], "app");
    assert_eq!(app["backups"], 2);
    assert_eq!(app["newest"]["backup_id"], newest.as_str());
    assert!(app["newest"]["stored_bytes"].as_u64().unwrap() > 0);
    assert_eq!(app["last_verification"]["ok"], true);
    let prom = std::fs::read_to_string(&metrics).unwrap();
    for line in [
        "# TYPE dbseal_last_success_timestamp_seconds gauge",
        "dbseal_datastore_healthy{datastore=\"app\",kind=\"stdin\"} 1",
        "dbseal_backups{datastore=\"app\",kind=\"stdin\"} 2",
        "dbseal_last_verification_success{datastore=\"app\",kind=\"stdin\"} 1",
        "dbseal_last_verification_level{datastore=\"app\",kind=\"stdin\"} 2",
        "dbseal_max_age_seconds{datastore=\"app\",kind=\"stdin\"} 90000",
    ] {
        assert!(prom.contains(line), "`{line}` missing:\n{prom}");
    }
    assert!(prom
        .lines()
        .any(|l| l.starts_with("dbseal_last_backup_stored_bytes{datastore=\"app\"")));
    assert!(prom
        .lines()
        .any(|l| l.starts_with("dbseal_last_backup_duration_seconds{datastore=\"app\"")));
    // Written by rename: no temporary file left behind.
    assert_eq!(
        std::fs::read_dir(metrics.parent().unwrap())
            .unwrap()
            .count(),
        1
    );
    // Text output has the columns.
    let text = ok(&run(&w, &["status"]));
    assert!(
        text.contains("NEWEST BACKUP") && text.contains(&newest) && text.contains("ok content"),
        "{text}"
    );
}

#[test]
fn status_exits_9_when_stale_or_when_the_last_verification_failed() {
    let w = Work::new();
    let id = stdin_backup(&w, "app", "data");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // Stale.
    let out = run(&w, &["status", "--max-age", "1s"]);
    let err = fails_with(&out, 9);
    assert!(err.contains("app"), "{err}");
    assert!(
        stdout(&out).contains("UNHEALTHY") && stdout(&out).contains("max 1s"),
        "{}",
        stdout(&out)
    );
    ok(&run(&w, &["status", "--max-age", "1h"]));

    // Tamper with the artifact: verification fails, is recorded, and status alerts.
    let artifact = w.store().join("app").join(&id).join("data.raw.zst.age");
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&artifact, bytes).unwrap();
    let err = fails_with(&run(&w, &["verify", "--latest", "-i", "identity.txt"]), 4);
    assert!(err.contains(&id), "{err}");
    let rec = record(&w, "app", &id).unwrap();
    assert_eq!(rec["ok"], false);
    assert!(
        rec["message"].as_str().unwrap().contains("SHA-256"),
        "{rec}"
    );
    let metrics = w.path("dbseal.prom");
    let out = run(
        &w,
        &[
            "status",
            "--max-age",
            "1h",
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    );
    fails_with(&out, 9);
    assert!(
        stdout(&out).contains("last verification of") && stdout(&out).contains("failed"),
        "{}",
        stdout(&out)
    );
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains("dbseal_last_verification_success{datastore=\"app\",kind=\"stdin\"} 0"),
        "{prom}"
    );
    assert!(
        prom.contains("dbseal_datastore_healthy{datastore=\"app\",kind=\"stdin\"} 0"),
        "{prom}"
    );

    // A configured datastore without any backup is unhealthy too.
    w.write(
        "dbseal.toml",
        "[datastores.fresh]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:1\"\nmax_age = \"8d\"\n",
    );
    let out = run(&w, &["--json", "status", "-d", "fresh"]);
    fails_with(&out, 9);
    let st = json(&out);
    assert_eq!(st["datastores"][0]["problems"][0], "no complete backup");
    assert_eq!(st["datastores"][0]["max_age"], "8d");
}

#[test]
fn prune_dry_run_lists_exactly_what_it_would_delete_then_prunes_it() {
    let w = Work::new();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(stdin_backup(&w, "app", &format!("v{i}")));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    ok(&run(&w, &["verify", "--latest", "-i", "identity.txt"]));
    let before = files(&w.store());

    let out = run(&w, &["prune", "--keep-last", "2", "--dry-run"]);
    let text = ok(&out);
    assert_eq!(files(&w.store()), before, "a dry run deletes nothing");
    assert!(
        text.contains(&format!("keep    {}  last (1/2)", ids[3])),
        "{text}"
    );
    assert!(
        text.contains(&format!("keep    {}  last (2/2)", ids[2])),
        "{text}"
    );
    for gone in &ids[..2] {
        assert!(text.contains(&format!("would delete {gone}")), "{text}");
        assert!(
            text.contains(&format!("app/{gone}/manifest.json")),
            "{text}"
        );
        assert!(
            text.contains(&format!("app/{gone}/data.raw.zst.age")),
            "{text}"
        );
    }
    let plan = json(&run(
        &w,
        &["--json", "prune", "--keep-last", "2", "--dry-run"],
    ));
    let p = &plan["datastores"][0];
    assert_eq!(p["executed"], false);
    let listed: Vec<&str> = p["deleted_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let expected: Vec<String> = before
        .iter()
        .filter(|f| f.contains(&ids[0]) || f.contains(&ids[1]))
        .cloned()
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        sorted, expected,
        "the dry run lists exactly the objects of the deleted backups"
    );

    // For real: exactly those objects go.
    ok(&run(&w, &["prune", "--keep-last", "2"]));
    let after = files(&w.store());
    let remaining: Vec<String> = before
        .into_iter()
        .filter(|f| !expected.contains(f))
        .collect();
    assert_eq!(after, remaining);
    assert_eq!(
        json(&run(&w, &["--json", "list"]))
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn prune_deletes_nothing_while_the_newest_backup_is_unverified() {
    let w = Work::new();
    for i in 0..3 {
        stdin_backup(&w, "app", &format!("v{i}"));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    ok(&run(&w, &["verify", "--latest", "-i", "identity.txt"]));
    let newest = stdin_backup(&w, "app", "unverified");
    let before = files(&w.store());
    let out = run(&w, &["prune", "--keep-last", "1"]);
    let text = ok(&out);
    assert_eq!(files(&w.store()), before);
    assert!(
        text.contains("BLOCKED") && text.contains(&newest) && text.contains("not verified"),
        "{text}"
    );
    assert!(stderr(&out).contains("nothing deleted"), "{}", stderr(&out));
    assert!(
        text.contains("newest verified backup (never deleted)"),
        "{text}"
    );
    // Once verified, the policy applies (three of four: more than half, so forced).
    ok(&run(&w, &["verify", "--latest", "-i", "identity.txt"]));
    ok(&run(&w, &["prune", "--keep-last", "1", "--force"]));
    assert_eq!(
        json(&run(&w, &["--json", "list"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn prune_removes_debris_only_after_the_grace_period_and_uses_config_policies() {
    let w = Work::new();
    let a1 = stdin_backup(&w, "app", "1");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let a2 = stdin_backup(&w, "app", "2");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let a3 = stdin_backup(&w, "app", "3");
    let c1 = stdin_backup(&w, "cache", "1");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let c2 = stdin_backup(&w, "cache", "2");
    ok(&run(&w, &["verify", "--latest", "-i", "identity.txt"]));
    // Debris of a failed backup, older than the newest complete one (an id from 2020).
    let debris = "20200101T000000Z-deadbeef";
    let part = w.store().join("app").join(debris).join("data.raw.zst.age");
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, b"partial upload").unwrap();
    assert_eq!(
        json(&run(&w, &["--json", "list"]))
            .as_array()
            .unwrap()
            .len(),
        5,
        "debris is not a backup"
    );

    // Config: keep 1 by default, 2 for app.
    w.write(
        "dbseal.toml",
        &format!(
            "[store]\nurl = \"{}\"\n[retention]\nkeep_last = 1\n[datastores.app]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:1\"\n[datastores.app.retention]\nkeep_last = 2\n",
            w.store().display()
        ),
    );
    // Young debris is kept (it may be a running backup).
    let text = ok(&w.run(&["prune", "--dry-run"]));
    assert!(
        text.contains(&format!("keep    debris {debris}")) && text.contains("still running"),
        "{text}"
    );
    assert!(
        text.contains("policy: last 2") && text.contains("policy: last 1"),
        "{text}"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let text = ok(&w.run(&["prune", "--debris-grace", "1s"]));
    assert!(text.contains(&format!("deleted debris {debris}")), "{text}");
    assert!(!Path::new(&part).exists());
    let left: Vec<String> = json(&w.run(&["--json", "list"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["backup_id"].as_str().unwrap().to_string())
        .collect();
    let mut expected = vec![a2.clone(), a3.clone(), c2.clone()];
    expected.sort();
    assert_eq!(left, expected);
    assert!(!left.contains(&a1) && !left.contains(&c1));
    // Flags override the config: keep 1 for app too.
    ok(&w.run(&["prune", "--keep-last", "1", "-d", "app"]));
    assert_eq!(
        json(&w.run(&["--json", "list", "-d", "app"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Backups started within one second share the id's time part: verify --latest,
/// status and prune must agree on which is the newest (latest start, then id).
#[test]
fn backups_within_one_second_agree_on_the_newest() {
    let w = Work::new();
    let ids: Vec<String> = (0..8)
        .map(|i| stdin_backup(&w, "app", &format!("v{i}")))
        .collect();
    let results = json(&run(&w, &["--json", "verify", "--latest"]));
    assert_eq!(
        results[0]["backup_id"],
        ids[7].as_str(),
        "the last one made is the newest"
    );
    let st = json(&run(&w, &["--json", "status"]));
    assert_eq!(st["datastores"][0]["newest"]["backup_id"], ids[7].as_str());
    // Seven of eight is more than half: refused, nothing deleted, unless --force.
    let err = fails_with(&run(&w, &["prune", "--keep-last", "1"]), 8);
    assert!(
        err.contains("more than half") && err.contains("`app`: 7 of 8"),
        "{err}"
    );
    assert_eq!(
        json(&run(&w, &["--json", "list"]))
            .as_array()
            .unwrap()
            .len(),
        8
    );
    let text = ok(&run(&w, &["prune", "--keep-last", "1", "--force"]));
    assert!(!text.contains("BLOCKED"), "{text}");
    let left = json(&run(&w, &["--json", "list"]));
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["backup_id"], ids[7].as_str());
}

/// Set manifests whose members were all pruned are pruned too; others stay.
#[test]
fn prune_removes_set_manifests_without_any_member_left() {
    let w = Work::new();
    let old = stdin_backup(&w, "app", "old");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let new = stdin_backup(&w, "app", "new");
    ok(&run(&w, &["verify", "--latest"]));
    let set = |set_id: &str, member: &str| {
        let doc = serde_json::json!({
            "format_version": "1.0", "set_id": set_id,
            "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z",
            "ok": true, "tool": {"name": "dbseal", "version": "0.1.0"},
            "members": [{"datastore": "app", "kind": "stdin", "ok": true, "backup_id": member}],
        });
        let p = w.store().join("_sets").join(set_id).join("set.json");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, doc.to_string()).unwrap();
        w.sign(&format!("_sets/{set_id}/set.json"));
        p
    };
    let gone = set("20260101T000000Z-0000000a", &old);
    let kept = set("20260101T000000Z-0000000b", &new);
    let text = ok(&run(&w, &["prune", "--keep-last", "1", "--dry-run"]));
    assert!(
        text.contains("would delete set manifest _sets/20260101T000000Z-0000000a/set.json"),
        "{text}"
    );
    assert!(gone.is_file(), "dry run");
    let out = json(&run(&w, &["--json", "prune", "--keep-last", "1"]));
    assert_eq!(
        out["set_manifests_deleted"],
        serde_json::json!(["_sets/20260101T000000Z-0000000a/set.json"])
    );
    assert!(!gone.exists() && kept.is_file());
}

#[test]
fn prune_debris_removes_failed_uploads_even_while_the_newest_backup_is_incomplete() {
    let w = Work::new();
    let a1 = stdin_backup(&w, "app", "1");
    // Debris newer than every complete backup: the newest backup "is incomplete", which
    // blocks deleting backups, but not deleting debris past the grace period.
    let debris = "29990101T000000Z-deadbeef";
    let part = w.store().join("app").join(debris).join("data.raw.zst.age");
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, vec![7u8; 5000]).unwrap();
    let text = ok(&run(&w, &["prune", "--debris", "--dry-run"]));
    assert!(
        text.contains(&format!("keep    debris {debris}")),
        "young debris is kept: {text}"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let report = json(&run(
        &w,
        &[
            "--json",
            "prune",
            "--debris",
            "--debris-grace",
            "1s",
            "--keep-last",
            "1",
        ],
    ));
    let ds = &report["datastores"][0];
    assert!(
        ds["blocked"]
            .as_str()
            .unwrap_or_default()
            .contains("incomplete"),
        "{ds}"
    );
    assert_eq!(ds["delete_debris"], serde_json::json!([debris]), "{ds}");
    assert_eq!(ds["debris_bytes"], 5000, "{ds}");
    assert!(!part.exists());
    let left: Vec<String> = json(&run(&w, &["--json", "list"]))
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["backup_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec![a1], "no backup is touched");
}

/// The store-wide alerts: a quota, the filesystem of a local store (compared with
/// `df`, an independent reader), and keys near or past their `key_expires` date.
#[test]
fn status_alerts_on_store_usage_and_expiring_keys() {
    let w = Work::new();
    stdin_backup(&w, "app", &"x".repeat(4000));
    let store = w.store().to_str().unwrap().to_string();
    let metrics = w.path("dbseal.prom");
    let status = |toml: &str| {
        w.write("dbseal.toml", toml);
        run(
            &w,
            &[
                "--json",
                "status",
                "--metrics-file",
                metrics.to_str().unwrap(),
            ],
        )
    };
    // No quota: the local store's filesystem, as df counts it.
    let out = status(&format!("[store]\nurl = \"{store}\"\n"));
    let st = json(&out);
    let storage = &st["store"]["storage"];
    assert_eq!(storage["measured_against"], "filesystem", "{st}");
    let df = std::process::Command::new("df")
        .args(["--output=pcent", &store])
        .output()
        .unwrap();
    let df: f64 = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    let ours = storage["used_percent"].as_f64().unwrap();
    // df rounds up to a whole percent; others may write to the disk in between.
    assert!((ours - df).abs() <= 2.0, "dbseal {ours} %, df {df} %");
    assert_eq!(
        st["store"]["problems"].as_array().unwrap().len(),
        usize::from(ours > 80.0)
    );

    // A quota the backup already fills past the threshold (two thirds of it, alert
    // above half): exit 9, the store named.
    let on_disk: u64 = walk(&w.store())
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    let quota = on_disk * 3 / 2;
    let out = status(&format!(
        "[store]\nurl = \"{store}\"\nstore_quota = \"{quota}\"\nstorage_alert_percent = 50\n"
    ));
    let err = fails_with(&out, 9);
    assert!(
        err.contains("66.7 % full") && err.contains("quota; alert above 50 %"),
        "{err}"
    );
    let st = json(&out);
    assert_eq!(st["store"]["storage"]["measured_against"], "quota");
    assert_eq!(st["store"]["storage"]["capacity_bytes"], quota);
    // Every object counts: the artifact, the manifest and its signature.
    assert_eq!(st["store"]["storage"]["used_bytes"], on_disk, "{st}");
    assert!(st["datastores"][0]["healthy"].as_bool().unwrap(), "{st}");
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains(&format!(
            "dbseal_store_used_bytes{{store=\"{store}\",measured_against=\"quota\"}} {on_disk}"
        )),
        "{prom}"
    );
    assert!(
        prom.contains(&format!("dbseal_store_alerts{{store=\"{store}\"}} 1")),
        "{prom}"
    );
    // The same quota for another store (`--store` names a different one) is not applied.
    let other = w.path("other-store");
    let out = w.run(&[
        "--json",
        "--store",
        other.to_str().unwrap(),
        "status",
        "-d",
        "app",
    ]);
    assert_eq!(
        json(&out)["store"]["storage"]["measured_against"],
        "filesystem"
    );

    // Keys: one within the warning window, one far off.
    let today = chrono::Utc::now().date_naive();
    let soon = today + chrono::Days::new(20);
    let later = today + chrono::Days::new(400);
    // This host's own public key (keygen's), as trusted_signers would name it.
    let signer = std::fs::read_to_string(w.path("identity.txt.minisign.pub")).unwrap();
    let signer = signer.lines().find(|l| l.starts_with("RW")).unwrap();
    let short: String = signer.chars().take(16).collect();
    let keys = format!(
        "[encryption]\nrecipients = [{{ recipient = \"age1soon\", key_expires = \"{soon}\" }}, {{ recipient = \"age1later\", key_expires = \"{later}\" }}]\n\
         [signing]\ntrusted_signers = [{{ signer = \"{signer}\", key_expires = \"{today}\" }}]\n"
    );
    let out = status(&format!(
        "[store]\nurl = \"{store}\"\nstore_quota = \"1GiB\"\n{keys}"
    ));
    let err = fails_with(&out, 9);
    assert!(
        err.contains(&format!("recipient age1soon expires on {soon} (in 20 days"))
            && err.contains(&format!("trusted signer {short}… expired on {today}"))
            && !err.contains("age1later"),
        "{err}"
    );
    let prom = std::fs::read_to_string(&metrics).unwrap();
    let at = later.and_time(chrono::NaiveTime::MIN).and_utc().timestamp();
    assert!(
        prom.contains(&format!(
            "dbseal_key_expiry_timestamp_seconds{{role=\"recipient\",key=\"age1later\"}} {at}"
        )),
        "{prom}"
    );
    // A shorter warning window lets the 20-day key pass; the expired one still alerts.
    let out = status(&format!(
        "[store]\nurl = \"{store}\"\nstore_quota = \"1GiB\"\n{}",
        keys.replace("[signing]", "key_expiry_warning = \"14d\"\n[signing]")
    ));
    let err = fails_with(&out, 9);
    assert!(
        !err.contains("age1soon") && err.contains(&format!("{short}… expired")),
        "{err}"
    );
    let text = String::from_utf8_lossy(&run(&w, &["status"]).stdout).to_string();
    assert!(
        text.contains("key recipient age1later: expires")
            && text.contains(&format!("ALERT: trusted signer {short}…")),
        "{text}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Every backup and recorded verification leaves a signed outcome record under
/// `_records/` (a failed backup too, outside any backup folder); `status --window`
/// turns them into success rates; prune drops records older than 13 months.
#[test]
fn outcome_records_give_success_rates_over_a_window() {
    let w = Work::new();
    stdin_backup(&w, "app", "one");
    stdin_backup(&w, "app", "two");
    let out = run(
        &w,
        &[
            "backup",
            "command",
            "-d",
            "app",
            "-r",
            &w.recipient.clone(),
            "--",
            "sh",
            "-c",
            "echo 'pg_dump: error: boom' >&2; exit 1",
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    ok(&run(&w, &["verify", "--latest", "-i", "identity.txt"]));
    // The failure is a record, not a backup folder: list and prune's debris sweep
    // never see it.
    let records = files(&w.store().join("_records/app/backups"));
    assert_eq!(
        records.iter().filter(|f| f.ends_with(".json")).count(),
        3,
        "{records:?}"
    );
    assert_eq!(
        records.iter().filter(|f| f.ends_with(".minisig")).count(),
        3,
        "{records:?}"
    );
    let failed: Vec<serde_json::Value> = records
        .iter()
        .filter(|f| f.ends_with(".json"))
        .map(|f| {
            serde_json::from_slice(
                &std::fs::read(w.store().join("_records/app/backups").join(f)).unwrap(),
            )
            .unwrap()
        })
        .filter(|r: &serde_json::Value| r["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .contains("exited with status 1"),
        "{failed:?}"
    );
    assert!(failed[0]["backup_id"].is_null());
    let listed = json(&run(&w, &["--json", "list"]));
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    let metrics = w.path("dbseal.prom");
    let st = json(&run(
        &w,
        &[
            "--json",
            "status",
            "--window",
            "7d",
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    ));
    let k = &st["datastores"][0]["kpis"];
    assert_eq!(k["window"], "7d");
    assert_eq!(
        (
            k["backups_succeeded"].as_u64(),
            k["backups_failed"].as_u64()
        ),
        (Some(2), Some(1)),
        "{k}"
    );
    assert!(
        (k["backup_success_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9,
        "{k}"
    );
    assert_eq!(
        (
            k["verifications_passed"].as_u64(),
            k["verifications_failed"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(k["verification_success_rate"], 1.0);
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains("dbseal_backup_success_ratio{datastore=\"app\",kind=\"stdin\"} 0.666667"),
        "{prom}"
    );
    let text = ok(&run(&w, &["status"]));
    assert!(
        text.contains(
            "last 30d: backups 2 ok / 1 failed (66.7 %), verifications 1 ok / 0 failed (100.0 %)"
        ),
        "{text}"
    );

    // A record copied under another name (as one older than 13 months) is not believed
    // — its signature names where it was written — and prune removes it.
    let dir = w.store().join("_records/app/backups");
    let first = records.iter().find(|f| f.ends_with(".json")).unwrap();
    let old = "20240101T000000.000Z-00000000.json";
    std::fs::copy(dir.join(first), dir.join(old)).unwrap();
    std::fs::copy(
        dir.join(format!("{first}.minisig")),
        dir.join(format!("{old}.minisig")),
    )
    .unwrap();
    let st = json(&run(&w, &["--json", "status", "--window", "100000d"]));
    assert_eq!(
        st["datastores"][0]["kpis"]["backups_succeeded"]
            .as_u64()
            .unwrap()
            + st["datastores"][0]["kpis"]["backups_failed"]
                .as_u64()
                .unwrap(),
        3,
        "{st}"
    );
    let dry = json(&run(
        &w,
        &["--json", "prune", "--keep-last", "5", "--dry-run"],
    ));
    assert_eq!(dry["records_deleted"], 1, "{dry}");
    assert!(dir.join(old).exists());
    let done = json(&run(&w, &["--json", "prune", "--keep-last", "5"]));
    assert_eq!(done["records_deleted"], 1, "{done}");
    assert!(!dir.join(old).exists() && !dir.join(format!("{old}.minisig")).exists());
    assert_eq!(files(&dir).len(), 6, "the recent records stay");
}
