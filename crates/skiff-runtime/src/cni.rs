//! Pod networking through the standard CNI plugins (containernetworking-plugins), executed per the
//! CNI spec: `CNI_COMMAND` (ADD/DEL/CHECK), `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`,
//! `CNI_PATH`, `CNI_ARGS` in the environment, the plugin's config (with `name`, `cniVersion`,
//! `prevResult` and `runtimeConfig`) on stdin, the result or error JSON on stdout.
//!
//! The network is a chain: `bridge` (with `host-local` IPAM over the node's pod subnet) then
//! `portmap` for hostPorts; `loopback` brings up `lo` first. A plugin that only serves a capability
//! (`portmap`: `portMappings`) runs only for pods that use it: a pod without hostPorts is spared
//! a process per ADD and DEL, and the choice is stable because the sandbox record keeps the port
//! mappings DEL is given. ADD results are cached in
//! `cache_dir` so DEL gets them as `prevResult`. [`ensure_blackhole_route`] keeps packets for
//! absent pods of the cluster range on this machine.

use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// The CNI spec version spoken to the plugins (containernetworking-plugins 1.1 support 1.0.0).
pub const CNI_VERSION: &str = "1.0.0";

/// A CNI operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// No plugin binary of that type in the plugin directories.
    #[error("CNI plugin {0:?} not found in the plugin directories")]
    PluginNotFound(String),
    /// The plugin could not be run.
    #[error("running CNI plugin {plugin}: {source}")]
    Exec {
        /// The plugin type.
        plugin: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The plugin reported an error (its `msg` and `details`).
    #[error("CNI plugin {plugin} {command} failed (code {code}): {message}")]
    Plugin {
        /// The plugin type.
        plugin: String,
        /// ADD, DEL or CHECK.
        command: &'static str,
        /// The CNI error code.
        code: i64,
        /// `msg` and `details`.
        message: String,
    },
    /// The plugin's output is not a CNI result.
    #[error("CNI plugin {plugin}: bad result: {message}")]
    BadResult {
        /// The plugin type.
        plugin: String,
        /// What is wrong.
        message: String,
    },
    /// The ADD result has no IP for the pod.
    #[error("CNI result has no IP address")]
    NoIp,
    /// Result cache or route trouble.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The node's pod network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The CNI network name.
    pub name: String,
    /// The Linux bridge the pods attach to.
    pub bridge: String,
    /// This node's pod subnet (host-local's range), e.g. `10.42.0.0/24`.
    pub subnet: String,
    /// The cluster's pod range, blackholed on the host, e.g. `10.42.0.0/16`.
    pub cluster_cidr: String,
    /// host-local's lease directory.
    pub ipam_data_dir: PathBuf,
    /// Where ADD results are cached for DEL and CHECK.
    pub cache_dir: PathBuf,
    /// Directories searched for plugin binaries (`CNI_PATH`).
    pub plugin_dirs: Vec<PathBuf>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            name: "skiff".into(),
            bridge: "skiff0".into(),
            subnet: "10.42.0.0/24".into(),
            cluster_cidr: "10.42.0.0/16".into(),
            ipam_data_dir: "/var/lib/skiff/cni/networks".into(),
            cache_dir: "/var/lib/skiff/cni/results".into(),
            plugin_dirs: vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()],
        }
    }
}

/// A hostPort mapping (portmap's `portMappings` runtime config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// Port on the host.
    pub host_port: u16,
    /// Port in the pod.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Host address to bind (empty: all).
    pub host_ip: String,
}

/// Who the network is set up for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// `CNI_CONTAINERID`: the sandbox id.
    pub container_id: String,
    /// `CNI_NETNS`: the network namespace's path.
    pub netns: PathBuf,
    /// `CNI_IFNAME`, `eth0`.
    pub ifname: String,
    /// `CNI_ARGS` pairs (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, ...).
    pub args: Vec<(String, String)>,
    /// hostPorts.
    pub port_mappings: Vec<PortMapping>,
}

/// The network configuration list (`.conflist`) for `config`.
pub fn conflist(config: &NetworkConfig) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": config.name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": config.bridge,
                "isGateway": true,
                // Masquerading is one node-level rule set (crate::masquerade), not a chain per pod.
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": config.subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": config.ipam_data_dir,
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
        ],
    })
}

