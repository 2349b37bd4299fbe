//! Manifest v1 as a format: pinned by a snapshot, tolerant of what newer minor versions
//! add, clear about newer major versions; and the contents summary's comparison.

mod common;

use backup_core::manifest::{FORMAT_MAJOR, FORMAT_VERSION};
use backup_core::{
    BackupOptions, BackupStore, Contents, Error, ErrorKind, KeyPair, Manifest, RestoreOptions,
};
use common::RecordingSink;
use serde_json::{json, Value};

async fn sample_backup(store: &BackupStore, keys: &KeyPair) -> Manifest {
    let data = b"hello dbseal\n".repeat(1000);
    let mut opts = BackupOptions::new("app-db", keys.encryption());
    opts.labels.insert("environment".into(), "staging".into());
    backup_core::backup(store, &mut common::bytes_source(data), opts)
        .await
        .unwrap()
}

fn key_of(m: &Manifest) -> String {
    BackupStore::manifest_key(&m.datastore.name, &m.backup_id)
}

/// Replaces the values that change from run to run.
fn redact(mut v: Value) -> Value {
    let id = v["backup_id"].as_str().unwrap().to_string();
    let text = serde_json::to_string(&v)
        .unwrap()
        .replace(&id, "[backup_id]");
    v = serde_json::from_str(&text).unwrap();
    v["started_at"] = json!("[time]");
    v["finished_at"] = json!("[time]");
    v["tool"]["version"] = json!("[version]");
    v["artifact"]["stored_sha256"] = json!("[sha256]");
    // age adds a random "grease" stanza to every header: the stored size varies.
    v["artifact"]["stored_size"] = json!("[size]");
    for t in v["transforms"].as_array_mut().unwrap() {
        if let Some(rs) = t.get_mut("recipients").and_then(Value::as_array_mut) {
            for r in rs {
                *r = json!("[recipient]");
            }
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_json_is_pinned() {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let m = sample_backup(&store, &keys).await;
    let stored = store.get_bytes(&key_of(&m)).await.unwrap();
    let value: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(value["format_version"], FORMAT_VERSION);
    assert_eq!(value["tool"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(value["artifact"]["stored_sha256"]
        .as_str()
        .unwrap()
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    // What is stored is exactly what to_json writes, field order included.
    assert_eq!(stored.to_vec(), m.to_json());
    insta::assert_snapshot!(
        "manifest_v1",
        serde_json::to_string_pretty(&redact(value)).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_tolerated_and_preserved() {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let m = sample_backup(&store, &keys).await;
    let key = key_of(&m);
    let mut v: Value = serde_json::from_slice(&m.to_json()).unwrap();
    v["format_version"] = json!(format!("{FORMAT_MAJOR}.7"));
    v["retention_hint"] = json!({"keep_until": "2030-01-01", "tier": ["cold", 3]});
    v["signatures"] = json!([{"alg": "minisign", "sig": "RWQ..."}]);
    v["artifact"]["storage_class"] = json!("GLACIER");
    v["transforms"][0]["window_log"] = json!(27);
    // Written (and signed) by a newer dbseal holding the signing key.
    store
        .put_signed(&key, serde_json::to_vec_pretty(&v).unwrap(), false)
        .await
        .unwrap();

    let read = store
        .manifest(&m.backup_id)
        .await
        .expect("a newer minor version reads");
    assert_eq!(read.format_version, format!("{FORMAT_MAJOR}.7"));
    assert_eq!(read.artifact, m.artifact);
    assert_eq!(read.extra["retention_hint"], v["retention_hint"]);
    assert_eq!(read.extra["signatures"], v["signatures"]);
    // Written back, the top-level unknown fields are kept as they were.
    let again: Value = serde_json::from_slice(&read.to_json()).unwrap();
    assert_eq!(again["retention_hint"], v["retention_hint"]);
    assert_eq!(again["signatures"], v["signatures"]);
    // Listed, verified and restored like any other backup.
    assert_eq!(store.list(None).await.unwrap().len(), 1);
    backup_core::verify_stored(&store, &read).await.unwrap();
    let mut sink = RecordingSink::default();
    let opts = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };
    backup_core::restore(&store, &read, "data", &mut sink, &opts)
        .await
        .unwrap();
    assert!(sink.saw_eof);
    assert_eq!(sink.sha256.unwrap(), m.artifact.plaintext_sha256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_major_version_is_refused_clearly() {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let m = sample_backup(&store, &keys).await;
    let key = key_of(&m);
    let mut v: Value = serde_json::from_slice(&m.to_json()).unwrap();
    v["format_version"] = json!("2.0");
    v["artifact"] = json!({"entirely": "different"});
    let bytes = serde_json::to_vec(&v).unwrap();

    let err = Manifest::from_json(&bytes, &key).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedManifestVersion { found, supported, .. } if found == "2.0" && *supported == 1),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::VersionMismatch);
    let msg = err.to_string();
    assert!(
        msg.contains(&key) && msg.contains("2.0") && msg.contains("upgrade"),
        "{msg}"
    );

    store.put_signed(&key, bytes, false).await.unwrap();
    let err = store.manifest(&m.backup_id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::VersionMismatch, "{err}");
    // Listing skips it but reports it, rather than failing or hiding it.
    let scan = store.scan(None).await.unwrap();
    assert!(scan.backups.is_empty());
    assert_eq!(scan.unreadable.len(), 1);
    assert_eq!(scan.unreadable[0].0, key);
    assert!(
        scan.unreadable[0].1.contains("2.0"),
        "{:?}",
        scan.unreadable
    );
    assert!(scan.incomplete.is_empty());
}

#[test]
fn invalid_manifests_name_the_key_and_the_problem() {
    let key = "app/20261121T020000Z-0000abcd/manifest.json";
    for (bytes, expect) in [
        (&b"not json"[..], "not JSON"),
        (br#"{"backup_id": "x"}"#, "no format_version"),
        (br#"{"format_version": "one"}"#, "not MAJOR.MINOR"),
        (br#"{"format_version": "0.9"}"#, "predates"),
        (br#"{"format_version": "1.0"}"#, "missing field"),
    ] {
        let err = Manifest::from_json(bytes, key).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(key), "{msg}");
        assert!(msg.contains(expect), "expected `{expect}` in: {msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_list_oldest_first_and_by_datastore() {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let mut made = Vec::new();
    for ds in ["b", "a", "b"] {
        let m = backup_core::backup(
            &store,
            &mut common::bytes_source(ds.as_bytes().to_vec()),
            BackupOptions::new(ds, keys.encryption()),
        )
        .await
        .unwrap();
        made.push(m);
        // Ids carry the second: keep them apart in time.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let all: Vec<_> = store
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.backup_id)
        .collect();
    let mut expected: Vec<_> = made.iter().map(|m| m.backup_id.clone()).collect();
    assert_eq!(all, expected, "oldest first");
    expected.remove(1);
    let only_b: Vec<_> = store
        .list(Some("b"))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.backup_id)
        .collect();
    assert_eq!(only_b, expected);
    // A backup is found by id alone, whatever its datastore.
    assert_eq!(store.manifest(&made[1].backup_id).await.unwrap(), made[1]);
}

fn contents(groups: &[(&str, &[(&str, u64)])]) -> Contents {
    let mut c = Contents::default();
    for (g, counts) in groups {
        for (name, n) in *counts {
            c.add(g, name, *n);
        }
    }
    c
}

#[test]
fn diff_counts_lists_every_difference_in_order() {
    let expected = contents(&[
        (
            "tables",
            &[("public.a", 10), ("public.b", 5), ("public.c", 1)],
        ),
        ("labels", &[("Person", 3)]),
    ]);
    let same = expected.clone();
    assert!(expected.diff_counts(&same, &[]).is_empty());

    let actual = contents(&[
        (
            "tables",
            &[("public.a", 10), ("public.b", 6), ("public.d", 2)],
        ),
        ("keys", &[("db0.string", 7)]),
    ]);
    assert_eq!(
        expected.diff_counts(&actual, &[]),
        vec![
            "keys db0.string: expected absent, found 7",
            "labels Person: expected 3, found absent",
            "tables public.b: expected 5, found 6",
            "tables public.c: expected 1, found absent",
            "tables public.d: expected absent, found 2",
        ]
    );
    // Only the groups asked for.
    assert_eq!(
        expected.diff_counts(&actual, &["labels"]),
        vec!["labels Person: expected 3, found absent"]
    );
    assert!(expected
        .diff_counts(&actual, &["relationship_types"])
        .is_empty());
    // A zero count is not an absent one.
    let zero = contents(&[("tables", &[("public.e", 0)])]);
    assert_eq!(
        Contents::default().diff_counts(&zero, &[]),
        vec!["tables public.e: expected absent, found 0"]
    );
    // Facts are not compared.
    let mut with_fact = expected.clone();
    with_fact.fact("server_version", "15.4");
    assert!(expected.diff_counts(&with_fact, &[]).is_empty());
}

#[test]
fn contents_add_accumulates_and_serializes_compactly() {
    let mut c = Contents::default();
    c.add("tables", "public.a", 2);
    c.add("tables", "public.a", 3);
    assert_eq!(c.counts["tables"]["public.a"], 5);
    assert_eq!(
        serde_json::to_value(Contents::default()).unwrap(),
        json!({})
    );
    c.fact("archive_version", "1.15");
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({"facts": {"archive_version": "1.15"}, "counts": {"tables": {"public.a": 5}}})
    );
    let back: Contents = serde_json::from_value(json!({})).unwrap();
    assert_eq!(back, Contents::default());
}
