//! Parents, ports and namespaces: which Service, port and clients a route applies to.

use mesh::{
    gateway::{self, Routes, Warning},
    model::ServiceRoutes,
};

use super::support::{PORT, canary, entries_of, grpc_route, http_route, names, parse_ok, services};

fn every_and_on_port(every_meta: &str, on_port_meta: &str) -> Routes {
    let every = grpc_route(
        "every",
        every_meta,
        "  - backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    let on_port = grpc_route(
        "on-port",
        on_port_meta,
        "  - matches: [{method: {method: SayHello}}]\n    backendRefs: [{name: server-v2, port: 50051}]\n",
    )
    .replace("name: server}", "name: server, port: 50051}");
    parse_ok(&format!("{every}---\n{on_port}"))
}

#[test]
fn a_route_on_the_port_and_a_route_on_every_port_are_two_virtual_services_and_one_wins() {
    // Same age: Istio's names decide, and `default~50051~...` sorts before `default~server...`.
    let (table, warnings) = gateway::route_table(&every_and_on_port("", ""), &services());
    let summary: Vec<(Option<u16>, &str, Vec<&str>)> = table
        .iter()
        .map(|r: &ServiceRoutes| (r.port, r.virtual_service.as_str(), names(&r.entries)))
        .collect();
    assert_eq!(
        summary,
        [(
            Some(PORT),
            "default~50051~server.default.svc.cluster.local",
            vec!["GRPCRoute default/on-port rule 0 match 0"]
        )]
    );
    assert_eq!(
        warnings,
        [Warning("GRPCRoute default/every: ignored for calls to Service default/server: Istio gives a sidecar one VirtualService per Service, and default~50051~server.default.svc.cluster.local (from GRPCRoute default/on-port) comes before default~server.default.svc.cluster.local (older routes first, then by namespace and name)".to_owned())]
    );

    // The older one wins.
    let objects = every_and_on_port(
        "  creationTimestamp: 2024-01-01T00:00:00Z\n",
        "  creationTimestamp: 2025-01-01T00:00:00Z\n",
    );
    let (table, warnings) = gateway::route_table(&objects, &services());
    assert_eq!(table.len(), 1);
    assert_eq!(table[0].port, None);
    assert_eq!(
        names(&table[0].entries),
        ["GRPCRoute default/every rule 0 match 0"]
    );
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]
            .0
            .starts_with("GRPCRoute default/on-port: ignored"),
        "{warnings:?}"
    );
}

