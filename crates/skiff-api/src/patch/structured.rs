//! Schema-aware operations on objects for field ownership, after structured-merge-diff's `typed`
//! package: the field set of a value (`ToFieldSet`), the difference between two values (`Compare`),
//! the server-side apply merge (`Merge`), and removing a path from a value.
//!
//! Lists follow [`schema`](super::schema): map lists are keyed (`k:{...}`), sets are by value
//! (`v:...`), everything else is atomic (owned and replaced as a whole).

use serde_json::{Map, Value};

use super::fieldpath::{Path, Set, field_pe, key_pe, path_string, value_pe};
use super::schema::{self, FieldSchema, Shape, TypeName};

/// A value's field could not be addressed (a map-list element without its key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path}: element {index}: associative list with keys has an element that omits key field {key:?} (and doesn't have default value)"
)]
pub struct KeyError {
    pub path: String,
    pub index: usize,
    pub key: String,
}

/// The shape used for a value of unknown schema: objects merge field by field, lists are atomic.
pub(super) fn effective(schema: Option<FieldSchema>, v: Option<&Value>) -> Option<FieldSchema> {
    schema.or(match v {
        Some(Value::Object(_)) => Some(FieldSchema { shape: Shape::Object, ty: None }),
        Some(Value::Array(_)) => Some(FieldSchema { shape: Shape::AtomicList, ty: None }),
        _ => None,
    })
}

/// The `k:{...}` path element of a map-list element, `Err(key)` naming the first key it lacks.
pub fn element_key(list: &FieldSchema, item: &Value) -> Result<String, String> {
    let keys = list.list_keys().unwrap_or_default();
    let mut fields = Vec::with_capacity(keys.len());
    for k in keys {
        match item.get(k) {
            Some(v) if !v.is_null() => fields.push((k, v.clone())),
            _ => match list.key_default(k) {
                Some(d) => fields.push((k, Value::String(d.to_string()))),
                None => return Err(k.to_string()),
            },
        }
    }
    Ok(key_pe(&fields))
}

/// The path elements of a map list's elements, or `None` when one lacks its key.
pub(super) fn element_keys(list: &FieldSchema, items: &[Value]) -> Option<Vec<String>> {
    items.iter().map(|i| element_key(list, i).ok()).collect()
}

/// The fields set in a value (`ToFieldSet`): scalars, atomic values and list elements; an object that
/// merges field by field is not itself a member.
pub fn to_field_set(root: TypeName, value: &Value) -> Result<Set, KeyError> {
    let mut set = Set::new();
    let schema = FieldSchema { shape: Shape::Struct, ty: root };
    field_set_walk(Some(schema), value, &mut Vec::new(), &mut set)?;
    Ok(set)
}

fn field_set_walk(schema: Option<FieldSchema>, v: &Value, path: &mut Path, set: &mut Set) -> Result<(), KeyError> {
    let schema = effective(schema, Some(v));
    match (schema.map(|s| s.shape), v) {
        (Some(Shape::Struct | Shape::Object), Value::Object(m)) => {
            let ty = schema.and_then(|s| s.ty);
            for (k, child) in m {
                path.push(field_pe(k));
                field_set_walk(schema::field(ty, k), child, path, set)?;
                path.pop();
            }
        }
        (Some(Shape::MapList { .. }), Value::Array(items)) => {
            let Some(list) = schema else { return Ok(()) };
            let elem = Some(FieldSchema { shape: Shape::Struct, ty: list.ty });
            for (index, item) in items.iter().enumerate() {
                let pe = element_key(&list, item).map_err(|key| KeyError { path: path_string(path), index, key })?;
                path.push(pe);
                field_set_walk(elem, item, path, set)?;
                set.insert(path);
                path.pop();
            }
        }
        (Some(Shape::SetList { .. }), Value::Array(items)) => {
            for item in items {
                path.push(value_pe(item));
                set.insert(path);
                path.pop();
            }
        }
        _ => set.insert(path),
    }
    Ok(())
}

/// What changed between two values (`typed.Comparison`): `changed` holds the modified and added
/// paths, `removed` the removed ones. An added or removed object or list is itself in the set, as
/// are all its descendants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    pub changed: Set,
    pub removed: Set,
}

