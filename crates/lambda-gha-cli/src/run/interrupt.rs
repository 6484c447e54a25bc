//! The signals that stop a run, and the exit code each gives it.

use serde::Serialize;

/// A signal that stops a run: Ctrl-C, a `kill`, a closed terminal or a CI job's timeout. The
/// first stops the work and cleans up; a second during the cleanup abandons it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Interrupt {
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGTERM (`kill`, a CI runner ending a job, tmux killing its pane).
    Term,
    /// SIGHUP (the terminal closed, an SSH session to the laptop dropped).
    Hup,
}

impl Interrupt {
    /// The signal's name.
    pub fn name(self) -> &'static str {
        match self {
            Interrupt::Int => "SIGINT",
            Interrupt::Term => "SIGTERM",
            Interrupt::Hup => "SIGHUP",
        }
    }

    /// The exit code a shell gives a process that this signal ended: 128 + its number.
    pub fn exit_code(self) -> i32 {
        match self {
            Interrupt::Int => 130,
            Interrupt::Term => 143,
            Interrupt::Hup => 129,
        }
    }
}
