//! `dbseal`: sealed, verifiable backups of PostgreSQL, TimescaleDB, Neo4j and Redis.
//!
//! The CLI only translates: arguments in, a backup-core (or database crate) call, output
//! out. Exit codes are documented in [`exit`].

mod commands;
mod common;
mod db;
mod exit;
mod output;
mod progress;

use clap::{Parser, Subcommand};

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
8 refused (target not empty, production, exists), 130 interrupted.";

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

async fn run(cli: Cli) -> Result<(), CliError> {
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
    };
    let store = &cli.store;
    match &cli.command {
        Command::Keygen(a) => commands::keygen::run(a, out),
        Command::Backup(a) => commands::backup::run(a, store, out).await,
        Command::Restore(a) => commands::restore::run(a, store, out).await,
        Command::Verify(a) => commands::verify::run(a, store, out).await,
        Command::List(a) => commands::list::run(a, store, out).await,
        Command::Show(a) => commands::show::run(a, store, out).await,
    }
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    backup_core::store::install_crypto_provider();
    let json = cli.json;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(cli) => r,
            _ = tokio::signal::ctrl_c() => Err(CliError { message: "interrupted: no manifest was written for an unfinished backup".into(), code: 130 }),
        }
    });
    // Let aborted stages clean up (abort uploads) before the process exits.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    if let Err(e) = result {
        eprintln!("dbseal: error: {}", e.message);
        if json {
            println!(
                "{}",
                serde_json::json!({ "error": { "class": e.class(), "code": e.code, "message": e.message } })
            );
        }
        std::process::exit(e.code);
    }
}
