//! Physical base backups: `pg_basebackup` as a Source, and the tar/backup_manifest scanner.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use backup_core::source::StreamWriter;
use backup_core::{
    BackupOptions, BackupSession, BackupStore, Contents, Error, FormatReader, Manifest, Result,
    Source, SourceFacts,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWrite;

use super::{
    tar_error, TarEntry, TarEntryKind, TarParser, TarVisitor, MAX_MANIFEST, MAX_SMALL_FILE,
    TAR_FORMAT,
};
use crate::config::{Connection, PostgresConfig, Tool};
use crate::error::PostgresError;
use crate::source::{check_tool_version, stream_command, KIND};
use crate::wal::{label_lsn, parse_label, segment_name, Lsn, WalArchive};

// ---------------------------------------------------------------------------------
// What a base backup tar holds
// ---------------------------------------------------------------------------------

/// One file as PostgreSQL's `backup_manifest` lists it.
#[derive(Debug, Clone, Deserialize)]
struct ManifestFile {
    #[serde(rename = "Path")]
    path: Option<String>,
    #[serde(rename = "Encoded-Path")]
    encoded_path: Option<String>,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "Checksum-Algorithm")]
    algorithm: Option<String>,
    #[serde(rename = "Checksum")]
    checksum: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct WalRange {
    #[serde(rename = "Timeline")]
    timeline: u32,
    #[serde(rename = "Start-LSN")]
    start: String,
    #[serde(rename = "End-LSN")]
    end: String,
}

#[derive(Debug, Clone, Deserialize)]
struct PgBackupManifest {
    #[serde(rename = "PostgreSQL-Backup-Manifest-Version")]
    version: u32,
    #[serde(rename = "Files")]
    files: Vec<ManifestFile>,
    #[serde(rename = "WAL-Ranges", default)]
    wal_ranges: Vec<WalRange>,
    #[serde(rename = "Manifest-Checksum")]
    checksum: String,
}

/// Facts about a base backup read from its tar stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseBackupFacts {
    /// `global/pg_control`: the database system identifier.
    pub system_identifier: Option<u64>,
    /// `global/pg_control`: its version.
    pub pg_control_version: Option<u32>,
    /// `global/pg_control`: the catalog version.
    pub catalog_version: Option<u32>,
    /// `PG_VERSION`: the major version.
    pub pg_version: Option<String>,
    /// `backup_label` lines.
    pub label: BTreeMap<String, String>,
    /// Where the backup's WAL starts.
    pub start_lsn: Option<Lsn>,
    /// The checkpoint it starts from.
    pub checkpoint_lsn: Option<Lsn>,
    /// Its start timeline.
    pub start_timeline: Option<u32>,
    /// Where it becomes consistent (`backup_manifest` WAL-Ranges).
    pub stop_lsn: Option<Lsn>,
    /// The timeline it stopped on.
    pub stop_timeline: Option<u32>,
    /// Files in `backup_manifest`.
    pub manifest_files: Option<u64>,
}

struct CurrentFile {
    path: String,
    size: u64,
    crc: crc_fast::Digest,
    keep: Option<Vec<u8>>,
    keep_limit: usize,
}

/// A [`TarVisitor`] that summarises a base backup and, at the end, checks it against
/// the `backup_manifest` inside it.
pub struct BaseBackupScanner {
    verify: bool,
    contents: Contents,
    facts: BaseBackupFacts,
    current: Option<CurrentFile>,
    seen: BTreeMap<String, (u64, u32)>,
    manifest: Option<Vec<u8>>,
    bytes: u64,
}

impl std::fmt::Debug for BaseBackupScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseBackupScanner")
            .field("verify", &self.verify)
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

fn top_level(path: &str) -> &str {
    match path.split_once('/') {
        Some((top, _)) => top,
        None => ".",
    }
}

impl BaseBackupScanner {
    /// A scanner; with `verify`, every file's size and CRC-32C are checked against the
    /// `backup_manifest` at the end.
    pub fn new(verify: bool) -> Self {
        BaseBackupScanner {
            verify,
            contents: Contents::default(),
            facts: BaseBackupFacts::default(),
            current: None,
            seen: BTreeMap::new(),
            manifest: None,
            bytes: 0,
        }
    }

    /// The facts found so far.
    pub fn facts(&self) -> &BaseBackupFacts {
        &self.facts
    }

