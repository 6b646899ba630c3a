//! The results of a run and how they are written: BENCHMARKS.md sections between markers (a re-run
//! replaces its own sections and leaves everything else in the file alone), a JSON file of every
//! metric, and the description of the machine and of what else was running on it.

use std::path::Path;

use serde::Serialize;

use crate::stats::{Summary, fmt_num};

/// One measured quantity: its samples' summary, in `unit`.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub name: String,
    pub unit: String,
    pub summary: Summary,
}

/// What one scenario produced: a Markdown section and its metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// The marker name (`<!-- bench:start NAME -->`) and the scenario's CLI name.
    pub name: String,
    #[serde(skip)]
    pub markdown: String,
    pub metrics: Vec<Metric>,
}

impl Section {
    pub fn new(name: &str) -> Section {
        Section { name: name.to_string(), markdown: String::new(), metrics: Vec::new() }
    }

    /// Records a metric (when there were samples) and returns its summary.
    pub fn metric(&mut self, name: &str, unit: &str, samples: &[f64]) -> Option<Summary> {
        let summary = Summary::of(samples)?;
        self.metrics.push(Metric { name: name.to_string(), unit: unit.to_string(), summary: summary.clone() });
        Some(summary)
    }

    pub fn line(&mut self, text: impl AsRef<str>) {
        self.markdown.push_str(text.as_ref());
        self.markdown.push('\n');
    }
}

fn start_marker(name: &str) -> String {
    format!("<!-- bench:start {name} -->")
}

fn end_marker(name: &str) -> String {
    format!("<!-- bench:end {name} -->")
}

/// `doc` with the section `name` replaced by `content` (between its markers); a section that is
/// not in `doc` yet is appended at the end.
pub fn replace_section(doc: &str, name: &str, content: &str) -> String {
    let (start, end) = (start_marker(name), end_marker(name));
    let body = format!("{start}\n{}\n{end}", content.trim_end());
    if let Some(s) = doc.find(&start)
        && let Some(e) = doc[s..].find(&end).map(|e| s + e + end.len())
    {
        return format!("{}{body}{}", &doc[..s], &doc[e..]);
    }
    let mut out = doc.trim_end().to_string();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(&body);
    out.push('\n');
    out
}

/// Writes `sections` into `file` (created when missing), each between its markers.
pub fn write_sections(file: &Path, sections: &[(String, String)]) -> std::io::Result<()> {
    let mut doc = match std::fs::read_to_string(file) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".to_string(),
        Err(e) => return Err(e),
    };
    for (name, content) in sections {
        doc = replace_section(&doc, name, content);
    }
    let tmp = file.with_extension("md.tmp");
    std::fs::write(&tmp, doc)?;
    std::fs::rename(&tmp, file)
}

/// Writes the metrics of `sections` into the JSON file `file`, keeping the entries of scenarios
/// this run did not measure.
pub fn write_results(
    file: &Path,
    date: &str,
    command: &str,
    quick: bool,
    machine: &str,
    sections: &[Section],
) -> std::io::Result<()> {
    let old: serde_json::Value =
        std::fs::read_to_string(file).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let mut scenarios = old["scenarios"].as_object().cloned().unwrap_or_default();
    for s in sections {
        let entry = serde_json::json!({"date": date, "command": command, "quick": quick, "metrics": s.metrics});
        scenarios.insert(s.name.clone(), entry);
    }
    let doc = serde_json::json!({"machine": machine, "scenarios": scenarios});
    std::fs::write(file, serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n")
}

/// The CPU model and count, memory and kernel, from `/proc`.
pub fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    describe_machine(&cpuinfo, &meminfo, kernel.trim(), &os)
}

