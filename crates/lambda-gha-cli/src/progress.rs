//! What people see while the command waits: spinners and byte bars with elapsed time on
//! stderr, plain lines when not on a terminal, nothing with `-q`.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Where progress goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ui {
    /// Errors only.
    pub quiet: bool,
    /// Stdout is for `--json`: what machines print goes to stderr.
    pub json: bool,
}

impl Ui {
    /// A spinner with `message` and the elapsed time; hidden with `-q` or off a terminal.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new_spinner()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// A bar over `total` bytes.
    pub fn bytes(&self, message: impl Into<String>, total: u64) -> ProgressBar {
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(message.into());
        bar
    }

    /// A line for people on stderr (above any bar).
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.quiet {
            #[allow(clippy::print_stderr)] // The command's own voice; stdout stays for --json.
            {
                eprintln!("{}", text.as_ref());
            }
        }
    }
}