    /// Completes the summary: parses `backup_label` and `backup_manifest`, checks the
    /// files against the manifest (with `verify`), and returns the contents summary.
    pub fn finish(mut self) -> Result<(Contents, BaseBackupFacts)> {
        if self.facts.system_identifier.is_none() {
            return Err(tar_error(
                "no global/pg_control in the archive: not a PostgreSQL base backup",
            ));
        }
        if self.facts.label.is_empty() {
            return Err(tar_error(
                "no backup_label in the archive: not a PostgreSQL base backup",
            ));
        }
        let manifest = self.manifest.take();
        if let Some(raw) = manifest {
            let m = self.check_manifest(&raw)?;
            self.facts.manifest_files = Some(m.files.len() as u64);
            if let Some(last) = m.wal_ranges.last() {
                self.facts.stop_lsn = Some(last.end.parse().map_err(|_| {
                    tar_error(format!("backup_manifest: bad End-LSN `{}`", last.end))
                })?);
                self.facts.stop_timeline = Some(last.timeline);
            }
            if let Some(first) = m.wal_ranges.first() {
                let start: Lsn = first.start.parse().map_err(|_| {
                    tar_error(format!("backup_manifest: bad Start-LSN `{}`", first.start))
                })?;
                if self.facts.start_lsn.is_some_and(|s| s != start) {
                    return Err(tar_error(format!(
                        "backup_label starts at {} but backup_manifest at {start}",
                        self.facts.start_lsn.expect("checked")
                    )));
                }
            }
        }
        let f = &self.facts;
        let c = &mut self.contents;
        c.fact(
            "system_identifier",
            f.system_identifier.expect("checked").to_string(),
        );
        if let Some(v) = &f.pg_version {
            c.fact("pg_version", v.clone());
        }
        for (name, v) in [
            ("start_lsn", f.start_lsn),
            ("checkpoint_lsn", f.checkpoint_lsn),
            ("stop_lsn", f.stop_lsn),
        ] {
            if let Some(v) = v {
                c.fact(name, v.to_string());
            }
        }
        if let Some(t) = f.start_timeline {
            c.fact("start_timeline", t.to_string());
        }
        if let Some(t) = f.stop_timeline {
            c.fact("stop_timeline", t.to_string());
        }
        if let Some(n) = f.manifest_files {
            c.fact("manifest_files", n.to_string());
            c.fact(
                "manifest_checked",
                if self.verify {
                    "sizes and checksums"
                } else {
                    "no"
                },
            );
        }
        Ok((self.contents, self.facts))
    }

    fn check_manifest(&self, raw: &[u8]) -> Result<PgBackupManifest> {
        let m: PgBackupManifest = serde_json::from_slice(raw)
            .map_err(|e| tar_error(format!("backup_manifest is not a valid manifest: {e}")))?;
        if m.version != 1 {
            return Err(tar_error(format!(
                "backup_manifest has version {}, this dbseal reads version 1",
                m.version
            )));
        }
        if !self.verify {
            return Ok(m);
        }
        let pos = raw
            .windows(20)
            .rposition(|w| w == b"\"Manifest-Checksum\":")
            .ok_or_else(|| tar_error("backup_manifest has no Manifest-Checksum"))?;
        let digest = hex::encode(Sha256::digest(&raw[..pos]));
        if !digest.eq_ignore_ascii_case(&m.checksum) {
            return Err(tar_error(format!(
                "backup_manifest's SHA-256 is {digest}, it records {} (corrupted)",
                m.checksum
            )));
        }
        let mut problems = Vec::new();
        let mut listed = std::collections::BTreeSet::new();
        for f in &m.files {
            let path = match (&f.path, &f.encoded_path) {
                (Some(p), _) => p.clone(),
                (None, Some(e)) => hex::decode(e)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .map_err(|_| tar_error(format!("backup_manifest: bad Encoded-Path `{e}`")))?,
                _ => return Err(tar_error("backup_manifest: a file without a path")),
            };
            listed.insert(path.clone());
            let Some((size, crc)) = self.seen.get(&path) else {
                problems.push(format!("{path} is missing"));
                continue;
            };
            if *size != f.size {
                problems.push(format!(
                    "{path} is {size} bytes, the manifest says {}",
                    f.size
                ));
                continue;
            }
            if f.algorithm.as_deref() == Some("CRC32C") {
                let found = hex::encode(crc.to_le_bytes());
                if f.checksum
                    .as_deref()
                    .is_some_and(|c| !c.eq_ignore_ascii_case(&found))
                {
                    problems.push(format!(
                        "{path} has CRC-32C {found}, the manifest says {}",
                        f.checksum.as_deref().unwrap_or_default()
                    ));
                }
            }
        }
        for path in self.seen.keys() {
            if path != "backup_manifest" && !listed.contains(path) {
                problems.push(format!("{path} is not in backup_manifest"));
            }
        }
        if !problems.is_empty() {
            let n = problems.len();
            problems.truncate(10);
            return Err(tar_error(format!(
                "the files differ from the server's backup_manifest ({n} problem(s)): {}",
                problems.join("; ")
            )));
        }
        Ok(m)
    }
}

