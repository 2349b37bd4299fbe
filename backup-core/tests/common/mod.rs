//! Helpers shared by backup-core's integration tests: real stores from the test
//! environment, a fast deterministic data generator, and a sink that records exactly what
//! it was given.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::contents::{FormatReader, RawFormat};
use backup_core::sink::StreamReader;
use backup_core::source::StreamWriter;
use backup_core::{BackupStore, Error, Manifest, Sink, SinkReport, Source, SourceFacts};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The value of a test-environment variable; a missing one fails the test.
pub fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: these tests need the real test servers; run scripts/test.sh \
             (or `scripts/services.sh start DIR s3` and `source DIR/env.sh`)"
        ),
    }
}

/// Store options for the SeaweedFS S3 test store.
pub fn s3_options() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("aws_endpoint".into(), env("DBSEAL_TEST_S3_ENDPOINT")),
        ("aws_allow_http".into(), "true".into()),
        ("aws_region".into(), "us-east-1".into()),
        ("aws_access_key_id".into(), env("DBSEAL_TEST_S3_ACCESS_KEY")),
        (
            "aws_secret_access_key".into(),
            env("DBSEAL_TEST_S3_SECRET_KEY"),
        ),
    ])
}

/// A unique `s3://` URL under the test prefix, so tests running at once never meet.
pub fn s3_url(test: &str) -> String {
    let base = env("DBSEAL_TEST_S3_URL");
    format!(
        "{}/{test}-{}-{:08x}",
        base.trim_end_matches('/'),
        std::process::id(),
        rand_u32()
    )
}

/// Opens a fresh S3 store for `test`.
pub fn s3_store(test: &str) -> BackupStore {
    BackupStore::open(&s3_url(test), &s3_options())
        .expect("open the S3 test store")
        .with_trust(backup_core::Trust::ephemeral().unwrap())
}

/// Deletes everything in a store (used to keep SeaweedFS small after big tests).
pub async fn empty_store(store: &BackupStore) {
    if let Ok(keys) = store.list_keys("").await {
        for (k, _) in keys {
            let _ = store.delete(&k).await;
        }
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() as u32
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A fast deterministic byte generator: blocks of text lines built from a word table
/// (compressible, like a dump) mixed with blocks of PRNG noise (incompressible, like
/// binary columns). The same seed always gives the same stream.
pub struct DataGen {
    state: u64,
    block: u64,
}

const WORDS: [&str; 32] = [
    "INSERT",
    "INTO",
    "accounts",
    "VALUES",
    "(",
    ")",
    ",",
    ";",
    "NULL",
    "true",
    "false",
    "'alice'",
    "'bob'",
    "'carol'",
    "'dave'",
    "0",
    "1",
    "42",
    "1337",
    "-7",
    "3.14159",
    "2026-11-21",
    "'2026-11-21 02:00:00+00'",
    "COPY",
    "public.orders",
    "\\N",
    "\t",
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
];

/// Size of the blocks [`DataGen`] produces.
pub const GEN_BLOCK: usize = 64 * 1024;

impl DataGen {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        DataGen {
            state: seed ^ 0x9e37_79b9_7f4a_7c15,
            block: 0,
        }
    }

    fn next(&mut self) -> u64 {
        // wyrand
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.state as u128).wrapping_mul((self.state ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) ^ t) as u64
    }

    /// Appends the next block (exactly [`GEN_BLOCK`] bytes) to `out`.
    pub fn fill_block(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        self.block += 1;
        // One block in eight is noise.
        if self.next() % 8 == 0 {
            for _ in 0..GEN_BLOCK / 8 {
                out.extend_from_slice(&self.next().to_le_bytes());
            }
        } else {
            while out.len() - start < GEN_BLOCK {
                let r = self.next();
                for i in 0..8 {
                    let w = WORDS[((r >> (i * 8)) & 31) as usize];
                    out.extend_from_slice(w.as_bytes());
                    out.push(if i == 7 { b'\n' } else { b' ' });
                }
            }
            out.truncate(start + GEN_BLOCK);
        }
    }

    /// The first `len` bytes of the stream for `seed`, in memory (small sizes only).
    pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut g = DataGen::new(seed);
        let mut out = Vec::with_capacity(len + GEN_BLOCK);
        while out.len() < len {
            g.fill_block(&mut out);
        }
        out.truncate(len);
        out
    }
}

