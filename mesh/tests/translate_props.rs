//! Properties of the route loader and the translation, over generated input:
//!
//! - any set of routes the loader accepts becomes an Envoy configuration that Envoy 1.40 itself accepts
//!   (`envoy --mode validate` on a static bootstrap holding the sidecar's listeners, routes and clusters),
//!   whatever the mesh's default retry policy; header changes include `host`, which Envoy refuses to
//!   set or remove, so the translation must turn it into Istio's authority rewrite;
//! - the loader never panics, whatever text it is given.
//!
//! The generator is seeded: a failure prints its seed and input, and `PROP_SEED=<n>` runs that case alone.
//! Routes are drawn from pieces both valid and invalid (regular expressions Envoy's RE2 might refuse, names
//! with odd characters, weights at and beyond the limits), so that both outcomes are exercised; the tests
//! check that they are.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
};

use mesh::{
    gateway,
    model::{MeshConfig, RetryPolicy, Service},
    translate::{self, Role},
    twin::sidecar,
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};

/// Routes generated for the Envoy property; each accepted set costs one `envoy --mode validate`.
const ROUTE_CASES: u64 = 200;
/// Texts for the no-panic property.
const TEXT_CASES: u64 = 3000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn seeds(cases: u64) -> Vec<u64> {
    match std::env::var("PROP_SEED") {
        Ok(seed) => vec![seed.parse().expect("PROP_SEED is a number")],
        Err(_) => (0..cases).collect(),
    }
}

// Each kind of piece comes as (valid, invalid); an invalid one is drawn now and then.
const REGEXES: (&[&str], &[&str]) = (
    &[
        "v[0-9]+",
        ".*",
        "^canary$",
        "(a|b)+",
        "\\d{1,3}",
        "[[:alpha:]]+",
        "\\pL+",
        "(?i)yes",
        "a{2,}",
        "(?P<n>x)",
        "\\bword\\b",
    ],
    &["(", "[z-a]", "x{1001}"],
);
const NAMES: (&[&str], &[&str]) = (
    &[
        "x-canary",
        "x-user",
        "user-agent",
        "x_ok",
        "X-Upper",
        "x-upper",
        "host",
        "Host",
    ],
    &["bad header", "", "x:colon"],
);
const VALUES: (&[&str], &[&str]) = (
    &["true", "v2", "a b", "ünïcode", "\"quoted\"", "tab\there"],
    &["", "new\nline"],
);
const SERVICES: (&[&str], &[&str]) = (
    &["hello.v1.Greeter", "Greeter", "a.b.C"],
    &["bad/slash", "", "x*"],
);
const METHODS: (&[&str], &[&str]) = (&["SayHello", "SayHelloAgain"], &["", "Say.Hello", "M*"]);
const BACKENDS: (&[&str], &[&str]) = (
    &["server-v1", "server-v2", "server", "missing"],
    &["Bad_Name"],
);
const WEIGHTS: (&[&str], &[&str]) = (
    &["0", "1", "50", "90", "999999", "1000000"],
    &["1000001", "-1"],
);
const PATHS: (&[&str], &[&str]) = (
    &["/", "/hello.v1.Greeter/", "/x", "/a%20b"],
    &["relative", "/%zz", "/a b"],
);

/// How often an invalid piece is drawn.
const INVALID: f64 = 0.04;

