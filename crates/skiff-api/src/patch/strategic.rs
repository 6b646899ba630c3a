//! Strategic merge patch (`application/strategic-merge-patch+json`), as the apiserver applies it
//! (`apimachinery pkg/util/strategicpatch/patch.go: StrategicMergeMapPatch`, with
//! `MergeParallelList` and `IgnoreUnmatchedNulls`).
//!
//! * Objects merge key by key; `null` deletes a key.
//! * Lists with `patchStrategy: merge` merge by their merge key (lists of scalars: union); other lists
//!   are replaced. Which is which comes from [`schema`].
//! * Directives: `$patch: replace|delete` in an object, `$patch: replace|delete` as a list item,
//!   `$retainKeys`, `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`.
//! * Without `$setElementOrder`, items a patch adds to a merged list go *before* the items only the
//!   server has (upstream's `mergeSortedSlice`; `kubectl patch` users see this).
//!
//! Values a patch introduces where the original has nothing are taken as they are, minus directive
//! keys and `null`s (upstream takes them raw and its typed decoding drops those).

use serde_json::{Map, Value};

use super::schema::{self, FieldSchema, SmpList, TypeName};
use super::unprocessable;
use crate::error::ApiError;
use crate::resource::ResourceInfo;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList";
const SET_ORDER_PREFIX: &str = "$setElementOrder";

/// Why a strategic merge patch could not be applied, worded as `apimachinery pkg/util/mergepatch`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmpError {
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    #[error("lists of lists are not supported")]
    ListOfLists,
    #[error("patch content doesn't match retainKeys list")]
    RetainKeysMismatch,
    /// Errors upstream returns as plain Go errors (the apiserver answers them with a 500).
    #[error("{0}")]
    Other(String),
}

impl SmpError {
    /// The status the apiserver answers with (`handlers/patch.go: interpretStrategicMergePatchError`):
    /// format errors are 400, list-of-lists and retainKeys mismatches 422, the rest (a missing merge
    /// key, an unknown `$patch`) are plain errors, which the apiserver reports as 500 with no reason.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            SmpError::BadPrimitiveList | SmpError::BadRetainKeys | SmpError::BadSetElementOrder => {
                ApiError::bad_request(self.to_string())
            }
            SmpError::ListOfLists | SmpError::RetainKeysMismatch => unprocessable(self.to_string()),
            SmpError::Other(msg) => ApiError::new(500, "", msg.clone()),
        }
    }
}

/// Applies a strategic merge patch to `target`, an object of `resource`'s kind.
pub fn strategic_merge_patch(resource: &ResourceInfo, target: &Value, patch: &Value) -> Result<Value, ApiError> {
    let patch = match patch {
        Value::Object(m) => m.clone(),
        Value::Null => return Ok(target.clone()),
        other => {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind(other)
            )));
        }
    };
    let original = target.as_object().cloned().unwrap_or_default();
    merge_map(original, patch, schema::root(resource.kind)).map(Value::Object).map_err(|e| e.to_api_error())
}

