//! The Neo4j [`Driver`]: backup, restore and level-3 verification through the trait the
//! CLI and Python use, against a real Bolt server (ArcadeDB), checked with an
//! independent reader (the Python neo4j driver).

mod common;

use std::process::Command;

use backup_core::driver::{BackupContext, Driver, DriverOptions, RestoreContext, RestoreTarget};
use backup_core::secret::percent_encode_userinfo;
use backup_core::{BackupOptions, ErrorKind, Manifest, SecretString, VerifyLevel};
use backup_neo4j::Neo4jDriver;
use common::{bolt_url, env, restore_options, run, ScratchDb};
use tokio_util::sync::CancellationToken;

/// The test server's URL with the credentials in it (the driver options carry no
/// password; the CLI takes it from NEO4J_PASSWORD, which tests running in parallel
/// cannot set safely) and `database` as its path, if given.
fn url_with_credentials(database: Option<&str>) -> String {
    let mut u = url::Url::parse(&bolt_url()).unwrap();
    u.set_username(&percent_encode_userinfo(&env("DBSEAL_TEST_BOLT_USER")))
        .unwrap();
    u.set_password(Some(&percent_encode_userinfo(&env(
        "DBSEAL_TEST_BOLT_PASSWORD",
    ))))
    .unwrap();
    if let Some(db) = database {
        u.set_path(db);
    }
    u.to_string()
}

