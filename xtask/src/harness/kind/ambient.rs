//! Istio's ambient mode on the cluster: the waypoint made ready before anything is measured, the Service
//! `server` attached to it only in the phases that use it (and ztunnel seen to know it before the phase's
//! client connects), and, before an ambient phase is measured, what
//! Istio says and holds: the route's status (with a waypoint, `ResolvedWaypoints` must say so), the
//! waypoint's own Envoy configuration, and ztunnel's view of the client and the Service.
//!
//! How each is read in Istio 1.30:
//! - The waypoint is a Deployment istiod makes from the `Gateway` (named after it, pods labelled
//!   `gateway.networking.k8s.io/gateway-name`, container `istio-proxy`); its Envoy admin is on localhost as
//!   a sidecar's, so its dump is read as the sidecar's is, `pilot-agent request GET config_dump` by exec
//!   (the proxy image has `pilot-agent`, distroless or not: it is the container's entry point). Its routes
//!   for a Service are inline in its listeners, in the route configuration
//!   `inbound-vip|<port>|http|<fqdn>` (`cluster/route_check.rs`, `found_waypoint`).
//! - ztunnel's admin (`config_dump`) listens on localhost:15000 only (ztunnel `src/config.rs`,
//!   `admin_addr`) and its image has no shell or `curl`: neither exec nor the pod proxy reach it. A port
//!   forward does, as `istioctl ztunnel-config` does (`istioctl/pkg/ztunnelconfig`, `EnvoyDoWithPort`). Its
//!   dump lists `workloads` (name, namespace, `protocol`: `HBONE` when captured) and `services`
//!   (`hostname`, and `waypoint` when the Service uses one) (ztunnel `src/state.rs`,
//!   `ProxyStateSerialization`; `src/state/service.rs`, `Service`; `src/state/workload.rs`).
//!
//! A waypoint that istiod does not program within the deadline is an error naming it; a route, a waypoint
//! dump or a ztunnel view that does not hold what the phase asks within the deadline is a warning, and the
//! measurement then shows what the client really got, as for the sidecar.

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::{Kind, ops::Ops, verify::Dump};
use crate::{
    cluster::{
        objects::{self, ambient},
        route_check,
    },
    harness::scenario::Mesh,
    output::progress,
};

/// The Gateway condition istiod sets once the waypoint's Service has an address.
const PROGRAMMED: &str = "Programmed";

impl<O: Ops> Kind<O> {
    /// Waits until istiod has programmed the waypoint `Gateway` (its `Programmed` condition is `True` for
    /// its generation), then until the Deployment istiod made for it has rolled out. Not programmed within
    /// the deadline is an error naming the Gateway and Istio's last word.
    pub(super) async fn await_waypoint(&mut self) -> anyhow::Result<()> {
        let what = format!("gateway {}/{}", self.namespace, ambient::WAYPOINT);
        progress(&format!(
            "  waiting for istio to program the waypoint ({what}, up to {}s)",
            self.deadlines.waypoint.as_secs()
        ));
        let deadline = tokio::time::Instant::now() + self.deadlines.waypoint;
        loop {
            let found = self
                .ops
                .get(
                    &format!("{what}'s status ({PROGRAMMED})"),
                    "gateway.networking.k8s.io/v1",
                    "Gateway",
                    &self.namespace,
                    ambient::WAYPOINT,
                )
                .await?
                .with_context(|| format!("{what} is not there"))?;
            match programmed(&found) {
                Ok(()) => break,
                Err(why) if tokio::time::Instant::now() >= deadline => bail!(
                    "{what} (the waypoint) not programmed by istio after {}s: {why}",
                    self.deadlines.waypoint.as_secs()
                ),
                Err(_) => tokio::time::sleep(self.deadlines.retry).await,
            }
        }
        self.rollout(ambient::WAYPOINT).await
    }