/// Applies a strategic merge patch below a named schema type (for callers that patch a part of an
/// object, and for tests).
pub fn merge_object(ty: TypeName, original: &Value, patch: &Value) -> Result<Value, SmpError> {
    let o = original.as_object().cloned().unwrap_or_default();
    let p = patch.as_object().cloned().unwrap_or_default();
    merge_map(o, p, ty).map(Value::Object)
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    ty: TypeName,
) -> Result<Map<String, Value>, SmpError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(clean_map(patch))
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(bad_patch_type(directive, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, ty)?;

    let mut deletions = Vec::new();
    for (key, pv) in patch {
        if key.starts_with(DELETE_PRIMITIVE_PREFIX) {
            deletions.push((extract_key(&key, DELETE_PRIMITIVE_PREFIX)?, pv));
            continue;
        }
        if key.starts_with('$') {
            // An unknown directive: upstream's typed decoding drops it.
            continue;
        }
        if pv.is_null() {
            original.remove(&key);
            continue;
        }
        let field = schema::field(ty, &key);
        let merged = match (original.remove(&key), pv) {
            (None, pv) => clean(pv),
            (Some(Value::Object(o)), Value::Object(p)) => Value::Object(merge_map(o, p, field.and_then(|f| f.ty))?),
            (Some(Value::Array(o)), Value::Array(p)) => Value::Array(merge_list(o, p, field)?),
            (Some(_), pv) => clean(pv),
        };
        original.insert(key, merged);
    }
    for (key, pv) in deletions {
        match (original.get_mut(&key), pv) {
            (_, Value::Null) => {
                original.remove(&key);
            }
            (Some(Value::Array(items)), Value::Array(remove)) => items.retain(|i| !remove.contains(i)),
            (Some(_), other) => return Err(bad_arg_type("[]interface {}", &other)),
            (None, _) => {}
        }
    }
    Ok(original)
}

/// `$retainKeys`: validates that the patch only sets listed keys, and clears the others.
fn apply_retain_keys(original: &mut Map<String, Value>, patch: &mut Map<String, Value>) -> Result<(), SmpError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else { return Ok(()) };
    let Value::Array(list) = retain else { return Err(SmpError::BadRetainKeys) };
    let listed = |k: &str| list.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_PRIMITIVE_PREFIX) || k.starts_with(SET_ORDER_PREFIX) {
            continue;
        }
        if !listed(k) {
            return Err(SmpError::RetainKeysMismatch);
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `$setElementOrder/<field>` (`mergePatchIntoOriginal`): merges the field's list and orders the
/// result: the order list first, then the patch, then the live list.
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    ty: TypeName,
) -> Result<(), SmpError> {
    let keys: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ORDER_PREFIX)).cloned().collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else { continue };
        let Value::Array(order) = order else { return Err(bad_arg_type("[]interface {}", &order)) };
        let name = extract_key(&key, SET_ORDER_PREFIX)?;
        let original_list = match original.get(&name) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        let patch_list = match patch.get(&name) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        let field = schema::field(ty, &name);
        let merge_key = match schema::smp_list(field) {
            SmpList::MergeByKey(k) => Some(k),
            _ => None,
        };
        validate_set_order(patch_list.as_deref().unwrap_or(&[]), &order, merge_key)?;
        let merged = match (&original_list, patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => merge_list(Vec::new(), p, field)?,
            (Some(o), Some(p)) => merge_list(o.clone(), p, field)?,
            (None, None) => continue,
        };
        patch.remove(&name);
        let ordered = if schema::smp_list(field) == SmpList::Replace || merged.is_empty() {
            merged
        } else {
            let (in_order, server_only) = partition(&merged, &order, merge_key)?;
            normalize_element_order(in_order, server_only, &order, original_list.as_deref().unwrap_or(&[]), merge_key)?
        };
        original.insert(name, Value::Array(ordered));
    }
    Ok(())
}

