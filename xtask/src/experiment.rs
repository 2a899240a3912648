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
const MAX_PODS: u32 = 50;

pub fn run(flags: &flags::Experiment) -> anyhow::Result<()> {
    if !flags.local {
        bail!("only the local twin can run experiments so far: add --local");
    }
    let versions = servers(&flags.servers)?;
    let headers = flags
        .headers
        .iter()
        .map(|h| match h.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((leak(k.trim()), leak(v.trim()))),
            _ => bail!("invalid --header {h:?}: expected key=value"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mesh = if flags.mesh == "on" {
        Mesh::Sidecar
    } else {
        Mesh::Off
    };
    let exposure = Exposure::from(flags.exposure);
    let scenario = Scenario {
        name: "experiment",
        title: "your servers, routes and workload",
        lesson: "Change --servers, --routes, --method, --header, --mesh, --exposure or --lb and compare.",
        exposure,
        versions: versions.into_iter().map(|(v, n)| (leak(&v), n)).collect(),
        server_env: vec![("RESPONSE_DELAY", "5ms")],
        routes: flags.routes.clone().map(RouteSource::File),
        phases: vec![Phase {
            name: leak(&phase_name(mesh, exposure, flags.lb)),
            mesh,
            client: Client {
                lb: flags.lb.as_str(),
                method: leak(&flags.method),
                headers,
                concurrency: flags.concurrency,
            },
            actions: Vec::new(),
            measure: flags.duration.unwrap_or(DEFAULT_DURATION),
            under_load: false,
            retries: Retries::IstioDefault,
            exposure: None,
        }],
    };
    let measure = flags.rpcs.map_or(Measure::Scenario, Measure::Rpcs);
    let profile = if flags.debug {
        crate::project::Profile::Debug
    } else {
        crate::project::Profile::Release
    };
    let report = local::run(&scenario, profile, measure)?;
    output::print(&report, &scenario, flags.json, flags.report.as_deref())
}

/// What the experiment's one phase measures, e.g. `mesh on: headless Service, pick_first`.
fn phase_name(mesh: Mesh, exposure: Exposure, lb: flags::Lb) -> String {
    format!(
        "mesh {}: {} Service, {}",
        if mesh.is_on() { "on" } else { "off" },
        match exposure {
            Exposure::ClusterIp => "ClusterIP",
            Exposure::Headless => "headless",
        },
        lb.as_str()
    )
}

/// `v1=3,v2=2`: replicas per version.
pub fn servers(spec: &str) -> anyhow::Result<Vec<(String, u32)>> {
    let mut out: Vec<(String, u32)> = Vec::new();
    for part in spec.split(',') {
        let bad = |why: &str| anyhow::anyhow!("invalid --servers {spec:?}: {why}");
        let (version, n) = part
            .split_once('=')
            .ok_or_else(|| bad("expected VERSION=REPLICAS, e.g. v1=3,v2=2"))?;
        let version = version.trim();
        let valid = !version.is_empty()
            && version.len() <= 20
            && version
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !version.starts_with('-')
            && !version.ends_with('-');
        if !valid {
            return Err(bad(&format!(
                "{version:?} is not a valid version label (lowercase letters, digits and -)"
            )));
        }
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| bad(&format!("{:?} is not a replica count", n.trim())))?;
        if n == 0 || n > MAX_PODS {
            return Err(bad(&format!("{n} replicas: expected 1 to {MAX_PODS}")));
        }
        if out.iter().any(|(v, _)| v == version) {
            return Err(bad(&format!("version {version} is given twice")));
        }
        out.push((version.to_owned(), n));
    }
    let total: u32 = out.iter().map(|(_, n)| n).sum();
    if total > MAX_PODS {
        bail!("invalid --servers {spec:?}: {total} pods in all, at most {MAX_PODS}");
    }
    Ok(out)
}

/// Scenario definitions hold `&'static str`; an experiment lives as long as the process.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

#[cfg(test)]
mod tests {
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
    }

    #[test]
    fn servers_reads_replicas_per_version() {
        assert_eq!(
            servers("v1=3,v2=2").unwrap(),
            vec![("v1".to_owned(), 3), ("v2".to_owned(), 2)]
        );
    }

    #[test]
    fn bad_server_specs_are_one_line_errors() {
        for (spec, why) in [
            ("v1", "expected VERSION=REPLICAS"),
            ("v1=0", "0 replicas"),
            ("v1=x", "\"x\" is not a replica count"),
            ("V1=2", "is not a valid version label"),
            ("v1=2,v1=3", "given twice"),
            ("v1=30,v2=30", "60 pods in all"),
            ("v1=-1", "is not a replica count"),
        ] {
            let err = servers(spec).unwrap_err().to_string();
            assert!(err.contains(why), "{spec}: {err}");
            assert!(!err.contains('\n'));
        }
    }
}
