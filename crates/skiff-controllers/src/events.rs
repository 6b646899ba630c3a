//! Recording core/v1 Events, the kind `kubectl describe` lists, as the controllers upstream emit them
//! (`client-go/tools/record`): one Event per object, reason and message; a repeat bumps `count` and
//! `lastTimestamp` instead of creating another.
//!
//! As client-go's recorder, recording never makes the caller wait for the API: [`Recorder::record`]
//! queues the Event and one background `Writer` per recorder writes the queue in order (so a
//! repeat's patch always follows its create). A full queue (`QUEUE` Events) drops new ones with
//! a log line, as client-go's broadcaster does: Events are best-effort, a controller's work is not.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use parking_lot::Mutex;
use skiff_api::event_counts::EventCounts;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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

/// How many Events may wait to be written before new ones are dropped (client-go's
/// `maxQueuedEvents`, 1000).
const QUEUE: usize = 1000;

/// One Event to write, with the time it was recorded (not the time it is written).
struct Job {
    regarding: ObjectReference,
    kind: EventType,
    reason: String,
    message: String,
    at: Timestamp,
}

/// A writer not yet running, with the queue it will drain.
type Idle = (Writer, mpsc::Receiver<Job>);

/// Records Events for one component (`deployment-controller`, `replicaset-controller`, ...).
///
/// Clones share one queue and one writer; the writer ends once every clone is dropped, after
/// writing what was queued.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Job>,
    /// The writer until it is spawned: [`Recorder::new`] outside a Tokio runtime leaves it here,
    /// and the first [`Recorder::record`] polled inside one starts it.
    idle: Arc<Mutex<Option<Idle>>>,
}

/// Writes a [`Recorder`]'s queue, one Event at a time, and keeps the aggregation state.
struct Writer {
    client: Client,
    component: String,
    /// How many times each recent Event was written, to aggregate repeats.
    seen: EventCounts,
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
    /// A recorder for `component`. Its writer starts now when called inside a Tokio runtime,
    /// otherwise at the first [`Recorder::record`] polled inside one.
    pub fn new(client: Client, component: &str) -> Recorder {
        Recorder::start(client, component).0
    }

    /// [`Recorder::new`], also returning the writer task when it could be spawned.
    fn start(client: Client, component: &str) -> (Recorder, Option<JoinHandle<()>>) {
        let (queue, jobs) = mpsc::channel::<Job>(QUEUE);
        let writer = Writer { client, component: component.to_string(), seen: EventCounts::default() };
        let recorder = Recorder { queue, idle: Arc::new(Mutex::new(Some((writer, jobs)))) };
        let task = recorder.spawn_writer();
        (recorder, task)
    }

    /// Spawns the writer if it is not running yet and a Tokio runtime is current.
    fn spawn_writer(&self) -> Option<JoinHandle<()>> {
        let mut idle = self.idle.lock();
        idle.as_ref()?;
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (writer, jobs) = idle.take()?;
        Some(runtime.spawn(writer.run(jobs)))
    }

    /// Records an Event about `regarding`: queues it and returns at once. Failures to write are
    /// logged by the writer, never returned: an Event is best-effort, as upstream treats it.
    pub async fn record(&self, regarding: &ObjectReference, kind: EventType, reason: &str, message: &str) {
        let job = Job {
            regarding: regarding.clone(),
            kind,
            reason: reason.to_string(),
            message: message.to_string(),
            at: Timestamp::now(),
        };
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(reason, object = ?regarding.name, "dropping an event: too many queued events");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!(reason, "dropping an event: its writer has stopped");
            }
        }
        if self.spawn_writer().is_none() && self.idle.lock().is_some() {
            tracing::debug!(reason, "event queued: no Tokio runtime to write it from yet");
        }
    }
}

impl Writer {
    fn patch_params() -> PatchParams {
        PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() }
    }

    /// Writes the queue in order until every sender is gone.
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(job) = jobs.recv().await {
            if let Err(e) = self.write(&job).await {
                tracing::debug!(error = %e, reason = job.reason, "cannot record event");
            }
        }
    }

    async fn write(&mut self, job: &Job) -> kube::Result<()> {
        let Job { regarding, kind, reason, message, at } = job;
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".to_string());
        let name = event_name(regarding, reason, message);
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = Time(*at);
        let count = self.seen.bump(&namespace, &name);
        if count > 1 {
            let patch = serde_json::json!({"count": count, "lastTimestamp": now});
            match api.patch(&name, &Self::patch_params(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace), ..ObjectMeta::default() },
            involved_object: regarding.clone(),
            reason: Some(reason.clone()),
            message: Some(message.clone()),
            type_: Some(kind.as_str().to_string()),
            source: Some(EventSource { component: Some(self.component.clone()), host: None }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.component.clone()),
            count: Some(count),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now.clone()),
            ..Event::default()
        };
        match api
            .create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() }, &event)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let patch = serde_json::json!({"count": count, "lastTimestamp": now});
                api.patch(&name, &Self::patch_params(), &Patch::Merge(&patch)).await.map(|_| ())
            }
            Err(e) => Err(e),
        }
    }
}

