//! The store suite: everything dbseal relies on from a [`BackupStore`], checked the
//! same way on every store (file, memory, S3). Call [`run`] with a store that is empty
//! or used by nothing else; each check works in datastore folders of its own
//! (`conf-…`), so they may also be called one by one.
//!
//! What is checked:
//! - [`round_trips`]: backups of 0 bytes, a few bytes and several MiB (more than one
//!   upload part) restore byte for byte; the stored object has the recorded size;
//!   level-1 and level-2 verification pass.
//! - [`streaming_upload`]: a multipart upload in odd-sized chunks reads back whole and
//!   streamed; an aborted upload leaves no object behind.
//! - [`small_objects`]: put, overwrite, create-only put, size, delete of a missing key,
//!   listing with keys relative to the store root, a missing key is `NotFound`.
//! - [`manifest_is_create_only`]: a second commit of the same backup id is refused
//!   ([`ErrorKind::Refused`]) and the first manifest stays as it was.
//! - [`list_ignores_backup_without_manifest`]: an artifact without a manifest is
//!   incomplete, never listed, and its id is not found.
//! - [`manifest_lookup`]: a manifest is found by id in whichever datastore holds it,
//!   lists are per datastore and oldest first, reserved `_` folders are no datastore.
//! - [`delete_backup`]: deleting a backup removes the manifest first and every object.
//! - [`verification_records`]: a record is written, read, overwritten and listed, and
//!   does not make a folder a backup.
//! - [`damaged_artifacts`]: a flipped byte or a truncation fails level-1 verification
//!   and restore with [`ErrorKind::Verification`] naming the backup and the key, and the
//!   sink never sees a clean end of stream.
//! - [`missing_artifact`]: a manifest whose artifact is gone fails restore and level-1
//!   verification with [`ErrorKind::Verification`], not `NotFound`.

use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::conformance::generated_bytes;
use crate::sink::StreamReader;
use crate::store::{BackupStore, VerificationRecord, UPLOAD_PART_SIZE};
use crate::{
    BackupId, BackupOptions, BackupSession, ErrorKind, FormatRegistry, KeyPair, Manifest,
    ReaderSource, RestoreOptions, Sink, SinkReport,
};

/// Runs every check of the suite on `store`.
pub async fn run(store: &BackupStore) {
    small_objects(store).await;
    streaming_upload(store).await;
    round_trips(store).await;
    manifest_is_create_only(store).await;
    list_ignores_backup_without_manifest(store).await;
    manifest_lookup(store).await;
    delete_backup(store).await;
    verification_records(store).await;
    damaged_artifacts(store).await;
    missing_artifact(store).await;
}

/// A sink that keeps what it receives and records whether it saw a clean end.
#[derive(Default)]
struct KeepingSink {
    data: Vec<u8>,
    clean_end: bool,
}

