//! A demo on the cluster, from the first check to the last delete, as one walk that either acts
//! ([`run`], over [`Live`]) or records ([`plan`], over [`Recorder`], for `demo --dry-run`). The walk is
//! the same code both ways: the checks, the image build and load, [`engine::run`] over the
//! [`Kind`] backend, and the teardown.

use std::{collections::BTreeMap, future::Future, time::Duration};

use anyhow::{Context as _, bail};

use super::{
    Deadlines, Kind,
    ops::{self, Live, Ops},
    recorder::{Recorder, Step, Steps},
};
use crate::{
    cluster::objects,
    harness::backend::{Backend, ClientStream},
    harness::engine::{self, Measure},
    harness::measure::Report,
    harness::scenario::{Action, Client, Exposure, Mesh, Retries, Scenario},
    output::progress,
};

/// Runs a scenario on the cluster: the harness's kind cluster, or the context named with
/// `--context`. Checks the context and Istio first, then builds the images (cached) and loads them
/// into kind; the scenario's namespace goes at the end (on success, error or Ctrl-C) unless `--keep`.
pub fn run(scenario: &Scenario, flags: &crate::flags::Demo) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let cluster =
            crate::cluster::kube::connect(&flags.cluster, flags.context.as_deref()).await?;
        let ops = Live::new(cluster, ops::docker_exec());
        let mut signals = crate::process::Signals::new()?;
        walk(
            ops,
            scenario,
            flags.keep,
            async move { anyhow::Error::new(signals.recv().await) },
            |kind| kind,
        )
        .await
    })
}

/// What `demo <scenario>` does on the cluster, step by step (`--dry-run`): the walk of [`run`] over the
/// recorder, whose answers let every wait and every measured interval pass at once.
pub fn plan(scenario: &Scenario, cluster: &str, context: Option<&str>) -> anyhow::Result<Steps> {
    let context = context.map_or_else(|| format!("kind-{cluster}"), str::to_owned);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let recorder = Recorder::new(&context);
        let marker = recorder.clone();
        walk(
            recorder.clone(),
            scenario,
            false,
            std::future::pending(),
            move |kind| Marked::new(kind, marker, scenario),
        )
        .await?;
        Ok(recorder.steps())
    })
}

/// The walk: checks, images, the demo, the teardown. `wrap` may put the backend in an envelope (the dry
/// run marks where each phase starts).
async fn walk<O: Ops, B: Backend + IntoKind<O>>(
    ops: O,
    scenario: &Scenario,
    keep: bool,
    interrupted: impl Future<Output = anyhow::Error>,
    wrap: impl FnOnce(Kind<O>) -> B,
) -> anyhow::Result<Report> {
    let version = ops.server_version().await?;
    progress(&format!(
        "kube context {} (kubernetes {version})",
        ops.context()
    ));
    check_istio(&ops, scenario).await?;
    progress("building the app images (cached when nothing changed)");
    let images = ops.build_images().await?;
    match ops.kind_cluster() {
        Some(kind) => {
            progress(&format!("loading the images into the kind cluster {kind}"));
            ops.load_images(kind).await?;
        }
        None => ops.note(&format!(
            "{} is not a kind context: its nodes must be able to pull {}, {} and {}",
            ops.context(),
            images.server,
            images.client,
            images.envoy
        )),
    }
    let mut backend = wrap(Kind::new(ops, images, Deadlines::default(), keep));
    let result = tokio::select! {
        r = engine::run(&mut backend, scenario, Measure::Scenario, "kind") => r,
        err = interrupted => Err(err),
    };
    let cleaned = backend.into_kind().teardown().await;
    match (result, cleaned) {
        (Ok(report), Ok(())) => Ok(report),
        (Err(err), Ok(())) => Err(err),
        (Ok(_), Err(err)) => Err(err.context("the demo ran, but its namespace was not deleted")),
        (Err(err), Err(cleanup)) => {
            eprintln!("warning: {cleanup:#}");
            Err(err)
        }
    }
}

