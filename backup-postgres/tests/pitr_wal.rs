//! `dbseal wal-push` / `wal-fetch` semantics on synthetic WAL files (no server needed):
//! exit codes PostgreSQL relies on, idempotent re-push, refusal to overwrite, repair of
//! a lost object, debris of an interrupted push, history files, and the guard against a
//! relative store inside a data directory.

mod pitr_common;

use std::path::Path;

use backup_postgres::wal::{segment_name, WalArchive, WalVerifyLevel};
use pitr_common::*;

const SEG: u32 = 1 << 20;
const SYSID: u64 = 7_300_000_000_000_000_001;

fn write_segment(dir: &Path, tl: u32, segno: u64, sysid: u64) -> std::path::PathBuf {
    let name = segment_name(tl, segno, u64::from(SEG));
    let p = dir.join(&name);
    std::fs::write(&p, fake_segment(tl, segno, SEG, sysid)).unwrap();
    p
}

/// Writes and wal-pushes segments `segnos` of timeline 1 into datastore `ds`.
fn push_segments(
    archive: &Archive,
    pg_wal: &Path,
    ds: &str,
    segnos: std::ops::RangeInclusive<u64>,
) {
    for segno in segnos {
        let p = write_segment(pg_wal, 1, segno, SYSID);
        let recipient = archive.keys.recipient();
        let args = [
            "wal-push",
            "--datastore",
            ds,
            "-r",
            &recipient,
            p.to_str().unwrap(),
        ];
        let (code, _, err) = archive.dbseal(&args);
        assert_eq!(code, 0, "{err}");
    }
}

