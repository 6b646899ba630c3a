//! WATCH: a stream of `{"type":..,"object":..}` lines, one event per line, flushed as they happen
//! (F.6 of the semantics reference). Served from the store's change stream, never by polling.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use serde_json::{Value, json};
use skiff_api::table::{self, IncludeObject};
use skiff_api::{ApiError, ResourceInfo, meta};
use skiff_store::{Event, EventKind, Json, Revision, Store, StoreError};
use tokio::sync::{broadcast, mpsc};

use crate::request::{Query, Target};
use crate::response::{self, Accept};
use crate::selection::Selection;

/// Which events a watcher wants.
struct Filter {
    prefix: String,
    selection: Selection,
}

impl Filter {
    fn matches(&self, obj: &Json) -> bool {
        self.selection.matches(obj)
    }

    /// The event type a watcher sees for a change, or `None` when it does not see it: objects
    /// entering the selection are ADDED, leaving it DELETED (`cacher.go: processEvent`).
    fn translate(&self, e: &Event) -> Option<&'static str> {
        if !e.key.starts_with(&self.prefix) {
            return None;
        }
        let now = self.matches(&e.object);
        let before = e.prev.as_ref().is_some_and(|p| self.matches(p));
        match e.kind {
            EventKind::Added if now => Some("ADDED"),
            EventKind::Modified if now && before => Some("MODIFIED"),
            EventKind::Modified if now => Some("ADDED"),
            EventKind::Modified if before => Some("DELETED"),
            EventKind::Deleted if before || now => Some("DELETED"),
            _ => None,
        }
    }
}

/// Encodes events as lines, as JSON objects or as one-row Tables.
struct Encoder {
    resource: &'static ResourceInfo,
    accept: Accept,
    include: IncludeObject,
    columns_sent: bool,
}

impl Encoder {
    /// The line for a stored object: in JSON its text is copied as it is; Tables and metadata
    /// decode it.
    fn line(&mut self, kind: &'static str, obj: &Json) -> Bytes {
        let object = match self.accept {
            Accept::Json | Accept::MetadataList { .. } => return stored_event(kind, obj),
            Accept::Metadata { version } => response::partial_metadata(version, &obj.parse()),
            Accept::Table => {
                let obj = obj.parse();
                let t = table::table(
                    self.resource,
                    &[&obj],
                    json!({"resourceVersion": meta::resource_version(&obj)}),
                    self.include,
                    !self.columns_sent,
                    jiff::Timestamp::now(),
                );
                self.columns_sent = true;
                t
            }
        };
        encode_event(kind, &object)
    }

    fn bookmark(&self, rev: Revision, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rev.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = match self.accept {
            Accept::Metadata { version } => response::partial_metadata(version, &json!({"metadata": metadata})),
            _ => json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": metadata}),
        };
        encode_event("BOOKMARK", &obj)
    }
}

