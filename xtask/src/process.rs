//! Child processes that never outlive xtask.
//!
//! [`Children`] owns every process a task starts. Stopping is polite first, as Kubernetes does
//! it (SIGTERM, then SIGKILL after a grace period); dropping the guard, on any error path, on
//! an interrupt or in a panic, kills and reaps whatever is still running. [`Signals`] turns
//! SIGINT and SIGTERM sent to xtask into an [`Interrupted`] error, so that the guard gets to
//! clean up instead of the process dying with its children still running.

use std::{
    collections::VecDeque,
    fmt,
    io::{BufRead, BufReader, Read},
    os::unix::process::ExitStatusExt,
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex, PoisonError},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tokio::{
    signal::unix::{SignalKind, signal},
    time::Instant,
};

/// How often a wait for a process looks at it again.
const POLL: Duration = Duration::from_millis(20);
/// How many of a process's last stderr lines are kept for error messages.
const KEPT_LINES: usize = 50;
/// How long to wait for the rest of an exited process's stderr.
const STDERR_EOF_WAIT: Duration = Duration::from_secs(1);

/// The processes a task started; see the module documentation.
#[derive(Default)]
pub struct Children {
    procs: Vec<Proc>,
}

/// One child process, and the last lines it wrote to stderr.
pub struct Proc {
    name: String,
    child: Child,
    stderr: Tail,
}

