//! `dbseal wal-push`, `wal-fetch`, `wal-verify`: PostgreSQL's WAL archive for
//! point-in-time recovery, and the `--pgdata` restore entry point (`--physical` backups
//! are `PostgresDriver`'s).
//! The operations, their options and their exit-code contract live in
//! [`backup_postgres::pitr`]; this module translates flags and prints.

use backup_core::{BackupStore, Manifest};
use backup_postgres::pitr::{self, KeyFiles, StoreLocation, FETCH_MISSING};
use backup_postgres::wal::FetchOutcome;

use crate::common::{KeyArgs, StoreArgs};
use crate::exit::{CliError, CliResult};
use crate::output::Output;

/// `dbseal wal-push`.
pub type WalPushArgs = pitr::WalPushOptions;
/// `dbseal wal-fetch`.
pub type WalFetchArgs = pitr::WalFetchOptions;
/// `dbseal wal-verify`.
pub type WalVerifyArgs = pitr::WalVerifyOptions;
/// Point-in-time restore flags of `dbseal restore` (flattened into its target flags).
pub type PitrArgs = pitr::PitrOptions;

fn location(store: &StoreArgs) -> StoreLocation {
    StoreLocation {
        url: store.store.clone(),
        options: store.store_options.clone(),
    }
}

/// Runs `dbseal wal-push`.
pub async fn run_push(args: &WalPushArgs, store: &StoreArgs, out: Output) -> CliResult<()> {
    let outcome = pitr::wal_push(&location(store), args).await?;
    out.emit(&outcome, || {
        if out.quiet {
            String::new()
        } else {
            pitr::push_message(&outcome)
        }
    });
    Ok(())
}

/// Runs `dbseal wal-fetch`. See [`backup_postgres::pitr`] for its exit codes.
pub async fn run_fetch(args: &WalFetchArgs, store: &StoreArgs, out: Output) -> CliResult<()> {
    match pitr::wal_fetch(&location(store), args).await {
        Ok(fetched @ FetchOutcome::Fetched { .. }) => {
            out.emit(&fetched, || {
                if out.quiet {
                    String::new()
                } else {
                    fetched.message(&args.datastore)
                }
            });
            Ok(())
        }
        Ok(missing) => Err(CliError {
            message: missing.message(&args.datastore),
            code: FETCH_MISSING,
        }),
        Err(e) => Err(CliError {
            message: e.to_string(),
            code: args.failure_exit_code(),
        }),
    }
}

/// Runs `dbseal wal-verify`: exits 4 when a problem is found.
pub async fn run_verify(args: &WalVerifyArgs, store: &StoreArgs, out: Output) -> CliResult<()> {
    let report = pitr::wal_verify(&location(store), args).await?;
    out.emit(&report, || report.to_text());
    match pitr::wal_verify_failure(&report) {
        None => Ok(()),
        Some((kind, message)) => Err(CliError {
            message,
            code: kind.exit_code(),
        }),
    }
}

/// `dbseal restore ID --pgdata DIR …`: the whole command (dry run, keys, output).
pub async fn run_restore_pgdata(
    args: &crate::commands::restore::RestoreArgs,
    manifest: &Manifest,
    store: BackupStore,
    store_args: &StoreArgs,
    out: Output,
    cancel: &tokio_util::sync::CancellationToken,
) -> CliResult<()> {
    let pitr_args = &args.target.pitr;
    let plan = pitr::plan_pgdata_restore(manifest, pitr_args)?;
    if args.target.dry_run {
        out.emit(&plan, || plan.to_text(manifest));
        return Ok(());
    }
    let options = args
        .keys
        .restore_options(crate::progress::bar("restore", out.quiet || out.json))?;
    let ctx = backup_core::RestoreContext {
        store,
        options,
        cancel: cancel.clone(),
    };
    let report = pitr::restore_pgdata(
        &ctx,
        manifest,
        pitr_args,
        &location(store_args),
        &key_files(&args.keys),
        &pitr::current_dbseal()?,
    )
    .await?;
    out.emit(&report, || report.to_text());
    Ok(())
}

fn key_files(keys: &KeyArgs) -> KeyFiles {
    KeyFiles {
        identities: keys.identities.clone(),
        passphrase_file: keys.passphrase_file.clone(),
    }
}
