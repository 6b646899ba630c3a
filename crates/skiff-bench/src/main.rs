//! `skiff-bench`: the benchmark harness of issue #6. Runs the scenarios against the real `skiff`
//! binary (and the peers: podman, runc alone, etcd), repeats each, and writes the medians with their
//! spread into BENCHMARKS.md sections (between `<!-- bench:start NAME -->` markers) and SVG charts
//! into `docs/bench/`.
//!
//! ```sh
//! cargo run --release -p skiff-bench                 # every scenario, full sizes (as root)
//! cargo run --release -p skiff-bench -- --quick      # every scenario once, tiny sizes
//! cargo run --release -p skiff-bench -- pod-start api-store
//! ```

mod chart;
mod cluster;
mod etcd;
mod floor;
mod podman;
mod procs;
mod readyz;
mod report;
mod scenarios;
mod stats;
mod track;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use clap::{Parser, ValueEnum};

use crate::cluster::{Env, Net};
use crate::report::Section;

#[derive(Parser)]
#[command(name = "skiff-bench", about = "Skiff's benchmarks: one command, peers in the same run, charts")]
struct Args {
    /// Run every scenario once with tiny sizes (the test suite does; the figures mean little).
    #[arg(long)]
    quick: bool,
    /// The directory that receives BENCHMARKS.md and docs/bench/ (default: the repository).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The `skiff` binary (default: build it with cargo, in this binary's profile).
    #[arg(long)]
    skiff: Option<PathBuf>,
    /// The real kubectl (default: target/tools/kubectl, fetched by scripts/fetch-kubectl.sh).
    #[arg(long)]
    kubectl: Option<PathBuf>,
    /// The Linux bridge of the benchmark's pods (Skiff's; podman's gets a `p` appended).
    #[arg(long, default_value = "skbench0")]
    bridge: String,
    /// The cluster's pod range (a blackhole route is added for it while the agent runs).
    #[arg(long, default_value = "10.246.0.0/16")]
    cluster_cidr: String,
    /// The benchmark node's pod range (inside --cluster-cidr).
    #[arg(long, default_value = "10.246.1.0/24")]
    pod_cidr: String,
    /// podman's pod network for `kube play`.
    #[arg(long, default_value = "10.249.0.0/24")]
    podman_subnet: String,
    /// A sentence recorded with the results (what else ran on the machine, for instance).
    #[arg(long)]
    note: Option<String>,
    /// Instead of the scenarios: ConfigMap creates on one connection (the lean client) against the
    /// running server of this kubeconfig; prints the rate and latencies (for comparing builds by
    /// hand, as scripts/create-interleaved.py does with a Python client).
    #[arg(long, value_name = "KUBECONFIG")]
    creates_against: Option<PathBuf>,
    /// How many creates --creates-against sends.
    #[arg(long, default_value_t = 2000)]
    creates: usize,
    /// Requests in flight for --creates-against (as many connections).
    #[arg(long, default_value_t = 1)]
    creates_in_flight: usize,
    /// The client --creates-against uses.
    #[arg(long, value_enum, default_value = "lean")]
    creates_via: scenarios::api_store::Via,
    /// The scenarios to run (default: all).
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// 1. Pods with real containers: create → Running/Ready; a Deployment vs podman kube play; runc alone.
    PodStart,
    /// 2. A pod deleted or its process killed → replacement Ready.
    SelfHealing,
    /// 3. Rolling update of 10 replicas, maxSurge 1.
    RollingUpdate,
    /// 5. ConfigMap creates through the API (SQLite and etcd); watch fan-out.
    ApiStore,
    /// 6. `skiff server` to /readyz; to the first pod Running; RSS at rest.
    ColdStart,
}

