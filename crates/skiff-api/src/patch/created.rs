//! The fields a create sets, written straight as `fieldsV1`: what `structured::compare` of `{}` and
//! the new object puts in its `changed` set, less the paths nobody owns, turned into `fieldsV1` by
//! `Set::to_fields_v1`, without building the set.
//!
//! Every create records a `managedFields` entry, and through the set that cost about a fifth of a
//! create's instructions (an allocated path element and a tree insert per field, the unowned paths
//! removed from the tree, and a second pass to write it out). The walk here follows
//! `compare_walk` step for step with the old side always empty or absent, which is all a create
//! compares against, and leaves the unowned paths out as it goes. A `managed_fields` test checks
//! that both ways give the same entry for every resource kind on generated objects.

use serde_json::{Map, Value};

use super::fieldpath::{field_pe, value_pe};
use super::schema::{self, FieldSchema, Shape, TypeName};
use super::structured::{Blanks, effective, element_keys, pick};

/// What a create's entry leaves out: the paths nobody owns (`Set::remove` of each: the path stops
/// being a member, what lies below it stays), given as `fieldsV1` paths of one or two elements, the
/// second under `f:metadata`; and the root field the write's strategy resets (`Set::remove_tree`).
pub struct Unowned<'a> {
    pub paths: &'a [&'a [&'a str]],
    pub reset: Option<&'a str>,
}

impl Unowned<'_> {
    /// Whether the path `f:<k>` under a node at `level` stops being a member.
    fn strips(&self, level: Level, k: &str) -> bool {
        let is = |pe: &str| pe.strip_prefix("f:") == Some(k);
        match level {
            Level::Root => self.paths.iter().any(|p| matches!(p, [pe] if is(pe))),
            Level::RootMetadata => self.paths.iter().any(|p| matches!(p, ["f:metadata", pe] if is(pe))),
            Level::Below => false,
        }
    }
}

/// `compare(root, &{}, new).changed` without `unowned`, as `fieldsV1` (`Set::to_fields_v1`).
pub fn created_fields_v1(root: TypeName, new: &Value, unowned: &Unowned<'_>) -> Map<String, Value> {
    let schema = FieldSchema { shape: Shape::Struct, ty: root };
    let empty = Value::Object(Map::new());
    let mut node = Node::default();
    walk(Some(schema), Some(&empty), Some(new), Level::Root, unowned, &mut node);
    node.children
}

/// One path's part of the result: whether the path itself is a member, and what lies below it
/// (already in `fieldsV1` form).
#[derive(Default)]
struct Node {
    member: bool,
    children: Map<String, Value>,
}

impl Node {
    /// The node's `fieldsV1` value, `None` when it holds nothing (an empty node is left out).
    fn into_value(self) -> Option<Value> {
        match (self.member, self.children.is_empty()) {
            (false, true) => None,
            (true, true) => Some(Value::Object(Map::new())),
            (member, false) => {
                let mut children = self.children;
                if member {
                    children.insert(".".to_owned(), Value::Object(Map::new()));
                }
                Some(Value::Object(children))
            }
        }
    }

    /// Adds the child `pe`, merging it with one already there (map-list elements with equal keys,
    /// repeated set values: the set holds each path once).
    fn add(&mut self, pe: String, child: Node) {
        let Some(value) = child.into_value() else { return };
        match (self.children.get_mut(&pe), value) {
            (Some(Value::Object(held)), Value::Object(more)) => merge(held, more),
            (_, value) => {
                self.children.insert(pe, value);
            }
        }
    }
}

/// The union of two `fieldsV1` nodes, into `held`.
fn merge(held: &mut Map<String, Value>, more: Map<String, Value>) {
    let member = |m: &Map<String, Value>| m.is_empty() || m.contains_key(".");
    let either_member = member(held) || member(&more);
    for (pe, value) in more {
        match (held.get_mut(&pe), value) {
            (Some(Value::Object(h)), Value::Object(m)) => merge(h, m),
            (_, value) => {
                held.insert(pe, value);
            }
        }
    }
    if either_member && held.keys().any(|k| k != ".") {
        held.insert(".".to_owned(), Value::Object(Map::new()));
    }
}

/// Where a walk is: `metadata.managedFields` is not compared (it records ownership; nobody owns it).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    RootMetadata,
    Below,
}

/// `compare_walk` with `l` always empty or absent, into `node` (the node of the current path).
fn walk(
    schema: Option<FieldSchema>,
    l: Option<&Value>,
    r: Option<&Value>,
    level: Level,
    unowned: &Unowned<'_>,
    node: &mut Node,
) {
    if l.is_none() && r.is_none() {
        return;
    }
    let schema = effective(schema, r.or(l));
    let added = l.is_none() && r.is_some();
    match (schema.map(|s| s.shape), l, r) {
        (Some(Shape::Struct | Shape::Object), lv, rv)
            if lv.is_none_or(Value::is_object) && rv.is_none_or(Value::is_object) =>
        {
            let lm = lv.and_then(Value::as_object);
            let ty = schema.and_then(|s| s.ty);
            let blanks = Blanks::new();
            // The old side is empty: the keys are the new side's.
            for (k, v) in rv.and_then(Value::as_object).into_iter().flatten() {
                let reset = level == Level::Root && unowned.reset.and_then(|pe| pe.strip_prefix("f:")) == Some(k);
                if reset || (level == Level::RootMetadata && k == "managedFields") {
                    continue;
                }
                let child = schema::field(ty, k);
                let blank = blanks.of(ty, k, child);
                let r_child = if v.is_null() { blank } else { Some(v) };
                let below_level =
                    if level == Level::Root && k == "metadata" { Level::RootMetadata } else { Level::Below };
                let mut below = Node::default();
                walk(child, pick(lm, k, blank), r_child, below_level, unowned, &mut below);
                if unowned.strips(level, k) {
                    below.member = false;
                }
                node.add(field_pe(k), below);
            }
            node.member |= added;
        }
        (Some(Shape::MapList { .. }), lv, rv) if lv.is_none_or(Value::is_array) && rv.is_none_or(Value::is_array) => {
            let Some(list) = schema else { return };
            let ri: &[Value] = rv.and_then(Value::as_array).map_or(&[], Vec::as_slice);
            let Some(rk) = element_keys(&list, ri) else {
                return leaf(l, r, node);
            };
            let elem = Some(FieldSchema { shape: Shape::Struct, ty: list.ty });
            for (item, pe) in ri.iter().zip(rk) {
                let mut below = Node::default();
                walk(elem, None, Some(item), Level::Below, unowned, &mut below);
                node.add(pe, below);
            }
            node.member |= added;
        }
        (Some(Shape::SetList { .. }), lv, rv) if lv.is_none_or(Value::is_array) && rv.is_none_or(Value::is_array) => {
            for v in rv.and_then(Value::as_array).into_iter().flatten() {
                node.add(value_pe(v), Node { member: true, children: Map::new() });
            }
            node.member |= added;
        }
        _ => leaf(l, r, node),
    }
}

/// A leaf: a member when added or changed (a removal is not a change, and a create removes nothing).
fn leaf(l: Option<&Value>, r: Option<&Value>, node: &mut Node) {
    match (l, r) {
        (None, Some(_)) => node.member = true,
        (Some(a), Some(b)) if a != b => node.member = true,
        _ => {}
    }
}