/// The items of a patch list must appear in the `$setElementOrder` list, in the same relative order.
fn validate_set_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<(), SmpError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let kept: Vec<&Value> = match key {
        Some(_) => {
            for item in patch {
                if !item.is_object() {
                    return Err(bad_arg_type("map[string]interface {}", item));
                }
            }
            patch.iter().filter(|i| i.get(DIRECTIVE).and_then(Value::as_str) != Some("delete")).collect()
        }
        None => patch.iter().collect(),
    };
    let (mut pi, mut si) = (0, 0);
    while pi < kept.len() && si < order.len() {
        if kept[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if key_value_equal(kept[pi], &order[si], key)? {
            pi += 1;
        }
        si += 1;
    }
    if pi < kept.len() && si >= order.len() {
        return Err(SmpError::Other(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ORDER_PREFIX} list:\n{}\n",
            go_fmt(&Value::Array(patch.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

fn key_value_equal(left: &Value, right: &Value, key: Option<&str>) -> Result<bool, SmpError> {
    let Some(key) = key else { return Ok(left == right) };
    let l = merge_key_of(left, key)?;
    let r = merge_key_of(right, key)?;
    Ok(l == r)
}

fn merge_key_of<'a>(item: &'a Value, key: &str) -> Result<&'a Value, SmpError> {
    let Value::Object(m) = item else { return Err(bad_arg_type("map[string]interface {}", item)) };
    m.get(key).ok_or_else(|| no_merge_key(m, key))
}

/// Merges two lists by the field's SMP strategy (`mergeSliceHandler`).
fn merge_list(original: Vec<Value>, patch: Vec<Value>, field: Option<FieldSchema>) -> Result<Vec<Value>, SmpError> {
    match schema::smp_list(field) {
        SmpList::Replace => Ok(clean_list(patch)),
        SmpList::MergeScalars => merge_slice(original, patch, None, None),
        SmpList::MergeByKey(key) => merge_slice(original, patch, Some(key), field.and_then(|f| f.ty))
            .map(|items| items.into_iter().map(clean).collect()),
    }
}

#[derive(PartialEq)]
enum ElementKind {
    Map,
    Scalar,
}

/// `sliceElementType`: all items of both lists must be of one type, and not lists.
fn element_kind(lists: &[&[Value]]) -> Result<Option<ElementKind>, SmpError> {
    let mut seen: Option<&'static str> = None;
    for list in lists {
        for v in *list {
            let t = go_type(v);
            if v.is_array() {
                return Err(SmpError::ListOfLists);
            }
            match seen {
                None => seen = Some(t),
                Some(s) if s != t => {
                    let all: Vec<Value> = lists.iter().map(|l| Value::Array(l.to_vec())).collect();
                    return Err(SmpError::Other(format!(
                        "list element types are not identical: {}",
                        go_fmt(&Value::Array(all))
                    )));
                }
                _ => {}
            }
        }
    }
    Ok(seen.map(|t| if t == GO_MAP { ElementKind::Map } else { ElementKind::Scalar }))
}

/// `mergeSlice`: merges a patch list into an original list with merge semantics.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    key: Option<&str>,
    elem: TypeName,
) -> Result<Vec<Value>, SmpError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let Some(kind) = element_kind(&[&original, &patch])? else { return Ok(original) };
    if kind == ElementKind::Scalar {
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only) = partition(&merged, &patch, None)?;
        return normalize_element_order(in_patch, server_only, &patch, &original, None);
    }
    let Some(key) = key else {
        return Err(SmpError::Other("cannot merge lists without merge key for type struct".to_string()));
    };
    let (original, patch) = apply_list_directives(original, patch, key)?;
    let mut merged = original.clone();
    for item in &patch {
        let Value::Object(p) = item else { return Err(bad_arg_type("map[string]interface {}", item)) };
        let value = p.get(key).ok_or_else(|| no_merge_key(p, key))?;
        match merged.iter().position(|o| o.get(key) == Some(value)) {
            Some(i) => {
                let o = merged[i].as_object().cloned().unwrap_or_default();
                merged[i] = Value::Object(merge_map(o, p.clone(), elem)?);
            }
            None => merged.push(item.clone()),
        }
    }
    let (in_patch, server_only) = partition(&merged, &patch, Some(key))?;
    normalize_element_order(in_patch, server_only, &patch, &original, Some(key))
}

/// `mergeSliceWithSpecialElements`: `$patch: delete` items delete by key, `$patch: replace` makes
/// the patch list (without directives) the result.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), SmpError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Value::Object(m) = &item else { return Err(bad_arg_type("map[string]interface {}", &item)) };
        match m.get(DIRECTIVE) {
            None => plain.push(item),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let value = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
                    original.retain(|o| o.get(key) != Some(value));
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(SmpError::Other("merging lists cannot yet be specified in the patch".to_string()));
                }
                _ => return Err(bad_patch_type(d, m)),
            },
        }
    }
    if replace { Ok((plain, Vec::new())) } else { Ok((original, plain)) }
}

