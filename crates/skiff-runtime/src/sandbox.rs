//! A pod sandbox: the pod's persistent network, IPC and UTS namespaces ([`crate::nsfs`]), its CNI
//! attachment and IP ([`crate::cni`]), and the files every container of the pod mounts:
//! `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`. Lives in `<root>/<pod-uid>/`.

use crate::cni::{Attachment, CniError, Network, PortMapping};
use crate::nsfs::{self, NsError, PodNamespaces};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

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
        let ip = match network.add(&attachment).await {
            Ok((_, ip)) => ip,
            Err(e) => {
                nsfs::remove(&namespaces);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e.into());
            }
        };
        let sandbox = Sandbox {
            pod_uid: uid.clone(),
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
            .and_then(|()| write(&sandbox.resolv_file, &resolv));
        if let Err(e) = files {
            let _ = sandbox.destroy(network).await;
            return Err(e);
        }
        Ok(sandbox)
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
