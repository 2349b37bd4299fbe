//! The typed result objects: `Manifest`, `Artifact`, `Contents`, `VerifyReport`,
//! `LevelReport`, `RestoreReport`. All are immutable; each has `.to_dict()` (plain
//! JSON-compatible data) and a `repr` that shows what identifies it (never a secret:
//! manifests and reports hold none by construction).

use backup_core::{BackupStore, Contents as CoreContents, Manifest as CoreManifest};
use pyo3::prelude::*;

use crate::convert::json_to_py;

/// Adds the result classes to `m`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Manifest>()?;
    m.add_class::<Artifact>()?;
    m.add_class::<Contents>()?;
    m.add_class::<VerifyReport>()?;
    m.add_class::<LevelReport>()?;
    m.add_class::<RestoreReport>()
}

/// A string as Python's `repr()` shows it (single quotes).
pub fn py_repr(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn to_value<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("serializes to JSON")
}

/// What a backup holds: facts read from the native stream and named groups of counts
/// (`counts["tables"]["public.users"]` rows, `counts["labels"]["Person"]` nodes,
/// `counts["keys"]["db0.string"]` keys...).
#[pyclass(frozen, module = "dbseal")]
#[derive(Clone)]
pub struct Contents {
    pub(crate) inner: CoreContents,
}

#[pymethods]
impl Contents {
    /// Facts read from the stream itself (archive version, server version...).
    #[getter]
    fn facts(&self) -> std::collections::BTreeMap<String, String> {
        self.inner.facts.clone()
    }

    /// Named groups of counts.
    #[getter]
    fn counts(
        &self,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> {
        self.inner.counts.clone()
    }

    /// The counts of one group (`{}` if the backup has none).
    fn group(&self, name: &str) -> std::collections::BTreeMap<String, u64> {
        self.inner.counts.get(name).cloned().unwrap_or_default()
    }

    /// The contents as plain data: `{"facts": {...}, "counts": {...}}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut v = to_value(&self.inner);
        if let serde_json::Value::Object(map) = &mut v {
            map.entry("facts").or_insert_with(|| serde_json::json!({}));
            map.entry("counts").or_insert_with(|| serde_json::json!({}));
        }
        json_to_py(py, &v)
    }

    fn __repr__(&self) -> String {
        let groups: Vec<String> = self
            .inner
            .counts
            .iter()
            .map(|(g, c)| format!("{g}: {}", c.len()))
            .collect();
        format!("Contents({{{}}})", groups.join(", "))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Contents>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }
}

/// One stored object of a backup: where it is, its format, sizes and SHA-256 digests.
#[pyclass(frozen, module = "dbseal")]
#[derive(Clone)]
pub struct Artifact {
    pub(crate) inner: backup_core::Artifact,
}

#[pymethods]
impl Artifact {
    /// The artifact's role: `data` for the main stream, others for attachments.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }
    /// The object key, relative to the store root.
    #[getter]
    fn key(&self) -> &str {
        &self.inner.key
    }
    /// The native format of the plaintext (`pgdump`, `rdb`, `graph`, `raw`...).
    #[getter]
    fn format(&self) -> &str {
        &self.inner.format
    }
    /// Size of the stored (compressed, encrypted) object in bytes.
    #[getter]
    fn stored_size(&self) -> u64 {
        self.inner.stored_size
    }
    /// Lowercase hex SHA-256 of the stored object.
    #[getter]
    fn stored_sha256(&self) -> &str {
        &self.inner.stored_sha256
    }
    /// Size of the plaintext native stream in bytes.
    #[getter]
    fn plaintext_size(&self) -> u64 {
        self.inner.plaintext_size
    }
    /// Lowercase hex SHA-256 of the plaintext native stream.
    #[getter]
    fn plaintext_sha256(&self) -> &str {
        &self.inner.plaintext_sha256
    }
    /// The artifact as plain data.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &to_value(&self.inner))
    }
    fn __repr__(&self) -> String {
        format!(
            "Artifact(name={}, key={}, format={}, stored_size={})",
            py_repr(&self.inner.name),
            py_repr(&self.inner.key),
            py_repr(&self.inner.format),
            self.inner.stored_size
        )
    }
}

/// The manifest of one backup: everything needed to verify and restore it, and never a
/// secret.
#[pyclass(frozen, module = "dbseal")]
#[derive(Clone)]
pub struct Manifest {
    pub(crate) inner: CoreManifest,
}

