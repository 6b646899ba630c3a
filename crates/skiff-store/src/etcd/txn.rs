//! A [`Write`] as one etcd transaction, and the transaction's answer as the write's outcome.
//!
//! | write | compare | then | else |
//! |---|---|---|---|
//! | create | `create_revision == 0` | put | – (`AlreadyExists`) |
//! | update / delete, any revision | `create_revision > 0` | put / delete with prev_kv | – (`NotFound`) |
//! | update / delete at `expected` | `create_revision > 0` and `mod_revision == expected` | put / delete with prev_kv | get (`NotFound` or `Conflict`) |
//!
//! The `create_revision > 0` guard keeps an update expecting revision 0 from creating the key.
//! A failed transaction changes nothing and takes no revision.

use std::sync::Arc;

use etcd_client::{Compare, CompareOp, DeleteOptions, Txn, TxnOp, TxnOpResponse, TxnResponse};
use serde_json::Value;

use super::codec::{self, Keys, Kv};
use crate::{Json, Object, Revision, StoreError, Write};

/// What the transaction was for, kept to read its answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pending {
    Create { key: String, value: Value },
    Update { key: String, value: Value, expected: Option<Revision> },
    Delete { key: String, expected: Option<Revision> },
}

/// Builds the transaction for `write`.
pub(crate) fn build(keys: &Keys, write: Write) -> Result<(Txn, Pending), StoreError> {
    match write {
        Write::Create { key, value } => {
            let etcd_key = keys.etcd_key(&key)?;
            let bytes = codec::encode(value.clone());
            let txn = Txn::new()
                .when([Compare::create_revision(etcd_key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(etcd_key, bytes, None)]);
            Ok((txn, Pending::Create { key, value }))
        }
        Write::Update { key, value, expected } => {
            let etcd_key = keys.etcd_key(&key)?;
            let bytes = codec::encode(value.clone());
            let txn = guarded(&etcd_key, expected).and_then([TxnOp::put(etcd_key.clone(), bytes, None)]);
            Ok((or_get(txn, etcd_key, expected), Pending::Update { key, value, expected }))
        }
        Write::Delete { key, expected } => {
            let etcd_key = keys.etcd_key(&key)?;
            let txn = guarded(&etcd_key, expected)
                .and_then([TxnOp::delete(etcd_key.clone(), Some(DeleteOptions::new().with_prev_key()))]);
            Ok((or_get(txn, etcd_key, expected), Pending::Delete { key, expected }))
        }
    }
}

/// The compares of an update or delete: the key exists, at `expected` when given.
fn guarded(etcd_key: &str, expected: Option<Revision>) -> Txn {
    let mut compares = vec![Compare::create_revision(etcd_key, CompareOp::Greater, 0)];
    if let Some(expected) = expected {
        compares.push(Compare::mod_revision(etcd_key, CompareOp::Equal, codec::etcd_revision(expected)));
    }
    Txn::new().when(compares)
}

/// With an expected revision, a failed compare reads the key to tell `NotFound` from `Conflict`.
fn or_get(txn: Txn, etcd_key: String, expected: Option<Revision>) -> Txn {
    if expected.is_some() { txn.or_else([TxnOp::get(etcd_key, None)]) } else { txn }
}

/// What the store needs of a transaction's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub succeeded: bool,
    /// The header revision: for a successful write, the write's revision.
    pub revision: i64,
    /// The previous key-values of the delete (then) or the key read (else), if any.
    pub kvs: Vec<Kv>,
}

impl Answer {
    pub fn from_response(response: &TxnResponse) -> Result<Answer, StoreError> {
        let revision = response
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| StoreError::Backend("etcd transaction answer has no header".to_owned()))?;
        let mut kvs = Vec::new();
        for op in response.op_responses() {
            match op {
                TxnOpResponse::Delete(delete) => kvs.extend(delete.prev_kvs().iter().map(Kv::from)),
                TxnOpResponse::Get(get) => kvs.extend(get.kvs().iter().map(Kv::from)),
                TxnOpResponse::Put(_) | TxnOpResponse::Txn(_) => {}
            }
        }
        Ok(Answer { succeeded: response.succeeded(), revision, kvs })
    }
}

