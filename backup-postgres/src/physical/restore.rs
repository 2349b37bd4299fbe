//! Point-in-time restore of a base backup into an empty data directory.

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::pipe::{blocking_chunks, PIPE_CAPACITY};
use backup_core::sink::StreamReader;
use backup_core::{
    BackupStore, Error, ErrorKind, Manifest, RestoreOptions, Result, Sink, SinkReport,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::{
    base_backup_wal, restore_env_path, tar_error, BaseBackupScanner, TarEntry, TarEntryKind,
    TarParser, TarVisitor,
};
use crate::wal::{plan_recovery, Lsn, WalArchive};

// Restore
// ---------------------------------------------------------------------------------

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum RecoveryTarget {
    /// Replay all archived WAL (no `recovery_target_*`).
    Latest,
    /// Stop as soon as the backup is consistent (`recovery_target = 'immediate'`).
    Immediate,
    /// `recovery_target_time`: a timestamp PostgreSQL understands; give a time zone.
    Time(String),
    /// `recovery_target_lsn`.
    Lsn(Lsn),
    /// `recovery_target_name`: a restore point made with `pg_create_restore_point()`.
    Name(String),
}

/// What PostgreSQL does when it reaches the target (`recovery_target_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TargetAction {
    /// End recovery and accept writes (a new timeline starts).
    #[default]
    Promote,
    /// Pause read-only, to inspect before `pg_wal_replay_resume()`.
    Pause,
    /// Shut down.
    Shutdown,
}

impl TargetAction {
    fn as_str(self) -> &'static str {
        match self {
            TargetAction::Promote => "promote",
            TargetAction::Pause => "pause",
            TargetAction::Shutdown => "shutdown",
        }
    }
}

/// How to restore a physical backup.
#[derive(Debug, Clone)]
pub struct PhysicalRestore {
    /// The data directory to create: must be absent or empty.
    pub pgdata: PathBuf,
    /// Where recovery stops.
    pub target: RecoveryTarget,
    /// What happens at the target (ignored for [`RecoveryTarget::Latest`]).
    pub action: TargetAction,
    /// `recovery_target_timeline` (`latest` when `None`, PostgreSQL's default).
    pub timeline: Option<String>,
    /// The `restore_command`, usually from [`wal_fetch_command`] (`%f`, `%p` as
    /// PostgreSQL substitutes them).
    pub restore_command: String,
    /// Contents of the file at [`restore_env_path`], written beside the data directory
    /// with mode 0600 (store settings the restore command reads). Never put it in argv.
    pub env_file: Option<backup_core::SecretString>,
    /// The restored cluster's `archive_command` (`--archive-to`). `None`: archiving is
    /// off (`archive_mode = 'off'`), whatever the source's configuration said, so a
    /// restored copy never pushes its WAL into the source's archive.
    pub archive_command: Option<String>,
    /// Cancelled when the user interrupts: the unpacking stops and the directory is
    /// left as it was (what was unpacked is removed).
    pub cancel: tokio_util::sync::CancellationToken,
}

/// Settings the restored files may carry over from the source that must not act in the
/// restored cluster: archiving into the source's archive, following the source as a
/// standby, or a stale recovery target. [`recovery_settings`] overrides every one.
pub const NEUTRALISED_SETTINGS: &[&str] = &[
    "archive_mode",
    "archive_command",
    "archive_library",
    "primary_conninfo",
    "primary_slot_name",
    "restore_command",
    "recovery_target",
    "recovery_target_time",
    "recovery_target_xid",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_action",
    "recovery_target_inclusive",
    "recovery_target_timeline",
];

/// The [`NEUTRALISED_SETTINGS`] the source set (a non-empty value in `postgresql.conf`
/// or `postgresql.auto.conf` of the restored data directory, before dbseal's lines).
pub fn inherited_settings(pgdata: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for file in ["postgresql.conf", "postgresql.auto.conf"] {
        let Ok(text) = std::fs::read_to_string(pgdata.join(file)) else {
            continue;
        };
        for line in text.lines() {
            if line.starts_with(RECOVERY_MARKER) {
                break;
            }
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if NEUTRALISED_SETTINGS.contains(&name.as_str())
                && !matches!(value, "" | "''")
                && !found.contains(&name)
            {
                found.push(name);
            }
        }
    }
    found
}

