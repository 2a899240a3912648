//! Downloads into `.tools/`, kept only once their checksum matches, and the Gateway API CRD bundle
//! found or downloaded that way.
//!
//! A download goes to a temporary name beside its destination and is renamed onto it only after
//! its checksum matched, so an interrupted or corrupted download never leaves a file that a later
//! run would take for the real one. `.tools/` is created when it does not exist (a fresh clone).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::sha256;

/// Where the project keeps what it downloads, relative to the project root (git-ignored).
pub const TOOLS_DIR: &str = ".tools";

/// Gateway API, standard channel.
pub const GATEWAY_API_VERSION: &str = "v1.5.1";
/// The release asset (`hack/build-install-yaml.sh` at v1.5.1 builds it; the release attaches it).
pub const GATEWAY_API_CRDS_URL: &str =
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.5.1/standard-install.yaml";
/// The SHA-256 of the bundle's content: every line that is neither blank nor a comment (`#` in its
/// first column), each with its newline, as `grep -v -e '^#' -e '^$' FILE | sha256sum` prints it.
///
/// Not of the file's bytes: Gateway API publishes no checksum, and the release script writes a
/// licence header with the year it ran and a comment naming each source file around the objects,
/// which copies of the bundle made otherwise lack. The objects are what is pinned: the 8 CRDs and
/// the `safe-upgrades` ValidatingAdmissionPolicy with its binding of `config/crd/standard/` at tag
/// v1.5.1.
pub const GATEWAY_API_CRDS_SHA256: &str =
    "ef75129f4f81cc7188a4d966ea8d254c389e6cba7445bbc6ee52f7bf66a456fa";
/// Names a local copy of the CRDs to use instead of `.tools/` or a download.
pub const GATEWAY_API_CRDS_VAR: &str = "GATEWAY_API_CRDS";
/// The downloaded copy, in [`TOOLS_DIR`].
pub const GATEWAY_API_CRDS_FILE: &str = "gateway-api-v1.5.1-standard-install.yaml";

/// The SHA-256 of a YAML file's content, as [`GATEWAY_API_CRDS_SHA256`] defines it: its lines
/// without blank lines and `#` comment lines, each followed by `\n`.
pub fn content_sha256(bytes: &[u8]) -> String {
    let mut hash = Sha256::new();
    for line in bytes.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        hash.update(line);
        hash.update(b"\n");
    }
    sha256::finish_hex(hash)
}

/// Where the Gateway API CRDs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrdSource {
    /// The file `GATEWAY_API_CRDS` names.
    Named(PathBuf),
    /// The copy in `.tools/`, whose content matched the pinned checksum.
    Cached(PathBuf),
    /// Nowhere yet: they must be downloaded to this path in `.tools/`.
    Download(PathBuf),
}

impl CrdSource {
    /// The file the CRDs are (or will be) read from.
    pub fn path(&self) -> &Path {
        match self {
            CrdSource::Named(path) | CrdSource::Cached(path) | CrdSource::Download(path) => path,
        }
    }
}

/// The downloaded copy's path under the project root.
pub fn cached_crds(root: &Path) -> PathBuf {
    root.join(TOOLS_DIR).join(GATEWAY_API_CRDS_FILE)
}

/// Where the CRDs are: the file `GATEWAY_API_CRDS` names (checked when it is read), else the
/// copy in `.tools/` when its content matches the pinned checksum, else nowhere yet. `env` reads
/// an environment variable.
pub fn locate_crds(root: &Path, env: &dyn Fn(&str) -> Option<String>) -> CrdSource {
    if let Some(path) = env(GATEWAY_API_CRDS_VAR).filter(|p| !p.is_empty()) {
        return CrdSource::Named(PathBuf::from(path));
    }
    let cached = cached_crds(root);
    match fs::read(&cached) {
        Ok(bytes) if content_sha256(&bytes) == GATEWAY_API_CRDS_SHA256 => CrdSource::Cached(cached),
        // Absent, unreadable or not the pinned bundle: a download replaces it.
        _ => CrdSource::Download(cached),
    }
}