impl TarVisitor for BaseBackupScanner {
    fn entry(&mut self, e: &TarEntry) -> Result<()> {
        match &e.kind {
            TarEntryKind::Directory => self.contents.add("directories", top_level(&e.path), 1),
            TarEntryKind::File => {
                self.contents.add("files", top_level(&e.path), 1);
                self.contents.add("bytes", top_level(&e.path), e.size);
                let keep_limit = match e.path.as_str() {
                    "backup_manifest" => MAX_MANIFEST,
                    "backup_label" | "tablespace_map" | "PG_VERSION" => MAX_SMALL_FILE,
                    "global/pg_control" => 16,
                    _ => 0,
                };
                self.current = Some(CurrentFile {
                    path: e.path.clone(),
                    size: 0,
                    crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi),
                    keep: (keep_limit > 0).then(Vec::new),
                    keep_limit,
                });
            }
            TarEntryKind::Symlink(_) | TarEntryKind::HardLink(_) | TarEntryKind::Other(_) => {
                self.contents.add("other", top_level(&e.path), 1)
            }
        }
        Ok(())
    }

    fn data(&mut self, _e: &TarEntry, chunk: &[u8]) -> Result<()> {
        self.bytes += chunk.len() as u64;
        if let Some(c) = self.current.as_mut() {
            c.size += chunk.len() as u64;
            if self.verify {
                c.crc.update(chunk);
            }
            if let Some(k) = c.keep.as_mut() {
                if k.len() < c.keep_limit {
                    let take = (c.keep_limit - k.len()).min(chunk.len());
                    k.extend_from_slice(&chunk[..take]);
                } else if c.path == "backup_manifest" {
                    return Err(tar_error("backup_manifest is larger than 512 MiB"));
                }
            }
        }
        Ok(())
    }

    fn end_entry(&mut self, _e: &TarEntry) -> Result<()> {
        let Some(c) = self.current.take() else {
            return Ok(());
        };
        let kept = c.keep.unwrap_or_default();
        match c.path.as_str() {
            "backup_label" => {
                let text = String::from_utf8_lossy(&kept);
                let label = parse_label(&text);
                self.facts.start_lsn = label.get("START WAL LOCATION").and_then(|v| label_lsn(v));
                self.facts.checkpoint_lsn =
                    label.get("CHECKPOINT LOCATION").and_then(|v| label_lsn(v));
                self.facts.start_timeline =
                    label.get("START TIMELINE").and_then(|v| v.parse().ok());
                if self.facts.start_lsn.is_none() {
                    return Err(tar_error("backup_label has no START WAL LOCATION"));
                }
                self.facts.label = label;
            }
            "global/pg_control" => {
                if kept.len() < 16 {
                    return Err(tar_error("global/pg_control is shorter than 16 bytes"));
                }
                self.facts.system_identifier =
                    Some(u64::from_le_bytes(kept[0..8].try_into().expect("8")));
                self.facts.pg_control_version =
                    Some(u32::from_le_bytes(kept[8..12].try_into().expect("4")));
                self.facts.catalog_version =
                    Some(u32::from_le_bytes(kept[12..16].try_into().expect("4")));
            }
            "PG_VERSION" => {
                self.facts.pg_version = Some(String::from_utf8_lossy(&kept).trim().to_string())
            }
            "backup_manifest" => self.manifest = Some(kept),
            _ => {}
        }
        let crc = c.crc.finalize() as u32;
        self.seen.insert(c.path, (c.size, crc));
        Ok(())
    }
}

