//! A dbseal artifact is a standard file: the Debian `age` and `zstd` command-line tools
//! open it without dbseal (the escape hatch), keys made by `age-keygen` and `ssh-keygen`
//! work with dbseal, and an artifact made by those tools restores through dbseal.

mod core_common;

use std::path::Path;
use std::process::Command;

use core_common::*;

/// `age -d -i IDENTITY ARTIFACT | zstd -d`, as two steps so each one's failure shows.
fn escape_hatch(w: &Work, identity: &Path, artifact: &Path) -> Vec<u8> {
    need_tool("age");
    need_tool("zstd");
    let zst = w.path("escape.zst");
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg("-o")
        .arg(&zst)
        .arg(artifact)
        .output()
        .unwrap();
    assert!(out.status.success(), "age -d: {}", stderr(&out));
    let out = Command::new("zstd")
        .args(["-d", "-q", "-c"])
        .arg(&zst)
        .output()
        .unwrap();
    assert!(out.status.success(), "zstd -d: {}", stderr(&out));
    std::fs::remove_file(&zst).unwrap();
    out.stdout
}

#[test]
fn age_and_zstd_clis_open_a_dbseal_artifact() {
    let w = Work::new();
    let input = data(10, 12 * 1024 * 1024 + 5);
    for level in ["1", "3", "19"] {
        let store = w.store();
        let args = [
            "--json",
            "--store",
            store.to_str().unwrap(),
            "backup",
            "stdin",
            "-d",
            "app",
            "-r",
            &w.recipient,
            "--zstd-level",
            level,
        ];
        let out = w.run_stdin(&args, &input);
        assert_ok(&out);
        let m = json(&out);
        let opened = escape_hatch(&w, &w.identity(), &w.artifact_path(&m));
        assert!(
            opened == input,
            "zstd level {level}: the escape hatch gave other bytes"
        );
    }
}

#[test]
fn an_age_keygen_identity_works_with_dbseal() {
    need_tool("age-keygen");
    let w = Work::new();
    let key = w.path("age-keygen.txt");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(&key)
        .output()
        .unwrap();
    let recipient = stdout(&out).trim().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");

    let input = data(11, 2 * 1024 * 1024);
    let store = w.store();
    let out = w.run_stdin(
        &[
            "--json",
            "--store",
            store.to_str().unwrap(),
            "backup",
            "stdin",
            "-d",
            "app",
            "-r",
            &recipient,
        ],
        &input,
    );
    assert_ok(&out);
    let m = json(&out);
    let id = m["backup_id"].as_str().unwrap();
    let key_arg = key.to_str().unwrap();
    let out = w.run_in_store(&["--json", "verify", id, "-i", key_arg]);
    assert_ok(&out);
    assert_eq!(json(&out)["level"], "content");
    let out = w.run_in_store(&["restore", id, "-i", key_arg, "--to-stdout"]);
    assert_ok(&out);
    assert!(out.stdout == input);
    // And dbseal's own identity does not open it.
    let out = w.run_in_store(&[
        "restore",
        id,
        "-i",
        w.identity().to_str().unwrap(),
        "--to-stdout",
    ]);
    assert_code(&out, 5);
    assert!(escape_hatch(&w, &key, &w.artifact_path(&m)) == input);
}

#[test]
fn an_ssh_ed25519_key_works_with_dbseal_and_age() {
    need_tool("ssh-keygen");
    let w = Work::new();
    let key = w.path("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "dbseal-test", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let public = std::fs::read_to_string(w.path("id_ed25519.pub")).unwrap();
    let input = data(12, 1024 * 1024);
    let store = w.store();
    let out = w.run_stdin(
        &[
            "--json",
            "--store",
            store.to_str().unwrap(),
            "backup",
            "stdin",
            "-d",
            "app",
            "-r",
            public.trim(),
        ],
        &input,
    );
    assert_ok(&out);
    let m = json(&out);
    let id = m["backup_id"].as_str().unwrap();
    let out = w.run_in_store(&["restore", id, "-i", key.to_str().unwrap(), "--to-stdout"]);
    assert_ok(&out);
    assert!(out.stdout == input);
    assert!(escape_hatch(&w, &key, &w.artifact_path(&m)) == input);
}

#[test]
fn an_artifact_made_by_zstd_and_age_restores_through_dbseal() {
    need_tool("age");
    need_tool("zstd");
    let w = Work::new();
    let input = data(13, 3 * 1024 * 1024);
    let m = w.backup("app", b"placeholder");
    let id = m["backup_id"].as_str().unwrap();
    // Replace the artifact by one the standard tools made, and record it in the manifest.
    std::fs::write(w.path("input.bin"), &input).unwrap();
    let zst = w.path("input.bin.zst");
    let out = Command::new("zstd")
        .args(["-3", "-q", "-f", "-o"])
        .arg(&zst)
        .arg(w.path("input.bin"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let artifact = w.artifact_path(&m);
    let out = Command::new("age")
        .args(["-r", &w.recipient, "-o"])
        .arg(&artifact)
        .arg(&zst)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stored = std::fs::read(&artifact).unwrap();
    let mut edited = m.clone();
    edited["artifact"]["stored_size"] = stored.len().into();
    edited["artifact"]["stored_sha256"] = sha256_hex(&stored).into();
    edited["artifact"]["plaintext_size"] = input.len().into();
    edited["artifact"]["plaintext_sha256"] = sha256_hex(&input).into();
    w.rewrite_manifest(&m, &serde_json::to_vec_pretty(&edited).unwrap());

    let identity = w.identity();
    let out = w.run_in_store(&["verify", id, "-i", identity.to_str().unwrap()]);
    assert_ok(&out);
    let out = w.run_in_store(&[
        "restore",
        id,
        "-i",
        identity.to_str().unwrap(),
        "--to-stdout",
    ]);
    assert_ok(&out);
    assert!(out.stdout == input);
}

/// SHA-256 through the `sha256sum` tool (coreutils), so this file needs no hash crate.
fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    stdout(&out).split_whitespace().next().unwrap().to_string()
}