fn pick<'a>(rng: &mut StdRng, (valid, invalid): (&'a [&'a str], &'a [&'a str])) -> &'a str {
    let from = if rng.random_bool(INVALID) {
        invalid
    } else {
        valid
    };
    from.choose(rng).unwrap()
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn header(rng: &mut StdRng) -> String {
    let regex = rng.random_bool(0.4);
    let value = if regex {
        pick(rng, REGEXES)
    } else {
        pick(rng, VALUES)
    };
    format!(
        "{{name: {}, value: {}{}}}",
        quoted(pick(rng, NAMES)),
        quoted(value),
        if regex {
            ", type: RegularExpression"
        } else {
            ""
        }
    )
}

fn backends(rng: &mut StdRng) -> String {
    let n = rng.random_range(0..=3);
    let refs: Vec<String> = (0..n)
        .map(|_| {
            let weight = if rng.random_bool(0.8) {
                format!(", weight: {}", pick(rng, WEIGHTS))
            } else {
                String::new()
            };
            let port = if rng.random_bool(0.95) {
                ", port: 50051"
            } else {
                ""
            };
            format!("{{name: {}{port}{weight}}}", quoted(pick(rng, BACKENDS)))
        })
        .collect();
    format!("[{}]", refs.join(", "))
}

fn grpc_match(rng: &mut StdRng) -> String {
    let mut parts = Vec::new();
    if rng.random_bool(0.8) {
        let mut method = Vec::new();
        // neither a service nor a method is invalid: now and then
        let service = rng.random_bool(0.9);
        if service {
            method.push(format!("service: {}", quoted(pick(rng, SERVICES))));
        }
        if !service && rng.random_bool(1.0 - INVALID) || rng.random_bool(0.6) {
            method.push(format!("method: {}", quoted(pick(rng, METHODS))));
        }
        if rng.random_bool(0.2) {
            method.push("type: RegularExpression".to_owned());
        }
        parts.push(format!("method: {{{}}}", method.join(", ")));
    }
    if rng.random_bool(0.4) {
        let headers: Vec<String> = (0..rng.random_range(1..=2)).map(|_| header(rng)).collect();
        parts.push(format!("headers: [{}]", headers.join(", ")));
    }
    format!("{{{}}}", parts.join(", "))
}

fn http_match(rng: &mut StdRng) -> String {
    let mut parts = Vec::new();
    if rng.random_bool(0.7) {
        let kind = ["PathPrefix", "Exact", "RegularExpression"]
            .choose(rng)
            .unwrap();
        let value = if *kind == "RegularExpression" {
            pick(rng, REGEXES)
        } else {
            pick(rng, PATHS)
        };
        parts.push(format!("path: {{type: {kind}, value: {}}}", quoted(value)));
    }
    if rng.random_bool(0.3) {
        parts.push(format!("headers: [{}]", header(rng)));
    }
    if rng.random_bool(0.2) {
        parts.push(format!(
            "method: {}",
            ["POST", "GET", "BREW"].choose(rng).unwrap()
        ));
    }
    format!("{{{}}}", parts.join(", "))
}

/// Now and then a `RequestHeaderModifier`, `host` included.
fn filters(rng: &mut StdRng) -> String {
    if !rng.random_bool(0.3) {
        return String::new();
    }
    let mut lists = Vec::new();
    for list in ["set", "add"] {
        if rng.random_bool(0.6) {
            let headers: Vec<String> = (0..rng.random_range(1..=2))
                .map(|_| {
                    format!(
                        "{{name: {}, value: {}}}",
                        quoted(pick(rng, NAMES)),
                        quoted(pick(rng, VALUES))
                    )
                })
                .collect();
            lists.push(format!("{list}: [{}]", headers.join(", ")));
        }
    }
    if rng.random_bool(0.4) {
        lists.push(format!("remove: [{}]", quoted(pick(rng, NAMES))));
    }
    format!(
        "    filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{{}}}}}]\n",
        lists.join(", ")
    )
}

/// One to three route objects, as YAML.
fn routes(rng: &mut StdRng) -> String {
    let objects: Vec<String> = (0..rng.random_range(1..=3))
        .map(|i| {
            let grpc = rng.random_bool(0.6);
            let rules: Vec<String> = (0..rng.random_range(1..=4))
                .map(|_| {
                    let matches: Vec<String> = (0..rng.random_range(0..=3))
                        .map(|_| if grpc { grpc_match(rng) } else { http_match(rng) })
                        .collect();
                    format!(
                        "  - matches: [{}]\n    backendRefs: {}\n{}",
                        matches.join(", "),
                        backends(rng),
                        filters(rng)
                    )
                })
                .collect();
            let parent = if rng.random_bool(0.9) {
                "[{group: \"\", kind: Service, name: server}]"
            } else {
                "[{group: \"\", kind: Service, name: server-v2, port: 50051}]"
            };
            format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: {}\nmetadata: {{name: route-{i}}}\nspec:\n  parentRefs: {parent}\n  rules:\n{}",
                if grpc { "GRPCRoute" } else { "HTTPRoute" },
                rules.concat()
            )
        })
        .collect();
    objects.join("---\n")
}

/// The demos' Services; `server-v2` is headless (its virtual host has wildcard domains too).
fn services() -> Vec<Service> {
    ["server", "server-v1", "server-v2"]
        .iter()
        .enumerate()
        .map(|(i, name)| Service {
            name: (*name).to_owned(),
            namespace: "default".to_owned(),
            port: 50051,
            endpoints: vec![SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + i as u8)),
                50051,
            )],
            headless: *name == "server-v2",
        })
        .collect()
}

/// Istio's defaults, or a mesh-wide retry policy with `reset` (as the kill demo sets).
fn mesh_config(rng: &mut StdRng) -> MeshConfig {
    MeshConfig {
        default_http_retry_policy: rng
            .random_bool(0.3)
            .then(|| RetryPolicy::istio_default_with("reset")),
    }
}

