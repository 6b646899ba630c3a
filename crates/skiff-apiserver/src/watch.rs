//! WATCH: a stream of `{"type":..,"object":..}` lines, one event per line, flushed as they happen
//! (F.6 of the semantics reference). Served from the store's change stream, never by polling.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use serde_json::{Value, json};
use skiff_api::selector::{FieldSelector, LabelSelector};
use skiff_api::table::{self, IncludeObject};
use skiff_api::{ApiError, ResourceInfo, meta};
use skiff_store::{Event, EventKind, Revision, Store, StoreError};
use tokio::sync::{broadcast, mpsc};

use crate::request::{Query, Target};
use crate::response::{self, Accept};

/// Which events a watcher wants and how to encode them.
struct Filter {
    prefix: String,
    labels: LabelSelector,
    fields: Option<FieldSelector>,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(meta::labels(obj)) && self.fields.as_ref().is_none_or(|f| f.matches(obj))
    }

    /// The event a watcher sees for a change: objects entering the selection are ADDED, leaving it
    /// DELETED (`cacher.go: processEvent`).
    /// The event type to send for `e.object`, or `None` when the watcher does not see the change.
    fn translate(&self, e: &Event) -> Option<&'static str> {
        if !e.key.starts_with(&self.prefix) {
            return None;
        }
        let now = self.matches(&e.object);
        let before = e.prev.as_deref().is_some_and(|p| self.matches(p));
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
    /// The line for a live change: JSON lines come from the [`LineCache`] shared by all watchers.
    fn change(&mut self, kind: &'static str, obj: &Arc<Value>) -> Bytes {
        match self.accept {
            Accept::Json => LINES.line(kind, obj),
            Accept::Table | Accept::Metadata { .. } | Accept::MetadataList { .. } => self.line(kind, obj),
        }
    }

    fn line(&mut self, kind: &str, obj: &Value) -> Bytes {
        let object = match self.accept {
            Accept::Json | Accept::MetadataList { .. } => return encode_event(kind, obj),
            Accept::Metadata { version } => response::partial_metadata(version, obj),
            Accept::Table => {
                let t = table::table(
                    self.resource,
                    &[obj],
                    json!({"resourceVersion": meta::resource_version(obj)}),
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
/// the object straight into its type instead of buffering it until the tag shows up. Written
/// directly, without building (deep-copying the object into) an intermediate `Value`.
fn encode_event(kind: &str, object: &Value) -> Bytes {
    let mut line = Vec::with_capacity(1024);
    line.extend_from_slice(b"{\"type\":");
    let written = serde_json::to_writer(&mut line, kind)
        .and_then(|()| {
            line.extend_from_slice(b",\"object\":");
            serde_json::to_writer(&mut line, object)
        })
        .is_ok();
    if !written {
        // Serializing a `Value` into memory cannot fail; keep the stream well-formed regardless.
        return Bytes::from_static(b"");
    }
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// How many encoded events [`LINES`] keeps.
const LINE_CACHE_ENTRIES: usize = 1024;

/// The encoded JSON lines of recent changes, shared by every watcher of the process. Watchers of
/// the same resource (a scheduler, controllers, node agents, clients) all receive each change at
/// about the same time; encoding it once for all of them instead of once per watcher takes the
/// dominant per-watcher cost off the write path's fan-out.
///
/// A line depends only on the event type and the object, so entries are keyed by the object's
/// allocation (`Arc` pointer) and type. Each entry holds its `Arc`, so that address cannot be
/// freed and reused for another object while the entry exists: a hit is always the same object.
/// Oldest entries are evicted first.
#[derive(Default)]
struct LineCache {
    inner: parking_lot::Mutex<LineCacheInner>,
}

#[derive(Default)]
struct LineCacheInner {
    lines: HashMap<(usize, &'static str), (Arc<Value>, Bytes)>,
    order: VecDeque<(usize, &'static str)>,
}

static LINES: LazyLock<LineCache> = LazyLock::new(LineCache::default);

impl LineCache {
    /// The line for `kind` and `obj`, encoded now or by an earlier watcher.
    fn line(&self, kind: &'static str, obj: &Arc<Value>) -> Bytes {
        let key = (Arc::as_ptr(obj) as usize, kind);
        if let Some((_, line)) = self.inner.lock().lines.get(&key) {
            return line.clone();
        }
        // Encoded outside the lock: two watchers may race to encode the same event; both lines
        // are identical, and the second insert replaces the first.
        let line = encode_event(kind, obj);
        let mut inner = self.inner.lock();
        if inner.lines.insert(key, (obj.clone(), line.clone())).is_none() {
            inner.order.push_back(key);
        }
        while inner.order.len() > LINE_CACHE_ENTRIES {
            if let Some(old) = inner.order.pop_front() {
                inner.lines.remove(&old);
            }
        }
        line
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
        labels: match &q.label_selector {
            Some(s) => LabelSelector::parse(s)?,
            None => LabelSelector::everything(),
        },
        fields: match &q.field_selector {
            Some(s) => Some(FieldSelector::parse(s, r)?),
            None => None,
        },
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
        (store.watch(snapshot.rev), snapshot.rev)
    } else {
        let rev = start_rev.unwrap_or_else(|| store.revision());
        (store.watch(rev), rev)
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
        for e in watch.backlog {
            last_rev = e.rev;
            if let Some(kind) = filter.translate(&e)
                && tx.send(Ok(enc.change(kind, &e.object))).await.is_err()
            {
                return;
            }
        }
        let mut live = watch.live;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tick.tick(), if bookmarks => {
                    if tx.send(Ok(enc.bookmark(last_rev, false))).await.is_err() {
                        return;
                    }
                }
                ev = live.recv() => match ev {
                    Ok(e) => {
                        if e.rev <= last_rev {
                            continue;
                        }
                        last_rev = e.rev;
                        if let Some(kind) = filter.translate(&e)
                            && tx.send(Ok(enc.change(kind, &e.object))).await.is_err() {
                                return;
                            }
                    }
                    // A watcher too slow to keep up is closed; it resumes from the last revision it saw.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
            }
        }
    });
    Ok(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::resource::lookup;

    fn event(kind: EventKind, obj: Value, prev: Option<Value>) -> Event {
        Event { kind, rev: 5, key: Arc::from("/core/pods/default/a"), object: Arc::new(obj), prev: prev.map(Arc::new) }
    }

    #[test]
    fn selector_transitions_become_added_and_deleted() {
        let r = lookup("", "v1", "pods").expect("pods");
        let f = Filter {
            prefix: r.namespace_prefix("default"),
            labels: LabelSelector::parse("app=web").expect("selector"),
            fields: None,
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

    #[test]
    fn line_cache_is_keyed_by_object_and_type() {
        let cache = LineCache::default();
        let a = Arc::new(json!({"n": 1}));
        let same_content = Arc::new(json!({"n": 1}));
        let b = Arc::new(json!({"n": 2}));
        assert_eq!(cache.line("ADDED", &a), encode_event("ADDED", &a));
        assert_eq!(cache.line("ADDED", &a), encode_event("ADDED", &a), "a hit");
        assert_eq!(cache.line("DELETED", &a), encode_event("DELETED", &a), "another type, another line");
        assert_eq!(cache.line("ADDED", &same_content), encode_event("ADDED", &same_content));
        assert_eq!(cache.line("MODIFIED", &b), encode_event("MODIFIED", &b));
        assert_eq!(cache.inner.lock().lines.len(), 4);
        // Bounded: the oldest entries go first.
        for i in 0..LINE_CACHE_ENTRIES + 10 {
            let o = Arc::new(json!({"i": i}));
            assert_eq!(cache.line("ADDED", &o), encode_event("ADDED", &o));
        }
        let inner = cache.inner.lock();
        assert_eq!((inner.lines.len(), inner.order.len()), (LINE_CACHE_ENTRIES, LINE_CACHE_ENTRIES));
        assert!(!inner.lines.contains_key(&(Arc::as_ptr(&a) as usize, "ADDED")), "evicted");
    }
}
