//! One run of hello-client: its JSON summaries, and what they say.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use hello_apps::client::{Summary, SummaryKind};
use mesh::process::{Output, Process};
use tokio::{io::AsyncReadExt, time::Instant};

/// How often the client reports. The first report of a run (start-up, connecting) is left out of
/// its rate.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// How much longer than its duration a run may take before it counts as stuck.
const OVERRUN: Duration = Duration::from_secs(20);

/// What the client is asked to send.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// Closed loop: rounds of this many concurrent RPCs, as fast as they come back.
    Concurrency(u32),
    /// Open loop: this many RPCs a second on a fixed schedule (`--rate`).
    Rate(u32),
}

/// The client's report of one run.
#[derive(Debug, Clone)]
pub struct ClientRun {
    /// The per-interval summaries, in order.
    pub intervals: Vec<Summary>,
    /// The summary of the whole run.
    pub total: Summary,
}

impl ClientRun {
    /// RPCs a second after the first interval: the RPCs of the later intervals over the time
    /// they span.
    pub fn rate(&self) -> Option<f64> {
        let first = self.intervals.first()?;
        let later = &self.intervals[1..];
        let last = later.last()?;
        let span = last.t - first.t;
        let rpcs: u64 = later.iter().map(|s| s.rpcs).sum();
        (span > 0.0 && rpcs > 0).then(|| rpcs as f64 / span)
    }
}

/// Runs hello-client against `target` for `duration` and returns its summaries. A run in which
/// any RPC failed is an error: the numbers of a broken setup mean nothing.
pub async fn run(
    bin: &Path,
    target: &str,
    load: Load,
    duration: Duration,
    client_id: &str,
    what: &str,
) -> Result<ClientRun> {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("RUST_LOG", "off")
        .arg(target)
        .args(["--output", "json", "--client-id", client_id])
        .arg("--interval")
        .arg(format!("{}ms", INTERVAL.as_millis()))
        .arg("--duration")
        .arg(format!("{}ms", duration.as_millis()));
    match load {
        Load::Concurrency(n) => cmd.args(["--concurrency", &n.to_string()]),
        Load::Rate(n) => cmd.args(["--rate", &n.to_string()]),
    };
    cmd.stdout(Stdio::piped());
    // Killed when dropped: on an error, a timeout or an interrupt.
    let mut client = Process::spawn("hello-client", cmd, Output::Keep)?;
    let stdout = client.take_stdout().context("hello-client has no stdout")?;
    let mut stdout = tokio::process::ChildStdout::from_std(stdout)
        .with_context(|| format!("{what}: cannot read the output of hello-client"))?;
    let limit = duration + OVERRUN;
    let stuck = || {
        anyhow::anyhow!(
            "{what}: hello-client did not finish within {}s",
            limit.as_secs()
        )
    };
    let started = Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(limit, stdout.read_to_end(&mut out))
        .await
        .map_err(|_| stuck())?
        .with_context(|| format!("{what}: cannot read the output of hello-client"))?;
    let status = client
        .wait_exit(limit.saturating_sub(started.elapsed()))
        .await
        .with_context(|| format!("{what}: cannot wait for hello-client"))?
        .ok_or_else(stuck)?;
    if !status.success() {
        let tail = client.stderr_tail(1);
        bail!(
            "{what}: hello-client exited with {status}: {}",
            tail.lines()
                .last()
                .map_or("(nothing on stderr)", String::as_str)
        );
    }
    let run = parse(&String::from_utf8_lossy(&out))
        .with_context(|| format!("{what}: unreadable output of hello-client"))?;
    if run.total.errors > 0 {
        let codes: Vec<String> = run
            .total
            .errors_by_code
            .iter()
            .map(|(code, n)| format!("{code}={n}"))
            .collect();
        bail!(
            "{what}: {} of {} rpcs failed ({})",
            run.total.errors,
            run.total.rpcs,
            codes.join(" ")
        );
    }
    if run.total.rpcs == 0 {
        bail!("{what}: hello-client sent no rpc");
    }
    Ok(run)
}

fn parse(stdout: &str) -> Result<ClientRun> {
    let mut intervals = Vec::new();
    let mut total = None;
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let summary: Summary =
            serde_json::from_str(line).with_context(|| format!("not a summary: {line}"))?;
        match summary.kind {
            SummaryKind::Summary => intervals.push(summary),
            SummaryKind::Final => total = Some(summary),
        }
    }
    Ok(ClientRun {
        intervals,
        total: total.context("no final summary")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(kind: &str, t: f64, rpcs: u64) -> String {
        format!(
            r#"{{"type":"{kind}","t":{t},"rpcs":{rpcs},"ok":{rpcs},"errors":0,"errors_by_code":{{}},"by_server":{{}},"by_version":{{}},"latency_ms":{{"p50":0.1,"p90":0.2,"p99":0.3}}}}"#
        )
    }

    #[test]
    fn the_rate_leaves_the_first_interval_out() {
        let out = [
            line("summary", 0.25, 10),
            line("summary", 0.5, 100),
            line("summary", 0.75, 100),
            line("summary", 0.8, 20),
            line("final", 0.8, 230),
        ]
        .join("\n");
        let run = parse(&out).unwrap();
        assert_eq!(run.total.rpcs, 230);
        let rate = run.rate().unwrap();
        assert!((rate - 220.0 / 0.55).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn a_run_with_one_interval_has_no_rate_and_one_without_final_is_an_error() {
        let run = parse(&[line("summary", 0.25, 10), line("final", 0.3, 12)].join("\n")).unwrap();
        assert_eq!(run.rate(), None);
        assert!(parse(&line("summary", 0.25, 10)).is_err());
    }
}
