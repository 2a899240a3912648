//! `cargo xtask hello`: the first thing to run, before any cluster or mesh exists.
//!
//! It plays a headless Kubernetes Service on this machine: N hello-server "pods" on N loopback
//! addresses, and our DNS server answering the name `server` with all of them. hello-client
//! resolves that name, balances its RPCs over what it found, and prints each greeting; then the
//! servers are stopped (SIGTERM, as Kubernetes does) and a table says who answered how many.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::Write as _,
    net::{Ipv4Addr, SocketAddr},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};
use mesh::dns::{DnsServer, Records};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::TcpStream,
    time::Instant,
};
use xshell::{Shell, cmd};

use crate::{
    flags::{self, Lb},
    process::{Children, Interrupted, Signals},
    project::{self, Apps},
};

/// The Service name the client resolves.
const SERVICE: &str = "server";
/// Every server listens on this port, each on its own address, as pods of one Deployment do.
const PORT: u16 = 50051;
/// RPCs the client sends at once in each round.
const CONCURRENCY: u32 = 10;
/// How long the servers may take to listen.
const READY_LIMIT: Duration = Duration::from_secs(10);
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
    let block = LoopbackBlock::random(&mut rand::rng());
    block.check_bindable()?;
    let pods: Vec<Pod> = (0..flags.servers)
        .map(|i| Pod {
            name: format!("server-{i}"),
            addr: block.server_addr(i),
        })
        .collect();
    let apps = project::build_apps(&sh, flags.profile())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let summary = runtime.block_on(demo(&sh, &apps, flags, &pods))?;
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

