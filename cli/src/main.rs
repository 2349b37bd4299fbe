//! `dbseal`: sealed, verifiable backups of PostgreSQL, TimescaleDB, Neo4j and Redis.
//!
//! The CLI only translates: arguments in, a `backup_core::ops` call, output out. The
//! database kinds come from the registry composed in [`registry`]; exit codes are
//! `backup_core::ErrorKind::exit_code`'s.

mod commands;
mod common;
mod exit;
mod output;
mod progress;
mod registry;

use std::sync::Arc;

use backup_core::ops::config::{Config, CONFIG_ENV};
use backup_core::ops::{store_location, OpContext, UNDO_GRACE};
use backup_core::Registry;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::common::StoreArgs;
use crate::exit::CliError;
use crate::output::Output;

/// Sealed backups: streamed, compressed (zstd), encrypted (age), checksummed (SHA-256),
/// stored in object storage, described by a manifest, provably restorable.
#[derive(Parser, Debug)]
#[command(name = "dbseal", version, about, long_about = None, after_help = EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    /// Configuration file (store, keys, retention, datastores). Default: ./dbseal.toml
    /// when it exists. Flags override it.
    #[arg(long, env = CONFIG_ENV, global = true, value_name = "PATH")]
    config: Option<std::path::PathBuf>,
    /// Print one JSON document on stdout (errors too) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bar and no informational messages.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    /// More log output on stderr (-v: info, -vv: debug). RUST_LOG also works.
    #[arg(long, short = 'v', action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str =
    "Exit codes: 0 ok, 1 failure, 2 invalid arguments/config/keys, 3 not found, \
4 verification failed, 5 decryption failed, 6 connection failed, 7 version mismatch, \
8 refused (target not empty, production, exists), 9 status/drill: unhealthy, alert or \
objective missed, 10 backup set: a member failed, 101 internal error (please report), \
130 interrupted by SIGINT, 143 by SIGTERM (after the unfinished work was undone).";

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate an age key pair: the identity goes to a file, the recipient to stdout.
    Keygen(commands::keygen::KeygenArgs),
    /// Make a backup.
    Backup(commands::backup::BackupArgs),
    /// Restore a backup into a database, a file or stdout.
    Restore(Box<commands::restore::RestoreArgs>),
    /// Verify a backup (stored, content or restore level).
    Verify(commands::verify::VerifyArgs),
    /// List complete backups.
    List(commands::catalog::ListArgs),
    /// Show a backup's manifest.
    Show(commands::catalog::ShowArgs),
    /// PostgreSQL archive_command: seal one WAL file into the datastore's WAL archive.
    WalPush(commands::wal::WalPushArgs),
    /// PostgreSQL restore_command: fetch, verify and write one archived WAL file
    /// (exit 3: not archived; 255: any other failure, so recovery aborts).
    WalFetch(commands::wal::WalFetchArgs),
    /// Check a datastore's WAL archive: gaps, timelines, foreign or corrupted segments.
    WalVerify(commands::wal::WalVerifyArgs),
    /// Check the configuration file.
    Config(commands::config::ConfigArgs),
    /// Delete backups outside the retention policy (GFS), and debris of failed backups.
    Prune(backup_core::ops::prune::PruneOptions),
    /// Newest backup, age, size and last verification of every datastore; exit 9 when
    /// any is too old or failed its last verification.
    Status(backup_core::ops::status::StatusOptions),
    /// Disaster-recovery drill: restore the newest backups into scratch targets, verify
    /// them, measure RTO and RPO against the objectives (exit 9 when one is missed).
    Drill(backup_core::ops::drill::DrillOptions),
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs captured by cron, systemd or CI stay text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Set by commands whose failure is already described by the JSON document they
/// printed (status, verify --latest, backup sets), so stdout stays one document.
static RESULT_EMITTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks the command's JSON result as printed (see [`RESULT_EMITTED`]).
pub(crate) fn result_emitted() {
    RESULT_EMITTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

async fn run(mut cli: Cli, registry: Registry, cancel: CancellationToken) -> Result<(), CliError> {
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
    };
    let config = Config::load(cli.config.as_deref(), &registry)?.map(Arc::new);
    let store = &mut cli.store;
    let (url, mut options) = store_location(
        store.store.as_deref(),
        &store.store_options,
        config.as_deref(),
    );
    options.extend(store.max_rate.take().map(|r| format!("max_rate={r}")));
    (store.store, store.store_options) = (Some(url), options);
    store.trust = store.trust.or_config(config.as_deref());
    let result = dispatch(cli, config.clone(), registry, cancel, out).await;
    // No secret the configuration knows ever reaches the terminal in an error.
    result.map_err(|mut e| {
        if let Some(c) = &config {
            e.message = c.scrub(&e.message);
        }
        e
    })
}

