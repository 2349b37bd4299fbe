//! The driver suite: what every [`Driver`] promises, checked the same way for every
//! database crate against its real server.
//!
//! A database crate implements [`DriverFixture`] (fill a source, make targets, read a
//! target's contents with the database's own client) and calls each case from a
//! `#[tokio::test]` of its own:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn round_trip() {
//!     backup_core::conformance::driver::round_trip(&MyDriver, &MyFixture::new()).await;
//! }
//! ```
//!
//! Every case backs the fixture's seeded source up with [`Driver::backup`] into a
//! file store of its own and then:
//! - [`round_trip`]: a restore into a fresh target has the source's fingerprint; the
//!   manifest is of the driver's kind; levels 1 and 2 (with the driver's own format
//!   readers) pass.
//! - [`non_empty_target_is_refused`]: a restore into a target holding other data
//!   without `replace` is refused ([`ErrorKind::Refused`]) and the target is unchanged.
//! - [`corrupted_artifact`], [`truncated_artifact`]: a flipped byte or a truncation of
//!   the stored artifact fails a `replace` restore into a target holding other data
//!   with [`ErrorKind::Verification`], and the target is unchanged.
//! - [`wrong_key`]: a restore with another identity fails with
//!   [`ErrorKind::Decryption`], and the target is unchanged.
//! - [`cancelled_restore`]: a restore cancelled through [`RestoreContext::cancel`] once
//!   half of the artifact was read fails with [`ErrorKind::Interrupted`], and the
//!   target is unchanged.
//! - [`cancelled_backup`]: a backup cancelled through its `BackupOptions::cancel` once
//!   it has read from the source fails with [`ErrorKind::Interrupted`], leaves nothing
//!   in the store (no manifest, no artifact, no staging file), and the source is
//!   unchanged.
//! - [`verify_restore`]: level-3 verification passes on the intact backup and fails
//!   with [`ErrorKind::Verification`] on a corrupted one (when the fixture names a
//!   server for it).
//!
//! "Unchanged" means the fixture's [`DriverFixture::fingerprint`] (read with the
//! database's own client, not dbseal's) is the same before and after.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::driver::{BackupContext, Driver, DriverOptions, RestoreContext, RestoreTarget};
use crate::{
    BackupOptions, BackupStore, ErrorKind, KeyPair, Manifest, Progress, RestoreOptions, VerifyLevel,
};

/// A source the fixture filled.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// Backup options that point [`Driver::backup`] at it.
    pub options: DriverOptions,
    /// The same database as a restore target (for [`DriverFixture::fingerprint`], and
    /// as a non-empty target the failure cases restore over).
    pub target: RestoreTarget,
}

/// A database crate's test environment for the driver suite. One fixture serves one
/// case; [`DriverFixture::cleanup`] runs after the case (also when it failed).
#[async_trait::async_trait]
pub trait DriverFixture: Send + Sync {
    /// Fills a new source with data set `variant` and returns it. Variant 0 is the one
    /// backed up; variant 1 is other data the failure cases put in the target, so that
    /// "unchanged" means something: the two must have different fingerprints. A backup
    /// of variant 0 should be at least a few hundred KiB stored, so a cancellation
    /// lands in the middle of the stream.
    async fn seed(&self, variant: u32) -> Seeded;

    /// An empty target (created if the kind needs that) that a restore fills.
    async fn fresh_target(&self) -> RestoreTarget;

    /// A digest of everything `target` holds, read with the database's own client
    /// (psql, redis-cli, a Neo4j driver), not with dbseal's code.
    async fn fingerprint(&self, target: &RestoreTarget) -> String;

    /// A server URL for one level-3 verification, or `None` to skip that case. Called
    /// once per verification: a fixture whose server needs the scratch database made
    /// beforehand (ArcadeDB) makes a new one each time.
    async fn verify_url(&self) -> Option<String>;

    /// Removes what [`DriverFixture::seed`] and [`DriverFixture::fresh_target`]
    /// created.
    async fn cleanup(&self);
}

/// A backup of the fixture's variant 0 in a file store of its own.
struct Backed {
    store: BackupStore,
    dir: PathBuf,
    keys: KeyPair,
    manifest: Manifest,
    source: RestoreTarget,
}

impl Drop for Backed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Backed {
    fn options(&self) -> RestoreOptions {
        RestoreOptions {
            decryption: Some(self.keys.decryption().into()),
            ..Default::default()
        }
    }

