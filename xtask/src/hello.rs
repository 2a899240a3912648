//! `cargo xtask hello`: the first thing to run, before any cluster or mesh exists.
//!
//! It plays a headless Kubernetes Service on this machine with the twin ([`mesh::twin`]) and no
//! mesh: N hello-server "pods" on N loopback addresses, and the twin's DNS server answering the
//! name `server` with all of them. hello-client resolves that name, balances its RPCs over what it
//! found, and prints each greeting; then the servers are stopped (SIGTERM, as Kubernetes does) and
//! a table says who answered how many.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::Write as _,
    net::SocketAddr,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};
use mesh::{
    process::{Output, Process},
    twin::{Block, PodNames, SERVICE, ServiceMode, Twin, TwinSpec},
};
use tokio::io::{AsyncBufReadExt, BufReader};
use xshell::{Shell, cmd};

use crate::{
    flags::{self, Lb},
    process::{Interrupted, Signals},
    project::{self, Apps},
};

/// RPCs the client sends at once in each round.
const CONCURRENCY: u32 = 10;
/// How long the servers may take to drain on SIGTERM before they are killed (Kubernetes'
/// default termination grace period).
const STOP_GRACE: Duration = Duration::from_secs(30);
/// The longest one round of the client can take: its RPC deadline (hello-client's default
/// `--timeout`, 10s) and its one-second wait after a round in which nothing answered.
const ROUND_LIMIT: Duration = Duration::from_secs(11);
/// Added to the client's time limit for starting, resolving and connecting.
const CLIENT_SLACK: Duration = Duration::from_secs(30);
/// Stderr lines of a failed process quoted in the error.
const TAIL: usize = 5;

pub fn run(flags: &flags::Hello) -> Result<()> {
    let sh = project::shell()?;
    check_loopback()?;
    let apps = project::build_apps(&sh, flags.profile())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let (pods, summary) = runtime.block_on(demo(&sh, &apps, flags))?;
    let mut out = std::io::stdout().lock();
    let _ = write!(
        out,
        "\n{}\n{}",
        table(&pods, &summary),
        explain(flags, &summary)
    );
    let _ = out.flush();
    Ok(())
}

/// One server process standing in for a pod.
#[derive(Debug, Clone)]
struct Pod {
    name: String,
    addr: SocketAddr,
}

