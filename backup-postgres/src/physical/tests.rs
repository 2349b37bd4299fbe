use std::sync::atomic::AtomicBool;

use super::restore::{conf_value, extract_blocking, parse_target_time, shell_word};
use super::*;

fn tar_header(name: &str, size: u64, flag: u8) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000600");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[156] = flag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = Vec::new();
    for (name, data) in members {
        if name.ends_with('/') {
            t.extend(tar_header(name, 0, b'5'));
            continue;
        }
        t.extend(tar_header(name, data.len() as u64, b'0'));
        t.extend_from_slice(data);
        t.resize(t.len().div_ceil(512) * 512, 0);
    }
    t.extend(vec![0u8; 1024]);
    t
}

struct Collect(Vec<(String, Vec<u8>)>);
impl TarVisitor for Collect {
    fn entry(&mut self, e: &TarEntry) -> Result<()> {
        self.0.push((e.path.clone(), Vec::new()));
        Ok(())
    }
    fn data(&mut self, _e: &TarEntry, chunk: &[u8]) -> Result<()> {
        self.0.last_mut().unwrap().1.extend_from_slice(chunk);
        Ok(())
    }
    fn end_entry(&mut self, _e: &TarEntry) -> Result<()> {
        Ok(())
    }
}

#[test]
fn tar_parser_in_any_chunking() {
    let big = vec![7u8; 1500];
    let t = tar_of(&[
        ("./base/", b""),
        ("base/1/1259", &big),
        ("PG_VERSION", b"15\n"),
    ]);
    for chunk in [1usize, 100, 512, 4096] {
        let mut p = TarParser::new();
        let mut c = Collect(Vec::new());
        for part in t.chunks(chunk) {
            p.feed(part, &mut c).unwrap();
        }
        p.finish().unwrap();
        assert_eq!(c.0.len(), 3);
        assert_eq!(c.0[0].0, "base");
        assert_eq!(c.0[1], ("base/1/1259".to_string(), big.clone()));
        assert_eq!(c.0[2].1, b"15\n");
    }
    // Truncated, corrupted header, trailing garbage.
    let mut p = TarParser::new();
    p.feed(&t[..t.len() - 1024], &mut Collect(Vec::new()))
        .unwrap();
    assert!(p.finish().unwrap_err().to_string().contains("truncated"));
    let mut bad = t.clone();
    bad[10] ^= 1;
    let e = TarParser::new()
        .feed(&bad, &mut Collect(Vec::new()))
        .unwrap_err();
    assert!(e.to_string().contains("checksum"), "{e}");
    let mut extra = t.clone();
    extra.push(1);
    assert!(TarParser::new()
        .feed(&extra, &mut Collect(Vec::new()))
        .is_err());
}

#[test]
fn unsafe_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = tar_of(&[("../evil", b"x")]);
    let e = extract_blocking(
        dir.path().join("d"),
        None,
        &mut &t[..],
        "",
        None,
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(e.to_string().contains("unsafe path"), "{e}");
}

#[test]
fn restore_command_quoting() {
    let c = wal_fetch_command(
        Path::new("/opt/db seal/dbseal"),
        Some(Path::new("/data/pg/dbseal-restore.env")),
        "app-db",
        7710549293519418828,
        true,
    );
    assert_eq!(
            c,
            "'/opt/db seal/dbseal' wal-fetch --env-file /data/pg/dbseal-restore.env --datastore app-db --system-id 7710549293519418828 --fail-on-gap %f %p"
        );
    assert_eq!(shell_word("50%"), "'50%'");
    assert!(
        wal_fetch_command(Path::new("/x/100%/dbseal"), None, "d", 1, false)
            .starts_with("'/x/100%%/dbseal'")
    );
    assert_eq!(conf_value("it's a \\ test"), "'it''s a \\\\ test'");
}

#[test]
fn target_times() {
    assert!(parse_target_time("2026-11-21 09:09:16+00").is_some());
    assert!(parse_target_time("2026-11-21 09:09:16.123456+02:00").is_some());
    assert!(parse_target_time("2026-11-21T09:09:16Z").is_some());
    assert!(parse_target_time("2026-11-21 09:09:16 UTC").is_some());
    assert!(parse_target_time("2026-11-21 09:09:16").is_none());
}
