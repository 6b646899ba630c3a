//! What the patch machinery knows about the shape of the kinds Skiff serves: which lists merge by
//! which key, which are sets, which objects are owned as a whole.
//!
//! This is the one place that holds the `k8s.io/api` struct tags that matter for patching:
//! `patchStrategy`/`patchMergeKey` (strategic merge patch) and `listType`/`listMapKey`/
//! `structType`/`mapType` (server-side apply). It is data: a table of `(type, field) -> shape`
//! rows, walked from a kind's root type, so `Deployment` reaches `PodSpec.containers` through
//! `spec.template.spec` without repeating the pod rows for every workload.
//!
//! Anything not in the table gets the Kubernetes defaults: objects merge field by field, lists are
//! atomic (replaced as a whole by a patch, owned as a whole by an applier), scalars are leaves.

/// A named schema type (a row owner), or `None` when the shape below a field is unknown.
pub type TypeName = Option<&'static str>;

/// How a field is patched and owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A Go struct held by value: merged field by field, and always present in the typed form (so a
    /// write that fills it does not "add" the struct itself; see `structured::compare`).
    Struct,
    /// A struct pointer or a map: merged field by field, absent until set.
    Object,
    /// `+structType=atomic` / `+mapType=atomic`: server-side apply owns and replaces it as a whole.
    /// Strategic merge patch still merges it key by key (SMP has no atomic maps).
    AtomicObject,
    /// A list replaced as a whole by both patch kinds (the default for lists).
    AtomicList,
    /// A list of objects identified by key. `merge_key` is the SMP `patchMergeKey` (`None`: SMP
    /// replaces the list); `keys` are the SSA `listMapKey`s; `defaults` are schema defaults of key
    /// fields, used when an element omits them (container port `protocol` is `TCP`).
    MapList {
        merge_key: Option<&'static str>,
        keys: &'static [&'static str],
        defaults: &'static [(&'static str, &'static str)],
    },
    /// A list of scalars with set semantics (`+listType=set`); `merge` is SMP `patchStrategy=merge`.
    SetList { merge: bool },
}

/// The schema of one field: its shape and, for objects and lists of objects, the element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSchema {
    pub shape: Shape,
    pub ty: TypeName,
}

struct Row {
    owner: &'static str,
    field: &'static str,
    schema: FieldSchema,
}

const fn row(owner: &'static str, field: &'static str, shape: Shape, ty: TypeName) -> Row {
    Row { owner, field, schema: FieldSchema { shape, ty } }
}

const fn by(key: &'static str) -> Shape {
    Shape::MapList { merge_key: Some(key), keys: &[], defaults: &[] }
}

use Shape::{AtomicList, AtomicObject, Object, SetList, Struct};

/// Kinds whose root type is described below (the type is named after the kind).
const ROOTS: &[&str] = &[
    "Pod",
    "Deployment",
    "ReplicaSet",
    "Namespace",
    "Node",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Event",
    "Lease",
];