/// What a scenario needs of Istio, checked before anything is built: istiod for a sidecar or ambient phase,
/// and ztunnel's DaemonSet for an ambient one. A one-line error says which command installs it.
pub(super) async fn check_istio<O: Ops>(ops: &O, scenario: &Scenario) -> anyhow::Result<()> {
    let ambient = objects::ambient::is_ambient(scenario);
    if (ambient || scenario.phases.iter().any(|p| p.mesh == Mesh::Sidecar))
        && ops
            .deployment_image("istio-system", "istiod")
            .await?
            .is_none()
    {
        bail!(
            "istio is not installed in kube context {}: run `cargo xtask up-istio{}` first",
            ops.context(),
            if ambient { " --ambient" } else { "" }
        );
    }
    // Ambient mode needs ztunnel (docs/cluster-assumptions.md, row 93): without it the namespace label
    // enrolls nothing and every phase would measure a plain ClusterIP.
    if ambient {
        let ztunnel = format!(
            "daemonset {}/{}",
            objects::ambient::ISTIO_NAMESPACE,
            objects::ambient::ZTUNNEL
        );
        if ops
            .get(
                &format!("{ztunnel}, which ambient mode needs"),
                "apps/v1",
                "DaemonSet",
                objects::ambient::ISTIO_NAMESPACE,
                objects::ambient::ZTUNNEL,
            )
            .await?
            .is_none()
        {
            bail!(
                "istio's ambient mode is not installed in kube context {} (no {ztunnel}): run `cargo xtask up-istio --ambient` first",
                ops.context()
            );
        }
    }
    Ok(())
}

/// The backend inside whatever envelope the walk put it in.
trait IntoKind<O: Ops> {
    fn into_kind(self) -> Kind<O>;
}

impl<O: Ops> IntoKind<O> for Kind<O> {
    fn into_kind(self) -> Kind<O> {
        self
    }
}

/// The dry run's envelope: the backend as it is, and a note where each phase starts and where its
/// measuring starts. Nothing is described here: the notes mark the calls [`engine::run`] makes (one
/// `set_mesh` at the start of each phase, one `tick` per summary measured).
struct Marked<'s> {
    inner: Kind<Recorder>,
    recorder: Recorder,
    scenario: &'s Scenario,
    phase: usize,
    measuring: bool,
}

impl<'s> Marked<'s> {
    fn new(inner: Kind<Recorder>, recorder: Recorder, scenario: &'s Scenario) -> Marked<'s> {
        Marked {
            inner,
            recorder,
            scenario,
            phase: 0,
            measuring: false,
        }
    }
}

impl<'s> Marked<'s> {
    /// The phase `engine::run` is in.
    fn current(&self) -> Option<&'s crate::harness::scenario::Phase> {
        self.scenario.phases.get(self.phase.checked_sub(1)?)
    }
}

impl IntoKind<Recorder> for Marked<'_> {
    fn into_kind(self) -> Kind<Recorder> {
        self.inner
    }
}

