//! `--max-rate`: a limit on the bytes a store transfers per second, so a daytime backup
//! (or restore) does not take the network or the disk from production.
//!
//! One [`RateLimit`] is shared by every clone of a [`crate::BackupStore`]: parallel
//! uploads, downloads and WAL transfers of one process share its budget. Each transfer
//! charges its bytes before (upload) or after (download) moving them and waits until
//! the bytes before it and its own have had their time at the rate: whatever the chunk
//! sizes, N bytes take at least N / rate seconds. The wait is a tokio sleep: a
//! cancelled operation stops waiting at once.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// The smallest rate accepted: below it a 256 KiB chunk would wait minutes.
pub const MIN_RATE: u64 = 64 * 1024;

/// A shared bytes-per-second budget.
#[derive(Debug)]
pub struct RateLimit {
    bytes_per_second: u64,
    /// When the bytes granted so far will have had their time.
    next: Mutex<Option<Instant>>,
}

impl RateLimit {
    /// A limit of `bytes_per_second` (at least [`MIN_RATE`]).
    pub fn new(bytes_per_second: u64) -> Result<Self> {
        if bytes_per_second < MIN_RATE {
            return Err(Error::Config(format!(
                "max_rate {bytes_per_second} bytes/s is below the smallest rate accepted, 64KiB"
            )));
        }
        Ok(RateLimit {
            bytes_per_second,
            next: Mutex::new(None),
        })
    }

    /// The limit, in bytes per second.
    pub fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second
    }

    /// Charges `bytes`: waits until they and the bytes charged before have had their
    /// time at the rate.
    pub async fn take(&self, bytes: usize) {
        let wait = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            // An idle period earns no credit (no burst after it).
            let start = next.filter(|t| *t > now).unwrap_or(now);
            let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
            *next = Some(start + cost);
            start + cost - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// [`RateLimit::take`] when there is a limit.
pub(crate) async fn charge(limit: Option<&RateLimit>, bytes: usize) {
    if let Some(limit) = limit {
        limit.take(bytes).await;
    }
}

/// Parses a rate: bytes per second as a number with an optional unit, `B`, `K`/`KiB`,
/// `M`/`MiB`, `G`/`GiB` (powers of 1024, as rclone's `--bwlimit`), `KB`, `MB`, `GB`
/// (powers of 1000), and an optional `/s`: `50MiB`, `20M`, `100MB/s`, `1.5G`.
pub fn parse_rate(text: &str) -> Result<u64> {
    let t = text.trim();
    parse_size(t.strip_suffix("/s").unwrap_or(t)).ok_or_else(|| {
        Error::Config(format!(
            "max_rate `{text}` is not a rate: give bytes per second with an optional unit, e.g. 50MiB, 20M, 100MB/s"
        ))
    })
}

/// Parses a size: bytes as a number with an optional unit, `B`, `K`/`KiB`, `M`/`MiB`,
/// `G`/`GiB`, `T`/`TiB` (powers of 1024), `KB`, `MB`, `GB`, `TB` (powers of 1000):
/// `2TiB`, `500GB`, `1.5G`. At least one byte.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return None,
    };
    let bytes = number * unit;
    (bytes.is_finite() && bytes >= 1.0 && bytes <= u64::MAX as f64 / 2.0).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_their_units() {
        assert_eq!(parse_rate("50MiB").unwrap(), 50 << 20);
        assert_eq!(parse_rate("20M").unwrap(), 20 << 20);
        assert_eq!(parse_rate("100MB/s").unwrap(), 100_000_000);
        assert_eq!(parse_rate(" 1.5G ").unwrap(), 3 << 29);
        assert_eq!(parse_rate("65536").unwrap(), 65536);
        assert_eq!(parse_rate("64 KiB/s").unwrap(), 65536);
        assert_eq!(parse_size("2TiB"), Some(2 << 40));
        assert_eq!(parse_size("500GB"), Some(500_000_000_000));
        assert_eq!(parse_size("3 T"), Some(3 << 40));
        assert_eq!(parse_size("2TiB/s"), None);
        assert_eq!(parse_size("lots"), None);
        for bad in ["", "fast", "10X", "-5M", "1e9", "M", "0.1"] {
            let e = parse_rate(bad).unwrap_err().to_string();
            assert!(e.contains("is not a rate"), "{bad}: {e}");
        }
        let e = RateLimit::new(1000).unwrap_err().to_string();
        assert!(e.contains("below the smallest rate"), "{e}");
    }

    /// With tokio's clock paused, sleeps advance it exactly: the time 10 MiB takes at
    /// 4 MiB/s is what the limit says, whatever the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn transfers_average_out_to_the_limit() {
        let limit = RateLimit::new(4 << 20).unwrap();
        let start = Instant::now();
        for _ in 0..40 {
            limit.take(256 << 10).await;
        }
        // (tokio's timer rounds each sleep up to the millisecond.)
        let elapsed = start.elapsed().as_secs_f64();
        assert!((2.5..2.5 + 0.041).contains(&elapsed), "{elapsed}");
        // An idle period earns no credit: after it, each MiB still takes its 1/4 s.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = Instant::now();
        limit.take(1 << 20).await;
        limit.take(1 << 20).await;
        let elapsed = start.elapsed().as_secs_f64();
        assert!((0.5..0.503).contains(&elapsed), "{elapsed}");
    }

    /// Two transfers share one limit: together they get the rate, not each.
    #[tokio::test(start_paused = true)]
    async fn concurrent_transfers_share_the_budget() {
        let limit = std::sync::Arc::new(RateLimit::new(1 << 20).unwrap());
        let start = Instant::now();
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let limit = limit.clone();
                tokio::spawn(async move {
                    for _ in 0..8 {
                        limit.take(128 << 10).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // 16 × 128 KiB = 2 MiB at 1 MiB/s.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((2.0..2.0 + 0.017).contains(&elapsed), "{elapsed}");
    }
}
