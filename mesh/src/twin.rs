//! The local twin of a cluster with a mesh: server pods as processes on their own loopback
//! addresses, Services answered by our DNS server (a virtual IP for ClusterIP, the pod addresses
//! for headless), kube-proxy's per-connection balancing for virtual IPs, and real Envoys (a client
//! sidecar, or proxies in front of the servers) fed by our control plane.
//!
//! What the client's target `server:50051` resolves to is the whole experiment: a virtual IP, the
//! pods, the proxies, or the sidecar (as Istio's interception sends a meshed pod's traffic to its
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

mod kubelet;
mod l4;
mod pods;
pub mod push;
pub mod sidecar;

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

pub use pods::{Pod, PodError, PodSpec};
pub use push::PushTiming;
use tokio::time::Instant;

use crate::{
    dns::{DnsError, DnsServer, Records},
    envoy::{self, Envoy, EnvoyConfig, EnvoyError},
    gateway::{self, RouteObject, Warning},
    model::{MeshConfig, Service},
    translate::{self, Passthrough, Role},
    xds::{ControlPlane, Serving, XdsError},
};

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

#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error(transparent)]
    Xds(#[from] XdsError),
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error(transparent)]
    Envoy(#[from] EnvoyError),
    #[error("cannot open the virtual ip {addr} of service {service}")]
    VirtualIp {
        service: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write under {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error("the mesh needs envoy, but none was given")]
    NoEnvoy,
}

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

/// What stands between the client and the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mesh {
    /// Nothing: the client reaches the Service as exposed.
    Off,
    /// A sidecar beside the client, configured over xDS (Istio's way).
    Sidecar,
    /// A sidecar with a static configuration: every change restarts it (the seed's way).
    StaticSidecar,
    /// `n` Envoy proxies in front of the servers, behind a headless Service `server`.
    Proxy(u32),
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

/// A /23 of loopback addresses of this twin alone: 127.X.Y.0/24 (Y even) for the twin's own
/// addresses and 127.X.Y+1.0/24 for the addresses the sidecar intercepts in place of each pod,
/// with X and Y random, so twins (and tests) never share an address.
#[derive(Debug, Clone, Copy)]
pub struct Block(u8, u8);

impl Block {
    pub fn random() -> Block {
        use rand::Rng;
        let mut rng = rand::rng();
        Block(rng.random_range(1..=254), 2 * rng.random_range(1..=126))
    }

    pub fn ip(&self, host: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.0, self.1, host))
    }

    /// The address the sidecar intercepts in place of the pod at `host`.
    pub fn intercept(&self, host: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.0, self.1 + 1, host))
    }
}