/// The stdin config of one plugin of a list: the plugin's object plus `name`, `cniVersion`,
/// `prevResult` and, for declared capabilities, `runtimeConfig`.
pub fn plugin_config(list: &Value, plugin: &Value, prev: Option<&Value>, attach: &Attachment) -> Value {
    let mut conf = plugin.clone();
    conf["name"] = list["name"].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    if let Some(p) = prev {
        conf["prevResult"] = p.clone();
    }
    if plugin["capabilities"]["portMappings"] == json!(true) {
        let maps: Vec<Value> = attach
            .port_mappings
            .iter()
            .map(|m| {
                let mut v = json!({"hostPort": m.host_port, "containerPort": m.container_port, "protocol": m.protocol});
                if !m.host_ip.is_empty() {
                    v["hostIP"] = json!(m.host_ip);
                }
                v
            })
            .collect();
        conf["runtimeConfig"] = json!({"portMappings": maps});
    }
    conf
}

/// The pod's IP in a CNI result: the first address of `ips` (v4 preferred), prefix dropped.
pub fn result_ip(result: &Value) -> Option<IpAddr> {
    let ips: Vec<IpAddr> = result["ips"]
        .as_array()?
        .iter()
        .filter_map(|ip| ip["address"].as_str())
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .collect();
    ips.iter().find(|ip| ip.is_ipv4()).or(ips.first()).copied()
}

/// Whether `plugin` has work for `attach`: `portmap` acts only on the `portMappings` it is given
/// (without any it passes `prevResult` on and adds no rule), so it runs only for hostPorts.
pub fn uses_plugin(plugin: &Value, attach: &Attachment) -> bool {
    match plugin["type"].as_str() {
        Some("portmap") => !attach.port_mappings.is_empty(),
        _ => true,
    }
}

/// `CNI_ARGS` text: `IgnoreUnknown=1;K=V;...`.
fn cni_args(args: &[(String, String)]) -> String {
    let mut parts = vec!["IgnoreUnknown=1".to_string()];
    parts.extend(args.iter().map(|(k, v)| format!("{k}={v}")));
    parts.join(";")
}

/// The node's CNI network, ready to attach pods.
#[derive(Debug, Clone)]
pub struct Network {
    config: NetworkConfig,
    list: Value,
}

impl Network {
    /// A network from `config`.
    pub fn new(config: NetworkConfig) -> Self {
        let list = conflist(&config);
        Self { config, list }
    }