/// Starts the twin (its DNS server and the servers) and the client; stops them all whatever
/// happens.
async fn demo(sh: &Shell, apps: &Apps, flags: &flags::Hello) -> Result<(Vec<Pod>, Summary)> {
    let mut signals = Signals::new()?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let spec = TwinSpec {
        server_bin: apps.server.clone(),
        envoy_bin: None,
        work_dir: project::root()
            .join("target/twin")
            .join(format!("hello-{stamp}")),
        versions: vec![("v1".to_owned(), u32::from(flags.servers))],
        server_env: vec![
            ("METRICS_ADDR".to_owned(), "off".to_owned()),
            (
                "RESPONSE_DELAY".to_owned(),
                humantime::format_duration(flags.response_delay).to_string(),
            ),
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ],
        mode: ServiceMode::Headless,
    };
    // Dropped on an interrupt, the twin kills whatever it has started.
    let twin = tokio::select! {
        biased;
        interrupted = signals.recv() => {
            eprintln!("==> {interrupted}");
            return Err(anyhow::Error::new(interrupted));
        }
        twin = Twin::start_with_names(spec, PodNames::Ordinal) => twin.context("cannot start the servers")?,
    };
    let pods: Vec<Pod> = twin
        .pods()
        .map(|p| Pod {
            name: p.name.clone(),
            addr: p.addr,
        })
        .collect();
    eprintln!(
        "==> DNS server on {}: {SERVICE} -> {}",
        twin.dns_addr(),
        pods.iter()
            .map(|p| p.addr.ip().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for pod in twin.pods() {
        let pid = pod
            .pid()
            .map_or_else(|| "exited".to_owned(), |pid| pid.to_string());
        eprintln!("==> started {} (pid {pid}) on {}", pod.name, pod.addr);
    }

    let target = twin.target();
    let result = tokio::select! {
        biased;
        interrupted = signals.recv() => Err(anyhow::Error::new(interrupted)),
        result = run_client(sh, apps, flags, &target, pods.len()) => result,
    };
    if let Some(interrupted) = result
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<Interrupted>())
    {
        eprintln!("==> {interrupted}");
    }
    eprintln!(
        "==> stopping the servers (SIGTERM, then SIGKILL after {}s)",
        STOP_GRACE.as_secs()
    );
    let stopped = tokio::select! {
        biased;
        // A second interrupt: dropping the twin kills them now.
        interrupted = signals.recv() => Err(anyhow::Error::new(interrupted)),
        stopped = twin.stop(STOP_GRACE) => stopped.map_err(anyhow::Error::new),
    };
    let summary = result?;
    stopped.context("the servers did not stop cleanly")?;
    Ok((pods, summary))
}

/// Runs hello-client against `target` to its end, its output copied to ours; returns what its
/// final summary says.
async fn run_client(
    sh: &Shell,
    apps: &Apps,
    flags: &flags::Hello,
    target: &str,
    servers: usize,
) -> Result<Summary> {
    let client = &apps.client;
    let args = [
        target.to_owned(),
        "--lb".into(),
        flags.lb.as_str().into(),
        "--rounds".into(),
        flags.rounds.to_string(),
        "--concurrency".into(),
        CONCURRENCY.to_string(),
        "--output".into(),
        "text".into(),
        "--client-id".into(),
        "hello".into(),
    ];
    let client_args = &args;
    let mut command = Command::from(cmd!(sh, "{client} {client_args...}").env("NO_COLOR", "1"));
    command.stdout(Stdio::piped());
    // Killed when dropped: on an error or an interrupt.
    let mut proc = Process::spawn("hello-client", command, Output::Keep)?;
    eprintln!(
        "==> all {servers} servers listen; running hello-client (pid {}) {}\n",
        proc.pid(),
        args.join(" ")
    );
    let stdout = proc.take_stdout().context("hello-client has no stdout")?;
    let stdout = tokio::process::ChildStdout::from_std(stdout)
        .context("cannot read the output of hello-client")?;
    let limit = CLIENT_SLACK.saturating_add(ROUND_LIMIT.saturating_mul(flags.rounds));
    let final_line = tokio::time::timeout(limit, forward(stdout))
        .await
        .map_err(|_| {
            anyhow!(
                "hello-client did not finish {} rounds within {}s",
                flags.rounds,
                limit.as_secs()
            )
        })?
        .context("cannot read the output of hello-client")?;
    let status = proc
        .wait_exit(Duration::from_secs(5))
        .await?
        .ok_or_else(|| anyhow!("hello-client closed its output but did not exit"))?;
    if !status.success() {
        bail!("hello-client failed ({status}){}", proc.stderr_tail(TAIL));
    }
    let final_line =
        final_line.ok_or_else(|| anyhow!("hello-client printed no `-- final` summary line"))?;
    Summary::parse(&final_line)
}

/// Copies the client's stdout to ours line by line; returns its `-- final` line.
async fn forward(stdout: tokio::process::ChildStdout) -> std::io::Result<Option<String>> {
    let mut lines = BufReader::new(stdout).lines();
    let mut final_line = None;
    while let Some(line) = lines.next_line().await? {
        let mut out = std::io::stdout().lock();
        // A closed stdout (`| head`) must not stop the client halfway: keep reading.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        if line.starts_with("-- final") {
            final_line = Some(line);
        }
    }
    Ok(final_line)
}

/// Fails, saying why, where only 127.0.0.1 is loopback (macOS, some containers): the twin puts
/// its DNS server and its servers on a block of 127.0.0.0/8 of its own, drawn at random.
fn check_loopback() -> Result<()> {
    // Any address of a block will do: where one is not loopback, none is.
    let ip = Block::random().ip(1);
    std::net::TcpListener::bind((ip, 0)).map(drop).with_context(|| {
        format!(
            "cannot listen on {ip}: hello runs its DNS server and its servers on addresses such as {ip}, which needs all of 127.0.0.0/8 on the loopback interface as Linux has it (on macOS: sudo ifconfig lo0 alias {ip} up, and so on for each address)"
        )
    })
}

/// What the client's `-- final` line says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    rpcs: u64,
    errors: u64,
    by_server: BTreeMap<String, u64>,
}

