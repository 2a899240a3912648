//! What the xtask integration tests share: running a command to its end within a deadline.

#![allow(dead_code)] // each test crate uses its own part of it

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

pub const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

/// A finished command.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end with stdin closed. Past `limit` it gets SIGTERM (so that it stops what
/// it started) and the test fails.
pub fn run(command: &mut Command, limit: Duration) -> Run {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let out = std::thread::scope(|s| {
        let waiter = s.spawn(|| child.wait_with_output());
        let end = Instant::now() + limit;
        while !waiter.is_finished() {
            if Instant::now() > end {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                panic!("{command:?} ran longer than {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        waiter.join().unwrap().expect("wait for the command")
    });
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

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

/// Waits (up to 10s) until no process is left with a server address of `block` in its environment
/// or any of `markers` in its command line; fails naming those that are.
pub fn assert_no_process_left(block: &str, markers: &[&str]) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let mut left = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let path = entry.path();
            let environ = std::fs::read(path.join("environ")).unwrap_or_default();
            let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
            let environ = String::from_utf8_lossy(&environ);
            let cmdline = String::from_utf8_lossy(&cmdline);
            if environ.contains(&format!("LISTEN_ADDR={block}."))
                || markers.iter().any(|m| cmdline.contains(m))
            {
                left.push(format!(
                    "{}: {}",
                    path.display(),
                    cmdline.replace('\0', " ")
                ));
            }
        }
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
