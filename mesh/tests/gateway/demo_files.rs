//! The demos' route files (`gateway/`), loaded as they are and turned into entries.

use mesh::{
    gateway::{self, RouteObject},
    model::{HeaderMatch, HeaderModifier, Match, RouteEntry, RouteKind, StringMatch},
};

use super::support::{backend, entries_of, exact, gateway_file, names, repo};

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
