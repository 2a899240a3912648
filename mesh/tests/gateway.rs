//! Gateway API routes: loading and validating the demos' files, refusing bad objects with
//! one-line errors, and flattening routes in Gateway API precedence order.

use std::path::{Path, PathBuf};

use mesh::gateway::{self, GatewayError, RouteObject, Violation, Warning};
use mesh::model::{
    Backend, HeaderMatch, HeaderModifier, Match, RouteEntry, RouteKind, Service, ServiceRoutes,
    StringMatch,
};

const PORT: u16 = 50051;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn gateway_file(name: &str) -> PathBuf {
    repo().join("gateway").join(name)
}

fn service(name: &str) -> Service {
    Service {
        name: name.to_owned(),
        namespace: "default".to_owned(),
        port: PORT,
        endpoints: Vec::new(),
        headless: false,
    }
}

/// The Services of the demos.
fn services() -> Vec<Service> {
    ["server", "server-v1", "server-v2"]
        .into_iter()
        .map(service)
        .collect()
}

fn backend(name: &str, weight: u32) -> Backend {
    Backend {
        service: name.to_owned(),
        namespace: "default".to_owned(),
        port: Some(PORT),
        weight,
    }
}

fn exact(value: &str) -> StringMatch {
    StringMatch::Exact(value.to_owned())
}

fn regex(value: &str) -> StringMatch {
    StringMatch::Regex(value.to_owned())
}

/// A GRPCRoute attached to the Service `server`; `rules` is YAML at the indentation of a list
/// under `rules:` (flow style keeps it short).
fn grpc_route(name: &str, extra_metadata: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata:\n  name: {name}\n{extra_metadata}spec:\n  parentRefs:\n  - {{group: \"\", kind: Service, name: server}}\n  rules:\n{rules}"
    )
}

fn http_route(name: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: {name}\nspec:\n  parentRefs:\n  - {{group: \"\", kind: Service, name: server}}\n  rules:\n{rules}"
    )
}

fn canary(rules: &str) -> String {
    grpc_route("canary", "", rules)
}

/// The error `parse` gives, as displayed; it must be one line.
fn error_of(yaml: &str) -> String {
    let error = gateway::parse(yaml, "test.yaml").expect_err("the objects should be refused");
    let text = error.to_string();
    assert!(!text.contains('\n'), "not one line: {text}");
    text
}

fn parse_ok(yaml: &str) -> Vec<RouteObject> {
    gateway::parse(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
}

/// The entries for the Service `server` on every port, and the warnings.
fn entries_of(objects: &[RouteObject]) -> (Vec<RouteEntry>, Vec<Warning>) {
    let (table, warnings) = gateway::route_table(objects, &services());
    assert_eq!(table.len(), 1, "{table:#?}");
    assert_eq!(
        (
            table[0].service.as_str(),
            table[0].namespace.as_str(),
            table[0].port,
            table[0].virtual_service.as_str()
        ),
        (
            "server",
            "default",
            None,
            "default~server.default.svc.cluster.local"
        )
    );
    (table.into_iter().next().unwrap().entries, warnings)
}

fn names(entries: &[RouteEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}

// ---- the demos' files ----

#[test]
fn the_httproute_file_loads_into_one_catch_all_entry_at_100_to_0() {
    let objects = gateway::load(&gateway_file("httproute.yaml")).unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].kind(), "HTTPRoute");
    assert_eq!(objects[0].namespace(), "default");
    assert_eq!(objects[0].name(), "server");

    let (entries, warnings) = entries_of(&objects);
    assert_eq!(warnings, []);
    assert_eq!(
        entries,
        [RouteEntry {
            kind: RouteKind::Http,
            name: "HTTPRoute default/server rule 0 match 0".to_owned(),
            route_name: "default.server.0".to_owned(),
            matched: Match {
                path: Some(StringMatch::PathPrefix("/".to_owned())),
                method: None,
                headers: Vec::new(),
            },
            backends: vec![backend("server-v1", 100), backend("server-v2", 0)],
            request_headers: HeaderModifier::default(),
        }]
    );
}

#[test]
fn the_grpcroute_file_puts_the_longer_method_first_and_the_canary_header_before_each_method() {
    let objects = gateway::load(&gateway_file("grpcroute.yaml")).unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].kind(), "GRPCRoute");

    let (entries, warnings) = entries_of(&objects);
    assert_eq!(warnings, []);
    let canary = vec![HeaderMatch {
        name: "x-canary".to_owned(),
        value: exact("true"),
    }];
    let entry = |rule: usize, matched: usize, path: &str, headers: &Vec<HeaderMatch>, to: &str| {
        RouteEntry {
            kind: RouteKind::Grpc,
            name: format!("GRPCRoute default/server rule {rule} match {matched}"),
            route_name: format!("default.server.{rule}"),
            matched: Match {
                path: Some(exact(path)),
                method: None,
                headers: headers.clone(),
            },
            backends: vec![backend(to, 1)],
            request_headers: HeaderModifier::default(),
        }
    };
    assert_eq!(
        entries,
        [
            entry(
                0,
                1,
                "/hello.v1.Greeter/SayHelloAgain",
                &canary,
                "server-v2"
            ),
            entry(
                1,
                0,
                "/hello.v1.Greeter/SayHelloAgain",
                &vec![],
                "server-v2"
            ),
            entry(0, 0, "/hello.v1.Greeter/SayHello", &canary, "server-v2"),
            RouteEntry {
                backends: vec![backend("server-v1", 1), backend("server-v2", 0)],
                ..entry(2, 0, "/hello.v1.Greeter/SayHello", &vec![], "server-v1")
            },
        ]
    );
}