impl Manifest {
    /// Wraps a library manifest.
    pub fn new(inner: CoreManifest) -> Self {
        Manifest { inner }
    }
}

#[pymethods]
impl Manifest {
    /// The backup id (`20261121T020000Z-1a2b3c4d`; sorts by time).
    #[getter]
    fn backup_id(&self) -> String {
        self.inner.backup_id.to_string()
    }
    /// The datastore name (the backup's folder in the store).
    #[getter]
    fn datastore(&self) -> &str {
        &self.inner.datastore.name
    }
    /// The datastore kind: `postgres`, `timescale`, `redis`, `neo4j`, `command`, `bytes`,
    /// `file`...
    #[getter]
    fn kind(&self) -> &str {
        &self.inner.datastore.kind
    }
    /// The manifest format version (`"1.0"`).
    #[getter]
    fn format_version(&self) -> &str {
        &self.inner.format_version
    }
    /// When the backup started (timezone-aware, UTC).
    #[getter]
    fn started_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.started_at
    }
    /// When the backup finished (timezone-aware, UTC).
    #[getter]
    fn finished_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.finished_at
    }
    /// The dbseal version that wrote the backup.
    #[getter]
    fn tool_version(&self) -> &str {
        &self.inner.tool.version
    }
    /// Facts about the source: server version, database, host (without credentials)...
    #[getter]
    fn source<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &to_value(&self.inner.source))
    }
    /// The main artifact.
    #[getter]
    fn artifact(&self) -> Artifact {
        Artifact {
            inner: self.inner.artifact.clone(),
        }
    }
    /// Secondary artifacts (e.g. PostgreSQL `globals`).
    #[getter]
    fn attachments(&self) -> Vec<Artifact> {
        self.inner
            .attachments
            .iter()
            .map(|a| Artifact {
                inner: a.artifact.clone(),
            })
            .collect()
    }
    /// The transforms applied, in order: `[{"type": "zstd", "level": 3}, {"type": "age", ...}]`.
    #[getter]
    fn transforms<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &to_value(&self.inner.transforms))
    }
    /// The public keys the backup is encrypted to (empty for a passphrase).
    #[getter]
    fn recipients(&self) -> Vec<String> {
        self.inner
            .transforms
            .iter()
            .flat_map(|t| match t {
                backup_core::TransformSpec::Age { recipients, .. } => recipients.clone(),
                _ => Vec::new(),
            })
            .collect()
    }
    /// The contents summary of the main artifact.
    #[getter]
    fn contents(&self) -> Contents {
        Contents {
            inner: self.inner.contents.clone(),
        }
    }
    /// The parent backup id of an incremental chain, if any.
    #[getter]
    fn parent(&self) -> Option<String> {
        self.inner.parent.as_ref().map(|p| p.to_string())
    }
    /// Free-form labels.
    #[getter]
    fn labels(&self) -> std::collections::BTreeMap<String, String> {
        self.inner.labels.clone()
    }
    /// The manifest's key in the store (`{datastore}/{backup_id}/manifest.json`).
    #[getter]
    fn key(&self) -> String {
        BackupStore::manifest_key(&self.inner.datastore.name, &self.inner.backup_id)
    }
    /// The manifest as plain data (exactly the stored JSON document).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &to_value(&self.inner))
    }
    /// The manifest as the JSON document stored next to the artifact.
    fn to_json(&self) -> String {
        String::from_utf8(self.inner.to_json()).expect("JSON is UTF-8")
    }
    fn __repr__(&self) -> String {
        format!(
            "Manifest(backup_id={}, datastore={}, kind={}, stored_size={})",
            py_repr(self.inner.backup_id.as_str()),
            py_repr(&self.inner.datastore.name),
            py_repr(&self.inner.datastore.kind),
            self.inner.artifact.stored_size
        )
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Manifest>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }
    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.backup_id.hash(&mut h);
        h.finish()
    }
}

/// What one verification level checked.
#[pyclass(frozen, module = "dbseal")]
#[derive(Clone)]
pub struct LevelReport {
    pub(crate) inner: backup_core::VerifyReport,
}

fn level_name(level: backup_core::VerifyLevel) -> &'static str {
    match level {
        backup_core::VerifyLevel::Stored => "stored",
        backup_core::VerifyLevel::Content => "content",
        backup_core::VerifyLevel::Restore => "restore",
    }
}

