//! The fuzz targets' bodies, shared by the cargo-fuzz binaries (`fuzz_targets/*.rs`,
//! nightly) and the corpus replay every test run does on stable
//! (`cli/tests/fuzz_corpus.rs`). Each takes arbitrary bytes and must end with a value or
//! a clean error: a panic, or memory that grows with what a length field claims instead
//! of with the input, is a finding.

use std::io::Read;
use std::sync::OnceLock;

use backup_core::{BackupId, BackupStore, FormatReader, FormatRegistry, Manifest, Registry};

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the binary's, and its corpus folder's) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("rdb", |d| format("rdb", d)),
    ("pgdump", |d| format("pgdump", d)),
    ("pgsql", |d| format("pgsql", d)),
    ("graph", |d| format("graph", d)),
    ("basebackup_tar", |d| {
        read(&backup_postgres::physical::BaseBackupFormat, d)
    }),
    ("wal_segment", wal_segment),
    ("resp", resp),
    ("manifest", manifest),
    ("records", records),
    ("signature", signature),
    ("config", config),
];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    let (_, body) = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"));
    body(data)
}

fn registry() -> Registry {
    Registry::new()
        .with(backup_postgres::PostgresDriver)
        .with(backup_timescale::TimescaleDriver)
        .with(backup_redis::RedisDriver)
        .with(backup_neo4j::Neo4jDriver)
}

fn formats() -> &'static FormatRegistry {
    static FORMATS: OnceLock<FormatRegistry> = OnceLock::new();
    FORMATS.get_or_init(|| registry().formats())
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// A format reader of the drivers' registry (level-2 verification, `inspect`) over the
/// bytes as an artifact's plaintext.
fn format(name: &str, data: &[u8]) {
    let reader = formats()
        .get(name)
        .unwrap_or_else(|| panic!("format {name} is not registered"));
    read(reader.as_ref(), data)
}

fn read(reader: &dyn FormatReader, data: &[u8]) {
    let mut input: &[u8] = data;
    let _ = reader.read_contents(&mut input as &mut dyn Read);
}

/// The WAL segment header and the segment reader.
fn wal_segment(data: &[u8]) {
    let _ = backup_postgres::wal::SegmentHeader::parse(data);
    read(&backup_postgres::wal::WalSegmentFormat, data);
}

/// RESP replies as a server (or whatever listens where the URL points) sends them.
fn resp(data: &[u8]) {
    runtime().block_on(backup_redis::client::parse_replies(data.to_vec()));
}

/// A `.minisig` file as the store returns it (checked against a trusted key before
/// anything it signs is read), and the same bytes as a public key.
fn signature(data: &[u8]) {
    static TRUST: OnceLock<backup_core::Trust> = OnceLock::new();
    let trust = TRUST.get_or_init(|| backup_core::Trust::ephemeral().expect("a key"));
    let role = backup_core::sign::Role::Backup;
    let _ = trust.check(
        "ds/20261205T000000Z-00000000/manifest.json",
        b"{}",
        Some(data),
        role,
    );
    let _ = backup_core::PublicKey::parse(&String::from_utf8_lossy(data));
}

fn manifest(data: &[u8]) {
    let _ = Manifest::from_json(data, "fuzz/manifest.json");
}

/// The records read from a store: a set manifest, a verification record, `archive.json`,
/// each through the function that reads it (with its checks), from an in-memory store.
fn records(data: &[u8]) {
    runtime().block_on(async {
        let store = BackupStore::open("memory://", &Default::default())
            .expect("memory store")
            .with_trust(backup_core::Trust::ephemeral().unwrap());
        let id: BackupId = "20261205T000000Z-00000000".parse().expect("an id");
        let put = |key: String| {
            let store = store.clone();
            let bytes = data.to_vec();
            // Signed (by the store's own key), so the readers get past the signature
            // to the parsers under test.
            async move {
                store
                    .put_signed(&key, bytes, false)
                    .await
                    .expect("memory put")
            }
        };
        put(backup_core::ops::set::set_key(&id)).await;
        let _ = backup_core::ops::set::read_set(&store, &id).await;
        put(BackupStore::verification_key("pg", &id)).await;
        let _ = store.verification("pg", &id).await;
        let archive = backup_postgres::wal::WalArchive::new(store.clone(), "pg").expect("archive");
        put(archive.record_key()).await;
        let _ = archive.record().await;
    });
}

/// `dbseal.toml`.
fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = backup_core::ops::Config::parse(
        text,
        std::path::Path::new("dbseal.toml"),
        &|_| Some("value".into()),
        &registry(),
    );
}
