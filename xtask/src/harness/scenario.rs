//! The demos, written once as data: what is deployed, what changes in each phase, what the client
//! does. A backend (the local twin today, a kind cluster later) runs the very same definitions.

use std::time::Duration;

/// How the `server` Services are exposed when no mesh is in the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    ClusterIp,
    Headless,
}

/// What stands between the client and the servers in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mesh {
    Off,
    /// A sidecar beside the client, configured over xDS.
    Sidecar,
    /// A sidecar with a static configuration, restarted on every change.
    StaticSidecar,
    /// Envoy proxies in front of the servers.
    Proxy(u32),
}

impl Mesh {
    /// Whether the client's RPCs go through an Envoy.
    pub fn is_on(self) -> bool {
        self != Mesh::Off
    }

    /// The same arrangement, whatever the number of proxies (scaling them is an [`Action`]).
    pub fn same_kind(self, other: Mesh) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

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
    /// A file under `gateway/` applied before the first phase.
    pub routes: Option<&'static str>,
    pub phases: Vec<Phase>,
}

/// Every demo, in the seed's order.
pub const NAMES: [&str; 14] = [
    "clusterip",
    "headless",
    "maxage",
    "server-proxy",
    "sidecar",
    "headless-sidecar",
    "canary",
    "xds",
    "httproute",
    "grpcroute",
    "compare",
    "rolling-restart",
    "kill",
    "scale-down",
];

const SHORT: Duration = Duration::from_secs(2);
/// The seed used 10s and 20s; the local twin uses shorter ages so the demo takes seconds.
const LOCAL_MAX_AGE: &str = "5s";
const LOCAL_MAX_AGE_GRACE: &str = "5s";
/// The seed's servers slept 1s per RPC for readable logs; a few milliseconds keep the numbers
/// readable without making the demos slow.
const RESPONSE_DELAY: &str = "5ms";

fn phase(name: &'static str, mesh: Mesh, actions: Vec<Action>) -> Phase {
    Phase {
        name,
        mesh,
        client: Client::default(),
        actions,
        measure: SHORT,
        under_load: false,
        retries: Retries::IstioDefault,
        exposure: None,
    }
}

/// A phase whose changes happen under steady load and are measured, with a second after them.
fn under_load(name: &'static str, mesh: Mesh, action: Action) -> Phase {
    Phase {
        measure: Duration::from_secs(1),
        under_load: true,
        retries: Retries::IstioDefault,
        exposure: None,
        ..phase(name, mesh, vec![action])
    }
}

/// A fault phase with the sidecar: the client calls the ClusterIP Service `server`, as a meshed
/// workload normally does, so the sidecar balances over the Service's endpoints. (Through a headless
/// Service the sidecar would pass each request through to the pod the client picked: see
/// `headless-sidecar`.)
fn meshed_under_load(name: &'static str, action: Action) -> Phase {
    Phase {
        exposure: Some(Exposure::ClusterIp),
        ..under_load(name, Mesh::Sidecar, action)
    }
}

fn pick_first() -> Client {
    Client {
        lb: "pick_first",
        ..Client::default()
    }
}

fn scale(version: &'static str, replicas: u32) -> Action {
    Action::Scale { version, replicas }
}

fn weights(v1: u32, v2: u32) -> Action {
    Action::Weights(vec![("server-v1", v1), ("server-v2", v2)])
}

fn base(name: &'static str, title: &'static str, lesson: &'static str) -> Scenario {
    Scenario {
        name,
        title,
        lesson,
        exposure: Exposure::ClusterIp,
        versions: vec![("v1", 3)],
        server_env: vec![("RESPONSE_DELAY", RESPONSE_DELAY)],
        routes: None,
        phases: Vec::new(),
    }
}

/// The scenario of that name, or an error listing the known ones.
pub fn get(name: &str) -> anyhow::Result<Scenario> {
    all().into_iter().find(|s| s.name == name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown scenario {name:?}: expected one of {}",
            NAMES.join(", ")
        )
    })
}

