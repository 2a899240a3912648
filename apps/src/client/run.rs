//! The seed's loop (a round of concurrent RPCs, wait for all, print each reply, repeat), or the
//! open loop of `--rate` (see `open_loop`).

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::join_all;
use hello_proto::{GreeterClient, HelloReply, HelloRequest};
use tokio::time::Instant;
use tonic::{Request, Status, metadata::MetadataMap};

use super::{
    Config, Method, Output,
    balancer::Balancer,
    open_loop::{MAX_IN_FLIGHT, OpenLoop, Rpc, Schedule},
    resolve::{ResolveError, Resolver},
    stats::{OVERLOAD, SummaryKind, Window},
};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Resolver(#[from] ResolveError),
}

/// How a run ended.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub rpcs: u64,
    pub errors: u64,
}

#[derive(Default)]
struct Counts {
    interval: Window,
    total: Window,
}

/// Runs until the rounds or the duration are done, or `shutdown` completes; prints to stdout.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<Outcome, RunError> {
    let start = Instant::now();
    let resolver = Resolver::new(&config.target)?;
    let balancer = Balancer::start(config.authority.clone(), resolver, config.lb);
    let client = GreeterClient::new(balancer.clone());
    let counts = Arc::new(Mutex::new(Counts::default()));
    let output = config.output;
    match config.rate {
        Some(rate) => {
            tracing::info!(target = %config.target, lb = ?config.lb, rate, max_in_flight = MAX_IN_FLIGHT, "starting")
        }
        None => {
            tracing::info!(target = %config.target, lb = ?config.lb, concurrency = config.concurrency, "starting")
        }
    }

    let reporter = {
        let counts = counts.clone();
        let interval = config.interval;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(start + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                report(&counts, output, start);
            }
        })
    };

    let headers = Arc::new(config.headers.clone());
    match config.rate {
        Some(rate) => {
            open_loop(
                &config,
                rate,
                start,
                client,
                headers,
                counts.clone(),
                shutdown,
            )
            .await
        }
        None => {
            rounds(
                &config, start, client, &balancer, headers, &counts, shutdown,
            )
            .await
        }
    }
    // Stopped, not only told to stop: a report it is printing on another worker thread must be out
    // before the last interval and the final summary, which come last.
    reporter.abort();
    let _ = reporter.await;
    let mut counts = counts.lock().expect("counts lock");
    let last = std::mem::take(&mut counts.interval);
    let total = counts.total.clone();
    drop(counts);
    let t = start.elapsed();
    let mut out = std::io::stdout().lock();
    if last.summary(SummaryKind::Summary, t).rpcs > 0 {
        emit(&mut out, &last.summary(SummaryKind::Summary, t), output);
    }
    let final_ = total.summary(SummaryKind::Final, t);
    emit(&mut out, &final_, output);
    let _ = out.flush();
    Ok(Outcome {
        rpcs: final_.rpcs,
        errors: total.errors(),
    })
}

/// The seed's rounds: `concurrency` RPCs at once, wait for all, repeat.
async fn rounds(
    config: &Config,
    start: Instant,
    client: GreeterClient<Balancer>,
    balancer: &Balancer,
    headers: Arc<MetadataMap>,
    counts: &Mutex<Counts>,
    shutdown: impl Future<Output = ()>,
) {
    let output = config.output;
    let stop_at = config.duration.map(|d| start + d);
    let mut counter: u64 = 0;
    let mut round: u64 = 0;
    tokio::pin!(shutdown);
    let done = |round: u64| {
        config.rounds.is_some_and(|n| round >= n) || stop_at.is_some_and(|t| Instant::now() >= t)
    };
    while !done(round) {
        round += 1;
        let calls = (0..config.concurrency).map(|_| {
            counter += 1;
            call(
                client.clone(),
                config.method,
                headers.clone(),
                config.client_id.clone(),
                counter,
                config.timeout,
            )
        });
        let results = tokio::select! {
            results = join_all(calls) => results,
            () = &mut shutdown => break,
        };
        let all_unavailable = results
            .iter()
            .all(|(r, _)| matches!(r, Err(s) if s.code() == tonic::Code::Unavailable));
        record(counts, &results, output);
        if all_unavailable && !done(round) {
            // Nothing to talk to: wait for the balancer to connect somewhere rather than spin.
            tokio::select! {
                () = balancer.changed_or(Duration::from_secs(1)) => {}
                () = &mut shutdown => break,
            }
        }
    }
}

