//! Downloads into `.tools/` (`src/up/fetch.rs`, included here): kept under their name only once
//! their checksum matches; refused, interrupted or missing downloads leave no file behind; a fresh
//! clone's missing `.tools/` is created. Each test serves the bytes from an HTTP server of its
//! own on a loopback port, and `curl` fetches them as it fetches a release.

use std::{
    fs,
    path::{Path, PathBuf},
};

use xtask::cluster::{fetch, sha256};

use xtask::testing::loopback::{Reply, Server};

/// A fresh project root of its own, without `.tools/`, removed at the end.
struct Root(PathBuf);

impl Root {
    fn new(name: &str) -> Root {
        let dir = std::env::temp_dir().join(format!("gml-downloads-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Root(dir)
    }

    fn tools(&self) -> PathBuf {
        self.0.join(fetch::TOOLS_DIR)
    }

    /// Every entry of `.tools/`, partial downloads included (their names start with a dot).
    fn tools_entries(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.tools()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The pinned bundle's bytes, found as `cargo xtask up` finds them.
fn pinned_bundle() -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let path =
        fetch::crds(root, &|name| std::env::var(name).ok()).unwrap_or_else(|e| panic!("{e:#}"));
    fs::read(path).unwrap()
}

#[test]
fn a_download_that_passes_its_check_is_kept_under_its_name_in_a_tools_folder_created_for_it() {
    let root = Root::new("kept");
    assert!(!root.tools().exists());
    let server = Server::start(Reply::Body(b"the bytes\n".to_vec()));
    let to = root.tools().join("thing.txt");
    fetch::download_checked(&server.url("thing.txt"), &to, &|bytes| {
        (bytes == b"the bytes\n")
            .then_some(())
            .ok_or_else(|| "other bytes".to_owned())
    })
    .unwrap();
    assert_eq!(fs::read(&to).unwrap(), b"the bytes\n");
    assert_eq!(root.tools_entries(), ["thing.txt"]);
    assert_eq!(server.served(), 1);
}

#[test]
fn crds_with_another_checksum_are_refused_and_leave_no_file() {
    let root = Root::new("refused");
    let mut altered = pinned_bundle();
    let text = String::from_utf8(altered.clone()).unwrap();
    // One schema bound changed: the kind of edit a checksum exists to catch.
    let edited = text.replacen("maximum: 1000000", "maximum: 1000001", 1);
    assert_ne!(edited, text, "the bundle has a weight maximum to alter");
    altered = edited.into_bytes();
    let server = Server::start(Reply::Body(altered));
    let to = fetch::cached_crds(&root.0);
    let err = fetch::download_crds(&server.url("standard-install.yaml"), &to).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("was downloaded, but its content has sha256 ")
            && err.contains(fetch::GATEWAY_API_CRDS_SHA256)
            && err.ends_with(": not kept"),
        "{err}"
    );
    assert_eq!(root.tools_entries(), Vec::<String>::new());
    assert_eq!(
        fetch::locate_crds(&root.0, &|_| None),
        fetch::CrdSource::Download(to)
    );
}

#[test]
fn the_pinned_crds_are_kept_and_found_in_tools_afterwards() {
    let root = Root::new("pinned");
    let server = Server::start(Reply::Body(pinned_bundle()));
    let to = fetch::cached_crds(&root.0);
    assert_eq!(
        fetch::locate_crds(&root.0, &|_| None),
        fetch::CrdSource::Download(to.clone())
    );
    fetch::download_crds(&server.url("standard-install.yaml"), &to).unwrap();
    assert_eq!(
        root.tools_entries(),
        ["gateway-api-v1.5.1-standard-install.yaml"]
    );
    assert_eq!(
        fetch::locate_crds(&root.0, &|_| None),
        fetch::CrdSource::Cached(to.clone())
    );
    // A variable still wins over the copy in .tools/.
    let named = |name: &str| (name == "GATEWAY_API_CRDS").then(|| "/elsewhere.yaml".to_owned());
    assert_eq!(
        fetch::locate_crds(&root.0, &named),
        fetch::CrdSource::Named(PathBuf::from("/elsewhere.yaml"))
    );
}

#[test]
fn the_crds_with_the_release_scripts_comments_are_the_same_pinned_content() {
    // hack/build-install-yaml.sh (gateway-api v1.5.1) writes a licence header and, before each
    // source file, a comment naming it.
    let bundle = String::from_utf8(pinned_bundle()).unwrap();
    let mut commented = String::from(
        "# Copyright The Kubernetes Authors.\n#\n# Licensed under the Apache License, Version 2.0\n\n#\n# Gateway API Standard channel install\n#\n",
    );
    for doc in bundle.split("---\n").filter(|d| !d.is_empty()) {
        commented.push_str("---\n#\n# config/crd/standard/a-file.yaml\n#\n");
        commented.push_str(doc);
    }
    assert_ne!(commented.as_bytes(), bundle.as_bytes());
    assert_eq!(
        fetch::content_sha256(commented.as_bytes()),
        fetch::GATEWAY_API_CRDS_SHA256
    );
    let root = Root::new("commented");
    let server = Server::start(Reply::Body(commented.into_bytes()));
    let to = fetch::cached_crds(&root.0);
    fetch::download_crds(&server.url("standard-install.yaml"), &to).unwrap();
    fetch::read_checked_crds(&to).unwrap();
}

#[test]
fn an_interrupted_download_leaves_no_file() {
    let root = Root::new("cut");
    let server = Server::start(Reply::Cut {
        declared: 100_000,
        sent: b"---\napiVersion: apiextensions.k8s.io/v1\n".to_vec(),
    });
    let to = fetch::cached_crds(&root.0);
    let err = fetch::download_crds(&server.url("standard-install.yaml"), &to).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.starts_with(&format!(
            "cannot download {}: curl: (18)",
            server.url("standard-install.yaml")
        )),
        "{err}"
    );
    assert_eq!(root.tools_entries(), Vec::<String>::new());
}

#[test]
fn a_missing_release_file_is_an_error_that_names_it_and_leaves_no_file() {
    let root = Root::new("missing");
    let server = Server::start(Reply::Missing);
    let url = server.url("1.30.5/istioctl-1.30.5-linux-amd64.tar.gz.sha256");
    let to = root
        .tools()
        .join("istioctl-1.30.5-linux-amd64.tar.gz.sha256");
    let err = fetch::download_checked(&url, &to, &|_| Ok(())).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.starts_with(&format!("cannot download {url}: curl: (22)")) && err.contains("404"),
        "{err}"
    );
    assert_eq!(root.tools_entries(), Vec::<String>::new());
}

