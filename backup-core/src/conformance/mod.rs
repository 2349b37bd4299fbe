//! Conformance suites (cargo feature `conformance`), the way `object_store` runs one
//! integration suite against every store: [`store`] is run by every store dbseal
//! supports (file, memory, S3), [`driver`] by every database crate's [`crate::Driver`].
//!
//! The suites are test code shipped in the library so each crate's tests can call
//! them: a failed check panics with a message naming the store or driver, the case and
//! what differed.

pub mod driver;
pub mod store;

/// A property test's knob from the environment (case counts, seeds), or `default`; a
/// value that is not a number fails the test, naming the variable.
pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

/// Runs a test's Python helper (`python3 script args…`), the independent reader of a
/// round-trip test, and returns what it printed; a failure panics with its stderr.
/// `needs` names what the helper imports (installed by `scripts/install-deps.sh`).
pub fn python_script(script: &str, args: &[&str], needs: &str) -> String {
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 {script}: {e} (it needs {needs})"));
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|_| panic!("{script} printed non-UTF-8"))
}

/// A deterministic test stream of `len` bytes for `seed`: text lines like a dump (which
/// compress well) with one 64 KiB block in four of noise (which does not), so an
/// artifact of a few MiB of plaintext still spans several upload parts and pipe chunks.
pub fn generated_bytes(seed: u64, len: usize) -> Vec<u8> {
    const BLOCK: usize = 64 * 1024;
    const WORDS: [&[u8]; 16] = [
        b"INSERT",
        b"INTO",
        b"accounts",
        b"VALUES",
        b"(42,",
        b"'alice'",
        b"NULL);",
        b"COPY",
        b"public.orders",
        b"\\N",
        b"2026-11-21",
        b"3.14159",
        b"lorem",
        b"ipsum",
        b"dolor",
        b"amet",
    ];
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // wyrand
        state = state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (state as u128).wrapping_mul((state ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) ^ t) as u64
    };
    let mut out = Vec::with_capacity(len + BLOCK);
    while out.len() < len {
        let start = out.len();
        if next() % 4 == 0 {
            while out.len() - start < BLOCK {
                out.extend_from_slice(&next().to_le_bytes());
            }
        } else {
            while out.len() - start < BLOCK {
                let r = next();
                for i in 0..8 {
                    out.extend_from_slice(WORDS[((r >> (i * 4)) & 15) as usize]);
                    out.push(if i == 7 { b'\n' } else { b' ' });
                }
            }
        }
    }
    out.truncate(len);
    out
}
