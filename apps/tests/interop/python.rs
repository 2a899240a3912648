//! The Python side of the interop suite: a virtual environment of its own under `.tools/`, with
//! the pinned grpcio packages of `requirements.txt` and the Hello API's modules generated from
//! `proto/` by grpcio-tools, made once per requirements file and reused after.
//!
//! Made in a temporary folder and renamed into place, so that an interrupted set-up leaves no
//! half environment that a later run would trust. A failure here fails the suite: the peers are
//! the point of it, so there is nothing to skip to.

use std::{
    fs,
    hash::{DefaultHasher, Hash, Hasher},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

const REQUIREMENTS: &str = include_str!("requirements.txt");
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/peer.py");

/// The environment the peers run in.
pub struct Python {
    /// The environment's interpreter.
    pub bin: PathBuf,
    /// Where the generated `hello_pb2` modules are (put on `PYTHONPATH`).
    pub generated: PathBuf,
}

impl Python {
    /// The environment, made on first use.
    pub fn get() -> &'static Python {
        static ENV: OnceLock<Python> = OnceLock::new();
        ENV.get_or_init(|| make().unwrap_or_else(|e| panic!("interop: {e}")))
    }

    /// `peer.py` with `args`, its output piped.
    pub fn peer(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .env("PYTHONPATH", &self.generated)
            .env("PYTHONUNBUFFERED", "1")
            // grpc-core's own log lines on stderr, kept for the diagnostics of a failed case
            .env("GRPC_VERBOSITY", "ERROR")
            .arg(PEER)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        cmd
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// `.tools/interop-<hash of requirements.txt and the proto>`.
fn make() -> Result<Python, String> {
    let proto_dir = root().join("proto/hello/v1");
    let proto = fs::read_to_string(proto_dir.join("hello.proto"))
        .map_err(|e| format!("cannot read the hello proto: {e}"))?;
    let mut hasher = DefaultHasher::new();
    (REQUIREMENTS, &proto).hash(&mut hasher);
    let tools = root().join(".tools");
    let dest = tools.join(format!("interop-{:016x}", hasher.finish()));
    let python = Python {
        bin: dest.join("venv/bin/python"),
        generated: dest.join("generated"),
    };
    if dest.join("ready").exists() {
        return Ok(python);
    }
    fs::create_dir_all(&tools).map_err(|e| format!("cannot create {}: {e}", tools.display()))?;
    let tmp = tools.join(format!("interop.partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let result = populate(&tmp, &proto_dir).and_then(|()| {
        fs::rename(&tmp, &dest).map_err(|e| format!("cannot move the environment into place: {e}"))
    });
    let _ = fs::remove_dir_all(&tmp);
    result?;
    Ok(python)
}

fn populate(dir: &Path, proto_dir: &Path) -> Result<(), String> {
    eprintln!(
        "interop: making a Python environment with grpcio in {}",
        dir.display()
    );
    run(Command::new("python3")
        .args(["-m", "venv"])
        .arg(dir.join("venv")))?;
    let requirements = dir.join("requirements.txt");
    fs::write(&requirements, REQUIREMENTS).map_err(|e| e.to_string())?;
    let python = dir.join("venv/bin/python");
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-q",
            "-r",
        ])
        .arg(&requirements)
        .env("PIP_ROOT_USER_ACTION", "ignore"))?;
    let generated = dir.join("generated");
    fs::create_dir_all(&generated).map_err(|e| e.to_string())?;
    run(Command::new(&python)
        .args(["-m", "grpc_tools.protoc"])
        .arg(format!("-I{}", proto_dir.display()))
        .arg(format!("--python_out={}", generated.display()))
        .arg(format!("--grpc_python_out={}", generated.display()))
        .arg("hello.proto"))?;
    fs::write(dir.join("ready"), "").map_err(|e| e.to_string())
}

/// Runs a set-up command; its error names the command and its last stderr line.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(format!("{cmd:?} failed ({}): {last}", out.status))
}
