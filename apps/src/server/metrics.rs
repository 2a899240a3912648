//! Prometheus metrics of the server: RPCs by method and code, in-flight RPCs, open connections.

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: &'static str,
    code: &'static str,
}

/// The server's counters; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    rpcs: Family<RpcLabels, Counter>,
    in_flight: Gauge,
    connections_open: Gauge,
    connections: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hello");
        let rpcs = Family::<RpcLabels, Counter>::default();
        let in_flight = Gauge::default();
        let connections_open = Gauge::default();
        let connections = Counter::default();
        registry.register(
            "rpcs",
            "RPCs finished, by method and gRPC status code",
            rpcs.clone(),
        );
        registry.register(
            "rpcs_in_flight",
            "RPCs being handled now",
            in_flight.clone(),
        );
        registry.register(
            "connections_open",
            "HTTP/2 connections open now",
            connections_open.clone(),
        );
        registry.register(
            "connections",
            "HTTP/2 connections accepted",
            connections.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                rpcs,
                in_flight,
                connections_open,
                connections,
            }),
        }
    }

    /// Counts an RPC as in flight until the guard is finished or dropped (a dropped guard is a
    /// cancelled RPC: the client went away or the connection closed).
    pub fn rpc_started(&self, method: &'static str) -> RpcGuard {
        self.inner.in_flight.inc();
        RpcGuard {
            metrics: self.clone(),
            method,
            code: None,
        }
    }

    /// Counts a connection as open until the guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.inner.connections.inc();
        self.inner.connections_open.inc();
        ConnectionGuard {
            metrics: self.clone(),
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }

    /// Serves `GET /metrics` on `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = self.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, std::convert::Infallible>(metrics.respond(&req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }

    fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let mut res = if req.uri().path() == "/metrics" {
            let mut res = Response::new(Full::new(Bytes::from(self.encode())));
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            res
        } else {
            Response::new(Full::new(Bytes::from_static(b"not found: try /metrics\n")))
        };
        if req.uri().path() != "/metrics" {
            *res.status_mut() = StatusCode::NOT_FOUND;
        }
        res
    }
}

/// Binds the metrics listener; an error names the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub struct RpcGuard {
    metrics: Metrics,
    method: &'static str,
    code: Option<tonic::Code>,
}

impl RpcGuard {
    pub fn finish(mut self, code: tonic::Code) {
        self.code = Some(code);
    }
}

impl Drop for RpcGuard {
    fn drop(&mut self) {
        let inner = &self.metrics.inner;
        inner.in_flight.dec();
        let code = code_name(self.code.unwrap_or(tonic::Code::Cancelled));
        inner
            .rpcs
            .get_or_create(&RpcLabels {
                method: self.method,
                code,
            })
            .inc();
    }
}

pub struct ConnectionGuard {
    metrics: Metrics,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.inner.connections_open.dec();
    }
}

/// The canonical upper-case name of a gRPC status code, as Prometheus labels usually carry it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_rpc_is_counted_by_method_and_code() {
        let m = Metrics::new();
        let g = m.rpc_started("SayHello");
        assert!(
            m.encode().contains("hello_rpcs_in_flight 1"),
            "{}",
            m.encode()
        );
        g.finish(tonic::Code::Ok);
        let text = m.encode();
        assert!(
            text.contains(r#"hello_rpcs_total{method="SayHello",code="OK"} 1"#),
            "{text}"
        );
        assert!(text.contains("hello_rpcs_in_flight 0"), "{text}");
    }

    #[test]
    fn a_dropped_rpc_counts_as_cancelled() {
        let m = Metrics::new();
        drop(m.rpc_started("SayHelloAgain"));
        assert!(
            m.encode()
                .contains(r#"hello_rpcs_total{method="SayHelloAgain",code="CANCELLED"} 1"#)
        );
    }

    #[test]
    fn connections_are_open_until_dropped() {
        let m = Metrics::new();
        let c = m.connection_opened();
        assert!(m.encode().contains("hello_connections_open 1"));
        drop(c);
        let text = m.encode();
        assert!(text.contains("hello_connections_open 0"), "{text}");
        assert!(text.contains("hello_connections_total 1"), "{text}");
    }
}
