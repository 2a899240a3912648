//! What the xtask integration tests share: running a command to its end within a deadline.

#![allow(dead_code)] // each test crate uses its own part of it

use std::{
    process::Command,
    time::{Duration, Instant},
};

pub use xtask::testing::run::{Run, run, run_watching};

pub const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

/// Runs the xtask binary with `args`, within `limit`.
pub fn xtask(args: &[&str], limit: Duration) -> Run {
    run(Command::new(XTASK).args(args), limit)
}

/// Where a run of the twin lives, from its progress line `... twin on 127.X.Y.0/24 ... logs in DIR`:
/// the block's prefix (`127.X.Y`) and the work directory. `None` when no line names a twin.
pub fn twin_of(stderr: &str) -> Option<(String, String)> {
    let line = stderr.lines().find(|l| l.contains("twin on 127."))?;
    let block = line
        .split("twin on ")
        .nth(1)
        .and_then(|r| r.split('/').next())?
        .trim_end_matches(".0")
        .to_owned();
    let work_dir = line.rsplit("logs in ").next()?.trim().to_owned();
    Some((block, work_dir))
}

/// A process the /proc scan found: its pid, its program's file name, its command line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub pid: u32,
    pub program: String,
    pub cmdline: String,
}

/// The processes now running with a server address of `block` in their environment
/// (`LISTEN_ADDR=127.X.Y.…`) or any of `markers` in their command line.
pub fn processes_of(block: &str, markers: &[&str]) -> Vec<Found> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let path = entry.path();
        let environ = std::fs::read(path.join("environ")).unwrap_or_default();
        let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
        let environ = String::from_utf8_lossy(&environ);
        let cmdline = String::from_utf8_lossy(&cmdline);
        if environ.contains(&format!("LISTEN_ADDR={block}."))
            || markers.iter().any(|m| cmdline.contains(m))
        {
            let program = cmdline.split('\0').next().unwrap_or_default();
            found.push(Found {
                pid,
                program: program.rsplit('/').next().unwrap_or_default().to_owned(),
                cmdline: cmdline.replace('\0', " ").trim_end().to_owned(),
            });
        }
    }
    found
}

/// Waits (up to 10s) until no process is left with a server address of `block` in its environment
/// or any of `markers` in its command line; fails naming those that are.
pub fn assert_no_process_left(block: &str, markers: &[&str]) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_of(block, markers);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < end,
            "processes left running after xtask exited: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What marks a local run's processes besides a server's `LISTEN_ADDR`: the work directory (every
/// Envoy's bootstrap lives there) and the twin's DNS server in the client's target
/// (`dns://127.X.Y.1:PORT/...`).
fn twin_markers(block: &str, work_dir: &str) -> [String; 2] {
    [work_dir.to_owned(), format!("//{block}.")]
}

/// A finished run of a command that started a twin, and what the /proc scan saw while it ran.
pub struct Watched {
    pub run: Run,
    /// The twin's block (`127.X.Y`) and work directory, from the line the run printed at its start.
    pub twin: Option<(String, String)>,
    /// Every process of the twin the scan found while the command ran.
    pub seen: std::collections::BTreeSet<Found>,
}

impl Watched {
    /// Whether the scan saw a process of this program (`hello-server`, `hello-client`, `envoy`).
    pub fn saw(&self, program: &str) -> bool {
        self.seen.iter().any(|f| f.program == program)
    }

    /// The check that nothing is left can fail: the run named its twin, and the same scan found
    /// `programs` running while it ran. Then nothing of the twin is left.
    pub fn assert_nothing_left(&self, programs: &[&str]) {
        let Some((block, work_dir)) = &self.twin else {
            panic!(
                "the run never printed the line naming its twin: {}",
                self.run.stderr
            );
        };
        for program in programs {
            assert!(
                self.saw(program),
                "the scan never found {program} running: it cannot tell whether one is left (saw {:?})",
                self.seen
            );
        }
        let markers = twin_markers(block, work_dir);
        assert_no_process_left(block, &[&markers[0], &markers[1]]);
    }
}

/// How often the scan of a watched run looks at /proc.
const SCAN_EVERY: Duration = Duration::from_millis(100);

/// Runs the xtask binary with `args` within `limit`. Once it prints the line naming its twin
/// (`twin on 127.X.Y.0/24, logs in DIR`), /proc is scanned for the twin's processes at each line of
/// stderr and every [`SCAN_EVERY`] until it exits.
pub fn xtask_watched(args: &[&str], limit: Duration) -> Watched {
    xtask_watched_with(args, limit, |_| {})
}

/// As [`xtask_watched`], and hands each line of stderr to `on_line` first.
pub fn xtask_watched_with(
    args: &[&str],
    limit: Duration,
    mut on_line: impl FnMut(&str) + Send,
) -> Watched {
    use std::sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    };
    let twin: Mutex<Option<(String, String)>> = Mutex::new(None);
    let seen = Mutex::new(std::collections::BTreeSet::new());
    let done = AtomicBool::new(false);
    let scan = || {
        let Some((block, work_dir)) = twin.lock().unwrap().clone() else {
            return;
        };
        let markers = twin_markers(&block, &work_dir);
        let found = processes_of(&block, &[&markers[0], &markers[1]]);
        seen.lock().unwrap().extend(found);
    };
    let run = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                scan();
                std::thread::sleep(SCAN_EVERY);
            }
        });
        let run = run_watching(Command::new(XTASK).args(args), limit, |line| {
            on_line(line);
            {
                let mut twin = twin.lock().unwrap();
                if twin.is_none() {
                    *twin = twin_of(line);
                }
            }
            scan();
        });
        done.store(true, Ordering::Relaxed);
        run
    });
    Watched {
        run,
        twin: twin.into_inner().unwrap(),
        seen: seen.into_inner().unwrap(),
    }
}