/// Addresses inside a block.
const DNS_HOST: u8 = 1;
const SIDECAR_HOST: u8 = 2;
const PROXY_HOSTS: std::ops::Range<u8> = 3..10;
const POD_HOSTS: std::ops::Range<u8> = 10..200;
const VIP_HOSTS: std::ops::Range<u8> = 200..255;

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
    routes: Vec<RouteObject>,
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
            routes: Vec::new(),
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
        format!("127.{}.{}.0/23", self.block.0, self.block.1)
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

    /// The proxies in front of the servers, in order.
    pub fn proxies(&self) -> &[Envoy] {
        &self.proxies
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

    /// Scales one version to `replicas`. New pods get new addresses and names and join the
    /// endpoints once the kubelet sees them ready. Removed pods (the newest first, as a
    /// ReplicaSet does) leave the endpoints and get SIGTERM at the same time, then drain. Returns
    /// once every Envoy has the new endpoints and the removed pods have exited.
    pub async fn scale(&mut self, version: &str, replicas: u32) -> Result<(), TwinError> {
        let have = self.pods.get(version).map_or(0, Vec::len) as u32;
        if replicas > have {
            for _ in have..replicas {
                let pod = self.start_pod(version).await?;
                self.pods.entry(version.to_owned()).or_default().push(pod);
            }
            self.wait_relist().await;
            self.endpoints_changed().await?;
            self.settle().await
        } else {
            let pods = self.pods.entry(version.to_owned()).or_default();
            let removed: Vec<Pod> = pods.drain(replicas as usize..).collect();
            self.endpoints_changed().await?;
            let stops =
                futures::future::join_all(removed.into_iter().map(|p| p.stop(POD_STOP_DEADLINE)));
            let (_, settled) = tokio::join!(stops, self.settle());
            settled
        }
    }

    /// Replaces every pod of a version, one at a time, as a Deployment's rolling update does with
    /// max surge 1 and max unavailable 0: a new pod starts and, once ready, joins the endpoints;
    /// then an old one is deleted: it leaves the endpoints and gets SIGTERM at the same time, and
    /// the next new pod starts while it drains (terminating pods do not count against the surge).
    pub async fn rolling_restart(&mut self, version: &str) -> Result<(), TwinError> {
        let old: Vec<String> = self
            .pods
            .get(version)
            .map(|pods| pods.iter().map(|p| p.name.clone()).collect())
            .unwrap_or_default();
        if old.is_empty() {
            return Err(TwinError::Config(format!(
                "no pod of version {version} to restart"
            )));
        }
        let mut draining = Vec::new();
        for name in old {
            let pod = self.start_pod(version).await?;
            self.pods.entry(version.to_owned()).or_default().push(pod);
            self.wait_relist().await;
            self.endpoints_changed().await?;
            let pods = self.pods.entry(version.to_owned()).or_default();
            let Some(i) = pods.iter().position(|p| p.name == name) else {
                continue;
            };
            let retired = pods.remove(i);
            self.endpoints_changed().await?;
            draining.push(tokio::spawn(retired.stop(POD_STOP_DEADLINE)));
        }
        let (_, settled) = tokio::join!(futures::future::join_all(draining), self.settle());
        settled
    }

    /// Kills the oldest pod of a version with SIGKILL under whatever load it has (as `crictl stop
    /// --timeout 0` does): no drain, its connections reset. Then, as the kubelet does: at its next
    /// relist it notices, the pod turns not ready and its endpoint leaves, and the container is
    /// started again in the same pod (same name, same address; at once the first time, after the
    /// kubelet's back-off later); once ready it rejoins the endpoints. Returns the pod's name once
    /// every Envoy has it back.
    pub async fn kill(&mut self, version: &str) -> Result<String, TwinError> {
        let pods = self.pods.entry(version.to_owned()).or_default();
        if pods.is_empty() {
            return Err(TwinError::Config(format!(
                "no pod of version {version} to kill"
            )));
        }
        let mut victim = pods.remove(0);
        let name = victim.name.clone();
        victim.kill();
        let exited = Instant::now();
        tokio::time::sleep_until(self.relist.next_at_or_after(exited)).await;
        self.endpoints_changed().await?;
        let wait = self.backoff.on_exit(&name, exited);
        tokio::time::sleep_until(exited + wait).await;
        victim.restart().await?;
        self.wait_relist().await;
        self.pods
            .entry(version.to_owned())
            .or_default()
            .insert(0, victim);
        self.endpoints_changed().await?;
        self.settle().await?;
        Ok(name)
    }

    /// Waits for the kubelet's next relist: when it notices that a container started.
    async fn wait_relist(&self) {
        tokio::time::sleep_until(self.relist.next_at_or_after(Instant::now())).await;
    }

    /// Starts one more pod of a version, with the next free address and name.
    async fn start_pod(&mut self, version: &str) -> Result<Pod, TwinError> {
        let host = self.next_pod_host;
        if !POD_HOSTS.contains(&host) {
            return Err(TwinError::Config(format!(
                "the twin has room for {} pods",
                POD_HOSTS.len()
            )));
        }
        self.next_pod_host += 1;
        let ordinal = self.next_ordinal.entry(version.to_owned()).or_default();
        let name = match self.pod_names {
            PodNames::Versioned => format!("{SERVICE}-{version}-{ordinal}"),
            PodNames::Ordinal => format!("{SERVICE}-{ordinal}"),
        };
        *ordinal += 1;
        Ok(Pod::start(PodSpec {
            bin: &self.spec.server_bin,
            name,
            version: version.to_owned(),
            addr: SocketAddr::new(self.block.ip(host), PORT),
            env: self.spec.server_env.clone(),
            log_dir: &self.spec.work_dir,
        })
        .await?)
    }

    /// Sets the route objects in force; returns the warnings about them once every Envoy has
    /// them.
    pub async fn set_routes(
        &mut self,
        routes: Vec<RouteObject>,
    ) -> Result<Vec<Warning>, TwinError> {
        gateway::validate(&routes).map_err(|e| TwinError::Config(e.to_string()))?;
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

    /// Puts a mesh (or none) between the client and the servers.
    pub async fn set_mesh(&mut self, mesh: Mesh) -> Result<(), TwinError> {
        if let Some(sidecar) = self.sidecar.take() {
            sidecar.stop().await;
        }
        for proxy in self.proxies.drain(..) {
            proxy.stop().await;
        }
        self.mesh = mesh;
        match mesh {
            Mesh::Off => {}
            Mesh::Sidecar => {
                // A new Envoy gets the current configuration when it connects, with no debounce.
                self.push(PushTiming::Immediate);
                let envoy = self
                    .start_envoy("sidecar", sidecar::ads_bootstrap(self.xds.addr))
                    .await?;
                self.sidecar = Some(envoy);
            }
            Mesh::StaticSidecar => {
                // Started by publish below.
                self.static_config = None;
            }
            Mesh::Proxy(n) => {
                self.push(PushTiming::Immediate);
                for i in 0..n {
                    let envoy = self
                        .start_envoy(&format!("proxy-{i}"), sidecar::ads_bootstrap(self.xds.addr))
                        .await?;
                    self.proxies.push(envoy);
                }
            }
        }
        self.publish_now().await
    }

    /// Scales the proxies in front of the servers (the seed's server-side Envoy).
    pub async fn scale_proxies(&mut self, n: u32) -> Result<(), TwinError> {
        let have = self.proxies.len() as u32;
        if !matches!(self.mesh, Mesh::Proxy(_)) {
            return Err(TwinError::Config(
                "proxies can only be scaled while the mesh is a proxy".into(),
            ));
        }
        self.mesh = Mesh::Proxy(n);
        self.push(PushTiming::Immediate);
        for i in have..n {
            let envoy = self
                .start_envoy(&format!("proxy-{i}"), sidecar::ads_bootstrap(self.xds.addr))
                .await?;
            self.proxies.push(envoy);
        }
        while self.proxies.len() as u32 > n {
            if let Some(p) = self.proxies.pop() {
                p.stop().await;
            }
        }
        self.publish_now().await
    }

    fn envoy_bin(&self) -> Result<PathBuf, TwinError> {
        self.spec.envoy_bin.clone().ok_or(TwinError::NoEnvoy)
    }

    async fn start_envoy(
        &self,
        node: &str,
        bootstrap: serde_json::Value,
    ) -> Result<Envoy, TwinError> {
        let config = EnvoyConfig {
            node_id: node.to_owned(),
            cluster: node.to_owned(),
            bootstrap,
            work_dir: self.spec.work_dir.clone(),
            base_id: None,
        };
        Ok(envoy::start(&self.envoy_bin()?, &config).await?)
    }

    async fn start_static_sidecar(
        &self,
        resources: &translate::Resources,
    ) -> Result<Envoy, TwinError> {
        let dir = self.spec.work_dir.join("static-sidecar");
        let bootstrap =
            sidecar::static_bootstrap(resources, &dir).map_err(|source| TwinError::Io {
                path: dir.clone(),
                source,
            })?;
        self.start_envoy("static-sidecar", bootstrap).await
    }

    fn proxy_addr(&self, i: u32) -> SocketAddr {
        SocketAddr::new(self.block.ip(PROXY_HOSTS.start + i as u8), PORT)
    }

    /// Whether the sidecar intercepts the pod addresses (`server` headless, or just stopped being).
    fn intercepting(&self) -> bool {
        self.mesh == Mesh::Sidecar && (self.mode == ServiceMode::Headless || self.keep_intercepts)
    }

    /// The sidecar's role. Intercepting, it listens for every address a pod can have: as
    /// Istio's `0.0.0.0:<port>` listener takes a connection to any pod, also one whose endpoint
    /// left (and then fails to connect, as in Istio).
    fn sidecar_role(&self) -> Role {
        let passthrough = if self.intercepting() {
            POD_HOSTS
                .map(|host| Passthrough {
                    listen: SocketAddr::new(self.block.intercept(host), PORT),
                    original_dst: SocketAddr::new(self.block.ip(host), PORT),
                })
                .collect()
        } else {
            Vec::new()
        };
        Role::Sidecar {
            ip: self.block.ip(SIDECAR_HOST),
            passthrough,
        }
    }

    /// The configuration of every xDS node, from the current state.
    fn configs(&mut self) -> push::Configs {
        let services = self.services();
        let (routes, warnings) = gateway::route_table(&self.routes, &services);
        self.warnings = warnings;
        let mut configs = vec![(
            "sidecar".to_owned(),
            translate::resources(&self.sidecar_role(), &services, &routes, &self.mesh_config),
        )];
        let n = match self.mesh {
            Mesh::Proxy(n) => n,
            _ => 0,
        };
        for i in 0..n {
            let role = Role::Proxy {
                addr: self.proxy_addr(i),
                service: SERVICE.into(),
            };
            configs.push((
                format!("proxy-{i}"),
                translate::resources(&role, &services, &routes, &self.mesh_config),
            ));
        }
        configs
    }

    /// The static sidecar's configuration: the seed's hand-written Envoy, not Istio's, balances
    /// over every pod whatever the Service type.
    fn static_resources(&self) -> translate::Resources {
        let mut services = self.services();
        for s in &mut services {
            s.headless = false;
        }
        let (routes, _) = gateway::route_table(&self.routes, &services);
        let role = Role::Sidecar {
            ip: self.block.ip(SIDECAR_HOST),
            passthrough: Vec::new(),
        };
        translate::resources(&role, &services, &routes, &self.mesh_config)
    }

    /// Hands the current configuration to the control plane.
    fn push(&mut self, timing: PushTiming) -> u64 {
        let configs = self.configs();
        self.pusher.event(configs, timing)
    }

    /// The xDS nodes with a running Envoy.
    fn running_nodes(&self) -> Vec<String> {
        let mut nodes = Vec::new();
        if self.mesh == Mesh::Sidecar && self.sidecar.is_some() {
            nodes.push("sidecar".to_owned());
        }
        nodes.extend((0..self.proxies.len()).map(|i| format!("proxy-{i}")));
        nodes
    }

    /// Waits until everything handed to the control plane has been pushed and every running
    /// Envoy has accepted it; a rejection is an error.
    async fn settle(&self) -> Result<(), TwinError> {
        let limit = self.timing.longest_wait() + ACK_DEADLINE;
        let pushed = self.pusher.pushed(limit).await.ok_or_else(|| {
            TwinError::Config(format!(
                "the control plane did not push within {}s",
                limit.as_secs()
            ))
        })?;
        for node in self.running_nodes() {
            let Some(&version) = pushed.versions.get(&node) else {
                continue;
            };
            match tokio::time::timeout(ACK_DEADLINE, self.cp.wait_acked(&node, version)).await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => return Err(TwinError::Config(why)),
                Err(_) => {
                    return Err(TwinError::Config(format!(
                        "envoy {node} did not accept version {version} within {}s",
                        ACK_DEADLINE.as_secs()
                    )));
                }
            }
        }
        Ok(())
    }

    /// A configuration change: pushed with the twin's timing, accepted by every Envoy, then DNS.
    async fn publish(&mut self) -> Result<(), TwinError> {
        self.push(self.timing);
        self.follow().await
    }

    /// As [`Twin::publish`], pushed at once.
    async fn publish_now(&mut self) -> Result<(), TwinError> {
        self.push(PushTiming::Immediate);
        self.follow().await
    }

    async fn follow(&mut self) -> Result<(), TwinError> {
        self.program_vips().await?;
        self.settle().await?;
        self.follow_static().await?;
        self.update_dns();
        Ok(())
    }

    /// An endpoint change, as Kubernetes spreads it: kube-proxy's virtual IPs and CoreDNS at
    /// once, istiod's push with the twin's timing (not waited for here).
    async fn endpoints_changed(&mut self) -> Result<(), TwinError> {
        self.program_vips().await?;
        self.update_dns();
        self.push(self.timing);
        self.follow_static().await
    }

    /// A static configuration changes only by restarting the static sidecar.
    async fn follow_static(&mut self) -> Result<(), TwinError> {
        if self.mesh != Mesh::StaticSidecar {
            return Ok(());
        }
        let current = self.static_resources();
        if self.static_config.as_ref() != Some(&current) {
            if let Some(old) = self.sidecar.take() {
                old.stop().await;
            }
            self.sidecar = Some(self.start_static_sidecar(&current).await?);
            self.static_config = Some(current);
        }
        Ok(())
    }

    /// Virtual IPs, one per Service, as kube-proxy programs them.
    async fn program_vips(&mut self) -> Result<(), TwinError> {
        for svc in self.services() {
            if !self.vips.contains_key(&svc.name) {
                let host = VIP_HOSTS.start + self.vips.len() as u8;
                let addr = SocketAddr::new(self.block.ip(host), PORT);
                let vip = l4::VirtualIp::start(addr, svc.endpoints.clone())
                    .await
                    .map_err(|source| TwinError::VirtualIp {
                        service: svc.name.clone(),
                        addr,
                        source,
                    })?;
                self.vips.insert(svc.name.clone(), vip);
            }
            self.vips[&svc.name].set_backends(svc.endpoints.clone());
        }
        Ok(())
    }

    /// What each Service name resolves to now.
    fn update_dns(&self) {
        for svc in self.services() {
            let answer: Vec<IpAddr> = match self.mesh {
                Mesh::Sidecar if svc.headless => svc
                    .endpoints
                    .iter()
                    .map(|a| self.block.intercept(host_of(a)))
                    .collect(),
                Mesh::Sidecar | Mesh::StaticSidecar => vec![self.block.ip(SIDECAR_HOST)],
                Mesh::Proxy(n) if svc.name == SERVICE => {
                    (0..n).map(|i| self.proxy_addr(i).ip()).collect()
                }
                _ if svc.headless => svc.endpoints.iter().map(|a| a.ip()).collect(),
                _ => vec![self.vips[&svc.name].addr().ip()],
            };
            for name in dns_names(&svc.name) {
                self.records.set(&name, answer.clone());
            }
        }
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
        let pods: Vec<Pod> = std::mem::take(&mut self.pods)
            .into_values()
            .flatten()
            .collect();
        pods::stop_all(pods, grace).await.map_err(PodError::from)?;
        Ok(())
    }
}

