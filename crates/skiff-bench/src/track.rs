//! A watch on a set of objects that timestamps what it sees: the instant each object first showed a
//! flag (a pod Running, Ready...), and the instant at which a waited-for condition over all objects
//! became true. Conditions are evaluated in the watch task, right after the event that made them
//! true, so the time is the event's arrival, not when the waiting task got to run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

/// The flags an object shows now (e.g. `["running", "ready"]`).
pub type Flags<K> = fn(&K) -> Vec<&'static str>;

/// What the watch has seen, by UID.
pub struct Seen<K> {
    pub objects: HashMap<String, K>,
    /// First instant each flag was seen, by UID.
    pub first: HashMap<String, HashMap<&'static str, Instant>>,
}

type Check<K> = Box<dyn Fn(&Seen<K>) -> bool + Send>;

struct Inner<K> {
    seen: Seen<K>,
    waiters: Vec<(Check<K>, oneshot::Sender<Instant>)>,
}

/// A running watch; dropping it stops the watch.
pub struct Tracker<K> {
    inner: Arc<Mutex<Inner<K>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> Drop for Tracker<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<K>(m: &Mutex<Inner<K>>) -> MutexGuard<'_, Inner<K>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn apply<K: ResourceExt>(inner: &mut Inner<K>, obj: K, flags: Flags<K>, now: Instant) {
    let uid = obj.uid().unwrap_or_default();
    let first = inner.seen.first.entry(uid.clone()).or_default();
    for f in flags(&obj) {
        first.entry(f).or_insert(now);
    }
    inner.seen.objects.insert(uid, obj);
}

fn fire<K>(inner: &mut Inner<K>, now: Instant) {
    let waiters = std::mem::take(&mut inner.waiters);
    for (check, tx) in waiters {
        if check(&inner.seen) {
            let _ = tx.send(now);
        } else {
            inner.waiters.push((check, tx));
        }
    }
}

impl<K> Tracker<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    /// Starts watching `api` (objects matching `labels`) and returns once the initial list is in.
    pub async fn start(api: Api<K>, labels: &str, flags: Flags<K>) -> anyhow::Result<Tracker<K>> {
        let inner = Arc::new(Mutex::new(Inner {
            seen: Seen { objects: HashMap::new(), first: HashMap::new() },
            waiters: Vec::new(),
        }));
        let (ready_tx, ready_rx) = oneshot::channel();
        let state = inner.clone();
        let config = watcher::Config::default().labels(labels);
        let task = tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            let mut stream = std::pin::pin!(watcher(api, config));
            let mut init: Option<HashMap<String, K>> = None;
            while let Some(event) = stream.next().await {
                let now = Instant::now();
                let mut inner = lock(&state);
                match event {
                    Ok(watcher::Event::Apply(obj)) => apply(&mut inner, obj, flags, now),
                    Ok(watcher::Event::Delete(obj)) => {
                        inner.seen.objects.remove(&obj.uid().unwrap_or_default());
                    }
                    Ok(watcher::Event::Init) => init = Some(HashMap::new()),
                    Ok(watcher::Event::InitApply(obj)) => {
                        if let Some(objs) = init.as_mut() {
                            objs.insert(obj.uid().unwrap_or_default(), obj);
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        let objs = init.take().unwrap_or_default();
                        inner.seen.objects.retain(|uid, _| objs.contains_key(uid));
                        for (_, obj) in objs {
                            apply(&mut inner, obj, flags, now);
                        }
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Err(e) => {
                        drop(inner);
                        eprintln!("skiff-bench: watch error (retrying): {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
                fire(&mut inner, now);
            }
        });
        tokio::time::timeout(Duration::from_secs(30), ready_rx)
            .await
            .map_err(|_| anyhow::anyhow!("the watch did not list within 30 s"))?
            .map_err(|_| anyhow::anyhow!("the watch ended before listing"))?;
        Ok(Tracker { inner, task })
    }

    /// Waits until `check` holds; returns the arrival instant of the event that made it hold (or
    /// now, if it already holds).
    pub async fn until(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Seen<K>) -> bool + Send + 'static,
    ) -> anyhow::Result<Instant> {
        let rx = {
            let mut inner = lock(&self.inner);
            if check(&inner.seen) {
                return Ok(Instant::now());
            }
            let (tx, rx) = oneshot::channel();
            inner.waiters.push((Box::new(check), tx));
            rx
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(at)) => Ok(at),
            _ => anyhow::bail!("timed out after {timeout:?} waiting for {what}"),
        }
    }

    /// Runs `f` on what has been seen so far.
    pub fn with<T>(&self, f: impl FnOnce(&Seen<K>) -> T) -> T {
        f(&lock(&self.inner).seen)
    }
}

