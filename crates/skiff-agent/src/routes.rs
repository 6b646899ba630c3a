//! Routes between nodes, host-gateway style (flannel's `host-gw` backend): every node routes each
//! other node's pod range (`spec.podCIDR`) via that node's `InternalIP`, so a pod reaches a pod on
//! another node by its IP, without NAT and without an overlay. Needs the nodes on one L2 segment.
//!
//! The pure part computes the routes a node wants ([`desired_routes`]), reads `ip route` output
//! ([`parse_routes`]) and plans the difference ([`plan`]). The agent's task ([`run`]) watches the
//! Nodes and applies the plan with `ip route replace|del`. The routes it adds carry the protocol
//! number [`ROUTE_PROTOCOL`], which is how it recognises its own: it never replaces or deletes a
//! route it did not add. Routes stay when the agent stops (as a kubelet's network does); the route
//! of a Node that is deleted goes.
//!
//! With routes to other nodes present the task also turns on IPv4 forwarding and keeps pod-to-pod
//! traffic inside the cluster range from being masqueraded by the bridge plugin's `ipMasq` rules
//! (a `RETURN` rule at the top of `nat POSTROUTING`), so the receiving pod sees the sender's pod IP.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

/// The `proto` of the routes the agent adds (an unassigned number in iproute2's `rt_protos`).
pub const ROUTE_PROTOCOL: u8 = 218;

/// The comment of the masquerade exemption rule.
const MASQ_COMMENT: &str = "skiff: pod-to-pod traffic keeps its source address";

/// How often routes are checked again without a Node change (someone may have removed one).
const RESYNC: Duration = Duration::from_secs(30);

pub use ipnet::Ipv4Net;

/// Parses `a.b.c.d/n` with the host bits cleared (`10.1.2.3/16` is `10.1.0.0/16`); `None` for
/// anything else (IPv6 too).
pub fn parse_net(text: &str) -> Option<Ipv4Net> {
    text.trim().parse::<Ipv4Net>().ok().map(|n| n.trunc())
}

/// The routes this node wants: destination → gateway.
pub type RouteTable = BTreeMap<Ipv4Net, Ipv4Addr>;

/// The first IPv4 `InternalIP` of a Node.
pub fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse::<Ipv4Addr>().ok())
}

/// The IPv4 pod range of a Node: `spec.podCIDR`, else the first IPv4 entry of `spec.podCIDRs`.
pub fn pod_cidr(node: &Node) -> Option<Ipv4Net> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidr.iter().chain(spec.pod_cidrs.iter().flatten()).find_map(|c| parse_net(c))
}

/// For every other Node with an IPv4 pod range and an IPv4 `InternalIP`: `podCIDR via InternalIP`.
/// Skipped: this node (by name, or a Node that has this node's IP), simulated nodes, and a range that would cover
/// this node's own `own_cidr` (a misconfiguration that would pull this node's pods away).
pub fn desired_routes(nodes: &[Node], self_name: &str, self_ip: IpAddr, own_cidr: Option<Ipv4Net>) -> RouteTable {
    let mut table = RouteTable::new();
    for node in nodes {
        // Simulated nodes run no pods and their addresses lead nowhere.
        let simulated = node.metadata.labels.as_ref().is_some_and(|l| l.contains_key(crate::simulate::SIMULATED_LABEL));
        if node.name_any() == self_name || simulated {
            continue;
        }
        let (Some(cidr), Some(ip)) = (pod_cidr(node), internal_ip(node)) else { continue };
        if IpAddr::V4(ip) == self_ip || own_cidr == Some(cidr) {
            continue;
        }
        table.insert(cidr, ip);
    }
    table
}

/// One line of `ip -4 route show`: its destination, gateway and protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownRoute {
    pub dst: Ipv4Net,
    pub via: Option<Ipv4Addr>,
    /// The `proto` field as printed (a name such as `kernel`, or a number); `None` when absent.
    pub proto: Option<String>,
}

/// Route types iproute2 prints before the destination.
const ROUTE_TYPES: [&str; 8] =
    ["unicast", "blackhole", "unreachable", "prohibit", "local", "broadcast", "throw", "multicast"];

