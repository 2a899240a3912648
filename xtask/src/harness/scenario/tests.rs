//! The built-in scenarios hold what their lessons and the demos rely on.

use super::*;

#[test]
fn every_demo_is_defined_once_in_the_seed_s_order() {
    assert_eq!(
        names(),
        [
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
            "ambient",
            "compare",
            "rolling-restart",
            "kill",
            "scale-down",
        ]
    );
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
fn fault_scenarios_measure_a_client_on_its_own_headless_and_a_meshed_one_through_the_clusterip() {
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
fn every_route_file_a_scenario_names_loads() {
    for s in all() {
        if let Some(source) = &s.routes {
            assert!(
                matches!(source, RouteSource::Builtin(_)),
                "{}: a demo's routes are a file under gateway/",
                s.name
            );
            let routes = source.load().unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert!(
                !routes.is_empty(),
                "{}: {}",
                s.name,
                source.path().display()
            );
        }
    }
}

#[test]
fn a_duration_for_each_phase_replaces_every_phase_s_measuring_time_and_nothing_else() {
    let kill = get("kill").unwrap();
    let measured = kill
        .clone()
        .measuring_each_phase_for(Duration::from_secs(7));
    assert_eq!(measured.phases.len(), kill.phases.len());
    for (p, before) in measured.phases.iter().zip(&kill.phases) {
        assert_eq!(p.measure, Duration::from_secs(7), "{}", p.name);
        assert_eq!(
            (p.name, p.mesh, p.under_load, &p.actions),
            (before.name, before.mesh, before.under_load, &before.actions)
        );
    }
}

#[test]
fn ambient_names_each_phase_after_what_carries_it_and_shows_all_three() {
    let s = get("ambient").unwrap();
    for p in &s.phases {
        let word = match p.mesh {
            Mesh::Ztunnel => "ztunnel",
            Mesh::Waypoint => "waypoint",
            Mesh::Sidecar => "sidecar",
            other => panic!("{}: unexpected {other:?}", p.name),
        };
        assert!(p.name.starts_with(word), "{}: {:?}", p.name, p.mesh);
    }
    for mesh in [Mesh::Ztunnel, Mesh::Waypoint, Mesh::Sidecar] {
        assert!(s.phases.iter().any(|p| p.mesh == mesh), "{mesh:?}");
    }
    assert_eq!(s.phases[0].mesh, Mesh::Ztunnel, "pinned first");
    let stepped: Vec<_> = s
        .phases
        .iter()
        .filter(|p| p.mesh == Mesh::Waypoint)
        .flat_map(|p| &p.actions)
        .collect();
    assert!(
        stepped.len() >= 2,
        "the weights are stepped through the waypoint"
    );
    assert!(
        matches!(s.routes, Some(RouteSource::Builtin("grpcroute.yaml"))),
        "the same route file as the sidecar demo"
    );
}
