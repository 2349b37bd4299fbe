use std::collections::{BTreeMap, BTreeSet};

use super::fetch::check_segment;
use super::timeline::newest_descendant;
use super::*;

/// A synthetic segment: long header on page 0, short headers on every page.
pub(crate) fn fake_segment(tl: u32, segno: u64, seg_size: u32, sysid: u64) -> Vec<u8> {
    let bs = 8192usize;
    let mut v = vec![0u8; seg_size as usize];
    let base = segno * u64::from(seg_size);
    for (i, page) in v.chunks_mut(bs).enumerate() {
        page[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        let info: u16 = if i == 0 { XLP_LONG_HEADER } else { 0 };
        page[2..4].copy_from_slice(&info.to_le_bytes());
        page[4..8].copy_from_slice(&tl.to_le_bytes());
        page[8..16].copy_from_slice(&(base + (i * bs) as u64).to_le_bytes());
        if i == 0 {
            page[24..32].copy_from_slice(&sysid.to_le_bytes());
            page[32..36].copy_from_slice(&seg_size.to_le_bytes());
            page[36..40].copy_from_slice(&(bs as u32).to_le_bytes());
        }
    }
    v
}

#[test]
fn lsn_round_trip() {
    let l: Lsn = "0/16B3748".parse().unwrap();
    assert_eq!(l.0, 0x16B3748);
    assert_eq!(l.to_string(), "0/16B3748");
    let l: Lsn = "1A/FF000000".parse().unwrap();
    assert_eq!(l.to_string(), "1A/FF000000");
    assert!("16B3748".parse::<Lsn>().is_err());
    assert!("0/123456789".parse::<Lsn>().is_err());
}

#[test]
fn names() {
    let f = WalFile::parse("000000010000000A000000FF").unwrap();
    assert_eq!(
        (f.kind, f.timeline, f.log, f.seg),
        (WalFileKind::Segment, 1, 10, 255)
    );
    assert_eq!(f.segno(16 << 20), 10 * 256 + 255);
    assert_eq!(
        segment_name(1, 10 * 256 + 255, 16 << 20),
        "000000010000000A000000FF"
    );
    assert_eq!(
        segment_name(2, 4096 + 3, 1 << 20),
        "000000020000000100000003"
    );
    assert_eq!(
        WalFile::parse("00000002.history").unwrap().kind,
        WalFileKind::History
    );
    assert_eq!(
        WalFile::parse("000000010000000000000002.00000028.backup")
            .unwrap()
            .kind,
        WalFileKind::BackupLabel
    );
    assert_eq!(
        WalFile::parse("000000010000000000000002.partial")
            .unwrap()
            .kind,
        WalFileKind::Partial
    );
    for bad in [
        "00000001000000000000000",
        "0000000100000000000000zz",
        "RECOVERYXLOG",
        "00000000.history",
        "000000010000000000000002.0000028.backup",
        "archive_status",
    ] {
        assert!(WalFile::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn segment_scanner_reads_headers_in_any_chunking() {
    let seg = fake_segment(3, 77, 1 << 20, 0xABCDEF0123);
    // Under Miri a byte-at-a-time pass over 1 MiB takes hours: there, an odd chunk size
    // (page boundaries at every offset class) and a large one.
    let chunks: &[usize] = if cfg!(miri) {
        &[4099, 100_000]
    } else {
        &[1, 7, 40, 4099, 8192, 100_000]
    };
    for &chunk in chunks {
        let mut s = SegmentScanner::new();
        for c in seg.chunks(chunk) {
            s.feed(c);
        }
        let f = s.finish().unwrap();
        assert_eq!(f.header.system_identifier, 0xABCDEF0123);
        assert_eq!(f.header.page_address, Lsn(77 << 20));
        assert_eq!(f.valid_pages, 128, "chunk {chunk}");
    }
    let file = WalFile::parse(&segment_name(3, 77, 1 << 20)).unwrap();
    let mut s = SegmentScanner::new();
    s.feed(&seg);
    assert!(check_segment(&file, s, Some(0xABCDEF0123)).is_ok());
    let mut s = SegmentScanner::new();
    s.feed(&seg);
    let e = check_segment(&file, s, Some(5)).unwrap_err();
    assert!(e.contains("another cluster"), "{e}");
    let other = WalFile::parse(&segment_name(3, 78, 1 << 20)).unwrap();
    let mut s = SegmentScanner::new();
    s.feed(&seg);
    assert!(check_segment(&other, s, None)
        .unwrap_err()
        .contains("renamed"));
    let mut s = SegmentScanner::new();
    s.feed(&seg[..1000]);
    assert!(s.finish().unwrap_err().contains("truncated"));
    let mut s = SegmentScanner::new();
    s.feed(&[0u8; 8192]);
    assert!(s.finish().unwrap_err().contains("long header"));
}

#[test]
fn histories_parse_and_paths_follow_them() {
    let h2 = parse_history("1\t0/5000000\tno recovery target specified\n").unwrap();
    let h3 = parse_history(
        "1\t0/5000000\tno recovery target specified\n\n2\t0/90000A0\tbefore 2026-01-01\n",
    )
    .unwrap();
    assert!(parse_history("2\t0/5000000\tx\n1\t0/6000000\ty\n").is_err());
    let mut histories = BTreeMap::new();
    histories.insert(2, h2);
    histories.insert(3, h3);
    let seg = 16u64 << 20;
    let path = timeline_path(1, Lsn(0x2000028), 3, &histories, seg).unwrap();
    assert_eq!(
        path,
        vec![
            TimelineRange {
                timeline: 1,
                from_segno: 2,
                to_segno: Some(4)
            },
            TimelineRange {
                timeline: 2,
                from_segno: 5,
                to_segno: Some(8)
            },
            TimelineRange {
                timeline: 3,
                from_segno: 9,
                to_segno: None
            },
        ]
    );
    // A backup taken after the branch point of timeline 2 is not on its history.
    assert!(timeline_path(1, Lsn(0x6000028), 3, &histories, seg).is_err());
    assert_eq!(newest_descendant(1, Lsn(0x2000028), &histories, seg), 3);
    assert_eq!(newest_descendant(1, Lsn(0x6000028), &histories, seg), 1);
    let tls: BTreeSet<u32> = [2, 3, 5].into_iter().collect();
    assert_eq!(latest_timeline(1, &tls), 3);

    let mut segments: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    segments.insert(1, [2, 3, 4, 5].into_iter().collect());
    segments.insert(2, [5, 6, 8].into_iter().collect());
    segments.insert(3, [9, 10].into_iter().collect());
    let mut p = path.clone();
    let (missing, reachable) = missing_segments(&mut p, &segments, None, seg);
    assert_eq!(missing, vec![segment_name(2, 7, seg)]);
    assert_eq!(reachable, Some(segment_name(2, 6, seg)));
    let mut p = path.clone();
    let (missing, _) = missing_segments(&mut p, &segments, Some(6), seg);
    assert!(missing.is_empty());
}

#[test]
fn timeline_checks() {
    let mut histories = BTreeMap::new();
    histories.insert(2, parse_history("1\t0/5000000\tx\n").unwrap());
    histories.insert(
        3,
        parse_history("1\t0/4000000\tx\n2\t0/9000000\ty\n").unwrap(),
    );
    let mut segments: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    segments.insert(2, [3].into_iter().collect());
    segments.insert(4, [20].into_iter().collect());
    let problems = check_timelines(&histories, &segments, 16 << 20);
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        text.iter().any(|t| t.contains("before timeline 2 began")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("00000004.history is not archived")),
        "{text:?}"
    );
    assert!(text.iter().any(|t| t.contains("disagree")), "{text:?}");
}

#[tokio::test]
async fn an_archive_record_with_an_impossible_segment_size_is_refused() {
    // Prune and the timeline code divide by it: a forged `wal_segment_size: 0` must be an
    // invalid record, not a division by zero.
    let store = BackupStore::open("memory://", &Default::default())
        .unwrap()
        .with_trust(backup_core::Trust::ephemeral().unwrap());
    let archive = WalArchive::new(store.clone(), "pg").unwrap();
    let record = |size: u64| {
        serde_json::json!({
            "format": "dbseal-wal-archive", "version": 1, "datastore": "pg",
            "system_identifier": "7300000000000000001", "wal_segment_size": size,
            "page_magic": "D110", "created_at": "2026-12-05T00:00:00Z",
            "first_file": "000000010000000000000001",
        })
        .to_string()
        .into_bytes()
    };
    for bad in [0, 3, 1 << 19, 1 << 31, u64::MAX] {
        // Signed (a bug on the signing host): the size check is the layer under test.
        store
            .put_signed(&archive.record_key(), record(bad), false)
            .await
            .unwrap();
        let e = archive.record().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Verification, "{e}");
        assert!(
            e.to_string()
                .contains(&format!("wal_segment_size {bad} is not")),
            "{e}"
        );
    }
    store
        .put_bytes(&archive.record_key(), record(16 << 20))
        .await
        .unwrap();
    let e = archive.record().await.unwrap_err();
    assert!(
        e.to_string().contains("not trusted"),
        "an unsigned record: {e}"
    );
    store
        .put_signed(&archive.record_key(), record(16 << 20), false)
        .await
        .unwrap();
    assert_eq!(
        archive.record().await.unwrap().unwrap().wal_segment_size,
        16 << 20
    );
}
