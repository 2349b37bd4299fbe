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
use backup_core::ops::OpContext;
use backup_core::Registry;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
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
8 refused (target not empty, production, exists), 9 status: a datastore is unhealthy, \
10 backup set: a member failed, 130 interrupted.";

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

/// Whether the user gave flag `id` (on the command line or through its variable),
/// looked up in the deepest subcommand that has it (global flags may be given there).
fn given(matches: &ArgMatches, id: &str) -> bool {
    use clap::parser::ValueSource;
    let mut found = None;
    let mut m = Some(matches);
    while let Some(cur) = m {
        if cur.ids().any(|i| i.as_str() == id) {
            found = cur.value_source(id);
        }
        m = cur.subcommand().map(|(_, sub)| sub);
    }
    matches!(
        found,
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// The store from the flags, else the config file's; the file's options first, so the
/// same key on the command line overrides it.
fn apply_store_config(store: &mut StoreArgs, matches: &ArgMatches, cfg: &Config) {
    if let Some(section) = &cfg.store {
        if !given(matches, "store") {
            store.store = section.url.clone();
        }
        let mut options: Vec<String> = section
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        options.append(&mut store.store_options);
        store.store_options = options;
    }
}

async fn run(
    mut cli: Cli,
    matches: ArgMatches,
    registry: Registry,
    cancel: CancellationToken,
) -> Result<(), CliError> {
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
    };
    let config = Config::load(cli.config.as_deref(), &registry)?.map(Arc::new);
    if let Some(c) = &config {
        apply_store_config(&mut cli.store, &matches, c);
    }
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
        Ok(OpContext::new(registry.clone(), store.open()?)
            .with_config(config.clone())
            .with_frontend(Arc::new(out))
            .with_cancel(cancel.clone()))
    };
    match cli.command {
        Command::Keygen(a) => commands::keygen::run(&a, out),
        Command::Config(a) => commands::config::run(&a, config.as_deref(), &registry, out),
        Command::Backup(a) => commands::backup::run(&a, &context()?, out).await,
        Command::Restore(mut a) => commands::restore::run(&mut a, &context()?, store, out).await,
        Command::Verify(a) => commands::verify::run(&a, &context()?, out).await,
        Command::List(a) => commands::catalog::list(&a, &context()?, out).await,
        Command::Show(a) => commands::catalog::show(&a, &context()?, out).await,
        Command::WalPush(a) => commands::wal::run_push(&a, store, out).await,
        Command::WalFetch(a) => commands::wal::run_fetch(&a, store, out).await,
        Command::WalVerify(a) => commands::wal::run_verify(&a, store, out).await,
        Command::Prune(a) => commands::prune::run(&a, &context()?, out).await,
        Command::Status(a) => commands::status::run(&a, &context()?, out).await,
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
    let cancel = CancellationToken::new();
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(cli, matches, registry, cancel.clone()) => r,
            _ = tokio::signal::ctrl_c() => {
                cancel.cancel();
                Err(CliError { message: "interrupted: no manifest was written for an unfinished backup".into(), code: 130 })
            }
        }
    });
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