/// `(type, field) -> shape`. A `MapList` built with [`by`] uses its SMP merge key as the only SSA
/// key (that is how structured-merge-diff reads a `patchMergeKey` without `listMapKey`s).
static ROWS: &[Row] = &[
    // Roots. Every kind's metadata is an ObjectMeta held by value.
    row("Pod", "metadata", Struct, Some("ObjectMeta")),
    row("Pod", "spec", Struct, Some("PodSpec")),
    row("Pod", "status", Struct, Some("PodStatus")),
    row("Deployment", "metadata", Struct, Some("ObjectMeta")),
    row("Deployment", "spec", Struct, Some("DeploymentSpec")),
    row("Deployment", "status", Struct, Some("DeploymentStatus")),
    row("ReplicaSet", "metadata", Struct, Some("ObjectMeta")),
    row("ReplicaSet", "spec", Struct, Some("ReplicaSetSpec")),
    row("ReplicaSet", "status", Struct, Some("ReplicaSetStatus")),
    row("Namespace", "metadata", Struct, Some("ObjectMeta")),
    row("Namespace", "spec", Struct, Some("NamespaceSpec")),
    row("Namespace", "status", Struct, Some("NamespaceStatus")),
    row("Node", "metadata", Struct, Some("ObjectMeta")),
    row("Node", "spec", Struct, Some("NodeSpec")),
    row("Node", "status", Struct, Some("NodeStatus")),
    row("ConfigMap", "metadata", Struct, Some("ObjectMeta")),
    row("Secret", "metadata", Struct, Some("ObjectMeta")),
    row("ServiceAccount", "metadata", Struct, Some("ObjectMeta")),
    row("ServiceAccount", "secrets", by("name"), None),
    row("ServiceAccount", "imagePullSecrets", AtomicList, None),
    row("Event", "metadata", Struct, Some("ObjectMeta")),
    row("Event", "involvedObject", Struct, None),
    row("Event", "source", Struct, None),
    row("Event", "regarding", Struct, None),
    row("Event", "deprecatedSource", Struct, None),
    row("Lease", "metadata", Struct, Some("ObjectMeta")),
    row("Lease", "spec", Struct, None),
    // ObjectMeta
    row("ObjectMeta", "labels", Object, None),
    row("ObjectMeta", "annotations", Object, None),
    row("ObjectMeta", "finalizers", SetList { merge: true }, None),
    row("ObjectMeta", "ownerReferences", by("uid"), None),
    row("ObjectMeta", "managedFields", AtomicList, None),
    // apps/v1
    row("DeploymentSpec", "selector", AtomicObject, None),
    row("DeploymentSpec", "template", Struct, Some("PodTemplateSpec")),
    row("DeploymentSpec", "strategy", Struct, None),
    row("DeploymentStatus", "conditions", by("type"), None),
    row("ReplicaSetSpec", "selector", AtomicObject, None),
    row("ReplicaSetSpec", "template", Struct, Some("PodTemplateSpec")),
    row("ReplicaSetStatus", "conditions", by("type"), None),
    row("PodTemplateSpec", "metadata", Struct, Some("ObjectMeta")),
    row("PodTemplateSpec", "spec", Struct, Some("PodSpec")),
    // PodSpec
    row("PodSpec", "containers", by("name"), Some("Container")),
    row("PodSpec", "initContainers", by("name"), Some("Container")),
    row("PodSpec", "ephemeralContainers", by("name"), Some("Container")),
    row("PodSpec", "imagePullSecrets", by("name"), None),
    row("PodSpec", "volumes", by("name"), None),
    row("PodSpec", "hostAliases", by("ip"), None),
    row(
        "PodSpec",
        "topologySpreadConstraints",
        Shape::MapList { merge_key: Some("topologyKey"), keys: &["topologyKey", "whenUnsatisfiable"], defaults: &[] },
        Some("TopologySpreadConstraint"),
    ),
    row("PodSpec", "resourceClaims", by("name"), None),
    row("PodSpec", "schedulingGates", by("name"), None),
    row("PodSpec", "nodeSelector", AtomicObject, None),
    row("PodSpec", "tolerations", AtomicList, None),
    row("PodSpec", "readinessGates", AtomicList, None),
    row("PodSpec", "resources", Object, Some("ResourceRequirements")),
    row("TopologySpreadConstraint", "labelSelector", AtomicObject, None),
    // Container (EphemeralContainer has the same list fields)
    row(
        "Container",
        "ports",
        Shape::MapList {
            merge_key: Some("containerPort"),
            keys: &["containerPort", "protocol"],
            defaults: &[("protocol", "TCP")],
        },
        None,
    ),
    row("Container", "env", by("name"), None),
    row("Container", "volumeMounts", by("mountPath"), None),
    row("Container", "volumeDevices", by("devicePath"), None),
    row("Container", "resources", Struct, Some("ResourceRequirements")),
    row("Container", "args", AtomicList, None),
    row("Container", "command", AtomicList, None),
    row("Container", "envFrom", AtomicList, None),
    row("ResourceRequirements", "claims", Shape::MapList { merge_key: None, keys: &["name"], defaults: &[] }, None),
    // PodStatus
    row("PodStatus", "conditions", by("type"), None),
    row("PodStatus", "podIPs", by("ip"), None),
    row("PodStatus", "hostIPs", by("ip"), None),
    row("PodStatus", "resourceClaimStatuses", by("name"), None),
    // Node
    row("NodeSpec", "podCIDRs", SetList { merge: true }, None),
    row("NodeSpec", "taints", AtomicList, None),
    row("NodeStatus", "conditions", by("type"), None),
    row("NodeStatus", "addresses", by("type"), None),
    row("NodeStatus", "nodeInfo", Struct, None),
    row("NodeStatus", "daemonEndpoints", Struct, None),
    // Namespace
    row("NamespaceSpec", "finalizers", AtomicList, None),
    row("NamespaceStatus", "conditions", by("type"), None),
];

