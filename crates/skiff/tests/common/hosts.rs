//! Several "machines" on one: each host is a network namespace (`skiffh-<tag>-<i>`) with a veth
//! link to a test bridge in the root namespace, running a real `skiff agent` (its own data
//! directory, runc root and pod bridge) against a `skiff server` bound to the bridge's address.
//!
//! Layout for tag `t` and octet `o`: the bridge `skh-t` has `192.168.o.1/24`; host `i` is
//! `192.168.o.(10+i)` on its `eth0` (the root side is `skh-t-i`), with loopback up and a default
//! route via the bridge; the cluster's pod range is `10.o.0.0/16` (node IPAM gives each host a /24
//! of it). Agents run through `nsenter --net` rather than `ip netns exec`: the latter remounts
//! `/sys` and so hides the cgroup hierarchy runc needs.
//!
//! Traffic stays on the machine: two FORWARD rules in the root namespace drop anything routed
//! between the test bridge and another interface (bridged traffic between the hosts is not
//! routed, so it passes). [`Hosts`] can kill a host (SIGKILL of its agent and of every container
//! of its runc root: a crash), bring it back (a fresh agent on the same data directory), and cut
//! and restore its link (a partition). Its [`Drop`] removes what it created even when a test
//! fails: agents, containers, mounts under the data directories, pod cgroups, namespaces (with
//! their veths, routes and pod bridges), the bridge and the FORWARD rules.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::image::{build_image, import_image};
use super::{START_TIMEOUT, Server, run};

/// Runs a command, ignoring failure and its output (cleanup).
fn quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// One test machine.
pub struct Host {
    /// `host-<i>`: the Node's name.
    pub name: String,
    /// The network namespace, `skiffh-<tag>-<i>`.
    pub netns: String,
    /// The root namespace's end of the host's link.
    pub veth: String,
    /// The host's address (its Node's InternalIP).
    pub ip: Ipv4Addr,
    /// The agent's data directory.
    pub data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Host {
    /// The agent's runc root.
    pub fn runc_root(&self) -> PathBuf {
        self.data_dir.join("runc")
    }

    /// The runc container IDs under the agent's runc root.
    pub fn runc_containers(&self) -> Vec<String> {
        let root = self.runc_root();
        let out = output("runc", &["--root", root.to_str().unwrap_or_default(), "list", "-q"]);
        out.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
    }

    /// The agent's log so far (all its runs).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the agent process runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    fn kill_agent(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `runc kill KILL` of every container of the runc root (their state stays, as after a crash).
    fn kill_containers(&self) {
        let root = self.runc_root();
        let root = root.to_str().unwrap_or_default();
        for id in self.runc_containers() {
            quiet("runc", &["--root", root, "kill", "--all", &id, "KILL"]);
        }
    }

    /// Removes every container of the runc root, the mounts under the data directory and the
    /// cgroups of its pods.
    fn clean(&self) {
        super::node::remove_agent_state(&self.data_dir, &self.data_dir);
    }
}

/// A server and N hosts; see the module documentation.
pub struct Hosts {
    pub server: Server,
    pub hosts: Vec<Host>,
    /// The cluster's pod range, `10.<octet>.0.0/16`.
    pub cluster_cidr: String,
    bridge: String,
    bridge_ip: Ipv4Addr,
    /// Root-namespace FORWARD rules to delete (the arguments after `-I FORWARD`/`-D FORWARD`).
    forward_rules: Vec<Vec<String>>,
    scratch: tempfile::TempDir,
    timing: Timing,
}

/// How quickly the cluster notices a silent node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// `--node-monitor-grace-period 5s --node-monitor-period 1s`, agents renewing 4 s Leases.
    Short,
    /// Kubernetes' defaults: 50 s grace period, 5 s monitor period, 40 s node Leases.
    Default,
}

/// The pieces of a host's names.
fn host_names(tag: &str, i: usize) -> (String, String) {
    (format!("skiffh-{tag}-{i}"), format!("skh-{tag}-{i}"))
}

impl Hosts {
    /// A server bound to the test bridge ([`Timing::Short`], no agent of its own,
    /// plus `server_args`) and `n` hosts running agents. `tag` (at most 5 characters) names the
    /// namespaces and links; `octet` picks the bridge subnet `192.168.<octet>.0/24` and the pod range
    /// `10.<octet>.0.0/16`: each test needs its own.
    pub fn start(tag: &str, octet: u8, n: usize, server_args: &[&str]) -> Hosts {
        Hosts::start_timed(tag, octet, n, server_args, Timing::Short)
    }

