//! The external commands of an image build (the static `cargo build`, each `docker build`): one
//! value each, which the build runs and the plan prints.

use std::{ffi::OsString, fmt};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use super::{Image, STATIC_RUSTFLAGS, STATIC_TARGET_DIR, build::host_triple};
use crate::project;

/// One external command of [`build`](super::build()): run by it, and printed by
/// [`plan`](super::plan()) from the same values.
#[derive(Debug)]
pub(super) struct Command {
    env: Vec<(&'static str, &'static str)>,
    program: Program,
    args: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum Program {
    Cargo,
    Docker,
}

/// `cargo build` of both apps, static, in the static target directory.
pub(super) fn static_cargo_build() -> Command {
    Command {
        env: vec![("RUSTFLAGS", STATIC_RUSTFLAGS)],
        program: Program::Cargo,
        args: [
            "build",
            "--release",
            "--target",
            &host_triple(),
            "--target-dir",
            STATIC_TARGET_DIR,
            "-p",
            "hello-apps",
            "--bins",
        ]
        .map(String::from)
        .to_vec(),
    }
}

/// `docker build` of one image's stage of `dockerfile`, in `context`.
pub(super) fn docker_build(dockerfile: &str, image: &Image, context: &str) -> Command {
    Command {
        env: Vec::new(),
        program: Program::Docker,
        args: [
            "build",
            "-f",
            dockerfile,
            "--target",
            image.name,
            "-t",
            &image.reference(),
            context,
        ]
        .map(String::from)
        .to_vec(),
    }
}

impl Command {
    /// Runs it in the shell's directory (the project root), its output shown.
    pub(super) fn run(&self, sh: &Shell) -> Result<()> {
        let program = self.program.path();
        let args = &self.args;
        let mut command = cmd!(sh, "{program} {args...}").quiet();
        for (key, value) in &self.env {
            command = command.env(key, value);
        }
        // Would override RUSTFLAGS (cargo sets it for build scripts, never for what they run).
        command = command.env_remove("CARGO_ENCODED_RUSTFLAGS");
        command.run()?;
        Ok(())
    }

    /// Runs a `docker build` with its chatter captured; the error quotes its last line. An image
    /// Docker already has under this reference is kept: its tag is the hash of its content.
    pub(super) fn run_docker(&self, sh: &Shell, image: &Image) -> Result<()> {
        let reference = image.reference();
        let format = "{{.Id}}";
        let present = cmd!(sh, "docker image inspect --format {format} {reference}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()
            .is_ok();
        if present {
            eprintln!("==> the image {reference} is built already");
            return Ok(());
        }
        eprintln!("==> building the image {reference}");
        let program = self.program.path();
        let args = &self.args;
        let output = cmd!(sh, "{program} {args...}")
            .quiet()
            .ignore_status()
            .output()
            .with_context(|| format!("cannot run docker build for {reference}"))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stdout = String::from_utf8_lossy(&output.stdout);
            let last = last_line(&stderr)
                .or_else(|| last_line(&stdout))
                .unwrap_or("no error message");
            bail!(
                "docker build of {reference} failed ({}): {last}",
                output.status
            );
        }
        Ok(())
    }
}

/// The last line of `text` that is not blank, trimmed.
pub(super) fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|line| !line.is_empty())
}

impl Program {
    fn name(self) -> &'static str {
        match self {
            Program::Cargo => "cargo",
            Program::Docker => "docker",
        }
    }

    /// What to run: the cargo that runs us, else the one on `PATH`; docker from `PATH`.
    fn path(self) -> OsString {
        match self {
            Program::Cargo => project::cargo(),
            Program::Docker => self.name().into(),
        }
    }
}

/// As a shell line: `RUSTFLAGS="..." cargo build ...`, arguments with spaces in double quotes.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = |word: &str| {
            if word.contains(char::is_whitespace) {
                format!("\"{word}\"")
            } else {
                word.to_owned()
            }
        };
        for (key, value) in &self.env {
            write!(f, "{key}={} ", quote(value))?;
        }
        f.write_str(self.program.name())?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        Ok(())
    }
}