/// Fields the typed form always carries even when empty (no `omitempty`), besides by-value structs:
/// writing them never "adds" the field itself.
static ALWAYS_PRESENT: &[(&str, &str)] = &[("PodSpec", "containers")];

/// Whether `owner.name`, whose schema is `schema` (what [`field`] gives for it), is always present
/// in the typed form (a by-value struct or a required list).
pub fn always_present(owner: TypeName, name: &str, schema: Option<FieldSchema>) -> bool {
    matches!(schema.map(|f| f.shape), Some(Shape::Struct)) || owner.is_some_and(|o| ALWAYS_PRESENT.contains(&(o, name)))
}

/// The root type of a kind, `None` for kinds the table does not describe.
pub fn root(kind: &str) -> TypeName {
    ROOTS.iter().find(|k| **k == kind).copied()
}

/// The schema of `field` inside an object of type `owner`, if the table knows it.
pub fn field(owner: TypeName, name: &str) -> Option<FieldSchema> {
    let owner = owner?;
    let index = sorted_rows();
    index.binary_search_by(|r| (r.owner, r.field).cmp(&(owner, name))).ok().map(|i| index[i].schema)
}

/// The rows sorted by `(owner, field)`, for [`field`]'s binary search: every field of every
/// object a write touches is looked up (managed fields, patches), and a scan of the table
/// compared strings row by row.
fn sorted_rows() -> &'static [&'static Row] {
    static SORTED: std::sync::OnceLock<Vec<&'static Row>> = std::sync::OnceLock::new();
    SORTED.get_or_init(|| {
        let mut rows: Vec<&'static Row> = ROWS.iter().collect();
        rows.sort_by_key(|r| (r.owner, r.field));
        rows
    })
}

/// The schema at a JSON path below a kind (list elements are skipped: the path names fields only),
/// e.g. `lookup("Deployment", &["spec", "template", "spec", "containers"])`.
pub fn lookup(kind: &str, path: &[&str]) -> Option<FieldSchema> {
    let mut ty = root(kind);
    let mut found = None;
    for name in path {
        let f = field(ty, name)?;
        ty = f.ty;
        found = Some(f);
    }
    found
}

impl FieldSchema {
    /// The SSA list keys of a map list (its merge key when no `listMapKey`s are declared).
    pub fn list_keys(&self) -> Option<Vec<&'static str>> {
        match self.shape {
            Shape::MapList { keys, .. } if !keys.is_empty() => Some(keys.to_vec()),
            Shape::MapList { merge_key: Some(k), .. } => Some(vec![k]),
            _ => None,
        }
    }

    /// The schema default of a key field, if any.
    pub fn key_default(&self, key: &str) -> Option<&'static str> {
        match self.shape {
            Shape::MapList { defaults, .. } => defaults.iter().find(|(k, _)| *k == key).map(|(_, v)| *v),
            _ => None,
        }
    }
}

/// How strategic merge patch treats a list field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmpList {
    /// `patchStrategy=merge` with `patchMergeKey` (lists of objects).
    MergeByKey(&'static str),
    /// `patchStrategy=merge` on scalars.
    MergeScalars,
    /// No strategy: the patch list replaces the original.
    Replace,
}

