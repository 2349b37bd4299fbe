//! The stages that run on threads of their own: `BlockingReaderSource` (through the
//! pipeline's pipe and through the generic `dump`), zstd with and without worker
//! threads, and a reader that fails midway.

mod common;

use backup_core::{
    BackupOptions, BackupStore, BlockingReaderSource, ErrorKind, FormatRegistry, KeyPair,
    RestoreOptions, Source,
};
use common::RecordingSink;
use tokio::io::AsyncWriteExt;

/// Backs `data` up from a `BlockingReaderSource` with `workers` zstd workers, restores
/// and verifies it; returns the stored size.
async fn round_trip(data: &[u8], workers: u32) -> u64 {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let mut source = BlockingReaderSource::new(std::io::Cursor::new(data.to_vec()), "test");
    let mut options = BackupOptions::new("stages", keys.encryption());
    options.zstd_workers = Some(workers);
    let manifest = backup_core::backup(&store, &mut source, options)
        .await
        .expect("backup");
    assert_eq!(manifest.artifact.plaintext_size, data.len() as u64);
    assert_eq!(
        manifest.artifact.plaintext_sha256,
        common::sha256_hex(data),
        "the digest of what the source read"
    );
    let opts = RestoreOptions {
        decryption: Some(keys.decryption().into()),
        ..Default::default()
    };
    let mut sink = RecordingSink::keeping();
    backup_core::restore(&store, &manifest, "data", &mut sink, &opts)
        .await
        .expect("restore");
    assert!(sink.saw_eof);
    assert!(
        sink.data == data,
        "restored bytes differ (workers {workers})"
    );
    backup_core::verify_content(&store, &manifest, &FormatRegistry::new(), &opts)
        .await
        .expect("level-2 verification");
    manifest.artifact.stored_size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_reader_source_round_trips_with_and_without_zstd_workers() {
    // 9 MiB + 3 bytes: several 1 MiB zstd jobs, several read chunks, an odd tail.
    let data = common::DataGen::bytes(11, 9 * 1024 * 1024 + 3);
    let single = round_trip(&data, 0).await;
    let two = round_trip(&data, 2).await;
    // Both compress (the generator's data is compressible), neither is pathological.
    assert!(single < data.len() as u64 / 2, "single-threaded: {single}");
    assert!(two < data.len() as u64 / 2, "two workers: {two}");
    // The empty stream, and a stream shorter than one chunk.
    assert!(round_trip(b"", 2).await > 0);
    assert!(round_trip(b"x", 0).await > 0);
}

/// A reader that fails after `ok` bytes.
struct FailingReader {
    ok: usize,
}

impl std::io::Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.ok == 0 {
            return Err(std::io::Error::other("disk read error (injected)"));
        }
        let n = buf.len().min(self.ok);
        buf[..n].fill(b'a');
        self.ok -= n;
        Ok(n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_blocking_reader_commits_no_manifest() {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let mut source = BlockingReaderSource::new(FailingReader { ok: 3 << 20 }, "disk");
    let err = backup_core::backup(
        &store,
        &mut source,
        BackupOptions::new("stages", keys.encryption()),
    )
    .await
    .expect_err("a failing reader fails the backup");
    assert_eq!(err.kind(), ErrorKind::Other, "{err}");
    assert!(err.to_string().contains("reading disk"), "{err}");
    assert!(err.to_string().contains("injected"), "{err}");
    let scan = store.scan(None).await.unwrap();
    assert!(scan.backups.is_empty(), "{:?}", scan.backups);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_reader_source_also_writes_through_dump() {
    // The generic path (any AsyncWrite), used when a caller drives a source itself.
    let data = common::DataGen::bytes(5, 700 * 1024 + 1);
    let mut source = BlockingReaderSource::new(std::io::Cursor::new(data.clone()), "test");
    let mut out: Vec<u8> = Vec::new();
    source.dump(&mut out).await.expect("dump");
    out.flush().await.unwrap();
    assert!(out == data);
    // A source reads its stream once.
    let err = source.dump(&mut Vec::new()).await.unwrap_err();
    assert!(err.to_string().contains("already read"), "{err}");
}

/// A slow reader (10 ms per read) that counts its reads and would go on for 5 s (a
/// bound, so a broken cancellation fails the test instead of hanging it).
struct SlowEndlessReader {
    reads: std::sync::Arc<std::sync::atomic::AtomicU64>,
    until: std::time::Instant,
}

impl std::io::Read for SlowEndlessReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if std::time::Instant::now() > self.until {
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = buf.len().min(64 * 1024);
        buf[..n].fill(b'z');
        Ok(n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_backup_stops_its_reader_thread_and_leaves_no_artifact() {
    use std::sync::atomic::Ordering;
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let reads = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut source = BlockingReaderSource::new(
        SlowEndlessReader {
            reads: reads.clone(),
            until: std::time::Instant::now() + std::time::Duration::from_secs(5),
        },
        "endless",
    );
    let backup = backup_core::backup(
        &store,
        &mut source,
        BackupOptions::new("stages", keys.encryption()),
    );
    // The caller gives up (a timeout, asyncio cancellation): the future is dropped.
    let timed_out = tokio::time::timeout(std::time::Duration::from_millis(300), backup).await;
    assert!(timed_out.is_err(), "an endless stream cannot finish");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let after_stop = reads.load(Ordering::Relaxed);
    assert!(after_stop > 0, "the reader ran");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        reads.load(Ordering::Relaxed),
        after_stop,
        "the reader thread kept reading after the backup was cancelled"
    );
    // The stages after it saw the stream aborted: no artifact completed, no manifest.
    let keys_left = store.list_keys("").await.unwrap();
    assert!(keys_left.is_empty(), "{keys_left:?}");
}