#[pymethods]
impl LevelReport {
    /// `stored`, `content` or `restore`.
    #[getter]
    fn level(&self) -> &'static str {
        level_name(self.inner.level)
    }
    /// 1, 2 or 3.
    #[getter]
    fn level_number(&self) -> u8 {
        self.inner.level.number()
    }
    /// One line per check that passed.
    #[getter]
    fn checks(&self) -> Vec<String> {
        self.inner.checks.clone()
    }
    /// The report as plain data.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &to_value(&self.inner))
    }
    fn __repr__(&self) -> String {
        format!(
            "LevelReport(level={}, checks={})",
            py_repr(level_name(self.inner.level)),
            self.inner.checks.len()
        )
    }
}

/// The result of a successful verification (a failed one raises). `level` is the
/// deepest level that passed; `reports` has one entry per level run, shallowest first.
#[pyclass(frozen, module = "dbseal")]
#[derive(Clone)]
pub struct VerifyReport {
    pub(crate) backup_id: String,
    pub(crate) reports: Vec<backup_core::VerifyReport>,
}

#[pymethods]
impl VerifyReport {
    /// The backup verified.
    #[getter]
    fn backup_id(&self) -> &str {
        &self.backup_id
    }
    /// Always `True`: a failed verification raises `VerificationError` (or another
    /// `DbsealError`) instead of returning a report.
    #[getter]
    fn ok(&self) -> bool {
        true
    }
    /// The deepest level that passed: `stored`, `content` or `restore`.
    #[getter]
    fn level(&self) -> &'static str {
        self.reports
            .last()
            .map_or("stored", |r| level_name(r.level))
    }
    /// The deepest level that passed, as a number (1, 2, 3).
    #[getter]
    fn level_number(&self) -> u8 {
        self.reports.last().map_or(1, |r| r.level.number())
    }
    /// One report per level run.
    #[getter]
    fn reports(&self) -> Vec<LevelReport> {
        self.reports
            .iter()
            .map(|r| LevelReport { inner: r.clone() })
            .collect()
    }
    /// Every check that passed, all levels together.
    #[getter]
    fn checks(&self) -> Vec<String> {
        self.reports
            .iter()
            .flat_map(|r| r.checks.iter().cloned())
            .collect()
    }
    /// The report as plain data (the shape of `dbseal verify --json`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = serde_json::json!({
            "backup_id": self.backup_id,
            "ok": true,
            "level": self.reports.last().map(|r| r.level),
            "reports": self.reports,
        });
        json_to_py(py, &v)
    }
    fn __repr__(&self) -> String {
        format!(
            "VerifyReport(backup_id={}, level={}, checks={})",
            py_repr(&self.backup_id),
            py_repr(self.level()),
            self.reports.iter().map(|r| r.checks.len()).sum::<usize>()
        )
    }
}

/// The result of a successful restore: the document `dbseal restore --json` prints
/// (`backup_id`, `target`, `summary`, `safety_backup`; `bytes` for a file; the plan of
/// a dry run).
#[pyclass(frozen, module = "dbseal")]
#[derive(Clone)]
pub struct RestoreReport {
    pub(crate) doc: serde_json::Value,
}

impl RestoreReport {
    fn field(&self, name: &str) -> &serde_json::Value {
        &self.doc[name]
    }
}

#[pymethods]
impl RestoreReport {
    /// The backup restored.
    #[getter]
    fn backup_id(&self) -> String {
        self.field("backup_id")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    /// Where it went (a URL without credentials, a datastore, or a path).
    #[getter]
    fn target(&self) -> String {
        self.field("target")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    /// Plaintext bytes restored, when known.
    #[getter]
    fn bytes(&self) -> Option<u64> {
        self.field("bytes").as_u64()
    }
    /// What the target reported, one line per fact.
    #[getter]
    fn summary(&self) -> Vec<String> {
        serde_json::from_value(self.field("summary").clone()).unwrap_or_default()
    }
    /// The safety backup taken of the target before it was replaced, if any.
    #[getter]
    fn safety_backup(&self) -> Option<String> {
        self.field("safety_backup").as_str().map(str::to_string)
    }
    /// Whether this is the plan of a dry run (nothing was changed).
    #[getter]
    fn dry_run(&self) -> bool {
        self.field("dry_run").as_bool().unwrap_or(false)
    }
    /// The report as plain data: the document `dbseal restore --json` prints (the plan,
    /// for a dry run).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.doc)
    }
    fn __repr__(&self) -> String {
        format!(
            "RestoreReport(backup_id={}, target={})",
            py_repr(&self.backup_id()),
            py_repr(&self.target()),
        )
    }
}
