//! [`PostgresDriver`] against the real PostgreSQL started by `scripts/services.sh`:
//! options as keyed values (and from clap), backup and restore through the trait, the
//! restored database read back with `psql` (a reader independent of dbseal).

mod common;

use backup_core::driver::{
    BackupContext, Driver, DriverOptions, Registry, RestoreContext, RestoreTarget,
};
use backup_core::{BackupOptions, ErrorKind, RestoreOptions};
use backup_postgres::{PostgresBackupOptions, PostgresDriver};
use common::{exec, server, TempDb};
use tokio_util::sync::CancellationToken;

/// `psql -At -c sql` on `database`, as the test server's superuser (password through
/// the environment).
fn psql(database: &str, sql: &str) -> String {
    let (url, pw) = server();
    let u = url::Url::parse(&url).unwrap();
    let bin = std::env::var("DBSEAL_TEST_PG_BIN")
        .map(|d| format!("{d}/psql"))
        .unwrap_or_else(|_| "psql".into());
    let out = std::process::Command::new(bin)
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", u.host_str().unwrap()])
        .args(["-p", &u.port().unwrap_or(5432).to_string()])
        .args(["-U", u.username(), "-d", database, "-c", sql])
        .env("PGPASSWORD", pw)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The URL of `database` on the test server, without the password.
fn url_of(database: &str) -> String {
    let (url, _) = server();
    let base = url.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    format!("{base}/{database}")
}

fn password_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("pgpassword");
    std::fs::write(&path, server().1).unwrap();
    path
}

const CHECK: &str = "SELECT string_agg(id || ':' || name, ',' ORDER BY id) FROM app.items";

async fn source_db() -> TempDb {
    let db = TempDb::create("drv_src").await;
    exec(
        &db.name,
        "CREATE SCHEMA app; CREATE TABLE app.items(id int PRIMARY KEY, name text);
         INSERT INTO app.items SELECT g, 'item ' || g FROM generate_series(1, 50) g;
         CREATE TABLE public.skipped(x int); INSERT INTO public.skipped VALUES (1), (2);",
    )
    .await;
    db
}

#[tokio::test]
async fn backup_and_restore_through_the_driver_with_keyed_options() {
    let src = source_db().await;
    let (dir, store, keys) = common::store();
    let mut options = DriverOptions::new();
    options
        .set("url", url_of(&src.name))
        .set("password-file", password_file(dir.path()).to_str().unwrap())
        .set("schema", vec!["app"])
        .set("globals", true);
    let driver = PostgresDriver;
    driver.check_backup_options(&options).unwrap();
    let ctx = BackupContext {
        store: store.clone(),
        options: BackupOptions::new("drv", keys.encryption()),
    };
    let manifest = driver.backup(&options, &ctx).await.unwrap();
    assert_eq!(manifest.datastore.kind, "postgres");
    let names: Vec<&str> = manifest.artifacts().map(|a| a.name.as_str()).collect();
    assert!(names.contains(&"data"), "{names:?}");
    assert!(
        names.contains(&"globals"),
        "--globals through the driver must keep the globals artifact: {names:?}"
    );

    let target_db = TempDb::named("drv_dst");
    let target = RestoreTarget {
        url: Some(url_of(&target_db.name)),
        create_db: true,
        password: Some(server().1.into()),
        ..Default::default()
    };
    let registry = Registry::new().with(PostgresDriver);
    registry.check_target(&manifest, &target).unwrap();
    let rctx = RestoreContext {
        store: store.clone(),
        options: RestoreOptions {
            decryption: Some(keys.decryption().into()),
            ..Default::default()
        },
        cancel: CancellationToken::new(),
        altered: Default::default(),
    };
    let outcome = registry
        .driver_for(&manifest)
        .unwrap()
        .restore(&manifest, &target, &rctx)
        .await
        .unwrap();
    assert!(
        outcome.target.ends_with(&target_db.name),
        "{}",
        outcome.target
    );
    assert!(!outcome.target.contains(&server().1));
    assert_eq!(psql(&target_db.name, CHECK), psql(&src.name, CHECK));
    assert!(psql(&target_db.name, CHECK).starts_with("1:item 1,2:item 2,"));
    // Only the `app` schema was backed up.
    assert_eq!(
        psql(
            &target_db.name,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'skipped'"
        )
        .trim(),
        "0"
    );

    // Level 3 through the driver, into a scratch database on the same server.
    let (url, pw) = server();
    let with_password = url.replacen("postgres@", &format!("postgres:{pw}@"), 1);
    let report = driver
        .verify_restore(&manifest, &with_password, &rctx)
        .await
        .unwrap();
    assert_eq!(
        report.level,
        backup_core::VerifyLevel::Restore,
        "{report:?}"
    );
    drop(dir);
}

