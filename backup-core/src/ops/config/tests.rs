use super::*;
use crate::ops::test_driver::TestDriver;

fn registry() -> Registry {
    Registry::new()
        .with(TestDriver::new("postgres", &["postgres", "postgresql"]))
        .with(TestDriver::new("redis", &["redis", "rediss"]))
}

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn parse(text: &str, vars: &[(&str, &str)]) -> Result<Config> {
    Config::parse(text, Path::new("dbseal.toml"), &env(vars), &registry())
}

fn message(r: Result<Config>) -> String {
    let e = r.unwrap_err();
    assert_eq!(e.kind().exit_code(), 2, "{e}");
    e.to_string()
}

const GOOD: &str = r#"
zstd_level = 5
[store]
url = "s3://backups/prod"
options = { aws_endpoint = "http://127.0.0.1:8333", aws_secret_access_key = "${S3_SECRET}" }
[encryption]
recipients = ["age1xyz"]
[retention]
keep_daily = 7
keep_weekly = 4
[datastores.app]
kind = "postgres"
url = "postgres://app:${APP_DB_PASSWORD}@db.internal:5432/app"
environment = "production"
[datastores.app.retention]
keep_daily = 30
[datastores.app.options]
exclude_table = ["audit", "log"]
globals = true
[datastores.cache]
kind = "redis"
host = "127.0.0.1"
port = 6379
dbname = "2"
"#;

#[test]
fn parses_expands_and_redacts() {
    let c = parse(
        GOOD,
        &[
            ("S3_SECRET", "s3-very-secret"),
            ("APP_DB_PASSWORD", "pg-pa$$word"),
        ],
    )
    .unwrap();
    assert_eq!(c.zstd_level, Some(5));
    let app = c.datastore("app").unwrap();
    assert_eq!(app.kind, "postgres");
    assert_eq!(
        app.connection_url("app").unwrap().expose(),
        "postgres://app:pg-pa$$word@db.internal:5432/app"
    );
    assert_eq!(c.retention_for("app").keep_daily, Some(30));
    assert_eq!(c.retention_for("app").keep_weekly, Some(4));
    assert_eq!(c.retention_for("cache").keep_daily, Some(7));
    // Options are keyed by flag name (`_` read as `-`) and hold the URL for a backup.
    let options = app.backup_options("app").unwrap();
    assert_eq!(
        options.0.get("exclude-table"),
        Some(&serde_json::json!(["audit", "log"]))
    );
    assert_eq!(options.0.get("globals"), Some(&serde_json::json!(true)));
    assert_eq!(
        options.get_str("url"),
        Some("postgres://app:pg-pa$$word@db.internal:5432/app")
    );
    assert!(!format!("{options:?}").contains("pg-pa$$word"));
    check_datastore_options(&registry(), "app", app).unwrap();
    assert_eq!(
        c.datastore("cache")
            .unwrap()
            .connection_url("cache")
            .unwrap()
            .expose(),
        "redis://127.0.0.1:6379/2"
    );
    let shown = serde_json::to_string(&c.redacted()).unwrap();
    assert!(!shown.contains("s3-very-secret"), "{shown}");
    assert!(!shown.contains("pg-pa"), "{shown}");
    assert!(shown.contains(REDACTED), "{shown}");
    assert!(shown.contains("db.internal"), "{shown}");
    assert!(format!("{c:?}").contains("secrets: [**REDACTED**"));
    assert!(!format!("{c:?}").contains("s3-very-secret"));
    assert_eq!(c.scrub("x s3-very-secret y"), "x **REDACTED** y");
    let err = c.datastore("nope").unwrap_err().to_string();
    assert!(
        err.contains("`nope`") && err.contains("app, cache"),
        "{err}"
    );
}

#[test]
fn every_secret_store_option_is_redacted() {
    // The CLI's own list lacked `key`: `config check` printed this one.
    let c = parse(
        "[store]\nurl = \"az://c/p\"\noptions = { azure_storage_account_key = \"${AZ_THING}\", azure_storage_account_name = \"acct\" }\n",
        &[("AZ_THING", "az-key-value-1")],
    )
    .unwrap();
    let v = check(&c, &registry()).unwrap();
    assert_eq!(
        v["store"]["options"]["azure_storage_account_key"], REDACTED,
        "{v}"
    );
    assert_eq!(v["store"]["options"]["azure_storage_account_name"], "acct");
    assert!(!v.to_string().contains("az-key-value-1"), "{v}");
    assert!(!format!("{c:?}").contains("az-key-value-1"));
    // Written inline, it is refused like any secret.
    let e = message(parse(
        "[store]\nurl = \"az://c/p\"\noptions = { azure_storage_account_key = \"abc\" }\n",
        &[],
    ));
    assert!(e.contains("azure_storage_account_key"), "{e}");
    assert!(!e.contains("abc\""), "{e}");
}

