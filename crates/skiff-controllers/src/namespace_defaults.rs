//! What every namespace gets: the `default` ServiceAccount (the serviceaccounts controller) and the
//! `kube-root-ca.crt` ConfigMap holding the cluster CA (the root-ca-cert-publisher). Clients and the
//! e2e framework wait for both in every new namespace.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};

pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// What a namespace is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    ServiceAccount,
    RootCa,
}

/// The objects to create in a namespace, given whether each exists. Terminating namespaces get
/// nothing (creating in them is refused anyway).
pub fn plan(namespace: &Namespace, has_sa: bool, root_ca: Option<&ConfigMap>, ca_pem: &str) -> Vec<Missing> {
    if namespace.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if !has_sa {
        out.push(Missing::ServiceAccount);
    }
    let current = root_ca.and_then(|cm| cm.data.as_ref()).and_then(|d| d.get("ca.crt"));
    if current.map(String::as_str) != Some(ca_pem) {
        out.push(Missing::RootCa);
    }
    out
}

fn root_ca(ns: &str, ca_pem: &str) -> ConfigMap {
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "kubernetes.io/description".to_string(),
        "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.".to_string(),
    );
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(ROOT_CA_CONFIGMAP.into()),
            namespace: Some(ns.into()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("ca.crt".to_string(), ca_pem.to_string())])),
        ..ConfigMap::default()
    }
}

async fn reconcile(client: &Client, ns: &Namespace, ca_pem: &str) -> kube::Result<()> {
    let name = ns.name_any();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
    let has_sa = sas.get_opt(DEFAULT_SERVICE_ACCOUNT).await?.is_some();
    let cm = cms.get_opt(ROOT_CA_CONFIGMAP).await?;
    for missing in plan(ns, has_sa, cm.as_ref(), ca_pem) {
        let result = match missing {
            Missing::ServiceAccount => {
                let sa = ServiceAccount {
                    metadata: ObjectMeta {
                        name: Some(DEFAULT_SERVICE_ACCOUNT.into()),
                        namespace: Some(name.clone()),
                        ..ObjectMeta::default()
                    },
                    ..ServiceAccount::default()
                };
                sas.create(&PostParams::default(), &sa).await.map(|_| ())
            }
            Missing::RootCa => match &cm {
                Some(existing) => {
                    let mut updated = root_ca(&name, ca_pem);
                    updated.metadata.resource_version = existing.metadata.resource_version.clone();
                    cms.replace(ROOT_CA_CONFIGMAP, &PostParams::default(), &updated).await.map(|_| ())
                }
                None => cms.create(&PostParams::default(), &root_ca(&name, ca_pem)).await.map(|_| ()),
            },
        };
        match result {
            Ok(()) => {}
            // Lost a race with another writer, or the namespace began terminating: the next event retries.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 || e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Watches namespaces, and the two objects in each, until the watch ends; recreates what is missing.
pub async fn run(client: Client, ca_pem: String) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let sas: Api<ServiceAccount> = Api::all(client.clone());
    let cms: Api<ConfigMap> = Api::all(client.clone());
    let cm_config = watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIGMAP}"));
    let sa_config = watcher::Config::default().fields(&format!("metadata.name={DEFAULT_SERVICE_ACCOUNT}"));
    // Any change of interest names a namespace to reconcile.
    // With back-off: a watcher retries a failed request at once without it, and a stream that
    // fails at once every time would keep `filter_map` polling it forever.
    let ns_events =
        watcher::watcher(namespaces.clone(), watcher::Config::default()).default_backoff().filter_map(|e| async move {
            match e {
                Ok(Event::Apply(ns) | Event::InitApply(ns)) => Some(ns.name_any()),
                _ => None,
            }
        });
    let sa_deletes = watcher::watcher(sas, sa_config).default_backoff().filter_map(|e| async move {
        match e {
            Ok(Event::Delete(sa)) => sa.namespace(),
            _ => None,
        }
    });
    let cm_changes = watcher::watcher(cms, cm_config).default_backoff().filter_map(|e| async move {
        match e {
            Ok(Event::Delete(cm) | Event::Apply(cm)) => cm.namespace(),
            _ => None,
        }
    });
    let mut names = futures::stream::select(ns_events, futures::stream::select(sa_deletes, cm_changes)).boxed();
    while let Some(name) = names.next().await {
        let ns = match namespaces.get_opt(&name).await {
            Ok(Some(ns)) => ns,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(namespace = name, error = %e, "cannot read namespace");
                continue;
            }
        };
        if let Err(e) = reconcile(&client, &ns, &ca_pem).await {
            tracing::warn!(namespace = name, error = %e, "cannot create the namespace's default objects");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(terminating: bool) -> Namespace {
        let mut n = Namespace::default();
        if terminating {
            n.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        }
        n
    }

    #[test]
    fn plans_what_is_missing() {
        assert_eq!(plan(&ns(false), false, None, "CA"), vec![Missing::ServiceAccount, Missing::RootCa]);
        assert_eq!(plan(&ns(false), true, Some(&root_ca("x", "CA")), "CA"), vec![]);
        assert_eq!(plan(&ns(false), true, Some(&root_ca("x", "OLD")), "CA"), vec![Missing::RootCa]);
        assert_eq!(plan(&ns(true), false, None, "CA"), vec![]);
    }
}