#[tokio::test]
async fn a_cancelled_restore_leaves_no_database_behind() {
    let src = source_db().await;
    let (dir, store, keys) = common::store();
    let mut options = DriverOptions::new();
    options
        .set("url", url_of(&src.name))
        .set("password-file", password_file(dir.path()).to_str().unwrap());
    let ctx = BackupContext {
        store: store.clone(),
        options: BackupOptions::new("drv", keys.encryption()),
    };
    let manifest = PostgresDriver.backup(&options, &ctx).await.unwrap();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let target_db = TempDb::named("drv_cancel");
    let err = PostgresDriver
        .restore(
            &manifest,
            &RestoreTarget {
                url: Some(url_of(&target_db.name)),
                create_db: true,
                password: Some(server().1.into()),
                ..Default::default()
            },
            &RestoreContext {
                store,
                options: RestoreOptions {
                    decryption: Some(keys.decryption().into()),
                    ..Default::default()
                },
                cancel,
                altered: Default::default(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");
    assert!(!common::db_exists(&target_db.name).await);
}

#[test]
fn an_unknown_option_key_is_a_config_error_naming_it() {
    let mut options = DriverOptions::new();
    options
        .set("url", "postgres://app@db/app")
        .set("exclude-tabel", "x");
    let err = PostgresDriver.check_backup_options(&options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("exclude-tabel"), "{err}");
    assert!(err.to_string().contains("postgres"), "{err}");

    let mut wrong_type = DriverOptions::new();
    wrong_type.set("port", "not a port");
    let err = PostgresDriver
        .check_backup_options(&wrong_type)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("postgres options"), "{err}");
}

#[test]
fn contradictory_options_are_refused_without_connecting() {
    let mut physical = DriverOptions::new();
    physical.set("physical", true).set("globals", true);
    let err = PostgresDriver.check_backup_options(&physical).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("globals"), "{err}");

    let mut fast = DriverOptions::new();
    fast.set("fast-checkpoint", true);
    let err = PostgresDriver.check_backup_options(&fast).unwrap_err();
    assert!(err.to_string().contains("fast-checkpoint"), "{err}");

    let mut fine = DriverOptions::new();
    fine.set("physical", true).set("fast-checkpoint", true);
    PostgresDriver.check_backup_options(&fine).unwrap();
}

#[test]
fn options_round_trip_from_clap_to_keyed_to_typed() {
    let cmd = PostgresDriver.backup_args(clap::Command::new("postgres"));
    let matches = cmd
        .try_get_matches_from([
            "postgres",
            "--url",
            "postgres://app@db:5433/app",
            "--schema",
            "a",
            "--schema",
            "b",
            "--exclude-table-data",
            "logs",
            "--password-file",
            "/run/secrets/pg",
            "--globals",
        ])
        .unwrap();
    let options = PostgresDriver.backup_options_from(&matches).unwrap();
    assert_eq!(options.get_str("url"), Some("postgres://app@db:5433/app"));
    assert_eq!(options.0["schema"], serde_json::json!(["a", "b"]));
    assert_eq!(options.0["exclude-table-data"], serde_json::json!(["logs"]));
    assert_eq!(options.0["globals"], serde_json::json!(true));
    let typed: PostgresBackupOptions = options.parse("postgres").unwrap();
    assert_eq!(typed.schema, vec!["a", "b"]);
    assert_eq!(
        typed.password_file.as_deref(),
        Some(std::path::Path::new("/run/secrets/pg"))
    );
    assert!(typed.globals && !typed.physical);
    assert_eq!(DriverOptions::from_typed(&typed).unwrap(), options);

    // clap's own conflicts stay.
    let cmd = PostgresDriver.backup_args(clap::Command::new("postgres"));
    assert!(cmd
        .try_get_matches_from(["postgres", "--physical", "--schema", "a"])
        .is_err());
    let cmd = PostgresDriver.backup_args(clap::Command::new("postgres"));
    assert!(cmd
        .try_get_matches_from(["postgres", "--fast-checkpoint"])
        .is_err());
}

#[test]
fn capabilities_and_formats() {
    let caps = PostgresDriver.capabilities();
    assert!(caps.create_target && caps.selective_restore && caps.physical && caps.verify_restore);
    assert!(!caps.database_map && !caps.offline_file && !caps.staging_swap);
    assert_eq!(PostgresDriver.url_schemes(), ["postgres", "postgresql"]);
    let names: Vec<String> = PostgresDriver
        .formats()
        .iter()
        .map(|f| f.format().to_string())
        .collect();
    assert_eq!(names, ["pgdump", "pgsql"]);
    assert!(PostgresDriver.restores_kind("postgres"));
    assert!(!PostgresDriver.restores_kind("redis"));
}
