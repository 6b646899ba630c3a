//! Checking one [`Prepared`] write against the latest state and turning it into a change. Pure:
//! no I/O, no locks. The writer thread runs it for every write of a batch in order, on a working
//! copy of the map, so a later write of the batch sees the earlier ones.

use std::sync::Arc;

use crate::json::{Unversioned, set_resource_version};
use crate::{Event, EventKind, Json, Object, Revision, StoreError, Write};

/// The latest state of every object, by key.
pub(super) type Objects = imbl::OrdMap<Arc<str>, Object>;

/// A [`Write`] with its object already serialized ([`Unversioned`]): the caller's thread does
/// that, so the single writer thread only splices in each revision.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Prepared {
    Create { key: String, value: Unversioned },
    Update { key: String, value: Unversioned, expected: Option<Revision> },
    Delete { key: String, expected: Option<Revision> },
}

impl Prepared {
    /// Serializes the write's object; an error only if serde_json cannot write the value.
    pub fn new(write: Write) -> Result<Prepared, StoreError> {
        let unversioned =
            |value| Unversioned::new(value).map_err(|e| StoreError::Backend(format!("serializing the object: {e}")));
        Ok(match write {
            Write::Create { key, value } => Prepared::Create { key, value: unversioned(value)? },
            Write::Update { key, value, expected } => Prepared::Update { key, value: unversioned(value)?, expected },
            Write::Delete { key, expected } => Prepared::Delete { key, expected },
        })
    }
}

/// A write that passed its checks, at its revision.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Change {
    /// What the writer gets back: the object as stored (for a delete, its last state at the
    /// delete's revision). Its text is also what the objects table and the log persist.
    pub object: Object,
    /// The event watchers see.
    pub event: Arc<Event>,
    /// The revision of the state this change replaced (none for a create).
    pub prev_rev: Option<Revision>,
}

/// Applies `write` at revision `rev` to `objects`: checks it (`AlreadyExists`, `NotFound`,
/// `Conflict`), sets `metadata.resourceVersion` to `rev`, updates `objects`, and returns the change.
/// On error `objects` is left untouched.
pub(super) fn apply(objects: &mut Objects, write: Prepared, rev: Revision) -> Result<Change, StoreError> {
    match write {
        Prepared::Create { key, value } => {
            if objects.contains_key(key.as_str()) {
                return Err(StoreError::AlreadyExists(key));
            }
            Ok(store(objects, Arc::from(key), value.at(rev), rev, None))
        }
        Prepared::Update { key, value, expected } => {
            let current = current(objects, &key, expected)?;
            Ok(store(objects, current.key.clone(), value.at(rev), rev, Some(current)))
        }
        Prepared::Delete { key, expected } => {
            let current = current(objects, &key, expected)?;
            objects.remove(key.as_str());
            let mut last = current.value.parse();
            set_resource_version(&mut last, rev);
            let value = Json::encode(&last);
            let event = Event {
                kind: EventKind::Deleted,
                rev,
                key: current.key.clone(),
                object: value.clone(),
                prev: Some(current.value),
            };
            Ok(Change {
                object: Object { key: current.key, rev, value },
                event: Arc::new(event),
                prev_rev: Some(current.rev),
            })
        }
    }
}

/// The current object at `key`, if it exists and is at the `expected` revision (when one is given).
fn current(objects: &Objects, key: &str, expected: Option<Revision>) -> Result<Object, StoreError> {
    let current = objects.get(key).ok_or_else(|| StoreError::NotFound(key.to_owned()))?;
    match expected {
        Some(expected) if expected != current.rev => {
            Err(StoreError::Conflict { key: key.to_owned(), expected, current: current.rev })
        }
        _ => Ok(current.clone()),
    }
}