/// Splits `items` into those present in `by` (by merge key, or by value) and the others.
fn partition(items: &[Value], by: &[Value], key: Option<&str>) -> Result<(Vec<Value>, Vec<Value>), SmpError> {
    let mut present = Vec::new();
    let mut others = Vec::new();
    for item in items {
        let found = match key {
            None => by.contains(item),
            Some(k) => {
                let v = merge_key_of(item, k)?;
                by.iter().any(|b| b.get(k) == Some(v))
            }
        };
        if found { present.push(item.clone()) } else { others.push(item.clone()) }
    }
    Ok((present, others))
}

/// `normalizeElementOrder`: sorts the patch items by the patch order and the server-only items by
/// the server order, then interleaves them (`mergeSortedSlice`).
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, SmpError> {
    let patch = normalize_slice_order(patch, patch_order, key)?;
    let server_only = normalize_slice_order(server_only, server_order, key)?;
    Ok(merge_sorted_slice(server_only, patch, server_order, key))
}

fn index_of(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    match key {
        None => list.iter().position(|v| v == item),
        Some(k) => {
            let wanted = item.get(k);
            list.iter().position(|v| v.get(k) == wanted)
        }
    }
}

fn normalize_slice_order(items: Vec<Value>, order: &[Value], key: Option<&str>) -> Result<Vec<Value>, SmpError> {
    let (mut items, deletes) = match key {
        Some(k) => {
            for v in items.iter().chain(order.iter()) {
                merge_key_of(v, k)?;
            }
            items.into_iter().partition(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"))
        }
        None => (items, Vec::new()),
    };
    items.sort_by_key(|v| index_of(order, v, key).unwrap_or(usize::MAX));
    items.extend(deletes);
    Ok(items)
}

/// `mergeSortedSlice`: inserts the server-only items (`left`) among the patch items (`right`),
/// keeping both relative orders; a left item goes first only when both are in the server order
/// and it comes earlier there.
fn merge_sorted_slice(left: Vec<Value>, right: Vec<Value>, server_order: &[Value], key: Option<&str>) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() || j < right.len() {
        if i >= left.len() {
            out.push(right[j].clone());
            j += 1;
        } else if j >= right.len() {
            out.push(left[i].clone());
            i += 1;
        } else {
            let li = index_of(server_order, &left[i], key);
            let ri = index_of(server_order, &right[j], key);
            if matches!((li, ri), (Some(a), Some(b)) if a < b) {
                out.push(left[i].clone());
                i += 1;
            } else {
                out.push(right[j].clone());
                j += 1;
            }
        }
    }
    out
}

/// `extractKey`: the field name after `<prefix>/`.
fn extract_key(s: &str, prefix: &str) -> Result<String, SmpError> {
    match s.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest.to_string()),
        _ if prefix == DELETE_PRIMITIVE_PREFIX => Err(SmpError::BadPrimitiveList),
        _ => Err(SmpError::BadSetElementOrder),
    }
}

/// A value the patch introduces: directives and `null`s dropped, `$patch: delete` items left out.
fn clean(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            if m.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                return Value::Object(Map::new());
            }
            Value::Object(clean_map(m))
        }
        Value::Array(a) => Value::Array(clean_list(a)),
        other => other,
    }
}

fn clean_map(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter().filter(|(k, v)| !k.starts_with('$') && !v.is_null()).map(|(k, v)| (k, clean(v))).collect()
}

fn clean_list(a: Vec<Value>) -> Vec<Value> {
    a.into_iter().filter(|i| i.get(DIRECTIVE).and_then(Value::as_str) != Some("delete")).map(clean).collect()
}

fn no_merge_key(m: &Map<String, Value>, key: &str) -> SmpError {
    SmpError::Other(format!("map: {} does not contain declared merge key: {key}", go_fmt(&Value::Object(m.clone()))))
}

