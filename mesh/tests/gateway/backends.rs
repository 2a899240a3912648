//! Backends and weights: defaults, `Routes::with_weights`, and the warnings that name what a client
//! gets for a share that reaches no Service.

use mesh::{
    gateway::{self, Warning},
    model::Backend,
};

use super::support::{backend, canary, entries_of, gateway_file, http_route, parse_ok, service};

#[test]
fn weights_default_to_1_and_namespaces_to_the_route() {
    let yaml = canary(
        "  - backendRefs: [{name: server-v1, port: 50051}, {name: server-v2, namespace: other, port: 8080, weight: 3}]\n",
    );
    let (entries, _) = entries_of(&parse_ok(&yaml));
    assert_eq!(
        entries[0].backends,
        [
            backend("server-v1", 1),
            Backend {
                service: "server-v2".to_owned(),
                namespace: "other".to_owned(),
                port: Some(8080),
                weight: 3,
            },
        ]
    );
}

#[test]
fn with_weights_steps_the_demo_split_and_refuses_unknown_backends() {
    let loaded = gateway::load(&gateway_file("httproute.yaml")).unwrap();
    let routes = loaded
        .with_weights(&[("server-v1", 90), ("server-v2", 10)])
        .unwrap();
    let (entries, _) = entries_of(&routes);
    assert_eq!(
        entries[0].backends,
        [backend("server-v1", 90), backend("server-v2", 10)]
    );
    let (entries, _) = entries_of(&loaded);
    assert_eq!(
        entries[0].backends,
        [backend("server-v1", 100), backend("server-v2", 0)],
        "the routes a change starts from stay as they were"
    );

    let error = routes
        .with_weights(&[("server-v1", 50), ("server-v3", 50)])
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"HTTPRoute default/server: no backendRef named "server-v3" in any rule"#
    );

    let error = routes
        .with_weights(&[("server-v1", 1_000_001)])
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "HTTPRoute default/server: backendRef server-v1 weight: 1000001 is out of range (0 to 1000000)"
    );
}

#[test]
fn with_weights_applies_to_every_rule_of_a_grpcroute() {
    let routes = gateway::load(&gateway_file("grpcroute.yaml"))
        .unwrap()
        .with_weights(&[("server-v2", 7)])
        .unwrap();
    let (entries, _) = entries_of(&routes);
    for entry in entries {
        let expected = if entry.backends[0].service == "server-v2" {
            7
        } else {
            1
        };
        assert_eq!(entry.backends[0].weight, expected, "{}", entry.name);
    }
}

const SPEC: &str = " (the GRPCRoute spec asks for UNAVAILABLE, so a client that retries only UNAVAILABLE will not retry these)";

#[test]
fn a_rule_that_sends_nowhere_is_kept_and_the_warning_names_what_the_client_gets() {
    let yaml = canary(concat!(
        "  - matches: [{method: {service: a}}]\n",
        "  - backendRefs: [{name: server-v1, port: 50051, weight: 0}]\n",
    ));
    let (entries, warnings) = entries_of(&parse_ok(&yaml));
    assert_eq!(entries[0].backends, []);
    assert_eq!(entries[1].backends, [backend("server-v1", 0)]);
    assert_eq!(
        warnings,
        [
            Warning(format!(
                "GRPCRoute default/canary: rule 0 has no backendRefs: all its calls get HTTP 500, which gRPC clients see as UNKNOWN{SPEC}"
            )),
            Warning(format!(
                "GRPCRoute default/canary: rule 1 has no backendRef with a weight above 0: all its calls get HTTP 500, which gRPC clients see as UNKNOWN{SPEC}"
            )),
        ]
    );
    let yaml = http_route(
        "web",
        concat!(
            "  - matches: [{path: {value: /a}}]\n",
            "  - backendRefs: [{name: server-v1, port: 50051, weight: 0}]\n",
        ),
    );
    let (_, warnings) = entries_of(&parse_ok(&yaml));
    assert_eq!(
        warnings,
        [
            Warning("HTTPRoute default/web: rule 0 has no backendRefs: all its calls get HTTP 404, which gRPC clients see as UNIMPLEMENTED".to_owned()),
            Warning("HTTPRoute default/web: rule 1 has no backendRef with a weight above 0: all its calls get HTTP 500, which gRPC clients see as UNKNOWN".to_owned()),
        ]
    );
}

#[test]
fn unknown_backends_and_wrong_ports_give_warnings_with_their_share_and_code() {
    let yaml = http_route(
        "canary",
        "  - backendRefs: [{name: server-v1, port: 50051, weight: 90}, {name: server-v2, port: 8080, weight: 5}, {name: server-v3, port: 50051, weight: 5}]\n",
    );
    let (_, warnings) = entries_of(&parse_ok(&yaml));
    assert_eq!(
        warnings,
        [
            Warning("HTTPRoute default/canary: backendRef server-v2 port 8080 is not the Service's port (50051): its share (5%) of calls gets HTTP 500, which gRPC clients see as UNKNOWN".to_owned()),
            Warning("HTTPRoute default/canary: backendRef server-v3 does not exist: its share (5%) of calls gets HTTP 500, which gRPC clients see as UNKNOWN".to_owned()),
        ]
    );
    let yaml = canary(
        "  - backendRefs: [{name: server-v1, port: 50051}, {name: server-v3, port: 50051, weight: 2}]\n",
    );
    let (_, warnings) = entries_of(&parse_ok(&yaml));
    assert_eq!(
        warnings,
        [Warning(format!(
            "GRPCRoute default/canary: backendRef server-v3 does not exist: its share (66.7%) of calls gets HTTP 500, which gRPC clients see as UNKNOWN{SPEC}"
        ))]
    );
}

#[test]
fn a_missing_parent_service_gives_a_warning_and_no_routes() {
    let yaml = canary("  - backendRefs: [{name: server-v1, port: 50051}]\n");
    let objects = parse_ok(&yaml);
    let (table, warnings) = gateway::route_table(&objects, &[service("server-v1")]);
    assert_eq!(table, []);
    assert_eq!(
        warnings,
        [Warning("GRPCRoute default/canary: parent Service default/server does not exist: the route applies to no traffic".to_owned())]
    );
}
