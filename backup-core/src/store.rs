//! The backup store: artifacts and manifests in object storage.
//!
//! Layout under the store root:
//!
//! ```text
//! {prefix}/{datastore}/{backup_id}/data.{format}.zst.age
//! {prefix}/{datastore}/{backup_id}/manifest.json
//! ```
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
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};

use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::manifest::Manifest;

/// The part size of multipart uploads (S3's minimum is 5 MiB).
pub const UPLOAD_PART_SIZE: usize = 8 * 1024 * 1024;
/// How many parts upload at once; with the part size, bounds upload memory.
pub const UPLOAD_CONCURRENCY: usize = 2;

/// The manifest's file name inside a backup's folder.
pub const MANIFEST_FILE: &str = "manifest.json";

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
}

impl std::fmt::Debug for BackupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupStore")
            .field("url", &self.url)
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
}

impl BackupStore {
    /// Opens a store from a URL or local path, with builder options (e.g.
    /// `aws_endpoint`, `aws_allow_http`, `aws_region`); cloud stores also read their
    /// usual environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> Result<Self> {
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
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&path)
                .map_err(|e| bad(e.to_string()))?
                .with_automatic_cleanup(true);
            return Ok(BackupStore {
                inner: Arc::new(fs),
                prefix: Path::default(),
                url: shown,
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
        })
    }

    /// A store over any `object_store` implementation.
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Self {
        BackupStore {
            inner,
            prefix: Path::from(prefix.trim_matches('/')),
            url: crate::secret::redact_url(url),
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

    /// Checks that a datastore name is usable as a folder name.
    pub fn validate_datastore_name(name: &str) -> Result<()> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "invalid datastore name `{name}`: use letters, digits, `-`, `_` and `.` (not leading)"
            )))
        }
    }

    /// The folder of a backup, relative to the store root.
    pub fn backup_folder(datastore: &str, id: &BackupId) -> String {
        format!("{datastore}/{id}")
    }

    /// The manifest key of a backup.
    pub fn manifest_key(datastore: &str, id: &BackupId) -> String {
        format!("{datastore}/{id}/{MANIFEST_FILE}")
    }

    /// Opens a streaming upload to `key` with bounded memory. Abort it on failure.
    pub fn upload(&self, key: &str) -> ArtifactUpload {
        ArtifactUpload {
            writer: BufWriter::with_capacity(self.inner.clone(), self.path(key), UPLOAD_PART_SIZE)
                .with_max_concurrency(UPLOAD_CONCURRENCY),
            key: key.to_string(),
            store: self.url.clone(),
        }
    }

    /// Streams the object at `key`.
    pub async fn download(&self, key: &str) -> Result<BoxStream<'static, Result<Bytes>>> {
        let res = self
            .inner
            .get(&self.path(key))
            .await
            .map_err(self.store_err("read", key))?;
        let store = self.url.clone();
        let k = key.to_string();
        Ok(res
            .into_stream()
            .map_err(move |source| Error::Store {
                store: store.clone(),
                operation: "read",
                key: k.clone(),
                source,
            })
            .boxed())
    }

    /// Reads a small object whole.
    pub async fn get_bytes(&self, key: &str) -> Result<Bytes> {
        let res = self
            .inner
            .get(&self.path(key))
            .await
            .map_err(self.store_err("read", key))?;
        res.bytes().await.map_err(self.store_err("read", key))
    }

    /// Writes a small object whole, replacing any previous version.
    pub async fn put_bytes(&self, key: &str, data: Vec<u8>) -> Result<()> {
        self.inner
            .put(&self.path(key), PutPayload::from(data))
            .await
            .map_err(self.store_err("write", key))?;
        Ok(())
    }

    /// Writes a small object only if it does not exist yet. Returns `false` if it did.
    pub async fn put_bytes_create(&self, key: &str, data: Vec<u8>) -> Result<bool> {
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
        if self.put_bytes_create(&key, manifest.to_json()).await? {
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
            if parts.len() < 3 || parts[1].parse::<BackupId>().is_err() {
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
                match self
                    .get_bytes(&manifest_key)
                    .await
                    .and_then(|b| Manifest::from_json(&b, &manifest_key))
                {
                    Ok(m) => listing.backups.push(m),
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

    /// The manifest of backup `id`, searched in every datastore folder.
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
        for folder in listing.common_prefixes {
            let ds = self.relative(&folder);
            let key = Self::manifest_key(&ds, id);
            match self.get_bytes(&key).await {
                Ok(bytes) => return Manifest::from_json(&bytes, &key),
                Err(Error::Store {
                    source: object_store::Error::NotFound { .. },
                    ..
                }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::NotFound {
            id: id.to_string(),
            store: self.url.clone(),
            key: format!("*/{id}/{MANIFEST_FILE}"),
        })
    }
}

/// A streaming, bounded-memory upload of one artifact. Call [`ArtifactUpload::finish`]
/// on success and [`ArtifactUpload::abort`] on failure: a dropped upload may leave a
/// partial object (debris that `prune` removes; it has no manifest, so it does not count).
pub struct ArtifactUpload {
    writer: BufWriter,
    key: String,
    store: String,
}

impl ArtifactUpload {
    /// Writes one chunk.
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
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
