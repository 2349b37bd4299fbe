//! `dbseal backup <kind>`: seal a database, a command's output, or stdin.

use backup_core::{CommandSource, Manifest, ReaderSource};
use clap::{Args, Subcommand};

use crate::common::{human_bytes, SealArgs, StoreArgs};
use crate::db::{self, BackupContext};
use crate::exit::CliResult;
use crate::output::Output;

/// `dbseal backup`.
#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(subcommand)]
    kind: BackupKind,
}

#[derive(Subcommand, Debug)]
enum BackupKind {
    /// Back up the standard output of a command: `dbseal backup command -d NAME -- pg_dumpall`.
    /// A non-zero exit of the command fails the backup (no manifest).
    Command {
        #[command(flatten)]
        seal: SealArgs,
        /// The command and its arguments (after `--`).
        #[arg(required = true, last = true)]
        argv: Vec<String>,
    },
    /// Back up standard input.
    Stdin {
        #[command(flatten)]
        seal: SealArgs,
    },
    /// Back up a PostgreSQL database (pg_dump custom format).
    Postgres {
        #[command(flatten)]
        seal: SealArgs,
        #[command(flatten)]
        args: db::postgres::BackupArgs,
    },
    /// Back up a TimescaleDB database (PostgreSQL plus extension version pinning).
    Timescale {
        #[command(flatten)]
        seal: SealArgs,
        #[command(flatten)]
        args: db::timescale::BackupArgs,
    },
    /// Back up a Redis server (RDB snapshot over the replication protocol).
    Redis {
        #[command(flatten)]
        seal: SealArgs,
        #[command(flatten)]
        args: db::redis::BackupArgs,
    },
    /// Back up a Neo4j graph over Bolt (dbseal graph stream).
    Neo4j {
        #[command(flatten)]
        seal: SealArgs,
        #[command(flatten)]
        args: db::neo4j::BackupArgs,
    },
}

/// Runs `dbseal backup`.
pub async fn run(args: &BackupArgs, store: &StoreArgs, out: Output) -> CliResult<()> {
    let (seal, label) = match &args.kind {
        BackupKind::Command { seal, .. } => (seal, "backup"),
        BackupKind::Stdin { seal } => (seal, "backup"),
        BackupKind::Postgres { seal, .. }
        | BackupKind::Timescale { seal, .. }
        | BackupKind::Redis { seal, .. }
        | BackupKind::Neo4j { seal, .. } => (seal, "backup"),
    };
    let ctx = BackupContext {
        store: store.open()?,
        seal: seal.clone(),
        progress: crate::progress::bar(label, out.quiet || out.json),
    };
    let manifest = match &args.kind {
        BackupKind::Command { argv, .. } => {
            let mut source = CommandSource::new(argv.clone())?;
            backup_core::backup(&ctx.store, &mut source, ctx.options()?).await?
        }
        BackupKind::Stdin { .. } => {
            let mut source = ReaderSource::new(tokio::io::stdin(), "stdin");
            backup_core::backup(&ctx.store, &mut source, ctx.options()?).await?
        }
        BackupKind::Postgres { args, .. } => db::postgres::backup(args, &ctx).await?,
        BackupKind::Timescale { args, .. } => db::timescale::backup(args, &ctx).await?,
        BackupKind::Redis { args, .. } => db::redis::backup(args, &ctx).await?,
        BackupKind::Neo4j { args, .. } => db::neo4j::backup(args, &ctx).await?,
    };
    print_committed(&manifest, out);
    Ok(())
}

/// Prints a committed backup.
pub fn print_committed(manifest: &Manifest, out: Output) {
    out.emit(manifest, || {
        let a = &manifest.artifact;
        let secs = (manifest.finished_at - manifest.started_at).num_milliseconds() as f64 / 1000.0;
        format!(
            "backup {} of {} ({}) committed in {secs:.1}s: {} stored ({} plaintext)\nmanifest: {}",
            manifest.backup_id,
            manifest.datastore.name,
            manifest.datastore.kind,
            human_bytes(a.stored_size),
            human_bytes(a.plaintext_size),
            backup_core::BackupStore::manifest_key(&manifest.datastore.name, &manifest.backup_id),
        )
    });
}
