//! The executor: list+watch caches of ReplicaSets and Pods, a work queue keyed by ReplicaSet, and
//! workers that run the steps of [`mod@super::plan`] against the API (`replica_set.go`: `Run`, `worker`,
//! `syncReplicaSet`, `manageReplicas`, `claimPods`; `controller_utils.go`: `RealPodControl`).
//!
//! Start it with [`run`] (or [`run_with`] for options); it returns when `shutdown` completes. Writes
//! carry the field manager `kube-controller-manager`, so `managedFields` read as upstream's.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use super::cache::Cache;
use super::claim;
use super::expectations::ControllerExpectations;
use super::handlers::{self, Effect};
use super::plan::{self, Manage};
use super::pods;
use super::queue::WorkQueue;
use super::status::{self, ManageError};
use super::{CONTROLLER_NAME, FIELD_MANAGER};
use crate::events::{EventType, Recorder, reference};

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Concurrent syncs (`--concurrent-replicaset-syncs`, default 5).
    pub workers: usize,
    /// Use watch-list (streaming lists, `sendInitialEvents=true`) for the initial list instead of a
    /// paginated LIST.
    pub streaming_lists: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { workers: 5, streaming_lists: true }
    }
}

/// Why one sync failed; the ReplicaSet is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("invalid key {0:?}")]
    Key(String),
    #[error("{0}")]
    Claim(String),
    #[error("{}", .0.message)]
    Manage(ManageError),
    #[error("cannot update the status of ReplicaSet {key}")]
    Status {
        key: String,
        #[source]
        source: kube::Error,
    },
}

/// The ReplicaSet controller: its caches, expectations and queue.
pub struct ReplicaSetController {
    client: Client,
    recorder: Recorder,
    pods: RwLock<Cache<Pod>>,
    replica_sets: RwLock<Cache<ReplicaSet>>,
    expectations: Mutex<ControllerExpectations>,
    queue: Arc<WorkQueue<String>>,
    /// Woken whenever a cache completes a list.
    synced: Notify,
    options: Options,
}

/// Runs the ReplicaSet controller with default [`Options`] until `shutdown` completes.
pub async fn run(client: Client, shutdown: impl Future<Output = ()>) {
    run_with(client, Options::default(), shutdown).await;
}

/// Runs the ReplicaSet controller until `shutdown` completes.
pub async fn run_with(client: Client, options: Options, shutdown: impl Future<Output = ()>) {
    let controller = ReplicaSetController::new(client, options);
    controller.run(shutdown).await;
}

/// `kube::Error` as upstream words it in Events and conditions: the API's Status message, else the
/// error's text.
fn error_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

fn is_invalid(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.reason == "Invalid" || s.code == 422)
}

/// The create failed because the namespace is being deleted (`NamespaceTerminatingCause`).
fn is_namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

fn post_params() -> PostParams {
    PostParams { field_manager: Some(FIELD_MANAGER.to_string()), ..PostParams::default() }
}

fn patch_params() -> PatchParams {
    PatchParams { field_manager: Some(FIELD_MANAGER.to_string()), ..PatchParams::default() }
}

impl ReplicaSetController {
    pub fn new(client: Client, options: Options) -> Arc<ReplicaSetController> {
        Arc::new(ReplicaSetController {
            recorder: Recorder::new(client.clone(), CONTROLLER_NAME),
            client,
            pods: RwLock::new(Cache::new()),
            replica_sets: RwLock::new(Cache::new()),
            expectations: Mutex::new(ControllerExpectations::new()),
            queue: WorkQueue::new(),
            synced: Notify::new(),
            options,
        })
    }

