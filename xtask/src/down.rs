//! `cargo xtask down`: deletes the harness's kind cluster and nothing else.
//!
//! One walk over its steps through a [`Runner`]: the real one, or the recorder whose steps
//! `--dry-run` prints.

use crate::cluster::plan::{Real, Recorder, Runner, Step};

/// `down`, one step at a time through `runner`.
pub async fn walk<R: Runner>(runner: &mut R, cluster: &str) -> anyhow::Result<()> {
    runner
        .act(Step::CheckTools {
            kind: true,
            context: None,
        })
        .await?;
    runner
        .act(Step::DeleteCluster {
            name: cluster.to_owned(),
        })
        .await
}

pub fn run(flags: &crate::flags::Down) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    if flags.dry_run {
        let mut recorder = Recorder::default();
        runtime.block_on(walk(&mut recorder, &flags.cluster))?;
        print!("{}", recorder.plan());
        return Ok(());
    }
    let mut real = Real::new(&flags.cluster, None)?;
    runtime.block_on(walk(&mut real, &flags.cluster))
}
