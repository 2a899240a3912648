//! What the client counts: RPCs, errors by code, replies by server and version, latency.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The code under `errors_by_code` of an open-loop RPC that was never sent: when it was due,
/// the client already had its maximum of RPCs in flight. Not a gRPC code: no server saw it.
pub const OVERLOAD: &str = "Overload";

/// Counts for one interval, or for the whole run.
#[derive(Clone)]
pub struct Window {
    rpcs: u64,
    ok: u64,
    errors: u64,
    errors_by_code: BTreeMap<String, u64>,
    by_server: BTreeMap<String, u64>,
    by_version: BTreeMap<String, u64>,
    /// Microseconds.
    latency: Histogram<u64>,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            rpcs: 0,
            ok: 0,
            errors: 0,
            errors_by_code: BTreeMap::new(),
            by_server: BTreeMap::new(),
            by_version: BTreeMap::new(),
            // 1 µs to 1 hour at 3 significant digits.
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }
}

impl Window {
    pub fn ok(&mut self, server: &str, version: &str, latency: Duration) {
        self.rpcs += 1;
        self.ok += 1;
        *self.by_server.entry(server.to_owned()).or_default() += 1;
        *self.by_version.entry(version.to_owned()).or_default() += 1;
        self.record(latency);
    }

    pub fn error(&mut self, code: tonic::Code, latency: Duration) {
        self.rpcs += 1;
        self.errors += 1;
        *self
            .errors_by_code
            .entry(code_name(code).to_owned())
            .or_default() += 1;
        self.record(latency);
    }

    /// An RPC that was due but never sent ([`OVERLOAD`]): an error, with no latency.
    pub fn overload(&mut self) {
        self.rpcs += 1;
        self.errors += 1;
        *self.errors_by_code.entry(OVERLOAD.to_owned()).or_default() += 1;
    }

    fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency.saturating_record(micros);
    }

    pub fn merge(&mut self, other: &Window) {
        self.rpcs += other.rpcs;
        self.ok += other.ok;
        self.errors += other.errors;
        add_tally(&mut self.errors_by_code, &other.errors_by_code);
        add_tally(&mut self.by_server, &other.by_server);
        add_tally(&mut self.by_version, &other.by_version);
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    pub fn summary(&self, kind: SummaryKind, t: Duration) -> Summary {
        let ms = |q: f64| {
            if self.latency.is_empty() {
                0.0
            } else {
                round3(self.latency.value_at_quantile(q) as f64 / 1000.0)
            }
        };
        Summary {
            kind,
            t: round3(t.as_secs_f64()),
            rpcs: self.rpcs,
            ok: self.ok,
            errors: self.errors,
            errors_by_code: self.errors_by_code.clone(),
            by_server: self.by_server.clone(),
            by_version: self.by_version.clone(),
            latency_ms: Latency {
                p50: ms(0.50),
                p90: ms(0.90),
                p99: ms(0.99),
            },
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SummaryKind {
    Summary,
    Final,
}

/// One line of `--output json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: SummaryKind,
    /// Seconds since the client started.
    pub t: f64,
    pub rpcs: u64,
    pub ok: u64,
    pub errors: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    pub by_server: BTreeMap<String, u64>,
    pub by_version: BTreeMap<String, u64>,
    pub latency_ms: Latency,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// Adds the counts of one tally (by code, server or version) to another.
fn add_tally(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

impl Summary {
    /// A summary of nothing, to add others to.
    pub fn empty(kind: SummaryKind) -> Summary {
        Summary {
            kind,
            t: 0.0,
            rpcs: 0,
            ok: 0,
            errors: 0,
            errors_by_code: BTreeMap::new(),
            by_server: BTreeMap::new(),
            by_version: BTreeMap::new(),
            latency_ms: Latency {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
            },
        }
    }

    /// Adds another summary's counts (RPCs, outcomes, and the tallies by code, server and
    /// version) to these. Latency is left alone: percentiles do not add up.
    pub fn add_counts(&mut self, other: &Summary) {
        self.rpcs += other.rpcs;
        self.ok += other.ok;
        self.errors += other.errors;
        add_tally(&mut self.errors_by_code, &other.errors_by_code);
        add_tally(&mut self.by_server, &other.by_server);
        add_tally(&mut self.by_version, &other.by_version);
    }

    /// The readable form of text mode: one line.
    pub fn text(&self) -> String {
        let list = |m: &BTreeMap<String, u64>| {
            if m.is_empty() {
                "-".to_owned()
            } else {
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        let label = match self.kind {
            SummaryKind::Summary => "summary",
            SummaryKind::Final => "final",
        };
        format!(
            "-- {label} t={:.1}s rpcs={} ok={} errors={} [{}] | servers: {} | versions: {} | latency p50={:.2}ms p90={:.2}ms p99={:.2}ms",
            self.t,
            self.rpcs,
            self.ok,
            self.errors,
            list(&self.errors_by_code),
            list(&self.by_server),
            list(&self.by_version),
            self.latency_ms.p50,
            self.latency_ms.p90,
            self.latency_ms.p99,
        )
    }
}

/// gRPC's code names as its documentation spells them (`Unavailable`, `DeadlineExceeded`).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "Ok",
        Cancelled => "Cancelled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_counts_replies_by_server_and_version_and_errors_by_code() {
        let mut w = Window::default();
        w.ok("server-0", "v1", Duration::from_millis(2));
        w.ok("server-1", "v2", Duration::from_millis(4));
        w.ok("server-0", "v1", Duration::from_millis(6));
        w.error(tonic::Code::Unavailable, Duration::from_millis(1));
        let s = w.summary(SummaryKind::Summary, Duration::from_millis(1500));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["type"], "summary");
        assert_eq!(json["t"], 1.5);
        assert_eq!(json["rpcs"], 4);
        assert_eq!(json["ok"], 3);
        assert_eq!(json["errors"], 1);
        assert_eq!(json["errors_by_code"]["Unavailable"], 1);
        assert_eq!(json["by_server"]["server-0"], 2);
        assert_eq!(json["by_version"]["v2"], 1);
        let p50 = json["latency_ms"]["p50"].as_f64().unwrap();
        assert!((1.9..=4.1).contains(&p50), "{p50}");
    }

    #[test]
    fn an_overload_is_an_error_without_a_latency() {
        let mut w = Window::default();
        w.ok("s", "v1", Duration::from_millis(8));
        w.overload();
        w.overload();
        let s = w.summary(SummaryKind::Summary, Duration::ZERO);
        assert_eq!((s.rpcs, s.ok, s.errors), (3, 1, 2));
        assert_eq!(s.errors_by_code["Overload"], 2);
        assert!(s.latency_ms.p50 >= 7.9, "{s:?}");
    }

    #[test]
    fn added_summaries_add_their_counts_and_leave_latency_alone() {
        let mut a = Window::default();
        a.ok("s", "v1", Duration::from_millis(1));
        a.error(tonic::Code::Unavailable, Duration::from_millis(1));
        let one = a.summary(SummaryKind::Summary, Duration::ZERO);
        let mut total = Summary::empty(SummaryKind::Summary);
        total.add_counts(&one);
        total.add_counts(&one);
        assert_eq!((total.rpcs, total.ok, total.errors), (4, 2, 2));
        assert_eq!(total.by_server["s"], 2);
        assert_eq!(total.by_version["v1"], 2);
        assert_eq!(total.errors_by_code["Unavailable"], 2);
        assert_eq!(total.latency_ms.p99, 0.0);
    }

    #[test]
    fn merged_windows_add_up() {
        let mut a = Window::default();
        a.ok("s", "v1", Duration::from_millis(1));
        let mut b = Window::default();
        b.ok("s", "v1", Duration::from_millis(1));
        b.error(tonic::Code::DeadlineExceeded, Duration::from_millis(1));
        a.merge(&b);
        let s = a.summary(SummaryKind::Final, Duration::ZERO);
        assert_eq!((s.rpcs, s.ok, s.errors), (3, 2, 1));
        assert_eq!(s.by_server["s"], 2);
        assert_eq!(s.errors_by_code["DeadlineExceeded"], 1);
    }
}
