//! Helpers the mesh's integration tests share: the project root and the apps' binaries.

use std::{path::PathBuf, process::Command};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the apps (a no-op when they are up to date) and returns the directory of the binaries.
pub fn bins() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "hello-apps", "--bins"])
                .current_dir(root())
                .status()
                .expect("cargo build");
            assert!(status.success(), "building the apps failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root().join("target"), PathBuf::from);
            target.join("debug")
        })
        .clone()
}
