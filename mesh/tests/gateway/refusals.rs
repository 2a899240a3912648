//! Refusals: every object the loader will not take, each with a one-line error naming the
//! object, the field and the reason.

use mesh::gateway::{self, GatewayError, Violation};

use super::support::{canary, error_of, gateway_file, grpc_route, http_route, parse_ok, repo};

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
fn a_route_set_built_in_code_refuses_a_duplicate() {
    let objects = gateway::load(&gateway_file("grpcroute.yaml")).unwrap();
    let twice = vec![objects[0].clone(), objects[0].clone()];
    assert_eq!(
        gateway::Routes::new(twice).unwrap_err().to_string(),
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