#[test]
fn loading_the_gateway_directory_merges_both_kinds_on_one_service_as_istio_does() {
    let objects = gateway::load(&repo().join("gateway")).unwrap();
    // Sorted by file name: grpcroute.yaml, then httproute.yaml.
    let kinds: Vec<_> = objects.iter().map(RouteObject::kind).collect();
    assert_eq!(kinds, ["GRPCRoute", "HTTPRoute"]);

    let (entries, warnings) = entries_of(&objects);
    assert_eq!(warnings, []);
    // The GRPCRoute's exact paths first, then the HTTPRoute's catch-all prefix: no kind wins.
    assert_eq!(
        names(&entries),
        [
            "GRPCRoute default/server rule 0 match 1",
            "GRPCRoute default/server rule 1 match 0",
            "GRPCRoute default/server rule 0 match 0",
            "GRPCRoute default/server rule 2 match 0",
            "HTTPRoute default/server rule 0 match 0"
        ]
    );
}

// ---- refusals, one line each ----

#[test]
fn malformed_yaml_is_refused_naming_the_file_and_document() {
    let yaml = format!(
        "{}\n---\nkind: GRPCRoute\nmetadata: [unclosed\n",
        canary("  - backendRefs: [{name: server-v1, port: 50051}]\n")
    );
    let error = gateway::parse(&yaml, "gateway/bad.yaml").unwrap_err();
    assert!(matches!(
        error,
        GatewayError::MalformedYaml { document: 2, .. }
    ));
    let text = error.to_string();
    assert!(
        text.starts_with("gateway/bad.yaml: document 2: malformed yaml: "),
        "{text}"
    );
    assert!(!text.contains('\n'));
}

#[test]
fn an_unknown_kind_is_refused() {
    let yaml = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a}\n";
    let error = gateway::parse(yaml, "gateway/x.yaml").unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"gateway/x.yaml: document 1: unknown kind "Ingress" (expected HTTPRoute or GRPCRoute)"#
    );
}

#[test]
fn a_document_without_kind_is_refused() {
    assert_eq!(
        error_of("apiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: a}\n"),
        "test.yaml: document 1: missing kind (expected HTTPRoute or GRPCRoute)"
    );
}

