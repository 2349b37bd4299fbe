//! `dbseal keygen`: a new age X25519 key pair.

use std::path::PathBuf;

use backup_core::KeyPair;
use clap::Args;

use crate::exit::CliResult;
use crate::output::Output;

/// Writes a new identity file (mode 0600) and prints its recipient (public key).
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the identity (secret key). Refuses to overwrite.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}

/// Runs `dbseal keygen`.
pub fn run(args: &KeygenArgs, out: Output) -> CliResult<()> {
    let pair = KeyPair::generate();
    pair.write_identity_file(&args.output)?;
    let recipient = pair.recipient();
    out.emit(
        &serde_json::json!({ "recipient": recipient, "identity_file": args.output }),
        || recipient.clone(),
    );
    out.info(&format!(
        "identity written to {} (keep it secret, keep a copy offline); back up with --recipient {recipient}",
        args.output.display()
    ));
    Ok(())
}
