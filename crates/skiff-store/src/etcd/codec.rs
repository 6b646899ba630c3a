//! Translating between the store's model and etcd's: keys under the prefix, object values, and
//! watch events. Pure: no I/O.
//!
//! Layout (as kube-apiserver stores objects): the store key `/apps/deployments/ns/web` lives at
//! the etcd key `<prefix>apps/deployments/ns/web` (prefix `/registry/` by default), and its value
//! is the object's JSON **without** `metadata.resourceVersion`: an object cannot hold the revision
//! of its own write, so the resourceVersion is set from the key's `mod_revision` on every read.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::json::{parse_unbounded, set_resource_version};
use crate::{Event, EventKind, Json, Object, Revision, StoreError};

/// Maps store keys to etcd keys and back. The prefix always ends with `/`; store keys start
/// with `/`, so `base + key` (base = prefix without its last `/`) is a bijection onto the keys
/// under the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix` is normalised to end with exactly one `/` (`""` becomes `/`).
    pub fn new(prefix: &str) -> Keys {
        let mut prefix = prefix.trim_end_matches('/').to_owned();
        prefix.push('/');
        Keys { prefix }
    }

    /// The prefix every key of this store lives under (ends with `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The etcd key of a store key. Store keys must start with `/` (every key the API server
    /// builds does); anything else cannot be mapped back and is refused.
    pub fn etcd_key(&self, key: &str) -> Result<String, StoreError> {
        let Some(rest) = key.strip_prefix('/') else {
            return Err(StoreError::Backend(format!("store key {key:?} does not start with '/'")));
        };
        Ok(format!("{}{rest}", self.prefix))
    }

    /// The store key of an etcd key, or `None` if it is not under the prefix or not UTF-8.
    pub fn store_key(&self, key: &[u8]) -> Option<Arc<str>> {
        let key = std::str::from_utf8(key).ok()?;
        let rest = key.strip_prefix(self.prefix.as_str())?;
        Some(Arc::from(format!("/{rest}")))
    }
}

/// What the store needs of an etcd `KeyValue`, decoupled from the client's types so the
/// translation can be tested without a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
}

impl From<&etcd_client::KeyValue> for Kv {
    fn from(kv: &etcd_client::KeyValue) -> Kv {
        Kv {
            key: kv.key().to_vec(),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        }
    }
}

/// A revision from etcd (an `i64`); a negative one is a broken response.
pub(crate) fn revision(rev: i64) -> Result<Revision, StoreError> {
    Revision::try_from(rev).map_err(|_| StoreError::Backend(format!("etcd returned negative revision {rev}")))
}

/// A store revision as etcd takes it. Revisions beyond `i64::MAX` exist in no etcd, so they are
/// clamped: a comparison with the clamped value simply never matches.
pub(crate) fn etcd_revision(rev: Revision) -> i64 {
    i64::try_from(rev).unwrap_or(i64::MAX)
}

/// The bytes stored for `value`: its JSON without `metadata.resourceVersion`.
pub(crate) fn encode(mut value: Value) -> Vec<u8> {
    if let Some(Value::Object(metadata)) = value.get_mut("metadata") {
        metadata.remove("resourceVersion");
    }
    // Serializing a `Value` cannot fail: its map keys are strings.
    value.to_string().into_bytes()
}

/// The object stored in `bytes`, with `metadata.resourceVersion` set to `rev`. Every watch event
/// and every read passes here, so only the top level and `metadata` are parsed into maps; the
/// other members (the spec and status that make up most of an object) are checked and copied as
/// text. A value that is not an object with an object (or no) `metadata` takes the general way.
pub(crate) fn decode(key: &str, bytes: &[u8], rev: Revision) -> Result<Json, StoreError> {
    match std::str::from_utf8(bytes).ok().and_then(|text| with_resource_version(text, rev)) {
        Some(text) => Ok(Json::serialized(text)),
        None => decode_value(key, bytes, rev),
    }
}

