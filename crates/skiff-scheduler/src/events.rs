//! The scheduler's core/v1 Events (`Scheduled`, `FailedScheduling`), written by its own small
//! [`Recorder`] rather than `skiff_controllers::events::Recorder`: the scheduler does not depend on
//! the controllers crate, and its events never aggregate (each attempt is news, named by its
//! time), so they need no ordering and are written several at a time.
//!
//! As client-go's recorder, recording never makes the scheduler wait for the API: Events are
//! queued, a background task writes them, and a full queue ([`QUEUE`] Events) drops new ones with
//! a log line. Their writes do not compete with the scheduler's status patches either.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How many Events may wait to be written before new ones are dropped (client-go's
/// `maxQueuedEvents`, 1000).
pub const QUEUE: usize = 1000;

/// Queues the scheduler's Events for a background writer. Clones share the queue; the writer
/// ends once every clone is dropped, after writing what was queued.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Event>,
}

impl Recorder {
    /// Starts the writer, which creates up to `concurrency` Events at once. Call inside a Tokio
    /// runtime (the scheduler's `run` is one).
    pub fn start(client: Client, concurrency: usize) -> Recorder {
        Recorder::spawn(client, concurrency).0
    }

    /// [`Recorder::start`], also returning the writer task.
    fn spawn(client: Client, concurrency: usize) -> (Recorder, JoinHandle<()>) {
        let (queue, mut events) = mpsc::channel::<Event>(QUEUE);
        let queued = futures::stream::poll_fn(move |cx| events.poll_recv(cx));
        let writer = tokio::spawn(queued.for_each_concurrent(concurrency.max(1), move |e| record(client.clone(), e)));
        (Recorder { queue }, writer)
    }

    /// Queues `event` and returns at once; a full queue drops it, as client-go does.
    pub fn record(&self, event: Event) {
        match self.queue.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(e)) => {
                tracing::warn!(reason = ?e.reason, event = ?e.metadata.name, "dropping an event: too many queued events");
            }
            Err(mpsc::error::TrySendError::Closed(e)) => {
                tracing::debug!(reason = ?e.reason, "dropping an event: its writer has stopped");
            }
        }
    }
}

/// The Event upstream's scheduler records about `pod`: named `<pod>.<nanoseconds in hex>` like
/// client-go's recorder, from `component` (`default-scheduler`), with an `action`
/// (`Binding`, `Scheduling`).
pub fn pod_event(
    pod: &Pod,
    component: &str,
    kind: &str,
    reason: &str,
    action: &str,
    message: &str,
    now: Timestamp,
) -> Event {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Pod".to_string()),
            name: Some(name),
            namespace: Some(namespace),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            field_path: None,
        },
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some(kind.to_string()),
        action: Some(action.to_string()),
        source: Some(EventSource { component: Some(component.to_string()), host: None }),
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(component.to_string()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        ..Event::default()
    }
}