#[test]
fn a_document_that_is_not_a_mapping_is_refused() {
    assert_eq!(
        error_of("- just\n- a list\n"),
        "test.yaml: document 1: not a Kubernetes object (expected a mapping with apiVersion and kind)"
    );
}

#[test]
fn an_unknown_api_version_is_refused() {
    let yaml = canary("  - backendRefs: [{name: server-v1, port: 50051}]\n").replace(
        "gateway.networking.k8s.io/v1",
        "gateway.networking.k8s.io/v2",
    );
    assert_eq!(
        error_of(&yaml),
        r#"test.yaml: document 1: GRPCRoute: unknown apiVersion "gateway.networking.k8s.io/v2" (expected gateway.networking.k8s.io/v1)"#
    );
    let yaml = "kind: HTTPRoute\nmetadata: {name: a}\nspec: {}\n";
    assert_eq!(
        error_of(yaml),
        "test.yaml: document 1: HTTPRoute: missing apiVersion (expected gateway.networking.k8s.io/v1 or v1beta1)"
    );
}

#[test]
fn a_grpcroute_of_a_version_the_standard_crds_do_not_serve_is_refused() {
    let yaml = canary("  - backendRefs: [{name: server-v1, port: 50051}]\n").replace(
        "gateway.networking.k8s.io/v1",
        "gateway.networking.k8s.io/v1alpha2",
    );
    assert_eq!(parse_ok(&yaml.replace("v1alpha2", "v1")).len(), 1);
    assert!(
        error_of(&yaml).ends_with(
            r#"GRPCRoute: unknown apiVersion "gateway.networking.k8s.io/v1alpha2" (expected gateway.networking.k8s.io/v1)"#
        ),
        "{}",
        error_of(&yaml)
    );
}

#[test]
fn a_route_without_name_is_refused() {
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {namespace: default}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: server}]\n";
    assert_eq!(
        error_of(yaml),
        "test.yaml: document 1: HTTPRoute: metadata.name: is required"
    );
}

#[test]
fn a_route_without_parent_refs_is_refused_saying_only_mesh_attachment_is_supported() {
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: canary}\nspec:\n  rules: [{backendRefs: [{name: server-v1, port: 50051}]}]\n";
    assert_eq!(
        error_of(yaml),
        "GRPCRoute default/canary: spec.parentRefs: needs at least one parentRef to a Service: this harness supports only mesh (GAMMA) attachment"
    );
}

#[test]
fn a_parent_ref_to_a_gateway_is_refused() {
    let yaml = canary("  - backendRefs: [{name: server-v1, port: 50051}]\n").replace(
        "{group: \"\", kind: Service, name: server}",
        "{name: my-gateway}",
    );
    assert_eq!(
        error_of(&yaml),
        r#"GRPCRoute default/canary: spec.parentRefs[0]: refers to a Gateway (group "gateway.networking.k8s.io"): only a Service (group "", kind Service) can be a parent, as this harness supports only mesh (GAMMA) attachment"#
    );
}

#[test]
fn a_parent_ref_to_a_service_without_the_core_group_is_refused() {
    // Without `group: ""` the CRD's default group applies, which has no Service.
    let yaml = canary("  - backendRefs: [{name: server-v1, port: 50051}]\n").replace(
        "{group: \"\", kind: Service, name: server}",
        "{kind: Service, name: server}",
    );
    assert_eq!(
        error_of(&yaml),
        r#"GRPCRoute default/canary: spec.parentRefs[0]: refers to a Service (group "gateway.networking.k8s.io"): only a Service (group "", kind Service) can be a parent, as this harness supports only mesh (GAMMA) attachment"#
    );
}

#[test]
fn a_method_match_without_service_or_method_is_refused() {
    let yaml = canary(
        "  - matches: [{headers: [{name: a, value: b}]}, {method: {type: Exact}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        "GRPCRoute default/canary: spec.rules[0].matches[1].method: needs a service or a method"
    );
}

