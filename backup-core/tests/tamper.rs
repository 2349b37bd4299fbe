//! A damaged backup is always caught: flipped bytes, truncation, a wrong identity, a
//! missing manifest, a manifest whose digests do not match. Each is detected by level-1
//! and level-2 verification and by restore, with an error naming the backup id and the
//! object key, of the right kind — and a restore sink never sees a clean end of stream
//! (so a sink that commits only at a clean end never commits a bad artifact).

mod common;

use backup_core::{
    BackupOptions, BackupStore, ErrorKind, FormatRegistry, KeyPair, Manifest, RestoreOptions,
};
use common::RecordingSink;

/// Plaintext large enough to span many age chunks (64 KiB) and pipe chunks (256 KiB).
const PLAINTEXT: usize = 6 * 1024 * 1024 + 123;

struct Fixture {
    _dir: tempfile::TempDir,
    store: BackupStore,
    keys: KeyPair,
    manifest: Manifest,
}

impl Fixture {
    async fn new() -> Self {
        // The file store streams objects in small chunks like S3 does (the memory store
        // returns an object in one piece, which would hide the order stages fail in).
        let dir = tempfile::tempdir().unwrap();
        let store = BackupStore::open(dir.path().to_str().unwrap(), &Default::default())
            .unwrap()
            .with_trust(backup_core::Trust::ephemeral().unwrap());
        Self::on(store, dir).await
    }

    /// A fixture on another store (`dir` is kept alive with it).
    async fn on(store: BackupStore, dir: tempfile::TempDir) -> Self {
        let keys = KeyPair::generate();
        let data = common::DataGen::bytes(11, PLAINTEXT);
        let manifest = backup_core::backup(
            &store,
            &mut common::bytes_source(data),
            BackupOptions::new("app", keys.encryption()),
        )
        .await
        .unwrap();
        assert!(manifest.artifact.stored_size > 1024 * 1024);
        Fixture {
            _dir: dir,
            store,
            keys,
            manifest,
        }
    }

    fn options(&self) -> RestoreOptions {
        RestoreOptions {
            decryption: Some(self.keys.decryption().into()),
            ..Default::default()
        }
    }

    async fn artifact(&self) -> Vec<u8> {
        self.store
            .get_bytes(&self.manifest.artifact.key)
            .await
            .unwrap()
            .to_vec()
    }

    async fn replace_artifact(&self, bytes: Vec<u8>) {
        self.store
            .put_bytes(&self.manifest.artifact.key, bytes)
            .await
            .unwrap();
    }

