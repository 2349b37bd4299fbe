//! Helpers for the point-in-time-recovery tests: private PostgreSQL 15 clusters (initdb
//! as `postgres` in a temp dir, own port, `archive_command` calling the built `dbseal`),
//! stopped and removed by a Drop guard even when a test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use backup_core::{BackupStore, KeyPair};
use backup_postgres::PostgresConfig;

/// The `dbseal` binary: `DBSEAL_BIN`, else `target/debug/dbseal` of this workspace.
pub fn dbseal_bin() -> PathBuf {
    let p = match std::env::var_os("DBSEAL_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/dbseal"),
    };
    let p = std::fs::canonicalize(&p).unwrap_or(p);
    assert!(
        p.is_file(),
        "the dbseal binary {} does not exist: run the tests through scripts/test.sh (it builds it and sets DBSEAL_BIN), or `cargo build -p dbseal-cli` first",
        p.display()
    );
    p
}

/// The PostgreSQL server binaries (initdb, pg_ctl, postgres).
pub fn pg_bin() -> PathBuf {
    let dir = std::env::var_os("DBSEAL_TEST_PG_BIN")
        .or_else(|| std::env::var_os("PG_BIN_DIR"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    assert!(
        dir.join("initdb").is_file(),
        "PostgreSQL server binaries not found in {}: run the tests through scripts/test.sh (DBSEAL_TEST_PG_BIN), or install postgresql-15",
        dir.display()
    );
    dir
}

fn am_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// `(uid, gid)` of the `postgres` user when running as root.
pub fn postgres_owner() -> Option<(u32, u32)> {
    if !am_root() {
        return None;
    }
    let out = Command::new("id").args(["-u", "postgres"]).output().ok()?;
    let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let out = Command::new("id").args(["-g", "postgres"]).output().ok()?;
    let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((uid, gid))
}

/// Gives `path` to the server's user (when running as root).
pub fn give_to_server(path: &Path) {
    if let Some((uid, gid)) = postgres_owner() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

/// Runs a command as the server's user.
pub fn as_server(program: &Path) -> Command {
    if am_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn check(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A temporary directory owned by the server's user, removed on drop.
pub struct TempTree {
    pub path: PathBuf,
}

impl TempTree {
    pub fn new(prefix: &str) -> TempTree {
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&path).unwrap();
        give_to_server(&path);
        TempTree { path }
    }

    /// A subdirectory owned by the server's user.
    pub fn dir(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p).unwrap();
        give_to_server(&p);
        p
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Keys, store and datastore shared by a cluster's archive_command and the test.
pub struct Archive {
    pub store_dir: PathBuf,
    pub datastore: String,
    pub keys: KeyPair,
    pub identity: PathBuf,
    pub env_file: PathBuf,
    pub signing_key: PathBuf,
}

impl Archive {
    /// A file store in `tree`, writable by the server, with a key pair whose identity
    /// file the server can read, and an env file for the WAL commands.
    pub fn new(tree: &TempTree, datastore: &str) -> Archive {
        let store_dir = tree.dir("store");
        // The server creates the WAL folder; the test (maybe root) writes backups next to it.
        let ds = store_dir.join(datastore);
        std::fs::create_dir_all(&ds).unwrap();
        give_to_server(&ds);
        let keys = KeyPair::generate();
        let identity = tree.path.join(format!("{datastore}-identity.txt"));
        keys.write_identity_file(&identity).unwrap();
        give_to_server(&identity);
        // This host's signing key: what it archives and backs up it signs and trusts.
        let (signing_key, public) = backup_core::keys::signing_key_paths(&identity);
        backup_core::SigningKey::generate()
            .unwrap()
            .write_files(&signing_key, &public)
            .unwrap();
        give_to_server(&signing_key);
        let env_file = tree.path.join(format!("{datastore}-wal.env"));
        std::fs::write(
            &env_file,
            format!(
                "# test archive settings\nDBSEAL_STORE={}\nDBSEAL_RECIPIENTS={}\nDBSEAL_IDENTITY={}\nDBSEAL_SIGNING_KEY={}\n",
                store_dir.display(),
                keys.recipient(),
                identity.display(),
                signing_key.display()
            ),
        )
        .unwrap();
        give_to_server(&env_file);
        Archive {
            store_dir,
            datastore: datastore.to_string(),
            keys,
            identity,
            env_file,
            signing_key,
        }
    }

    /// Signs the store object `key` with this host's signing key, with minisign itself
    /// (trusted comment `file:KEY`, as dbseal signs).
    pub fn sign(&self, key: &str) {
        let out = Command::new("minisign")
            .args(["-S", "-s"])
            .arg(&self.signing_key)
            .arg("-m")
            .arg(self.store_dir.join(key))
            .args(["-t", &format!("file:{key}")])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("minisign is installed by scripts/install-deps.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The public key of this host's signing key (`RW…`).
    pub fn public_key(&self) -> String {
        let key = backup_core::SigningKey::from_file(&self.signing_key).unwrap();
        key.public_key().to_string()
    }

    pub fn store(&self) -> BackupStore {
        let signer = backup_core::SigningKey::from_file(&self.signing_key).unwrap();
        BackupStore::open(self.store_dir.to_str().unwrap(), &Default::default())
            .unwrap()
            .with_trust(backup_core::Trust::default().with_signer(signer))
    }

    /// The archive_command for this archive.
    pub fn archive_command(&self) -> String {
        format!(
            "{} wal-push --env-file {} --datastore {} %p",
            dbseal_bin().display(),
            self.env_file.display(),
            self.datastore
        )
    }

    /// The folder of a timeline in the WAL archive.
    pub fn timeline_dir(&self, tl: u32) -> PathBuf {
        self.store_dir
            .join(&self.datastore)
            .join("wal")
            .join(format!("{tl:08X}"))
    }

    /// Runs `dbseal` with this archive's settings; returns (exit code, stdout, stderr).
    pub fn dbseal(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(dbseal_bin())
            .args(["--store", self.store_dir.to_str().unwrap()])
            .args(args)
            .env_remove("DBSEAL_STORE")
            .env_remove("DBSEAL_RECIPIENTS")
            .env_remove("DBSEAL_IDENTITY")
            .env("DBSEAL_SIGNING_KEY", &self.signing_key)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A private PostgreSQL cluster, stopped and removed on drop.
pub struct Cluster {
    pub data: PathBuf,
    pub port: u16,
    pub socket_dir: PathBuf,
    pub log: PathBuf,
    running: bool,
}

/// How to create a cluster.
pub struct ClusterOptions {
    /// `initdb --wal-segsize` in MiB.
    pub wal_segsize_mb: u32,
    /// `archive_command`, with archive_mode = on.
    pub archive_command: Option<String>,
}

impl Cluster {
    /// initdb + configuration + start.
    pub fn create(tree: &TempTree, name: &str, opts: &ClusterOptions) -> Cluster {
        let bin = pg_bin();
        let data = tree.path.join(name);
        let socket_dir = tree.dir(&format!("{name}-sock"));
        check(
            as_server(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ])
                .arg(format!("--wal-segsize={}", opts.wal_segsize_mb))
                .output()
                .unwrap(),
            "initdb",
        );
        let mut conf = String::from(
            "\n# dbseal pitr test\nwal_level = replica\nmax_wal_senders = 4\nfsync = off\nsynchronous_commit = off\nfull_page_writes = on\nshared_buffers = 32MB\nmax_connections = 20\ncheckpoint_timeout = 30min\n",
        );
        if let Some(cmd) = &opts.archive_command {
            conf.push_str(&format!(
                "archive_mode = on\narchive_command = '{}'\n",
                cmd.replace('\'', "''")
            ));
        }
        let conf_path = data.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).unwrap();
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\nlocal replication all trust\n",
        )
        .unwrap();
        let mut c = Cluster {
            log: tree.path.join(format!("{name}.log")),
            data,
            port: free_port(),
            socket_dir,
            running: false,
        };
        c.start(&[]).expect("the new cluster starts");
        c
    }

    /// A cluster over an existing (restored) data directory; not started.
    pub fn existing(tree: &TempTree, data: &Path, name: &str) -> Cluster {
        Cluster {
            data: data.to_path_buf(),
            port: free_port(),
            socket_dir: tree.dir(&format!("{name}-sock")),
            log: tree.path.join(format!("{name}.log")),
            running: false,
        }
    }

    /// Starts the server (`pg_ctl -w`), with extra `-c` settings. On failure returns
    /// the end of the server log.
    pub fn start(&mut self, settings: &[&str]) -> Result<(), String> {
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.socket_dir.display()
        );
        for s in settings {
            opts.push_str(&format!(" -c {s}"));
        }
        // The log file must be writable by the server.
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log);
        give_to_server(&self.log);
        let out = as_server(&pg_bin().join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "120", "-o", &opts, "start"])
            .output()
            .unwrap();
        if out.status.success() {
            self.running = true;
            Ok(())
        } else {
            // A failed start may leave a postmaster that is shutting down.
            self.running = self.data.join("postmaster.pid").exists();
            Err(format!(
                "pg_ctl start failed: {}\n--- server log ---\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log_tail(60)
            ))
        }
    }

    /// Stops the server (fast).
    pub fn stop(&mut self) {
        if self.running || self.data.join("postmaster.pid").exists() {
            let _ = as_server(&pg_bin().join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "-t", "60", "stop"])
                .output();
            self.running = false;
        }
    }

    /// The last `n` lines of the server log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The whole server log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A configuration reaching this cluster as `postgres` over TCP.
    pub fn config(&self) -> PostgresConfig {
        PostgresConfig {
            host: Some("127.0.0.1".into()),
            port: Some(self.port),
            user: Some("postgres".into()),
            database: Some("postgres".into()),
            sslmode: Some("disable".into()),
            pg_bin_dir: Some(pg_bin()),
            ..Default::default()
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        self.config().resolve().unwrap().connect().await.unwrap()
    }

    /// Runs SQL statements.
    pub async fn exec(&self, sql: &str) {
        self.client()
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("SQL failed: {e:?}\n{sql}"));
    }

    /// One text value.
    pub async fn query_text(&self, sql: &str) -> String {
        let row = self
            .client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        row.get::<_, String>(0)
    }

    /// Forces a WAL switch (after making sure there is something to switch) and returns
    /// the name of the segment switched out.
    pub async fn switch_wal(&self) -> String {
        let c = self.client().await;
        c.batch_execute(
            "CREATE TABLE IF NOT EXISTS _switch(x int); INSERT INTO _switch VALUES (1)",
        )
        .await
        .unwrap();
        c.query_one("SELECT pg_walfile_name(pg_switch_wal())::text", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Waits until the archiver has archived `segment` (or a later one).
    pub async fn wait_archived(&self, segment: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let row = self
                .client()
                .await
                .query_one(
                    "SELECT coalesce(last_archived_wal, ''), failed_count, coalesce(last_failed_wal, '') FROM pg_stat_archiver",
                    &[],
                )
                .await
                .unwrap();
            let last: String = row.get(0);
            if last.len() == 24 && last.as_str() >= segment {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{segment} was not archived in 90 s (last archived `{last}`, {} failure(s), last failed `{}`)\n--- server log ---\n{}",
                    row.get::<_, i64>(1),
                    row.get::<_, String>(2),
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the server has left recovery (promoted).
    pub async fn wait_promoted(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(conn) = self.config().resolve().unwrap().connect().await {
                if let Ok(row) = conn.query_one("SELECT pg_is_in_recovery()", &[]).await {
                    if !row.get::<_, bool>(0) {
                        return;
                    }
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "the restored server did not finish recovery in 120 s\n--- server log ---\n{}",
                    self.log_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The database system identifier.
    pub async fn system_identifier(&self) -> u64 {
        let s = self
            .query_text("SELECT system_identifier::text FROM pg_control_system()")
            .await;
        s.parse().unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A synthetic WAL segment (long header on page 0, short headers on every page).
pub fn fake_segment(tl: u32, segno: u64, seg_size: u32, sysid: u64) -> Vec<u8> {
    let bs = 8192usize;
    let mut v = vec![0u8; seg_size as usize];
    let base = segno * u64::from(seg_size);
    for (i, page) in v.chunks_mut(bs).enumerate() {
        page[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        let info: u16 = if i == 0 { 2 } else { 0 };
        page[2..4].copy_from_slice(&info.to_le_bytes());
        page[4..8].copy_from_slice(&tl.to_le_bytes());
        page[8..16].copy_from_slice(&(base + (i * bs) as u64).to_le_bytes());
        if i == 0 {
            page[24..32].copy_from_slice(&sysid.to_le_bytes());
            page[32..36].copy_from_slice(&seg_size.to_le_bytes());
            page[36..40].copy_from_slice(&(bs as u32).to_le_bytes());
        }
        // Some content that is not all zeroes.
        for (j, b) in page[64..128].iter_mut().enumerate() {
            *b = (i + j) as u8;
        }
    }
    v
}
