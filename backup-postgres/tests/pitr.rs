//! Point-in-time recovery against real PostgreSQL 15 clusters: base backups, the WAL
//! archive fed by `archive_command = 'dbseal wal-push …'`, restores that PostgreSQL
//! recovers through `restore_command = 'dbseal wal-fetch …'`, and an archive with gaps,
//! corrupted and foreign segments, or an unwritable store.
//!
//! Each test starts its own clusters (initdb as `postgres`, own port) and stops them
//! in a Drop guard. The archive_command calls the built `dbseal` binary (`DBSEAL_BIN`,
//! else `target/debug/dbseal`).

mod pitr_common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backup_core::{BackupOptions, FormatRegistry, Manifest, RestoreOptions, SecretString};
use backup_postgres::physical::{
    self, PhysicalOptions, PhysicalRestore, PhysicalRestoreReport, PhysicalSource, RecoveryTarget,
    TargetAction,
};
use backup_postgres::wal::{segment_name, Lsn, WalArchive, WalFile, WalVerifyLevel};
use pitr_common::*;

fn restore_options(archive: &Archive) -> RestoreOptions {
    RestoreOptions {
        decryption: Some(archive.keys.decryption().into()),
        progress: None,
    }
}

/// Takes a physical base backup of `cluster` into `archive`'s datastore.
async fn base_backup(cluster: &Cluster, archive: &Archive) -> Manifest {
    let mut source = PhysicalSource::new(
        &cluster.config(),
        PhysicalOptions {
            fast_checkpoint: true,
            ..Default::default()
        },
    )
    .unwrap();
    physical::backup_physical(
        &archive.store(),
        &mut source,
        BackupOptions::new(archive.datastore.clone(), archive.keys.encryption()),
    )
    .await
    .unwrap_or_else(|e| panic!("base backup failed: {e}\n{}", cluster.log_tail(30)))
}

/// Restores `manifest` into `pgdata` the way `dbseal restore --pgdata` does.
async fn restore_to(
    archive: &Archive,
    manifest: &Manifest,
    pgdata: &Path,
    target: RecoveryTarget,
) -> backup_core::Result<PhysicalRestoreReport> {
    restore_on_timeline(archive, manifest, pgdata, target, None).await
}

/// [`restore_to`] with a `recovery_target_timeline`.
async fn restore_on_timeline(
    archive: &Archive,
    manifest: &Manifest,
    pgdata: &Path,
    target: RecoveryTarget,
    timeline: Option<&str>,
) -> backup_core::Result<PhysicalRestoreReport> {
    restore_with(archive, manifest, pgdata, target, timeline, None, "").await
}

