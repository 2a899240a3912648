//! Which kube context the harness acts on, and a client for exactly that context.

use std::path::PathBuf;

use ::kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};
use anyhow::{Context as _, bail};

use super::Cluster;

/// Which kube context to use: the harness's own `kind-<cluster>` unless `explicit` names one.
///
/// Never the current context by default: a harness that tears namespaces down must not act on whatever
/// cluster the user last pointed kubectl at.
pub fn select_context(
    kubeconfig: &Kubeconfig,
    cluster: &str,
    explicit: Option<&str>,
) -> anyhow::Result<String> {
    select_context_in(kubeconfig, &kubeconfig_location(), cluster, explicit)
}

/// [`select_context`] with the kubeconfig's location (for the error message) given: pure.
pub(super) fn select_context_in(
    kubeconfig: &Kubeconfig,
    location: &str,
    cluster: &str,
    explicit: Option<&str>,
) -> anyhow::Result<String> {
    let has = |name: &str| kubeconfig.contexts.iter().any(|c| c.name == name);
    match explicit {
        Some(name) if has(name) => Ok(name.to_owned()),
        Some(name) => bail!("kube context {name} not found in {location}"),
        None => {
            let name = format!("kind-{cluster}");
            if has(&name) {
                Ok(name)
            } else {
                bail!("kube context {name} not found: create the cluster with `cargo xtask up`")
            }
        }
    }
}

/// Where the kubeconfig is read from, as kube-rs does: `KUBECONFIG` (a path list), else `~/.kube/config`.
fn kubeconfig_location() -> String {
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(list) => list.to_string_lossy().into_owned(),
        None => default_kubeconfig_path()
            .map_or_else(|| "~/.kube/config".to_owned(), |p| p.display().to_string()),
    }
}

fn default_kubeconfig_path() -> Option<PathBuf> {
    std::env::home_dir().map(|home| home.join(".kube").join("config"))
}

/// Reads the kubeconfig (`KUBECONFIG` or `~/.kube/config`), selects the context as [`select_context`] does, and
/// builds a client for exactly that context.
pub async fn connect(cluster: &str, explicit: Option<&str>) -> anyhow::Result<Cluster> {
    connect_with(
        read_kubeconfig()?,
        &kubeconfig_location(),
        cluster,
        explicit,
    )
    .await
}

/// [`connect`] over a kubeconfig already read from `location`.
pub(super) async fn connect_with(
    kubeconfig: Kubeconfig,
    location: &str,
    cluster: &str,
    explicit: Option<&str>,
) -> anyhow::Result<Cluster> {
    let context = select_context_in(&kubeconfig, location, cluster, explicit)?;
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .with_context(|| format!("load kube context {context}"))?;
    let client = Client::try_from(config)
        .with_context(|| format!("build a client for kube context {context}"))?;
    Ok(Cluster::from_client(client, &context))
}

/// The kubeconfig; none at all (no `KUBECONFIG`, no `~/.kube/config`) reads as an empty one, so that a fresh
/// machine gets the "create the cluster" hint rather than a file error.
fn read_kubeconfig() -> anyhow::Result<Kubeconfig> {
    let from_env = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty());
    if !from_env && default_kubeconfig_path().is_none_or(|p| !p.exists()) {
        return Ok(Kubeconfig::default());
    }
    Kubeconfig::read().with_context(|| format!("read kubeconfig {}", kubeconfig_location()))
}
