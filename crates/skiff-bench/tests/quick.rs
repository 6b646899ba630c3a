//! The harness cannot rot: `skiff-bench --quick` runs every scenario once with tiny sizes, into a
//! temporary output directory (the repository's BENCHMARKS.md is left alone), and must produce
//! numbers for every scenario. No timing is asserted: benchmarks report, they do not gate.
//!
//! Needs what the scenarios need (root, runc, the CNI plugins, podman, etcd, busybox-static, the
//! real kubectl: scripts/install-deps.sh and scripts/fetch-kubectl.sh). It uses its own bridge and
//! ranges (`skbq0`, 10.247.0.0/16, podman's 10.249.7.0/24), apart from the e2e tests' and from a full
//! benchmark run's.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/skiff`, which `cargo test --workspace` builds (the `skiff` package's own tests
/// need it). Not built from here: a nested cargo would wait for the lock this test run holds.
fn skiff_binary() -> PathBuf {
    let skiff = PathBuf::from(env!("CARGO_BIN_EXE_skiff-bench")).with_file_name("skiff");
    assert!(
        skiff.is_file(),
        "{} is missing: build it first (`cargo build -p skiff`, or run `cargo test --workspace`)",
        skiff.display()
    );
    skiff
}

#[test]
fn quick_run_measures_every_scenario() {
    let out = tempfile::Builder::new().prefix("skiff-bench-quick-").tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_skiff-bench"))
        .arg("--quick")
        .arg("--out")
        .arg(out.path())
        .arg("--skiff")
        .arg(skiff_binary())
        .args(["--bridge", "skbq0", "--cluster-cidr", "10.247.0.0/16", "--pod-cidr", "10.247.1.0/24"])
        .args(["--podman-subnet", "10.249.7.0/24"])
        .output()
        .expect("run skiff-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "skiff-bench --quick failed:\n{stderr}");

    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("docs/bench/results.json")).expect("results.json"),
    )
    .expect("results.json is JSON");
    let doc = std::fs::read_to_string(out.path().join("BENCHMARKS.md")).expect("BENCHMARKS.md");
    assert!(doc.contains("<!-- bench:start machine -->"), "{doc}");
    for scenario in ["pod-start", "self-healing", "rolling-update", "api-store", "cold-start"] {
        let metrics = results["scenarios"][scenario]["metrics"].as_array().cloned().unwrap_or_default();
        assert!(!metrics.is_empty(), "{scenario} produced no metrics: {results}");
        for m in &metrics {
            let median = m["summary"]["median"].as_f64();
            assert!(median.is_some_and(f64::is_finite), "{scenario}: {m}");
            assert!(m["summary"]["n"].as_u64().is_some_and(|n| n >= 1), "{scenario}: {m}");
        }
        assert!(doc.contains(&format!("<!-- bench:start {scenario} -->")), "{scenario} section in\n{doc}");
        assert!(doc.contains(&format!("<!-- bench:end {scenario} -->")), "{scenario} section end");
        let svg = out.path().join(format!("docs/bench/{scenario}.svg"));
        assert!(std::fs::read_to_string(&svg).is_ok_and(|s| s.starts_with("<svg")), "{} drawn", svg.display());
    }
    // Issue #4's agent idle RSS has its measurement.
    let cold = results["scenarios"]["cold-start"]["metrics"].as_array().cloned().unwrap_or_default();
    assert!(cold.iter().any(|m| m["name"] == "agent_idle_rss_mib"), "{cold:?}");
    // The watch fan-out counted every event.
    let api = results["scenarios"]["api-store"]["metrics"].as_array().cloned().unwrap_or_default();
    let delivered = api.iter().find(|m| m["name"] == "fanout_delivered").expect("fanout_delivered");
    assert_eq!(delivered["summary"]["median"].as_f64(), Some(40.0), "2 watches × 20 changes");

    // Nothing left behind: the bridges and the temporary directories are gone.
    let links = Command::new("ip").args(["-o", "link"]).output().expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains("skbq0"), "bridges left behind:\n{links}");
}