impl Summary {
    /// Parses `-- final t=0.1s rpcs=30 ok=30 errors=0 [-] | servers: server-0=10 server-1=20 | ...`.
    fn parse(line: &str) -> Result<Summary> {
        let bad = |why: &str| anyhow!("cannot read hello-client's final summary {line:?}: {why}");
        let mut parts = line.split(" | ");
        let head = parts.next().unwrap_or_default();
        let field = |name: &str| -> Result<u64> {
            head.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .ok_or_else(|| bad(&format!("no {name}=")))?
                .parse()
                .map_err(|_| bad(&format!("{name}= is not a number")))
        };
        let servers = parts
            .find_map(|p| p.strip_prefix("servers:"))
            .ok_or_else(|| bad("no servers: part"))?;
        let mut by_server = BTreeMap::new();
        for entry in servers.split_whitespace().filter(|e| *e != "-") {
            let (name, n) = entry
                .rsplit_once('=')
                .ok_or_else(|| bad(&format!("{entry:?} is not server=count")))?;
            let n = n
                .parse()
                .map_err(|_| bad(&format!("{entry:?} is not server=count")))?;
            by_server.insert(name.to_owned(), n);
        }
        Ok(Summary {
            rpcs: field("rpcs")?,
            errors: field("errors")?,
            by_server,
        })
    }

    fn replies(&self) -> u64 {
        self.by_server.values().sum()
    }
}

/// Every server with its address and replies, those that got none included.
fn table(pods: &[Pod], summary: &Summary) -> String {
    let total = summary.replies();
    // Rounded to the nearest percent; 0% of nothing.
    let share = |n: u64| (n * 100 + total / 2).checked_div(total).unwrap_or(0);
    let mut rows: Vec<(String, String, u64)> = pods
        .iter()
        .map(|p| {
            let n = summary.by_server.get(&p.name).copied().unwrap_or(0);
            (p.name.clone(), p.addr.to_string(), n)
        })
        .collect();
    // Whoever else answered (nobody should), so that the counts add up.
    for (name, n) in &summary.by_server {
        if !pods.iter().any(|p| &p.name == name) {
            rows.push((name.clone(), "?".into(), *n));
        }
    }
    let mut out = String::from("replies per server (from hello-client's final summary):\n");
    let _ = writeln!(
        out,
        "  {:<10} {:<21} {:>7} {:>6}",
        "server", "address", "replies", "share"
    );
    for (name, addr, n) in rows {
        let _ = writeln!(out, "  {name:<10} {addr:<21} {n:>7} {:>5}%", share(n));
    }
    let _ = writeln!(
        out,
        "  {:<10} {:<21} {total:>7} {:>5}%",
        "total",
        "",
        share(total)
    );
    if summary.errors > 0 {
        let _ = writeln!(out, "  {:<10} {:<21} {:>7}", "failed", "", summary.errors);
    }
    out
}

/// One paragraph on what the run showed, and why it matters on Kubernetes.
fn explain(flags: &flags::Hello, summary: &Summary) -> String {
    let n = flags.servers;
    let rpcs = summary.rpcs;
    let how = format!("{} rounds of {CONCURRENCY} concurrent RPCs", flags.rounds);
    let mut text = format!(
        "What you saw: hello-client asked our DNS server for `{SERVICE}` and got {n} address{es}, one per server, as a headless Kubernetes Service answers. ",
        es = if n == 1 { "" } else { "es" }
    );
    match flags.lb {
        Lb::RoundRobin => {
            let share = if n == 1 {
                "its one server answered all of them (try --servers 3)".to_owned()
            } else {
                format!("each server answered about 1/{n} of them")
            };
            let _ = write!(
                text,
                "With round_robin it opened one HTTP/2 connection to each address and sent its {rpcs} RPCs ({how}) over them in strict rotation, so {share}: client-side load balancing works because the client sees every pod. Behind an ordinary ClusterIP Service it would resolve one virtual IP instead, open one long-lived HTTP/2 connection, and kube-proxy, which balances connections and not requests, would send every RPC to the same pod; run `cargo xtask hello --lb pick_first` to see what that looks like. Spreading RPCs without relying on every client to do this is what a service mesh is for."
            );
        }
        Lb::PickFirst => {
            let winner = summary
                .by_server
                .iter()
                .max_by_key(|(_, n)| **n)
                .map_or("one server", |(name, _)| name.as_str());
            let _ = write!(
                text,
                "With pick_first it connected to the first address that accepted and sent all {rpcs} RPCs ({how}) over that one HTTP/2 connection, so {winner} answered them and the others got nothing. That is what every gRPC client gets behind an ordinary ClusterIP Service: one virtual IP, one long-lived connection, and kube-proxy balances connections, not requests, so one pod takes all the load however many replicas you run. Run `cargo xtask hello` (round_robin) to see the client spread its RPCs when it can see every pod; a service mesh spreads them without the client's help."
            );
        }
    }
    if summary.errors > 0 {
        let _ = write!(
            text,
            " {} of the {rpcs} RPCs failed: see the Error lines above.",
            summary.errors
        );
    }
    wrap(&text, 100)
}

