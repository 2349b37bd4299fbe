//! What level-3 content digests cost the backup side: parses one RDB file with the
//! counting reader and with the digesting reader (`RdbFormat`), interleaved, and prints
//! the median CPU seconds and throughput of each. Used by `bench/redis/digest_cost.sh`.
//!
//!     rdb_digest_cost FILE [ROUNDS]

use std::time::Instant;

use backup_redis::format::{parse_rdb, ContentsVisitor};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: rdb_digest_cost FILE [ROUNDS]");
    let rounds: usize = args.next().map_or(5, |r| r.parse().expect("ROUNDS"));
    let data = std::fs::read(&path).expect("reading the RDB file");
    let (mut counts, mut digests) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let mut v = ContentsVisitor::default();
        parse_rdb(&mut &data[..], &mut v).expect("a valid RDB");
        counts.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut v = ContentsVisitor::with_digests();
        parse_rdb(&mut &data[..], &mut v).expect("a valid RDB");
        let c = v.finish();
        digests.push(t.elapsed().as_secs_f64());
        assert!(c.facts.keys().any(|k| k.starts_with("content_digest.")));
    }
    let mb = data.len() as f64 / 1e6;
    let (c, d) = (median(counts), median(digests));
    println!(
        "| {mb:.1} MB RDB | counts only {c:.3} s ({:.0} MB/s) | with digests {d:.3} s ({:.0} MB/s) | +{:.3} s, {:.2} s per GB of RDB, ×{:.2} |",
        mb / c,
        mb / d,
        d - c,
        (d - c) / mb * 1000.0,
        d / c
    );
}
