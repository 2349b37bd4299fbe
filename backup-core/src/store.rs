//! The backup store: artifacts and manifests in object storage.
//!
//! Layout under the store root:
//!
//! ```text
//! {prefix}/{datastore}/{backup_id}/data.{format}.zst.age
//! {prefix}/{datastore}/{backup_id}/manifest.json
//! {prefix}/{datastore}/{backup_id}/verified.json   (optional, overwritable)
//! {prefix}/_{reserved}/...                          (e.g. `_sets/`: not datastores)
//! ```
//!
//! Folders whose name starts with `_` are reserved for dbseal's own records (backup
//! sets): they are never datastores, [`BackupStore::scan`] skips them and
//! [`BackupStore::validate_datastore_name`] refuses such names.
//!
//! `verified.json` is a [`VerificationRecord`]: when and at which level a backup was
//! last verified, and whether it passed. Unlike the manifest it is overwritten by every
//! verification; it never makes a folder count as a backup (only the manifest does).
//!
//! URLs: a plain path or `file:///abs/path` (local file system; the default is
//! `./backups`), `memory://` (tests), `s3://bucket/prefix` (AWS and S3-compatible stores;
//! `AWS_*` variables or options such as `aws_endpoint`, `aws_allow_http`),
//! `gs://bucket/prefix`, `az://container/prefix`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{GetResultPayload, ObjectStore, ObjectStoreExt, PutMode, PutPayload};

use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::manifest::Manifest;
use crate::pipe::CHUNK_SIZE;
use crate::sign::{signature_key, Role, Trust};
use crate::throttle::RateLimit;

/// The part size of multipart uploads (S3's minimum is 5 MiB).
pub const UPLOAD_PART_SIZE: usize = 8 * 1024 * 1024;
/// How many parts upload at once; with the part size, bounds upload memory.
pub const UPLOAD_CONCURRENCY: usize = 2;

/// The manifest's file name inside a backup's folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The verification record's file name inside a backup's folder.
pub const VERIFIED_FILE: &str = "verified.json";
/// Top-level folders starting with this character are dbseal's own, never datastores.
pub const RESERVED_PREFIX: char = '_';
/// The largest manifest, set manifest or record [`BackupStore::get_bytes`] reads: 64 MiB.
pub const MAX_SMALL_OBJECT: u64 = 64 << 20;

/// Installs the process-wide TLS crypto provider (ring). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A store of backups.
#[derive(Clone)]
pub struct BackupStore {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
    trust: Trust,
    /// `max_rate`: shared by every clone, so parallel transfers share the budget.
    rate: Option<Arc<RateLimit>>,
    /// The directory of a local store.
    local: Option<Arc<std::path::PathBuf>>,
}

impl std::fmt::Debug for BackupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupStore")
            .field("url", &self.url)
            .field("trust", &self.trust)
            .field("max_rate", &self.max_rate())
            .finish()
    }
}

/// A backup folder that has objects but no manifest: a failed or running backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteBackup {
    /// The datastore folder.
    pub datastore: String,
    /// The backup id folder.
    pub backup_id: String,
    /// The objects in it.
    pub keys: Vec<String>,
    /// When the newest of them was written.
    pub last_modified: chrono::DateTime<chrono::Utc>,
    /// Their total size.
    pub bytes: u64,
}

/// What [`BackupStore::scan`] found.
#[derive(Debug, Default)]
pub struct StoreListing {
    /// Complete backups, oldest first.
    pub backups: Vec<Manifest>,
    /// Folders without a manifest (ignored by `list`, removed by `prune`).
    pub incomplete: Vec<IncompleteBackup>,
    /// Manifests that could not be read, with the reason.
    pub unreadable: Vec<(String, String)>,
    /// Manifests no trusted key signed (or found in the wrong folder), with the reason:
    /// skipped, never counted as backups, and (unlike unreadable ones) never a reason
    /// to stop pruning — one forged object must not block retention.
    pub untrusted: Vec<(String, String)>,
}

/// Whether `key` (`aws_endpoint`, `AWS_ENDPOINT`…) is an option of the store at `url`'s
/// scheme: what its builder takes from the environment. Other variables with the same
/// prefix (AWS_CA_BUNDLE, AWS_PROFILE…) are not, and are ignored as `from_env` ignores them.
pub fn is_store_option(url: &str, key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    match url.split_once("://").map(|(s, _)| s) {
        Some("s3") | Some("s3a") => key.parse::<object_store::aws::AmazonS3ConfigKey>().is_ok(),
        Some("gs") => key.parse::<object_store::gcp::GoogleConfigKey>().is_ok(),
        Some("az") | Some("azure") | Some("abfs") | Some("abfss") => {
            key.parse::<object_store::azure::AzureConfigKey>().is_ok()
        }
        _ => false,
    }
}