fn field<'a>(text: &'a str, key: &str, sep: char) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(sep)?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The machine line, from the texts of `/proc/cpuinfo`, `/proc/meminfo`, the kernel release and
/// `/etc/os-release`.
pub fn describe_machine(cpuinfo: &str, meminfo: &str, kernel: &str, os_release: &str) -> String {
    let cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let model = field(cpuinfo, "model name", ':').unwrap_or("unknown CPU");
    let mhz = field(cpuinfo, "cpu MHz", ':').and_then(|m| m.parse::<f64>().ok());
    let mem_kib = field(meminfo, "MemTotal", ':')
        .and_then(|m| m.trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    let os = field(os_release, "PRETTY_NAME", '=').map(|p| p.trim_matches('"')).unwrap_or("unknown OS");
    let clock = mhz.map(|m| format!(" at {} MHz", fmt_num(m))).unwrap_or_default();
    format!("{cpus} × {model}{clock}, {:.1} GiB memory, Linux {kernel}, {os}", mem_kib / (1024.0 * 1024.0))
}

/// The 1-minute load average and the processes using a noticeable share of a CPU right now (other
/// builds, other tests): what else was running.
pub fn what_else_runs() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load1 = load.split_whitespace().next().unwrap_or("?").to_string();
    let ps = std::process::Command::new("ps")
        .args(["-eo", "pcpu=,comm=", "--sort=-pcpu"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    busy_processes(&load1, &ps)
}

/// "load average L; busy: name (P% CPU), ..." from `ps -eo pcpu=,comm=` output; processes under 5%
/// (and the harness itself) are left out.
pub fn busy_processes(load1: &str, ps: &str) -> String {
    let busy: Vec<String> = ps
        .lines()
        .filter_map(|l| {
            let (cpu, comm) = l.trim().split_once(char::is_whitespace)?;
            let cpu: f64 = cpu.parse().ok()?;
            (cpu >= 5.0 && comm.trim() != "skiff-bench" && comm.trim() != "ps")
                .then(|| format!("{} ({cpu:.0}% CPU)", comm.trim()))
        })
        .take(8)
        .collect();
    let busy = if busy.is_empty() { "none".to_string() } else { busy.join(", ") };
    format!("load average {load1}; other busy processes: {busy}")
}

/// A version line of a tool (`runc --version` ...), or "absent".
pub fn tool_version(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_else(|| "absent".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_or_appended() {
        let doc = "# B\n\nintro\n<!-- bench:start a -->\nold\n<!-- bench:end a -->\n\n## Scheduler\nkept\n";
        let cases = [
            ("a", "new", "# B\n\nintro\n<!-- bench:start a -->\nnew\n<!-- bench:end a -->\n\n## Scheduler\nkept\n"),
            (
                "b",
                "bee\n\n",
                "# B\n\nintro\n<!-- bench:start a -->\nold\n<!-- bench:end a -->\n\n## Scheduler\nkept\n\n\
                 <!-- bench:start b -->\nbee\n<!-- bench:end b -->\n",
            ),
        ];
        for (name, content, want) in cases {
            assert_eq!(replace_section(doc, name, content), want, "{name}");
        }
        // A start without its end is treated as absent: nothing after it is lost.
        let broken = "x\n<!-- bench:start a -->\ny\n";
        assert_eq!(
            replace_section(broken, "a", "z"),
            "x\n<!-- bench:start a -->\ny\n\n<!-- bench:start a -->\nz\n<!-- bench:end a -->\n"
        );
    }

    #[test]
    fn replacing_twice_is_stable() {
        let once = replace_section("# B\n", "a", "one");
        let twice = replace_section(&once, "a", "one");
        assert_eq!(once, twice);
    }

    #[test]
    fn machine() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\ncpu MHz\t\t: 2450.000\n\n\
                       processor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        let meminfo = "MemTotal:       24684248 kB\nMemFree: 1 kB\n";
        let os = "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            describe_machine(cpuinfo, meminfo, "6.1.0-40-amd64", os),
            "2 × AMD EPYC 7B13 at 2,450 MHz, 23.5 GiB memory, Linux 6.1.0-40-amd64, Debian GNU/Linux 12 (bookworm)"
        );
    }

    #[test]
    fn busy() {
        let ps = " 95.0 rustc\n 40.2 cargo\n 12.0 skiff-bench\n  4.9 bash\n  0.0 init\n";
        assert_eq!(
            busy_processes("3.10", ps),
            "load average 3.10; other busy processes: rustc (95% CPU), cargo (40% CPU)"
        );
        assert_eq!(busy_processes("0.01", "  0.0 init\n"), "load average 0.01; other busy processes: none");
    }
}