/// The outcome of the write: the object as stored (for a delete, its last state at the delete's
/// revision), or why it failed.
pub(crate) fn outcome(pending: Pending, answer: Answer) -> Result<Object, StoreError> {
    let rev = codec::revision(answer.revision)?;
    match pending {
        Pending::Create { key, mut value } | Pending::Update { key, mut value, .. } if answer.succeeded => {
            crate::json::set_resource_version(&mut value, rev);
            Ok(Object { key: Arc::from(key), rev, value: Json::encode(&value) })
        }
        Pending::Delete { key, .. } if answer.succeeded => {
            let last = answer.kvs.first().ok_or_else(|| {
                StoreError::Backend(format!("etcd deleted {key} at {rev} without returning its last state"))
            })?;
            let value = codec::decode(&key, &last.value, rev)?;
            Ok(Object { key: Arc::from(key), rev, value })
        }
        Pending::Create { key, .. } => Err(StoreError::AlreadyExists(key)),
        Pending::Update { key, expected, .. } | Pending::Delete { key, expected } => {
            match (expected, answer.kvs.first()) {
                (Some(expected), Some(current)) => {
                    let current = codec::revision(current.mod_revision)?;
                    Err(StoreError::Conflict { key, expected, current })
                }
                _ => Err(StoreError::NotFound(key)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn keys() -> Keys {
        Keys::new("/registry/")
    }

    fn kv(value: Value, rev: i64) -> Kv {
        Kv {
            key: b"/registry/k".to_vec(),
            value: value.to_string().into_bytes(),
            create_revision: 2,
            mod_revision: rev,
        }
    }

    fn answer(succeeded: bool, revision: i64, kvs: Vec<Kv>) -> Answer {
        Answer { succeeded, revision, kvs }
    }

    #[test]
    fn builds_only_for_mappable_keys() {
        for write in [
            Write::Create { key: "k".into(), value: json!({}) },
            Write::Update { key: "k".into(), value: json!({}), expected: None },
            Write::Delete { key: "k".into(), expected: Some(1) },
        ] {
            let err = build(&keys(), write).expect_err("refused");
            assert_eq!(err.to_string(), r#"store backend failed: store key "k" does not start with '/'"#);
        }
        let (_, pending) = build(&keys(), Write::Delete { key: "/k".into(), expected: Some(3) }).expect("built");
        assert_eq!(pending, Pending::Delete { key: "/k".into(), expected: Some(3) });
    }

    #[test]
    fn successful_writes_return_the_object_at_the_header_revision() {
        let value = json!({"metadata": {"name": "a", "resourceVersion": "1"}});
        let want = json!({"metadata": {"name": "a", "resourceVersion": "9"}});
        let cases = [
            Pending::Create { key: "/k".into(), value: value.clone() },
            Pending::Update { key: "/k".into(), value: value.clone(), expected: Some(4) },
            Pending::Update { key: "/k".into(), value: value.clone(), expected: None },
        ];
        for pending in cases {
            let object = outcome(pending.clone(), answer(true, 9, vec![])).expect("ok");
            assert_eq!((&*object.key, object.rev, object.value.parse()), ("/k", 9, want.clone()), "{pending:?}");
        }
        let deleted = outcome(
            Pending::Delete { key: "/k".into(), expected: None },
            answer(true, 12, vec![kv(json!({"metadata": {"name": "a"}}), 9)]),
        )
        .expect("deleted");
        assert_eq!(
            (deleted.rev, deleted.value.parse()),
            (12, json!({"metadata": {"name": "a", "resourceVersion": "12"}}))
        );
    }

    #[test]
    fn failed_compares_become_the_store_errors() {
        let cases: Vec<(Pending, Answer, &str)> = vec![
            (Pending::Create { key: "/k".into(), value: json!({}) }, answer(false, 7, vec![]), "key /k already exists"),
            (
                Pending::Update { key: "/k".into(), value: json!({}), expected: None },
                answer(false, 7, vec![]),
                "key /k not found",
            ),
            (
                Pending::Update { key: "/k".into(), value: json!({}), expected: Some(3) },
                answer(false, 7, vec![]),
                "key /k not found",
            ),
            (
                Pending::Update { key: "/k".into(), value: json!({}), expected: Some(3) },
                answer(false, 7, vec![kv(json!({}), 5)]),
                "key /k is at revision 5, not 3",
            ),
            (Pending::Delete { key: "/k".into(), expected: None }, answer(false, 7, vec![]), "key /k not found"),
            (
                Pending::Delete { key: "/k".into(), expected: Some(6) },
                answer(false, 7, vec![kv(json!({}), 5)]),
                "key /k is at revision 5, not 6",
            ),
            (
                Pending::Delete { key: "/k".into(), expected: None },
                answer(true, 7, vec![]),
                "store backend failed: etcd deleted /k at 7 without returning its last state",
            ),
            (
                Pending::Create { key: "/k".into(), value: json!({}) },
                answer(true, -7, vec![]),
                "store backend failed: etcd returned negative revision -7",
            ),
        ];
        for (pending, answer, want) in cases {
            let err = outcome(pending.clone(), answer).expect_err("fails");
            assert_eq!(err.to_string(), want, "{pending:?}");
        }
        let err = outcome(
            Pending::Update { key: "/k".into(), value: json!({}), expected: Some(3) },
            answer(false, 7, vec![kv(json!({}), 5)]),
        )
        .expect_err("conflict");
        assert!(matches!(err, StoreError::Conflict { ref key, expected: 3, current: 5 } if key == "/k"), "{err:?}");
    }
}
