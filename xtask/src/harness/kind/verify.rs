//! Trust, but verify: before a phase with Istio's sidecar is measured, the status istiod wrote on each
//! route object, then the sidecar's own configuration dump, must hold what the phase asks for.
//!
//! How the sidecar's configuration is read in Istio 1.30: its Envoy admin listens on
//! `127.0.0.1:15000` only (`tools/packaging/common/envoy_bootstrap.json`, `admin.address` is
//! `{{ .localhost }}`), so neither the pod IP nor the API server's pod proxy reaches it, and a request
//! to the pod IP on 15000 is captured by the sidecar's inbound redirect anyway (the injection template
//! excludes only 15090, 15021 and the status port from it). `istioctl proxy-config` in 1.30 port-forwards
//! to 15000 (`pkg/kube/client.go`, `EnvoyDoWithPort`). The harness instead execs
//! `pilot-agent request GET config_dump` in the `istio-proxy` container
//! (`pilot/cmd/pilot-agent/app/request.go`: a GET on `localhost:15000`, allowed ports 15000, 15021,
//! 15020 and 15004, output printed as Envoy sent it): the same JSON, over the exec the harness already
//! uses, with no local port.

use anyhow::{Context as _, bail};

use serde_json::Value;

use super::{Kind, mesh_config, ops::Ops, route_status};
use crate::{
    cluster::{
        objects::{self, ambient},
        route_check,
    },
    harness::scenario::Mesh,
    output::progress,
};

/// The Istio sidecar's container.
pub const ISTIO_PROXY_CONTAINER: &str = "istio-proxy";
/// Envoy's configuration dump, read inside the sidecar (see the module documentation).
pub const CONFIG_DUMP_COMMAND: [&str; 4] = ["pilot-agent", "request", "GET", "config_dump"];

/// Where a configuration dump is read from.
pub(super) enum Dump {
    /// An Envoy of Istio's (a sidecar or a waypoint): `pilot-agent request GET config_dump` in the pod's
    /// `istio-proxy` container, by exec.
    Envoy { namespace: String, pod: String },
    /// ztunnel's admin, on the pod's localhost: through a port forward.
    Ztunnel { pod: String },
}

impl<O: Ops> Kind<O> {
    /// Before a phase is measured: the sidecar's checks, or in ambient mode those of `ambient.rs`.
    pub(super) async fn verify(&mut self) -> anyhow::Result<()> {
        if self.mesh.is_ambient() {
            self.verify_ambient().await
        } else {
            self.verify_sidecar().await
        }
    }

    /// The pod of the running client when it has Istio's sidecar.
    pub(super) fn sidecar_pod(&self) -> Option<String> {
        if self.mesh != Mesh::Sidecar {
            return None;
        }
        // Only the sidecar's own client has a sidecar; a mesh-off client still running is replaced
        // later, and checked then.
        let (name, _) = self.client.as_ref()?;
        if *name != objects::client_name(Mesh::Sidecar) {
            return None;
        }
        self.current_pod.as_ref().and_then(|c| c.borrow().clone())
    }

    /// Trust, but verify: with Istio's sidecar, first reads the status istiod wrote on each route
    /// object (a refusal fails at once, in Istio's words), then waits until the sidecar's Envoy holds
    /// every split the route objects ask for and, once this run changed the mesh configuration, the
    /// phase's retry conditions. A sidecar that does not within the deadline is a warning, not an
    /// error: the measurement then shows what the client really got.
    pub(super) async fn verify_sidecar(&mut self) -> anyhow::Result<()> {
        let Some(pod) = self.sidecar_pod() else {
            return Ok(());
        };
        let scenario = self.scenario().clone();
        let has_routes = scenario.routes.is_some();
        if !has_routes && !self.mesh_config_changed {
            return Ok(());
        }
        let routes = objects::route_objects(&scenario, self.weights.as_deref())?;
        if has_routes {
            self.check_route_status(&routes, false).await?;
        }
        let expected =
            route_check::expected(&routes, &objects::mesh_services(&scenario), objects::SERVER);
        let retry_on = self
            .mesh_config_changed
            .then(|| mesh_config::retry_on(self.retries));
        let host = self.server_fqdn();
        progress(&format!(
            "  checking that {pod}'s sidecar holds the {}",
            match (has_routes, &retry_on) {
                (true, Some(_)) => "routes and the retry policy",
                (true, None) => "routes",
                (false, _) => "retry policy",
            }
        ));
        let source = Dump::Envoy {
            namespace: self.namespace.clone(),
            pod: pod.clone(),
        };
        self.await_dump(source, &pod, "the sidecar holds them", |dump| {
            let routes_held = if has_routes {
                route_check::check(dump, &host, &expected)
            } else {
                Ok(())
            };
            routes_held.and_then(|()| match &retry_on {
                Some(conditions) => mesh_config::check_dump(dump, &host, conditions),
                None => Ok(()),
            })
        })
        .await
    }

