//! A progress bar with bytes and throughput, shown on a terminal only.

use std::io::IsTerminal;
use std::sync::Arc;

use backup_core::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A terminal progress bar.
pub struct TerminalProgress {
    bar: ProgressBar,
}

impl Progress for TerminalProgress {
    fn set_total(&self, total: Option<u64>) {
        if let Some(t) = total {
            self.bar.set_length(t);
            self.bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
        }
    }
    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A progress bar labelled `what` if stderr is a terminal and output is for humans.
pub fn bar(what: &str, quiet: bool) -> Option<Arc<dyn Progress>> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg} {spinner} {bytes} {binary_bytes_per_sec} {elapsed}")
            .expect("valid template"),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(Arc::new(TerminalProgress { bar }))
}