/// How dbseal's block in `postgresql.auto.conf` starts.
const RECOVERY_MARKER: &str = "# Recovery settings written by `dbseal restore";

/// What [`restore_physical`] did.
#[derive(Debug, Clone, Serialize)]
pub struct PhysicalRestoreReport {
    /// The data directory.
    pub pgdata: PathBuf,
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// The recovery target.
    pub target: RecoveryTarget,
    /// The recovery plan checked against the archive.
    pub plan: crate::wal::RecoveryPlan,
    /// Lines for the user: what was written and what to do next.
    pub summary: Vec<String>,
    /// Things that may stop recovery short of the target.
    pub warnings: Vec<String>,
}

/// Quotes a word for `sh` if it needs it.
pub(super) fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The `restore_command` that runs `dbseal wal-fetch`: `dbseal` is the binary to run
/// (an absolute path), `env_file` the file with the store settings. Words are quoted
/// for the shell and `%` escaped for PostgreSQL; `%f %p` come last.
pub fn wal_fetch_command(
    dbseal: &Path,
    env_file: Option<&Path>,
    datastore: &str,
    system_identifier: u64,
    fail_on_gap: bool,
) -> String {
    let mut words = vec![
        shell_word(&dbseal.to_string_lossy()),
        "wal-fetch".to_string(),
    ];
    if let Some(f) = env_file {
        words.push("--env-file".into());
        words.push(shell_word(&f.to_string_lossy()));
    }
    words.push("--datastore".into());
    words.push(shell_word(datastore));
    words.push("--system-id".into());
    words.push(system_identifier.to_string());
    if fail_on_gap {
        words.push("--fail-on-gap".into());
    }
    let mut cmd = words.join(" ").replace('%', "%%");
    cmd.push_str(" %f %p");
    cmd
}

/// `archive_command` for `--archive-to`: `DBSEAL wal-push --env-file F --datastore D %p`.
pub fn wal_push_command(dbseal: &Path, env_file: &Path, datastore: &str) -> String {
    let words = [
        shell_word(&dbseal.to_string_lossy()),
        "wal-push".to_string(),
        "--env-file".into(),
        shell_word(&env_file.to_string_lossy()),
        "--datastore".into(),
        shell_word(datastore),
    ];
    let mut cmd = words.join(" ").replace('%', "%%");
    cmd.push_str(" %p");
    cmd
}