    /// Replaces the manifest, re-signed as a signing host with a bug (or a stolen key)
    /// would: the checks below the signature are under test. Without the signature the
    /// edit is refused first (asserted here; see also cli/tests/trust.rs).
    async fn replace_manifest(&self, manifest: &Manifest) {
        let key = BackupStore::manifest_key(&manifest.datastore.name, &manifest.backup_id);
        self.store
            .put_bytes(&key, manifest.to_json())
            .await
            .unwrap();
        let err = reload(self).await.unwrap_err();
        assert!(
            matches!(err, backup_core::Error::Untrusted { .. }),
            "an unsigned edit is refused: {err}"
        );
        self.store
            .put_signed(&key, manifest.to_json(), false)
            .await
            .unwrap();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The manifest as the store now has it (what a user's `verify`/`restore` would read).
async fn reload(f: &Fixture) -> backup_core::Result<Manifest> {
    f.store.manifest(&f.manifest.backup_id).await
}

fn assert_names_backup(err: &backup_core::Error, m: &Manifest) {
    let msg = err.to_string();
    assert!(msg.contains(m.backup_id.as_str()), "no backup id in: {msg}");
    assert!(msg.contains(&m.artifact.key), "no object key in: {msg}");
}

/// Restores with `options` and checks the sink saw an error, no clean end, and not the
/// whole plaintext. Returns the pipeline's error.
async fn failed_restore(f: &Fixture, m: &Manifest, options: &RestoreOptions) -> backup_core::Error {
    let mut sink = RecordingSink::default();
    let err = backup_core::restore(&f.store, m, "data", &mut sink, options)
        .await
        .expect_err("restore must fail");
    assert!(!sink.saw_eof, "the sink saw a clean end of stream: {err}");
    assert!(
        sink.bytes < m.artifact.plaintext_size,
        "the sink received all {} bytes of a bad artifact: {err}",
        sink.bytes
    );
    err
}

/// Level 1, level 2 and restore all fail with `kind` and name the backup and the key.
async fn assert_detected_everywhere(f: &Fixture, kind: ErrorKind, what: &str) {
    let m = reload(f).await.unwrap();
    let stored = backup_core::verify_stored(&f.store, &m)
        .await
        .expect_err(&format!("level 1 must detect {what}"));
    assert_eq!(stored.kind(), ErrorKind::Verification, "{what}: {stored}");
    assert_names_backup(&stored, &m);

    let content = backup_core::verify_content(&f.store, &m, &FormatRegistry::new(), &f.options())
        .await
        .expect_err(&format!("level 2 must detect {what}"));
    assert_eq!(content.kind(), kind, "{what}: {content}");
    assert_names_backup(&content, &m);

    let restore = failed_restore(f, &m, &f.options()).await;
    assert_eq!(restore.kind(), kind, "{what}: {restore}");
    assert_names_backup(&restore, &m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intact_backup_passes_every_check() {
    let f = Fixture::new().await;
    let m = reload(&f).await.unwrap();
    backup_core::verify_stored(&f.store, &m).await.unwrap();
    backup_core::verify_content(&f.store, &m, &FormatRegistry::new(), &f.options())
        .await
        .unwrap();
    let mut sink = RecordingSink::default();
    backup_core::restore(&f.store, &m, "data", &mut sink, &f.options())
        .await
        .unwrap();
    assert!(sink.saw_eof);
    assert_eq!(sink.bytes, PLAINTEXT as u64);
    assert_eq!(sink.sha256.unwrap(), m.artifact.plaintext_sha256);
}

/// The end of the age header (the newline after the MAC line).
fn header_end(bytes: &[u8]) -> usize {
    let mac = find(bytes, b"\n--- ").expect("age header MAC line");
    mac + 1 + find(&bytes[mac + 1..], b"\n").unwrap() + 1
}

/// One changed byte of the stored artifact, at the offset `at` picks. Inside the age
/// header (text) the byte is replaced by another valid base64 character, so the header
/// still parses and only the cryptography can tell; elsewhere one bit flips.
async fn flipped_byte(at: fn(&[u8]) -> usize, what: &str) {
    let f = Fixture::new().await;
    let mut bytes = f.artifact().await;
    let at = at(&bytes);
    if at < header_end(&bytes) && bytes[at].is_ascii_alphanumeric() {
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    } else {
        bytes[at] ^= 0x01;
    }
    f.replace_artifact(bytes).await;
    assert_detected_everywhere(&f, ErrorKind::Verification, what).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_age_magic_is_detected() {
    flipped_byte(|_| 3, "a changed byte in the age magic line").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_age_ephemeral_share_is_detected() {
    // `-> X25519 <ephemeral share>`: the shared secret changes, the file key does not
    // unwrap.
    let at = |b: &[u8]| find(b, b"\n-> X25519 ").unwrap() + 15;
    flipped_byte(at, "a changed byte in the age stanza's ephemeral share").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_age_wrapped_file_key_is_detected() {
    // The stanza body (the wrapped file key) on the line after `-> X25519 …`.
    let at = |b: &[u8]| {
        let stanza = find(b, b"\n-> X25519 ").unwrap() + 1;
        stanza + find(&b[stanza..], b"\n").unwrap() + 6
    };
    flipped_byte(at, "a changed byte in the age stanza's wrapped file key").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_age_header_mac_is_detected() {
    let at = |b: &[u8]| find(b, b"\n--- ").unwrap() + 8;
    flipped_byte(at, "a changed byte in the age header MAC").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_payload_nonce_is_detected() {
    flipped_byte(|b| header_end(b) + 3, "a flipped byte in the payload nonce").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_at_start_of_payload_is_detected() {
    flipped_byte(|b| header_end(b) + 16, "a flipped first payload byte").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_the_middle_is_detected() {
    flipped_byte(|b| b.len() / 2, "a flipped byte in the middle").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_last_byte_is_detected() {
    flipped_byte(|b| b.len() - 1, "a flipped last byte").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_artifact_is_detected() {
    for cut in [1usize, 16, 64 * 1024 + 16, 0] {
        let f = Fixture::new().await;
        let mut bytes = f.artifact().await;
        let keep = if cut == 0 {
            bytes.len() / 2
        } else {
            bytes.len() - cut
        };
        bytes.truncate(keep);
        f.replace_artifact(bytes).await;
        let what = format!("an artifact truncated to {keep} bytes");
        assert_detected_everywhere(&f, ErrorKind::Verification, &what).await;
        let m = reload(&f).await.unwrap();
        let err = backup_core::verify_stored(&f.store, &m).await.unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_bytes_are_detected() {
    let f = Fixture::new().await;
    let mut bytes = f.artifact().await;
    bytes.extend_from_slice(b"trailing garbage");
    f.replace_artifact(bytes).await;
    assert_detected_everywhere(&f, ErrorKind::Verification, "appended bytes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_artifact_is_detected() {
    let f = Fixture::new().await;
    f.store.delete(&f.manifest.artifact.key).await.unwrap();
    let m = reload(&f).await.unwrap();
    let err = backup_core::verify_stored(&f.store, &m).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert_names_backup(&err, &m);
    assert!(err.to_string().contains("missing"), "{err}");
    let mut sink = RecordingSink::default();
    let err = backup_core::restore(&f.store, &m, "data", &mut sink, &f.options())
        .await
        .unwrap_err();
    // The same class as verification: the backup exists but is damaged.
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert_names_backup(&err, &m);
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(!sink.saw_eof);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_identity_is_a_decryption_error() {
    let f = Fixture::new().await;
    let m = reload(&f).await.unwrap();
    // Level 1 needs no key: the artifact itself is intact.
    backup_core::verify_stored(&f.store, &m).await.unwrap();
    let other = KeyPair::generate();
    let wrong = RestoreOptions {
        decryption: Some(other.decryption().into()),
        ..Default::default()
    };
    let err = backup_core::verify_content(&f.store, &m, &FormatRegistry::new(), &wrong)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decryption, "{err}");
    assert_names_backup(&err, &m);
    let err = failed_restore(&f, &m, &wrong).await;
    assert_eq!(err.kind(), ErrorKind::Decryption, "{err}");
    assert_names_backup(&err, &m);
    // The message says which recipients would work, and nothing secret.
    assert!(err.to_string().contains(&f.keys.recipient()), "{err}");
    assert!(!err.to_string().contains("AGE-SECRET-KEY"), "{err}");

    // No identity at all: a key error that says what to pass.
    let err = failed_restore(&f, &m, &RestoreOptions::default()).await;
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains(m.backup_id.as_str()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_manifest_means_no_backup() {
    let f = Fixture::new().await;
    let id = f.manifest.backup_id.clone();
    let key = BackupStore::manifest_key("app", &id);
    f.store.delete(&key).await.unwrap();
    let err = reload(&f).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(id.as_str()), "{msg}");
    assert!(msg.contains("manifest.json"), "{msg}");
    // Not listed; the artifact left behind is reported as an incomplete backup.
    assert!(f.store.list(None).await.unwrap().is_empty());
    let scan = f.store.scan(None).await.unwrap();
    assert_eq!(scan.incomplete.len(), 1, "{scan:?}");
    assert_eq!(scan.incomplete[0].backup_id, id.as_str());
    let mut left = scan.incomplete[0].keys.clone();
    left.sort();
    assert_eq!(
        left,
        vec![f.manifest.artifact.key.clone(), format!("{key}.minisig")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_with_wrong_stored_digest_is_detected() {
    let f = Fixture::new().await;
    let mut m = f.manifest.clone();
    m.artifact.stored_sha256 = common::sha256_hex(b"something else");
    f.replace_manifest(&m).await;
    assert_detected_everywhere(&f, ErrorKind::Verification, "a wrong stored digest").await;
    let err = backup_core::verify_stored(&f.store, &m).await.unwrap_err();
    assert!(err.to_string().contains("SHA-256"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_with_wrong_stored_size_is_detected() {
    let f = Fixture::new().await;
    let mut m = f.manifest.clone();
    m.artifact.stored_size += 1;
    f.replace_manifest(&m).await;
    assert_detected_everywhere(&f, ErrorKind::Verification, "a wrong stored size").await;
}

/// The stored object matches but the manifest's plaintext digest does not: level 1
/// cannot see it (it does not decrypt); level 2 and restore must, and the sink must not
/// get the held-back last chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_with_wrong_plaintext_digest_is_detected() {
    for (what, edit) in [
        (
            "a wrong plaintext digest",
            (|m: &mut Manifest| m.artifact.plaintext_sha256 = "00".repeat(32)) as fn(&mut Manifest),
        ),
        ("a wrong plaintext size", |m: &mut Manifest| {
            m.artifact.plaintext_size -= 1
        }),
    ] {
        let f = Fixture::new().await;
        let mut m = f.manifest.clone();
        edit(&mut m);
        f.replace_manifest(&m).await;
        let m = reload(&f).await.unwrap();
        backup_core::verify_stored(&f.store, &m)
            .await
            .expect("level 1 only checks the stored object");
        let err = backup_core::verify_content(&f.store, &m, &FormatRegistry::new(), &f.options())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Verification, "{what}: {err}");
        assert_names_backup(&err, &m);
        assert!(err.to_string().contains("plaintext"), "{err}");

        let mut sink = RecordingSink::default();
        let err = backup_core::restore(&f.store, &m, "data", &mut sink, &f.options())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Verification, "{what}: {err}");
        assert_names_backup(&err, &m);
        assert!(!sink.saw_eof, "{what}: the sink saw a clean end");
        // Everything but the held-back last chunk went through.
        assert!(sink.bytes < PLAINTEXT as u64, "{what}");
        assert!(
            sink.bytes >= PLAINTEXT as u64 - backup_core::pipe::CHUNK_SIZE as u64,
            "{what}: only {} bytes reached the sink",
            sink.bytes
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_manifest_contents_are_detected_at_level_2() {
    let f = Fixture::new().await;
    let mut m = f.manifest.clone();
    m.contents.add("tables", "public.accounts", 1000);
    f.replace_manifest(&m).await;
    let m = reload(&f).await.unwrap();
    backup_core::verify_stored(&f.store, &m).await.unwrap();
    let err = backup_core::verify_content(&f.store, &m, &FormatRegistry::new(), &f.options())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert_names_backup(&err, &m);
    assert!(
        err.to_string()
            .contains("tables public.accounts: expected 1000, found absent"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_swapped_for_another_backup_is_detected() {
    // Two backups with the same key: swapping their artifacts keeps each one a valid
    // age file for that key, but the digests in the manifests catch it.
    let f = Fixture::new().await;
    let other = backup_core::backup(
        &f.store,
        &mut common::bytes_source(common::DataGen::bytes(12, PLAINTEXT)),
        BackupOptions::new("app", f.keys.encryption()),
    )
    .await
    .unwrap();
    let bytes = f
        .store
        .get_bytes(&other.artifact.key)
        .await
        .unwrap()
        .to_vec();
    f.replace_artifact(bytes).await;
    assert_detected_everywhere(
        &f,
        ErrorKind::Verification,
        "an artifact from another backup",
    )
    .await;
}

/// The same damage on SeaweedFS S3, where the artifact streams over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_is_detected_on_s3_too() {
    let store = common::s3_store("tamper");
    for (what, damage) in [
        (
            "a flipped byte in the middle",
            (|b: &mut Vec<u8>| {
                let mid = b.len() / 2;
                b[mid] ^= 1;
            }) as fn(&mut Vec<u8>),
        ),
        (
            "a changed byte in the wrapped file key",
            |b: &mut Vec<u8>| {
                let stanza = find(b, b"\n-> X25519 ").unwrap() + 1;
                let at = stanza + find(&b[stanza..], b"\n").unwrap() + 6;
                b[at] = if b[at] == b'A' { b'B' } else { b'A' };
            },
        ),
        ("a truncated artifact", |b: &mut Vec<u8>| {
            b.truncate(b.len() - 1000)
        }),
    ] {
        let f = Fixture::on(store.clone(), tempfile::tempdir().unwrap()).await;
        let mut bytes = f.artifact().await;
        damage(&mut bytes);
        f.replace_artifact(bytes).await;
        assert_detected_everywhere(&f, ErrorKind::Verification, what).await;
        // A wrong identity on S3 is still a decryption error.
        let wrong = RestoreOptions {
            decryption: Some(KeyPair::generate().decryption().into()),
            ..Default::default()
        };
        let f = Fixture::on(store.clone(), tempfile::tempdir().unwrap()).await;
        let m = reload(&f).await.unwrap();
        assert_eq!(
            failed_restore(&f, &m, &wrong).await.kind(),
            ErrorKind::Decryption
        );
    }
    common::empty_store(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_manifest_is_refused_before_it_is_read() {
    // A writer to the bucket replaces the manifest with a huge object: it is refused from
    // the size the store reports, never loaded (the file is sparse: nothing is written).
    let f = Fixture::new().await;
    let key = BackupStore::manifest_key("app", &f.manifest.backup_id);
    let path = f._dir.path().join(&key);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(backup_core::store::MAX_SMALL_OBJECT + 1)
        .unwrap();
    let err = reload(&f).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&key), "{msg}");
    assert!(msg.contains("more than the 64 MiB"), "{msg}");
    // At exactly the limit it is read (and then fails as JSON: the padding is zeros).
    file.set_len(backup_core::store::MAX_SMALL_OBJECT).unwrap();
    let err = reload(&f).await.unwrap_err();
    assert!(!err.to_string().contains("more than the"), "{err}");
}
