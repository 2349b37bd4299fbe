//! A bucket writer without keys: someone who can write to the store (a leaked CI
//! credential, a compromised replica host) but holds neither the age identity nor the
//! signing key. Each forgery is its own test; each ends in a refusal (exit 4 for what is
//! asked for by id; skipped with a warning by list, status and prune), with the target
//! and the store left as they were. Real servers: the PostgreSQL test server
//! (DBSEAL_TEST_PG_*) for the restores; the other forgeries need none.
//!
//! Also: `minisign -Vm` (Debian's minisign) verifies a manifest without dbseal.

mod ops_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ops_common::*;
use serde_json::{json, Value};

/// `dbseal --store STORE ARGS` in the work directory (signing key from keygen).
fn run(w: &Work, args: &[&str], env: &[(&str, &str)]) -> Output {
    let store = w.store();
    let mut all = vec!["--store", store.to_str().unwrap()];
    all.extend_from_slice(args);
    w.run_env(&all, env)
}

fn json_id(out: &Output) -> String {
    ok(out);
    json(out)["backup_id"].as_str().unwrap().to_string()
}

fn folder(w: &Work, ds: &str, id: &str) -> PathBuf {
    w.store().join(ds).join(id)
}

/// What the bucket writer does to a manifest: edits its JSON in place (the signature
/// beside it, if left, no longer matches).
fn edit_manifest(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// Every file of the store with its contents: "left as it was" is compared on this.
fn snapshot(w: &Work) -> Vec<(String, Vec<u8>)> {
    files(&w.store())
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(w.store().join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

#[track_caller]
fn refused(out: &Output, what: &str) -> String {
    let err = fails_with(out, 4);
    assert!(
        err.contains("is not trusted") && err.contains(what),
        "expected a refusal naming {what}: {err}"
    );
    err
}

fn sha256_hex(data: &[u8]) -> String {
    String::from_utf8(pipe_through(&["sha256sum"], data)).unwrap()[..64].to_string()
}

/// `data` through a command's stdin; its stdout.
fn pipe_through(command: &[&str], data: &[u8]) -> Vec<u8> {
    let out = Command::new(command[0])
        .args(&command[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{command:?}");
    out.stdout
}

/// A PostgreSQL backup of a small database, and the source database.
struct PgBackup<'a> {
    w: Work,
    pg: &'a Pg,
    _src: PgDb<'a>,
    id: String,
}

impl<'a> PgBackup<'a> {
    fn new(pg: &'a Pg, prefix: &str) -> PgBackup<'a> {
        let w = Work::new();
        let src = pg.database(prefix);
        pg.sql(
            &src.name,
            "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g",
        );
        let out = run(
            &w,
            &[
                "--json",
                "backup",
                "postgres",
                "--url",
                &pg.url(&src.name),
                "-d",
                "app",
                "-r",
                &w.recipient,
            ],
            &[("PGPASSWORD", &pg.password)],
        );
        let id = json_id(&out);
        PgBackup {
            w,
            pg,
            _src: src,
            id,
        }
    }

    fn manifest(&self) -> PathBuf {
        folder(&self.w, "app", &self.id).join("manifest.json")
    }

    /// `dbseal restore ID --url postgres://…/NAME --create-db` (+ extra arguments).
    fn restore(&self, target: &str, extra: &[&str]) -> Output {
        let url = self.pg.url(target);
        let mut args = vec![
            "restore",
            &self.id,
            "--url",
            &url,
            "--create-db",
            "-i",
            "identity.txt",
        ];
        args.extend_from_slice(extra);
        run(&self.w, &args, &[("PGPASSWORD", &self.pg.password)])
    }

    fn database_exists(&self, name: &str) -> bool {
        self.pg.sql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
        ) == "1"
    }
}

/// The attacker replaces the artifact by a plaintext (zstd only) pg_dump archive of
/// their own and rewrites the manifest to match: no age in the chain, digests and sizes
/// right. Before signing, a restore ran their SQL as the restoring superuser.
#[test]
fn a_plaintext_archive_behind_a_rewritten_manifest_is_refused_everywhere() {
    let pg = Pg::from_env();
    let b = PgBackup::new(&pg, "trust_plain");
    let evil = pg.database("trust_evil");
    pg.sql(&evil.name, "CREATE TABLE pwned AS SELECT 1 AS x");
    let dump = Command::new(format!("{}/pg_dump", need("DBSEAL_TEST_PG_BIN")))
        .args(["-Fc", "-Z0", "-h", &pg.host, "-p", &pg.port.to_string()])
        .args(["-U", "postgres", "-d", &evil.name])
        .env("PGPASSWORD", &pg.password)
        .output()
        .unwrap();
    assert!(dump.status.success());
    let plain = pipe_through(&["zstd", "-q", "-c"], &dump.stdout);
    let dir = folder(&b.w, "app", &b.id);
    let artifact = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".zst.age"))
        .unwrap();
    std::fs::write(&artifact, &plain).unwrap();
    edit_manifest(&b.manifest(), |m| {
        m["transforms"] = json!([m["transforms"][0].clone()]);
        m["artifact"]["stored_size"] = json!(plain.len());
        m["artifact"]["stored_sha256"] = json!(sha256_hex(&plain));
        m["artifact"]["plaintext_size"] = json!(dump.stdout.len());
        m["artifact"]["plaintext_sha256"] = json!(sha256_hex(&dump.stdout));
    });
    // The attacker removes the signature that no longer matches.
    std::fs::remove_file(dir.join("manifest.json.minisig")).unwrap();
    let before = snapshot(&b.w);

    let target = format!("trust_target_{}", std::process::id());
    let err = refused(&b.restore(&target, &[]), "manifest.json");
    assert!(err.contains("not signed"), "{err}");
    assert!(!b.database_exists(&target), "the target was created");
    refused(
        &run(&b.w, &["verify", &b.id, "-i", "identity.txt"], &[]),
        "manifest.json",
    );
    // --allow-unsigned (loud) still never restores a chain without age.
    let out = b.restore(&target, &["--allow-unsigned"]);
    let err = refused(&out, "manifest.json");
    assert!(err.contains("does not end in age"), "{err}");
    assert!(
        err.contains("--allow-unsigned"),
        "the override is loud: {err}"
    );
    assert!(!b.database_exists(&target), "the target was created");

    let out = run(&b.w, &["--json", "list"], &[]);
    assert_eq!(json(&out), json!([]), "listed: {}", stdout(&out));
    assert!(
        stderr(&out).contains("skipping a manifest"),
        "{}",
        stderr(&out)
    );
    let out = run(&b.w, &["--json", "status", "-d", "app"], &[]);
    fails_with(&out, 9);
    assert_eq!(
        json(&out)["datastores"][0]["untrusted_manifests"],
        1,
        "{}",
        stdout(&out)
    );
    assert_eq!(json(&out)["datastores"][0]["backups"], 0);
    ok(&run(&b.w, &["prune", "--keep-last", "1"], &[]));
    assert!(snapshot(&b.w) == before, "the store changed");
}

/// The manifest now claims another kind (Redis), so another sink would read the
/// artifact: the signature no longer matches.
#[test]
fn a_manifest_rewritten_to_another_kind_is_refused() {
    let pg = Pg::from_env();
    let b = PgBackup::new(&pg, "trust_kind");
    edit_manifest(&b.manifest(), |m| m["datastore"]["kind"] = json!("redis"));
    let before = snapshot(&b.w);
    let target = format!("trust_kind_target_{}", std::process::id());
    let err = refused(&b.restore(&target, &[]), "manifest.json");
    assert!(err.contains("modified after signing"), "{err}");
    assert!(!b.database_exists(&target));
    refused(
        &run(&b.w, &["verify", &b.id, "-i", "identity.txt"], &[]),
        "manifest.json",
    );
    assert!(snapshot(&b.w) == before, "the store changed");
    // The same restore of the untouched backup works: the refusal was the forgery's.
    let good = PgBackup::new(&pg, "trust_kind_ok");
    let target_ok = format!("trust_kind_ok_target_{}", std::process::id());
    ok(&good.restore(&target_ok, &[]));
    assert_eq!(pg.sql(&target_ok, "SELECT count(*) FROM t"), "100");
    pg.sql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {target_ok} WITH (FORCE)"),
    );
}

/// A signed manifest copied into another datastore's folder (signature and all) to
/// shadow the id: both copies claim it, and the copy was signed for another place.
#[test]
fn a_copied_manifest_cannot_shadow_a_backup() {
    let w = Work::new();
    let id = stdin_backup(&w, "app", "real data");
    let real = folder(&w, "app", &id);
    let copy = folder(&w, "aaa", &id);
    std::fs::create_dir_all(&copy).unwrap();
    for f in files(&real) {
        std::fs::copy(real.join(&f), copy.join(&f)).unwrap();
    }
    let before = snapshot(&w);
    let err = refused(
        &run(
            &w,
            &["restore", &id, "--to-stdout", "-i", "identity.txt"],
            &[],
        ),
        &id,
    );
    assert!(err.contains("more than one manifest claims"), "{err}");
    refused(&run(&w, &["verify", &id, "-i", "identity.txt"], &[]), &id);
    // Listing shows the real backup only, and says why the copy was skipped.
    let out = run(&w, &["--json", "list"], &[]);
    let listed = json(&out);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["datastore"]["name"], "app");
    assert!(
        stderr(&out).contains("signature was made for another object"),
        "{}",
        stderr(&out)
    );
    ok(&run(&w, &["prune", "--keep-last", "1"], &[]));
    assert!(snapshot(&w) == before, "the store changed");
    // With the real one gone, the copy alone is still refused.
    std::fs::remove_dir_all(&real).unwrap();
    let err = refused(
        &run(
            &w,
            &["restore", &id, "--to-stdout", "-i", "identity.txt"],
            &[],
        ),
        "aaa/",
    );
    assert!(err.contains("another object"), "{err}");
}