    /// Watches, waits for both caches to sync, runs the workers until `shutdown` completes.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tracing::info!(controller = CONTROLLER_NAME, "Starting controller");
        let pod_watch = tokio::spawn(Arc::clone(&self).watch_pods());
        let rs_watch = tokio::spawn(Arc::clone(&self).watch_replica_sets());
        let workers = {
            let this = Arc::clone(&self);
            tokio::spawn(async move {
                this.wait_for_sync().await;
                let handles: Vec<_> =
                    (0..this.options.workers.max(1)).map(|_| tokio::spawn(Arc::clone(&this).worker())).collect();
                join_all(handles).await;
            })
        };
        shutdown.await;
        tracing::info!(controller = CONTROLLER_NAME, "Shutting down controller");
        self.queue.shutdown();
        pod_watch.abort();
        rs_watch.abort();
        // Workers finish the sync in hand and stop; one still waiting for the caches is cancelled.
        if !self.caches_synced() {
            workers.abort();
        }
        let _ = workers.await;
    }

    fn caches_synced(&self) -> bool {
        self.pods.read().synced() && self.replica_sets.read().synced()
    }

    async fn wait_for_sync(&self) {
        loop {
            let notified = self.synced.notified();
            if self.caches_synced() {
                return;
            }
            notified.await;
        }
    }

    fn watcher_config(&self) -> watcher::Config {
        let config = watcher::Config::default();
        if self.options.streaming_lists { config.streaming_lists() } else { config }
    }

    async fn watch_pods(self: Arc<Self>) {
        let api: Api<Pod> = Api::all(self.client.clone());
        let mut stream = crate::watch(api, self.watcher_config()).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    let done = matches!(event, watcher::Event::InitDone);
                    let changes = self.pods.write().apply(event);
                    for change in &changes {
                        let effects = handlers::on_pod(change, &self.replica_sets.read());
                        self.apply_effects(effects);
                    }
                    if done {
                        self.synced.notify_waiters();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "pod watch failed"),
            }
        }
    }

    async fn watch_replica_sets(self: Arc<Self>) {
        let api: Api<ReplicaSet> = Api::all(self.client.clone());
        let mut stream = crate::watch(api, self.watcher_config()).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    let done = matches!(event, watcher::Event::InitDone);
                    let changes = self.replica_sets.write().apply(event);
                    for change in &changes {
                        self.apply_effects(handlers::on_replica_set(change));
                    }
                    if done {
                        self.synced.notify_waiters();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "replicaset watch failed"),
            }
        }
    }

    fn apply_effects(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Enqueue(key) => self.queue.add(key),
                Effect::EnqueueAfter(key, after) => self.queue.add_after(key, after),
                Effect::CreationObserved(key) => self.expectations.lock().creation_observed(&key),
                Effect::DeletionObserved { rs, pod } => self.expectations.lock().deletion_observed(&rs, &pod),
                Effect::DeleteExpectations(key) => self.expectations.lock().delete(&key),
            }
        }
    }

    async fn worker(self: Arc<Self>) {
        while let Some(key) = self.queue.get().await {
            let started = Instant::now();
            match self.sync(&key).await {
                Ok(()) => self.queue.forget(&key),
                Err(e) => {
                    tracing::warn!(key, error = %e, "sync failed");
                    self.queue.add_rate_limited(key.clone());
                }
            }
            tracing::debug!(key, elapsed = ?started.elapsed(), "Finished syncing ReplicaSet");
            self.queue.done(&key);
        }
    }

    /// `syncReplicaSet` for one `namespace/name`.
    pub async fn sync(&self, key: &str) -> Result<(), SyncError> {
        let (ns, name) = key.split_once('/').ok_or_else(|| SyncError::Key(key.to_string()))?;
        let Some(rs) = self.replica_sets.read().get(ns, name) else {
            self.expectations.lock().delete(key);
            return Ok(());
        };
        let satisfied = self.expectations.lock().satisfied(key, Instant::now());
        let selector = match pods::selector_of(&rs) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(key, error = %e, "error converting pod selector");
                return Ok(());
            }
        };
        // The pods it may claim: its own and the orphans (upstream's controller-UID and orphan
        // indexes), not every pod of the namespace.
        let candidates = {
            let cache = self.pods.read();
            let uid = rs.metadata.uid.as_deref().unwrap_or_default();
            let orphans = cache.controlled_by(ns, "");
            let mut candidates = if uid.is_empty() { Vec::new() } else { cache.controlled_by(ns, uid) };
            if !orphans.is_empty() {
                candidates.extend(orphans);
                candidates.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            }
            candidates
        };
        let candidate_refs: Vec<&Pod> = candidates.iter().map(Arc::as_ref).collect();
        let active: Vec<&Pod> = candidate_refs.iter().copied().filter(|p| pods::is_active(p)).collect();

        let claims = claim::plan_claims(&rs, &selector, &active);
        let adopted = self.execute_claims(&rs, &claims).await?;
        let claimed: Vec<&Pod> = claims.owned.iter().copied().chain(adopted).collect();
        let terminating = claim::claimed_terminating(&rs, &selector, &candidate_refs);

        // The sibling ReplicaSets' pods rank the ones to delete: only needed to scale down.
        let desired = usize::try_from(pods::desired_replicas(&rs).max(0)).unwrap_or(0);
        let all_pods = if claimed.len() > desired { self.pods.read().in_namespace(ns) } else { Vec::new() };
        let all_refs: Vec<&Pod> = all_pods.iter().map(Arc::as_ref).collect();
        let siblings = if all_refs.is_empty() { Vec::new() } else { self.replica_sets.read().in_namespace(ns) };
        let sibling_refs: Vec<&ReplicaSet> = siblings.iter().map(Arc::as_ref).collect();
        let related = plan::related_pods(&rs, &sibling_refs, &all_refs);
        let now = Timestamp::now();
        let manage = plan::plan_replicas(&rs, &claimed, &related, satisfied, now);
        let manage_error = self.execute_manage(key, &rs, manage).await;

        let now = Timestamp::now();
        let new_status = status::calculate_status(&rs, &claimed, &terminating, manage_error.as_ref(), now);
        let updated = if status::status_unchanged(&rs, &new_status) {
            rs.as_ref().clone()
        } else {
            self.write_status(key, &rs, status::status_for_write(&rs, new_status)).await?
        };

        // Look again when pods may have become available, as no pod event will say so.
        let min_ready = pods::min_ready_seconds(&updated);
        let st = updated.status.clone().unwrap_or_default();
        if min_ready > 0 && st.ready_replicas.unwrap_or(0) != st.available_replicas.unwrap_or(0) {
            let after = status::next_availability_check(&updated, &claimed, now)
                .unwrap_or(Duration::from_secs(u64::try_from(min_ready).unwrap_or(0)));
            self.queue.add_after(key.to_string(), after + Duration::from_millis(10));
        }
        match manage_error {
            Some(e) => Err(SyncError::Manage(e)),
            None => Ok(()),
        }
    }

    /// Adopts and releases as `claims` says (`ClaimPods`); returns the pods adopted. A failure other
    /// than NotFound (or Invalid, for a release) fails the sync.
    async fn execute_claims<'a>(
        &self,
        rs: &ReplicaSet,
        claims: &claim::ClaimPlan<'a>,
    ) -> Result<Vec<&'a Pod>, SyncError> {
        let ns = rs.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let mut errors = Vec::new();
        let mut adopted = Vec::new();
        if !claims.adopt.is_empty() {
            // RecheckDeletionTimestamp: an uncached read, once per sync, before any adoption.
            let can_adopt = self.can_adopt(rs).await;
            for &pod in &claims.adopt {
                let pod_name = pod.name_any();
                if let Err(reason) = &can_adopt {
                    let uid = pod.metadata.uid.as_deref().unwrap_or("");
                    errors.push(format!("can't adopt Pod {ns}/{pod_name} ({uid}): {reason}"));
                    continue;
                }
                let patch = Patch::Strategic(claim::adopt_patch(rs, pod));
                match api.patch(&pod_name, &patch_params(), &patch).await {
                    Ok(_) => adopted.push(pod),
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => errors.push(error_text(&e)),
                }
            }
        }
        for &pod in &claims.release {
            let patch = Patch::Strategic(claim::release_patch(rs, pod));
            match api.patch(&pod.name_any(), &patch_params(), &patch).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) || is_invalid(&e) => {}
                Err(e) => errors.push(error_text(&e)),
            }
        }
        if errors.is_empty() { Ok(adopted) } else { Err(SyncError::Claim(aggregate(&errors))) }
    }

    /// The ReplicaSet, read fresh from the API, is the one we know and is not being deleted.
    async fn can_adopt(&self, rs: &ReplicaSet) -> Result<(), String> {
        let ns = rs.namespace().unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        let fresh = api
            .get(&rs.name_any())
            .await
            .map_err(|e| format!("can't recheck DeletionTimestamp: {}", error_text(&e)))?;
        if fresh.metadata.uid != rs.metadata.uid {
            return Err(format!(
                "can't recheck DeletionTimestamp: original ReplicaSet {ns}/{} is gone: got uid {}, wanted {}",
                rs.name_any(),
                fresh.metadata.uid.unwrap_or_default(),
                rs.metadata.uid.clone().unwrap_or_default()
            ));
        }
        if let Some(ts) = fresh.metadata.deletion_timestamp {
            return Err(format!("{ns}/{} has just been deleted at {}", rs.name_any(), ts.0));
        }
        Ok(())
    }

    /// Creates or deletes pods (`manageReplicas`), keeping expectations in step; returns the first
    /// failure.
    async fn execute_manage(&self, key: &str, rs: &ReplicaSet, manage: Manage<'_>) -> Option<ManageError> {
        match manage {
            Manage::Nothing => None,
            Manage::CannotCreate(e) => {
                // Upstream expects the creations, fails the first one and lowers them all again.
                self.expectations.lock().expect_creations(key, 0, Instant::now());
                Some(e)
            }
            Manage::Create { pod, count, batches } => {
                tracing::debug!(key, count, "Too few replicas, creating");
                self.expectations.lock().expect_creations(key, count, Instant::now());
                let mut successes = 0;
                let mut first_error = None;
                for batch in batches {
                    let results = join_all((0..batch).map(|_| self.create_pod(rs, &pod))).await;
                    for r in results {
                        match r {
                            Ok(()) => successes += 1,
                            Err(e) => {
                                first_error.get_or_insert(e);
                            }
                        }
                    }
                    if first_error.is_some() {
                        break;
                    }
                }
                let skipped = count.saturating_sub(successes);
                if skipped > 0 {
                    let mut exp = self.expectations.lock();
                    for _ in 0..skipped {
                        exp.creation_observed(key);
                    }
                }
                first_error
            }
            Manage::Delete { pods } => {
                let pod_keys: Vec<String> = pods.iter().map(|p| pods::key(&p.metadata)).collect();
                tracing::debug!(key, count = pods.len(), "Too many replicas, deleting");
                self.expectations.lock().expect_deletions(key, &pod_keys, Instant::now());
                let results = join_all(pods.iter().map(|p| self.delete_pod(key, rs, p))).await;
                results.into_iter().flatten().next()
            }
        }
    }

    /// One create (`RealPodControl.CreatePods`), with its Event.
    async fn create_pod(&self, rs: &ReplicaSet, pod: &Pod) -> Result<(), ManageError> {
        let ns = rs.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let regarding = reference(rs);
        match api.create(&post_params(), pod).await {
            Ok(created) => {
                let message = format!("Created pod: {}", created.name_any());
                self.recorder.record(&regarding, EventType::Normal, "SuccessfulCreate", &message).await;
                Ok(())
            }
            // Every create would fail the same way; not worth an Event or a condition.
            Err(e) if is_namespace_terminating(&e) => Ok(()),
            Err(e) => {
                let text = error_text(&e);
                let message = format!("Error creating: {text}");
                self.recorder.record(&regarding, EventType::Warning, "FailedCreate", &message).await;
                Err(ManageError { message: text })
            }
        }
    }

    /// One delete (`RealPodControl.DeletePod`), with its Event; a failed delete is no longer
    /// expected. NotFound is not an error.
    async fn delete_pod(&self, key: &str, rs: &ReplicaSet, pod: &Pod) -> Option<ManageError> {
        let ns = rs.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let regarding = reference(rs);
        let name = pod.name_any();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                let message = format!("Deleted pod: {name}");
                self.recorder.record(&regarding, EventType::Normal, "SuccessfulDelete", &message).await;
                None
            }
            Err(e) => {
                self.expectations.lock().deletion_observed(key, &pods::key(&pod.metadata));
                if is_not_found(&e) {
                    return None;
                }
                let text = error_text(&e);
                let message = format!("Error deleting: {text}");
                self.recorder.record(&regarding, EventType::Warning, "FailedDelete", &message).await;
                Some(ManageError { message: format!("unable to delete pods: {text}") })
            }
        }
    }

    /// `updateReplicaSetStatus`: PUT `replicasets/status`; on failure, one retry on a fresh GET.
    async fn write_status(
        &self,
        key: &str,
        rs: &ReplicaSet,
        new_status: k8s_openapi::api::apps::v1::ReplicaSetStatus,
    ) -> Result<ReplicaSet, SyncError> {
        let ns = rs.namespace().unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        let mut current = rs.clone();
        current.status = Some(new_status.clone());
        let first = match api.replace_status(&rs.name_any(), &post_params(), &current).await {
            Ok(updated) => return Ok(updated),
            Err(e) => e,
        };
        tracing::debug!(key, error = %first, "status update failed, retrying on a fresh copy");
        let mut fresh =
            api.get(&rs.name_any()).await.map_err(|source| SyncError::Status { key: key.to_string(), source })?;
        fresh.status = Some(new_status);
        api.replace_status(&rs.name_any(), &post_params(), &fresh)
            .await
            .map_err(|source| SyncError::Status { key: key.to_string(), source })
    }
}

