//! The scenario engine: runs a scenario's phases on a [`Backend`] and measures each.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, bail};
use hello_apps::client::Summary;

use crate::{
    harness::{
        backend::{Backend, ClientStream},
        measure::{self, Report},
        scenario::{Action, Client, Exposure, Mesh, Phase, Scenario},
    },
    output::progress,
};

/// How long a phase may wait for the client's next summary before giving up.
const SUMMARY_DEADLINE: Duration = Duration::from_secs(15);

/// How to end a phase's measurement.
#[derive(Debug, Clone, Copy)]
pub enum Measure {
    /// The phase's own duration.
    Scenario,
    /// At least this many RPCs (`experiment --rpcs`).
    Rpcs(u64),
}

/// Runs every phase; progress goes to stderr.
pub async fn run<B: Backend>(
    backend: &mut B,
    scenario: &Scenario,
    measure: Measure,
    backend_name: &'static str,
) -> anyhow::Result<Report> {
    let total = scenario.phases.len();
    progress(&format!(
        "deploying {} server pod(s) for {}",
        scenario.versions.iter().map(|(_, n)| n).sum::<u32>(),
        scenario.name
    ));
    backend.setup(scenario).await?;
    let mut warnings = Warnings::default();
    warnings.check(backend.warnings());
    let mut client: Option<RunningClient> = None;
    let mut weights: Option<BTreeMap<String, u32>> = None;
    let mut phases = Vec::new();
    for (i, phase) in scenario.phases.iter().enumerate() {
        progress(&format!("phase {}/{total}: {}", i + 1, phase.name));
        let exposure = phase.exposure.unwrap_or(scenario.exposure);
        let restart = client.as_ref().is_none_or(|c| !c.serves(phase, exposure));
        if restart {
            // A new client; the old one goes first, so the mesh change is not seen mid-flight.
            client = None;
        }
        backend
            .set_mesh(phase.mesh)
            .await
            .with_context(|| format!("phase {:?}: cannot set the mesh", phase.name))?;
        backend
            .set_exposure(exposure)
            .await
            .with_context(|| format!("phase {:?}: cannot expose the service", phase.name))?;
        backend
            .set_retries(phase.retries)
            .await
            .with_context(|| format!("phase {:?}: cannot set the retry policy", phase.name))?;
        warnings.check(backend.warnings());
        if phase.under_load {
            // The load comes first: the changes happen while the client is busy.
            if client.is_none() {
                client = Some(RunningClient::start(backend, phase, exposure).await?);
                warnings.check(backend.warnings());
            }
            let stream = &mut client.as_mut().expect("started above").stream;
            next_summary(stream, phase.name).await?;
            while stream.summaries.try_recv().is_ok() {}
            progress("  under load");
        }
        for action in &phase.actions {
            progress(&format!("  {}", describe(action)));
            backend
                .apply(action)
                .await
                .with_context(|| format!("phase {:?}: {}", phase.name, describe(action)))?;
            warnings.check(backend.warnings());
            if let Action::Weights(w) = action {
                weights = Some(
                    w.iter()
                        .map(|(backend, n)| (backend.trim_start_matches("server-").to_owned(), *n))
                        .collect(),
                );
            }
        }
        if client.is_none() {
            client = Some(RunningClient::start(backend, phase, exposure).await?);
            warnings.check(backend.warnings());
        }
        let stream = &mut client.as_mut().expect("started above").stream;
        let proxies_before = backend.proxy_counts().await?;
        let start = if phase.under_load {
            Start::UnderLoad
        } else if restart {
            Start::Fresh
        } else {
            Start::Running
        };
        let intervals = collect(stream, backend, phase, measure, start, &mut warnings).await?;
        let proxies_after = backend.proxy_counts().await?;
        warnings.check(backend.warnings());
        let mut result = measure::phase(phase.name, phase.mesh, intervals, &backend.servers());
        result.weights = weights.clone();
        result.changes = phase.actions.iter().map(describe).collect();
        result.warnings = warnings.take();
        result.by_proxy = proxies_after.map(|after| {
            after
                .into_iter()
                .map(|(k, v)| {
                    let before = proxies_before
                        .as_ref()
                        .and_then(|b| b.get(&k))
                        .copied()
                        .unwrap_or(0);
                    (k, v.saturating_sub(before))
                })
                .collect()
        });
        progress(&format!(
            "  {} RPCs, {} errors, jain {:.2}",
            result.rpcs, result.errors, result.jain
        ));
        phases.push(result);
    }
    drop(client);
    Ok(Report {
        scenario: scenario.name.to_owned(),
        title: scenario.title.to_owned(),
        backend: backend_name,
        interval_ms: backend.interval().as_millis() as u64,
        phases,
        lesson: scenario.lesson.to_owned(),
    })
}

/// The client of the phases so far, and what it was started for.
struct RunningClient {
    client: Client,
    mesh: Mesh,
    exposure: Exposure,
    stream: ClientStream,
}

impl RunningClient {
    async fn start<B: Backend>(
        backend: &mut B,
        phase: &Phase,
        exposure: Exposure,
    ) -> anyhow::Result<RunningClient> {
        Ok(RunningClient {
            client: phase.client.clone(),
            mesh: phase.mesh,
            exposure,
            stream: backend.start_client(&phase.client, phase.mesh).await?,
        })
    }

