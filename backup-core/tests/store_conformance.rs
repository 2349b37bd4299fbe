//! The store conformance suite (`backup_core::conformance::store`) on every store
//! dbseal supports: the local file system, memory and S3 (SeaweedFS).

mod common;

use backup_core::conformance::store;
use backup_core::BackupStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    store::run(
        &BackupStore::open(&url, &Default::default())
            .unwrap()
            .with_trust(backup_core::Trust::ephemeral().unwrap()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_path_file_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("backups");
    store::run(
        &BackupStore::open(path.to_str().unwrap(), &Default::default())
            .unwrap()
            .with_trust(backup_core::Trust::ephemeral().unwrap()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() {
    store::run(
        &BackupStore::open("memory://", &Default::default())
            .unwrap()
            .with_trust(backup_core::Trust::ephemeral().unwrap()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_with_prefix_conforms() {
    store::run(
        &BackupStore::open("memory://some/prefix", &Default::default())
            .unwrap()
            .with_trust(backup_core::Trust::ephemeral().unwrap()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_conforms() {
    // A store under a unique prefix of the test bucket (the test fails, as the other
    // S3 tests do, when DBSEAL_TEST_S3_* are not set).
    let store = common::s3_store("conformance");
    store::run(&store).await;
    common::empty_store(&store).await;
}
