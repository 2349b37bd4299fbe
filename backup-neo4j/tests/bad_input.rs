//! Bad input: wrong password, unknown database, non-empty target, corrupted and
//! truncated artifacts, the server stopping during export and during import. Every
//! case: one clear error, no manifest from a failed backup, the target as before.

mod common;

use std::time::Duration;

use backup_core::{BackupOptions, ErrorKind};
use backup_neo4j::{Neo4jConfig, Neo4jSink, Neo4jSinkOptions, Neo4jSource};
use common::*;
use neo4rs::query;

/// `n` nodes (Person with an index, and unlabeled ones) and about `n` relationships.
async fn medium_graph(g: &neo4rs::Graph, n: i64) {
    run(g, query("CREATE INDEX m_uid FOR (p:Person) ON (p.uid)")).await;
    run(g, query("UNWIND range(0, $n - 1) AS i CREATE (:Person {uid: i, name: 'p' + toString(i), at: datetime('2024-01-01T00:00:00[Europe/Berlin]')})").param("n", n)).await;
    run(g, query("UNWIND range(0, $n - 1) AS i MATCH (a:Person {uid: i}) MATCH (b:Person {uid: (i * 7 + 1) % $n}) CREATE (a)-[:KNOWS {w: i}]->(b)").param("n", n)).await;
    run(g, query("UNWIND range(1, 100) AS i CREATE ({free: i})")).await;
}

async fn no_manifests(store: &backup_core::BackupStore) {
    assert!(
        store.list(None).await.unwrap().is_empty(),
        "a failed backup left a manifest"
    );
}

/// What a target holds: nodes, relationships and schema names.
async fn snapshot(config: &Neo4jConfig) -> (i64, i64, Vec<String>) {
    let (c, schema) = backup_neo4j::live_contents(config).await.unwrap();
    // ArcadeDB work-around: creating an index adds a hidden property-type constraint
    // named `constraint_<Label>_<property>_type` (not in Neo4j); it is not part of
    // what the tests compare.
    let mut names: Vec<String> = schema
        .into_iter()
        .map(|s| s.name)
        .filter(|n| !(n.starts_with("constraint_") && n.ends_with("_type")))
        .collect();
    names.sort();
    (
        c.counts["graph"]["nodes"] as i64,
        c.counts["graph"]["relationships"] as i64,
        names,
    )
}

#[tokio::test]
async fn wrong_password_is_a_connection_error_without_the_password_and_no_manifest() {
    let (store, keys) = common::store();
    let bad = Neo4jConfig::new(bolt_url())
        .user(env("DBSEAL_TEST_BOLT_USER"))
        .password("wrong-password-xyz")
        .database("neo4j");
    let err = backup_core::backup(
        &store,
        &mut Neo4jSource::new(bad.clone()),
        BackupOptions::new("g", keys.encryption()),
    )
    .await
    .expect_err("wrong password must fail");
    let msg = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Connection, "{msg}");
    assert!(
        msg.to_lowercase().contains("auth") || msg.contains("password"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-password-xyz"), "{msg}");
    assert!(msg.contains("127.0.0.1"), "names the server: {msg}");
    no_manifests(&store).await;
    // Restore with the wrong password fails the same way before touching anything.
    let err = backup_neo4j::live_contents(&bad)
        .await
        .expect_err("wrong password");
    assert_eq!(err.kind(), ErrorKind::Connection);
}

#[tokio::test]
async fn unknown_database_names_the_database_and_leaves_no_manifest() {
    let (store, keys) = common::store();
    let err = backup_core::backup(
        &store,
        &mut Neo4jSource::new(config("no_such_db_dbseal")),
        BackupOptions::new("g", keys.encryption()),
    )
    .await
    .expect_err("unknown database must fail");
    let msg = err.to_string();
    assert!(msg.contains("no_such_db_dbseal"), "{msg}");
    no_manifests(&store).await;
}

#[tokio::test]
async fn non_empty_target_is_refused_and_left_as_it_was() {
    let src = ScratchDb::new("ne_src").await;
    medium_graph(&src.graph().await, 50).await;
    let (store, keys) = common::store();
    let m = backup_core::backup(
        &store,
        &mut Neo4jSource::new(src.config()),
        BackupOptions::new("g", keys.encryption()),
    )
    .await
    .unwrap();
    let dst = ScratchDb::new("ne_dst").await;
    run(
        &dst.graph().await,
        query("CREATE (:Keep {x: 1})-[:R]->(:Keep {x: 2})"),
    )
    .await;
    let before = snapshot(&dst.config()).await;
    let err = backup_core::restore(
        &store,
        &m,
        "data",
        &mut Neo4jSink::new(dst.config(), Neo4jSinkOptions::default()),
        &restore_options(&keys),
    )
    .await
    .expect_err("non-empty target");
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.to_string().contains("not empty (2 nodes"), "{err}");
    assert_eq!(snapshot(&dst.config()).await, before);
    // With replace, the old contents go and the backup's graph is there.
    let opts = Neo4jSinkOptions {
        replace: true,
        ..Default::default()
    };
    backup_core::restore(
        &store,
        &m,
        "data",
        &mut Neo4jSink::new(dst.config(), opts),
        &restore_options(&keys),
    )
    .await
    .unwrap();
    let (live, _) = backup_neo4j::live_contents(&dst.config()).await.unwrap();
    assert_eq!(live.facts["content_hash"], m.contents.facts["content_hash"]);
    assert_eq!(
        count(&dst.graph().await, "MATCH (n:Keep) RETURN count(n) AS c").await,
        0
    );
}

