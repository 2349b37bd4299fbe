//! Round trips against the real PostgreSQL 15: backup → verify (levels 1-3) → restore,
//! with a content fingerprint of every table equal on both sides.

mod common;
mod pg_fixture;

use backup_core::{BackupOptions, ErrorKind, FormatRegistry, RestoreOptions};
use backup_postgres::{DumpOptions, PostgresSink, PostgresSource, RestoreTarget};
use common::*;

fn registry() -> FormatRegistry {
    let mut r = FormatRegistry::new();
    backup_postgres::register_formats(&mut r);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rich_schema_round_trip() {
    let src = TempDb::create("rich_src").await;
    exec(&src.name, RICH_SCHEMA).await;
    let (_dir, store, keys) = store();

    let mut source = PostgresSource::new(
        &config(&src.name),
        DumpOptions {
            globals: true,
            ..Default::default()
        },
    )
    .unwrap();
    let manifest = backup_postgres::backup(
        &store,
        &mut source,
        BackupOptions::new("rich", keys.encryption()),
    )
    .await
    .unwrap();

    // The contents summary equals what the live database holds.
    let live = live_counts(&src.name).await;
    let summary = manifest.contents.counts.get("tables").unwrap();
    assert_eq!(summary, &live, "manifest row counts vs live count(*)");
    assert_eq!(summary["app.customers"], 20000);
    assert_eq!(summary["app.single"], 5);
    assert_eq!(summary["app.empty"], 0);
    assert_eq!(summary["Mixed Case Schema.Table With Spaces"], 10);
    assert_eq!(summary["données.clients_été"], 2);
    let lo = manifest.contents.counts.get("large_objects").unwrap();
    assert_eq!(lo["count"], 2);
    assert_eq!(lo["bytes"], 5 + 13 * 20000);
    let objects = manifest.contents.counts.get("objects").unwrap();
    for kind in [
        "TABLE",
        "VIEW",
        "MATERIALIZED VIEW",
        "FUNCTION",
        "TRIGGER",
        "INDEX",
        "SEQUENCE",
        "TYPE",
        "DOMAIN",
        "EXTENSION",
        "COMMENT",
        "FK CONSTRAINT",
        "BLOB",
        "SCHEMA",
    ] {
        assert!(
            objects.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} in {objects:?}"
        );
    }
    assert_eq!(manifest.contents.facts["archive_version"], "1.14-0");
    assert_eq!(manifest.contents.facts["database"], src.name);
    assert!(manifest.contents.facts["server_version"].starts_with("15."));
    assert_eq!(manifest.datastore.kind, "postgres");
    assert_eq!(manifest.source["database"], src.name.as_str());
    assert!(manifest.source["server_version"]
        .as_str()
        .unwrap()
        .starts_with("15."));
    assert!(manifest.source["pg_dump_version"]
        .as_str()
        .unwrap()
        .starts_with("15."));
    assert!(manifest.source["extensions"]["hstore"].as_str().is_some());
    // The globals artifact: roles of the cluster.
    assert_eq!(manifest.attachments.len(), 1);
    assert_eq!(manifest.attachments[0].artifact.name, "globals");
    assert!(manifest.attachments[0].contents.counts["objects"]["ROLE"] >= 1);

    // Levels 1 and 2.
    backup_core::verify_stored(&store, &manifest).await.unwrap();
    let opts = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };
    backup_core::verify_content(&store, &manifest, &registry(), &opts)
        .await
        .unwrap();
    // Level 3, and the scratch database is gone afterwards.
    let report = backup_postgres::verify_restore(&store, &manifest, &config("postgres"), &opts)
        .await
        .unwrap();
    assert_eq!(report.level, backup_core::VerifyLevel::Restore);
    assert!(no_scratch_databases().await);

    // Restore into a new database: every table's content hash equals the source's.
    let (dst, report) = restore_into_new_db(&store, &manifest, &opts, "rich_dst").await;
    assert!(
        report.summary[0].contains("restored"),
        "{:?}",
        report.summary
    );
    let (a, b) = (fingerprint(&src.name).await, fingerprint(&dst.name).await);
    assert!(a.len() > 20, "{a:?}");
    assert_eq!(
        a, b,
        "fingerprints differ between source and restored database"
    );
    assert!(
        a["S app.counter"].starts_with("4242/"),
        "{}",
        a["S app.counter"]
    );
}