/// `utilerrors.NewAggregate(...).Error()`: one error as is, several as `[a, b]`.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_matches_utilerrors() {
        assert_eq!(aggregate(&["a".into()]), "a");
        assert_eq!(aggregate(&["a".into(), "b".into()]), "[a, b]");
    }

    #[test]
    fn api_error_classification() {
        let status = |code: u16, reason: &str| {
            kube::Error::Api(kube::core::Status::failure("pods \"x\" not found", reason).with_code(code).boxed())
        };
        assert!(is_not_found(&status(404, "NotFound")));
        assert!(!is_not_found(&status(409, "Conflict")));
        assert!(is_invalid(&status(422, "Invalid")));
        assert_eq!(error_text(&status(404, "NotFound")), "pods \"x\" not found");
        let terminating = kube::Error::Api(
            kube::core::Status::failure("namespace is being terminated", "Forbidden")
                .with_code(403)
                .with_details(kube::core::response::StatusDetails {
                    causes: vec![kube::core::response::StatusCause {
                        reason: "NamespaceTerminating".into(),
                        message: "namespace default is being terminated".into(),
                        field: "metadata.namespace".into(),
                    }],
                    name: String::new(),
                    group: String::new(),
                    kind: String::new(),
                    uid: String::new(),
                    retry_after_seconds: 0,
                })
                .boxed(),
        );
        assert!(is_namespace_terminating(&terminating));
        assert!(!is_namespace_terminating(&status(403, "Forbidden")));
    }
}