/// Compares `old` and `new` of a kind's root type. A struct held by value (`Shape::Struct`) is
/// taken as `{}` where it is missing under a present parent: in the typed form it is always there,
/// so filling it does not add the struct itself. `metadata.managedFields` is not compared: it is the
/// record of who owns what, never a field anyone owns (structured-merge-diff strips it first).
pub fn compare(root: TypeName, old: &Value, new: &Value) -> Comparison {
    let mut c = Comparison::default();
    let schema = FieldSchema { shape: Shape::Struct, ty: root };
    compare_walk(Some(schema), Some(old), Some(new), &mut Vec::new(), &mut c);
    c
}

fn compare_walk(
    schema: Option<FieldSchema>,
    l: Option<&Value>,
    r: Option<&Value>,
    path: &mut Path,
    c: &mut Comparison,
) {
    if l.is_none() && r.is_none() {
        return;
    }
    let schema = effective(schema, r.or(l));
    let shape = schema.map(|s| s.shape);
    let leaf = |c: &mut Comparison, path: &Path| match (l, r) {
        (None, Some(_)) => c.changed.insert(path),
        (Some(_), None) => c.removed.insert(path),
        (Some(a), Some(b)) if a != b => c.changed.insert(path),
        _ => {}
    };
    // An object or list that merges by parts is itself only added or removed, never "modified".
    let presence = |c: &mut Comparison, path: &Path| match (l, r) {
        (None, Some(_)) => c.changed.insert(path),
        (Some(_), None) => c.removed.insert(path),
        _ => {}
    };
    match (shape, l, r) {
        (Some(Shape::Struct | Shape::Object), lv, rv)
            if lv.is_none_or(Value::is_object) && rv.is_none_or(Value::is_object) =>
        {
            let empty = Map::new();
            let lm = lv.and_then(Value::as_object);
            let rm = rv.and_then(Value::as_object);
            let ty = schema.and_then(|s| s.ty);
            let mut keys: Vec<&String> = lm.unwrap_or(&empty).keys().chain(rm.unwrap_or(&empty).keys()).collect();
            keys.sort();
            keys.dedup();
            let blanks = Blanks::new();
            for k in keys {
                if k == "managedFields" && path.len() == 1 && path[0] == "f:metadata" {
                    continue;
                }
                let child = schema::field(ty, k);
                let blank = blanks.of(ty, k, child);
                path.push(field_pe(k));
                compare_walk(child, pick(lm, k, blank), pick(rm, k, blank), path, c);
                path.pop();
            }
            presence(c, path);
        }
        (Some(Shape::MapList { .. }), lv, rv) if lv.is_none_or(Value::is_array) && rv.is_none_or(Value::is_array) => {
            let Some(list) = schema else { return };
            let li: &[Value] = lv.and_then(Value::as_array).map_or(&[], Vec::as_slice);
            let ri: &[Value] = rv.and_then(Value::as_array).map_or(&[], Vec::as_slice);
            let (Some(lk), Some(rk)) = (element_keys(&list, li), element_keys(&list, ri)) else {
                return leaf(c, path);
            };
            let elem = Some(FieldSchema { shape: Shape::Struct, ty: list.ty });
            for (i, pe) in rk.iter().enumerate() {
                let other = lk.iter().position(|k| k == pe).map(|j| &li[j]);
                path.push(pe.clone());
                compare_walk(elem, other, Some(&ri[i]), path, c);
                path.pop();
            }
            for (j, pe) in lk.iter().enumerate() {
                if !rk.contains(pe) {
                    path.push(pe.clone());
                    compare_walk(elem, Some(&li[j]), None, path, c);
                    path.pop();
                }
            }
            presence(c, path);
        }
        (Some(Shape::SetList { .. }), lv, rv) if lv.is_none_or(Value::is_array) && rv.is_none_or(Value::is_array) => {
            let li: &[Value] = lv.and_then(Value::as_array).map_or(&[], Vec::as_slice);
            let ri: &[Value] = rv.and_then(Value::as_array).map_or(&[], Vec::as_slice);
            for v in ri.iter().filter(|v| !li.contains(v)) {
                path.push(value_pe(v));
                c.changed.insert(path);
                path.pop();
            }
            for v in li.iter().filter(|v| !ri.contains(v)) {
                path.push(value_pe(v));
                c.removed.insert(path);
                path.pop();
            }
            presence(c, path);
        }
        _ => leaf(c, path),
    }
}

