//! Figures 1 and 5: the most RPCs a second the client gets, straight to hello-server, through the
//! sidecar, and straight to the bare tonic server. One round runs each path once, in an order
//! that turns every round, so that the machine's noise falls on all three alike. The CPU time
//! of the process that answers (hello-server, Envoy, the bare server) is read around each run.

use anyhow::{Context, Result};

use super::{
    Path, Plan, Rig,
    client::{self, Load},
    procfs,
};

/// RPCs a second of every run, by path, in round order.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    pub direct: Vec<f64>,
    pub sidecar: Vec<f64>,
    pub bare: Vec<f64>,
    /// CPU time (clock ticks) of hello-server, Envoy and the bare server over their runs, and
    /// the RPCs of those runs.
    pub cpu: [Cpu; 3],
}

/// CPU time of one process over some runs, and the RPCs of those runs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cpu {
    pub ticks: u64,
    pub rpcs: u64,
}

impl Cpu {
    /// Microseconds of CPU per RPC.
    pub fn micros_per_rpc(&self, clock_ticks: u64) -> f64 {
        self.ticks as f64 / clock_ticks.max(1) as f64 * 1e6 / self.rpcs.max(1) as f64
    }
}

fn slot(path: Path) -> usize {
    match path {
        Path::Direct => 0,
        Path::Sidecar => 1,
        Path::Bare => 2,
        Path::Waypoint => {
            unreachable!("throughput is measured direct, through the sidecar and bare")
        }
    }
}

pub async fn measure(rig: &Rig, plan: &Plan) -> Result<Throughput> {
    let paths = [Path::Direct, Path::Sidecar, Path::Bare];
    let mut out = Throughput::default();
    for round in 0..plan.rounds {
        for k in 0..paths.len() {
            let path = paths[(round + k) % paths.len()];
            let what = format!("throughput round {}, {}", round + 1, path.name());
            let pid = rig.server_pid(path);
            let before = procfs::cpu_ticks(pid)?;
            let run = client::run(
                &rig.client_bin,
                rig.target(path),
                Load::Concurrency(plan.concurrency),
                plan.throughput_run,
                &rig.client_id,
                &what,
            )
            .await?;
            let cpu = &mut out.cpu[slot(path)];
            cpu.ticks += procfs::cpu_ticks(pid)?.saturating_sub(before);
            cpu.rpcs += run.total.rpcs;
            let rate = run
                .rate()
                .with_context(|| format!("{what}: the run was too short to give a rate"))?;
            match path {
                Path::Direct => out.direct.push(rate),
                Path::Sidecar => out.sidecar.push(rate),
                Path::Bare => out.bare.push(rate),
                Path::Waypoint => {
                    unreachable!("throughput is measured direct, through the sidecar and bare")
                }
            }
        }
        crate::output::progress(&format!(
            "  round {}/{}: direct {:.0}, sidecar {:.0}, bare tonic {:.0} rpc/s",
            round + 1,
            plan.rounds,
            out.direct[round],
            out.sidecar[round],
            out.bare[round],
        ));
    }
    Ok(out)
}