impl Children {
    /// Starts `command` as `name`, with no stdin and its stderr kept (its last lines go into
    /// error messages); stdout is as `command` sets it. Returns the index for [`get_mut`].
    ///
    /// [`get_mut`]: Self::get_mut
    pub fn spawn(&mut self, name: &str, mut command: Command) -> Result<usize> {
        command.stdin(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().with_context(|| {
            format!(
                "cannot start {name} ({})",
                command.get_program().to_string_lossy()
            )
        })?;
        let stderr = Tail::default();
        let stream = child.stderr.take();
        // Owned before anything else can fail, so that the guard stops it.
        self.procs.push(Proc {
            name: name.to_owned(),
            child,
            stderr: stderr.clone(),
        });
        if let Some(stream) = stream {
            stderr
                .follow(stream)
                .with_context(|| format!("cannot read the stderr of {name}"))?;
        }
        Ok(self.procs.len() - 1)
    }

    pub fn get_mut(&mut self, index: usize) -> &mut Proc {
        &mut self.procs[index]
    }

    /// Sends SIGTERM to every process still running, waits up to `grace` for them to exit,
    /// then kills and reaps the rest. Fails, naming each, when one that was running exited
    /// with a failure or had to be killed; processes that had exited before are not judged.
    pub async fn stop_all(&mut self, grace: Duration) -> Result<()> {
        let deadline = Instant::now() + grace;
        let mut running = Vec::new();
        for (i, proc) in self.procs.iter_mut().enumerate() {
            if proc.try_exit()?.is_none() {
                proc.terminate()?;
                running.push(i);
            }
        }
        let mut problems = Vec::new();
        for i in running {
            let proc = &mut self.procs[i];
            match proc.wait_exit(deadline).await? {
                Some(status)
                    if status.success() || status.signal() == Some(Signal::SIGTERM as i32) => {}
                Some(status) => {
                    let tail = proc.stderr_tail(5);
                    problems.push(format!(
                        "{} exited with {status} on SIGTERM{tail}",
                        proc.name
                    ));
                }
                None => {
                    let _ = proc.child.kill();
                    let _ = proc.child.wait();
                    let tail = proc.stderr_tail(5);
                    problems.push(format!(
                        "{} did not exit within {} of SIGTERM and was killed{tail}",
                        proc.name,
                        humantime::format_duration(grace),
                    ));
                }
            }
        }
        if !problems.is_empty() {
            bail!("{}", problems.join("; "));
        }
        Ok(())
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for proc in &mut self.procs {
            // Both are no-ops for a process that was already reaped: std never signals a pid
            // it has waited for, since that pid may belong to someone else by now.
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's stdout, if `Command::stdout(Stdio::piped())` asked for one; once.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// How the process exited, or `None` while it runs; reaps it once it has exited.
    pub fn try_exit(&mut self) -> Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("cannot tell whether {} is still running", self.name))
    }

    /// Sends SIGTERM, unless the process has already exited.
    pub fn terminate(&mut self) -> Result<()> {
        if self.try_exit()?.is_some() {
            return Ok(());
        }
        // Not reaped (try_wait said it runs), so the pid is still this child's.
        let pid = Pid::from_raw(i32::try_from(self.pid()).context("pid out of range")?);
        kill(pid, Signal::SIGTERM)
            .with_context(|| format!("cannot send SIGTERM to {} (pid {pid})", self.name))
    }

    /// Waits until the process exits or `deadline` passes (`None`).
    pub async fn wait_exit(&mut self, deadline: Instant) -> Result<Option<ExitStatus>> {
        loop {
            if let Some(status) = self.try_exit()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(POLL.min(deadline - Instant::now())).await;
        }
    }

    /// The last `n` lines of stderr as the end of a one-line error message:
    /// `; its last stderr lines: a | b` (or `; it wrote nothing to stderr`).
    pub fn stderr_tail(&mut self, n: usize) -> String {
        let exited = matches!(self.child.try_wait(), Ok(Some(_)));
        let lines = self.stderr.last(
            n,
            if exited {
                STDERR_EOF_WAIT
            } else {
                Duration::ZERO
            },
        );
        if lines.is_empty() {
            "; it wrote nothing to stderr".to_owned()
        } else {
            format!("; its last stderr lines: {}", lines.join(" | "))
        }
    }
}

/// The last lines a stream gave, read by a thread of its own so that the writer never blocks.
#[derive(Clone, Default)]
struct Tail {
    shared: Arc<(Mutex<TailState>, Condvar)>,
}

#[derive(Default)]
struct TailState {
    lines: VecDeque<String>,
    eof: bool,
}

impl Tail {
    fn follow(&self, stream: impl Read + Send + 'static) -> std::io::Result<()> {
        let tail = self.clone();
        std::thread::Builder::new()
            .name("stderr-tail".into())
            .spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => tail.push(String::from_utf8_lossy(&line).trim_end().to_owned()),
                    }
                }
                tail.close();
            })
            .map(drop)
    }

    fn push(&self, line: String) {
        if line.is_empty() {
            return;
        }
        let mut state = self.shared.0.lock().unwrap_or_else(PoisonError::into_inner);
        if state.lines.len() == KEPT_LINES {
            state.lines.pop_front();
        }
        state.lines.push_back(line);
    }

    fn close(&self) {
        let mut state = self.shared.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.eof = true;
        self.shared.1.notify_all();
    }

    /// The last `n` lines, after waiting up to `eof_wait` for the stream to end.
    fn last(&self, n: usize, eof_wait: Duration) -> Vec<String> {
        let (lock, ended) = &*self.shared;
        let state = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (state, _) = ended
            .wait_timeout_while(state, eof_wait, |s| !s.eof)
            .unwrap_or_else(PoisonError::into_inner);
        let skip = state.lines.len().saturating_sub(n);
        state.lines.iter().skip(skip).cloned().collect()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A child whose stdout does not hold the test harness's open.
    fn program(program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command.args(args).stdout(Stdio::null());
        command
    }

    fn sleep() -> Command {
        program("sleep", &["600"])
    }

    fn sh(script: &str) -> Command {
        program("sh", &["-c", script])
    }

    fn is_gone(pid: u32) -> bool {
        kill(Pid::from_raw(pid as i32), None) == Err(nix::errno::Errno::ESRCH)
    }

    #[test]
    fn dropping_the_guard_kills_and_reaps_every_child() {
        let mut children = Children::default();
        let a = children.spawn("a", sleep()).unwrap();
        let b = children.spawn("b", sleep()).unwrap();
        let pids = [children.get_mut(a).pid(), children.get_mut(b).pid()];
        drop(children);
        for pid in pids {
            assert!(is_gone(pid), "pid {pid} still exists");
        }
    }

    #[tokio::test]
    async fn stopping_sends_sigterm_and_kills_what_ignores_it_after_the_grace_period() {
        let mut children = Children::default();
        let polite = children.spawn("polite", sleep()).unwrap();
        let stubborn = children
            .spawn(
                "stubborn",
                sh("trap '' TERM; echo ignoring SIGTERM >&2; while :; do sleep 0.05; done"),
            )
            .unwrap();
        let pids = [
            children.get_mut(polite).pid(),
            children.get_mut(stubborn).pid(),
        ];
        // The trap is set once the line is written: wait for it rather than for a while.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !children
            .get_mut(stubborn)
            .stderr_tail(1)
            .contains("ignoring SIGTERM")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the trap was never set"
            );
            tokio::time::sleep(POLL).await;
        }
        let err = children
            .stop_all(Duration::from_millis(300))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("stubborn did not exit within 300ms of SIGTERM and was killed"),
            "{err}"
        );
        assert!(!err.contains("polite"), "{err}");
        for pid in pids {
            assert!(is_gone(pid), "pid {pid} still exists");
        }
    }

    #[tokio::test]
    async fn a_child_that_exited_before_stopping_is_not_judged() {
        let mut children = Children::default();
        let i = children.spawn("quick", sh("exit 3")).unwrap();
        let status = children
            .get_mut(i)
            .wait_exit(Instant::now() + Duration::from_secs(10))
            .await
            .unwrap()
            .expect("exits");
        assert_eq!(status.code(), Some(3));
        children.stop_all(Duration::from_secs(1)).await.unwrap();
    }

    #[test]
    fn the_stderr_tail_keeps_the_last_lines_in_one_line() {
        let mut children = Children::default();
        let i = children
            .spawn(
                "talker",
                sh("for i in $(seq 1 100); do echo line $i >&2; done"),
            )
            .unwrap();
        let proc = children.get_mut(i);
        let _ = proc.child.wait();
        assert_eq!(
            proc.stderr_tail(3),
            "; its last stderr lines: line 98 | line 99 | line 100"
        );
        let j = children.spawn("quiet", sh("true")).unwrap();
        let proc = children.get_mut(j);
        let _ = proc.child.wait();
        assert_eq!(proc.stderr_tail(3), "; it wrote nothing to stderr");
    }
}
