//! `metadata.managedFields`: who set which field (`apiserver pkg/util/managedfields`,
//! `structured-merge-diff/merge/update.go`).
//!
//! An entry is `{manager, operation: Apply|Update, apiVersion, time, fieldsType: FieldsV1, fieldsV1,
//! subresource?}`; a manager is identified by its name, operation and subresource (Skiff serves one
//! version per resource, so the apiVersion of `Update` entries adds nothing). Entries are kept sorted
//! as the apiserver sorts them: by operation (`Apply` first), time, manager, apiVersion, subresource.
//!
//! Not recorded in any set (`stripMetaManager`): `apiVersion`, `kind`, and `metadata.name`,
//! `namespace`, `creationTimestamp`, `selfLink`, `uid`, `generation`, `managedFields`,
//! `resourceVersion`. The fields a write's strategy resets are not recorded either: `status` on the
//! main resource of a kind with a status subresource, `spec` on its `/status`.

use serde_json::{Map, Value, json};

use super::created;
use super::fieldpath::Set;
use super::schema;
use super::structured;
use crate::meta;
use crate::resource::ResourceInfo;

/// One decoded `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub set: Set,
    /// `""` for the main resource.
    pub subresource: String,
}

impl Entry {
    /// Whether this entry is the one of `manager` doing `operation` on `subresource`.
    pub fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    fn to_value(&self) -> Value {
        let fields = self.set.to_fields_v1();
        entry_value(&self.manager, &self.operation, &self.api_version, self.time.as_deref(), fields, &self.subresource)
    }

    fn from_value(v: &Value) -> Option<Entry> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        if v.get("fieldsType").and_then(Value::as_str).is_some_and(|t| t != "FieldsV1") {
            return None;
        }
        Some(Entry {
            manager: s("manager").unwrap_or_default(),
            operation: s("operation")?,
            api_version: s("apiVersion").unwrap_or_default(),
            time: s("time"),
            set: match v.get("fieldsV1") {
                Some(f) => Set::from_fields_v1(f)?,
                None => Set::new(),
            },
            subresource: s("subresource").unwrap_or_default(),
        })
    }
}

/// An entry as it is stored, its `fieldsV1` already written; an empty manager or subresource is
/// left out.
fn entry_value(
    manager: &str,
    operation: &str,
    api_version: &str,
    time: Option<&str>,
    fields_v1: Value,
    subresource: &str,
) -> Value {
    let mut m = Map::new();
    if !manager.is_empty() {
        m.insert("manager".into(), json!(manager));
    }
    m.insert("operation".into(), json!(operation));
    m.insert("apiVersion".into(), json!(api_version));
    if let Some(t) = time {
        m.insert("time".into(), json!(t));
    }
    m.insert("fieldsType".into(), json!("FieldsV1"));
    m.insert("fieldsV1".into(), fields_v1);
    if !subresource.is_empty() {
        m.insert("subresource".into(), json!(subresource));
    }
    Value::Object(m)
}

/// The entries of an object; `None` when `managedFields` is present but not decodable.
pub fn decode(obj: &Value) -> Option<Vec<Entry>> {
    match meta::at(obj, &["metadata", "managedFields"]) {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(Entry::from_value).collect(),
        Some(_) => None,
    }
}

