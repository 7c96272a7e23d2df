//! Progress bars for long work, drawn on stderr only when stderr is a terminal.
//!
//! When stderr is redirected (scripts, CI, tests) every method is a no-op, so nothing but the
//! command's own output is printed.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress indicator: a bar when the total is known, a spinner otherwise.
pub struct Progress {
    bar: ProgressBar,
}

/// Whether progress is drawn at all.
fn enabled() -> bool {
    std::io::stderr().is_terminal()
}

impl Progress {
    /// A spinner with a message and a running count of `unit`s (e.g. "lines").
    pub fn spinner(message: &str, unit: &str) -> Progress {
        if !enabled() {
            return Progress::hidden();
        }
        let bar = ProgressBar::new_spinner();
        let template = if unit.is_empty() {
            "{spinner} {msg} ({elapsed})".to_string()
        } else {
            format!("{{spinner}} {{msg}} {{human_pos}} {unit} ({{elapsed}})")
        };
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar }
    }

    /// A bar over `total` items.
    pub fn items(message: &str, total: u64) -> Progress {
        Progress::bar(
            message,
            total,
            "{msg} [{bar:40}] {human_pos}/{human_len} ({eta} left)",
        )
    }

    /// A bar over `total` bytes.
    pub fn bytes(message: &str, total: u64) -> Progress {
        Progress::bar(
            message,
            total,
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({eta} left)",
        )
    }

    fn bar(message: &str, total: u64, template: &str) -> Progress {
        if !enabled() {
            return Progress::hidden();
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_string());
        Progress { bar }
    }

    fn hidden() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
        }
    }

    /// Advances by `n`.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Sets the position.
    pub fn set(&self, pos: u64) {
        self.bar.set_position(pos);
    }

    /// Replaces the message.
    pub fn message(&self, message: String) {
        self.bar.set_message(message);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
