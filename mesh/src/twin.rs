//! The local twin of a cluster with a mesh: server pods as processes on their own loopback
//! addresses, Services answered by our DNS server (a virtual IP for ClusterIP, the pod addresses
//! for headless), kube-proxy's per-connection balancing for virtual IPs, and real Envoys (a client
//! sidecar, proxies in front of the servers, or ambient mode's waypoint behind a model of ztunnel)
//! fed by our control plane.
//!
//! What the client's target `server:50051` resolves to is the whole experiment: a virtual IP, the
//! pods, the proxies, ztunnel's capture of the virtual IP, or the sidecar (as Istio's interception sends a meshed pod's traffic to its
//! sidecar). With the sidecar on and `server` headless, each pod address has an intercepting
//! address of its own (the same host number in the block's second /24), which the sidecar
//! forwards to that pod: Istio's passthrough for headless Services ([`translate::Passthrough`]).
//!
//! Timing follows Kubernetes and Istio, not an idealised mesh:
//! - an endpoint change reaches DNS and the virtual IPs at once (CoreDNS and kube-proxy watch the
//!   EndpointSlices), and the Envoys after istiod's debounce ([`PushTiming::ISTIO`]);
//! - a pod scaled away or replaced gets SIGTERM at the same time as its endpoint leaves (the
//!   kubelet and the EndpointSlice controller act on the deletion independently), so requests can
//!   still reach it while it drains;
//! - a killed pod's container is restarted in place by the kubelet (same name, same address), as
//!   [`kubelet`] describes;
//! - configuration changes (mesh, routes, Service type, mesh config) are pushed, then waited for
//!   until every running Envoy accepted them, then DNS follows (make before break).

mod block;
mod deployments;
mod envoys;
mod error;
mod kubelet;
mod l4;
mod pods;
mod publish;
pub mod push;
pub mod sidecar;
mod ztunnel;

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

pub use block::Block;
pub use envoys::Mesh;
pub use error::TwinError;
pub use pods::{Pod, PodError, PodSpec};
pub use push::PushTiming;
use tokio::time::Instant;

use crate::{
    dns::{DnsServer, Records},
    envoy::Envoy,
    gateway::{Routes, Warning},
    model::{MeshConfig, Service},
    translate,
    xds::{ControlPlane, Serving},
};
use block::{DNS_HOST, POD_HOSTS};

/// The port every Service and pod of the twin uses.
pub const PORT: u16 = 50051;
/// The namespace of every object.
pub const NAMESPACE: &str = "default";
/// The Service that selects every version.
pub const SERVICE: &str = "server";
/// How long a pod gets to drain when scaled away.
pub const POD_STOP_DEADLINE: Duration = Duration::from_secs(30);
/// How long an Envoy gets to accept a configuration.
pub const ACK_DEADLINE: Duration = Duration::from_secs(10);

/// How the Service `server` is exposed (the per-version Services are always ClusterIP, as on the
/// cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceMode {
    /// One virtual IP, balanced per connection (kube-proxy); with the sidecar, balanced per
    /// request by the sidecar.
    ClusterIp,
    /// Every ready pod address in DNS; with the sidecar, passthrough to the pod the client chose.
    Headless,
}

/// What the twin starts with.
#[derive(Debug, Clone)]
pub struct TwinSpec {
    pub server_bin: PathBuf,
    pub envoy_bin: Option<PathBuf>,
    /// Logs and Envoy files go here.
    pub work_dir: PathBuf,
    /// Replicas per version, e.g. `[("v1", 3)]`.
    pub versions: Vec<(String, u32)>,
    /// Extra environment of every server pod (max connection age, response delay).
    pub server_env: Vec<(String, String)>,
    /// How `server` is exposed at the start; [`Twin::set_mode`] changes it.
    pub mode: ServiceMode,
}

/// How the twin names its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodNames {
    /// `server-v1-0`: the Service, the version, and an ordinal per version.
    Versioned,
    /// `server-0`: the Service and an ordinal, for a twin of one version (`cargo xtask hello`).
    Ordinal,
}

