//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`, seeded from real
//! artifacts, grown by fuzzing) through the fuzz targets' own bodies (`fuzz/targets.rs`),
//! on stable, in every test run: an input that once crashed a parser keeps being
//! checked without nightly or cargo-fuzz. See `fuzz/README.md`.

#[path = "../../fuzz/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Peak resident memory of this process, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn every_fuzz_target_survives_its_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut total = 0;
    for (name, _) in targets::TARGETS {
        let files = inputs(&root.join(name));
        assert!(
            !files.is_empty(),
            "fuzz target {name} has no corpus in {}",
            root.join(name).display()
        );
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| targets::run(name, &data));
            assert!(
                outcome.is_ok(),
                "fuzz target {name} panicked on {}",
                file.display()
            );
            total += 1;
        }
    }
    // The same bound the fuzzer runs with (-rss_limit_mb=512).
    let peak = peak_rss_kib();
    assert!(
        peak < 512 * 1024,
        "replaying {total} inputs peaked at {peak} KiB"
    );
}