#[test]
fn kinds_come_from_the_registry() {
    let e = message(parse(
        "[datastores.a]\nkind = \"mysql\"\nurl = \"x://h\"\n",
        &[],
    ));
    assert!(
        e.contains("[datastores.a]") && e.contains("`mysql`") && e.contains("postgres, redis"),
        "{e}"
    );
    assert!(e.contains("dbseal.toml"), "{e}");
    // The URL scheme of host/port settings is the driver's first.
    let c = parse(
        "[datastores.a]\nkind = \"redis\"\nhost = \"h\"\nport = 7\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        c.datastore("a").unwrap().connection_url_without_password(),
        "redis://h:7"
    );
}

#[test]
fn driver_options_are_checked_naming_the_datastore() {
    let c = parse(
        "[datastores.typo]\nkind = \"redis\"\nurl = \"redis://h\"\n[datastores.typo.options]\nno-such-flag = true\n",
        &[],
    )
    .unwrap();
    let e = check(&c, &registry()).unwrap_err().to_string();
    assert!(
        e.contains("[datastores.typo]") && e.contains("no-such-flag"),
        "{e}"
    );
    let e = message(parse(
        "[datastores.a]\nkind = \"redis\"\nurl = \"redis://h\"\n[datastores.a.options]\nzstd_level = 3\n",
        &[],
    ));
    assert!(e.contains("own keys"), "{e}");
    let e = message(parse(
        "[datastores.a]\nkind = \"redis\"\nurl = \"redis://h\"\n[datastores.a.options]\n\"--globals\" = true\n",
        &[],
    ));
    assert!(e.contains("without leading dashes"), "{e}");
}

#[test]
fn unknown_keys_name_the_key_and_table() {
    let e = message(parse(
        "[datastores.app]\nkind = \"postgres\"\nurl = \"postgres://h/db\"\npasword_file = \"x\"\n",
        &[],
    ));
    assert!(e.contains("`pasword_file`"), "{e}");
    assert!(e.contains("[datastores.app]"), "{e}");
    assert!(e.contains("line 4"), "{e}");
    let e = message(parse("[store]\nurl = \"/x\"\nregion = \"eu\"\n", &[]));
    assert!(e.contains("`region` in [store]"), "{e}");
    let e = message(parse("zstd = 3\n", &[]));
    assert!(e.contains("`zstd` at the top level"), "{e}");
    let e = message(parse("[retention]\nkeep_dayly = 3\n", &[]));
    assert!(e.contains("`keep_dayly` in [retention]"), "{e}");
    let e = message(parse(
        "[datastores.a]\nkind = \"postgres\"\nurl = \"postgres://h/db\"\n[datastores.a.retention]\nkeep_hourly = 1\nkeep_minutely = 3\n",
        &[],
    ));
    assert!(
        e.contains("`keep_minutely` in [datastores.a.retention]"),
        "{e}"
    );
    let e = message(parse("zstd_level = 40\n", &[]));
    assert!(e.contains("out of range"), "{e}");
}

