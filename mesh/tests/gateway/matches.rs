//! Matches: what GRPCRoute and HTTPRoute matches and header changes become in an entry.

use mesh::{
    gateway::Warning,
    model::{HeaderMatch, HeaderModifier, Match, StringMatch},
};

use super::support::{canary, entries_of, exact, http_route, parse_ok, regex};

#[test]
fn grpc_method_matches_become_the_paths_istio_writes() {
    let yaml = canary(concat!(
        "  - matches:\n",
        "    - method: {service: hello.v1.Greeter}\n",
        "    - method: {method: SayHello}\n",
        "    - method: {type: RegularExpression, service: 'hello\\.v[0-9]+\\.Greeter'}\n",
        "    - method: {type: RegularExpression, service: hello.v1.Greeter, method: 'Say.*'}\n",
        "    - method: {type: RegularExpression, method: 'Say(Hello|HelloAgain)'}\n",
        "    - method: {type: RegularExpression, service: 'a|hello.v1.Greeter', method: SayHello}\n",
        "    - headers: [{name: x-id, type: RegularExpression, value: '[0-9]+'}, {name: X-Team, value: a}]\n",
        "    backendRefs: [{name: server-v1, port: 50051}]\n",
    ));
    let (entries, _) = entries_of(&parse_ok(&yaml));
    let match_of = |m: usize| {
        entries
            .iter()
            .find(|e| e.name == format!("GRPCRoute default/canary rule 0 match {m}"))
            .unwrap()
            .matched
            .clone()
    };
    assert_eq!(
        match_of(0).path,
        Some(StringMatch::PathPrefix("/hello.v1.Greeter/".to_owned()))
    );
    assert_eq!(match_of(1).path, Some(regex("/[^/]+/SayHello")));
    assert_eq!(
        match_of(2).path,
        Some(regex(r"/hello\.v[0-9]+\.Greeter/.+"))
    );
    assert_eq!(match_of(3).path, Some(regex("/hello.v1.Greeter/Say.*")));
    assert_eq!(
        match_of(4).path,
        Some(regex("/[^/]+/Say(Hello|HelloAgain)"))
    );
    // Concatenated without a group: as a whole-path match this is `/a` or
    // `hello.v1.Greeter/SayHello`, and a call to /hello.v1.Greeter/SayHello matches neither.
    assert_eq!(
        match_of(5).path,
        Some(regex("/a|hello.v1.Greeter/SayHello"))
    );
    let headers = match_of(6);
    assert_eq!(headers.path, None);
    assert_eq!(
        headers.headers,
        [
            HeaderMatch {
                name: "X-Team".to_owned(),
                value: exact("a")
            },
            HeaderMatch {
                name: "x-id".to_owned(),
                value: regex("[0-9]+")
            },
        ],
        "names as written, sorted by name"
    );
}

#[test]
fn an_entry_is_named_in_envoy_after_its_rule_name_else_its_route_and_rule_index() {
    let yaml = canary(concat!(
        "  - name: to-v1\n",
        "    matches: [{method: {service: a}}]\n",
        "    backendRefs: [{name: server-v1, port: 50051}]\n",
        "  - backendRefs: [{name: server-v2, port: 50051}]\n",
    ));
    let (entries, _) = entries_of(&parse_ok(&yaml));
    let route_names: Vec<&str> = entries.iter().map(|e| e.route_name.as_str()).collect();
    assert_eq!(route_names, ["to-v1", "default.canary.1"]);
}

#[test]
fn a_grpc_rule_without_matches_matches_every_call() {
    let yaml = canary("  - backendRefs: [{name: server-v1, port: 50051}]\n");
    let (entries, _) = entries_of(&parse_ok(&yaml));
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].matched, Match::default());
}

