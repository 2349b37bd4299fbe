//! Printing results (human text, or one JSON document with `--json`), and the
//! front-end the operations report to: progress bars, notices on stderr, the
//! production prompt on a terminal.

use std::io::IsTerminal;
use std::sync::Arc;

use backup_core::{Error, Frontend, Notice, Progress};
use serde::Serialize;

use crate::exit::CliResult;

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Print JSON on stdout instead of text.
    pub json: bool,
    /// No progress bars, no informational text on stderr.
    pub quiet: bool,
}

impl Output {
    /// Prints `value` as JSON, or the text `human` builds.
    pub fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).expect("serializable")
            );
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
        }
    }

    /// Prints a report whose failure is itself a result (status, a drill, verify
    /// --latest, a backup set), then ends with that failure's exit code.
    pub fn report<T: Serialize>(
        &self,
        value: &T,
        text: String,
        failure: Option<Error>,
    ) -> CliResult<()> {
        crate::result_emitted();
        self.emit(value, || text);
        failure.map_or(Ok(()), |e| Err(e.into()))
    }

    /// An informational line on stderr (not in JSON or quiet mode).
    pub fn info(&self, line: &str) {
        if !self.json && !self.quiet {
            eprintln!("{line}");
        }
    }
}

impl Frontend for Output {
    fn progress(&self, what: &str) -> Option<Arc<dyn Progress>> {
        crate::progress::bar(what, self.quiet || self.json)
    }

    fn notice(&self, notice: Notice) {
        match notice {
            Notice::Info(line) => self.info(&line),
            Notice::Warning(line) => eprintln!("dbseal: warning: {line}"),
            Notice::Important(line) => eprintln!("dbseal: {line}"),
        }
    }

    fn confirm_production(&self, name: &str) -> Option<String> {
        if self.json || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return None;
        }
        eprint!("datastore `{name}` is marked production. Type its name to restore into it: ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).ok()?;
        Some(line)
    }
}