/// `text` with `metadata.resourceVersion` set to `rev`, if it is an object whose `metadata` is an
/// object or absent.
fn with_resource_version(text: &str, rev: Revision) -> Option<String> {
    let mut top = members(text).ok()?;
    let version = RawValue::from_string(format!("\"{rev}\"")).ok()?;
    let mut metadata = match top.get("metadata") {
        None => BTreeMap::new(),
        Some(raw) => members(raw.get()).ok()?,
    };
    metadata.insert("resourceVersion".to_owned(), &version);
    let metadata = RawValue::from_string(serde_json::to_string(&metadata).ok()?).ok()?;
    top.insert("metadata".to_owned(), &metadata);
    serde_json::to_string(&top).ok()
}

/// The members of the JSON object `text`, each as its text (nesting depth not limited, as
/// [`Json::from_text`]); an error if `text` is not an object.
fn members(text: &str) -> Result<BTreeMap<String, &RawValue>, serde_json::Error> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let map = BTreeMap::deserialize(&mut de)?;
    de.end()?;
    Ok(map)
}

/// [`decode`] by way of a whole `Value` (nesting depth not limited either).
fn decode_value(key: &str, bytes: &[u8], rev: Revision) -> Result<Json, StoreError> {
    let invalid =
        |e: &dyn std::fmt::Display| StoreError::Backend(format!("etcd value of {key} is not valid JSON: {e}"));
    let text = std::str::from_utf8(bytes).map_err(|e| invalid(&e))?;
    let mut value = parse_unbounded(text).map_err(|e| invalid(&e))?;
    set_resource_version(&mut value, rev);
    Ok(Json::encode(&value))
}

/// An object read from etcd: key under the prefix, valid JSON, sane revision.
pub(crate) fn object(keys: &Keys, kv: &Kv) -> Result<Object, StoreError> {
    let key = keys
        .store_key(&kv.key)
        .ok_or_else(|| StoreError::Backend(format!("etcd key {:?} is not under {}", lossy(&kv.key), keys.prefix())))?;
    let rev = revision(kv.mod_revision)?;
    let value = decode(&key, &kv.value, rev)?;
    Ok(Object { key, rev, value })
}

/// The kind of an etcd watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EtcdKind {
    Put,
    Delete,
}

/// One event translated for the cache.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub event: Arc<Event>,
    /// The revision of the state this change replaced (none for a create): what a snapshot at an
    /// earlier revision restores.
    pub prev_rev: Option<Revision>,
}

/// Translates one etcd watch event. `kv` is the event's key-value (for a delete: the key and the
/// delete's revision, no value); `prev` is etcd's `prev_kv`; `current` is the cache's state of the
/// key, used when etcd sent no `prev_kv` (it always does unless the previous version was compacted
/// away).
///
/// A put is `Added` when it created the key (`create_revision == mod_revision`), `Modified`
/// otherwise. A delete carries the last state with the delete's revision, as Kubernetes sends it.
pub(crate) fn change(
    keys: &Keys,
    kind: EtcdKind,
    kv: &Kv,
    prev: Option<&Kv>,
    current: Option<&Object>,
) -> Result<Change, StoreError> {
    let key = keys
        .store_key(&kv.key)
        .ok_or_else(|| StoreError::Backend(format!("etcd key {:?} is not under {}", lossy(&kv.key), keys.prefix())))?;
    let rev = revision(kv.mod_revision)?;
    let prev = match prev {
        Some(prev) => {
            let prev_rev = revision(prev.mod_revision)?;
            // The cache's current state is that same version (one text for both), unless the
            // cache missed a change.
            match current.filter(|object| object.rev == prev_rev) {
                Some(object) => Some((prev_rev, object.value.clone())),
                None => Some((prev_rev, decode(&key, &prev.value, prev_rev)?)),
            }
        }
        None => current.map(|object| (object.rev, object.value.clone())),
    };
    match kind {
        EtcdKind::Put => {
            let object = decode(&key, &kv.value, rev)?;
            let created = kv.create_revision == kv.mod_revision;
            let (kind, prev) = if created { (EventKind::Added, None) } else { (EventKind::Modified, prev) };
            let prev_rev = prev.as_ref().map(|(r, _)| *r);
            let event = Event { kind, rev, key, object, prev: prev.map(|(_, v)| v) };
            Ok(Change { event: Arc::new(event), prev_rev })
        }
        EtcdKind::Delete => {
            let Some((prev_rev, prev)) = prev else {
                return Err(StoreError::Backend(format!(
                    "etcd sent the delete of {key} at {rev} without its last state"
                )));
            };
            let mut last = prev.parse();
            set_resource_version(&mut last, rev);
            let event = Event { kind: EventKind::Deleted, rev, key, object: Json::encode(&last), prev: Some(prev) };
            Ok(Change { event: Arc::new(event), prev_rev: Some(prev_rev) })
        }
    }
}