/// Quotes a value for postgresql.conf.
pub(super) fn conf_value(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// The lines appended to `postgresql.auto.conf`.
pub fn recovery_settings(backup_id: &str, restore: &PhysicalRestore) -> String {
    let mut s = format!(
        "\n{RECOVERY_MARKER} {backup_id}` at {}.\n# PostgreSQL fetches WAL with restore_command until the target, then {}.\n",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        match restore.target {
            RecoveryTarget::Latest => "promotes".to_string(),
            _ => format!("{}s", restore.action.as_str()),
        }
    );
    s.push_str(&format!(
        "restore_command = {}\n",
        conf_value(&restore.restore_command)
    ));
    // What the source's configuration may carry over is overridden (later lines win).
    s.push_str("# Never archive into, or follow, the source; no inherited recovery target.\n");
    match &restore.archive_command {
        Some(cmd) => s.push_str(&format!(
            "archive_mode = 'on'\narchive_command = {}\n",
            conf_value(cmd)
        )),
        None => s.push_str("archive_mode = 'off'\narchive_command = ''\n"),
    }
    s.push_str("archive_library = ''\nprimary_conninfo = ''\nprimary_slot_name = ''\n");
    for t in [
        "recovery_target",
        "recovery_target_time",
        "recovery_target_xid",
        "recovery_target_lsn",
        "recovery_target_name",
    ] {
        s.push_str(&format!("{t} = ''\n"));
    }
    s.push_str("recovery_target_inclusive = 'on'\n");
    match &restore.target {
        RecoveryTarget::Latest => {}
        RecoveryTarget::Immediate => s.push_str("recovery_target = 'immediate'\n"),
        RecoveryTarget::Time(t) => {
            s.push_str(&format!("recovery_target_time = {}\n", conf_value(t)))
        }
        RecoveryTarget::Lsn(l) => s.push_str(&format!("recovery_target_lsn = '{l}'\n")),
        RecoveryTarget::Name(n) => {
            s.push_str(&format!("recovery_target_name = {}\n", conf_value(n)))
        }
    }
    if restore.target != RecoveryTarget::Latest {
        s.push_str(&format!(
            "recovery_target_action = '{}'\n",
            restore.action.as_str()
        ));
    }
    s.push_str(&format!(
        "recovery_target_timeline = {}\n",
        conf_value(restore.timeline.as_deref().unwrap_or("latest"))
    ));
    s
}

/// Refuses a data directory that exists and is not empty (or is not a directory).
pub fn check_empty_dir(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if let Some(first) = entries.next() {
                let first = first
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .unwrap_or_default();
                return Err(Error::datastore(
                    "postgres",
                    ErrorKind::Refused,
                    format!(
                        "data directory {} is not empty (it holds {first}…): a physical restore needs an empty or absent directory; it never overwrites a cluster",
                        dir.display()
                    ),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(Error::datastore(
            "postgres",
            ErrorKind::Refused,
            format!("{} exists and is not a directory", dir.display()),
        )),
        Err(e) => Err(Error::io(format!("cannot read {}", dir.display()), e)),
    }
}

/// The owner restored files get when dbseal runs as root: the data directory's owner
/// if it exists, else its parent's. `None` when not root (files belong to the caller).
fn restore_owner(dir: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").ok()?.uid();
    if me != 0 {
        return None;
    }
    let meta = std::fs::metadata(dir)
        .or_else(|_| std::fs::metadata(dir.parent().unwrap_or(Path::new("/"))))
        .ok()?;
    Some((meta.uid(), meta.gid()))
}

/// Unpacks a base backup into an empty data directory and, at a clean end of stream
/// only, writes the recovery settings. On any error the directory is left as it was.
pub struct PhysicalSink {
    pgdata: PathBuf,
    settings: String,
    env_file: Option<backup_core::SecretString>,
    /// (files, bytes) written.
    pub written: (u64, u64),
}

impl std::fmt::Debug for PhysicalSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhysicalSink")
            .field("pgdata", &self.pgdata)
            .finish()
    }
}

impl PhysicalSink {
    /// A sink into `pgdata` that appends `settings` to `postgresql.auto.conf`, writes
    /// `recovery.signal` and the env file at the end.
    pub fn new(
        pgdata: PathBuf,
        settings: String,
        env_file: Option<backup_core::SecretString>,
    ) -> Self {
        PhysicalSink {
            pgdata,
            settings,
            env_file,
            written: (0, 0),
        }
    }
}

struct Extractor {
    root: PathBuf,
    owner: Option<(u32, u32)>,
    file: Option<std::io::BufWriter<std::fs::File>>,
    scanner: BaseBackupScanner,
    files: u64,
    bytes: u64,
}

impl Extractor {
    fn target(&self, path: &str) -> Result<PathBuf> {
        let rel = Path::new(path);
        if path.is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(tar_error(format!(
                "member `{path}` has an unsafe path (absolute or with ..): refusing to unpack it"
            )));
        }
        Ok(self.root.join(rel))
    }

    fn own(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| Error::io(format!("cannot chown {}", path.display()), e))?;
        }
        Ok(())
    }

    fn make_dir(&self, dir: &Path, mode: u32) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if !dir.is_dir() {
            if let Some(parent) = dir.parent() {
                if parent != self.root && !parent.is_dir() {
                    self.make_dir(parent, 0o700)?;
                }
            }
            std::fs::create_dir(dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
            self.own(dir)?;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("cannot set the mode of {}", dir.display()), e))
    }
}

