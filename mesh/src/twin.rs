//! The local twin of a cluster with a mesh: server pods as processes on their own loopback
//! addresses, Services answered by our DNS server (a virtual IP for ClusterIP, the pod addresses
//! for headless), kube-proxy's per-connection balancing for virtual IPs, and real Envoys (a client
//! sidecar, or proxies in front of the servers) fed by our control plane.
//!
//! What the client's target `server:50051` resolves to is the whole experiment: a virtual IP, the
//! pods, the proxies, or the sidecar (as Istio's interception sends a meshed pod's traffic to its
//! sidecar).

mod l4;
mod pods;
pub mod sidecar;

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

pub use pods::{Pod, PodError, PodSpec};

use crate::{
    dns::{DnsError, DnsServer, Records},
    envoy::{self, Envoy, EnvoyConfig, EnvoyError},
    gateway::{self, RouteObject, Warning},
    model::{MeshConfig, Service},
    translate::{self, Role},
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

/// How the `server` Services are exposed without a mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceMode {
    /// One virtual IP, balanced per connection (kube-proxy).
    ClusterIp,
    /// Every pod address in DNS.
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
    pub mode: ServiceMode,
}

/// A /24 of loopback addresses of this twin alone: 127.X.Y.0 with X and Y random, so twins (and
/// tests) never share an address.
#[derive(Debug, Clone, Copy)]
pub struct Block(u8, u8);

impl Block {
    pub fn random() -> Block {
        use rand::Rng;
        let mut rng = rand::rng();
        Block(rng.random_range(1..=254), rng.random_range(1..=254))
    }

    pub fn ip(&self, host: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.0, self.1, host))
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
    pods: BTreeMap<String, Vec<Pod>>,
    next_pod_host: u8,
    next_ordinal: BTreeMap<String, u32>,
    vips: BTreeMap<String, l4::VirtualIp>,
    mesh: Mesh,
    sidecar: Option<Envoy>,
    proxies: Vec<Envoy>,
    routes: Vec<RouteObject>,
    warnings: Vec<Warning>,
    /// The configuration the static sidecar was started with.
    static_config: Option<translate::Resources>,
}