/// A pod's flags: `running` (phase Running), `ready` (condition Ready=True).
pub fn pod_flags(pod: &Pod) -> Vec<&'static str> {
    let mut flags = Vec::new();
    if pod_running(pod) {
        flags.push("running");
    }
    if pod_ready(pod) {
        flags.push("ready");
    }
    flags
}

pub fn pod_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the pod is not being deleted.
pub fn pod_live(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
}

/// The first container's restart count and ID (`skiff://<runc id>`).
pub fn first_container(pod: &Pod) -> (i32, Option<String>) {
    let cs = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first());
    (cs.map_or(0, |c| c.restart_count), cs.and_then(|c| c.container_id.clone()))
}

/// A deployment's flags: `available` when it has converged (see [`deployment_done`]).
pub fn deployment_flags(d: &Deployment) -> Vec<&'static str> {
    if deployment_done(d) { vec!["available"] } else { Vec::new() }
}

/// Whether a Deployment has converged on its current spec: the controller observed its generation,
/// every replica is updated and available, no old replica is left, and its Available condition is
/// True.
pub fn deployment_done(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(s) = d.status.as_ref() else { return false };
    let available =
        s.conditions.as_ref().is_some_and(|cs| cs.iter().any(|c| c.type_ == "Available" && c.status == "True"));
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas == Some(want)
        && s.available_replicas == Some(want)
        && s.replicas == Some(want)
        && available
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).expect("pod")
    }

    #[test]
    fn pod_flag_cases() {
        let cases = [
            (json!({}), vec![]),
            (json!({"phase": "Pending"}), vec![]),
            (json!({"phase": "Running"}), vec!["running"]),
            (json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}), vec!["running"]),
            (
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
                vec!["running", "ready"],
            ),
        ];
        for (status, want) in cases {
            assert_eq!(pod_flags(&pod(status.clone())), want, "{status}");
        }
    }

    #[test]
    fn first_container_of_a_pod() {
        let p = pod(json!({"containerStatuses": [{"name": "web", "image": "i", "imageID": "", "ready": true,
            "restartCount": 2, "containerID": "skiff://abc"}]}));
        assert_eq!(first_container(&p), (2, Some("skiff://abc".to_string())));
        assert_eq!(first_container(&pod(json!({}))), (0, None));
    }

    fn deployment(generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "generation": generation},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": status,
        }))
        .expect("deployment")
    }

    #[test]
    fn deployment_convergence() {
        let done = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
            "conditions": [{"type": "Available", "status": "True"}]});
        let mut old_left = done.clone();
        old_left["replicas"] = json!(4);
        let mut unavailable = done.clone();
        unavailable["conditions"][0]["status"] = json!("False");
        let cases = [
            (2, done.clone(), true),
            (3, done, false),
            (2, old_left, false),
            (2, unavailable, false),
            (1, json!({}), false),
        ];
        for (generation, status, want) in cases {
            assert_eq!(deployment_done(&deployment(generation, status.clone())), want, "{generation} {status}");
        }
    }
}
