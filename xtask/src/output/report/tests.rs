//! The report's page from hand-made results: what it contains, that its bars are to scale, and that it
//! needs nothing from outside. (`xtask/tests/report.rs` renders a real demo's report in Chromium.)

use std::collections::BTreeMap;

use hello_apps::client::Summary;
use serde_json::json;

use super::*;
use crate::harness::measure;
use crate::harness::scenario::Mesh;

fn summary(by_server: &[(&str, u64)]) -> Summary {
    let rpcs: u64 = by_server.iter().map(|(_, n)| n).sum();
    let mut by_version: BTreeMap<String, u64> = BTreeMap::new();
    for (server, n) in by_server {
        let version = server.split('-').nth(1).unwrap_or("v1").to_owned();
        *by_version.entry(version).or_default() += n;
    }
    serde_json::from_value(json!({
        "type": "summary", "t": 1.0, "rpcs": rpcs, "ok": rpcs, "errors": 0, "errors_by_code": {},
        "by_server": by_server.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "by_version": by_version, "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 4.0}
    }))
    .unwrap()
}

fn servers() -> Vec<String> {
    ["server-v1-a", "server-v1-b", "server-v2-a"]
        .map(str::to_owned)
        .to_vec()
}

/// Two phases: everything on v1, then 75/25 after new weights.
fn report() -> Report {
    let mut first = measure::phase(
        "100/0",
        Mesh::Sidecar,
        vec![summary(&[("server-v1-a", 5), ("server-v1-b", 5)]); 4],
        &servers(),
    );
    first.changes = vec!["setting weights server-v1=100 server-v2=0".into()];
    let mut second = measure::phase(
        "75/25",
        Mesh::Sidecar,
        vec![summary(&[("server-v1-a", 3), ("server-v1-b", 3), ("server-v2-a", 2)]); 4],
        &servers(),
    );
    second.changes = vec!["setting weights server-v1=75 server-v2=25".into()];
    second.warnings = vec!["HTTPRoute default/x: backendRef server-v3 does not exist".into()];
    let scenario = scenario();
    Report {
        scenario: "httproute".into(),
        title: scenario.title.into(),
        backend: "local",
        interval_ms: 250,
        phases: vec![first, second],
        lesson: scenario.lesson.into(),
    }
}

fn scenario() -> Scenario {
    crate::harness::scenario::get("httproute").unwrap()
}

#[test]
fn the_page_has_a_chart_per_phase_a_timeline_and_the_latencies() {
    let html = render(&report(), &scenario());
    assert_eq!(html.matches("<svg class=\"phase-chart\"").count(), 2);
    assert_eq!(html.matches("<svg class=\"timeline\"").count(), 1);
    assert_eq!(html.matches("<svg class=\"latency\"").count(), 1);
    assert!(html.contains("Phase 2: 75/25 (mesh on, sidecar)"), "{html}");
    assert!(html.contains("client reports every 250 ms"));
}

#[test]
fn each_phase_shows_its_own_warnings_and_the_page_the_lesson() {
    let html = render(&report(), &scenario());
    let warning = "warning: HTTPRoute default/x: backendRef server-v3 does not exist";
    assert_eq!(html.matches(warning).count(), 1, "{html}");
    let second = &html[html.find("id=\"phase-2\"").unwrap()..];
    assert!(
        second.contains(warning),
        "in the second phase's card: {html}"
    );
    assert!(html.contains(&esc(scenario().lesson)), "{html}");
}

#[test]
fn the_report_directory_holds_the_page_and_the_json_document() {
    let dir = std::env::temp_dir().join(format!("gml-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let report = report();
    let page = write(&report, &scenario(), &dir).unwrap();
    assert_eq!(page, dir.join("index.html"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(doc, serde_json::to_value(&report).unwrap());
    assert_eq!(
        doc["phases"][1]["warnings"][0],
        report.phases[1].warnings[0]
    );
    assert_eq!(doc["phases"][0]["warnings"], json!([]));
    assert_eq!(doc["lesson"], scenario().lesson);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_page_needs_nothing_from_outside() {
    let html = render(&report(), &scenario());
    for outside in [
        "<script", "src=", "href=", "http://", "https://", "@import", "url(",
    ] {
        assert!(!html.contains(outside), "{outside} in the page");
    }
}

#[test]
fn a_server_bar_is_as_long_as_its_share() {
    let html = render(&report(), &scenario());
    // In phase 2, server-v2-a got 8 of 32 RPCs: a quarter of the 260-pixel bar.
    let phase2 = html.split("id=\"phase-2\"").nth(1).unwrap();
    let bar = phase2
        .split("<rect class=\"bar\"")
        .find(|b| b.contains("<title>server-v2-a: 8 RPCs</title>"))
        .expect("a bar for server-v2-a");
    assert!(bar.contains("width=\"65.0\""), "{bar}");
    assert!(phase2.contains(">25.0%</text>"));
}

#[test]
fn the_timeline_follows_each_version_and_marks_every_change() {
    let html = render(&report(), &scenario());
    let timeline = html
        .split("<svg class=\"timeline\"")
        .nth(1)
        .unwrap()
        .split("</svg>")
        .next()
        .unwrap();
    assert_eq!(timeline.matches("<path class=\"series\"").count(), 2);
    assert_eq!(timeline.matches("class=\"marker\"").count(), 2);
    assert!(timeline.contains("75/25: weights v1=75 v2=25"));
    // v2's line: 0% for the first 4 reports, then 25% (y = 34 + 220 * 0.75 = 199)
    let v2 = timeline
        .split("<path class=\"series\" d=\"")
        .nth(2)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let ys: Vec<&str> = v2
        .split_whitespace()
        .map(|p| p.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(
        ys,
        [
            "254.0", "254.0", "254.0", "254.0", "199.0", "199.0", "199.0", "199.0"
        ]
    );
}

#[test]
fn one_version_gives_a_line_per_server_pod() {
    let mut report = report();
    report.phases.truncate(1);
    let html = render(&report, &scenario());
    // server-v2-a got nothing, and has its line at 0% all the same
    assert_eq!(html.matches("<path class=\"series\"").count(), 3);
    assert!(html.contains(">server server-v1-a</text>"));
    assert!(html.contains(">server server-v2-a</text>"));
}

#[test]
fn names_from_the_outside_are_escaped() {
    let mut report = report();
    report.phases[0]
        .by_server
        .insert("<img onerror=x>".into(), 1);
    let html = render(&report, &scenario());
    assert!(!html.contains("<img"));
    assert!(html.contains("&lt;img onerror=x&gt;"));
}

#[test]
fn failed_rpcs_are_shown_by_code() {
    let mut report = report();
    report.phases[1].errors = 3;
    report.phases[1]
        .errors_by_code
        .insert("Unavailable".into(), 3);
    let html = render(&report, &scenario());
    assert!(html.contains("3 failed RPCs (Unavailable: 3)"), "{html}");
}

#[test]
fn write_creates_the_directory_and_names_the_file() {
    let dir = std::env::temp_dir().join(format!("gml-report-{}", std::process::id()));
    let path = write(&report(), &scenario(), &dir.join("nested")).unwrap();
    assert_eq!(path, dir.join("nested/index.html"));
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("<!DOCTYPE html>")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
