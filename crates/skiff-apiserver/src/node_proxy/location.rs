//! Where the agent serving a pod listens: the pod's node (`spec.nodeName`), then that Node's address
//! and kubelet port, as kube-apiserver's `NodeConnectionInfoGetter` finds them.

use serde_json::Value;
use skiff_api::ApiError;

/// The port dialed when a Node does not publish `status.daemonEndpoints.kubeletEndpoint.Port`
/// (kube-apiserver's `--kubelet-port` default).
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// The address types tried, in order. The streaming contract names `InternalIP`; the others are the
/// rest of kube-apiserver's `--kubelet-preferred-address-types`.
const PREFERRED_ADDRESS_TYPES: [&str; 5] = ["InternalIP", "Hostname", "InternalDNS", "ExternalIP", "ExternalDNS"];

/// A node agent's kubelet server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEndpoint {
    /// An IP address or a host name, without brackets.
    pub host: String,
    pub port: u16,
}

impl NodeEndpoint {
    /// `host:port`, with an IPv6 address in brackets (`net.JoinHostPort`).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The node a pod is bound to; `None` while it is unscheduled.
pub fn pod_node(pod: &Value) -> Option<&str> {
    pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty())
}

/// The agent endpoint a Node publishes. A Node without a usable address is a 500 worded as
/// `nodeutil.GetPreferredNodeAddress`'s error.
pub fn node_endpoint(node: &Value) -> Result<NodeEndpoint, ApiError> {
    // Simulated nodes (`skiff agent --simulate`) run no kubelet server and their addresses lead
    // nowhere: never dial them.
    if node.pointer("/metadata/labels").and_then(|l| l.get(SIMULATED_LABEL)).is_some() {
        let name = node.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "node {name:?} is simulated: its pods run no containers, so they have no logs and no exec"
        )));
    }
    let addresses: Vec<(&str, &str)> = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter_map(|a| Some((a.get("type")?.as_str()?, a.get("address")?.as_str()?)))
        .collect();
    let host = PREFERRED_ADDRESS_TYPES
        .iter()
        .find_map(|kind| addresses.iter().find(|(t, a)| t == kind && !a.is_empty()).map(|(_, a)| *a))
        .ok_or_else(|| {
            let known: Vec<String> = addresses.iter().map(|(t, a)| format!("{{{t} {a}}}")).collect();
            ApiError::new(500, "", format!("no preferred addresses found; known addresses: [{}]", known.join(" ")))
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_i64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok(NodeEndpoint { host: host.to_string(), port })
}

/// The label `skiff agent --simulate` puts on its nodes.
pub const SIMULATED_LABEL: &str = "skiff.dev/simulated";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simulated_nodes_are_never_dialed() {
        let node = json!({"metadata": {"name": "sim-0", "labels": {"skiff.dev/simulated": "true"}},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.128.0.1"}]}});
        let err = node_endpoint(&node).expect_err("refused");
        assert_eq!(err.code, 400);
        assert!(err.message.contains("\"sim-0\" is simulated"), "{}", err.message);
    }

    #[test]
    fn finds_the_pods_node() {
        assert_eq!(pod_node(&json!({"spec": {"nodeName": "n1"}})), Some("n1"));
        assert_eq!(pod_node(&json!({"spec": {"nodeName": ""}})), None);
        assert_eq!(pod_node(&json!({"spec": {}})), None);
    }

    #[test]
    fn picks_the_address_and_port_a_node_publishes() {
        let node = |addresses: Value, endpoints: Value| json!({"status": {"addresses": addresses, "daemonEndpoints": endpoints}});
        let cases = [
            (
                node(
                    json!([{"type": "Hostname", "address": "box"}, {"type": "InternalIP", "address": "10.0.0.5"}]),
                    json!({"kubeletEndpoint": {"Port": 41000}}),
                ),
                ("10.0.0.5", 41000, "10.0.0.5:41000"),
            ),
            (node(json!([{"type": "Hostname", "address": "box"}]), json!({})), ("box", 10250, "box:10250")),
            (
                node(json!([{"type": "InternalIP", "address": "fd00::1"}]), json!({"kubeletEndpoint": {"Port": 0}})),
                ("fd00::1", 10250, "[fd00::1]:10250"),
            ),
            (
                node(
                    json!([{"type": "ExternalIP", "address": "1.2.3.4"}]),
                    json!({"kubeletEndpoint": {"Port": 70000}}),
                ),
                ("1.2.3.4", 10250, "1.2.3.4:10250"),
            ),
        ];
        for (n, (host, port, authority)) in cases {
            let ep = node_endpoint(&n).expect("an endpoint");
            assert_eq!((ep.host.as_str(), ep.port, ep.authority().as_str()), (host, port, authority));
        }
    }

    #[test]
    fn a_node_without_addresses_is_an_error() {
        let e = node_endpoint(&json!({"status": {}})).expect_err("no address");
        assert_eq!((e.code, e.message.as_str()), (500, "no preferred addresses found; known addresses: []"));
        let e =
            node_endpoint(&json!({"status": {"addresses": [{"type": "Weird", "address": "x"}]}})).expect_err("none");
        assert_eq!(e.message, "no preferred addresses found; known addresses: [{Weird x}]");
        assert!(e.to_status().get("reason").is_none());
    }
}
