//! `dbseal`: sealed, verifiable backups of PostgreSQL, TimescaleDB, Neo4j and Redis.
//!
//! The CLI only translates: arguments in, a backup-core (or database crate) call, output
//! out. Exit codes are documented in [`exit`].

mod commands;
mod common;
mod config;
mod db;
mod exit;
mod output;
mod progress;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

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
    #[arg(long, env = config::CONFIG_ENV, global = true, value_name = "PATH")]
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
    Restore(commands::restore::RestoreArgs),
    /// Verify a backup (stored, content or restore level).
    Verify(commands::verify::VerifyArgs),
    /// List complete backups.
    List(commands::list::ListArgs),
    /// Show a backup's manifest.
    Show(commands::show::ShowArgs),
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
    Prune(commands::prune::PruneArgs),
    /// Newest backup, age, size and last verification of every datastore; exit 9 when
    /// any is too old or failed its last verification.
    Status(commands::status::StatusArgs),
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

/// Where a flag's value came from, looked up in the deepest subcommand that has it.
pub(crate) fn value_source(matches: &ArgMatches, id: &str) -> Option<clap::parser::ValueSource> {
    let mut found = None;
    let mut m = Some(matches);
    while let Some(cur) = m {
        if cur.ids().any(|i| i.as_str() == id) {
            found = cur.value_source(id);
        }
        m = cur.subcommand().map(|(_, sub)| sub);
    }
    found
}

/// Whether the user gave a flag (on the command line or through its variable).
pub(crate) fn given(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        value_source(matches, id),
        Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
    )
}

/// Fills what the flags left unset from the config file: flags win over the file.
fn apply_config(cli: &mut Cli, matches: &ArgMatches, cfg: &config::Config) {
    if let Some(store) = &cfg.store {
        if !given(matches, "store") {
            cli.store.store = store.url.clone();
        }
        // File options first, so the same key on the command line overrides it.
        let mut options: Vec<String> = store
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        options.append(&mut cli.store.store_options);
        cli.store.store_options = options;
    }
    match &mut cli.command {
        Command::Backup(a) => a.apply_config(cfg, given(matches, "zstd_level")),
        Command::Restore(a) => commands::restore::apply_key_config(&mut a.keys, cfg),
        Command::Verify(a) => commands::restore::apply_key_config(&mut a.keys, cfg),
        _ => {}
    }
}

async fn run(mut cli: Cli, matches: ArgMatches) -> Result<(), CliError> {
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
    };
    let cfg = config::load(cli.config.as_deref())?;
    if let Some(c) = &cfg {
        apply_config(&mut cli, &matches, c);
    }
    let result = dispatch(&cli, cfg.as_ref(), out).await;
    // No secret the configuration knows ever reaches the terminal in an error.
    result.map_err(|mut e| {
        if let Some(c) = &cfg {
            e.message = c.scrub(&e.message);
        }
        e
    })
}

async fn dispatch(cli: &Cli, cfg: Option<&config::Config>, out: Output) -> Result<(), CliError> {
    let store = &cli.store;
    match &cli.command {
        Command::Keygen(a) => commands::keygen::run(a, out),
        Command::Backup(a) => commands::backup::run(a, store, cfg, out).await,
        Command::Restore(a) => commands::restore::run(a, store, cfg, out).await,
        Command::Verify(a) => commands::verify::run(a, store, cfg, out).await,
        Command::List(a) => commands::list::run(a, store, out).await,
        Command::Show(a) => commands::show::run(a, store, out).await,
        Command::WalPush(a) => commands::wal::run_push(a, store, out).await,
        Command::WalFetch(a) => commands::wal::run_fetch(a, store, out).await,
        Command::WalVerify(a) => commands::wal::run_verify(a, store, out).await,
        Command::Config(a) => commands::config::run(a, cfg, out),
        Command::Prune(a) => commands::prune::run(a, store, cfg, out).await,
        Command::Status(a) => commands::status::run(a, store, cfg, out).await,
    }
}

fn main() {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.verbose);
    backup_core::store::install_crypto_provider();
    let json = cli.json;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(cli, matches) => r,
            _ = tokio::signal::ctrl_c() => Err(CliError { message: "interrupted: no manifest was written for an unfinished backup".into(), code: 130 }),
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