impl Scenario {
    const ALL: [Scenario; 5] =
        [Scenario::PodStart, Scenario::SelfHealing, Scenario::RollingUpdate, Scenario::ApiStore, Scenario::ColdStart];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::PodStart => "pod-start",
            Scenario::SelfHealing => "self-healing",
            Scenario::RollingUpdate => "rolling-update",
            Scenario::ApiStore => "api-store",
            Scenario::ColdStart => "cold-start",
        }
    }
}

/// Where charts go and how BENCHMARKS.md links them.
pub struct Output {
    pub charts: PathBuf,
}

impl Output {
    /// Draws a distribution chart `docs/bench/NAME.svg` and returns the Markdown that shows it
    /// (or says why it could not be drawn).
    pub fn chart(&self, name: &str, title: &str, unit: &str, series: &[chart::Series]) -> String {
        let file = self.charts.join(format!("{name}.svg"));
        match chart::distribution(&file, title, unit, series) {
            Ok(()) => format!("![{title}](docs/bench/{name}.svg)\n"),
            Err(e) => format!("(chart {name} not drawn: {e})\n"),
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| PathBuf::from("."))
}

/// Builds `skiff` with cargo in this binary's profile and returns its path (next to this binary).
fn build_skiff() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root()).args(["build", "--locked", "-p", "skiff", "--bin", "skiff"]);
    // Not the variables `cargo run` set for this binary: build scripts that declare them
    // (ring's: CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...) would see them change, and everything
    // above them would be rebuilt here and again by the next plain `cargo build`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_by_run = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_"];
        if set_by_run.iter().any(|prefix| name.starts_with(prefix)) {
            cmd.env_remove(name.as_ref());
        }
    }
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let status = cmd.status().context("run cargo build -p skiff")?;
    anyhow::ensure!(status.success(), "cargo build -p skiff failed");
    let exe = std::env::current_exe()?;
    Ok(exe.parent().context("this binary's directory")?.join("skiff"))
}

fn find_kubectl(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(k) = given {
        return Ok(k);
    }
    let cached = repo_root().join("target/tools/kubectl");
    if cached.is_file() {
        return Ok(cached);
    }
    let out = procs::run(&mut Command::new(repo_root().join("scripts/fetch-kubectl.sh")))?;
    Ok(PathBuf::from(out.trim()))
}

fn build_image(scratch: &Path, tag: &str) -> anyhow::Result<PathBuf> {
    let archive = scratch.join(format!("demo-web-{tag}.tar"));
    procs::run(Command::new(repo_root().join("scripts/build-demo-image.sh")).arg(&archive).arg(tag))?;
    Ok(archive)
}

/// The command line as a user would type it.
fn command_line(quick: bool, scenarios: &[Scenario], explicit: bool) -> String {
    let mut cmd = "cargo run --release -p skiff-bench --".to_string();
    if quick {
        cmd.push_str(" --quick");
    }
    if explicit {
        for s in scenarios {
            cmd.push(' ');
            cmd.push_str(s.name());
        }
    }
    cmd.trim_end_matches(" --").to_string()
}

