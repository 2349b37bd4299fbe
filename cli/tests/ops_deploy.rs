//! The deploy/ files: the Kubernetes manifests parse as YAML and run the right
//! commands, the systemd units pass `systemd-analyze verify`, the cron file has valid
//! schedules, and the example config passes `dbseal config check`.

mod ops_common;

use std::path::{Path, PathBuf};

use ops_common::*;
use yaml_rust2::{Yaml, YamlLoader};

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("deploy")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(deploy(rel)).unwrap_or_else(|e| panic!("deploy/{rel}: {e}"))
}

/// A five-field cron schedule with every field in range.
fn valid_cron_schedule(fields: &[&str]) -> bool {
    let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    fields.len() == 5
        && fields.iter().zip(ranges).all(|(f, (lo, hi))| {
            f.split(',').all(|part| {
                let (range, step) = match part.split_once('/') {
                    Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0).is_some()),
                    None => (part, true),
                };
                let in_range = |v: &str| v.parse::<u32>().is_ok_and(|n| n >= lo && n <= hi);
                step && (range == "*"
                    || in_range(range)
                    || range
                        .split_once('-')
                        .is_some_and(|(a, b)| in_range(a) && in_range(b)))
            })
        })
}

#[test]
fn cron_schedule_checker_rejects_bad_schedules() {
    assert!(valid_cron_schedule(&["15", "2", "*", "*", "*"]));
    assert!(valid_cron_schedule(&["*/5", "0-6", "1,15", "*", "1-5"]));
    assert!(!valid_cron_schedule(&["60", "2", "*", "*", "*"]));
    assert!(!valid_cron_schedule(&["15", "2", "*", "*"]));
    assert!(!valid_cron_schedule(&["x", "2", "*", "*", "*"]));
}

