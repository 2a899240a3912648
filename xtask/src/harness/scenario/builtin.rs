//! The built-in scenarios, the seed's demos, in the seed's order: what `cargo xtask demo <name>`
//! runs on the twin or on a cluster.

use std::time::Duration;

use super::{Action, Client, Exposure, Mesh, Phase, Retries, RouteSource, Scenario};

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

/// Every built-in scenario, in the seed's order.
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
            routes: Some(RouteSource::Builtin("httproute.yaml")),
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
            routes: Some(RouteSource::Builtin("httproute.yaml")),
            phases: progression(Sidecar, &[(100, 0), (99, 1), (50, 50), (0, 100)]),
            ..base(
                "xds",
                "The same canary, pushed live over xDS",
                "Our control plane pushes each weight to the running sidecar: nothing restarts, no connection drops.",
            )
        },
        Scenario {
            versions: vec![("v1", 2), ("v2", 2)],
            routes: Some(RouteSource::Builtin("httproute.yaml")),
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
            routes: Some(RouteSource::Builtin("grpcroute.yaml")),
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
            versions: vec![("v1", 2), ("v2", 2)],
            routes: Some(RouteSource::Builtin("grpcroute.yaml")),
            phases: vec![
                phase("ztunnel only (L4)", Ztunnel, vec![]),
                phase("waypoint: SayHello to v1", Waypoint, vec![]),
                phase(
                    "waypoint: SayHello, weights 90/10",
                    Waypoint,
                    vec![weights(90, 10)],
                ),
                phase(
                    "waypoint: SayHello, weights 50/50",
                    Waypoint,
                    vec![weights(50, 50)],
                ),
                phase("sidecar: SayHello, weights 50/50", Sidecar, vec![]),
            ],
            ..base(
                "ambient",
                "Istio ambient mode: ztunnel alone pins gRPC, a waypoint balances per RPC and applies the routes",
                "ztunnel works at L4: it picks a pod when the client's connection opens and every RPC on that \
                 HTTP/2 connection follows, so the client is pinned as behind a bare ClusterIP and the GRPCRoute is \
                 ignored. Attach a waypoint to the Service (istio.io/use-waypoint) and an Envoy balances each RPC \
                 and applies the routes, as the sidecar does. For a gRPC Service in ambient mode: add a waypoint, or \
                 balance in the client (a headless Service and round_robin); the waypoint's price is one more hop, \
                 in the latency columns.",
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