/// A manifest dated in the future, made from a signed one: retention would keep it as
/// the newest and delete the real newest; status would call a stale datastore fresh.
#[test]
fn a_future_dated_manifest_steers_neither_prune_nor_status() {
    let w = Work::new();
    let older = stdin_backup(&w, "app", "one");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let newest = stdin_backup(&w, "app", "two");
    let forged_id = "20991231T000000Z-0badc0de";
    let forged = folder(&w, "app", forged_id);
    std::fs::create_dir_all(&forged).unwrap();
    for f in files(&folder(&w, "app", &newest)) {
        std::fs::copy(folder(&w, "app", &newest).join(&f), forged.join(&f)).unwrap();
    }
    edit_manifest(&forged.join("manifest.json"), |m| {
        m["backup_id"] = json!(forged_id);
        m["started_at"] = json!("2099-12-31T00:00:00Z");
        m["finished_at"] = json!("2099-12-31T00:00:01Z");
    });
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = run(&w, &["--json", "status", "--max-age", "1s"], &[]);
    fails_with(&out, 9);
    let st = json(&out);
    assert_eq!(
        st["datastores"][0]["newest"]["backup_id"],
        newest.as_str(),
        "{st}"
    );
    assert_eq!(st["datastores"][0]["untrusted_manifests"], 1, "{st}");
    refused(
        &run(
            &w,
            &["restore", forged_id, "--to-stdout", "-i", "identity.txt"],
            &[],
        ),
        forged_id,
    );
    // keep-last 1 keeps the real newest (verified first: prune never deletes while the
    // newest is unverified) and deletes the older one; the forged folder is not touched.
    ok(&run(&w, &["verify", &newest, "-i", "identity.txt"], &[]));
    let forged_before: Vec<_> = files(&forged);
    ok(&run(&w, &["prune", "--keep-last", "1"], &[]));
    assert!(folder(&w, "app", &newest).join("manifest.json").is_file());
    assert!(
        !folder(&w, "app", &older).exists(),
        "the older backup stays"
    );
    assert_eq!(files(&forged), forged_before);
}

