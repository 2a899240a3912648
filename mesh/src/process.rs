//! Child processes under supervision: the twin's pods and Envoys, and xtask's own children.
//!
//! A [`Process`] starts with its stdin closed and its stderr either kept in memory or written to
//! a log file ([`Output`]); either way its last lines end the error messages about it
//! ([`StderrTail`]). [`Process::wait_ready`] asks a readiness probe until it says yes, and fails
//! early when the process exits first. Stopping is polite first, as Kubernetes does it: SIGTERM,
//! then SIGKILL after a grace period ([`Process::stop`], [`stop_all`]). Dropping a `Process`, on
//! any error path or in a panic, kills and reaps it if it still runs, so that no child outlives
//! its owner.

mod error;
mod tail;
#[cfg(test)]
mod tests;

use std::{
    fs::OpenOptions,
    os::unix::process::ExitStatusExt,
    path::PathBuf,
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    time::Duration,
};

use nix::{
    errno::Errno,
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tokio::time::{Instant, sleep, timeout};
use tracing::warn;

pub use error::ProcessError;
pub use tail::StderrTail;

/// How often a wait for a process looks at it, and asks its readiness probe, again.
pub const POLL: Duration = Duration::from_millis(20);

/// How many of its last stderr lines an error message about a process quotes.
pub const TAIL_LINES: usize = 5;

/// Where a process's stderr goes, and so where its last lines are read back from.
#[derive(Debug, Clone)]
pub enum Output {
    /// Piped and kept in memory (its last lines); stdout as the command sets it.
    Keep,
    /// Written to the file at `path`, created or, when `append`, continued (as a restarted
    /// container's log is); stdout into the same file when `stdout`, else as the command sets it.
    Log {
        path: PathBuf,
        append: bool,
        stdout: bool,
    },
}

/// One supervised child process; killed and reaped when dropped.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    stderr: tail::Tail,
    /// How it exited, once a wait saw it (and reaped it).
    status: Option<ExitStatus>,
}