/// What a [`GeneratedSource`] wrote.
#[derive(Debug, Default, Clone)]
pub struct Written {
    /// Bytes written.
    pub bytes: u64,
    /// Their SHA-256.
    pub sha256: String,
}

/// A source that streams `len` generated bytes (never holding them all) and can fail
/// after `fail_after` bytes like a database dropping the connection.
pub struct GeneratedSource {
    pub seed: u64,
    pub len: u64,
    pub fail_after: Option<u64>,
    pub written: Arc<std::sync::Mutex<Written>>,
}

impl GeneratedSource {
    /// A source of `len` bytes from `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        GeneratedSource {
            seed,
            len,
            fail_after: None,
            written: Default::default(),
        }
    }

    /// What was written so far.
    pub fn written(&self) -> Written {
        self.written.lock().unwrap().clone()
    }
}

#[async_trait]
impl Source for GeneratedSource {
    fn kind(&self) -> &str {
        "generated"
    }

    fn format_reader(&self) -> Arc<dyn FormatReader> {
        Arc::new(RawFormat)
    }

    async fn dump(&mut self, out: StreamWriter<'_>) -> backup_core::Result<SourceFacts> {
        let mut gen = DataGen::new(self.seed);
        let mut hasher = Sha256::new();
        let mut buf = Vec::with_capacity(4 * GEN_BLOCK);
        let mut done = 0u64;
        while done < self.len {
            buf.clear();
            for _ in 0..4 {
                gen.fill_block(&mut buf);
            }
            let n = (self.len - done).min(buf.len() as u64) as usize;
            if let Some(limit) = self.fail_after {
                if done + n as u64 > limit {
                    return Err(Error::datastore(
                        "generated",
                        backup_core::ErrorKind::Connection,
                        format!("connection lost after {done} bytes"),
                    ));
                }
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .await
                .map_err(|e| Error::from_io(e, "writing generated data"))?;
            done += n as u64;
        }
        *self.written.lock().unwrap() = Written {
            bytes: done,
            sha256: hex::encode(hasher.finalize()),
        };
        let mut facts = SourceFacts::new();
        facts.insert("seed".into(), serde_json::json!(self.seed));
        Ok(facts)
    }
}

/// A sink that hashes what it receives and records whether it saw a clean end of
/// stream; it never commits anything, so tests can check what a real sink would have
/// been given.
#[derive(Debug, Default)]
pub struct RecordingSink {
    /// Bytes received.
    pub bytes: u64,
    /// SHA-256 of the bytes received (set at a clean end of stream).
    pub sha256: Option<String>,
    /// Whether a read returned 0 (a clean end of stream).
    pub saw_eof: bool,
    /// The read error the sink got, if any.
    pub read_error: Option<String>,
    /// Keep the bytes (small restores only).
    pub keep: bool,
    /// The bytes, when `keep`.
    pub data: Vec<u8>,
}

impl RecordingSink {
    /// A sink that keeps the bytes it receives.
    pub fn keeping() -> Self {
        RecordingSink {
            keep: true,
            ..Default::default()
        }
    }
}

#[async_trait]
impl Sink for RecordingSink {
    async fn restore(
        &mut self,
        _manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> backup_core::Result<SinkReport> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match input.read(&mut buf).await {
                Ok(0) => {
                    self.saw_eof = true;
                    self.sha256 = Some(hex::encode(hasher.finalize()));
                    return Ok(SinkReport {
                        bytes: self.bytes,
                        summary: vec![],
                    });
                }
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    self.bytes += n as u64;
                    if self.keep {
                        self.data.extend_from_slice(&buf[..n]);
                    }
                }
                Err(e) => {
                    self.read_error = Some(e.to_string());
                    return Err(Error::from_io(e, "recording sink: reading"));
                }
            }
        }
    }
}

/// A source over bytes in memory.
pub fn bytes_source(data: Vec<u8>) -> backup_core::ReaderSource<std::io::Cursor<Vec<u8>>> {
    backup_core::ReaderSource::new(std::io::Cursor::new(data), "test")
}