/// A verification record written by the bucket writer (`ok: true`) is not believed:
/// the newest backup stays unverified, so prune deletes nothing. A record dbseal writes
/// (signed) is believed, and the same prune then deletes the older backup.
#[test]
fn a_forged_verification_record_is_not_believed() {
    let w = Work::new();
    let older = stdin_backup(&w, "app", "one");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let newest = stdin_backup(&w, "app", "two");
    let record = json!({
        "backup_id": newest, "datastore": "app", "level": "restore",
        "verified_at": "2026-12-07T00:00:00Z", "ok": true, "message": "all good",
        "tool": {"name": "dbseal", "version": "0.1.0"}
    });
    std::fs::write(
        folder(&w, "app", &newest).join("verified.json"),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
    let out = run(&w, &["--json", "status", "--max-age", "1h"], &[]);
    assert!(
        json(&out)["datastores"][0]["newest"]["verification"].is_null(),
        "{}",
        stdout(&out)
    );
    let before = snapshot(&w);
    let out = run(&w, &["prune", "--keep-last", "1"], &[]);
    ok(&out);
    assert!(snapshot(&w) == before, "prune believed the forged record");
    // A real verification replaces it with a signed record, which prune trusts.
    ok(&run(&w, &["verify", &newest, "-i", "identity.txt"], &[]));
    ok(&run(&w, &["prune", "--keep-last", "1"], &[]));
    assert!(!folder(&w, "app", &older).exists());
    assert!(folder(&w, "app", &newest).join("manifest.json").is_file());
}

/// Someone else's signing key: a restoring host trusts only the keys it is given.
#[test]
fn backups_signed_by_an_unknown_key_are_refused_and_trusted_keys_are_accepted() {
    let w = Work::new();
    let id = stdin_backup(&w, "app", "data");
    let other = Work::new();
    let public = std::fs::read_to_string(w.path("identity.txt.minisign.pub")).unwrap();
    let public = public.lines().nth(1).unwrap().to_string();
    // `other` has its own signing key (trusted there) but not `w`'s.
    let store = w.store();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["--store", store.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let identity = w.path("identity.txt");
    let restore = args(&[
        "restore",
        &id,
        "--to-stdout",
        "-i",
        identity.to_str().unwrap(),
    ]);
    let refs: Vec<&str> = restore.iter().map(String::as_str).collect();
    let err = refused(&other.run(&refs), "manifest.json");
    assert!(err.contains("not trusted here"), "{err}");
    // Trusted by flag, or by environment variable.
    let mut with_flag = refs.clone();
    with_flag.extend(["--trusted-signer", &public]);
    assert_eq!(ok(&other.run(&with_flag)), "data");
    let out = other.run_env(&refs, &[("DBSEAL_TRUSTED_SIGNERS", &public)]);
    assert_eq!(ok(&out), "data");
}

/// The signature is a standard minisign file: `minisign -Vm` checks a manifest with
/// dbseal absent, and notices one changed byte.
#[test]
fn minisign_verifies_a_manifest_without_dbseal() {
    let w = Work::new();
    let id = stdin_backup(&w, "app", "data");
    let manifest = folder(&w, "app", &id).join("manifest.json");
    let pubfile = w.path("identity.txt.minisign.pub");
    let public = std::fs::read_to_string(&pubfile).unwrap();
    let public = public.lines().nth(1).unwrap();
    let minisign = |args: &[&str]| {
        Command::new("minisign")
            .args(args)
            .output()
            .expect("minisign is installed by scripts/install-deps.sh")
    };
    let m = manifest.to_str().unwrap();
    let out = minisign(&["-Vm", m, "-P", public]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("file:app/{id}/manifest.json")),
        "{said}"
    );
    let out = minisign(&["-Vm", m, "-p", pubfile.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut bytes = std::fs::read(&manifest).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(&manifest, bytes).unwrap();
    assert!(!minisign(&["-Vm", m, "-P", public]).status.success());
}

/// A child process as /proc showed it: its argv and its environment.
#[derive(Debug)]
struct Seen {
    argv: Vec<String>,
    environ: Vec<(String, String)>,
    /// The mode of the file PGSERVICEFILE names, read while the process ran.
    service_file_mode: Option<u32>,
}

/// Runs `cmd` to its end, reading /proc/PID/cmdline and environ of every process it
/// starts (and theirs) while they run.
fn run_watching_children(mut cmd: Command) -> (Output, Vec<Seen>) {
    use std::collections::BTreeMap;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let root = child.id();
    let dbseal_exe = std::fs::read_link(format!("/proc/{root}/exe")).ok();
    let mut seen: BTreeMap<u32, Seen> = BTreeMap::new();
    let split = |b: Vec<u8>| -> Vec<String> {
        b.split(|&c| c == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    };
    loop {
        let mut stack = children(root);
        while let Some(pid) = stack.pop() {
            stack.extend(children(pid));
            // Read again every time: Debian's pg_dump is a wrapper that execs the real
            // one in the same process, and what ran last is what counts.
            // Between fork and exec a child is still a copy of dbseal (its argv is
            // dbseal's own): only what runs another program counts. The program is read
            // before and after argv and environment, so all three belong to one exec.
            let exe = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            let before = exe(pid);
            let (Ok(cmdline), Ok(environ)) = (
                std::fs::read(format!("/proc/{pid}/cmdline")),
                std::fs::read(format!("/proc/{pid}/environ")),
            ) else {
                continue;
            };
            if before.is_none() || before != exe(pid) || before == dbseal_exe {
                continue; // not exec'd yet, exec'ing now, or gone: look again
            }
            let argv = split(cmdline);
            if argv.is_empty() {
                continue; // not exec'd yet (or a zombie): look again
            }
            let environ: Vec<(String, String)> = split(environ)
                .into_iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (kv, String::new()),
                })
                .collect();
            let service_file_mode = environ
                .iter()
                .find(|(k, _)| k == "PGSERVICEFILE")
                .and_then(|(_, path)| std::fs::metadata(path).ok())
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
                .or(seen.get(&pid).and_then(|s| s.service_file_mode));
            seen.insert(
                pid,
                Seen {
                    argv,
                    environ,
                    service_file_mode,
                },
            );
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let out = child.wait_with_output().unwrap();
    (out, seen.into_values().collect())
}

/// Every child dbseal starts during a PostgreSQL backup to S3 and a restore from it,
/// with a TLS client-key password in the URL (`sslpassword`), the S3 keys and another
/// service's password in dbseal's environment: no secret value in any child's argv, and
/// only allow-listed variables in their environment (the password libpq needs arrives
/// as PGPASSWORD, the key password in a private service file).
#[test]
fn children_see_no_secret_in_argv_and_only_allow_listed_variables() {
    let pg = Pg::from_env();
    let w = Work::new();
    let src = pg.database("trust_children");
    pg.sql(
        &src.name,
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS a FROM generate_series(1, 300000) g",
    );
    let ssl_password = "tls-key-password-5f3a9";
    let redis_password = "redis-password-c81e7";
    let s3_secret = need("DBSEAL_TEST_S3_SECRET_KEY");
    let store = format!(
        "{}/trust-children-{}",
        need("DBSEAL_TEST_S3_URL"),
        std::process::id()
    );
    let endpoint = need("DBSEAL_TEST_S3_ENDPOINT");
    let access = need("DBSEAL_TEST_S3_ACCESS_KEY");
    let env = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", access.as_str()),
        ("AWS_SECRET_ACCESS_KEY", s3_secret.as_str()),
        ("REDIS_PASSWORD", redis_password),
        ("PGPASSWORD", pg.password.as_str()),
    ];
    // sslmode=prefer: the test server has no TLS, libpq still takes the parameter.
    let url = |db: &str| format!("{}?sslmode=prefer&sslpassword={ssl_password}", pg.url(db));
    let cmd = |args: &[&str]| {
        let mut c = w.cmd();
        c.args(["--json", "--store", &store]).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    };
    let (out, mut seen) = run_watching_children(cmd(&[
        "backup",
        "postgres",
        "--url",
        &url(&src.name),
        "-d",
        "kids",
        "-r",
        &w.recipient,
    ]));
    let id = json_id(&out);
    let target = format!("trust_children_target_{}", std::process::id());
    let (out, restore_seen) = run_watching_children(cmd(&[
        "restore",
        &id,
        "--url",
        &url(&target),
        "--create-db",
        "-i",
        "identity.txt",
    ]));
    ok(&out);
    assert_eq!(pg.sql(&target, "SELECT count(*) FROM t"), "300000");
    pg.sql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {target} WITH (FORCE)"),
    );
    seen.extend(restore_seen);

    let names: Vec<&str> = seen
        .iter()
        .map(|s| s.argv[0].rsplit('/').next().unwrap())
        .collect();
    assert!(names.contains(&"pg_dump"), "pg_dump was seen: {seen:?}");
    assert!(
        names.contains(&"pg_restore"),
        "pg_restore was seen: {seen:?}"
    );
    let base = [
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    ];
    let secrets = [
        ssl_password,
        redis_password,
        s3_secret.as_str(),
        access.as_str(),
    ];
    let mut connecting = 0;
    for s in &seen {
        for secret in secrets {
            assert!(
                !s.argv.iter().any(|a| a.contains(secret)),
                "a secret in the argv of {:?}",
                s.argv
            );
            let holders: Vec<&str> = s
                .environ
                .iter()
                .filter(|(_, v)| v.contains(secret))
                .map(|(k, _)| k.as_str())
                .collect();
            assert!(
                holders.is_empty(),
                "a secret in the environment of {:?}: {holders:?} (all: {:?})",
                s.argv[0],
                s.environ
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
            );
        }
        for (k, _) in &s.environ {
            let allowed = base.contains(&k.as_str())
                || k.starts_with("LC_")
                || (k.starts_with("PG") && k != "PGPASSFILE");
            assert!(allowed, "{k} reached {:?}", s.argv[0]);
        }
        // A tool that connects (not a `--version` probe) gets the password libpq needs,
        // and the key password in a private service file.
        if !s.argv.iter().any(|a| a.contains("host=")) {
            continue;
        }
        connecting += 1;
        let get = |name: &str| {
            s.environ
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("PGPASSWORD").as_deref(), Some(pg.password.as_str()));
        assert!(
            get("PGSERVICEFILE").is_some(),
            "no service file for {:?}",
            s.argv[0]
        );
        assert!(
            s.argv.iter().any(|a| a.contains("service=dbseal_secrets")),
            "{:?}",
            s.argv
        );
        assert_eq!(s.service_file_mode, Some(0o600), "{:?}", s.argv[0]);
    }
    assert!(
        connecting >= 2,
        "pg_dump and pg_restore connected: {seen:?}"
    );
}
