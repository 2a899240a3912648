//! The images with Docker: built, inspected and run as the cluster runs them. These fail, not
//! skip, when Docker is unavailable.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, Instant},
};

use hello_apps::client::{Summary, SummaryKind};

use super::*;
use crate::cluster::{
    images::{
        build::{build_envoy, static_binary},
        command::last_line,
    },
    objects::{GRPC_PORT, METRICS_PORT},
};

/// How long a started server may take to say it listens.
const LISTEN_LIMIT: Duration = Duration::from_secs(30);
/// How long one client run (one round of 10 RPCs) may take, in seconds for `timeout`.
const CLIENT_LIMIT_SECS: &str = "60";
/// The client's RPCs per round (its default `--concurrency`): one round sends this many.
const ROUND: u64 = 10;

/// Both images, built once for every test that needs them (the static release build is slow).
fn built() -> &'static Images {
    static BUILT: OnceLock<Images> = OnceLock::new();
    BUILT.get_or_init(|| {
        let sh = project::shell().unwrap();
        build(&sh, false).unwrap_or_else(|err| panic!("{err:#}"))
    })
}

#[cfg(target_os = "linux")]
#[test]
fn the_static_binaries_name_no_elf_interpreter() {
    built();
    let root = project::root();
    for name in [SERVER, CLIENT] {
        for path in [
            static_binary(&root, name),
            root.join(context_dir(name)).join("bin").join(name),
        ] {
            let elf = fs::read(&path).unwrap();
            assert_eq!(
                elf_interpreter(&elf).unwrap(),
                None,
                "{} is dynamically linked",
                path.display()
            );
        }
    }
}

#[test]
fn building_the_images_twice_gives_the_same_content_hash_tags() {
    let first = built().clone();
    let sh = project::shell().unwrap();
    let again = build(&sh, false).unwrap_or_else(|err| panic!("{err:#}"));
    assert_eq!(first, again);
    for image in [&again.server, &again.client] {
        assert_eq!(image.tag.len(), TAG_LEN, "{}", image.tag);
        assert!(
            image.tag.chars().all(|c| c.is_ascii_hexdigit()),
            "{}",
            image.tag
        );
    }
    assert_ne!(again.server.tag, again.client.tag);
}

#[test]
fn each_image_runs_its_app_as_nonroot_and_only_the_server_exposes_ports() {
    let images = built();
    let sh = project::shell().unwrap();
    let config = |image: &Image| -> serde_json::Value {
        let reference = image.reference();
        let format = "{{json .Config}}";
        let json = cmd!(sh, "docker image inspect --format {format} {reference}")
            .quiet()
            .read()
            .unwrap();
        serde_json::from_str(&json).unwrap()
    };
    let server = config(&images.server);
    assert_eq!(server["User"], "65532:65532");
    assert_eq!(
        server["Entrypoint"],
        serde_json::json!(["/usr/local/bin/hello-server"])
    );
    let ports: Vec<&String> = server["ExposedPorts"].as_object().unwrap().keys().collect();
    assert_eq!(
        ports,
        [&format!("{GRPC_PORT}/tcp"), &format!("{METRICS_PORT}/tcp")],
        "the ports the cluster's objects name"
    );
    let client = config(&images.client);
    assert_eq!(client["User"], "65532:65532");
    assert_eq!(
        client["Entrypoint"],
        serde_json::json!(["/usr/local/bin/hello-client"])
    );
    assert!(
        client["ExposedPorts"].is_null(),
        "{}",
        client["ExposedPorts"]
    );
}

#[cfg(target_os = "linux")]
#[test]
fn the_server_image_answers_the_host_client_as_its_container_host_name() {
    let images = built();
    let sh = project::shell().unwrap();
    let mut docker = Cleanup::default();
    let server = docker.container("srv");
    let image = images.server.reference();
    let publish = format!("127.0.0.1::{GRPC_PORT}");
    cmd!(sh, "docker run -d -p {publish} --name {server} {image}")
        .quiet()
        .ignore_stdout()
        .run()
        .unwrap();
    wait_listening(&sh, &server);
    let addr = published_addr(&sh, &server, GRPC_PORT);
    let host_name = host_name(&sh, &server);

    let client = static_binary(&project::root(), CLIENT);
    let target = format!("ipv4:{addr}");
    let out = client_output(cmd!(
        sh,
        "timeout -k 5 {CLIENT_LIMIT_SECS} {client} {target} --rounds 1 --output json"
    ));
    let last = final_summary(&out);
    assert_eq!((last.ok, last.errors), (ROUND, 0), "{out}");
    assert_eq!(
        last.by_server,
        BTreeMap::from([(host_name, ROUND)]),
        "{out}"
    );
}