/// A running twin; stops everything it started when dropped.
pub struct Twin {
    spec: TwinSpec,
    block: Block,
    _dns: DnsServer,
    records: Records,
    cp: ControlPlane,
    xds: Serving,
    pusher: push::Pusher,
    timing: PushTiming,
    /// The ready pods, by version: the endpoints.
    pods: BTreeMap<String, Vec<Pod>>,
    next_pod_host: u8,
    next_ordinal: BTreeMap<String, u32>,
    pod_names: PodNames,
    vips: BTreeMap<String, l4::VirtualIp>,
    mesh: Mesh,
    mode: ServiceMode,
    mesh_config: MeshConfig,
    /// The sidecar keeps intercepting pod addresses while `server` stops being headless, until
    /// DNS no longer hands them out.
    keep_intercepts: bool,
    sidecar: Option<Envoy>,
    proxies: Vec<Envoy>,
    /// The waypoint of ambient mode, and ztunnel's captures.
    waypoint: Option<Envoy>,
    ztunnel: ztunnel::Ztunnel,
    routes: Routes,
    warnings: Vec<Warning>,
    /// The configuration the static sidecar was started with.
    static_config: Option<translate::Resources>,
    relist: kubelet::Relist,
    backoff: kubelet::RestartBackoff,
}

impl Twin {
    /// Starts DNS, the control plane and the pods; the mesh starts off.
    pub async fn start(spec: TwinSpec) -> Result<Twin, TwinError> {
        Twin::start_with_names(spec, PodNames::Versioned).await
    }

    /// As [`Twin::start`], with the pods named as `pod_names` says.
    pub async fn start_with_names(spec: TwinSpec, pod_names: PodNames) -> Result<Twin, TwinError> {
        std::fs::create_dir_all(&spec.work_dir).map_err(|source| TwinError::Io {
            path: spec.work_dir.clone(),
            source,
        })?;
        let block = Block::random();
        let records = Records::new();
        let dns = DnsServer::start(SocketAddr::new(block.ip(DNS_HOST), 0), records.clone()).await?;
        let cp = ControlPlane::new();
        let xds = cp.serve(SocketAddr::new(block.ip(DNS_HOST), 0)).await?;
        let mut twin = Twin {
            spec: spec.clone(),
            block,
            _dns: dns,
            records,
            pusher: push::Pusher::new(cp.clone()),
            timing: PushTiming::default(),
            cp,
            xds,
            pods: BTreeMap::new(),
            next_pod_host: POD_HOSTS.start,
            next_ordinal: BTreeMap::new(),
            pod_names,
            vips: BTreeMap::new(),
            mesh: Mesh::Off,
            mode: spec.mode,
            mesh_config: MeshConfig::default(),
            keep_intercepts: false,
            sidecar: None,
            proxies: Vec::new(),
            waypoint: None,
            ztunnel: ztunnel::Ztunnel::default(),
            routes: Routes::empty(),
            warnings: Vec::new(),
            static_config: None,
            relist: kubelet::Relist::new(Instant::now()),
            backoff: kubelet::RestartBackoff::default(),
        };
        // The starting state is settled: no event timing to model.
        for (version, replicas) in &spec.versions {
            for _ in 0..*replicas {
                let pod = twin.start_pod(version).await?;
                twin.pods.entry(version.clone()).or_default().push(pod);
            }
        }
        twin.publish_now().await?;
        Ok(twin)
    }

    /// The client's target: the same in every experiment.
    pub fn target(&self) -> String {
        format!("dns://{}/{SERVICE}:{PORT}", self._dns.local_addr())
    }

    /// The twin's loopback block, e.g. `127.31.6.0/23`.
    pub fn block(&self) -> String {
        self.block.to_string()
    }

    pub fn dns_addr(&self) -> SocketAddr {
        self._dns.local_addr()
    }

    pub fn mesh(&self) -> Mesh {
        self.mesh
    }

