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

/// Gateway API, standard channel.
pub const GATEWAY_API_VERSION: &str = "v1.5.1";
/// The release asset, and its SHA-256 (of the file as published; a copy ships in `../shared`).
pub const GATEWAY_API_CRDS_URL: &str =
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.5.1/standard-install.yaml";
pub const GATEWAY_API_CRDS_SHA256: &str =
    "4ca80f21da038649c9450d8e4cf2dd8844a7f949ed24474a71c2ea7dd9c73df6";
/// Where a local copy of the CRDs may be named instead of downloading them.
pub const GATEWAY_API_CRDS_VAR: &str = "GATEWAY_API_CRDS";

/// The URL of istioctl for this machine, and of its published checksum file.
pub fn istioctl_url(version: &str) -> anyhow::Result<(String, String)> {
    let os = match std::env::consts::OS {
        "linux" => "linux",
        "macos" => "osx",
        other => anyhow::bail!(
            "istioctl is not published for {other}: install it yourself and put it on PATH"
        ),
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => anyhow::bail!(
            "istioctl is not published for {other}: install it yourself and put it on PATH"
        ),
    };
    let url = format!(
        "https://github.com/istio/istio/releases/download/{version}/istioctl-{version}-{os}-{arch}.tar.gz"
    );
    Ok((url.clone(), format!("{url}.sha256")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_gateway_api_crds_match_the_pinned_checksum() {
        use sha2::Digest;
        let path =
            crate::project::root().join("../shared/gateway-api/v1.5.1/standard-install.yaml");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let digest = sha2::Sha256::digest(&bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GATEWAY_API_CRDS_SHA256);
    }

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
    fn istioctl_urls_name_the_version_and_a_checksum() {
        let (url, sum) = istioctl_url("1.30.5").unwrap();
        assert!(url.contains("/1.30.5/istioctl-1.30.5-"), "{url}");
        assert_eq!(sum, format!("{url}.sha256"));
    }
}