    /// The configuration.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    fn cache_file(&self, attach: &Attachment) -> PathBuf {
        self.config.cache_dir.join(format!("{}-{}-{}.json", self.config.name, attach.container_id, attach.ifname))
    }

    /// The chain for `attach`: every plugin of the list but those whose capabilities `attach`
    /// does not use (see [`uses_plugin`]).
    fn plugins(&self, attach: &Attachment) -> Vec<Value> {
        let all = self.list["plugins"].as_array().map(Vec::as_slice).unwrap_or_default();
        all.iter().filter(|p| uses_plugin(p, attach)).cloned().collect()
    }

    /// ADD: `lo` up, then the chain; returns the final result (cached for DEL) and the pod IP.
    /// On failure what was added is deleted again.
    pub async fn add(&self, attach: &Attachment) -> Result<(Value, IpAddr), CniError> {
        let lo = self.loopback(attach);
        self.exec("ADD", &lo.0, &lo.1, &lo.2).await?;
        let mut prev: Option<Value> = None;
        for plugin in self.plugins(attach) {
            let conf = plugin_config(&self.list, &plugin, prev.as_ref(), attach);
            match self.exec("ADD", &conf, attach, &attach.ifname).await {
                Ok(result) => prev = Some(result),
                Err(e) => {
                    let _ = self.del(attach).await;
                    return Err(e);
                }
            }
        }
        let result = prev.unwrap_or(Value::Null);
        let Some(ip) = result_ip(&result) else {
            let _ = self.del(attach).await;
            return Err(CniError::NoIp);
        };
        let cache = self.cache_file(attach);
        let io = |context: String| move |source| CniError::Io { context, source };
        std::fs::create_dir_all(&self.config.cache_dir)
            .map_err(io(format!("creating {}", self.config.cache_dir.display())))?;
        std::fs::write(&cache, result.to_string()).map_err(io(format!("writing {}", cache.display())))?;
        Ok((result, ip))
    }

    /// CHECK: each plugin in order with the cached ADD result.
    pub async fn check(&self, attach: &Attachment) -> Result<(), CniError> {
        let prev = self.cached(attach);
        for plugin in self.plugins(attach) {
            let conf = plugin_config(&self.list, &plugin, prev.as_ref(), attach);
            self.exec("CHECK", &conf, attach, &attach.ifname).await?;
        }
        Ok(())
    }

    /// DEL: the chain in reverse with the cached ADD result, then `lo`; then the cache entry.
    /// Every plugin is asked even if one fails; the first error is returned.
    pub async fn del(&self, attach: &Attachment) -> Result<(), CniError> {
        let prev = self.cached(attach);
        let mut first_err = None;
        for plugin in self.plugins(attach).iter().rev() {
            let conf = plugin_config(&self.list, plugin, prev.as_ref(), attach);
            if let Err(e) = self.exec("DEL", &conf, attach, &attach.ifname).await {
                first_err.get_or_insert(e);
            }
        }
        let lo = self.loopback(attach);
        if let Err(e) = self.exec("DEL", &lo.0, &lo.1, &lo.2).await {
            first_err.get_or_insert(e);
        }
        let _ = std::fs::remove_file(self.cache_file(attach));
        first_err.map_or(Ok(()), Err)
    }

    fn cached(&self, attach: &Attachment) -> Option<Value> {
        let bytes = std::fs::read(self.cache_file(attach)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn loopback(&self, attach: &Attachment) -> (Value, Attachment, String) {
        let conf = json!({"cniVersion": CNI_VERSION, "name": "cni-loopback", "type": "loopback"});
        (conf, attach.clone(), "lo".to_string())
    }

    fn find_plugin(&self, kind: &str) -> Result<PathBuf, CniError> {
        if kind.contains('/') {
            return Err(CniError::PluginNotFound(kind.to_string()));
        }
        self.config
            .plugin_dirs
            .iter()
            .map(|d| d.join(kind))
            .find(|p| p.is_file())
            .ok_or_else(|| CniError::PluginNotFound(kind.to_string()))
    }

    /// Runs one plugin per the CNI spec and returns its parsed stdout (null for empty output).
    async fn exec(
        &self,
        command: &'static str,
        conf: &Value,
        attach: &Attachment,
        ifname: &str,
    ) -> Result<Value, CniError> {
        let kind = conf["type"].as_str().unwrap_or_default().to_string();
        let binary = self.find_plugin(&kind)?;
        let cni_path = std::env::join_paths(&self.config.plugin_dirs)
            .map_err(|e| CniError::Exec { plugin: kind.clone(), source: std::io::Error::other(e) })?;
        let exec_err = |source| CniError::Exec { plugin: kind.clone(), source };
        let mut child = tokio::process::Command::new(&binary)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &attach.container_id)
            .env("CNI_NETNS", &attach.netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", cni_path)
            .env("CNI_ARGS", cni_args(&attach.args))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(exec_err)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(conf.to_string().as_bytes()).await.map_err(exec_err)?;
        }
        let out = child.wait_with_output().await.map_err(exec_err)?;
        let parsed: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if !out.status.success() {
            let (code, message) = match &parsed {
                Some(v) => (
                    v["code"].as_i64().unwrap_or(-1),
                    format!("{} {}", v["msg"].as_str().unwrap_or(""), v["details"].as_str().unwrap_or(""))
                        .trim()
                        .to_string(),
                ),
                None => (-1, String::from_utf8_lossy(&out.stderr).trim().to_string()),
            };
            return Err(CniError::Plugin { plugin: kind, command, code, message });
        }
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        parsed.ok_or_else(|| CniError::BadResult {
            plugin: kind,
            message: String::from_utf8_lossy(&out.stdout).into_owned(),
        })
    }
}

/// True when `ip route show type blackhole` output lists `cidr`.
pub fn has_blackhole(routes: &str, cidr: &str) -> bool {
    routes.lines().any(|l| {
        let mut f = l.split_whitespace();
        f.next() == Some("blackhole") && f.next() == Some(cidr)
    })
}

