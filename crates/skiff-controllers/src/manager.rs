//! The controller manager: every controller of this crate, run together under one leader-elected
//! Lease (`kube-system/kube-controller-manager`), as kube-controller-manager runs them.

use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::leader::{self, Timings};
use crate::{deployment, gc, namespace_defaults, nodeipam, nodelifecycle, podgc, replicaset};

/// A User-Agent like kube-controller-manager's, for the controllers' client: the API server
/// derives the field manager of their writes (`kube-controller-manager`) from it.
pub const USER_AGENT: &str = replicaset::USER_AGENT;

/// How to run the controller manager. `Config { identity, ca_pem, ..Config::default() }` gives
/// every controller kube-controller-manager's defaults.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// This process's identity in the Lease (unique per server).
    pub identity: String,
    /// The cluster CA, published in every namespace as `kube-root-ca.crt`.
    pub ca_pem: String,
    pub timings: Timings,
    /// The node lifecycle and taint eviction controllers (`--node-monitor-period`,
    /// `--node-monitor-grace-period`, ...).
    pub node_lifecycle: nodelifecycle::Config,
    /// Node IPAM (`--allocate-node-cidrs`, `--cluster-cidr`, `--node-cidr-mask-size`).
    pub node_ipam: nodeipam::Config,
}

/// Runs the controllers while this process leads; returns when `stop` is cancelled.
pub async fn run(client: Client, config: Config, stop: CancellationToken) {
    let lease_client = client.clone();
    let identity = config.identity.clone();
    let timings = config.timings;
    let work = move |token: CancellationToken| {
        let client = client.clone();
        let config = config.clone();
        async move {
            let stopped = |t: &CancellationToken| t.clone().cancelled_owned();
            tokio::join!(
                replicaset::run(client.clone(), stopped(&token)),
                deployment::run(client.clone(), stopped(&token)),
                gc::run(client.clone(), stopped(&token)),
                podgc::run(client.clone(), stopped(&token)),
                nodelifecycle::run(client.clone(), config.node_lifecycle, stopped(&token)),
                nodeipam::run(client.clone(), config.node_ipam, stopped(&token)),
                async {
                    tokio::select! {
                        _ = namespace_defaults::run(client.clone(), config.ca_pem) => {}
                        _ = token.cancelled() => {}
                    }
                },
            );
        }
    };
    leader::run_elected(lease_client, "kube-controller-manager", &identity, timings, stop, work).await;
}