/// The reader of physical base backups (`tar`): parses the archive, reads
/// `backup_label` and `global/pg_control`, and checks every file against PostgreSQL's
/// `backup_manifest` (sizes, CRC-32C, the manifest's own SHA-256). Counts files and
/// bytes per top-level directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct BaseBackupFormat;

impl FormatReader for BaseBackupFormat {
    fn format(&self) -> &str {
        TAR_FORMAT
    }

    fn read_contents(&self, input: &mut dyn std::io::Read) -> Result<Contents> {
        let mut parser = TarParser::new();
        let mut scanner = BaseBackupScanner::new(true);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::from_io(e, "reading the base backup")),
            };
            parser.feed(&buf[..n], &mut scanner)?;
        }
        parser.finish()?;
        Ok(scanner.finish()?.0)
    }
}

// ---------------------------------------------------------------------------------
// Backup
// ---------------------------------------------------------------------------------

/// How to take a physical base backup.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhysicalOptions {
    /// Request an immediate checkpoint (`--checkpoint=fast`) instead of a spread one:
    /// the backup starts at once, at the cost of an I/O burst on the server.
    pub fast_checkpoint: bool,
    /// The backup label (default `dbseal base backup`).
    pub label: Option<String>,
    /// Maximum transfer rate (`--max-rate`, e.g. `100M`).
    pub max_rate: Option<String>,
}

/// What the preflight learnt about the server.
#[derive(Debug, Clone)]
pub struct PhysicalServerInfo {
    /// `server_version`.
    pub server_version: String,
    /// `server_version_num`.
    pub server_version_num: u32,
    /// `archive_mode`.
    pub archive_mode: String,
    /// `wal_level`.
    pub wal_level: String,
    /// `wal_segment_size` in bytes.
    pub wal_segment_size: u64,
    /// Whether the server is a standby.
    pub in_recovery: bool,
    /// The pg_basebackup that will run.
    pub pg_basebackup: Tool,
}

/// The backup side of physical backups: a [`Source`] streaming `pg_basebackup -Ft -D -
/// -X none`. The datastore kind is `postgres`; the manifest's `source.physical` is true.
pub struct PhysicalSource {
    conn: Connection,
    options: PhysicalOptions,
    info: Option<PhysicalServerInfo>,
    datastore: Option<String>,
}

impl std::fmt::Debug for PhysicalSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhysicalSource")
            .field("conn", &self.conn)
            .field("options", &self.options)
            .finish()
    }
}

/// Wraps the pipeline's writer and feeds what passes to a [`BaseBackupScanner`].
struct ScanningWriter<'a> {
    inner: &'a mut (dyn AsyncWrite + Send + Unpin),
    parser: TarParser,
    scanner: BaseBackupScanner,
    failed: Option<String>,
}