async fn ip(args: &[&str]) -> Result<String, CniError> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|source| CniError::Io { context: format!("ip {}", args.join(" ")), source })?;
    if !out.status.success() {
        return Err(CniError::Io {
            context: format!("ip {}", args.join(" ")),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Adds `ip route add blackhole <cidr>` unless present, so packets for pod IPs of the cluster
/// range that no pod here has are dropped rather than sent to the default gateway. The node's own
/// subnet route via the bridge is more specific and wins. Returns whether it added the route.
pub async fn ensure_blackhole_route(cidr: &str) -> Result<bool, CniError> {
    let routes = ip(&["route", "show", "type", "blackhole"]).await?;
    if has_blackhole(&routes, cidr) {
        return Ok(false);
    }
    ip(&["route", "add", "blackhole", cidr]).await?;
    Ok(true)
}

/// Removes the blackhole route for `cidr` if present.
pub async fn remove_blackhole_route(cidr: &str) -> Result<(), CniError> {
    let routes = ip(&["route", "show", "type", "blackhole"]).await?;
    if has_blackhole(&routes, cidr) {
        ip(&["route", "del", "blackhole", cidr]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attach(ports: Vec<PortMapping>) -> Attachment {
        Attachment {
            container_id: "sb1".into(),
            netns: "/run/skiff/p/ns-net".into(),
            ifname: "eth0".into(),
            args: vec![("K8S_POD_NAME".into(), "web".into())],
            port_mappings: ports,
        }
    }

    #[test]
    fn builds_the_conflist() {
        let cfg = NetworkConfig { bridge: "br-t".into(), subnet: "10.244.3.0/24".into(), ..Default::default() };
        let list = conflist(&cfg);
        assert_eq!(list["plugins"][0]["bridge"], "br-t");
        assert_eq!(list["plugins"][0]["ipam"]["ranges"], json!([[{"subnet": "10.244.3.0/24"}]]));
        assert_eq!(list["plugins"][1]["type"], "portmap");
    }

    #[test]
    fn portmap_runs_only_for_host_ports() {
        let network = Network::new(NetworkConfig::default());
        let types = |a: &Attachment| -> Vec<String> {
            network.plugins(a).iter().map(|p| p["type"].as_str().unwrap_or_default().to_string()).collect()
        };
        assert_eq!(types(&attach(vec![])), ["bridge"]);
        let port = PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: String::new() };
        assert_eq!(types(&attach(vec![port])), ["bridge", "portmap"]);
    }

    #[test]
    fn plugin_configs_carry_name_version_prev_and_runtime_config() {
        let list = conflist(&NetworkConfig::default());
        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.42.0.5/24"}]});
        let bridge = plugin_config(&list, &list["plugins"][0], None, &attach(vec![]));
        assert_eq!(bridge["name"], "skiff");
        assert_eq!(bridge["cniVersion"], "1.0.0");
        assert!(bridge.get("prevResult").is_none() && bridge.get("runtimeConfig").is_none());
        let ports =
            vec![PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: String::new() }];
        let portmap = plugin_config(&list, &list["plugins"][1], Some(&prev), &attach(ports));
        assert_eq!(portmap["prevResult"], prev);
        assert_eq!(
            portmap["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
        );
    }

    #[test]
    fn finds_the_pod_ip() {
        let r = json!({"ips": [{"address": "fd00::5/64"}, {"address": "10.42.0.7/24", "gateway": "10.42.0.1"}]});
        assert_eq!(result_ip(&r), Some("10.42.0.7".parse().expect("ip")));
        assert_eq!(result_ip(&json!({"ips": []})), None);
        assert_eq!(result_ip(&json!({})), None);
    }

    #[test]
    fn formats_cni_args() {
        assert_eq!(
            cni_args(&[("K8S_POD_NAMESPACE".into(), "default".into()), ("K8S_POD_NAME".into(), "web".into())]),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"
        );
    }

    #[test]
    fn detects_blackhole_routes() {
        let out = "blackhole 10.42.0.0/16 \nblackhole 10.99.0.0/16 proto static\n";
        assert!(has_blackhole(out, "10.42.0.0/16"));
        assert!(has_blackhole(out, "10.99.0.0/16"));
        assert!(!has_blackhole(out, "10.42.0.0/24"));
    }
}
