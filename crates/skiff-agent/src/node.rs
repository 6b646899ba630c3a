//! The agent's Node object and Lease: capacity read from the machine (`/proc/cpuinfo`,
//! `/proc/meminfo`), addresses, the kubelet's conditions and `nodeInfo`.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// The version the agent reports as `kubeletVersion`.
pub const KUBELET_VERSION: &str = "v1.35.0-skiff";
/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// `nodeLeaseDurationSeconds`.
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// Facts about the machine the agent runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineInfo {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub machine_id: String,
    pub boot_id: String,
    pub system_uuid: String,
    pub kernel_version: String,
    pub os_image: String,
}

/// The number of logical CPUs in `/proc/cpuinfo`.
pub fn parse_cpuinfo(text: &str) -> u32 {
    text.lines().filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor")).count() as u32
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `PRETTY_NAME` of `/etc/os-release`.
pub fn parse_os_release(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
    Some(line.trim_start_matches("PRETTY_NAME=").trim_matches('"').to_string())
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

impl MachineInfo {
    /// Reads the running machine (missing files give defaults: 1 CPU, no memory).
    pub fn detect() -> MachineInfo {
        let cpus = parse_cpuinfo(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()).max(1);
        let memory_bytes = parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default()).unwrap_or(0);
        let machine_id = read("/etc/machine-id");
        MachineInfo {
            cpus,
            memory_bytes,
            system_uuid: {
                let u = read("/sys/class/dmi/id/product_uuid");
                if u.is_empty() { machine_id.clone() } else { u }
            },
            machine_id,
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            kernel_version: read("/proc/sys/kernel/osrelease"),
            os_image: parse_os_release(&std::fs::read_to_string("/etc/os-release").unwrap_or_default())
                .unwrap_or_else(|| "Linux".into()),
        }
    }
}

/// The host's primary IP: the source address of the default route (found by "connecting" a UDP
/// socket, which sends nothing), else loopback.
pub fn primary_ip() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect("192.0.2.1:9")?;
        Ok(s.local_addr()?.ip())
    };
    probe().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// `amd64` / `arm64` as Kubernetes names architectures.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A Kubernetes timestamp (seconds).
pub fn time(t: Timestamp) -> Value {
    serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t)).unwrap_or(Value::Null)
}

/// A `metav1.MicroTime`.
pub fn micro_time(t: Timestamp) -> Value {
    serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(t)).unwrap_or(Value::Null)
}

