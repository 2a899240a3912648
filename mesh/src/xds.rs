//! Our control plane: an Envoy Aggregated Discovery Service (state-of-the-world ADS over gRPC).
//!
//! Each Envoy (node id) has a [`Snapshot`] of [`Resources`]. Setting a new snapshot pushes every
//! subscribed type to the connected Envoy at once, in make-before-break order (clusters, endpoints,
//! listeners, routes); nothing restarts. ACKs and NACKs are recorded so that callers can wait until
//! an Envoy has accepted a version.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
    aggregated_discovery_service_server::{
        AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
    },
};
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::translate::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, Resources};

/// The order in which types are pushed after a change: make before break.
const PUSH_ORDER: [&str; 4] = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE];

/// One version of one Envoy's configuration.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub version: u64,
    pub resources: Resources,
}

/// What an Envoy said about a version it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ack(u64),
    /// Rejected: the version, and Envoy's reason.
    Nack(u64, String),
}

#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    #[error("cannot listen for xds on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The control plane's state; cheap to clone.
#[derive(Clone, Default)]
pub struct ControlPlane {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    nodes: Mutex<HashMap<String, watch::Sender<Arc<Snapshot>>>>,
    replies: watch::Sender<BTreeMap<(String, String), Reply>>,
}

impl ControlPlane {
    pub fn new() -> ControlPlane {
        ControlPlane::default()
    }

    fn node(&self, node: &str) -> watch::Sender<Arc<Snapshot>> {
        let mut nodes = self.inner.nodes.lock().expect("nodes lock");
        nodes
            .entry(node.to_owned())
            .or_insert_with(|| watch::channel(Arc::new(Snapshot::default())).0)
            .clone()
    }

    /// Sets a node's configuration; returns the version it got (unchanged resources keep the
    /// current version and push nothing).
    pub fn set(&self, node: &str, resources: Resources) -> u64 {
        let tx = self.node(node);
        let mut version = 0;
        tx.send_if_modified(|snap| {
            if snap.version > 0 && snap.resources == resources {
                version = snap.version;
                return false;
            }
            version = snap.version + 1;
            *snap = Arc::new(Snapshot {
                version,
                resources: resources.clone(),
            });
            true
        });
        version
    }

    /// The node's current snapshot.
    pub fn snapshot(&self, node: &str) -> Arc<Snapshot> {
        self.node(node).borrow().clone()
    }

    /// Every reply so far, by (node, type URL): the latest ACK or NACK.
    pub fn replies(&self) -> watch::Receiver<BTreeMap<(String, String), Reply>> {
        self.inner.replies.subscribe()
    }

    /// Waits until `node` has ACKed `version` (or later) of every type it was sent, or NACKed one.
    pub async fn wait_acked(&self, node: &str, version: u64) -> Result<(), String> {
        let mut rx = self.replies();
        loop {
            {
                let replies = rx.borrow_and_update();
                let of_node: Vec<&Reply> = replies
                    .iter()
                    .filter(|((n, _), _)| n == node)
                    .map(|(_, r)| r)
                    .collect();
                if let Some(Reply::Nack(v, why)) = of_node
                    .iter()
                    .find(|r| matches!(r, Reply::Nack(v, _) if *v >= version))
                {
                    return Err(format!("envoy {node} rejected version {v}: {why}"));
                }
                let types = of_node.len();
                if types >= 2
                    && of_node
                        .iter()
                        .all(|r| matches!(r, Reply::Ack(v) if *v >= version))
                {
                    return Ok(());
                }
            }
            if rx.changed().await.is_err() {
                return Err("the control plane stopped".into());
            }
        }
    }

    /// The gRPC service to serve.
    pub fn service(&self) -> AggregatedDiscoveryServiceServer<ControlPlane> {
        AggregatedDiscoveryServiceServer::new(self.clone())
    }

    /// Serves ADS on `addr` until the returned handle is dropped.
    pub async fn serve(&self, addr: SocketAddr) -> Result<Serving, XdsError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| XdsError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| XdsError::Bind { addr, source })?;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let router = tonic::service::Routes::new(self.service());
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_routes(router)
                .serve_with_incoming(incoming)
                .await;
        });
        Ok(Serving { addr: local, task })
    }

    fn record(&self, node: &str, type_url: &str, reply: Reply) {
        self.inner.replies.send_modify(|r| {
            r.insert((node.to_owned(), type_url.to_owned()), reply);
        });
    }
}

