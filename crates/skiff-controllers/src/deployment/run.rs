//! The executor: list+watch caches of Deployments, ReplicaSets and Pods, a work queue keyed by
//! Deployment (kube-runtime's `applier`: de-duplicated, one sync per Deployment at a time, delayed
//! requeues), adoption/release of ReplicaSets, and the plan's writes applied in order.
//!
//! Every write names the field manager `kube-controller-manager`, so `managedFields` read as they do
//! on a Kubernetes cluster.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action as Requeue, Config as ApplierConfig, applier};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector::reflector};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;

use super::adoption;
use super::plan::{self, Action, Observed};
use crate::events::{self, Recorder};

/// The field manager (and Event source) name of every write.
pub const FIELD_MANAGER: &str = "kube-controller-manager";
/// The component named in Events, as upstream's.
pub const COMPONENT: &str = "deployment-controller";
/// Deployments synced at once (`--concurrent-deployment-syncs`).
const WORKERS: u16 = 5;
/// Retry back-off: 5 ms doubling per failure, capped (upstream's rate-limited queue).
const BACKOFF_BASE: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Why a sync failed; the Deployment is synced again after a back-off.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("API request failed")]
    Api(#[from] kube::Error),
    #[error("the caches stopped")]
    CachesStopped,
    #[error("{0}")]
    Retry(String),
}

struct Context {
    client: Client,
    recorder: Recorder,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    failures: Mutex<HashMap<ObjectRef<Deployment>, u32>>,
}

/// Runs the Deployment controller until `shutdown` completes. Syncs in flight finish first.
pub async fn run(client: Client, shutdown: impl Future<Output = ()>) {
    let (deployments, d_writer) = reflector::store::<Deployment>();
    let (replica_sets, rs_writer) = reflector::store::<ReplicaSet>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let config = watcher::Config::default();

    let d_events =
        reflector(d_writer, crate::watch(Api::<Deployment>::all(client.clone()), config.clone())).default_backoff();
    let rs_events =
        reflector(rs_writer, crate::watch(Api::<ReplicaSet>::all(client.clone()), config.clone())).default_backoff();
    let pod_events = reflector(pod_writer, crate::watch(Api::<Pod>::all(client.clone()), config)).default_backoff();

    let d_triggers = d_events.flat_map(|event| {
        let refs = match event {
            Ok(Event::Apply(d) | Event::InitApply(d)) => vec![ObjectRef::from_obj(&d)],
            Ok(_) => vec![],
            Err(e) => {
                tracing::debug!(error = %e, "deployment watch failed");
                vec![]
            }
        };
        stream::iter(refs)
    });
    let store = deployments.clone();
    let rs_triggers = rs_events.flat_map(move |event| {
        let refs = match event {
            Ok(Event::Apply(rs) | Event::InitApply(rs) | Event::Delete(rs)) => deployments_for_replica_set(&store, &rs),
            Ok(_) => vec![],
            Err(e) => {
                tracing::debug!(error = %e, "replicaset watch failed");
                vec![]
            }
        };
        stream::iter(refs)
    });
    let rs_store = replica_sets.clone();
    let pod_triggers = pod_events.flat_map(move |event| {
        // Only deletions matter: Recreate waits for the old pods to be gone.
        let refs = match event {
            Ok(Event::Delete(pod)) => deployment_for_pod(&rs_store, &pod).into_iter().collect(),
            Ok(_) => vec![],
            Err(e) => {
                tracing::debug!(error = %e, "pod watch failed");
                vec![]
            }
        };
        stream::iter(refs)
    });
    let queue = stream::select_all([boxed(d_triggers), boxed(rs_triggers), boxed(pod_triggers)])
        .map(Ok::<_, Infallible>)
        .take_until(shutdown);

    let context = Arc::new(Context {
        recorder: Recorder::new(client.clone(), COMPONENT),
        client,
        replica_sets,
        pods,
        failures: Mutex::default(),
    });
    applier(
        |d, ctx| Box::pin(reconcile(d, ctx)),
        error_policy,
        context,
        deployments,
        queue,
        ApplierConfig::default().concurrency(WORKERS),
    )
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "deployment sync not run");
        }
    })
    .await;
}

fn boxed(
    s: impl Stream<Item = ObjectRef<Deployment>> + Send + 'static,
) -> std::pin::Pin<Box<dyn Stream<Item = ObjectRef<Deployment>> + Send>> {
    Box::pin(s)
}

/// The Deployment controlling a ReplicaSet; for an orphan, every Deployment of its namespace whose
/// selector matches (one of them may adopt it).
fn deployments_for_replica_set(deployments: &Store<Deployment>, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    match adoption::controller_of(&rs.metadata) {
        Some(owner) if owner.kind == "Deployment" => vec![ObjectRef::new(&owner.name).within(&ns)],
        Some(_) => vec![],
        None => deployments
            .state()
            .iter()
            .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
            .filter(|d| {
                d.spec.as_ref().is_some_and(|s| {
                    let empty = s.selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
                        && s.selector.match_expressions.as_ref().is_none_or(|e| e.is_empty());
                    !empty && adoption::selector_matches(&s.selector, rs.metadata.labels.as_ref())
                })
            })
            .map(|d| ObjectRef::from_obj(d.as_ref()))
            .collect(),
    }
}

