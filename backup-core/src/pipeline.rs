//! The pipeline: a Source through transforms into the store, and back into a Sink.
//!
//! ```text
//! backup:  Source ─▶ (sha256 tee, format reader) ─▶ [zstd] ─▶ [age] ─▶ (sha256 tee) ─▶ store
//! restore: store ─▶ (sha256 check) ─▶ [age⁻¹] ─▶ [zstd⁻¹] ─▶ (sha256 check, hold-back) ─▶ Sink
//! ```
//!
//! Every stage runs on its own task and talks to its neighbours through bounded
//! [`pipe`]s, so compression, encryption, hashing and I/O overlap on separate cores and
//! memory stays bounded whatever the size of the database. The format reader parses a
//! copy of the plaintext on a blocking thread to compute the contents summary.
//!
//! Failure: when any stage fails, the pipeline reports the stage that failed first on
//! its own (not the neighbours that stopped because of it), aborts the upload, and
//! commits no manifest. On restore, the last chunk of plaintext is held back until the
//! stored digest, the age authentication and the plaintext digest have all been checked,
//! so a sink that commits only at a clean end of stream never commits a bad artifact.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::contents::{Contents, FormatReader};
use crate::error::{Error, Result};
use crate::id::BackupId;
use crate::keys::{Decryption, Encryption};
use crate::manifest::{Artifact, Attachment, DatastoreRef, Manifest, ToolInfo, FORMAT_VERSION};
use crate::pipe::{
    blocking_chunks, pipe, PipeReader, PipeState, PipeWriter, PIPE_CAPACITY, UPSTREAM_ABORTED,
};
use crate::progress::Progress;
use crate::sink::{Sink, SinkReport};
use crate::source::{Source, SourceFacts};
use crate::store::BackupStore;
use crate::transform::{Age, StageContext, Transform, Zstd};

/// How to make a backup.
#[derive(Clone)]
pub struct BackupOptions {
    /// The datastore name (folder in the store).
    pub datastore: String,
    /// What to encrypt to.
    pub encryption: Encryption,
    /// zstd level (default 3).
    pub zstd_level: i32,
    /// zstd worker threads (`None`: [`Zstd::default_workers`]; 0: one thread).
    pub zstd_workers: Option<u32>,
    /// Labels recorded in the manifest.
    pub labels: BTreeMap<String, String>,
    /// The parent backup, for incremental chains.
    pub parent: Option<BackupId>,
    /// Progress receiver.
    pub progress: Option<Arc<dyn Progress>>,
    /// Cancelled when the user interrupts: the source is stopped, the upload aborted,
    /// what was uploaded deleted, and no manifest is committed.
    pub cancel: CancellationToken,
}

impl std::fmt::Debug for BackupOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupOptions")
            .field("datastore", &self.datastore)
            .field("encryption", &self.encryption)
            .field("zstd_level", &self.zstd_level)
            .field("zstd_workers", &self.zstd_workers)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl BackupOptions {
    /// Options with zstd level 3 and no labels.
    pub fn new(datastore: impl Into<String>, encryption: Encryption) -> Self {
        BackupOptions {
            datastore: datastore.into(),
            encryption,
            zstd_level: 3,
            zstd_workers: None,
            labels: BTreeMap::new(),
            parent: None,
            progress: None,
            cancel: CancellationToken::new(),
        }
    }

    /// These options, interrupted by `cancel`.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    fn transforms(&self) -> Vec<Arc<dyn Transform>> {
        let zstd = Zstd::new(self.zstd_level)
            .with_workers(self.zstd_workers.unwrap_or_else(Zstd::default_workers));
        vec![
            Arc::new(zstd),
            Arc::new(Age::encrypt(self.encryption.clone())),
        ]
    }
}

/// A backup in progress: write one or more artifacts, then commit the manifest.
/// When writing an artifact or committing fails or is cancelled
/// ([`BackupOptions::cancel`]), the session deletes what it uploaded: a failed backup
/// leaves neither a manifest nor artifacts. Dropping it without
/// [`BackupSession::commit`] or [`BackupSession::abandon`] leaves no backup, only
/// debris that `prune --debris` removes.
pub struct BackupSession {
    store: BackupStore,
    options: BackupOptions,
    id: BackupId,
    started_at: DateTime<Utc>,
    artifacts: Vec<(Artifact, Contents)>,
}

impl std::fmt::Debug for BackupSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupSession")
            .field("id", &self.id)
            .field("store", &self.store)
            .finish()
    }
}

