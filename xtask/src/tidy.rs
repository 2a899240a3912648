//! Checks that keep the documentation and CI in agreement; they run with `cargo test`.

use std::{fs, path::Path};

use crate::project;

/// The README heading under which the test command is given, in a fenced block.
const TESTS_HEADING: &str = "## Run the tests";

#[test]
fn the_readme_test_command_is_the_one_ci_runs() {
    let root = project::root();
    let readme = read(&root, "README.md");
    let ci = read(&root, ".ci/run");
    let command = readme_test_command(&readme).unwrap_or_else(|err| panic!("README.md: {err}"));
    assert!(
        runs_command(&ci, &command),
        "README.md tells people to run `{command}` (under {TESTS_HEADING:?}) but .ci/run has no line that is exactly that command: make the two agree"
    );
}

/// The project's own folders: a path in the docs that starts with one of them names a file of ours.
const OUR_FOLDERS: [&str; 7] = [
    "apps/", "mesh/", "xtask/", "proto/", "gateway/", "docs/", ".ci/",
];

#[test]
fn every_file_of_ours_the_docs_name_exists() {
    let root = project::root();
    let mut missing = Vec::new();
    for doc in [
        "README.md",
        "ARCHITECTURE.md",
        "docs/cluster-assumptions.md",
    ] {
        for span in code_spans(&read(&root, doc)) {
            let path = span.split("::").next().unwrap_or_default();
            let path = path.trim_end_matches(['/', ',', ':']);
            if is_our_path(path) && !root.join(path).exists() {
                missing.push(format!("{doc}: {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the docs name files that do not exist: {missing:?}"
    );
}

#[test]
fn every_test_the_cluster_assumptions_name_is_in_the_file_they_name() {
    let root = project::root();
    let doc = read(&root, "docs/cluster-assumptions.md");
    let mut wrong = Vec::new();
    let mut file = String::new();
    let mut checked = 0;
    for span in code_spans(&doc) {
        let Some((path, name)) = span.split_once("::") else {
            continue;
        };
        if !path.is_empty() {
            if !is_our_path(path) || !path.ends_with(".rs") {
                continue;
            }
            path.clone_into(&mut file);
        }
        if file.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let source = fs::read_to_string(root.join(&file)).unwrap_or_default();
        if !source.contains(&format!("fn {name}(")) {
            wrong.push(format!("{file}::{name}"));
        }
        checked += 1;
    }
    assert!(
        checked > 50,
        "only {checked} tests named: did the document's notation change?"
    );
    assert!(
        wrong.is_empty(),
        "docs/cluster-assumptions.md names tests that are not in the file it names: {wrong:?}"
    );
}

/// The text of every inline code span (`like this`).
fn code_spans(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("```"))
        .flat_map(|line| line.split('`').skip(1).step_by(2))
        .collect()
}

fn is_our_path(path: &str) -> bool {
    OUR_FOLDERS.iter().any(|f| path.starts_with(f)) && !path.contains(['*', '<', ' ', '{'])
}

fn read(root: &Path, file: &str) -> String {
    fs::read_to_string(root.join(file))
        .unwrap_or_else(|err| panic!("cannot read {file} at the project root: {err}"))
}

/// The first line of the first fenced block after the tests heading (a `$ ` prompt dropped).
fn readme_test_command(readme: &str) -> Result<String, String> {
    let mut lines = readme.lines();
    if !lines.any(|l| l.trim_end() == TESTS_HEADING) {
        return Err(format!("no {TESTS_HEADING:?} heading"));
    }
    let mut in_fence = false;
    for line in lines {
        let trimmed = line.trim();
        let is_fence = trimmed.starts_with("```") || trimmed.starts_with("~~~");
        if !in_fence {
            if is_fence {
                in_fence = true;
            } else if trimmed.starts_with('#') {
                break;
            }
            continue;
        }
        if is_fence {
            return Err(format!("the fenced block under {TESTS_HEADING:?} is empty"));
        }
        if trimmed.is_empty() {
            continue;
        }
        let command = trimmed.strip_prefix("$ ").unwrap_or(trimmed).trim();
        return Ok(command.to_owned());
    }
    Err(format!(
        "no fenced block with the test command under {TESTS_HEADING:?}"
    ))
}

/// Whether `script` has `command` on a line of its own (surrounding spaces allowed).
fn runs_command(script: &str, command: &str) -> bool {
    script.lines().any(|l| l.trim() == command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_command_is_the_first_line_of_the_first_fence_after_the_heading() {
        let readme = "# Lab\n\n```\ncargo run\n```\n\n## Run the tests\n\nEverything:\n\n```sh\n$ cargo test --workspace --locked\ncargo other\n```\n";
        assert_eq!(
            readme_test_command(readme).unwrap(),
            "cargo test --workspace --locked"
        );
    }

    #[test]
    fn a_readme_without_the_heading_or_its_fence_is_an_error() {
        assert!(
            readme_test_command("# Lab\n```\ncargo test\n```\n")
                .unwrap_err()
                .contains("no \"## Run the tests\" heading")
        );
        assert!(
            readme_test_command("## Run the tests\n\n## Next\n```\ncargo test\n```\n")
                .unwrap_err()
                .contains("no fenced block")
        );
        assert!(
            readme_test_command("## Run the tests\n```\n\n```\n")
                .unwrap_err()
                .contains("is empty")
        );
    }

    #[test]
    fn ci_must_run_the_command_on_a_line_of_its_own() {
        let command = "cargo test --workspace --locked";
        assert!(runs_command(
            "#!/usr/bin/env bash\nset -euo pipefail\n  cargo test --workspace --locked  \n",
            command
        ));
        assert!(!runs_command(
            "echo cargo test --workspace --locked\n",
            command
        ));
        assert!(!runs_command(
            "# cargo test --workspace --locked\n",
            command
        ));
        assert!(!runs_command("cargo test --workspace\n", command));
    }
}