#[test]
fn a_copy_in_tools_that_is_not_the_pinned_bundle_is_downloaded_again() {
    let root = Root::new("stale");
    fs::create_dir_all(root.tools()).unwrap();
    let cached = fetch::cached_crds(&root.0);
    let mut truncated = pinned_bundle();
    truncated.truncate(truncated.len() / 2);
    fs::write(&cached, truncated).unwrap();
    assert_eq!(
        fetch::locate_crds(&root.0, &|_| None),
        fetch::CrdSource::Download(cached)
    );
}

#[test]
fn the_content_checksum_skips_comment_and_blank_lines_only() {
    let plain = fetch::content_sha256(b"a: 1\nb:\n  c: 2\n");
    assert_eq!(
        plain,
        sha256::hex(b"a: 1\nb:\n  c: 2\n"),
        "without comments it is the file's own sha256"
    );
    assert_eq!(
        fetch::content_sha256(b"# header\n\na: 1\r\nb:\n  c: 2\n# end"),
        plain
    );
    // An indented `#` line is content (inside a block scalar it is text).
    assert_ne!(fetch::content_sha256(b"a: 1\n  # x\nb:\n  c: 2\n"), plain);
    assert_ne!(fetch::content_sha256(b"a: 1\nb:\n  c: 3\n"), plain);
}
