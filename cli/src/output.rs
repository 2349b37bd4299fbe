//! Printing results: human text, or one JSON document with `--json`.

use serde::Serialize;

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

    /// An informational line on stderr (not in JSON or quiet mode).
    pub fn info(&self, line: &str) {
        if !self.json && !self.quiet {
            eprintln!("{line}");
        }
    }
}