async fn dispatch(
    cli: Cli,
    config: Option<Arc<Config>>,
    registry: Registry,
    cancel: CancellationToken,
    out: Output,
) -> Result<(), CliError> {
    let store = &cli.store;
    let context = || -> Result<OpContext, CliError> {
        let dbseal = backup_postgres::pitr::current_dbseal().ok();
        let wal = backup_postgres::pitr::PostgresWalArchive::replaying(store.location(), dbseal);
        Ok(OpContext::new(registry.clone(), store.open()?)
            .with_archives(vec![wal])
            .with_config(config.clone())
            .with_frontend(Arc::new(out))
            .with_cancel(cancel.clone()))
    };
    match cli.command {
        Command::Keygen(a) => commands::keygen::run(&a, out),
        Command::Config(a) => commands::config::run(&a, config.as_deref(), &registry, out),
        Command::Backup(a) => commands::backup::run(&a, &context()?, out).await,
        Command::Restore(a) => commands::restore::run(&a, &context()?, store, out).await,
        Command::Verify(a) => commands::verify::run(&a, &context()?, out).await,
        Command::List(a) => commands::catalog::list(&a, &context()?, out).await,
        Command::Show(a) => commands::catalog::show(&a, &context()?, out).await,
        Command::WalPush(a) => commands::wal::run_push(&a, store, out).await,
        Command::WalFetch(a) => commands::wal::run_fetch(&a, store, out).await,
        Command::WalVerify(a) => commands::wal::run_verify(&a, store, out).await,
        Command::Prune(a) => commands::prune::run(&a, &context()?, out).await,
        Command::Status(a) => commands::status::run(&a, &context()?, out).await,
        Command::Drill(a) => commands::status::drill(&a, &context()?, out).await,
    }
}

/// Runs `work`; the first SIGINT or SIGTERM cancels `cancel` so the running operation
/// undoes its work (a backup deletes what it uploaded, a restore rolls its target back),
/// waits for that up to [`UNDO_GRACE`], then exits 130 (SIGINT) or 143 (SIGTERM). A
/// second signal exits at once, saying what may be left.
async fn interruptible(
    work: impl std::future::Future<Output = Result<(), CliError>>,
    cancel: CancellationToken,
    leftover: &str,
) -> Result<(), CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return Err(CliError::usage(
            "cannot install the SIGINT/SIGTERM handlers",
        ));
    };
    let mut work = std::pin::pin!(work);
    let (name, code) = tokio::select! {
        r = &mut work => return r,
        _ = int.recv() => ("SIGINT", 130),
        _ = term.recv() => ("SIGTERM", 143),
    };
    cancel.cancel();
    eprintln!(
        "dbseal: {name} received: stopping and undoing the unfinished work (a second signal exits at once)"
    );
    let interrupted = |detail: String| CliError {
        message: format!(
            "interrupted by {name}: {}",
            detail.strip_prefix("interrupted: ").unwrap_or(&detail)
        ),
        code,
    };
    tokio::select! {
        r = &mut work => match r {
            // Finished before the interrupt could stop it: the work is complete.
            Ok(()) => Ok(()),
            Err(e) => Err(interrupted(e.message)),
        },
        _ = tokio::time::sleep(UNDO_GRACE) => Err(interrupted(format!(
            "undoing did not finish within {} s; {leftover}", UNDO_GRACE.as_secs()
        ))),
        _ = int.recv() => Err(interrupted(format!("a second signal stopped the undoing; {leftover}"))),
        _ = term.recv() => Err(interrupted(format!("a second signal stopped the undoing; {leftover}"))),
    }
}

fn main() {
    let registry = registry::registry();
    let matches = commands::backup::with_drivers(Cli::command(), &registry).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.verbose);
    backup_core::store::install_crypto_provider();
    backup_core::task::install_panic_hook();
    let json = cli.json;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let leftover = backup_core::ops::leftover_after(matches.subcommand_name().unwrap_or(""));
    let cancel = CancellationToken::new();
    let result = runtime.block_on(interruptible(
        run(cli, registry, cancel.clone()),
        cancel,
        leftover,
    ));
    // Let aborted stages clean up (abort uploads) before the process exits.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    if let Err(e) = result {
        eprintln!("dbseal: error: {}", e.message);
        if json && !RESULT_EMITTED.load(std::sync::atomic::Ordering::SeqCst) {
            println!(
                "{}",
                serde_json::json!({ "error": { "class": e.class(), "code": e.code, "message": e.message } })
            );
        }
        std::process::exit(e.code);
    }
}
