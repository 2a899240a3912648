//! Running a command to its end within a deadline, for the integration tests.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// A finished command.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end with stdin closed. Past `limit` it gets SIGTERM (so that it stops what
/// it started) and the test fails.
pub fn run(command: &mut Command, limit: Duration) -> Run {
    run_watching(command, limit, |_| {})
}

/// As [`run`], and hands each line of stderr to `on_line` as it comes, while the command runs.
pub fn run_watching(
    command: &mut Command,
    limit: Duration,
    mut on_line: impl FnMut(&str) + Send,
) -> Run {
    use std::io::{BufRead, Read};
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    std::thread::scope(|s| {
        let out = s.spawn(move || {
            let mut bytes = Vec::new();
            let _ = stdout.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        });
        let err = s.spawn(move || {
            let mut all = String::new();
            let mut reader = std::io::BufReader::new(stderr);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line).into_owned();
                on_line(text.trim_end_matches('\n'));
                all.push_str(&text);
                line.clear();
            }
            all
        });
        let end = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the command") {
                break status;
            }
            if Instant::now() > end {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                panic!("{command:?} ran longer than {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
        }
    })
}
