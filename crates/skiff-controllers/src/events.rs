//! Recording core/v1 Events, the kind `kubectl describe` lists, as the controllers upstream emit them
//! (`client-go/tools/record`): one Event per object, reason and message; a repeat bumps `count` and
//! `lastTimestamp` instead of creating another.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Records Events for one component (`deployment-controller`, `replicaset-controller`, ...).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    /// (namespace, name of the Event) → count so far, to aggregate repeats.
    seen: Arc<Mutex<HashMap<(String, String), i32>>>,
}

/// A reference to the object an Event is about.
pub fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        field_path: None,
    }
}

/// The field manager of Event writes, as upstream's controllers appear in managedFields.
const FIELD_MANAGER: &str = "kube-controller-manager";

impl Recorder {
    fn patch_params() -> PatchParams {
        PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() }
    }

    pub fn new(client: Client, component: &str) -> Recorder {
        Recorder { client, component: component.to_string(), seen: Arc::default() }
    }

    /// Records an Event about `regarding`. Failures are logged, never returned: an Event is
    /// best-effort, as upstream treats it.
    pub async fn record(&self, regarding: &ObjectReference, kind: EventType, reason: &str, message: &str) {
        if let Err(e) = self.try_record(regarding, kind, reason, message).await {
            tracing::debug!(error = %e, reason, "cannot record event");
        }
    }

    async fn try_record(
        &self,
        regarding: &ObjectReference,
        kind: EventType,
        reason: &str,
        message: &str,
    ) -> kube::Result<()> {
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".to_string());
        let object = regarding.name.clone().unwrap_or_default();
        // A stable name per (object, reason, message) lets repeats aggregate, like the upstream
        // correlator's key.
        let name = format!("{object}.{:016x}", fnv(&[regarding.uid.as_deref().unwrap_or(""), reason, message]));
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = Time(Timestamp::now());
        let key = (namespace.clone(), name.clone());
        let count = {
            let mut seen = self.seen.lock();
            let c = seen.entry(key).or_insert(0);
            *c += 1;
            *c
        };
        if count > 1 {
            let patch = serde_json::json!({"count": count, "lastTimestamp": now});
            match api.patch(&name, &Self::patch_params(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = Event {
            metadata: ObjectMeta { name: Some(name), namespace: Some(namespace), ..ObjectMeta::default() },
            involved_object: regarding.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(kind.as_str().to_string()),
            source: Some(EventSource { component: Some(self.component.clone()), host: None }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.component.clone()),
            count: Some(count),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            ..Event::default()
        };
        match api
            .create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() }, &event)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let patch = serde_json::json!({"count": count, "lastTimestamp": event.last_timestamp});
                api.patch(event.name_any().as_str(), &Self::patch_params(), &Patch::Merge(&patch)).await.map(|_| ())
            }
            Err(e) => Err(e),
        }
    }
}

/// FNV-1a over the parts, separated: a small stable hash for Event names.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_stable_and_distinct() {
        assert_eq!(fnv(&["a", "b"]), fnv(&["a", "b"]));
        assert_ne!(fnv(&["ab", ""]), fnv(&["a", "b"]));
    }
}
