//! A backup that fails commits no manifest: a source failing midway, a format reader
//! rejecting the stream, an unreachable store. Earlier backups stay listed and
//! restorable, and what a failed backup leaves behind is reported as incomplete, never
//! as a backup.

mod common;

use std::sync::Arc;
use std::time::Instant;

use backup_core::contents::FormatReader;
use backup_core::{
    BackupOptions, BackupSession, BackupStore, Contents, Error, ErrorKind, KeyPair, Manifest,
    RestoreOptions,
};
use common::{GeneratedSource, RecordingSink};

/// Makes one good backup and returns it with its key.
async fn earlier_backup(store: &BackupStore, keys: &KeyPair) -> Manifest {
    let mut source = GeneratedSource::new(21, 3 * 1024 * 1024);
    backup_core::backup(
        store,
        &mut source,
        BackupOptions::new("app", keys.encryption()),
    )
    .await
    .expect("the earlier backup")
}

/// The earlier backup is still the only one listed, and it restores intact.
async fn earlier_backup_survives(store: &BackupStore, keys: &KeyPair, earlier: &Manifest) {
    let listed = store.list(None).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|m| m.backup_id.to_string()).collect();
    assert_eq!(ids, vec![earlier.backup_id.to_string()]);
    let opts = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };
    let mut sink = RecordingSink::default();
    backup_core::restore(store, earlier, "data", &mut sink, &opts)
        .await
        .expect("the earlier backup restores");
    assert!(sink.saw_eof);
    assert_eq!(sink.sha256.unwrap(), earlier.artifact.plaintext_sha256);
}

