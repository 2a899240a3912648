//! Client-side load balancing, as gRPC's `round_robin` and `pick_first` policies do it.
//!
//! One HTTP/2 connection per resolved address (round robin) or one in all (pick first). RPCs go
//! to ready connections in strict rotation. When a connection closes (a GOAWAY from max
//! connection age, a server that went away) the target is resolved again and connections are
//! made to whatever it resolves to now; nothing else triggers a resolution, which is exactly why
//! a scale-up goes unnoticed without max connection age.
//!
//! RPCs wait for the first resolution and its connections; once an attempt failed, an RPC that
//! finds no open connection fails at once with UNAVAILABLE and the reason (`name resolver
//! error: ...` when the name did not resolve), while the balancer tries again with backoff.
//!
//! This is a `tower::Service`, so the generated tonic client runs on it unchanged.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, client::conn::http2::SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{net::TcpStream, sync::watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::Status;

use super::resolve::Resolver;

/// How RPCs are spread over the resolved addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Policy {
    /// A connection to every address; RPCs in strict rotation.
    RoundRobin,
    /// One connection, to the first address that accepts it.
    PickFirst,
}

/// How long a TCP connect may take before the address counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How an RPC's error begins when the target could not be resolved: grpc-go's words
/// (balancer/pickfirst/pickfirst.go, `resolverErrorLocked`), so that the cause reads the same.
pub const RESOLVER_ERROR: &str = "name resolver error";
/// Attempts per RPC when a connection refuses it unprocessed (after a GOAWAY).
const MAX_ATTEMPTS: usize = 3;

/// Reconnection backoff, as gRPC's connection-backoff document sets it (shorter maximum).
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MULTIPLIER: f64 = 1.6;
const BACKOFF_JITTER: f64 = 0.2;
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A balancer over one target; cheap to clone. The resolver task stops with the last clone.
#[derive(Clone)]
pub struct Balancer {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    authority: http::uri::Authority,
    next: AtomicUsize,
    _stop: DropGuard,
}

struct Shared {
    policy: Policy,
    state: watch::Sender<Snapshot>,
    reresolve: tokio::sync::Notify,
}

#[derive(Clone, Default)]
struct Snapshot {
    conns: Arc<Vec<SubConn>>,
    /// Why there is no connection, once an attempt to make one failed.
    failure: Option<Arc<str>>,
}

#[derive(Clone)]
struct SubConn {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
    closed: Arc<AtomicBool>,
}

impl SubConn {
    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }
}