/// A spawned stage: its name, its task, and the states of its input and output pipes.
type PendingStage = (
    &'static str,
    JoinHandle<Result<()>>,
    Option<Arc<PipeState>>,
    Option<Arc<PipeState>>,
);

/// One stage's outcome with what it saw at its pipe ends.
struct StageOutcome {
    name: &'static str,
    result: Result<()>,
    input: Option<Arc<PipeState>>,
    output: Option<Arc<PipeState>>,
}

impl StageOutcome {
    /// Whether this stage failed only because a neighbour did.
    fn is_secondary(&self) -> bool {
        self.input.as_ref().is_some_and(|s| s.aborted())
            || self.output.as_ref().is_some_and(|s| s.broken())
    }
}

/// The first error of a stage that failed on its own, else the first error.
fn first_cause(outcomes: Vec<StageOutcome>) -> Result<()> {
    let mut first_any: Option<Error> = None;
    for o in outcomes {
        let secondary = o.is_secondary();
        if let Err(e) = o.result {
            tracing::debug!(stage = o.name, secondary, error = %e, "pipeline stage failed");
            if !secondary {
                return Err(e);
            }
            first_any.get_or_insert(e);
        }
    }
    match first_any {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn joined(handle: JoinHandle<Result<()>>) -> Result<()> {
    match handle.await {
        Ok(r) => r,
        Err(e) => Err(crate::task::join_error(e, "a pipeline stage")),
    }
}

/// Finishes `out` after a stage's body: a clean end on success, a failure marker otherwise.
async fn close_stage<T>(out: PipeWriter, result: &Result<T>) {
    match result {
        Ok(_) => {
            // A finish error means the reader is gone; the reader's own error is reported.
            let _ = out.finish().await;
        }
        Err(_) => {
            out.fail(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                UPSTREAM_ABORTED,
            ))
            .await
        }
    }
}

fn spawn_transform(
    t: Arc<dyn Transform>,
    forward: bool,
    ctx: StageContext,
    mut input: PipeReader,
    mut output: PipeWriter,
) -> (JoinHandle<Result<()>>, Arc<PipeState>, Arc<PipeState>) {
    let (is, os) = (input.state(), output.state());
    let handle = tokio::spawn(async move {
        let mut result = if forward {
            t.apply(&ctx, &mut input, &mut output).await
        } else {
            t.invert(&ctx, &mut input, &mut output).await
        };
        if result.is_ok() && !forward {
            // Read to the end so the upstream checks finish before we report the end,
            // and refuse bytes after the end of the encoded stream.
            result = drain_trailing(&ctx, &mut input).await;
        }
        drop(input);
        close_stage(output, &result).await;
        result
    });
    (handle, is, os)
}

async fn drain_trailing(ctx: &StageContext, input: &mut PipeReader) -> Result<()> {
    let mut extra = 0u64;
    while let Some(chunk) = input
        .next_chunk()
        .await
        .map_err(|e| Error::from_io(e, "reading the artifact"))?
    {
        extra += chunk.len() as u64;
    }
    if extra > 0 {
        return Err(ctx.verification(format!(
            "{extra} unexpected bytes after the end of the encoded stream"
        )));
    }
    Ok(())
}

fn hex(digest: impl AsRef<[u8]>) -> String {
    hex::encode(digest.as_ref())
}

/// Runs a whole backup of one source with one artifact and commits its manifest.
pub async fn backup(
    store: &BackupStore,
    source: &mut dyn Source,
    options: BackupOptions,
) -> Result<Manifest> {
    let mut session = BackupSession::start(store, options)?;
    let facts = session.write_artifact("data", source).await?;
    let kind = source.kind().to_string();
    session.commit(&kind, facts).await
}

impl BackupSession {
    /// Starts a backup: allocates its id. Nothing is written yet.
    pub fn start(store: &BackupStore, options: BackupOptions) -> Result<Self> {
        BackupStore::validate_datastore_name(&options.datastore)?;
        Zstd::validate(options.zstd_level)?;
        store.trust().require_signer("a backup")?;
        if options.cancel.is_cancelled() {
            return Err(interrupted());
        }
        let started_at = Utc::now();
        Ok(BackupSession {
            store: store.clone(),
            id: BackupId::new(started_at),
            started_at,
            options,
            artifacts: Vec::new(),
        })
    }

    /// The id the backup will have.
    pub fn id(&self) -> &BackupId {
        &self.id
    }

    /// Streams `source` through the transforms into the store as the artifact `name`
    /// (`data` for the main one). Returns the source's facts.
    pub async fn write_artifact(
        &mut self,
        name: &str,
        source: &mut dyn Source,
    ) -> Result<SourceFacts> {
        match self.stream_artifact(name, source).await {
            Ok(facts) => Ok(facts),
            Err(e) => {
                self.abandon().await;
                Err(e)
            }
        }
    }

    /// Deletes the artifacts this session uploaded (best effort: what cannot be deleted
    /// is debris `prune --debris` removes later). For a caller that fails between
    /// [`BackupSession::write_artifact`] and [`BackupSession::commit`].
    pub async fn abandon(&self) {
        for (artifact, _) in &self.artifacts {
            if let Err(e) = self.store.delete(&artifact.key).await {
                tracing::warn!(key = %artifact.key, error = %e, "could not delete the artifact of a failed backup");
            }
        }
    }

    async fn stream_artifact(
        &mut self,
        name: &str,
        source: &mut dyn Source,
    ) -> Result<SourceFacts> {
        let transforms = self.options.transforms();
        let reader = source.format_reader();
        let format = reader.format().to_string();
        let suffix: String = transforms
            .iter()
            .map(|t| format!(".{}", t.spec().suffix()))
            .collect();
        let key = format!(
            "{}/{}.{format}{suffix}",
            BackupStore::backup_folder(&self.options.datastore, &self.id),
            name
        );
        if self.artifacts.iter().any(|(a, _)| a.name == name) {
            return Err(Error::Config(format!("artifact `{name}` written twice")));
        }
        let ctx = StageContext {
            backup_id: self.id.to_string(),
            key: key.clone(),
        };
        let progress = self.options.progress.clone();

        // Source → tee.
        let (mut src_w, src_r) = pipe(PIPE_CAPACITY);
        let src_state = src_w.state();
        let mut outcomes_handles: Vec<PendingStage> = Vec::new();

        // Tee: plaintext digest, size, progress and a copy for the format reader. The
        // digest is CPU-bound (as fast as compression on compressible data): it runs on
        // a thread of its own, like zstd, so the two use both cores.
        let (feed, inspector) = if reader.reads_stream() {
            let (feed, chunk_reader) = blocking_chunks(PIPE_CAPACITY);
            let inspector_reader = reader.clone();
            let inspector = tokio::task::spawn_blocking(move || {
                let mut r = chunk_reader;
                let out = inspector_reader.read_contents(&mut r);
                // Drain whatever is left so the tee never blocks on a failed reader.
                let _ = std::io::copy(&mut r, &mut std::io::sink());
                out
            });
            (Some(feed), Some(inspector))
        } else {
            (None, None)
        };
        let (tee_w, mut next_r) = pipe(PIPE_CAPACITY);
        let (tee_in_state, tee_out_state) = (src_r.state(), tee_w.state());
        let tee_progress = progress.clone();
        let tee = tokio::task::spawn_blocking(move || {
            let mut input = src_r;
            let mut out = tee_w;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut feed = feed;
            let result: Result<(u64, String)> = (|| {
                while let Some(chunk) = input
                    .blocking_next_chunk()
                    .map_err(|e| Error::from_io(e, "reading the source stream"))?
                {
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    if let Some(p) = &tee_progress {
                        p.advance(chunk.len() as u64);
                    }
                    if let Some(f) = &feed {
                        if f.blocking_send(chunk.clone()).is_err() {
                            feed = None;
                        }
                    }
                    out.blocking_send(chunk)
                        .map_err(|e| Error::from_io(e, "passing the stream on"))?;
                }
                Ok((size, hex(hasher.finalize())))
            })();
            drop(feed);
            drop(input);
            (result, out)
        });
        let tee = tokio::spawn(async move {
            match tee.await {
                Ok((result, out)) => {
                    close_stage(out, &result).await;
                    result
                }
                Err(e) => Err(crate::task::join_error(e, "the digest stage")),
            }
        });

        // Transforms.
        for t in transforms.iter() {
            let (w, r) = pipe(PIPE_CAPACITY);
            let (h, is, os) = spawn_transform(t.clone(), true, ctx.clone(), next_r, w);
            outcomes_handles.push(("transform", h, Some(is), Some(os)));
            next_r = r;
        }

        // Upload with the stored digest.
        let upload_in_state = next_r.state();
        let mut upload = self.store.upload(&key);
        let uploader = tokio::spawn(async move {
            let mut input = next_r;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let result: Result<()> = async {
                while let Some(chunk) = input
                    .next_chunk()
                    .await
                    .map_err(|e| Error::from_io(e, "reading the encrypted stream"))?
                {
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    upload.write(chunk).await?;
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => {
                    drop(input);
                    upload.finish().await?;
                    Ok((size, hex(hasher.finalize())))
                }
                Err(e) => {
                    drop(input);
                    upload.abort().await;
                    Err(e)
                }
            }
        });

        // The source runs on this task (it may borrow), the rest on their own.
        // Cancellation stops the source (its child process is killed with it) and fails
        // the stream, so every stage after it aborts and the upload is abandoned.
        let cancel = self.options.cancel.clone();
        let source_result = tokio::select! {
            r = source.dump_to_pipe(&mut src_w) => r,
            () = cancel.cancelled() => Err(interrupted()),
        };
        let source_result = match source_result {
            Ok(facts) => match src_w.shutdown().await {
                Ok(()) => Ok(facts),
                Err(e) => Err(Error::from_io(e, "finishing the source stream")),
            },
            Err(e) => {
                src_w
                    .fail(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        UPSTREAM_ABORTED,
                    ))
                    .await;
                Err(e)
            }
        };

        let tee_result = match tee.await {
            Ok(r) => r,
            Err(e) => Err(crate::task::join_error(e, "the digest stage")),
        };
        let mut outcomes = Vec::new();
        // Collect every stage before deciding, in pipeline order.
        let mut transform_results = Vec::new();
        for (name, h, is, os) in outcomes_handles {
            transform_results.push(StageOutcome {
                name,
                result: joined(h).await,
                input: is,
                output: os,
            });
        }
        let upload_result = match uploader.await {
            Ok(r) => r,
            Err(e) => Err(crate::task::join_error(e, "the upload stage")),
        };
        let inspector_result = match inspector {
            None => Ok(crate::contents::Contents::default()),
            Some(inspector) => match inspector.await {
                Ok(r) => r,
                Err(e) => Err(crate::task::join_error(e, "the format reader")),
            },
        };

        // Decide the cause, in pipeline order.
        let (facts, source_err) = match source_result {
            Ok(f) => (Some(f), Ok(())),
            Err(e) => (None, Err(e)),
        };
        let (plain, tee_err) = match tee_result {
            Ok(p) => (Some(p), Ok(())),
            Err(e) => (None, Err(e)),
        };
        let (stored, upload_err) = match upload_result {
            Ok(s) => (Some(s), Ok(())),
            Err(e) => (None, Err(e)),
        };
        outcomes.push(StageOutcome {
            name: "source",
            result: source_err,
            input: None,
            output: Some(src_state),
        });
        outcomes.push(StageOutcome {
            name: "tee",
            result: tee_err,
            input: Some(tee_in_state),
            output: Some(tee_out_state),
        });
        outcomes.extend(transform_results);
        outcomes.push(StageOutcome {
            name: "upload",
            result: upload_err,
            input: Some(upload_in_state),
            output: None,
        });
        first_cause(outcomes)?;
        if cancel.is_cancelled() {
            // Finished at the moment of the interrupt: the artifact is complete, yet the
            // user asked to stop; it is deleted with the others.
            self.store.delete(&key).await.ok();
            return Err(interrupted());
        }
        let contents = inspector_result.map_err(|e| match e {
            Error::Format { .. } => e,
            other => Error::Format {
                format: format.clone(),
                reason: format!("the contents summary could not be computed: {other}"),
            },
        })?;
        let (plaintext_size, plaintext_sha256) = plain.expect("tee succeeded");
        let (stored_size, stored_sha256) = stored.expect("upload succeeded");
        self.artifacts.push((
            Artifact {
                name: name.to_string(),
                key,
                format,
                stored_size,
                stored_sha256,
                plaintext_size,
                plaintext_sha256,
            },
            contents,
        ));
        if let Some(p) = &progress {
            p.finish();
        }
        Ok(facts.expect("source succeeded"))
    }

    /// Commits the manifest (create-only). Only now does the backup exist. A session
    /// cancelled before this point commits nothing and deletes its artifacts.
    pub async fn commit(self, kind: &str, facts: SourceFacts) -> Result<Manifest> {
        if self.options.cancel.is_cancelled() {
            self.abandon().await;
            return Err(interrupted());
        }
        let manifest = self.manifest(kind, facts)?;
        // A failed commit keeps the artifacts: the manifest may have landed although the
        // store answered with an error; if it did not, they are debris prune removes.
        self.store.commit_manifest(&manifest).await?;
        Ok(manifest)
    }

    fn manifest(&self, kind: &str, facts: SourceFacts) -> Result<Manifest> {
        let mut artifacts = self.artifacts.iter().cloned();
        let (artifact, contents) = artifacts
            .next()
            .ok_or_else(|| Error::Config("a backup needs at least one artifact".into()))?;
        let manifest = Manifest {
            format_version: FORMAT_VERSION.to_string(),
            backup_id: self.id.clone(),
            datastore: DatastoreRef {
                name: self.options.datastore.clone(),
                kind: kind.to_string(),
            },
            started_at: self.started_at,
            finished_at: Utc::now(),
            tool: ToolInfo::default(),
            source: facts,
            artifact,
            attachments: artifacts
                .map(|(artifact, contents)| Attachment { artifact, contents })
                .collect(),
            transforms: self.options.transforms().iter().map(|t| t.spec()).collect(),
            contents,
            parent: self.options.parent.clone(),
            labels: self.options.labels.clone(),
            extra: Default::default(),
        };
        Ok(manifest)
    }
}

fn interrupted() -> Error {
    Error::Interrupted("the backup was interrupted: no manifest was written".into())
}

/// How to open a backup for restore or verification.
#[derive(Clone, Default)]
pub struct RestoreOptions {
    /// Identities or passphrase; required for encrypted backups.
    pub decryption: Option<Arc<Decryption>>,
    /// Progress receiver (counts stored bytes read).
    pub progress: Option<Arc<dyn Progress>>,
}

impl std::fmt::Debug for RestoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("decryption", &self.decryption)
            .finish_non_exhaustive()
    }
}