#[test]
fn push_and_fetch_follow_postgresql_conventions() {
    let tree = TempTree::new("dbseal-pitr-wal");
    let archive = Archive::new(&tree, "w");
    let pg_wal = tree.dir("pg_wal");
    let recipient = archive.keys.recipient();
    let ident = archive.identity.to_str().unwrap().to_string();
    let push = |p: &Path| {
        archive.dbseal(&[
            "wal-push",
            "--datastore",
            "w",
            "-r",
            &recipient,
            p.to_str().unwrap(),
        ])
    };

    // Archive three segments.
    let s3 = write_segment(&pg_wal, 1, 3, SYSID);
    let s4 = write_segment(&pg_wal, 1, 4, SYSID);
    let s5 = write_segment(&pg_wal, 1, 5, SYSID);
    for p in [&s3, &s4, &s5] {
        let (code, out, err) = push(p);
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(out.contains("archived"), "{out}");
    }
    let obj = archive
        .timeline_dir(1)
        .join(format!("{}.zst.age", segment_name(1, 4, u64::from(SEG))));
    assert!(obj.is_file());
    let stored = std::fs::read(&obj).unwrap();
    assert!(
        stored.starts_with(b"age-encryption.org/v1"),
        "a plain age file"
    );
    assert!(stored.len() < SEG as usize / 4, "compressed");

    // Same content again: success without writing.
    let (code, out, err) = push(&s4);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("already archived"), "{out}");

    // Different content under the same name: refused, nothing overwritten.
    let mut changed = std::fs::read(&s4).unwrap();
    changed[5000] ^= 1;
    let other = tree.path.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let changed_path = other.join(s4.file_name().unwrap());
    std::fs::write(&changed_path, &changed).unwrap();
    let (code, _, err) = push(&changed_path);
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains("already archived with different contents"),
        "{err}"
    );
    assert_eq!(std::fs::read(&obj).unwrap(), stored, "nothing overwritten");

    // A segment of another database system.
    let foreign_dir = tree.dir("foreign");
    let foreign = write_segment(&foreign_dir, 1, 6, SYSID + 1);
    let (code, _, err) = push(&foreign);
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains(&format!("belongs to database system {}", SYSID + 1)),
        "{err}"
    );

    // Not a WAL file / not a segment.
    let junk = pg_wal.join("RECOVERYXLOG");
    std::fs::write(&junk, b"x").unwrap();
    let (code, _, err) = push(&junk);
    assert_eq!(code, 2, "{err}");
    let short = pg_wal.join(segment_name(1, 7, u64::from(SEG)));
    std::fs::write(&short, &fake_segment(1, 7, SEG, SYSID)[..100_000]).unwrap();
    let (code, _, err) = push(&short);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("truncated"), "{err}");
    let misnamed = other.join(segment_name(1, 9, u64::from(SEG)));
    std::fs::write(&misnamed, fake_segment(1, 8, SEG, SYSID)).unwrap();
    let (code, _, err) = push(&misnamed);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("renamed or misplaced"), "{err}");

    // A history file and a backup history file.
    let hist = pg_wal.join("00000002.history");
    std::fs::write(&hist, "1\t0/500000\tno recovery target specified\n").unwrap();
    let (code, out, err) = push(&hist);
    assert_eq!(code, 0, "{out}\n{err}");
    let label = pg_wal.join(format!(
        "{}.00000028.backup",
        segment_name(1, 3, u64::from(SEG))
    ));
    std::fs::write(&label, "START WAL LOCATION: 0/300028 (file 000000010000000000000003)\nSTOP WAL LOCATION: 0/300100 (file 000000010000000000000003)\nLABEL: x\n").unwrap();
    let (code, out, err) = push(&label);
    assert_eq!(code, 0, "{out}\n{err}");

    // wal-fetch: byte-identical, atomically written.
    let dest = tree.path.join("RECOVERYXLOG");
    let name4 = segment_name(1, 4, u64::from(SEG));
    let (code, out, err) = archive.dbseal(&[
        "wal-fetch",
        "--datastore",
        "w",
        "-i",
        &ident,
        &name4,
        dest.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&s4).unwrap());
    let (code, _, err) = archive.dbseal(&[
        "wal-fetch",
        "--datastore",
        "w",
        "--env-file",
        archive.env_file.to_str().unwrap(),
        "00000002.history",
        tree.path.join("RECOVERYHISTORY").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "identity from the env file: {err}");
    // Missing: exit 3, the code PostgreSQL takes for "not archived".
    let (code, _, err) = archive.dbseal(&[
        "wal-fetch",
        "--datastore",
        "w",
        "-i",
        &ident,
        "00000003.history",
        tree.path.join("h3").to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not in the WAL archive"), "{err}");
    let (code, _, _) = archive.dbseal(&[
        "wal-fetch",
        "--datastore",
        "w",
        "-i",
        &ident,
        "--fail-on-gap",
        &segment_name(1, 6, u64::from(SEG)),
        tree.path.join("s6").to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "the end of the archive is not a gap");
    // The wrong key: a failure, not "missing" (PostgreSQL must not end recovery on it).
    let wrong = tree.path.join("wrong-key.txt");
    backup_core::KeyPair::generate()
        .write_identity_file(&wrong)
        .unwrap();
    let (code, _, err) = archive.dbseal(&[
        "wal-fetch",
        "--datastore",
        "w",
        "-i",
        wrong.to_str().unwrap(),
        &name4,
        tree.path.join("x").to_str().unwrap(),
    ]);
    assert_eq!(code, 255, "{err}");
    assert!(!tree.path.join("x").exists());
    let (code, _, _) = archive.dbseal(&[
        "wal-fetch",
        "--datastore",
        "w",
        "-i",
        wrong.to_str().unwrap(),
        "--errors-as-missing",
        &name4,
        tree.path.join("x").to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "--errors-as-missing for log-shipping standbys");

    // A lost stored object: re-pushing the same segment repairs it.
    std::fs::remove_file(&obj).unwrap();
    let (code, out, _) = archive.dbseal(&["wal-verify", "--datastore", "w", "--level", "metadata"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("is missing"), "{out}");
    let (code, out, err) = push(&s4);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("missing or damaged"), "{out}");
    let (code, out, err) = archive.dbseal(&["wal-verify", "--datastore", "w", "-i", &ident]);
    assert_eq!(code, 0, "{out}\n{err}");

    // Debris of an interrupted push (object without manifest) is never overwritten.
    let s6 = write_segment(&pg_wal, 1, 6, SYSID);
    let debris = archive
        .timeline_dir(1)
        .join(format!("{}.zst.age", segment_name(1, 6, u64::from(SEG))));
    std::fs::write(&debris, b"half an upload").unwrap();
    let (code, out, err) = push(&s6);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(std::fs::read(&debris).unwrap(), b"half an upload");
    let (code, out, err) =
        archive.dbseal(&["--json", "wal-verify", "--datastore", "w", "-i", &ident]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("debris of an interrupted push"), "{out}");

    // Recipients (and the store) can come from an env file.
    let (code, _, err) = archive.dbseal(&[
        "wal-push",
        "--datastore",
        "w",
        "--env-file",
        archive.env_file.to_str().unwrap(),
        s5.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "recipients from the env file: {err}");
}

#[test]
fn a_relative_store_inside_a_data_directory_is_refused() {
    let tree = TempTree::new("dbseal-pitr-rel");
    let data = tree.dir("data");
    std::fs::write(data.join("PG_VERSION"), "15\n").unwrap();
    let seg = write_segment(&tree.dir("data/pg_wal"), 1, 1, SYSID);
    let keys = backup_core::KeyPair::generate();
    let out = std::process::Command::new(dbseal_bin())
        .current_dir(&data)
        .env_remove("DBSEAL_STORE")
        .env_remove("DBSEAL_CONFIG")
        .args(["wal-push", "--datastore", "x", "-r", &keys.recipient()])
        .arg(seg.strip_prefix(&data).unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("PostgreSQL data directory"), "{err}");
    assert!(
        !data.join("backups").exists(),
        "nothing written into the cluster"
    );
}

#[tokio::test]
async fn status_reports_the_newest_segment_and_prune_keeps_what_backups_need() {
    let tree = TempTree::new("dbseal-pitr-status");
    let archive = Archive::new(&tree, "s");
    let pg_wal = tree.dir("pg_wal");
    push_segments(&archive, &pg_wal, "s", 1..=6);
    let wal = WalArchive::new(archive.store(), "s").unwrap();
    let status = wal.status().await.unwrap();
    assert_eq!(
        status.newest_segment.as_deref(),
        Some(segment_name(1, 6, u64::from(SEG)).as_str())
    );
    assert_eq!(status.segments, 6);
    assert!(status.newest_age_seconds.unwrap() < 120);
    assert_eq!(status.system_identifier, Some(SYSID.to_string()));

    let kept = backup_postgres::wal::BaseBackupWal {
        backup_id: "20261121T000000Z-00000000".into(),
        system_identifier: SYSID,
        timeline: 1,
        start_lsn: backup_postgres::wal::Lsn(4 * u64::from(SEG) + 0x28),
        stop_lsn: Some(backup_postgres::wal::Lsn(4 * u64::from(SEG) + 0x100)),
        stop_timeline: Some(1),
        wal_segment_size: u64::from(SEG),
    };
    let would = wal.prune(std::slice::from_ref(&kept), true).await.unwrap();
    assert_eq!(
        would,
        vec![
            segment_name(1, 1, u64::from(SEG)),
            segment_name(1, 2, u64::from(SEG)),
            segment_name(1, 3, u64::from(SEG))
        ]
    );
    assert_eq!(wal.status().await.unwrap().segments, 6, "dry run");
    wal.prune(std::slice::from_ref(&kept), false).await.unwrap();
    let report = wal
        .verify(&[kept], WalVerifyLevel::Stored, None)
        .await
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.segments, 3);
    assert!(report.backups[0].complete);
}

/// WAL segment manifests and the archive record are minisign-signed: `minisign -Vm`
/// (Debian's minisign) checks them without dbseal. A segment manifest rewritten by a
/// bucket writer is refused by wal-fetch (exit 255: recovery stops rather than replay
/// it), and the next wal-push of that segment repairs it.
#[test]
fn wal_manifests_are_signed_and_a_forged_one_is_refused_then_repaired() {
    let tree = TempTree::new("dbseal-pitr-signed");
    let archive = Archive::new(&tree, "g");
    let pg_wal = tree.dir("pg_wal");
    let seg = write_segment(&pg_wal, 1, 3, SYSID);
    let push = || {
        archive.dbseal(&[
            "wal-push",
            "--datastore",
            "g",
            "-r",
            &archive.keys.recipient(),
            seg.to_str().unwrap(),
        ])
    };
    let (code, _, err) = push();
    assert_eq!(code, 0, "{err}");
    let name = segment_name(1, 3, u64::from(SEG));
    let manifest = archive.timeline_dir(1).join(format!("{name}.json"));
    let (_, public) = backup_core::keys::signing_key_paths(&archive.identity);
    let minisign = |file: &Path| {
        std::process::Command::new("minisign")
            .args([
                "-Vm",
                file.to_str().unwrap(),
                "-p",
                public.to_str().unwrap(),
            ])
            .output()
            .expect("minisign is installed by scripts/install-deps.sh")
    };
    for file in [&manifest, &archive.store_dir.join("g/wal/archive.json")] {
        let out = minisign(file);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The bucket writer points the manifest at other bytes.
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replacen("\"plaintext_size\"", "\"plaintext_size\" ", 1),
    )
    .unwrap();
    assert!(!minisign(&manifest).status.success());
    let dest = tree.dir("fetched").join("RECOVERYXLOG");
    let fetch = || {
        archive.dbseal(&[
            "wal-fetch",
            "--env-file",
            archive.env_file.to_str().unwrap(),
            "--datastore",
            "g",
            &name,
            dest.to_str().unwrap(),
        ])
    };
    let (code, _, err) = fetch();
    assert_eq!(code, 255, "{err}");
    assert!(err.contains("not trusted") && err.contains(&name), "{err}");
    assert!(!dest.exists());
    // wal-push repairs it (the segment is still in pg_wal), and fetch works again.
    let (code, _, err) = push();
    assert_eq!(code, 0, "{err}");
    assert!(minisign(&manifest).status.success());
    let (code, _, err) = fetch();
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&seg).unwrap());
}

/// A bucket writer moves a base backup's start LSN forward to make prune delete the WAL
/// it needs: the edited manifest is no longer signed, so it keeps nothing and deletes
/// nothing; the signed one keeps what its start needs.
#[tokio::test]
async fn a_forged_start_lsn_does_not_steer_wal_pruning() {
    use backup_core::ops::ContinuousArchive;
    let tree = TempTree::new("dbseal-pitr-lsn");
    let archive = Archive::new(&tree, "l");
    let pg_wal = tree.dir("pg_wal");
    push_segments(&archive, &pg_wal, "l", 1..=6);
    let store = archive.store();
    // A base backup starting in segment 4, as the backup host signs it.
    let mut src = backup_core::ReaderSource::new(&b"base backup"[..], "stdin");
    let mut m = backup_core::backup(
        &store,
        &mut src,
        backup_core::BackupOptions::new("l", archive.keys.encryption()),
    )
    .await
    .unwrap();
    m.artifact.format = backup_postgres::physical::TAR_FORMAT.into();
    for (k, v) in [
        ("physical", serde_json::json!(true)),
        ("system_identifier", serde_json::json!(SYSID.to_string())),
        ("timeline", serde_json::json!(1)),
        (
            "start_lsn",
            serde_json::json!(format!("0/{:X}", 4 * SEG + 0x28)),
        ),
        ("wal_segment_size", serde_json::json!(SEG)),
    ] {
        m.source.insert(k.into(), v);
    }
    let key = backup_core::BackupStore::manifest_key("l", &m.backup_id);
    store.put_signed(&key, m.to_json(), false).await.unwrap();
    let wal = backup_postgres::pitr::PostgresWalArchive::default();
    let none = std::collections::BTreeSet::new();
    let would = wal.prune(&store, "l", &none, true).await.unwrap();
    assert_eq!(
        would.len(),
        3,
        "the signed start keeps segments 4-6: {would:?}"
    );
    // Forged: start in segment 6, so segments 1-5 would look unneeded.
    let mut forged = m.clone();
    forged.source.insert(
        "start_lsn".into(),
        serde_json::json!(format!("0/{:X}", 6 * SEG + 0x28)),
    );
    store.put_bytes(&key, forged.to_json()).await.unwrap();
    let deleted = wal.prune(&store, "l", &none, false).await.unwrap();
    assert!(deleted.is_empty(), "{deleted:?}");
    let status = WalArchive::new(store.clone(), "l")
        .unwrap()
        .status()
        .await
        .unwrap();
    assert_eq!(status.segments, 6);
}

/// `wal-push --concurrency`: the files PostgreSQL marked ready beside %p are archived
/// ahead and answered from markers, which a changed file or another datastore ignores;
/// `wal-fetch --concurrency` prefetches the next segments, verified, and re-checks a
/// prefetched file before handing it over.
#[test]
fn concurrent_push_archives_ready_files_ahead_and_fetch_prefetches() {
    let tree = TempTree::new("dbseal-pitr-wal-par");
    let archive = Archive::new(&tree, "par");
    let pg_wal = tree.dir("pg_wal");
    let status = pg_wal.join("archive_status");
    std::fs::create_dir_all(&status).unwrap();
    let recipient = archive.keys.recipient();
    let paths: Vec<_> = (10..=16)
        .map(|segno| {
            let p = write_segment(&pg_wal, 1, segno, SYSID);
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            std::fs::write(status.join(format!("{name}.ready")), b"").unwrap();
            p
        })
        .collect();
    let push = |ds: &str, p: &Path| {
        let (code, out, err) = archive.dbseal(&[
            "wal-push",
            "--datastore",
            ds,
            "-r",
            &recipient,
            "--concurrency",
            "3",
            p.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(!err.contains("WARN"), "{err}");
        out
    };
    let archived = || {
        std::fs::read_dir(archive.timeline_dir(1))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0)
    };
    let markers = pg_wal.join(".dbseal-pushed");

    // The first call into a new archive archives its own file alone (it creates the
    // archive's record); the next one its own file and the five other ready ones.
    let out = push("par", &paths[0]);
    assert!(out.contains("archived ") && !out.contains("ahead"), "{out}");
    assert_eq!(archived(), 1, "the first file alone");
    let out = push("par", &paths[0]);
    assert!(out.contains("already archived"), "{out}");
    assert_eq!(archived(), 7, "all seven ready files are archived");
    assert_eq!(std::fs::read_dir(&markers).unwrap().count(), 6);
    // As PostgreSQL does after a success.
    let done = |p: &Path| {
        let name = p.file_name().unwrap().to_str().unwrap();
        std::fs::rename(
            status.join(format!("{name}.ready")),
            status.join(format!("{name}.done")),
        )
        .unwrap();
    };
    done(&paths[0]);

    // The archiver reaches the next file: answered from its marker, which is consumed.
    let out = push("par", &paths[1]);
    assert!(out.contains("archived ahead"), "{out}");
    assert!(!markers.join(paths[1].file_name().unwrap()).exists());
    done(&paths[1]);

    // A file changed since it was pushed ahead (here: its time) is archived again and
    // checked against the archive, not answered from the marker.
    let f = std::fs::File::options()
        .write(true)
        .open(&paths[2])
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    drop(f);
    let out = push("par", &paths[2]);
    assert!(out.contains("already archived"), "{out}");
    done(&paths[2]);

    // Another datastore's archive ignores this one's markers.
    let out = push("other", &paths[3]);
    assert!(!out.contains("ahead"), "{out}");
    let out = push("other", &paths[3]);
    assert!(out.contains("already archived"), "{out}");
    let other_tl = archive.store_dir.join("other/wal/00000001");
    let other_count = std::fs::read_dir(&other_tl)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert_eq!(other_count, 4, "its own file and the three still ready");

    // Markers of files gone from pg_wal are removed by the next call.
    std::fs::remove_file(&paths[5]).unwrap();
    std::fs::remove_file(status.join(format!(
        "{}.ready",
        paths[5].file_name().unwrap().to_str().unwrap()
    )))
    .unwrap();
    push("par", &paths[3]);
    assert!(!markers.join(paths[5].file_name().unwrap()).exists());

    // Prefetch: fetching segment 10 with concurrency 3 brings the next ones along.
    let restore_dir = tree.dir("restore-pg_wal");
    let ident = archive.identity.to_str().unwrap().to_string();
    let fetch = |name: &str| {
        archive.dbseal(&[
            "wal-fetch",
            "--datastore",
            "par",
            "-i",
            &ident,
            "--concurrency",
            "3",
            name,
            restore_dir.join("RECOVERYXLOG").to_str().unwrap(),
        ])
    };
    let name = |segno: u64| segment_name(1, segno, u64::from(SEG));
    let original = |segno: u64| fake_segment(1, segno, SEG, SYSID);
    let (code, out, err) = fetch(&name(10));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains("prefetched"), "{out}");
    assert_eq!(
        std::fs::read(restore_dir.join("RECOVERYXLOG")).unwrap(),
        original(10)
    );
    // One folder per archive (a hash of store, options and datastore).
    let folders: Vec<_> = std::fs::read_dir(restore_dir.join(".dbseal-prefetch"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    let cache = folders[0].clone();
    let mut cached: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    cached.sort();
    // The window is 8 × 3 segments; the archive holds 11 to 16 of them.
    assert_eq!(cached, (11..=16).map(name).collect::<Vec<_>>());

    let (code, out, err) = fetch(&name(11));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("prefetched"), "{out}");
    assert_eq!(
        std::fs::read(restore_dir.join("RECOVERYXLOG")).unwrap(),
        original(11)
    );
    // A damaged prefetched file is not handed over: it is fetched again from the store.
    let mut bytes = std::fs::read(cache.join(name(12))).unwrap();
    bytes[26] ^= 0xff; // the long page header's system identifier
    std::fs::write(cache.join(name(12)), &bytes).unwrap();
    let (code, out, err) = fetch(&name(12));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains("prefetched"), "{out}");
    assert_eq!(
        std::fs::read(restore_dir.join("RECOVERYXLOG")).unwrap(),
        original(12)
    );
    // Past the end of the archive: missing (exit 3), and nothing is left in the cache
    // but the window's files (none here: 17 and later do not exist).
    let (code, _, err) = fetch(&name(17));
    assert_eq!(code, 3, "{err}");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
    // A bad value is refused clearly.
    let (code, _, err) = archive.dbseal(&[
        "wal-fetch",
        "--datastore",
        "par",
        "-i",
        &ident,
        "--concurrency",
        "0",
        &name(10),
        restore_dir.join("RECOVERYXLOG").to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("--concurrency 0"), "{err}");
}