#[test]
fn a_rule_without_matches_on_a_port_sorts_as_a_match_on_the_port_alone() {
    // Rule 0 has no matches; rule 1 has one empty match. Both match every call, so only the first
    // of them is used; which one is first depends on the parentRef's port.
    let yaml = canary(concat!(
        "  - backendRefs: [{name: server-v1, port: 50051}]\n",
        "  - matches: [{}]\n",
        "    backendRefs: [{name: server-v2, port: 50051}]\n",
    ));
    let (table, warnings) = gateway::route_table(&parse_ok(&yaml), &services());
    assert_eq!(
        names(&table[0].entries),
        ["GRPCRoute default/canary rule 1 match 0"],
        "without a port, the rule without matches goes last"
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let on_port = yaml.replace("name: server}", "name: server, port: 50051}");
    let (table, _) = gateway::route_table(&parse_ok(&on_port), &services());
    assert_eq!(
        names(&table[0].entries),
        ["GRPCRoute default/canary rule 0 match 0"],
        "with a port, it has a match (on the port) and keeps its place"
    );
}

#[test]
fn every_kind_of_catch_all_ends_the_routes_and_a_method_or_header_condition_does_not() {
    let yaml = http_route(
        "web",
        concat!(
            "  - matches: [{path: {value: /}, method: POST}, {path: {type: RegularExpression, value: '.*'}}, {path: {type: RegularExpression, value: '/a.*'}}, {path: {type: RegularExpression, value: '.'}}]\n",
            "    backendRefs: [{name: server-v1, port: 50051}]\n",
        ),
    );
    let (entries, warnings) = entries_of(&parse_ok(&yaml));
    assert_eq!(
        names(&entries),
        [
            "HTTPRoute default/web rule 0 match 0",
            "HTTPRoute default/web rule 0 match 2",
            "HTTPRoute default/web rule 0 match 1"
        ],
        "the longer regex first, then `.*`, and nothing after it"
    );
    assert_eq!(
        warnings,
        [Warning("HTTPRoute default/web rule 0 match 3: never used: it comes after HTTPRoute default/web rule 0 match 1, which matches every call, and Istio programs nothing after such a route".to_owned())]
    );
    let two = [
        grpc_route(
            "a",
            "",
            "  - backendRefs: [{name: server-v1, port: 50051}]\n",
        ),
        grpc_route(
            "b",
            "",
            "  - backendRefs: [{name: server-v2, port: 50051}]\n",
        ),
    ]
    .join("---\n");
    let (entries, warnings) = entries_of(&parse_ok(&two));
    assert_eq!(names(&entries), ["GRPCRoute default/a rule 0 match 0"]);
    assert_eq!(
        warnings,
        [Warning("GRPCRoute default/b rule 0 match 0: never used: it comes after GRPCRoute default/a rule 0 match 0, which matches every call, and Istio programs nothing after such a route".to_owned())]
    );
}

#[test]
fn a_grpcroute_without_rules_leaves_the_service_to_its_default_route() {
    let none = grpc_route("empty", "", "").replace("  rules:\n", "");
    let (table, warnings) = gateway::route_table(&parse_ok(&none), &services());
    assert_eq!(table, []);
    assert_eq!(
        warnings,
        [Warning("GRPCRoute default/empty: has no rules, so it routes nothing (its parent Services are treated as if no route were attached)".to_owned())]
    );
    // An older route without rules does not hide a newer one with rules.
    let both = [
        grpc_route("empty", "  creationTimestamp: 2020-01-01T00:00:00Z\n", "")
            .replace("  rules:\n", ""),
        grpc_route(
            "full",
            "",
            "  - backendRefs: [{name: server-v1, port: 50051}]\n",
        )
        .replace("name: server}", "name: server, port: 50051}"),
    ]
    .join("---\n");
    let (table, _) = gateway::route_table(&parse_ok(&both), &services());
    assert_eq!(
        names(&table[0].entries),
        ["GRPCRoute default/full rule 0 match 0"]
    );
}

#[test]
fn a_parent_ref_port_the_service_lacks_applies_to_no_traffic() {
    let yaml = canary("  - backendRefs: [{name: server-v1, port: 50051}]\n")
        .replace("name: server}", "name: server, port: 8080}");
    let (table, warnings) = gateway::route_table(&parse_ok(&yaml), &services());
    assert_eq!(table, []);
    assert_eq!(
        warnings,
        [Warning("GRPCRoute default/canary: parentRef port 8080 is not the port of Service default/server (50051): the route applies to no traffic".to_owned())]
    );
}

#[test]
fn a_route_with_two_parents_gives_entries_to_both() {
    let yaml = canary("  - backendRefs: [{name: server-v1, port: 50051}]\n").replace(
        "  - {group: \"\", kind: Service, name: server}\n",
        "  - {group: \"\", kind: Service, name: server}\n  - {group: \"\", kind: Service, name: server-v1}\n",
    );
    let (table, _) = gateway::route_table(&parse_ok(&yaml), &services());
    let parents: Vec<_> = table.iter().map(|r| r.service.as_str()).collect();
    assert_eq!(parents, ["server", "server-v1"]);
}

#[test]
fn a_consumer_route_applies_only_to_clients_of_its_namespace_and_there_comes_first() {
    let consumer =
        canary("  - backendRefs: [{name: server-v2, namespace: default, port: 50051}]\n")
            .replace("name: canary\n", "name: canary\n  namespace: team\n")
            .replace("name: server}", "name: server, namespace: default}");
    let producer = grpc_route(
        "producer",
        "  creationTimestamp: 2020-01-01T00:00:00Z\n",
        "  - backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    let objects = parse_ok(&format!("{consumer}---\n{producer}"));

    let (table, warnings) = gateway::route_table(&objects, &services());
    assert_eq!(
        names(&table[0].entries),
        ["GRPCRoute default/producer rule 0 match 0"]
    );
    assert_eq!(
        warnings,
        [Warning("GRPCRoute team/canary: parent Service default/server is in another namespace (a consumer route): Istio applies it only to clients in namespace team, and the client is in default".to_owned())]
    );

    let (table, warnings) = gateway::route_table_for(&objects, &services(), "team");
    assert_eq!(
        table[0].virtual_service,
        "team~server.default.svc.cluster.local"
    );
    assert_eq!(
        names(&table[0].entries),
        ["GRPCRoute team/canary rule 0 match 0"]
    );
    assert_eq!(
        warnings,
        [Warning("GRPCRoute default/producer: ignored for calls to Service default/server: Istio gives a sidecar one VirtualService per Service, and team~server.default.svc.cluster.local (from GRPCRoute team/canary) comes before default~server.default.svc.cluster.local (it is in the client's namespace)".to_owned())]
    );
}