/// The restore every helper runs; `archive_command`: `--archive-to` (else archiving off);
/// `extra_env`: lines added to restore_command's env file.
async fn restore_with(
    archive: &Archive,
    manifest: &Manifest,
    pgdata: &Path,
    target: RecoveryTarget,
    timeline: Option<&str>,
    archive_command: Option<String>,
    extra_env: &str,
) -> backup_core::Result<PhysicalRestoreReport> {
    let sysid: u64 = manifest.source["system_identifier"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let restore = PhysicalRestore {
        pgdata: pgdata.to_path_buf(),
        restore_command: physical::wal_fetch_command(
            &dbseal_bin(),
            Some(&physical::restore_env_path(pgdata)),
            &archive.datastore,
            sysid,
            target == RecoveryTarget::Latest,
        ),
        target,
        action: TargetAction::Promote,
        timeline: timeline.map(str::to_string),
        archive_command,
        cancel: Default::default(),
        env_file: Some(SecretString::new(format!(
            "DBSEAL_STORE={}\nDBSEAL_IDENTITY={}\nDBSEAL_TRUSTED_SIGNERS={}\n{extra_env}",
            archive.store_dir.display(),
            archive.identity.display(),
            archive.public_key()
        ))),
    };
    physical::restore_physical(
        &archive.store(),
        manifest,
        &restore,
        &restore_options(archive),
    )
    .await
}

/// A physical restore into `pgdata` whose token is cancelled once 1 MiB of the
/// artifact was read.
async fn restore_cancelled_midway(
    archive: &Archive,
    manifest: &Manifest,
    pgdata: &Path,
) -> backup_core::Error {
    struct CancelAfter(
        tokio_util::sync::CancellationToken,
        std::sync::atomic::AtomicU64,
    );
    impl backup_core::Progress for CancelAfter {
        fn advance(&self, bytes: u64) {
            let seen = self.1.fetch_add(bytes, std::sync::atomic::Ordering::SeqCst) + bytes;
            if seen > 1 << 20 {
                self.0.cancel();
            }
        }
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let sysid: u64 = manifest.source["system_identifier"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let restore = PhysicalRestore {
        pgdata: pgdata.to_path_buf(),
        restore_command: physical::wal_fetch_command(
            &dbseal_bin(),
            None,
            &archive.datastore,
            sysid,
            true,
        ),
        target: RecoveryTarget::Latest,
        action: TargetAction::Promote,
        timeline: None,
        archive_command: None,
        env_file: None,
        cancel: cancel.clone(),
    };
    let mut options = restore_options(archive);
    options.progress = Some(std::sync::Arc::new(CancelAfter(cancel, Default::default())));
    physical::restore_physical(&archive.store(), manifest, &restore, &options)
        .await
        .unwrap_err()
}

/// A cluster `name` archiving with `archive_command` (WAL segments of `wal_segsize_mb`),
/// holding the empty table `t (id, batch, payload)`.
async fn archiving_with_table(
    tree: &TempTree,
    name: &str,
    wal_segsize_mb: u32,
    archive_command: String,
) -> Cluster {
    let cluster = Cluster::create(
        tree,
        name,
        &ClusterOptions {
            wal_segsize_mb,
            archive_command: Some(archive_command),
        },
    );
    cluster
        .exec("CREATE TABLE t (id int PRIMARY KEY, batch int NOT NULL, payload text NOT NULL)")
        .await;
    cluster
}

/// Count and digest of table `t` (id, batch, payload), or `absent`.
async fn fingerprint(cluster: &Cluster) -> String {
    let c = cluster.client().await;
    let exists: bool = c
        .query_one("SELECT to_regclass('public.t') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    if !exists {
        return "absent".into();
    }
    c.query_one(
        "SELECT count(*)::text || ':' || coalesce(md5(string_agg(id::text || ',' || batch::text || ',' || payload, ';' ORDER BY id)), '') FROM t",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

async fn insert_batch(cluster: &Cluster, batch: i32, rows: i32) {
    cluster
        .exec(&format!(
            "INSERT INTO t (id, batch, payload) SELECT {batch} * 100000 + g, {batch}, md5(g::text) || repeat('x', g % 50) FROM generate_series(1, {rows}) g"
        ))
        .await;
}

async fn now(cluster: &Cluster) -> String {
    cluster.query_text("SELECT clock_timestamp()::text").await
}

/// Starts a restored cluster and waits until recovery finished (promoted).
async fn start_restored(tree: &TempTree, pgdata: &Path, name: &str) -> Cluster {
    let mut c = Cluster::existing(tree, pgdata, name);
    c.start(&["archive_mode=off"])
        .unwrap_or_else(|log| panic!("the restored cluster {name} did not start:\n{log}"));
    c.wait_promoted().await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pitr_restores_the_state_before_a_drop_and_latest_recovers_everything() {
    let tree = TempTree::new("dbseal-pitr-e2e");
    let archive = Archive::new(&tree, "app");
    let cluster = archiving_with_table(&tree, "primary", 16, archive.archive_command()).await;
    insert_batch(&cluster, 0, 500).await;

    let manifest = base_backup(&cluster, &archive).await;
    let sysid = cluster.system_identifier().await;
    assert_eq!(manifest.datastore.kind, "postgres");
    assert_eq!(manifest.artifact.format, "tar");
    assert_eq!(manifest.source["physical"], true);
    assert_eq!(manifest.source["system_identifier"], sysid.to_string());
    assert_eq!(
        manifest.source["wal_archived"], true,
        "pg_basebackup returns once the stop segment is archived"
    );
    let start: Lsn = manifest.source["start_lsn"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let stop: Lsn = manifest.source["stop_lsn"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(start <= stop);
    assert_eq!(
        manifest.source["start_segment"],
        segment_name(1, start.segno(16 << 20), 16 << 20)
    );
    assert_eq!(
        manifest.contents.facts["system_identifier"],
        sysid.to_string()
    );
    assert_eq!(
        manifest.contents.facts["manifest_checked"],
        "sizes and checksums"
    );
    assert!(manifest.contents.counts["files"]["base"] > 100);

    // Level 2: decrypt, parse the tar, check every file against PostgreSQL's manifest.
    let mut formats = FormatRegistry::new();
    backup_postgres::register_formats(&mut formats);
    backup_core::verify_content(
        &archive.store(),
        &manifest,
        &formats,
        &restore_options(&archive),
    )
    .await
    .expect("the base backup verifies at level 2");

    // The workload: batches with known times, then the bad change.
    insert_batch(&cluster, 1, 700).await;
    let _t1 = now(&cluster).await;
    cluster.switch_wal().await;
    insert_batch(&cluster, 2, 900).await;
    let t2 = now(&cluster).await;
    let state_at_t2 = fingerprint(&cluster).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.switch_wal().await;
    cluster.exec("DROP TABLE t").await;
    cluster
        .exec(
            "CREATE TABLE after_drop (x int); INSERT INTO after_drop SELECT generate_series(1, 42)",
        )
        .await;
    let last = cluster.switch_wal().await;
    cluster.wait_archived(&last).await;
    assert!(state_at_t2.starts_with("2100:"), "{state_at_t2}");

    // --latest: everything archived on timeline 1, the DROP included.
    let pgdata = tree.path.join("restored-latest");
    restore_to(&archive, &manifest, &pgdata, RecoveryTarget::Latest)
        .await
        .unwrap();
    let auto = std::fs::read_to_string(pgdata.join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("--fail-on-gap"), "{auto}");
    // The source archived with archive_command (in postgresql.conf): the restored copy
    // must not push its WAL into that archive unless asked.
    assert!(
        auto.contains("archive_mode = 'off'") && auto.contains("archive_command = ''"),
        "{auto}"
    );
    assert_eq!(
        physical::inherited_settings(&pgdata),
        vec!["archive_mode", "archive_command"]
    );
    let restored = start_restored(&tree, &pgdata, "restored-latest").await;
    assert_eq!(fingerprint(&restored).await, "absent");
    assert_eq!(count_after_drop(&restored).await, Some(42));
    drop(restored);

    // A non-empty data directory is refused before anything is read.
    let e = restore_to(&archive, &manifest, &pgdata, RecoveryTarget::Latest)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is not empty"), "{e}");

    // Interrupted midway (the token cancelled once 1 MiB was read, as SIGTERM does in
    // the CLI): the unpacked files are removed, no recovery.signal, no partial PGDATA.
    let cancelled_dir = tree.path.join("restored-cancelled");
    let e = restore_cancelled_midway(&archive, &manifest, &cancelled_dir).await;
    assert_eq!(e.kind(), backup_core::ErrorKind::Interrupted, "{e}");
    let left: Vec<_> = std::fs::read_dir(&cancelled_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "a cancelled physical restore left {left:?}"
    );

    // Restore to t2, before the DROP: exactly the state at t2.
    let pgdata = tree.path.join("restored-t2");
    // Archiving from the restored cluster, as `--archive-to` asks (off otherwise).
    let report = restore_with(
        &archive,
        &manifest,
        &pgdata,
        RecoveryTarget::Time(t2.clone()),
        None,
        Some(archive.archive_command()),
        "",
    )
    .await
    .unwrap();
    assert!(report.files > 100, "{report:?}");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(pgdata.join("recovery.signal").is_file());
    let auto = std::fs::read_to_string(pgdata.join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.contains("restore_command = '") && auto.contains("wal-fetch"),
        "{auto}"
    );
    assert!(
        auto.contains(&format!("recovery_target_time = '{t2}'")),
        "{auto}"
    );
    assert!(
        !auto.contains("AGE-SECRET-KEY"),
        "no secret in postgresql.auto.conf"
    );
    // This one keeps archiving (into the same datastore): promoted, it starts
    // timeline 2 and archives 00000002.history and its segments.
    let mut restored = Cluster::existing(&tree, &pgdata, "restored-t2");
    restored
        .start(&[])
        .unwrap_or_else(|log| panic!("the restored cluster did not start:\n{log}"));
    restored.wait_promoted().await;
    assert_eq!(
        fingerprint(&restored).await,
        state_at_t2,
        "data equals the state at t2"
    );
    assert_eq!(
        count_after_drop(&restored).await,
        None,
        "nothing after the target was replayed"
    );
    let log = restored.log_text();
    assert!(
        log.contains("recovery stopping before commit")
            && log.contains("selected new timeline ID: 2"),
        "{}",
        restored.log_tail(30)
    );
    restored
        .exec("INSERT INTO t VALUES (999999, 9, 'written on timeline 2')")
        .await;
    let tl2_last = restored.switch_wal().await;
    assert!(tl2_last.starts_with("00000002"), "{tl2_last}");
    restored.wait_archived(&tl2_last).await;
    let state_on_tl2 = fingerprint(&restored).await;
    drop(restored);

    // The archive now holds two timelines; wal-verify follows the history.
    let (code, out, err) = archive.dbseal(&[
        "wal-verify",
        "--datastore",
        "app",
        "-i",
        archive.identity.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("timeline 00000002: newest") && out.contains("complete"),
        "{out}"
    );

    // --latest now follows timeline 2 (PostgreSQL's recovery_target_timeline = latest) ...
    let pgdata = tree.path.join("restored-latest-tl2");
    let report = restore_to(&archive, &manifest, &pgdata, RecoveryTarget::Latest)
        .await
        .unwrap();
    assert_eq!(report.plan.target_timeline, 2);
    let restored = start_restored(&tree, &pgdata, "restored-latest-tl2").await;
    assert_eq!(fingerprint(&restored).await, state_on_tl2);
    assert_eq!(count_after_drop(&restored).await, None);
    drop(restored);

    // ... and --target-timeline 1 still reaches the end of timeline 1.
    let pgdata = tree.path.join("restored-tl1");
    let report = restore_on_timeline(
        &archive,
        &manifest,
        &pgdata,
        RecoveryTarget::Latest,
        Some("1"),
    )
    .await
    .unwrap();
    assert_eq!(report.plan.target_timeline, 1);
    let restored = start_restored(&tree, &pgdata, "restored-tl1").await;
    assert_eq!(fingerprint(&restored).await, "absent");
    assert_eq!(count_after_drop(&restored).await, Some(42));
    drop(restored);

    // A corrupted base backup: the restore fails midway and leaves the target as it
    // was (absent, or empty).
    let artifact = archive.store_dir.join(&manifest.artifact.key);
    let mut bytes = std::fs::read(&artifact).unwrap();
    let at = bytes.len() * 2 / 3;
    bytes[at] ^= 0x01;
    std::fs::write(&artifact, &bytes).unwrap();
    let absent = tree.path.join("r-bad-absent");
    let e = restore_to(&archive, &manifest, &absent, RecoveryTarget::Latest)
        .await
        .unwrap_err();
    assert!(e.kind() == backup_core::ErrorKind::Verification, "{e}");
    assert!(
        !absent.exists(),
        "a failed restore removes what it unpacked"
    );
    let empty = tree.dir("r-bad-empty");
    let e = restore_to(&archive, &manifest, &empty, RecoveryTarget::Latest)
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&manifest.artifact.key), "{e}");
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "the empty target stays empty"
    );
}

/// Rows of `after_drop`, `None` if the table does not exist.
async fn count_after_drop(cluster: &Cluster) -> Option<i64> {
    let c = cluster.client().await;
    let exists: bool = c
        .query_one("SELECT to_regclass('public.after_drop') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    if !exists {
        return None;
    }
    Some(
        c.query_one("SELECT count(*) FROM after_drop", &[])
            .await
            .unwrap()
            .get(0),
    )
}

/// Moves a WAL file's manifest and object aside (to put them back later).
fn hide(archive: &Archive, name: &str, to: &Path) -> Vec<(PathBuf, PathBuf)> {
    let f = WalFile::parse(name).unwrap();
    let dir = archive.timeline_dir(f.timeline);
    let mut moved = Vec::new();
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with(name) {
            let dest = to.join(p.file_name().unwrap());
            std::fs::rename(&p, &dest).unwrap();
            moved.push((dest, p));
        }
    }
    assert!(!moved.is_empty(), "{name} is archived");
    moved
}

fn put_back(moved: &[(PathBuf, PathBuf)]) {
    for (from, to) in moved {
        std::fs::rename(from, to).unwrap();
    }
}

fn object_of(archive: &Archive, name: &str) -> PathBuf {
    let f = WalFile::parse(name).unwrap();
    archive
        .timeline_dir(f.timeline)
        .join(format!("{name}.zst.age"))
}

/// Waits until the server process is gone (recovery aborted) or `timeout` passes.
async fn wait_stopped(c: &Cluster, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !c.data.join("postmaster.pid").exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_corrupted_and_foreign_segments_are_detected_by_wal_verify_and_restore() {
    let tree = TempTree::new("dbseal-pitr-bad");
    let archive = Archive::new(&tree, "b");
    let seg: u64 = 1 << 20;
    let cluster = archiving_with_table(&tree, "b", 1, archive.archive_command()).await;
    let manifest = base_backup(&cluster, &archive).await;
    let stop: Lsn = manifest.source["stop_lsn"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut last = String::new();
    for batch in 1..=6 {
        insert_batch(&cluster, batch, 200).await;
        last = cluster.switch_wal().await;
    }
    cluster.wait_archived(&last).await;
    let last_segno = WalFile::parse(&last).unwrap().segno(seg);
    let stop_segno = stop.segno(seg);
    assert!(last_segno >= stop_segno + 5, "{last} vs stop {stop}");
    let gap = segment_name(1, stop_segno + 2, seg);
    let corrupt = segment_name(1, stop_segno + 3, seg);
    let foreign = segment_name(1, stop_segno + 4, seg);
    let ident = archive.identity.to_str().unwrap().to_string();

    // A healthy archive.
    let (code, out, err) = archive.dbseal(&["wal-verify", "--datastore", "b", "-i", &ident]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("ok") && out.contains("complete"), "{out}");

    // --- A gap.
    let moved = hide(&archive, &gap, &tree.path.join("hidden"));
    let (code, out, err) =
        archive.dbseal(&["wal-verify", "--datastore", "b", "--level", "metadata"]);
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(out.contains(&format!("gap: {gap} is missing")), "{out}");
    let e = restore_to(
        &archive,
        &manifest,
        &tree.path.join("r-gap"),
        RecoveryTarget::Latest,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("gap") && e.contains(&gap), "{e}");
    assert!(!tree.path.join("r-gap").exists(), "nothing written");
    let lsn_after = Lsn((stop_segno + 3) * seg);
    let e = restore_to(
        &archive,
        &manifest,
        &tree.path.join("r-gap"),
        RecoveryTarget::Lsn(lsn_after),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains(&gap), "{e}");
    let target = tree.path.join("fetched");
    let (code, _, err) = archive.dbseal(&[
        "wal-fetch",
        "--datastore",
        "b",
        "-i",
        &ident,
        &gap,
        target.to_str().unwrap(),
    ]);
    assert_eq!(
        code, 3,
        "a missing segment is 'not found' for PostgreSQL: {err}"
    );
    assert!(err.contains("a gap"), "{err}");
    let (code, _, err) = archive.dbseal(&[
        "wal-fetch",
        "--datastore",
        "b",
        "-i",
        &ident,
        "--fail-on-gap",
        &gap,
        target.to_str().unwrap(),
    ]);
    assert_eq!(code, 255, "--fail-on-gap aborts recovery: {err}");
    assert!(!target.exists());
    put_back(&moved);
    let (code, out, err) =
        archive.dbseal(&["wal-verify", "--datastore", "b", "--level", "metadata"]);
    assert_eq!(code, 0, "{out}\n{err}");

    // --- A corrupted segment (one flipped byte in the stored object).
    let obj = object_of(&archive, &corrupt);
    let original = std::fs::read(&obj).unwrap();
    let mut bad = original.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    std::fs::write(&obj, &bad).unwrap();
    let (code, out, err) = archive.dbseal(&["wal-verify", "--datastore", "b"]);
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(
        out.contains(&format!("corrupt: {corrupt}")) && out.contains("SHA-256"),
        "{out}"
    );
    let (code, _, err) = archive.dbseal(&[
        "wal-fetch",
        "--datastore",
        "b",
        "-i",
        &ident,
        &corrupt,
        target.to_str().unwrap(),
    ]);
    assert_eq!(code, 255, "a corrupted segment aborts recovery: {err}");
    assert!(err.contains(&corrupt) && err.contains("corrupted"), "{err}");
    assert!(!target.exists(), "nothing written for a corrupted segment");
    // Restore: the metadata is intact, so the restore is written; PostgreSQL then
    // aborts recovery at the corrupted segment instead of promoting without it.
    let pgdata = tree.path.join("r-corrupt");
    restore_to(&archive, &manifest, &pgdata, RecoveryTarget::Latest)
        .await
        .unwrap();
    let mut restored = Cluster::existing(&tree, &pgdata, "r-corrupt");
    let _ = restored.start(&["archive_mode=off"]);
    assert!(
        wait_stopped(&restored, Duration::from_secs(60)).await,
        "recovery must abort at the corrupted segment\n{}",
        restored.log_tail(30)
    );
    let log = restored.log_text();
    assert!(
        log.contains(&format!("wal-fetch {corrupt}")) && log.contains("corrupted"),
        "the server log names the corrupted segment:\n{log}"
    );
    assert!(log.contains("FATAL"), "{log}");
    assert!(
        !log.contains("selected new timeline ID"),
        "it must not promote without the segment: {log}"
    );
    restored.stop();
    std::fs::write(&obj, &original).unwrap();

    // --- A foreign segment: another cluster's WAL under the same name.
    let other_archive = Archive::new(&tree, "c");
    let other = Cluster::create(
        &tree,
        "c",
        &ClusterOptions {
            wal_segsize_mb: 1,
            archive_command: Some(other_archive.archive_command()),
        },
    );
    assert_ne!(
        other.system_identifier().await,
        cluster.system_identifier().await
    );
    let foreign_segno = WalFile::parse(&foreign).unwrap().segno(seg);
    loop {
        let s = other.switch_wal().await;
        if WalFile::parse(&s).unwrap().segno(seg) > foreign_segno {
            other.wait_archived(&s).await;
            break;
        }
    }
    // wal-push refuses it outright.
    let raw = tree.path.join(&foreign);
    let other_ident = other_archive.identity.to_str().unwrap().to_string();
    let (code, _, err) = other_archive.dbseal(&[
        "wal-fetch",
        "--datastore",
        "c",
        "-i",
        &other_ident,
        &foreign,
        raw.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = archive.dbseal(&[
        "wal-push",
        "--datastore",
        "b",
        "-r",
        &archive.keys.recipient(),
        raw.to_str().unwrap(),
    ]);
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains("another cluster") && err.contains("database system"),
        "{err}"
    );
    // Copied into the archive behind dbseal's back, it is found: first by its signature
    // (the other archive's key, for another place)...
    let moved = hide(&archive, &foreign, &tree.path.join("hidden-own"));
    for ext in [".json", ".json.minisig", ".zst.age"] {
        let name = format!("{foreign}{ext}");
        std::fs::copy(
            other_archive.timeline_dir(1).join(&name),
            archive.timeline_dir(1).join(&name),
        )
        .unwrap();
    }
    let (code, out, err) =
        archive.dbseal(&["wal-verify", "--datastore", "b", "--level", "metadata"]);
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(
        out.contains(&format!("{foreign}.json is not trusted")),
        "{out}"
    );
    // ...signed here (as a host holding this archive's key would, copying it by hand),
    // by the datastore its manifest names...
    let key = format!("b/wal/00000001/{foreign}.json");
    archive.sign(&key);
    let (code, out, err) =
        archive.dbseal(&["wal-verify", "--datastore", "b", "--level", "metadata"]);
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(out.contains("describes datastore `c`'s WAL"), "{out}");
    // ...and, renamed too, by the database system it belongs to.
    let path = archive.store_dir.join(&key);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("\"name\": \"c\"", "\"name\": \"b\"", 1),
    )
    .unwrap();
    archive.sign(&key);
    let (code, out, err) =
        archive.dbseal(&["wal-verify", "--datastore", "b", "--level", "metadata"]);
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(
        out.contains(&format!("foreign: {foreign} belongs to database system")),
        "{out}"
    );
    let e = restore_to(
        &archive,
        &manifest,
        &tree.path.join("r-foreign"),
        RecoveryTarget::Latest,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains(&foreign) && e.contains("another cluster"), "{e}");
    let (code, _, err) = archive.dbseal(&[
        "wal-fetch",
        "--datastore",
        "b",
        "-i",
        &ident,
        &foreign,
        target.to_str().unwrap(),
    ]);
    assert_eq!(code, 255, "{err}");
    assert!(err.contains("another cluster"), "{err}");
    for ext in [".json", ".json.minisig", ".zst.age"] {
        std::fs::remove_file(archive.timeline_dir(1).join(format!("{foreign}{ext}"))).unwrap();
    }
    put_back(&moved);
    let report = WalArchive::new(archive.store(), "b")
        .unwrap()
        .verify(
            &[physical::base_backup_wal(&manifest).unwrap()],
            WalVerifyLevel::Content,
            Some(archive.keys.decryption().into()),
        )
        .await
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.backups[0].complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_push_failures_lose_nothing_and_archiving_catches_up() {
    use std::os::unix::fs::PermissionsExt;
    let tree = TempTree::new("dbseal-pitr-outage");
    let archive = Archive::new(&tree, "d");
    let cluster = archiving_with_table(&tree, "d", 1, archive.archive_command()).await;
    // This test drives the CLI: `dbseal backup postgres --physical`.
    let port = cluster.port.to_string();
    let (code, out, err) = archive.dbseal(&[
        "--json",
        "backup",
        "postgres",
        "--physical",
        "--fast-checkpoint",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--user",
        "postgres",
        "--dbname",
        "postgres",
        "-d",
        "d",
        "-r",
        &archive.keys.recipient(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let manifest: Manifest = serde_json::from_str(&out).unwrap();
    assert_eq!(manifest.source["wal_archived"], true, "{out}");
    insert_batch(&cluster, 1, 300).await;
    let s1 = cluster.switch_wal().await;
    cluster.wait_archived(&s1).await;

    // The store becomes unwritable for the server.
    let tl_dir = archive.timeline_dir(1);
    std::fs::set_permissions(&tl_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    insert_batch(&cluster, 2, 300).await;
    let s2 = cluster.switch_wal().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = cluster
            .client()
            .await
            .query_one(
                "SELECT failed_count, coalesce(last_failed_wal, '') FROM pg_stat_archiver",
                &[],
            )
            .await
            .unwrap();
        let (failed, last_failed): (i64, String) = (row.get(0), row.get(1));
        if failed > 0 && last_failed == s2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the archiver never reported a failure\n{}",
            cluster.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // PostgreSQL keeps the segment and its .ready marker.
    assert!(cluster.data.join("pg_wal").join(&s2).is_file());
    assert!(cluster
        .data
        .join("pg_wal/archive_status")
        .join(format!("{s2}.ready"))
        .is_file());
    let log = cluster.log_text();
    assert!(log.contains("archive command failed"), "{log}");
    assert!(log.contains("dbseal: error"), "dbseal says why: {log}");
    assert!(!archive.timeline_dir(1).join(format!("{s2}.json")).exists());

    // The store comes back: the next wake-up archives the backlog, oldest first.
    std::fs::set_permissions(&tl_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    insert_batch(&cluster, 3, 300).await;
    let s3 = cluster.switch_wal().await;
    cluster.wait_archived(&s3).await;
    assert!(archive.timeline_dir(1).join(format!("{s2}.json")).is_file());
    let expected = fingerprint(&cluster).await;
    assert!(expected.starts_with("900:"), "{expected}");

    let (code, out, err) = archive.dbseal(&[
        "wal-verify",
        "--datastore",
        "d",
        "-i",
        archive.identity.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    // `dbseal restore ID --pgdata DIR --latest`.
    let pgdata = tree.path.join("restored");
    let id = manifest.backup_id.to_string();
    let ident = archive.identity.to_str().unwrap().to_string();
    let (code, out, err) = archive.dbseal(&[
        "restore",
        &id,
        "--pgdata",
        pgdata.to_str().unwrap(),
        "--latest",
        "--dry-run",
        "-i",
        &ident,
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("nothing was changed") && !pgdata.exists(),
        "{out}"
    );
    let (code, out, err) = archive.dbseal(&[
        "restore",
        &id,
        "--pgdata",
        pgdata.to_str().unwrap(),
        "--latest",
        "-i",
        &ident,
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("next: start PostgreSQL"), "{out}");
    // The store settings restore_command reads are beside the data directory, 0600,
    // and nothing of dbseal's is in it (a base backup of it must not carry them).
    let env_path = physical::restore_env_path(&pgdata);
    let env = std::fs::read_to_string(&env_path).unwrap();
    assert!(
        env.contains("DBSEAL_IDENTITY=") && !env.contains("AGE-SECRET-KEY"),
        "{env}"
    );
    let mode = std::fs::metadata(&env_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    for entry in std::fs::read_dir(&pgdata).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            !name.to_string_lossy().contains("dbseal"),
            "{name:?} in PGDATA"
        );
    }
    let restored = start_restored(&tree, &pgdata, "restored").await;
    assert_eq!(fingerprint(&restored).await, expected, "nothing was lost");
}

/// `--concurrency` against a real server: a backlog of ready segments is archived
/// ahead by `wal-push --concurrency 4` (PostgreSQL's archiver then gets its answers
/// from the markers), and a restore whose restore_command prefetches
/// (`DBSEAL_WAL_CONCURRENCY=4` in its env file) recovers the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wal_push_and_prefetching_recovery_keep_every_row() {
    let tree = TempTree::new("dbseal-pitr-parallel");
    let archive = Archive::new(&tree, "par");
    let command = archive
        .archive_command()
        .replace(" wal-push ", " wal-push --concurrency 4 ");
    let cluster = archiving_with_table(&tree, "primary", 1, command.clone()).await;
    insert_batch(&cluster, 0, 500).await;
    let manifest = base_backup(&cluster, &archive).await;

    // A backlog: archiving paused while about twenty segments fill, then resumed.
    cluster.exec("ALTER SYSTEM SET archive_command = ''").await;
    cluster.exec("SELECT pg_reload_conf()").await;
    for batch in 1..=20 {
        insert_batch(&cluster, batch, 4000).await;
    }
    let state = fingerprint(&cluster).await;
    cluster
        .exec(&format!(
            "ALTER SYSTEM SET archive_command = '{}'",
            command.replace('\'', "''")
        ))
        .await;
    cluster.exec("SELECT pg_reload_conf()").await;
    let last = cluster.switch_wal().await;
    cluster.wait_archived(&last).await;
    let log = cluster.log_text();
    let ahead = log.matches("archived ahead").count();
    assert!(
        ahead >= 10,
        "most of the backlog is answered from markers ({ahead}):\n{}",
        cluster.log_tail(40)
    );
    let pg_wal = cluster.data.join("pg_wal");
    let left = std::fs::read_dir(pg_wal.join(".dbseal-pushed"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(left <= 1, "markers are consumed ({left} left)");

    // Every archived segment verifies, and recovery with prefetch restores every row.
    let (code, out, err) = archive.dbseal(&[
        "wal-verify",
        "--datastore",
        "par",
        "-i",
        archive.identity.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let pgdata = tree.path.join("restored");
    restore_with(
        &archive,
        &manifest,
        &pgdata,
        RecoveryTarget::Latest,
        None,
        None,
        "DBSEAL_WAL_CONCURRENCY=4\n",
    )
    .await
    .unwrap();
    let restored = start_restored(&tree, &pgdata, "restored").await;
    assert_eq!(fingerprint(&restored).await, state);
    let log = restored.log_text();
    let prefetched = log.matches("prefetched)").count();
    assert!(
        prefetched >= 10,
        "most segments come from the prefetch ({prefetched}):\n{}",
        restored.log_tail(40)
    );
}

/// Runs `dbseal drill --datastore app --json` with `config`, its temporary files under
/// `tmp` (TMPDIR); returns (exit code, the JSON drills, stderr).
fn drill(archive: &Archive, config: &Path, tmp: &Path) -> (i32, serde_json::Value, String) {
    let out = std::process::Command::new(dbseal_bin())
        .args(["--store", archive.store_dir.to_str().unwrap(), "--config"])
        .arg(config)
        .args(["drill", "--datastore", "app", "--json", "-i"])
        .arg(&archive.identity)
        .env_remove("DBSEAL_STORE")
        .env("DBSEAL_SIGNING_KEY", &archive.signing_key)
        .env("TMPDIR", tmp)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("drill printed no JSON ({e}): {stdout}\n{stderr}"));
    (out.status.code().unwrap_or(-1), json, stderr)
}

fn left_in(dir: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect()
}

/// `dbseal drill` of a datastore with WAL archiving: the newest base backup restored
/// into a temporary data directory, PostgreSQL started on it, every archived segment
/// replayed (rows written after the base backup included), checked (pg_amcheck) and
/// removed; RTO by phase, RPO from the archive's newest segment; exit 9 with
/// `rto = "1s"`; a gap in the archive fails the drill; nothing is left behind either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_replays_the_archive_onto_the_newest_base_backup_and_leaves_nothing() {
    let tree = TempTree::new("dbseal-pitr-drill");
    let archive = Archive::new(&tree, "app");
    let cluster = archiving_with_table(&tree, "primary", 16, archive.archive_command()).await;
    insert_batch(&cluster, 0, 500).await;
    let manifest = base_backup(&cluster, &archive).await;
    // Rows only the WAL archive holds.
    insert_batch(&cluster, 1, 700).await;
    let middle = cluster.switch_wal().await;
    insert_batch(&cluster, 2, 300).await;
    let newest = cluster.switch_wal().await;
    cluster.wait_archived(&newest).await;

    let tmp = tree.dir("tmp");
    let config = |rto: &str| {
        let path = tree.path.join(format!("dbseal-{rto}.toml"));
        std::fs::write(
            &path,
            format!(
                "[datastores.app]\nkind = \"postgres\"\nurl = \"postgresql://postgres@127.0.0.1:{}/postgres\"\nrto = \"{rto}\"\nrpo = \"1h\"\n",
                cluster.port
            ),
        )
        .unwrap();
        path
    };

    let (code, json, err) = drill(&archive, &config("1h"), &tmp);
    assert_eq!(code, 0, "{json}\n{err}");
    let d = &json[0];
    assert_eq!(d["backup_id"], manifest.backup_id.to_string(), "{d}");
    assert_eq!(d["verified"], true, "{d}");
    assert_eq!(d["passed"], true, "{d}");
    let phases: Vec<&str> = d["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["restore", "recovery", "verify"], "{d}");
    let message = d["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "the newest archived segment {newest} was replayed"
        )),
        "{message}"
    );
    assert!(message.contains("pg_amcheck --all passed"), "{message}");
    assert!(message.contains("database(s) answer"), "{message}");
    // RPO: the archive's newest segment, seconds ago (not the base backup's end).
    let rpo = d["rpo_seconds"].as_f64().unwrap();
    assert_eq!(Some(rpo), d["wal_rpo_seconds"].as_f64(), "{d}");
    assert!((0.0..300.0).contains(&rpo), "{d}");
    assert!(d["rto_seconds"].as_f64().unwrap() > 0.0, "{d}");
    assert!(left_in(&tmp).is_empty(), "{:?}", left_in(&tmp));

    // An objective no drill can meet (this one takes under a second here): exit 9,
    // verified but not passed.
    let (code, json, err) = drill(&archive, &config("0s"), &tmp);
    assert_eq!(code, 9, "{json}\n{err}");
    assert_eq!(json[0]["verified"], true, "{json}");
    assert_eq!(json[0]["passed"], false, "{json}");
    assert!(
        json[0]["message"]
            .as_str()
            .unwrap()
            .contains("over its objective 0s"),
        "{json}"
    );
    assert!(left_in(&tmp).is_empty(), "{:?}", left_in(&tmp));

    // A segment missing between the base backup and the newest: found before the
    // server starts; the drill fails (not as a missed objective), nothing is left.
    let moved = hide(&archive, &middle, &tree.path.join("hidden"));
    let (code, json, err) = drill(&archive, &config("1h"), &tmp);
    put_back(&moved);
    assert!(code != 0 && code != 9, "exit {code}: {json}\n{err}");
    assert_eq!(json[0]["verified"], false, "{json}");
    let message = json[0]["message"].as_str().unwrap();
    assert!(
        message.contains("gap in the WAL archive") && message.contains(&middle),
        "{message}"
    );
    assert!(left_in(&tmp).is_empty(), "{:?}", left_in(&tmp));

    // The same segment present but corrupted: wal-fetch refuses it during replay, the
    // server stops, the drill fails with the server's log and removes the directory.
    let object = object_of(&archive, &middle);
    let original = std::fs::read(&object).unwrap();
    let mut corrupted = original.clone();
    let at = corrupted.len() / 2;
    corrupted[at] ^= 0x55;
    std::fs::write(&object, &corrupted).unwrap();
    let (code, json, err) = drill(&archive, &config("1h"), &tmp);
    std::fs::write(&object, &original).unwrap();
    assert!(code != 0 && code != 9, "exit {code}: {json}\n{err}");
    assert_eq!(json[0]["verified"], false, "{json}");
    let message = json[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "stopped before recovery ended: dbseal: error: wal-fetch {middle}"
        )) && message.contains("corrupted or tampered")
            && message.contains("--- server log ---"),
        "{message}"
    );
    assert!(left_in(&tmp).is_empty(), "{:?}", left_in(&tmp));

    // Every drill left a signed record, the failed ones too.
    let records = archive.store_dir.join("_records/app/drills");
    let written = left_in(&records)
        .iter()
        .filter(|n| n.to_string_lossy().ends_with(".json"))
        .count();
    assert_eq!(written, 4);
}

/// SIGINT while a point-in-time drill's temporary cluster replays the archive: exit
/// 130, the server stopped, its directory removed, no drill record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_point_in_time_drill_stops_and_removes_its_cluster() {
    let tree = TempTree::new("dbseal-pitr-drill-int");
    let archive = Archive::new(&tree, "app");
    let cluster = archiving_with_table(&tree, "primary", 1, archive.archive_command()).await;
    insert_batch(&cluster, 0, 500).await;
    base_backup(&cluster, &archive).await;
    // Many small segments after the base backup: replaying them (a wal-fetch each)
    // takes seconds, the window for the signal.
    let mut last = String::new();
    for batch in 1..=120 {
        insert_batch(&cluster, batch, 20).await;
        last = cluster.switch_wal().await;
    }
    cluster.wait_archived(&last).await;
    let tmp = tree.dir("tmp");
    let config = tree.path.join("dbseal.toml");
    std::fs::write(
        &config,
        format!(
            "[datastores.app]\nkind = \"postgres\"\nurl = \"postgresql://postgres@127.0.0.1:{}/postgres\"\n",
            cluster.port
        ),
    )
    .unwrap();
    let child = std::process::Command::new(dbseal_bin())
        .args(["--store", archive.store_dir.to_str().unwrap(), "--config"])
        .arg(&config)
        .args(["drill", "--datastore", "app", "-i"])
        .arg(&archive.identity)
        .env_remove("DBSEAL_STORE")
        .env("DBSEAL_SIGNING_KEY", &archive.signing_key)
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The temporary cluster is up once its postmaster.pid holds a pid.
    let deadline = Instant::now() + Duration::from_secs(120);
    let postmaster: u32 = loop {
        let pid = std::fs::read_dir(&tmp).unwrap().flatten().find_map(|e| {
            let text = std::fs::read_to_string(e.path().join("data/postmaster.pid")).ok()?;
            text.lines().next()?.trim().parse().ok()
        });
        if let Some(pid) = pid {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "the drill's cluster never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(left_in(&tmp).is_empty(), "{:?}", left_in(&tmp));
    // Gone, or a zombie nobody reaped yet (a container's init may not).
    let state = std::fs::read_to_string(format!("/proc/{postmaster}/stat")).unwrap_or_default();
    let running = state
        .rsplit_once(") ")
        .is_some_and(|(_, rest)| !rest.starts_with('Z'));
    assert!(
        !running,
        "the drill's server (pid {postmaster}) is stopped: {state}"
    );
    let records = archive.store_dir.join("_records/app/drills");
    assert!(!records.exists() || left_in(&records).is_empty());
}
