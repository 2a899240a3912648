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