/// Overwrites `n` bytes at `at` (negative: from the end) of the stored artifact.
async fn damage(store: &backup_core::BackupStore, m: &backup_core::Manifest, truncate: bool) {
    let mut data = store.get_bytes(&m.artifact.key).await.unwrap().to_vec();
    if truncate {
        data.truncate(data.len() - 100);
    } else {
        let i = data.len() - 50;
        data[i] ^= 0xff;
    }
    store.put_bytes(&m.artifact.key, data).await.unwrap();
}

#[tokio::test]
async fn corrupted_or_truncated_artifact_leaves_the_target_as_it_was() {
    let src = ScratchDb::new("bad_src").await;
    // Large enough that several batches are imported before the damage shows.
    medium_graph(&src.graph().await, 30_000).await;
    let (store, keys) = common::store();
    let m = backup_core::backup(
        &store,
        &mut Neo4jSource::new(src.config()),
        BackupOptions::new("g", keys.encryption()),
    )
    .await
    .unwrap();
    assert!(
        m.artifact.plaintext_size > 1_000_000,
        "the stream spans many chunks"
    );
    let original = store.get_bytes(&m.artifact.key).await.unwrap().to_vec();
    for truncate in [false, true] {
        store
            .put_bytes(&m.artifact.key, original.clone())
            .await
            .unwrap();
        damage(&store, &m, truncate).await;
        // An empty target stays empty.
        let dst = ScratchDb::new("bad_dst").await;
        let opts = Neo4jSinkOptions {
            node_batch: 2_000,
            relationship_batch: 2_000,
            ..Default::default()
        };
        let err = backup_core::restore(
            &store,
            &m,
            "data",
            &mut Neo4jSink::new(dst.config(), opts.clone()),
            &restore_options(&keys),
        )
        .await
        .expect_err("damaged artifact");
        // The pipeline reports the root cause (the artifact), naming the backup; the
        // sink's rollback note goes to the log (tracing) as the secondary failure.
        let msg = err.to_string();
        assert_eq!(err.kind(), ErrorKind::Verification, "{msg}");
        assert!(msg.contains(&m.backup_id.to_string()), "{msg}");
        assert_eq!(snapshot(&dst.config()).await, (0, 0, vec![]), "{msg}");
        // A replaced target keeps its old contents and schema.
        let old = ScratchDb::new("bad_old").await;
        medium_graph(&old.graph().await, 200).await;
        let before = snapshot(&old.config()).await;
        let opts = Neo4jSinkOptions {
            replace: true,
            ..opts
        };
        let err = backup_core::restore(
            &store,
            &m,
            "data",
            &mut Neo4jSink::new(old.config(), opts),
            &restore_options(&keys),
        )
        .await
        .expect_err("damaged artifact");
        assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
        assert_eq!(snapshot(&old.config()).await, before);
    }
}

#[tokio::test]
async fn server_stopped_during_export_fails_without_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = PrivateServer::start(dir.path(), 27787, 22587).ready().await;
    medium_graph(&server.graph(), 60_000).await;
    let (store, keys) = common::store();
    let cfg = server.config();
    let backup = tokio::spawn({
        let store = store.clone();
        let enc = keys.encryption();
        async move {
            backup_core::backup(
                &store,
                &mut Neo4jSource::new(cfg),
                BackupOptions::new("g", enc),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.kill();
    let err = tokio::time::timeout(Duration::from_secs(120), backup)
        .await
        .expect("the backup must not hang")
        .unwrap()
        .expect_err("export must fail when the server goes away");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Connection | ErrorKind::Other | ErrorKind::Verification
        ),
        "{err}"
    );
    assert!(err.to_string().contains("neo4j 127.0.0.1:27787"), "{err}");
    no_manifests(&store).await;
}

#[tokio::test]
async fn server_stopped_during_import_is_reported_and_cleanup_restores_the_target() {
    // The backup comes from the shared server.
    let src = ScratchDb::new("kill_src").await;
    medium_graph(&src.graph().await, 60_000).await;
    let (store, keys) = common::store();
    let m = backup_core::backup(
        &store,
        &mut Neo4jSource::new(src.config()),
        BackupOptions::new("g", keys.encryption()),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = PrivateServer::start(dir.path(), 27788, 22588).ready().await;
    let cfg = server.config();
    let opts = Neo4jSinkOptions {
        node_batch: 2_000,
        relationship_batch: 2_000,
        ..Default::default()
    };
    let restore = tokio::spawn({
        let (store, m, cfg) = (store.clone(), m.clone(), cfg.clone());
        let ro = restore_options(&keys);
        async move {
            backup_core::restore(&store, &m, "data", &mut Neo4jSink::new(cfg, opts), &ro).await
        }
    });
    // Wait until some nodes are in, then crash the server.
    let g = server.graph();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if count(&g, "MATCH (n:Person) RETURN count(n) AS c").await > 4_000 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "import did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();
    let err = tokio::time::timeout(Duration::from_secs(120), restore)
        .await
        .expect("the restore must not hang")
        .unwrap()
        .expect_err("import must fail when the server goes away");
    let msg = err.to_string();
    assert!(msg.contains("could NOT be rolled back"), "{msg}");
    assert!(
        msg.contains("remove_interrupted_import"),
        "tells how to clean up: {msg}"
    );
    // After the server is back, the documented clean-up leaves it as it was: empty.
    drop(server);
    let server = PrivateServer::start(dir.path(), 27788, 22588).ready().await;
    let removed = Neo4jSink::remove_interrupted_import(&server.config())
        .await
        .unwrap();
    assert!(removed > 0);
    assert_eq!(snapshot(&server.config()).await, (0, 0, vec![]));
}
