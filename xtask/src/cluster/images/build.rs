//! Building the images: on Linux from the static binaries built on the host and the twin's own
//! Envoy with its loader and libraries, elsewhere from a copy of the workspace's sources.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use xshell::{Shell, cmd};

use super::{
    CLIENT, ENVOY, ENVOY_DOCKERFILE, ENVOY_IN_IMAGE, ENVOY_LIBS_IN_IMAGE, Image, Images,
    SCRATCH_DOCKERFILE, SERVER, SOURCE_CONTEXT, SOURCE_DOCKERFILE, STATIC_RUSTFLAGS,
    STATIC_TARGET_DIR,
    command::{docker_build, static_cargo_build},
    content_tag, context_dir,
    elf::elf_interpreter,
    read,
};
use crate::project;

pub(super) fn build_from_static_binaries(sh: &Shell, root: &Path) -> Result<Images> {
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
pub(super) fn build_envoy(sh: &Shell, root: &Path) -> Result<Image> {
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
        hash_file(&mut hash, &inside.to_string_lossy(), &read(&staged)?);
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
pub(super) fn static_binary(root: &Path, name: &str) -> PathBuf {
    root.join(STATIC_TARGET_DIR)
        .join(host_triple())
        .join("release")
        .join(name)
}

/// This host's target triple for the static build: the same architecture, glibc.
pub(super) fn host_triple() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

pub(super) fn build_from_source(sh: &Shell, root: &Path) -> Result<Images> {
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
pub(super) fn copy_sources(sh: &Shell, root: &Path, dest: &Path) -> Result<Vec<u8>> {
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
        hash_file(
            &mut hash,
            &file.to_string_lossy().replace('\\', "/"),
            &bytes,
        );
    }
    Ok(hash.finalize().to_vec())
}

/// Feeds one file to `hash`: the length of its path and the path, then the length of its content
/// and the content.
fn hash_file(hash: &mut Sha256, path: &str, bytes: &[u8]) {
    hash.update((path.len() as u64).to_le_bytes());
    hash.update(path.as_bytes());
    hash.update((bytes.len() as u64).to_le_bytes());
    hash.update(bytes);
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