impl Balancer {
    /// Starts resolving and connecting in the background; every request carries `authority`.
    pub fn start(authority: http::uri::Authority, resolver: Resolver, policy: Policy) -> Balancer {
        let (state, _) = watch::channel(Snapshot::default());
        let shared = Arc::new(Shared {
            policy,
            state,
            reresolve: tokio::sync::Notify::new(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(drive(shared.clone(), resolver, stop.clone()));
        Balancer {
            handle: Arc::new(Handle {
                shared,
                authority,
                next: AtomicUsize::new(0),
                _stop: stop.drop_guard(),
            }),
        }
    }

    /// Completes when the set of connections changes, or after `limit`.
    pub async fn changed_or(&self, limit: Duration) {
        let mut rx = self.handle.shared.state.subscribe();
        let _ = tokio::time::timeout(limit, rx.changed()).await;
    }

    /// The next open connection in rotation; waits while the first connections are being made,
    /// fails fast (UNAVAILABLE) when making them failed.
    async fn pick(&self) -> Result<SubConn, Status> {
        let mut rx = self.handle.shared.state.subscribe();
        loop {
            {
                let snap = rx.borrow_and_update();
                let open: Vec<&SubConn> = snap.conns.iter().filter(|c| c.is_open()).collect();
                if !open.is_empty() {
                    let i = self.handle.next.fetch_add(1, Ordering::Relaxed) % open.len();
                    return Ok(open[i].clone());
                }
                if let Some(why) = &snap.failure {
                    return Err(Status::unavailable(why.to_string()));
                }
            }
            if rx.changed().await.is_err() {
                return Err(Status::unavailable("the balancer has stopped"));
            }
        }
    }

    async fn send(
        self,
        req: http::Request<tonic::body::Body>,
    ) -> Result<http::Response<Incoming>, Status> {
        let (parts, body) = req.into_parts();
        // Unary requests are small: holding the bytes lets a request that a closing connection
        // refused unprocessed go to another connection (gRPC's transparent retry).
        let body = body
            .collect()
            .await
            .map_err(|e| Status::internal(format!("cannot read the request body: {e}")))?
            .to_bytes();
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let uri = http::Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(self.handle.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| Status::internal(format!("cannot build the request URI: {e}")))?;
        let mut last = None;
        for _ in 0..MAX_ATTEMPTS {
            let conn = self.pick().await?;
            let mut req = http::Request::new(Full::new(body.clone()));
            *req.method_mut() = parts.method.clone();
            *req.uri_mut() = uri.clone();
            *req.headers_mut() = parts.headers.clone();
            let mut sender = conn.sender.clone();
            match sender.try_send_request(req).await {
                Ok(res) => return Ok(res),
                Err(mut err) => {
                    let unsent = err.take_message().is_some();
                    let err = err.into_error();
                    if unsent || refused_unprocessed(&err) {
                        // The connection is going away: stop using it and find out what is there now.
                        conn.closed.store(true, Ordering::Release);
                        self.handle.shared.reresolve.notify_one();
                        last = Some(format!("connection to {} is closing: {err}", conn.addr));
                        continue;
                    }
                    return Err(Status::unavailable(format!(
                        "connection to {} failed: {err}",
                        conn.addr
                    )));
                }
            }
        }
        Err(Status::unavailable(
            last.unwrap_or_else(|| "no connection took the request".into()),
        ))
    }
}

/// True when the server refused the stream before processing it: after its GOAWAY, or with
/// REFUSED_STREAM. Such a request is safe to send again.
fn refused_unprocessed(err: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.is_go_away() || h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = e.source();
    }
    false
}

impl tower::Service<http::Request<tonic::body::Body>> for Balancer {
    type Response = http::Response<Incoming>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Status>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.clone().send(req))
    }
}