/// Reads a CRD bundle, after checking its content against the pinned checksum.
pub fn read_checked_crds(path: &Path) -> Result<Vec<u8>> {
    let bytes = fs::read(path).with_context(|| {
        format!(
            "cannot read the gateway api crds at {} (from {GATEWAY_API_CRDS_VAR} or .tools/)",
            path.display()
        )
    })?;
    let found = content_sha256(&bytes);
    if found != GATEWAY_API_CRDS_SHA256 {
        bail!(
            "{} is not the gateway api {GATEWAY_API_VERSION} standard bundle (content sha256 {found}, expected {GATEWAY_API_CRDS_SHA256})",
            path.display()
        );
    }
    Ok(bytes)
}

/// Downloads the CRDs from `url` to `to`, kept only when their content matches the pinned
/// checksum.
pub fn download_crds(url: &str, to: &Path) -> Result<()> {
    download_checked(url, to, &|bytes| {
        let found = content_sha256(bytes);
        if found == GATEWAY_API_CRDS_SHA256 {
            Ok(())
        } else {
            Err(format!(
                "its content has sha256 {found}, but the gateway api {GATEWAY_API_VERSION} standard bundle has {GATEWAY_API_CRDS_SHA256}"
            ))
        }
    })
}

/// The CRDs, found or downloaded as `cargo xtask up` does: the checked file's path.
pub fn crds(root: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf> {
    let source = locate_crds(root, env);
    if let CrdSource::Download(to) = &source {
        eprintln!("==> downloading the gateway api {GATEWAY_API_VERSION} crds into {TOOLS_DIR}/");
        download_crds(GATEWAY_API_CRDS_URL, to)?;
    }
    read_checked_crds(source.path())?;
    Ok(source.path().to_path_buf())
}

/// Downloads `url` (with curl, following redirects) to `to`: first to a temporary name beside it,
/// which is renamed onto `to` only when `check` accepts its bytes, and is removed otherwise. The
/// folder of `to` is created when it does not exist. `check` returns why it refuses the bytes.
pub fn download_checked(
    url: &str,
    to: &Path,
    check: &dyn Fn(&[u8]) -> std::result::Result<(), String>,
) -> Result<()> {
    let dir = to
        .parent()
        .with_context(|| format!("{} has no folder", to.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let partial = Partial::beside(to);
    let output = match Command::new("curl")
        .args(["--fail", "--silent", "--show-error", "--location"])
        .args(["--retry", "2", "--output"])
        .arg(&partial.0)
        .arg(url)
        .output()
    {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            bail!("curl not found: install curl to download {url}")
        }
        Err(err) => return Err(err).context("cannot run curl"),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("no error message");
        bail!("cannot download {url}: {last}");
    }
    let bytes = fs::read(&partial.0)
        .with_context(|| format!("cannot read the download {}", partial.0.display()))?;
    if let Err(why) = check(&bytes) {
        bail!("{url} was downloaded, but {why}: not kept");
    }
    partial.persist(to)
}

/// A download in progress: removed when dropped, unless renamed onto its destination.
struct Partial(PathBuf);

impl Partial {
    /// `.<name>.<pid>-<n>.partial` beside `to`: unique to this process and call.
    fn beside(to: &Path) -> Partial {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = to
            .file_name()
            .map_or_else(|| "download".into(), |n| n.to_string_lossy());
        let unique = format!(
            ".{name}.{}-{}.partial",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Partial(to.with_file_name(unique))
    }

    fn persist(self, to: &Path) -> Result<()> {
        fs::rename(&self.0, to)
            .with_context(|| format!("cannot rename {} to {}", self.0.display(), to.display()))
        // Dropped here: removing the old name, now gone, is a no-op.
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
