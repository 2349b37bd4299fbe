//! Backup: the PostgreSQL source, plus the TimescaleDB facts a restore needs.

use std::sync::Arc;

use async_trait::async_trait;
use backup_core::source::StreamWriter;
use backup_core::{
    BackupOptions, BackupStore, FormatReader, Manifest, Result, Source, SourceFacts,
};
use backup_postgres::{DumpOptions, PostgresConfig, PostgresSource};

use crate::error::TimescaleError;
use crate::format::{installed_version, read_facts, TimescaleFacts, FACTS_KEY};

/// The datastore kind recorded in manifests of TimescaleDB backups.
pub const KIND: &str = "timescale";

/// A [`Source`] for a TimescaleDB database: `pg_dump -Fc -Z0` (through
/// [`PostgresSource`]) plus [`TimescaleFacts`] in the manifest.
#[derive(Debug)]
pub struct TimescaleSource {
    inner: PostgresSource,
    facts: Option<TimescaleFacts>,
}

impl TimescaleSource {
    /// A source for the database `config` names.
    pub fn new(config: &PostgresConfig, options: DumpOptions) -> Result<Self> {
        Ok(TimescaleSource {
            inner: PostgresSource::new(config, options)?.with_kind(KIND),
            facts: None,
        })
    }

    /// Checks pg_dump and the server (as the PostgreSQL source does), that the database
    /// has the timescaledb extension, and reads its facts.
    pub async fn preflight(&mut self) -> Result<&TimescaleFacts> {
        if self.facts.is_none() {
            self.inner.preflight().await?;
            let conn = self.inner.connection().clone();
            let version =
                installed_version(&conn)
                    .await?
                    .ok_or_else(|| TimescaleError::NotTimescale {
                        database: conn.database().to_string(),
                        server: conn.server(),
                    })?;
            self.facts = Some(read_facts(&conn, version).await?);
        }
        Ok(self.facts.as_ref().expect("set above"))
    }

    /// The wrapped PostgreSQL source (e.g. for its `globals` artifact).
    pub fn postgres(&self) -> &PostgresSource {
        &self.inner
    }
}

#[async_trait]
impl Source for TimescaleSource {
    fn kind(&self) -> &str {
        KIND
    }

    fn format_reader(&self) -> Arc<dyn FormatReader> {
        self.inner.format_reader()
    }

    async fn dump(&mut self, out: StreamWriter<'_>) -> Result<SourceFacts> {
        self.preflight().await?;
        let mut facts = self.inner.dump(out).await?;
        let ts = self.facts.as_ref().expect("preflight ran");
        facts.insert(
            FACTS_KEY.into(),
            serde_json::to_value(ts).expect("facts serialize"),
        );
        Ok(facts)
    }
}

/// Backs up one TimescaleDB database (data artifact, `globals` if asked) and commits
/// the manifest. On any failure no manifest is written.
pub async fn backup(
    store: &BackupStore,
    source: &mut TimescaleSource,
    options: BackupOptions,
) -> Result<Manifest> {
    source.preflight().await?;
    let mut session = backup_core::BackupSession::start(store, options)?;
    let facts = session.write_artifact("data", source).await?;
    if source.inner.options().globals {
        let mut globals = source.inner.globals_source();
        session.write_artifact("globals", &mut globals).await?;
    }
    session.commit(KIND, facts).await
}
