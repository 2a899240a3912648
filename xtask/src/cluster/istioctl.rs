//! istioctl of the pinned version: the one on `PATH` when it is that version, else the copy in
//! `.tools/istio-<version>/`, else downloaded there and checked against its published SHA-256.
//!
//! Its version is read from `istioctl version --remote=false -o json` (istio release-1.30,
//! `pkg/version/cobra.go`): `{"clientVersion": {"version": "1.30.5", ...}}`. `--short`, which
//! istioctl turns on by default, prints `client version: 1.30.5` instead, and with `--remote`
//! (also on by default) it asks the cluster too.
//!
//! The release's names and checksum files come from istio/release-builder (release-1.30,
//! `pkg/build/archive.go` and `pkg/util/files.go`): `istioctl-<version>-<os>-<arch>.tar.gz`
//! holds one file, `istioctl`, and `<archive>.sha256` holds `<hex sha256> <archive name>`.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use xshell::{Shell, cmd};

use super::{fetch, sha256};

/// An istioctl release archive for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// `istioctl-<version>-<os>-<arch>.tar.gz`.
    pub archive: String,
    pub url: String,
    /// The published checksum file, `<url>.sha256`.
    pub sha256_url: String,
}

/// The archive of istioctl `version` for `os` and `arch` (Rust's names: `std::env::consts`).
/// The release publishes linux-amd64, linux-arm64, linux-armv7, osx-amd64 and osx-arm64 archives.
pub fn release(version: &str, os: &str, arch: &str) -> Result<Release> {
    let os = match os {
        "linux" => "linux",
        "macos" => "osx",
        other => bail!(
            "istioctl is not published as a tar.gz for {other}: install istioctl {version} yourself and put it on PATH"
        ),
    };
    let arch = match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => bail!(
            "istioctl is not published for {other}: install istioctl {version} yourself and put it on PATH"
        ),
    };
    let archive = format!("istioctl-{version}-{os}-{arch}.tar.gz");
    let url = format!("https://github.com/istio/istio/releases/download/{version}/{archive}");
    Ok(Release {
        sha256_url: format!("{url}.sha256"),
        archive,
        url,
    })
}

/// The client version in the output of `istioctl version --remote=false -o json`.
pub fn client_version(json: &str) -> Result<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Output {
        client_version: BuildInfo,
    }
    #[derive(Deserialize)]
    struct BuildInfo {
        version: String,
    }
    let output: Output = serde_json::from_str(json)
        .context("istioctl version -o json printed no clientVersion.version")?;
    Ok(output.client_version.version)
}

/// The SHA-256 a published `.sha256` file gives for `archive`: its first word, when its second
/// names the archive.
pub fn published_sha256(text: &str, archive: &str) -> Result<String> {
    let mut words = text.split_whitespace();
    let (Some(sum), Some(name)) = (words.next(), words.next()) else {
        bail!("the checksum file of {archive} is not `<sha256> <name>`: {text:?}");
    };
    if name != archive {
        bail!("the checksum file of {archive} is for {name}");
    }
    if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("the checksum file of {archive} holds no sha256: {sum:?}");
    }
    Ok(sum.to_ascii_lowercase())
}

/// The version `program` reports, or why it cannot be asked.
pub fn version_of(sh: &Shell, program: &Path) -> Result<String> {
    let out = cmd!(sh, "{program} version --remote=false -o json")
        .quiet()
        .ignore_stderr()
        .read()?;
    client_version(&out)
}

/// Where the copy of `version` in `.tools/` is (or will be).
pub fn tools_bin(root: &Path, version: &str) -> PathBuf {
    root.join(fetch::TOOLS_DIR)
        .join(format!("istio-{version}"))
        .join("istioctl")
}

