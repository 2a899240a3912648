//! What xtask adds to the supervision of its child processes ([`mesh::process`]): [`Signals`]
//! turns SIGINT and SIGTERM sent to xtask into an [`Interrupted`] error, so that whoever owns the
//! children gets to stop them instead of xtask dying with its children still running.

use std::fmt;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

/// SIGINT (Ctrl-C) or SIGTERM reached xtask.
#[derive(Debug, Clone, Copy)]
pub struct Interrupted(pub &'static str);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interrupted by {}", self.0)
    }
}

impl std::error::Error for Interrupted {}

/// Listens for SIGINT and SIGTERM from the moment it is created (not from the first poll, as
/// `tokio::signal::ctrl_c` would), so that no signal between start-up and the first wait
/// kills xtask with its children still running.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must be called within a tokio runtime.
    pub fn new() -> Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    /// Completes on the next SIGINT or SIGTERM.
    pub async fn recv(&mut self) -> Interrupted {
        tokio::select! {
            _ = self.int.recv() => Interrupted("SIGINT"),
            _ = self.term.recv() => Interrupted("SIGTERM"),
        }
    }
}
