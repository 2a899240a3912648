//! A scenario is data: what is deployed, which routes it starts with, what changes in each phase,
//! what the client does. The demos are the built-in scenarios ([`builtin`]); `cargo xtask
//! experiment` makes one from its flags. Either backend, the local twin or a kind cluster, runs the
//! very same definitions.

use std::{path::PathBuf, time::Duration};

use mesh::gateway::{GatewayError, Routes};
/// What stands between the client and the servers in a phase: the twin's own type, which the
/// cluster backend reads too (`Proxy(n)`: Envoy proxies in front of the servers).
pub use mesh::twin::Mesh;
/// How the Service `server` is exposed in a phase (a ClusterIP or a headless Service): the twin's
/// own type, which the cluster backend reads too.
pub use mesh::twin::ServiceMode as Exposure;

mod builtin;

pub use builtin::all;

/// The mesh's default retry policy in a phase (Istio: `meshConfig.defaultHttpRetryPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retries {
    /// Istio's built-in default policy.
    #[default]
    IstioDefault,
    /// Istio's default conditions and `reset` (safe for idempotent RPCs).
    WithReset,
}

/// The client's workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub lb: &'static str,
    pub method: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
    pub concurrency: u32,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            lb: "round_robin",
            method: "SayHello",
            headers: Vec::new(),
            concurrency: 10,
        }
    }
}

/// A change made at the start of a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Scale one version's Deployment.
    Scale {
        version: &'static str,
        replicas: u32,
    },
    /// Set the weights of the scenario's route by backend Service name.
    Weights(Vec<(&'static str, u32)>),
    /// Scale the proxies in front of the servers.
    ScaleProxies(u32),
    /// Replace every pod of a version, one at a time (graceful: a new pod first, then the old one
    /// drains), as `kubectl rollout restart` does.
    RollingRestart { version: &'static str },
    /// Kill the oldest pod of a version with SIGKILL (no drain); a replacement starts.
    Kill { version: &'static str },
}

/// One measured step of a demo.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: &'static str,
    pub mesh: Mesh,
    pub client: Client,
    pub actions: Vec<Action>,
    /// How long to measure, after the changes are in place.
    pub measure: Duration,
    /// The changes are made under load and measured: the client runs before they start, and the
    /// phase counts every RPC from their start until `measure` after their end.
    pub under_load: bool,
    /// The mesh's default retry policy while the phase runs.
    pub retries: Retries,
    /// How the Service `server` is exposed in this phase; `None`: the scenario's exposure.
    pub exposure: Option<Exposure>,
}

/// A whole demo.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    /// What it shows, in one line.
    pub title: &'static str,
    /// What to take away, printed after the results.
    pub lesson: &'static str,
    pub exposure: Exposure,
    pub versions: Vec<(&'static str, u32)>,
    /// Extra environment of every server pod.
    pub server_env: Vec<(&'static str, &'static str)>,
    /// The routes in force from the start (the twin gets them before the first phase, the cluster
    /// applies them); weights change them.
    pub routes: Option<RouteSource>,
    pub phases: Vec<Phase>,
}

impl Scenario {
    /// The same scenario, each phase measured for `measure` (`demo --duration`): after its
    /// changes, or after the end of its changes for a phase under load.
    pub fn measuring_each_phase_for(mut self, measure: Duration) -> Scenario {
        for phase in &mut self.phases {
            phase.measure = measure;
        }
        self
    }
}

/// Where a scenario's routes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSource {
    /// A file under `gateway/`, as a demo names it.
    Builtin(&'static str),
    /// The user's file, or directory of `*.yaml` files (`experiment --routes`); on the local twin
    /// an edit is pushed while the experiment runs.
    File(PathBuf),
}

impl RouteSource {
    /// The file or directory.
    pub fn path(&self) -> PathBuf {
        match self {
            RouteSource::Builtin(file) => crate::project::root().join("gateway").join(file),
            RouteSource::File(path) => path.clone(),
        }
    }

    /// Reads and validates the routes: the one way a scenario's routes are loaded.
    pub fn load(&self) -> Result<Routes, GatewayError> {
        mesh::gateway::load(&self.path())
    }
}

/// The built-in scenarios' names, in the seed's order: what `demo` and `manifests` accept.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|s| s.name).collect()
}

/// The built-in scenario of that name, or an error listing the known ones.
pub fn get(name: &str) -> anyhow::Result<Scenario> {
    all().into_iter().find(|s| s.name == name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown scenario {name:?}: expected one of {}",
            names().join(", ")
        )
    })
}

#[cfg(test)]
mod tests;
