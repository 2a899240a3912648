//! The HTML report of a real demo on the local twin, opened in headless Chromium (Debian's `chromium`
//! package; `CHROMIUM` names another binary). Without Chromium this test fails: `.ci/run` installs it.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;

use common::XTASK;

mod common;

use common::run;

fn chromium() -> String {
    let bin = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let found = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{bin} not found: install Debian's chromium package (apt-get install chromium) or set CHROMIUM"
    );
    bin
}

/// Chromium, headless, on the report; returns its stdout and stderr.
fn open_in_chromium(page: &Path, dir: &Path, extra: &[&str]) -> (String, String) {
    let profile = dir.join("chromium-profile");
    let out = run(
        Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--window-size=1200,1600",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(format!("file://{}", page.display())),
        Duration::from_secs(90),
    );
    assert_eq!(out.code, 0, "chromium failed: {}", out.stderr);
    (out.stdout, out.stderr)
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a png");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

#[test]
fn a_demo_writes_a_report_that_chromium_renders_with_a_chart_per_phase_and_the_timeline() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = run(
        Command::new(XTASK)
            .args([
                "demo",
                "httproute",
                "--local",
                "--debug",
                "--json",
                "--report",
            ])
            .arg(&dir),
        Duration::from_secs(240),
    );
    let stderr = &out.stderr;
    assert_eq!(out.code, 0, "{stderr}");
    let page = dir.join("index.html");
    assert!(
        stderr.contains(&format!("==> report: {}", page.display())),
        "the path is printed: {stderr}"
    );
    let doc: Value = serde_json::from_str(&out.stdout).expect("stdout is the json document alone");
    let beside: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        beside, doc,
        "report.json beside the page is the document printed"
    );
    let phases = doc["phases"].as_array().unwrap().len();
    assert!(phases >= 2);

    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<svg class=\"phase-chart\"").count(), phases);
    assert_eq!(html.matches("<svg class=\"timeline\"").count(), 1);
    assert_eq!(html.matches("class=\"marker\"").count(), phases);

    // The browser's own view of the page: every chart is in its DOM, and it logged no error.
    let (dom, stderr) = open_in_chromium(&page, &dir, &["--dump-dom"]);
    assert_eq!(
        dom.matches("<svg class=\"phase-chart\"").count(),
        phases,
        "{dom}"
    );
    assert_eq!(dom.matches("<svg class=\"timeline\"").count(), 1);
    for bad in ["Uncaught", "Failed to load", "net::ERR_"] {
        assert!(!stderr.contains(bad), "chromium said {bad}: {stderr}");
    }

    // And a picture of it, kept beside the report.
    let shot = dir.join("screenshot.png");
    open_in_chromium(&page, &dir, &[&format!("--screenshot={}", shot.display())]);
    let bytes = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert_eq!(png_size(&bytes), (1200, 1600));
    assert!(
        bytes.len() > 20_000,
        "a page of charts is no blank screenshot ({} bytes)",
        bytes.len()
    );
    eprintln!("screenshot: {}", shot.display());
}