/// Bytes for an error message.
pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kv(key: &str, value: Value, create: i64, rev: i64) -> Kv {
        Kv {
            key: key.as_bytes().to_vec(),
            value: value.to_string().into_bytes(),
            create_revision: create,
            mod_revision: rev,
        }
    }

    #[test]
    fn keys_map_both_ways() {
        let cases = [
            ("/registry/", "/apps/deployments/ns/web", "/registry/apps/deployments/ns/web"),
            ("/registry", "/v1/pods/ns/a", "/registry/v1/pods/ns/a"),
            ("/registry//", "/a", "/registry/a"),
            ("/skiff/one/", "/", "/skiff/one/"),
            ("", "/a", "/a"),
        ];
        for (prefix, key, want) in cases {
            let keys = Keys::new(prefix);
            let etcd = keys.etcd_key(key).expect("maps");
            assert_eq!(etcd, want, "prefix {prefix:?} key {key}");
            assert_eq!(keys.store_key(etcd.as_bytes()).as_deref(), Some(key), "prefix {prefix:?}");
        }
    }

    #[test]
    fn keys_outside_the_layout_are_refused() {
        let keys = Keys::new("/registry/");
        assert_eq!(keys.prefix(), "/registry/");
        let err = keys.etcd_key("pods/a").expect_err("no leading slash");
        assert_eq!(err.to_string(), r#"store backend failed: store key "pods/a" does not start with '/'"#);
        assert_eq!(keys.store_key(b"/registryx/a"), None);
        assert_eq!(keys.store_key(b"/other/a"), None);
        assert_eq!(keys.store_key(b"compact_rev_key"), None);
        assert_eq!(keys.store_key(b"/registry/\xff"), None);
    }

    #[test]
    fn encode_strips_the_resource_version_and_decode_sets_it() {
        let cases = [
            (json!({"metadata": {"name": "a", "resourceVersion": "7"}, "x": 1}), r#"{"metadata":{"name":"a"},"x":1}"#),
            (json!({"x": 1}), r#"{"x":1}"#),
            (json!({"metadata": "odd"}), r#"{"metadata":"odd"}"#),
            (json!([1]), "[1]"),
        ];
        for (value, want) in cases {
            assert_eq!(String::from_utf8(encode(value.clone())).expect("utf8"), want, "{value}");
        }
        let got = decode("/k", br#"{"metadata":{"name":"a"},"x":1}"#, 12).expect("decode");
        assert_eq!(got, json!({"metadata": {"name": "a", "resourceVersion": "12"}, "x": 1}));
        let got = decode("/k", br#"{"x":1}"#, 3).expect("decode");
        assert_eq!(got, json!({"x": 1, "metadata": {"resourceVersion": "3"}}));
        let err = decode("/k", b"{oops", 3).expect_err("invalid");
        assert!(err.to_string().starts_with("store backend failed: etcd value of /k is not valid JSON"), "{err}");
    }

    /// The text-preserving read gives the same value as parsing the whole object and setting the
    /// resourceVersion in it, and refuses what that refuses.
    #[test]
    fn decode_agrees_with_the_whole_value_way() {
        let deep = format!("{{\"spec\":{}1{}}}", "[".repeat(300), "]".repeat(300));
        let cases = [
            r#"{"metadata":{"name":"a"},"spec":{"x":[1,2.5,null,"é\n"]}}"#.to_owned(),
            r#"{"metadata":{"name":"a","resourceVersion":"3"},"status":{}}"#.to_owned(),
            r#"{"kind":"Pod"}"#.to_owned(),
            r#"{"metadata":null,"x":1}"#.to_owned(),
            r#"{"metadata":"odd"}"#.to_owned(),
            r#"{"metadata":{"a\"b":{"c":"\u00e9"}},"k\u0065y":1e3, "spaced" : [ 1 ] }"#.to_owned(),
            r#"{"x":1,"x":2,"metadata":{}}"#.to_owned(),
            "[1,2]".to_owned(),
            r#""text""#.to_owned(),
            deep,
        ];
        for text in cases {
            let fast = decode("/k", text.as_bytes(), 12).expect("decode");
            let whole = decode_value("/k", text.as_bytes(), 12).expect("decode_value");
            assert_eq!(fast.parse(), whole.parse(), "{text}");
        }
        let fast = decode("/k", br#"{"metadata":{"name":"a"},"spec":{"n":1}}"#, 12).expect("decode");
        assert_eq!(fast.as_str(), r#"{"metadata":{"name":"a","resourceVersion":"12"},"spec":{"n":1}}"#);
        // The members other than metadata are copied as they are written (a whole value would
        // print 1e3 as 1000.0); what the text way cannot take goes the general way.
        assert_eq!(
            with_resource_version(r#"{"spec":{"n":1e3, "s":"\u00e9"}}"#, 5).as_deref(),
            Some(r#"{"metadata":{"resourceVersion":"5"},"spec":{"n":1e3, "s":"\u00e9"}}"#)
        );
        for other in [r#"{"metadata":null}"#, r#"{"metadata":[]}"#, "[]", "1", "{"] {
            assert_eq!(with_resource_version(other, 5), None, "{other}");
        }
        for bad in [&b"{oops"[..], b"{\"a\":1", b"{\"a\":[1,}", b"{\"a\":1} x", b"\xff", b""] {
            let err = decode("/k", bad, 3).expect_err("invalid");
            assert!(err.to_string().contains("etcd value of /k is not valid JSON"), "{err}");
        }
    }

    #[test]
    fn revisions_convert_safely() {
        assert_eq!(revision(5).expect("ok"), 5);
        assert_eq!(
            revision(-1).expect_err("negative").to_string(),
            "store backend failed: etcd returned negative revision -1"
        );
        assert_eq!(etcd_revision(9), 9);
        assert_eq!(etcd_revision(u64::MAX), i64::MAX);
    }

    #[test]
    fn object_reads_key_revision_and_value() {
        let keys = Keys::new("/registry/");
        let got =
            object(&keys, &kv("/registry/v1/pods/ns/a", json!({"metadata": {"name": "a"}}), 4, 9)).expect("object");
        assert_eq!(&*got.key, "/v1/pods/ns/a");
        assert_eq!(got.rev, 9);
        assert_eq!(got.value, json!({"metadata": {"name": "a", "resourceVersion": "9"}}));
        let err = object(&keys, &kv("/elsewhere/a", json!({}), 1, 1)).expect_err("outside");
        assert_eq!(err.to_string(), r#"store backend failed: etcd key "/elsewhere/a" is not under /registry/"#);
    }

    #[test]
    fn put_events_are_added_or_modified() {
        let keys = Keys::new("/r/");
        let added = change(&keys, EtcdKind::Put, &kv("/r/a", json!({"v": 1}), 5, 5), None, None).expect("added");
        let want = Event {
            kind: EventKind::Added,
            rev: 5,
            key: Arc::from("/a"),
            object: Json::from(json!({"v": 1, "metadata": {"resourceVersion": "5"}})),
            prev: None,
        };
        assert_eq!((*added.event).clone(), want);
        assert_eq!(added.prev_rev, None);

        let prev = kv("/r/a", json!({"v": 1}), 5, 5);
        let modified =
            change(&keys, EtcdKind::Put, &kv("/r/a", json!({"v": 2}), 5, 8), Some(&prev), None).expect("mod");
        assert_eq!(modified.event.kind, EventKind::Modified);
        assert_eq!(modified.event.object, json!({"v": 2, "metadata": {"resourceVersion": "8"}}));
        assert_eq!(
            modified.event.prev.as_ref().map(Json::parse),
            Some(json!({"v": 1, "metadata": {"resourceVersion": "5"}}))
        );
        assert_eq!(modified.prev_rev, Some(5));

        // Without prev_kv, the cache's current state stands in.
        let current = Object { key: Arc::from("/a"), rev: 6, value: Json::from(json!({"v": 9})) };
        let fallback =
            change(&keys, EtcdKind::Put, &kv("/r/a", json!({"v": 2}), 5, 8), None, Some(&current)).expect("mod");
        assert_eq!(fallback.event.prev.as_ref().map(Json::parse), Some(json!({"v": 9})));
        assert_eq!(fallback.prev_rev, Some(6));
        // Nothing known at all: a modification without prev.
        let bare = change(&keys, EtcdKind::Put, &kv("/r/a", json!({"v": 2}), 5, 8), None, None).expect("mod");
        assert_eq!((bare.event.kind, bare.event.prev.clone(), bare.prev_rev), (EventKind::Modified, None, None));
    }

    #[test]
    fn delete_events_carry_the_last_state_at_the_delete_revision() {
        let keys = Keys::new("/r/");
        let tombstone = Kv { key: b"/r/a".to_vec(), value: Vec::new(), create_revision: 0, mod_revision: 11 };
        let prev = kv("/r/a", json!({"metadata": {"name": "a"}}), 5, 8);
        let deleted = change(&keys, EtcdKind::Delete, &tombstone, Some(&prev), None).expect("deleted");
        assert_eq!(deleted.event.kind, EventKind::Deleted);
        assert_eq!(deleted.event.rev, 11);
        assert_eq!(deleted.event.object, json!({"metadata": {"name": "a", "resourceVersion": "11"}}));
        assert_eq!(
            deleted.event.prev.as_ref().map(Json::parse),
            Some(json!({"metadata": {"name": "a", "resourceVersion": "8"}}))
        );
        assert_eq!(deleted.prev_rev, Some(8));

        let current =
            Object { key: Arc::from("/a"), rev: 8, value: Json::from(json!({"metadata": {"resourceVersion": "8"}})) };
        let fallback = change(&keys, EtcdKind::Delete, &tombstone, None, Some(&current)).expect("deleted");
        assert_eq!(fallback.event.object, json!({"metadata": {"resourceVersion": "11"}}));

        let err = change(&keys, EtcdKind::Delete, &tombstone, None, None).expect_err("no state");
        assert_eq!(err.to_string(), "store backend failed: etcd sent the delete of /a at 11 without its last state");
    }

    #[test]
    fn broken_events_are_backend_errors() {
        let keys = Keys::new("/r/");
        let cases = [
            (kv("/x/a", json!({}), 1, 1), "store backend failed: etcd key \"/x/a\" is not under /r/"),
            (kv("/r/a", json!({}), 1, -4), "store backend failed: etcd returned negative revision -4"),
            (
                Kv { key: b"/r/a".to_vec(), value: b"nope".to_vec(), create_revision: 1, mod_revision: 1 },
                "store backend failed: etcd value of /a is not valid JSON: expected ident at line 1 column 2",
            ),
        ];
        for (kv, want) in cases {
            let err = change(&keys, EtcdKind::Put, &kv, None, None).expect_err("broken");
            assert_eq!(err.to_string(), want);
        }
    }
}