#[test]
fn an_exact_method_match_with_pattern_characters_is_refused() {
    let yaml = canary(
        "  - matches: [{method: {service: hello.v1.Greeter, method: 'Say.*'}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        r#"GRPCRoute default/canary: spec.rules[0].matches[0].method.method: "Say.*" is not a valid gRPC method name for an Exact match (use type RegularExpression for patterns)"#
    );
}

#[test]
fn invalid_regular_expressions_are_refused_in_methods_headers_and_paths() {
    let yaml = canary(
        "  - matches: [{method: {type: RegularExpression, service: 'hello(', method: Say}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        r#"GRPCRoute default/canary: spec.rules[0].matches[0].method.service: invalid regular expression "hello(": unclosed group"#
    );

    let yaml = canary(
        "  - matches: [{headers: [{type: RegularExpression, name: x-team, value: '[a-'}]}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        r#"GRPCRoute default/canary: spec.rules[0].matches[0].headers[0].value: invalid regular expression "[a-": unclosed character class"#
    );

    let yaml = http_route(
        "a",
        "  - matches: [{path: {type: RegularExpression, value: '/x{2'}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    let text = error_of(&yaml);
    assert!(
        text.starts_with(
            r#"HTTPRoute default/a: spec.rules[0].matches[0].path.value: invalid regular expression "/x{2": "#
        ),
        "{text}"
    );
}

#[test]
fn weights_outside_0_to_1000000_are_refused() {
    let yaml = canary("  - backendRefs: [{name: server-v1, port: 50051, weight: -1}]\n");
    assert_eq!(
        error_of(&yaml),
        "GRPCRoute default/canary: spec.rules[0].backendRefs[0].weight: -1 is out of range (0 to 1000000)"
    );
    let yaml = canary(
        "  - backendRefs: [{name: server-v1, port: 50051}, {name: server-v2, port: 50051, weight: 1000001}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        "GRPCRoute default/canary: spec.rules[0].backendRefs[1].weight: 1000001 is out of range (0 to 1000000)"
    );
}

#[test]
fn a_weight_of_the_wrong_type_is_refused_with_its_path() {
    let yaml = canary("  - backendRefs: [{name: server-v1, port: 50051, weight: heavy}]\n");
    assert_eq!(
        error_of(&yaml),
        r#"test.yaml: document 1: GRPCRoute default/canary: spec.rules[0].backendRefs[0].weight: invalid type: string "heavy", expected i32"#
    );
}

#[test]
fn a_misspelled_field_is_refused_rather_than_ignored() {
    let yaml = canary(
        "  - match: [{method: {service: hello.v1.Greeter}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        "test.yaml: document 1: GRPCRoute default/canary: spec.rules[0].match: unknown field"
    );
}

#[test]
fn the_same_route_twice_in_one_file_is_refused() {
    let one = canary("  - backendRefs: [{name: server-v1, port: 50051}]\n");
    let yaml = format!("{one}---\n{one}");
    assert_eq!(
        error_of(&yaml),
        "GRPCRoute default/canary: defined twice (test.yaml documents 1 and 2)"
    );
}

#[test]
fn routes_of_different_kinds_may_share_a_name() {
    let yaml = format!(
        "{}---\n{}",
        grpc_route(
            "a",
            "",
            "  - backendRefs: [{name: server-v1, port: 50051}]\n"
        ),
        http_route("a", "  - backendRefs: [{name: server-v1, port: 50051}]\n")
    );
    assert_eq!(parse_ok(&yaml).len(), 2);
}

#[test]
fn a_directory_load_detects_a_duplicate_across_files() {
    let dir = std::env::temp_dir().join(format!("gateway-duplicate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let route = http_route("a", "  - backendRefs: [{name: server-v1, port: 50051}]\n");
    std::fs::write(dir.join("a.yaml"), &route).unwrap();
    std::fs::write(dir.join("b.yml"), &route).unwrap();
    std::fs::write(dir.join("notes.txt"), "not yaml: [").unwrap();
    let error = gateway::load(&dir).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        error.to_string(),
        format!(
            "HTTPRoute default/a: defined twice ({}, {})",
            dir.join("a.yaml").display(),
            dir.join("b.yml").display()
        )
    );
}

#[test]
fn loading_a_missing_file_names_it() {
    let path = repo().join("gateway").join("missing.yaml");
    let error = gateway::load(&path).unwrap_err();
    assert!(matches!(error, GatewayError::Read { .. }));
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}: cannot read: ", path.display())),
        "{error}"
    );
}