/// What the Python neo4j driver reads from `database`: every node (labels, properties)
/// and relationship (type, properties, end points by `uid`), as sorted JSON lines.
fn python_view(database: &str) -> Vec<String> {
    const SCRIPT: &str = r#"
import json, os, sys
import neo4j
url, user, db = sys.argv[1], sys.argv[2], sys.argv[3]
auth = (user, os.environ["DBSEAL_TEST_BOLT_PASSWORD"])
out = []
with neo4j.GraphDatabase.driver(url, auth=auth) as d:
    nodes, _, _ = d.execute_query("MATCH (n) RETURN labels(n) AS l, properties(n) AS p", database_=db)
    for r in nodes:
        out.append(json.dumps(["node", sorted(r["l"]), r["p"]], sort_keys=True))
    rels, _, _ = d.execute_query(
        "MATCH (a)-[r]->(b) RETURN type(r) AS t, properties(r) AS p, a.uid AS a, b.uid AS b",
        database_=db)
    for r in rels:
        out.append(json.dumps(["rel", r["t"], r["p"], r["a"], r["b"]], sort_keys=True))
for line in sorted(out):
    print(line)
"#;
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(bolt_url())
        .arg(env("DBSEAL_TEST_BOLT_USER"))
        .arg(database)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python neo4j reader: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// A graph of plain property types. ArcadeDB work-around: no temporal values with a
/// fixed offset (ArcadeDB returns them as UTC local datetimes, see
/// `common::arcadedb_offset_datetime_normalization`), so the two readers agree.
async fn build_graph(g: &neo4rs::Graph) {
    run(
        g,
        neo4rs::query("CREATE CONSTRAINT d_uid FOR (n:Person) REQUIRE n.uid IS UNIQUE"),
    )
    .await;
    run(
        g,
        neo4rs::query(
            "UNWIND range(1, 50) AS i \
             CREATE (a:Person {uid: i, name: 'p' + toString(i), score: toFloat(i) / 4.0, ok: i % 2 = 0, tags: ['t', toString(i)]}) \
             CREATE (b:Company:Org {uid: 1000 + i, name: 'c' + toString(i)}) \
             CREATE (a)-[:WORKS_AT {since: 2000 + i}]->(b) \
             CREATE (a)-[:LIKES]->(a)",
        ),
    )
    .await;
}

fn backup_ctx(store: &backup_core::BackupStore, keys: &backup_core::KeyPair) -> BackupContext {
    BackupContext {
        store: store.clone(),
        options: BackupOptions::new("neo4j-driver-test", keys.encryption()),
    }
}

fn restore_ctx(store: &backup_core::BackupStore, keys: &backup_core::KeyPair) -> RestoreContext {
    RestoreContext {
        store: store.clone(),
        options: restore_options(keys),
        cancel: CancellationToken::new(),
        altered: Default::default(),
    }
}

/// Backs up `src` through the driver, the database named by the URL's path.
async fn driver_backup(
    src: &ScratchDb,
    store: &backup_core::BackupStore,
    keys: &backup_core::KeyPair,
) -> Manifest {
    let mut options = DriverOptions::new();
    options.set("url", url_with_credentials(Some(&src.name)));
    Neo4jDriver.check_backup_options(&options).unwrap();
    Neo4jDriver
        .backup(&options, &backup_ctx(store, keys))
        .await
        .expect("backup through the driver")
}

#[tokio::test]
async fn backup_and_restore_through_the_driver_match_the_python_reader() {
    let src = ScratchDb::new("drv_src").await;
    build_graph(&src.graph().await).await;
    let expected = python_view(&src.name);
    assert_eq!(expected.len(), 200, "{expected:?}");
    let (store, keys) = common::store();
    let manifest = driver_backup(&src, &store, &keys).await;
    assert_eq!(manifest.datastore.kind, "neo4j");
    assert_eq!(manifest.contents.counts["graph"]["nodes"], 100);

    // Restore as Python does: user and password with the target, the database named.
    let dst = ScratchDb::new("drv_dst").await;
    let target = RestoreTarget {
        url: Some(bolt_url()),
        database: Some(dst.name.clone()),
        user: Some(env("DBSEAL_TEST_BOLT_USER")),
        password: Some(SecretString::new(env("DBSEAL_TEST_BOLT_PASSWORD"))),
        ..Default::default()
    };
    let outcome = Neo4jDriver
        .restore(&manifest, &target, &restore_ctx(&store, &keys))
        .await
        .expect("restore through the driver");
    assert!(outcome.target.contains(&dst.name), "{outcome:?}");
    assert!(
        !outcome.target.contains(&env("DBSEAL_TEST_BOLT_PASSWORD")),
        "{outcome:?}"
    );
    assert_eq!(python_view(&dst.name), expected);

    // Again into the now non-empty database: refused, nothing changed.
    let err = Neo4jDriver
        .restore(&manifest, &target, &restore_ctx(&store, &keys))
        .await
        .expect_err("non-empty target");
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert_eq!(python_view(&dst.name), expected);

    // A cancelled restore leaves an empty target empty.
    let empty = ScratchDb::new("drv_cancel").await;
    let ctx = restore_ctx(&store, &keys);
    ctx.cancel.cancel();
    let mut cancelled = target.clone();
    cancelled.database = Some(empty.name.clone());
    cancelled.password = target.password.clone();
    Neo4jDriver
        .restore(&manifest, &cancelled, &ctx)
        .await
        .expect_err("cancelled restore");
    assert!(python_view(&empty.name).is_empty());
}

#[tokio::test]
async fn level_3_verification_through_the_driver() {
    let src = ScratchDb::new("drv_v3_src").await;
    build_graph(&src.graph().await).await;
    let (store, keys) = common::store();
    let manifest = driver_backup(&src, &store, &keys).await;

    // ArcadeDB work-around: no Cypher CREATE DATABASE, so the scratch database is made
    // through ArcadeDB's HTTP API and named in the URL's path.
    let scratch = ScratchDb::new("drv_v3_scratch").await;
    let report = Neo4jDriver
        .verify_restore(
            &manifest,
            &url_with_credentials(Some(&scratch.name)),
            &restore_ctx(&store, &keys),
        )
        .await
        .expect("level 3 into the named scratch database");
    assert_eq!(report.level, VerifyLevel::Restore);
    let text = report.checks.join("\n");
    assert!(text.contains(&scratch.name), "{text}");
    assert!(text.contains("100 nodes, 100 relationships"), "{text}");
    assert!(text.contains("content hash"), "{text}");

    // Without a scratch database in the URL the driver makes one with CREATE DATABASE,
    // which ArcadeDB refuses: the error says how to name one instead.
    let err = Neo4jDriver
        .verify_restore(
            &manifest,
            &url_with_credentials(None),
            &restore_ctx(&store, &keys),
        )
        .await
        .expect_err("ArcadeDB has no CREATE DATABASE");
    let msg = err.to_string();
    assert!(msg.contains("URL's path"), "{msg}");
    assert!(!msg.contains(&env("DBSEAL_TEST_BOLT_PASSWORD")), "{msg}");
}

#[tokio::test]
async fn unknown_option_keys_are_config_errors_naming_the_key() {
    let (store, keys) = common::store();
    let mut options = DriverOptions::new();
    options.set("url", bolt_url());
    options.set("mode", "scan");
    let err = Neo4jDriver
        .backup(&options, &backup_ctx(&store, &keys))
        .await
        .expect_err("unknown key");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("mode"), "{err}");
    let err = Neo4jDriver.check_backup_options(&options).unwrap_err();
    assert!(err.to_string().contains("mode"), "{err}");
    assert!(store.list(None).await.unwrap().is_empty());
}
