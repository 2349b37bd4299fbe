//! `dbseal config check`: validate the configuration file and print it resolved, with
//! secrets redacted (`backup_core::ops::config::check`).

use backup_core::ops::config::{self, Config};
use backup_core::Registry;
use clap::{Args, Subcommand};

use crate::exit::{CliError, CliResult};
use crate::output::Output;

/// `dbseal config`.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate the config file (`--config`, $DBSEAL_CONFIG or ./dbseal.toml): syntax,
    /// unknown keys, `${VAR}` references, password and key files, each datastore's
    /// options. Prints the resolved configuration with secrets shown as **REDACTED**.
    Check,
}

/// Runs `dbseal config …`.
pub fn run(
    args: &ConfigArgs,
    config: Option<&Config>,
    registry: &Registry,
    out: Output,
) -> CliResult<()> {
    let ConfigCommand::Check = args.command;
    let config =
        config.ok_or_else(|| CliError::usage(config::missing_config_message("no config file")))?;
    let value = config::check(config, registry)?;
    out.emit(&value, || {
        let text = toml::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
        format!("{}: ok\n{}", config.path.display(), config.scrub(&text))
    });
    Ok(())
}
