//! Istio's ambient mode: what enrolls the demo in the mesh, and the waypoint.
//!
//! - Enrollment: the namespace carries `istio.io/dataplane-mode: ambient`. istio-cni's default
//!   enablement selectors (`manifests/charts/istio-cni/values.yaml`, `ambient.enablementSelectors`)
//!   capture every pod of such a namespace unless the pod says `istio.io/dataplane-mode: none`, and
//!   never a pod that has a sidecar (`cni/pkg/util/enablement_selector.go`, `Matches`): so the servers
//!   and the ambient client are captured by ztunnel, the sidecar phase's client is not, and neither is
//!   the waypoint (its pods say `none`).
//! - The waypoint: a Gateway API `Gateway` named `waypoint` of class `istio-waypoint` with one
//!   listener `mesh` on port 15008, protocol `HBONE`, as `istioctl waypoint generate` writes it
//!   (`istioctl/pkg/waypoint/waypoint.go`). istiod's deployment controller makes its Deployment,
//!   ServiceAccount and Service under the same name (the class has `DisableNameSuffix`,
//!   `pilot/pkg/config/kube/gatewaycommon/classinfo.go`), with pods labelled
//!   `gateway.networking.k8s.io/gateway-name: waypoint` running the container `istio-proxy`.
//! - Attachment: the Service `server` carries `istio.io/use-waypoint: waypoint` in the phases that
//!   use the waypoint, and not otherwise; ztunnel then sends the client's connections to the
//!   waypoint, which applies the routes attached to `server`.

use kube::api::DynamicObject;
use serde_json::json;

use super::{PART_OF, PART_OF_LABEL, namespace};
use crate::harness::scenario::{Mesh, Scenario};

/// The label that enrolls a namespace (or a pod) in ambient mode, and its value.
pub const DATAPLANE_MODE_LABEL: &str = "istio.io/dataplane-mode";
pub const AMBIENT: &str = "ambient";
/// The label that attaches a Service to a waypoint, by the waypoint's name.
pub const USE_WAYPOINT_LABEL: &str = "istio.io/use-waypoint";
/// The waypoint's Gateway, and the Deployment, ServiceAccount and Service istiod makes for it.
pub const WAYPOINT: &str = "waypoint";
/// The waypoint's GatewayClass, which istiod creates when ambient is enabled.
pub const WAYPOINT_CLASS: &str = "istio-waypoint";
/// The listener Istio expects on a waypoint: HBONE on 15008.
pub const WAYPOINT_LISTENER: &str = "mesh";
pub const HBONE_PORT: u16 = 15008;
pub const HBONE: &str = "HBONE";
/// The label istiod's deployment controller puts on the pods of a Gateway it deploys.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// Where ztunnel runs: a DaemonSet in Istio's namespace, its pods labelled `app=ztunnel`.
pub const ISTIO_NAMESPACE: &str = "istio-system";
pub const ZTUNNEL: &str = "ztunnel";
/// ztunnel's admin port (`config_dump`): on localhost only (`src/config.rs`, `admin_addr`).
pub const ZTUNNEL_ADMIN_PORT: u16 = 15000;

/// Whether a phase of the scenario runs in ambient mode (its namespace is then enrolled).
pub fn is_ambient(scenario: &Scenario) -> bool {
    scenario.phases.iter().any(|p| p.mesh.is_ambient())
}

/// Whether a phase of the scenario uses the waypoint (it is then deployed with the base objects).
pub fn has_waypoint(scenario: &Scenario) -> bool {
    scenario.phases.iter().any(|p| p.mesh == Mesh::Waypoint)
}

/// The waypoint of the scenario's namespace, as a Gateway API `Gateway`.
pub fn waypoint(scenario: &Scenario) -> DynamicObject {
    let value = json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {
            "name": WAYPOINT,
            "namespace": namespace(scenario.name),
            "labels": { PART_OF_LABEL: PART_OF },
        },
        "spec": {
            "gatewayClassName": WAYPOINT_CLASS,
            "listeners": [{ "name": WAYPOINT_LISTENER, "port": HBONE_PORT, "protocol": HBONE }],
        },
    });
    serde_json::from_value(value).expect("a Gateway converts to a DynamicObject")
}

/// The selector of the waypoint's pods.
pub fn waypoint_pods() -> String {
    format!("{GATEWAY_NAME_LABEL}={WAYPOINT}")
}
