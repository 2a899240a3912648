//! `cargo xtask experiment --local`: the user's own servers, routes and workload on the twin.

use std::time::Duration;

use anyhow::bail;

use crate::{
    flags,
    harness::scenario::{Client, Exposure, Mesh, Phase, Retries, RouteSource, Scenario},
    harness::{engine::Measure, local},
    output,
};

/// Measured when neither --rpcs nor --duration is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(3);

pub fn run(flags: &flags::Experiment) -> anyhow::Result<()> {
    if !flags.local {
        bail!("only the local twin can run experiments so far: add --local");
    }
    let scenario = scenario(flags)?;
    let measure = flags.rpcs.map_or(Measure::Scenario, Measure::Rpcs);
    let profile = if flags.debug {
        crate::project::Profile::Debug
    } else {
        crate::project::Profile::Release
    };
    let report = local::run(&scenario, profile, measure)?;
    output::print(&report, &scenario, flags.json, flags.report.as_deref())
}

/// The experiment as a scenario of one phase; its routes are the user's file.
fn scenario(flags: &flags::Experiment) -> anyhow::Result<Scenario> {
    let headers = flags
        .headers
        .iter()
        .map(|h| match h.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((leak(k.trim()), leak(v.trim()))),
            _ => bail!("invalid --header {h:?}: expected key=value"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mesh = Mesh::from(flags.mesh);
    let exposure = Exposure::from(flags.exposure);
    Ok(Scenario {
        name: "experiment",
        title: "your servers, routes and workload",
        lesson: "Change --servers, --routes, --method, --header, --mesh, --exposure or --lb and compare.",
        exposure,
        versions: flags.servers.0.iter().map(|(v, n)| (leak(v), *n)).collect(),
        server_env: vec![("RESPONSE_DELAY", "5ms")],
        routes: flags.routes.clone().map(RouteSource::File),
        phases: vec![Phase {
            name: leak(&phase_name(mesh, exposure, flags.lb)),
            mesh,
            client: Client {
                lb: flags.lb.as_str(),
                method: flags.method.as_str(),
                headers,
                concurrency: flags.concurrency,
            },
            actions: Vec::new(),
            measure: flags.duration.unwrap_or(DEFAULT_DURATION),
            under_load: false,
            retries: Retries::IstioDefault,
            exposure: None,
        }],
    })
}

/// What the experiment's one phase measures, e.g. `mesh on: headless Service, pick_first`.
fn phase_name(mesh: Mesh, exposure: Exposure, lb: flags::Lb) -> String {
    format!(
        "{}: {} Service, {}",
        match mesh {
            Mesh::Off => "mesh off",
            Mesh::Sidecar => "mesh on",
            other => other.label(),
        },
        match exposure {
            Exposure::ClusterIp => "ClusterIP",
            Exposure::Headless => "headless",
        },
        lb.as_str()
    )
}

/// Scenario definitions hold `&'static str`; an experiment lives as long as the process.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_phase_names_the_mesh_the_exposure_and_the_policy() {
        assert_eq!(
            phase_name(Mesh::Sidecar, Exposure::Headless, flags::Lb::PickFirst),
            "mesh on: headless Service, pick_first"
        );
        assert_eq!(
            phase_name(Mesh::Off, Exposure::ClusterIp, flags::Lb::RoundRobin),
            "mesh off: ClusterIP Service, round_robin"
        );
        assert_eq!(
            phase_name(Mesh::Waypoint, Exposure::ClusterIp, flags::Lb::RoundRobin),
            "waypoint: ClusterIP Service, round_robin"
        );
    }

    #[test]
    fn the_experiment_s_routes_are_the_user_s_file_in_its_scenario() {
        let parsed = flags::Xtask::try_parse_from([
            "xtask",
            "experiment",
            "--local",
            "--servers",
            "v1=2,v2=1",
            "--routes",
            "my-routes.yaml",
        ])
        .unwrap();
        let flags::XtaskCmd::Experiment(flags) = parsed.subcommand else {
            panic!("not an experiment");
        };
        let s = scenario(&flags).unwrap();
        assert_eq!(s.routes, Some(RouteSource::File("my-routes.yaml".into())));
        assert_eq!(s.versions, [("v1", 2), ("v2", 1)]);
    }
}