/// The node's conditions, in the kubelet's order; `ready` false gives `KubeletNotReady` with
/// `not_ready_message`.
pub fn node_conditions(ready: bool, not_ready_message: &str, now: Timestamp) -> Value {
    let t = time(now);
    let c = |type_: &str, status: &str, reason: &str, message: &str| json!({"type": type_, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": t, "lastTransitionTime": t});
    let ready = if ready {
        c("Ready", "True", "KubeletReady", "kubelet is posting ready status")
    } else {
        c("Ready", "False", "KubeletNotReady", not_ready_message)
    };
    json!([
        c("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        c("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        c("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ready,
    ])
}

/// What the Node object carries.
#[derive(Debug, Clone)]
pub struct NodeSpec<'a> {
    pub name: &'a str,
    pub ip: IpAddr,
    pub hostname: &'a str,
    pub pods: u32,
    pub labels: &'a [(String, String)],
    pub runtime_version: &'a str,
    /// The port of the kubelet server (`daemonEndpoints.kubeletEndpoint.Port`).
    pub kubelet_port: u16,
}

/// The capacity map (also the allocatable: the agent reserves nothing).
pub fn capacity(m: &MachineInfo, pods: u32) -> Value {
    json!({"cpu": m.cpus.to_string(), "memory": format!("{}Ki", m.memory_bytes / 1024), "pods": pods.to_string()})
}

/// The Node to register.
pub fn node_object(n: &NodeSpec<'_>, m: &MachineInfo, now: Timestamp) -> Value {
    let arch = arch();
    let mut labels = serde_json::Map::new();
    for (k, v) in [
        ("beta.kubernetes.io/arch", arch),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch),
        ("kubernetes.io/hostname", n.name),
        ("kubernetes.io/os", "linux"),
    ] {
        labels.insert(k.to_string(), json!(v));
    }
    for (k, v) in n.labels {
        labels.insert(k.clone(), json!(v));
    }
    let cap = capacity(m, n.pods);
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": n.name, "labels": labels, "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {},
        "status": {
            "capacity": cap,
            "allocatable": cap,
            "conditions": node_conditions(true, "", now),
            "addresses": [
                {"type": "InternalIP", "address": n.ip.to_string()},
                {"type": "Hostname", "address": n.hostname},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": n.kubelet_port}},
            "nodeInfo": {
                "machineID": m.machine_id,
                "systemUUID": m.system_uuid,
                "bootID": m.boot_id,
                "kernelVersion": m.kernel_version,
                "osImage": m.os_image,
                "containerRuntimeVersion": n.runtime_version,
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
        },
    })
}

/// The Node `spec` fields of a pod range the agent was given (`--pod-cidr`): node IPAM keeps a
/// range a Node already has.
pub fn pod_cidr_spec(cidr: &str) -> Value {
    json!({"podCIDR": cidr, "podCIDRs": [cidr]})
}

/// The pod range node IPAM (or the agent) gave a Node: `spec.podCIDR`, else the first of
/// `spec.podCIDRs`.
pub fn assigned_pod_cidr(node: &k8s_openapi::api::core::v1::Node) -> Option<String> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidr.iter().chain(spec.pod_cidrs.iter().flatten()).find(|c| !c.is_empty()).cloned()
}

/// Whether the Node's `Ready` condition differs from what the agent would post (`True` when
/// `ready`, else `False`): missing, or set to `Unknown` by the node lifecycle controller.
pub fn ready_differs(node: &k8s_openapi::api::core::v1::Node, ready: bool) -> bool {
    let want = if ready { "True" } else { "False" };
    let have =
        node.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    have.is_none_or(|c| c.status != want)
}

/// The node's Lease, owned by the Node.
pub fn lease_object(node: &str, node_uid: Option<&str>, now: Timestamp) -> Value {
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": micro_time(now)},
    });
    if let Some(uid) = node_uid {
        lease["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]);
    }
    lease
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(parse_cpuinfo("processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\nflags: processor\n"), 2);
        assert_eq!(parse_meminfo("MemTotal:       16314852 kB\nMemFree: 1 kB\n"), Some(16314852 * 1024));
        assert_eq!(parse_meminfo("nothing"), None);
        assert_eq!(
            parse_os_release("NAME=Debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            Some("Debian GNU/Linux 12 (bookworm)".into())
        );
    }

    #[test]
    fn pod_cidrs() {
        assert_eq!(pod_cidr_spec("10.42.3.0/24"), json!({"podCIDR": "10.42.3.0/24", "podCIDRs": ["10.42.3.0/24"]}));
        let node = |spec: Value| -> k8s_openapi::api::core::v1::Node {
            serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": spec})).expect("node")
        };
        let cases = [
            (json!({}), None),
            (json!({"podCIDR": ""}), None),
            (json!({"podCIDR": "10.42.1.0/24", "podCIDRs": ["10.42.1.0/24"]}), Some("10.42.1.0/24")),
            (json!({"podCIDRs": ["10.42.2.0/24"]}), Some("10.42.2.0/24")),
        ];
        for (spec, want) in cases {
            assert_eq!(assigned_pod_cidr(&node(spec.clone())).as_deref(), want, "{spec}");
        }
    }

    #[test]
    fn stale_ready_conditions() {
        let node = |conditions: Value| -> k8s_openapi::api::core::v1::Node {
            serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {"conditions": conditions}}))
                .expect("node")
        };
        let ready =
            |status: &str| json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": status}]);
        let cases = [
            (ready("True"), true, false),
            (ready("Unknown"), true, true),
            (ready("False"), true, true),
            (ready("False"), false, false),
            (ready("True"), false, true),
            (json!([]), true, true),
        ];
        for (conditions, agent_ready, want) in cases {
            assert_eq!(ready_differs(&node(conditions.clone()), agent_ready), want, "{conditions} {agent_ready}");
        }
    }

    #[test]
    fn node_shape() {
        let m = MachineInfo {
            cpus: 2,
            memory_bytes: 4096 * 1024,
            machine_id: "m".into(),
            boot_id: "b".into(),
            system_uuid: "s".into(),
            kernel_version: "6.1".into(),
            os_image: "Debian".into(),
        };
        let labels = vec![("role".to_string(), "edge".to_string())];
        let spec = NodeSpec {
            name: "n1",
            ip: "192.168.1.10".parse().expect("ip"),
            hostname: "host1",
            pods: 110,
            labels: &labels,
            runtime_version: "skiff://0.1.0",
            kubelet_port: 41234,
        };
        let now = Timestamp::from_second(1_750_000_000).expect("t");
        let n = node_object(&spec, &m, now);
        assert_eq!(n["status"]["capacity"], json!({"cpu": "2", "memory": "4096Ki", "pods": "110"}));
        assert_eq!(
            n["status"]["addresses"],
            json!([{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "host1"}])
        );
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
        assert_eq!(n["status"]["daemonEndpoints"], json!({"kubeletEndpoint": {"Port": 41234}}));
        assert_eq!(n["metadata"]["labels"]["role"], "edge");
        assert_eq!(n["status"]["conditions"][3]["reason"], "KubeletReady");
        let not_ready = node_conditions(false, "container runtime is down", now);
        assert_eq!(not_ready[3]["status"], "False");
        assert_eq!(not_ready[3]["reason"], "KubeletNotReady");
        serde_json::from_value::<k8s_openapi::api::core::v1::Node>(n).expect("valid Node");
        let l = lease_object("n1", Some("uid"), now);
        assert_eq!(l["spec"]["renewTime"], "2025-06-15T15:06:40.000000Z");
        serde_json::from_value::<k8s_openapi::api::coordination::v1::Lease>(l).expect("valid Lease");
    }
}
