//! Round trips through every store and every kind of key: what is restored is exactly
//! what was backed up.

mod common;

/// The embedding example, run as a test.
#[path = "../examples/embed.rs"]
#[allow(dead_code)]
mod embed;

use std::time::Instant;

use backup_core::{
    BackupOptions, BackupStore, Decryption, Encryption, FormatRegistry, KeyPair, RestoreOptions,
    SecretString, VerifyLevel,
};
use common::{GeneratedSource, RecordingSink};

const GIB: u64 = 1024 * 1024 * 1024;

/// Backs up 1 GiB of generated data into `store`, checks the manifest against what the
/// source wrote, verifies at levels 1 and 2, restores and compares SHA-256.
async fn one_gib_round_trip(store: &BackupStore, seed: u64) {
    let keys = KeyPair::generate();
    let t = Instant::now();
    let mut source = GeneratedSource::new(seed, GIB);
    let manifest = backup_core::backup(
        store,
        &mut source,
        BackupOptions::new("big", keys.encryption()),
    )
    .await
    .expect("backup of 1 GiB");
    let backup_time = t.elapsed();
    let written = source.written();
    assert_eq!(written.bytes, GIB);
    assert_eq!(manifest.artifact.plaintext_size, GIB);
    assert_eq!(manifest.artifact.plaintext_sha256, written.sha256);
    assert!(
        manifest.artifact.stored_size < GIB / 2,
        "compressible data should shrink: {} bytes stored",
        manifest.artifact.stored_size
    );

    // The stored object is the size the manifest says.
    assert_eq!(
        store.size_of(&manifest.artifact.key).await.unwrap(),
        Some(manifest.artifact.stored_size)
    );
    // The manifest reads back from the store, and the backup is listed.
    let read = store.manifest(&manifest.backup_id).await.unwrap();
    assert_eq!(read, manifest);
    let listed = store.list(Some("big")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].backup_id, manifest.backup_id);

    let opts = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };
    let stored = backup_core::verify_stored(store, &manifest).await.unwrap();
    assert_eq!(stored.level, VerifyLevel::Stored);

    let t = Instant::now();
    let mut sink = RecordingSink::default();
    let report = backup_core::restore(store, &manifest, "data", &mut sink, &opts)
        .await
        .expect("restore of 1 GiB");
    let restore_time = t.elapsed();
    assert!(sink.saw_eof);
    assert_eq!(report.bytes, GIB);
    assert_eq!(sink.bytes, GIB);
    assert_eq!(sink.sha256.as_deref(), Some(written.sha256.as_str()));

    let content =
        backup_core::verify_content(store, &manifest, &FormatRegistry::new(), &opts).await;
    assert_eq!(
        content.expect("level-2 verification").level,
        VerifyLevel::Content
    );
    eprintln!(
        "{}: 1 GiB backup {:.1}s, restore {:.1}s, stored {} bytes",
        store.url(),
        backup_time.as_secs_f64(),
        restore_time.as_secs_f64(),
        manifest.artifact.stored_size
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_round_trip_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let store = BackupStore::open(&url, &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    one_gib_round_trip(&store, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_round_trip_memory_store() {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    one_gib_round_trip(&store, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_round_trip_s3_store() {
    let store = common::s3_store("roundtrip-1gib");
    one_gib_round_trip(&store, 3).await;
    common::empty_store(&store).await;
}

/// A small backup and restore with the given keys; returns the manifest.
async fn small_round_trip(
    store: &BackupStore,
    encryption: Encryption,
    decryption: Decryption,
) -> backup_core::Manifest {
    let data = common::DataGen::bytes(7, 3 * 1024 * 1024 + 17);
    let mut source = common::bytes_source(data.clone());
    let manifest = backup_core::backup(store, &mut source, BackupOptions::new("keys", encryption))
        .await
        .expect("backup");
    let opts = RestoreOptions {
        decryption: Some(decryption.into()),
        ..Default::default()
    };
    let mut sink = RecordingSink::keeping();
    backup_core::restore(store, &manifest, "data", &mut sink, &opts)
        .await
        .expect("restore");
    assert!(sink.saw_eof);
    assert!(sink.data == data, "restored bytes differ");
    backup_core::verify_content(store, &manifest, &FormatRegistry::new(), &opts)
        .await
        .expect("level-2 verification");
    manifest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_round_trip() {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let passphrase = "correct horse battery staple 8c1f";
    let manifest = small_round_trip(
        &store,
        Encryption::Passphrase(SecretString::new(passphrase)),
        Decryption::from_passphrase(SecretString::new(passphrase)),
    )
    .await;
    // The manifest says a passphrase was used and records no recipient and no secret.
    let json = String::from_utf8(manifest.to_json()).unwrap();
    assert!(!json.contains(passphrase), "{json}");
    let age = manifest
        .transforms
        .iter()
        .find(|t| t.suffix() == "age")
        .expect("an age transform");
    assert_eq!(
        serde_json::to_value(age).unwrap(),
        serde_json::json!({"type": "age", "recipients": [], "passphrase": true})
    );

    // A wrong passphrase is a decryption error naming the backup and the key.
    let wrong = RestoreOptions {
        decryption: Some(Decryption::from_passphrase(SecretString::new("not it")).into()),
        ..Default::default()
    };
    let mut sink = RecordingSink::default();
    let err = backup_core::restore(&store, &manifest, "data", &mut sink, &wrong)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), backup_core::ErrorKind::Decryption, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(manifest.backup_id.as_str()), "{msg}");
    assert!(msg.contains(&manifest.artifact.key), "{msg}");
    assert!(!msg.contains("not it"), "{msg}");
    assert!(!sink.saw_eof);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_ed25519_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "dbseal-test", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen must be installed (openssh-client): run scripts/install-deps.sh");
    assert!(status.success());
    let public = std::fs::read_to_string(dir.path().join("id_ed25519.pub")).unwrap();
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let manifest = small_round_trip(
        &store,
        Encryption::parse_recipients(&[public.trim()]).unwrap(),
        Decryption::from_identity_file(&key).unwrap(),
    )
    .await;
    let age = serde_json::to_value(manifest.transforms.last().unwrap()).unwrap();
    assert_eq!(age["recipients"][0], public.trim(), "{age}");
    let private = std::fs::read_to_string(&key).unwrap();
    let body = private.lines().nth(1).unwrap();
    assert!(!String::from_utf8(manifest.to_json())
        .unwrap()
        .contains(body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_recipients_each_decrypt() {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let (a, b) = (KeyPair::generate(), KeyPair::generate());
    let enc =
        Encryption::parse_recipients(&[format!("{},{}", a.recipient(), b.recipient())]).unwrap();
    let manifest = small_round_trip(&store, enc, a.decryption()).await;
    let opts = RestoreOptions {
        decryption: Some(b.decryption().into()),
        ..Default::default()
    };
    let mut sink = RecordingSink::default();
    backup_core::restore(&store, &manifest, "data", &mut sink, &opts)
        .await
        .expect("the second recipient decrypts too");
    assert!(sink.saw_eof);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_stream_round_trip_on_s3() {
    let store = common::s3_store("empty");
    let keys = KeyPair::generate();
    let mut source = common::bytes_source(Vec::new());
    let manifest = backup_core::backup(
        &store,
        &mut source,
        BackupOptions::new("e", keys.encryption()),
    )
    .await
    .unwrap();
    assert_eq!(manifest.artifact.plaintext_size, 0);
    assert_eq!(manifest.artifact.plaintext_sha256, common::sha256_hex(b""));
    let opts = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };
    let mut sink = RecordingSink::keeping();
    backup_core::restore(&store, &manifest, "data", &mut sink, &opts)
        .await
        .unwrap();
    assert!(sink.saw_eof);
    assert!(sink.data.is_empty());
    common::empty_store(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedding_example_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::DataGen::bytes(5, 2 * 1024 * 1024);
    let restored = embed::run(dir.path().to_str().unwrap(), data.clone())
        .await
        .expect("the example runs");
    assert!(restored == data, "the example restored different bytes");
    let restored = embed::run("memory://", b"x".to_vec()).await.unwrap();
    assert_eq!(restored, b"x");
}
