//! Helpers of the core CLI tests (`cli/tests/core_*.rs`): run the real `dbseal` binary
//! with a clean environment in a scratch directory, and look at what it left in the
//! store.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `dbseal` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dbseal"))
}

/// A required test variable; a missing one fails the test (never skips it).
pub fn need(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: these tests need the real test servers; run scripts/test.sh \
             (or `scripts/services.sh start DIR s3` and `source DIR/env.sh`)"
        ),
    }
}

/// A required command-line tool; a missing one fails the test.
pub fn need_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: run scripts/install-deps.sh (or scripts/test.sh)"
    );
}

/// A scratch directory with a local store and a key pair made by `dbseal keygen`.
pub struct Work {
    /// The temporary directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The recipient (public key) of `identity.txt`.
    pub recipient: String,
}

impl Work {
    /// A new work directory with `identity.txt` and its recipient.
    pub fn new() -> Work {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = Work {
            dir,
            recipient: String::new(),
        };
        let out = w.run(&["keygen", "-o", "identity.txt"]);
        assert_ok(&out);
        let recipient = stdout(&out).trim().to_string();
        Work { recipient, ..w }
    }

    /// A path inside the work directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The local store of this work directory.
    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// The identity file `dbseal keygen` wrote.
    pub fn identity(&self) -> PathBuf {
        self.path("identity.txt")
    }

    /// `dbseal` with a clean environment (no DBSEAL_*, AWS_* or RUST_LOG from the
    /// caller), in the work directory (so no stray dbseal.toml is read), stdin closed.
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
        c
    }

    /// Runs `dbseal ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run dbseal")
    }

    /// Runs `dbseal ARGS` with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.cmd();
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run dbseal")
    }

    /// Runs `dbseal ARGS` with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        self.run_stdin_env(args, input, &[])
    }

    /// Runs `dbseal ARGS` with `input` on stdin and extra environment variables.
    pub fn run_stdin_env(&self, args: &[&str], input: &[u8], env: &[(&str, &str)]) -> Output {
        let mut c = self.cmd();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("run dbseal");
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait for dbseal");
        feeder.join().unwrap();
        out
    }

    /// `--store STORE` followed by `args`, for a local-store command.
    pub fn in_store<'a>(&'a self, args: &[&'a str]) -> Vec<String> {
        let mut v = vec![
            "--store".to_string(),
            self.store().to_str().unwrap().to_string(),
        ];
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }

    /// Runs `dbseal --store STORE ARGS`.
    pub fn run_in_store(&self, args: &[&str]) -> Output {
        let v = self.in_store(args);
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        self.run(&refs)
    }

    /// Backs up `data` from stdin into datastore `ds` of the local store; returns the
    /// manifest `--json` printed.
    pub fn backup(&self, ds: &str, data: &[u8]) -> serde_json::Value {
        let v = self.in_store(&["--json", "backup", "stdin", "-d", ds, "-r", &self.recipient]);
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        let out = self.run_stdin(&refs, data);
        assert_ok(&out);
        json(&out)
    }

    /// The stored artifact's path of a backup in the local store.
    pub fn artifact_path(&self, manifest: &serde_json::Value) -> PathBuf {
        self.store()
            .join(manifest["artifact"]["key"].as_str().unwrap())
    }

    /// Writes `edited` as the manifest of backup `m` and signs it again with this host's
    /// signing key — with minisign itself, as a signing host with a bug (or a stolen
    /// key) would: what the caller tests is the layer under the signature. An edit
    /// nobody signed is refused before it (cli/tests/trust.rs).
    pub fn rewrite_manifest(&self, m: &serde_json::Value, edited: &[u8]) {
        let path = self.manifest_path(m);
        std::fs::write(&path, edited).unwrap();
        let key = format!(
            "file:{}/{}/manifest.json",
            m["datastore"]["name"].as_str().unwrap(),
            m["backup_id"].as_str().unwrap()
        );
        let out = Command::new("minisign")
            .args(["-S", "-s"])
            .arg(self.path("identity.txt.minisign.key"))
            .arg("-m")
            .arg(&path)
            .args(["-t", &key])
            .stdin(Stdio::null())
            .output()
            .expect("minisign is installed by scripts/install-deps.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The manifest file of a backup in the local store.
    pub fn manifest_path(&self, manifest: &serde_json::Value) -> PathBuf {
        self.store()
            .join(manifest["datastore"]["name"].as_str().unwrap())
            .join(manifest["backup_id"].as_str().unwrap())
            .join("manifest.json")
    }
}

/// The exit code (a signal counts as -1).
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails with stderr unless the command succeeded.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "dbseal failed ({:?}): {}\n{}",
        out.status,
        stderr(out),
        stdout(out)
    );
}

/// Asserts the exit code, showing the output when it differs.
pub fn assert_code(out: &Output, expected: i32) {
    assert_eq!(
        code(out),
        expected,
        "exit code; stderr: {}\nstdout: {}",
        stderr(out),
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(2000)])
    );
}

/// Stdout parsed as one JSON document.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}\nstderr: {}",
            stdout(out),
            stderr(out)
        )
    })
}

/// Every file under `dir`, recursively (staging files included).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    files.sort();
    files
}

/// Manifests under a local store.
pub fn manifests_under(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "manifest.json"))
        .collect()
}

/// Deterministic test data: text lines mixed with pseudo-random bytes.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        s = s.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (s as u128).wrapping_mul((s ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) ^ t) as u64
    };
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        let r = next();
        if r % 5 == 0 {
            for _ in 0..512 {
                out.extend_from_slice(&next().to_le_bytes());
            }
        } else {
            out.extend_from_slice(
                format!("{r}\tCOPY public.t\t{}\tlorem ipsum\n", r % 977).as_bytes(),
            );
        }
    }
    out.truncate(len);
    out
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &str) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