#[test]
fn validate_detects_a_duplicate_among_objects_built_in_code() {
    let objects = gateway::load(&gateway_file("grpcroute.yaml")).unwrap();
    let twice = [objects[0].clone(), objects[0].clone()];
    assert_eq!(
        gateway::validate(&twice).unwrap_err().to_string(),
        "GRPCRoute default/server: defined twice (objects 1 and 2 of the list)"
    );
}

#[test]
fn more_than_16_rules_are_refused() {
    let rules = "  - backendRefs: [{name: server-v1, port: 50051}]\n".repeat(17);
    assert_eq!(
        error_of(&canary(&rules)),
        "GRPCRoute default/canary: spec.rules: has 17 items, more than the 16 allowed"
    );
}

#[test]
fn more_than_64_matches_in_a_rule_are_refused() {
    let matches = vec!["{method: {service: a}}"; 65].join(", ");
    let rules =
        format!("  - matches: [{matches}]\n    backendRefs: [{{name: server-v1, port: 50051}}]\n");
    assert_eq!(
        error_of(&canary(&rules)),
        "GRPCRoute default/canary: spec.rules[0].matches: has 65 items, more than the 64 allowed"
    );
}

#[test]
fn more_than_128_matches_over_all_rules_are_refused() {
    let matches = vec!["{method: {service: a}}"; 43].join(", ");
    let rule =
        format!("  - matches: [{matches}]\n    backendRefs: [{{name: server-v1, port: 50051}}]\n");
    assert_eq!(
        error_of(&canary(&rule.repeat(3))),
        "GRPCRoute default/canary: spec.rules: has 129 matches over all rules, more than the 128 allowed"
    );
}

#[test]
fn a_header_name_that_is_not_an_http_token_is_refused() {
    let yaml = canary(
        "  - matches: [{headers: [{name: 'x canary', value: 'true'}]}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        r#"GRPCRoute default/canary: spec.rules[0].matches[0].headers[0].name: "x canary" is not a valid HTTP header name"#
    );
    let yaml = canary(
        "  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: 'x:y', value: '1'}]}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        r#"GRPCRoute default/canary: spec.rules[0].filters[0].requestHeaderModifier.set[0].name: "x:y" is not a valid HTTP header name"#
    );
}

#[test]
fn a_name_given_twice_in_a_list_keyed_by_name_is_refused_as_the_api_server_does() {
    let yaml = canary(
        "  - matches: [{headers: [{name: x-a, value: '1'}, {name: x-a, value: '2'}]}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        r#"GRPCRoute default/canary: spec.rules[0].matches[0].headers[1].name: "x-a" is already given by [0]"#
    );
    for (list, field) in [("set", "set[1].name"), ("add", "add[1].name")] {
        let yaml = canary(&format!(
            "  - filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{{list}: [{{name: x-b, value: '1'}}, {{name: x-b, value: '2'}}]}}}}]\n    backendRefs: [{{name: server-v1, port: 50051}}]\n"
        ));
        assert_eq!(
            error_of(&yaml),
            format!(
                r#"GRPCRoute default/canary: spec.rules[0].filters[0].requestHeaderModifier.{field}: "x-b" is already given by [0]"#
            )
        );
    }
    let yaml = canary(
        "  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {remove: [x-c, x-d, x-c]}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        r#"GRPCRoute default/canary: spec.rules[0].filters[0].requestHeaderModifier.remove[2]: "x-c" is already given by [0]"#
    );
}

