//! The `dbseal` binary's core commands: keygen, backup stdin/command, list, show,
//! verify, restore; their exit codes (cli/src/exit.rs), `--json` output, and what a
//! failed or killed backup leaves behind.

mod core_common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use core_common::*;

#[test]
fn keygen_writes_a_private_identity_and_refuses_to_overwrite() {
    let w = Work::new();
    let id = std::fs::read_to_string(w.identity()).unwrap();
    let mode = std::fs::metadata(w.identity())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "identity file mode {mode:o}");
    assert!(w.recipient.starts_with("age1"), "{}", w.recipient);
    assert_eq!(w.recipient.lines().count(), 1);
    assert!(id.contains("AGE-SECRET-KEY-1"), "{id}");
    assert!(
        id.contains(&format!("# public key: {}", w.recipient)),
        "{id}"
    );

    let out = w.run(&["keygen", "-o", "identity.txt"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(w.identity()).unwrap(), id);
    assert!(out.stdout.is_empty());

    let out = w.run(&["--json", "keygen", "-o", "second.txt"]);
    assert_ok(&out);
    let v = json(&out);
    assert!(v["recipient"].as_str().unwrap().starts_with("age1"), "{v}");
    assert_ne!(v["recipient"], w.recipient.as_str());
    assert_eq!(v["identity_file"], "second.txt");
    let mode = std::fs::metadata(w.path("second.txt"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let out = w.run(&["--json", "keygen", "-o", "second.txt"]);
    assert_code(&out, 2);
    assert_eq!(json(&out)["error"]["class"], "config");
}

#[test]
fn stdin_round_trip_with_json_output_everywhere() {
    let w = Work::new();
    let input = data(1, 5 * 1024 * 1024 + 3);
    let m = w.backup("app", &input);
    let id = m["backup_id"].as_str().unwrap().to_string();
    assert_eq!(m["datastore"]["name"], "app");
    assert_eq!(m["datastore"]["kind"], "stdin");
    assert_eq!(m["artifact"]["plaintext_size"], input.len() as u64);
    assert!(w.artifact_path(&m).is_file());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(w.manifest_path(&m)).unwrap())
            .unwrap(),
        m,
        "--json prints the committed manifest"
    );

    let out = w.run_in_store(&["--json", "list"]);
    assert_ok(&out);
    let list = json(&out);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["backup_id"], id.as_str());

    let out = w.run_in_store(&["--json", "show", &id]);
    assert_ok(&out);
    assert_eq!(json(&out), m);

    let out = w.run_in_store(&["--json", "verify", &id]);
    assert_ok(&out);
    let v = json(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["level"], "stored");

    let identity = w.identity();
    let identity = identity.to_str().unwrap();
    let out = w.run_in_store(&["--json", "verify", &id, "-i", identity]);
    assert_ok(&out);
    assert_eq!(json(&out)["level"], "content");

    let out = w.run_in_store(&["restore", &id, "-i", identity, "--to-stdout"]);
    assert_ok(&out);
    assert!(out.stdout == input, "restored bytes differ");
    // No progress bar or escape codes when stderr is not a terminal.
    assert!(!out.stderr.contains(&0x1b), "{}", stderr(&out));

    let target = w.path("restored.bin");
    let out = w.run_in_store(&[
        "--json",
        "restore",
        &id,
        "-i",
        identity,
        "-o",
        target.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let v = json(&out);
    assert!(v.is_object(), "{v}");
    assert!(std::fs::read(&target).unwrap() == input);

    // Human output names the backup too.
    let out = w.run_in_store(&["list"]);
    assert_ok(&out);
    assert!(stdout(&out).contains(&id));
}

#[test]
fn exit_code_3_when_the_backup_does_not_exist() {
    let w = Work::new();
    w.backup("app", b"something");
    let missing = "20200101T000000Z-deadbeef";
    let identity = w.identity();
    let identity = identity.to_str().unwrap();
    for args in [
        vec!["show", missing],
        vec!["verify", missing],
        vec!["restore", missing, "-i", identity, "--to-stdout"],
    ] {
        let mut full = vec!["--json"];
        full.extend(args);
        let out = w.run_in_store(&full);
        assert_code(&out, 3);
        let e = json(&out);
        assert_eq!(e["error"]["class"], "not_found", "{e}");
        assert_eq!(e["error"]["code"], 3);
        assert!(
            e["error"]["message"].as_str().unwrap().contains(missing),
            "{e}"
        );
        assert!(stderr(&out).contains(missing));
    }
}

#[test]
fn exit_code_4_for_a_corrupted_or_truncated_artifact() {
    let w = Work::new();
    let input = data(2, 3 * 1024 * 1024);
    let identity = w.identity();
    let identity = identity.to_str().unwrap();
    for damage in ["flip", "truncate"] {
        let m = w.backup(&format!("app-{damage}"), &input);
        let id = m["backup_id"].as_str().unwrap();
        let key = m["artifact"]["key"].as_str().unwrap();
        let path = w.artifact_path(&m);
        let mut bytes = std::fs::read(&path).unwrap();
        match damage {
            "flip" => {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x20;
            }
            _ => bytes.truncate(bytes.len() - 100),
        }
        std::fs::write(&path, bytes).unwrap();

        for args in [vec!["verify", id], vec!["verify", id, "-i", identity]] {
            let out = w.run_in_store(&args);
            assert_code(&out, 4);
            let err = stderr(&out);
            assert!(err.contains(id) && err.contains(key), "{damage}: {err}");
        }
        let out = w.run_in_store(&["--json", "verify", id]);
        assert_code(&out, 4);
        assert_eq!(json(&out)["error"]["class"], "verification");

        // To stdout: fails, and never writes the whole plaintext (the last chunk is
        // held back until every check passed).
        let out = w.run_in_store(&["restore", id, "-i", identity, "--to-stdout"]);
        assert_code(&out, 4);
        assert!(
            out.stdout.len() < input.len(),
            "{damage}: all bytes went out"
        );
        assert!(stderr(&out).contains(id));

        // To a file: fails and leaves no file.
        let target = w.path(&format!("out-{damage}.bin"));
        let out = w.run_in_store(&[
            "restore",
            id,
            "-i",
            identity,
            "-o",
            target.to_str().unwrap(),
        ]);
        assert_code(&out, 4);
        assert!(
            !target.exists(),
            "{damage}: a partial restore was left behind"
        );
    }
}

#[test]
fn exit_code_4_for_a_manifest_whose_digest_does_not_match() {
    let w = Work::new();
    let m = w.backup("app", &data(3, 1024 * 1024));
    let id = m["backup_id"].as_str().unwrap();
    let mut edited = m.clone();
    edited["artifact"]["plaintext_sha256"] = "ab".repeat(32).into();
    w.rewrite_manifest(&m, &serde_json::to_vec_pretty(&edited).unwrap());
    // Level 1 cannot see it; level 2 and restore can.
    assert_ok(&w.run_in_store(&["verify", id]));
    let identity = w.identity();
    let identity = identity.to_str().unwrap();
    let out = w.run_in_store(&["verify", id, "-i", identity]);
    assert_code(&out, 4);
    assert!(stderr(&out).contains("plaintext"), "{}", stderr(&out));
    let out = w.run_in_store(&["restore", id, "-i", identity, "--to-stdout"]);
    assert_code(&out, 4);
}

#[test]
fn exit_code_5_for_a_wrong_identity() {
    let w = Work::new();
    let m = w.backup("app", &data(4, 1024 * 1024));
    let id = m["backup_id"].as_str().unwrap();
    assert_ok(&w.run(&["keygen", "-o", "other.txt"]));
    for args in [
        vec!["verify", id, "-i", "other.txt"],
        vec!["restore", id, "-i", "other.txt", "--to-stdout"],
    ] {
        let out = w.run_in_store(&args);
        assert_code(&out, 5);
        let err = stderr(&out);
        assert!(err.contains(id) && err.contains(&w.recipient), "{err}");
        assert!(out.stdout.is_empty());
    }
    let out = w.run_in_store(&["--json", "restore", id, "-i", "other.txt", "--to-stdout"]);
    assert_code(&out, 5);
    assert_eq!(json(&out)["error"]["class"], "decryption");
}

#[test]
fn exit_code_6_for_an_unreachable_or_refusing_store() {
    let w = Work::new();
    let endpoint = format!("aws_endpoint=http://127.0.0.1:{}", closed_port());
    let t = Instant::now();
    let out = w.run_env(
        &[
            "--json",
            "--store",
            "s3://backups/dbseal-test/unreachable",
            "--store-option",
            &endpoint,
            "--store-option",
            "aws_allow_http=true",
            "list",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    eprintln!(
        "unreachable store: exit after {:.1}s",
        t.elapsed().as_secs_f64()
    );
    assert_code(&out, 6);
    assert_eq!(json(&out)["error"]["class"], "connection");
    assert!(stderr(&out).contains("s3://backups/dbseal-test/unreachable"));

    // Refused credentials on the real test store: a backup fails the same way.
    let url = format!(
        "{}/cli-refused-{}",
        need("DBSEAL_TEST_S3_URL"),
        std::process::id()
    );
    let out = w.run_stdin_env(
        &[
            "--store",
            &url,
            "backup",
            "stdin",
            "-d",
            "app",
            "-r",
            &w.recipient,
        ],
        b"data",
        &[
            ("AWS_ENDPOINT", &need("DBSEAL_TEST_S3_ENDPOINT")),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", &need("DBSEAL_TEST_S3_ACCESS_KEY")),
            ("AWS_SECRET_ACCESS_KEY", "wrong-secret-0000"),
        ],
    );
    assert_code(&out, 6);
    assert!(!stderr(&out).contains("wrong-secret-0000"));
}

#[test]
fn exit_code_7_for_a_newer_manifest_format() {
    let w = Work::new();
    let m = w.backup("app", b"from the future");
    let id = m["backup_id"].as_str().unwrap();
    let mut newer = m.clone();
    newer["format_version"] = "2.0".into();
    w.rewrite_manifest(&m, &serde_json::to_vec(&newer).unwrap());
    let identity = w.identity();
    let identity = identity.to_str().unwrap();
    for args in [
        vec!["show", id],
        vec!["verify", id],
        vec!["restore", id, "-i", identity, "--to-stdout"],
    ] {
        let out = w.run_in_store(&args);
        assert_code(&out, 7);
        let err = stderr(&out);
        assert!(err.contains("2.0") && err.contains("upgrade"), "{err}");
    }
    let out = w.run_in_store(&["--json", "show", id]);
    assert_eq!(json(&out)["error"]["class"], "version_mismatch");
    // Listing skips it with a warning instead of failing.
    let out = w.run_in_store(&["--json", "list"]);
    assert_ok(&out);
    assert_eq!(json(&out), serde_json::json!([]));
    assert!(stderr(&out).contains("manifest.json"), "{}", stderr(&out));
}

#[test]
fn unknown_manifest_fields_do_not_bother_the_cli() {
    let w = Work::new();
    let m = w.backup("app", b"tolerant");
    let id = m["backup_id"].as_str().unwrap();
    let mut newer = m.clone();
    newer["format_version"] = "1.3".into();
    newer["future_field"] = serde_json::json!({"x": [1, 2]});
    w.rewrite_manifest(&m, &serde_json::to_vec(&newer).unwrap());
    let out = w.run_in_store(&["--json", "show", id]);
    assert_ok(&out);
    assert_eq!(json(&out)["future_field"], newer["future_field"]);
    let identity = w.identity();
    let out = w.run_in_store(&[
        "restore",
        id,
        "-i",
        identity.to_str().unwrap(),
        "--to-stdout",
    ]);
    assert_ok(&out);
    assert_eq!(out.stdout, b"tolerant");
}

#[test]
fn exit_code_2_for_bad_arguments() {
    let w = Work::new();
    let m = w.backup("app", b"x");
    let id = m["backup_id"].as_str().unwrap();
    let r = w.recipient.clone();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--no-such-flag", "list"], "--no-such-flag"),
        (vec!["backup", "stdin", "-d", "app"], "recipient"),
        (
            vec!["backup", "stdin", "-d", "app", "-r", "age1notakey"],
            "age1notakey",
        ),
        (
            vec![
                "backup",
                "stdin",
                "-d",
                "app",
                "-r",
                &r,
                "--zstd-level",
                "99",
            ],
            "99",
        ),
        (vec!["backup", "stdin", "-d", "../up", "-r", &r], "../up"),
        (vec!["show", "not-an-id"], "not-an-id"),
        (
            vec!["restore", id, "-i", "missing-identity.txt", "--to-stdout"],
            "missing-identity.txt",
        ),
        (vec!["verify", id, "--level", "content"], "identity"),
    ];
    let store = w.store();
    for (args, mention) in cases {
        let mut full = vec!["--store", store.to_str().unwrap()];
        full.extend(args.iter().copied());
        let out = w.run_stdin(&full, b"x");
        assert_code(&out, 2);
        assert!(
            stderr(&out).contains(mention),
            "{args:?}: `{mention}` not in: {}",
            stderr(&out)
        );
    }
    let out = w.run(&["--store", "ftp://example.invalid/x", "list"]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("ftp://example.invalid/x"),
        "{}",
        stderr(&out)
    );
    // A secret key passed where a recipient belongs is refused without echoing it.
    let id_text = std::fs::read_to_string(w.identity()).unwrap();
    let secret = id_text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    let out = w.run_stdin(
        &[
            "--store",
            w.store().to_str().unwrap(),
            "backup",
            "stdin",
            "-d",
            "app",
            "-r",
            secret,
        ],
        b"x",
    );
    assert_code(&out, 2);
    assert!(!contains(&out.stderr, secret), "{}", stderr(&out));
    // Nothing was written by any of them.
    assert_eq!(manifests_under(&w.store()).len(), 1);
}

#[test]
fn failing_command_commits_no_manifest() {
    let w = Work::new();
    let earlier = w.backup("app", b"earlier");
    let store = w.store();
    let store = store.to_str().unwrap();
    let r = w.recipient.clone();

    let out = w.run(&[
        "--store",
        store,
        "backup",
        "command",
        "-d",
        "app",
        "-r",
        &r,
        "--",
        "sh",
        "-c",
        "echo x; echo 'pg_dump: error: boom' >&2; exit 1",
    ]);
    assert_ne!(code(&out), 0);
    let err = stderr(&out);
    assert!(err.contains("exited with status 1"), "{err}");
    assert!(err.contains("boom"), "the command's stderr is shown: {err}");

    // Midway through a multipart upload (> 8 MiB part size).
    let out = w.run(&[
        "--json",
        "--store",
        store,
        "backup",
        "command",
        "-d",
        "app",
        "-r",
        &r,
        "--",
        "sh",
        "-c",
        "head -c 30000000 /dev/urandom; exit 3",
    ]);
    assert_ne!(code(&out), 0);
    assert!(json(&out)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("exited with status 3"));

    // A command that does not exist.
    let out = w.run(&[
        "--store",
        store,
        "backup",
        "command",
        "-d",
        "app",
        "-r",
        &r,
        "--",
        "/nonexistent/dump-tool",
    ]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("/nonexistent/dump-tool"));

    // Only the earlier backup exists, and it still restores.
    assert_eq!(manifests_under(&w.store()).len(), 1);
    let out = w.run(&["--json", "--store", store, "list"]);
    let list = json(&out);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["backup_id"], earlier["backup_id"]);
    let id = earlier["backup_id"].as_str().unwrap();
    let identity = w.identity();
    let out = w.run(&[
        "--store",
        store,
        "restore",
        id,
        "-i",
        identity.to_str().unwrap(),
        "--to-stdout",
    ]);
    assert_ok(&out);
    assert_eq!(out.stdout, b"earlier");
    // The failed uploads were aborted: only the earlier backup's artifact, manifest and
    // signature remain, beside the outcome records (one success, three failures).
    let all = files_under(&w.store());
    let (records, rest): (Vec<_>, Vec<_>) = all
        .iter()
        .partition(|p| p.starts_with(w.store().join("_records")));
    assert_eq!(rest.len(), 3, "{all:?}");
    assert_eq!(records.len(), 8, "{all:?}");

    // A command that succeeds is a backup of its output.
    let out = w.run(&[
        "--json",
        "--store",
        store,
        "backup",
        "command",
        "-d",
        "cmd",
        "-r",
        &r,
        "--",
        "sh",
        "-c",
        "printf 'dump of %s' db",
    ]);
    assert_ok(&out);
    let m = json(&out);
    assert_eq!(m["datastore"]["kind"], "command");
    let out = w.run(&[
        "--store",
        store,
        "restore",
        m["backup_id"].as_str().unwrap(),
        "-i",
        identity.to_str().unwrap(),
        "--to-stdout",
    ]);
    assert_eq!(out.stdout, b"dump of db");
}

#[test]
fn killed_backup_commits_no_manifest() {
    let w = Work::new();
    let earlier = w.backup("app", b"earlier");
    let store = w.store();
    let mut child = w
        .cmd()
        .args([
            "--store",
            store.to_str().unwrap(),
            "backup",
            "stdin",
            "-d",
            "app",
            "-r",
            &w.recipient,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // A slow producer: 1 MiB every 20 ms, never finishing on its own.
    let feeder = std::thread::spawn(move || {
        // Fresh, mostly incompressible data each time, so the upload grows steadily.
        let start = Instant::now();
        for seed in 100.. {
            if start.elapsed() > Duration::from_secs(30) {
                break;
            }
            if stdin.write_all(&data(seed, 1024 * 1024)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    // Kill it midway: once it has started uploading (its first 8 MiB part is on disk).
    let earlier_id = earlier["backup_id"].as_str().unwrap().to_string();
    let new_files = || -> Vec<std::path::PathBuf> {
        files_under(&w.store())
            .into_iter()
            .filter(|p| !p.to_str().unwrap().contains(&earlier_id))
            .collect()
    };
    let start = Instant::now();
    while new_files().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "the upload never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    eprintln!(
        "killing after {:.1}s, uploading: {:?}",
        start.elapsed().as_secs_f64(),
        new_files()
    );
    assert!(child.try_wait().unwrap().is_none(), "dbseal ended early");
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    feeder.join().unwrap();

    assert_eq!(
        manifests_under(&w.store()).len(),
        1,
        "{:?}",
        files_under(&w.store())
    );
    let out = w.run_in_store(&["--json", "list"]);
    assert_ok(&out);
    let list = json(&out);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["backup_id"], earlier["backup_id"]);
    let identity = w.identity();
    let out = w.run_in_store(&[
        "restore",
        earlier["backup_id"].as_str().unwrap(),
        "-i",
        identity.to_str().unwrap(),
        "--to-stdout",
    ]);
    assert_ok(&out);
    assert_eq!(out.stdout, b"earlier");
    // What the killed process left (a multipart staging file) is no backup.
    eprintln!("left behind by the killed backup: {:?}", new_files());
}

/// `--max-rate` (and DBSEAL_MAX_RATE) hold a backup's upload and a restore's download to
/// the real S3 test store at the rate given: each takes at least the time its bytes need
/// at that rate (a lower bound only: how much faster an unlimited run is depends on the
/// machine, and is not a test's business). A rate that is not one is refused up front.
#[test]
fn max_rate_holds_uploads_and_downloads_to_the_limit() {
    let w = Work::new();
    let url = format!(
        "{}/cli-max-rate-{}",
        need("DBSEAL_TEST_S3_URL"),
        std::process::id()
    );
    let env = [
        ("AWS_ENDPOINT", need("DBSEAL_TEST_S3_ENDPOINT")),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", need("DBSEAL_TEST_S3_ACCESS_KEY")),
        ("AWS_SECRET_ACCESS_KEY", need("DBSEAL_TEST_S3_SECRET_KEY")),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let input = data(21, 3 << 20);
    let rate = 1u64 << 20;

    let t = Instant::now();
    let args = [
        "--json",
        "--store",
        &url,
        "--max-rate",
        "1MiB",
        "backup",
        "stdin",
        "-d",
        "app",
        "-r",
        &w.recipient,
    ];
    let out = w.run_stdin_env(&args, &input, &env);
    let took = t.elapsed().as_secs_f64();
    assert_ok(&out);
    let manifest = json(&out);
    let stored = manifest["artifact"]["stored_size"].as_u64().unwrap();
    assert!(stored > 1 << 20, "{stored}");
    let floor = stored as f64 / rate as f64;
    eprintln!("backup at 1MiB/s: {stored} bytes stored in {took:.2}s (floor {floor:.2}s)");
    assert!(
        took >= floor,
        "backup took {took:.2}s, the limit allows no less than {floor:.2}s"
    );

    let id = manifest["backup_id"].as_str().unwrap().to_string();
    let mut env_limited = env.clone();
    env_limited.push(("DBSEAL_MAX_RATE", "1MiB"));
    let t = Instant::now();
    let out = w.run_env(
        &[
            "--store",
            &url,
            "restore",
            &id,
            "--to-stdout",
            "-i",
            w.identity().to_str().unwrap(),
        ],
        &env_limited,
    );
    let took = t.elapsed().as_secs_f64();
    assert_ok(&out);
    assert!(
        out.stdout == input,
        "the restored bytes differ from the input"
    );
    eprintln!("restore at 1MiB/s: {took:.2}s (floor {floor:.2}s)");
    assert!(
        took >= floor,
        "restore took {took:.2}s, the limit allows no less than {floor:.2}s"
    );

    for bad in ["fast", "10X", "1000"] {
        let out = w.run_env(&["--store", &url, "--max-rate", bad, "list"], &env);
        assert_code(&out, 2);
        let err = stderr(&out);
        assert!(
            err.contains("max_rate") && err.contains(bad),
            "{bad}: {err}"
        );
    }
}