/// Parses `ip -4 route show` output (lines `[TYPE] DST [via GW] [dev D] [proto P] ...`); the
/// `default` route is `0.0.0.0/0`; a bare address is a /32. Unparseable lines are skipped.
pub fn parse_routes(text: &str) -> Vec<ShownRoute> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().peekable();
        if words.peek().is_some_and(|w| ROUTE_TYPES.contains(w)) {
            words.next();
        }
        let Some(dst) = words.next() else { continue };
        let dst = match dst {
            "default" => Some(Ipv4Net::default()),
            d if d.contains('/') => parse_net(d),
            d => d.parse::<Ipv4Addr>().ok().map(Ipv4Net::from),
        };
        let Some(dst) = dst else { continue };
        let rest: Vec<&str> = words.collect();
        let after = |key: &str| rest.windows(2).find(|w| w[0] == key).map(|w| w[1]);
        out.push(ShownRoute {
            dst,
            via: after("via").and_then(|v| v.parse().ok()),
            proto: after("proto").map(str::to_string),
        });
    }
    out
}

/// Whether a shown route is one the agent added.
pub fn is_ours(route: &ShownRoute) -> bool {
    route.proto.as_deref() == Some(&ROUTE_PROTOCOL.to_string())
}

/// One change to the routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteChange {
    /// `ip route replace DST via GW proto 218`.
    Replace { dst: Ipv4Net, via: Ipv4Addr },
    /// `ip route del DST proto 218`.
    Delete { dst: Ipv4Net },
}

/// What to change so the table has the `desired` routes, given the `current` table: routes that
/// are missing or point elsewhere are replaced, the agent's routes nobody wants are deleted. A
/// desired destination that already has a route the agent did not add is left alone and returned
/// as a conflict.
pub fn plan(desired: &RouteTable, current: &[ShownRoute]) -> (Vec<RouteChange>, Vec<Ipv4Net>) {
    let ours: BTreeMap<Ipv4Net, Option<Ipv4Addr>> =
        current.iter().filter(|r| is_ours(r)).map(|r| (r.dst, r.via)).collect();
    let foreign: BTreeSet<Ipv4Net> = current.iter().filter(|r| !is_ours(r)).map(|r| r.dst).collect();
    let mut changes = Vec::new();
    let mut conflicts = Vec::new();
    for (dst, via) in desired {
        if foreign.contains(dst) {
            conflicts.push(*dst);
        } else if ours.get(dst) != Some(&Some(*via)) {
            changes.push(RouteChange::Replace { dst: *dst, via: *via });
        }
    }
    for dst in ours.keys().filter(|d| !desired.contains_key(d)) {
        changes.push(RouteChange::Delete { dst: *dst });
    }
    (changes, conflicts)
}

/// The `ip` arguments of a change.
pub fn ip_args(change: &RouteChange) -> Vec<String> {
    let proto = ROUTE_PROTOCOL.to_string();
    match change {
        RouteChange::Replace { dst, via } => {
            vec![
                "route".into(),
                "replace".into(),
                dst.to_string(),
                "via".into(),
                via.to_string(),
                "proto".into(),
                proto,
            ]
        }
        RouteChange::Delete { dst } => vec!["route".into(), "del".into(), dst.to_string(), "proto".into(), proto],
    }
}