/// A running ADS endpoint; stops when dropped.
pub struct Serving {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct Subscription {
    names: Vec<String>,
    nonce: String,
    version: u64,
}

/// One ADS stream with one Envoy.
struct Session {
    cp: ControlPlane,
    node: String,
    subs: HashMap<String, Subscription>,
    nonce: u64,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
}

impl Session {
    async fn send(&mut self, snapshot: &Snapshot, type_url: &str) -> bool {
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let sub = self.subs.entry(type_url.to_owned()).or_default();
        let all = snapshot.resources.of_type(type_url);
        // Listeners and clusters are wildcard; routes and endpoints are sent by name.
        let named = matches!(type_url, ROUTE_TYPE | ENDPOINT_TYPE) && !sub.names.is_empty();
        let resources = all
            .into_iter()
            .filter(|(name, _)| !named || sub.names.contains(name))
            .map(|(_, any)| any)
            .collect();
        sub.nonce = nonce.clone();
        sub.version = snapshot.version;
        let response = DiscoveryResponse {
            version_info: snapshot.version.to_string(),
            resources,
            type_url: type_url.to_owned(),
            nonce,
            ..Default::default()
        };
        self.tx.send(Ok(response)).await.is_ok()
    }

    /// Handles one request; returns false when the stream is gone.
    async fn handle(&mut self, req: DiscoveryRequest, snapshot: &Snapshot) -> bool {
        let type_url = req.type_url.clone();
        let sub = self.subs.entry(type_url.clone()).or_default();
        if !req.response_nonce.is_empty() {
            if req.response_nonce != sub.nonce {
                // A reply to a response that a newer one has replaced: nothing to do.
                return true;
            }
            let version = sub.version;
            let names_changed = sub.names != req.resource_names;
            sub.names = req.resource_names;
            match req.error_detail {
                Some(err) => {
                    tracing::warn!(node = %self.node, %type_url, version, reason = %err.message, "envoy rejected configuration");
                    self.cp
                        .record(&self.node, &type_url, Reply::Nack(version, err.message));
                    return true;
                }
                None => self.cp.record(&self.node, &type_url, Reply::Ack(version)),
            }
            if names_changed || version < snapshot.version {
                return self.send(snapshot, &type_url).await;
            }
            return true;
        }
        // A new subscription (or Envoy reconnected).
        sub.names = req.resource_names;
        self.send(snapshot, &type_url).await
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for ControlPlane {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream =
        Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

    async fn stream_aggregated_resources(
        &self,
        req: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let mut inbound = req.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the stream ended before its first request"))?;
        let node = first
            .node
            .as_ref()
            .map(|n| n.id.clone())
            .filter(|id| !id.is_empty());
        let node =
            node.ok_or_else(|| Status::invalid_argument("the first request names no node id"))?;
        let (tx, rx) = mpsc::channel(16);
        let mut snapshots = self.node(&node).subscribe();
        let mut session = Session {
            cp: self.clone(),
            node: node.clone(),
            subs: HashMap::new(),
            nonce: 0,
            tx,
        };
        tracing::debug!(%node, "envoy connected");
        tokio::spawn(async move {
            let mut snapshot = snapshots.borrow_and_update().clone();
            if !session.handle(first, &snapshot).await {
                return;
            }
            loop {
                tokio::select! {
                    msg = inbound.message() => match msg {
                        Ok(Some(req)) => {
                            if !session.handle(req, &snapshot).await {
                                return;
                            }
                        }
                        Ok(None) | Err(_) => {
                            tracing::debug!(node = %session.node, "envoy disconnected");
                            return;
                        }
                    },
                    changed = snapshots.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        snapshot = snapshots.borrow_and_update().clone();
                        for type_url in PUSH_ORDER {
                            if session.subs.contains_key(type_url) && !session.send(&snapshot, type_url).await {
                                return;
                            }
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _req: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "this control plane serves state-of-the-world ADS only",
        ))
    }
}