/// A source that fails after 20 MiB (several upload parts): the source's own error is
/// reported, no manifest is committed, the aborted upload leaves nothing listed.
async fn failing_source(store: BackupStore) {
    let keys = KeyPair::generate();
    let earlier = earlier_backup(&store, &keys).await;
    let mut source = GeneratedSource::new(22, 64 * 1024 * 1024);
    source.fail_after = Some(20 * 1024 * 1024);
    let err = backup_core::backup(
        &store,
        &mut source,
        BackupOptions::new("app", keys.encryption()),
    )
    .await
    .expect_err("a failing source fails the backup");
    // The source's own error, not a neighbour stage that stopped because of it.
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.to_string().contains("connection lost after"), "{err}");
    earlier_backup_survives(&store, &keys, &earlier).await;
    let scan = store.scan(None).await.unwrap();
    assert_eq!(scan.backups.len(), 1);
    assert!(scan.unreadable.is_empty(), "{:?}", scan.unreadable);
    // The upload was aborted: no partial artifact is left (S3 aborts the multipart
    // upload, the file store removes its staging file).
    assert!(scan.incomplete.is_empty(), "{:?}", scan.incomplete);
    let keys_left: Vec<String> = store
        .list_keys("")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    // The earlier backup's artifact, manifest and signature.
    assert_eq!(keys_left.len(), 3, "{keys_left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_source_commits_no_manifest_file_store() {
    let dir = tempfile::tempdir().unwrap();
    failing_source(
        BackupStore::open(dir.path().to_str().unwrap(), &Default::default())
            .unwrap()
            .with_trust(backup_core::Trust::ephemeral().unwrap()),
    )
    .await;
    // Not even a staging file is left on disk.
    let mut files = Vec::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    assert_eq!(files.len(), 3, "artifact, manifest, signature: {files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_source_commits_no_manifest_memory_store() {
    failing_source(
        BackupStore::open("memory://", &Default::default())
            .unwrap()
            .with_trust(backup_core::Trust::ephemeral().unwrap()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_source_commits_no_manifest_s3_store() {
    let store = common::s3_store("failing-source");
    failing_source(store.clone()).await;
    common::empty_store(&store).await;
}

/// A format reader that rejects the stream (like a truncated pg_dump archive).
struct RejectingFormat;

impl FormatReader for RejectingFormat {
    fn format(&self) -> &str {
        "picky"
    }
    fn read_contents(&self, input: &mut dyn std::io::Read) -> backup_core::Result<Contents> {
        let mut head = [0u8; 4];
        input
            .read_exact(&mut head)
            .map_err(|e| Error::io("reading", e))?;
        Err(Error::Format {
            format: "picky".into(),
            reason: format!("bad magic {head:?} at offset 0"),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_the_format_reader_rejects_commits_no_manifest() {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let earlier = earlier_backup(&store, &keys).await;
    let mut source = common::bytes_source(common::DataGen::bytes(23, 2 * 1024 * 1024))
        .with_format(Arc::new(RejectingFormat));
    let err = backup_core::backup(
        &store,
        &mut source,
        BackupOptions::new("app", keys.encryption()),
    )
    .await
    .expect_err("an unparsable stream fails the backup");
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert!(
        err.to_string()
            .contains("picky stream is invalid: bad magic"),
        "{err}"
    );
    earlier_backup_survives(&store, &keys, &earlier).await;
}

/// Every object key under the datastore `app` except those of `earlier`.
async fn keys_besides(store: &BackupStore, earlier: &Manifest) -> Vec<String> {
    let folder = format!("app/{}/", earlier.backup_id);
    store
        .list_keys("app")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| !k.starts_with(&folder))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_second_artifact_deletes_what_the_session_uploaded() {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let earlier = earlier_backup(&store, &keys).await;
    let mut session =
        BackupSession::start(&store, BackupOptions::new("app", keys.encryption())).unwrap();
    let id = session.id().clone();
    session
        .write_artifact("data", &mut GeneratedSource::new(24, 1024 * 1024))
        .await
        .unwrap();
    assert_eq!(
        keys_besides(&store, &earlier).await,
        vec![format!("app/{id}/data.raw.zst.age")],
        "the first artifact is uploaded"
    );
    let mut failing = GeneratedSource::new(25, 4 * 1024 * 1024);
    failing.fail_after = Some(1024 * 1024);
    session
        .write_artifact("globals", &mut failing)
        .await
        .expect_err("the second artifact fails");
    drop(session);

    earlier_backup_survives(&store, &keys, &earlier).await;
    let err = store.manifest(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(keys_besides(&store, &earlier).await, Vec::<String>::new());
    assert!(store.scan(None).await.unwrap().incomplete.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_backup_stops_commits_nothing_and_deletes_its_uploads() {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let earlier = earlier_backup(&store, &keys).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let options = BackupOptions::new("app", keys.encryption()).with_cancel(cancel.clone());
    let mut session = BackupSession::start(&store, options).unwrap();
    session
        .write_artifact("data", &mut GeneratedSource::new(26, 1024 * 1024))
        .await
        .unwrap();
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            cancel.cancel();
        })
    };
    let started = Instant::now();
    // Far more than can be written in 100 ms.
    let err = session
        .write_artifact("globals", &mut GeneratedSource::new(27, 64 << 30))
        .await
        .unwrap_err();
    canceller.await.unwrap();
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");
    assert!(
        started.elapsed().as_secs() < 30,
        "cancellation took {:?}",
        started.elapsed()
    );
    let err = session
        .commit("test", Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");
    earlier_backup_survives(&store, &keys, &earlier).await;
    assert_eq!(keys_besides(&store, &earlier).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_cancelled_before_it_starts_writes_nothing() {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let cancel = tokio_util::sync::CancellationToken::new();
    cancel.cancel();
    let options = BackupOptions::new("app", KeyPair::generate().encryption()).with_cancel(cancel);
    let err = backup_core::backup(&store, &mut GeneratedSource::new(1, 1024), options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted, "{err}");
    assert!(store.list_keys("").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_without_artifacts_cannot_commit() {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let session = BackupSession::start(
        &store,
        BackupOptions::new("app", KeyPair::generate().encryption()),
    )
    .unwrap();
    let err = session
        .commit("test", Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(store.list_keys("").await.unwrap().is_empty());
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_store_commits_nothing_and_says_which_store() {
    // A real store with an earlier backup...
    let url = common::s3_url("unreachable");
    let options = common::s3_options();
    let store = BackupStore::open(&url, &options)
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let earlier = earlier_backup(&store, &keys).await;

    // ...and the same bucket through an endpoint on a closed port.
    let mut bad = options.clone();
    bad.insert(
        "aws_endpoint".into(),
        format!("http://127.0.0.1:{}", closed_port()),
    );
    let unreachable = BackupStore::open(&url, &bad)
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let t = Instant::now();
    let mut source = GeneratedSource::new(26, 1024 * 1024);
    let err = backup_core::backup(
        &unreachable,
        &mut source,
        BackupOptions::new("app", keys.encryption()),
    )
    .await
    .expect_err("a backup into an unreachable store fails");
    eprintln!(
        "unreachable store: failed after {:.1}s: {err}",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&url), "the store is not named: {msg}");
    assert!(
        !msg.contains(&common::env("DBSEAL_TEST_S3_SECRET_KEY")),
        "{msg}"
    );
    let err = unreachable.list(None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");

    earlier_backup_survives(&store, &keys, &earlier).await;
    assert!(store.scan(None).await.unwrap().incomplete.is_empty());
    common::empty_store(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_store_credentials_are_a_connection_error() {
    let url = common::s3_url("wrong-credentials");
    let mut options = common::s3_options();
    options.insert("aws_secret_access_key".into(), "not-the-secret-0000".into());
    let store = BackupStore::open(&url, &options)
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let err = backup_core::backup(
        &store,
        &mut GeneratedSource::new(27, 1024),
        BackupOptions::new("app", keys.encryption()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(!err.to_string().contains("not-the-secret-0000"), "{err}");
    let good = BackupStore::open(&url, &common::s3_options())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    assert!(good.list_keys("").await.unwrap().is_empty());
}

/// Committing a manifest never replaces one: the second commit of the same backup id
/// is refused and the first manifest stays as it was.
async fn manifest_commit_is_create_only(store: BackupStore) {
    let keys = KeyPair::generate();
    let first = earlier_backup(&store, &keys).await;
    let mut second = first.clone();
    second.labels.insert("forged".into(), "yes".into());
    let err = store.commit_manifest(&second).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.to_string().contains(first.backup_id.as_str()), "{err}");
    assert_eq!(store.manifest(&first.backup_id).await.unwrap(), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_commit_is_create_only_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    manifest_commit_is_create_only(
        BackupStore::open(dir.path().to_str().unwrap(), &Default::default())
            .unwrap()
            .with_trust(backup_core::Trust::ephemeral().unwrap()),
    )
    .await;
    manifest_commit_is_create_only(
        BackupStore::open("memory://", &Default::default())
            .unwrap()
            .with_trust(backup_core::Trust::ephemeral().unwrap()),
    )
    .await;
    let s3 = common::s3_store("create-only");
    manifest_commit_is_create_only(s3.clone()).await;
    common::empty_store(&s3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_are_refused_before_anything_is_written() {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    for (datastore, level) in [("../escape", 3), ("", 3), ("ok", 0), ("ok", 23)] {
        let mut opts = BackupOptions::new(datastore, keys.encryption());
        opts.zstd_level = level;
        let err = backup_core::backup(&store, &mut GeneratedSource::new(28, 1024), opts)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    }
    assert!(store.list_keys("").await.unwrap().is_empty());
    for bad in ["s3x://bucket", "ftp://host/x"] {
        let err = BackupStore::open(bad, &Default::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains(bad), "{err}");
    }
}
