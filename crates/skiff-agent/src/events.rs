//! core/v1 Events from the agent, as the kubelet records them: source `kubelet` on this host, the
//! pod as `involvedObject` with `fieldPath` `spec.containers{name}` for container events; a repeat
//! bumps `count` and `lastTimestamp` (the pattern of `skiff-controllers`' recorder, with a host).

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use skiff_api::event_counts::EventCounts;
use tokio::sync::mpsc;

/// The component name in `source` and `reportingComponent`.
pub const COMPONENT: &str = "kubelet";

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// A reference to `pod`, or to one of its containers (`spec.containers{c}` /
/// `spec.initContainers{c}`).
pub fn pod_reference(pod: &Pod, field_path: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path,
    }
}

/// FNV-1a over the parts, separated.
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

/// How many Events may wait to be written before new ones are dropped (client-go's broadcaster
/// queue, 1000).
const QUEUE: usize = 1000;

/// One Event to write.
struct Job {
    regarding: ObjectReference,
    kind: EventType,
    reason: String,
    message: String,
}

/// Records Events for one node. As client-go's recorder, it does not make its caller wait for
/// the API: Events are queued and written in order by one background task, so a pod's start is
/// not delayed by the writes of its `Pulled`, `Created` and `Started` Events.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Job>,
}

/// The writer behind a [`Recorder`].
struct Writer {
    client: Client,
    host: String,
    /// How many times each recent Event was written, to aggregate repeats.
    seen: EventCounts,
}

impl Recorder {
    /// Starts the writer task (call within a Tokio runtime); it ends when every clone of the
    /// recorder is dropped, after writing what was queued.
    pub fn new(client: Client, host: &str) -> Recorder {
        let (queue, mut jobs) = mpsc::channel::<Job>(QUEUE);
        let mut writer = Writer { client, host: host.to_string(), seen: EventCounts::default() };
        tokio::spawn(async move {
            while let Some(job) = jobs.recv().await {
                if let Err(e) = writer.write(&job.regarding, job.kind, &job.reason, &job.message).await {
                    tracing::debug!(error = %e, reason = job.reason, "cannot record event");
                }
            }
        });
        Recorder { queue }
    }

    /// Queues an Event; a full queue drops it (Events are best-effort), as client-go does.
    pub async fn record(&self, regarding: &ObjectReference, kind: EventType, reason: &str, message: &str) {
        let job = Job { regarding: regarding.clone(), kind, reason: reason.into(), message: message.into() };
        if self.queue.try_send(job).is_err() {
            tracing::debug!(reason, "dropping an event: the event queue is full");
        }
    }
}

impl Writer {
    async fn write(
        &mut self,
        regarding: &ObjectReference,
        kind: EventType,
        reason: &str,
        message: &str,
    ) -> kube::Result<()> {
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".to_string());
        let object = regarding.name.clone().unwrap_or_default();
        let field = regarding.field_path.as_deref().unwrap_or("");
        let name = format!("{object}.{:016x}", fnv(&[regarding.uid.as_deref().unwrap_or(""), field, reason, message]));
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = Time(Timestamp::now());
        let count = self.seen.bump(&namespace, &name);
        let pp = PatchParams { field_manager: Some(COMPONENT.into()), ..PatchParams::default() };
        if count > 1 {
            let patch = serde_json::json!({"count": count, "lastTimestamp": now});
            match api.patch(&name, &pp, &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace), ..ObjectMeta::default() },
            involved_object: regarding.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(kind.as_str().to_string()),
            source: Some(EventSource { component: Some(COMPONENT.into()), host: Some(self.host.clone()) }),
            reporting_component: Some(COMPONENT.into()),
            reporting_instance: Some(self.host.clone()),
            count: Some(count),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now.clone()),
            ..Event::default()
        };
        match api.create(&PostParams { field_manager: Some(COMPONENT.into()), ..PostParams::default() }, &event).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let patch = serde_json::json!({"count": count, "lastTimestamp": now});
                api.patch(&name, &pp, &Patch::Merge(&patch)).await.map(|_| ())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let pod: Pod =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"}}))
                .expect("pod");
        let r = pod_reference(&pod, Some("spec.containers{app}".into()));
        assert_eq!(r.kind.as_deref(), Some("Pod"));
        assert_eq!(r.field_path.as_deref(), Some("spec.containers{app}"));
        assert_ne!(fnv(&["a", "b"]), fnv(&["ab", ""]));
    }
}
