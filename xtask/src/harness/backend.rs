//! What a demo needs from where it runs: the vocabulary both backends implement, the local twin
//! ([`super::local`]) and a kind cluster ([`super::kind`]), so every scenario runs unchanged on either.

use hello_apps::client::Summary;
use tokio::sync::mpsc;

use crate::harness::scenario::{Action, Client, Exposure, Mesh, Retries, Scenario};

/// A running client: its JSON summaries, as they come.
pub struct ClientStream {
    pub summaries: mpsc::UnboundedReceiver<Summary>,
    /// Stops the client when dropped.
    pub _guard: Box<dyn Send>,
}

// Used with concrete backends only, inside this crate: no `Send` bound is needed on its futures.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// How often the client reports; a phase is measured in these steps.
    fn interval(&self) -> std::time::Duration;
    /// Deploys the scenario's servers, Services and routes.
    async fn setup(&mut self, scenario: &Scenario) -> anyhow::Result<()>;
    /// Puts the phase's mesh (or none) between client and servers.
    async fn set_mesh(&mut self, mesh: Mesh) -> anyhow::Result<()>;
    /// Exposes the Service `server` as the phase asks (a ClusterIP or a headless Service).
    async fn set_exposure(&mut self, exposure: Exposure) -> anyhow::Result<()>;
    /// Sets the mesh's default retry policy for the phase that starts.
    async fn set_retries(&mut self, retries: Retries) -> anyhow::Result<()>;
    /// Applies one change.
    async fn apply(&mut self, action: &Action) -> anyhow::Result<()>;
    /// Starts a client with this workload.
    async fn start_client(&mut self, client: &Client, mesh: Mesh) -> anyhow::Result<ClientStream>;
    /// The server pods that exist now.
    fn servers(&self) -> Vec<String>;
    /// RPCs counted by each proxy so far, where there are proxies.
    async fn proxy_counts(&self)
    -> anyhow::Result<Option<std::collections::BTreeMap<String, u64>>>;
    /// Called between client reports while a phase is measured: picks up edits of the user's
    /// route files.
    async fn tick(&mut self) -> anyhow::Result<()>;
    /// Warnings the backend has for the user (unresolved backend references).
    fn warnings(&self) -> Vec<String>;
    /// Stops everything it started.
    async fn teardown(self) -> anyhow::Result<()>;
}