/// Starts the DNS server, the servers and the client; stops them all whatever happens.
async fn demo(sh: &Shell, apps: &Apps, flags: &flags::Hello, pods: &[Pod]) -> Result<Summary> {
    let mut signals = Signals::new()?;
    let records = Records::new();
    records.set(SERVICE, pods.iter().map(|p| p.addr.ip()).collect());
    let dns = DnsServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), records)
        .await
        .context("cannot start the DNS server")?;
    eprintln!(
        "==> DNS server on {}: {SERVICE} -> {}",
        dns.local_addr(),
        pods.iter()
            .map(|p| p.addr.ip().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut children = Children::default();
    let result = tokio::select! {
        biased;
        interrupted = signals.recv() => Err(anyhow::Error::new(interrupted)),
        result = start_and_run(sh, apps, flags, pods, dns.local_addr(), &mut children) => result,
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
        // A second interrupt: the guard below kills them now.
        interrupted = signals.recv() => Err(anyhow::Error::new(interrupted)),
        stopped = children.stop_all(STOP_GRACE) => stopped,
    };
    drop(children);
    dns.shutdown().await;
    let summary = result?;
    stopped.context("the servers did not stop cleanly")?;
    Ok(summary)
}

async fn start_and_run(
    sh: &Shell,
    apps: &Apps,
    flags: &flags::Hello,
    pods: &[Pod],
    dns: SocketAddr,
    children: &mut Children,
) -> Result<Summary> {
    let server = &apps.server;
    let delay = humantime::format_duration(flags.response_delay).to_string();
    let mut ids = Vec::new();
    for pod in pods {
        let command = cmd!(sh, "{server}")
            .env("POD_NAME", &pod.name)
            .env("LISTEN_ADDR", pod.addr.to_string())
            .env("METRICS_ADDR", "off")
            .env("RESPONSE_DELAY", &delay)
            .env("NO_COLOR", "1")
            // Whatever the caller's shell has set, the demo is the same everywhere.
            .env_remove("VERSION")
            .env_remove("MAX_CONNECTION_AGE")
            .env_remove("MAX_CONNECTION_AGE_GRACE")
            .env_remove("DRAIN_TIMEOUT");
        let mut command = Command::from(command);
        command.stdout(Stdio::null());
        let id = children.spawn(&pod.name, command)?;
        eprintln!(
            "==> started {} (pid {}) on {}",
            pod.name,
            children.get_mut(id).pid(),
            pod.addr
        );
        ids.push(id);
    }
    wait_listening(children, &ids, pods, READY_LIMIT).await?;

    let client = &apps.client;
    let target = format!("dns://{dns}/{SERVICE}:{PORT}");
    let args = [
        target.clone(),
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
    let id = children.spawn("hello-client", command)?;
    let proc = children.get_mut(id);
    eprintln!(
        "==> all {} servers listen; running hello-client (pid {}) {}\n",
        pods.len(),
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
        .wait_exit(Instant::now() + Duration::from_secs(5))
        .await?
        .ok_or_else(|| anyhow!("hello-client closed its output but did not exit"))?;
    if !status.success() {
        bail!("hello-client failed ({status}){}", proc.stderr_tail(TAIL));
    }
    let final_line =
        final_line.ok_or_else(|| anyhow!("hello-client printed no `-- final` summary line"))?;
    Summary::parse(&final_line)
}

/// Waits until every server accepts TCP connections; fails naming the first that exited or
/// did not listen in time.
async fn wait_listening(
    children: &mut Children,
    ids: &[usize],
    pods: &[Pod],
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    let mut waiting: Vec<(usize, &Pod)> = ids.iter().copied().zip(pods).collect();
    loop {
        let mut still = Vec::new();
        for (id, pod) in waiting {
            let proc = children.get_mut(id);
            if let Some(status) = proc.try_exit()? {
                bail!(
                    "{} exited ({status}) before listening on {}{}",
                    pod.name,
                    pod.addr,
                    proc.stderr_tail(TAIL)
                );
            }
            let attempt =
                tokio::time::timeout(Duration::from_millis(250), TcpStream::connect(pod.addr));
            if !matches!(attempt.await, Ok(Ok(_))) {
                still.push((id, pod));
            }
        }
        let Some(&(id, pod)) = still.first() else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            bail!(
                "{} did not listen on {} within {}{}",
                pod.name,
                pod.addr,
                humantime::format_duration(limit),
                children.get_mut(id).stderr_tail(TAIL)
            );
        }
        waiting = still;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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

/// A block of loopback addresses for one run: 127.X.Y.0/24 with X and Y in 1..=254, so that it
/// is never 127.0.0.x (where everything else listens) and has no broadcast-looking octet, and
/// two runs at once almost never share it. Server `i` gets 127.X.Y.(10+i).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LoopbackBlock {
    x: u8,
    y: u8,
}

impl LoopbackBlock {
    fn random(rng: &mut impl rand::Rng) -> LoopbackBlock {
        LoopbackBlock {
            x: rng.random_range(1..=254),
            y: rng.random_range(1..=254),
        }
    }

    /// The address of server `i` (0..50).
    fn server_addr(self, i: u8) -> SocketAddr {
        assert!(i < 50, "at most 50 servers");
        SocketAddr::from((Ipv4Addr::new(127, self.x, self.y, 10 + i), PORT))
    }

    /// Fails, saying why, where only 127.0.0.1 is loopback (macOS, some containers).
    fn check_bindable(self) -> Result<()> {
        let ip = self.server_addr(0).ip();
        std::net::TcpListener::bind((ip, 0)).map(drop).with_context(|| {
            format!(
                "cannot listen on {ip}: hello runs its servers on 127.{x}.{y}.10 and up, which needs all of 127.0.0.0/8 on the loopback interface as Linux has it (on macOS: sudo ifconfig lo0 alias 127.{x}.{y}.10 up, and so on for each server)",
                x = self.x,
                y = self.y
            )
        })
    }
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
    use std::net::IpAddr;

    use rand::SeedableRng;

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

    /// A loopback address that nothing listens on (a port the system just handed out and took
    /// back), as a server that never comes up.
    fn unused_addr() -> SocketAddr {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.local_addr().unwrap()
    }

    fn quiet(program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command.args(args).stdout(Stdio::null());
        command
    }

    #[tokio::test]
    async fn a_server_that_exits_before_listening_is_named_with_its_last_stderr_lines() {
        let mut children = Children::default();
        let id = children
            .spawn(
                "server-0",
                quiet(
                    "sh",
                    &["-c", "echo starting >&2; echo cannot bind >&2; exit 2"],
                ),
            )
            .unwrap();
        let pod = Pod {
            name: "server-0".into(),
            addr: unused_addr(),
        };
        let err = wait_listening(
            &mut children,
            &[id],
            std::slice::from_ref(&pod),
            READY_LIMIT,
        )
        .await
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            format!(
                "server-0 exited (exit status: 2) before listening on {}; its last stderr lines: starting | cannot bind",
                pod.addr
            )
        );
    }

    #[tokio::test]
    async fn a_server_that_never_listens_fails_the_wait_at_its_deadline() {
        let mut children = Children::default();
        let listening = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let up = children
            .spawn("server-0", quiet("sleep", &["600"]))
            .unwrap();
        let down = children
            .spawn("server-1", quiet("sleep", &["600"]))
            .unwrap();
        let pods = [
            Pod {
                name: "server-0".into(),
                addr: listening.local_addr().unwrap(),
            },
            Pod {
                name: "server-1".into(),
                addr: unused_addr(),
            },
        ];
        let err = wait_listening(
            &mut children,
            &[up, down],
            &pods,
            Duration::from_millis(300),
        )
        .await
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            format!(
                "server-1 did not listen on {} within 300ms; it wrote nothing to stderr",
                pods[1].addr
            )
        );
    }

    #[test]
    fn the_random_loopback_block_never_yields_127_0_0_x_or_a_255_octet() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (mut xs, mut ys) = (
            std::collections::BTreeSet::new(),
            std::collections::BTreeSet::new(),
        );
        for _ in 0..100_000 {
            let block = LoopbackBlock::random(&mut rng);
            xs.insert(block.x);
            ys.insert(block.y);
            for i in [0, 49] {
                let IpAddr::V4(ip) = block.server_addr(i).ip() else {
                    panic!("not IPv4");
                };
                let [a, b, c, d] = ip.octets();
                assert_eq!(a, 127);
                assert!((1..=254).contains(&b) && (1..=254).contains(&c), "{ip}");
                assert!((10..=59).contains(&d), "{ip}");
            }
        }
        // Every allowed octet comes up, so the range is the whole of 1..=254.
        assert_eq!(xs, (1..=254).collect());
        assert_eq!(ys, (1..=254).collect());
    }

    #[test]
    fn servers_get_distinct_addresses_on_one_port() {
        let block = LoopbackBlock { x: 3, y: 4 };
        let addrs: std::collections::BTreeSet<_> = (0..50).map(|i| block.server_addr(i)).collect();
        assert_eq!(addrs.len(), 50);
        assert_eq!(block.server_addr(0).to_string(), "127.3.4.10:50051");
        assert_eq!(block.server_addr(49).to_string(), "127.3.4.59:50051");
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
                addr: LoopbackBlock { x: 1, y: 2 }.server_addr(i),
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