/// istioctl `version`: on `PATH` when it reports that version, else in `.tools/`, else
/// downloaded into `.tools/` (the archive and its checksum file with curl, checked, unpacked into
/// a temporary folder that is renamed into place only once it holds istioctl of that version).
pub fn find(sh: &Shell, root: &Path, version: &str) -> Result<PathBuf> {
    let on_path = Path::new("istioctl");
    match version_of(sh, on_path) {
        Ok(found) if found == version => return Ok(on_path.to_path_buf()),
        Ok(found) => eprintln!(
            "==> istioctl on PATH is {found}, not {version}: using the copy in {}/",
            fetch::TOOLS_DIR
        ),
        Err(_) => {}
    }
    let bin = tools_bin(root, version);
    if bin.is_file() {
        return Ok(bin);
    }
    let release = release(version, std::env::consts::OS, std::env::consts::ARCH)?;
    eprintln!(
        "==> downloading istioctl {version} into {}/ ({})",
        fetch::TOOLS_DIR,
        release.url
    );
    install(sh, root, version, &release)?;
    Ok(bin)
}

/// Downloads `release`, checks it against its published checksum, and unpacks it into
/// `.tools/istio-<version>/`.
pub fn install(sh: &Shell, root: &Path, version: &str, release: &Release) -> Result<()> {
    let tools = root.join(fetch::TOOLS_DIR);
    let sums = tools.join(format!("{}.sha256", release.archive));
    fetch::download_checked(&release.sha256_url, &sums, &|_| Ok(()))?;
    let text = fs::read_to_string(&sums);
    let _ = fs::remove_file(&sums);
    let expected = published_sha256(
        &text.context("cannot read the checksum file")?,
        &release.archive,
    )?;
    let archive = tools.join(&release.archive);
    fetch::download_checked(&release.url, &archive, &|bytes| {
        let found = sha256::hex(bytes);
        if found == expected {
            Ok(())
        } else {
            Err(format!(
                "it has sha256 {found}, and {} says {expected}",
                release.sha256_url
            ))
        }
    })?;
    let unpacked = unpack(sh, &archive, &tools, version);
    let _ = fs::remove_file(&archive);
    unpacked
}