impl TarVisitor for Extractor {
    fn entry(&mut self, e: &TarEntry) -> Result<()> {
        self.scanner.entry(e)?;
        match &e.kind {
            TarEntryKind::Directory => {
                let dir = self.target(&e.path)?;
                self.make_dir(&dir, (e.mode & 0o750) | 0o700)?;
            }
            TarEntryKind::File => {
                use std::os::unix::fs::OpenOptionsExt;
                let path = self.target(&e.path)?;
                if let Some(parent) = path.parent() {
                    if !parent.is_dir() {
                        self.make_dir(parent, 0o700)?;
                    }
                }
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode((e.mode & 0o640) | 0o600)
                    .open(&path)
                    .map_err(|err| Error::io(format!("cannot create {}", path.display()), err))?;
                self.own(&path)?;
                self.file = Some(std::io::BufWriter::with_capacity(256 * 1024, f));
                self.files += 1;
            }
            TarEntryKind::Symlink(t) | TarEntryKind::HardLink(t) => {
                return Err(tar_error(format!(
                    "member `{}` is a link to `{t}`: links (tablespaces, a separate pg_wal) are not supported by physical restore",
                    e.path
                )))
            }
            TarEntryKind::Other(flag) => {
                return Err(tar_error(format!(
                    "member `{}` has unsupported type `{}`",
                    e.path, *flag as char
                )))
            }
        }
        Ok(())
    }

    fn data(&mut self, e: &TarEntry, chunk: &[u8]) -> Result<()> {
        self.scanner.data(e, chunk)?;
        if let Some(f) = self.file.as_mut() {
            f.write_all(chunk)
                .map_err(|err| Error::io(format!("writing {}", e.path), err))?;
            self.bytes += chunk.len() as u64;
        }
        Ok(())
    }

    fn end_entry(&mut self, e: &TarEntry) -> Result<()> {
        self.scanner.end_entry(e)?;
        if let Some(mut f) = self.file.take() {
            f.flush()
                .map_err(|err| Error::io(format!("writing {}", e.path), err))?;
        }
        Ok(())
    }
}

fn write_file(
    path: &Path,
    data: &[u8],
    mode: u32,
    append: bool,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .append(append)
        .truncate(!append)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| Error::io(format!("cannot chown {}", path.display()), e))?;
    }
    Ok(())
}

/// Removes what a failed restore created: the whole directory if it did not exist,
/// else everything inside it.
fn clean_up(root: &Path, created: bool) {
    let _ = std::fs::remove_file(restore_env_path(root));
    if created {
        let _ = std::fs::remove_dir_all(root);
        return;
    }
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

pub(super) fn extract_blocking(
    root: PathBuf,
    owner: Option<(u32, u32)>,
    input: &mut dyn std::io::Read,
    settings: &str,
    env_file: Option<&backup_core::SecretString>,
    input_failed: &AtomicBool,
) -> Result<(u64, u64)> {
    let mut parser = TarParser::new();
    let mut ex = Extractor {
        root: root.clone(),
        owner,
        file: None,
        scanner: BaseBackupScanner::new(true),
        files: 0,
        bytes: 0,
    };
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::from_io(e, "reading the base backup")),
        };
        parser.feed(&buf[..n], &mut ex)?;
    }
    if input_failed.load(Ordering::SeqCst) {
        return Err(Error::Interrupted(
            "the base backup stream failed before its end".into(),
        ));
    }
    parser.finish()?;
    let (files, bytes) = (ex.files, ex.bytes);
    std::mem::replace(&mut ex.scanner, BaseBackupScanner::new(false)).finish()?;
    for required in ["PG_VERSION", "global/pg_control", "backup_label"] {
        if !root.join(required).is_file() {
            return Err(tar_error(format!("the base backup has no {required}")));
        }
    }
    // pg_basebackup -X none leaves pg_wal empty; make sure it exists.
    for d in ["pg_wal", "pg_wal/archive_status"] {
        let dir = root.join(d);
        if !dir.is_dir() {
            ex.make_dir(&dir, 0o700)?;
        }
    }
    // The commit point: recovery settings, env file, then recovery.signal.
    if let Some(env) = env_file {
        // A file left by an earlier restore is replaced (and re-created 0600).
        let path = restore_env_path(&root);
        let _ = std::fs::remove_file(&path);
        write_file(&path, env.expose().as_bytes(), 0o600, false, owner)?;
    }
    write_file(
        &root.join("postgresql.auto.conf"),
        settings.as_bytes(),
        0o600,
        true,
        owner,
    )?;
    write_file(&root.join("recovery.signal"), b"", 0o600, false, owner)?;
    if let Ok(d) = std::fs::File::open(&root) {
        let _ = d.sync_all();
    }
    Ok((files, bytes))
}

