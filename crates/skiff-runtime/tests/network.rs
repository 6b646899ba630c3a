//! Pod networking with real network namespaces and the CNI plugins. Needs root.

mod common;

use common::{Env, read_log};
use skiff_runtime::ContainerConfig;
use std::io::{Read, Write};
use std::time::Duration;

fn sh(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig { name: name.into(), command: vec!["sh".into(), "-c".into(), script.into()], ..Default::default() }
}

#[tokio::test]
async fn containers_of_a_pod_share_localhost() {
    let env = Env::new(21).await;
    let sb = env.sandbox("lo-pod").await;
    let server = sh("server", "echo pong-from-server | nc -l -p 7777");
    let client =
        sh("client", "for i in $(seq 1 50); do nc 127.0.0.1 7777 </dev/null && exit 0; sleep 0.1; done; exit 1");
    let s = env.runtime.create(&sb, &server, &env.image, &env.log_path("server")).await.expect("create");
    s.start().await.expect("start");
    let c = env.runtime.create(&sb, &client, &env.image, &env.log_path("client")).await.expect("create");
    c.start().await.expect("start");
    let exit = tokio::time::timeout(Duration::from_secs(20), c.wait()).await.expect("client exits");
    assert_eq!(exit.exit_code, Some(0));
    let got: Vec<String> = read_log(&env.log_path("client")).into_iter().map(|l| l.2).collect();
    assert_eq!(got, vec!["pong-from-server"]);
    s.stop(Duration::from_secs(2)).await;
    s.remove().await.expect("remove");
    c.remove().await.expect("remove");
    sb.destroy(&env.network).await.expect("destroy");
    env.teardown().await;
}

#[tokio::test]
async fn pod_ip_is_reachable_from_the_host() {
    let env = Env::new(22).await;
    let sb = env.sandbox("web-pod").await;
    let ip = sb.ip;
    assert!(ip.to_string().starts_with("10.244.22."), "{ip}");
    let hosts = std::fs::read_to_string(&sb.hosts_file).expect("hosts");
    assert!(hosts.ends_with(&format!("{ip}\tpod-web-pod\n")), "{hosts}");
    sb.check(&env.network).await.expect("CNI CHECK");
    let web = sh("web", "httpd -f -p 80 -h /www");
    let w = env.runtime.create(&sb, &web, &env.image, &env.log_path("web")).await.expect("create");
    w.start().await.expect("start");
    let mut body = String::new();
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(&(ip, 80).into(), Duration::from_secs(1)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").expect("send");
            s.read_to_string(&mut body).expect("read");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.ends_with("hello from skiff\n"), "{body}");
    // httpd is the pod's PID 1 without a TERM handler, so the kernel ignores TERM: KILL follows.
    let exit = w.stop(Duration::from_secs(1)).await;
    assert_eq!(exit.exit_code, Some(137), "{exit:?}");
    w.remove().await.expect("remove");
    sb.destroy(&env.network).await.expect("destroy");
    // The IP went back to host-local.
    let leases: Vec<_> = std::fs::read_dir(env.tmp.path().join("ipam/skiff-test-22"))
        .map(|d| d.flatten().map(|e| e.file_name()).filter(|n| n.to_string_lossy().starts_with("10.")).collect())
        .unwrap_or_default();
    assert!(leases.is_empty(), "{leases:?}");
    env.teardown().await;
}

#[tokio::test]
async fn blackhole_route_is_added_once_and_removed() {
    let cidr = "10.245.0.0/16";
    let routes = || {
        String::from_utf8_lossy(
            &std::process::Command::new("ip").args(["route", "show", "type", "blackhole"]).output().expect("ip").stdout,
        )
        .into_owned()
    };
    assert!(!skiff_runtime::cni::has_blackhole(&routes(), cidr), "test range already in use");
    assert!(skiff_runtime::cni::ensure_blackhole_route(cidr).await.expect("add"));
    assert!(!skiff_runtime::cni::ensure_blackhole_route(cidr).await.expect("again"), "only if not present");
    assert!(skiff_runtime::cni::has_blackhole(&routes(), cidr));
    skiff_runtime::cni::remove_blackhole_route(cidr).await.expect("remove");
    assert!(!skiff_runtime::cni::has_blackhole(&routes(), cidr));
}

/// A network namespace standing for a host outside the cluster, linked to this machine by a veth
/// pair (`host_ip` on the machine's end, `ip` inside) and with no route back to the pod range:
/// a pod can talk to it only if its packets leave masqueraded as the machine. Removed on drop.
struct OutsideHost {
    netns: String,
    veth: String,
    server: Option<std::process::Child>,
}