impl Process {
    /// Starts `command` as `name` (the name error messages use), with no stdin and its stderr
    /// as `output` says.
    pub fn spawn(
        name: impl Into<String>,
        mut command: Command,
        output: Output,
    ) -> Result<Process, ProcessError> {
        let name = name.into();
        command.stdin(Stdio::null());
        let stderr = match output {
            Output::Keep => {
                command.stderr(Stdio::piped());
                tail::Tail::memory()
            }
            Output::Log {
                path,
                append,
                stdout,
            } => {
                let log_error = |source| ProcessError::Log {
                    name: name.clone(),
                    path: path.clone(),
                    source,
                };
                let file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(append)
                    .truncate(!append)
                    .open(&path)
                    .map_err(log_error)?;
                if stdout {
                    command.stdout(file.try_clone().map_err(log_error)?);
                }
                command.stderr(file);
                tail::Tail::File(path)
            }
        };
        let mut child = command.spawn().map_err(|source| ProcessError::Spawn {
            name: name.clone(),
            program: command.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        let stream = child.stderr.take();
        // Owned before anything else can fail, so that dropping it stops the child.
        let process = Process {
            name,
            child,
            stderr,
            status: None,
        };
        if let Some(stream) = stream {
            process
                .stderr
                .follow(stream)
                .map_err(|source| ProcessError::Stderr {
                    name: process.name.clone(),
                    source,
                })?;
        }
        Ok(process)
    }

    /// The name error messages use.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the process exited, once a wait (or [`Process::kill`]) saw it; `None` before.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// The process's stdout, if the command asked for a pipe; once.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// How the process exited, or `None` while it runs; reaps it once it has exited.
    pub fn try_exit(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        if self.status.is_none() {
            self.status = self.child.try_wait().map_err(|source| ProcessError::Wait {
                name: self.name.clone(),
                source,
            })?;
        }
        Ok(self.status)
    }

    /// Waits until the process exits (its status) or `limit` passes (`None`).
    pub async fn wait_exit(&mut self, limit: Duration) -> Result<Option<ExitStatus>, ProcessError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_exit()? {
                return Ok(Some(status));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            sleep(POLL.min(left)).await;
        }
    }

    /// Asks `probe` every [`POLL`] until it answers `Ok` (what it found, such as an address), for
    /// at most `limit`. Fails early when the process exits first ([`ProcessError::Exited`]);
    /// past `limit` the error ([`ProcessError::NotReady`]) holds the probe's last `Err`, what it
    /// saw instead. An answer that does not come within the time left counts as none.
    pub async fn wait_ready<T, P, F>(
        &mut self,
        limit: Duration,
        mut probe: P,
    ) -> Result<T, ProcessError>
    where
        P: FnMut() -> F,
        F: Future<Output = Result<T, String>>,
    {
        let deadline = Instant::now() + limit;
        let mut last = None;
        loop {
            if let Some(status) = self.try_exit()? {
                return Err(ProcessError::Exited {
                    name: self.name.clone(),
                    status,
                    tail: self.stderr_tail(TAIL_LINES),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, probe()).await {
                Ok(Ok(ready)) => return Ok(ready),
                Ok(Err(seen)) => last = Some(seen),
                Err(_) => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ProcessError::NotReady {
                    name: self.name.clone(),
                    limit,
                    last,
                    tail: self.stderr_tail(TAIL_LINES),
                });
            }
            sleep(POLL.min(left)).await;
        }
    }

    /// Sends SIGTERM, unless the process has already exited.
    pub fn terminate(&mut self) -> Result<(), ProcessError> {
        if self.try_exit()?.is_some() {
            return Ok(());
        }
        // Not reaped (try_wait said it runs), so the pid is still this child's.
        let pid = self.pid();
        i32::try_from(pid)
            .map_err(|_| Errno::ESRCH)
            .and_then(|raw| kill(Pid::from_raw(raw), Signal::SIGTERM))
            .map_err(|source| ProcessError::Signal {
                name: self.name.clone(),
                pid,
                source,
            })
    }

    /// Stops the process as Kubernetes stops a container: SIGTERM, up to `grace` to exit, then
    /// SIGKILL; reaps it. Fails when it exited with a failure on SIGTERM or had to be killed; a
    /// process that had exited before is not judged.
    pub async fn stop(&mut self, grace: Duration) -> Result<(), ProcessError> {
        if self.try_exit()?.is_some() {
            return Ok(());
        }
        self.terminate()?;
        match self.wait_exit(grace).await? {
            Some(status) if status.success() || status.signal() == Some(Signal::SIGTERM as i32) => {
                Ok(())
            }
            Some(status) => Err(ProcessError::FailedOnStop {
                name: self.name.clone(),
                status,
                tail: self.stderr_tail(TAIL_LINES),
            }),
            None => {
                self.kill();
                Err(ProcessError::Killed {
                    name: self.name.clone(),
                    grace,
                    tail: self.stderr_tail(TAIL_LINES),
                })
            }
        }
    }

    /// SIGKILL, as `crictl stop --timeout 0`: no drain. Returns once the process has exited and
    /// is reaped; does nothing to one that was reaped before.
    pub fn kill(&mut self) {
        if self.status.is_some() {
            return;
        }
        // Not reaped, so the pid is still this child's.
        if let Err(error) = self.child.kill() {
            warn!(name = %self.name, pid = self.pid(), %error, "cannot kill the process");
            return;
        }
        // SIGKILL cannot be caught: this wait is short.
        match self.child.wait() {
            Ok(status) => self.status = Some(status),
            Err(error) => {
                warn!(name = %self.name, pid = self.pid(), %error, "cannot reap the process");
            }
        }
    }

    /// The last `n` lines the process wrote to stderr. Once it has exited, waits up to a second
    /// for the rest of a piped stderr.
    pub fn stderr_tail(&mut self, n: usize) -> StderrTail {
        let exited = matches!(self.try_exit(), Ok(Some(_)));
        self.stderr.last(n, exited)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Stops every process at once ([`Process::stop`]), each with `grace`; fails naming every one
/// that exited with a failure on SIGTERM or had to be killed.
pub async fn stop_all<'a>(
    processes: impl IntoIterator<Item = &'a mut Process>,
    grace: Duration,
) -> Result<(), ProcessError> {
    let stops = processes.into_iter().map(|process| process.stop(grace));
    let mut errors: Vec<ProcessError> = futures::future::join_all(stops)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(ProcessError::Several(errors)),
    }
}
