//! What istiod says about a route it was given: `.status.parents[]` of an HTTPRoute or GRPCRoute.
//!
//! For each parentRef it handles, istiod writes a `RouteParentStatus` with `controllerName`
//! `istio.io/gateway-controller` (`PILOT_GATEWAY_API_CONTROLLER_NAME`, also for a Service parent) and
//! two conditions, each with the route's `observedGeneration` (istio `release-1.30`,
//! `pilot/pkg/config/kube/gateway/conditions.go`, `createRouteStatus` and `setConditions`):
//!
//! - `Accepted`: `True`, reason `Accepted`, "Route was valid"; `False` when the parent is refused, e.g.
//!   reason `NoMatchingParent` with `parent service: "x" not found` (`conversion.go`, `referenceAllowed`).
//! - `ResolvedRefs`: `True`, reason `ResolvedRefs`, "All references resolved"; `False` with the route's
//!   error, e.g. reason `BackendNotFound` with `backend(<host>) not found` (`buildDestination`).
//!
//! With ambient enabled (`PILOT_ENABLE_AMBIENT`, the ambient profile) a third condition follows,
//! `ResolvedWaypoints`, always `True` with reason `ResolvedWaypoints`: its message is "All waypoints
//! resolved" when the parent Service (or its namespace) carries `istio.io/use-waypoint`, and otherwise
//! "istio.io/use-waypoint label missing from parent and parent namespace; in ambient mode, route will not
//! be respected" (`conditions.go`, `createRouteStatus`; `conversion.go`, `referenceAllowed`,
//! `waypointConfigured`). Only the message tells the two apart, and the route's generation does not
//! change when the Service's label does.
//!
//! A status of an older generation says nothing about the route just applied.

use serde_json::{Value, json};

/// Who writes the status the harness reads.
pub const ISTIO_CONTROLLER: &str = "istio.io/gateway-controller";
const CONDITIONS: [&str; 2] = ["Accepted", "ResolvedRefs"];

/// What the status of one route says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Istio has not written a status for this generation yet.
    Pending,
    /// Every parent Istio handles accepted the route and resolved its references.
    Accepted,
    /// Istio's own words for what it refused: `ResolvedRefs BackendNotFound: backend(...) not found`.
    Refused(String),
}

