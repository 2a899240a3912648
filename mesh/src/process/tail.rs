//! The last lines a process wrote to stderr, from a pipe or from its log file.

use std::{
    collections::VecDeque,
    fmt,
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    sync::{Arc, Condvar, Mutex, PoisonError},
    time::Duration,
};

/// How many of a piped stderr's last lines are kept.
const KEPT_LINES: usize = 50;

/// How long to wait for the rest of an exited process's piped stderr.
const EOF_WAIT: Duration = Duration::from_secs(1);

/// A process's last stderr lines (trimmed, blank ones left out), shown at the end of a one-line
/// error message: `; its last stderr lines: a | b`, or `; it wrote nothing to stderr`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StderrTail(Vec<String>);

impl StderrTail {
    /// The lines, oldest first.
    pub fn lines(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for StderrTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            write!(f, "; it wrote nothing to stderr")
        } else {
            write!(f, "; its last stderr lines: {}", self.0.join(" | "))
        }
    }
}

/// Where a process's stderr lines are read back from.
#[derive(Debug)]
pub(super) enum Tail {
    /// A pipe, read by a thread of its own so that the process never blocks on it.
    Memory(Arc<(Mutex<Lines>, Condvar)>),
    /// A log file.
    File(PathBuf),
}

#[derive(Debug, Default)]
pub(super) struct Lines {
    lines: VecDeque<String>,
    eof: bool,
}

impl Tail {
    pub(super) fn memory() -> Tail {
        Tail::Memory(Arc::default())
    }

    /// Reads `stream` into the kept lines until it ends; for [`Tail::Memory`] only.
    pub(super) fn follow(&self, stream: impl Read + Send + 'static) -> std::io::Result<()> {
        let Tail::Memory(shared) = self else {
            return Ok(());
        };
        let shared = Arc::clone(shared);
        std::thread::Builder::new()
            .name("stderr-tail".into())
            .spawn(move || {
                let (lock, ended) = &*shared;
                let mut reader = BufReader::new(stream);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let text = String::from_utf8_lossy(&line).trim().to_owned();
                            if text.is_empty() {
                                continue;
                            }
                            let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
                            if state.lines.len() == KEPT_LINES {
                                state.lines.pop_front();
                            }
                            state.lines.push_back(text);
                        }
                    }
                }
                lock.lock().unwrap_or_else(PoisonError::into_inner).eof = true;
                ended.notify_all();
            })
            .map(drop)
    }

    /// The last `n` lines; from a pipe, after waiting a while for its end when the process has
    /// `exited`.
    pub(super) fn last(&self, n: usize, exited: bool) -> StderrTail {
        let lines: Vec<String> = match self {
            Tail::Memory(shared) => {
                let (lock, ended) = &**shared;
                let wait = if exited { EOF_WAIT } else { Duration::ZERO };
                let state = lock.lock().unwrap_or_else(PoisonError::into_inner);
                let (state, _) = ended
                    .wait_timeout_while(state, wait, |s| !s.eof)
                    .unwrap_or_else(PoisonError::into_inner);
                state.lines.iter().cloned().collect()
            }
            Tail::File(path) => {
                let bytes = std::fs::read(path).unwrap_or_default();
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
        };
        let skip = lines.len().saturating_sub(n);
        StderrTail(lines.into_iter().skip(skip).collect())
    }
}