/// Creates the Event now (the [`Recorder`]'s writer does); failures are logged, never returned (Events are best-effort upstream too).
pub async fn record(client: Client, event: Event) {
    let namespace = event.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    let api: Api<Event> = Api::namespaced(client, &namespace);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(error = %e, reason = ?event.reason, "cannot record an event");
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use kube::api::ListParams;
    use serde_json::json;
    use skiff_testkit::TestServer;

    use super::*;

    fn pod(name: &str) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")}}),
        )
        .expect("a Pod")
    }

    /// The `i`th test Event, each at its own instant (so with its own name).
    fn nth_event(i: i64) -> Event {
        let now = Timestamp::from_second(1_700_000_000 + i).expect("a time");
        let message = format!("Successfully assigned default/web-{i} to n1");
        pod_event(&pod(&format!("web-{i}")), "default-scheduler", "Normal", "Scheduled", "Binding", &message, now)
    }

    /// A client of a plain-HTTP server at `addr` (nothing there answers like an API server).
    fn client_at(addr: SocketAddr) -> Client {
        let url = format!("http://{addr}").parse().expect("a URL");
        Client::try_from(kube::Config::new(url)).expect("a client")
    }

    /// With an API server that accepts connections and never answers, `record` still returns at
    /// once: the writer's slots wait on the API, the queue fills, and the rest is dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn record_returns_at_once_when_the_api_stalls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        let (recorder, writer) = Recorder::spawn(client_at(addr), 4);
        let started = std::time::Instant::now();
        for i in 0..(QUEUE as i64) + 500 {
            recorder.record(nth_event(i));
        }
        assert!(started.elapsed() < Duration::from_secs(5), "record waited for the API: {:?}", started.elapsed());
        assert_eq!(recorder.queue.capacity(), 0, "the queue is full: the last events were dropped");
        assert!(!writer.is_finished(), "the writer is still waiting for the API");
        writer.abort();
        server.abort();
    }

    /// With nothing listening, every write fails: the writer logs, goes on, and ends (without
    /// panicking) once the recorder is gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_facing_a_closed_port_drops_its_events() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
        let (recorder, writer) = Recorder::spawn(client_at(addr), 2);
        for i in 0..5 {
            recorder.record(nth_event(i));
        }
        drop(recorder);
        let ended = tokio::time::timeout(Duration::from_secs(30), writer).await.expect("the writer ends");
        assert!(ended.is_ok(), "the writer panicked: {ended:?}");
    }

    /// Every queued Event is written, as built: same name, fields and timestamps.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_events_are_written_as_built() {
        let server = TestServer::start().await;
        let client = server.client("kube-scheduler/v1.35.0 (linux/amd64) kubernetes");
        let recorder = Recorder::start(client.clone(), 4);
        let sent: Vec<Event> = (0..30).map(nth_event).collect();
        for e in &sent {
            recorder.record(e.clone());
        }
        let api: Api<Event> = Api::namespaced(client.clone(), "default");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let written = loop {
            let list = api.list(&ListParams::default()).await.expect("list events").items;
            if list.len() >= sent.len() {
                break list;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out: {} of {} events written",
                list.len(),
                sent.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(written.len(), sent.len());
        for want in &sent {
            let got = written.iter().find(|e| e.metadata.name == want.metadata.name).expect("the event was written");
            let fields = |e: &Event| {
                (
                    e.involved_object.clone(),
                    e.reason.clone(),
                    e.message.clone(),
                    e.type_.clone(),
                    e.action.clone(),
                    e.source.clone(),
                    e.reporting_component.clone(),
                    e.reporting_instance.clone(),
                    e.count,
                    e.first_timestamp.clone(),
                    e.last_timestamp.clone(),
                    e.event_time.clone(),
                )
            };
            assert_eq!(fields(got), fields(want));
        }
        drop(recorder);
        server.stop().await;
    }

    #[test]
    fn scheduled_event_shape() {
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "web-1", "namespace": "prod", "uid": "u1", "resourceVersion": "7"}}),
        )
        .expect("a Pod");
        let now = Timestamp::from_second(1_700_000_000).expect("a time");
        let e = pod_event(
            &pod,
            "default-scheduler",
            "Normal",
            "Scheduled",
            "Binding",
            "Successfully assigned prod/web-1 to n1",
            now,
        );
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(v["metadata"]["name"], json!("web-1.17979cfe362a0000"));
        assert_eq!(v["metadata"]["namespace"], json!("prod"));
        assert_eq!(
            v["involvedObject"],
            json!({"apiVersion": "v1", "kind": "Pod", "name": "web-1", "namespace": "prod", "uid": "u1", "resourceVersion": "7"})
        );
        assert_eq!(v["source"], json!({"component": "default-scheduler"}));
        assert_eq!(
            (v["type"].clone(), v["reason"].clone(), v["action"].clone()),
            (json!("Normal"), json!("Scheduled"), json!("Binding"))
        );
        assert_eq!(v["firstTimestamp"], json!("2023-11-14T22:13:20Z"));
    }
}
