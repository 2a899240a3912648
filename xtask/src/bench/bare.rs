//! The bare tonic server the server figure compares hello-server with.
//!
//! xtask itself runs as a debug build (`cargo xtask` is `cargo run`), so a server inside it would
//! be compiled far less optimised than the release hello-server it is compared with. The bench
//! therefore writes the server (`bare/main.rs`) into a crate of its own under the target
//! directory, with the workspace's `Cargo.lock`, its tonic and tokio requirements and its profiles,
//! and builds it with the apps' profile into the same target directory (where the compiled
//! dependencies are shared with the workspace's when their features agree).

use std::{
    ffi::OsString,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use mesh::process::{Output, Process};
use xshell::{Shell, cmd};

use crate::project::{self, Profile};

/// The package (and binary) name of the generated crate.
pub const NAME: &str = "bench-bare-server";
/// The server's source.
const MAIN: &str = include_str!("bare/main.rs");
/// The workspace dependencies the server uses, as the root manifest pins them.
const DEPENDENCIES: [&str; 2] = ["tonic", "tokio"];
/// How long the server may take to write its address.
const READY_DEADLINE: Duration = Duration::from_secs(15);

/// Writes the crate and builds it; returns the binary.
pub fn build(sh: &Shell, profile: Profile) -> Result<PathBuf> {
    let root = project::root();
    let target = target_dir(&root, std::env::var_os("CARGO_TARGET_DIR"));
    let dir = target.join("bench").join(NAME);
    let root_manifest = std::fs::read_to_string(root.join("Cargo.toml"))
        .context("cannot read the workspace's Cargo.toml")?;
    let manifest = manifest(&root_manifest, &root.join("proto"))?;
    write_if_changed(&dir.join("Cargo.toml"), &manifest)?;
    write_if_changed(&dir.join("src").join("main.rs"), MAIN)?;
    // The workspace's versions; cargo adds this crate and leaves out what it does not use.
    let lock = std::fs::read_to_string(root.join("Cargo.lock"))
        .context("cannot read the workspace's Cargo.lock")?;
    write_if_changed(&dir.join("Cargo.lock"), &lock)?;
    crate::output::progress(&format!(
        "building the bare tonic server ({})",
        profile_dir(profile)
    ));
    let cargo = project::cargo();
    let manifest_path = dir.join("Cargo.toml");
    let release = (profile == Profile::Release).then_some("--release");
    cmd!(
        sh,
        "{cargo} build {release...} --manifest-path {manifest_path} --target-dir {target}"
    )
    .quiet()
    .run()
    .context("cannot build the bare tonic server")?;
    let bin = target
        .join(profile_dir(profile))
        .join(format!("{NAME}{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!("cargo built {NAME} but {} does not exist", bin.display());
    }
    Ok(bin)
}

fn profile_dir(profile: Profile) -> &'static str {
    match profile {
        Profile::Release => "release",
        Profile::Debug => "debug",
    }
}

/// `CARGO_TARGET_DIR` if set (relative to the project root), else `<root>/target`, as
/// `project::build_apps` finds it.
fn target_dir(root: &Path, cargo_target_dir: Option<OsString>) -> PathBuf {
    match cargo_target_dir.filter(|dir| !dir.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        // Untouched, so that cargo has nothing to rebuild.
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The generated crate's manifest: its own (empty) workspace, `hello-proto` by path, tonic and
/// tokio as `[workspace.dependencies]` pins them, and the workspace's profiles.
fn manifest(root_manifest: &str, proto: &Path) -> Result<String> {
    let mut out = format!(
        "# Written by `cargo xtask bench` (xtask/src/bench/bare.rs); edits are overwritten.\n\
         [package]\nname = \"{NAME}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\nhello-proto = {{ path = {} }}\n",
        toml_string(&proto.to_string_lossy())
    );
    let deps = section(root_manifest, |h| h == "workspace.dependencies");
    for name in DEPENDENCIES {
        let line = deps
            .iter()
            .find(|l| l.split_once('=').is_some_and(|(key, _)| key.trim() == name))
            .with_context(|| {
                format!(
                    "the workspace's Cargo.toml has no one-line {name} in [workspace.dependencies]"
                )
            })?;
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("\n[workspace]\n");
    for line in section(root_manifest, |h| h.starts_with("profile.")) {
        if line.starts_with('[') {
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// The lines of every table whose header (without brackets) `wanted` accepts, header lines
/// included; comments and blank lines dropped.
fn section(manifest: &str, wanted: impl Fn(&str) -> bool) -> Vec<&str> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let trimmed = line.trim();
        if let Some(header) = trimmed.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            inside = wanted(header.trim_matches(['[', ']']));
            if inside {
                out.push(trimmed);
            }
            continue;
        }
        if inside && !trimmed.is_empty() && !trimmed.starts_with('#') {
            out.push(trimmed);
        }
    }
    out
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A running bare server; killed when dropped.
pub struct BareServer {
    pub addr: SocketAddr,
    process: Process,
}

impl BareServer {
    /// Starts the server on `127.0.0.1` (any port) and waits until it has written its address
    /// into `<work_dir>/bare-server.addr`.
    pub async fn start(bin: &Path, work_dir: &Path) -> Result<BareServer> {
        let addr_file = work_dir.join("bare-server.addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut command = Command::new(bin);
        command
            .env_clear()
            .arg(&addr_file)
            .current_dir(work_dir)
            .stdout(Stdio::null());
        let mut process = Process::spawn("the bare tonic server", command, Output::Keep)?;
        let listening = || {
            let found = std::fs::read_to_string(&addr_file)
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .ok_or_else(|| "it has not written its address yet".to_owned());
            std::future::ready(found)
        };
        let addr = process.wait_ready(READY_DEADLINE, listening).await?;
        Ok(BareServer { addr, process })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGTERM, then SIGKILL after 5s.
    pub async fn stop(mut self) -> Result<()> {
        Ok(self.process.stop(Duration::from_secs(5)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_takes_the_pins_and_profiles_of_the_workspace() {
        let root = "[workspace]\nmembers = [\"a\"]\n\n[workspace.dependencies]\n# gRPC\ntonic = { version = \"0.14.9\", features = [\"server\"] }\ntonic-prost = \"0.14.9\"\ntokio = { version = \"1.47\", features = [\"full\"] }\n\n[workspace.lints.rust]\nunsafe_code = \"deny\"\n\n[profile.dev.package.\"*\"]\nopt-level = 1\n\n[profile.release]\ndebug = \"line-tables-only\"\n";
        let out = manifest(root, Path::new("/src/lab/proto")).unwrap();
        assert!(out.contains("name = \"bench-bare-server\""), "{out}");
        assert!(
            out.contains("hello-proto = { path = \"/src/lab/proto\" }"),
            "{out}"
        );
        assert!(out.contains("\ntonic = { version = \"0.14.9\", features = [\"server\"] }\n"));
        assert!(out.contains("\ntokio = { version = \"1.47\", features = [\"full\"] }\n"));
        assert!(!out.contains("tonic-prost"), "{out}");
        assert!(!out.contains("unsafe_code"), "{out}");
        assert!(out.contains("\n[workspace]\n"), "{out}");
        assert!(
            out.contains("[profile.dev.package.\"*\"]\nopt-level = 1\n"),
            "{out}"
        );
        assert!(
            out.contains("[profile.release]\ndebug = \"line-tables-only\"\n"),
            "{out}"
        );
    }

    #[test]
    fn the_workspace_manifest_has_what_the_bare_server_needs() {
        let root = project::root();
        let text = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let out = manifest(&text, &root.join("proto")).unwrap();
        for name in DEPENDENCIES {
            assert!(out.contains(&format!("\n{name} = ")), "{name}: {out}");
        }
    }

    #[test]
    fn a_dependency_split_over_lines_is_an_error_that_names_it() {
        let root = "[workspace.dependencies]\ntokio = \"1\"\n[workspace.dependencies.tonic]\nversion = \"0.14\"\n";
        let err = manifest(root, Path::new("/p")).unwrap_err().to_string();
        assert!(err.contains("no one-line tonic"), "{err}");
    }
}