/// Reads a route object (as the API server returns it) against its own generation.
pub fn verdict(route: &Value) -> Verdict {
    let generation = route["metadata"]["generation"].as_i64().unwrap_or(0);
    let parents: Vec<&Value> = route["status"]["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["controllerName"] == ISTIO_CONTROLLER)
        .collect();
    if parents.is_empty() {
        return Verdict::Pending;
    }
    let mut refused = Vec::new();
    let mut pending = false;
    for parent in parents {
        for kind in CONDITIONS {
            let condition = parent["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == kind);
            let Some(condition) = condition else {
                pending = true;
                continue;
            };
            if condition["observedGeneration"].as_i64().unwrap_or(0) < generation {
                pending = true;
                continue;
            }
            if condition["status"] != "True" {
                refused.push(format!(
                    "{kind} {}: {}",
                    condition["reason"].as_str().unwrap_or("?"),
                    condition["message"].as_str().unwrap_or("")
                ));
            }
        }
    }
    if !refused.is_empty() {
        Verdict::Refused(refused.join("; "))
    } else if pending {
        Verdict::Pending
    } else {
        Verdict::Accepted
    }
}

/// The condition istiod adds with ambient enabled, and its message when the parent uses a waypoint.
pub const RESOLVED_WAYPOINTS: &str = "ResolvedWaypoints";
pub const ALL_WAYPOINTS_RESOLVED: &str = "All waypoints resolved";
pub const USE_WAYPOINT_MISSING: &str = "istio.io/use-waypoint label missing from parent and parent namespace; in ambient mode, route will not be respected";

/// What Istio says about the waypoints of a route's parents: `None` while it has written no
/// `ResolvedWaypoints` for the route's generation (no ambient, or not yet); else the first message
/// that is not [`ALL_WAYPOINTS_RESOLVED`], or that one.
pub fn waypoints(route: &Value) -> Option<String> {
    let generation = route["metadata"]["generation"].as_i64().unwrap_or(0);
    let mut messages = Vec::new();
    for parent in route["status"]["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["controllerName"] == ISTIO_CONTROLLER)
    {
        let condition = parent["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == RESOLVED_WAYPOINTS)?;
        if condition["observedGeneration"].as_i64().unwrap_or(0) < generation {
            return None;
        }
        messages.push(condition["message"].as_str().unwrap_or("").to_owned());
    }
    let first = messages.first()?.clone();
    Some(
        messages
            .into_iter()
            .find(|m| m != ALL_WAYPOINTS_RESOLVED)
            .unwrap_or(first),
    )
}

/// Adds to each parent of a status the `ResolvedWaypoints` condition istiod writes with ambient on:
/// resolved when the parent Service uses a waypoint.
pub fn with_waypoints(mut status: Value, generation: i64, resolved: bool) -> Value {
    let condition = json!({
        "type": RESOLVED_WAYPOINTS,
        "status": "True",
        "observedGeneration": generation,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "reason": RESOLVED_WAYPOINTS,
        "message": if resolved { ALL_WAYPOINTS_RESOLVED } else { USE_WAYPOINT_MISSING },
    });
    for parent in status["parents"].as_array_mut().into_iter().flatten() {
        if let Some(conditions) = parent["conditions"].as_array_mut() {
            conditions.push(condition.clone());
        }
    }
    status
}

/// A condition that differs from success: its type, reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub condition: &'static str,
    pub reason: String,
    pub message: String,
}

/// The `status` istiod writes for a route of this generation attached to these `parentRefs`: both
/// conditions true, except the refusals given (the recorder's well-behaved Istio, and the tests' mock).
pub fn istio_status(parent_refs: &Value, generation: i64, refusals: &[Refusal]) -> Value {
    let conditions: Vec<Value> = [
        ("Accepted", "Accepted", "Route was valid"),
        ("ResolvedRefs", "ResolvedRefs", "All references resolved"),
    ]
    .into_iter()
    .map(|(kind, reason, message)| {
        let refusal = refusals.iter().find(|r| r.condition == kind);
        json!({
            "type": kind,
            "status": if refusal.is_some() { "False" } else { "True" },
            "observedGeneration": generation,
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "reason": refusal.map_or(reason, |r| r.reason.as_str()),
            "message": refusal.map_or(message, |r| r.message.as_str()),
        })
    })
    .collect();
    let parents: Vec<Value> = parent_refs
        .as_array()
        .into_iter()
        .flatten()
        .map(|parent| {
            json!({
                "parentRef": parent,
                "controllerName": ISTIO_CONTROLLER,
                "conditions": conditions,
            })
        })
        .collect();
    json!({ "parents": parents })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(generation: i64, status: Value) -> Value {
        json!({ "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": { "name": "server", "namespace": "gml-x", "generation": generation },
            "spec": { "parentRefs": [{ "group": "", "kind": "Service", "name": "server" }] },
            "status": status })
    }

    fn parents() -> Value {
        json!([{ "group": "", "kind": "Service", "name": "server" }])
    }

    #[test]
    fn a_route_istio_accepted_for_its_generation_is_accepted() {
        let r = route(3, istio_status(&parents(), 3, &[]));
        assert_eq!(verdict(&r), Verdict::Accepted);
    }

    #[test]
    fn a_status_of_the_previous_generation_or_none_at_all_is_pending() {
        assert_eq!(
            verdict(&route(4, istio_status(&parents(), 3, &[]))),
            Verdict::Pending
        );
        assert_eq!(verdict(&route(1, json!({}))), Verdict::Pending);
    }

    #[test]
    fn another_controller_s_status_is_not_istio_s() {
        let mut status = istio_status(&parents(), 1, &[]);
        status["parents"][0]["controllerName"] = json!("example.com/other");
        assert_eq!(verdict(&route(1, status)), Verdict::Pending);
    }

    #[test]
    fn with_ambient_only_the_message_of_resolved_waypoints_says_whether_the_parent_uses_a_waypoint()
    {
        let attached = route(2, with_waypoints(istio_status(&parents(), 2, &[]), 2, true));
        let plain = route(
            2,
            with_waypoints(istio_status(&parents(), 2, &[]), 2, false),
        );
        assert_eq!(verdict(&attached), Verdict::Accepted);
        assert_eq!(
            verdict(&plain),
            Verdict::Accepted,
            "the condition is True either way"
        );
        assert_eq!(
            waypoints(&attached).as_deref(),
            Some(ALL_WAYPOINTS_RESOLVED)
        );
        assert_eq!(waypoints(&plain).as_deref(), Some(USE_WAYPOINT_MISSING));
        assert_eq!(waypoints(&route(2, istio_status(&parents(), 2, &[]))), None);
        let stale = route(3, with_waypoints(istio_status(&parents(), 3, &[]), 2, true));
        assert_eq!(
            waypoints(&stale),
            None,
            "a condition of the previous generation"
        );
    }

    #[test]
    fn a_missing_backend_is_refused_in_istio_s_own_words() {
        let refusal = Refusal {
            condition: "ResolvedRefs",
            reason: "BackendNotFound".into(),
            message: "backend(server-v3.gml-x.svc.cluster.local) not found".into(),
        };
        let r = route(2, istio_status(&parents(), 2, &[refusal]));
        assert_eq!(
            verdict(&r),
            Verdict::Refused(
                "ResolvedRefs BackendNotFound: backend(server-v3.gml-x.svc.cluster.local) not found"
                    .into()
            )
        );
    }

    #[test]
    fn a_missing_parent_service_is_refused_even_while_another_condition_is_pending() {
        let refusal = Refusal {
            condition: "Accepted",
            reason: "NoMatchingParent".into(),
            message: "parent service: \"server\" not found".into(),
        };
        let mut status = istio_status(&parents(), 5, &[refusal]);
        status["parents"][0]["conditions"][1]["observedGeneration"] = json!(4);
        assert_eq!(
            verdict(&route(5, status)),
            Verdict::Refused(
                "Accepted NoMatchingParent: parent service: \"server\" not found".into()
            )
        );
    }
}