async fn no_scratch_databases() -> bool {
    let c = connect("postgres").await;
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbseal_verify_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    n == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_and_replace_restores() {
    let src = TempDb::create("sel_src").await;
    exec(&src.name, RICH_SCHEMA).await;
    let (_dir, store, keys) = store();
    let mut source = PostgresSource::new(&config(&src.name), DumpOptions::default()).unwrap();
    let manifest = backup_postgres::backup(
        &store,
        &mut source,
        BackupOptions::new("sel", keys.encryption()),
    )
    .await
    .unwrap();
    let opts = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };

    // Only one schema.
    let dst = TempDb::named("sel_schema");
    let mut sink = PostgresSink::new(
        &config(&dst.name),
        RestoreTarget {
            create_db: true,
            schemas: vec!["données".into()],
            no_owner: true,
            ..Default::default()
        },
    )
    .unwrap();
    backup_core::restore(&store, &manifest, "data", &mut sink, &opts)
        .await
        .unwrap();
    let live = live_counts(&dst.name).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live["données.clients_été"], 2);

    // Only one table, into an existing empty database.
    let dst2 = TempDb::create("sel_table").await;
    exec(&dst2.name, "CREATE SCHEMA app").await;
    // (a schema alone makes the target non-empty: use replace)
    let mut sink = PostgresSink::new(
        &config(&dst2.name),
        RestoreTarget {
            tables: vec!["orders".into()],
            replace: true,
            ..Default::default()
        },
    )
    .unwrap();
    backup_core::restore(&store, &manifest, "data", &mut sink, &opts)
        .await
        .unwrap();
    let live = live_counts(&dst2.name).await;
    assert_eq!(live.keys().collect::<Vec<_>>(), vec!["app.orders"]);
    assert_eq!(live["app.orders"], 30000);

    // A non-empty target is refused...
    let dst3 = TempDb::named("replace");
    // Shaped unlike the server's default (ctype C.UTF-8), with its own privileges: a
    // replace by rename keeps both.
    exec(
        "postgres",
        &format!(
            "CREATE DATABASE \"{}\" TEMPLATE template0 LC_CTYPE 'C.UTF-8'",
            dst3.name
        ),
    )
    .await;
    let reader = unique_name("reader");
    exec(
        &dst3.name,
        &format!(
            "CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (1);
             CREATE ROLE \"{reader}\" NOLOGIN;
             REVOKE ALL ON DATABASE \"{db}\" FROM PUBLIC;
             GRANT CONNECT ON DATABASE \"{db}\" TO \"{reader}\" WITH GRANT OPTION",
            db = dst3.name
        ),
    )
    .await;
    let shape = |db: &str| {
        pg_fixture::psql(
            "postgres",
            &format!(
                "SELECT datctype || ' ' || array_to_string(datacl, ',') FROM pg_database WHERE datname = '{db}'"
            ),
        )
    };
    let shape_before = shape(&dst3.name);
    assert!(
        shape_before.starts_with("C.UTF-8 ") && shape_before.contains(&format!("{reader}=c*/")),
        "{shape_before}"
    );
    let mut sink = PostgresSink::new(&config(&dst3.name), RestoreTarget::default()).unwrap();
    let err = backup_core::restore(&store, &manifest, "data", &mut sink, &opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("not empty") && msg.contains("keep_me") && msg.contains("--replace"),
        "{msg}"
    );
    assert_eq!(live_counts(&dst3.name).await.len(), 1);

    // ... and replaced when asked, by a staging copy renamed in: the target becomes
    // exactly the backup (keep_me is gone), keeps its shape and privileges, its
    // sessions are ended, and no staging or old database is left.
    // A staging database a crashed replace left is listed with the command to drop it.
    let crashed = format!("{}_dbseal_staging_0badc0", dst3.name);
    exec(
        "postgres",
        &format!("CREATE DATABASE \"{crashed}\" TEMPLATE template0"),
    )
    .await;
    let session = config(&dst3.name)
        .resolve()
        .unwrap()
        .connect()
        .await
        .unwrap();
    let summary = replace_into(
        &store,
        &manifest,
        &opts,
        &config(&dst3.name),
        RestoreTarget::default(),
    )
    .await;
    says(&summary, "renamed in");
    says(
        &summary,
        &format!(
            "database \"{crashed}\" is the staging copy of a restore that did not finish; drop it when no longer needed: DROP DATABASE \"{crashed}\""
        ),
    );
    exec("postgres", &format!("DROP DATABASE \"{crashed}\"")).await;
    assert!(session.simple_query("SELECT 1").await.is_err());
    assert_eq!(live_counts(&dst3.name).await, live_counts(&src.name).await);
    assert_eq!(shape(&dst3.name), shape_before);
    // Restore the same backup again over itself with replace: still equal.
    replace_into(
        &store,
        &manifest,
        &opts,
        &config(&dst3.name),
        RestoreTarget::default(),
    )
    .await;
    assert_eq!(live_counts(&dst3.name).await, live_counts(&src.name).await);
    let left = pg_fixture::psql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname LIKE '{}%dbseal%'",
            dst3.name
        ),
    );
    assert_eq!(left.trim(), "0");

    // A role that may not create databases replaces in place, in one transaction:
    // objects not in the backup stay, and the report says so.
    let dst4 = TempDb::named("replace_in_place");
    exec(
        "postgres",
        &format!(
            "ALTER ROLE \"{reader}\" LOGIN NOCREATEDB PASSWORD '{}'",
            server().1.replace('\'', "''")
        ),
    )
    .await;
    exec(
        "postgres",
        &format!(
            "CREATE DATABASE \"{}\" TEMPLATE template0 OWNER \"{reader}\"",
            dst4.name
        ),
    )
    .await;
    let mut limited = config(&dst4.name);
    limited.user = Some(reader.clone());
    let client = limited.resolve().unwrap().connect().await.unwrap();
    client
        .batch_execute("CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (1)")
        .await
        .unwrap();
    drop(client);
    let summary = replace_into(
        &store,
        &manifest,
        &opts,
        &limited,
        RestoreTarget {
            no_owner: true,
            no_privileges: true,
            ..Default::default()
        },
    )
    .await;
    says(&summary, "replaced in place");
    let mut after = live_counts(&dst4.name).await;
    assert_eq!(after.remove("public.keep_me"), Some(1));
    assert_eq!(after, live_counts(&src.name).await);
    drop(dst4);
    drop(dst3);
    exec("postgres", &format!("DROP ROLE \"{reader}\"")).await;
}