#[async_trait]
impl Sink for PhysicalSink {
    async fn restore(
        &mut self,
        _manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> Result<SinkReport> {
        check_empty_dir(&self.pgdata)?;
        let created = !self.pgdata.exists();
        let owner = restore_owner(&self.pgdata);
        if created {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.pgdata)
                .map_err(|e| Error::io(format!("cannot create {}", self.pgdata.display()), e))?;
            if let Some((uid, gid)) = owner {
                let _ = std::os::unix::fs::chown(&self.pgdata, Some(uid), Some(gid));
            }
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.pgdata, std::fs::Permissions::from_mode(0o700));
        }
        let (feed, mut reader) = blocking_chunks(PIPE_CAPACITY);
        let root = self.pgdata.clone();
        let settings = self.settings.clone();
        let env = self.env_file.clone();
        let input_failed = Arc::new(AtomicBool::new(false));
        let failed = input_failed.clone();
        let extract = tokio::task::spawn_blocking(move || {
            extract_blocking(root, owner, &mut reader, &settings, env.as_ref(), &failed)
            // Dropping the reader makes the feeder's next send fail: it stops reading.
        });
        let mut buf = vec![0u8; 256 * 1024];
        let copy: Result<()> = async {
            loop {
                let n = input
                    .read(&mut buf)
                    .await
                    .map_err(|e| Error::from_io(e, "reading the base backup"))?;
                if n == 0 {
                    return Ok(());
                }
                if feed.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    // The extraction stopped with an error, reported below.
                    return Ok(());
                }
            }
        }
        .await;
        // The extraction commits only at the end of its input AND if the input did not
        // fail: mark a failure before ending its input.
        if copy.is_err() {
            input_failed.store(true, Ordering::SeqCst);
        }
        drop(feed);
        let extracted = extract
            .await
            .map_err(|e| backup_core::task::join_error(e, "the PGDATA extraction"))
            .and_then(|r| r);
        let outcome = match (copy, extracted) {
            (Err(e), _) => Err(e),
            (Ok(()), r) => r,
        };
        match outcome {
            Ok((files, bytes)) => {
                self.written = (files, bytes);
                Ok(SinkReport {
                    bytes,
                    summary: vec![format!(
                        "unpacked {files} files ({bytes} bytes) into {}",
                        self.pgdata.display()
                    )],
                })
            }
            Err(e) => {
                clean_up(&self.pgdata, created);
                Err(e)
            }
        }
    }
}

/// Parses a recovery target time as far as dbseal can check it (RFC 3339 or
/// `YYYY-MM-DD HH:MM:SS[.f]±HH[:MM]`); `None` if it has no explicit zone.
pub(super) fn parse_target_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let t = s.trim();
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&chrono::Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%#z",
        "%Y-%m-%d %H:%M:%S%.f %#z",
    ] {
        if let Ok(d) = chrono::DateTime::parse_from_str(t, fmt) {
            return Some(d.with_timezone(&chrono::Utc));
        }
    }
    if let Some(base) = t.strip_suffix(" UTC").or_else(|| t.strip_suffix("Z")) {
        for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(d) = chrono::NaiveDateTime::parse_from_str(base, fmt) {
                return Some(d.and_utc());
            }
        }
    }
    None
}

