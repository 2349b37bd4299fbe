//! No secret ever leaves: the passphrase, the identity's AGE-SECRET-KEY and the S3
//! secret key never appear in a manifest or any stored object, in stderr logs at `-vv`,
//! or in `--json` output — on success and on failure.

mod core_common;

use std::process::Output;

use core_common::*;

/// Everything a run printed, for searching.
#[derive(Default)]
struct Captured {
    runs: Vec<(String, Output)>,
}

impl Captured {
    fn add(&mut self, what: &str, out: Output) -> &Output {
        self.runs.push((what.to_string(), out));
        &self.runs.last().unwrap().1
    }

    /// Fails if `secret` appears in any captured stdout or stderr.
    fn assert_absent(&self, secret: &str, name: &str) {
        for (what, out) in &self.runs {
            assert!(
                !contains(&out.stdout, secret),
                "{name} leaked on stdout of `{what}`"
            );
            assert!(
                !contains(&out.stderr, secret),
                "{name} leaked on stderr of `{what}`: {}",
                stderr(out)
            );
        }
    }

    /// Checks the runs logged at debug level at all (so the search means something).
    fn assert_debug_logs(&self) {
        assert!(
            self.runs.iter().any(|(_, o)| stderr(o).contains("DEBUG")),
            "no run logged at debug level"
        );
    }
}

/// Fails if `secret` appears in any file of the local store.
fn assert_absent_from_files(dir: &std::path::Path, secret: &str, name: &str) {
    let files = files_under(dir);
    assert!(!files.is_empty());
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!contains(&bytes, secret), "{name} found in {}", f.display());
    }
}

