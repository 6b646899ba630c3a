//! The executor: takes [`Work`] from the queue, gathers what the decision functions need (a live GET
//! of the item and of each owner, the graph's view of its dependents), and carries out their answer
//! through the API. Caches lag, so nothing is deleted on the graph's word alone.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use serde_json::Value;
use skiff_api::resource::ResourceInfo;

use super::decide::{self, Action, ForegroundAction, OwnerState, Propagation, Triage};
use super::graph::{FOREGROUND_FINALIZER, Node, ORPHAN_FINALIZER, ObjectId, OwnerRef, Work, owner_refs};
use super::monitor::{Shared, api_resource};
use super::patch;

/// How often a read-modify-patch is retried when the object changes underneath it.
const PATCH_ATTEMPTS: usize = 5;

/// Why processing an item failed; the item is retried after a back-off.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("cannot {verb} {object}")]
    Api {
        verb: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("{object} changed while the garbage collector was updating it")]
    Conflict { object: String },
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// The outcome of a read-modify-patch.
enum Patched {
    /// The object (with that UID) no longer exists.
    Gone,
    /// It needed no change.
    Unchanged(ObjectMeta),
    /// It was patched; this is its new metadata.
    Done(ObjectMeta),
}

/// One worker's view of the collector.
#[derive(Clone)]
pub struct Worker {
    client: kube::Client,
    shared: Arc<Shared>,
}

impl Worker {
    pub fn new(client: kube::Client, shared: Arc<Shared>) -> Worker {
        Worker { client, shared }
    }

    /// Takes items from the queue for ever.
    pub async fn run(self) {
        let queue = self.shared.queue.clone();
        loop {
            let work = queue.get().await;
            match self.process(&work).await {
                Ok(()) => queue.forget(&work),
                Err(e) => {
                    let delay = queue.retry_later(work.clone());
                    tracing::info!(?work, error = %e, cause = ?std::error::Error::source(&e), ?delay, "garbage collector: will retry");
                }
            }
            queue.done(&work);
        }
    }

    pub async fn process(&self, work: &Work) -> Result<(), GcError> {
        match work {
            Work::AttemptToDelete(uid) => self.attempt_to_delete(uid).await,
            Work::AttemptToOrphan(uid) => self.attempt_to_orphan(uid).await,
        }
    }

