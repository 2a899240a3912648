//! The objects of every scenario: their order, labels, namespaces, security, the client's target,
//! the servers' probes, the Envoys' configurations, and the golden manifests.

use serde_json::Value;

use super::{proxies::client_envoy_config, *};
use crate::harness::scenario::{self, Action};

fn images() -> Images {
    Images {
        server: "registry.test/hello-server:golden".into(),
        client: "registry.test/hello-client:golden".into(),
        envoy: "registry.test/envoy:golden".into(),
    }
}

fn get(name: &str) -> Scenario {
    scenario::get(name).unwrap()
}

fn json(object: &DynamicObject) -> Value {
    serde_json::to_value(object).unwrap()
}

fn find<'a>(objects: &'a [DynamicObject], kind: &str, name: &str) -> &'a DynamicObject {
    objects
        .iter()
        .find(|o| {
            o.types.as_ref().is_some_and(|t| t.kind == kind)
                && o.metadata.name.as_deref() == Some(name)
        })
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn kind(object: &DynamicObject) -> &str {
    object.types.as_ref().map_or("", |t| t.kind.as_str())
}

fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    let spec = &deployment["spec"]["template"]["spec"];
    spec["containers"]
        .as_array()
        .into_iter()
        .chain(spec["initContainers"].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// Every client each scenario runs, one per phase.
fn clients(scenario: &Scenario) -> Vec<DynamicObject> {
    scenario
        .phases
        .iter()
        .map(|p| client(scenario, &p.client, p.mesh, &images()))
        .collect()
}

fn everything(scenario: &Scenario) -> Vec<DynamicObject> {
    let mut objects = base(scenario, &images()).unwrap();
    objects.extend(clients(scenario));
    if has_static_sidecar(scenario) {
        objects.extend(static_sidecar(scenario, &Client::default(), &images(), None).unwrap());
    }
    objects
}

#[test]
fn every_scenario_renders_in_apply_order() {
    for s in scenario::all() {
        let objects = base(&s, &images()).unwrap_or_else(|e| panic!("{}: {e:#}", s.name));
        let kinds: Vec<&str> = objects.iter().map(kind).collect();
        assert_eq!(kinds[0], "Namespace", "{}", s.name);
        let last = |k: &str| kinds.iter().rposition(|x| *x == k);
        let first = |k: &str| kinds.iter().position(|x| *x == k);
        assert!(
            last("ServiceAccount") < first("Deployment"),
            "{}: {kinds:?}",
            s.name
        );
        let first_service = first("Service").unwrap();
        assert!(
            objects[..first_service]
                .iter()
                .filter(|o| kind(o) == "Deployment")
                .all(|o| o.metadata.name.as_deref().unwrap().starts_with("server-v")),
            "{}: {kinds:?}",
            s.name
        );
        for (version, replicas) in &s.versions {
            let d = json(find(&objects, "Deployment", &format!("server-{version}")));
            assert_eq!(d["spec"]["replicas"], *replicas, "{}", s.name);
        }
        assert_eq!(clients(&s).len(), s.phases.len());
    }
}

#[test]
fn the_mesh_on_client_and_only_it_asks_istio_for_a_sidecar() {
    let s = get("compare");
    for mesh in [
        Mesh::Off,
        Mesh::Sidecar,
        Mesh::StaticSidecar,
        Mesh::Proxy(2),
    ] {
        let d = json(&client(&s, &Client::default(), mesh, &images()));
        let label = &d["spec"]["template"]["metadata"]["labels"][INJECT_LABEL];
        if mesh == Mesh::Sidecar {
            assert_eq!(label, "true");
        } else {
            assert!(label.is_null(), "{mesh:?}: {label}");
        }
        let name = if mesh == Mesh::Off {
            "client-mesh-off"
        } else {
            "client-mesh-on"
        };
        assert_eq!(d["metadata"]["name"], name);
    }
    for s in scenario::all() {
        for o in base(&s, &images()).unwrap() {
            let text = serde_json::to_string(&o).unwrap();
            assert!(!text.contains(INJECT_LABEL), "{}: {text}", s.name);
            assert!(!text.contains("istio-injection"), "{}: {text}", s.name);
        }
    }
}

#[test]
fn the_client_runs_the_phase_workload_against_its_target() {
    let s = get("grpcroute");
    let workload = Client {
        method: "SayHelloAgain",
        headers: vec![("x-canary", "true")],
        concurrency: 7,
        ..Client::default()
    };
    let d = json(&client(&s, &workload, Mesh::Sidecar, &images()));
    let c = container(&d, "hello-client");
    assert_eq!(
        c["args"],
        serde_json::json!([
            "dns:///server:50051",
            "--output",
            "json",
            "--interval",
            "1s",
            "--lb",
            "round_robin",
            "--method",
            "SayHelloAgain",
            "--concurrency",
            "7",
            "--header",
            "x-canary=true"
        ])
    );
    assert_eq!(c["image"], "registry.test/hello-client:golden");
    assert_eq!(c["env"][0]["name"], "POD_NAME");
    assert_eq!(
        c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(d["spec"]["replicas"], 1);
    let off = json(&client(&s, &workload, Mesh::Off, &images()));
    assert_eq!(
        container(&off, "hello-client")["args"][0],
        "dns:///server:50051"
    );
}

#[test]
fn the_server_names_its_pod_and_is_ready_when_its_grpc_health_says_so() {
    let s = get("canary");
    let objects = base(&s, &images()).unwrap();
    for version in ["v1", "v2"] {
        let d = json(find(&objects, "Deployment", &format!("server-{version}")));
        let c = container(&d, "hello-server");
        assert_eq!(c["image"], "registry.test/hello-server:golden");
        let env = c["env"].as_array().unwrap();
        let var = |name: &str| env.iter().find(|e| e["name"] == name).unwrap();
        assert_eq!(
            var("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.name"
        );
        assert_eq!(var("VERSION")["value"], version);
        assert_eq!(var("RESPONSE_DELAY")["value"], "5ms");
        assert_eq!(c["readinessProbe"]["grpc"]["port"], 50051);
        assert_eq!(
            c["ports"],
            serde_json::json!([
                { "name": "grpc", "containerPort": 50051 },
                { "name": "metrics", "containerPort": 9090 }
            ])
        );
        let pod = &d["spec"]["template"];
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["metadata"]["labels"]["app"], "server");
        assert_eq!(pod["metadata"]["labels"]["version"], version);
    }
}

#[test]
fn every_container_runs_unprivileged_on_a_read_only_root() {
    for s in scenario::all() {
        for o in everything(&s) {
            if kind(&o) != "Deployment" {
                continue;
            }
            let d = json(&o);
            let spec = &d["spec"]["template"]["spec"];
            for c in spec["containers"]
                .as_array()
                .into_iter()
                .chain(spec["initContainers"].as_array())
                .flatten()
            {
                let sc = &c["securityContext"];
                assert_eq!(sc["runAsNonRoot"], true, "{}: {c}", s.name);
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{}: {c}", s.name);
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{}: {c}", s.name);
                assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
                assert!(c["resources"]["requests"]["memory"].is_string());
            }
        }
    }
}

#[test]
fn every_service_is_grpc_on_port_50051() {
    for s in scenario::all() {
        for o in base(&s, &images()).unwrap() {
            if kind(&o) != "Service" {
                continue;
            }
            let d = json(&o);
            let ports = d["spec"]["ports"].as_array().unwrap();
            assert_eq!(ports.len(), 1);
            assert_eq!(ports[0]["name"], "grpc", "{}: {d}", s.name);
            assert_eq!(ports[0]["port"], 50051);
            assert_eq!(ports[0]["appProtocol"], "grpc", "{}: {d}", s.name);
        }
        let objects = base(&s, &images()).unwrap();
        for (version, _) in &s.versions {
            let d = json(find(&objects, "Service", &format!("server-{version}")));
            assert_eq!(
                d["spec"]["selector"],
                serde_json::json!({ "app": "server", "version": version })
            );
        }
    }
}

#[test]
fn headless_scenarios_make_server_headless_and_the_others_do_not() {
    for s in scenario::all() {
        let objects = base(&s, &images()).unwrap();
        let server = json(find(&objects, "Service", "server"));
        let headless = server["spec"]["clusterIP"] == "None";
        assert_eq!(headless, s.exposure == Exposure::Headless, "{}", s.name);
    }
    assert_eq!(get("headless").exposure, Exposure::Headless);
    assert_eq!(get("maxage").exposure, Exposure::Headless);
}

#[test]
fn in_proxy_mode_server_points_at_the_proxies_which_resolve_every_pod() {
    let s = get("server-proxy");
    let objects = base(&s, &images()).unwrap();
    let server = json(find(&objects, "Service", "server"));
    assert_eq!(
        server["spec"]["selector"],
        serde_json::json!({ "app": "proxy" })
    );
    assert!(server["spec"]["clusterIP"].is_null());
    let pods = json(find(&objects, "Service", "server-pods"));
    assert_eq!(
        pods["spec"]["selector"],
        serde_json::json!({ "app": "server" })
    );
    assert_eq!(pods["spec"]["clusterIP"], "None");
    let proxy = json(find(&objects, "Deployment", "proxy"));
    assert_eq!(proxy["spec"]["replicas"], 1);
    assert_eq!(
        proxy["spec"]["template"]["metadata"]["labels"]["app"],
        "proxy"
    );
    let envoy = container(&proxy, "envoy");
    assert_eq!(envoy["image"], "registry.test/envoy:golden");
    assert_eq!(envoy["ports"][0]["containerPort"], 50051);
    let config = json(find(&objects, "ConfigMap", "proxy-envoy"));
    let bootstrap: Value =
        serde_json::from_str(config["data"]["envoy.json"].as_str().unwrap()).unwrap();
    let cluster = &bootstrap["static_resources"]["clusters"][0];
    assert_eq!(cluster["type"], "STRICT_DNS");
    assert_eq!(
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
            ["address"],
        "server-pods.gml-server-proxy.svc.cluster.local"
    );
    assert!(
        objects
            .iter()
            .all(|o| o.metadata.name.as_deref() != Some("client-envoy"))
    );
    // Without proxies, `server` selects the servers and nothing is called proxy.
    let objects = base(&get("clusterip"), &images()).unwrap();
    let server = json(find(&objects, "Service", "server"));
    assert_eq!(
        server["spec"]["selector"],
        serde_json::json!({ "app": "server" })
    );
    assert!(
        objects
            .iter()
            .all(|o| !o.metadata.name.as_deref().unwrap().contains("proxy"))
    );
}

#[test]
fn the_static_sidecar_client_talks_to_its_envoy_which_splits_by_the_route_weights() {
    let s = get("canary");
    let objects = base(&s, &images()).unwrap();
    for version in ["v1", "v2"] {
        let d = json(find(&objects, "Service", &format!("server-{version}-pods")));
        assert_eq!(d["spec"]["clusterIP"], "None");
    }
    let config = json(find(&objects, "ConfigMap", "client-envoy"));
    let bootstrap: Value =
        serde_json::from_str(config["data"]["envoy.json"].as_str().unwrap()).unwrap();
    let listener = &bootstrap["static_resources"]["listeners"][0];
    assert_eq!(
        listener["address"]["socket_address"],
        serde_json::json!({ "address": "127.0.0.1", "port_value": 15001 })
    );
    let route = &listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]
        [0]["routes"][0]["route"];
    // The route file's weights: 100/0.
    assert_eq!(
        route["weighted_clusters"]["clusters"],
        serde_json::json!([
            { "name": "server-v1", "weight": 100 },
            { "name": "server-v2", "weight": 0 }
        ])
    );

    let d = json(&client(
        &s,
        &Client::default(),
        Mesh::StaticSidecar,
        &images(),
    ));
    assert_eq!(
        container(&d, "hello-client")["args"][0],
        "ipv4:127.0.0.1:15001"
    );
    let envoy = container(&d, "envoy");
    assert_eq!(envoy["restartPolicy"], "Always");
    assert_eq!(
        d["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"],
        "client-envoy"
    );
}

#[test]
fn the_static_sidecar_holds_the_client_until_its_envoy_answers_the_ready_probe_on_the_pod_address()
{
    let s = get("canary");
    let d = json(&static_sidecar(&s, &Client::default(), &images(), None).unwrap()[1]);
    let envoy = container(&d, "envoy");
    let probe = &envoy["startupProbe"]["httpGet"];
    assert_eq!(probe["path"], "/ready");
    assert_eq!(probe["port"], READY_PORT_NAME);
    assert!(probe["host"].is_null(), "the kubelet probes the pod IP");
    let ports = envoy["ports"].as_array().unwrap();
    assert_eq!(
        ports[0],
        serde_json::json!({ "name": READY_PORT_NAME, "containerPort": 15021 })
    );
    assert!(envoy["startupProbe"]["failureThreshold"].as_i64().unwrap() >= 30);
    // The port the probe names is the ready listener of the sidecar's own bootstrap, on every address.
    let objects = base(&s, &images()).unwrap();
    let config = json(find(&objects, "ConfigMap", "client-envoy"));
    let bootstrap: Value =
        serde_json::from_str(config["data"]["envoy.json"].as_str().unwrap()).unwrap();
    let ready = bootstrap["static_resources"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "ready")
        .expect("a ready listener");
    assert_eq!(
        ready["address"]["socket_address"],
        serde_json::json!({ "address": "0.0.0.0", "port_value": 15021 })
    );
}

#[test]
fn the_server_service_of_another_exposure_is_the_same_service_with_another_cluster_ip() {
    let s = get("kill");
    let headless = json(&server_service(&s, Exposure::Headless).unwrap());
    let cluster_ip = json(&server_service(&s, Exposure::ClusterIp).unwrap());
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert!(
        cluster_ip["spec"]["clusterIP"].is_null(),
        "allocated by the API server"
    );
    assert_eq!(headless["metadata"], cluster_ip["metadata"]);
    assert_eq!(headless["spec"]["selector"], cluster_ip["spec"]["selector"]);
    assert_eq!(headless["spec"]["ports"], cluster_ip["spec"]["ports"]);
    let base = base(&s, &images()).unwrap();
    assert_eq!(
        json(find(&base, "Service", "server")),
        headless,
        "the scenario's own"
    );
    let err = server_service(&get("server-proxy"), Exposure::Headless).unwrap_err();
    assert!(err.to_string().contains("points at the proxies"), "{err}");
    let model = mesh_services(&s);
    assert!(model.iter().find(|m| m.name == "server").unwrap().headless);
    assert!(
        !model
            .iter()
            .find(|m| m.name == "server-v1")
            .unwrap()
            .headless
    );
}

#[test]
fn new_static_sidecar_weights_change_the_config_and_the_pod_template_hash() {
    let s = get("canary");
    let render = |weights: &[(&str, u32)]| {
        let objects = static_sidecar(&s, &Client::default(), &images(), Some(weights)).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(kind(&objects[0]), "ConfigMap");
        let d = json(&objects[1]);
        let hash = d["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
            .as_str()
            .unwrap()
            .to_owned();
        let text = json(&objects[0])["data"]["envoy.json"]
            .as_str()
            .unwrap()
            .to_owned();
        (text, hash)
    };
    let (a, hash_a) = render(&[("server-v1", 99), ("server-v2", 1)]);
    let (b, hash_b) = render(&[("server-v1", 50), ("server-v2", 50)]);
    assert_ne!(a, b);
    assert_ne!(hash_a, hash_b);
    assert_eq!(hash_a.len(), 64);
    assert!(a.contains("\"weight\": 99"), "{a}");
    assert_eq!(render(&[("server-v1", 99), ("server-v2", 1)]).1, hash_a);
    let err =
        static_sidecar(&s, &Client::default(), &images(), Some(&[("server-v1", 0)])).unwrap_err();
    assert!(format!("{err:#}").contains("weight 0"), "{err:#}");
}

#[test]
fn a_static_sidecar_refuses_routes_it_cannot_express() {
    // The GRPCRoute matches by method and header: not a plain weighted split.
    let s = Scenario {
        phases: vec![],
        ..get("grpcroute")
    };
    let err = client_envoy_config(&s, None).unwrap_err();
    assert!(format!("{err:#}").contains("a static sidecar expresses one HTTPRoute"));
}

#[test]
fn on_the_cluster_servers_get_the_seed_s_max_connection_age() {
    let s = get("maxage");
    let local: BTreeMap<_, _> = s.server_env.iter().copied().collect();
    assert_ne!(
        local["MAX_CONNECTION_AGE"], "10s",
        "the local twin's age is shorter"
    );
    let objects = base(&s, &images()).unwrap();
    let d = json(find(&objects, "Deployment", "server-v1"));
    let env = container(&d, "hello-server")["env"]
        .as_array()
        .unwrap()
        .clone();
    let value = |name: &str| env.iter().find(|e| e["name"] == name).unwrap()["value"].clone();
    assert_eq!(value("MAX_CONNECTION_AGE"), "10s");
    assert_eq!(value("MAX_CONNECTION_AGE_GRACE"), "20s");
    assert_eq!(value("RESPONSE_DELAY"), "5ms");
    // A scenario without a max age gets none.
    let objects = base(&get("headless"), &images()).unwrap();
    let text = serde_json::to_string(find(&objects, "Deployment", "server-v1")).unwrap();
    assert!(!text.contains("MAX_CONNECTION_AGE"));
}

#[test]
fn routes_carry_the_weights_they_are_given() {
    let backend_weights = |objects: &[DynamicObject]| -> Vec<(String, Value)> {
        objects
            .iter()
            .flat_map(|o| json(o)["spec"]["rules"].as_array().unwrap().clone())
            .flat_map(|rule| rule["backendRefs"].as_array().unwrap().clone())
            .map(|b| (b["name"].as_str().unwrap().to_owned(), b["weight"].clone()))
            .collect()
    };
    let s = get("httproute");
    let file = routes(&s, None).unwrap();
    assert_eq!(
        backend_weights(&file),
        [
            ("server-v1".into(), 100.into()),
            ("server-v2".into(), 0.into())
        ]
    );
    let stepped = routes(&s, Some(&[("server-v1", 95), ("server-v2", 5)])).unwrap();
    assert_eq!(
        backend_weights(&stepped),
        [
            ("server-v1".into(), 95.into()),
            ("server-v2".into(), 5.into())
        ]
    );
    assert!(routes(&s, Some(&[("server-v3", 1)])).is_err());
    assert!(routes(&get("clusterip"), None).unwrap().is_empty());
}

/// Every route object a demo applies (before its first phase, then at each weight step)
/// passes the Gateway API CRDs' schemas (see `tests/crds.rs`).
#[test]
fn the_routes_of_every_scenario_and_weight_step_pass_the_gateway_api_schemas() {
    let schemas = crate::testing::crds::Crds::load();
    let mut checked = 0;
    for s in scenario::all() {
        let mut steps: Vec<Option<&[(&str, u32)]>> = vec![None];
        for phase in &s.phases {
            for action in &phase.actions {
                if let Action::Weights(w) = action {
                    steps.push(Some(w));
                }
            }
        }
        for weights in steps {
            for o in routes(&s, weights).unwrap() {
                let value = json(&o);
                if let Err(e) = schemas.check(&value) {
                    panic!("{} {weights:?}: {e}\n{value:#}", s.name);
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} route objects checked");
}

#[test]
fn everything_carries_the_part_of_label_and_the_demo_namespace() {
    for s in scenario::all() {
        let ns = namespace(s.name);
        for o in everything(&s) {
            let what = format!("{}: {} {:?}", s.name, kind(&o), o.metadata.name);
            let labels = o.metadata.labels.as_ref().expect(&what);
            assert_eq!(labels[PART_OF_LABEL], PART_OF, "{what}");
            if kind(&o) == "Namespace" {
                assert_eq!(o.metadata.name.as_deref(), Some(ns.as_str()));
                assert!(o.metadata.namespace.is_none());
            } else {
                assert_eq!(o.metadata.namespace.as_deref(), Some(ns.as_str()), "{what}");
            }
            if kind(&o) == "Deployment" {
                let d = json(&o);
                let pod = &d["spec"]["template"]["metadata"]["labels"];
                assert_eq!(pod[PART_OF_LABEL], PART_OF, "{what}");
                let selector = d["spec"]["selector"]["matchLabels"].as_object().unwrap();
                for (k, v) in selector {
                    assert_eq!(&pod[k], v, "{what}: the selector must select the pods");
                }
            }
        }
    }
}

#[test]
fn yaml_output_parses_back_to_the_same_objects() {
    use serde::Deserialize;
    for s in scenario::all() {
        let objects = everything(&s);
        let text = to_yaml(&objects).unwrap();
        let parsed: Vec<DynamicObject> = serde_yaml::Deserializer::from_str(&text)
            .map(|doc| DynamicObject::deserialize(doc).unwrap())
            .collect();
        assert_eq!(parsed.len(), objects.len(), "{}", s.name);
        assert_eq!(parsed, objects, "{}", s.name);
    }
    assert_eq!(to_yaml(&[]).unwrap(), "");
}

/// The manifests of the `httproute` scenario, checked in so that a change of any object
/// shows in review. Regenerate with
/// `UPDATE_GOLDEN=1 cargo test -p xtask cluster::objects`.
#[test]
fn the_httproute_manifests_match_the_golden_file() {
    let path = crate::project::root().join("xtask/tests/golden/manifests-httproute.yaml");
    let actual = to_yaml(&manifests(&get("httproute"), &images()).unwrap()).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with UPDATE_GOLDEN=1 cargo test -p xtask cluster::objects",
            path.display()
        )
    });
    assert!(
        actual == expected,
        "{} is out of date; if the change is intended, regenerate it with \
         UPDATE_GOLDEN=1 cargo test -p xtask cluster::objects and review the diff",
        path.display()
    );
}
