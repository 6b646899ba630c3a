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
        let mut m = Map::new();
        if !self.manager.is_empty() {
            m.insert("manager".into(), json!(self.manager));
        }
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
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

/// The subtree a write on `subresource` does not own because the strategy resets it.
fn reset_tree(resource: &ResourceInfo, subresource: Option<&str>) -> Option<&'static [&'static str]> {
    match subresource {
        None if resource.has_status() => Some(&["f:status"]),
        Some("status") => Some(&["f:spec"]),
        _ => None,
    }
}

/// Removes from `set` what nobody owns and what this write's strategy resets.
pub(crate) fn strip_unowned(set: &mut Set, resource: &ResourceInfo, subresource: Option<&str>) {
    for p in STRIPPED {
        set.remove(p);
    }
    if let Some(tree) = reset_tree(resource, subresource) {
        set.remove_tree(tree);
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
}
