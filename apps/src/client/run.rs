//! The seed's loop: a round of concurrent RPCs, wait for all, print each reply, repeat.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::join_all;
use hello_proto::{GreeterClient, HelloReply, HelloRequest};
use tokio::time::Instant;
use tonic::{Request, Status};

use super::{
    Config, Method, Output,
    balancer::{AuthorityError, Balancer},
    resolve::{ResolveError, Resolver},
    stats::{SummaryKind, Window},
};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Resolver(#[from] ResolveError),
    #[error(transparent)]
    Authority(#[from] AuthorityError),
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
    let balancer = Balancer::start(&config.target, resolver, config.lb)?;
    let client = GreeterClient::new(balancer.clone());
    let counts = Arc::new(Mutex::new(Counts::default()));
    let output = config.output;
    tracing::info!(target = %config.target, lb = ?config.lb, concurrency = config.concurrency, "starting");

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
        record(&counts, &results, output);
        if all_unavailable && !done(round) {
            // Nothing to talk to: wait for the balancer to connect somewhere rather than spin.
            tokio::select! {
                () = balancer.changed_or(Duration::from_secs(1)) => {}
                () = &mut shutdown => break,
            }
        }
    }
    reporter.abort();
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
        match result {
            Ok(reply) => {
                window.ok(&reply.server_id, &reply.server_version, *latency);
                if output == Output::Text {
                    let _ = writeln!(
                        out,
                        "Greeting: {} ({} at {}, {:.1}ms)",
                        reply.message,
                        reply.server_version,
                        reply.server_addr,
                        latency.as_secs_f64() * 1000.0
                    );
                }
            }
            Err(status) => {
                window.error(status.code(), *latency);
                if output == Output::Text {
                    let _ = writeln!(
                        out,
                        "Error: {}: {}",
                        super::stats::code_name(status.code()),
                        status.message()
                    );
                }
            }
        }
    }
    let _ = out.flush();
    let mut counts = counts.lock().expect("counts lock");
    counts.interval.merge(&window);
    counts.total.merge(&window);
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