#[test]
fn a_header_value_with_a_control_character_is_refused_as_istio_refuses_the_route() {
    let yaml = canary(
        "  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-a, value: \"a\\tb\"}, {name: x-b, value: \"a\\nb\"}]}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        "GRPCRoute default/canary: spec.rules[0].filters[0].requestHeaderModifier.add[1].value: header value has a control character (Istio refuses the route)"
    );
    let del = canary(
        "  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: \"a\\x7Fb\"}]}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert!(
        error_of(&del).ends_with(
            "set[0].value: header value has a control character (Istio refuses the route)"
        )
    );
}

#[test]
fn filters_other_than_request_header_modifier_are_refused_by_type() {
    let yaml = canary(
        "  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: server-v2, port: 50051}}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        "GRPCRoute default/canary: spec.rules[0].filters[0]: filter type RequestMirror is not supported (only RequestHeaderModifier)"
    );
    let yaml = http_route(
        "a",
        "  - filters: [{type: URLRewrite, urlRewrite: {hostname: example.com}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        "HTTPRoute default/a: spec.rules[0].filters[0]: filter type URLRewrite is not supported (only RequestHeaderModifier)"
    );
}

#[test]
fn a_backend_ref_without_port_is_refused_as_the_crd_does() {
    let yaml = canary("  - backendRefs: [{name: server-v1}]\n");
    assert_eq!(
        error_of(&yaml),
        "GRPCRoute default/canary: spec.rules[0].backendRefs[0].port: is required"
    );
}

#[test]
fn features_the_twin_cannot_route_on_are_refused() {
    let yaml = http_route(
        "a",
        "  - matches: [{queryParams: [{name: v, value: '2'}]}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        "HTTPRoute default/a: spec.rules[0].matches[0].queryParams: query parameter matches are not supported (the twin routes on path, method and headers)"
    );
    let yaml = canary("  - backendRefs: [{name: server-v1, port: 50051}]\n")
        .replace("name: server}", "name: server, sectionName: grpc}");
    assert_eq!(
        error_of(&yaml),
        "GRPCRoute default/canary: spec.parentRefs[0].sectionName: sectionName (a Service port name) is not supported: use port"
    );
}

#[test]
fn an_http_path_the_crd_refuses_is_refused() {
    let yaml = http_route(
        "a",
        "  - matches: [{path: {type: PathPrefix, value: hello}}]\n    backendRefs: [{name: server-v1, port: 50051}]\n",
    );
    assert_eq!(
        error_of(&yaml),
        r#"HTTPRoute default/a: spec.rules[0].matches[0].path.value: "hello" must start with '/'"#
    );
}

#[test]
fn all_errors_name_the_violation_as_a_typed_value() {
    let yaml = canary("  - backendRefs: [{name: server-v1, port: 50051, weight: -1}]\n");
    match gateway::parse(&yaml, "test.yaml").unwrap_err() {
        GatewayError::Invalid {
            object,
            field,
            violation,
        } => {
            assert_eq!(object, "GRPCRoute default/canary");
            assert_eq!(field, "spec.rules[0].backendRefs[0].weight");
            assert_eq!(
                violation,
                Violation::OutOfRange {
                    value: -1,
                    min: 0,
                    max: 1_000_000
                }
            );
        }
        other => panic!("unexpected error: {other}"),
    }
}

// ---- matches ----

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

// ---- Istio's order ----

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

