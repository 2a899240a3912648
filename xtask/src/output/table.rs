//! The terminal view of a report: per phase, each server's share with a bar, the versions, Jain's
//! index, errors by code, latency.

use std::fmt::Write;

use crate::{harness::measure::Report, harness::scenario::Scenario};

const BAR: usize = 30;

pub fn render(report: &Report, scenario: &Scenario) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{}: {} ({})",
        scenario.name, scenario.title, report.backend
    );
    let total = report.phases.len();
    for (i, p) in report.phases.iter().enumerate() {
        let _ = writeln!(
            out,
            "\nphase {}/{total}  {}  [{}]{}",
            i + 1,
            p.name,
            p.arrangement(),
            p.weights.as_ref().map_or(String::new(), |w| {
                let parts: Vec<String> = w.iter().map(|(v, n)| format!("{v}={n}")).collect();
                format!("  weights {}", parts.join(" "))
            })
        );
        let ok = p.ok.max(1) as f64;
        let mut servers: Vec<(&String, u64)> = p.by_server.iter().map(|(k, v)| (k, *v)).collect();
        servers.sort();
        for (server, n) in &servers {
            let share = *n as f64 / ok;
            let _ = writeln!(
                out,
                "  {server:<16} {:<BAR$} {:>6.1}%  {n:>7}",
                bar(share),
                share * 100.0
            );
        }
        let versions: Vec<String> = p
            .shares_by_version
            .iter()
            .map(|(v, s)| format!("{v} {:.1}%", s * 100.0))
            .collect();
        let _ = writeln!(
            out,
            "  versions: {}",
            if versions.is_empty() {
                "-".into()
            } else {
                versions.join("  ")
            }
        );
        if let Some(proxies) = &p.by_proxy {
            let parts: Vec<String> = proxies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(out, "  RPCs by proxy: {}", parts.join("  "));
        }
        let errors = if p.errors_by_code.is_empty() {
            "0".to_owned()
        } else {
            p.errors_by_code
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = writeln!(
            out,
            "  rpcs {}  errors {}  jain {:.2}  latency p50 {:.2}ms p90 {:.2}ms p99 {:.2}ms",
            p.rpcs, errors, p.jain, p.latency_ms.p50, p.latency_ms.p90, p.latency_ms.p99
        );
        for w in &p.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
    }
    let _ = writeln!(out, "\n{}\n", wrap(scenario.lesson, 100));
    out
}

fn bar(share: f64) -> String {
    let eighths = (share.clamp(0.0, 1.0) * (BAR * 8) as f64).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    const PARTS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    s.push_str(PARTS[eighths % 8]);
    s
}

fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        if line > 0 && line + 1 + word.chars().count() > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.chars().count();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_is_proportional_to_the_share() {
        assert_eq!(bar(1.0).chars().count(), BAR);
        assert_eq!(bar(0.5).chars().count(), BAR / 2);
        assert_eq!(bar(0.0), "");
    }

    #[test]
    fn each_phase_lists_its_own_warnings_and_the_lesson_ends_the_table() {
        let scenario = crate::harness::scenario::get("kill").unwrap();
        let servers = ["server-v1-0".to_owned()];
        let mut first = crate::harness::measure::phase(
            "first",
            crate::harness::scenario::Mesh::Off,
            Vec::new(),
            &servers,
        );
        first.warnings = vec!["the first phase's".into()];
        let second = crate::harness::measure::phase(
            "second",
            crate::harness::scenario::Mesh::Sidecar,
            Vec::new(),
            &servers,
        );
        let report = crate::harness::measure::Report {
            scenario: scenario.name.into(),
            title: scenario.title.into(),
            backend: "local",
            interval_ms: 250,
            phases: vec![first, second],
            lesson: scenario.lesson.into(),
        };
        let table = render(&report, &scenario);
        let second_phase = table.find("phase 2/2").unwrap();
        let warning = table.find("  warning: the first phase's").unwrap();
        assert!(warning < second_phase, "{table}");
        assert_eq!(table.matches("warning:").count(), 1, "{table}");
        let words: Vec<&str> = scenario.lesson.split_whitespace().collect();
        let tail: Vec<&str> = table[second_phase..]
            .split_whitespace()
            .skip_while(|w| *w != words[0])
            .collect();
        assert_eq!(tail, words, "{table}");
    }

    #[test]
    fn long_lessons_wrap_at_the_width() {
        let text = "word ".repeat(50);
        assert!(wrap(&text, 20).lines().all(|l| l.chars().count() <= 20));
    }
}