    /// Attaches the Service `server` to the waypoint (`istio.io/use-waypoint: waypoint`) or detaches it, by
    /// a server-side apply of the Service with or without the label.
    pub(super) async fn attach_waypoint(&mut self, attached: bool) -> anyhow::Result<()> {
        let scenario = self.scenario().clone();
        let service = objects::server_service_attached(&scenario, self.exposure, attached)?;
        let why = if attached {
            format!(
                "the service {} attached to the waypoint, {}: {}",
                objects::SERVER,
                ambient::USE_WAYPOINT_LABEL,
                ambient::WAYPOINT
            )
        } else {
            format!(
                "the service {} without {}",
                objects::SERVER,
                ambient::USE_WAYPOINT_LABEL
            )
        };
        progress(&format!("  applying {why}"));
        self.ops.apply(&why, &[service]).await?;
        self.waypoint_attached = attached;
        // The client connects once, when the phase restarts it: ztunnel must know where `server` goes
        // before that, or the phase would measure the previous arrangement.
        let fqdn = self.server_fqdn();
        let Some(ztunnel) = self.ztunnel_on(None).await? else {
            return Ok(());
        };
        progress(&format!(
            "  waiting until ztunnel {ztunnel} sends {} {}",
            objects::SERVER,
            destination(attached)
        ));
        self.poll_ztunnel(&ztunnel, |dump| service_view(dump, &fqdn, attached))
            .await
    }

    /// The running client's pod when it is the ambient client.
    fn ambient_pod(&self) -> Option<String> {
        if !self.mesh.is_ambient() {
            return None;
        }
        let (name, _) = self.client.as_ref()?;
        if *name != objects::CLIENT_AMBIENT {
            return None;
        }
        self.current_pod.as_ref().and_then(|c| c.borrow().clone())
    }

    /// Trust, but verify, in ambient mode: the route's status (with the waypoint: resolved), then the
    /// waypoint's dump (with the waypoint), then ztunnel's view of the client and of `server`.
    pub(super) async fn verify_ambient(&mut self) -> anyhow::Result<()> {
        let Some(pod) = self.ambient_pod() else {
            return Ok(());
        };
        let scenario = self.scenario().clone();
        let waypoint = self.mesh == Mesh::Waypoint;
        let routes = objects::route_objects(&scenario, self.weights.as_deref())?;
        if !routes.is_empty() {
            self.check_route_status(&routes, waypoint).await?;
        }
        let fqdn = self.server_fqdn();
        if waypoint && !routes.is_empty() {
            let expected =
                route_check::expected(&routes, &objects::mesh_services(&scenario), objects::SERVER);
            self.check_waypoint_dump(&fqdn, &expected).await?;
        }
        self.check_ztunnel(&pod, &fqdn, waypoint).await
    }

    /// Waits until the waypoint's Envoy holds every split the routes ask for; a warning after the deadline.
    async fn check_waypoint_dump(
        &mut self,
        fqdn: &str,
        expected: &[route_check::Split],
    ) -> anyhow::Result<()> {
        let mut pods = self
            .ops
            .pods(&self.namespace, &ambient::waypoint_pods())
            .await?;
        pods.sort_by_key(|p| (!p.ready, !p.running, p.name.clone()));
        let pod = pods.first().map(|p| p.name.clone()).with_context(|| {
            format!(
                "no pod of the waypoint ({}) in namespace {}",
                ambient::waypoint_pods(),
                self.namespace
            )
        })?;
        progress(&format!(
            "  checking that the waypoint {pod} holds the routes"
        ));
        let source = Dump::Envoy {
            namespace: self.namespace.clone(),
            pod: pod.clone(),
        };
        self.await_dump(source, &pod, "the waypoint holds them", |dump| {
            route_check::check_waypoint(dump, fqdn, objects::GRPC_PORT, expected)
        })
        .await
    }

    /// Waits until the ztunnel on the client's node captures the client and sends `server` to the
    /// waypoint (or not, without one); a warning after the deadline.
    async fn check_ztunnel(
        &mut self,
        client: &str,
        fqdn: &str,
        waypoint: bool,
    ) -> anyhow::Result<()> {
        let node = self
            .ops
            .pods(&self.namespace, &format!("app={}", objects::CLIENT_AMBIENT))
            .await?
            .into_iter()
            .find(|p| p.name == client)
            .and_then(|p| p.node);
        let Some(ztunnel) = self.ztunnel_on(node).await? else {
            self.warnings.push(format!(
                "no ztunnel pod (app={}) in {}: ztunnel's view of {client} was not checked",
                ambient::ZTUNNEL,
                ambient::ISTIO_NAMESPACE
            ));
            return Ok(());
        };
        progress(&format!(
            "  checking ztunnel {ztunnel}: it captures {client} and sends {} {}",
            objects::SERVER,
            destination(waypoint)
        ));
        let namespace = self.namespace.clone();
        self.poll_ztunnel(&ztunnel, |dump| {
            ztunnel_view(dump, &namespace, client, fqdn, waypoint)
        })
        .await
    }

