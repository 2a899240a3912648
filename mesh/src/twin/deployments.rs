//! What a Deployment and the kubelet do to the pods: scale, rolling restart, kill and restart in
//! place, each change spread as Kubernetes spreads it (endpoints at once, Envoys after istiod's
//! debounce, SIGTERM to a removed pod at the same moment).

use std::net::SocketAddr;

use tokio::time::Instant;

use super::{
    POD_STOP_DEADLINE, PORT, PodNames, SERVICE, Twin, TwinError,
    block::POD_HOSTS,
    pods::{Pod, PodSpec},
};

impl Twin {
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
    pub(super) async fn wait_relist(&self) {
        tokio::time::sleep_until(self.relist.next_at_or_after(Instant::now())).await;
    }

    /// Starts one more pod of a version, with the next free address and name.
    pub(super) async fn start_pod(&mut self, version: &str) -> Result<Pod, TwinError> {
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
}