impl Twin {
    /// Starts DNS, the control plane and the pods; the mesh starts off.
    pub async fn start(spec: TwinSpec) -> Result<Twin, TwinError> {
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
            cp,
            xds,
            pods: BTreeMap::new(),
            next_pod_host: POD_HOSTS.start,
            next_ordinal: BTreeMap::new(),
            vips: BTreeMap::new(),
            mesh: Mesh::Off,
            sidecar: None,
            proxies: Vec::new(),
            routes: Vec::new(),
            warnings: Vec::new(),
            static_config: None,
        };
        for (version, replicas) in &spec.versions {
            twin.scale(version, *replicas).await?;
        }
        Ok(twin)
    }

    /// The client's target: the same in every experiment.
    pub fn target(&self) -> String {
        format!("dns://{}/{SERVICE}:{PORT}", self._dns.local_addr())
    }

    /// The twin's loopback block, e.g. `127.31.7.0/24`.
    pub fn block(&self) -> String {
        format!("127.{}.{}.0/24", self.block.0, self.block.1)
    }

    pub fn dns_addr(&self) -> SocketAddr {
        self._dns.local_addr()
    }

    pub fn mesh(&self) -> Mesh {
        self.mesh
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

    /// The pods now running, by version.
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
            headless: false,
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

    /// Scales one version to `replicas`: new pods get new addresses and names; removed pods (the
    /// newest first, as a ReplicaSet does) leave DNS and endpoints first, then drain.
    pub async fn scale(&mut self, version: &str, replicas: u32) -> Result<(), TwinError> {
        let have = self.pods.get(version).map_or(0, Vec::len) as u32;
        if replicas > have {
            for _ in have..replicas {
                let pod = self.start_pod(version).await?;
                self.pods.entry(version.to_owned()).or_default().push(pod);
            }
            self.publish().await
        } else {
            let pods = self.pods.entry(version.to_owned()).or_default();
            let removed: Vec<Pod> = pods.drain(replicas as usize..).collect();
            self.publish().await?;
            futures::future::join_all(removed.into_iter().map(|p| p.stop(POD_STOP_DEADLINE))).await;
            Ok(())
        }
    }

    /// Replaces every pod of a version, one at a time, as a Deployment's rolling update does with
    /// max surge 1 and max unavailable 0: a new pod starts and joins the endpoints, then an old one
    /// leaves them and drains (SIGTERM), and only then the next.
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
        for name in old {
            let pod = self.start_pod(version).await?;
            self.pods.entry(version.to_owned()).or_default().push(pod);
            self.publish().await?;
            let pods = self.pods.entry(version.to_owned()).or_default();
            let Some(i) = pods.iter().position(|p| p.name == name) else {
                continue;
            };
            let retired = pods.remove(i);
            self.publish().await?;
            retired.stop(POD_STOP_DEADLINE).await;
        }
        Ok(())
    }

    /// Kills the oldest pod of a version with SIGKILL, under whatever load it has: no drain, its
    /// connections reset. Then, as Kubernetes does once the pod is gone, it leaves the endpoints
    /// and a replacement starts. Returns the killed pod's name.
    pub async fn kill(&mut self, version: &str) -> Result<String, TwinError> {
        let pods = self.pods.entry(version.to_owned()).or_default();
        if pods.is_empty() {
            return Err(TwinError::Config(format!(
                "no pod of version {version} to kill"
            )));
        }
        let victim = pods.remove(0);
        let name = victim.name.clone();
        victim.kill().await;
        self.publish().await?;
        let pod = self.start_pod(version).await?;
        self.pods.entry(version.to_owned()).or_default().push(pod);
        self.publish().await?;
        Ok(name)
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
        let name = format!("{SERVICE}-{version}-{ordinal}");
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

    /// Sets the route objects in force; returns the warnings about them.
    pub async fn set_routes(
        &mut self,
        routes: Vec<RouteObject>,
    ) -> Result<Vec<Warning>, TwinError> {
        gateway::validate(&routes).map_err(|e| TwinError::Config(e.to_string()))?;
        self.routes = routes;
        self.publish().await?;
        Ok(self.warnings.clone())
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
                self.publish_xds();
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
                self.publish_xds();
                for i in 0..n {
                    let envoy = self
                        .start_envoy(&format!("proxy-{i}"), sidecar::ads_bootstrap(self.xds.addr))
                        .await?;
                    self.proxies.push(envoy);
                }
            }
        }
        self.publish().await
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
        self.publish_xds();
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
        self.publish().await
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

    async fn start_static_sidecar(&self) -> Result<Envoy, TwinError> {
        let resources = self.resources_for(&Role::Sidecar {
            ip: self.block.ip(SIDECAR_HOST),
            passthrough: Vec::new(),
        });
        let dir = self.spec.work_dir.join("static-sidecar");
        let bootstrap =
            sidecar::static_bootstrap(&resources, &dir).map_err(|source| TwinError::Io {
                path: dir.clone(),
                source,
            })?;
        self.start_envoy("static-sidecar", bootstrap).await
    }

    fn proxy_addr(&self, i: u32) -> SocketAddr {
        SocketAddr::new(self.block.ip(PROXY_HOSTS.start + i as u8), PORT)
    }

    fn resources_for(&self, role: &Role) -> translate::Resources {
        let services = self.services();
        let (routes, _) = gateway::route_table(&self.routes, &services);
        translate::resources(role, &services, &routes, &MeshConfig::default())
    }

    /// Pushes configuration to every xDS node; returns (node, version) pairs.
    fn publish_xds(&mut self) -> Vec<(String, u64)> {
        let services = self.services();
        let (routes, warnings) = gateway::route_table(&self.routes, &services);
        self.warnings = warnings;
        let mut pushed = Vec::new();
        let sidecar = Role::Sidecar {
            ip: self.block.ip(SIDECAR_HOST),
            passthrough: Vec::new(),
        };
        pushed.push((
            "sidecar".to_owned(),
            self.cp.set(
                "sidecar",
                translate::resources(&sidecar, &services, &routes, &MeshConfig::default()),
            ),
        ));
        let n = match self.mesh {
            Mesh::Proxy(n) => n,
            _ => 0,
        };
        for i in 0..n {
            let role = Role::Proxy {
                addr: self.proxy_addr(i),
                service: SERVICE.into(),
            };
            let node = format!("proxy-{i}");
            pushed.push((
                node.clone(),
                self.cp.set(
                    &node,
                    translate::resources(&role, &services, &routes, &MeshConfig::default()),
                ),
            ));
        }
        pushed
    }

    /// Makes DNS, virtual IPs and every Envoy match the current state, and waits until each
    /// running Envoy has accepted its configuration.
    async fn publish(&mut self) -> Result<(), TwinError> {
        let services = self.services();
        // Virtual IPs, one per Service, as kube-proxy programs them.
        for svc in &services {
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
        // Envoys first, DNS last: make before break.
        let pushed = self.publish_xds();
        for (node, version) in pushed {
            let running = match node.as_str() {
                "sidecar" => self.mesh == Mesh::Sidecar && self.sidecar.is_some(),
                _ => node
                    .strip_prefix("proxy-")
                    .and_then(|i| i.parse::<usize>().ok())
                    .is_some_and(|i| i < self.proxies.len()),
            };
            if running {
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
        }
        if self.mesh == Mesh::StaticSidecar {
            // A static configuration changes only by restarting the sidecar.
            let current = self.resources_for(&Role::Sidecar {
                ip: self.block.ip(SIDECAR_HOST),
                passthrough: Vec::new(),
            });
            if self.static_config.as_ref() != Some(&current) {
                if let Some(old) = self.sidecar.take() {
                    old.stop().await;
                }
                self.sidecar = Some(self.start_static_sidecar().await?);
                self.static_config = Some(current);
            }
        }
        for svc in &services {
            let answer: Vec<IpAddr> = match self.mesh {
                Mesh::Sidecar | Mesh::StaticSidecar => vec![self.block.ip(SIDECAR_HOST)],
                Mesh::Proxy(n) if svc.name == SERVICE => {
                    (0..n).map(|i| self.proxy_addr(i).ip()).collect()
                }
                _ => match self.spec.mode {
                    ServiceMode::ClusterIp => vec![self.vips[&svc.name].addr().ip()],
                    ServiceMode::Headless => svc.endpoints.iter().map(|a| a.ip()).collect(),
                },
            };
            for name in dns_names(&svc.name) {
                self.records.set(&name, answer.clone());
            }
        }
        Ok(())
    }

    /// Stops every process, pods gracefully.
    pub async fn shutdown(mut self) {
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
        futures::future::join_all(pods.into_iter().map(|p| p.stop(Duration::from_secs(5)))).await;
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
