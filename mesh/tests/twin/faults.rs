//! Pods that go away under load: a kill, a scale-down, a rolling restart, and when the sidecar
//! learns of it (istiod's debounce, or the raw push timing).

use std::{collections::BTreeMap, time::Duration};

use mesh::twin::{ServiceMode, Twin};

use super::support::{Client, DEADLINE, assert_balanced, everything_so_far, meshed, rt};

/// The endpoints of a cluster in the sidecar's configuration (as pushed by the control plane).
fn endpoints(cp: &mesh::xds::ControlPlane, cluster: &str) -> Vec<std::net::SocketAddr> {
    use envoy_types::pb::envoy::config::{
        core::v3::{address, socket_address::PortSpecifier},
        endpoint::v3::lb_endpoint,
    };
    let snapshot = cp.snapshot("sidecar");
    let mut out = Vec::new();
    for cla in snapshot
        .resources
        .endpoints
        .iter()
        .filter(|e| e.cluster_name == cluster)
    {
        for lb in cla.endpoints.iter().flat_map(|l| &l.lb_endpoints) {
            let Some(lb_endpoint::HostIdentifier::Endpoint(e)) = &lb.host_identifier else {
                continue;
            };
            let Some(address::Address::SocketAddress(sa)) =
                e.address.as_ref().and_then(|a| a.address.as_ref())
            else {
                continue;
            };
            let port = match sa.port_specifier {
                Some(PortSpecifier::PortValue(p)) => u16::try_from(p).unwrap(),
                _ => continue,
            };
            out.push(std::net::SocketAddr::new(sa.address.parse().unwrap(), port));
        }
    }
    out
}

/// Retries the sidecar's circuit breakers refused: Envoy's default allows 3 at once, Istio sets
/// the maximum (the translation's business); each refused retry is a failed RPC.
fn retry_overflow(rt: &tokio::runtime::Runtime, twin: &Twin) -> u64 {
    rt.block_on(twin.sidecar().unwrap().stats())
        .unwrap()
        .iter()
        .filter(|(k, _)| {
            k.starts_with("cluster.outbound|") && k.ends_with(".upstream_rq_retry_overflow")
        })
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn a_killed_pod_restarts_in_place_and_rejoins_once_ready() {
    let rt = rt();
    let mut twin = meshed(&rt, "kill", 3, ServiceMode::ClusterIp);
    let before: BTreeMap<String, (std::net::SocketAddr, Option<u32>)> = twin
        .pods()
        .map(|p| (p.name.clone(), (p.addr, p.pid())))
        .collect();
    let cp = twin.control_plane().clone();
    let client = Client::start(&twin.target(), &[]);
    client.measure(2);
    let victim = before["server-v1-0"].0;
    let server = mesh::translate::cluster_name("server", "default", 50051);
    let in_sidecar = move || endpoints(&cp, &server).contains(&victim);
    assert!(in_sidecar(), "the pod is an endpoint before the kill");
    let started = std::time::Instant::now();
    let (killed, left) = rt.block_on(async {
        let watch = async {
            loop {
                if !in_sidecar() {
                    return Some(started.elapsed());
                }
                if started.elapsed() > DEADLINE {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::join!(twin.kill("v1"), watch)
    });
    let killed = killed.unwrap();
    assert_eq!(killed, "server-v1-0", "the oldest pod");
    let left = left.expect("the endpoint left the sidecar while the pod was down");
    assert!(
        left >= Duration::from_millis(100),
        "not before istiod's debounce: {left:?}"
    );
    assert!(in_sidecar(), "the endpoint is back once the pod is ready");
    let after: Vec<_> = twin.pods().filter(|p| p.name == killed).collect();
    assert_eq!(after.len(), 1, "the same pod, not a new one");
    assert_eq!(after[0].addr, before[&killed].0, "same address");
    assert_eq!(after[0].restarts, 1);
    assert_ne!(after[0].pid(), before[&killed].1, "a new process");
    assert_eq!(twin.pods().count(), 3);
    let through = everything_so_far(&client);
    let overflow = retry_overflow(&rt, &twin);
    assert!(
        through.errors <= 10 + overflow,
        "at most the 10 RPCs in flight on the killed pod fail; the retries cover the connect \
         failures until its endpoint leaves: {through:?}, {overflow} retries overflowed"
    );
    client.drain();
    let counts = client.measure(5);
    assert_eq!(counts.errors, 0, "{counts:?}");
    assert!(
        counts.by_server.get(&killed).is_some_and(|n| *n > 0),
        "it serves again: {counts:?}"
    );
    drop(client);
    rt.block_on(twin.shutdown());
}

#[test]
fn a_scaled_away_pod_gets_sigterm_before_istiod_pushes_its_removal() {
    let rt = rt();
    let mut twin = meshed(&rt, "scale-down-timing", 3, ServiceMode::ClusterIp);
    let removed = twin.pods().last().unwrap().addr;
    let cp = twin.control_plane().clone();
    let before = cp.snapshot("sidecar").version;
    let started = std::time::Instant::now();
    let (scaled, at_push) = rt.block_on(async {
        let watch = async {
            loop {
                if cp.snapshot("sidecar").version > before {
                    let refused = tokio::net::TcpStream::connect(removed).await.is_err();
                    return Some((started.elapsed(), refused));
                }
                if started.elapsed() > DEADLINE {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        tokio::join!(twin.scale("v1", 2), watch)
    });
    scaled.unwrap();
    let (pushed_after, refused) = at_push.expect("the removal was pushed");
    assert!(
        pushed_after >= Duration::from_millis(100),
        "pushed {pushed_after:?} after the deletion, within istiod's debounce"
    );
    assert!(
        refused,
        "when the removal was pushed, the pod had already stopped accepting connections"
    );
    rt.block_on(twin.shutdown());
}

#[test]
fn the_raw_push_timing_skips_istiod_s_debounce() {
    let rt = rt();
    let mut twin = meshed(&rt, "raw-push", 2, ServiceMode::ClusterIp);
    twin.set_push_timing(mesh::twin::PushTiming::Immediate);
    let cp = twin.control_plane().clone();
    let before = cp.snapshot("sidecar").version;
    let started = std::time::Instant::now();
    let (scaled, pushed) = rt.block_on(async {
        let watch = async {
            loop {
                if cp.snapshot("sidecar").version > before {
                    return Some(started.elapsed());
                }
                if started.elapsed() > DEADLINE {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::join!(twin.scale("v1", 1), watch)
    });
    scaled.unwrap();
    let pushed = pushed.expect("pushed");
    assert!(pushed < Duration::from_millis(100), "{pushed:?}");
    rt.block_on(twin.shutdown());
}

#[test]
fn a_rolling_restart_behind_a_sidecar_fails_only_retries_the_circuit_breaker_refuses() {
    let rt = rt();
    let mut twin = meshed(&rt, "rolling", 3, ServiceMode::ClusterIp);
    let client = Client::start(&twin.target(), &[]);
    client.drain();
    rt.block_on(twin.rolling_restart("v1")).unwrap();
    let through = everything_so_far(&client);
    let overflow = retry_overflow(&rt, &twin);
    assert!(
        through.errors <= overflow,
        "the old pods drain while their endpoints are still pushed: new connections to them are \
         refused and retried elsewhere, nothing else fails: {through:?}, {overflow} retries overflowed"
    );
    let names: Vec<String> = twin.pods().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["server-v1-3", "server-v1-4", "server-v1-5"]);
    client.drain();
    assert_balanced(&client.measure(5), 3);
    drop(client);
    rt.block_on(twin.shutdown());
}
