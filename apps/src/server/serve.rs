//! The connection loop: accept, serve HTTP/2, age connections out, drain on shutdown.

use std::{future::Future, net::SocketAddr, time::Duration};

use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use rand::Rng;
use tokio::{net::TcpListener, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::service::Routes;
use tower::ServiceExt;

use super::{
    Config,
    greeter::{ConnAddrs, Greeter},
    health::{self, State},
    metrics::{self, Metrics},
};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen for {what} on {addr}: address already in use")]
    AddrInUse {
        what: &'static str,
        addr: SocketAddr,
    },
    #[error("cannot listen for {what} on {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
}

/// A bound server, not yet serving: binding first makes a taken port fail at start.
pub struct Server {
    config: Config,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    metrics::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ServeError::AddrInUse { what, addr }
        } else {
            ServeError::Bind { what, addr, source }
        }
    })
}

impl Server {
    pub async fn bind(config: Config) -> Result<Server, ServeError> {
        let listener = bind("grpc", config.listen).await?;
        let metrics_listener = match config.metrics {
            Some(addr) => Some(bind("metrics", addr).await?),
            None => None,
        };
        Ok(Server {
            config,
            listener,
            metrics_listener,
        })
    }

    /// The bound gRPC address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then drains: health turns NOT_SERVING, the listener
    /// closes (new connections are refused), every connection gets GOAWAY, and in-flight RPCs
    /// have until the drain timeout to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Server {
            config,
            listener,
            metrics_listener,
        } = self;
        let metrics = Metrics::new();
        if let Some(l) = metrics_listener {
            tokio::spawn(metrics.clone().serve(l));
        }
        let (reporter, health) = health::new();
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(hello_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let greeter = Greeter {
            server_id: config.server_id.clone(),
            version: config.version.clone(),
            response_delay: config.response_delay,
            metrics: metrics.clone(),
        };
        let routes = Routes::new(hello_proto::GreeterServer::new(greeter))
            .add_service(tonic_health::pb::health_server::HealthServer::new(health))
            .add_service(reflection().build_v1().map_err(ServeError::Reflection)?)
            .add_service(
                reflection()
                    .build_v1alpha()
                    .map_err(ServeError::Reflection)?,
            )
            .prepare();

        let draining = CancellationToken::new();
        let tracker = TaskTracker::new();
        let ages = Ages {
            age: config.max_connection_age,
            grace: config.max_connection_age_grace,
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(err) => {
                            // Out of file descriptors and the like: log, pause briefly, go on.
                            tracing::warn!(%err, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let local = stream.local_addr().unwrap_or(config.listen);
                    let conn = Conn { addrs: ConnAddrs { local, peer }, routes: routes.clone(), metrics: metrics.clone(), draining: draining.clone(), ages };
                    tracker.spawn(conn.serve(stream));
                }
            }
        }

        reporter.set(State::Draining);
        drop(listener);
        let open = tracker.len();
        tracing::info!(connections = open, deadline = %humantime::format_duration(config.drain_timeout), "draining");
        draining.cancel();
        tracker.close();
        match tokio::time::timeout(config.drain_timeout, tracker.wait()).await {
            Ok(()) => tracing::info!("drained, exiting"),
            Err(_) => tracing::warn!(
                connections = tracker.len(),
                "drain deadline passed, closing what is left"
            ),
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct Ages {
    age: Option<Duration>,
    grace: Option<Duration>,
}

struct Conn {
    addrs: ConnAddrs,
    routes: Routes,
    metrics: Metrics,
    draining: CancellationToken,
    ages: Ages,
}

impl Conn {
    async fn serve(self, stream: tokio::net::TcpStream) {
        let _open = self.metrics.connection_opened();
        let addrs = self.addrs;
        let svc = self
            .routes
            .map_request(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(addrs);
                req.map(tonic::body::Body::new)
            });
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        tokio::pin!(conn);

        // As gRPC specifies: GOAWAY at the age (jittered by ±10% so that connections made together
        // do not all reconnect together), a hard close once the grace after it has passed.
        let goaway_at = self.ages.age.map(|age| Instant::now() + jitter(age));
        let mut goaway_sent = false;
        let mut close_at: Option<Instant> = None;
        loop {
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(err) = res {
                        tracing::debug!(peer = %addrs.peer, %err, "connection ended with an error");
                    }
                    return;
                }
                () = sleep_until(goaway_at), if !goaway_sent => {
                    tracing::debug!(peer = %addrs.peer, "max connection age reached, sending GOAWAY");
                    conn.as_mut().graceful_shutdown();
                    goaway_sent = true;
                    close_at = self.ages.grace.map(|grace| Instant::now() + grace);
                }
                () = sleep_until(close_at) => {
                    tracing::debug!(peer = %addrs.peer, "max connection age grace over, closing");
                    return;
                }
                // Draining is bounded by the server's drain deadline, not by a grace here.
                () = self.draining.cancelled(), if !goaway_sent => {
                    conn.as_mut().graceful_shutdown();
                    goaway_sent = true;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::rng().random_range(0.9..=1.1))
}