// ---- backends and weights ----

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
fn set_weights_steps_the_demo_split_and_refuses_unknown_backends() {
    let mut objects = gateway::load(&gateway_file("httproute.yaml")).unwrap();
    gateway::set_weights(&mut objects[0], &[("server-v1", 90), ("server-v2", 10)]).unwrap();
    let (entries, _) = entries_of(&objects);
    assert_eq!(
        entries[0].backends,
        [backend("server-v1", 90), backend("server-v2", 10)]
    );
    gateway::validate(&objects).unwrap();

    let before = objects[0].clone();
    let error =
        gateway::set_weights(&mut objects[0], &[("server-v1", 50), ("server-v3", 50)]).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"HTTPRoute default/server: no backendRef named "server-v3" in any rule"#
    );
    assert_eq!(objects[0], before, "a refused call changes nothing");

    let error = gateway::set_weights(&mut objects[0], &[("server-v1", 1_000_001)]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "HTTPRoute default/server: backendRef server-v1 weight: 1000001 is out of range (0 to 1000000)"
    );
}

#[test]
fn set_weights_applies_to_every_rule_of_a_grpcroute() {
    let mut objects = gateway::load(&gateway_file("grpcroute.yaml")).unwrap();
    gateway::set_weights(&mut objects[0], &[("server-v2", 7)]).unwrap();
    let (entries, _) = entries_of(&objects);
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

// ---- parents, ports and namespaces ----

fn every_and_on_port(every_meta: &str, on_port_meta: &str) -> Vec<RouteObject> {
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

// ---- robustness ----

/// A small deterministic generator (xorshift), so that failures reproduce.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SPICE: &[&str] = &[
    "-",
    ":",
    " ",
    "\n",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "&a",
    "*a",
    "!!str ",
    "?",
    "|",
    ">",
    "#",
    "---\n",
    "~",
    "0",
    "-1",
    "99999999999",
    "RegularExpression",
    "(",
    "Service",
    "\"\"",
    "\t",
    "ü",
    "\u{0}",
];

fn mutate(text: &str, noise: &mut Noise) -> String {
    let mut out = text.to_owned();
    for _ in 0..=noise.below(4) {
        let mut at = noise.below(out.len() + 1);
        while !out.is_char_boundary(at) {
            at -= 1;
        }
        match noise.below(5) {
            0 => {
                let mut end = (at + 1 + noise.below(12)).min(out.len());
                while !out.is_char_boundary(end) {
                    end += 1;
                }
                out.replace_range(at..end, "");
            }
            1 | 2 => out.insert_str(at, SPICE[noise.below(SPICE.len())]),
            3 => out.truncate(at),
            _ => {
                let lines: Vec<&str> = out.lines().collect();
                if lines.len() > 1 {
                    let (a, b) = (noise.below(lines.len()), noise.below(lines.len()));
                    let mut lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
                    lines.swap(a, b);
                    out = lines.join("\n");
                }
            }
        }
    }
    out
}

#[test]
fn parse_never_panics_on_garbled_input_and_its_errors_stay_on_one_line() {
    let valid = [
        std::fs::read_to_string(gateway_file("httproute.yaml")).unwrap(),
        std::fs::read_to_string(gateway_file("grpcroute.yaml")).unwrap(),
        canary(concat!(
            "  - matches: [{method: {type: RegularExpression, service: 'a.*'}, headers: [{name: a, value: b}]}]\n",
            "    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}]\n",
            "    backendRefs: [{name: server-v1, port: 50051, weight: 3}]\n",
        )),
    ];
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..3000 {
        let text = mutate(&valid[round % valid.len()], &mut noise);
        match gateway::parse(&text, "fuzz.yaml") {
            Ok(objects) => {
                accepted += 1;
                let _ = gateway::route_table(&objects, &services());
            }
            Err(error) => {
                refused += 1;
                let line = error.to_string();
                assert!(!line.contains('\n'), "not one line for {text:?}: {line}");
            }
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn parse_never_panics_on_arbitrary_bytes() {
    let mut noise = Noise(42);
    for _ in 0..2000 {
        let len = noise.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| noise.next() as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = gateway::parse(&text, "random.yaml");
    }
}
