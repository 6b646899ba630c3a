//! Pod sysctls (`securityContext.sysctls`): which the node admits, as the kubelet's allowlist
//! (`pkg/kubelet/sysctl`), and their names in the runtime's dotted form.
//!
//! The node admits the kubelet's safe set only (it has no `--allowed-unsafe-sysctls`); a pod that
//! asks for another is rejected before it starts: phase `Failed`, reason `SysctlForbidden`.

use k8s_openapi::api::core::v1::Pod;

/// The kubelet's reason for a pod rejected for its sysctls.
pub const FORBIDDEN_REASON: &str = "SysctlForbidden";

/// The kubelet's safe sysctls (`safe_sysctls.go`, Kubernetes 1.35): namespaced, and isolated
/// between pods on one node. The kernel versions some of them need are older than any this agent
/// runs on.
const SAFE: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// A sysctl name in dotted form: a name whose first separator is `/` (`kernel/shm_rmid_forced`,
/// `net/ipv4/conf/eno2.100/rp_filter`) has its `/` and `.` swapped, as upstream's `NormalizeName`.
pub fn normalize(name: &str) -> String {
    match name.find(['.', '/']) {
        Some(i) if name.as_bytes()[i] == b'/' => name
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => name.to_string(),
    }
}

/// The pod's sysctls, dotted names and values, in order.
pub fn of_pod(pod: &Pod) -> Vec<(String, String)> {
    let sysctls = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()).and_then(|c| c.sysctls.as_ref());
    sysctls.into_iter().flatten().map(|s| (normalize(&s.name), s.value.clone())).collect()
}

/// Why the node does not admit the pod, as the kubelet's admission message
/// (`forbidden sysctl: "kernel.msgmax" not allowlisted`); `None` when every sysctl is safe.
pub fn forbidden(pod: &Pod) -> Option<String> {
    of_pod(pod)
        .into_iter()
        .find(|(name, _)| !SAFE.contains(&name.as_str()))
        .map(|(name, _)| format!("forbidden sysctl: {name:?} not allowlisted"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(sysctls: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "securityContext": {"sysctls": sysctls}}}),
        )
        .expect("pod")
    }

    #[test]
    fn names_are_dotted() {
        assert_eq!(normalize("kernel.shm_rmid_forced"), "kernel.shm_rmid_forced");
        assert_eq!(normalize("kernel/shm_rmid_forced"), "kernel.shm_rmid_forced");
        assert_eq!(normalize("net/ipv4/conf/eno2.100/rp_filter"), "net.ipv4.conf.eno2/100.rp_filter");
        assert_eq!(normalize("net.ipv4.conf.eno2/100.rp_filter"), "net.ipv4.conf.eno2/100.rp_filter");
        assert_eq!(normalize("plain"), "plain");
    }

    #[test]
    fn only_safe_sysctls_are_admitted() {
        assert_eq!(forbidden(&pod(json!([]))), None);
        let safe = pod(
            json!([{"name": "kernel/shm_rmid_forced", "value": "1"}, {"name": "net.ipv4.tcp_syncookies", "value": "0"}]),
        );
        assert_eq!(forbidden(&safe), None);
        assert_eq!(
            of_pod(&safe),
            vec![("kernel.shm_rmid_forced".into(), "1".into()), ("net.ipv4.tcp_syncookies".into(), "0".into())]
        );
        let unsafe_ =
            pod(json!([{"name": "kernel.shm_rmid_forced", "value": "1"}, {"name": "kernel.msgmax", "value": "10000"}]));
        assert_eq!(forbidden(&unsafe_).as_deref(), Some("forbidden sysctl: \"kernel.msgmax\" not allowlisted"));
        let no_context: Pod = serde_json::from_value(json!({"spec": {"containers": []}})).expect("pod");
        assert_eq!(forbidden(&no_context), None);
        assert!(of_pod(&no_context).is_empty());
    }
}
