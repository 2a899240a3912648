//! Choosing the kube context, and connecting to exactly that one.

use ::kube::config::Kubeconfig;
use serde_json::{Value, json};

use super::version_info;
use crate::cluster::kube::{
    context::{connect_with, select_context, select_context_in},
    mock::{self, Mock, Reply},
};

fn kubeconfig(current: &str, contexts: &[&str]) -> Kubeconfig {
    let contexts: Vec<Value> = contexts
        .iter()
        .map(|name| json!({ "name": name, "context": { "cluster": name, "user": name } }))
        .collect();
    let yaml = json!({ "apiVersion": "v1", "kind": "Config", "current-context": current, "contexts": contexts });
    Kubeconfig::from_yaml(&yaml.to_string()).unwrap()
}

#[test]
fn select_context_picks_the_kind_context_even_when_another_is_current() {
    let config = kubeconfig("prod-eu", &["prod-eu", "kind-gml", "kind-other"]);
    assert_eq!(select_context(&config, "gml", None).unwrap(), "kind-gml");
}

#[test]
fn select_context_without_the_kind_context_says_how_to_create_it_and_lists_nothing_else() {
    let config = kubeconfig("prod-eu", &["prod-eu", "kind-other"]);
    let err = select_context(&config, "gml", None).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "kube context kind-gml not found: create the cluster with `cargo xtask up`"
    );
}

#[test]
fn select_context_honours_an_explicit_context() {
    let config = kubeconfig("kind-gml", &["kind-gml", "staging"]);
    assert_eq!(
        select_context(&config, "gml", Some("staging")).unwrap(),
        "staging"
    );
}

#[test]
fn select_context_names_the_kubeconfig_when_the_explicit_context_is_missing() {
    let config = kubeconfig("kind-gml", &["kind-gml"]);
    let err =
        select_context_in(&config, "/home/me/.kube/config", "gml", Some("staging")).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "kube context staging not found in /home/me/.kube/config"
    );
    // the public function fills in where the kubeconfig is read from (KUBECONFIG or ~/.kube/config)
    let err = select_context(&config, "gml", Some("staging")).unwrap_err();
    assert!(
        format!("{err:#}").starts_with("kube context staging not found in "),
        "{err:#}"
    );
}

/// A kubeconfig whose current context points at a closed port and whose `kind-gml` points at `server`.
fn two_cluster_kubeconfig(server: &str) -> Kubeconfig {
    let entry = |name: &str, url: &str| {
        (
            json!({ "name": name, "cluster": { "server": url } }),
            json!({ "name": name, "context": { "cluster": name, "user": name } }),
            json!({ "name": name, "user": {} }),
        )
    };
    let (prod, kind) = (
        entry("prod-eu", "http://127.0.0.1:1"),
        entry("kind-gml", server),
    );
    let yaml = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "prod-eu",
        "clusters": [prod.0, kind.0], "contexts": [prod.1, kind.1], "users": [prod.2, kind.2],
    });
    Kubeconfig::from_yaml(&yaml.to_string()).unwrap()
}

#[tokio::test]
async fn connect_builds_the_client_for_the_selected_context_not_the_current_one() {
    let mock = Mock::start().await;
    mock.on("GET", "/version", Reply::Json(200, version_info()));

    let cluster = connect_with(
        two_cluster_kubeconfig(mock.url()),
        "kubeconfig",
        "gml",
        None,
    )
    .await
    .unwrap();

    assert_eq!(cluster.context, "kind-gml");
    assert_eq!(cluster.server_version().await.unwrap(), "v1.35.0");
    let lines: Vec<String> = mock.calls().iter().map(mock::Recorded::line).collect();
    assert_eq!(lines, ["GET /version"]);
}