async fn run_scenario(s: Scenario, env: &Env, out: &Output) -> anyhow::Result<Section> {
    match s {
        Scenario::PodStart => scenarios::pod_start::run(env, out).await,
        Scenario::SelfHealing => scenarios::self_heal::run(env, out).await,
        Scenario::RollingUpdate => scenarios::rollout::run(env, out).await,
        Scenario::ApiStore => scenarios::api_store::run(env, out).await,
        Scenario::ColdStart => scenarios::cold_start::run(env, out).await,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some(kubeconfig) = &args.creates_against {
        return scenarios::api_store::creates_against(
            kubeconfig,
            args.creates,
            args.creates_in_flight,
            args.creates_via,
        )
        .await;
    }
    let out_dir = args.out.clone().unwrap_or_else(repo_root);
    let charts = out_dir.join("docs/bench");
    std::fs::create_dir_all(&charts)?;
    let explicit = !args.scenarios.is_empty();
    let scenarios: Vec<Scenario> = if explicit { args.scenarios.clone() } else { Scenario::ALL.to_vec() };
    let command = command_line(args.quick, &scenarios, explicit);

    let skiff = match &args.skiff {
        Some(s) => s.clone(),
        None => build_skiff()?,
    };
    anyhow::ensure!(skiff.is_file(), "no skiff binary at {}", skiff.display());
    let scratch = tempfile::Builder::new().prefix("skiff-bench-").tempdir()?;
    let images = [build_image(scratch.path(), "v1")?, build_image(scratch.path(), "v2")?];
    let kubectl = find_kubectl(args.kubectl.clone()).ok();
    let env = Env {
        skiff,
        kubectl,
        images,
        net: Net {
            bridge: args.bridge.clone(),
            cluster_cidr: args.cluster_cidr.clone(),
            pod_cidr: args.pod_cidr.clone(),
        },
        podman_subnet: args.podman_subnet.clone(),
        quick: args.quick,
        scratch,
    };
    let output = Output { charts: charts.clone() };
    let machine = report::machine_description();
    let date = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC").to_string();

    let mut sections = Vec::new();
    let mut results = Vec::new();
    let mut failed = Vec::new();
    for s in scenarios {
        eprintln!("skiff-bench: {} ...", s.name());
        let before = report::what_else_runs();
        let result = tokio::select! {
            r = run_scenario(s, &env, &output) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        let after = report::what_else_runs();
        let mut header = format!(
            "_Measured {date} with `{command}`{}. Before: {before}. After: {after}._\n\n",
            if args.quick { " (quick mode: tiny sizes, one run; not figures to quote)" } else { "" }
        );
        if let Some(note) = &args.note {
            header.push_str(&format!("_{note}_\n\n"));
        }
        match result {
            Ok(section) => {
                eprintln!("skiff-bench: {} done ({} metrics)", s.name(), section.metrics.len());
                let (title, body) = section.markdown.split_once('\n').unwrap_or((&section.markdown, ""));
                sections.push((s.name().to_string(), format!("{title}\n\n{header}{}", body.trim_start())));
                results.push(section);
            }
            Err(e) => {
                eprintln!("skiff-bench: {} failed: {e:#}", s.name());
                failed.push(format!("{}: {e:#}", s.name()));
            }
        }
    }
    let versions = [
        ("runc", report::tool_version("runc", &["--version"])),
        ("podman", report::tool_version("podman", &["--version"])),
        ("etcd", report::tool_version("/usr/bin/etcd", &["--version"])),
        (
            "kubectl",
            env.kubectl
                .as_ref()
                .map_or("absent".into(), |k| report::tool_version(&k.display().to_string(), &["version", "--client"])),
        ),
    ];
    let mut machine_md = format!(
        "## The machine\n\n_Last run: {date}, `{command}`._\n\n- {machine}\n- {}\n",
        versions.iter().map(|(t, v)| format!("{t}: {v}")).collect::<Vec<_>>().join("; ")
    );
    if let Some(note) = &args.note {
        machine_md.push_str(&format!("- {note}\n"));
    }
    sections.insert(0, ("machine".to_string(), machine_md));
    report::write_sections(&out_dir.join("BENCHMARKS.md"), &sections)?;
    report::write_results(&charts.join("results.json"), &date, &command, args.quick, &machine, &results)?;
    if !failed.is_empty() {
        anyhow::bail!("scenarios failed:\n{}", failed.join("\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        assert_eq!(command_line(false, &Scenario::ALL, false), "cargo run --release -p skiff-bench");
        assert_eq!(command_line(true, &Scenario::ALL, false), "cargo run --release -p skiff-bench -- --quick");
        assert_eq!(
            command_line(false, &[Scenario::PodStart, Scenario::ApiStore], true),
            "cargo run --release -p skiff-bench -- pod-start api-store"
        );
    }
}
