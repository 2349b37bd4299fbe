//! Helpers of the operations tests (`cli/tests/ops_*.rs`): run the real `dbseal`
//! binary with a clean environment, in a temporary directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `dbseal` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dbseal"))
}

/// A required test variable; fails (never skips) with how to get it.
pub fn need(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests through scripts/test.sh (it starts the test servers and sets DBSEAL_TEST_*)")
    })
}

/// A scratch directory with a store and a key pair.
pub struct Work {
    /// The temporary directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The recipient (public key).
    pub recipient: String,
}

impl Work {
    /// A new work directory with `identity.txt` and its recipient.
    pub fn new() -> Work {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new(bin())
            .current_dir(dir.path())
            .args(["keygen", "-o", "identity.txt"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .expect("run dbseal keygen");
        assert!(
            out.status.success(),
            "keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let recipient = String::from_utf8(out.stdout).unwrap().trim().to_string();
        Work { dir, recipient }
    }

    /// A path inside the work directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The local store of this work directory.
    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// `dbseal` with a clean environment (no DBSEAL_* from the caller), in the work
    /// directory, stdin closed.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        // The host's signing key (from keygen): what it backs up it signs and trusts.
        let signing_key = self.path("identity.txt.minisign.key");
        if signing_key.is_file() {
            c.env("DBSEAL_SIGNING_KEY", signing_key);
        }
        for var in ["DBSEAL_TEST_PG_BIN", "PG_BIN_DIR"] {
            if let Ok(v) = std::env::var(var) {
                c.env(var, v);
            }
        }
        c
    }

    /// Runs `dbseal ARGS` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run dbseal")
    }

    /// Runs `dbseal ARGS` with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.cmd();
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(args).output().expect("run dbseal")
    }

    /// Runs `dbseal ARGS` with `data` on stdin.
    pub fn run_stdin(&self, args: &[&str], data: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dbseal");
        child.stdin.take().unwrap().write_all(data).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Signs the store object `key` (in [`Work::store`]) with this host's signing key,
    /// with minisign itself: as dbseal signs what it writes (trusted comment
    /// `file:KEY`).
    pub fn sign(&self, key: &str) {
        let out = Command::new("minisign")
            .args(["-S", "-s"])
            .arg(self.path("identity.txt.minisign.key"))
            .arg("-m")
            .arg(self.store().join(key))
            .args(["-t", &format!("file:{key}")])
            .stdin(Stdio::null())
            .output()
            .expect("minisign is installed by scripts/install-deps.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Writes a file in the work directory.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// Makes a stdin backup of `ds` into [`Work::store`] and returns its id.
pub fn stdin_backup(w: &Work, ds: &str, data: &str) -> String {
    let store = w.store();
    let args = [
        "--json",
        "--store",
        store.to_str().unwrap(),
        "backup",
        "stdin",
    ];
    let out = w.run_stdin(
        &[&args[..], &["-d", ds, "-r", &w.recipient]].concat(),
        data.as_bytes(),
    );
    ok(&out);
    json(&out)["backup_id"].as_str().unwrap().to_string()
}

/// The direct children of process `pid` (every thread's).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    out
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "dbseal failed ({:?}):\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Asserts the exit code and returns stderr.
#[track_caller]
pub fn fails_with(o: &Output, code: i32) -> String {
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}:\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    stderr(o)
}

/// Parses stdout as JSON.
#[track_caller]
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            stdout(o),
            stderr(o)
        )
    })
}

/// Every file under `dir`, relative, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The test PostgreSQL server.
pub struct Pg {
    pub host: String,
    pub port: u16,
    pub password: String,
    pub psql: String,
}

impl Pg {
    pub fn from_env() -> Pg {
        let url =
            url::Url::parse(&need("DBSEAL_TEST_PG_URL")).expect("DBSEAL_TEST_PG_URL is a URL");
        Pg {
            host: url.host_str().unwrap().to_string(),
            port: url.port().unwrap_or(5432),
            password: need("DBSEAL_TEST_PG_PASSWORD"),
            psql: format!("{}/psql", need("DBSEAL_TEST_PG_BIN")),
        }
    }

    /// Runs SQL in `db`, returns the unaligned output.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(&self.psql)
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.host,
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A fresh database, dropped when the guard goes.
    pub fn database(&self, prefix: &str) -> PgDb<'_> {
        let name = format!("{prefix}_{}_{}", std::process::id(), rand_suffix());
        self.sql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        PgDb { pg: self, name }
    }

    /// The URL of `db`, without the password (give it as PGPASSWORD).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@{}:{}/{db}", self.host, self.port)
    }

    /// The URL of `db` with the password as a `${PG_PASSWORD}` reference.
    pub fn config_url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:${{PG_PASSWORD}}@{}:{}/{db}",
            self.host, self.port
        )
    }
}

pub fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

pub struct PgDb<'a> {
    pub pg: &'a Pg,
    pub name: String,
}

impl Drop for PgDb<'_> {
    fn drop(&mut self) {
        let _ = Command::new(&self.pg.psql)
            .args([
                "-X",
                "-q",
                "-h",
                &self.pg.host,
                "-p",
                &self.pg.port.to_string(),
            ])
            .args(["-U", "postgres", "-d", "postgres", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .env("PGPASSWORD", &self.pg.password)
            .output();
    }
}
