//! [`Neo4jAdminSink`]: the offline restore through `neo4j-admin database load`.

use super::*;

/// Loads a `neo4j-admin` dump offline: streams the artifact into
/// `neo4j-admin database load --from-stdin --overwrite-destination=<replace> DB`.
///
/// This is the Community Edition path: the database must be stopped (the tool refuses
/// otherwise). The stream is fed as it is decrypted; if the artifact turns out to be
/// bad, the tool is killed before it sees the end of its input, so it never completes
/// a load of a damaged dump (neo4j-admin reads the whole archive before it swaps the
/// database in; a killed load may leave the database stopped and needing a new load).
#[derive(Debug, Clone)]
pub struct Neo4jAdminSink {
    binary: PathBuf,
    database: String,
    replace: bool,
}

impl Neo4jAdminSink {
    /// A sink running `binary` (the `neo4j-admin` executable) for `database`.
    pub fn new(binary: impl Into<PathBuf>, database: impl Into<String>) -> Self {
        Neo4jAdminSink {
            binary: binary.into(),
            database: database.into(),
            replace: false,
        }
    }

    /// Whether the load may overwrite an existing database (`--replace`); without it
    /// `neo4j-admin` refuses a database that exists.
    pub fn replace(mut self, replace: bool) -> Self {
        self.replace = replace;
        self
    }

    /// The command line (holds no secret).
    pub fn argv(&self) -> Vec<String> {
        vec![
            self.binary.display().to_string(),
            "database".into(),
            "load".into(),
            "--from-stdin".into(),
            format!("--overwrite-destination={}", self.replace),
            self.database.clone(),
        ]
    }
}

#[async_trait]
impl Sink for Neo4jAdminSink {
    async fn restore(
        &mut self,
        _manifest: &Manifest,
        input: StreamReader<'_>,
    ) -> Result<SinkReport> {
        let what = format!("neo4j-admin database load {}", self.database);
        let argv = self.argv();
        let mut cmd = backup_core::child::command(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: neo4j-admin is a script that starts a JVM, and
            // the whole group must die before its input is closed (see below).
            .process_group(0);
        // Neo4j's and Java's settings reach it; dbseal's credentials do not.
        backup_core::secret::restrict_env(&mut cmd, &["NEO4J_", "JAVA_"]);
        let mut child = cmd.spawn().map_err(|e| {
            Error::datastore(
                &what,
                ErrorKind::Config,
                format!("cannot start {}: {e}", argv[0]),
            )
        })?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let err_task = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        let mut buf = vec![0u8; 256 * 1024];
        let mut bytes = 0u64;
        let copied: Result<()> = async {
            loop {
                let n = input
                    .read(&mut buf)
                    .await
                    .map_err(|e| Error::from_io(e, "reading the dump"))?;
                if n == 0 {
                    return Ok(());
                }
                bytes += n as u64;
                stdin.write_all(&buf[..n]).await.map_err(|e| {
                    Error::datastore(
                        &what,
                        ErrorKind::Other,
                        format!("the tool stopped reading: {e}"),
                    )
                })?;
            }
        }
        .await;
        if let Err(e) = copied {
            // Kill the whole group before the tool can see a clean end of input: it
            // must never load a damaged dump. Only then close its stdin.
            if let Some(pid) = child.id() {
                let _ = tokio::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status()
                    .await;
            }
            let _ = child.kill().await;
            drop(stdin);
            let tail = tokio::time::timeout(std::time::Duration::from_secs(5), err_task)
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or_default();
            return Err(with_note(
                e,
                &format!(
                    "neo4j-admin was stopped before the end of its input{}",
                    if tail.trim().is_empty() {
                        String::new()
                    } else {
                        format!(" (it said: {})", tail.trim())
                    }
                ),
            ));
        }
        drop(stdin);
        let status = child
            .wait()
            .await
            .map_err(|e| Error::io(format!("{what}: waiting for it"), e))?;
        let tail = err_task.await.unwrap_or_default();
        if !status.success() {
            return Err(Error::datastore(
                &what,
                ErrorKind::Other,
                format!(
                    "exited with {status}: {} (Community Edition loads only into a stopped database)",
                    tail.trim()
                ),
            ));
        }
        Ok(SinkReport {
            bytes,
            summary: vec![format!(
                "loaded {bytes} bytes into {} with neo4j-admin",
                self.database
            )],
        })
    }
}