/// Unpacks the checked archive into a temporary folder, checks the istioctl in it, and renames
/// the folder to `istio-<version>`.
fn unpack(sh: &Shell, archive: &Path, tools: &Path, version: &str) -> Result<()> {
    let dir = tools.join(format!("istio-{version}"));
    let partial = tools.join(format!(".istio-{version}.{}.partial", std::process::id()));
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let result = (|| -> Result<()> {
        cmd!(sh, "tar -xzf {archive} -C {partial}")
            .quiet()
            .run()
            .context("cannot unpack istioctl")?;
        let bin = partial.join("istioctl");
        if !bin.is_file() {
            bail!("the istioctl {version} archive has no istioctl in it");
        }
        let found = version_of(sh, &bin)
            .with_context(|| format!("the downloaded istioctl does not run ({})", bin.display()))?;
        if found != version {
            bail!("the downloaded istioctl reports version {found}, not {version}");
        }
        fs::rename(&partial, &dir)
            .with_context(|| format!("cannot rename {} to {}", partial.display(), dir.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&partial);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What istioctl 1.30 prints for `version --remote=false -o json`: the shape of the test case
    /// "client-side only, json output" of istio's pkg/version/cobra_test.go (release-1.30),
    /// with a release's values.
    const VERSION_JSON: &str = r#"{
  "clientVersion": {
    "version": "1.30.5",
    "revision": "0123456789abcdef0123456789abcdef01234567",
    "golang_version": "go1.25.9",
    "status": "Clean",
    "tag": "1.30.5"
  }
}
"#;

    /// A folder with an executable `istioctl` that answers `version --remote=false -o json` as
    /// istioctl `version` does (the real one cannot be downloaded here), and a project root
    /// without `.tools/`; removed when dropped.
    struct FakeIstioctl {
        dir: PathBuf,
    }

    impl FakeIstioctl {
        fn new(name: &str, version: &str) -> FakeIstioctl {
            use std::os::unix::fs::PermissionsExt;
            let dir =
                std::env::temp_dir().join(format!("gml-istioctl-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("bin")).unwrap();
            fs::create_dir_all(dir.join("root")).unwrap();
            let json = VERSION_JSON.replace("1.30.5", version);
            let script = format!(
                "#!/bin/sh\n[ \"$*\" = \"version --remote=false -o json\" ] || exit 64\ncat <<'EOF'\n{json}EOF\n"
            );
            let bin = dir.join("bin").join("istioctl");
            fs::write(&bin, script).unwrap();
            fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
            FakeIstioctl { dir }
        }

        /// A shell whose PATH starts with the fake's folder.
        fn shell(&self) -> Shell {
            let sh = Shell::new().unwrap();
            let path = std::env::var("PATH").unwrap_or_default();
            sh.set_var("PATH", format!("{}:{path}", self.dir.join("bin").display()));
            sh
        }

        fn root(&self) -> PathBuf {
            self.dir.join("root")
        }
    }

    impl Drop for FakeIstioctl {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn an_istioctl_on_path_that_reports_the_pinned_version_is_used_as_it_is() {
        let fake = FakeIstioctl::new("same", "1.30.5");
        let sh = fake.shell();
        assert_eq!(version_of(&sh, Path::new("istioctl")).unwrap(), "1.30.5");
        assert_eq!(
            find(&sh, &fake.root(), "1.30.5").unwrap(),
            Path::new("istioctl")
        );
        assert!(!fake.root().join(".tools").exists(), "nothing downloaded");
    }

    #[test]
    fn an_istioctl_of_another_version_on_path_is_passed_over_for_the_copy_in_tools() {
        let fake = FakeIstioctl::new("other", "1.29.2");
        let sh = fake.shell();
        let copy = tools_bin(&fake.root(), "1.30.5");
        fs::create_dir_all(copy.parent().unwrap()).unwrap();
        fs::write(&copy, "").unwrap();
        assert_eq!(find(&sh, &fake.root(), "1.30.5").unwrap(), copy);
    }

    /// The release archive of `fake` (`istioctl` alone, as release-builder packs it) and its
    /// published checksum file, served by a loopback server.
    fn served_release(
        fake: &FakeIstioctl,
        sum: Option<&str>,
    ) -> (crate::testing::loopback::Server, Release) {
        let sh = Shell::new().unwrap();
        let bin = fake.dir.join("bin");
        let archive = fake.dir.join("istioctl.tar.gz");
        cmd!(sh, "tar -czf {archive} -C {bin} istioctl")
            .run()
            .unwrap();
        let bytes = fs::read(&archive).unwrap();
        let name = "istioctl-1.30.5-linux-amd64.tar.gz";
        let sum = sum.map_or_else(|| sha256::hex(&bytes), str::to_owned);
        let server = crate::testing::loopback::Server::routes(vec![
            (
                format!("1.30.5/{name}"),
                crate::testing::loopback::Reply::Body(bytes),
            ),
            (
                format!("1.30.5/{name}.sha256"),
                crate::testing::loopback::Reply::Body(format!("{sum} {name}\n").into_bytes()),
            ),
        ]);
        let url = server.url(&format!("1.30.5/{name}"));
        let release = Release {
            archive: name.to_owned(),
            sha256_url: format!("{url}.sha256"),
            url,
        };
        (server, release)
    }

    fn tools_entries(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(root.join(fetch::TOOLS_DIR))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn a_downloaded_istioctl_is_checked_unpacked_and_found_in_tools_afterwards() {
        let fake = FakeIstioctl::new("install", "1.30.5");
        let (server, release) = served_release(&fake, None);
        let sh = Shell::new().unwrap();
        install(&sh, &fake.root(), "1.30.5", &release).unwrap();
        assert_eq!(server.served(), 2);
        assert_eq!(tools_entries(&fake.root()), ["istio-1.30.5"]);
        let bin = tools_bin(&fake.root(), "1.30.5");
        assert_eq!(version_of(&sh, &bin).unwrap(), "1.30.5");
    }

    #[test]
    fn an_istioctl_archive_with_another_checksum_is_refused_and_leaves_nothing() {
        let fake = FakeIstioctl::new("badsum", "1.30.5");
        let wrong = "0".repeat(64);
        let (_server, release) = served_release(&fake, Some(&wrong));
        let sh = Shell::new().unwrap();
        let err = format!(
            "{:#}",
            install(&sh, &fake.root(), "1.30.5", &release).unwrap_err()
        );
        assert!(
            err.contains("but it has sha256 ")
                && err.contains(&format!(
                    "and {} says {wrong}: not kept",
                    release.sha256_url
                )),
            "{err}"
        );
        assert_eq!(tools_entries(&fake.root()), Vec::<String>::new());
        assert!(!tools_bin(&fake.root(), "1.30.5").exists());
    }

    #[test]
    fn an_archive_whose_istioctl_is_another_version_is_refused_and_leaves_nothing() {
        let fake = FakeIstioctl::new("badversion", "1.29.2");
        let (_server, release) = served_release(&fake, None);
        let sh = Shell::new().unwrap();
        let err = format!(
            "{:#}",
            install(&sh, &fake.root(), "1.30.5", &release).unwrap_err()
        );
        assert_eq!(
            err,
            "the downloaded istioctl reports version 1.29.2, not 1.30.5"
        );
        assert_eq!(tools_entries(&fake.root()), Vec::<String>::new());
    }

    #[test]
    fn the_client_version_is_read_from_istioctl_version_json() {
        assert_eq!(client_version(VERSION_JSON).unwrap(), "1.30.5");
    }

    #[test]
    fn the_short_output_is_not_mistaken_for_a_version() {
        let err = client_version("client version: 1.30.5\n").unwrap_err();
        assert!(err.to_string().contains("clientVersion.version"), "{err}");
    }

    #[test]
    fn the_release_archive_is_named_by_version_os_and_arch() {
        let r = release("1.30.5", "linux", "x86_64").unwrap();
        assert_eq!(r.archive, "istioctl-1.30.5-linux-amd64.tar.gz");
        assert_eq!(
            r.url,
            "https://github.com/istio/istio/releases/download/1.30.5/istioctl-1.30.5-linux-amd64.tar.gz"
        );
        assert_eq!(r.sha256_url, format!("{}.sha256", r.url));
        assert_eq!(
            release("1.30.5", "macos", "aarch64").unwrap().archive,
            "istioctl-1.30.5-osx-arm64.tar.gz"
        );
        assert_eq!(
            release("1.30.5", "linux", "aarch64").unwrap().archive,
            "istioctl-1.30.5-linux-arm64.tar.gz"
        );
        assert!(release("1.30.5", "windows", "x86_64").is_err());
        assert!(release("1.30.5", "linux", "riscv64").is_err());
    }

    #[test]
    fn a_published_checksum_file_gives_the_sum_of_the_archive_it_names() {
        let sum = "a".repeat(64);
        let archive = "istioctl-1.30.5-linux-amd64.tar.gz";
        assert_eq!(
            published_sha256(&format!("{sum} {archive}\n"), archive).unwrap(),
            sum
        );
        assert!(
            published_sha256(&format!("{sum} istioctl-1.30.5-osx.tar.gz\n"), archive)
                .unwrap_err()
                .to_string()
                .contains("is for istioctl-1.30.5-osx.tar.gz")
        );
        assert!(published_sha256("<html>not found</html>", archive).is_err());
        assert!(published_sha256(&format!("abc {archive}"), archive).is_err());
    }
}