/// The values an absent field takes under a present parent in the typed form, for comparison.
pub(super) struct Blanks {
    object: Value,
    list: Value,
}

impl Blanks {
    pub(super) fn new() -> Blanks {
        Blanks { object: Value::Object(Map::new()), list: Value::Array(Vec::new()) }
    }

    /// `{}` or `[]` for a field the typed form always carries (field `k` of type `ty`, schema
    /// `child`), none for any other.
    pub(super) fn of(&self, ty: TypeName, k: &str, child: Option<FieldSchema>) -> Option<&Value> {
        match child.map(|s| s.shape) {
            _ if !schema::always_present(ty, k, child) => None,
            Some(Shape::Struct | Shape::Object | Shape::AtomicObject) => Some(&self.object),
            _ => Some(&self.list),
        }
    }
}

/// A field of a present parent for comparison: a `null` field is an absent one, as in the typed
/// form, and a field the typed form always carries is `blank` (`{}` or `[]`) when absent.
pub(super) fn pick<'a>(m: Option<&'a Map<String, Value>>, k: &str, blank: Option<&'a Value>) -> Option<&'a Value> {
    match m?.get(k) {
        Some(v) if !v.is_null() => Some(v),
        _ => blank,
    }
}

/// The server-side apply merge of `config` into `live` (`TypedValue.Merge`): objects merge field by
/// field, map lists and sets merge element by element (in structured-merge-diff's order), atomic
/// values and scalars are replaced, and a `null` in the config removes the field.
pub fn merge(root: TypeName, live: &Value, config: &Value) -> Value {
    let schema = FieldSchema { shape: Shape::Struct, ty: root };
    merge_value(Some(schema), Some(live), config)
}