/// `{"type":KIND,"object":OBJECT}` and a newline. `type` comes first, as the Go API server writes
/// it: a client decoding the event as a tagged enum (client-go, kube-rs' `WatchEvent`) then reads
/// the object straight into its type instead of buffering it until the tag shows up.
fn event_line(kind: &'static str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + kind.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    // Event types are fixed upper-case words (`&'static str`): nothing to escape.
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// The line for a stored object: its text, as the store holds it (compact JSON: one line).
fn stored_event(kind: &'static str, object: &Json) -> Bytes {
    event_line(kind, object.as_str().as_bytes())
}

/// The line for an object built here (a bookmark, a Table, metadata, a `Status`).
fn encode_event(kind: &'static str, object: &Value) -> Bytes {
    match serde_json::to_vec(object) {
        Ok(text) => event_line(kind, &text),
        // Serializing a `Value` into memory cannot fail; keep the stream well-formed regardless.
        Err(_) => Bytes::from_static(b""),
    }
}

/// Starts a watch and returns its streaming body. A start revision too old to serve is not an
/// HTTP error: the stream carries one `ERROR` event with a 410 `Status` (what client-go expects).
pub fn start(store: Arc<dyn Store>, t: &Target, q: &Query, accept: Accept) -> Result<Body, ApiError> {
    let r = t.resource;
    q.validate_list()?;
    let filter = Filter {
        prefix: match &t.namespace {
            Some(ns) => r.namespace_prefix(ns),
            None => r.key_prefix(),
        },
        selection: Selection::parse(q, r)?,
    };
    let include = IncludeObject::parse(q.include_object.as_deref())?;
    let mut enc = Encoder { resource: r, accept, include, columns_sent: false };
    let start_rev = q.resource_version_number()?;
    let watch_list = q.send_initial_events == Some(true);
    // Synthetic ADDED events for what exists: watch-list, or a watch from "no"/"0" revision.
    let initial = watch_list || (start_rev.is_none() && q.send_initial_events.is_none());

    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let mut first: Vec<Bytes> = Vec::new();
    let (watch, mut last_rev) = if initial {
        let snapshot = store.snapshot();
        for o in snapshot.range(&filter.prefix, None) {
            if filter.matches(&o.value) {
                first.push(enc.line("ADDED", &o.value));
            }
        }
        if watch_list {
            first.push(enc.bookmark(snapshot.rev, true));
        }
        (store.watch_prefix(&filter.prefix, snapshot.rev), snapshot.rev)
    } else {
        let rev = start_rev.unwrap_or_else(|| store.revision());
        (store.watch_prefix(&filter.prefix, rev), rev)
    };
    let watch = match watch {
        Ok(w) => w,
        Err(StoreError::Compacted { requested, oldest }) => {
            let status = ApiError::gone(format!("too old resource version: {requested} ({oldest})")).to_status();
            return Ok(Body::from(encode_event("ERROR", &status)));
        }
        Err(e) => return Err(ApiError::internal(e.to_string())),
    };
    let timeout = Duration::from_secs(q.timeout_seconds.unwrap_or_else(|| {
        use rand::Rng;
        rand::rng().random_range(1800..3600)
    }));
    let bookmarks = q.allow_watch_bookmarks && matches!(accept, Accept::Json | Accept::Metadata { .. });

    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        tick.tick().await;
        for line in first {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let mut segment = watch;
        // The revision of the last bookmark sent: bookmarks never go back.
        let mut bookmarked = last_rev;
        loop {
            for e in segment.backlog {
                if !deliver(&e, &mut last_rev, &filter, &mut enc, &tx).await {
                    return;
                }
            }
            let mut live = segment.live;
            let missed = loop {
                tokio::select! {
                    _ = &mut deadline => return,
                    _ = tick.tick(), if bookmarks => {
                        // Changes under other prefixes never reach this watch, so its last change
                        // can be far behind the store. Every change the store has sent up to
                        // `sent` is in this watch's channel: delivered first, the bookmark can
                        // carry `sent` (so a client resuming from it skips the others' changes).
                        let sent = store.live_revision();
                        let lagged = loop {
                            match live.try_recv() {
                                Ok(e) => {
                                    if !deliver(&e, &mut last_rev, &filter, &mut enc, &tx).await {
                                        return;
                                    }
                                }
                                Err(broadcast::error::TryRecvError::Empty) => break None,
                                Err(broadcast::error::TryRecvError::Lagged(missed)) => break Some(missed),
                                Err(broadcast::error::TryRecvError::Closed) => return,
                            }
                        };
                        if let Some(missed) = lagged {
                            break missed;
                        }
                        bookmarked = bookmarked.max(last_rev).max(sent);
                        if tx.send(Ok(enc.bookmark(bookmarked, false))).await.is_err() {
                            return;
                        }
                    }
                    ev = live.recv() => match ev {
                        Ok(e) => {
                            if !deliver(&e, &mut last_rev, &filter, &mut enc, &tx).await {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => break missed,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = tx.closed() => return,
                }
            };
            // This watcher fell behind the live stream of its prefix: it catches up from the
            // store's history, which holds far more changes.
            // Once the history no longer has what it missed, it is closed, and its client resumes
            // or lists again (kube-apiserver closes a watcher that cannot keep up).
            segment = match store.watch_prefix(&filter.prefix, last_rev) {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(prefix = %filter.prefix, last_rev, missed, error = %e, "closing a watch that fell behind");
                    return;
                }
            };
        }
    });
    Ok(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// Sends the line for `e` if the watcher sees it and has not had it yet; false once the client is
/// gone.
async fn deliver(
    e: &Event,
    last_rev: &mut Revision,
    filter: &Filter,
    enc: &mut Encoder,
    tx: &mpsc::Sender<Result<Bytes, Infallible>>,
) -> bool {
    if e.rev <= *last_rev {
        return true;
    }
    *last_rev = e.rev;
    match filter.translate(e) {
        Some(kind) => tx.send(Ok(enc.line(kind, &e.object))).await.is_ok(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::resource::lookup;
    use skiff_api::selector::LabelSelector;
    use skiff_store::{SqliteOptions, SqliteStore, Write};

    use crate::request::Target;

    fn event(kind: EventKind, obj: Value, prev: Option<Value>) -> Event {
        Event {
            kind,
            rev: 5,
            key: Arc::from("/core/pods/default/a"),
            object: Json::encode(&obj),
            prev: prev.as_ref().map(Json::encode),
        }
    }

    #[test]
    fn selector_transitions_become_added_and_deleted() {
        let r = lookup("", "v1", "pods").expect("pods");
        let f = Filter {
            prefix: r.namespace_prefix("default"),
            selection: Selection::new(LabelSelector::parse("app=web").expect("selector"), None),
        };
        let web = json!({"metadata": {"labels": {"app": "web"}}});
        let db = json!({"metadata": {"labels": {"app": "db"}}});
        let kind = |e: &Event| f.translate(e);
        assert_eq!(kind(&event(EventKind::Added, web.clone(), None)), Some("ADDED"));
        assert_eq!(kind(&event(EventKind::Added, db.clone(), None)), None);
        assert_eq!(kind(&event(EventKind::Modified, web.clone(), Some(web.clone()))), Some("MODIFIED"));
        assert_eq!(kind(&event(EventKind::Modified, web.clone(), Some(db.clone()))), Some("ADDED"));
        assert_eq!(kind(&event(EventKind::Modified, db.clone(), Some(web.clone()))), Some("DELETED"));
        assert_eq!(kind(&event(EventKind::Modified, db.clone(), Some(db.clone()))), None);
        assert_eq!(kind(&event(EventKind::Deleted, web.clone(), Some(web.clone()))), Some("DELETED"));
        let mut other_ns = event(EventKind::Added, web, None);
        other_ns.key = Arc::from("/core/pods/other/a");
        assert_eq!(kind(&other_ns), None);
    }

    #[test]
    fn events_are_single_lines_with_the_type_first() {
        let line = encode_event("ADDED", &json!({"a": "multi\nline", "b": [1, null]}));
        assert_eq!(&line[..], b"{\"type\":\"ADDED\",\"object\":{\"a\":\"multi\\nline\",\"b\":[1,null]}}\n");
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let parsed: Value = serde_json::from_slice(&line).expect("JSON");
        assert_eq!(parsed, json!({"type": "ADDED", "object": {"a": "multi\nline", "b": [1, null]}}));
    }

    /// Writes `n` ConfigMaps while a watch is not read, then reads the watch: the names it
    /// delivers, in order, until it ends or has them all.
    async fn watch_behind(options: SqliteOptions, n: usize) -> Vec<String> {
        use futures::StreamExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db"), options).expect("open"));
        let r = lookup("", "v1", "configmaps").expect("configmaps");
        let t = Target { resource: r, namespace: Some("default".into()), name: None, subresource: None };
        let q = Query::parse(Some("watch=1&resourceVersion=0")).expect("query");
        let mut body = start(store.clone(), &t, &q, Accept::Json).expect("watch").into_data_stream();
        for i in 0..n {
            let key = r.key(Some("default"), &format!("cm-{i}"));
            let value = json!({"kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")}});
            store.write(Write::Create { key, value }).await.expect("create");
        }
        let mut names = Vec::new();
        while names.len() < n {
            let next = tokio::time::timeout(Duration::from_secs(10), body.next()).await.expect("the watch answers");
            let Some(line) = next else { break };
            let event: Value = serde_json::from_slice(&line.expect("a line")).expect("JSON");
            assert_eq!(event["type"], "ADDED");
            names.push(event["object"]["metadata"]["name"].as_str().unwrap_or_default().to_owned());
        }
        names
    }

    /// Every change passes through one broadcast of a few slots here; the watch stops reading
    /// (its client does not read) and falls behind it.
    #[tokio::test]
    async fn a_watch_that_falls_behind_catches_up_from_the_history() {
        let n = 400;
        let options = SqliteOptions { history_len: 1000, retained_snapshots: 4, broadcast_capacity: 4 };
        let want: Vec<String> = (0..n).map(|i| format!("cm-{i}")).collect();
        assert_eq!(watch_behind(options, n).await, want);
    }

    #[tokio::test]
    async fn a_watch_behind_its_history_is_closed() {
        let n = 400;
        let options = SqliteOptions { history_len: 50, retained_snapshots: 4, broadcast_capacity: 4 };
        let got = watch_behind(options, n).await;
        assert!(got.len() < n, "ended early: {} events", got.len());
        let want: Vec<String> = (0..got.len()).map(|i| format!("cm-{i}")).collect();
        assert_eq!(got, want, "in order, without a gap, up to where it was closed");
    }

    /// A pod watch is not sent the ConfigMaps written after its pod, yet its periodic bookmark
    /// carries their revision: the store's, not its last pod's. Time is paused: the 30 s bookmark
    /// ticks come as soon as the test waits. The writes wait for the store's writer thread from a
    /// blocking task, which holds the paused clock still: awaited on the runtime, a slow write let
    /// the clock run on through the watch's ticks, whose channel nobody read yet, to its timeout.
    #[tokio::test(start_paused = true)]
    async fn bookmarks_carry_the_store_revision_past_other_resources_changes() {
        use futures::StreamExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("db"), SqliteOptions::default()).expect("open"));
        let pods = lookup("", "v1", "pods").expect("pods");
        let maps = lookup("", "v1", "configmaps").expect("configmaps");
        let t = Target { resource: pods, namespace: Some("default".into()), name: None, subresource: None };
        let q = Query::parse(Some(&format!("watch=1&allowWatchBookmarks=true&resourceVersion={}", store.revision())))
            .expect("query");
        let mut body = start(store.clone(), &t, &q, Accept::Json).expect("watch").into_data_stream();
        let write = |w: Write| {
            let store = store.clone();
            tokio::task::spawn_blocking(move || futures::executor::block_on(store.write(w)))
        };
        let pod = json!({"kind": "Pod", "metadata": {"name": "p"}});
        let pod_rev = write(Write::Create { key: pods.key(Some("default"), "p"), value: pod })
            .await
            .expect("joined")
            .expect("pod")
            .rev;
        for i in 0..3 {
            let value = json!({"kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")}});
            write(Write::Create { key: maps.key(Some("default"), &format!("cm-{i}")), value })
                .await
                .expect("joined")
                .expect("cm");
        }
        let last = store.revision();
        assert_eq!(last, pod_rev + 3);
        let mut seen = Vec::new();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(100), body.next()).await.expect("the watch answers");
            let event: Value = serde_json::from_slice(&next.expect("open").expect("a line")).expect("JSON");
            let rv: Revision = event["object"]["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .expect("a resourceVersion");
            seen.push((event["type"].as_str().unwrap_or_default().to_owned(), rv));
            if rv == last {
                break;
            }
            assert!(rv < last, "nothing past the store's revision: {seen:?}");
        }
        assert_eq!(
            seen.iter().filter(|(kind, _)| kind != "BOOKMARK").collect::<Vec<_>>(),
            [&("ADDED".to_owned(), pod_rev)]
        );
        assert_eq!(seen.last().map(|(kind, _)| kind.as_str()), Some("BOOKMARK"));
        assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1), "revisions never go back: {seen:?}");
    }

    #[test]
    fn stored_objects_are_sent_as_their_text() {
        let obj = Json::encode(&json!({"metadata": {"name": "a"}, "data": {"k": "multi\nline"}}));
        let line = stored_event("MODIFIED", &obj);
        assert_eq!(line, encode_event("MODIFIED", &obj.parse()), "the same bytes as serializing the object");
        let parsed: Value = serde_json::from_slice(&line).expect("JSON");
        assert_eq!(parsed, json!({"type": "MODIFIED", "object": obj.parse()}));
    }
}