impl OutsideHost {
    fn new(netns: &str, veth: &str, host_ip: &str, ip: &str) -> OutsideHost {
        let run = |args: &[&str]| {
            let status = std::process::Command::new("ip").args(args).status().expect("ip");
            assert!(status.success(), "ip {args:?}");
        };
        let host = OutsideHost { netns: netns.into(), veth: veth.into(), server: None };
        run(&["netns", "add", netns]);
        let peer = format!("{veth}p");
        run(&["link", "add", veth, "type", "veth", "peer", "name", &peer]);
        run(&["link", "set", &peer, "netns", netns]);
        run(&["addr", "add", &format!("{host_ip}/24"), "dev", veth]);
        run(&["link", "set", veth, "up"]);
        run(&["-n", netns, "addr", "add", &format!("{ip}/24"), "dev", &peer]);
        run(&["-n", netns, "link", "set", &peer, "up"]);
        run(&["-n", netns, "link", "set", "lo", "up"]);
        host
    }

    /// Serves `text` once on TCP `port` inside the namespace (busybox nc).
    fn serve_once(&mut self, port: u16, text: &str) {
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &self.netns, "busybox", "nc", "-l", "-p", &port.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("nc");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(text.as_bytes()).expect("nc stdin");
        }
        self.server = Some(child);
    }
}

impl Drop for OutsideHost {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let quiet = std::process::Stdio::null;
        let _ = std::process::Command::new("ip").args(["link", "del", &self.veth]).stderr(quiet()).status();
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.netns]).stderr(quiet()).status();
    }
}

fn nat_rules(chain: &str) -> String {
    let out = std::process::Command::new("iptables").args(["-w", "-t", "nat", "-S", chain]).output().expect("iptables");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pods reach addresses outside the cluster range through the node-level masquerade rules (the
/// bridge plugin's per-pod `ipMasq` is off), and no per-pod NAT rule is created.
#[tokio::test]
async fn traffic_leaving_the_cluster_is_masqueraded() {
    use skiff_runtime::masquerade;
    let env = Env::new(23).await;
    let bridge = env.network.config().bridge.clone();
    // Removes the rules even if an assertion fails.
    struct Rules(String);
    impl Drop for Rules {
        fn drop(&mut self) {
            masquerade::remove(&self.0);
        }
    }
    let rules = Rules(bridge.clone());
    masquerade::ensure(&bridge, "10.244.23.0/24", "10.244.0.0/16").await.expect("masquerade rules");
    masquerade::ensure(&bridge, "10.244.23.0/24", "10.244.0.0/16").await.expect("again: a no-op");
    let chain = masquerade::chain(&bridge);
    assert_eq!(
        nat_rules(&chain),
        format!(
            "-N {chain}\n-A {chain} -d 10.244.0.0/16 -j RETURN\n-A {chain} -d 224.0.0.0/4 -j RETURN\n\
             -A {chain} -j MASQUERADE\n"
        )
    );
    let jumps: Vec<String> =
        nat_rules("POSTROUTING").lines().filter(|l| l.ends_with(&format!("-j {chain}"))).map(str::to_string).collect();
    assert_eq!(
        jumps,
        vec![format!("-A POSTROUTING -s 10.244.23.0/24 -m comment --comment \"skiff: pods of {bridge}\" -j {chain}")]
    );

    let mut outside = OutsideHost::new("skmasq23", "skmq23", "10.250.23.1", "10.250.23.2");
    outside.serve_once(8023, "hello from outside\n");
    let sb = env.sandbox("masq-pod").await;
    let client =
        sh("client", "for i in $(seq 1 50); do nc -w 2 10.250.23.2 8023 </dev/null && exit 0; sleep 0.1; done; exit 1");
    let c = env.runtime.create(&sb, &client, &env.image, &env.log_path("client")).await.expect("create");
    c.start().await.expect("start");
    let exit = tokio::time::timeout(Duration::from_secs(30), c.wait()).await.expect("client exits");
    let got: Vec<String> = read_log(&env.log_path("client")).into_iter().map(|l| l.2).collect();
    assert_eq!(exit.exit_code, Some(0), "{got:?}");
    assert_eq!(got, vec!["hello from outside"]);
    let per_pod: Vec<String> =
        nat_rules("POSTROUTING").lines().filter(|l| l.contains("CNI-")).map(str::to_string).collect();
    assert!(per_pod.iter().all(|l| !l.contains("skiff-test-23")), "no per-pod NAT rules: {per_pod:?}");
    c.remove().await.expect("remove");
    sb.destroy(&env.network).await.expect("destroy");
    drop(outside);
    drop(rules);
    assert_eq!(nat_rules(&chain), "", "the chain is removed");
    assert!(!nat_rules("POSTROUTING").contains(&chain));
    env.teardown().await;
}
