//! [`TimescaleDriver`] against the real PostgreSQL started by `scripts/services.sh`:
//! options as keyed values (and from clap), backup and restore through the trait, the
//! restored hypertable read back with `psql`. The tests that need the extension skip
//! with a message when the server has no TimescaleDB.

#[path = "../../backup-postgres/tests/pg_fixture/mod.rs"]
mod pg_fixture;

use backup_core::driver::{
    BackupContext, Driver, DriverOptions, Registry, RestoreContext, RestoreTarget,
};
use backup_core::{BackupOptions, BackupStore, ErrorKind, KeyPair, RestoreOptions};
use backup_postgres::PostgresConfig;
use backup_timescale::{TimescaleBackupOptions, TimescaleDriver};
use pg_fixture::psql;
use tokio_util::sync::CancellationToken;

fn server() -> (String, String) {
    (
        std::env::var("DBSEAL_TEST_PG_URL")
            .expect("DBSEAL_TEST_PG_URL is not set: run scripts/test.sh"),
        std::env::var("DBSEAL_TEST_PG_PASSWORD")
            .expect("DBSEAL_TEST_PG_PASSWORD is not set: run scripts/test.sh"),
    )
}

/// The URL of `db` on the test server, without the password.
fn url_of(db: &str) -> String {
    let (url, _) = server();
    let base = url.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    format!("{base}/{db}")
}

/// The URL of `db` with the password (for the backup side, whose options have no
/// password key).
fn url_with_password(db: &str) -> String {
    let (_, pw) = server();
    url_of(db).replacen("postgres@", &format!("postgres:{pw}@"), 1)
}

async fn client(db: &str) -> tokio_postgres::Client {
    let mut c = PostgresConfig::from_url(url_of(db));
    c.password = Some(server().1.into());
    c.resolve().unwrap().connect().await.unwrap()
}

async fn drop_db(name: &str) {
    client("postgres")
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn backup_and_restore_through_the_driver_with_keyed_options() {
    if !pg_fixture::timescale_available() {
        return;
    }
    let (src, dst) = ("tsdrv_src", "tsdrv_dst");
    drop_db(src).await;
    drop_db(dst).await;
    client("postgres")
        .await
        .batch_execute(&format!("CREATE DATABASE \"{src}\""))
        .await
        .unwrap();
    client(src)
        .await
        .batch_execute(
            "CREATE EXTENSION timescaledb;
             CREATE TABLE metrics(ts timestamptz NOT NULL, device int, v double precision);
             SELECT create_hypertable('metrics', 'ts', chunk_time_interval => interval '1 day');
             INSERT INTO metrics SELECT t, (extract(epoch FROM t)::int % 5), random()
               FROM generate_series('2026-01-01'::timestamptz, '2026-01-05', interval '10 minutes') t;",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = BackupStore::open(dir.path().to_str().unwrap(), &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let mut options = DriverOptions::new();
    options
        .set("url", url_with_password(src))
        .set("globals", true);
    TimescaleDriver.check_backup_options(&options).unwrap();
    let manifest = TimescaleDriver
        .backup(
            &options,
            &BackupContext {
                store: store.clone(),
                options: BackupOptions::new("tsdrv", keys.encryption()),
            },
        )
        .await
        .unwrap();
    assert_eq!(manifest.datastore.kind, "timescale");
    let names: Vec<&str> = manifest.artifacts().map(|a| a.name.as_str()).collect();
    assert!(names.contains(&"globals"), "{names:?}");

    let target = RestoreTarget {
        url: Some(url_of(dst)),
        create_db: true,
        password: Some(server().1.into()),
        ..Default::default()
    };
    let registry = Registry::new().with(TimescaleDriver);
    registry.check_target(&manifest, &target).unwrap();
    let rctx = RestoreContext {
        store,
        options: RestoreOptions {
            decryption: Some(keys.decryption().into()),
            ..Default::default()
        },
        cancel: CancellationToken::new(),
        altered: Default::default(),
    };
    TimescaleDriver
        .restore(&manifest, &target, &rctx)
        .await
        .unwrap();
    let check = "SELECT count(*) || ':' || md5(string_agg(ts::text || device || v, ',' ORDER BY ts)) FROM metrics";
    assert_eq!(psql(dst, check), psql(src, check));
    assert_eq!(
        psql(
            dst,
            "SELECT count(*) FROM timescaledb_information.hypertables"
        )
        .trim(),
        "1"
    );
    drop_db(src).await;
    drop_db(dst).await;
}

#[test]
fn an_unknown_option_key_is_a_config_error_naming_it() {
    let mut options = DriverOptions::new();
    options
        .set("url", "postgres://app@db/app")
        .set("table", "x");
    let err = TimescaleDriver.check_backup_options(&options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("`table`"), "{err}");
    assert!(err.to_string().contains("timescale"), "{err}");
}

#[test]
fn selective_restore_is_refused_before_anything_is_touched() {
    let caps = TimescaleDriver.capabilities();
    assert!(caps.create_target && caps.verify_restore);
    assert!(!caps.selective_restore && !caps.physical);
    assert!(TimescaleDriver.restores_kind("timescale"));
    assert!(!TimescaleDriver.restores_kind("postgres"));
}

#[test]
fn options_round_trip_from_clap_to_keyed_to_typed() {
    let cmd = TimescaleDriver.backup_args(clap::Command::new("timescale"));
    let matches = cmd
        .try_get_matches_from([
            "timescale",
            "--url",
            "postgres://app@db/app",
            "--schema",
            "a",
            "--exclude-schema",
            "b",
            "--globals",
        ])
        .unwrap();
    let options = TimescaleDriver.backup_options_from(&matches).unwrap();
    assert_eq!(options.0["schema"], serde_json::json!(["a"]));
    assert_eq!(options.0["exclude-schema"], serde_json::json!(["b"]));
    let typed: TimescaleBackupOptions = options.parse("timescale").unwrap();
    assert_eq!(typed.schemas, vec!["a"]);
    assert_eq!(typed.exclude_schemas, vec!["b"]);
    assert!(typed.globals);
    assert_eq!(DriverOptions::from_typed(&typed).unwrap(), options);
}
