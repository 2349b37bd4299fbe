//! Child processes (pg_dump, pg_restore, psql, pg_basebackup, neo4j-admin, a `backup
//! command`) that never outlive dbseal.
//!
//! Each child runs in a process group of its own, so a terminal's Ctrl-C reaches dbseal
//! only, which stops its children in order (a killed client rolls its transaction back).
//! And each gets SIGKILL when dbseal dies, however it dies (the OOM killer, `kill -9`):
//! Linux's parent-death signal (`PR_SET_PDEATHSIG`), set by util-linux's `setpriv
//! --pdeathsig KILL`, which then executes the program itself (same process, same pid).
//! The workspace forbids `unsafe`, and setting the signal from Rust would need it
//! between fork and exec. Without `setpriv` (not Linux) the program runs directly.
//!
//! The signal is set a moment after the start (by `setpriv`, before it executes the
//! program), and fires when the *thread* that started the child ends: dbseal starts
//! children from its runtime's worker threads (or the thread driving an operation),
//! which live at least as long as the operation that waits for them.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `setpriv`, if this system has one that knows `--pdeathsig` (util-linux 2.33 and
/// later; probed once by running `setpriv --pdeathsig KILL -- true`).
fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            ["/usr/bin/setpriv", "/bin/setpriv"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .filter(|p| {
                    // With an empty environment: dbseal's own holds secrets.
                    std::process::Command::new(p)
                        .args(["--pdeathsig", "KILL", "--", "true"])
                        .env_clear()
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                })
        })
        .as_deref()
}

/// The file `program` names, directly or through `PATH` (as the operating system would
/// find it for dbseal): it is handed to `setpriv` as an absolute path, so the child's
/// environment cannot change which program runs, and a missing program still fails to
/// start with the operating system's own error.
fn resolve(program: &OsStr) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(p))
            .find(|f| f.is_file())
    })
}

/// A command for `program` in a process group of its own, killed when its handle is
/// dropped and when dbseal dies (see the module docs).
pub fn command(program: impl AsRef<OsStr>) -> tokio::process::Command {
    let program = program.as_ref();
    let mut cmd = match (setpriv(), resolve(program)) {
        (Some(setpriv), Some(path)) => {
            let mut c = tokio::process::Command::new(setpriv);
            c.args([
                OsString::from("--pdeathsig"),
                "KILL".into(),
                "--".into(),
                path.into(),
            ]);
            c
        }
        _ => tokio::process::Command::new(program),
    };
    cmd.process_group(0).kill_on_drop(true);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_runs_the_program_itself_and_a_missing_one_fails_to_start() {
        // The shell reports its own pid and name: the pid dbseal holds is the program's
        // (setpriv executed it in place), not a wrapper's.
        let child = command("sh")
            .args(["-c", "echo $$; cat /proc/$$/comm"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{pid}\nsh\n"));
        let err = command("/nonexistent/dbseal-no-such-tool")
            .spawn()
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        let err = command("dbseal-no-such-tool-on-path").spawn().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }

    /// Whether `pid` is gone or a zombie (killed, not yet reaped).
    fn dead(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[test]
    fn a_child_dies_with_the_thread_that_started_it() {
        if setpriv().is_none() {
            eprintln!("SKIPPED: no setpriv on this system (not Linux)");
            return;
        }
        // The parent-death signal fires when the starting thread ends: a thread stands
        // in for a dbseal that died. The child's handle is leaked, so nothing but the
        // signal can end it.
        let pid = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let child = command("sleep").arg("600").spawn().unwrap();
                let pid = child.id().unwrap();
                std::mem::forget(child);
                // setpriv sets the signal a moment after the start; a thread ending
                // sooner escapes it (no operation ends that soon after starting one).
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                pid
            })
        })
        .join()
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !dead(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "sleep {pid} outlived the thread that started it"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