#[test]
fn passphrase_never_appears_in_store_logs_or_json() {
    let w = Work::new();
    let passphrase = "pp-Zq8v-unique passphrase-5521";
    let wrong = "pp-wrong-passphrase-7781";
    std::fs::write(w.path("pp.txt"), format!("{passphrase}\n")).unwrap();
    std::fs::write(w.path("wrong.txt"), wrong).unwrap();
    let input = data(20, 256 * 1024);
    let mut c = Captured::default();

    let args = w.in_store(&[
        "-vv",
        "--json",
        "backup",
        "stdin",
        "-d",
        "app",
        "--passphrase-file",
        "pp.txt",
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = c.add("backup --json", w.run_stdin(&refs, &input));
    assert_ok(out);
    let m = json(out);
    let id = m["backup_id"].as_str().unwrap().to_string();
    assert_eq!(m["transforms"][1]["passphrase"], true);
    let args = w.in_store(&[
        "-vv",
        "backup",
        "stdin",
        "-d",
        "app",
        "--passphrase-file",
        "pp.txt",
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_ok(c.add("backup", w.run_stdin(&refs, &input)));

    for (what, args) in [
        ("list", vec!["-vv", "--json", "list"]),
        ("show", vec!["-vv", "--json", "show", &id]),
        ("show text", vec!["-vv", "show", &id]),
        (
            "verify",
            vec![
                "-vv",
                "--json",
                "verify",
                &id,
                "--passphrase-file",
                "pp.txt",
            ],
        ),
        (
            "verify text",
            vec!["-vv", "verify", &id, "--passphrase-file", "pp.txt"],
        ),
        (
            "restore",
            vec![
                "-vv",
                "--json",
                "restore",
                &id,
                "--passphrase-file",
                "pp.txt",
                "-o",
                "out.bin",
            ],
        ),
    ] {
        assert_ok(c.add(what, w.run_in_store(&args)));
    }
    assert!(std::fs::read(w.path("out.bin")).unwrap() == input);
    for (what, args) in [
        (
            "verify wrong",
            vec![
                "-vv",
                "--json",
                "verify",
                &id,
                "--passphrase-file",
                "wrong.txt",
            ],
        ),
        (
            "restore wrong",
            vec![
                "-vv",
                "restore",
                &id,
                "--passphrase-file",
                "wrong.txt",
                "--to-stdout",
            ],
        ),
    ] {
        let out = c.add(what, w.run_in_store(&args));
        assert_code(out, 5);
    }
    c.assert_debug_logs();
    c.assert_absent(passphrase, "the passphrase");
    c.assert_absent(wrong, "the wrong passphrase");
    assert_absent_from_files(&w.store(), passphrase, "the passphrase");
}

#[test]
fn identity_secret_key_never_appears_in_store_logs_or_json() {
    let w = Work::new();
    let id_text = std::fs::read_to_string(w.identity()).unwrap();
    let secret = id_text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_string();
    assert_ok(&w.run(&["keygen", "-o", "other.txt"]));
    let other = std::fs::read_to_string(w.path("other.txt")).unwrap();
    let other_secret = other
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_string();
    let input = data(21, 256 * 1024);
    let mut c = Captured::default();
    c.add(
        "keygen",
        w.run(&["-vv", "--json", "keygen", "-o", "third.txt"]),
    );

    let args = w.in_store(&[
        "-vv",
        "--json",
        "backup",
        "stdin",
        "-d",
        "app",
        "-r",
        &w.recipient,
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = c.add("backup", w.run_stdin(&refs, &input));
    assert_ok(out);
    let id = json(out)["backup_id"].as_str().unwrap().to_string();

    for (what, args) in [
        (
            "verify",
            vec!["-vv", "--json", "verify", &id, "-i", "identity.txt"],
        ),
        (
            "verify text",
            vec!["-vv", "verify", &id, "-i", "identity.txt"],
        ),
        (
            "restore",
            vec![
                "-vv",
                "--json",
                "restore",
                &id,
                "-i",
                "identity.txt",
                "-o",
                "out.bin",
            ],
        ),
        ("show", vec!["-vv", "--json", "show", &id]),
    ] {
        assert_ok(c.add(what, w.run_in_store(&args)));
    }
    // Through DBSEAL_IDENTITY too.
    let args = w.in_store(&["-vv", "--json", "verify", &id]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = c.add(
        "verify env",
        w.run_env(&refs, &[("DBSEAL_IDENTITY", "identity.txt")]),
    );
    assert_ok(out);
    assert_eq!(json(out)["level"], "content");
    // Failures: the wrong identity, and an identity file passed as a recipient.
    let out = c.add(
        "restore wrong",
        w.run_in_store(&[
            "-vv",
            "--json",
            "restore",
            &id,
            "-i",
            "other.txt",
            "--to-stdout",
        ]),
    );
    assert_code(out, 5);
    // (A restore refuses that identity before it reads anything; verify decrypts, and
    // its failing pipeline logs at debug level.)
    let out = c.add(
        "verify wrong",
        w.run_in_store(&["-vv", "--json", "verify", &id, "-i", "other.txt"]),
    );
    assert_code(out, 5);
    let args = w.in_store(&[
        "-vv", "--json", "backup", "stdin", "-d", "app", "-r", &secret,
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = c.add("secret as recipient", w.run_stdin(&refs, b"x"));
    assert_code(out, 2);
    // A file that is not an identity at all must not be echoed either.
    std::fs::write(
        w.path("not-an-identity.txt"),
        format!("garbage {secret}x\n"),
    )
    .unwrap();
    let out = c.add(
        "bad identity file",
        w.run_in_store(&["-vv", "--json", "verify", &id, "-i", "not-an-identity.txt"]),
    );
    assert_code(out, 2);

    c.assert_debug_logs();
    c.assert_absent(&secret, "the identity's secret key");
    c.assert_absent(&other_secret, "the other identity's secret key");
    // (Messages may name the format, `AGE-SECRET-KEY-1…`, but never a key.)
    assert_absent_from_files(&w.store(), "AGE-SECRET-KEY-1", "a secret key");
}

#[test]
fn s3_secret_key_never_appears_in_store_logs_or_json() {
    let w = Work::new();
    let secret = need("DBSEAL_TEST_S3_SECRET_KEY");
    let url = format!(
        "{}/cli-secrets-{}-{}",
        need("DBSEAL_TEST_S3_URL"),
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let endpoint = need("DBSEAL_TEST_S3_ENDPOINT");
    let access = need("DBSEAL_TEST_S3_ACCESS_KEY");
    let env = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", access.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    let input = data(22, 9 * 1024 * 1024);
    let mut c = Captured::default();

    let out = c.add(
        "backup",
        w.run_stdin_env(
            &[
                "-vv",
                "--json",
                "--store",
                &url,
                "backup",
                "stdin",
                "-d",
                "app",
                "-r",
                &w.recipient,
            ],
            &input,
            &env,
        ),
    );
    assert_ok(out);
    let id = json(out)["backup_id"].as_str().unwrap().to_string();
    for (what, args) in [
        ("list", vec!["-vv", "--json", "--store", &url, "list"]),
        ("show", vec!["-vv", "--json", "--store", &url, "show", &id]),
        (
            "verify",
            vec![
                "-vv",
                "--json",
                "--store",
                &url,
                "verify",
                &id,
                "-i",
                "identity.txt",
            ],
        ),
        (
            "restore",
            vec![
                "-vv",
                "--json",
                "--store",
                &url,
                "restore",
                &id,
                "-i",
                "identity.txt",
                "-o",
                "out.bin",
            ],
        ),
    ] {
        assert_ok(c.add(what, w.run_env(&args, &env)));
    }
    assert!(std::fs::read(w.path("out.bin")).unwrap() == input);

    // Failures: refused credentials, a missing bucket, and the secret given as a store
    // option to an unreachable endpoint.
    let mut wrong_env = env;
    wrong_env[4] = ("AWS_SECRET_ACCESS_KEY", "wrong-secret-value-4242");
    let out = c.add(
        "list with a wrong secret",
        w.run_env(&["-vv", "--json", "--store", &url, "list"], &wrong_env),
    );
    assert_code(out, 6);
    let out = c.add(
        "missing bucket",
        w.run_env(
            &[
                "-vv",
                "--json",
                "--store",
                "s3://no-such-bucket-dbseal/x",
                "show",
                &id,
            ],
            &env,
        ),
    );
    assert_ne!(code(out), 0);
    let option = format!("aws_secret_access_key={secret}");
    let closed = format!("aws_endpoint=http://127.0.0.1:{}", closed_port());
    let out = c.add(
        "secret as a store option",
        w.run(&[
            "-vv",
            "--json",
            "--store",
            &url,
            "--store-option",
            &option,
            "--store-option",
            &closed,
            "--store-option",
            "aws_allow_http=true",
            "--store-option",
            "aws_region=us-east-1",
            "--store-option",
            &format!("aws_access_key_id={access}"),
            "list",
        ]),
    );
    assert_code(out, 6);

    c.assert_debug_logs();
    c.assert_absent(&secret, "the S3 secret key");
    c.assert_absent("wrong-secret-value-4242", "the wrong S3 secret key");

    // Every object the backup stored.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let options = std::collections::BTreeMap::from([
            ("aws_endpoint".to_string(), endpoint.clone()),
            ("aws_allow_http".to_string(), "true".to_string()),
            ("aws_region".to_string(), "us-east-1".to_string()),
            ("aws_access_key_id".to_string(), access.clone()),
            ("aws_secret_access_key".to_string(), secret.clone()),
        ]);
        let store = backup_core::BackupStore::open(&url, &options).unwrap();
        let keys = store.list_keys("").await.unwrap();
        assert!(keys.len() >= 2, "{keys:?}");
        assert!(
            keys.iter().any(|(k, _)| k.ends_with("/manifest.json")),
            "{keys:?}"
        );
        for (key, _) in &keys {
            let bytes = store.get_bytes(key).await.unwrap();
            assert!(!contains(&bytes, &secret), "the S3 secret key is in {key}");
        }
        for (key, _) in keys {
            store.delete(&key).await.unwrap();
        }
    });
}