#[async_trait::async_trait]
impl Sink for KeepingSink {
    async fn restore(
        &mut self,
        _manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> crate::Result<SinkReport> {
        input
            .read_to_end(&mut self.data)
            .await
            .map_err(|e| crate::Error::from_io(e, "conformance sink: reading"))?;
        self.clean_end = true;
        Ok(SinkReport {
            bytes: self.data.len() as u64,
            summary: Vec::new(),
        })
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Backs `data` up into datastore `datastore` and returns the manifest.
async fn backup_bytes(
    store: &BackupStore,
    keys: &KeyPair,
    datastore: &str,
    data: Vec<u8>,
) -> Manifest {
    let mut source = ReaderSource::new(std::io::Cursor::new(data), "conformance");
    crate::backup(
        store,
        &mut source,
        BackupOptions::new(datastore, keys.encryption()),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: backup into `{datastore}`: {e}", store.url()))
}

fn restore_options(keys: &KeyPair) -> RestoreOptions {
    RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    }
}

async fn restore_bytes(
    store: &BackupStore,
    manifest: &Manifest,
    keys: &KeyPair,
) -> crate::Result<Vec<u8>> {
    let mut sink = KeepingSink::default();
    crate::restore(store, manifest, "data", &mut sink, &restore_options(keys)).await?;
    assert!(
        sink.clean_end,
        "{}: restore succeeded without a clean end",
        store.url()
    );
    Ok(sink.data)
}

/// Restores `manifest` expecting failure: returns the error after checking the sink
/// never saw a clean end of stream.
async fn failed_restore(store: &BackupStore, manifest: &Manifest, keys: &KeyPair) -> crate::Error {
    let mut sink = KeepingSink::default();
    let result = crate::restore(store, manifest, "data", &mut sink, &restore_options(keys)).await;
    let err = match result {
        Ok(_) => panic!(
            "{}: restore of damaged backup {} succeeded",
            store.url(),
            manifest.backup_id
        ),
        Err(e) => e,
    };
    assert!(
        !sink.clean_end,
        "{}: the sink saw a clean end of stream of a damaged artifact ({err})",
        store.url()
    );
    err
}

fn assert_names(err: &crate::Error, manifest: &Manifest, store: &BackupStore) {
    let msg = err.to_string();
    assert!(
        msg.contains(manifest.backup_id.as_str()) && msg.contains(&manifest.artifact.key),
        "{}: the error does not name the backup and the key: {msg}",
        store.url()
    );
}

fn assert_kind(err: &crate::Error, kind: ErrorKind, store: &BackupStore, what: &str) {
    assert_eq!(err.kind(), kind, "{}: {what}: {err}", store.url());
}

async fn keys_under(store: &BackupStore, folder: &str) -> Vec<String> {
    let mut keys: Vec<String> = store
        .list_keys(folder)
        .await
        .unwrap_or_else(|e| panic!("{}: list {folder}: {e}", store.url()))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    keys.sort();
    keys
}

/// Backups of 0 bytes, 1,000 bytes and 24 MiB (more than one upload part once
/// compressed and encrypted) restore byte for byte; the stored object has the size the
/// manifest records; the manifest reads back equal; levels 1 and 2 pass.
pub async fn round_trips(store: &BackupStore) {
    let keys = KeyPair::generate();
    for (seed, len) in [(1u64, 0usize), (2, 1000), (3, 24 * 1024 * 1024)] {
        let data = generated_bytes(seed, len);
        let manifest = backup_bytes(store, &keys, "conf-roundtrip", data.clone()).await;
        let url = store.url();
        assert_eq!(manifest.artifact.plaintext_size, len as u64, "{url}");
        assert_eq!(
            manifest.artifact.plaintext_sha256,
            sha256_hex(&data),
            "{url}"
        );
        assert_eq!(
            store.size_of(&manifest.artifact.key).await.unwrap(),
            Some(manifest.artifact.stored_size),
            "{url}: stored size of {len} bytes"
        );
        if len > 1000 {
            assert!(
                manifest.artifact.stored_size > UPLOAD_PART_SIZE as u64,
                "{url}: the multi-MiB artifact should span several upload parts ({} bytes)",
                manifest.artifact.stored_size
            );
        }
        let read = store.manifest(&manifest.backup_id).await.unwrap();
        assert_eq!(read, manifest, "{url}: the manifest reads back different");
        let restored = restore_bytes(store, &manifest, &keys)
            .await
            .unwrap_or_else(|e| panic!("{url}: restore of {len} bytes: {e}"));
        assert!(restored == data, "{url}: {len} bytes restored different");
        crate::verify_stored(store, &manifest)
            .await
            .unwrap_or_else(|e| panic!("{url}: level 1 of {len} bytes: {e}"));
        crate::verify_content(
            store,
            &manifest,
            &FormatRegistry::new(),
            &restore_options(&keys),
        )
        .await
        .unwrap_or_else(|e| panic!("{url}: level 2 of {len} bytes: {e}"));
    }
    let listed = store.list(Some("conf-roundtrip")).await.unwrap();
    assert_eq!(listed.len(), 3, "{}: {listed:?}", store.url());
}

/// A streaming upload of 2.5 parts in odd-sized chunks reads back whole and streamed;
/// an upload aborted after more than one part leaves no object (and no listed debris).
pub async fn streaming_upload(store: &BackupStore) {
    let url = store.url();
    let data = generated_bytes(4, UPLOAD_PART_SIZE * 5 / 2 + 7);
    let key = "conf-upload/whole.bin";
    let mut upload = store.upload(key);
    for chunk in data.chunks(1024 * 1024 + 17) {
        upload
            .write(bytes::Bytes::copy_from_slice(chunk))
            .await
            .unwrap_or_else(|e| panic!("{url}: upload write: {e}"));
    }
    upload
        .finish()
        .await
        .unwrap_or_else(|e| panic!("{url}: upload finish: {e}"));
    assert_eq!(
        store.size_of(key).await.unwrap(),
        Some(data.len() as u64),
        "{url}"
    );
    let whole = store.get_bytes(key).await.unwrap();
    assert!(
        whole == data,
        "{url}: the uploaded object reads back different"
    );
    let mut streamed = Vec::new();
    let mut sizes = Vec::new();
    let mut stream = store.download(key).await.unwrap();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        sizes.push(chunk.len());
        streamed.extend_from_slice(&chunk);
    }
    assert!(
        streamed == data,
        "{url}: the uploaded object streams back different"
    );
    // Few large chunks, not many small ones: the stages downstream pay per chunk.
    sizes.pop();
    assert!(
        sizes.iter().all(|&n| n >= crate::pipe::CHUNK_SIZE),
        "{url}: the download streams chunks smaller than {} bytes: {sizes:?}",
        crate::pipe::CHUNK_SIZE
    );

    let aborted = "conf-upload-aborted/partial.bin";
    let mut upload = store.upload(aborted);
    for chunk in data.chunks(1024 * 1024) {
        upload
            .write(bytes::Bytes::copy_from_slice(chunk))
            .await
            .unwrap_or_else(|e| panic!("{url}: upload write: {e}"));
    }
    upload.abort().await;
    assert_eq!(
        store.size_of(aborted).await.unwrap(),
        None,
        "{url}: an aborted upload left an object"
    );
    assert_eq!(
        keys_under(store, "conf-upload-aborted").await,
        Vec::<String>::new(),
        "{url}: an aborted upload left debris"
    );
}

/// Small objects: put, overwrite, create-only put, size, delete (also of a missing
/// key), listing relative to the store root, and a missing key is `NotFound`.
pub async fn small_objects(store: &BackupStore) {
    let url = store.url();
    let a = "conf-small/one/a.json";
    let b = "conf-small/one/b.json";
    store.put_bytes(a, b"first".to_vec()).await.unwrap();
    store.put_bytes(a, b"second".to_vec()).await.unwrap();
    assert_eq!(
        &store.get_bytes(a).await.unwrap()[..],
        b"second",
        "{url}: overwrite"
    );
    assert!(
        !store.put_bytes_create(a, b"third".to_vec()).await.unwrap(),
        "{url}: a create-only put over an existing object succeeded"
    );
    assert_eq!(&store.get_bytes(a).await.unwrap()[..], b"second", "{url}");
    assert!(
        store.put_bytes_create(b, b"bee".to_vec()).await.unwrap(),
        "{url}"
    );
    assert_eq!(store.size_of(b).await.unwrap(), Some(3), "{url}");
    assert_eq!(
        keys_under(store, "conf-small").await,
        vec![a.to_string(), b.to_string()],
        "{url}: listing"
    );
    assert_eq!(
        keys_under(store, "conf-small/one/").await,
        vec![a.to_string(), b.to_string()],
        "{url}: listing with a trailing slash"
    );
    store.delete(a).await.unwrap();
    store
        .delete(a)
        .await
        .unwrap_or_else(|e| panic!("{url}: deleting a missing key: {e}"));
    assert_eq!(store.size_of(a).await.unwrap(), None, "{url}");
    let err = store
        .get_bytes(a)
        .await
        .expect_err("a deleted object reads");
    assert_kind(&err, ErrorKind::NotFound, store, "reading a missing key");
    let err = match store.download(a).await {
        Ok(_) => panic!("{url}: a deleted object streams"),
        Err(e) => e,
    };
    assert_kind(&err, ErrorKind::NotFound, store, "streaming a missing key");
    store.delete(b).await.unwrap();
    assert_eq!(
        keys_under(store, "conf-small").await,
        Vec::<String>::new(),
        "{url}"
    );
}

/// A second commit of a manifest with the same backup id, even with other contents,
/// is refused with [`ErrorKind::Refused`]; the first manifest stays.
pub async fn manifest_is_create_only(store: &BackupStore) {
    let keys = KeyPair::generate();
    let manifest = backup_bytes(store, &keys, "conf-create-only", generated_bytes(5, 4096)).await;
    let err = store
        .commit_manifest(&manifest)
        .await
        .expect_err("a second commit of the same manifest");
    assert_kind(
        &err,
        ErrorKind::Refused,
        store,
        "a second commit of the same id",
    );
    let mut other = manifest.clone();
    other
        .labels
        .insert("conformance".into(), "overwritten".into());
    let err = store
        .commit_manifest(&other)
        .await
        .expect_err("a commit of another manifest with the same id");
    assert_kind(
        &err,
        ErrorKind::Refused,
        store,
        "a commit over an existing id",
    );
    let read = store.manifest(&manifest.backup_id).await.unwrap();
    assert_eq!(
        read,
        manifest,
        "{}: the first manifest changed",
        store.url()
    );
}

/// An artifact written without a manifest (a failed backup) is incomplete: not listed,
/// its id not found, reported by `scan` with its key. A complete backup next to it is
/// listed.
pub async fn list_ignores_backup_without_manifest(store: &BackupStore) {
    let url = store.url();
    let keys = KeyPair::generate();
    let ds = "conf-incomplete";
    let complete = backup_bytes(store, &keys, ds, generated_bytes(6, 2048)).await;
    let mut session = BackupSession::start(store, BackupOptions::new(ds, keys.encryption()))
        .expect("start a session");
    let id = session.id().clone();
    let mut source = ReaderSource::new(
        std::io::Cursor::new(generated_bytes(7, 2048)),
        "conformance",
    );
    session
        .write_artifact("data", &mut source)
        .await
        .unwrap_or_else(|e| panic!("{url}: write an artifact: {e}"));
    drop(session);

    let listed = store.list(Some(ds)).await.unwrap();
    let ids: Vec<&BackupId> = listed.iter().map(|m| &m.backup_id).collect();
    assert_eq!(ids, vec![&complete.backup_id], "{url}: list");
    let err = store
        .manifest(&id)
        .await
        .expect_err("an incomplete backup has a manifest");
    assert_kind(
        &err,
        ErrorKind::NotFound,
        store,
        "the manifest of an incomplete backup",
    );
    let scan = store.scan(Some(ds)).await.unwrap();
    assert_eq!(scan.backups.len(), 1, "{url}");
    assert!(scan.unreadable.is_empty(), "{url}: {:?}", scan.unreadable);
    assert_eq!(scan.incomplete.len(), 1, "{url}: {:?}", scan.incomplete);
    assert_eq!(scan.incomplete[0].backup_id, id.as_str(), "{url}");
    assert_eq!(
        scan.incomplete[0].keys,
        vec![format!("{ds}/{id}/data.raw.zst.age")],
        "{url}"
    );
}

/// Manifests are found by id in whichever datastore holds them; lists are per
/// datastore and oldest first; a reserved `_` folder is never a datastore, even when it
/// holds something that looks like a manifest.
pub async fn manifest_lookup(store: &BackupStore) {
    let url = store.url();
    let keys = KeyPair::generate();
    let a1 = backup_bytes(store, &keys, "conf-lookup-a", generated_bytes(8, 100)).await;
    let b1 = backup_bytes(store, &keys, "conf-lookup-b", generated_bytes(9, 100)).await;
    // Ids sort by the second they were made in.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let a2 = backup_bytes(store, &keys, "conf-lookup-a", generated_bytes(10, 100)).await;
    for m in [&a1, &b1, &a2] {
        let found = store
            .manifest(&m.backup_id)
            .await
            .unwrap_or_else(|e| panic!("{url}: manifest {}: {e}", m.backup_id));
        assert_eq!(&found, m, "{url}");
    }
    let ids = |ms: Vec<Manifest>| ms.into_iter().map(|m| m.backup_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list(Some("conf-lookup-a")).await.unwrap()),
        vec![a1.backup_id.clone(), a2.backup_id.clone()],
        "{url}: list of one datastore, oldest first"
    );
    assert_eq!(
        ids(store.list(Some("conf-lookup-b")).await.unwrap()),
        vec![b1.backup_id.clone()],
        "{url}"
    );
    let unknown = BackupId::now();
    let err = store.manifest(&unknown).await.expect_err("an unknown id");
    assert_kind(&err, ErrorKind::NotFound, store, "an unknown id");

    // A reserved folder holding a manifest-shaped object.
    let hidden = BackupId::now();
    let mut fake = a1.clone();
    fake.backup_id = hidden.clone();
    fake.datastore.name = "_conf".into();
    store
        .put_bytes(&format!("_conf/{hidden}/manifest.json"), fake.to_json())
        .await
        .unwrap();
    let err = store
        .manifest(&hidden)
        .await
        .expect_err("a manifest in a reserved folder");
    assert_kind(
        &err,
        ErrorKind::NotFound,
        store,
        "a manifest in a reserved folder",
    );
    let scan = store.scan(None).await.unwrap();
    assert!(
        scan.backups
            .iter()
            .all(|m| !m.datastore.name.starts_with('_'))
            && scan
                .incomplete
                .iter()
                .all(|d| !d.datastore.starts_with('_')),
        "{url}: a reserved folder was scanned as a datastore"
    );
    store
        .delete(&format!("_conf/{hidden}/manifest.json"))
        .await
        .unwrap();
}

/// Deleting a backup removes its manifest first, then every object of its folder
/// (artifact, verification record, signatures); the backup is then not found.
pub async fn delete_backup(store: &BackupStore) {
    let url = store.url();
    let keys = KeyPair::generate();
    let ds = "conf-delete";
    let keep = backup_bytes(store, &keys, ds, generated_bytes(11, 100)).await;
    let gone = backup_bytes(store, &keys, ds, generated_bytes(12, 100)).await;
    let record = VerificationRecord::new(ds, &gone.backup_id, "stored", true, "conformance");
    store.put_verification(&record).await.unwrap();
    let deleted = store.delete_backup(&gone).await.unwrap();
    assert_eq!(
        deleted.first(),
        Some(&BackupStore::manifest_key(ds, &gone.backup_id)),
        "{url}: the manifest goes first"
    );
    // Manifest, artifact, record and their two signatures.
    assert_eq!(deleted.len(), 5, "{url}: {deleted:?}");
    let folder = BackupStore::backup_folder(ds, &gone.backup_id);
    assert_eq!(
        keys_under(store, &folder).await,
        Vec::<String>::new(),
        "{url}"
    );
    let err = store
        .manifest(&gone.backup_id)
        .await
        .expect_err("a deleted backup");
    assert_kind(&err, ErrorKind::NotFound, store, "a deleted backup");
    let listed = store.list(Some(ds)).await.unwrap();
    assert_eq!(listed, vec![keep.clone()], "{url}: the other backup stays");
    restore_bytes(store, &keep, &keys)
        .await
        .unwrap_or_else(|e| panic!("{url}: the other backup restores: {e}"));
}

/// A verification record is written, read back equal, overwritten (unlike the
/// manifest) and listed; a backup without one has none; it never makes a folder a
/// backup.
pub async fn verification_records(store: &BackupStore) {
    let url = store.url();
    let keys = KeyPair::generate();
    let ds = "conf-records";
    let checked = backup_bytes(store, &keys, ds, generated_bytes(13, 100)).await;
    let unchecked = backup_bytes(store, &keys, ds, generated_bytes(14, 100)).await;
    let first = VerificationRecord::new(ds, &checked.backup_id, "stored", true, "level 1");
    store.put_verification(&first).await.unwrap();
    assert_eq!(
        store.verification(ds, &checked.backup_id).await.unwrap(),
        Some(first),
        "{url}: the record reads back"
    );
    let second = VerificationRecord::new(ds, &checked.backup_id, "content", false, "failed");
    store.put_verification(&second).await.unwrap();
    assert_eq!(
        store.verification(ds, &checked.backup_id).await.unwrap(),
        Some(second.clone()),
        "{url}: the record is overwritten"
    );
    assert_eq!(
        store.verification(ds, &unchecked.backup_id).await.unwrap(),
        None,
        "{url}"
    );
    let all = store.verifications(Some(ds)).await.unwrap();
    assert_eq!(all.len(), 1, "{url}: {all:?}");
    assert_eq!(
        all.get(&(ds.to_string(), checked.backup_id.clone())),
        Some(&second),
        "{url}"
    );
    // A record without a manifest is not a backup.
    let orphan = BackupId::now();
    let record = VerificationRecord::new(ds, &orphan, "stored", true, "orphan");
    store.put_verification(&record).await.unwrap();
    let listed = store.list(Some(ds)).await.unwrap();
    assert_eq!(listed.len(), 2, "{url}: a record made a backup");
    assert!(listed.iter().all(|m| m.backup_id != orphan), "{url}");
    store
        .delete(&BackupStore::verification_key(ds, &orphan))
        .await
        .unwrap();
}

/// Level 1 passes on an intact backup; a flipped byte or a truncation of the stored
/// object fails level 1 and restore with [`ErrorKind::Verification`] naming the backup
/// and the key (the sink never sees a clean end); the intact bytes put back pass again.
pub async fn damaged_artifacts(store: &BackupStore) {
    let url = store.url();
    let keys = KeyPair::generate();
    let manifest = backup_bytes(
        store,
        &keys,
        "conf-damaged",
        generated_bytes(15, 3 * 1024 * 1024),
    )
    .await;
    crate::verify_stored(store, &manifest)
        .await
        .unwrap_or_else(|e| panic!("{url}: level 1 of an intact backup: {e}"));
    let intact = store
        .get_bytes(&manifest.artifact.key)
        .await
        .unwrap()
        .to_vec();

    let mut flipped = intact.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let mut truncated = intact.clone();
    truncated.truncate(intact.len() / 2);
    for (what, bytes) in [("a flipped byte", flipped), ("a truncation", truncated)] {
        store
            .put_bytes(&manifest.artifact.key, bytes)
            .await
            .unwrap();
        let err = crate::verify_stored(store, &manifest)
            .await
            .expect_err("level 1 of a damaged artifact");
        assert_kind(
            &err,
            ErrorKind::Verification,
            store,
            &format!("level 1 after {what}"),
        );
        assert_names(&err, &manifest, store);
        let err = failed_restore(store, &manifest, &keys).await;
        assert_kind(
            &err,
            ErrorKind::Verification,
            store,
            &format!("restore after {what}"),
        );
        assert_names(&err, &manifest, store);
    }

    store
        .put_bytes(&manifest.artifact.key, intact.clone())
        .await
        .unwrap();
    crate::verify_stored(store, &manifest)
        .await
        .unwrap_or_else(|e| panic!("{url}: level 1 with the intact bytes put back: {e}"));
}

/// A manifest whose artifact is missing fails restore and level 1 with
/// [`ErrorKind::Verification`] (a damaged backup), not `NotFound` (no such backup).
pub async fn missing_artifact(store: &BackupStore) {
    let keys = KeyPair::generate();
    let manifest = backup_bytes(store, &keys, "conf-missing", generated_bytes(16, 4096)).await;
    store.delete(&manifest.artifact.key).await.unwrap();
    let err = crate::verify_stored(store, &manifest)
        .await
        .expect_err("level 1 of a missing artifact");
    assert_kind(
        &err,
        ErrorKind::Verification,
        store,
        "level 1 of a missing artifact",
    );
    assert_names(&err, &manifest, store);
    let err = failed_restore(store, &manifest, &keys).await;
    assert_kind(
        &err,
        ErrorKind::Verification,
        store,
        "restore of a missing artifact",
    );
    assert_names(&err, &manifest, store);
}