/// Stores `value` (the text at `rev`) at `key` and builds the Added or Modified change.
fn store(objects: &mut Objects, key: Arc<str>, value: Json, rev: Revision, prev: Option<Object>) -> Change {
    let object = Object { key: key.clone(), rev, value: value.clone() };
    objects.insert(key.clone(), object.clone());
    let (kind, prev_rev, prev) = match prev {
        Some(prev) => (EventKind::Modified, Some(prev.rev), Some(prev.value)),
        None => (EventKind::Added, None, None),
    };
    Change { object, event: Arc::new(Event { kind, rev, key, object: value, prev }), prev_rev }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// `super::apply` of `write` as the store prepares it.
    fn apply(objects: &mut Objects, write: Write, rev: Revision) -> Result<Change, StoreError> {
        super::apply(objects, Prepared::new(write).expect("serializable"), rev)
    }

    fn object(key: &str, rev: Revision, value: Value) -> Object {
        Object { key: Arc::from(key), rev, value: Json::encode(&value) }
    }

    /// One object `/k` at revision 4, name "a".
    fn one() -> Objects {
        let mut objects = Objects::new();
        objects.insert(Arc::from("/k"), object("/k", 4, json!({"metadata": {"name": "a", "resourceVersion": "4"}})));
        objects
    }

    #[test]
    fn create_adds_with_resource_version() {
        let mut objects = Objects::new();
        let change =
            apply(&mut objects, Write::Create { key: "/k".into(), value: json!({"spec": 1}) }, 9).expect("create");
        let want = json!({"spec": 1, "metadata": {"resourceVersion": "9"}});
        assert_eq!(change.object, object("/k", 9, want.clone()));
        assert_eq!(change.object.value.as_str(), want.to_string());
        assert_eq!(change.prev_rev, None);
        assert_eq!(
            *change.event,
            Event { kind: EventKind::Added, rev: 9, key: Arc::from("/k"), object: Json::encode(&want), prev: None }
        );
        assert!(change.event.object.ptr_eq(&change.object.value), "one text for the map, the event and the writer");
        assert_eq!(objects.get("/k"), Some(&object("/k", 9, want)));
    }

    #[test]
    fn update_modifies_and_carries_prev() {
        let mut objects = one();
        let write = Write::Update { key: "/k".into(), value: json!({"metadata": {"name": "b"}}), expected: Some(4) };
        let change = apply(&mut objects, write, 5).expect("update");
        let want = json!({"metadata": {"name": "b", "resourceVersion": "5"}});
        assert_eq!(change.object, object("/k", 5, want.clone()));
        assert_eq!(change.prev_rev, Some(4));
        assert_eq!(change.event.kind, EventKind::Modified);
        assert_eq!(
            change.event.prev.as_ref().map(Json::parse),
            Some(json!({"metadata": {"name": "a", "resourceVersion": "4"}}))
        );
        assert_eq!(objects.get("/k").map(|o| o.rev), Some(5));
    }

    #[test]
    fn delete_returns_last_state_at_delete_revision() {
        let mut objects = one();
        let change = apply(&mut objects, Write::Delete { key: "/k".into(), expected: None }, 8).expect("delete");
        let want = json!({"metadata": {"name": "a", "resourceVersion": "8"}});
        assert_eq!(change.object, object("/k", 8, want.clone()));
        assert_eq!(change.object.value.as_str(), want.to_string());
        assert_eq!(change.prev_rev, Some(4));
        assert_eq!(change.event.kind, EventKind::Deleted);
        assert_eq!(change.event.object.parse(), want);
        assert_eq!(
            change.event.prev.as_ref().map(Json::parse),
            Some(json!({"metadata": {"name": "a", "resourceVersion": "4"}}))
        );
        assert!(objects.is_empty());
    }

    #[test]
    fn errors_leave_the_map_untouched() {
        let cases: Vec<(Write, &str)> = vec![
            (Write::Create { key: "/k".into(), value: json!({}) }, "key /k already exists"),
            (Write::Update { key: "/x".into(), value: json!({}), expected: None }, "key /x not found"),
            (Write::Update { key: "/x".into(), value: json!({}), expected: Some(4) }, "key /x not found"),
            (Write::Update { key: "/k".into(), value: json!({}), expected: Some(3) }, "key /k is at revision 4, not 3"),
            (Write::Delete { key: "/x".into(), expected: None }, "key /x not found"),
            (Write::Delete { key: "/k".into(), expected: Some(5) }, "key /k is at revision 4, not 5"),
        ];
        for (write, want) in cases {
            let mut objects = one();
            let err = apply(&mut objects, write.clone(), 10).expect_err("must fail");
            assert_eq!(err.to_string(), want, "{write:?}");
            assert_eq!(objects, one(), "{write:?}");
        }
    }

    #[test]
    fn error_variants_are_structured() {
        let mut objects = one();
        let err = apply(&mut objects, Write::Delete { key: "/k".into(), expected: Some(2) }, 10).expect_err("conflict");
        assert!(matches!(err, StoreError::Conflict { ref key, expected: 2, current: 4 } if key == "/k"), "{err:?}");
        let err = apply(&mut objects, Write::Create { key: "/k".into(), value: json!({}) }, 10).expect_err("exists");
        assert!(matches!(err, StoreError::AlreadyExists(ref key) if key == "/k"), "{err:?}");
        let err = apply(&mut objects, Write::Delete { key: "/z".into(), expected: None }, 10).expect_err("missing");
        assert!(matches!(err, StoreError::NotFound(ref key) if key == "/z"), "{err:?}");
    }

    #[test]
    fn writes_in_order_see_each_other() {
        let mut objects = Objects::new();
        let writes = [
            Write::Create { key: "/a".into(), value: json!({"v": 1}) },
            Write::Update { key: "/a".into(), value: json!({"v": 2}), expected: Some(1) },
            Write::Delete { key: "/a".into(), expected: Some(2) },
            Write::Create { key: "/a".into(), value: json!({"v": 3}) },
        ];
        let kinds: Vec<EventKind> = writes
            .into_iter()
            .zip(1..)
            .map(|(w, rev)| apply(&mut objects, w, rev).expect("apply").event.kind)
            .collect();
        assert_eq!(kinds, [EventKind::Added, EventKind::Modified, EventKind::Deleted, EventKind::Added]);
        assert_eq!(objects.get("/a"), Some(&object("/a", 4, json!({"v": 3, "metadata": {"resourceVersion": "4"}}))));
    }
}
