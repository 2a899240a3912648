//! The errors of [`crate::process`]: one line each, naming the process and ending with its last
//! stderr lines where they tell why.

use std::{io, path::PathBuf, process::ExitStatus, time::Duration};

use super::StderrTail;

/// An error of starting, watching or stopping a [`super::Process`].
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started.
    #[error("cannot start {name} ({program})")]
    Spawn {
        name: String,
        program: String,
        #[source]
        source: io::Error,
    },

    /// The log file the process writes to could not be opened.
    #[error("cannot open the log {path} of {name}", path = .path.display())]
    Log {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The thread that reads the process's stderr could not be started.
    #[error("cannot read the stderr of {name}")]
    Stderr {
        name: String,
        #[source]
        source: io::Error,
    },

    /// Whether the process still runs could not be told.
    #[error("cannot tell whether {name} is still running")]
    Wait {
        name: String,
        #[source]
        source: io::Error,
    },

    /// SIGTERM could not be sent.
    #[error("cannot send SIGTERM to {name} (pid {pid})")]
    Signal {
        name: String,
        pid: u32,
        #[source]
        source: nix::errno::Errno,
    },

    /// The process exited while its readiness probe waited.
    #[error("{name} exited ({status}) before it was ready{tail}")]
    Exited {
        name: String,
        status: ExitStatus,
        tail: StderrTail,
    },

    /// The readiness probe did not say yes in time.
    #[error(
        "{name} was not ready within {limit}{seen}{tail}",
        limit = humantime::format_duration(*.limit),
        seen = .last.as_ref().map(|last| format!(" ({last})")).unwrap_or_default()
    )]
    NotReady {
        name: String,
        limit: Duration,
        /// What the probe last saw instead, if it answered at all.
        last: Option<String>,
        tail: StderrTail,
    },

    /// The process exited with a failure on SIGTERM.
    #[error("{name} exited with {status} on SIGTERM{tail}")]
    FailedOnStop {
        name: String,
        status: ExitStatus,
        tail: StderrTail,
    },

    /// The process did not exit within its grace period after SIGTERM, and got SIGKILL.
    #[error(
        "{name} did not exit within {grace} of SIGTERM and was killed{tail}",
        grace = humantime::format_duration(*.grace)
    )]
    Killed {
        name: String,
        grace: Duration,
        tail: StderrTail,
    },

    /// Several processes failed to stop cleanly ([`super::stop_all`]).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<ProcessError>),
}