    /// [`Hosts::start`] with the given node-failure timing.
    pub fn start_timed(tag: &str, octet: u8, n: usize, server_args: &[&str], timing: Timing) -> Hosts {
        let monitor: &[&str] = match timing {
            Timing::Short => &["--node-monitor-grace-period", "5s", "--node-monitor-period", "1s"],
            Timing::Default => &[],
        };
        assert!(tag.len() <= 5 && n <= 9, "names must fit the 15-character interface limit");
        let scratch = tempfile::Builder::new().prefix(&format!("skiff-hosts-{tag}-")).tempdir().expect("tempdir");
        let bridge = format!("skh-{tag}");
        let bridge_ip = Ipv4Addr::new(192, 168, octet, 1);
        let cluster_cidr = format!("10.{octet}.0.0/16");
        remove_stale(tag, &bridge);

        run(Command::new("ip").args(["link", "add", &bridge, "type", "bridge"]));
        let mut hosts = Hosts {
            server: start_server(
                bridge_ip,
                &[monitor, &["--cluster-cidr"][..], &[cluster_cidr.as_str()][..], server_args].concat(),
                &bridge,
            ),
            hosts: Vec::new(),
            cluster_cidr,
            bridge: bridge.clone(),
            bridge_ip,
            forward_rules: Vec::new(),
            scratch,
            timing,
        };
        for rule in
            [["-i", &bridge, "!", "-o", &bridge, "-j", "DROP"], ["!", "-i", &bridge, "-o", &bridge, "-j", "DROP"]]
        {
            let mut args = vec!["-w", "5", "-I", "FORWARD"];
            args.extend(rule);
            run(Command::new("iptables").args(&args));
            hosts.forward_rules.push(rule.iter().map(|s| s.to_string()).collect());
        }
        let archive = build_image(&hosts.scratch.path().join("image"));
        for i in 0..n {
            let (netns, veth) = host_names(tag, i);
            let ip = Ipv4Addr::new(192, 168, octet, 10 + i as u8);
            let dir = hosts.scratch.path().join(format!("host-{i}"));
            let data_dir = dir.join("data");
            import_image(&data_dir, &archive);
            run(Command::new("ip").args(["netns", "add", &netns]));
            run(Command::new("ip")
                .args(["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns]));
            run(Command::new("ip").args(["link", "set", &veth, "master", &bridge, "up"]));
            run(Command::new("ip").args(["-n", &netns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]));
            run(Command::new("ip").args(["-n", &netns, "link", "set", "lo", "up"]));
            run(Command::new("ip").args(["-n", &netns, "link", "set", "eth0", "up"]));
            run(Command::new("ip").args(["-n", &netns, "route", "add", "default", "via", &bridge_ip.to_string()]));
            hosts.hosts.push(Host {
                name: format!("host-{i}"),
                netns,
                veth,
                ip,
                data_dir,
                log: dir.join("agent.log"),
                child: None,
            });
            hosts.start_agent(i);
        }
        hosts
    }

    /// Starts a fresh agent for host `i` (on its data directory, in its namespace).
    pub fn start_agent(&mut self, i: usize) {
        let server = format!("https://{}", self.server.addr);
        let ca = self.server.data_dir().join("pki/ca.crt");
        let h = &mut self.hosts[i];
        assert!(h.child.is_none(), "host {i} already runs an agent");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&h.log).expect("agent log");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", h.netns))
            .arg(env!("CARGO_BIN_EXE_skiff"))
            .args(["agent", "--server", &server, "--token", &self.server.token, "--certificate-authority"])
            .arg(&ca)
            .args(["--node-name", &h.name, "--data-dir"])
            .arg(&h.data_dir)
            .args(["--bridge", "skiff0", "--kubelet-port", "10250", "--node-ip", &h.ip.to_string()])
            .args(["--cluster-cidr", &self.cluster_cidr, "--node-lease-duration-seconds"])
            .arg(if self.timing == Timing::Short { "4" } else { "40" })
            .env("SKIFF_LOG", std::env::var("SKIFF_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn skiff agent");
        h.child = Some(child);
    }

    /// A crash of host `i`: SIGKILL of its agent and of every container it runs.
    pub fn kill(&mut self, i: usize) {
        let h = &mut self.hosts[i];
        h.kill_agent();
        h.kill_containers();
    }

    /// Cuts host `i`'s link (a partition): its agent and pods keep running, unreachable.
    pub fn cut(&self, i: usize) {
        run(Command::new("ip").args(["link", "set", &self.hosts[i].veth, "down"]));
    }

    /// Restores host `i`'s link.
    pub fn restore(&self, i: usize) {
        run(Command::new("ip").args(["link", "set", &self.hosts[i].veth, "master", &self.bridge, "up"]));
    }

    /// `ip route` inside host `i`'s namespace.
    pub fn routes(&self, i: usize) -> String {
        output("ip", &["-n", &self.hosts[i].netns, "-4", "route", "show"])
    }

    /// The bridge's address (the server's).
    pub fn bridge_ip(&self) -> Ipv4Addr {
        self.bridge_ip
    }

    /// Every agent's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for h in &self.hosts {
            let text = h.log_text();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {} agent log (last 40 lines) ---\n", h.name));
            out.push_str(&lines[lines.len().saturating_sub(40)..].join("\n"));
            out.push('\n');
        }
        out.push_str("--- server log ---\n");
        out.push_str(&self.server.log_text());
        out
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("SKIFF_E2E_AGENT_LOG").is_some() {
            eprintln!("{}", self.logs());
        }
        for h in &mut self.hosts {
            h.kill_agent();
        }
        for h in &self.hosts {
            h.clean();
        }
        for h in &self.hosts {
            quiet("ip", &["netns", "del", &h.netns]);
            quiet("ip", &["link", "del", &h.veth]);
        }
        quiet("ip", &["link", "del", &self.bridge]);
        for rule in &self.forward_rules {
            let mut args = vec!["-w", "5", "-D", "FORWARD"];
            args.extend(rule.iter().map(String::as_str));
            quiet("iptables", &args);
        }
    }
}

/// Removes what a previous run with the same tag left (it crashed before its `Drop`): the
/// namespaces (after killing the processes in them, which only such a run started), links, bridge.
fn remove_stale(tag: &str, bridge: &str) {
    for i in 0..10 {
        let (netns, veth) = host_names(tag, i);
        if Path::new("/run/netns").join(&netns).exists() {
            for pid in output("ip", &["netns", "pids", &netns]).split_whitespace() {
                quiet("kill", &["-9", pid]);
            }
            quiet("ip", &["netns", "del", &netns]);
        }
        quiet("ip", &["link", "del", &veth]);
    }
    quiet("ip", &["link", "del", bridge]);
}

/// Starts `skiff server --bind <ip>` (the common harness binds 127.0.0.1, which the hosts cannot
/// reach) with `--no-agent` and `extra`.
fn start_server(bind: Ipv4Addr, extra: &[&str], bridge: &str) -> Server {
    // The bridge needs its address before the server can bind it.
    run(Command::new("ip").args(["addr", "add", &format!("{bind}/24"), "dev", bridge]));
    run(Command::new("ip").args(["link", "set", bridge, "up"]));
    let root = tempfile::Builder::new().prefix("skiff-e2e-").tempdir().expect("create a temp dir for the server");
    let data_dir = root.path().join("data");
    let home = root.path().join("home");
    std::fs::create_dir_all(&home).expect("create the kubectl home");
    let log_path = root.path().join("server.log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("open the server log");
    let bind_text = bind.to_string();
    let mut args = vec!["server", "--data-dir", data_dir.to_str().expect("UTF-8"), "--port", "0", "--bind"];
    args.extend([bind_text.as_str(), "--no-agent"]);
    args.extend(extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(&args)
        .env("SKIFF_LOG", std::env::var("SKIFF_LOG").unwrap_or_else(|_| "info".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn the skiff binary");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let (mut addr, mut kubeconfig) = (None, None);
    while addr.is_none() || kubeconfig.is_none() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if let Some(a) = line.strip_prefix("skiff server listening on https://") {
                    addr = Some(a.trim().parse::<SocketAddr>().expect("host:port"));
                } else if let Some(k) = line.strip_prefix("kubeconfig: ") {
                    kubeconfig = Some(PathBuf::from(k.trim()));
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("skiff server did not start:\n{}", std::fs::read_to_string(&log_path).unwrap_or_default());
            }
        }
    }
    let token = std::fs::read_to_string(data_dir.join("pki/admin.token")).expect("admin token").trim().to_string();
    Server {
        addr: addr.expect("address"),
        kubeconfig: kubeconfig.expect("kubeconfig"),
        token,
        data_dir,
        home,
        log: log_path,
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        child: Some(child),
        _etcd: None,
        _root: root,
    }
}

/// Polls `f` until it returns `Some` or `timeout` passes; `None` then.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