/// Wraps `text` at `width` columns, on spaces.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut column = 0;
    for word in text.split_whitespace() {
        if column > 0 && column + 1 + word.len() > width {
            out.push('\n');
            column = 0;
        } else if column > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.len();
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(lb: Lb, servers: u8, rounds: u32) -> flags::Hello {
        flags::Hello {
            servers,
            rounds,
            lb,
            response_delay: Duration::ZERO,
            debug: true,
        }
    }

    #[test]
    fn the_final_summary_line_gives_each_servers_replies() {
        let s = Summary::parse(
            "-- final t=0.1s rpcs=31 ok=30 errors=1 [Unavailable=1] | servers: server-0=10 server-1=20 | versions: v1=30 | latency p50=0.50ms p90=0.80ms p99=1.00ms",
        )
        .unwrap();
        assert_eq!((s.rpcs, s.errors, s.replies()), (31, 1, 30));
        assert_eq!(s.by_server["server-0"], 10);
        assert_eq!(s.by_server["server-1"], 20);

        let none = Summary::parse(
            "-- final t=0.1s rpcs=3 ok=0 errors=3 [Unavailable=3] | servers: - | versions: - | latency p50=0.00ms p90=0.00ms p99=0.00ms",
        )
        .unwrap();
        assert!(none.by_server.is_empty());
        assert!(Summary::parse("-- final t=0.1s").is_err());
    }

    #[test]
    fn the_table_lists_every_server_even_those_that_answered_nothing() {
        let pods: Vec<Pod> = (0..3)
            .map(|i| Pod {
                name: format!("server-{i}"),
                addr: SocketAddr::from(([127, 1, 2, 10 + i], 50051)),
            })
            .collect();
        let summary = Summary {
            rpcs: 20,
            errors: 0,
            by_server: [("server-1".to_owned(), 20)].into(),
        };
        let table = table(&pods, &summary);
        let rows: Vec<Vec<&str>> = table
            .lines()
            .skip(2)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[0], ["server-0", "127.1.2.10:50051", "0", "0%"]);
        assert_eq!(rows[1], ["server-1", "127.1.2.11:50051", "20", "100%"]);
        assert_eq!(rows[2], ["server-2", "127.1.2.12:50051", "0", "0%"]);
        assert_eq!(rows[3], ["total", "20", "100%"]);
    }

    #[test]
    fn the_explanation_names_the_policy_and_fits_in_100_columns() {
        let even = Summary {
            rpcs: 30,
            errors: 0,
            by_server: (0..3).map(|i| (format!("server-{i}"), 10)).collect(),
        };
        let text = explain(&hello(Lb::RoundRobin, 3, 3), &even);
        assert!(text.contains("With round_robin"), "{text}");
        assert!(text.contains("1/3"), "{text}");
        assert!(text.lines().all(|l| l.len() <= 100), "{text}");

        let one = Summary {
            rpcs: 30,
            errors: 2,
            by_server: [("server-2".to_owned(), 28)].into(),
        };
        let text = explain(&hello(Lb::PickFirst, 3, 3), &one).replace('\n', " ");
        assert!(text.contains("so server-2 answered them"), "{text}");
        assert!(text.contains("2 of the 30 RPCs failed"), "{text}");
    }
}