#[test]
fn inline_secrets_and_missing_variables_are_refused() {
    let e = message(parse(
        "[datastores.a]\nkind = \"postgres\"\nurl = \"postgres://u:hunter2@h/db\"\n",
        &[],
    ));
    assert!(e.contains("datastores.a.url"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let e = message(parse(
        "[store]\nurl = \"s3://b\"\noptions = { aws_secret_access_key = \"abc123\" }\n",
        &[],
    ));
    assert!(e.contains("store.options.aws_secret_access_key"), "{e}");
    assert!(!e.contains("abc123"));
    let e = message(parse(
        "[datastores.a]\nkind = \"redis\"\nurl = \"redis://:${REDIS_PW}@h\"\n",
        &[],
    ));
    assert!(e.contains("`REDIS_PW` is not set"), "{e}");
    let e = message(parse("[datastores.a]\nkind = \"redis\"\n", &[]));
    assert!(e.contains("set url"), "{e}");
    let e = message(parse(
        "[datastores._x]\nkind = \"redis\"\nurl = \"redis://h\"\n",
        &[],
    ));
    assert!(e.contains("reserved"), "{e}");
    let e = message(parse(
        "[datastores.a]\nkind = \"redis\"\nurl = \"redis://h\"\nport = 1\n",
        &[],
    ));
    assert!(e.contains("not both"), "{e}");
}

#[test]
fn password_files_and_production_urls() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "p@ss:word\n").unwrap();
    let text = format!(
        "[datastores.app]\nkind = \"postgres\"\nhost = \"db.internal\"\nuser = \"app\"\ndbname = \"app\"\npassword_file = \"{}\"\nenvironment = \"production\"\n[datastores.cache]\nkind = \"redis\"\nurl = \"redis://cache:6379/0\"\n",
        pw.display()
    );
    let c = parse(&text, &[]).unwrap();
    let url = c.connection_url("app").unwrap();
    assert_eq!(url.expose(), "postgres://app:p%40ss%3Aword@db.internal/app");
    assert_eq!(
        expand::url_password(url.expose()).as_deref(),
        Some("p@ss:word")
    );
    // The password read from the file is scrubbed from output from now on.
    assert_eq!(c.scrub("pw p@ss:word"), "pw **REDACTED**");
    let production = |u: &str| {
        c.datastore_for_url(u)
            .filter(|(_, ds)| ds.is_production())
            .map(|(n, _)| n)
    };
    assert_eq!(
        production("postgresql://other@DB.internal:5432/app"),
        Some("app")
    );
    assert_eq!(production("postgres://db.internal/app2"), None);
    assert_eq!(production("redis://db.internal/app"), None);
    assert_eq!(
        c.datastore_for_url("rediss://cache").map(|(n, _)| n),
        Some("cache")
    );
    assert!(c.datastore_for_url("redis://cache:6380/0").is_none());
    // Missing or unreadable password files name the datastore.
    std::fs::remove_file(&pw).unwrap();
    let e = check(&c, &registry()).unwrap_err().to_string();
    assert!(
        e.contains("datastore `app`") && e.contains("password_file"),
        "{e}"
    );
}

#[test]
fn labels_and_missing_config() {
    let c = parse(
        "[datastores.a]\nkind = \"redis\"\nurl = \"redis://h\"\nenvironment = \"staging\"\nlabels = { team = \"x\" }\n",
        &[],
    )
    .unwrap();
    let labels = c.datastore("a").unwrap().manifest_labels();
    assert_eq!(labels["team"], "x");
    assert_eq!(labels["environment"], "staging");
    let m = missing_config_message("--all reads the config file");
    assert!(m.contains("--config") && m.contains(CONFIG_ENV), "{m}");
}