/// The SMP strategy of a list field (`None` schema: replace).
pub fn smp_list(schema: Option<FieldSchema>) -> SmpList {
    match schema.map(|s| s.shape) {
        Some(Shape::MapList { merge_key: Some(k), .. }) => SmpList::MergeByKey(k),
        Some(Shape::SetList { merge: true }) => SmpList::MergeScalars,
        _ => SmpList::Replace,
    }
}

/// The fields the table describes for `owner` (tests generate objects from them).
#[cfg(test)]
pub(crate) fn fields_of(owner: &str) -> Vec<(&'static str, FieldSchema)> {
    ROWS.iter().filter(|r| r.owner == owner).map(|r| (r.field, r.schema)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_reach_pod_spec_lists() {
        let cases: &[(&str, &[&str], SmpList)] = &[
            ("Deployment", &["spec", "template", "spec", "containers"], SmpList::MergeByKey("name")),
            ("ReplicaSet", &["spec", "template", "spec", "initContainers"], SmpList::MergeByKey("name")),
            ("Pod", &["spec", "containers", "ports"], SmpList::MergeByKey("containerPort")),
            ("Pod", &["spec", "containers", "volumeMounts"], SmpList::MergeByKey("mountPath")),
            ("Pod", &["spec", "containers", "volumeDevices"], SmpList::MergeByKey("devicePath")),
            ("Pod", &["spec", "containers", "env"], SmpList::MergeByKey("name")),
            ("Pod", &["spec", "hostAliases"], SmpList::MergeByKey("ip")),
            ("Pod", &["spec", "topologySpreadConstraints"], SmpList::MergeByKey("topologyKey")),
            ("Pod", &["spec", "tolerations"], SmpList::Replace),
            ("Pod", &["spec", "containers", "args"], SmpList::Replace),
            ("Pod", &["status", "conditions"], SmpList::MergeByKey("type")),
            ("Node", &["status", "addresses"], SmpList::MergeByKey("type")),
            ("Node", &["spec", "podCIDRs"], SmpList::MergeScalars),
            ("Node", &["spec", "taints"], SmpList::Replace),
            ("Namespace", &["spec", "finalizers"], SmpList::Replace),
            ("ConfigMap", &["metadata", "finalizers"], SmpList::MergeScalars),
            ("Secret", &["metadata", "ownerReferences"], SmpList::MergeByKey("uid")),
            ("Pod", &["spec", "containers", "resources", "claims"], SmpList::Replace),
        ];
        for (kind, path, want) in cases {
            assert_eq!(smp_list(lookup(kind, path)), *want, "{kind} {path:?}");
        }
    }

    /// Each row is the one `field` finds for its owner and name: no two rows share both.
    #[test]
    fn every_row_is_found_by_its_owner_and_field() {
        for r in ROWS {
            assert_eq!(field(Some(r.owner), r.field), Some(r.schema), "{}.{}", r.owner, r.field);
            assert_eq!(ROWS.iter().filter(|o| (o.owner, o.field) == (r.owner, r.field)).count(), 1);
        }
        assert_eq!(field(Some("PodSpec"), "nope"), None);
        assert_eq!(field(Some("Nope"), "containers"), None);
        assert_eq!(field(None, "containers"), None);
    }

    #[test]
    fn ssa_keys_can_differ_from_the_merge_key() {
        let ports = lookup("Pod", &["spec", "containers", "ports"]).expect("ports");
        assert_eq!(ports.list_keys(), Some(vec!["containerPort", "protocol"]));
        assert_eq!(ports.key_default("protocol"), Some("TCP"));
        let env = lookup("Deployment", &["spec", "template", "spec", "containers", "env"]).expect("env");
        assert_eq!(env.list_keys(), Some(vec!["name"]));
        let claims = lookup("Pod", &["spec", "containers", "resources", "claims"]).expect("claims");
        assert_eq!(claims.list_keys(), Some(vec!["name"]));
        assert_eq!(lookup("Deployment", &["spec", "selector"]).map(|f| f.shape), Some(Shape::AtomicObject));
        assert!(lookup("Deployment", &["spec", "nope"]).is_none());
        assert!(root("CustomThing").is_none());
    }
}