fn merge_value(schema: Option<FieldSchema>, l: Option<&Value>, r: &Value) -> Value {
    let schema = effective(schema, Some(r));
    match (schema.map(|s| s.shape), l, r) {
        (Some(Shape::Struct | Shape::Object), lv, Value::Object(rm)) => {
            let ty = schema.and_then(|s| s.ty);
            let mut out = lv.and_then(Value::as_object).cloned().unwrap_or_default();
            for (k, rv) in rm {
                if rv.is_null() {
                    out.remove(k);
                    continue;
                }
                let merged = merge_value(schema::field(ty, k), out.get(k), rv);
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Some(Shape::MapList { .. }), lv, Value::Array(ri)) if lv.is_none_or(Value::is_array) => {
            let Some(list) = schema else { return r.clone() };
            let li: &[Value] = lv.and_then(Value::as_array).map_or(&[], Vec::as_slice);
            let (Some(lk), Some(rk)) = (element_keys(&list, li), element_keys(&list, ri)) else {
                return r.clone();
            };
            let elem = Some(FieldSchema { shape: Shape::Struct, ty: list.ty });
            let out = merge_order(&lk, &rk)
                .into_iter()
                .map(|(lj, ri_)| match (lj, ri_) {
                    (lj, Some(i)) => merge_value(elem, lj.map(|j| &li[j]), &ri[i]),
                    (Some(j), None) => li[j].clone(),
                    (None, None) => Value::Null,
                })
                .collect();
            Value::Array(out)
        }
        (Some(Shape::SetList { .. }), lv, Value::Array(ri)) if lv.is_none_or(Value::is_array) => {
            let li: &[Value] = lv.and_then(Value::as_array).map_or(&[], Vec::as_slice);
            let lk: Vec<String> = li.iter().map(value_pe).collect();
            let rk: Vec<String> = ri.iter().map(value_pe).collect();
            let out = merge_order(&lk, &rk)
                .into_iter()
                .filter_map(|(lj, ri_)| ri_.map(|i| ri[i].clone()).or(lj.map(|j| li[j].clone())))
                .collect();
            Value::Array(out)
        }
        _ => r.clone(),
    }
}

/// The order of a merged keyed list (`mergingWalker.visitListItems`): returns, for each output
/// element, its index in the live list and in the config list. Config elements keep their relative
/// order; live-only elements stay where they were relative to the shared ones.
fn merge_order(lhs: &[String], rhs: &[String]) -> Vec<(Option<usize>, Option<usize>)> {
    let pos = |list: &[String], pe: &String| list.iter().position(|x| x == pe);
    let mut shared = rhs.iter().filter(|pe| lhs.contains(pe));
    let mut next_shared = shared.next();
    let mut merged_rhs: Vec<&String> = Vec::new();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let (mut li, mut ri) = (0, 0);
    while li < lhs.len() || ri < rhs.len() {
        if li < lhs.len() && ri < rhs.len() {
            let pe = &lhs[li];
            if *pe == rhs[ri] {
                merged_rhs.push(pe);
                out.push((Some(li), Some(ri)));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if rhs.contains(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lhs.len() {
            let pe = &lhs[li];
            if !rhs.contains(pe) {
                out.push((Some(li), None));
                li += 1;
                continue;
            } else if merged_rhs.contains(&pe) {
                li += 1;
                continue;
            }
        }
        if ri < rhs.len() {
            let pe = &rhs[ri];
            merged_rhs.push(pe);
            out.push((pos(lhs, pe), Some(ri)));
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
        }
    }
    out
}

/// Removes the value at `path` (if present); returns whether something was removed.
pub fn remove_path(root: TypeName, value: &mut Value, path: &[String]) -> bool {
    let schema = FieldSchema { shape: Shape::Struct, ty: root };
    remove_walk(Some(schema), value, path)
}

fn remove_walk(schema: Option<FieldSchema>, value: &mut Value, path: &[String]) -> bool {
    let [pe, rest @ ..] = path else { return false };
    let schema = effective(schema, Some(value));
    if let Some(name) = pe.strip_prefix("f:") {
        let Value::Object(m) = value else { return false };
        if rest.is_empty() {
            return m.remove(name).is_some();
        }
        let child = schema::field(schema.and_then(|s| s.ty), name);
        return m.get_mut(name).is_some_and(|v| remove_walk(child, v, rest));
    }
    let Value::Array(items) = value else { return false };
    let position = match schema {
        Some(list @ FieldSchema { shape: Shape::MapList { .. }, .. }) if pe.starts_with("k:") => {
            items.iter().position(|i| element_key(&list, i).is_ok_and(|k| k == *pe))
        }
        _ if pe.starts_with("v:") => items.iter().position(|i| value_pe(i) == *pe),
        _ => pe.strip_prefix("i:").and_then(|i| i.parse::<usize>().ok()).filter(|i| *i < items.len()),
    };
    let Some(i) = position else { return false };
    if rest.is_empty() {
        items.remove(i);
        return true;
    }
    let elem = schema.map(|s| FieldSchema { shape: Shape::Struct, ty: s.ty });
    remove_walk(elem, &mut items[i], rest)
}

/// The value at `path`, if present.
pub fn get_path<'a>(root: TypeName, value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut schema = Some(FieldSchema { shape: Shape::Struct, ty: root });
    let mut cur = value;
    for pe in path {
        let s = effective(schema, Some(cur));
        if let Some(name) = pe.strip_prefix("f:") {
            cur = cur.as_object()?.get(name)?;
            schema = schema::field(s.and_then(|s| s.ty), name);
        } else {
            let items = cur.as_array()?;
            cur = match s {
                Some(list @ FieldSchema { shape: Shape::MapList { .. }, .. }) if pe.starts_with("k:") => {
                    items.iter().find(|i| element_key(&list, i).is_ok_and(|k| k == *pe))?
                }
                _ => items.iter().find(|i| value_pe(i) == *pe)?,
            };
            schema = s.map(|s| FieldSchema { shape: Shape::Struct, ty: s.ty });
        }
    }
    Some(cur)
}

/// Whether a value carries no fields: an empty object or list.
pub fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::fieldpath::path;
    use serde_json::json;

    fn deploy() -> TypeName {
        schema::root("Deployment")
    }

    #[test]
    fn field_set_of_an_applied_deployment() {
        let applied = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}
                }
            }
        });
        let set = to_field_set(deploy(), &applied).expect("keys present");
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:apiVersion": {}, "f:kind": {},
                "f:metadata": {"f:name": {}, "f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                            ".": {}, "f:image": {}, "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                        }}}
                    }
                }
            })
        );
    }

    #[test]
    fn missing_list_key_is_an_error() {
        let bad = json!({"spec": {"containers": [{"image": "nginx"}]}});
        let err = to_field_set(schema::root("Pod"), &bad).expect_err("no name");
        assert_eq!(
            err.to_string(),
            ".spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
        );
    }

    #[test]
    fn compare_marks_added_maps_but_not_value_structs() {
        let old = json!({"metadata": {"name": "web"}});
        let new = json!({
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a"]},
            "spec": {"replicas": 1, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}}
        });
        let c = compare(deploy(), &old, &new);
        assert_eq!(
            c.changed.to_fields_v1(),
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}, "f:finalizers": {".": {}, "v:\"a\"": {}}},
                "f:spec": {"f:replicas": {}, "f:strategy": {"f:type": {}, "f:rollingUpdate": {".": {}, "f:maxSurge": {}}}}
            })
        );
        assert!(c.removed.is_empty());
        let back = compare(deploy(), &new, &old);
        assert_eq!(back.removed.to_fields_v1(), c.changed.to_fields_v1());
    }

    #[test]
    fn compare_list_elements_by_key() {
        let old = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let new = json!({"spec": {"containers": [{"name": "a", "image": "x2"}, {"name": "c", "image": "z"}]}});
        let c = compare(schema::root("Pod"), &old, &new);
        assert_eq!(
            c.changed.to_fields_v1(),
            json!({"f:spec": {"f:containers": {
                "k:{\"name\":\"a\"}": {"f:image": {}},
                "k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}})
        );
        assert_eq!(
            c.removed.to_fields_v1(),
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"b\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
    }

    #[test]
    fn merge_keeps_live_elements_and_config_order() {
        let cases = [
            (vec!["a", "b", "c"], vec!["b", "d"], vec!["a", "b", "c", "d"]),
            (vec!["a", "b"], vec!["b", "a"], vec!["b", "a"]),
            (vec!["a", "b", "c"], vec!["x", "c", "a"], vec!["b", "x", "c", "a"]),
            (vec![], vec!["a"], vec!["a"]),
        ];
        for (l, r, want) in cases {
            let live = json!({"spec": {"containers": l.iter().map(|n| json!({"name": n, "image": "live"})).collect::<Vec<_>>()}});
            let config = json!({"spec": {"containers": r.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}});
            let merged = merge(schema::root("Pod"), &live, &config);
            let names: Vec<&str> = merged["spec"]["containers"]
                .as_array()
                .expect("list")
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect();
            assert_eq!(names, want, "{l:?} + {r:?}");
        }
        let live = json!({"spec": {"containers": [{"name": "a", "image": "x", "args": ["1", "2"]}]}, "metadata": {"finalizers": ["f1"]}});
        let config =
            json!({"spec": {"containers": [{"name": "a", "args": ["3"]}]}, "metadata": {"finalizers": ["f2"]}});
        assert_eq!(
            merge(schema::root("Pod"), &live, &config),
            json!({"spec": {"containers": [{"name": "a", "image": "x", "args": ["3"]}]}, "metadata": {"finalizers": ["f1", "f2"]}})
        );
    }

    #[test]
    fn remove_and_get_by_path() {
        let mut v = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}, {"name": "b"}]}});
        let port = path(&[
            "f:spec",
            "f:containers",
            "k:{\"name\":\"a\"}",
            "f:ports",
            "k:{\"containerPort\":80,\"protocol\":\"TCP\"}",
        ]);
        assert_eq!(get_path(schema::root("Pod"), &v, &port), Some(&json!({"containerPort": 80})));
        assert!(remove_path(schema::root("Pod"), &mut v, &port));
        assert!(remove_path(schema::root("Pod"), &mut v, &path(&["f:spec", "f:containers", "k:{\"name\":\"b\"}"])));
        assert!(!remove_path(schema::root("Pod"), &mut v, &path(&["f:spec", "f:nothing"])));
        assert_eq!(v, json!({"spec": {"containers": [{"name": "a", "ports": []}]}}));
    }
}