/// The `iptables -t nat` rule (without the `-C`/`-I` verb and chain) that exempts traffic from this
/// node's pods to the cluster's pod range from masquerading.
pub fn masquerade_exemption(pod_cidr: Ipv4Net, cluster_cidr: Ipv4Net) -> Vec<String> {
    [
        "-s",
        &pod_cidr.to_string(),
        "-d",
        &cluster_cidr.to_string(),
        "-m",
        "comment",
        "--comment",
        MASQ_COMMENT,
        "-j",
        "RETURN",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A command that failed.
#[derive(Debug, thiserror::Error)]
#[error("{command}: {message}")]
pub struct CommandError {
    pub command: String,
    pub message: String,
}

async fn command(program: &str, args: &[String]) -> Result<String, CommandError> {
    let text = format!("{program} {}", args.join(" "));
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|e| CommandError { command: text.clone(), message: e.to_string() })?;
    if !out.status.success() {
        let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(CommandError { command: text, message });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The main table's IPv4 routes.
pub async fn read_routes() -> Result<Vec<ShownRoute>, CommandError> {
    Ok(parse_routes(&command("ip", &["-4".into(), "route".into(), "show".into()]).await?))
}

/// Turns on IPv4 forwarding (the node routes for its pods).
fn enable_forwarding() {
    let path = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return;
    }
    if let Err(e) = std::fs::write(path, "1") {
        tracing::warn!(error = %e, "cannot enable IPv4 forwarding; pods on other nodes are unreachable");
    }
}

/// Inserts the masquerade exemption at the top of `nat POSTROUTING` unless present.
async fn ensure_masquerade_exemption(pod_cidr: Ipv4Net, cluster_cidr: Ipv4Net) -> Result<(), CommandError> {
    let rule = masquerade_exemption(pod_cidr, cluster_cidr);
    let with = |verb: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["-w", "5", "-t", "nat"].iter().map(|s| s.to_string()).collect();
        args.extend(verb.iter().map(|s| s.to_string()));
        args.extend(rule.iter().cloned());
        args
    };
    if command("iptables", &with(&["-C", "POSTROUTING"])).await.is_ok() {
        return Ok(());
    }
    command("iptables", &with(&["-I", "POSTROUTING", "1"])).await.map(|_| ())
}

/// What the route task needs to know about this node.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub node_name: String,
    pub node_ip: IpAddr,
    /// This node's pod range (for the masquerade exemption), once known.
    pub pod_cidr: Option<String>,
    /// The cluster's pod range.
    pub cluster_cidr: Option<String>,
}

/// Applies the plan for `desired`; returns whether every change went through.
async fn sync(config: &RouteConfig, desired: &RouteTable, prepared: &mut bool) -> bool {
    let current = match read_routes().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the routing table");
            return false;
        }
    };
    if !desired.is_empty() && !*prepared {
        enable_forwarding();
        let own = config.pod_cidr.as_deref().and_then(parse_net);
        let cluster = config.cluster_cidr.as_deref().and_then(parse_net);
        match (own, cluster) {
            (Some(own), Some(cluster)) => match ensure_masquerade_exemption(own, cluster).await {
                Ok(()) => *prepared = true,
                Err(e) => tracing::warn!(error = %e, "cannot exempt pod-to-pod traffic from masquerading"),
            },
            _ => *prepared = true,
        }
    }
    let (changes, conflicts) = plan(desired, &current);
    for dst in conflicts {
        tracing::warn!(%dst, "a route this agent did not add exists for another node's pod range; leaving it");
    }
    let mut ok = true;
    for change in changes {
        match command("ip", &ip_args(&change)).await {
            Ok(_) => tracing::info!(?change, "route to another node's pods updated"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot update a route to another node's pods");
                ok = false;
            }
        }
    }
    ok
}

