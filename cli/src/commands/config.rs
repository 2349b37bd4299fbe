//! `dbseal config check`: validate the configuration file and print it resolved, with
//! secrets redacted.

use clap::{Args, Subcommand};

use crate::config::Config;
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
    /// unknown keys, `${VAR}` references, password and key files. Prints the resolved
    /// configuration with secrets shown as **REDACTED**.
    Check,
}

/// Runs `dbseal config …`.
pub fn run(args: &ConfigArgs, config: Option<&Config>, out: Output) -> CliResult<()> {
    match args.command {
        ConfigCommand::Check => check(config, out),
    }
}

fn check(config: Option<&Config>, out: Output) -> CliResult<()> {
    let config = config.ok_or_else(|| {
        CliError::usage(format!(
            "no config file: pass --config PATH, set {} or create ./{}",
            crate::config::CONFIG_ENV,
            crate::config::DEFAULT_FILE
        ))
    })?;
    // Files the config refers to must be readable now, not at 2 a.m.
    let mut problems = Vec::new();
    for (name, ds) in &config.datastores {
        if let Err(e) = ds.password(name) {
            problems.push(e.message);
        }
        if let Err(e) = crate::commands::backup::check_kind_options(name, ds, config) {
            problems.push(e.message);
        }
    }
    if let Some(p) = &config.encryption.identity {
        if let Err(e) = backup_core::Decryption::from_identity_file(p) {
            problems.push(format!("[encryption] identity: {e}"));
        }
    }
    if let Some(p) = &config.encryption.passphrase_file {
        if !p.is_file() {
            problems.push(format!(
                "[encryption] passphrase_file {} is not a readable file",
                p.display()
            ));
        }
    }
    if !config.encryption.recipients.is_empty() {
        if let Err(e) = backup_core::Encryption::parse_recipients(&config.encryption.recipients) {
            problems.push(format!("[encryption] recipients: {e}"));
        }
    }
    if !problems.is_empty() {
        return Err(CliError::usage(config.scrub(&format!(
            "{}: {}",
            config.path.display(),
            problems.join("; ")
        ))));
    }
    let mut value = config.redacted();
    strip_nulls(&mut value);
    out.emit(&value, || {
        let mut s = format!("{}: ok\n", config.path.display());
        s.push_str(
            &config.scrub(&toml::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())),
        );
        s
    });
    Ok(())
}

/// Removes null fields (TOML has no null).
fn strip_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
