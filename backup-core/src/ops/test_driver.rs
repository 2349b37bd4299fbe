//! A tiny [`Driver`] for the operations' unit tests: its "database" is the bytes of its
//! URL, and restores are recorded in memory.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::contents::{FormatReader, RawFormat};
use crate::driver::{
    BackupContext, Capabilities, Driver, DriverOptions, RestoreContext, RestoreOutcome,
    RestoreTarget,
};
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::Manifest;
use crate::sink::WriterSink;
use crate::source::ReaderSource;
use crate::verify::{VerifyLevel, VerifyReport};

/// The options of the test kind.
#[derive(Debug, Default, clap::Args, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct TestOptions {
    /// The "server": its bytes are the backup. `fail` fails with a connection error,
    /// `missing` with not found.
    #[arg(long)]
    pub url: Option<String>,
    /// A repeated option.
    #[arg(long)]
    pub exclude_table: Vec<String>,
    /// A flag.
    #[arg(long)]
    pub globals: bool,
}

/// What a test driver restored: (target URL, bytes).
pub type Restored = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// The test driver.
#[derive(Clone)]
pub struct TestDriver {
    pub kind: &'static str,
    pub schemes: &'static [&'static str],
    pub accepts: &'static [&'static str],
    pub restored: Restored,
}

impl TestDriver {
    pub fn new(kind: &'static str, schemes: &'static [&'static str]) -> Self {
        TestDriver {
            kind,
            schemes,
            accepts: &[],
            restored: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl Driver for TestDriver {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn about(&self) -> &'static str {
        "a test kind"
    }
    fn url_schemes(&self) -> &'static [&'static str] {
        self.schemes
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            create_target: true,
            verify_restore: true,
            ..Default::default()
        }
    }
    fn formats(&self) -> Vec<Arc<dyn FormatReader>> {
        vec![Arc::new(RawFormat)]
    }
    fn restores_kind(&self, kind: &str) -> bool {
        kind == self.kind || self.accepts.contains(&kind)
    }
    fn check_backup_options(&self, options: &DriverOptions) -> Result<()> {
        options.parse::<TestOptions>(self.kind).map(drop)
    }
    fn backup_args(&self, command: clap::Command) -> clap::Command {
        crate::driver::args_of::<TestOptions>(command)
    }
    fn backup_options_from(&self, matches: &clap::ArgMatches) -> Result<DriverOptions> {
        crate::driver::options_of::<TestOptions>(matches)
    }
    async fn backup(&self, options: &DriverOptions, ctx: &BackupContext) -> Result<Manifest> {
        let o: TestOptions = options.parse(self.kind)?;
        let url = o.url.unwrap_or_default();
        if url.ends_with("fail") {
            return Err(Error::datastore(
                self.kind,
                ErrorKind::Connection,
                format!("cannot connect to {}", crate::secret::redact_url(&url)),
            ));
        }
        if url.ends_with("missing") {
            return Err(Error::datastore(
                self.kind,
                ErrorKind::NotFound,
                "no such database",
            ));
        }
        let mut source = ReaderSource::new(std::io::Cursor::new(url.into_bytes()), self.kind);
        crate::pipeline::backup(&ctx.store, &mut source, ctx.options.clone()).await
    }
    async fn restore(
        &self,
        manifest: &Manifest,
        target: &RestoreTarget,
        ctx: &RestoreContext,
    ) -> Result<RestoreOutcome> {
        let mut out = Vec::new();
        let report = crate::pipeline::restore(
            &ctx.store,
            manifest,
            "data",
            &mut WriterSink::new(&mut out),
            &ctx.options,
        )
        .await?;
        let url = target.url.clone().unwrap_or_default();
        self.restored.lock().unwrap().push((url.clone(), out));
        Ok(RestoreOutcome {
            target: crate::secret::redact_url(&url),
            summary: report.summary,
        })
    }
    async fn verify_restore(
        &self,
        manifest: &Manifest,
        url: &str,
        _ctx: &RestoreContext,
    ) -> Result<VerifyReport> {
        Ok(VerifyReport {
            backup_id: manifest.backup_id.to_string(),
            level: VerifyLevel::Restore,
            checks: vec![format!("restored into {url}")],
            load_seconds: None,
        })
    }
}
