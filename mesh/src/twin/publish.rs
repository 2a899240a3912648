//! How a change spreads through the twin, as through a cluster: configuration to every Envoy
//! over the control plane (accepted before DNS follows: make before break), endpoints to
//! kube-proxy's virtual IPs, ztunnel and DNS at once and to the Envoys after istiod's debounce, and
//! the static sidecar restarted when its configuration changes.

use std::net::{IpAddr, SocketAddr};

use super::{
    ACK_DEADLINE, Mesh, NAMESPACE, PORT, PushTiming, SERVICE, ServiceMode, Twin, TwinError,
    block::{POD_HOSTS, SIDECAR_HOST, VIP_HOSTS, host_of},
    envoys::WAYPOINT_NODE,
    l4, push,
};
use crate::{
    gateway,
    translate::{self, Passthrough, Role},
};

impl Twin {
    /// Whether the sidecar intercepts the pod addresses (`server` headless, or just stopped being).
    pub(super) fn intercepting(&self) -> bool {
        self.mesh == Mesh::Sidecar && (self.mode == ServiceMode::Headless || self.keep_intercepts)
    }

    /// The sidecar's role. Intercepting, it listens for every address a pod can have: as
    /// Istio's `0.0.0.0:<port>` listener takes a connection to any pod, also one whose endpoint
    /// left (and then fails to connect, as in Istio).
    pub(super) fn sidecar_role(&self) -> Role {
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
    pub(super) fn configs(&mut self) -> push::Configs {
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
        if self.mesh == Mesh::Waypoint {
            let role = Role::Waypoint {
                addr: self.waypoint_addr(),
                service: SERVICE.into(),
            };
            configs.push((
                WAYPOINT_NODE.to_owned(),
                translate::resources(&role, &services, &routes, &self.mesh_config),
            ));
        }
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
    pub(super) fn static_resources(&self) -> translate::Resources {
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
    pub(super) fn push(&mut self, timing: PushTiming) -> u64 {
        let configs = self.configs();
        self.pusher.event(configs, timing)
    }

    /// The xDS nodes with a running Envoy.
    pub(super) fn running_nodes(&self) -> Vec<String> {
        let mut nodes = Vec::new();
        if self.mesh == Mesh::Sidecar && self.sidecar.is_some() {
            nodes.push("sidecar".to_owned());
        }
        nodes.extend((0..self.proxies.len()).map(|i| format!("proxy-{i}")));
        if self.waypoint.is_some() {
            nodes.push(WAYPOINT_NODE.to_owned());
        }
        nodes
    }

    /// Waits until everything handed to the control plane has been pushed and every running
    /// Envoy has accepted it; a rejection is an error.
    pub(super) async fn settle(&self) -> Result<(), TwinError> {
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
    pub(super) async fn publish(&mut self) -> Result<(), TwinError> {
        self.push(self.timing);
        self.follow().await
    }

    /// As [`Twin::publish`], pushed at once.
    pub(super) async fn publish_now(&mut self) -> Result<(), TwinError> {
        self.push(PushTiming::Immediate);
        self.follow().await
    }

    pub(super) async fn follow(&mut self) -> Result<(), TwinError> {
        self.program_vips().await?;
        self.settle().await?;
        self.program_ztunnel().await?;
        self.follow_static().await?;
        self.update_dns();
        Ok(())
    }

    /// An endpoint change, as Kubernetes spreads it: kube-proxy's virtual IPs and CoreDNS at
    /// once, istiod's push with the twin's timing (not waited for here).
    pub(super) async fn endpoints_changed(&mut self) -> Result<(), TwinError> {
        self.program_vips().await?;
        self.program_ztunnel().await?;
        self.update_dns();
        self.push(self.timing);
        self.follow_static().await
    }

    /// A static configuration changes only by restarting the static sidecar.
    pub(super) async fn follow_static(&mut self) -> Result<(), TwinError> {
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
    pub(super) async fn program_vips(&mut self) -> Result<(), TwinError> {
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

    /// ztunnel's captures, in ambient mode: each Service's endpoints, or for `server` with a
    /// waypoint attached, the waypoint alone. Programmed after the waypoint accepted its
    /// configuration, so no connection reaches it before it has its listener.
    pub(super) async fn program_ztunnel(&mut self) -> Result<(), TwinError> {
        if !self.mesh.is_ambient() {
            return Ok(());
        }
        for svc in self.services() {
            let vip = self.vips[&svc.name].addr();
            let listen = SocketAddr::new(self.block.intercept(host_of(&vip)), PORT);
            let targets = if self.mesh == Mesh::Waypoint && svc.name == SERVICE {
                vec![self.waypoint_addr()]
            } else {
                svc.endpoints.clone()
            };
            self.ztunnel
                .program(&svc.name, listen, targets)
                .await
                .map_err(|source| TwinError::VirtualIp {
                    service: svc.name.clone(),
                    addr: listen,
                    source,
                })?;
        }
        Ok(())
    }

    /// What each Service name resolves to now.
    pub(super) fn update_dns(&self) {
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
                // ztunnel captures connections to the virtual IP; a pod address goes to that pod.
                Mesh::Ztunnel | Mesh::Waypoint if !svc.headless => {
                    match self.ztunnel.capture(&svc.name) {
                        Some(capture) => vec![capture.ip()],
                        None => vec![self.vips[&svc.name].addr().ip()],
                    }
                }
                _ if svc.headless => svc.endpoints.iter().map(|a| a.ip()).collect(),
                _ => vec![self.vips[&svc.name].addr().ip()],
            };
            for name in dns_names(&svc.name) {
                self.records.set(&name, answer.clone());
            }
        }
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