    fn context(&self, options: RestoreOptions) -> RestoreContext {
        RestoreContext {
            store: self.store.clone(),
            options,
            cancel: CancellationToken::new(),
            altered: Default::default(),
        }
    }

    async fn stored(&self) -> Vec<u8> {
        self.store
            .get_bytes(&self.manifest.artifact.key)
            .await
            .unwrap_or_else(|e| panic!("reading the stored artifact: {e}"))
            .to_vec()
    }

    async fn replace_stored(&self, bytes: Vec<u8>) {
        self.store
            .put_bytes(&self.manifest.artifact.key, bytes)
            .await
            .unwrap_or_else(|e| panic!("replacing the stored artifact: {e}"));
    }
}

/// A new file store in a temporary directory of its own (the caller removes it).
fn scratch_store(kind: &str) -> (PathBuf, BackupStore) {
    let dir = std::env::temp_dir().join(format!(
        "dbseal-conformance-{kind}-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let store = BackupStore::open(&dir.to_string_lossy(), &Default::default())
        .unwrap_or_else(|e| panic!("{kind}: opening the store: {e}"))
        .with_trust(crate::Trust::ephemeral().unwrap());
    (dir, store)
}

/// Backs up the fixture's variant 0 with `driver`.
async fn backed_up(driver: &dyn Driver, fixture: &dyn DriverFixture) -> Backed {
    let kind = driver.kind();
    let seeded = fixture.seed(0).await;
    let (dir, store) = scratch_store(kind);
    let keys = KeyPair::generate();
    let ctx = BackupContext {
        store: store.clone(),
        options: BackupOptions::new(format!("conformance-{kind}"), keys.encryption()),
    };
    let manifest = driver
        .backup(&seeded.options, &ctx)
        .await
        .unwrap_or_else(|e| panic!("{kind}: backup of {:?}: {e}", seeded.options));
    Backed {
        store,
        dir,
        keys,
        manifest,
        source: seeded.target,
    }
}

/// Runs `case`, then the fixture's clean-up, also when the case panicked.
async fn with_cleanup<F>(fixture: &dyn DriverFixture, case: F)
where
    F: std::future::Future<Output = ()>,
{
    let outcome = AssertUnwindSafe(case).catch_unwind().await;
    fixture.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A target holding the fixture's variant 1, set to be replaced, with its fingerprint;
/// checks it differs from the backed-up source's.
async fn occupied_target(
    driver: &dyn Driver,
    fixture: &dyn DriverFixture,
    backed: &Backed,
) -> (RestoreTarget, String) {
    let mut target = fixture.seed(1).await.target;
    let before = fixture.fingerprint(&target).await;
    let source = fixture.fingerprint(&backed.source).await;
    assert_ne!(
        before,
        source,
        "{}: fixture: variants 0 and 1 have the same fingerprint",
        driver.kind()
    );
    target.replace = true;
    (target, before)
}

/// Restores `backed` into `target` expecting an error of `kind`; then checks the
/// target still has fingerprint `before`.
async fn restore_fails_unchanged(
    driver: &dyn Driver,
    fixture: &dyn DriverFixture,
    backed: &Backed,
    (target, before): &(RestoreTarget, String),
    ctx: &RestoreContext,
    kind: ErrorKind,
    what: &str,
) {
    let name = driver.kind();
    match driver.restore(&backed.manifest, target, ctx).await {
        Ok(outcome) => panic!("{name}: {what}: the restore succeeded: {outcome:?}"),
        Err(e) => assert_eq!(e.kind(), kind, "{name}: {what}: wrong error kind: {e}"),
    }
    let after = fixture.fingerprint(target).await;
    assert_eq!(&after, before, "{name}: {what}: the target changed");
}

/// A restore into a fresh target has the source's fingerprint; the manifest is of the
/// driver's kind; levels 1 and 2 (the driver's format readers) pass.
pub async fn round_trip(driver: &dyn Driver, fixture: &dyn DriverFixture) {
    with_cleanup(fixture, async {
        let kind = driver.kind();
        let backed = backed_up(driver, fixture).await;
        let m = &backed.manifest;
        assert_eq!(m.datastore.kind, kind, "{kind}: manifest kind");
        assert!(driver.restores_kind(&m.datastore.kind), "{kind}");
        crate::verify_stored(&backed.store, m)
            .await
            .unwrap_or_else(|e| panic!("{kind}: level 1: {e}"));
        let mut formats = crate::FormatRegistry::new();
        for f in driver.formats() {
            formats.register(f);
        }
        crate::verify_content(&backed.store, m, &formats, &backed.options())
            .await
            .unwrap_or_else(|e| panic!("{kind}: level 2: {e}"));

        let target = fixture.fresh_target().await;
        let outcome = driver
            .restore(m, &target, &backed.context(backed.options()))
            .await
            .unwrap_or_else(|e| panic!("{kind}: restore: {e}"));
        let restored = fixture.fingerprint(&target).await;
        let source = fixture.fingerprint(&backed.source).await;
        assert_eq!(
            restored, source,
            "{kind}: the restored target differs from the source ({outcome:?})"
        );
    })
    .await
}

/// A restore into a target holding other data without `replace` is refused with
/// [`ErrorKind::Refused`]; the target is unchanged.
pub async fn non_empty_target_is_refused(driver: &dyn Driver, fixture: &dyn DriverFixture) {
    with_cleanup(fixture, async {
        let backed = backed_up(driver, fixture).await;
        let mut occupied = occupied_target(driver, fixture, &backed).await;
        occupied.0.replace = false;
        let ctx = backed.context(backed.options());
        restore_fails_unchanged(
            driver,
            fixture,
            &backed,
            &occupied,
            &ctx,
            ErrorKind::Refused,
            "a restore into a non-empty target without replace",
        )
        .await;
    })
    .await
}

/// A flipped byte in the middle of the stored artifact fails a `replace` restore with
/// [`ErrorKind::Verification`]; the target is unchanged.
pub async fn corrupted_artifact(driver: &dyn Driver, fixture: &dyn DriverFixture) {
    with_cleanup(fixture, async {
        let backed = backed_up(driver, fixture).await;
        let occupied = occupied_target(driver, fixture, &backed).await;
        let mut bytes = backed.stored().await;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        backed.replace_stored(bytes).await;
        let ctx = backed.context(backed.options());
        restore_fails_unchanged(
            driver,
            fixture,
            &backed,
            &occupied,
            &ctx,
            ErrorKind::Verification,
            "a restore of a corrupted artifact",
        )
        .await;
    })
    .await
}

/// The stored artifact cut to half fails a `replace` restore with
/// [`ErrorKind::Verification`]; the target is unchanged.
pub async fn truncated_artifact(driver: &dyn Driver, fixture: &dyn DriverFixture) {
    with_cleanup(fixture, async {
        let backed = backed_up(driver, fixture).await;
        let occupied = occupied_target(driver, fixture, &backed).await;
        let mut bytes = backed.stored().await;
        bytes.truncate(bytes.len() / 2);
        backed.replace_stored(bytes).await;
        let ctx = backed.context(backed.options());
        restore_fails_unchanged(
            driver,
            fixture,
            &backed,
            &occupied,
            &ctx,
            ErrorKind::Verification,
            "a restore of a truncated artifact",
        )
        .await;
    })
    .await
}

/// A `replace` restore with another identity fails with [`ErrorKind::Decryption`];
/// the target is unchanged.
pub async fn wrong_key(driver: &dyn Driver, fixture: &dyn DriverFixture) {
    with_cleanup(fixture, async {
        let backed = backed_up(driver, fixture).await;
        let occupied = occupied_target(driver, fixture, &backed).await;
        let ctx = backed.context(RestoreOptions {
            decryption: Some(KeyPair::generate().decryption().into()),
            ..Default::default()
        });
        restore_fails_unchanged(
            driver,
            fixture,
            &backed,
            &occupied,
            &ctx,
            ErrorKind::Decryption,
            "a restore with the wrong key",
        )
        .await;
    })
    .await
}

/// Cancels a token once `at` bytes of the artifact were read.
struct CancelAt {
    at: u64,
    read: AtomicU64,
    token: CancellationToken,
}

impl Progress for CancelAt {
    fn advance(&self, bytes: u64) {
        let read = self.read.fetch_add(bytes, Ordering::SeqCst) + bytes;
        if read >= self.at {
            self.token.cancel();
        }
    }
}

/// A `replace` restore cancelled through [`RestoreContext::cancel`] once half of the
/// stored artifact was read fails with [`ErrorKind::Interrupted`]; the target is
/// unchanged.
pub async fn cancelled_restore(driver: &dyn Driver, fixture: &dyn DriverFixture) {
    with_cleanup(fixture, async {
        let backed = backed_up(driver, fixture).await;
        let occupied = occupied_target(driver, fixture, &backed).await;
        let token = CancellationToken::new();
        let cancel_at = Arc::new(CancelAt {
            at: (backed.manifest.artifact.stored_size / 2).max(1),
            read: AtomicU64::new(0),
            token: token.clone(),
        });
        let ctx = RestoreContext {
            store: backed.store.clone(),
            options: RestoreOptions {
                decryption: Some(backed.keys.decryption().into()),
                progress: Some(cancel_at.clone()),
            },
            cancel: token.clone(),
            altered: Default::default(),
        };
        restore_fails_unchanged(
            driver,
            fixture,
            &backed,
            &occupied,
            &ctx,
            ErrorKind::Interrupted,
            "a cancelled restore",
        )
        .await;
        assert!(
            token.is_cancelled(),
            "{}: the restore ended before half of the artifact was read ({} of {} bytes)",
            driver.kind(),
            cancel_at.read.load(Ordering::SeqCst),
            backed.manifest.artifact.stored_size
        );
    })
    .await
}

/// Every file below `dir` (recursively).
fn files_below(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match path.is_dir() {
            true => out.extend(files_below(&path)),
            false => out.push(path),
        }
    }
    out
}

/// A backup cancelled through [`BackupOptions::cancel`] once it has read from its
/// source fails with [`ErrorKind::Interrupted`]; the store holds nothing afterwards (no
/// manifest, no artifact, no staging file) and the source is unchanged.
pub async fn cancelled_backup(driver: &dyn Driver, fixture: &dyn DriverFixture) {
    with_cleanup(fixture, async {
        let kind = driver.kind();
        let seeded = fixture.seed(0).await;
        let before = fixture.fingerprint(&seeded.target).await;
        let (dir, store) = scratch_store(kind);
        let token = CancellationToken::new();
        let cancel_at = Arc::new(CancelAt {
            at: 1,
            read: AtomicU64::new(0),
            token: token.clone(),
        });
        let mut options = BackupOptions::new(
            format!("conformance-{kind}"),
            KeyPair::generate().encryption(),
        );
        options.progress = Some(cancel_at.clone());
        options.cancel = token.clone();
        let ctx = BackupContext {
            store: store.clone(),
            options,
        };
        let outcome = driver.backup(&seeded.options, &ctx).await;
        let left = files_below(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        match outcome {
            Ok(m) => panic!("{kind}: a cancelled backup committed {}", m.backup_id),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Interrupted, "{kind}: {e}"),
        }
        assert!(
            token.is_cancelled(),
            "{kind}: the backup reported no progress"
        );
        assert!(left.is_empty(), "{kind}: a cancelled backup left {left:?}");
        assert_eq!(
            fixture.fingerprint(&seeded.target).await,
            before,
            "{kind}: the source changed"
        );
    })
    .await
}

/// Level-3 verification passes on the intact backup and fails with
/// [`ErrorKind::Verification`] once the stored artifact is corrupted. Skipped (with a
/// message) when the fixture names no server for it.
pub async fn verify_restore(driver: &dyn Driver, fixture: &dyn DriverFixture) {
    let kind = driver.kind();
    let Some(url) = fixture.verify_url().await else {
        eprintln!("{kind}: no level-3 verification server: skipped");
        fixture.cleanup().await;
        return;
    };
    assert!(
        driver.capabilities().verify_restore,
        "{kind}: the fixture names a level-3 server but the driver does not verify restores"
    );
    with_cleanup(fixture, async {
        let backed = backed_up(driver, fixture).await;
        let report = driver
            .verify_restore(&backed.manifest, &url, &backed.context(backed.options()))
            .await
            .unwrap_or_else(|e| panic!("{kind}: level 3 of an intact backup: {e}"));
        assert_eq!(report.level, VerifyLevel::Restore, "{kind}: {report:?}");
        assert_eq!(
            report.backup_id,
            backed.manifest.backup_id.as_str(),
            "{kind}"
        );

        let mut bytes = backed.stored().await;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        backed.replace_stored(bytes).await;
        let url = fixture
            .verify_url()
            .await
            .unwrap_or_else(|| panic!("{kind}: fixture: a second verification server URL"));
        match driver
            .verify_restore(&backed.manifest, &url, &backed.context(backed.options()))
            .await
        {
            Ok(r) => panic!("{kind}: level 3 of a corrupted backup passed: {r:?}"),
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::Verification,
                "{kind}: level 3 of a corrupted backup: {e}"
            ),
        }
    })
    .await
}