/// The host number of a pod address in its block.
fn host_of(addr: &SocketAddr) -> u8 {
    match addr.ip() {
        IpAddr::V4(v4) => v4.octets()[3],
        IpAddr::V6(v6) => v6.octets()[15],
    }
}

/// The names a pod in the same namespace may resolve a Service by.
fn dns_names(service: &str) -> [String; 4] {
    [
        service.to_owned(),
        format!("{service}.{NAMESPACE}"),
        format!("{service}.{NAMESPACE}.svc"),
        format!("{service}.{NAMESPACE}.svc.{}", translate::CLUSTER_DOMAIN),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_random_loopback_block_never_yields_127_0_0_x_or_a_255_octet() {
        let (mut xs, mut ys) = (BTreeSet::new(), BTreeSet::new());
        for _ in 0..100_000 {
            let block = Block::random();
            xs.insert(block.0);
            ys.insert(block.1);
            for host in [DNS_HOST, POD_HOSTS.start, VIP_HOSTS.end - 1] {
                for ip in [block.ip(host), block.intercept(host)] {
                    let IpAddr::V4(ip) = ip else {
                        panic!("not IPv4");
                    };
                    let [a, b, c, d] = ip.octets();
                    assert_eq!(a, 127);
                    assert!((1..=254).contains(&b) && (1..=254).contains(&c), "{ip}");
                    assert!((1..=254).contains(&d), "{ip}");
                }
            }
        }
        // Every allowed octet comes up: the whole of 1..=254 for X, every even Y of 2..=252 (its
        // odd neighbour holds the intercepted addresses).
        assert_eq!(xs, (1..=254).collect());
        assert_eq!(ys, (2..=252).step_by(2).collect());
    }

    #[test]
    fn servers_get_distinct_addresses_on_one_port() {
        let block = Block(3, 4);
        let addr = |host| SocketAddr::new(block.ip(host), PORT);
        let addrs: BTreeSet<_> = POD_HOSTS.map(addr).collect();
        assert_eq!(addrs.len(), POD_HOSTS.len());
        assert_eq!(addr(POD_HOSTS.start).to_string(), "127.3.4.10:50051");
        assert_eq!(addr(POD_HOSTS.start + 49).to_string(), "127.3.4.59:50051");
    }
}
