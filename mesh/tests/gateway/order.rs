//! Istio's order: how the entries of one Service are sorted, and nothing after the first
//! catch-all.

use mesh::gateway::Warning;

use super::support::{canary, entries_of, grpc_route, http_route, names, parse_ok};

#[test]
fn an_exact_path_comes_before_a_prefix_then_a_regex_then_a_rule_without_matches() {
    let yaml = canary(concat!(
        "  - matches: [{method: {service: hello.v1.Greeter}}]\n",
        "    backendRefs: [{name: server-v1, port: 50051}]\n",
        "  - matches: [{method: {method: SayHello}}]\n",
        "    backendRefs: [{name: server-v1, port: 50051}]\n",
        "  - matches: [{method: {service: hello.v1.Greeter, method: SayHello}}]\n",
        "    backendRefs: [{name: server-v2, port: 50051}]\n",
        "  - backendRefs: [{name: server-v1, port: 50051}]\n",
    ));
    let (entries, _) = entries_of(&parse_ok(&yaml));
    assert_eq!(
        names(&entries),
        [
            "GRPCRoute default/canary rule 2 match 0",
            "GRPCRoute default/canary rule 0 match 0",
            "GRPCRoute default/canary rule 1 match 0",
            "GRPCRoute default/canary rule 3 match 0",
        ]
    );
}

#[test]
fn more_header_matches_come_first() {
    let yaml = canary(concat!(
        "  - matches: [{headers: [{name: a, value: '1'}]}]\n",
        "    backendRefs: [{name: server-v1, port: 50051}]\n",
        "  - matches: [{headers: [{name: a, value: '1'}, {name: b, value: '2'}]}]\n",
        "    backendRefs: [{name: server-v2, port: 50051}]\n",
    ));
    let (entries, _) = entries_of(&parse_ok(&yaml));
    assert_eq!(
        names(&entries),
        [
            "GRPCRoute default/canary rule 1 match 0",
            "GRPCRoute default/canary rule 0 match 0",
        ]
    );
}

#[test]
fn an_older_route_comes_before_a_newer_one_and_one_without_timestamp_counts_as_the_oldest() {
    let rule = "  - matches: [{method: {service: hello.v1.Greeter}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n";
    let yaml = [
        grpc_route("b-new", "  creationTimestamp: 2025-06-01T00:00:00Z\n", rule),
        grpc_route("c-old", "  creationTimestamp: 2024-01-01T00:00:00Z\n", rule),
        grpc_route("z-unstamped", "", rule),
    ]
    .join("---\n");
    let (entries, _) = entries_of(&parse_ok(&yaml));
    assert_eq!(
        names(&entries),
        [
            "GRPCRoute default/z-unstamped rule 0 match 0",
            "GRPCRoute default/c-old rule 0 match 0",
            "GRPCRoute default/b-new rule 0 match 0",
        ]
    );
}

#[test]
fn routes_of_the_same_age_are_ordered_by_namespace_and_name_then_rule_and_match() {
    let rule = "  - matches: [{method: {service: a.B}}, {method: {service: c.D}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n";
    let yaml = [
        grpc_route("zeta", "", rule),
        grpc_route("alpha", "", &rule.repeat(2)),
    ]
    .join("---\n");
    let (entries, _) = entries_of(&parse_ok(&yaml));
    assert_eq!(
        names(&entries),
        [
            "GRPCRoute default/alpha rule 0 match 0",
            "GRPCRoute default/alpha rule 0 match 1",
            "GRPCRoute default/alpha rule 1 match 0",
            "GRPCRoute default/alpha rule 1 match 1",
            "GRPCRoute default/zeta rule 0 match 0",
            "GRPCRoute default/zeta rule 0 match 1",
        ]
    );
}

#[test]
fn http_order_is_exact_then_longer_prefix_then_method_then_headers_and_nothing_after_the_catch_all()
{
    let yaml = http_route(
        "a",
        concat!(
            "  - matches:\n",
            "    - path: {value: /}\n",
            "    - path: {value: /hello.v1.Greeter}\n",
            "    - path: {value: /hello.v1.Greeter}\n",
            "      method: POST\n",
            "    - path: {value: /hello.v1.Greeter}\n",
            "      headers: [{name: a, value: b}]\n",
            "    - path: {type: RegularExpression, value: '/hello\\..*'}\n",
            "    - path: {type: Exact, value: /hello.v1.Greeter/SayHello}\n",
            "    backendRefs: [{name: server-v1, port: 50051}]\n",
        ),
    );
    let (entries, warnings) = entries_of(&parse_ok(&yaml));
    let order: Vec<_> = names(&entries)
        .iter()
        .map(|n| n.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .collect();
    assert_eq!(order, [5, 2, 3, 1, 0]);
    assert_eq!(
        warnings,
        [Warning("HTTPRoute default/a rule 0 match 4: never used: it comes after HTTPRoute default/a rule 0 match 0, which matches every call, and Istio programs nothing after such a route".to_owned())]
    );
}

#[test]
fn an_httproute_catch_all_hides_a_grpcroute_header_match_on_the_same_service() {
    let web = http_route("web", "  - backendRefs: [{name: server-v1, port: 50051}]\n");
    let canary = canary(
        "  - matches: [{headers: [{name: x-canary, value: 'true'}]}]\n    backendRefs: [{name: server-v2, port: 50051}]\n",
    );
    let (entries, warnings) = entries_of(&parse_ok(&format!("{web}---\n{canary}")));
    assert_eq!(names(&entries), ["HTTPRoute default/web rule 0 match 0"]);
    assert_eq!(
        warnings,
        [Warning("GRPCRoute default/canary rule 0 match 0: never used: it comes after HTTPRoute default/web rule 0 match 0, which matches every call, and Istio programs nothing after such a route".to_owned())]
    );
}
