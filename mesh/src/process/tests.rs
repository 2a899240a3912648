//! Real processes: `sleep` and `sh` stand in for servers.

use std::net::{Ipv4Addr, SocketAddr};

use super::*;

/// A child whose stdout does not hold the test harness's open.
fn program(program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command.args(args).stdout(Stdio::null());
    command
}

fn sleep_long() -> Command {
    program("sleep", &["600"])
}

fn sh(script: &str) -> Command {
    program("sh", &["-c", script])
}

fn keep(name: &str, command: Command) -> Process {
    Process::spawn(name, command, Output::Keep).unwrap()
}

fn is_gone(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None) == Err(Errno::ESRCH)
}

/// A fresh directory for the files of one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mesh-process-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn dropping_the_guard_kills_and_reaps_every_child() {
    let children = vec![keep("a", sleep_long()), keep("b", sleep_long())];
    let pids: Vec<u32> = children.iter().map(Process::pid).collect();
    drop(children);
    for pid in pids {
        assert!(is_gone(pid), "pid {pid} still exists");
    }
}

#[tokio::test]
async fn stopping_sends_sigterm_and_kills_what_ignores_it_after_the_grace_period() {
    let mut polite = keep("polite", sleep_long());
    let mut stubborn = keep(
        "stubborn",
        sh("trap '' TERM; echo ignoring SIGTERM >&2; while :; do sleep 0.05; done"),
    );
    let pids = [polite.pid(), stubborn.pid()];
    // The trap is set once the line is written: wait for it rather than for a while.
    said(&mut stubborn, "ignoring SIGTERM").await;
    let err = stop_all([&mut polite, &mut stubborn], Duration::from_millis(300))
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
    let mut quick = keep("quick", sh("exit 3"));
    let status = quick
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap()
        .expect("exits");
    assert_eq!(status.code(), Some(3));
    stop_all([&mut quick], Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_child_that_fails_on_sigterm_is_named_with_its_status_and_stderr() {
    let mut child = keep(
        "grumpy",
        sh(
            "trap 'echo shutting down badly >&2; exit 4' TERM; echo up >&2; while :; do sleep 0.05; done",
        ),
    );
    said(&mut child, "up").await;
    let err = child
        .stop(Duration::from_secs(10))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "grumpy exited with exit status: 4 on SIGTERM; its last stderr lines: up | shutting down badly"
    );
}

/// Waits until the last line `child` wrote to stderr is `line`.
async fn said(child: &mut Process, line: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.stderr_tail(1).lines() != [line] {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never said {line:?}",
            child.name()
        );
        tokio::time::sleep(POLL).await;
    }
}

#[test]
fn the_stderr_tail_keeps_the_last_lines_in_one_line() {
    let mut talker = keep(
        "talker",
        sh("for i in $(seq 1 100); do echo line $i >&2; done"),
    );
    let _ = talker.child.wait();
    assert_eq!(
        talker.stderr_tail(3).to_string(),
        "; its last stderr lines: line 98 | line 99 | line 100"
    );
    let mut quiet = keep("quiet", sh("true"));
    let _ = quiet.child.wait();
    assert_eq!(
        quiet.stderr_tail(3).to_string(),
        "; it wrote nothing to stderr"
    );
}

#[test]
fn a_logged_stderr_is_continued_on_a_restart_and_read_back_from_the_file() {
    let dir = scratch("log");
    let log = dir.join("pod.log");
    let output = |append| Output::Log {
        path: log.clone(),
        append,
        stdout: true,
    };
    let mut first = Process::spawn("first", sh("echo one; echo two >&2"), output(false)).unwrap();
    let _ = first.child.wait();
    let mut second = Process::spawn("second", sh("echo three >&2"), output(true)).unwrap();
    let _ = second.child.wait();
    assert_eq!(second.stderr_tail(5).lines(), ["one", "two", "three"]);
    let mut fresh = Process::spawn("fresh", sh("echo four >&2"), output(false)).unwrap();
    let _ = fresh.child.wait();
    assert_eq!(fresh.stderr_tail(5).lines(), ["four"]);
}

#[tokio::test]
async fn readiness_fails_early_when_the_process_exits_and_quotes_its_stderr() {
    let mut child = keep("early", sh("echo cannot bind >&2; exit 2"));
    let err = child
        .wait_ready(Duration::from_secs(10), || async {
            Err::<(), _>("not yet".to_owned())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ProcessError::Exited { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "early exited (exit status: 2) before it was ready; its last stderr lines: cannot bind"
    );
}

#[tokio::test]
async fn readiness_fails_at_its_deadline_with_what_the_probe_saw_last() {
    let mut child = keep("slow", sleep_long());
    let unused: SocketAddr = {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.local_addr().unwrap()
    };
    let err = child
        .wait_ready(Duration::from_millis(300), || async move {
            tokio::net::TcpStream::connect(unused)
                .await
                .map(drop)
                .map_err(|_| "refused".to_owned())
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "slow was not ready within 300ms (refused); it wrote nothing to stderr"
    );
}

#[tokio::test]
async fn readiness_returns_what_the_probe_found() {
    let mut child = keep("listener", sleep_long());
    let mut asked = 0;
    let found = child
        .wait_ready(Duration::from_secs(10), || {
            asked += 1;
            let n = asked;
            async move {
                if n < 3 {
                    Err(format!("ask {n}"))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(found, 3);
}

#[test]
fn killing_reaps_the_process_and_records_how_it_exited() {
    let mut child = keep("victim", sleep_long());
    let pid = child.pid();
    child.kill();
    assert_eq!(
        child.exit_status().and_then(|s| s.signal()),
        Some(Signal::SIGKILL as i32)
    );
    assert!(is_gone(pid), "pid {pid} still exists");
}