    /// Whether this client can go on measuring `phase`: the same workload, the same arrangement
    /// (however many proxies), the same Service. A client whose Service changed between headless and
    /// ClusterIP would keep the connections it made to the other one.
    fn serves(&self, phase: &Phase, exposure: Exposure) -> bool {
        self.client == phase.client && self.mesh.same_kind(phase.mesh) && self.exposure == exposure
    }
}

/// The backend's warnings: each is printed once, when it arises, and belongs to the phase it arose
/// in. A backend lists the warnings in force (the twin: about the routes now in force) or every warning
/// so far (the cluster), so a warning arises when the list holds it more often than before: one that
/// stays in force is not repeated, one that went away and came back, or was raised again, arises again.
#[derive(Debug, Default)]
struct Warnings {
    /// What the backend listed when last asked.
    listed: Vec<String>,
    /// Those that arose since the last phase ended.
    new: Vec<String>,
}

impl Warnings {
    /// Prints and keeps those of `listed` that arose since the last look.
    fn check(&mut self, listed: Vec<String>) {
        let count = |list: &[String], w: &String| list.iter().filter(|x| *x == w).count();
        for w in &listed {
            if count(&listed, w) > count(&self.listed, w) && !self.new.contains(w) {
                eprintln!("warning: {w}");
                self.new.push(w.clone());
            }
        }
        self.listed = listed;
    }

    /// The warnings that arose since the last call.
    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.new)
    }
}

/// Where a phase's measurement starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// A client started for this phase: every report counts.
    Fresh,
    /// A client that was already running: its report in progress straddles the phase's changes and is
    /// skipped.
    Running,
    /// The changes were made under load: every report since they started counts.
    UnderLoad,
}

/// The client's next report, within [`SUMMARY_DEADLINE`].
async fn next_summary(stream: &mut ClientStream, phase: &str) -> anyhow::Result<Summary> {
    match tokio::time::timeout(SUMMARY_DEADLINE, stream.summaries.recv()).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => bail!("the client exited during phase {phase:?}"),
        Err(_) => bail!(
            "no report from the client within {}s during phase {phase:?}",
            SUMMARY_DEADLINE.as_secs()
        ),
    }
}

/// Reads the client's summaries for one phase: the phase's duration in reports (or `--rpcs`), after
/// whatever `start` says counts already.
async fn collect<B: Backend>(
    stream: &mut ClientStream,
    backend: &mut B,
    phase: &Phase,
    measure: Measure,
    start: Start,
    warnings: &mut Warnings,
) -> anyhow::Result<Vec<Summary>> {
    let mut out: Vec<Summary> = Vec::new();
    match start {
        Start::UnderLoad => {
            while let Ok(s) = stream.summaries.try_recv() {
                out.push(s);
            }
        }
        Start::Running => {
            while stream.summaries.try_recv().is_ok() {}
            next_summary(stream, phase.name).await?;
        }
        Start::Fresh => while stream.summaries.try_recv().is_ok() {},
    }
    let interval = backend.interval().as_millis().max(1);
    let target_intervals = out.len() + phase.measure.as_millis().div_ceil(interval).max(1) as usize;
    let during = out.iter().map(|s| s.rpcs).sum::<u64>();
    loop {
        let done = match measure {
            Measure::Scenario => out.len() >= target_intervals,
            Measure::Rpcs(target) => out.iter().map(|s| s.rpcs).sum::<u64>() >= target + during,
        };
        if done {
            return Ok(out);
        }
        out.push(next_summary(stream, phase.name).await?);
        backend.tick().await?;
        warnings.check(backend.warnings());
    }
}

fn describe(action: &Action) -> String {
    match action {
        Action::Scale { version, replicas } => format!("scaling server-{version} to {replicas}"),
        Action::Weights(w) => {
            let parts: Vec<String> = w.iter().map(|(b, n)| format!("{b}={n}")).collect();
            format!("setting weights {}", parts.join(" "))
        }
        Action::ScaleProxies(n) => format!("scaling the proxies to {n}"),
        Action::RollingRestart { version } => format!("restarting server-{version}, pod by pod"),
        Action::Kill { version } => format!("killing a server-{version} pod (SIGKILL)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(warnings: &[&str]) -> Vec<String> {
        warnings.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn a_warning_belongs_to_the_phase_it_arose_in_and_is_kept_once() {
        let mut w = Warnings::default();
        w.check(listed(&["a"]));
        w.check(listed(&["a"]));
        assert_eq!(w.take(), ["a"], "setup's warnings go to the first phase");
        w.check(listed(&["a", "b"]));
        w.check(listed(&["a", "b"]));
        assert_eq!(w.take(), ["b"], "a later phase gets only its own");
        w.check(listed(&["a", "b"]));
        assert!(
            w.take().is_empty(),
            "a warning still in force is not repeated"
        );
    }

    #[test]
    fn a_warning_raised_again_in_a_later_phase_belongs_to_it_too() {
        let mut w = Warnings::default();
        w.check(listed(&["a"]));
        w.check(listed(&["a", "a"]));
        assert_eq!(w.take(), ["a"], "raised twice in one phase: kept once");
        w.check(listed(&["a", "a", "a"]));
        assert_eq!(w.take(), ["a"]);
    }

    #[test]
    fn a_warning_that_went_away_and_came_back_arises_again() {
        let mut w = Warnings::default();
        w.check(listed(&["a"]));
        assert_eq!(w.take(), ["a"]);
        w.check(listed(&[]));
        w.check(listed(&["a"]));
        assert_eq!(w.take(), ["a"]);
    }
}