impl AsyncWrite for ScanningWriter<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = &self.failed {
            return Poll::Ready(Err(std::io::Error::other(e.clone())));
        }
        let this = &mut *self;
        match Pin::new(&mut *this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if let Err(e) = this.parser.feed(&buf[..n], &mut this.scanner) {
                    let msg = e.to_string();
                    this.failed = Some(msg.clone());
                    return Poll::Ready(Err(e.into_io()));
                }
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

impl PhysicalSource {
    /// A source for the server `config` names. Validates the configuration now.
    pub fn new(config: &PostgresConfig, options: PhysicalOptions) -> Result<Self> {
        Self::with_connection(config.resolve()?, options)
    }

    /// A source over a resolved connection.
    pub fn with_connection(conn: Connection, options: PhysicalOptions) -> Result<Self> {
        if let Some(r) = &options.max_rate {
            let ok = !r.is_empty()
                && r.trim_end_matches(['k', 'M'])
                    .chars()
                    .all(|c| c.is_ascii_digit());
            if !ok {
                return Err(PostgresError::Config(format!(
                    "max rate `{r}` is not a number of kB/s with an optional k or M suffix"
                ))
                .into());
            }
        }
        Ok(PhysicalSource {
            conn,
            options,
            info: None,
            datastore: None,
        })
    }

    /// The connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Checks the server before anything streams: pg_basebackup exists and is not older
    /// than the server, `wal_level` is at least `replica`, `archive_mode` is on (the
    /// backup is useless without archived WAL), and no tablespace besides the default
    /// ones exists (a single tar stream holds one tablespace).
    pub async fn preflight(&mut self) -> Result<&PhysicalServerInfo> {
        if self.info.is_none() {
            let tool = self.conn.binaries().tool("pg_basebackup").await?;
            let client = self.conn.connect().await?;
            let row = client
                .query_one(
                    "SELECT current_setting('server_version'), current_setting('server_version_num')::int4, \
                     current_setting('archive_mode'), current_setting('wal_level'), \
                     (SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size'), \
                     pg_is_in_recovery(), \
                     (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))",
                    &[],
                )
                .await
                .map_err(|e| self.conn.query_error("reading the server's settings", e))?;
            let info = PhysicalServerInfo {
                server_version: row.get(0),
                server_version_num: row.get::<_, i32>(1).max(0) as u32,
                archive_mode: row.get(2),
                wal_level: row.get(3),
                wal_segment_size: row.get::<_, i64>(4).max(0) as u64,
                in_recovery: row.get(5),
                pg_basebackup: tool,
            };
            let tablespaces: i64 = row.get(6);
            let server = self.conn.server();
            check_tool_version(
                &info.pg_basebackup,
                info.server_version_num / 10_000,
                &info.server_version,
            )?;
            if info.wal_level == "minimal" {
                return Err(PostgresError::Config(format!(
                    "{server} runs with wal_level = minimal: physical backups and WAL archiving need wal_level = replica (restart required)"
                ))
                .into());
            }
            if info.archive_mode == "off" {
                let ds = self.datastore.as_deref().unwrap_or("NAME");
                return Err(PostgresError::Config(format!(
                    "{server} runs with archive_mode = off: a physical base backup is only restorable with the WAL archive. Set archive_mode = on and archive_command = 'dbseal wal-push --datastore {ds} %p' (restart required)"
                ))
                .into());
            }
            if info.in_recovery && info.archive_mode != "always" {
                return Err(PostgresError::Config(format!(
                    "{server} is a standby with archive_mode = {}: back up the primary, or set archive_mode = always on the standby",
                    info.archive_mode
                ))
                .into());
            }
            if tablespaces > 0 {
                return Err(PostgresError::Config(format!(
                    "{server} has {tablespaces} tablespace(s) besides pg_default and pg_global: physical backups of clusters with tablespaces are not supported yet (use a logical backup)"
                ))
                .into());
            }
            if !crate::wal::valid_segment_size(info.wal_segment_size) {
                return Err(PostgresError::Config(format!(
                    "{server} reports wal_segment_size {}, not a valid segment size",
                    info.wal_segment_size
                ))
                .into());
            }
            self.info = Some(info);
        }
        Ok(self.info.as_ref().expect("set above"))
    }

    fn command(&self, info: &PhysicalServerInfo) -> tokio::process::Command {
        let mut cmd = backup_core::child::command(&info.pg_basebackup.path);
        cmd.arg("--pgdata=-")
            .arg("--format=tar")
            .arg("--wal-method=none")
            .arg(format!(
                "--checkpoint={}",
                if self.options.fast_checkpoint {
                    "fast"
                } else {
                    "spread"
                }
            ))
            .arg(format!(
                "--label={}",
                self.options
                    .label
                    .as_deref()
                    .unwrap_or("dbseal base backup")
            ))
            .arg("--manifest-checksums=CRC32C")
            .arg("--no-password")
            .arg(format!("--dbname={}", self.conn.conninfo()));
        if let Some(r) = &self.options.max_rate {
            cmd.arg(format!("--max-rate={r}"));
        }
        self.conn.apply_env(&mut cmd);
        cmd.env("PGAPPNAME", "dbseal");
        cmd
    }
}

#[async_trait]
impl Source for PhysicalSource {
    fn kind(&self) -> &str {
        KIND
    }

    fn format_reader(&self) -> Arc<dyn FormatReader> {
        Arc::new(BaseBackupFormat)
    }

    async fn dump(&mut self, out: StreamWriter<'_>) -> Result<SourceFacts> {
        self.preflight().await?;
        let info = self.info.clone().expect("preflight ran");
        let cmd = self.command(&info);
        tracing::info!(target = %self.conn.describe(), "running pg_basebackup");
        let mut writer = ScanningWriter {
            inner: out,
            parser: TarParser::new(),
            scanner: BaseBackupScanner::new(false),
            failed: None,
        };
        let bytes = stream_command("pg_basebackup", cmd, &mut writer).await?;
        writer.parser.finish()?;
        let (_, facts) = writer.scanner.finish()?;
        tracing::info!(bytes, "pg_basebackup finished");
        let seg = info.wal_segment_size;
        let start = facts
            .start_lsn
            .ok_or_else(|| tar_error("backup_label has no START WAL LOCATION"))?;
        let timeline = facts.start_timeline.unwrap_or(1);
        let mut f = SourceFacts::new();
        f.insert("physical".into(), json!(true));
        f.insert(
            "archive".into(),
            json!("pg_basebackup --format=tar --wal-method=none"),
        );
        f.insert(
            "consistency".into(),
            json!("physical base backup: consistent once recovery replays the archived WAL up to stop_lsn"),
        );
        f.insert("server_version".into(), json!(info.server_version));
        f.insert("server_version_num".into(), json!(info.server_version_num));
        f.insert("host".into(), json!(self.conn.host()));
        f.insert("port".into(), json!(self.conn.port()));
        f.insert("user".into(), json!(self.conn.user()));
        f.insert(
            "pg_basebackup_version".into(),
            json!(info.pg_basebackup.version),
        );
        f.insert(
            "system_identifier".into(),
            json!(facts
                .system_identifier
                .expect("checked by finish")
                .to_string()),
        );
        f.insert("wal_segment_size".into(), json!(seg));
        f.insert("timeline".into(), json!(timeline));
        f.insert("start_lsn".into(), json!(start.to_string()));
        f.insert(
            "start_segment".into(),
            json!(segment_name(timeline, start.segno(seg), seg)),
        );
        if let Some(c) = facts.checkpoint_lsn {
            f.insert("checkpoint_lsn".into(), json!(c.to_string()));
        }
        if let Some(stop) = facts.stop_lsn {
            let stl = facts.stop_timeline.unwrap_or(timeline);
            f.insert("stop_lsn".into(), json!(stop.to_string()));
            f.insert("stop_timeline".into(), json!(stl));
            f.insert(
                "stop_segment".into(),
                json!(segment_name(stl, stop.segno(seg), seg)),
            );
        }
        for (key, name) in [
            ("START TIME", "start_time"),
            ("LABEL", "label"),
            ("BACKUP FROM", "backup_from"),
        ] {
            if let Some(v) = facts.label.get(key) {
                f.insert(name.into(), json!(v));
            }
        }
        if let Some(v) = &facts.pg_version {
            f.insert("pg_version".into(), json!(v));
        }
        f.insert("archive_mode".into(), json!(info.archive_mode));
        if let Some(ds) = &self.datastore {
            f.insert("wal_datastore".into(), json!(ds));
        }
        Ok(f)
    }
}

/// Takes a physical base backup: preflight, the `data` artifact (the tar), a check that
/// the WAL it needs reached this datastore's WAL archive, then the manifest. On any
/// failure no manifest is written.
pub async fn backup_physical(
    store: &BackupStore,
    source: &mut PhysicalSource,
    options: BackupOptions,
) -> Result<Manifest> {
    source.datastore = Some(options.datastore.clone());
    source.preflight().await?;
    let datastore = options.datastore.clone();
    let mut session = BackupSession::start(store, options)?;
    let mut facts = session.write_artifact("data", source).await?;
    // pg_basebackup waited until the server archived the stop segment; check that it
    // went to this datastore's archive (else dbseal cannot restore the backup).
    let archived = match (
        facts.get("stop_segment").and_then(|v| v.as_str()),
        facts.get("timeline"),
    ) {
        (Some(stop), Some(_)) => {
            let looked_up = async {
                let archive = WalArchive::new(store.clone(), &datastore)?;
                match crate::wal::WalFile::parse(stop) {
                    Some(f) => Ok(archive.file_manifest(&f).await?.is_some()),
                    None => Ok(false),
                }
            };
            match looked_up.await {
                Ok(found) => found,
                Err(e) => {
                    session.abandon().await;
                    return Err(e);
                }
            }
        }
        _ => false,
    };
    facts.insert("wal_archived".into(), json!(archived));
    if !archived {
        tracing::warn!(
            datastore = %datastore,
            "the WAL this base backup needs is not in this datastore's WAL archive: is archive_command = 'dbseal wal-push --datastore {datastore} %p'?"
        );
    }
    session.commit(KIND, facts).await
}
