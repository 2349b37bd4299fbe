//! dbseal.toml: discovery, precedence (flags over file over defaults), `${VAR}` and
//! `password_file` secrets, redaction, and errors that name the bad key.

mod ops_common;

use ops_common::*;

fn manifest_zstd_level(m: &serde_json::Value) -> i64 {
    m["transforms"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|t| t["level"].as_i64())
        .expect("zstd transform")
}

#[test]
fn config_check_prints_resolved_config_without_secrets() {
    let w = Work::new();
    w.write("pg-password", "file-secret-123\n");
    let cfg = format!(
        r#"
zstd_level = 7
[store]
url = "{store}"
options = {{ aws_secret_access_key = "${{S3_SECRET}}" }}
[encryption]
recipients = ["{r}"]
identity = "identity.txt"
[retention]
keep_daily = 7
[datastores.app]
kind = "postgres"
host = "db.internal"
user = "app"
dbname = "app"
password_file = "pg-password"
environment = "production"
[datastores.cache]
kind = "redis"
url = "redis://:${{REDIS_PASSWORD}}@cache.internal:6379/0"
[datastores.cache.retention]
keep_last = 2
"#,
        store = w.store().display(),
        r = w.recipient
    );
    w.write("dbseal.toml", &cfg);
    let env = [
        ("S3_SECRET", "s3-secret-456"),
        ("REDIS_PASSWORD", "redis-secret-789"),
    ];
    let out = w.run_env(&["config", "check", "--json"], &env);
    let text = ok(&out);
    for secret in ["file-secret-123", "s3-secret-456", "redis-secret-789"] {
        assert!(
            !text.contains(secret) && !stderr(&out).contains(secret),
            "{secret} leaked:\n{text}"
        );
    }
    let v = json(&out);
    assert_eq!(v["zstd_level"], 7);
    assert_eq!(
        v["store"]["options"]["aws_secret_access_key"],
        "**REDACTED**"
    );
    assert_eq!(
        v["datastores"]["cache"]["url"],
        "redis://:**REDACTED**@cache.internal:6379/0"
    );
    assert_eq!(v["datastores"]["app"]["host"], "db.internal");
    assert_eq!(v["datastores"]["app"]["environment"], "production");
    // Per-datastore retention overrides the defaults field by field.
    assert_eq!(v["datastores"]["cache"]["retention"]["keep_last"], 2);
    assert_eq!(v["datastores"]["cache"]["retention"]["keep_daily"], 7);
    // Human output too.
    let human = ok(&w.run_env(&["config", "check"], &env));
    assert!(
        human.contains("dbseal.toml: ok") && human.contains("**REDACTED**"),
        "{human}"
    );
    assert!(!human.contains("redis-secret-789"));

    // A missing password file is reported by the check, naming the datastore.
    std::fs::remove_file(w.path("pg-password")).unwrap();
    let err = fails_with(&w.run_env(&["config", "check"], &env), 2);
    assert!(
        err.contains("datastore `app`") && err.contains("password_file"),
        "{err}"
    );
}

#[test]
fn unknown_keys_and_inline_secrets_are_errors_naming_the_key() {
    let w = Work::new();
    let cases = [
        (
            "[datastores.app]\nkind = \"redis\"\nurl = \"redis://h\"\nenviroment = \"production\"\n",
            &["unknown key `enviroment` in [datastores.app]", "line 4"][..],
        ),
        ("[store]\nurl = \"x\"\nbucket = \"b\"\n", &["unknown key `bucket` in [store]"][..]),
        ("[retention]\nkeep_dialy = 1\n", &["unknown key `keep_dialy` in [retention]"][..]),
        ("zstd = 3\n", &["unknown key `zstd` at the top level"][..]),
        (
            "[datastores.app]\nkind = \"redis\"\nurl = \"redis://u:hunter2@h\"\n",
            &["datastores.app.url", "password written inline"][..],
        ),
        (
            "[datastores.app]\nkind = \"mongodb\"\nurl = \"x://h\"\n",
            &["mongodb", "postgres"][..],
        ),
        ("[retention]\nkeep_within = \"2 days\"\n", &["2 days", "duration"][..]),
    ];
    for (text, wanted) in cases {
        w.write("bad.toml", text);
        let err = fails_with(&w.run(&["--config", "bad.toml", "config", "check"]), 2);
        for want in wanted {
            assert!(err.contains(want), "`{want}` missing from: {err}");
        }
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("bad.toml"), "the file is named: {err}");
    }
    // Without any config file, `config check` says how to give one.
    let err = fails_with(&w.run(&["config", "check"]), 2);
    assert!(
        err.contains("--config") && err.contains("DBSEAL_CONFIG"),
        "{err}"
    );
}

