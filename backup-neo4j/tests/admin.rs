//! The offline neo4j-admin path, against a FAKE `neo4j-admin` (the real binary is not
//! installable here): a shell script emulating the documented CLI
//! `neo4j-admin database dump --to-stdout DB` and
//! `neo4j-admin database load --from-stdin --overwrite-destination=true|false DB`,
//! including Community Edition's refusal to touch a running database and the refusal
//! to overwrite an existing one without `--overwrite-destination=true`. It swaps the loaded
//! database in only after reading its whole input, as the real tool does.

use std::path::{Path, PathBuf};

use backup_core::{BackupOptions, BackupStore, ErrorKind, KeyPair, RestoreOptions};
use backup_neo4j::{Neo4jAdminSink, Neo4jAdminSource};

const FAKE_NEO4J_ADMIN: &str = r#"#!/bin/sh
# FAKE neo4j-admin for dbseal's tests (not Neo4j's tool).
home="$(dirname "$0")/data"
[ "$1" = database ] || { echo "Unmatched argument: $1" >&2; exit 2; }
case "$2" in
  dump)
    [ "$3" = --to-stdout ] || { echo "usage: dump --to-stdout DB" >&2; exit 2; }
    db=$4
    [ -e "$home/$db.running" ] && { echo "The database is in use. Stop database '$db' and try again." >&2; exit 1; }
    [ -f "$home/$db.db" ] || { echo "Database does not exist: $db" >&2; exit 1; }
    cat "$home/$db.db" ;;
  load)
    [ "$3" = --from-stdin ] || { echo "usage: load --from-stdin --overwrite-destination=true|false DB" >&2; exit 2; }
    case "$4" in --overwrite-destination=true|--overwrite-destination=false) ;; *) echo "usage: load --from-stdin --overwrite-destination=true|false DB" >&2; exit 2 ;; esac
    db=$5
    [ -e "$home/$db.running" ] && { echo "The database is in use. Stop database '$db' and try again." >&2; exit 1; }
    [ "$4" = --overwrite-destination=false ] && [ -f "$home/$db.db" ] && { echo "Database already exists: $db. Use --overwrite-destination to replace it." >&2; exit 1; }
    cat > "$home/$db.loading" || exit 1
    mv "$home/$db.loading" "$home/$db.db" ;;
  *) echo "Unmatched argument: $2" >&2; exit 2 ;;
esac
"#;