pub fn all() -> Vec<Scenario> {
    use Mesh::*;
    let progression = |mesh: Mesh, steps: &[(u32, u32)]| -> Vec<Phase> {
        steps
            .iter()
            .map(|&(v1, v2)| Phase {
                name: Box::leak(format!("{v1}/{v2}").into_boxed_str()),
                mesh,
                client: Client::default(),
                actions: vec![weights(v1, v2)],
                measure: SHORT,
                under_load: false,
                retries: Retries::IstioDefault,
                exposure: None,
            })
            .collect()
    };
    vec![
        Scenario {
            phases: vec![phase("3 pods behind a ClusterIP", Off, vec![])],
            ..base(
                "clusterip",
                "A ClusterIP Service pins a gRPC client to one pod",
                "kube-proxy balances connections, not requests. The client resolves one virtual IP, opens one \
                 HTTP/2 connection, and every RPC rides it to the same pod.",
            )
        },
        Scenario {
            exposure: Exposure::Headless,
            phases: vec![
                phase("3 pods, headless", Off, vec![]),
                phase("scaled 3 -> 5", Off, vec![scale("v1", 5)]),
            ],
            ..base(
                "headless",
                "A headless Service balances, until you scale up",
                "With every pod address in DNS the client balances per RPC over its connections. But it resolves \
                 only when it connects: the two new pods get nothing.",
            )
        },
        Scenario {
            exposure: Exposure::Headless,
            server_env: vec![
                ("RESPONSE_DELAY", RESPONSE_DELAY),
                ("MAX_CONNECTION_AGE", LOCAL_MAX_AGE),
                ("MAX_CONNECTION_AGE_GRACE", LOCAL_MAX_AGE_GRACE),
            ],
            phases: vec![
                phase("3 pods, headless", Off, vec![]),
                Phase {
                    measure: Duration::from_secs(1),
                    ..phase("just scaled 3 -> 5", Off, vec![scale("v1", 5)])
                },
                Phase {
                    // Long enough for the cluster's age too: 10s with up to 10% jitter, counted from
                    // the client's start (the twin's 5s connections turn over twice meanwhile).
                    measure: Duration::from_secs(12),
                    ..phase("connections reach their max age", Off, vec![])
                },
                phase("after max connection age", Off, vec![]),
            ],
            ..base(
                "maxage",
                "Server max connection age: a scale-up is eventually noticed",
                "The server sends GOAWAY when a connection reaches its max age, the client resolves again and connects \
                 to the new pods. Balanced again, after up to one max age: 5s (grace 5s) on the local twin, and the \
                 seed's 10s (grace 20s) on the cluster.",
            )
        },
        Scenario {
            phases: vec![
                phase("1 proxy, 3 pods", Proxy(1), vec![]),
                phase("pods scaled 3 -> 5", Proxy(1), vec![scale("v1", 5)]),
                phase(
                    "proxies scaled 1 -> 3",
                    Proxy(3),
                    vec![Action::ScaleProxies(3)],
                ),
            ],
            ..base(
                "server-proxy",
                "An Envoy in front of the servers balances per RPC, but the proxies themselves are pinned",
                "The proxy balances every RPC and sees new pods at once. Scale the proxies, though, and the client keeps \
                 its connection to the first one: the new proxies idle, the old problem one hop earlier.",
            )
        },
        Scenario {
            phases: vec![
                phase("sidecar, 3 pods", Sidecar, vec![]),
                phase("scaled 3 -> 5", Sidecar, vec![scale("v1", 5)]),
            ],
            ..base(
                "sidecar",
                "An Envoy sidecar beside the client balances per RPC",
                "The client talks HTTP/2 to its own sidecar; the sidecar keeps connections to every pod, balances each \
                 RPC, and learns about new pods from the control plane at once.",
            )
        },
        Scenario {
            exposure: Exposure::Headless,
            phases: vec![
                Phase {
                    client: pick_first(),
                    ..phase("headless Service, sidecar, pick_first", Sidecar, vec![])
                },
                Phase {
                    client: pick_first(),
                    exposure: Some(Exposure::ClusterIp),
                    ..phase("ClusterIP Service, sidecar, pick_first", Sidecar, vec![])
                },
            ],
            ..base(
                "headless-sidecar",
                "A headless Service with a sidecar: the client still decides",
                "Istio gives a headless Service a passthrough (ORIGINAL_DST) cluster: the sidecar forwards each request \
                 to the pod address the client picked and balances nothing, so a pick_first client stays pinned to \
                 one pod, sidecar or not. Through the ClusterIP Service the sidecar balances every RPC over the \
                 Service's endpoints, whatever the client's own policy.",
            )
        },
        Scenario {
            versions: vec![("v1", 2), ("v2", 2)],
            routes: Some("httproute.yaml"),
            phases: progression(StaticSidecar, &[(100, 0), (99, 1), (50, 50), (0, 100)]),
            ..base(
                "canary",
                "Canary weights in a static sidecar configuration",
                "Weights split traffic per RPC between versions. With a static configuration every step means \
                 restarting the sidecar, as the seed restarted its pods.",
            )
        },
        Scenario {
            versions: vec![("v1", 2), ("v2", 2)],
            routes: Some("httproute.yaml"),
            phases: progression(Sidecar, &[(100, 0), (99, 1), (50, 50), (0, 100)]),
            ..base(
                "xds",
                "The same canary, pushed live over xDS",
                "Our control plane pushes each weight to the running sidecar: nothing restarts, no connection drops.",
            )
        },
        Scenario {
            versions: vec![("v1", 2), ("v2", 2)],
            routes: Some("httproute.yaml"),
            phases: progression(Sidecar, &[(100, 0), (95, 5), (50, 50), (0, 100)]),
            ..base(
                "httproute",
                "Gateway API HTTPRoute weights on a client-side sidecar (the seed's Istio demo)",
                "An HTTPRoute whose parent is the Service `server` splits that Service's traffic between `server-v1` and \
                 `server-v2`; only the client has a sidecar, as in the seed.",
            )
        },
        Scenario {
            versions: vec![("v1", 2), ("v2", 2)],
            routes: Some("grpcroute.yaml"),
            phases: vec![
                phase("SayHello", Sidecar, vec![]),
                Phase {
                    client: Client {
                        method: "SayHelloAgain",
                        ..Client::default()
                    },
                    ..phase("SayHelloAgain", Sidecar, vec![])
                },
                Phase {
                    client: Client {
                        headers: vec![("x-canary", "true")],
                        ..Client::default()
                    },
                    ..phase("SayHello with x-canary: true", Sidecar, vec![])
                },
                phase("SayHello, weights 90/10", Sidecar, vec![weights(90, 10)]),
                phase("SayHello, weights 50/50", Sidecar, vec![weights(50, 50)]),
            ],
            ..base(
                "grpcroute",
                "Gateway API GRPCRoute: route by method and header, then split by weight",
                "A GRPCRoute matches gRPC services, methods and headers: SayHello goes to v1, SayHelloAgain and \
                 canary-flagged calls to v2. Weights then shift SayHello step by step.",
            )
        },
        Scenario {
            phases: vec![
                phase("mesh off (ClusterIP)", Off, vec![]),
                phase("mesh on (sidecar)", Sidecar, vec![]),
            ],
            ..base(
                "compare",
                "The same workload, mesh off and mesh on",
                "Same client, same pods, same Service. Without a mesh the ClusterIP pins the client to one pod; with \
                 the sidecar every pod gets its share. The latency columns show what the extra hop costs.",
            )
        },
        Scenario {
            exposure: Exposure::Headless,
            phases: vec![
                under_load(
                    "mesh off: rolling restart",
                    Off,
                    Action::RollingRestart { version: "v1" },
                ),
                meshed_under_load(
                    "mesh on: rolling restart",
                    Action::RollingRestart { version: "v1" },
                ),
            ],
            ..base(
                "rolling-restart",
                "A rolling restart under load: a client on its own (headless Service), then with its sidecar (ClusterIP)",
                "Each pod is replaced gracefully: a new one joins, then an old one gets SIGTERM as it leaves the \
                 endpoints, and drains (GOAWAY, in-flight RPCs finish). Nothing is lost either way: the client on its \
                 own resolves again on GOAWAY and resends what a closing connection refused; the sidecar, until \
                 istiod's push tells it (after a 100ms debounce), retries a refused connection on another pod.",
            )
        },
        Scenario {
            exposure: Exposure::Headless,
            phases: vec![
                under_load(
                    "mesh off: a pod killed",
                    Off,
                    Action::Kill { version: "v1" },
                ),
                meshed_under_load("mesh on: a pod killed", Action::Kill { version: "v1" }),
                Phase {
                    retries: Retries::WithReset,
                    ..meshed_under_load(
                        "mesh on, retry on reset: a pod killed",
                        Action::Kill { version: "v1" },
                    )
                },
            ],
            ..base(
                "kill",
                "A pod killed under load (SIGKILL): mesh off, mesh on, mesh on with retries on reset",
                "A killed pod drains nothing: the RPCs in flight on it are reset, and its container starts again in \
                 place (same pod, same address; at once the first time, after the kubelet's back-off of 10s, then 20s, \
                 when it is killed again). The client on its own (headless Service) sees them fail. Istio's default retry policy (connect-failure, refused-stream, unavailable, cancelled, \
                 retriable-status-codes) retries what never reached a server, not a reset after the request was \
                 sent: with the sidecar (ClusterIP Service) the RPCs in flight on the killed pod fail too. Add `reset` \
                 to the mesh's default retry policy (meshConfig.defaultHttpRetryPolicy; safe for idempotent RPCs only) \
                 and the sidecar sends them again to another pod: the kill loses nothing.",
            )
        },
        Scenario {
            exposure: Exposure::Headless,
            versions: vec![("v1", 5)],
            phases: vec![
                under_load("mesh off: 5 -> 2 pods", Off, scale("v1", 2)),
                Phase {
                    actions: vec![scale("v1", 5), scale("v1", 2)],
                    ..meshed_under_load("mesh on: 5 -> 2 pods", scale("v1", 2))
                },
            ],
            ..base(
                "scale-down",
                "A scale-down under load, 5 -> 2 pods: a client on its own (headless Service), then with its sidecar (ClusterIP)",
                "Removed pods get SIGTERM as they leave the endpoints, and drain: nothing in flight is lost. The \
                 client on its own hears GOAWAY and resolves again, and DNS already lacks them. The sidecar hears of it \
                 when istiod pushes, after a 100ms debounce: until then it can send new RPCs to pods that refuse \
                 connections, and Istio retries a refused connection only twice, so with 3 of 5 pods leaving at once a \
                 few RPCs can fail (the usual cure: a preStop sleep, so that a pod stops accepting only once the mesh \
                 knows).",
            )
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_scenario_is_defined_once_in_the_seed_s_order() {
        let names: Vec<_> = all().iter().map(|s| s.name).collect();
        assert_eq!(names, NAMES);
    }

    #[test]
    fn an_unknown_scenario_lists_the_known_ones() {
        let err = get("nope").unwrap_err().to_string();
        assert!(
            err.starts_with(r#"unknown scenario "nope": expected one of clusterip, headless"#),
            "{err}"
        );
    }

    #[test]
    fn weight_steps_need_a_route_file() {
        for s in all() {
            let steps_weights = s
                .phases
                .iter()
                .flat_map(|p| &p.actions)
                .any(|a| matches!(a, Action::Weights(_)));
            assert!(
                !steps_weights || s.routes.is_some(),
                "{} sets weights without routes",
                s.name
            );
        }
    }

    /// The exposure in force during a phase.
    fn exposure(s: &Scenario, p: &Phase) -> Exposure {
        p.exposure.unwrap_or(s.exposure)
    }

    #[test]
    fn fault_scenarios_measure_a_client_on_its_own_headless_and_a_meshed_one_through_the_clusterip()
    {
        for name in ["rolling-restart", "kill", "scale-down"] {
            let s = get(name).unwrap();
            assert!(s.phases.iter().all(|p| p.under_load), "{name}");
            for p in &s.phases {
                let expected = if p.mesh.is_on() {
                    Exposure::ClusterIp
                } else {
                    Exposure::Headless
                };
                assert_eq!(exposure(&s, p), expected, "{name}: {}", p.name);
            }
            assert!(s.phases.iter().any(|p| p.mesh == Mesh::Off), "{name}");
            assert!(s.phases.iter().any(|p| p.mesh == Mesh::Sidecar), "{name}");
        }
    }

    #[test]
    fn kill_ends_with_a_meshed_phase_that_retries_on_reset() {
        let s = get("kill").unwrap();
        let retries: Vec<_> = s.phases.iter().map(|p| (p.mesh, p.retries)).collect();
        assert_eq!(
            retries,
            [
                (Mesh::Off, Retries::IstioDefault),
                (Mesh::Sidecar, Retries::IstioDefault),
                (Mesh::Sidecar, Retries::WithReset),
            ]
        );
        assert!(s.phases[2].name.contains("retry"), "{}", s.phases[2].name);
        assert!(s.lesson.contains("reset"), "{}", s.lesson);
        // Every other scenario keeps Istio's default.
        for other in all().iter().filter(|o| o.name != "kill") {
            assert!(
                other
                    .phases
                    .iter()
                    .all(|p| p.retries == Retries::IstioDefault),
                "{}",
                other.name
            );
        }
    }

    #[test]
    fn headless_sidecar_runs_one_pick_first_client_headless_then_through_the_clusterip() {
        let s = get("headless-sidecar").unwrap();
        let phases: Vec<_> = s
            .phases
            .iter()
            .map(|p| (p.mesh, exposure(&s, p), p.client.lb))
            .collect();
        assert_eq!(
            phases,
            [
                (Mesh::Sidecar, Exposure::Headless, "pick_first"),
                (Mesh::Sidecar, Exposure::ClusterIp, "pick_first"),
            ]
        );
        assert!(s.lesson.contains("passthrough"), "{}", s.lesson);
    }

    #[test]
    fn the_maxage_lesson_names_the_ages_each_backend_uses() {
        let s = get("maxage").unwrap();
        let local: std::collections::BTreeMap<_, _> = s.server_env.iter().copied().collect();
        let local = format!(
            "{} (grace {}) on the local twin",
            local["MAX_CONNECTION_AGE"], local["MAX_CONNECTION_AGE_GRACE"]
        );
        assert!(s.lesson.contains(&local), "{local:?}: {}", s.lesson);
        // The cluster's ages, as its server Deployment really carries them.
        let images = crate::cluster::objects::Images {
            server: "server".into(),
            client: "client".into(),
            envoy: "envoy".into(),
        };
        let objects = crate::cluster::objects::base(&s, &images).unwrap();
        let objects = serde_json::to_value(&objects).unwrap();
        /// The value of the first `{"name": name, "value": ...}` entry anywhere in `v`.
        fn find<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a str> {
            match v {
                serde_json::Value::Object(o)
                    if o.get("name").and_then(|n| n.as_str()) == Some(name) =>
                {
                    o.get("value").and_then(|v| v.as_str())
                }
                serde_json::Value::Object(o) => o.values().find_map(|v| find(v, name)),
                serde_json::Value::Array(a) => a.iter().find_map(|v| find(v, name)),
                _ => None,
            }
        }
        let env = |name: &str| {
            find(&objects, name)
                .unwrap_or_else(|| panic!("{name} is not in the server Deployment: {objects}"))
                .to_owned()
        };
        let cluster = format!(
            "{} (grace {}) on the cluster",
            env("MAX_CONNECTION_AGE"),
            env("MAX_CONNECTION_AGE_GRACE")
        );
        assert!(s.lesson.contains(&cluster), "{cluster:?}: {}", s.lesson);
    }

    #[test]
    fn every_route_file_a_scenario_names_exists() {
        for s in all() {
            if let Some(file) = s.routes {
                let path = crate::project::root().join("gateway").join(file);
                assert!(path.exists(), "{}: {}", s.name, path.display());
            }
        }
    }
}