/// Takes dbseal's own store option out of `options`: `max_rate` (bytes per second,
/// [`crate::throttle::parse_rate`]), which no store builder knows.
pub fn split_max_rate(
    options: &BTreeMap<String, String>,
) -> Result<(BTreeMap<String, String>, Option<u64>)> {
    let mut rest = options.clone();
    let mut rate = None;
    for key in options
        .keys()
        .filter(|k| k.eq_ignore_ascii_case(MAX_RATE_OPTION))
    {
        let text = rest.remove(key).unwrap_or_default();
        rate = Some(crate::throttle::parse_rate(&text)?);
    }
    Ok((rest, rate))
}

/// The store option that limits transfers (`--max-rate`).
pub const MAX_RATE_OPTION: &str = "max_rate";

impl BackupStore {
    /// Opens a store from a URL or local path, with builder options (e.g.
    /// `aws_endpoint`, `aws_allow_http`, `aws_region`) and dbseal's `max_rate`
    /// (a limit on the bytes transferred per second, e.g. `50MiB`); cloud stores also
    /// read their usual environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let (options, rate) = split_max_rate(options)?;
        Self::open_unlimited(url, &options)?.with_max_rate(rate)
    }

    fn open_unlimited(url: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        install_crypto_provider();
        let shown = crate::secret::redact_url(url);
        let bad = |reason: String| Error::StoreConfig {
            url: shown.clone(),
            reason,
        };
        if url == "memory://" || url.starts_with("memory://") {
            return Ok(BackupStore {
                inner: Arc::new(object_store::memory::InMemory::new()),
                prefix: Path::from(url.trim_start_matches("memory://").trim_matches('/')),
                url: shown,
                trust: Trust::default(),
                rate: None,
                local: None,
            });
        }
        let local = if let Some(rest) = url.strip_prefix("file://") {
            Some(rest.to_string())
        } else if !url.contains("://") {
            Some(url.to_string())
        } else {
            None
        };
        if let Some(path) = local {
            let path = std::path::PathBuf::from(if path.is_empty() { ".".into() } else { path });
            std::fs::create_dir_all(&path)
                .map_err(|e| bad(format!("cannot create directory {}: {e}", path.display())))?;
            // fsync: a manifest (and the artifact it vouches for) must survive a power
            // loss once the backup reported success, as it would on S3.
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&path)
                .map_err(|e| bad(e.to_string()))?
                .with_automatic_cleanup(true)
                .with_fsync(true);
            return Ok(BackupStore {
                inner: Arc::new(fs),
                prefix: Path::default(),
                url: shown,
                trust: Trust::default(),
                rate: None,
                local: Some(Arc::new(path)),
            });
        }
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let prefix = Path::from(parsed.path().trim_matches('/'));
        let base = format!(
            "{}://{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default()
        );
        let inner: Arc<dyn ObjectStore> = match parsed.scheme() {
            "s3" | "s3a" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(&base);
                for (k, v) in options {
                    let key = k.to_ascii_lowercase().parse().map_err(|e| bad(format!("option {k}: {e}")))?;
                    b = b.with_config(key, v.clone());
                }
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            "gs" => {
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(&base);
                for (k, v) in options {
                    let key = k.to_ascii_lowercase().parse().map_err(|e| bad(format!("option {k}: {e}")))?;
                    b = b.with_config(key, v.clone());
                }
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env().with_url(&base);
                for (k, v) in options {
                    let key = k.to_ascii_lowercase().parse().map_err(|e| bad(format!("option {k}: {e}")))?;
                    b = b.with_config(key, v.clone());
                }
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            other => return Err(bad(format!("unsupported scheme `{other}` (use a path, file://, memory://, s3://, gs:// or az://)"))),
        };
        Ok(BackupStore {
            inner,
            prefix,
            url: shown,
            trust: Trust::default(),
            rate: None,
            local: None,
        })
    }

    /// The directory of a local (`file://` or path) store.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local.as_deref().map(|p| p.as_path())
    }

    /// A store over any `object_store` implementation.
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Self {
        BackupStore {
            inner,
            prefix: Path::from(prefix.trim_matches('/')),
            url: crate::secret::redact_url(url),
            trust: Trust::default(),
            rate: None,
            local: None,
        }
    }

    /// This store with transfers (artifacts, WAL, records) limited to `bytes_per_second`
    /// in total, or unlimited with `None`.
    pub fn with_max_rate(mut self, bytes_per_second: Option<u64>) -> Result<Self> {
        self.rate = bytes_per_second
            .map(RateLimit::new)
            .transpose()?
            .map(Arc::new);
        Ok(self)
    }

    /// The transfer limit in bytes per second, if any.
    pub fn max_rate(&self) -> Option<u64> {
        self.rate.as_ref().map(|r| r.bytes_per_second())
    }

    /// Waits until `bytes` more may be transferred ([`BackupStore::with_max_rate`]).
    async fn throttle(&self, bytes: usize) {
        crate::throttle::charge(self.rate.as_deref(), bytes).await;
    }

    /// This store with a signing key and the keys it trusts ([`crate::sign`]): manifests,
    /// set manifests and verification records are signed when written, and only those
    /// signed by a trusted key are read. Without one, every read is refused (unless the
    /// trust allows unsigned objects).
    pub fn with_trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// The signing key and trusted keys of this store.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Writes a small object with its signature beside it (the signature first, so the
    /// object never exists unsigned). `create_only` writes the object only if it does not
    /// exist yet and returns `false` if it did.
    pub async fn put_signed(&self, key: &str, data: Vec<u8>, create_only: bool) -> Result<bool> {
        if let Some(signature) = self.trust.sign(key, &data)? {
            if create_only && self.size_of(key).await?.is_some() {
                return Ok(false);
            }
            self.put_bytes(&signature_key(key), signature).await?;
        }
        if create_only {
            self.put_bytes_create(key, data).await
        } else {
            self.put_bytes(key, data).await.map(|()| true)
        }
    }

    /// Reads a small object and checks its signature against the keys trusted for
    /// `role`: an unsigned, modified, moved or unknown-signer object is
    /// [`Error::Untrusted`] (exit 4).
    pub async fn get_signed(&self, key: &str, role: Role) -> Result<Bytes> {
        let data = self.get_bytes(key).await?;
        let signature = self.signature_of(key).await?;
        self.trust.check(key, &data, signature.as_deref(), role)?;
        Ok(data)
    }

    async fn signature_of(&self, key: &str) -> Result<Option<Bytes>> {
        match self.get_bytes(&signature_key(key)).await {
            Ok(b) => Ok(Some(b)),
            Err(Error::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The store URL, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.as_ref().is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    fn relative(&self, path: &Path) -> String {
        let p = path.as_ref();
        let pre = self.prefix.as_ref();
        if pre.is_empty() {
            p.to_string()
        } else {
            p.strip_prefix(pre)
                .map(|s| s.trim_start_matches('/').to_string())
                .unwrap_or_else(|| p.to_string())
        }
    }

    fn store_err(
        &self,
        operation: &'static str,
        key: &str,
    ) -> impl Fn(object_store::Error) -> Error + '_ {
        let key = key.to_string();
        move |source| Error::Store {
            store: self.url.clone(),
            operation,
            key: key.clone(),
            source,
        }
    }

    /// Checks that a datastore name is usable as a folder name. Names starting with `_`
    /// are reserved for dbseal's own records (`_sets/`).
    pub fn validate_datastore_name(name: &str) -> Result<()> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.')
            && !name.starts_with(RESERVED_PREFIX);
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "invalid datastore name `{name}`: use letters, digits, `-`, `_` and `.` (not leading; a leading `_` is reserved)"
            )))
        }
    }

    /// Whether a top-level folder is one of dbseal's reserved folders (not a datastore).
    pub fn is_reserved_folder(name: &str) -> bool {
        name.starts_with(RESERVED_PREFIX)
    }

    /// The folder of a backup, relative to the store root.
    pub fn backup_folder(datastore: &str, id: &BackupId) -> String {
        format!("{datastore}/{id}")
    }

    /// The manifest key of a backup.
    pub fn manifest_key(datastore: &str, id: &BackupId) -> String {
        format!("{datastore}/{id}/{MANIFEST_FILE}")
    }

    /// The verification record key of a backup.
    pub fn verification_key(datastore: &str, id: &BackupId) -> String {
        format!("{datastore}/{id}/{VERIFIED_FILE}")
    }

    /// Opens a streaming upload to `key` with bounded memory. Abort it on failure.
    pub fn upload(&self, key: &str) -> ArtifactUpload {
        ArtifactUpload {
            writer: BufWriter::with_capacity(self.inner.clone(), self.path(key), UPLOAD_PART_SIZE)
                .with_max_concurrency(UPLOAD_CONCURRENCY),
            key: key.to_string(),
            store: self.url.clone(),
            rate: self.rate.clone(),
        }
    }

    /// [`BackupStore::download`] of an artifact a manifest of backup `backup_id`
    /// records: a missing object is a damaged backup (a verification failure naming the
    /// backup and key), not a backup that does not exist.
    pub(crate) async fn download_artifact(
        &self,
        backup_id: &str,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        match self.download(key).await {
            Err(Error::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Err(Error::Verification {
                id: backup_id.to_string(),
                key: key.to_string(),
                what: "the artifact is missing from the store".into(),
            }),
            other => other,
        }
    }

    /// Streams the object at `key` in chunks of about [`CHUNK_SIZE`] bytes: a local file
    /// is read on a thread of its own in large reads (object_store's own stream reads
    /// 8 KiB per blocking task), a remote body is gathered into chunks of that size, so
    /// the stages downstream pass a few large chunks instead of many small ones.
    pub async fn download(&self, key: &str) -> Result<BoxStream<'static, Result<Bytes>>> {
        let res = self
            .inner
            .get(&self.path(key))
            .await
            .map_err(self.store_err("read", key))?;
        let body = match res.payload {
            GetResultPayload::File(file, _) => read_file_in_chunks(file, res.range),
            GetResultPayload::Stream(stream) => in_chunks(stream),
        };
        let store = self.url.clone();
        let k = key.to_string();
        let body = body.map_err(move |source| Error::Store {
            store: store.clone(),
            operation: "read",
            key: k.clone(),
            source,
        });
        Ok(match self.rate.clone() {
            None => body.boxed(),
            Some(rate) => body
                .then(move |item| {
                    let rate = rate.clone();
                    async move {
                        if let Ok(chunk) = &item {
                            rate.take(chunk.len()).await;
                        }
                        item
                    }
                })
                .boxed(),
        })
    }

    /// Reads a small object whole: a manifest, a set manifest, a verification record,
    /// `archive.json`. What the store says is larger than [`MAX_SMALL_OBJECT`] is
    /// refused before anything is read (a forged 10 GiB "manifest" must not be loaded
    /// into memory).
    pub async fn get_bytes(&self, key: &str) -> Result<Bytes> {
        let res = self
            .inner
            .get(&self.path(key))
            .await
            .map_err(self.store_err("read", key))?;
        if res.meta.size > MAX_SMALL_OBJECT {
            return Err(Error::InvalidManifest {
                key: key.to_string(),
                reason: format!(
                    "it is {} bytes, more than the {} MiB a manifest or record may have",
                    res.meta.size,
                    MAX_SMALL_OBJECT >> 20
                ),
            });
        }
        let data = res.bytes().await.map_err(self.store_err("read", key))?;
        self.throttle(data.len()).await;
        Ok(data)
    }

    /// Reads an object whole without the size limit of [`BackupStore::get_bytes`]: for
    /// stores dbseal itself filled in memory.
    pub(crate) async fn get_unbounded(&self, key: &str) -> Result<Bytes> {
        let res = self
            .inner
            .get(&self.path(key))
            .await
            .map_err(self.store_err("read", key))?;
        let data = res.bytes().await.map_err(self.store_err("read", key))?;
        self.throttle(data.len()).await;
        Ok(data)
    }

    /// Writes a small object whole, replacing any previous version.
    pub async fn put_bytes(&self, key: &str, data: Vec<u8>) -> Result<()> {
        self.throttle(data.len()).await;
        self.inner
            .put(&self.path(key), PutPayload::from(data))
            .await
            .map_err(self.store_err("write", key))?;
        Ok(())
    }

    /// Writes a small object only if it does not exist yet. Returns `false` if it did.
    pub async fn put_bytes_create(&self, key: &str, data: Vec<u8>) -> Result<bool> {
        self.throttle(data.len()).await;
        match self
            .inner
            .put_opts(
                &self.path(key),
                PutPayload::from(data),
                PutMode::Create.into(),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.store_err("write", key)(e)),
        }
    }

    /// Size of the object at `key`, or `None` if it does not exist.
    pub async fn size_of(&self, key: &str) -> Result<Option<u64>> {
        match self.inner.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.store_err("read", key)(e)),
        }
    }

    /// Deletes the object at `key` (missing objects are not an error).
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.inner.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_err("delete", key)(e)),
        }
    }

    /// Keys (relative to the store root) of all objects under `folder`.
    pub async fn list_keys(&self, folder: &str) -> Result<Vec<(String, object_store::ObjectMeta)>> {
        let prefix = self.path(folder.trim_end_matches('/'));
        let prefix = if folder.is_empty() {
            self.prefix.clone()
        } else {
            prefix
        };
        let prefix_opt = if prefix.as_ref().is_empty() {
            None
        } else {
            Some(&prefix)
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .inner
            .list(prefix_opt)
            .try_collect()
            .await
            .map_err(self.store_err("list", folder))?;
        Ok(metas
            .into_iter()
            .map(|m| (self.relative(&m.location), m))
            .collect())
    }

    /// Commits a manifest with create-only semantics: fails with
    /// [`Error::AlreadyExists`] if the backup already has one.
    pub async fn commit_manifest(&self, manifest: &Manifest) -> Result<()> {
        let key = Self::manifest_key(&manifest.datastore.name, &manifest.backup_id);
        if self.put_signed(&key, manifest.to_json(), true).await? {
            Ok(())
        } else {
            Err(Error::AlreadyExists {
                id: manifest.backup_id.to_string(),
                key,
            })
        }
    }

    /// Scans the store: complete backups (oldest first), incomplete folders and
    /// unreadable manifests. `datastore` limits the scan to one datastore.
    pub async fn scan(&self, datastore: Option<&str>) -> Result<StoreListing> {
        let keys = self.list_keys(datastore.unwrap_or("")).await?;
        // Group objects by their {datastore}/{backup_id} folder.
        let mut folders: BTreeMap<(String, String), Vec<(String, object_store::ObjectMeta)>> =
            BTreeMap::new();
        for (key, meta) in keys {
            let parts: Vec<&str> = key.split('/').collect();
            if parts.len() < 3
                || Self::is_reserved_folder(parts[0])
                || parts[1].parse::<BackupId>().is_err()
            {
                continue;
            }
            folders
                .entry((parts[0].to_string(), parts[1].to_string()))
                .or_default()
                .push((key.clone(), meta));
        }
        let mut listing = StoreListing::default();
        for ((ds, id), objects) in folders {
            let manifest_key = format!("{ds}/{id}/{MANIFEST_FILE}");
            if objects.iter().any(|(k, _)| *k == manifest_key) {
                match self.trusted_manifest(&manifest_key, &ds, &id).await {
                    Ok(m) => listing.backups.push(m),
                    Err(e @ Error::Untrusted { .. }) => {
                        listing.untrusted.push((manifest_key, e.to_string()))
                    }
                    Err(e) => listing.unreadable.push((manifest_key, e.to_string())),
                }
            } else {
                listing.incomplete.push(IncompleteBackup {
                    datastore: ds,
                    backup_id: id,
                    last_modified: objects
                        .iter()
                        .map(|(_, m)| m.last_modified)
                        .max()
                        .unwrap_or_default(),
                    bytes: objects.iter().map(|(_, m)| m.size).sum(),
                    keys: objects.into_iter().map(|(k, _)| k).collect(),
                });
            }
        }
        listing
            .backups
            .sort_by(|a, b| a.backup_id.cmp(&b.backup_id));
        Ok(listing)
    }

    /// Complete backups, oldest first (incomplete ones are ignored).
    pub async fn list(&self, datastore: Option<&str>) -> Result<Vec<Manifest>> {
        Ok(self.scan(datastore).await?.backups)
    }

    /// Reads the manifest at `key` (in folder `{datastore}/{id}`), refusing one that no
    /// trusted key signed or that claims another datastore or id than its folder's.
    async fn trusted_manifest(&self, key: &str, datastore: &str, id: &str) -> Result<Manifest> {
        let bytes = self.get_signed(key, Role::Backup).await?;
        let manifest = Manifest::from_json(&bytes, key)?;
        // Retention ages backups by this time: the id (which sorts them) must agree.
        let drift = (manifest.started_at - manifest.backup_id.timestamp()).num_seconds();
        if !(0..=1).contains(&drift) {
            return Err(Error::Untrusted {
                key: key.to_string(),
                reason: format!(
                    "its start time {} and its id {} disagree",
                    manifest.started_at, manifest.backup_id
                ),
            });
        }
        if manifest.datastore.name != datastore || manifest.backup_id.to_string() != id {
            return Err(Error::Untrusted {
                key: key.to_string(),
                reason: format!(
                    "it describes backup {}/{}, not the folder it was found in",
                    manifest.datastore.name, manifest.backup_id
                ),
            });
        }
        Ok(manifest)
    }

    /// The manifest of backup `id`, searched in every datastore folder. Refused when it
    /// is not signed by a trusted key, or when two folders hold a manifest for the id.
    pub async fn manifest(&self, id: &BackupId) -> Result<Manifest> {
        let root = if self.prefix.as_ref().is_empty() {
            None
        } else {
            Some(&self.prefix)
        };
        let listing = self
            .inner
            .list_with_delimiter(root)
            .await
            .map_err(self.store_err("list", ""))?;
        let mut found = Vec::new();
        for folder in listing.common_prefixes {
            let ds = self.relative(&folder);
            if Self::is_reserved_folder(&ds) {
                continue;
            }
            let key = Self::manifest_key(&ds, id);
            if self.size_of(&key).await?.is_some() {
                found.push((ds, key));
            }
        }
        if let [(ds, key)] = &found[..] {
            return self.trusted_manifest(key, ds, &id.to_string()).await;
        }
        if found.len() > 1 {
            let keys: Vec<&str> = found.iter().map(|(_, k)| k.as_str()).collect();
            return Err(Error::Untrusted {
                key: keys.join(", "),
                reason: format!("more than one manifest claims backup id {id}"),
            });
        }
        Err(Error::NotFound {
            id: id.to_string(),
            store: self.url.clone(),
            key: format!("*/{id}/{MANIFEST_FILE}"),
        })
    }

    /// Writes (or overwrites) the verification record of a backup, next to its
    /// manifest. The manifest itself stays create-only.
    pub async fn put_verification(&self, record: &VerificationRecord) -> Result<()> {
        BackupStore::validate_datastore_name(&record.datastore)?;
        let key = Self::verification_key(&record.datastore, &record.backup_id);
        let mut data = serde_json::to_vec_pretty(record).expect("record serializes");
        data.push(b'\n');
        self.put_signed(&key, data, false).await.map(|_| ())
    }

    /// The verification record of a backup, if it was ever verified with a record.
    pub async fn verification(
        &self,
        datastore: &str,
        id: &BackupId,
    ) -> Result<Option<VerificationRecord>> {
        let key = Self::verification_key(datastore, id);
        match self.get_signed(&key, Role::Record).await {
            Ok(bytes) => VerificationRecord::from_json(&bytes, &key)
                .and_then(|r| r.found_at(&key, datastore, id))
                .map(Some),
            Err(Error::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every verification record under `datastore` (or the whole store), by
    /// `(datastore, backup id)`. Unreadable records are skipped with a warning.
    pub async fn verifications(
        &self,
        datastore: Option<&str>,
    ) -> Result<BTreeMap<(String, BackupId), VerificationRecord>> {
        let mut out = BTreeMap::new();
        for (key, _) in self.list_keys(datastore.unwrap_or("")).await? {
            let parts: Vec<&str> = key.split('/').collect();
            if parts.len() != 3 || parts[2] != VERIFIED_FILE || Self::is_reserved_folder(parts[0]) {
                continue;
            }
            let Ok(id) = parts[1].parse::<BackupId>() else {
                continue;
            };
            match self
                .get_signed(&key, Role::Record)
                .await
                .and_then(|b| VerificationRecord::from_json(&b, &key))
                .and_then(|r| r.found_at(&key, parts[0], &id))
            {
                Ok(r) => {
                    out.insert((parts[0].to_string(), id), r);
                }
                // A record deleted between list and get (a concurrent prune) is no record.
                Err(Error::Store {
                    source: object_store::Error::NotFound { .. },
                    ..
                }) => {}
                Err(e) => {
                    tracing::warn!(key, error = %e, "skipping unreadable verification record")
                }
            }
        }
        Ok(out)
    }

    /// Deletes a complete backup: the manifest first (so the backup stops existing at
    /// once), then every other object of its folder. An interruption leaves debris
    /// without a manifest, which a later prune removes. Returns the keys deleted.
    pub async fn delete_backup(&self, manifest: &Manifest) -> Result<Vec<String>> {
        let ds = &manifest.datastore.name;
        BackupStore::validate_datastore_name(ds)?;
        let folder = Self::backup_folder(ds, &manifest.backup_id);
        let manifest_key = Self::manifest_key(ds, &manifest.backup_id);
        self.delete(&manifest_key).await?;
        let mut deleted = vec![manifest_key.clone()];
        for (key, _) in self.list_keys(&folder).await? {
            if key != manifest_key && key.starts_with(&format!("{folder}/")) {
                self.delete(&key).await?;
                deleted.push(key);
            }
        }
        Ok(deleted)
    }

    /// Deletes the objects of an incomplete backup folder (debris) as [`BackupStore::scan`]
    /// found them. Refuses if a manifest appeared since (the backup completed).
    pub async fn delete_incomplete(&self, debris: &IncompleteBackup) -> Result<Vec<String>> {
        let id: BackupId = debris.backup_id.parse().map_err(|e| {
            Error::Config(format!(
                "debris folder {}/{}: {e}",
                debris.datastore, debris.backup_id
            ))
        })?;
        let manifest_key = Self::manifest_key(&debris.datastore, &id);
        if self.size_of(&manifest_key).await?.is_some() {
            return Err(Error::AlreadyExists {
                id: debris.backup_id.clone(),
                key: manifest_key,
            });
        }
        let mut deleted = Vec::new();
        for key in &debris.keys {
            self.delete(key).await?;
            deleted.push(key.clone());
        }
        Ok(deleted)
    }
}

/// A streaming, bounded-memory upload of one artifact. Call [`ArtifactUpload::finish`]
/// on success and [`ArtifactUpload::abort`] on failure: a dropped upload may leave a
/// partial object (debris that `prune` removes; it has no manifest, so it does not count).
pub struct ArtifactUpload {
    writer: BufWriter,
    key: String,
    store: String,
    rate: Option<Arc<RateLimit>>,
}

impl ArtifactUpload {
    /// Writes one chunk.
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        crate::throttle::charge(self.rate.as_deref(), chunk.len()).await;
        self.writer.put(chunk).await.map_err(|source| Error::Store {
            store: self.store.clone(),
            operation: "write",
            key: self.key.clone(),
            source,
        })
    }

    /// Completes the upload.
    pub async fn finish(mut self) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        self.writer.shutdown().await.map_err(|e| {
            // The buffered writer wraps the store's error in an io::Error: unwrap it so
            // the kind (unreachable, refused credentials...) survives.
            if e.get_ref().is_some_and(|i| i.is::<object_store::Error>()) {
                let inner = e.into_inner().expect("checked");
                return Error::Store {
                    store: self.store.clone(),
                    operation: "write",
                    key: self.key.clone(),
                    source: *inner.downcast::<object_store::Error>().expect("checked"),
                };
            }
            Error::from_io(
                e,
                format!("store {}: cannot write {}", self.store, self.key),
            )
        })
    }

    /// Abandons the upload, removing what was written where the store allows it.
    pub async fn abort(mut self) {
        let _ = self.writer.abort().await;
    }
}

/// When and how a backup was last verified: `{datastore}/{id}/verified.json`.
///
/// Written by `dbseal verify` after every verification, passed or failed; overwritten by
/// the next one. Retention treats a backup whose record says `ok` as verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerificationRecord {
    /// The backup verified.
    pub backup_id: BackupId,
    /// Its datastore.
    pub datastore: String,
    /// The level attempted: `stored`, `content` or `restore`.
    pub level: String,
    /// When the verification finished.
    pub verified_at: chrono::DateTime<chrono::Utc>,
    /// Whether it passed.
    pub ok: bool,
    /// What was checked, or what failed (never a secret).
    pub message: String,
    /// The tool that verified it.
    pub tool: crate::manifest::ToolInfo,
    /// Fields a newer version wrote, kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl VerificationRecord {
    /// A record made now by this build.
    pub fn new(
        datastore: &str,
        backup_id: &BackupId,
        level: &str,
        ok: bool,
        message: impl Into<String>,
    ) -> Self {
        VerificationRecord {
            backup_id: backup_id.clone(),
            datastore: datastore.to_string(),
            level: level.to_string(),
            verified_at: chrono::Utc::now(),
            ok,
            message: message.into(),
            tool: crate::manifest::ToolInfo::default(),
            extra: Default::default(),
        }
    }

    /// This record, if it describes the backup whose folder it was found in.
    fn found_at(self, key: &str, datastore: &str, id: &BackupId) -> Result<Self> {
        if self.datastore != datastore || self.backup_id != *id {
            return Err(Error::Untrusted {
                key: key.to_string(),
                reason: format!(
                    "it records a verification of {}/{}, not of the backup it was found with",
                    self.datastore, self.backup_id
                ),
            });
        }
        Ok(self)
    }

    /// Parses a record; `key` names it in errors.
    pub fn from_json(bytes: &[u8], key: &str) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::InvalidManifest {
            key: key.to_string(),
            reason: format!("not a verification record: {e}"),
        })
    }
}

