//! `cargo xtask hello` as a user runs it: the built xtask binary, real processes, real sockets.

use std::{
    io::Read,
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// Long enough to build the apps' debug binaries on a cold cache on a small machine.
const HELLO_LIMIT: Duration = Duration::from_secs(900);
/// Parsing flags builds and starts nothing.
const FLAGS_LIMIT: Duration = Duration::from_secs(60);

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the xtask binary; past `limit` it gets SIGTERM (so that it stops its children), then
/// SIGKILL, and the test fails.
fn xtask(args: &[&str], limit: Duration) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xtask starts");
    let collect = |mut stream: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            text
        })
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let grace = Instant::now() + Duration::from_secs(40);
            while child.try_wait().unwrap().is_none() && Instant::now() < grace {
                thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "xtask {args:?} did not finish within {}s; stderr:\n{}",
                limit.as_secs(),
                stderr.join().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    Run {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// The pids in xtask's `==> started server-0 (pid 123) ...` and `hello-client (pid 456)` lines.
fn pids(stderr: &str) -> Vec<(String, i32)> {
    stderr
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" (pid ")?;
            let name = before.rsplit(' ').next()?.to_owned();
            let pid = after.split_once(')')?.0.parse().ok()?;
            Some((name, pid))
        })
        .collect()
}

#[test]
fn cargo_xtask_hello_runs_three_servers_and_balances_them() {
    let run = xtask(
        &["hello", "--servers", "3", "--rounds", "3", "--debug"],
        HELLO_LIMIT,
    );
    let context = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.status.success(), "{}\n{context}", run.status);

    let greetings = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("Greeting: "))
        .count();
    assert_eq!(greetings, 30, "{context}");

    // 3 rounds of 10 RPCs in strict rotation over 3 servers: 10 each, whatever the order.
    for i in 0..3 {
        let name = format!("server-{i}");
        let row: Vec<&str> = run
            .stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cols| cols.first() == Some(&name.as_str()))
            .unwrap_or_else(|| panic!("no table row for {name}\n{context}"));
        assert_eq!(row[2], "10", "replies of {name}\n{context}");
    }

    let pids = pids(&run.stderr);
    let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["server-0", "server-1", "server-2", "hello-client"],
        "{context}"
    );
    for (name, pid) in pids {
        assert_eq!(
            kill(Pid::from_raw(pid), None),
            Err(Errno::ESRCH),
            "{name} (pid {pid}) is still there after xtask exited"
        );
    }
}

#[test]
fn cargo_xtask_hello_rejects_a_bad_flag_in_one_line_before_building_anything() {
    for args in [
        &["hello", "--servers", "0"][..],
        &["hello", "--servers", "51"][..],
        &["hello", "--rounds", "many"][..],
        &["hello", "--lb", "random"][..],
        &["hello", "--response-delay", "soon"][..],
        &["hullo"][..],
    ] {
        let run = xtask(args, FLAGS_LIMIT);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("xtask: error: "),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}
