//! Where the project is, and how to build the apps the tasks run.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// The workspace root: the parent of this crate's folder.
pub fn root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("xtask lives in a folder of the workspace")
        .to_path_buf()
}

/// A shell whose working directory is the project root, so that every command runs there
/// whichever folder `cargo xtask` was started from.
pub fn shell() -> Result<Shell> {
    let sh = Shell::new().context("cannot create a shell")?;
    sh.change_dir(root());
    Ok(sh)
}

/// The cargo that runs us (`CARGO`, set by `cargo run` and `cargo test`), else the one on `PATH`.
pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Fails unless `program --version` runs, with an error that says how to get it.
pub fn require(sh: &Shell, program: &OsString, how_to_get: &str) -> Result<()> {
    cmd!(sh, "{program} --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .with_context(|| {
            format!(
                "{} is required but cannot be run: {how_to_get}",
                program.to_string_lossy()
            )
        })
}

/// Which cargo profile to build the apps with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Release,
    Debug,
}

impl Profile {
    /// The folder of the target directory that cargo puts this profile's binaries in.
    fn dir(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

/// The app binaries, built.
#[derive(Debug, Clone)]
pub struct Apps {
    pub server: PathBuf,
    pub client: PathBuf,
}

/// Builds hello-server and hello-client once (`cargo build [--release] -p hello-apps --bins`)
/// and returns where they are.
pub fn build_apps(sh: &Shell, profile: Profile) -> Result<Apps> {
    let cargo = cargo();
    require(sh, &cargo, "install Rust with rustup (https://rustup.rs)")?;
    eprintln!(
        "==> building hello-server and hello-client ({})",
        profile.dir()
    );
    let release = (profile == Profile::Release).then_some("--release");
    cmd!(sh, "{cargo} build {release...} -p hello-apps --bins")
        .quiet()
        .run()
        .context("cannot build hello-server and hello-client")?;
    let dir = target_dir(&root(), std::env::var_os("CARGO_TARGET_DIR")).join(profile.dir());
    let bin = |name: &str| -> Result<PathBuf> {
        let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        if !path.is_file() {
            bail!(
                "cargo built {name} but {} does not exist (if a cargo config sets build.target-dir, set CARGO_TARGET_DIR instead)",
                path.display()
            );
        }
        Ok(path)
    };
    Ok(Apps {
        server: bin("hello-server")?,
        client: bin("hello-client")?,
    })
}

/// `CARGO_TARGET_DIR` if set (relative to the project root, where cargo runs), else
/// `<root>/target`.
fn target_dir(root: &Path, cargo_target_dir: Option<OsString>) -> PathBuf {
    match cargo_target_dir.filter(|dir| !dir.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_root_holds_the_workspace_manifest_and_this_crate() {
        let root = root();
        assert!(root.join("Cargo.toml").is_file(), "{}", root.display());
        assert!(root.join("xtask").join("Cargo.toml").is_file());
    }

    #[test]
    fn the_target_dir_is_cargo_target_dir_when_set_else_target_under_the_root() {
        let root = Path::new("/src/lab");
        assert_eq!(target_dir(root, None), Path::new("/src/lab/target"));
        assert_eq!(
            target_dir(root, Some("".into())),
            Path::new("/src/lab/target")
        );
        assert_eq!(target_dir(root, Some("/tmp/t".into())), Path::new("/tmp/t"));
        assert_eq!(
            target_dir(root, Some("out".into())),
            Path::new("/src/lab/out")
        );
    }
}