/// The Deployment above a pod's controlling ReplicaSet.
fn deployment_for_pod(replica_sets: &Store<ReplicaSet>, pod: &Pod) -> Option<ObjectRef<Deployment>> {
    let owner = adoption::controller_of(&pod.metadata).filter(|o| o.kind == "ReplicaSet")?;
    let ns = pod.namespace().unwrap_or_default();
    let rs = replica_sets.get(&ObjectRef::new(&owner.name).within(&ns))?;
    let d = adoption::controller_of(&rs.metadata).filter(|o| o.kind == "Deployment")?;
    Some(ObjectRef::new(&d.name).within(&ns))
}

fn error_policy(d: Arc<Deployment>, error: &SyncError, ctx: Arc<Context>) -> Requeue {
    let key = ObjectRef::from_obj(d.as_ref());
    let mut failures = ctx.failures.lock();
    let n = failures.entry(key).or_insert(0);
    *n = n.saturating_add(1);
    let delay = BACKOFF_BASE.saturating_mul(1u32 << (*n - 1).min(20)).min(BACKOFF_MAX);
    tracing::debug!(deployment = %d.name_any(), error = %error, retry_in = ?delay, "deployment sync failed");
    Requeue::requeue(delay)
}

/// One sync: claim ReplicaSets, plan, apply.
async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Requeue, SyncError> {
    ctx.replica_sets.wait_until_ready().await.map_err(|_| SyncError::CachesStopped)?;
    ctx.pods.wait_until_ready().await.map_err(|_| SyncError::CachesStopped)?;
    let ns = d.namespace().unwrap_or_default();
    let in_namespace: Vec<ReplicaSet> = ctx
        .replica_sets
        .state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
        .map(|rs| (**rs).clone())
        .collect();
    let owned = claim(&ctx, &d, &in_namespace).await?;
    // Only `Recreate` looks at pods (it waits for the old ones to be gone): a rolling update does
    // not copy them out of the cache.
    let recreate =
        d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let pods = if recreate {
        let cached = ctx.pods.state();
        adoption::pods_of(&d, &owned, cached.iter().map(Arc::as_ref))
    } else {
        Vec::new()
    };
    let observed = Observed {
        pods,
        replica_sets: owned,
        taken_names: in_namespace.iter().filter_map(|rs| rs.metadata.name.clone()).collect::<BTreeSet<_>>(),
        deployment: (*d).clone(),
        now: Timestamp::now(),
    };
    let plan = plan::plan(&observed);
    execute(&ctx, &d, plan.actions).await?;
    if let Some(reason) = plan.retry {
        return Err(SyncError::Retry(reason));
    }
    ctx.failures.lock().remove(&ObjectRef::from_obj(d.as_ref()));
    Ok(plan.requeue_after.map_or_else(Requeue::await_change, Requeue::requeue))
}

/// `getReplicaSetsForDeployment`: adopt matching orphans and release non-matching owned
/// ReplicaSets through the API, and return what the Deployment now controls.
async fn claim(ctx: &Context, d: &Deployment, in_namespace: &[ReplicaSet]) -> Result<Vec<ReplicaSet>, SyncError> {
    let claim = adoption::claim_replica_sets(d, in_namespace);
    let ns = d.namespace().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_string()), ..PatchParams::default() };
    let mut owned = claim.owned;
    if !claim.adopt.is_empty() && can_adopt(ctx, d).await? {
        for rs in &claim.adopt {
            let refs = adoption::adopted(d, rs).metadata.owner_references;
            let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.metadata.resource_version, "uid": rs.metadata.uid}});
            match api.patch(&rs.name_any(), &params, &Patch::Merge(&patch)).await {
                Ok(adopted) => owned.push(adopted),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    for rs in &claim.release {
        let refs = adoption::released_owner_references(d, rs);
        let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.metadata.resource_version, "uid": rs.metadata.uid}});
        match api.patch(&rs.name_any(), &params, &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(owned)
}

/// `RecheckDeletionTimestamp`: adopt only for a live Deployment with the same UID, read uncached.
async fn can_adopt(ctx: &Context, d: &Deployment) -> Result<bool, SyncError> {
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    let fresh = api.get(&d.name_any()).await?;
    Ok(fresh.metadata.uid == d.metadata.uid && fresh.metadata.deletion_timestamp.is_none())
}

/// Applies the plan's writes in order, stopping at the first failure. Later writes to an object
/// already written in this sync carry the resourceVersion the server just returned.
async fn execute(ctx: &Context, d: &Deployment, actions: Vec<Action>) -> Result<(), SyncError> {
    let ns = d.namespace().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let params = PostParams { dry_run: false, field_manager: Some(FIELD_MANAGER.to_string()) };
    let reference = events::reference(d);
    let mut rs_versions: HashMap<String, Option<String>> = HashMap::new();
    let mut d_version: Option<Option<String>> = None;
    for action in actions {
        match action {
            Action::CreateReplicaSet(rs) => {
                let created = rs_api.create(&params, &rs).await?;
                rs_versions.insert(created.name_any(), created.metadata.resource_version);
            }
            Action::UpdateReplicaSet(mut rs) => {
                let name = rs.name_any();
                if let Some(version) = rs_versions.get(&name) {
                    rs.metadata.resource_version.clone_from(version);
                }
                let updated = rs_api.replace(&name, &params, &rs).await?;
                rs_versions.insert(name, updated.metadata.resource_version);
            }
            Action::DeleteReplicaSet { name } => match rs_api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            },
            Action::UpdateStatus(mut dep) => {
                if let Some(version) = &d_version {
                    dep.metadata.resource_version.clone_from(version);
                }
                let updated = d_api.replace_status(&dep.name_any(), &params, &dep).await?;
                d_version = Some(updated.metadata.resource_version);
            }
            Action::Event { kind, reason, message } => ctx.recorder.record(&reference, kind, &reason, &message).await,
        }
    }
    Ok(())
}