/// Watches the Nodes and keeps this node's routes to the other nodes' pod ranges, until aborted.
pub async fn run(client: Client, config: RouteConfig) {
    let api: Api<Node> = Api::all(client);
    let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut listing: BTreeMap<String, Node> = BTreeMap::new();
    let mut synced = false;
    let mut applied: Option<RouteTable> = None;
    let mut prepared = false;
    let mut resync = tokio::time::interval(RESYNC);
    let own = config.pod_cidr.as_deref().and_then(parse_net);
    loop {
        let force = tokio::select! {
            event = stream.next() => {
                match event {
                    Some(Ok(watcher::Event::Init)) => listing.clear(),
                    Some(Ok(watcher::Event::InitApply(n))) => {
                        listing.insert(n.name_any(), n);
                    }
                    Some(Ok(watcher::Event::InitDone)) => {
                        nodes = std::mem::take(&mut listing);
                        synced = true;
                    }
                    Some(Ok(watcher::Event::Apply(n))) => {
                        nodes.insert(n.name_any(), n);
                    }
                    Some(Ok(watcher::Event::Delete(n))) => {
                        nodes.remove(&n.name_any());
                    }
                    Some(Err(e)) => tracing::debug!(error = %e, "node watch failed; retrying"),
                    None => return,
                }
                false
            }
            _ = resync.tick() => true,
        };
        if !synced {
            continue;
        }
        let list: Vec<Node> = nodes.values().cloned().collect();
        let desired = desired_routes(&list, &config.node_name, config.node_ip, own);
        if force || applied.as_ref() != Some(&desired) {
            let ok = sync(&config, &desired, &mut prepared).await;
            applied = ok.then_some(desired);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
        let mut n = json!({"metadata": {"name": name}, "spec": {}, "status": {"addresses": [{"type": "Hostname", "address": name}]}});
        if let Some(c) = cidr {
            n["spec"] = json!({"podCIDR": c, "podCIDRs": [c]});
        }
        if let Some(ip) = ip {
            n["status"]["addresses"] =
                json!([{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]);
        }
        serde_json::from_value(n).expect("node")
    }

    fn net(s: &str) -> Ipv4Net {
        parse_net(s).expect("cidr")
    }

    fn ip4(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    #[test]
    fn parses_networks() {
        let cases = [
            ("10.244.1.0/24", Some("10.244.1.0/24")),
            ("10.244.1.7/24", Some("10.244.1.0/24")),
            ("0.0.0.0/0", Some("0.0.0.0/0")),
            ("10.0.0.1/32", Some("10.0.0.1/32")),
            ("10.0.0.0/33", None),
            ("10.0.0.0", None),
            ("fd00::/64", None),
            ("", None),
            (" 10.244.2.0/24\n", Some("10.244.2.0/24")),
            ("300.0.0.0/8", None),
            ("10.0.0.0/8/9", None),
            ("10.0.0.0/-1", None),
            ("10.0.0.0/", None),
            ("/8", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_net(text).map(|n| n.to_string()).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn routes_every_other_node_with_a_range_and_an_address() {
        let nodes = vec![
            node("a", Some("10.244.0.0/24"), Some("192.168.1.1")),
            node("b", Some("10.244.1.0/24"), Some("192.168.1.2")),
            node("c", Some("10.244.2.0/24"), Some("192.168.1.3")),
            node("no-cidr", None, Some("192.168.1.4")),
            node("no-ip", Some("10.244.4.0/24"), None),
            node("v6", Some("fd00:1::/64"), Some("192.168.1.6")),
            node("same-ip", Some("10.244.7.0/24"), Some("192.168.1.1")),
            node("same-cidr", Some("10.244.0.0/24"), Some("192.168.1.8")),
            {
                let mut sim = node("sim-0", Some("10.244.9.0/24"), Some("10.128.0.1"));
                sim.metadata.labels = Some([(crate::simulate::SIMULATED_LABEL.to_string(), "true".to_string())].into());
                sim
            },
        ];
        let self_ip: IpAddr = "192.168.1.1".parse().expect("ip");
        let got = desired_routes(&nodes, "a", self_ip, Some(net("10.244.0.0/24")));
        let want: RouteTable = [(net("10.244.1.0/24"), ip4("192.168.1.2")), (net("10.244.2.0/24"), ip4("192.168.1.3"))]
            .into_iter()
            .collect();
        assert_eq!(got, want);
        // Without a known own range, a node claiming the same range is routed (nothing to protect).
        let got = desired_routes(&nodes, "a", self_ip, None);
        assert_eq!(got.get(&net("10.244.0.0/24")), Some(&ip4("192.168.1.8")));
    }

    #[test]
    fn pod_cidrs_list_is_a_fallback_and_ipv6_addresses_are_skipped() {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"podCIDRs": ["fd00::/64", "10.244.9.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": "fd00::9"}, {"type": "InternalIP", "address": "192.168.1.9"}]},
        }))
        .expect("node");
        assert_eq!(pod_cidr(&n), Some(net("10.244.9.0/24")));
        assert_eq!(internal_ip(&n), Some(ip4("192.168.1.9")));
    }

    #[test]
    fn parses_ip_route_output() {
        let text = "default via 192.168.231.1 dev eth0 \n\
                    blackhole 10.250.0.0/16 \n\
                    10.250.1.0/24 dev skiff0 proto kernel scope link src 10.250.1.1 \n\
                    10.250.2.0/24 via 192.168.231.3 dev eth0 proto 218 \n\
                    192.168.231.0/24 dev eth0 proto kernel scope link src 192.168.231.2 \n\
                    10.9.9.9 via 192.168.231.1 dev eth0 \n\
                    garbage\n";
        let got = parse_routes(text);
        let want = vec![
            ShownRoute { dst: net("0.0.0.0/0"), via: Some(ip4("192.168.231.1")), proto: None },
            ShownRoute { dst: net("10.250.0.0/16"), via: None, proto: None },
            ShownRoute { dst: net("10.250.1.0/24"), via: None, proto: Some("kernel".into()) },
            ShownRoute { dst: net("10.250.2.0/24"), via: Some(ip4("192.168.231.3")), proto: Some("218".into()) },
            ShownRoute { dst: net("192.168.231.0/24"), via: None, proto: Some("kernel".into()) },
            ShownRoute { dst: net("10.9.9.9/32"), via: Some(ip4("192.168.231.1")), proto: None },
        ];
        assert_eq!(got, want);
        assert!(is_ours(&got[3]));
        assert!(!is_ours(&got[2]));
    }

    #[test]
    fn plans_the_difference_and_leaves_foreign_routes_alone() {
        let current = parse_routes(
            "10.250.2.0/24 via 192.168.231.3 dev eth0 proto 218\n\
             10.250.3.0/24 via 192.168.231.9 dev eth0 proto 218\n\
             10.250.4.0/24 via 192.168.231.4 dev eth0 proto 218\n\
             10.250.5.0/24 via 192.168.231.1 dev eth0 proto static\n\
             10.250.8.0/24 via 192.168.231.1 dev eth0 proto static\n",
        );
        let desired: RouteTable = [
            (net("10.250.2.0/24"), ip4("192.168.231.3")), // present: nothing to do
            (net("10.250.3.0/24"), ip4("192.168.231.5")), // moved: replace
            (net("10.250.5.0/24"), ip4("192.168.231.6")), // someone else's route: conflict
            (net("10.250.6.0/24"), ip4("192.168.231.7")), // missing: add
        ]
        .into_iter()
        .collect();
        let (changes, conflicts) = plan(&desired, &current);
        assert_eq!(
            changes,
            vec![
                RouteChange::Replace { dst: net("10.250.3.0/24"), via: ip4("192.168.231.5") },
                RouteChange::Replace { dst: net("10.250.6.0/24"), via: ip4("192.168.231.7") },
                RouteChange::Delete { dst: net("10.250.4.0/24") },
            ]
        );
        assert_eq!(conflicts, vec![net("10.250.5.0/24")]);
        // Nothing wanted: only the agent's own routes go, never the static ones.
        let (changes, conflicts) = plan(&RouteTable::new(), &current);
        assert_eq!(
            changes,
            ["10.250.2.0/24", "10.250.3.0/24", "10.250.4.0/24"]
                .iter()
                .map(|d| RouteChange::Delete { dst: net(d) })
                .collect::<Vec<_>>()
        );
        assert!(conflicts.is_empty());
    }

    #[test]
    fn builds_commands() {
        let replace = RouteChange::Replace { dst: net("10.250.2.0/24"), via: ip4("192.168.231.3") };
        assert_eq!(ip_args(&replace).join(" "), "route replace 10.250.2.0/24 via 192.168.231.3 proto 218");
        let del = RouteChange::Delete { dst: net("10.250.2.0/24") };
        assert_eq!(ip_args(&del).join(" "), "route del 10.250.2.0/24 proto 218");
        assert_eq!(
            masquerade_exemption(net("10.250.1.0/24"), net("10.250.0.0/16")),
            ["-s", "10.250.1.0/24", "-d", "10.250.0.0/16", "-m", "comment", "--comment", MASQ_COMMENT, "-j", "RETURN"]
        );
    }
}