#[test]
fn the_client_image_reaches_the_server_image_by_name_on_a_docker_network() {
    let images = built();
    let sh = project::shell().unwrap();
    let mut docker = Cleanup::default();
    let network = docker.network();
    let server = docker.container("srv");
    let client = docker.container("cli");
    let (server_image, client_image) = (images.server.reference(), images.client.reference());
    cmd!(
        sh,
        "docker run -d --network {network} --name {server} {server_image}"
    )
    .quiet()
    .ignore_stdout()
    .run()
    .unwrap();
    wait_listening(&sh, &server);
    let host_name = host_name(&sh, &server);

    // Inside the container, hickory reads /etc/resolv.conf: Docker's DNS at 127.0.0.11.
    let target = format!("dns:///{server}:{GRPC_PORT}");
    let out = client_output(cmd!(
        sh,
        "timeout -k 5 {CLIENT_LIMIT_SECS} docker run --network {network} --name {client} {client_image} {target} --rounds 1 --output json"
    ));
    let last = final_summary(&out);
    assert_eq!((last.ok, last.errors), (ROUND, 0), "{out}");
    assert_eq!(
        last.by_server,
        BTreeMap::from([(host_name, ROUND)]),
        "{out}"
    );
}

/// The Envoy image alone, built once (it needs no static build of the apps).
fn built_envoy() -> &'static Image {
    static BUILT: OnceLock<Image> = OnceLock::new();
    BUILT.get_or_init(|| {
        let sh = project::shell().unwrap();
        build_envoy(&sh, &project::root()).unwrap_or_else(|err| panic!("{err:#}"))
    })
}