/// Reads `range` of a local file on a blocking thread in [`CHUNK_SIZE`] reads, handing
/// the chunks over a small channel; stops when the stream is dropped.
fn read_file_in_chunks(
    file: std::fs::File,
    range: std::ops::Range<u64>,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    use std::io::{Read, Seek, SeekFrom};
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let failed = |e: std::io::Error| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        };
        let mut file = file;
        if let Err(e) = file.seek(SeekFrom::Start(range.start)) {
            let _ = tx.blocking_send(Err(failed(e)));
            return;
        }
        let mut rest = file.take(range.end.saturating_sub(range.start));
        loop {
            let item = match crate::pipe::read_chunk(&mut rest) {
                Ok(None) => return,
                Ok(Some(chunk)) => Ok(chunk),
                Err(e) => Err(failed(e)),
            };
            let stop = item.is_err();
            if tx.blocking_send(item).is_err() || stop {
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

/// Gathers a body's pieces into chunks of [`CHUNK_SIZE`] bytes (the last one shorter).
fn in_chunks(
    body: BoxStream<'static, object_store::Result<Bytes>>,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    futures::stream::unfold(Some(body), |body| async move {
        let mut body = body?;
        let mut chunk = bytes::BytesMut::new();
        while chunk.len() < CHUNK_SIZE {
            match body.next().await {
                Some(Ok(piece)) if chunk.is_empty() && piece.len() >= CHUNK_SIZE => {
                    return Some((Ok(piece), Some(body)));
                }
                Some(Ok(piece)) => chunk.extend_from_slice(&piece),
                Some(Err(e)) => return Some((Err(e), None)),
                None if chunk.is_empty() => return None,
                None => return Some((Ok(chunk.freeze()), None)),
            }
        }
        Some((Ok(chunk.freeze()), Some(body)))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{backup, BackupOptions, KeyPair, ReaderSource};

    #[tokio::test]
    async fn reserved_folders_and_records_do_not_disturb_scan() {
        let store = BackupStore::open("memory://", &Default::default())
            .unwrap()
            .with_trust(crate::Trust::ephemeral().unwrap());
        let keys = KeyPair::generate();
        let mut src = ReaderSource::new(&b"payload"[..], "stdin");
        let m = backup(
            &store,
            &mut src,
            BackupOptions::new("app", keys.encryption()),
        )
        .await
        .unwrap();
        // A set manifest in a reserved folder whose second part looks like a backup id.
        let set_key = format!("_sets/{}/set.json", m.backup_id);
        store.put_bytes(&set_key, b"{}".to_vec()).await.unwrap();
        assert!(BackupStore::validate_datastore_name("_sets").is_err());
        assert!(BackupStore::validate_datastore_name("app_db").is_ok());

        let rec = VerificationRecord::new("app", &m.backup_id, "stored", true, "ok");
        store.put_verification(&rec).await.unwrap();
        // Overwritable, unlike the manifest.
        let rec2 = VerificationRecord::new("app", &m.backup_id, "content", false, "bad");
        store.put_verification(&rec2).await.unwrap();

        let listing = store.scan(None).await.unwrap();
        assert_eq!(listing.backups.len(), 1);
        assert!(listing.incomplete.is_empty(), "{:?}", listing.incomplete);
        assert_eq!(
            store.manifest(&m.backup_id).await.unwrap().backup_id,
            m.backup_id
        );
        let got = store
            .verification("app", &m.backup_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((got.level.as_str(), got.ok), ("content", false));
        let all = store.verifications(None).await.unwrap();
        assert_eq!(all.len(), 1);

        let deleted = store.delete_backup(&m).await.unwrap();
        assert_eq!(deleted[0], BackupStore::manifest_key("app", &m.backup_id));
        assert_eq!(deleted.len(), 5, "{deleted:?}");
        let listing = store.scan(None).await.unwrap();
        assert!(listing.backups.is_empty() && listing.incomplete.is_empty());
        assert!(store.size_of(&set_key).await.unwrap().is_some());
    }
}