#[test]
fn keys_may_carry_expiry_dates_and_the_store_a_quota() {
    let c = parse(
        r#"
[store]
url = "s3://b/p"
store_quota = "2TiB"
storage_alert_percent = 75
[encryption]
recipients = ["age1plain", { recipient = "age1dated", key_expires = "2027-06-01" }]
key_expiry_warning = "30d"
[signing]
key_file = "/etc/dbseal/id.minisign.key"
key_expires = "2028-01-31"
trusted_signers = [{ signer = "RWQsigner", key_expires = "2027-12-31" }, "RWQplain"]
trusted_verifiers = [{ verifier = "RWQverifier", key_expires = "2029-02-28" }]
"#,
        &[],
    )
    .unwrap();
    // The keys themselves are plain lists, as every user of them expects.
    assert_eq!(c.encryption.recipients, ["age1plain", "age1dated"]);
    assert_eq!(c.signing.trusted_signers, ["RWQsigner", "RWQplain"]);
    assert_eq!(c.signing.trusted_verifiers, ["RWQverifier"]);
    assert_eq!(c.encryption.key_expiry_warning, Some(Span::days(30)));
    let dated: Vec<(&str, &str, String)> = c
        .key_expiries
        .iter()
        .map(|k| (k.role, k.key.as_str(), k.expires.to_string()))
        .collect();
    assert_eq!(
        dated,
        [
            ("recipient", "age1dated", "2027-06-01".to_string()),
            (
                "signing key",
                "/etc/dbseal/id.minisign.key",
                "2028-01-31".to_string()
            ),
            ("trusted signer", "RWQsigner", "2027-12-31".to_string()),
            ("trusted verifier", "RWQverifier", "2029-02-28".to_string()),
        ]
    );
    let store = c.store.as_ref().unwrap();
    assert_eq!(store.quota_bytes().unwrap(), Some(2 << 40));
    assert_eq!(store.alert_percent(), 75.0);
    let shown = c.redacted().to_string();
    assert!(
        shown.contains("\"key_expiries\"") && shown.contains("2TiB"),
        "{shown}"
    );

    // Each mistake is named.
    let bad = |text: &str| message(parse(text, &[]));
    let e = bad(
        "[encryption]\nrecipients = [{ recipient = \"age1x\", key_expires = \"next june\" }]\n",
    );
    assert!(
        e.contains("[encryption] recipients: key_expires `next june` is not a date"),
        "{e}"
    );
    let e =
        bad("[encryption]\nrecipients = [{ recipient = \"age1x\", expires = \"2027-01-01\" }]\n");
    assert!(e.contains("key_expires"), "{e}");
    let e = bad("[signing]\nkey_expires = \"2027-01-01\"\n");
    assert!(e.contains("key_file, which is not set"), "{e}");
    let e = bad("[store]\nurl = \"/tmp/x\"\nstore_quota = \"lots\"\n");
    assert!(e.contains("store_quota `lots` is not a size"), "{e}");
    let e = bad("[store]\nurl = \"/tmp/x\"\nstorage_alert_percent = 120\n");
    assert!(
        e.contains("storage_alert_percent 120 is out of range"),
        "{e}"
    );
}

/// `[objectives.ENVIRONMENT]` gives its datastores their rto / rpo unless they set
/// their own; a datastore without that environment gets none; a misspelt environment
/// or key is an error naming it.
#[test]
fn environment_objectives_fill_in_what_a_datastore_does_not_set() {
    let c = parse(
        r#"
[objectives.production]
rto = "1h"
rpo = "5min"
[objectives.staging]
rto = "4h"
[datastores.app]
kind = "postgres"
url = "postgres://db/app"
environment = "production"
[datastores.graph]
kind = "postgres"
url = "postgres://db/graph"
environment = "production"
rto = "2h"
[datastores.stage]
kind = "redis"
url = "redis://cache"
environment = "staging"
[datastores.plain]
kind = "redis"
url = "redis://other"
"#,
        &[],
    )
    .unwrap();
    let seconds = |s: Option<Span>| {
        let now = chrono::Utc::now();
        s.map(|s| (now - s.before(now)).num_seconds())
    };
    let ds = |n: &str| &c.datastores[n];
    assert_eq!(
        (seconds(ds("app").rto), seconds(ds("app").rpo)),
        (Some(3600), Some(300))
    );
    assert_eq!(
        (seconds(ds("graph").rto), seconds(ds("graph").rpo)),
        (Some(7200), Some(300))
    );
    assert_eq!(
        (seconds(ds("stage").rto), seconds(ds("stage").rpo)),
        (Some(14400), None)
    );
    assert_eq!(
        (seconds(ds("plain").rto), seconds(ds("plain").rpo)),
        (None, None)
    );

    let e = message(parse("[objectives.prod]\nrto = \"1h\"\n", &[]));
    assert!(e.contains("objectives") && e.contains("prod"), "{e}");
    let e = message(parse("[objectives.production]\nrtoo = \"1h\"\n", &[]));
    assert!(e.contains("rtoo"), "{e}");
}

/// A public key is shortened even when its base64 holds `/` (it is not a path); the
/// signing key's file is shown whole.
#[test]
fn dated_keys_are_shortened_unless_they_are_the_signing_key_file() {
    let expires = chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
    let signer = KeyExpiry {
        role: "trusted signer",
        key: "RWTNlBL++emBJDz26D6qwKbEqHa/5x0YuPRvOVg86JtQnT0BBjSBkcl4".into(),
        expires,
    };
    assert_eq!(signer.short_key(), "RWTNlBL++emBJDz2…");
    let file = KeyExpiry {
        role: "signing key",
        key: "/etc/dbseal/secrets/identity.txt.minisign.key".into(),
        expires,
    };
    assert_eq!(
        file.short_key(),
        "/etc/dbseal/secrets/identity.txt.minisign.key"
    );
}