fn fake_admin(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let bin = dir.join("neo4j-admin");
    std::fs::write(&bin, FAKE_NEO4J_ADMIN).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn dump_bytes() -> Vec<u8> {
    // 3 MiB of varied bytes: many pipeline chunks.
    (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn setup() -> (tempfile::TempDir, PathBuf, BackupStore, KeyPair) {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_admin(dir.path());
    std::fs::write(dir.path().join("data/graph.db"), dump_bytes()).unwrap();
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    (dir, bin, store, KeyPair::generate())
}

fn ro(keys: &KeyPair) -> RestoreOptions {
    RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn offline_dump_and_load_round_trip_through_a_sealed_artifact() {
    let (dir, bin, store, keys) = setup();
    let m = backup_core::backup(
        &store,
        &mut Neo4jAdminSource::new(&bin, "graph"),
        BackupOptions::new("g", keys.encryption()),
    )
    .await
    .unwrap();
    assert_eq!(m.datastore.kind, "neo4j");
    assert_eq!(m.artifact.format, "neo4j-dump");
    assert!(
        m.artifact.key.ends_with("data.neo4j-dump.zst.age"),
        "{}",
        m.artifact.key
    );
    assert_eq!(m.artifact.plaintext_size, 3 * 1024 * 1024);
    assert_eq!(
        m.contents.facts["dump_bytes"],
        (3 * 1024 * 1024).to_string()
    );
    assert_eq!(m.source["method"], "neo4j-admin database dump (offline)");
    let report = backup_core::restore(
        &store,
        &m,
        "data",
        &mut Neo4jAdminSink::new(&bin, "copy"),
        &ro(&keys),
    )
    .await
    .unwrap();
    assert_eq!(report.bytes, 3 * 1024 * 1024);
    assert_eq!(
        std::fs::read(dir.path().join("data/copy.db")).unwrap(),
        dump_bytes()
    );
}

#[tokio::test]
async fn a_running_database_is_refused_with_a_hint_and_no_manifest() {
    let (dir, bin, store, keys) = setup();
    std::fs::write(dir.path().join("data/graph.running"), b"").unwrap();
    let err = backup_core::backup(
        &store,
        &mut Neo4jAdminSource::new(&bin, "graph"),
        BackupOptions::new("g", keys.encryption()),
    )
    .await
    .expect_err("running database");
    let msg = err.to_string();
    assert!(msg.contains("Stop database 'graph'"), "{msg}");
    assert!(msg.contains("stopped database"), "{msg}");
    assert!(store.list(None).await.unwrap().is_empty());
    // Load into a running database: refused, target untouched.
    std::fs::remove_file(dir.path().join("data/graph.running")).unwrap();
    let m = backup_core::backup(
        &store,
        &mut Neo4jAdminSource::new(&bin, "graph"),
        BackupOptions::new("g", keys.encryption()),
    )
    .await
    .unwrap();
    std::fs::write(dir.path().join("data/live.db"), b"old").unwrap();
    std::fs::write(dir.path().join("data/live.running"), b"").unwrap();
    let err = backup_core::restore(
        &store,
        &m,
        "data",
        &mut Neo4jAdminSink::new(&bin, "live").replace(true),
        &ro(&keys),
    )
    .await
    .expect_err("running target");
    assert!(err.to_string().contains("in use"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("data/live.db")).unwrap(),
        b"old"
    );
}

#[tokio::test]
async fn a_missing_binary_or_database_is_a_clear_error() {
    let (_dir, bin, store, keys) = setup();
    let err = backup_core::backup(
        &store,
        &mut Neo4jAdminSource::new("/nonexistent/neo4j-admin", "graph"),
        BackupOptions::new("g", keys.encryption()),
    )
    .await
    .expect_err("missing binary");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(
        err.to_string().contains("/nonexistent/neo4j-admin"),
        "{err}"
    );
    let err = backup_core::backup(
        &store,
        &mut Neo4jAdminSource::new(&bin, "nope"),
        BackupOptions::new("g", keys.encryption()),
    )
    .await
    .expect_err("unknown database");
    assert!(
        err.to_string().contains("Database does not exist: nope"),
        "{err}"
    );
    assert!(store.list(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_damaged_artifact_never_completes_a_load() {
    let (dir, bin, store, keys) = setup();
    let m = backup_core::backup(
        &store,
        &mut Neo4jAdminSource::new(&bin, "graph"),
        BackupOptions::new("g", keys.encryption()),
    )
    .await
    .unwrap();
    let mut data = store.get_bytes(&m.artifact.key).await.unwrap().to_vec();
    let i = data.len() - 10;
    data[i] ^= 1;
    store.put_bytes(&m.artifact.key, data).await.unwrap();
    std::fs::write(dir.path().join("data/target.db"), b"previous contents").unwrap();
    let err = backup_core::restore(
        &store,
        &m,
        "data",
        &mut Neo4jAdminSink::new(&bin, "target").replace(true),
        &ro(&keys),
    )
    .await
    .expect_err("damaged artifact");
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("data/target.db")).unwrap(),
        b"previous contents"
    );
}

#[tokio::test]
async fn an_existing_database_is_overwritten_only_with_replace() {
    let (dir, bin, store, keys) = setup();
    let m = backup_core::backup(
        &store,
        &mut Neo4jAdminSource::new(&bin, "graph"),
        BackupOptions::new("g", keys.encryption()),
    )
    .await
    .unwrap();
    std::fs::write(dir.path().join("data/kept.db"), b"previous contents").unwrap();
    let err = backup_core::restore(
        &store,
        &m,
        "data",
        &mut Neo4jAdminSink::new(&bin, "kept"),
        &ro(&keys),
    )
    .await
    .expect_err("an existing database without replace");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("data/kept.db")).unwrap(),
        b"previous contents"
    );
    backup_core::restore(
        &store,
        &m,
        "data",
        &mut Neo4jAdminSink::new(&bin, "kept").replace(true),
        &ro(&keys),
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("data/kept.db")).unwrap(),
        dump_bytes()
    );
}