#[test]
fn http_matches_keep_path_method_and_headers_and_a_prefix_loses_its_trailing_slash() {
    let yaml = http_route(
        "a",
        concat!(
            "  - matches: [{path: {type: Exact, value: /hello.v1.Greeter/SayHello}, method: POST, headers: [{name: X-Canary, value: 'true'}]}]\n",
            "    backendRefs: [{name: server-v1, port: 50051}]\n",
            "  - matches: [{path: {value: /hello.v1.Greeter/}}]\n",
            "    backendRefs: [{name: server-v1, port: 50051}]\n",
        ),
    );
    let (entries, _) = entries_of(&parse_ok(&yaml));
    assert_eq!(
        entries[0].matched,
        Match {
            path: Some(exact("/hello.v1.Greeter/SayHello")),
            method: Some("POST".to_owned()),
            headers: vec![HeaderMatch {
                name: "X-Canary".to_owned(),
                value: exact("true")
            }],
        }
    );
    assert_eq!(
        entries[1].matched.path,
        Some(StringMatch::PathPrefix("/hello.v1.Greeter".to_owned()))
    );
}

#[test]
fn a_header_matched_under_two_spellings_keeps_both_conditions() {
    let yaml = canary(
        "  - matches: [{headers: [{name: x-a, value: '1'}, {name: X-A, value: '2'}]}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    let (entries, warnings) = entries_of(&parse_ok(&yaml));
    assert_eq!(warnings, []);
    let names: Vec<&str> = entries[0]
        .matched
        .headers
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(names, ["X-A", "x-a"]);
}

#[test]
fn a_request_header_modifier_becomes_the_entry_header_changes_as_istio_lists_them() {
    let yaml = canary(
        "  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Route, value: canary}, {name: x-b, value: '1'}], add: [{name: x-hop, value: mesh}], remove: [X-Debug]}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    let (entries, warnings) = entries_of(&parse_ok(&yaml));
    assert_eq!(warnings, []);
    assert_eq!(
        entries[0].request_headers,
        HeaderModifier {
            set: vec![
                ("x-b".to_owned(), "1".to_owned()),
                ("x-route".to_owned(), "canary".to_owned())
            ],
            add: vec![("x-hop".to_owned(), "mesh".to_owned())],
            remove: vec!["X-Debug".to_owned()],
            host_rewrite: None,
        }
    );
}

#[test]
fn a_host_header_change_becomes_an_authority_rewrite_and_a_name_given_twice_keeps_the_first() {
    let yaml = canary(concat!(
        "  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {",
        "set: [{name: x-a, value: '1'}, {name: Host, value: a.example}, {name: X-A, value: '2'}], ",
        "add: [{name: host, value: b.example}, {name: x-c, value: '3'}], ",
        "remove: [HOST, x-d]}}]\n",
        "    backendRefs: [{name: server-v1, port: 50051}]\n",
    ));
    let (entries, warnings) = entries_of(&parse_ok(&yaml));
    assert_eq!(
        entries[0].request_headers,
        HeaderModifier {
            set: vec![("x-a".to_owned(), "1".to_owned())],
            add: vec![("x-c".to_owned(), "3".to_owned())],
            remove: vec!["x-d".to_owned()],
            host_rewrite: Some("a.example".to_owned()),
        }
    );
    assert_eq!(
        warnings,
        [
            Warning("GRPCRoute default/canary: RequestHeaderModifier sets header x-a twice (names are case-insensitive): only the first is used".to_owned()),
            Warning("GRPCRoute default/canary: RequestHeaderModifier cannot remove host: Istio leaves it out".to_owned()),
        ]
    );
    let only_add = canary(
        "  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: Host, value: b.example}]}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    let twice = canary(
        "  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: Host, value: a.example}, {name: host, value: c.example}]}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    let (entries, warnings) = entries_of(&parse_ok(&twice));
    assert_eq!(
        entries[0].request_headers.host_rewrite.as_deref(),
        Some("a.example")
    );
    assert_eq!(
        warnings,
        [Warning("GRPCRoute default/canary: RequestHeaderModifier sets header host twice (names are case-insensitive): only the first is used".to_owned())]
    );
    let (entries, _) = entries_of(&parse_ok(&only_add));
    assert_eq!(
        entries[0].request_headers.host_rewrite.as_deref(),
        Some("b.example")
    );
    assert!(entries[0].request_headers.add.is_empty());
}