fn bad_patch_type(t: &Value, m: &Map<String, Value>) -> SmpError {
    SmpError::Other(format!("unknown patch type: {} in map: {}", go_fmt(t), go_fmt(&Value::Object(m.clone()))))
}

fn bad_arg_type(expected: &str, actual: &Value) -> SmpError {
    SmpError::Other(format!("expected a {expected}, but received a {}", go_type(actual)))
}

const GO_MAP: &str = "map[string]interface {}";

/// The Go type a JSON value decodes to (`reflect.TypeOf` in upstream messages).
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "%!s(<nil>)",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => GO_MAP,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

/// A value printed as Go's `%v` prints decoded JSON (`map[a:1 b:x]`, `[a b]`).
pub(crate) fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys.iter().map(|k| format!("{k}:{}", go_fmt(&m[k.as_str()]))).collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::lookup;
    use serde_json::json;

    fn pod() -> &'static ResourceInfo {
        lookup("", "v1", "pods").expect("pods")
    }

    fn deployments() -> &'static ResourceInfo {
        lookup("apps", "v1", "deployments").expect("deployments")
    }

    fn names(v: &Value) -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|c| c["name"].as_str().unwrap_or("?").to_string()).collect())
            .unwrap_or_default()
    }

    /// Table of (description, original, patch, expected), applied to a Pod.
    #[test]
    fn pod_patch_table() {
        let cases: Vec<(&str, Value, Value, Value)> = vec![
            (
                "maps merge and null deletes",
                json!({"metadata": {"labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}}}),
                json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
                json!({"metadata": {"labels": {"b": "2", "c": "3"}, "annotations": {"x": "y"}}}),
            ),
            (
                "null for an absent key is ignored",
                json!({"metadata": {"name": "p"}}),
                json!({"metadata": {"labels": null}}),
                json!({"metadata": {"name": "p"}}),
            ),
            (
                "merge list item by key keeps unpatched fields",
                json!({"spec": {"containers": [{"name": "a", "image": "x", "args": ["1"]}, {"name": "b", "image": "y"}]}}),
                json!({"spec": {"containers": [{"name": "b", "image": "y2"}]}}),
                json!({"spec": {"containers": [{"name": "a", "image": "x", "args": ["1"]}, {"name": "b", "image": "y2"}]}}),
            ),
            (
                "new item without $setElementOrder goes first",
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                json!({"spec": {"containers": [{"name": "c", "image": "z"}]}}),
                json!({"spec": {"containers": [{"name": "c", "image": "z"}, {"name": "a"}, {"name": "b"}]}}),
            ),
            (
                "$setElementOrder orders the merged list",
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}], "containers": [{"name": "c"}]}}),
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}}),
            ),
            (
                "$setElementOrder reorders without content",
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
                json!({"spec": {"containers": [{"name": "b"}, {"name": "a"}]}}),
            ),
            (
                "server-only items keep their place between ordered ones",
                json!({"spec": {"containers": [{"name": "a"}, {"name": "s"}, {"name": "b"}]}}),
                json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}], "containers": [{"name": "a", "image": "i"}]}}),
                json!({"spec": {"containers": [{"name": "s"}, {"name": "b"}, {"name": "a", "image": "i"}]}}),
            ),
            (
                "$patch: delete item removes by key",
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
                json!({"spec": {"containers": [{"name": "b"}]}}),
            ),
            (
                "$patch: replace item replaces the list",
                json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}}),
                json!({"spec": {"containers": [{"name": "c"}, {"$patch": "replace"}]}}),
                json!({"spec": {"containers": [{"name": "c"}]}}),
            ),
            (
                "$patch: replace in a map replaces it",
                json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
                json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
                json!({"metadata": {"labels": {"c": "3"}}}),
            ),
            (
                "$patch: delete in a map empties it",
                json!({"metadata": {"labels": {"a": "1"}}, "spec": {"nodeName": "n"}}),
                json!({"metadata": {"labels": {"$patch": "delete"}}}),
                json!({"metadata": {"labels": {}}, "spec": {"nodeName": "n"}}),
            ),
            (
                "atomic lists are replaced",
                json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}], "containers": [{"name": "a", "args": ["1", "2"]}]}}),
                json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}], "containers": [{"name": "a", "args": ["3"]}]}}),
                json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}], "containers": [{"name": "a", "args": ["3"]}]}}),
            ),
            (
                "container ports merge on containerPort",
                json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}]}}),
                json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "web"}]}]}}),
                json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]}]}}),
            ),
            (
                "env and volumeMounts merge by name and mountPath",
                json!({"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}], "volumeMounts": [{"mountPath": "/d", "name": "v"}]}]}}),
                json!({"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}], "volumeMounts": [{"mountPath": "/d", "readOnly": true}]}]}}),
                json!({"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}], "volumeMounts": [{"mountPath": "/d", "name": "v", "readOnly": true}]}]}}),
            ),
            (
                "finalizers merge as a set, patch items first",
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"finalizers": ["c", "a"]}}),
                json!({"metadata": {"finalizers": ["c", "a", "b"]}}),
            ),
            (
                "$deleteFromPrimitiveList removes from a merged scalar list",
                json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
                json!({"metadata": {"finalizers": ["a", "c"]}}),
            ),
            (
                "$setElementOrder on a scalar list",
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}}),
                json!({"metadata": {"finalizers": ["b", "c", "a"]}}),
            ),
            (
                "ownerReferences merge on uid",
                json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "rs-a", "controller": true}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": null}, {"uid": "2", "name": "rs-b"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "rs-a"}, {"uid": "2", "name": "rs-b"}]}}),
            ),
            (
                "status conditions merge on type",
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}}),
                json!({"status": {"$setElementOrder/conditions": [{"type": "Ready"}, {"type": "PodScheduled"}], "conditions": [{"type": "Ready", "status": "True"}]}}),
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}}),
            ),
            (
                "a new list is taken from the patch without directives",
                json!({"spec": {}}),
                json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "gone", "$patch": "delete"}]}}),
                json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
            ),
            (
                "a scalar replaced by an object",
                json!({"spec": {"x": 1}}),
                json!({"spec": {"x": {"y": 2, "z": null}}}),
                json!({"spec": {"x": {"y": 2}}}),
            ),
            (
                "unknown fields: maps merge, lists replace",
                json!({"spec": {"custom": {"a": 1, "l": [1, 2]}}}),
                json!({"spec": {"custom": {"b": 2, "l": [3]}}}),
                json!({"spec": {"custom": {"a": 1, "b": 2, "l": [3]}}}),
            ),
        ];
        for (what, original, patch, want) in cases {
            let got = strategic_merge_patch(pod(), &original, &patch).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn retain_keys() {
        let original = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}});
        assert_eq!(
            strategic_merge_patch(deployments(), &original, &patch).expect("applies"),
            json!({"spec": {"strategy": {"type": "Recreate"}}})
        );
        let mismatch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}});
        let e = strategic_merge_patch(deployments(), &original, &mismatch).expect_err("mismatch");
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        assert_eq!(e.causes[0].message, "patch content doesn't match retainKeys list");
        let bad = json!({"spec": {"strategy": {"$retainKeys": "type"}}});
        let e = strategic_merge_patch(deployments(), &original, &bad).expect_err("bad format");
        assert_eq!((e.code, e.message.as_str()), (400, "invalid patch format of retainKeys"));
    }

    #[test]
    fn bad_patches() {
        let original = json!({"metadata": {"labels": {}}, "spec": {"containers": [{"name": "a"}], "tolerations": []}});
        let cases: Vec<(Value, u16, &str)> = vec![
            (json!([1]), 400, "json: cannot unmarshal array into Go value of type map[string]interface {}"),
            (
                json!({"spec": {"containers": [{"image": "nginx"}]}}),
                500,
                "map: map[image:nginx] does not contain declared merge key: name",
            ),
            (
                json!({"spec": {"containers": [{"$patch": "delete", "image": "x"}]}}),
                500,
                "map: map[$patch:delete image:x] does not contain declared merge key: name",
            ),
            (json!({"metadata": {"$patch": "merge"}}), 500, "unknown patch type: merge in map: map[$patch:merge]"),
            (
                json!({"metadata": {"$patch": "bogus", "a": 1}}),
                500,
                "unknown patch type: bogus in map: map[$patch:bogus a:1]",
            ),
            (
                json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}),
                500,
                "merging lists cannot yet be specified in the patch",
            ),
            (json!({"spec": {"$setElementOrder": []}}), 400, "invalid patch format of setElementOrder list"),
            (json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}), 400, "invalid patch format of primitive list"),
            (
                json!({"spec": {"containers": [[1]]}}),
                422,
                "the server rejected our request due to an error in our request",
            ),
            (json!({"spec": {"containers": ["x"]}}), 500, "list element types are not identical: [[map[name:a]] [x]]"),
            (
                json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "b"}]}}),
                500,
                "The order in patch list:\n[map[name:b]]\n doesn't match $setElementOrder list:\n[map[name:a]]\n",
            ),
        ];
        for (patch, code, message) in cases {
            let e = strategic_merge_patch(pod(), &original, &patch).expect_err(message);
            assert_eq!((e.code, e.message.as_str()), (code, message), "{patch}");
        }
        assert_eq!(strategic_merge_patch(pod(), &original, &Value::Null).expect("null is a no-op"), original);
    }

    fn live_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "9",
                         "annotations": {"deployment.kubernetes.io/revision": "1",
                                         "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "web", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log"},
                        {"name": "sidecar", "image": "busybox"}
                    ], "restartPolicy": "Always"}
                }
            }
        })
    }

    #[test]
    fn kubectl_apply_three_way_patch_changes_an_image() {
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}\n"}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [{"image": "nginx:1.26", "name": "web"}]
            }}}
        });
        let out = strategic_merge_patch(deployments(), &live_deployment(), &patch).expect("applies");
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(names(containers), vec!["web", "sidecar"]);
        assert_eq!(containers[0]["image"], "nginx:1.26");
        assert_eq!(containers[0]["imagePullPolicy"], "IfNotPresent", "server defaults survive");
        assert_eq!(out["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1");
        assert_eq!(out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"], "{\"new\":1}\n");
        assert_eq!(out["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    }

    #[test]
    fn kubectl_apply_three_way_patch_changes_replicas_and_drops_a_container() {
        let patch = json!({
            "spec": {
                "replicas": 3,
                "template": {"spec": {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [{"$patch": "delete", "name": "sidecar"}]
                }}
            }
        });
        let out = strategic_merge_patch(deployments(), &live_deployment(), &patch).expect("applies");
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(names(&out["spec"]["template"]["spec"]["containers"]), vec!["web"]);
    }

    #[test]
    fn kubectl_set_image_and_rollout_restart_patches() {
        // `kubectl set image deployment/web web=nginx:1.27`
        let set_image =
            json!({"spec": {"template": {"spec": {"containers": [{"image": "nginx:1.27", "name": "web"}]}}}});
        let out = strategic_merge_patch(deployments(), &live_deployment(), &set_image).expect("applies");
        assert_eq!(names(&out["spec"]["template"]["spec"]["containers"]), vec!["web", "sidecar"]);
        assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27");
        // `kubectl rollout restart`
        let restart = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}});
        let out = strategic_merge_patch(deployments(), &live_deployment(), &restart).expect("applies");
        assert_eq!(
            out["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(out["spec"]["template"]["metadata"]["labels"]["app"], "web");
    }
}