/// Checks a CronJob (schedule, Forbid, Never, secrets from the Secret, mounted
/// volumes) and returns its command and args joined by spaces; the args also parse
/// with the real binary.
fn check_cronjob(job: &Yaml) -> String {
    let mut commands = String::new();
    assert_eq!(job["apiVersion"].as_str(), Some("batch/v1"));
    let spec = &job["spec"];
    let schedule: Vec<&str> = spec["schedule"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .collect();
    assert!(valid_cron_schedule(&schedule), "{schedule:?}");
    assert_eq!(spec["concurrencyPolicy"].as_str(), Some("Forbid"));
    let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    let c = &pod["containers"][0];
    assert!(c["image"].as_str().is_some());
    let env: Vec<&str> = c["env"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(env.contains(&"DBSEAL_CONFIG"), "{env:?}");
    for e in c["env"].as_vec().unwrap() {
        if e["name"].as_str() == Some("AWS_SECRET_ACCESS_KEY") {
            assert!(
                e["value"].is_badvalue(),
                "secrets come from a secretKeyRef, not a literal"
            );
            assert_eq!(
                e["valueFrom"]["secretKeyRef"]["name"].as_str(),
                Some("dbseal-secrets")
            );
        }
    }
    // Every mount has a volume.
    let volumes: Vec<&str> = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for m in c["volumeMounts"].as_vec().unwrap() {
        assert!(volumes.contains(&m["name"].as_str().unwrap()), "{m:?}");
    }
    for part in [&c["command"], &c["args"]] {
        if let Yaml::Array(items) = part {
            for i in items {
                commands.push_str(i.as_str().unwrap_or(""));
                commands.push(' ');
            }
        }
    }
    // Args the image's entrypoint (dbseal) takes, not a shell script's.
    if let (Yaml::Array(args), Yaml::BadValue) = (&c["args"], &c["command"]) {
        let args: Vec<&str> = args.iter().filter_map(|a| a.as_str()).collect();
        parses_with_the_binary(&args);
    }
    commands
}

/// `dbseal ARGS --help` succeeds: every flag and value up to there is one the binary
/// knows (clap stops at the first unknown one).
fn parses_with_the_binary(args: &[&str]) {
    let out = std::process::Command::new(bin())
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`dbseal {}` does not parse: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubernetes_cronjobs_parse_and_run_backup_verify_prune() {
    let text = read("kubernetes/cronjob.yaml");
    let docs =
        YamlLoader::load_from_str(&text).expect("deploy/kubernetes/cronjob.yaml is valid YAML");
    assert_eq!(docs.len(), 3, "ConfigMap + two CronJobs");
    let kinds: Vec<&str> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["ConfigMap", "CronJob", "CronJob"]);

    // The embedded dbseal.toml is a valid config (checked with the real binary).
    let toml = docs[0]["data"]["dbseal.toml"]
        .as_str()
        .expect("ConfigMap holds dbseal.toml");
    let w = Work::new();
    let secrets = w.path("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let cfg = w.write(
        "k8s.toml",
        &toml.replace("/etc/dbseal/secrets", secrets.to_str().unwrap()),
    );
    // The identity and password files the Secret would mount.
    std::fs::copy(w.path("identity.txt"), secrets.join("identity.txt")).unwrap();
    std::fs::copy(
        w.path("identity.txt.minisign.key"),
        secrets.join("signing.key"),
    )
    .unwrap();
    std::fs::write(secrets.join("app-db-password"), "pw1\n").unwrap();
    std::fs::write(secrets.join("cache-password"), "pw2\n").unwrap();
    ok(&w.run_env(
        &["--config", cfg.to_str().unwrap(), "config", "check"],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"),
        ],
    ));

    let mut commands = String::new();
    for job in &docs[1..] {
        commands.push_str(&check_cronjob(job));
    }
    for needed in [
        "dbseal --quiet backup --all",
        "dbseal --quiet verify --latest",
        "dbseal --quiet prune",
        "status --max-age 25h",
    ] {
        assert!(
            commands.contains(needed),
            "{needed} missing from {commands}"
        );
    }
    // Backup runs before verify, verify before prune.
    let (b, v, p) = (
        commands.find("backup --all").unwrap(),
        commands.find("verify --latest").unwrap(),
        commands.find("prune").unwrap(),
    );
    assert!(b < v && v < p);
}

/// The runbooks' drill schedule on Kubernetes: weekly restore verification, monthly
/// single-database drill, quarterly full drill; each a well-formed CronJob whose args
/// the binary accepts.
#[test]
fn kubernetes_drill_cronjobs_follow_the_runbooks_schedule() {
    let text = read("kubernetes/drill-cronjobs.yaml");
    let docs = YamlLoader::load_from_str(&text).expect("drill-cronjobs.yaml is valid YAML");
    let jobs: Vec<(&str, &str, String)> = docs
        .iter()
        .map(|d| {
            assert_eq!(d["kind"].as_str(), Some("CronJob"));
            (
                d["metadata"]["name"].as_str().unwrap(),
                d["spec"]["schedule"].as_str().unwrap(),
                check_cronjob(d),
            )
        })
        .collect();
    let names: Vec<&str> = jobs.iter().map(|j| j.0).collect();
    assert_eq!(
        names,
        ["dbseal-verify-restore", "dbseal-drill-app", "dbseal-drill"]
    );
    assert!(
        jobs[0].2.contains("verify --latest --level restore"),
        "{jobs:?}"
    );
    assert!(jobs[0].1.ends_with(" 0"), "weekly: {}", jobs[0].1);
    assert!(jobs[1].2.contains("drill --datastore app"), "{jobs:?}");
    assert!(
        jobs[1].1.ends_with(" * *") && !jobs[1].1.contains("* * *"),
        "monthly: {}",
        jobs[1].1
    );
    assert_eq!(jobs[2].2.trim(), "drill");
    assert!(jobs[2].1.contains("1,4,7,10"), "quarterly: {}", jobs[2].1);
    // The ConfigMap they share gives each datastore a scratch target and objectives.
    let config = read("kubernetes/cronjob.yaml");
    assert!(config.matches("scratch_url = ").count() >= 2, "{config}");
    assert!(config.contains("[objectives.production]"), "{config}");
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let units = [
        "dbseal-backup.service",
        "dbseal-backup.timer",
        "dbseal-status.service",
        "dbseal-status.timer",
        "dbseal-verify-restore.service",
        "dbseal-verify-restore.timer",
        "dbseal-drill.service",
        "dbseal-drill.timer",
    ];
    let w = Work::new();
    let dir = w.path("units");
    std::fs::create_dir_all(&dir).unwrap();
    let bin = bin();
    for u in units {
        let text = read(&format!("systemd/{u}"));
        // Structural checks that hold without systemd too.
        assert!(text.contains("[Unit]"), "{u}");
        if u.ends_with(".service") {
            assert!(text.contains("Type=oneshot"), "{u}");
            assert!(text.contains("Environment=DBSEAL_CONFIG="), "{u}");
        } else {
            assert!(
                text.contains("[Timer]") && text.contains("WantedBy=timers.target"),
                "{u}"
            );
        }
        // systemd-analyze checks that ExecStart= binaries exist: point at the real one.
        std::fs::write(
            dir.join(u),
            text.replace("/usr/local/bin/dbseal", bin.to_str().unwrap()),
        )
        .unwrap();
    }
    // Every ExecStart= parses with the binary; the drill schedule is the runbooks'.
    for u in units.iter().filter(|u| u.ends_with(".service")) {
        for line in read(&format!("systemd/{u}")).lines() {
            if let Some(cmd) = line.strip_prefix("ExecStart=/usr/local/bin/dbseal ") {
                parses_with_the_binary(&cmd.split_whitespace().collect::<Vec<_>>());
            }
        }
    }
    assert!(
        read("systemd/dbseal-verify-restore.service").contains("verify --latest --level restore")
    );
    assert!(read("systemd/dbseal-verify-restore.timer").contains("OnCalendar=Sun "));
    assert!(read("systemd/dbseal-drill.service").contains("drill --report"));
    assert!(read("systemd/dbseal-drill.timer").contains("OnCalendar=*-01,04,07,10-01 "));
    let backup = read("systemd/dbseal-backup.service");
    let steps: Vec<&str> = backup
        .lines()
        .filter(|l| l.starts_with("ExecStart="))
        .collect();
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert!(
        steps[0].ends_with("backup --all")
            && steps[1].ends_with("verify --latest")
            && steps[2].ends_with("prune")
    );

    let analyze = which("systemd-analyze").unwrap_or_else(|| {
        panic!("systemd-analyze is not installed: `apt-get install systemd` to check the units")
    });
    let verify = |files: &[PathBuf]| {
        let out = std::process::Command::new(&analyze)
            .arg("verify")
            .arg("--man=no")
            .args(files)
            .current_dir(&dir)
            .output()
            .expect("run systemd-analyze");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let paths: Vec<PathBuf> = units.iter().map(|u| dir.join(u)).collect();
    let (success, errors) = verify(&paths);
    // systemd-analyze reports unknown keys and bad values as warnings on stderr.
    let ours: Vec<&str> = errors
        .lines()
        .filter(|l| l.contains(dir.to_str().unwrap()) || l.contains("dbseal"))
        .collect();
    assert!(
        success && ours.is_empty(),
        "systemd-analyze verify:\n{errors}"
    );
    // The check itself catches mistakes: a misspelt key is reported.
    let bad = dir.join("dbseal-bad.service");
    std::fs::write(
        &bad,
        read("systemd/dbseal-status.service")
            .replace("/usr/local/bin/dbseal", bin.to_str().unwrap())
            .replace("NoNewPrivileges=", "NoNewPrivilege="),
    )
    .unwrap();
    let (_, errors) = verify(&[bad]);
    assert!(
        errors.contains("NoNewPrivilege"),
        "negative control not reported: {errors}"
    );
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

#[test]
fn cron_file_schedules_are_valid() {
    let text = read("cron/dbseal");
    let mut jobs = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty()
            || l.starts_with('#')
            || l.contains('=') && !l.starts_with(|c: char| c.is_ascii_digit() || c == '*')
        {
            continue;
        }
        let fields: Vec<&str> = l.split_whitespace().collect();
        assert!(fields.len() > 6, "line `{l}` has no user and command");
        assert!(valid_cron_schedule(&fields[..5]), "bad schedule in `{l}`");
        assert_eq!(fields[5], "dbseal", "runs as the dbseal user");
        jobs.push(fields[6..].join(" "));
    }
    assert_eq!(jobs.len(), 5, "{jobs:?}");
    assert!(
        jobs[0].contains("backup --all")
            && jobs[0].contains("verify --latest")
            && jobs[0].contains("prune")
    );
    assert!(jobs[1].contains("status"));
    assert!(jobs[2].contains("verify --latest --level restore"));
    assert!(jobs[3].contains("drill --datastore app"));
    // `%` ends a command in crontab unless escaped.
    assert!(jobs[4].contains("drill --report") && !jobs[4].contains("$(date +%F)"));
    // Each dbseal command parses with the binary.
    for job in &jobs {
        for cmd in job.split(';').chain(job.split("&&")) {
            if let Some(args) = cmd.trim().strip_prefix("dbseal ") {
                let args = args
                    .split("&&")
                    .next()
                    .unwrap()
                    .replace("$(date +\\%F)", "DAY");
                let args: Vec<&str> = args.split_whitespace().collect();
                parses_with_the_binary(&args);
            }
        }
    }
    assert!(text.contains("DBSEAL_CONFIG=/etc/dbseal/dbseal.toml"));
}

#[test]
fn example_config_passes_config_check_with_secrets_redacted() {
    let w = Work::new();
    let secrets = w.path("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::copy(w.path("identity.txt"), secrets.join("identity.txt")).unwrap();
    std::fs::copy(
        w.path("identity.txt.minisign.key"),
        secrets.join("signing.key"),
    )
    .unwrap();
    std::fs::write(secrets.join("app-db-password"), "app-pw-xyz\n").unwrap();
    std::fs::write(secrets.join("cache-password"), "cache-pw-xyz\n").unwrap();
    let example = deploy("dbseal.example.toml");
    let out = w.run_env(
        &["--config", example.to_str().unwrap(), "config", "check"],
        &[
            ("DBSEAL_SECRETS_DIR", secrets.to_str().unwrap()),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret-aws-key"),
        ],
    );
    let shown = ok(&out);
    assert!(
        shown.contains("[datastores.app]") && shown.contains("[datastores.cache]"),
        "{shown}"
    );
    for secret in [
        "very-secret-aws-key",
        "app-pw-xyz",
        "cache-pw-xyz",
        "AKIAEXAMPLE",
    ] {
        assert!(
            !shown.contains(secret) && !stderr(&out).contains(secret),
            "{secret} leaked: {shown}"
        );
    }
    // Without the variables the check fails and names what is missing.
    let err = fails_with(
        &w.run(&["--config", example.to_str().unwrap(), "config", "check"]),
        2,
    );
    assert!(err.contains("is not set"), "{err}");
}