impl Backend for Marked<'_> {
    fn interval(&self) -> Duration {
        self.inner.interval()
    }

    async fn setup(&mut self, scenario: &Scenario) -> anyhow::Result<()> {
        self.inner.setup(scenario).await
    }

    async fn set_mesh(&mut self, mesh: Mesh) -> anyhow::Result<()> {
        self.phase += 1;
        self.measuring = false;
        let name = self.current().map_or("?", |p| p.name);
        self.recorder.record(Step::Note(format!(
            "phase {}/{}: {name}",
            self.phase,
            self.scenario.phases.len()
        )));
        self.inner.set_mesh(mesh).await
    }

    async fn set_exposure(&mut self, exposure: Exposure) -> anyhow::Result<()> {
        self.inner.set_exposure(exposure).await
    }

    async fn set_retries(&mut self, retries: Retries) -> anyhow::Result<()> {
        self.inner.set_retries(retries).await
    }

    async fn apply(&mut self, action: &Action) -> anyhow::Result<()> {
        if let Some(phase) = self.current().filter(|p| p.under_load && !self.measuring) {
            self.measuring = true;
            self.recorder.record(Step::Note(format!(
                "under load: measuring from here to {} after the changes, from the client's JSON summaries in its log",
                humantime::format_duration(phase.measure)
            )));
        }
        self.inner.apply(action).await
    }

    async fn start_client(&mut self, client: &Client, mesh: Mesh) -> anyhow::Result<ClientStream> {
        self.inner.start_client(client, mesh).await
    }

    fn servers(&self) -> Vec<String> {
        self.inner.servers()
    }

    async fn proxy_counts(&self) -> anyhow::Result<Option<BTreeMap<String, u64>>> {
        self.inner.proxy_counts().await
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        if let Some(phase) = self.current().filter(|_| !self.measuring) {
            self.measuring = true;
            self.recorder.record(Step::Note(format!(
                "measuring {} from the client's JSON summaries in its log",
                humantime::format_duration(phase.measure)
            )));
        }
        self.inner.tick().await
    }

    fn warnings(&self) -> Vec<String> {
        self.inner.warnings()
    }

    async fn teardown(self) -> anyhow::Result<()> {
        self.inner.teardown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dry_run_of_every_scenario_ends_by_deleting_its_namespace_and_takes_no_real_time() {
        let started = std::time::Instant::now();
        for scenario in crate::harness::scenario::all() {
            let steps = plan(&scenario, "grpc-mesh-lab", None)
                .unwrap_or_else(|e| panic!("{}: {e:#}", scenario.name));
            let last = steps.0.last().unwrap().to_string();
            assert_eq!(
                last,
                format!(
                    "delete: namespace {} if it exists, and wait until it is gone (up to 180s)",
                    objects::namespace(scenario.name)
                ),
                "{}",
                scenario.name
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the paused clock lets every wait pass at once: {:?}",
            started.elapsed()
        );
    }

    /// The kill demo as issue 10 asks for it: mesh-on phases through the ClusterIP Service, and a third
    /// phase with `reset` added to Istio's retry policy.
    /// The kill scenario: its mesh-on phases through the ClusterIP Service, the last with retries on reset.
    fn kill_with_retries() -> Scenario {
        crate::harness::scenario::get("kill").unwrap()
    }

    #[test]
    fn the_dry_run_of_a_retry_phase_sets_istio_s_policy_checks_the_sidecar_before_the_kill_and_puts_it_back()
     {
        let plan = plan(&kill_with_retries(), "grpc-mesh-lab", None)
            .unwrap()
            .to_string();
        let at = |text: &str| {
            plan.find(text)
                .unwrap_or_else(|| panic!("no {text:?} in:\n{plan}"))
        };
        let recreate = at("delete: service gml-kill/server, and wait until it is gone");
        assert!(
            recreate < at("apply (the service server of this phase"),
            "{plan}"
        );
        let third = at("note: phase 3/3");
        let set = at(
            "patch: configmap istio-system/istio: mesh defaultHttpRetryPolicy {attempts: 2, retryOn: \
                     connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes,reset}",
        );
        let checked = third
            + plan[third..]
                .find("exec: `pilot-agent request GET config_dump` in gml-kill/client-mesh-on-pod1")
                .expect("the running sidecar is checked");
        let killed = third + plan[third..].find("crictl stop").unwrap();
        assert!(third < set && set < checked && checked < killed, "{plan}");
        let restored = at("patch: configmap istio-system/istio: mesh put back as found");
        assert!(killed < restored && restored < plan.rfind("delete: namespace gml-kill").unwrap());
        assert_eq!(plan.matches("patch: configmap").count(), 2, "{plan}");
    }
}