/// Restores a physical backup for point-in-time recovery. See the module docs: the WAL
/// archive is checked first (system identifier, the segments needed for consistency,
/// no gap up to an LSN target or to the newest WAL for `Latest`), then the data
/// directory is unpacked and the recovery settings written. Start PostgreSQL on it
/// afterwards. Nothing is written if a check fails; a failed unpack is removed.
pub async fn restore_physical(
    store: &BackupStore,
    manifest: &Manifest,
    restore: &PhysicalRestore,
    options: &RestoreOptions,
) -> Result<PhysicalRestoreReport> {
    let wal = base_backup_wal(manifest)?;
    let id = manifest.backup_id.to_string();
    check_empty_dir(&restore.pgdata)?;
    let refuse = |msg: String| Error::datastore("postgres", ErrorKind::Refused, msg);
    if let RecoveryTarget::Time(t) = &restore.target {
        if t.trim().is_empty() {
            return Err(Error::Config("--target-time needs a timestamp".into()));
        }
        if let (Some(target), Some(start)) = (
            parse_target_time(t),
            manifest
                .source
                .get("start_time")
                .and_then(|v| v.as_str())
                .and_then(parse_target_time),
        ) {
            if target < start {
                return Err(refuse(format!(
                    "target time {t} is before base backup {id} started ({start}): restore an older base backup"
                )));
            }
        }
    }
    if let RecoveryTarget::Lsn(l) = &restore.target {
        if wal.stop_lsn.is_some_and(|s| *l < s) {
            return Err(refuse(format!(
                "target LSN {l} is before base backup {id} becomes consistent ({}): restore an older base backup",
                wal.stop_lsn.expect("checked")
            )));
        }
    }
    if let RecoveryTarget::Name(n) = &restore.target {
        if n.is_empty() {
            return Err(Error::Config(
                "--target-name needs a restore point name".into(),
            ));
        }
    }
    let timeline = match restore.timeline.as_deref() {
        None | Some("latest") => None,
        Some("current") => Some(wal.timeline),
        Some(t) => Some(t.parse::<u32>().map_err(|_| {
            Error::Config(format!(
                "--target-timeline `{t}` is not `latest`, `current` or a timeline number"
            ))
        })?),
    };
    let archive = WalArchive::new(store.clone(), &manifest.datastore.name)?;
    let end = match &restore.target {
        RecoveryTarget::Latest => None,
        RecoveryTarget::Lsn(l) => Some(*l),
        _ => Some(wal.stop_lsn.unwrap_or(wal.start_lsn)),
    };
    let plan = plan_recovery(&archive, &wal, timeline, end).await?;
    if !plan.consistency_missing.is_empty() {
        return Err(refuse(format!(
            "the WAL archive of datastore `{}` lacks segment(s) base backup {id} needs to become consistent: {}. Without them the backup cannot be restored; verify the archive with `dbseal wal-verify --datastore {}`",
            manifest.datastore.name,
            plan.consistency_missing.join(", "),
            manifest.datastore.name
        )));
    }
    let list = |ps: &[crate::wal::WalProblem]| {
        ps.iter()
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    if !plan.damaged_consistency.is_empty() {
        return Err(refuse(format!(
            "the WAL archive of datastore `{}` holds unusable segment(s) base backup {id} needs to become consistent: {}",
            manifest.datastore.name,
            list(&plan.damaged_consistency)
        )));
    }
    let mut warnings = Vec::new();
    if !plan.damaged.is_empty() {
        let msg = format!(
            "the WAL archive of datastore `{}` holds unusable segment(s) on the recovery path: {}",
            manifest.datastore.name,
            list(&plan.damaged)
        );
        match &restore.target {
            RecoveryTarget::Latest | RecoveryTarget::Lsn(_) => {
                return Err(refuse(format!(
                    "{msg}. Check the archive with `dbseal wal-verify --datastore {}`",
                    manifest.datastore.name
                )))
            }
            _ => warnings.push(format!(
                "{msg}; recovery aborts there if the target lies beyond"
            )),
        }
    }
    if !plan.missing.is_empty() {
        let gap = format!(
            "gap in the WAL archive of datastore `{}`: {} missing (recovery from base backup {id} would stop at {})",
            manifest.datastore.name,
            plan.missing.join(", "),
            plan.reachable.as_deref().unwrap_or("the backup's end")
        );
        match &restore.target {
            RecoveryTarget::Latest | RecoveryTarget::Lsn(_) => {
                return Err(refuse(format!(
                    "{gap}. Restore with a target before the gap (--target-lsn / --target-time), or put the missing segment(s) back"
                )))
            }
            _ => {}
        }
    }
    if matches!(
        restore.target,
        RecoveryTarget::Time(_) | RecoveryTarget::Name(_)
    ) {
        // Gaps after the consistency point only matter if the target lies beyond them.
        let full = plan_recovery(&archive, &wal, timeline, None).await?;
        if !full.missing.is_empty() {
            warnings.push(format!(
                "the WAL archive has a gap: {} missing; recovery can reach {} at most, and PostgreSQL refuses to start (\"recovery ended before configured recovery target was reached\") if the target lies beyond it",
                full.missing.join(", "),
                full.reachable.as_deref().unwrap_or("the backup's end")
            ));
        }
        if !full.damaged.is_empty() {
            warnings.push(format!(
                "the WAL archive holds unusable segment(s) on the recovery path: {}; recovery aborts there if the target lies beyond",
                list(&full.damaged)
            ));
        }
    }
    let settings = recovery_settings(&id, restore);
    let mut sink = PhysicalSink::new(restore.pgdata.clone(), settings, restore.env_file.clone());
    {
        let mut cancellable = backup_core::CancellableSink::new(&mut sink, restore.cancel.clone());
        backup_core::restore(store, manifest, "data", &mut cancellable, options).await?;
    }
    let (files, bytes) = sink.written;
    let inherited = inherited_settings(&restore.pgdata);
    let major = manifest
        .source
        .get("pg_version")
        .and_then(|v| v.as_str())
        .unwrap_or("the same major version");
    let target_text = match &restore.target {
        RecoveryTarget::Latest => "the newest archived WAL".to_string(),
        RecoveryTarget::Immediate => "the end of the base backup (consistency)".to_string(),
        RecoveryTarget::Time(t) => format!("time {t}"),
        RecoveryTarget::Lsn(l) => format!("LSN {l}"),
        RecoveryTarget::Name(n) => format!("restore point `{n}`"),
    };
    let mut summary = vec![
        format!("unpacked {files} files ({bytes} bytes) into {}", restore.pgdata.display()),
        match (&restore.archive_command, inherited.is_empty()) {
            (Some(_), _) => format!(
                "archiving on: archive_command set by --archive-to{}",
                if inherited.is_empty() { String::new() } else { format!("; overridden from the source: {}", inherited.join(", ")) }
            ),
            (None, true) => "archiving off (archive_mode = 'off'): the restored cluster archives nowhere".to_string(),
            (None, false) => format!(
                "overridden from the source, so the restored cluster neither archives into nor follows it: {} (archive_mode = 'off'; --archive-to DATASTORE turns archiving on)",
                inherited.join(", ")
            ),
        },
        format!(
            "wrote recovery.signal and restore_command (dbseal wal-fetch from datastore `{}`) to postgresql.auto.conf",
            manifest.datastore.name
        ),
        format!(
            "WAL checked: {} segment(s) from {} on timeline {} ({})",
            plan.path
                .iter()
                .map(|r| r.to_segno.map_or(0, |t| t.saturating_sub(r.from_segno) + 1))
                .sum::<u64>(),
            manifest
                .source
                .get("start_segment")
                .and_then(|v| v.as_str())
                .unwrap_or("?"),
            plan.target_timeline,
            plan.reachable.as_deref().map_or("no segment yet".to_string(), |r| format!("newest reachable {r}"))
        ),
        format!(
            "next: start PostgreSQL {major} on {} (pg_ctl -D {} start): it recovers to {target_text}{}",
            restore.pgdata.display(),
            restore.pgdata.display(),
            if restore.target == RecoveryTarget::Latest {
                ", then promotes".to_string()
            } else {
                format!(", then {}s", restore.action.as_str())
            }
        ),
    ];
    if restore.env_file.is_some() {
        summary.push(format!(
            "store settings for restore_command are in {} (mode 0600); remove it once recovery is done",
            restore_env_path(&restore.pgdata).display()
        ));
    }
    Ok(PhysicalRestoreReport {
        pgdata: restore.pgdata.clone(),
        files,
        bytes,
        target: restore.target.clone(),
        plan,
        summary,
        warnings,
    })
}
