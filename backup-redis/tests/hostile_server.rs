//! Hostile replies: a FAKE server (a real Redis cannot be made to send these) listening
//! on 127.0.0.1 answers dbseal's first command with lengths crafted to make a reader
//! allocate without bound or overflow. Each must end in a clean error of kind
//! Verification (exit 4), quickly and without the memory the reply claims.

use std::time::Duration;

use backup_core::{BackupOptions, BackupStore, ErrorKind, KeyPair};
use backup_redis::{BackupMode, RedisConfig, RedisSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Starts the fake server: it reads whatever dbseal sends, answers `header`, then streams
/// `stream_bytes` of zeros (or until the client hangs up).
async fn fake_server(header: &'static [u8], stream_bytes: u64) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let mut buf = vec![0u8; 4096];
        let _ = sock.read(&mut buf).await;
        if sock.write_all(header).await.is_err() {
            return;
        }
        let chunk = vec![0u8; 1 << 20];
        let mut sent = 0u64;
        while sent < stream_bytes {
            if sock.write_all(&chunk).await.is_err() {
                return;
            }
            sent += chunk.len() as u64;
        }
    });
    format!("redis://{addr}")
}

/// Peak resident memory of this process so far, in MiB (Linux).
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

async fn backup_from(url: &str) -> backup_core::Error {
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let keys = KeyPair::generate();
    let cfg = RedisConfig::from_url(url).unwrap();
    let mut source = RedisSource::new(cfg, BackupMode::Replication).unwrap();
    let run = backup_core::backup(
        &store,
        &mut source,
        BackupOptions::new("hostile", keys.encryption()),
    );
    let err = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the backup must fail quickly, not wait on the fake server")
        .expect_err("a hostile reply must fail the backup");
    assert!(
        store.list(None).await.unwrap().is_empty(),
        "a failed backup leaves no manifest"
    );
    err
}

#[tokio::test]
async fn an_array_claiming_i64_max_elements_is_a_clean_format_error() {
    let url = fake_server(b"*9223372036854775807\r\n", 0).await;
    let err = backup_from(&url).await;
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert_eq!(err.kind().exit_code(), 4);
    assert!(err.to_string().contains("limit"), "{err}");
}

#[tokio::test]
async fn a_4_gib_bulk_followed_by_data_is_refused_before_memory_grows() {
    let url = fake_server(b"$4294967296\r\n", 600 << 20).await;
    let err = backup_from(&url).await;
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert!(err.to_string().contains("limit"), "{err}");
    let rss = peak_rss_mib();
    assert!(rss < 128, "peak RSS {rss} MiB");
}

#[tokio::test]
async fn an_endless_reply_line_is_cut_at_the_line_limit() {
    // `+` then 600 MiB without a newline.
    let url = fake_server(b"+", 600 << 20).await;
    let err = backup_from(&url).await;
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    let rss = peak_rss_mib();
    assert!(rss < 128, "peak RSS {rss} MiB");
}

#[tokio::test]
async fn arrays_nested_without_end_hit_the_depth_limit() {
    let url = fake_server(
        b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n",
        0,
    )
    .await;
    let err = backup_from(&url).await;
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert!(err.to_string().contains("nested"), "{err}");
}