    /// A ztunnel pod: the one on `node` if there is one, else the first by name (every ztunnel knows
    /// every Service); `None` when ztunnel has no pod.
    async fn ztunnel_on(&self, node: Option<String>) -> anyhow::Result<Option<String>> {
        let mut ztunnels = self
            .ops
            .pods(
                ambient::ISTIO_NAMESPACE,
                &format!("app={}", ambient::ZTUNNEL),
            )
            .await?;
        ztunnels.sort_by_key(|p| (node.is_none() || p.node != node, p.name.clone()));
        Ok(ztunnels.into_iter().next().map(|p| p.name))
    }

    /// Reads ztunnel's `config_dump` until `check` passes; a warning naming what still differs after the
    /// deadline.
    async fn poll_ztunnel(
        &mut self,
        ztunnel: &str,
        check: impl Fn(&Value) -> Result<(), String>,
    ) -> anyhow::Result<()> {
        let source = Dump::Ztunnel {
            pod: ztunnel.to_owned(),
        };
        self.await_dump(
            source,
            &format!("ztunnel {ztunnel}"),
            "ztunnel agrees",
            check,
        )
        .await
    }
}

/// Where ztunnel sends `server`'s connections, in words.
fn destination(waypoint: bool) -> &'static str {
    if waypoint {
        "to the waypoint"
    } else {
        "to its pods"
    }
}