/// Resolves and connects; then waits for a connection to close (or for a backoff to pass after a
/// failure) and does it again.
///
/// A failed resolution is reported as grpc-go's pick_first reports it, `name resolver error:
/// ...`, to every RPC that finds no open connection. When DNS answered that the name has no
/// addresses (NXDOMAIN, NODATA) the connections to the old addresses are closed, as grpc-go
/// closes its subchannels on an update with zero addresses; when DNS did not answer, the open
/// connections stay in use (grpc-go ignores a resolver error after a good update).
async fn drive(shared: Arc<Shared>, resolver: Resolver, stop: CancellationToken) {
    let mut backoff = Backoff::default();
    loop {
        let outcome = match resolver.resolve().await {
            Ok(addrs) => update(&shared, &addrs).await,
            Err(err) => {
                let why = format!("{RESOLVER_ERROR}: {}", ErrorChain(&err));
                if err.no_addresses() {
                    clear(&shared, &why);
                }
                Err(why)
            }
        };
        let retry_in = match outcome {
            Ok(()) => {
                backoff = Backoff::default();
                None
            }
            Err(why) => {
                let retry_in = backoff.next();
                tracing::warn!(retry_in = ?retry_in, "{why}");
                shared.state.send_modify(|s| {
                    if !s.conns.iter().any(SubConn::is_open) {
                        s.failure = Some(why.into());
                    }
                });
                Some(retry_in)
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = shared.reresolve.notified() => {}
            () = sleep_opt(retry_in) => {}
        }
    }
}

/// The name has no addresses now: close every connection (each once its RPCs in flight finish)
/// and fail new RPCs with `why`.
fn clear(shared: &Shared, why: &str) {
    let old = shared.state.send_replace(Snapshot {
        conns: Arc::new(Vec::new()),
        failure: Some(why.into()),
    });
    for conn in old.conns.iter().filter(|c| c.is_open()) {
        conn.closed.store(true, Ordering::Release);
        tracing::info!(addr = %conn.addr, "the name has no addresses, closing the connection");
    }
}

/// Makes the connections match `addrs`; an error says which addresses could not be reached.
async fn update(shared: &Arc<Shared>, addrs: &[SocketAddr]) -> Result<(), String> {
    let current: Vec<SubConn> = shared
        .state
        .borrow()
        .conns
        .iter()
        .filter(|c| c.is_open())
        .cloned()
        .collect();
    let existing = |addr: &SocketAddr| current.iter().find(|c| c.addr == *addr).cloned();
    let mut failures = Vec::new();
    let next: Vec<SubConn> = match shared.policy {
        Policy::RoundRobin => {
            let attempts = addrs.iter().map(|addr| async move {
                match existing(addr) {
                    Some(conn) => Ok(conn),
                    None => connect(shared, *addr).await,
                }
            });
            let mut conns = Vec::new();
            for result in futures::future::join_all(attempts).await {
                match result {
                    Ok(conn) => conns.push(conn),
                    Err(why) => failures.push(why),
                }
            }
            conns
        }
        Policy::PickFirst => match addrs.iter().find_map(existing) {
            Some(conn) => vec![conn],
            None => {
                let mut picked = Vec::new();
                for addr in addrs {
                    match connect(shared, *addr).await {
                        Ok(conn) => {
                            picked.push(conn);
                            break;
                        }
                        Err(why) => failures.push(why),
                    }
                }
                if !picked.is_empty() {
                    failures.clear();
                }
                picked
            }
        },
    };
    // Connections to addresses that are gone: closed once their in-flight RPCs finish.
    for gone in current
        .iter()
        .filter(|c| !next.iter().any(|n| n.addr == c.addr))
    {
        gone.closed.store(true, Ordering::Release);
        tracing::info!(addr = %gone.addr, "address removed, closing its connection");
    }
    let failure = if next.is_empty() {
        Some(failures.join("; ").into())
    } else {
        None
    };
    shared.state.send_replace(Snapshot {
        conns: Arc::new(next),
        failure,
    });
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

async fn connect(shared: &Arc<Shared>, addr: SocketAddr) -> Result<SubConn, String> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return Err(format!("cannot connect to {addr}: {err}")),
        Err(_) => return Err(format!("cannot connect to {addr}: timed out")),
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|err| format!("cannot start HTTP/2 with {addr}: {err}"))?;
    let closed = Arc::new(AtomicBool::new(false));
    let weak = Arc::downgrade(shared);
    let flag = closed.clone();
    tokio::spawn(async move {
        let result = conn.await;
        // Ours to close (an address that went away) or theirs: only theirs asks for a resolution.
        if !flag.swap(true, Ordering::AcqRel) {
            match result {
                Ok(()) => tracing::info!(%addr, "connection closed by the server, resolving again"),
                Err(err) => tracing::info!(%addr, %err, "connection failed, resolving again"),
            }
            if let Some(shared) = weak.upgrade() {
                shared.reresolve.notify_one();
                // Wake pickers so they stop choosing this connection.
                shared.state.send_modify(|_| {});
            }
        }
    });
    tracing::info!(%addr, "connected");
    Ok(SubConn {
        addr,
        sender,
        closed,
    })
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_INITIAL,
        }
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        use rand::Rng;
        let jitter = rand::rng().random_range(1.0 - BACKOFF_JITTER..=1.0 + BACKOFF_JITTER);
        let now = self.next.mul_f64(jitter);
        self.next = self.next.mul_f64(BACKOFF_MULTIPLIER).min(BACKOFF_MAX);
        now
    }
}

/// Displays an error with its sources, `outer: inner`.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_the_multiplier_up_to_the_maximum() {
        let mut b = Backoff::default();
        let first = b.next();
        assert!(
            first >= Duration::from_millis(800) && first <= Duration::from_millis(1200),
            "{first:?}"
        );
        for _ in 0..20 {
            b.next();
        }
        assert!(b.next() <= BACKOFF_MAX.mul_f64(1.0 + BACKOFF_JITTER));
    }
}
