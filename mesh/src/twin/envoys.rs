//! What stands between the client and the servers ([`Mesh`]), and the Envoys that play it: a
//! sidecar fed over xDS, a sidecar with a static configuration, proxies in front of the servers, or
//! Istio's ambient mode: ztunnel alone, or ztunnel and a waypoint.

use std::{net::SocketAddr, path::PathBuf};

use super::{
    PORT, PushTiming, Twin, TwinError,
    block::{PROXY_HOSTS, WAYPOINT_HOST},
    sidecar,
};

/// The waypoint's xDS node.
pub(super) const WAYPOINT_NODE: &str = "waypoint";
use crate::{
    envoy::{self, Envoy, EnvoyConfig},
    translate,
};

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
    /// Istio's ambient mode without a waypoint: ztunnel captures the client's connections and
    /// sends each one to an endpoint it picks when the connection opens (L4, like kube-proxy).
    Ztunnel,
    /// Istio's ambient mode with a waypoint attached to the Service `server`: ztunnel sends the
    /// client's connections to the waypoint, an Envoy that applies the routes and balances per RPC.
    Waypoint,
}

impl Mesh {
    /// Whether the client is in a mesh (ztunnel alone counts: the mesh is on, at L4).
    pub fn is_on(self) -> bool {
        self != Mesh::Off
    }

    /// Whether the client's RPCs go through an Envoy.
    pub fn needs_envoy(self) -> bool {
        !matches!(self, Mesh::Off | Mesh::Ztunnel)
    }

    /// Whether the client is in Istio's ambient mode (captured by ztunnel), with or without a
    /// waypoint.
    pub fn is_ambient(self) -> bool {
        matches!(self, Mesh::Ztunnel | Mesh::Waypoint)
    }

    /// What carries the client's RPCs, in one word: `off`, `sidecar`, `static-sidecar`, `proxy`,
    /// `ztunnel` or `waypoint` (the results' `dataplane`).
    pub fn label(self) -> &'static str {
        match self {
            Mesh::Off => "off",
            Mesh::Sidecar => "sidecar",
            Mesh::StaticSidecar => "static-sidecar",
            Mesh::Proxy(_) => "proxy",
            Mesh::Ztunnel => "ztunnel",
            Mesh::Waypoint => "waypoint",
        }
    }

    /// The same arrangement, whatever the number of proxies (scaling them is another change).
    pub fn same_kind(self, other: Mesh) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

impl Twin {
    /// Puts a mesh (or none) between the client and the servers.
    pub async fn set_mesh(&mut self, mesh: Mesh) -> Result<(), TwinError> {
        if let Some(sidecar) = self.sidecar.take() {
            sidecar.stop().await;
        }
        for proxy in self.proxies.drain(..) {
            proxy.stop().await;
        }
        if let Some(waypoint) = self.waypoint.take() {
            waypoint.stop().await;
        }
        self.mesh = mesh;
        match mesh {
            Mesh::Off | Mesh::Ztunnel => {}
            Mesh::Waypoint => {
                self.push(PushTiming::Immediate);
                let envoy = self
                    .start_envoy(WAYPOINT_NODE, sidecar::ads_bootstrap(self.xds.addr))
                    .await?;
                self.waypoint = Some(envoy);
            }
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

    pub(super) fn envoy_bin(&self) -> Result<PathBuf, TwinError> {
        self.spec.envoy_bin.clone().ok_or(TwinError::NoEnvoy)
    }

    pub(super) async fn start_envoy(
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

    pub(super) async fn start_static_sidecar(
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

    pub(super) fn proxy_addr(&self, i: u32) -> SocketAddr {
        SocketAddr::new(self.block.ip(PROXY_HOSTS.start + i as u8), PORT)
    }

    /// Where the waypoint listens for what ztunnel sends it.
    pub(super) fn waypoint_addr(&self) -> SocketAddr {
        SocketAddr::new(self.block.ip(WAYPOINT_HOST), PORT)
    }
}
