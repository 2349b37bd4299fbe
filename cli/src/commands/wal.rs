//! `dbseal wal-push`, `wal-fetch`, `wal-verify`: PostgreSQL's WAL archive for
//! point-in-time recovery (`--physical` backups are `PostgresDriver`'s).
//! The operations, their options and their exit-code contract live in
//! [`backup_postgres::pitr`]; this module translates flags and prints.

use backup_postgres::pitr::{self, FETCH_MISSING};
use backup_postgres::wal::FetchOutcome;

use crate::common::StoreArgs;
use crate::exit::{CliError, CliResult};
use crate::output::Output;

/// `dbseal wal-push`.
pub type WalPushArgs = pitr::WalPushOptions;
/// `dbseal wal-fetch`.
pub type WalFetchArgs = pitr::WalFetchOptions;
/// `dbseal wal-verify`.
pub type WalVerifyArgs = pitr::WalVerifyOptions;

/// Runs `dbseal wal-push`.
pub async fn run_push(args: &WalPushArgs, store: &StoreArgs, out: Output) -> CliResult<()> {
    let outcome = pitr::wal_push(&store.location(), args).await?;
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
    match pitr::wal_fetch(&store.location(), args).await {
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
    let report = pitr::wal_verify(&store.location(), args).await?;
    out.emit(&report, || report.to_text());
    match pitr::wal_verify_failure(&report) {
        None => Ok(()),
        Some((kind, message)) => Err(CliError {
            message,
            code: kind.exit_code(),
        }),
    }
}
