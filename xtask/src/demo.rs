//! `cargo xtask demo <scenario>`: one of the built-in scenarios, on the twin (`--local`) or on the
//! cluster, reported as a table (or JSON) and an HTML page.

use crate::{
    flags,
    harness::{self, engine::Measure, kind::walk},
    output, project,
};

pub fn run(flags: &flags::Demo) -> anyhow::Result<()> {
    let scenario = flags.scenario();
    if !flags.local {
        if flags.dry_run {
            print!(
                "{}",
                walk::plan(&scenario, &flags.cluster, flags.context.as_deref())?
            );
            return Ok(());
        }
        let report = walk::run(&scenario, flags)?;
        return output::print(&report, &scenario, flags.json, flags.report.as_deref());
    }
    let profile = if flags.debug {
        project::Profile::Debug
    } else {
        project::Profile::Release
    };
    let report = harness::local::run(&scenario, profile, Measure::Scenario)?;
    output::print(&report, &scenario, flags.json, flags.report.as_deref())
}
