//! Turning the client's per-interval summaries into per-phase results: shares, Jain's fairness
//! index, errors, latency.

use std::collections::BTreeMap;

use hello_apps::client::{Summary, SummaryKind};
use serde::Serialize;

use super::scenario::Mesh;

/// One phase's numbers, as the `--json` document carries them.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub name: String,
    pub mesh: bool,
    /// What carried the RPCs: `off`, `sidecar`, `static-sidecar`, `proxy`, `ztunnel` or `waypoint`.
    pub dataplane: &'static str,
    pub rpcs: u64,
    pub ok: u64,
    pub errors: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    pub by_server: BTreeMap<String, u64>,
    pub by_version: BTreeMap<String, u64>,
    pub shares_by_version: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<BTreeMap<String, u32>>,
    pub jain: f64,
    pub latency_ms: Latency,
    /// What the phase changed before it was measured (scale steps, weights), as the progress lines say it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// What the backend warned about while the phase ran (each warning once, in the phase it arose in).
    pub warnings: Vec<String>,
    /// RPCs by proxy, where the phase has proxies in front of the servers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_proxy: Option<BTreeMap<String, u64>>,
    /// The client's summaries during the phase, in order (for timelines).
    #[serde(skip)]
    pub intervals: Vec<Summary>,
}

impl PhaseResult {
    /// How the phase's RPCs travelled, for a reader: `mesh off`, or `mesh on, ` and the data plane.
    pub fn arrangement(&self) -> String {
        if self.mesh {
            format!("mesh on, {}", self.dataplane)
        } else {
            "mesh off".to_owned()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// The whole `--json` document.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    /// What the scenario shows, in one line.
    pub title: String,
    pub backend: &'static str,
    /// How often the client reported: each phase's `intervals` are this far apart.
    pub interval_ms: u64,
    pub phases: Vec<PhaseResult>,
    /// What to take away.
    pub lesson: String,
}

/// Adds up a phase's summaries. `servers` are the server pods that existed during the phase:
/// those that got nothing count as zeros in the fairness index.
pub fn phase(name: &str, mesh: Mesh, intervals: Vec<Summary>, servers: &[String]) -> PhaseResult {
    let mut total = Summary::empty(SummaryKind::Summary);
    let mut weighted = [0.0f64; 3];
    for s in &intervals {
        total.add_counts(s);
        let n = s.rpcs as f64;
        weighted[0] += s.latency_ms.p50 * n;
        weighted[1] += s.latency_ms.p90 * n;
        weighted[2] += s.latency_ms.p99 * n;
    }
    let mut r = PhaseResult {
        name: name.to_owned(),
        mesh: mesh.is_on(),
        dataplane: mesh.label(),
        rpcs: total.rpcs,
        ok: total.ok,
        errors: total.errors,
        errors_by_code: total.errors_by_code,
        by_server: total.by_server,
        by_version: total.by_version,
        shares_by_version: BTreeMap::new(),
        weights: None,
        jain: 0.0,
        latency_ms: Latency::default(),
        changes: Vec::new(),
        warnings: Vec::new(),
        by_proxy: None,
        intervals: Vec::new(),
    };
    if r.rpcs > 0 {
        let n = r.rpcs as f64;
        // The client reports percentiles per interval; a phase's figure is their mean weighted by
        // RPCs (exact when the intervals are alike, as they are within a steady phase).
        r.latency_ms = Latency {
            p50: round3(weighted[0] / n),
            p90: round3(weighted[1] / n),
            p99: round3(weighted[2] / n),
        };
    }
    for (v, n) in &r.by_version {
        r.shares_by_version
            .insert(v.clone(), round3(*n as f64 / r.ok.max(1) as f64));
    }
    // Servers that got nothing are part of the picture: list them with 0.
    for s in servers {
        r.by_server.entry(s.clone()).or_insert(0);
    }
    let counts: Vec<u64> = servers
        .iter()
        .map(|s| r.by_server.get(s).copied().unwrap_or(0))
        .collect();
    r.jain = round3(jain(&counts));
    r.intervals = intervals;
    r
}

/// Jain's fairness index: 1 when every server gets the same, 1/n when one gets everything.
pub fn jain(counts: &[u64]) -> f64 {
    let sum: f64 = counts.iter().map(|&c| c as f64).sum();
    let squares: f64 = counts.iter().map(|&c| (c as f64) * (c as f64)).sum();
    if counts.is_empty() || squares == 0.0 {
        0.0
    } else {
        sum * sum / (counts.len() as f64 * squares)
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(by_server: &[(&str, u64)], p50: f64) -> Summary {
        let rpcs: u64 = by_server.iter().map(|(_, n)| n).sum();
        serde_json::from_value(serde_json::json!({
            "type": "summary", "t": 1.0, "rpcs": rpcs, "ok": rpcs, "errors": 0, "errors_by_code": {},
            "by_server": by_server.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "by_version": {"v1": rpcs}, "latency_ms": {"p50": p50, "p90": p50, "p99": p50}
        }))
        .unwrap()
    }

    #[test]
    fn jain_is_one_when_even_and_one_over_n_when_pinned() {
        assert_eq!(jain(&[10, 10, 10]), 1.0);
        assert!((jain(&[30, 0, 0]) - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(jain(&[0, 0]), 0.0);
    }

    #[test]
    fn servers_that_got_nothing_count_in_the_fairness_index() {
        let servers: Vec<String> = (0..5).map(|i| format!("s{i}")).collect();
        let r = phase(
            "p",
            Mesh::Off,
            vec![summary(&[("s0", 10), ("s1", 10), ("s2", 10)], 1.0)],
            &servers,
        );
        assert_eq!(r.jain, 0.6);
        assert_eq!(r.by_server.len(), 5);
        assert_eq!(r.by_server["s4"], 0);
    }

    #[test]
    fn a_phase_adds_up_its_intervals_and_weights_latency_by_rpcs() {
        let servers = vec!["a".to_owned(), "b".to_owned()];
        let r = phase(
            "p",
            Mesh::Sidecar,
            vec![summary(&[("a", 30)], 1.0), summary(&[("b", 10)], 3.0)],
            &servers,
        );
        assert_eq!((r.rpcs, r.ok), (40, 40));
        assert_eq!(r.by_server["a"], 30);
        assert_eq!(r.latency_ms.p50, 1.5);
        assert_eq!(r.shares_by_version["v1"], 1.0);
        assert_eq!(r.intervals.len(), 2);
    }
}
