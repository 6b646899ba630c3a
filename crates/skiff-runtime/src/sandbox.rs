//! A pod sandbox: the pod's persistent network, IPC and UTS namespaces ([`crate::nsfs`]), its CNI
//! attachment and IP ([`crate::cni`]), and the files every container of the pod mounts:
//! `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`. Lives in `<root>/<pod-uid>/`.
//!
//! Restart safety: `<root>/<pod-uid>/sandbox.json` ([`crate::state`]) records what it takes to
//! use or tear the sandbox down again (pod identity, namespace paths, IP, the CNI arguments and
//! port mappings DEL needs). It is written before the network is attached (without an IP) and
//! again once CNI answered, so [`Sandbox::recover`] in a restarted agent finds every sandbox,
//! even one whose creation the agent did not live to finish (that one is torn down).

use crate::cni::{Attachment, CniError, Network, PortMapping};
use crate::nsfs::{self, NsError, PodNamespaces};
use crate::state::{self, StateError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The record's file name in the sandbox directory.
const RECORD: &str = "sandbox.json";

/// A sandbox that could not be created or destroyed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Namespace trouble.
    #[error(transparent)]
    Namespace(#[from] NsError),
    /// Network trouble.
    #[error(transparent)]
    Cni(#[from] CniError),
    /// Writing the pod's files failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The pod UID cannot name a directory.
    #[error("invalid pod uid {0:?}")]
    InvalidUid(String),
    /// The sandbox record could not be written or read.
    #[error(transparent)]
    State(#[from] StateError),
    /// A recorded sandbox was never given an IP (its creation was interrupted).
    #[error("sandbox {0} was not fully created")]
    Incomplete(String),
}

/// DNS settings for the pod's resolv.conf (`dnsPolicy`/`dnsConfig`, resolved by the agent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// `nameserver` lines.
    pub nameservers: Vec<String>,
    /// The `search` line.
    pub searches: Vec<String>,
    /// The `options` line.
    pub options: Vec<String>,
}

/// What a pod's sandbox needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxConfig {
    /// `metadata.uid`.
    pub pod_uid: String,
    /// `metadata.name`.
    pub pod_name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec.hostname` or the pod name.
    pub hostname: String,
    /// Extra names for the pod IP line of /etc/hosts (e.g. `web-0.svc.ns.svc.cluster.local`).
    pub host_aliases: Vec<String>,
    /// DNS; `None` copies the host's `/etc/resolv.conf` (`dnsPolicy: Default`).
    pub dns: Option<DnsConfig>,
    /// hostPorts.
    pub port_mappings: Vec<PortMapping>,
}

/// A running pod sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The pod's UID.
    pub pod_uid: String,
    /// The pod's name.
    pub pod_name: String,
    /// The pod's namespace.
    pub namespace: String,
    /// When the sandbox was created.
    pub created_at: jiff::Timestamp,
    /// The pod's hostname.
    pub hostname: String,
    /// `<root>/<pod-uid>`.
    pub dir: PathBuf,
    /// The held namespaces; `namespaces.net` is the network namespace path.
    pub namespaces: PodNamespaces,
    /// The pod IP from CNI.
    pub ip: IpAddr,
    /// `/etc/hosts` for the containers.
    pub hosts_file: PathBuf,
    /// `/etc/hostname` for the containers.
    pub hostname_file: PathBuf,
    /// `/etc/resolv.conf` for the containers.
    pub resolv_file: PathBuf,
    attachment: Attachment,
}

/// A hostPort mapping as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PortRecord {
    host_port: u16,
    container_port: u16,
    protocol: String,
    #[serde(default)]
    host_ip: String,
}

/// `sandbox.json`: what a restarted agent needs to use the sandbox or tear it down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SandboxRecord {
    pod_uid: String,
    pod_name: String,
    namespace: String,
    hostname: String,
    /// `None` until CNI ADD answered.
    ip: Option<String>,
    netns: PathBuf,
    ipcns: PathBuf,
    utsns: PathBuf,
    ifname: String,
    cni_args: Vec<(String, String)>,
    port_mappings: Vec<PortRecord>,
    created_at: String,
}

impl SandboxRecord {
    fn new(config: &SandboxConfig, namespaces: &PodNamespaces, attachment: &Attachment, now: jiff::Timestamp) -> Self {
        SandboxRecord {
            pod_uid: config.pod_uid.clone(),
            pod_name: config.pod_name.clone(),
            namespace: config.namespace.clone(),
            hostname: config.hostname.clone(),
            ip: None,
            netns: namespaces.net.clone(),
            ipcns: namespaces.ipc.clone(),
            utsns: namespaces.uts.clone(),
            ifname: attachment.ifname.clone(),
            cni_args: attachment.args.clone(),
            port_mappings: attachment
                .port_mappings
                .iter()
                .map(|m| PortRecord {
                    host_port: m.host_port,
                    container_port: m.container_port,
                    protocol: m.protocol.clone(),
                    host_ip: m.host_ip.clone(),
                })
                .collect(),
            created_at: state::format_time(now),
        }
    }

    fn attachment(&self) -> Attachment {
        Attachment {
            container_id: self.pod_uid.clone(),
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
            args: self.cni_args.clone(),
            port_mappings: self
                .port_mappings
                .iter()
                .map(|m| PortMapping {
                    host_port: m.host_port,
                    container_port: m.container_port,
                    protocol: m.protocol.clone(),
                    host_ip: m.host_ip.clone(),
                })
                .collect(),
        }
    }

    /// The sandbox in `dir` this record describes; `None` without an IP.
    fn sandbox(&self, dir: &Path) -> Option<Sandbox> {
        let ip = self.ip.as_deref()?.parse().ok()?;
        Some(Sandbox {
            pod_uid: self.pod_uid.clone(),
            pod_name: self.pod_name.clone(),
            namespace: self.namespace.clone(),
            created_at: state::parse_time(Some(&self.created_at)).unwrap_or_else(jiff::Timestamp::now),
            hostname: self.hostname.clone(),
            dir: dir.to_path_buf(),
            namespaces: PodNamespaces { net: self.netns.clone(), ipc: self.ipcns.clone(), uts: self.utsns.clone() },
            ip,
            hosts_file: dir.join("hosts"),
            hostname_file: dir.join("hostname"),
            resolv_file: dir.join("resolv.conf"),
            attachment: self.attachment(),
        })
    }
}

/// The kubelet's managed /etc/hosts.
pub fn hosts_file(ip: IpAddr, hostname: &str, aliases: &[String]) -> String {
    let mut names = vec![hostname.to_string()];
    names.extend(aliases.iter().cloned());
    format!(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n{ip}\t{}\n",
        names.join("\t")
    )
}

/// resolv.conf text for `dns`.
pub fn resolv_conf(dns: &DnsConfig) -> String {
    let mut out = String::new();
    if !dns.searches.is_empty() {
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for ns in &dns.nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    out
}

fn write(path: &Path, text: &str) -> Result<(), SandboxError> {
    std::fs::write(path, text).map_err(|source| SandboxError::Io { path: path.to_path_buf(), source })
}

impl Sandbox {
    /// Creates the pod's namespaces under `<root>/<pod-uid>`, attaches the network and writes the
    /// pod's files. On failure everything created is removed again.
    pub async fn create(config: &SandboxConfig, root: &Path, network: &Network) -> Result<Sandbox, SandboxError> {
        let uid = &config.pod_uid;
        if uid.is_empty() || uid.contains('/') || uid.starts_with('.') {
            return Err(SandboxError::InvalidUid(uid.clone()));
        }
        let dir = root.join(uid);
        let (d, h) = (dir.clone(), config.hostname.clone());
        let namespaces = tokio::task::spawn_blocking(move || nsfs::create(&d, &h)).await.map_err(|e| {
            NsError::Io { context: "namespace task", path: dir.clone(), source: std::io::Error::other(e) }
        })??;
        let attachment = Attachment {
            container_id: uid.clone(),
            netns: namespaces.net.clone(),
            ifname: "eth0".into(),
            args: vec![
                ("K8S_POD_NAMESPACE".into(), config.namespace.clone()),
                ("K8S_POD_NAME".into(), config.pod_name.clone()),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), uid.clone()),
                ("K8S_POD_UID".into(), uid.clone()),
            ],
            port_mappings: config.port_mappings.clone(),
        };
        let now = jiff::Timestamp::now();
        let mut record = SandboxRecord::new(config, &namespaces, &attachment, now);
        let record_path = dir.join(RECORD);
        let added = match state::write_atomic(&record_path, &record) {
            Ok(()) => network.add(&attachment).await.map_err(SandboxError::from),
            Err(e) => Err(e.into()),
        };
        let ip = match added {
            Ok((_, ip)) => ip,
            Err(e) => {
                nsfs::remove(&namespaces);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let sandbox = Sandbox {
            pod_uid: uid.clone(),
            pod_name: config.pod_name.clone(),
            namespace: config.namespace.clone(),
            created_at: now,
            hostname: config.hostname.clone(),
            hosts_file: dir.join("hosts"),
            hostname_file: dir.join("hostname"),
            resolv_file: dir.join("resolv.conf"),
            dir,
            namespaces,
            ip,
            attachment,
        };
        let resolv = match &config.dns {
            Some(dns) => resolv_conf(dns),
            None => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        };
        let files = write(&sandbox.hosts_file, &hosts_file(ip, &config.hostname, &config.host_aliases))
            .and_then(|()| write(&sandbox.hostname_file, &format!("{}\n", config.hostname)))
            .and_then(|()| write(&sandbox.resolv_file, &resolv))
            .and_then(|()| {
                record.ip = Some(ip.to_string());
                state::write_atomic(&record_path, &record).map_err(SandboxError::from)
            });
        if let Err(e) = files {
            let _ = sandbox.destroy(network).await;
            return Err(e);
        }
        Ok(sandbox)
    }

    /// The sandboxes recorded under `root` (after an agent restart). A sandbox whose creation was
    /// interrupted (no record, or no IP yet) is torn down: CNI DEL releases whatever ADD did, its
    /// namespaces and directory go. Unreadable records are logged and skipped.
    pub async fn recover(root: &Path, network: &Network) -> Vec<Sandbox> {
        let mut out = Vec::new();
        for dir in state::subdirs(root) {
            let uid = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            match state::read::<SandboxRecord>(&dir.join(RECORD)) {
                Ok(Some(record)) => match record.sandbox(&dir) {
                    Some(sandbox) => out.push(sandbox),
                    None => {
                        tracing::info!(pod = %uid, "removing a sandbox whose creation was interrupted");
                        let _ = network.del(&record.attachment()).await;
                        release(&dir, &uid);
                    }
                },
                Ok(None) => {
                    tracing::info!(pod = %uid, "removing a sandbox directory without a record");
                    release(&dir, &uid);
                }
                Err(e) => tracing::warn!(pod = %uid, error = %e, "cannot read a sandbox record"),
            }
        }
        out
    }

    /// Whether the sandbox's network namespace is still held (a reboot releases it).
    pub fn is_intact(&self) -> bool {
        crate::rootfs::is_mountpoint(&self.namespaces.net)
    }

    /// The `(host file, container path)` pairs every container of the pod bind-mounts.
    pub fn etc_files(&self) -> Vec<(PathBuf, &'static str)> {
        vec![
            (self.hosts_file.clone(), "/etc/hosts"),
            (self.hostname_file.clone(), "/etc/hostname"),
            (self.resolv_file.clone(), "/etc/resolv.conf"),
        ]
    }

    /// CNI CHECK of the pod's attachment.
    pub async fn check(&self, network: &Network) -> Result<(), SandboxError> {
        Ok(network.check(&self.attachment).await?)
    }

    /// Detaches the network (CNI DEL), releases the namespaces, removes the pod's directory and
    /// its leftover cgroup directories. The pod's containers must be removed first.
    pub async fn destroy(&self, network: &Network) -> Result<(), SandboxError> {
        let del = network.del(&self.attachment).await;
        nsfs::remove(&self.namespaces);
        let _ = std::fs::remove_dir_all(&self.dir);
        crate::cgroup::remove_pod(&self.pod_uid);
        Ok(del?)
    }
}

/// Releases the namespaces held in `dir`, removes it and the pod's cgroup directories.
fn release(dir: &Path, uid: &str) {
    nsfs::remove(&PodNamespaces::paths(dir));
    let _ = std::fs::remove_dir_all(dir);
    crate::cgroup::remove_pod(uid);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_kubelet_hosts_file() {
        let ip: IpAddr = "10.42.0.7".parse().expect("ip");
        let text = hosts_file(ip, "web-0", &["web-0.web.default.svc.cluster.local".into()]);
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(text.ends_with("\n10.42.0.7\tweb-0\tweb-0.web.default.svc.cluster.local\n"));
    }

    #[test]
    fn records_round_trip_to_the_sandbox() {
        let config = SandboxConfig {
            pod_uid: "uid-1".into(),
            pod_name: "web".into(),
            namespace: "default".into(),
            hostname: "web".into(),
            port_mappings: vec![PortMapping {
                host_port: 18080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: String::new(),
            }],
            ..Default::default()
        };
        let dir = Path::new("/data/sandboxes/uid-1");
        let ns = PodNamespaces::paths(dir);
        let attach = Attachment {
            container_id: "uid-1".into(),
            netns: ns.net.clone(),
            ifname: "eth0".into(),
            args: vec![("K8S_POD_NAME".into(), "web".into())],
            port_mappings: config.port_mappings.clone(),
        };
        let t: jiff::Timestamp = "2024-01-02T03:04:05Z".parse().expect("ts");
        let mut record = SandboxRecord::new(&config, &ns, &attach, t);
        assert_eq!(record.attachment(), attach);
        assert_eq!(record.sandbox(dir), None, "no IP yet: not a usable sandbox");
        record.ip = Some("10.42.0.9".into());
        let text = serde_json::to_string(&record).expect("json");
        let back: SandboxRecord = serde_json::from_str(&text).expect("parse");
        let sb = back.sandbox(dir).expect("sandbox");
        assert_eq!((sb.pod_uid.as_str(), sb.pod_name.as_str(), sb.namespace.as_str()), ("uid-1", "web", "default"));
        assert_eq!(sb.ip, "10.42.0.9".parse::<IpAddr>().expect("ip"));
        assert_eq!(sb.created_at, t);
        assert_eq!(sb.namespaces, ns);
        assert_eq!(sb.hosts_file, dir.join("hosts"));
        assert_eq!(sb.attachment, attach);
    }

    #[test]
    fn writes_resolv_conf() {
        let dns = DnsConfig {
            nameservers: vec!["10.43.0.10".into()],
            searches: vec!["default.svc.cluster.local".into(), "svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(&dns),
            "search default.svc.cluster.local svc.cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n"
        );
    }
}