    /// How `server` is exposed now.
    pub fn mode(&self) -> ServiceMode {
        self.mode
    }

    /// The mesh configuration in force.
    pub fn mesh_config(&self) -> &MeshConfig {
        &self.mesh_config
    }

    pub fn control_plane(&self) -> &ControlPlane {
        &self.cp
    }

    pub fn sidecar(&self) -> Option<&Envoy> {
        self.sidecar.as_ref()
    }

    /// The waypoint, while [`Mesh::Waypoint`] is the mesh.
    pub fn waypoint(&self) -> Option<&Envoy> {
        self.waypoint.as_ref()
    }

    /// The proxies in front of the servers, in order.
    pub fn proxies(&self) -> &[Envoy] {
        &self.proxies
    }

    /// The routes in force: to change them, make a new set from these and set it.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Warnings about the routes in force (unresolved backend references).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The pods now ready, by version.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values().flatten()
    }

    /// The Services as a control plane sees them.
    pub fn services(&self) -> Vec<Service> {
        let mut services = vec![Service {
            name: SERVICE.into(),
            namespace: NAMESPACE.into(),
            port: PORT,
            endpoints: self.pods().map(|p| p.addr).collect(),
            headless: self.mode == ServiceMode::Headless,
        }];
        for (version, pods) in &self.pods {
            services.push(Service {
                name: format!("{SERVICE}-{version}"),
                namespace: NAMESPACE.into(),
                port: PORT,
                endpoints: pods.iter().map(|p| p.addr).collect(),
                headless: false,
            });
        }
        services
    }

    /// When changes reach the control plane from now on: [`PushTiming::ISTIO`] (the default), or
    /// [`PushTiming::Immediate`] to measure the raw push.
    pub fn set_push_timing(&mut self, timing: PushTiming) {
        self.timing = timing;
    }

    /// Sets the routes in force (validated when they were made); returns the warnings about them
    /// once every Envoy has them.
    pub async fn set_routes(&mut self, routes: Routes) -> Result<Vec<Warning>, TwinError> {
        self.routes = routes;
        self.publish().await?;
        Ok(self.warnings.clone())
    }

    /// Sets the mesh-wide configuration (Istio's `meshConfig`) every Envoy's configuration is
    /// translated with; returns once every Envoy has it.
    pub async fn set_mesh_config(&mut self, config: MeshConfig) -> Result<(), TwinError> {
        self.mesh_config = config;
        self.publish().await
    }

    /// Exposes `server` as ClusterIP or headless from now on: DNS answers accordingly and the
    /// sidecar balances (ClusterIP) or passes through to the pod the client chose (headless).
    /// Make before break: the Envoys get the new configuration (and keep intercepting pod
    /// addresses) and accept it before DNS changes; only then do the intercepting listeners go.
    pub async fn set_mode(&mut self, mode: ServiceMode) -> Result<(), TwinError> {
        if mode == self.mode {
            return Ok(());
        }
        self.keep_intercepts = self.mode == ServiceMode::Headless;
        self.mode = mode;
        self.publish().await?;
        if self.keep_intercepts {
            self.keep_intercepts = false;
            self.publish().await?;
        }
        Ok(())
    }

    /// Stops every process, pods gracefully.
    pub async fn shutdown(self) {
        let _ = self.stop(Duration::from_secs(5)).await;
    }

    /// Stops every process: the Envoys, then every pod at once with SIGTERM and up to `grace` to
    /// drain. Fails naming each pod that exited with a failure or had to be killed.
    pub async fn stop(mut self, grace: Duration) -> Result<(), TwinError> {
        if let Some(s) = self.sidecar.take() {
            s.stop().await;
        }
        for p in self.proxies.drain(..) {
            p.stop().await;
        }
        if let Some(w) = self.waypoint.take() {
            w.stop().await;
        }
        let pods: Vec<Pod> = std::mem::take(&mut self.pods)
            .into_values()
            .flatten()
            .collect();
        pods::stop_all(pods, grace).await.map_err(PodError::from)?;
        Ok(())
    }
}