/// Streams the stored artifact `artifact_name` of `manifest` back through the inverse
/// transforms into `sink`. The sink sees a clean end of stream only if every check
/// passed (see the module docs).
pub async fn restore(
    store: &BackupStore,
    manifest: &Manifest,
    artifact_name: &str,
    sink: &mut dyn Sink,
    options: &RestoreOptions,
) -> Result<SinkReport> {
    manifest.check_sealed()?;
    let artifact = manifest
        .artifacts()
        .find(|a| a.name == artifact_name)
        .ok_or_else(|| Error::Verification {
            id: manifest.backup_id.to_string(),
            key: BackupStore::manifest_key(&manifest.datastore.name, &manifest.backup_id),
            what: format!("the manifest lists no artifact named `{artifact_name}`"),
        })?
        .clone();
    let ctx = StageContext {
        backup_id: manifest.backup_id.to_string(),
        key: artifact.key.clone(),
    };
    let mut stages: Vec<PendingStage> = Vec::new();

    // Download with the stored digest check.
    let (dl_w, mut next_r) = pipe(PIPE_CAPACITY);
    let dl_state = dl_w.state();
    let stream = store
        .download_artifact(&ctx.backup_id, &artifact.key)
        .await?;
    if let Some(p) = &options.progress {
        p.set_total(Some(artifact.stored_size));
    }
    let dl = {
        let ctx = ctx.clone();
        let artifact = artifact.clone();
        let progress = options.progress.clone();
        tokio::spawn(async move {
            let mut out = dl_w;
            let mut stream = stream;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let result: Result<()> = async {
                while let Some(chunk) = stream.next().await {
                    let chunk: Bytes = chunk?;
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    if let Some(p) = &progress {
                        p.advance(chunk.len() as u64);
                    }
                    if size > artifact.stored_size {
                        return Err(ctx.verification(format!(
                            "stored object is larger than the {} bytes the manifest records",
                            artifact.stored_size
                        )));
                    }
                    out.send(chunk)
                        .await
                        .map_err(|e| Error::from_io(e, "passing the artifact on"))?;
                }
                let digest = hex(hasher.finalize());
                if let Some(what) = artifact.stored_mismatch(size, &digest) {
                    return Err(ctx.verification(what));
                }
                Ok(())
            }
            .await;
            close_stage(out, &result).await;
            result
        })
    };
    stages.push(("download", dl, None, Some(dl_state)));

    // Inverse transforms, last applied first.
    for spec in manifest.transforms.iter().rev() {
        let t = <dyn Transform>::from_spec(spec, options.decryption.clone())?;
        let (w, r) = pipe(PIPE_CAPACITY);
        let (h, is, os) = spawn_transform(t, false, ctx.clone(), next_r, w);
        stages.push(("inverse transform", h, Some(is), Some(os)));
        next_r = r;
    }

    // Plaintext digest check with hold-back of the last chunk.
    let (ver_w, mut sink_r) = pipe(PIPE_CAPACITY);
    let (ver_is, ver_os) = (next_r.state(), ver_w.state());
    let verifier = {
        let ctx = ctx.clone();
        let artifact = artifact.clone();
        // CPU-bound (SHA-256): a thread of its own, off the runtime's workers.
        tokio::task::spawn_blocking(move || {
            let mut input = next_r;
            let mut out = ver_w;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut held: Option<Bytes> = None;
            let result: Result<()> = (|| {
                while let Some(chunk) = input
                    .blocking_next_chunk()
                    .map_err(|e| Error::from_io(e, "reading the plaintext"))?
                {
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    if let Some(prev) = held.replace(chunk) {
                        out.blocking_send(prev)
                            .map_err(|e| Error::from_io(e, "passing the plaintext on"))?;
                    }
                }
                let digest = hex(hasher.finalize());
                if size != artifact.plaintext_size || digest != artifact.plaintext_sha256 {
                    return Err(ctx.verification(format!(
                        "plaintext is {size} bytes with SHA-256 {digest}, the manifest records {} bytes with {}",
                        artifact.plaintext_size, artifact.plaintext_sha256
                    )));
                }
                if let Some(last) = held.take() {
                    out.blocking_send(last)
                        .map_err(|e| Error::from_io(e, "passing the plaintext on"))?;
                }
                Ok(())
            })();
            (result, out)
        })
    };
    let verifier = {
        tokio::spawn(async move {
            match verifier.await {
                Ok((result, out)) => {
                    close_stage(out, &result).await;
                    result
                }
                Err(e) => Err(crate::task::join_error(e, "the plaintext check")),
            }
        })
    };
    stages.push(("plaintext check", verifier, Some(ver_is), Some(ver_os)));

    let sink_state = sink_r.state();
    let sink_result = sink.restore(manifest, &mut sink_r).await;
    drop(sink_r);
    let mut outcomes = Vec::new();
    for (name, h, is, os) in stages {
        outcomes.push(StageOutcome {
            name,
            result: joined(h).await,
            input: is,
            output: os,
        });
    }
    let (report, sink_err) = match sink_result {
        Ok(r) => (Some(r), Ok(())),
        Err(e) => (None, Err(e)),
    };
    outcomes.push(StageOutcome {
        name: "sink",
        result: sink_err,
        input: Some(sink_state),
        output: None,
    });
    first_cause(outcomes)?;
    if let Some(p) = &options.progress {
        p.finish();
    }
    Ok(report.expect("sink succeeded"))
}