/// The Envoy the twin runs.
fn twin_envoy() -> PathBuf {
    mesh::envoy::find(&project::root(), &mut |_| {}).unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn the_envoy_image_holds_the_twins_envoy_its_loader_and_every_library_it_links() {
    let sh = project::shell().unwrap();
    let bin = twin_envoy();
    let files = envoy_files(&sh, &bin).unwrap();
    assert_eq!(files[0], (PathBuf::from(ENVOY_IN_IMAGE), bin.clone()));
    let interpreter = elf_interpreter(&fs::read(&bin).unwrap())
        .unwrap()
        .expect("the wheel's envoy is dynamically linked");
    assert!(
        files.iter().any(
            |(inside, host)| Path::new("/").join(inside) == Path::new(&interpreter)
                && host == Path::new(&interpreter)
        ),
        "no loader at {interpreter}: {files:?}"
    );
    let libraries: Vec<String> = files
        .iter()
        .filter(|(inside, _)| inside.starts_with(ENVOY_LIBS_IN_IMAGE))
        .map(|(inside, _)| inside.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(libraries.contains(&"libc.so.6".to_owned()), "{libraries:?}");
    for (_, host) in &files {
        assert!(host.is_file(), "{}", host.display());
    }
    // Staged as files of their own: a symbolic link would point at a path the image lacks.
    built_envoy();
    let rootfs = project::root().join(context_dir(ENVOY)).join("rootfs");
    for (inside, _) in &files {
        let staged = fs::symlink_metadata(rootfs.join(inside)).unwrap();
        assert!(staged.is_file(), "{} is not a plain file", inside.display());
    }
}

#[test]
fn the_envoy_image_reports_the_twins_envoy_version() {
    let image = built_envoy().reference();
    assert!(image.starts_with("grpc-mesh-lab/envoy:"), "{image}");
    let sh = project::shell().unwrap();
    let inside = cmd!(sh, "docker run --rm --entrypoint envoy {image} --version")
        .quiet()
        .read()
        .unwrap();
    let host = twin_envoy();
    let outside = cmd!(sh, "{host} --version").quiet().read().unwrap();
    // `<argv[0]>  version: <sha>/<version>/Clean/RELEASE/BoringSSL`: the same build.
    let build = |text: &str| {
        text.split_once("version: ")
            .map(|(_, b)| b.trim().to_owned())
    };
    assert_eq!(build(&inside), build(&outside), "{inside} / {outside}");
    assert!(
        inside.contains(&format!("/{}.", mesh::envoy::ENVOY_SERIES)),
        "{inside}"
    );
}

#[test]
fn the_envoy_image_serves_ready_when_run_as_the_pods_run_it() {
    let image = built_envoy().reference();
    let sh = project::shell().unwrap();
    let mut docker = Cleanup::default();
    let name = docker.container("envoy");
    // As cluster/objects.rs runs it: `envoy` by name, user 101, read-only root, no
    // capabilities, no privilege escalation, two workers, no hot restart.
    let config =
        r#"{"admin":{"address":{"socket_address":{"address":"0.0.0.0","port_value":9901}}}}"#;
    cmd!(
        sh,
        "docker run -d --name {name} --read-only --user 101:101 --cap-drop ALL --security-opt no-new-privileges -p 127.0.0.1::9901 --entrypoint envoy {image} --config-yaml {config} --concurrency 2 --log-level warn --disable-hot-restart"
    )
    .quiet()
    .ignore_stdout()
    .run()
    .unwrap();
    let addr = published_addr(&sh, &name, 9901);
    let deadline = Instant::now() + LISTEN_LIMIT;
    loop {
        if let Some(reply) = http_get(addr, "/ready")
            && reply.starts_with("HTTP/1.1 200")
        {
            let (_, body) = reply.split_once("\r\n\r\n").unwrap_or_default();
            // Chunked: `5`, `LIVE\n`, `0`.
            assert!(body.contains("\r\nLIVE\n\r\n"), "{reply}");
            break;
        }
        let format = "{{.State.Status}}";
        let state = cmd!(sh, "docker inspect --format {format} {name}")
            .quiet()
            .read()
            .unwrap_or_default();
        let logs = || {
            let out = cmd!(sh, "docker logs {name}")
                .quiet()
                .ignore_status()
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        assert!(
            state == "running" || state == "created",
            "envoy is {state}: {}",
            logs()
        );
        assert!(
            Instant::now() < deadline,
            "envoy's admin was not ready within {LISTEN_LIMIT:?}: {}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The host address Docker published a container's TCP `port` on (`docker port`).
fn published_addr(sh: &Shell, container: &str, port: u16) -> SocketAddr {
    let spec = format!("{port}/tcp");
    let printed = cmd!(sh, "docker port {container} {spec}")
        .quiet()
        .read()
        .unwrap();
    first_line(&printed)
        .and_then(|line| line.parse().ok())
        .unwrap_or_else(|| panic!("docker port printed {printed:?}"))
}

/// One HTTP/1.1 GET (Envoy refuses HTTP/1.0 by default); the whole reply, or `None` when the
/// connection fails.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: envoy\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    Some(reply)
}

/// Runs a client to its end; its stdout, or a failure that quotes its stderr.
fn client_output(command: xshell::Cmd<'_>) -> String {
    let output = command.quiet().ignore_status().output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "the client failed ({}): {stderr}{stdout}",
        output.status
    );
    stdout.into_owned()
}

/// The client's last JSON line, which must be its final summary.
fn final_summary(out: &str) -> Summary {
    let line = last_line(out).unwrap_or_else(|| panic!("the client printed nothing"));
    let summary: Summary =
        serde_json::from_str(line).unwrap_or_else(|err| panic!("not a summary ({err}): {line}"));
    assert_eq!(summary.kind, SummaryKind::Final, "{out}");
    summary
}

/// The host name Docker gave a container, which hello-server takes as its identity.
fn host_name(sh: &Shell, container: &str) -> String {
    let format = "{{.Config.Hostname}}";
    let name = cmd!(sh, "docker inspect --format {format} {container}")
        .quiet()
        .read()
        .unwrap();
    assert!(!name.is_empty());
    name
}

/// Polls the container's log until hello-server says it listens (it binds first, then logs
/// `listening`); fails when it exits or the deadline passes.
fn wait_listening(sh: &Shell, container: &str) {
    let deadline = Instant::now() + LISTEN_LIMIT;
    loop {
        let logs = cmd!(sh, "docker logs {container}")
            .quiet()
            .ignore_status()
            .output()
            .unwrap();
        let logs = format!(
            "{}{}",
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&logs.stderr)
        );
        if logs.contains("listening") {
            return;
        }
        let format = "{{.State.Status}}";
        let state = cmd!(sh, "docker inspect --format {format} {container}")
            .quiet()
            .read()
            .unwrap_or_default();
        assert!(
            state == "running" || state == "created",
            "{container} is {state}: {logs}"
        );
        assert!(
            Instant::now() < deadline,
            "{container} did not listen within {LISTEN_LIMIT:?}: {logs}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Containers and networks to remove when the test ends, however it ends.
#[derive(Default)]
struct Cleanup {
    containers: Vec<String>,
    networks: Vec<String>,
}

impl Cleanup {
    fn container(&mut self, role: &str) -> String {
        let name = format!("gml-test-{role}-{}", unique());
        self.containers.push(name.clone());
        name
    }

    fn network(&mut self) -> String {
        let name = format!("gml-test-net-{}", unique());
        let sh = Shell::new().unwrap();
        cmd!(sh, "docker network create {name}")
            .quiet()
            .ignore_stdout()
            .run()
            .unwrap();
        self.networks.push(name.clone());
        name
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(sh) = Shell::new() else { return };
        let (containers, networks) = (&self.containers, &self.networks);
        if !containers.is_empty() {
            let _ = cmd!(sh, "docker rm -f {containers...}")
                .quiet()
                .ignore_status()
                .ignore_stdout()
                .ignore_stderr()
                .run();
        }
        if !networks.is_empty() {
            let _ = cmd!(sh, "docker network rm {networks...}")
                .quiet()
                .ignore_status()
                .ignore_stdout()
                .ignore_stderr()
                .run();
        }
    }
}