/// Writes the entries (sorted) into `metadata.managedFields`; no entries removes the field.
pub fn encode_into(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    if entries.is_empty() {
        if obj.get("metadata").is_some() {
            meta::remove_meta(obj, "managedFields");
        }
        return;
    }
    let seconds = |e: &Entry| e.time.as_deref().and_then(meta::parse_time).map_or(0, |t| t.as_second());
    entries.sort_by(|a, b| {
        a.operation
            .cmp(&b.operation)
            .then_with(|| seconds(a).cmp(&seconds(b)))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    meta::set_meta(obj, "managedFields", Value::Array(entries.iter().map(Entry::to_value).collect()));
}

/// The paths no manager owns (`stripMetaManager`).
const STRIPPED: [&[&str]; 12] = [
    &["f:apiVersion"],
    &["f:kind"],
    &["f:metadata"],
    &["f:metadata", "f:name"],
    &["f:metadata", "f:namespace"],
    &["f:metadata", "f:creationTimestamp"],
    &["f:metadata", "f:selfLink"],
    &["f:metadata", "f:uid"],
    &["f:metadata", "f:clusterName"],
    &["f:metadata", "f:generation"],
    &["f:metadata", "f:managedFields"],
    &["f:metadata", "f:resourceVersion"],
];

/// The root field whose subtree a write on `subresource` does not own because the strategy resets
/// it.
fn reset_field(resource: &ResourceInfo, subresource: Option<&str>) -> Option<&'static str> {
    match subresource {
        None if resource.has_status() => Some("f:status"),
        Some("status") => Some("f:spec"),
        _ => None,
    }
}

/// Removes from `set` what nobody owns and what this write's strategy resets.
pub(crate) fn strip_unowned(set: &mut Set, resource: &ResourceInfo, subresource: Option<&str>) {
    for p in STRIPPED {
        set.remove(p);
    }
    if let Some(field) = reset_field(resource, subresource) {
        set.remove_tree(&[field]);
    }
}

/// A set without what nobody owns and what this write's strategy resets.
pub(crate) fn owned_part(set: &Set, resource: &ResourceInfo, subresource: Option<&str>) -> Set {
    let mut owned = set.clone();
    strip_unowned(&mut owned, resource, subresource);
    owned
}

/// `managedFields: [{}]` in a request asks to clear all entries.
fn is_reset(obj: &Value) -> bool {
    matches!(meta::at(obj, &["metadata", "managedFields"]), Some(Value::Array(items))
        if items.len() == 1 && items[0].as_object().is_some_and(Map::is_empty))
}

/// The entries a write starts from (`decodeLiveOrNew`): the request's own when it carries a
/// decodable, non-empty list (main resource only), none when it asks for a reset, else the live ones.
fn base_entries(old: Option<&Value>, new: &Value, subresource: Option<&str>) -> Vec<Entry> {
    let live = || old.and_then(decode).unwrap_or_default();
    if subresource.is_some() {
        return live();
    }
    if is_reset(new) {
        return Vec::new();
    }
    match decode(new) {
        Some(entries) if !entries.is_empty() => entries,
        _ => live(),
    }
}

/// Maintains metadata.managedFields for a non-apply write (create/update/patch): the manager's
/// Update entry (apiVersion, time, fieldsType FieldsV1, fieldsV1 with the fields this write changed or
/// set, subresource when the write was on /status or /scale) merged with its previous entry; fields
/// changed by this manager are removed from other managers' sets (as structured-merge-diff does for
/// updates).
///
/// `old` is the stored object (`None` on create: everything in `new` is set by this write), `new` the
/// object about to be stored, `now` the time to record (`metav1.Time`, second precision).
pub fn record_update(
    resource: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) {
    if old.is_none() && subresource.is_none() && carries_no_entries(new) {
        record_create(resource, new, manager, now);
    } else {
        record_any(resource, old, new, manager, subresource, now);
    }
}

/// No `managedFields` of its own (absent, `null` or `[]`): a create of it starts from no entries.
fn carries_no_entries(obj: &Value) -> bool {
    match meta::at(obj, &["metadata", "managedFields"]) {
        None | Some(Value::Null) => true,
        Some(Value::Array(items)) => items.is_empty(),
        Some(_) => false,
    }
}

/// [`record_update`] of a create with no entries to start from, which [`record_any`] would answer
/// with one entry holding everything the object sets: that entry, with its `fieldsV1` written
/// straight from the object (see `created`) instead of through a [`Set`].
fn record_create(resource: &ResourceInfo, new: &mut Value, manager: &str, now: &str) {
    let unowned = created::Unowned { paths: &STRIPPED, reset: reset_field(resource, None) };
    let fields = created::created_fields_v1(schema::root(resource.kind), new, &unowned);
    if fields.is_empty() {
        encode_into(new, Vec::new());
        return;
    }
    let entry = entry_value(manager, "Update", &resource.api_version(), Some(now), Value::Object(fields), "");
    meta::set_meta(new, "managedFields", Value::Array(vec![entry]));
}

/// [`record_update`] for any write, through field sets.
fn record_any(
    resource: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) {
    let mut entries = base_entries(old, new, subresource);
    let root = schema::root(resource.kind);
    let empty = Value::Object(Map::new());
    // The comparison passes over `metadata.managedFields` on both sides.
    let diff = structured::compare(root, old.unwrap_or(&empty), new);
    let (mut changed, mut removed) = (diff.changed, diff.removed);
    strip_unowned(&mut changed, resource, subresource);
    strip_unowned(&mut removed, resource, subresource);
    if !entries.is_empty() {
        let taken = changed.union(&removed);
        for e in entries.iter_mut() {
            e.set = e.set.difference(&taken);
        }
    }
    let sub = subresource.unwrap_or("");
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| e.is(manager, "Update", sub)) {
            Some(e) => {
                e.set = e.set.union(&changed);
                e.time = Some(now.to_string());
                e.api_version = resource.api_version();
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: "Update".to_string(),
                api_version: resource.api_version(),
                time: Some(now.to_string()),
                set: changed,
                subresource: sub.to_string(),
            }),
        }
    }
    encode_into(new, entries);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::fieldpath::path;
    use crate::resource::lookup;

    fn deployments() -> &'static ResourceInfo {
        lookup("apps", "v1", "deployments").expect("deployments")
    }

    fn deployment(image: &str, replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "5",
                         "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1, "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": image}]}}
            },
            "status": {}
        })
    }

    #[test]
    fn create_records_everything_but_system_fields() {
        let mut obj = deployment("nginx", 1);
        record_update(deployments(), None, &mut obj, "kubectl-create", None, "2026-01-01T00:00:00Z");
        assert_eq!(
            obj["metadata"]["managedFields"],
            json!([{
                "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1",
                "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:selector": {},
                        "f:template": {
                            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                        }
                    }
                }
            }])
        );
    }

    #[test]
    fn updates_move_fields_between_managers() {
        let mut created = deployment("nginx", 1);
        record_update(deployments(), None, &mut created, "kubectl-create", None, "2026-01-01T00:00:00Z");

        // kubectl scale: a /scale write by the manager derived from the User-Agent.
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(3);
        record_update(deployments(), Some(&created), &mut scaled, "kubectl", Some("scale"), "2026-01-01T00:01:00Z");
        let entries = decode(&scaled).expect("decodes");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].manager, "kubectl-create");
        assert!(!entries[0].set.has(&path(&["f:spec", "f:replicas"])));
        assert!(entries[0].set.has(&path(&["f:spec", "f:selector"])));
        assert_eq!(
            scaled["metadata"]["managedFields"][1],
            json!({"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1", "time": "2026-01-01T00:01:00Z",
                   "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}, "subresource": "scale"})
        );

        // A status write by the controller: its entry lists status fields only.
        let mut status = scaled.clone();
        status["status"] = json!({"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]});
        status["spec"]["paused"] = json!(true); // reset by the status strategy: not owned
        record_update(
            deployments(),
            Some(&scaled),
            &mut status,
            "kube-controller-manager",
            Some("status"),
            "2026-01-01T00:02:00Z",
        );
        let e = decode(&status).expect("decodes");
        let kcm = e.iter().find(|e| e.manager == "kube-controller-manager").expect("entry");
        assert_eq!(
            kcm.set.to_fields_v1(),
            json!({"f:status": {"f:replicas": {}, "f:conditions": {".": {}, "k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}}}})
        );
        assert_eq!(kcm.subresource, "status");
    }

    #[test]
    fn a_write_that_changes_nothing_adds_no_entry_and_removals_clear_ownership() {
        let mut created = deployment("nginx", 1);
        record_update(deployments(), None, &mut created, "kubectl-create", None, "2026-01-01T00:00:00Z");
        let mut same = created.clone();
        record_update(deployments(), Some(&created), &mut same, "someone", None, "2026-01-01T00:05:00Z");
        assert_eq!(same["metadata"]["managedFields"], created["metadata"]["managedFields"]);

        let mut unlabeled = created.clone();
        unlabeled["metadata"].as_object_mut().expect("metadata").remove("labels");
        record_update(deployments(), Some(&created), &mut unlabeled, "someone", None, "2026-01-01T00:05:00Z");
        let e = decode(&unlabeled).expect("decodes");
        assert_eq!(e.len(), 1);
        assert!(!e[0].set.has_under(&path(&["f:metadata"])));
    }

    #[test]
    fn request_can_reset_managed_fields() {
        let mut created = deployment("nginx", 1);
        record_update(deployments(), None, &mut created, "kubectl-create", None, "2026-01-01T00:00:00Z");
        let mut reset = created.clone();
        reset["metadata"]["managedFields"] = json!([{}]);
        record_update(deployments(), Some(&created), &mut reset, "kubectl", None, "2026-01-01T00:05:00Z");
        assert!(reset["metadata"].get("managedFields").is_none());
    }

    /// A small deterministic generator (xorshift64), for the objects below.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len() as u64) as usize]
        }
    }

    /// A scalar, sometimes one equal to another's (to make repeated keys and set values).
    fn scalar(rng: &mut Rng) -> Value {
        match rng.below(6) {
            0 => json!(rng.below(3)),
            1 => json!(rng.below(2) == 0),
            2 => Value::Null,
            _ => json!(rng.pick(&["a", "b", "web", "TCP", "UDP", "x\"y"])),
        }
    }

    /// A value for a field of schema `schema`: mostly of its shape, sometimes null, a scalar where
    /// an object belongs, or an object where a list belongs.
    fn value(rng: &mut Rng, schema: Option<schema::FieldSchema>, depth: u32) -> Value {
        use schema::Shape;
        if depth > 5 || rng.below(12) == 0 {
            return scalar(rng);
        }
        if rng.below(15) == 0 {
            return object(rng, None, depth + 1);
        }
        match schema.map(|s| (s.shape, s)) {
            Some((Shape::Struct | Shape::Object | Shape::AtomicObject, s)) => object(rng, s.ty, depth + 1),
            Some((Shape::MapList { .. }, s)) => {
                let keys = s.list_keys().unwrap_or_default();
                let items = (0..rng.below(4))
                    .map(|_| {
                        let mut item = object(rng, s.ty, depth + 1);
                        if let Value::Object(m) = &mut item {
                            for k in &keys {
                                // Now and then an element without its key (or with a null one).
                                if rng.below(10) != 0 {
                                    m.insert((*k).to_owned(), json!(rng.pick(&["a", "b", "80", "TCP"])));
                                }
                            }
                        }
                        item
                    })
                    .collect();
                Value::Array(items)
            }
            Some((Shape::SetList { .. }, _)) => Value::Array((0..rng.below(4)).map(|_| scalar(rng)).collect()),
            Some((Shape::AtomicList, _)) => {
                Value::Array((0..rng.below(3)).map(|_| value(rng, None, depth + 1)).collect())
            }
            None => match rng.below(5) {
                0 => object(rng, None, depth + 1),
                1 => Value::Array((0..rng.below(3)).map(|_| scalar(rng)).collect()),
                _ => scalar(rng),
            },
        }
    }

    /// An object of type `ty`: some of the fields the schema table describes for it, and some it
    /// does not.
    fn object(rng: &mut Rng, ty: schema::TypeName, depth: u32) -> Value {
        let mut m = Map::new();
        if let Some(ty) = ty {
            for (name, field) in schema::fields_of(ty) {
                if rng.below(3) != 0 {
                    m.insert(name.to_owned(), value(rng, Some(field), depth));
                }
            }
        }
        for _ in 0..rng.below(3) {
            let name = rng.pick(&["x", "y", "name", "spec", "status", "labels"]);
            m.insert(name.to_owned(), value(rng, None, depth));
        }
        Value::Object(m)
    }

    /// An object of the resource's kind, with the metadata a create carries.
    fn created_object(rng: &mut Rng, resource: &ResourceInfo) -> Value {
        let mut obj = object(rng, schema::root(resource.kind), 0);
        if let Value::Object(m) = &mut obj {
            m.insert("apiVersion".into(), json!(resource.api_version()));
            m.insert("kind".into(), json!(resource.kind));
            if rng.below(8) != 0 {
                let mut meta = match m.remove("metadata") {
                    Some(Value::Object(meta)) => meta,
                    _ => Map::new(),
                };
                for (k, v) in [
                    ("name", json!("web")),
                    ("namespace", json!("default")),
                    ("uid", json!("u1")),
                    ("creationTimestamp", json!("2026-01-01T00:00:00Z")),
                    ("resourceVersion", json!("1")),
                    ("generation", json!(1)),
                    ("labels", json!({"app": "web"})),
                ] {
                    if rng.below(4) != 0 {
                        meta.insert(k.to_owned(), v);
                    }
                }
                match rng.below(6) {
                    0 => {
                        meta.insert("managedFields".into(), Value::Null);
                    }
                    1 => {
                        meta.insert("managedFields".into(), json!([]));
                    }
                    _ => {}
                }
                m.insert("metadata".into(), Value::Object(meta));
            }
        }
        obj
    }

    /// A create's entry written straight from the object is the one the field sets give, for every
    /// resource kind, on generated objects: known and unknown fields, map lists with repeated and
    /// missing keys, sets with repeated values, nulls, and values of the wrong shape.
    #[test]
    fn a_creates_entry_written_directly_matches_the_field_sets() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut with_entry = 0;
        for resource in crate::resource::RESOURCES {
            for i in 0..300 {
                let obj = created_object(&mut rng, resource);
                let manager = if i % 50 == 0 { "" } else { "kubectl-create" };
                let mut expected = obj.clone();
                record_any(resource, None, &mut expected, manager, None, "2026-01-01T00:00:00Z");
                let mut got = obj.clone();
                record_update(resource, None, &mut got, manager, None, "2026-01-01T00:00:00Z");
                assert_eq!(got, expected, "{} from {obj}", resource.kind);
                with_entry += usize::from(meta::at(&got, &["metadata", "managedFields"]).is_some());
            }
        }
        // Most objects set some owned field, so most creates record an entry.
        assert!(with_entry > crate::resource::RESOURCES.len() * 200, "{with_entry} entries");
    }

    /// The fast path is taken only when the create starts from no entries: a create that carries
    /// its own entries keeps them (through the field sets).
    #[test]
    fn a_create_with_its_own_entries_keeps_them() {
        let mut obj = deployment("nginx", 1);
        obj["metadata"]["managedFields"] = json!([{
            "manager": "before", "operation": "Update", "apiVersion": "apps/v1",
            "time": "2025-01-01T00:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:a": {}}}}
        }]);
        assert!(!carries_no_entries(&obj));
        record_update(deployments(), None, &mut obj, "kubectl-create", None, "2026-01-01T00:00:00Z");
        let managers: Vec<&str> = obj["metadata"]["managedFields"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert_eq!(managers, ["before", "kubectl-create"]);
    }
}
