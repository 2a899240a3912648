//! The bench's document (`--json`) and its table, with the published targets.

use std::fmt::Write;

use hello_apps::client::stats::Latency;
use serde::Serialize;

use super::{
    Plan, latency::Latencies, procfs::Machine, propagation::Propagation, throughput::Throughput,
};

/// Sidecar added p99 at 1,000 RPC/s, at most (ms).
pub const TARGET_ADDED_P99_MS: f64 = 0.3;
/// Envoy CPU per 1,000 RPC/s, at most (vCPU; the same number as CPU seconds per 1,000 RPCs).
pub const TARGET_CPU_PER_1000: f64 = 0.1;
/// Route change settled, at most (ms).
pub const TARGET_SETTLED_MS: f64 = 100.0;
/// hello-server's RPC/s over the bare tonic server's, at least.
pub const TARGET_SERVER_RATIO: f64 = 0.9;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Document {
    pub throughput: ThroughputDoc,
    pub latency_1000rps_ms: LatencyDoc,
    pub sidecar_cpu_s_per_1000_rpcs: f64,
    pub sidecar_rss_mb: f64,
    pub propagation_ms: PropagationDoc,
    pub server: ServerDoc,
    pub machine: Machine,
    pub duration_s: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThroughputDoc {
    pub direct_rps: f64,
    pub sidecar_rps: f64,
    /// sidecar / direct.
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencyDoc {
    pub direct: Percentiles,
    pub sidecar: Percentiles,
    /// Through ambient mode's ztunnel and waypoint.
    pub waypoint: Percentiles,
    /// sidecar p99 - direct p99.
    pub added_p99: f64,
    /// waypoint p99 - direct p99.
    pub added_p99_waypoint: f64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PropagationDoc {
    pub first_median: f64,
    pub settled_median: f64,
    pub settled_max: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerDoc {
    pub hello_rps: f64,
    pub bare_rps: f64,
    /// hello / bare.
    pub ratio: f64,
}

/// Everything measured, before it is summed up.
#[derive(Debug, Clone)]
pub struct Measured {
    pub throughput: Throughput,
    pub latencies: Latencies,
    pub propagation: Propagation,
    pub clock_ticks: u64,
}

/// The median; 0 for no values.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn percentiles(runs: &[Latency]) -> Percentiles {
    let of = |f: fn(&Latency) -> f64| round(median(&runs.iter().map(f).collect::<Vec<_>>()), 3);
    Percentiles {
        p50: of(|l| l.p50),
        p90: of(|l| l.p90),
        p99: of(|l| l.p99),
    }
}

/// `a / b`, rounded; 0 when `b` is 0.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { round(a / b, 4) } else { 0.0 }
}

impl Document {
    /// Medians over the rounds; ratios and differences of the rounded medians, so that they agree
    /// with the numbers printed beside them.
    pub fn new(m: &Measured, machine: Machine, duration: std::time::Duration) -> Document {
        let direct_rps = round(median(&m.throughput.direct), 1);
        let sidecar_rps = round(median(&m.throughput.sidecar), 1);
        let bare_rps = round(median(&m.throughput.bare), 1);
        let direct = percentiles(&m.latencies.direct);
        let sidecar = percentiles(&m.latencies.sidecar);
        let waypoint = percentiles(&m.latencies.waypoint);
        let cpu_s = m.latencies.envoy_ticks as f64 / m.clock_ticks.max(1) as f64;
        let settled = m.propagation.settled_ms();
        Document {
            throughput: ThroughputDoc {
                direct_rps,
                sidecar_rps,
                ratio: ratio(sidecar_rps, direct_rps),
            },
            latency_1000rps_ms: LatencyDoc {
                direct,
                sidecar,
                waypoint,
                added_p99: round(sidecar.p99 - direct.p99, 3),
                added_p99_waypoint: round(waypoint.p99 - direct.p99, 3),
            },
            sidecar_cpu_s_per_1000_rpcs: if m.latencies.envoy_rpcs > 0 {
                round(cpu_s / m.latencies.envoy_rpcs as f64 * 1000.0, 4)
            } else {
                0.0
            },
            sidecar_rss_mb: round(m.latencies.envoy_rss as f64 / (1024.0 * 1024.0), 1),
            propagation_ms: PropagationDoc {
                first_median: round(median(&m.propagation.firsts_ms()), 2),
                settled_median: round(median(&settled), 2),
                settled_max: round(settled.iter().copied().fold(0.0, f64::max), 2),
            },
            server: ServerDoc {
                hello_rps: direct_rps,
                bare_rps,
                ratio: ratio(direct_rps, bare_rps),
            },
            machine,
            duration_s: round(duration.as_secs_f64(), 1),
        }
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// The table: each figure, how it was measured, and its target.
pub fn render(doc: &Document, m: &Measured, plan: &Plan) -> String {
    let mut out = String::new();
    let w = &mut out;
    let mc = &doc.machine;
    let _ = writeln!(
        w,
        "\nbench: the mesh's cost on the local twin\n{} cpus ({}), linux {}, {:.0}s{}",
        mc.cpus,
        mc.model,
        mc.kernel,
        doc.duration_s,
        if plan.quick {
            " (--quick: rough numbers)"
        } else {
            ""
        }
    );

    let t = &doc.throughput;
    let _ = writeln!(
        w,
        "\n1. throughput  (closed loop, {} concurrent rpcs, {} rounds of {:.1}s per path, medians)",
        plan.concurrency,
        plan.rounds,
        plan.throughput_run.as_secs_f64()
    );
    let _ = writeln!(w, "   direct       {:>9.0} rpc/s", t.direct_rps);
    let _ = writeln!(
        w,
        "   sidecar      {:>9.0} rpc/s   {:.2} of direct   (envoy {:.1} us cpu per rpc at full load)",
        t.sidecar_rps,
        t.ratio,
        m.throughput.cpu[1].micros_per_rpc(m.clock_ticks)
    );

    let l = &doc.latency_1000rps_ms;
    let lat = &m.latencies;
    let _ = writeln!(
        w,
        "\n2. latency at {} rpc/s  (open loop, {} rounds of {:.1}s per path, medians)",
        plan.rate,
        plan.rounds,
        plan.latency_run.as_secs_f64()
    );
    let _ = writeln!(w, "                    p50      p90      p99  ms   sent");
    for (name, p, rates) in [
        ("direct", &l.direct, &lat.direct_rates),
        ("sidecar", &l.sidecar, &lat.sidecar_rates),
        ("waypoint", &l.waypoint, &lat.waypoint_rates),
    ] {
        let _ = writeln!(
            w,
            "   {name:<10} {:>8.3} {:>8.3} {:>8.3}      {:.0} rpc/s",
            p.p50,
            p.p90,
            p.p99,
            median(rates)
        );
    }
    let _ = writeln!(
        w,
        "   added p99  {:>8.3} ms                      target <= {TARGET_ADDED_P99_MS} ms: {}",
        l.added_p99,
        verdict(l.added_p99 <= TARGET_ADDED_P99_MS)
    );
    let _ = writeln!(
        w,
        "   added p99  {:>8.3} ms through the waypoint (the ztunnel model and the waypoint's envoy; no target)",
        l.added_p99_waypoint
    );

    let cpu = doc.sidecar_cpu_s_per_1000_rpcs;
    let _ = writeln!(
        w,
        "\n3. sidecar cost  (envoy, over the sidecar runs of 2: {} rpcs; /proc/<pid>/stat at {} ticks/s)",
        lat.envoy_rpcs, m.clock_ticks
    );
    let _ = writeln!(
        w,
        "   cpu        {cpu:>8.4} s per 1000 rpcs (vCPU at 1000 rpc/s)   target <= {TARGET_CPU_PER_1000}: {}",
        verdict(cpu <= TARGET_CPU_PER_1000)
    );
    let _ = writeln!(
        w,
        "   memory     {:>8.1} MiB resident (VmRSS, largest after a run)",
        doc.sidecar_rss_mb
    );

    let p = &doc.propagation_ms;
    let prop = &m.propagation;
    let _ = writeln!(
        w,
        "\n4. route propagation  ({} weight changes, {} rpcs from the bench's own client at {:.0} rpc/s)",
        prop.changes.len(),
        prop.rpcs,
        prop.rpcs as f64 / prop.elapsed.as_secs_f64().max(f64::EPSILON)
    );
    let _ = writeln!(w, "   first rpc  {:>8.2} ms median", p.first_median);
    let _ = writeln!(
        w,
        "   settled    {:>8.2} ms median, {:.2} ms worst   target <= {TARGET_SETTLED_MS} ms: {}",
        p.settled_median,
        p.settled_max,
        verdict(p.settled_max <= TARGET_SETTLED_MS)
    );

    let s = &doc.server;
    let _ = writeln!(w, "\n5. server efficiency  (the runs of 1, same client)");
    let cpu = |i: usize| m.throughput.cpu[i].micros_per_rpc(m.clock_ticks);
    let _ = writeln!(
        w,
        "   hello-server {:>9.0} rpc/s   {:>5.1} us cpu per rpc",
        s.hello_rps,
        cpu(0)
    );
    let _ = writeln!(
        w,
        "   bare tonic   {:>9.0} rpc/s   {:>5.1} us cpu per rpc   hello-server at {:.2} of it   target >= {TARGET_SERVER_RATIO}: {}",
        s.bare_rps,
        cpu(2),
        s.ratio,
        verdict(s.ratio >= TARGET_SERVER_RATIO)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn ratios_and_differences_come_from_the_rounded_medians() {
        let lat = |p50, p90, p99| Latency { p50, p90, p99 };
        let m = Measured {
            throughput: Throughput {
                direct: vec![1000.04, 1100.0, 900.0],
                sidecar: vec![500.0, 400.0, 600.0],
                bare: vec![1250.0, 1250.0],
                cpu: Default::default(),
            },
            latencies: Latencies {
                direct: vec![lat(0.1, 0.2, 0.3), lat(0.2, 0.3, 0.5)],
                sidecar: vec![lat(0.3, 0.5, 0.9), lat(0.4, 0.6, 1.1)],
                waypoint: vec![lat(0.5, 0.7, 1.3), lat(0.6, 0.8, 1.4)],
                direct_rates: vec![1000.0; 2],
                sidecar_rates: vec![1000.0; 2],
                waypoint_rates: vec![1000.0; 2],
                envoy_ticks: 150,
                envoy_rpcs: 30_000,
                envoy_rss: 30 * 1024 * 1024,
            },
            propagation: Propagation::default(),
            clock_ticks: 100,
        };
        let machine = Machine {
            cpus: 2,
            model: "cpu".into(),
            kernel: "6".into(),
        };
        let doc = Document::new(&m, machine, std::time::Duration::from_secs(90));
        assert_eq!(doc.throughput.direct_rps, 1000.0);
        assert_eq!(doc.throughput.ratio, 0.5);
        assert_eq!(doc.server.ratio, 0.8);
        assert_eq!(doc.latency_1000rps_ms.direct.p99, 0.4);
        assert_eq!(doc.latency_1000rps_ms.sidecar.p99, 1.0);
        assert_eq!(doc.latency_1000rps_ms.added_p99, 0.6);
        assert_eq!(doc.latency_1000rps_ms.waypoint.p99, 1.35);
        assert_eq!(doc.latency_1000rps_ms.added_p99_waypoint, 0.95);
        assert_eq!(doc.sidecar_cpu_s_per_1000_rpcs, 0.05);
        assert_eq!(doc.sidecar_rss_mb, 30.0);
    }
}
