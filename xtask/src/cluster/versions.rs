//! Every pinned version of the cluster path, in one place; each can be overridden by a flag.
//! (Envoy's is `mesh::envoy::ENVOY_VERSION`: the cluster's proxies run the Envoy the twin runs.)

/// The kind cluster's name; its kube context is `kind-<name>`.
pub const CLUSTER_NAME: &str = "grpc-mesh-lab";

/// Kubernetes 1.35, the node image of kind v0.33.0, pinned by digest.
pub const KIND_NODE_IMAGE: &str =
    "kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0";
/// The kind release that built [`KIND_NODE_IMAGE`]; older kind binaries may not boot it.
pub const KIND_VERSION: &str = "v0.33.0";

/// Istio 1.30 needs Gateway API CRDs v1.5.x.
pub const ISTIO_VERSION: &str = "1.30.5";

/// Gateway API, standard channel: pinned in `up/fetch.rs` with the checksum of its CRD bundle
/// (the tests include that file to find the CRDs as `up` does).
pub use crate::cluster::fetch::GATEWAY_API_VERSION;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_image_is_pinned_by_digest_to_kubernetes_1_35() {
        assert!(KIND_NODE_IMAGE.starts_with("kindest/node:v1.35."));
        assert!(KIND_NODE_IMAGE.contains("@sha256:"));
    }

    #[test]
    fn kind_config_pins_the_same_node_image_on_every_node() {
        let text =
            std::fs::read_to_string(crate::project::root().join("kind-config.yaml")).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["name"].as_str(), Some(CLUSTER_NAME));
        let nodes = doc["nodes"].as_sequence().unwrap();
        let roles: Vec<_> = nodes.iter().map(|n| n["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["control-plane", "worker", "worker"]);
        for n in nodes {
            assert_eq!(
                n["image"].as_str(),
                Some(KIND_NODE_IMAGE),
                "kind-config.yaml and versions.rs disagree"
            );
        }
    }

    #[test]
    fn kind_config_leaves_networking_to_kind_so_kube_proxy_balances_per_connection_in_iptables_mode()
     {
        // kind's defaults (kindnet, kube-proxy in iptables mode) are what the clusterip demo's
        // lesson rests on: docs/cluster-assumptions.md, rows 2 and 22.
        let text =
            std::fs::read_to_string(crate::project::root().join("kind-config.yaml")).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert!(
            doc.get("networking").is_none(),
            "kind-config.yaml sets networking"
        );
    }

    #[test]
    fn istio_is_installed_minimal_with_sidecars_only_where_a_pod_asks_for_one() {
        // docs/cluster-assumptions.md, rows 31 and 34: istiod alone, Gateway API on, and no
        // namespace injected by default, so only the pod labelled for it gets a sidecar.
        let text =
            std::fs::read_to_string(crate::project::root().join("mesh/istio/istio.yaml")).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["kind"].as_str(), Some("IstioOperator"));
        let spec = &doc["spec"];
        assert_eq!(spec["profile"].as_str(), Some("minimal"));
        assert_eq!(
            spec["values"]["sidecarInjectorWebhook"]["enableNamespacesByDefault"].as_bool(),
            Some(false)
        );
        assert_eq!(
            spec["values"]["pilot"]["env"]["PILOT_ENABLE_GATEWAY_API"].as_str(),
            Some("true")
        );
    }

    fn istio_config(file: &str) -> serde_yaml::Value {
        let text = std::fs::read_to_string(crate::project::root().join(file)).unwrap();
        serde_yaml::from_str(&text).unwrap()
    }

    #[test]
    fn the_ambient_install_is_the_ambient_profile_with_the_sidecar_injector_as_in_the_sidecar_install()
     {
        // docs/cluster-assumptions.md, rows 88 to 91: the ambient profile (istiod with ambient, istio-cni,
        // ztunnel), sidecars still only where a pod asks, Gateway API on, and the same IstioOperator
        // name, so that one install replaces the other.
        let ambient = istio_config(crate::up::ISTIO_AMBIENT_CONFIG);
        let sidecar = istio_config(crate::up::ISTIO_SIDECAR_CONFIG);
        assert_eq!(ambient["kind"].as_str(), Some("IstioOperator"));
        assert_eq!(ambient["spec"]["profile"].as_str(), Some("ambient"));
        assert_eq!(ambient["metadata"], sidecar["metadata"]);
        assert_eq!(
            ambient["spec"]["values"]["sidecarInjectorWebhook"],
            sidecar["spec"]["values"]["sidecarInjectorWebhook"]
        );
        assert_eq!(
            ambient["spec"]["values"]["pilot"]["env"]["PILOT_ENABLE_GATEWAY_API"].as_str(),
            Some("true")
        );
    }

    #[test]
    fn the_ambient_install_leaves_istio_cni_on_its_default_paths_which_are_kind_s() {
        // docs/cluster-assumptions.md, row 92: istio-cni's defaults /opt/cni/bin and /etc/cni/net.d are
        // where a kind node's containerd and kindnet keep the CNI binaries and configuration; no
        // platform profile, no component override.
        let ambient = istio_config(crate::up::ISTIO_AMBIENT_CONFIG);
        let spec = &ambient["spec"];
        assert!(spec["values"].get("cni").is_none(), "{spec:?}");
        assert!(
            spec["values"]["global"].get("platform").is_none(),
            "{spec:?}"
        );
        assert!(spec.get("components").is_none(), "{spec:?}");
    }
}