/// The Event's name: stable per (object, reason, message), so that repeats aggregate, like the
/// upstream correlator's key.
fn event_name(regarding: &ObjectReference, reason: &str, message: &str) -> String {
    let object = regarding.name.as_deref().unwrap_or_default();
    format!("{object}.{:016x}", fnv(&[regarding.uid.as_deref().unwrap_or(""), reason, message]))
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
    use std::collections::HashMap;
    use std::future::Future;
    use std::net::SocketAddr;
    use std::time::Duration;

    use kube::api::ListParams;
    use skiff_testkit::TestServer;

    use super::*;

    const COMPONENT: &str = "test-controller";
    const USER_AGENT: &str = "kube-controller-manager/v1.35.0 (linux/amd64) kubernetes";

    fn pod(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("7".into()),
            field_path: None,
        }
    }

    /// A client of a plain-HTTP server at `addr` (nothing there answers like an API server).
    fn client_at(addr: SocketAddr) -> Client {
        let url = format!("http://{addr}").parse().expect("a URL");
        Client::try_from(kube::Config::new(url)).expect("a client")
    }

    /// Polls `check` every 50 ms until it returns `Some`, or panics after 30 s.
    async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The Events of `default`, by name.
    async fn events(client: &Client) -> HashMap<String, Event> {
        let api: Api<Event> = Api::namespaced(client.clone(), "default");
        let list = api.list(&ListParams::default()).await.expect("list events");
        list.items.into_iter().map(|e| (e.metadata.name.clone().unwrap_or_default(), e)).collect()
    }

    fn resource_version(e: &Event) -> u64 {
        e.metadata.resource_version.as_deref().and_then(|rv| rv.parse().ok()).expect("a numeric resourceVersion")
    }

    #[test]
    fn event_names_are_stable_and_distinct() {
        assert_eq!(fnv(&["a", "b"]), fnv(&["a", "b"]));
        assert_ne!(fnv(&["ab", ""]), fnv(&["a", "b"]));
        let cases = [
            ((pod("web"), "SuccessfulCreate", "m"), (pod("web"), "SuccessfulCreate", "m"), true),
            ((pod("web"), "SuccessfulCreate", "m"), (pod("web"), "SuccessfulCreate", "n"), false),
            ((pod("web"), "SuccessfulCreate", "m"), (pod("web"), "FailedCreate", "m"), false),
            ((pod("web"), "SuccessfulCreate", "m"), (pod("api"), "SuccessfulCreate", "m"), false),
        ];
        for ((r1, reason1, m1), (r2, reason2, m2), same) in cases {
            let (a, b) = (event_name(&r1, reason1, m1), event_name(&r2, reason2, m2));
            assert_eq!(a == b, same, "{a} vs {b}");
            assert!(a.starts_with(&format!("{}.", r1.name.as_deref().unwrap_or_default())), "{a}");
            assert_eq!(a.len(), r1.name.as_deref().unwrap_or_default().len() + 17, "{a}");
        }
    }

    /// The regression this recorder fixes: with an API server that accepts connections and never
    /// answers, the old recorder's first `record` hung forever. Now every `record` returns at once;
    /// the writer is stuck on its first write, the queue fills, and the rest are dropped.
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
        let (recorder, writer) = Recorder::start(client_at(addr), COMPONENT);
        let writer = writer.expect("the writer starts inside a runtime");
        let recording = async {
            for i in 0..QUEUE + 500 {
                recorder.record(&pod("web"), EventType::Normal, "Test", &format!("event {i}")).await;
            }
        };
        assert!(tokio::time::timeout(Duration::from_secs(5), recording).await.is_ok(), "record waited for the API");
        assert_eq!(recorder.queue.capacity(), 0, "the queue is full: the last events were dropped");
        assert!(!writer.is_finished(), "the writer is still waiting for the API");
        writer.abort();
        server.abort();
    }

    /// With nothing listening, every write fails: the writer logs, goes on to the next Event, and
    /// ends (without panicking) once the recorder is gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_facing_a_closed_port_drops_its_events() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
        let (recorder, writer) = Recorder::start(client_at(addr), COMPONENT);
        let writer = writer.expect("the writer starts inside a runtime");
        for reason in ["A", "A", "B"] {
            recorder.record(&pod("web"), EventType::Warning, reason, "message").await;
        }
        drop(recorder);
        let ended = tokio::time::timeout(Duration::from_secs(30), writer).await.expect("the writer ends");
        assert!(ended.is_ok(), "the writer panicked: {ended:?}");
    }

    /// Events queued in order are written in order (each write is visible, with a higher
    /// resourceVersion, before the next starts), and repeats aggregate into `count`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_events_are_written_in_order_with_counts() {
        let server = TestServer::start().await;
        let client = server.client(USER_AGENT);
        let recorder = Recorder::new(client.clone(), COMPONENT);
        let web = pod("web");
        let mut sequence: Vec<(&str, String)> =
            vec![("A", "a".into()), ("B", "b".into()), ("A", "a".into()), ("C", "c".into()), ("A", "a".into())];
        sequence.extend((0..20).map(|i| ("D", format!("d{i}"))));
        for (reason, message) in &sequence {
            recorder.record(&web, EventType::Normal, reason, message).await;
        }
        let name = |reason: &str, message: &str| event_name(&web, reason, message);
        let last = name("D", "d19");
        // The writer writes in order: once the last Event exists, every earlier write is done.
        let written = wait_for("the last event", || async {
            let all = events(&client).await;
            all.contains_key(&last).then_some(all)
        })
        .await;
        assert_eq!(written.len(), 23, "{:?}", written.keys());
        let a = &written[&name("A", "a")];
        let counts: Vec<Option<i32>> =
            [name("A", "a"), name("B", "b"), name("C", "c"), last.clone()].iter().map(|n| written[n].count).collect();
        assert_eq!(counts, [Some(3), Some(1), Some(1), Some(1)]);
        // A's last write (its second patch) came after C's create and before D0's.
        let mut order = vec![name("B", "b"), name("C", "c"), name("A", "a")];
        order.extend((0..20).map(|i| name("D", &format!("d{i}"))));
        let versions: Vec<u64> = order.iter().map(|n| resource_version(&written[n])).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "written out of order: {order:?} {versions:?}");
        // The Event itself, field by field, as upstream's recorder writes it.
        assert_eq!(a.involved_object, web);
        assert_eq!(
            (a.reason.as_deref(), a.message.as_deref(), a.type_.as_deref()),
            (Some("A"), Some("a"), Some("Normal"))
        );
        assert_eq!(a.source, Some(EventSource { component: Some(COMPONENT.into()), host: None }));
        assert_eq!(a.reporting_component.as_deref(), Some(COMPONENT));
        assert_eq!(a.reporting_instance.as_deref(), Some(COMPONENT));
        let (first, last_seen) = (a.first_timestamp.clone().expect("first"), a.last_timestamp.clone().expect("last"));
        assert!(first.0 <= last_seen.0, "{first:?} > {last_seen:?}");
        drop(recorder);
        server.stop().await;
    }

    /// A recorder made and used outside any Tokio runtime queues its Events; the first `record`
    /// polled inside a runtime starts the writer, which writes them all, in order.
    #[test]
    fn record_outside_a_runtime_queues_until_one_is_current() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let server = runtime.block_on(TestServer::start());
        let client = {
            let _inside = runtime.enter();
            server.client(USER_AGENT)
        };
        let recorder = Recorder::new(client.clone(), COMPONENT);
        assert!(recorder.idle.lock().is_some(), "no writer without a runtime");
        futures::executor::block_on(recorder.record(&pod("web"), EventType::Normal, "Early", "queued"));
        assert!(recorder.idle.lock().is_some(), "still no writer");
        runtime.block_on(async {
            recorder.record(&pod("web"), EventType::Normal, "Early", "queued").await;
            assert!(recorder.idle.lock().is_none(), "the writer started");
            let name = event_name(&pod("web"), "Early", "queued");
            let event = wait_for("the queued event, twice", || async {
                events(&client).await.remove(&name).filter(|e| e.count == Some(2))
            })
            .await;
            assert_eq!(event.reason.as_deref(), Some("Early"));
            drop(recorder);
            server.stop().await;
        });
    }
}
