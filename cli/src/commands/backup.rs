//! `dbseal backup <kind>` (one subcommand per driver of the registry), `backup stdin`,
//! `backup command`, and `backup --datastore NAME` / `--all` (datastores of the config
//! file; several make one backup set).

use backup_core::ops::backup::{self, DatastoreBackupOptions, DatastoresBackup, SealOptions};
use backup_core::ops::OpContext;
use backup_core::{BlockingReaderSource, CommandSource, Registry};
use clap::{ArgMatches, Args, FromArgMatches, Subcommand};

use crate::exit::CliResult;
use crate::output::Output;

/// `dbseal backup`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    kind: Option<BackupKind>,
    #[command(flatten)]
    configured: DatastoreBackupOptions,
}

/// What `dbseal backup <subcommand>` backs up.
#[derive(Debug)]
enum BackupKind {
    /// `backup command` or `backup stdin`.
    Builtin(BuiltinKind),
    /// `backup <kind>`: a driver of the registry, with its parsed flags.
    Driver { kind: String, matches: ArgMatches },
}

#[derive(Subcommand, Debug)]
enum BuiltinKind {
    /// Back up the standard output of a command: `dbseal backup command -d NAME -- pg_dumpall`.
    /// A non-zero exit of the command fails the backup (no manifest).
    Command {
        #[command(flatten)]
        seal: SealOptions,
        /// The command and its arguments (after `--`).
        #[arg(required = true, last = true)]
        argv: Vec<String>,
    },
    /// Back up standard input.
    Stdin {
        #[command(flatten)]
        seal: SealOptions,
    },
}

impl FromArgMatches for BackupKind {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        match matches.subcommand() {
            Some((name, _)) if BuiltinKind::has_subcommand(name) => {
                BuiltinKind::from_arg_matches(matches).map(BackupKind::Builtin)
            }
            Some((name, sub)) => Ok(BackupKind::Driver {
                kind: name.to_string(),
                matches: sub.clone(),
            }),
            None => Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand)),
        }
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for BackupKind {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        BuiltinKind::augment_subcommands(cmd)
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        BuiltinKind::augment_subcommands_for_update(cmd)
    }

    fn has_subcommand(_name: &str) -> bool {
        // The drivers' subcommands are added to the command by `with_drivers`.
        true
    }
}

/// Adds `dbseal backup <kind>` for every driver: its own flags and the seal flags.
pub fn with_drivers(cmd: clap::Command, registry: &Registry) -> clap::Command {
    cmd.mut_subcommand("backup", |backup| {
        registry.drivers().fold(backup, |backup, driver| {
            let sub = driver.backup_args(clap::Command::new(driver.kind()));
            // The seal flags' own doc would replace the driver's line: set it last.
            backup.subcommand(SealOptions::augment_args(sub).about(driver.about()))
        })
    })
}

/// Runs `dbseal backup`.
pub async fn run(args: &BackupArgs, ctx: &OpContext, out: Output) -> CliResult<()> {
    let manifest = match &args.kind {
        None => return run_configured(&args.configured, ctx, out).await,
        Some(BackupKind::Builtin(BuiltinKind::Command { seal, argv })) => {
            let mut source = CommandSource::new(argv.clone())?;
            backup::backup_source(ctx, &mut source, seal).await?
        }
        Some(BackupKind::Builtin(BuiltinKind::Stdin { seal })) => {
            let mut source = BlockingReaderSource::stdin()?;
            backup::backup_source(ctx, &mut source, seal).await?
        }
        Some(BackupKind::Driver { kind, matches }) => {
            let seal = SealOptions::from_arg_matches(matches)
                .map_err(|e| crate::exit::CliError::usage(e.to_string()))?;
            let options = ctx.registry.driver(kind)?.backup_options_from(matches)?;
            backup::backup_with_driver(ctx, kind, &options, &seal).await?
        }
    };
    out.emit(&manifest, || manifest.committed_text());
    Ok(())
}

async fn run_configured(
    args: &DatastoreBackupOptions,
    ctx: &OpContext,
    out: Output,
) -> CliResult<()> {
    match backup::backup_datastores(ctx, args).await? {
        DatastoresBackup::Single(m) => out.report(&m, m.committed_text(), None),
        DatastoresBackup::Set(set) => out.report(&set, set.to_text(), set.failure()),
    }
}