    fn api(&self, r: &ResourceInfo, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = api_resource(r);
        match namespace {
            Some(ns) if r.namespaced() => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// The live metadata of an object by name; `None` when there is none.
    async fn get(&self, r: &ResourceInfo, namespace: Option<&str>, name: &str) -> Result<Option<ObjectMeta>, GcError> {
        match self.api(r, namespace).get_opt(name).await {
            Ok(o) => Ok(o.map(|o| o.metadata)),
            Err(source) => {
                let object = format!("{}/{} {}/{name}", r.api_version(), r.kind, namespace.unwrap_or(""));
                Err(GcError::Api { verb: "get", object, source })
            }
        }
    }

    /// The live metadata of exactly this object: `None` when it is gone or its name now belongs to
    /// another UID.
    async fn get_same(&self, id: &ObjectId) -> Result<Option<ObjectMeta>, GcError> {
        let live = self.get(id.resource, id.namespace.as_deref(), &id.name).await?;
        Ok(live.filter(|m| m.uid.as_deref() == Some(id.uid.as_str())))
    }

    /// Upstream `attemptToDeleteItem`.
    async fn attempt_to_delete(&self, uid: &str) -> Result<(), GcError> {
        let Some(node) = self.shared.graph.lock().node(uid).cloned() else {
            return Ok(());
        };
        // Being deleted is a one-way trip: wait for it to go, then its dependents are looked at.
        if node.being_deleted && !node.deleting_dependents() {
            return Ok(());
        }
        let id = &node.id;
        let Some(live) = self.get_same(id).await? else {
            self.shared.forget(uid);
            return Ok(());
        };
        match decide::triage(&live) {
            Triage::Skip => Ok(()),
            Triage::DeletingDependents => self.finish_foreground(id).await,
            Triage::Classify => {
                if let Some(current) = Node::from_meta(id.resource, &live)
                    && self.shared.graph.lock().owners_settled(&current)
                {
                    return Ok(());
                }
                let owners = self.classify(id, &live).await?;
                let (has_dependents, dependent_deleting) = {
                    let graph = self.shared.graph.lock();
                    let deps = graph.dependents(uid);
                    (!deps.is_empty(), deps.iter().any(|d| d.deleting_dependents()))
                };
                let action = decide::plan_delete(&live, &owners, has_dependents, dependent_deleting);
                tracing::debug!(item = %id, ?owners, ?action, "garbage collector: classified");
                self.execute(id, live, action).await
            }
        }
    }

    /// Each ownerReference with the state a live GET of the owner finds.
    async fn classify(&self, id: &ObjectId, live: &ObjectMeta) -> Result<Vec<(OwnerRef, OwnerState)>, GcError> {
        let mut out: Vec<(OwnerRef, OwnerState)> = Vec::new();
        for r in owner_refs(live) {
            if let Some((_, s)) = out.iter().find(|(o, _)| o.uid == r.uid && o.name == r.name && o.kind == r.kind) {
                let s = *s;
                out.push((r, s));
                continue;
            }
            let state = match decide::owner_location(&r, id.namespace.as_deref()) {
                None => {
                    tracing::debug!(item = %id, owner = ?r, "garbage collector: cannot resolve owner; leaving the item alone");
                    OwnerState::Unresolvable
                }
                Some((res, ns)) => decide::owner_state(&r, self.get(res, ns.as_deref(), &r.name).await?.as_ref()),
            };
            out.push((r, state));
        }
        Ok(out)
    }

    async fn execute(&self, id: &ObjectId, live: ObjectMeta, action: Action) -> Result<(), GcError> {
        match action {
            Action::Keep => Ok(()),
            Action::RemoveOwnerRefs(uids) => {
                if let Patched::Gone = self.patch_with_retry(id, |m| patch::remove_owner_refs(m, &uids)).await? {
                    self.shared.forget(&id.uid);
                }
                Ok(())
            }
            Action::Delete { propagation, unblock_first } => {
                let live = if unblock_first {
                    match self.patch_with_retry(id, patch::unblock_owner_refs).await? {
                        Patched::Gone => {
                            self.shared.forget(&id.uid);
                            return Ok(());
                        }
                        Patched::Unchanged(m) | Patched::Done(m) => m,
                    }
                } else {
                    live
                };
                tracing::info!(item = %id, ?propagation, "garbage collector: deleting");
                self.delete(id, &live, propagation).await
            }
        }
    }

    /// DELETE with the UID and resourceVersion the decision was made on as preconditions: if the
    /// object changed since (an owner added, say), the delete fails and the item is looked at again.
    async fn delete(&self, id: &ObjectId, live: &ObjectMeta, propagation: Propagation) -> Result<(), GcError> {
        let params = DeleteParams {
            propagation_policy: Some(propagation.to_kube()),
            preconditions: Some(Preconditions {
                uid: Some(id.uid.clone()),
                resource_version: live.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match self.api(id.resource, id.namespace.as_deref()).delete(&id.name, &params).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => {
                self.shared.forget(&id.uid);
                Ok(())
            }
            Err(e) if is_status(&e, 409) => Err(GcError::Conflict { object: id.to_string() }),
            Err(source) => Err(GcError::Api { verb: "delete", object: id.to_string(), source }),
        }
    }

    /// Upstream `processDeletingDependentsItem`: an owner deleting its dependents goes once no
    /// blocking dependent remains.
    async fn finish_foreground(&self, id: &ObjectId) -> Result<(), GcError> {
        let action = {
            let graph = self.shared.graph.lock();
            let blocking: Vec<(String, bool)> = graph
                .blocking_dependents(&id.uid)
                .iter()
                .map(|d| (d.id.uid.clone(), d.deleting_dependents()))
                .collect();
            decide::plan_deleting_dependents(&blocking)
        };
        match action {
            ForegroundAction::RemoveFinalizer => {
                tracing::info!(item = %id, "garbage collector: dependents gone; removing the foregroundDeletion finalizer");
                self.patch_with_retry(id, |m| patch::remove_finalizer(m, FOREGROUND_FINALIZER)).await?;
                Ok(())
            }
            ForegroundAction::Wait(deps) => {
                self.shared.enqueue(deps.into_iter().map(Work::AttemptToDelete).collect());
                Ok(())
            }
        }
    }

    /// Upstream `attemptToOrphanWorker`: every dependent forgets the owner, then the owner's
    /// `orphan` finalizer goes (which deletes it).
    async fn attempt_to_orphan(&self, uid: &str) -> Result<(), GcError> {
        let (owner, dependents) = {
            let graph = self.shared.graph.lock();
            let Some(owner) = graph.node(uid).cloned() else {
                return Ok(());
            };
            let deps: Vec<ObjectId> = graph.dependents(uid).iter().map(|d| d.id.clone()).collect();
            (owner, deps)
        };
        let owner_uid = [uid.to_string()];
        let mut failure = None;
        for d in &dependents {
            if let Err(e) = self.patch_with_retry(d, |m| patch::remove_owner_refs(m, &owner_uid)).await {
                failure = Some(e);
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        tracing::info!(item = %owner.id, orphaned = dependents.len(), "garbage collector: dependents orphaned; removing the orphan finalizer");
        self.patch_with_retry(&owner.id, |m| patch::remove_finalizer(m, ORPHAN_FINALIZER)).await?;
        Ok(())
    }

    /// Reads the object, computes a merge patch from what it read (`None`: no change needed) and
    /// sends it; the patch's resourceVersion precondition makes a concurrent change fail with 409,
    /// and then it reads again.
    async fn patch_with_retry(
        &self,
        id: &ObjectId,
        make: impl Fn(&ObjectMeta) -> Option<Value>,
    ) -> Result<Patched, GcError> {
        let api = self.api(id.resource, id.namespace.as_deref());
        for _ in 0..PATCH_ATTEMPTS {
            let Some(live) = self.get_same(id).await? else {
                return Ok(Patched::Gone);
            };
            let Some(body) = make(&live) else {
                return Ok(Patched::Unchanged(live));
            };
            match api.patch(&id.name, &PatchParams::default(), &Patch::Merge(&body)).await {
                Ok(o) => return Ok(Patched::Done(o.metadata)),
                Err(e) if is_status(&e, 404) => return Ok(Patched::Gone),
                Err(e) if is_status(&e, 409) => continue,
                Err(source) => return Err(GcError::Api { verb: "patch", object: id.to_string(), source }),
            }
        }
        Err(GcError::Conflict { object: id.to_string() })
    }
}