/// The open loop: `rate` RPCs per second on a fixed schedule from `start`, for the duration or
/// until `shutdown`, then the RPCs in flight finish (within their deadline, `--timeout`).
async fn open_loop(
    config: &Config,
    rate: u64,
    start: Instant,
    client: GreeterClient<Balancer>,
    headers: Arc<MetadataMap>,
    counts: Arc<Mutex<Counts>>,
    shutdown: impl Future<Output = ()>,
) {
    let open_loop = OpenLoop {
        schedule: Schedule::new(rate),
        start,
        length: config.duration,
        max_in_flight: MAX_IN_FLIGHT,
    };
    let (method, client_id, timeout, output) = (
        config.method,
        config.client_id.clone(),
        config.timeout,
        config.output,
    );
    // The requests' counters start at 1, as in rounds.
    let send = move |k: u64| {
        call(
            client.clone(),
            method,
            headers.clone(),
            client_id.clone(),
            k + 1,
            timeout,
        )
    };
    let done = move |rpc: Rpc<(Result<HelloReply, Status>, Duration)>| {
        match rpc {
            // The latency from the schedule, not the one `call` measured from the send.
            Rpc::Done {
                result: (result, _),
                latency,
            } => {
                if output == Output::Text {
                    print(&mut std::io::stdout().lock(), &result, latency, output);
                }
                let mut counts = counts.lock().expect("counts lock");
                // Straight into the counts: a window per RPC would allocate a histogram per RPC.
                count(&mut counts.interval, &result, latency);
                count(&mut counts.total, &result, latency);
            }
            Rpc::Overload => {
                if output == Output::Text {
                    let _ = writeln!(
                        std::io::stdout().lock(),
                        "Error: {OVERLOAD}: not sent, {MAX_IN_FLIGHT} RPCs were in flight already"
                    );
                }
                let mut counts = counts.lock().expect("counts lock");
                counts.interval.overload();
                counts.total.overload();
            }
        }
    };
    open_loop.run(send, done, shutdown).await;
}

async fn call(
    mut client: GreeterClient<Balancer>,
    method: Method,
    headers: Arc<tonic::metadata::MetadataMap>,
    client_id: String,
    counter: u64,
    timeout: Duration,
) -> (Result<HelloReply, Status>, Duration) {
    let mut req = Request::new(HelloRequest { client_id, counter });
    *req.metadata_mut() = (*headers).clone();
    req.set_timeout(timeout);
    let started = Instant::now();
    let rpc = async {
        match method {
            Method::SayHello => client.say_hello(req).await,
            Method::SayHelloAgain => client.say_hello_again(req).await,
        }
    };
    let result = match tokio::time::timeout(timeout, rpc).await {
        Ok(r) => r.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no reply within {}",
            humantime::format_duration(timeout)
        ))),
    };
    (result, started.elapsed())
}

fn record(
    counts: &Mutex<Counts>,
    results: &[(Result<HelloReply, Status>, Duration)],
    output: Output,
) {
    let mut window = Window::default();
    let mut out = std::io::stdout().lock();
    for (result, latency) in results {
        count(&mut window, result, *latency);
        print(&mut out, result, *latency, output);
    }
    let _ = out.flush();
    let mut counts = counts.lock().expect("counts lock");
    counts.interval.merge(&window);
    counts.total.merge(&window);
}

fn count(window: &mut Window, result: &Result<HelloReply, Status>, latency: Duration) {
    match result {
        Ok(reply) => window.ok(&reply.server_id, &reply.server_version, latency),
        Err(status) => window.error(status.code(), latency),
    }
}

/// Text mode's line for each RPC.
fn print(
    out: &mut impl Write,
    result: &Result<HelloReply, Status>,
    latency: Duration,
    output: Output,
) {
    if output != Output::Text {
        return;
    }
    let _ = match result {
        Ok(reply) => writeln!(
            out,
            "Greeting: {} ({} at {}, {:.1}ms)",
            reply.message,
            reply.server_version,
            reply.server_addr,
            latency.as_secs_f64() * 1000.0
        ),
        Err(status) => writeln!(
            out,
            "Error: {}: {}",
            super::stats::code_name(status.code()),
            status.message()
        ),
    };
}

fn report(counts: &Mutex<Counts>, output: Output, start: Instant) {
    let window = std::mem::take(&mut counts.lock().expect("counts lock").interval);
    let mut out = std::io::stdout().lock();
    emit(
        &mut out,
        &window.summary(SummaryKind::Summary, start.elapsed()),
        output,
    );
    let _ = out.flush();
}

fn emit(out: &mut impl Write, summary: &super::Summary, output: Output) {
    let _ = match output {
        Output::Json => writeln!(
            out,
            "{}",
            serde_json::to_string(summary).unwrap_or_default()
        ),
        Output::Text => writeln!(out, "{}", summary.text()),
    };
}
