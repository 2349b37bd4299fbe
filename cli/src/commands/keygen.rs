//! `dbseal keygen`: a new age key pair and a signing key.

use std::path::PathBuf;

use clap::Args;

use crate::exit::CliResult;
use crate::output::Output;

/// Writes a new identity file and, beside it, a signing key (`IDENTITY.minisign.key`,
/// both mode 0600) with its public key (`IDENTITY.minisign.pub`); prints the recipient.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the identity (secret key). Refuses to overwrite.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}

/// Runs `dbseal keygen`.
pub fn run(args: &KeygenArgs, out: Output) -> CliResult<()> {
    let keys = backup_core::keys::generate_key_files(&args.output)?;
    let recipient = keys.recipient.clone();
    out.emit(&keys, || recipient.clone());
    keys.notes().iter().for_each(|n| out.info(n));
    Ok(())
}
