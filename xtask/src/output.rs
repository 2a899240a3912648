//! What a user sees: progress lines on stderr, the terminal table, the HTML report.

pub mod progress;
pub mod report;
pub mod table;

pub use progress::progress;

use crate::harness::{measure::Report, scenario::Scenario};

/// Prints the report (a table, or the JSON document alone on stdout), then writes the HTML report into
/// `dir` (default: `target/reports/<scenario>-<time>`) and names it on stderr.
pub fn print(
    report: &Report,
    scenario: &Scenario,
    json: bool,
    dir: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", table::render(report, scenario));
    }
    let dir = dir.map_or_else(|| report::default_dir(scenario.name), Into::into);
    let path = report::write(report, scenario, &dir)?;
    eprintln!("==> report: {}", path.display());
    Ok(())
}