/// Restores `manifest` with `replace` into the database `config` names; returns the
/// report's summary lines.
async fn replace_into(
    store: &backup_core::BackupStore,
    manifest: &backup_core::Manifest,
    opts: &RestoreOptions,
    config: &backup_postgres::PostgresConfig,
    target: RestoreTarget,
) -> Vec<String> {
    let mut sink = PostgresSink::new(
        config,
        RestoreTarget {
            replace: true,
            ..target
        },
    )
    .unwrap();
    backup_core::restore(store, manifest, "data", &mut sink, opts)
        .await
        .unwrap()
        .summary
}

/// Asserts that one of `lines` contains `text`.
#[track_caller]
fn says(lines: &[String], text: &str) {
    assert!(
        lines.iter().any(|l| l.contains(text)),
        "no \"{text}\" in {lines:?}"
    );
}

/// The source database's settings, per-role settings in it, comment and owner, as psql
/// reads them from the catalogs (one line per setting, sorted).
fn database_properties(database: &str) -> String {
    pg_fixture::psql(
        "postgres",
        &format!(
            "SELECT coalesce(r.rolname, '*') || ': ' || array_to_string(s.setconfig, ' | ')
               FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
               LEFT JOIN pg_roles r ON r.oid = s.setrole
              WHERE d.datname = '{database}'
             UNION ALL
             SELECT 'comment: ' || coalesce(shobj_description(oid, 'pg_database'), '(none)')
                 || E'\\nowner: ' || pg_get_userbyid(datdba)
               FROM pg_database WHERE datname = '{database}'
             ORDER BY 1"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_db_gives_the_database_its_settings_comment_and_owner() {
    let src = TempDb::create("props_src").await;
    let (owner, reader) = (unique_name("props_owner"), unique_name("props_reader"));
    let s = &src.name;
    exec(
        "postgres",
        &format!(
            r#"CREATE ROLE "{owner}" NOLOGIN; CREATE ROLE "{reader}" NOLOGIN;
            ALTER DATABASE "{s}" SET lc_monetary TO 'C';
            ALTER DATABASE "{s}" SET timezone_abbreviations TO 'India';
            ALTER DATABASE "{s}" SET bytea_output TO 'escape';
            ALTER DATABASE "{s}" SET search_path TO app, "Other Schema", public;
            ALTER ROLE "{owner}" IN DATABASE "{s}" SET work_mem TO '8MB';
            COMMENT ON DATABASE "{s}" IS 'orders; the ''live'' ones';
            ALTER DATABASE "{s}" OWNER TO "{owner}";"#
        ),
    )
    .await;
    exec(s, "CREATE TABLE t (x int); INSERT INTO t VALUES (1);").await;
    let source_props = database_properties(s);
    assert!(source_props.contains("work_mem=8MB"), "{source_props}");

    let (_dir, store, keys) = store();
    let back_up = async || {
        let mut source = PostgresSource::new(&config(s), DumpOptions::default()).unwrap();
        backup_postgres::backup(
            &store,
            &mut source,
            BackupOptions::new("props", keys.encryption()),
        )
        .await
        .unwrap()
    };
    let opts = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };
    let restore_into = async |manifest, name: &str, no_owner: bool| {
        let target = RestoreTarget {
            create_db: true,
            no_owner,
            ..Default::default()
        };
        let mut sink = PostgresSink::new(&config(name), target).unwrap();
        backup_core::restore(&store, manifest, "data", &mut sink, &opts).await
    };

    // Restored under another name: the same settings, comment and owner.
    let manifest = back_up().await;
    let dst = TempDb::named("props_dst");
    let plan_of = |no_owner| {
        let target = RestoreTarget {
            create_db: true,
            no_owner,
            ..Default::default()
        };
        PostgresSink::new(&config(&dst.name), target)
            .unwrap()
            .plan(&manifest)
    };
    // The dry-run plan lists what the restore below applies.
    let plan = plan_of(false);
    assert!(
        plan.iter()
            .any(|l| l.contains("source database's settings, comment, owner")),
        "{plan:?}"
    );
    let plan = plan_of(true);
    assert!(
        plan.iter()
            .any(|l| l
                .ends_with("source database's settings, comment (as pg_restore --create does)")),
        "{plan:?}"
    );
    let report = restore_into(&manifest, &dst.name, false).await.unwrap();
    assert!(
        report.summary.iter().any(|l| l.contains("settings")),
        "{:?}",
        report.summary
    );
    assert_eq!(database_properties(&dst.name), source_props);

    // A setting that cannot be applied (its role is gone) fails the restore, and the
    // database it created is dropped again.
    exec(
        "postgres",
        &format!(r#"ALTER ROLE "{reader}" IN DATABASE "{s}" SET work_mem TO '1MB'"#),
    )
    .await;
    let manifest = back_up().await;
    exec("postgres", &format!(r#"DROP ROLE "{reader}""#)).await;
    let failed = TempDb::named("props_failed");
    let e = restore_into(&manifest, &failed.name, true)
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&reader), "{e}");
    assert!(
        !db_exists(&failed.name).await,
        "the database the failed restore created is left"
    );

    drop((src, dst, failed));
    exec("postgres", &format!(r#"DROP ROLE "{owner}""#)).await;
}