/// Whether a Gateway's `Programmed` condition is `True` for its generation; else what Istio says, in one
/// line.
pub fn programmed(gateway: &Value) -> Result<(), String> {
    let generation = gateway["metadata"]["generation"].as_i64().unwrap_or(0);
    let condition = gateway["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == PROGRAMMED);
    let Some(condition) = condition else {
        return Err(format!("no {PROGRAMMED} condition yet"));
    };
    if condition["observedGeneration"].as_i64().unwrap_or(0) < generation {
        return Err(format!(
            "no {PROGRAMMED} condition for generation {generation} yet"
        ));
    }
    if condition["status"] == "True" {
        Ok(())
    } else {
        Err(format!(
            "{PROGRAMMED} {} {}: {}",
            condition["status"].as_str().unwrap_or("?"),
            condition["reason"].as_str().unwrap_or("?"),
            condition["message"].as_str().unwrap_or("")
        ))
    }
}

/// Checks ztunnel's dump: the client pod is a workload it captures (`protocol: HBONE`), and the Service
/// `fqdn` has a waypoint (on HBONE's port) exactly when `waypoint`. The error says what differs, in one
/// line.
pub fn ztunnel_view(
    dump: &Value,
    namespace: &str,
    client: &str,
    fqdn: &str,
    waypoint: bool,
) -> Result<(), String> {
    let workload = dump["workloads"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| w["name"] == client && w["namespace"] == namespace)
        .ok_or_else(|| format!("ztunnel does not know the workload {namespace}/{client}"))?;
    let protocol = workload["protocol"].as_str().unwrap_or("TCP");
    if protocol != ambient::HBONE {
        return Err(format!(
            "ztunnel does not capture {namespace}/{client} (its protocol is {protocol}, not {})",
            ambient::HBONE
        ));
    }
    service_view(dump, fqdn, waypoint)
}

/// Checks ztunnel's dump for the Service `fqdn` alone: it has a waypoint (on HBONE's port) exactly when
/// `waypoint`.
pub fn service_view(dump: &Value, fqdn: &str, waypoint: bool) -> Result<(), String> {
    let service = dump["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["hostname"] == fqdn)
        .ok_or_else(|| format!("ztunnel does not know the service {fqdn}"))?;
    match (&service["waypoint"], waypoint) {
        (Value::Null, false) => Ok(()),
        (Value::Null, true) => Err(format!(
            "ztunnel still sends {fqdn} to its pods, not to a waypoint"
        )),
        (found, true) if found["hboneMtlsPort"] == ambient::HBONE_PORT => Ok(()),
        (found, true) => Err(format!(
            "ztunnel sends {fqdn} to a waypoint on port {}, not {}",
            found["hboneMtlsPort"],
            ambient::HBONE_PORT
        )),
        (found, false) => Err(format!(
            "ztunnel still sends {fqdn} to the waypoint {}",
            found["destination"]
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dump(protocol: &str, waypoint: Option<Value>) -> Value {
        let mut service = json!({ "name": "server", "namespace": "gml-x",
            "hostname": "server.gml-x.svc.cluster.local", "vips": [], "ports": { "50051": 50051 } });
        if let Some(w) = waypoint {
            service["waypoint"] = w;
        }
        json!({ "workloads": [{ "name": "client-ambient-1", "namespace": "gml-x", "protocol": protocol,
                "workloadIps": ["10.244.1.5"] }],
            "services": [service], "policies": [] })
    }

    fn via_waypoint() -> Value {
        json!({ "destination": "gml-x/waypoint.gml-x.svc.cluster.local", "hboneMtlsPort": 15008 })
    }

    const FQDN: &str = "server.gml-x.svc.cluster.local";

    #[test]
    fn ztunnel_agrees_when_it_captures_the_client_and_sends_the_service_where_the_phase_says() {
        assert_eq!(
            ztunnel_view(
                &dump("HBONE", None),
                "gml-x",
                "client-ambient-1",
                FQDN,
                false
            ),
            Ok(())
        );
        assert_eq!(
            ztunnel_view(
                &dump("HBONE", Some(via_waypoint())),
                "gml-x",
                "client-ambient-1",
                FQDN,
                true
            ),
            Ok(())
        );
    }

    #[test]
    fn ztunnel_disagrees_in_one_line_naming_what_differs() {
        assert_eq!(
            ztunnel_view(&dump("TCP", None), "gml-x", "client-ambient-1", FQDN, false),
            Err(
                "ztunnel does not capture gml-x/client-ambient-1 (its protocol is TCP, not HBONE)"
                    .into()
            )
        );
        assert_eq!(
            ztunnel_view(
                &dump("HBONE", None),
                "gml-x",
                "client-ambient-1",
                FQDN,
                true
            ),
            Err(
                "ztunnel still sends server.gml-x.svc.cluster.local to its pods, not to a waypoint"
                    .into()
            )
        );
        assert!(
            ztunnel_view(
                &dump("HBONE", Some(via_waypoint())),
                "gml-x",
                "client-ambient-1",
                FQDN,
                false
            )
            .unwrap_err()
            .starts_with("ztunnel still sends server.gml-x.svc.cluster.local to the waypoint")
        );
        assert_eq!(
            ztunnel_view(
                &dump("HBONE", None),
                "gml-x",
                "client-ambient-2",
                FQDN,
                false
            ),
            Err("ztunnel does not know the workload gml-x/client-ambient-2".into())
        );
    }

    #[test]
    fn a_gateway_is_programmed_only_by_a_true_condition_of_its_generation() {
        let gateway = |generation: i64, observed: i64, status: &str| {
            json!({ "metadata": { "generation": generation }, "status": { "conditions": [
                { "type": "Accepted", "status": "True", "observedGeneration": observed, "reason": "Accepted" },
                { "type": "Programmed", "status": status, "observedGeneration": observed,
                  "reason": if status == "True" { "Programmed" } else { "AddressNotAssigned" },
                  "message": "Failed to assign to any requested addresses: hostname \"waypoint.gml-x.svc.cluster.local\" not found" }] } })
        };
        assert_eq!(programmed(&gateway(1, 1, "True")), Ok(()));
        assert_eq!(
            programmed(&gateway(2, 1, "True")),
            Err("no Programmed condition for generation 2 yet".into())
        );
        assert_eq!(
            programmed(&gateway(1, 1, "False")),
            Err("Programmed False AddressNotAssigned: Failed to assign to any requested addresses: hostname \"waypoint.gml-x.svc.cluster.local\" not found".into())
        );
        assert_eq!(
            programmed(&json!({})),
            Err("no Programmed condition yet".into())
        );
    }
}
