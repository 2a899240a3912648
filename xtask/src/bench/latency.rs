//! Figures 2 and 3: latency at a fixed rate (open loop), straight to hello-server, through the
//! sidecar and through ambient mode's waypoint, in rotating order; and, over the sidecar runs, Envoy's CPU time (utime + stime of
//! `/proc/<pid>/stat`) and resident memory (`VmRSS`).

use anyhow::Result;
use hello_apps::client::stats::Latency;

use super::{
    Path, Plan, Rig,
    client::{self, Load},
    procfs,
};

/// Every run's percentiles (over the whole run, from the client's final summary) and rate.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    pub direct: Vec<Latency>,
    pub sidecar: Vec<Latency>,
    pub waypoint: Vec<Latency>,
    /// RPCs a second the client really sent, by run.
    pub direct_rates: Vec<f64>,
    pub sidecar_rates: Vec<f64>,
    pub waypoint_rates: Vec<f64>,
    /// Envoy's CPU time over the sidecar runs, in clock ticks.
    pub envoy_ticks: u64,
    /// The RPCs of the sidecar runs.
    pub envoy_rpcs: u64,
    /// The largest resident set size Envoy had after a sidecar run, in bytes.
    pub envoy_rss: u64,
}

pub async fn measure(rig: &Rig, plan: &Plan) -> Result<Latencies> {
    let mut out = Latencies::default();
    for round in 0..plan.rounds {
        let mut order = [Path::Direct, Path::Sidecar, Path::Waypoint];
        order.rotate_left(round % 3);
        for path in order {
            let what = format!("latency round {}, {}", round + 1, path.name());
            let before = match path {
                Path::Sidecar => Some(procfs::cpu_ticks(rig.envoy_pid)?),
                _ => None,
            };
            let run = client::run(
                &rig.client_bin,
                rig.target(path),
                Load::Rate(plan.rate),
                plan.latency_run,
                &rig.client_id,
                &what,
            )
            .await?;
            let rate = run.total.rpcs as f64 / run.total.t.max(f64::EPSILON);
            let latency = run.total.latency_ms;
            if let Some(before) = before {
                let after = procfs::cpu_ticks(rig.envoy_pid)?;
                out.envoy_ticks += after.saturating_sub(before);
                out.envoy_rpcs += run.total.rpcs;
                out.envoy_rss = out.envoy_rss.max(procfs::rss_bytes(rig.envoy_pid)?);
                out.sidecar.push(latency);
                out.sidecar_rates.push(rate);
            } else if path == Path::Waypoint {
                out.waypoint.push(latency);
                out.waypoint_rates.push(rate);
            } else {
                out.direct.push(latency);
                out.direct_rates.push(rate);
            }
        }
        let (d, s, w) = (out.direct[round], out.sidecar[round], out.waypoint[round]);
        crate::output::progress(&format!(
            "  round {}/{}: p50/p90/p99 direct {:.3}/{:.3}/{:.3} ms, sidecar {:.3}/{:.3}/{:.3} ms, waypoint {:.3}/{:.3}/{:.3} ms",
            round + 1,
            plan.rounds,
            d.p50,
            d.p90,
            d.p99,
            s.p50,
            s.p90,
            s.p99,
            w.p50,
            w.p90,
            w.p99
        ));
    }
    Ok(out)
}