/// A sink that runs a [`FormatReader`] over the plaintext: level-2 verification.
pub(crate) struct ContentsSink {
    pub(crate) reader: Arc<dyn FormatReader>,
    pub(crate) contents: Option<Contents>,
}

#[async_trait::async_trait]
impl Sink for ContentsSink {
    async fn restore(
        &mut self,
        _manifest: &Manifest,
        input: crate::sink::StreamReader<'_>,
    ) -> Result<SinkReport> {
        let (feed, mut chunk_reader) = blocking_chunks(PIPE_CAPACITY);
        let reader = self.reader.clone();
        let parse = tokio::task::spawn_blocking(move || {
            let out = reader.read_contents(&mut chunk_reader);
            let _ = std::io::copy(&mut chunk_reader, &mut std::io::sink());
            out
        });
        let mut bytes = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        let copy: Result<()> = async {
            use tokio::io::AsyncReadExt;
            loop {
                let n = input
                    .read(&mut buf)
                    .await
                    .map_err(|e| Error::from_io(e, "reading the plaintext"))?;
                if n == 0 {
                    return Ok(());
                }
                bytes += n as u64;
                if feed.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    // The reader stopped early (it failed): keep draining, report below.
                }
            }
        }
        .await;
        drop(feed);
        let parsed = parse
            .await
            .map_err(|e| crate::task::join_error(e, "the format reader"))?;
        copy?;
        self.contents = Some(parsed?);
        Ok(SinkReport {
            bytes,
            summary: Vec::new(),
        })
    }
}
