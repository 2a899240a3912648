//! `cargo xtask down`: deletes the harness's kind cluster and nothing else.

use anyhow::Context;
use xshell::cmd;

pub fn main(flags: &crate::flags::Down) -> anyhow::Result<()> {
    let cluster = &flags.cluster;
    if flags.dry_run {
        println!(" 1. run: kind delete cluster --name {cluster}");
        return Ok(());
    }
    let sh = crate::project::shell()?;
    let clusters = cmd!(sh, "kind get clusters")
        .quiet()
        .ignore_stderr()
        .read()
        .context("kind not found: install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)")?;
    if !clusters.lines().any(|l| l.trim() == cluster) {
        eprintln!("==> no kind cluster named {cluster}: nothing to delete");
        return Ok(());
    }
    eprintln!("==> deleting the kind cluster {cluster}");
    cmd!(sh, "kind delete cluster --name {cluster}")
        .run()
        .context("kind delete cluster failed")?;
    Ok(())
}