    /// `server`'s fully qualified name in the demo's namespace, as Istio's configuration names it.
    pub(super) fn server_fqdn(&self) -> String {
        format!(
            "{}.{}.svc.{}",
            objects::SERVER,
            self.namespace,
            objects::CLUSTER_DOMAIN
        )
    }

    /// Reads a configuration dump until `check` passes, every `retry`, for at most `routes`; then a
    /// warning that starts with `who` and says what still differs, and the phase measures what the client
    /// really gets.
    pub(super) async fn await_dump(
        &mut self,
        source: Dump,
        who: &str,
        held: &str,
        check: impl Fn(&Value) -> Result<(), String>,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + self.deadlines.routes;
        loop {
            let text = match &source {
                Dump::Envoy { namespace, pod } => {
                    self.ops
                        .exec(namespace, pod, ISTIO_PROXY_CONTAINER, &CONFIG_DUMP_COMMAND)
                        .await
                }
                Dump::Ztunnel { pod } => {
                    self.ops
                        .port_forward_get(
                            ambient::ISTIO_NAMESPACE,
                            pod,
                            ambient::ZTUNNEL_ADMIN_PORT,
                            "config_dump",
                        )
                        .await
                }
            };
            let verdict = match text {
                Ok(text) => match serde_json::from_str(&text) {
                    Ok(dump) => check(&dump),
                    Err(err) => Err(format!("its config dump is not json ({err})")),
                },
                Err(err) => Err(format!("{err:#}")),
            };
            match verdict {
                Ok(()) => {
                    progress(&format!("  {held}"));
                    return Ok(());
                }
                Err(why) if tokio::time::Instant::now() >= deadline => {
                    self.warnings.push(format!(
                        "{who}: {why} after {}s; measuring what the client gets anyway",
                        self.deadlines.routes.as_secs()
                    ));
                    return Ok(());
                }
                Err(_) => tokio::time::sleep(self.deadlines.retry).await,
            }
        }
    }

    /// Reads `.status.parents[]` of each route object until istiod has written it for the applied
    /// generation (and, with `waypoint`, until its `ResolvedWaypoints` says "All waypoints resolved"): a
    /// refusal is an error in Istio's words; no such status within the deadline is a warning naming the
    /// route (and Istio's word on its waypoints).
    pub(super) async fn check_route_status(
        &mut self,
        routes: &[mesh::gateway::RouteObject],
        waypoint: bool,
    ) -> anyhow::Result<()> {
        for route in routes {
            let (kind, name) = match route {
                mesh::gateway::RouteObject::Http(r) => ("HTTPRoute", r.metadata.name.clone()),
                mesh::gateway::RouteObject::Grpc(r) => ("GRPCRoute", r.metadata.name.clone()),
            };
            let name = name.unwrap_or_default();
            let what = format!("{kind} {}/{name}", self.namespace);
            let deadline = tokio::time::Instant::now() + self.deadlines.status;
            loop {
                let found = self
                    .ops
                    .get(
                        &format!("{what}'s status from {}", route_status::ISTIO_CONTROLLER),
                        "gateway.networking.k8s.io/v1",
                        kind,
                        &self.namespace,
                        &name,
                    )
                    .await?
                    .with_context(|| format!("{what} is not there"))?;
                let waypoints = route_status::waypoints(&found);
                let verdict = match route_status::verdict(&found) {
                    route_status::Verdict::Accepted
                        if waypoint
                            && waypoints.as_deref()
                                != Some(route_status::ALL_WAYPOINTS_RESOLVED) =>
                    {
                        if tokio::time::Instant::now() >= deadline {
                            self.warnings.push(format!(
                                "{what}: {} has not resolved its waypoint after {}s ({}); checking the waypoint anyway",
                                route_status::ISTIO_CONTROLLER,
                                self.deadlines.status.as_secs(),
                                waypoints.as_deref().unwrap_or("no ResolvedWaypoints condition")
                            ));
                            break;
                        }
                        route_status::Verdict::Pending
                    }
                    verdict => verdict,
                };
                match verdict {
                    route_status::Verdict::Accepted => break,
                    route_status::Verdict::Refused(why) => {
                        bail!(
                            "{what}: {} refused it: {why}",
                            route_status::ISTIO_CONTROLLER
                        )
                    }
                    route_status::Verdict::Pending if tokio::time::Instant::now() >= deadline => {
                        self.warnings.push(format!(
                            "{what}: no status from {} for generation {} after {}s; checking the sidecar anyway",
                            route_status::ISTIO_CONTROLLER,
                            found["metadata"]["generation"].as_i64().unwrap_or(0),
                            self.deadlines.status.as_secs()
                        ));
                        break;
                    }
                    route_status::Verdict::Pending => {
                        tokio::time::sleep(self.deadlines.retry).await;
                    }
                }
            }
        }
        Ok(())
    }
}
