//! The controller manager: every controller of this crate, run together under one leader-elected
//! Lease (`kube-system/kube-controller-manager`), as kube-controller-manager runs them.

use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::leader::{self, Timings};
use crate::{deployment, gc, namespace_defaults, podgc, replicaset};

/// How to run the controller manager.
#[derive(Debug, Clone)]
pub struct Config {
    /// This process's identity in the Lease (unique per server).
    pub identity: String,
    /// The cluster CA, published in every namespace as `kube-root-ca.crt`.
    pub ca_pem: String,
    pub timings: Timings,
}

/// Runs the controllers while this process leads; returns when `stop` is cancelled.
pub async fn run(client: Client, config: Config, stop: CancellationToken) {
    let lease_client = client.clone();
    let work = move |token: CancellationToken| {
        let client = client.clone();
        let ca = config.ca_pem.clone();
        async move {
            let stopped = |t: &CancellationToken| t.clone().cancelled_owned();
            tokio::join!(
                replicaset::run(client.clone(), stopped(&token)),
                deployment::run(client.clone(), stopped(&token)),
                gc::run(client.clone(), stopped(&token)),
                podgc::run(client.clone(), stopped(&token)),
                async {
                    tokio::select! {
                        _ = namespace_defaults::run(client.clone(), ca) => {}
                        _ = token.cancelled() => {}
                    }
                },
            );
        }
    };
    let identity = config.identity.clone();
    leader::run_elected(lease_client, "kube-controller-manager", &identity, config.timings, stop, work).await;
}