#[test]
fn any_route_set_the_loader_accepts_is_a_configuration_envoy_accepts() {
    let envoy = mesh::envoy::find(&root(), &mut |line| eprintln!("{line}"))
        .expect("envoy is needed by this test");
    let work = root()
        .join("target/tmp/translate-props")
        .join(std::process::id().to_string());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (mut accepted, mut refused) = (0, 0);
    for seed in seeds(ROUTE_CASES) {
        let mut rng = StdRng::seed_from_u64(seed);
        let yaml = routes(&mut rng);
        let objects = match gateway::parse(&yaml, "generated") {
            Ok(objects) => objects,
            Err(err) => {
                if std::env::var_os("PROP_VERBOSE").is_some() {
                    eprintln!("seed {seed}: {err}");
                }
                refused += 1;
                continue;
            }
        };
        accepted += 1;
        let services = services();
        let (table, _warnings) = gateway::route_table(&objects, &services);
        let role = Role::Sidecar {
            ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            passthrough: Vec::new(),
        };
        let mesh = mesh_config(&mut rng);
        let resources = translate::resources(&role, &services, &table, &mesh);
        let dir = work.join(seed.to_string());
        let mut bootstrap = sidecar::static_bootstrap(&resources, &dir).unwrap();
        // the twin gives Envoy its node on the command line; validation needs it in the bootstrap
        bootstrap["node"] = serde_json::json!({ "id": "props", "cluster": "props" });
        if let Err(err) = runtime.block_on(mesh::envoy::validate(&envoy, &bootstrap, &dir)) {
            panic!("seed {seed}: the loader accepted routes that envoy refuses: {err}\n{yaml}");
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    if std::env::var("PROP_SEED").is_err() {
        // Both outcomes were explored, or the generator is broken.
        assert!(
            accepted >= ROUTE_CASES / 5,
            "only {accepted} of {ROUTE_CASES} accepted"
        );
        assert!(
            refused >= ROUTE_CASES / 5,
            "only {refused} of {ROUTE_CASES} refused"
        );
    }
    eprintln!("{accepted} route sets accepted and validated by envoy, {refused} refused");
}

/// Valid route files with characters deleted, repeated, swapped or replaced.
fn mutated(rng: &mut StdRng, sources: &[String]) -> String {
    let mut bytes: Vec<u8> = sources.choose(rng).unwrap().clone().into_bytes();
    for _ in 0..rng.random_range(1..=8) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..5) {
            0 => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, *b"{}[]:-\"'\n &*!|>%@`#".choose(rng).unwrap()),
            2 => bytes[at] = rng.random(),
            3 => {
                let end = (at + rng.random_range(1..40)).min(bytes.len());
                let piece = bytes[at..end].to_vec();
                bytes.splice(at..at, piece);
            }
            _ => bytes.truncate(at),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn the_loader_never_panics_whatever_the_text() {
    let mut sources: Vec<String> = ["gateway/httproute.yaml", "gateway/grpcroute.yaml"]
        .iter()
        .map(|f| std::fs::read_to_string(root().join(f)).unwrap())
        .collect();
    let mut rng = StdRng::seed_from_u64(7);
    sources.extend((0..20).map(|_| routes(&mut rng)));
    let (mut parsed, mut refused) = (0, 0);
    for seed in seeds(TEXT_CASES) {
        let mut rng = StdRng::seed_from_u64(seed);
        let text = mutated(&mut rng, &sources);
        let outcome = std::panic::catch_unwind(|| {
            gateway::parse(&text, "fuzz").map(|objects| {
                // what loads is also tabled and translated without a panic
                let (table, _) = gateway::route_table(&objects, &services());
                let role = Role::Sidecar {
                    ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
                    passthrough: Vec::new(),
                };
                translate::resources(&role, &services(), &table, &MeshConfig::default());
            })
        });
        match outcome {
            Ok(Ok(())) => parsed += 1,
            Ok(Err(err)) => {
                refused += 1;
                let message = err.to_string();
                assert!(
                    !message.contains('\n') && !message.is_empty(),
                    "seed {seed}: an error is one line: {message:?}"
                );
            }
            Err(_) => panic!("seed {seed}: the loader panicked on:\n{text}"),
        }
    }
    eprintln!("{parsed} texts loaded, {refused} refused");
    if std::env::var("PROP_SEED").is_err() {
        assert!(
            parsed > 0 && refused > 0,
            "{parsed} loaded, {refused} refused"
        );
    }
}