#[test]
fn config_is_found_and_flags_override_it() {
    let w = Work::new();
    let file_store = w.path("file-store");
    let env_store = w.path("env-store");
    let flag_store = w.path("flag-store");
    w.write(
        "dbseal.toml",
        &format!(
            "zstd_level = 9\n[store]\nurl = \"{}\"\n[encryption]\nrecipients = [\"{}\"]\n",
            file_store.display(),
            w.recipient
        ),
    );
    w.write(
        "other.toml",
        &format!(
            "zstd_level = 4\n[store]\nurl = \"{}\"\n[encryption]\nrecipients = [\"{}\"]\n",
            env_store.display(),
            w.recipient
        ),
    );

    // ./dbseal.toml: its store, its recipients, its zstd level.
    let m = json(&w.run_stdin(&["--json", "backup", "stdin", "-d", "a"], b"one"));
    assert_eq!(manifest_zstd_level(&m), 9);
    // Artifact, manifest and its signature (and the backup's outcome record, signed).
    assert_eq!(files(&file_store).len(), 5, "{:?}", files(&file_store));
    // A flag overrides the file.
    let m = json(&w.run_stdin(
        &["--json", "backup", "stdin", "-d", "a", "--zstd-level", "2"],
        b"two",
    ));
    assert_eq!(manifest_zstd_level(&m), 2);
    let out = w.run_stdin(
        &[
            "backup",
            "stdin",
            "-d",
            "a",
            "--store",
            flag_store.to_str().unwrap(),
        ],
        b"three",
    );
    ok(&out);
    assert_eq!(files(&flag_store).len(), 5, "{:?}", files(&flag_store));
    // DBSEAL_CONFIG picks another file; --config wins over it.
    let mut c = w.cmd();
    c.env("DBSEAL_CONFIG", "other.toml");
    let out = c.args(["--json", "list"]).output().unwrap();
    assert_eq!(
        json(&out).as_array().unwrap().len(),
        0,
        "env-store is empty"
    );
    let mut c = w.cmd();
    c.env("DBSEAL_CONFIG", "other.toml");
    let out = c
        .args(["--config", "dbseal.toml", "--json", "list"])
        .output()
        .unwrap();
    assert_eq!(
        json(&out).as_array().unwrap().len(),
        2,
        "file-store has two backups"
    );
    // An explicit config that does not exist is an error, not a silent default.
    let err = fails_with(&w.run(&["--config", "nope.toml", "list"]), 2);
    assert!(err.contains("nope.toml"), "{err}");
}

#[test]
fn configured_datastores_resolve_and_errors_hide_secrets() {
    let w = Work::new();
    w.write("redis-pw", "pw-in-a-file-0001\n");
    w.write(
        "dbseal.toml",
        &format!(
            "[store]\nurl = \"{}\"\n[encryption]\nrecipients = [\"{}\"]\n[datastores.cache]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:1\"\npassword_file = \"redis-pw\"\n[datastores.typo]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:1\"\n[datastores.typo.options]\nno-such-flag = true\n",
            w.store().display(),
            w.recipient
        ),
    );
    // Nothing listens on port 1: the backup fails, and the password never shows.
    let out = w.run(&["backup", "--datastore", "cache"]);
    assert!(!out.status.success());
    let all = stdout(&out) + &stderr(&out);
    assert!(!all.contains("pw-in-a-file-0001"), "{all}");
    assert!(
        all.contains("127.0.0.1"),
        "the error names the target: {all}"
    );
    assert!(
        files(&w.store())
            .iter()
            .all(|f| !f.ends_with("manifest.json")),
        "no manifest from a failed backup"
    );
    // A per-kind option the kind does not have is named, by `config check` already.
    let err = fails_with(&w.run(&["backup", "--datastore", "typo"]), 2);
    assert!(
        err.contains("[datastores.typo]") && err.contains("no-such-flag"),
        "{err}"
    );
    let err = fails_with(&w.run(&["config", "check"]), 2);
    assert!(
        err.contains("[datastores.typo]") && err.contains("no-such-flag"),
        "{err}"
    );
    // An unknown datastore lists the configured ones.
    let err = fails_with(&w.run(&["backup", "--datastore", "nope"]), 2);
    assert!(
        err.contains("`nope`") && err.contains("cache, typo"),
        "{err}"
    );
    // --datastore without a config file says how to give one.
    let w2 = Work::new();
    let err = fails_with(&w2.run(&["backup", "--datastore", "x"]), 2);
    assert!(err.contains("config file"), "{err}");
}
