//! Server-side printing: objects as `meta.k8s.io/v1` `Table`s, the form `kubectl get` asks for.
//!
//! kubectl prints no columns of its own for built-in kinds: without a Table it can only show
//! `NAME AGE`. The columns and cells here therefore follow the real apiserver's printers
//! (`k/k pkg/printers/internalversion/printers.go`, as of 1.35) cell for cell, and resources without
//! a printer get the apiserver's default table (`apiserver pkg/registry/rest/table.go`).
//! Like the apiserver (`pkg/printers/storage`), every table carries the wide (`-o wide`) columns too;
//! kubectl hides those with a non-zero `priority`.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::duration::{parse_non_zero, translate_timestamp_since};
use crate::{ApiError, ResourceInfo};

/// `?includeObject=`: what each row's `object` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    /// `null`.
    None,
    /// A `PartialObjectMetadata` with the object's full metadata (the default). kubectl reads the
    /// NAMESPACE column of `-A`, `--show-labels` and `-L` from it.
    Metadata,
    /// The whole object (kubectl asks for it with `--sort-by`).
    Object,
}

impl IncludeObject {
    /// Parses the query parameter; absent or empty means `Metadata`. Values are case-sensitive,
    /// as in the apiserver's `asTable`.
    #[allow(clippy::result_large_err, reason = "ApiError is the crate-wide error type the server renders")]
    pub fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        match s.unwrap_or("") {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "Object" => Ok(IncludeObject::Object),
            "None" => Ok(IncludeObject::None),
            other => Err(ApiError::bad_request(format!("unrecognized includeObject value: {other:?}"))),
        }
    }
}

/// The Table for `objects` (one for a GET, all items for a LIST, one per event for a watch).
///
/// `list_metadata` becomes the Table's `metadata` (`resourceVersion`, `continue`, ...).
/// `with_columns == false` is what the apiserver's watch sends after the first event
/// (`TableOptions.NoHeaders`): `columnDefinitions` is then `null`, as Go encodes the nil slice.
/// Likewise an empty default table (no printer) has `"rows": null`; printed kinds have `[]`.
pub fn table(
    resource: &ResourceInfo,
    objects: &[&Value],
    list_metadata: Value,
    include: IncludeObject,
    with_columns: bool,
    now: Timestamp,
) -> Value {
    let rows: Vec<Value> = objects.iter().map(|obj| row(resource, obj, include, now)).collect();
    let rows = if rows.is_empty() && printer(resource) == Printer::Default { Value::Null } else { Value::Array(rows) };
    let metadata = if list_metadata.is_object() { list_metadata } else { json!({}) };
    let columns = if with_columns { Value::Array(column_definitions(resource)) } else { Value::Null };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// The column definitions of a resource's table, each `{name, type, format, description, priority}`.
pub fn column_definitions(resource: &ResourceInfo) -> Vec<Value> {
    printer(resource).columns().iter().map(|c| c.to_json()).collect()
}

/// The cells of one object's row, one per column of [`column_definitions`]. `now` is the moment
/// ages are measured from (the server computes them when it builds the table).
pub fn row_cells(resource: &ResourceInfo, obj: &Value, now: Timestamp) -> Vec<Value> {
    match printer(resource) {
        Printer::Pod => pod::cells(obj, now),
        Printer::Deployment => deployment_cells(obj, now),
        Printer::ReplicaSet => replica_set_cells(obj, now),
        Printer::Node => node_cells(obj, now),
        Printer::Namespace => vec![name_cell(obj), json!(str_at(obj, &["status", "phase"])), age(obj, now)],
        Printer::Event => event::cells(&event::EventView::core(obj), now),
        Printer::EventsV1Event => event::cells(&event::EventView::events_v1(obj), now),
        Printer::ConfigMap => {
            let n = object_len(obj, "data") + object_len(obj, "binaryData");
            vec![name_cell(obj), json!(n), age(obj, now)]
        }
        Printer::Secret => secret_cells(obj, now),
        Printer::ServiceAccount => vec![name_cell(obj), age(obj, now)],
        Printer::Lease => {
            vec![name_cell(obj), json!(str_at(obj, &["spec", "holderIdentity"])), age(obj, now)]
        }
        Printer::Default => vec![name_cell(obj), json!(created_at(obj))],
    }
}

/// One row: cells, the pod printer's `Completed` row condition, and the object as asked.
fn row(resource: &ResourceInfo, obj: &Value, include: IncludeObject, now: Timestamp) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array(row_cells(resource, obj, now)));
    if let Some(conditions) = pod::row_conditions(obj).filter(|_| printer(resource) == Printer::Pod) {
        row.insert("conditions".into(), conditions);
    }
    let object = match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").filter(|m| m.is_object()).cloned().unwrap_or_else(|| json!({})),
        }),
    };
    row.insert("object".into(), object);
    Value::Object(row)
}

// ---------------------------------------------------------------------------------------------
// Columns

/// One `TableColumnDefinition`. `format: "name"` marks the column kubectl prefixes with
/// `<kind>[.<group>]/` when it prints several kinds (`kubectl get all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u8,
}

impl Column {
    fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// A default-priority column.
const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column { name, ty, format: "", description, priority: 0 }
}

/// A column shown only with `-o wide`.
const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column { name, ty, format: "", description, priority: 1 }
}

const NAME: Column = Column { name: "Name", ty: "string", format: "name", description: doc::NAME, priority: 0 };
const AGE: Column = col("Age", "string", doc::CREATION_TIMESTAMP);
const CONTAINERS: Column = wide("Containers", "string", "Names of each container in the template.");
const IMAGES: Column = wide("Images", "string", "Images referenced by each container in the template.");

static POD_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", doc::POD_IP),
    wide("Node", "string", doc::NODE_NAME),
    wide("Nominated Node", "string", doc::NOMINATED_NODE_NAME),
    wide("Readiness Gates", "string", doc::READINESS_GATES),
];

static DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", doc::DEPLOYMENT_UPDATED_REPLICAS),
    col("Available", "string", doc::DEPLOYMENT_AVAILABLE_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", doc::DEPLOYMENT_SELECTOR),
];

static REPLICA_SET_COLUMNS: &[Column] = &[
    NAME,
    col("Desired", "integer", doc::REPLICA_SET_SPEC_REPLICAS),
    col("Current", "integer", doc::REPLICA_SET_STATUS_REPLICAS),
    col("Ready", "integer", doc::REPLICA_SET_READY_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", doc::REPLICA_SET_SELECTOR),
];

static NODE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", doc::KUBELET_VERSION),
    wide("Internal-IP", "string", doc::NODE_ADDRESSES),
    wide("External-IP", "string", doc::NODE_ADDRESSES),
    wide("OS-Image", "string", doc::OS_IMAGE),
    wide("Kernel-Version", "string", doc::KERNEL_VERSION),
    wide("Container-Runtime", "string", doc::CONTAINER_RUNTIME_VERSION),
];

static NAMESPACE_COLUMNS: &[Column] = &[NAME, col("Status", "string", "The status of the namespace"), AGE];

static EVENT_COLUMNS: &[Column] = &[
    col("Last Seen", "string", doc::EVENT_LAST_TIMESTAMP),
    col("Type", "string", doc::EVENT_TYPE),
    col("Reason", "string", doc::EVENT_REASON),
    col("Object", "string", doc::EVENT_INVOLVED_OBJECT),
    wide("Subobject", "string", doc::FIELD_PATH),
    wide("Source", "string", doc::EVENT_SOURCE),
    col("Message", "string", doc::EVENT_MESSAGE),
    wide("First Seen", "string", doc::EVENT_FIRST_TIMESTAMP),
    wide("Count", "string", doc::EVENT_COUNT),
    Column { name: "Name", ty: "string", format: "name", description: doc::NAME, priority: 1 },
];

static CONFIG_MAP_COLUMNS: &[Column] = &[NAME, col("Data", "string", doc::CONFIG_MAP_DATA), AGE];

static SECRET_COLUMNS: &[Column] =
    &[NAME, col("Type", "string", doc::SECRET_TYPE), col("Data", "string", doc::SECRET_DATA), AGE];

/// 1.35 dropped the SECRETS count (kubernetes#117160): the field is no longer populated.
static SERVICE_ACCOUNT_COLUMNS: &[Column] = &[NAME, AGE];

static LEASE_COLUMNS: &[Column] = &[NAME, col("Holder", "string", doc::HOLDER_IDENTITY), AGE];

static DEFAULT_COLUMNS: &[Column] = &[NAME, col("Created At", "date", doc::CREATION_TIMESTAMP)];

/// Which printer a resource uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Printer {
    Pod,
    Deployment,
    ReplicaSet,
    Node,
    Namespace,
    /// Core `v1` Event.
    Event,
    /// `events.k8s.io/v1` Event: the apiserver converts it to the internal Event and prints that,
    /// so it has the core columns, read from its own field names.
    EventsV1Event,
    ConfigMap,
    Secret,
    ServiceAccount,
    Lease,
    /// The apiserver's default: Name and Created At.
    Default,
}

impl Printer {
    fn columns(self) -> &'static [Column] {
        match self {
            Printer::Pod => POD_COLUMNS,
            Printer::Deployment => DEPLOYMENT_COLUMNS,
            Printer::ReplicaSet => REPLICA_SET_COLUMNS,
            Printer::Node => NODE_COLUMNS,
            Printer::Namespace => NAMESPACE_COLUMNS,
            Printer::Event | Printer::EventsV1Event => EVENT_COLUMNS,
            Printer::ConfigMap => CONFIG_MAP_COLUMNS,
            Printer::Secret => SECRET_COLUMNS,
            Printer::ServiceAccount => SERVICE_ACCOUNT_COLUMNS,
            Printer::Lease => LEASE_COLUMNS,
            Printer::Default => DEFAULT_COLUMNS,
        }
    }
}

fn printer(resource: &ResourceInfo) -> Printer {
    match (resource.group, resource.plural) {
        ("", "pods") => Printer::Pod,
        ("", "nodes") => Printer::Node,
        ("", "namespaces") => Printer::Namespace,
        ("", "events") => Printer::Event,
        ("", "configmaps") => Printer::ConfigMap,
        ("", "secrets") => Printer::Secret,
        ("", "serviceaccounts") => Printer::ServiceAccount,
        ("apps", "deployments") => Printer::Deployment,
        ("apps", "replicasets") => Printer::ReplicaSet,
        ("coordination.k8s.io", "leases") => Printer::Lease,
        ("events.k8s.io", "events") => Printer::EventsV1Event,
        _ => Printer::Default,
    }
}

/// Column descriptions: the `SwaggerDoc()` texts upstream's column definitions use. Those of the
/// `extensions/v1beta1` types come from an older copy of that file; kubectl never shows them.
mod doc {
    pub const NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
    pub const CREATION_TIMESTAMP: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
    pub const POD_IP: &str =
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
    pub const NODE_NAME: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
    pub const NOMINATED_NODE_NAME: &str = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.";
    pub const READINESS_GATES: &str = "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";
    pub const DEPLOYMENT_UPDATED_REPLICAS: &str =
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.";
    pub const DEPLOYMENT_AVAILABLE_REPLICAS: &str =
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.";
    pub const DEPLOYMENT_SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.";
    pub const REPLICA_SET_SPEC_REPLICAS: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller";
    pub const REPLICA_SET_STATUS_REPLICAS: &str = "Replicas is the most recently oberved number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller";
    pub const REPLICA_SET_READY_REPLICAS: &str = "The number of ready replicas for this replica set.";
    pub const REPLICA_SET_SELECTOR: &str = "Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
    pub const KUBELET_VERSION: &str = "Kubelet Version reported by the node.";
    pub const NODE_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
    pub const OS_IMAGE: &str = "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).";
    pub const KERNEL_VERSION: &str = "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).";
    pub const CONTAINER_RUNTIME_VERSION: &str =
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).";
    pub const EVENT_LAST_TIMESTAMP: &str = "The time at which the most recent occurrence of this event was recorded.";
    pub const EVENT_FIRST_TIMESTAMP: &str =
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)";
    pub const EVENT_TYPE: &str = "Type of this event (Normal, Warning), new types could be added in the future";
    pub const EVENT_REASON: &str = "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.";
    pub const EVENT_INVOLVED_OBJECT: &str = "The object that this event is about.";
    pub const EVENT_SOURCE: &str =
        "The component reporting this event. Should be a short machine understandable string.";
    pub const EVENT_MESSAGE: &str = "A human-readable description of the status of this operation.";
    pub const EVENT_COUNT: &str = "The number of times this event has occurred.";
    pub const FIELD_PATH: &str = "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.";
    pub const CONFIG_MAP_DATA: &str = "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.";
    pub const SECRET_TYPE: &str = "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types";
    pub const SECRET_DATA: &str = "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4";
    pub const HOLDER_IDENTITY: &str = "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.";
}

// ---------------------------------------------------------------------------------------------
// Reading JSON leniently: a missing or mistyped field reads as Go's zero value.

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

fn int_at(v: &Value, path: &[&str]) -> i64 {
    at(v, path).and_then(Value::as_i64).unwrap_or(0)
}

fn bool_at(v: &Value, path: &[&str]) -> bool {
    at(v, path).and_then(Value::as_bool).unwrap_or(false)
}

fn array_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// A sub-object, `None` when absent or `null` (Go's nil pointer).
fn object_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    at(v, path).filter(|o| o.is_object())
}

fn object_len(v: &Value, key: &str) -> usize {
    v.get(key).and_then(Value::as_object).map_or(0, Map::len)
}

fn name_cell(obj: &Value) -> Value {
    json!(str_at(obj, &["metadata", "name"]))
}

/// The AGE cell.
fn age(obj: &Value, now: Timestamp) -> Value {
    json!(translate_timestamp_since(at(obj, &["metadata", "creationTimestamp"]).and_then(Value::as_str), now))
}

/// The default table's `Created At`: the creation time in RFC 3339, UTC, whole seconds (Go's zero
/// time when unset).
fn created_at(obj: &Value) -> String {
    str_at(obj, &["metadata", "creationTimestamp"])
        .parse::<Timestamp>()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "0001-01-01T00:00:00Z".to_string())
}

/// `layoutContainerCells`: container names and images, comma-joined.
fn container_cells(template_spec: Option<&Value>) -> (Value, Value) {
    let containers = template_spec.map_or(&[][..], |s| array_at(s, &["containers"]));
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (json!(names.join(",")), json!(images.join(",")))
}

// ---------------------------------------------------------------------------------------------
// Label selectors, as `metav1.LabelSelectorAsSelector(...).String()` renders them.

/// Why a selector cannot be turned into a `labels.Selector`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum SelectorError {
    #[error("{0:?} is not a valid label selector operator")]
    Operator(String),
    #[error("values for operator {0:?} are invalid")]
    Values(String),
    #[error("matchLabels values must be strings")]
    MatchLabel,
}

/// The selector's string form: requirements sorted by key, `k=v`, `k in (a,b)`, `k notin (a,b)`,
/// `k`, `!k`, comma-joined. A missing or empty selector is `""`.
fn selector_string(selector: Option<&Value>) -> Result<String, SelectorError> {
    let Some(selector) = selector.filter(|s| s.is_object()) else { return Ok(String::new()) };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            let v = v.as_str().ok_or(SelectorError::MatchLabel)?;
            requirements.push((k.clone(), format!("{k}={v}")));
        }
    }
    for expr in array_at(selector, &["matchExpressions"]) {
        let key = str_at(expr, &["key"]);
        let operator = str_at(expr, &["operator"]);
        let mut values: Vec<&str> = array_at(expr, &["values"]).iter().filter_map(Value::as_str).collect();
        values.sort_unstable();
        let rendered = match operator {
            "In" | "NotIn" if values.is_empty() => return Err(SelectorError::Values(operator.into())),
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(SelectorError::Values(operator.into()));
            }
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => return Err(SelectorError::Operator(other.into())),
        };
        requirements.push((key.to_string(), rendered));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(requirements.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

// ---------------------------------------------------------------------------------------------
// Printers

fn deployment_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let desired = at(obj, &["spec", "replicas"]).and_then(Value::as_i64).unwrap_or(1);
    let ready = int_at(obj, &["status", "readyReplicas"]);
    let (containers, images) = container_cells(object_at(obj, &["spec", "template", "spec"]));
    let selector = selector_string(object_at(obj, &["spec", "selector"])).unwrap_or_else(|_| "<invalid>".to_string());
    vec![
        name_cell(obj),
        json!(format!("{ready}/{desired}")),
        json!(int_at(obj, &["status", "updatedReplicas"])),
        json!(int_at(obj, &["status", "availableReplicas"])),
        age(obj, now),
        containers,
        images,
        json!(selector),
    ]
}

fn replica_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let desired = at(obj, &["spec", "replicas"]).and_then(Value::as_i64).unwrap_or(1);
    let (containers, images) = container_cells(object_at(obj, &["spec", "template", "spec"]));
    // `metav1.FormatLabelSelector`.
    let selector = match selector_string(object_at(obj, &["spec", "selector"])) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(_) => "<error>".to_string(),
    };
    vec![
        name_cell(obj),
        json!(desired),
        json!(int_at(obj, &["status", "replicas"])),
        json!(int_at(obj, &["status", "readyReplicas"])),
        age(obj, now),
        containers,
        images,
        json!(selector),
    ]
}

fn node_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // Only the Ready condition counts; the last one listed wins, as in upstream's condition map.
    let ready = array_at(obj, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready")
        .map(|c| if str_at(c, &["status"]) == "True" { "Ready" } else { "NotReady" });
    let mut status = vec![ready.unwrap_or("Unknown")];
    if bool_at(obj, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    let roles = node_roles(obj);
    let roles = if roles.is_empty() { "<none>".to_string() } else { roles.join(",") };
    let info = |key: &str| {
        let v = str_at(obj, &["status", "nodeInfo", key]);
        json!(if v.is_empty() { "<unknown>" } else { v })
    };
    vec![
        name_cell(obj),
        json!(status.join(",")),
        json!(roles),
        age(obj, now),
        json!(str_at(obj, &["status", "nodeInfo", "kubeletVersion"])),
        json!(node_address(obj, "InternalIP")),
        json!(node_address(obj, "ExternalIP")),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ]
}

/// `findNodeRoles`: `node-role.kubernetes.io/<role>` label keys and the `kubernetes.io/role`
/// label's value, sorted and deduplicated.
fn node_roles(obj: &Value) -> Vec<String> {
    let mut roles: Vec<String> = at(obj, &["metadata", "labels"])
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role.to_string()),
            Some(_) => None,
            None if k == "kubernetes.io/role" => v.as_str().filter(|v| !v.is_empty()).map(str::to_string),
            None => None,
        })
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

/// The first address of a type, or `<none>`.
fn node_address<'a>(obj: &'a Value, ty: &str) -> &'a str {
    array_at(obj, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == ty)
        .map_or("<none>", |a| str_at(a, &["address"]))
}

fn secret_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // The internal Secret the apiserver prints has `stringData` merged into `data`.
    let mut keys: Vec<&String> = Vec::new();
    for field in ["data", "stringData"] {
        if let Some(map) = obj.get(field).and_then(Value::as_object) {
            keys.extend(map.keys());
        }
    }
    keys.sort();
    keys.dedup();
    vec![name_cell(obj), json!(str_at(obj, &["type"])), json!(keys.len()), age(obj, now)]
}

/// `printPod`: READY, STATUS, RESTARTS and the wide columns.
mod pod {
    use super::*;

    /// The derived state of a pod as `printPod` computes it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) struct Summary {
        pub ready: usize,
        pub total: usize,
        pub reason: String,
        pub restarts: i64,
        pub last_restart: Option<Timestamp>,
    }

    pub(super) fn cells(pod: &Value, now: Timestamp) -> Vec<Value> {
        let s = summarize(pod);
        let restarts = match s.last_restart {
            Some(t) if s.restarts != 0 => {
                format!("{} ({} ago)", s.restarts, crate::duration::human_signed_duration(now.duration_since(t)))
            }
            _ => s.restarts.to_string(),
        };
        let or_none = |v: &str| if v.is_empty() { "<none>".to_string() } else { v.to_string() };
        let ip = array_at(pod, &["status", "podIPs"]).first().map_or("", |p| str_at(p, &["ip"]));
        vec![
            name_cell(pod),
            json!(format!("{}/{}", s.ready, s.total)),
            json!(s.reason),
            json!(restarts),
            age(pod, now),
            json!(or_none(ip)),
            json!(or_none(str_at(pod, &["spec", "nodeName"]))),
            json!(or_none(str_at(pod, &["status", "nominatedNodeName"]))),
            json!(readiness_gates(pod)),
        ]
    }

    /// Terminal pods get a `Completed` row condition (clients may show them with less emphasis).
    pub(super) fn row_conditions(pod: &Value) -> Option<Value> {
        let (reason, message) = match str_at(pod, &["status", "phase"]) {
            "Succeeded" => ("Succeeded", "The pod has completed successfully."),
            "Failed" => ("Failed", "The pod failed."),
            _ => return None,
        };
        Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
    }

    /// `<none>`, or `true/total` over `spec.readinessGates` (the first condition of each type).
    fn readiness_gates(pod: &Value) -> String {
        let gates = array_at(pod, &["spec", "readinessGates"]);
        if gates.is_empty() {
            return "<none>".to_string();
        }
        let conditions = array_at(pod, &["status", "conditions"]);
        let true_count = gates
            .iter()
            .filter(|g| {
                let ty = str_at(g, &["conditionType"]);
                conditions.iter().find(|c| str_at(c, &["type"]) == ty).is_some_and(|c| str_at(c, &["status"]) == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    }

    fn has_condition(pod: &Value, ty: &str) -> bool {
        array_at(pod, &["status", "conditions"])
            .iter()
            .any(|c| str_at(c, &["type"]) == ty && str_at(c, &["status"]) == "True")
    }

    /// `isPodInitializedConditionTrue`: the first `Initialized` condition decides.
    fn initialized(pod: &Value) -> bool {
        array_at(pod, &["status", "conditions"])
            .iter()
            .find(|c| str_at(c, &["type"]) == "Initialized")
            .is_some_and(|c| str_at(c, &["status"]) == "True")
    }

    /// The later of two restart times.
    fn later(current: Option<Timestamp>, candidate: Option<Timestamp>) -> Option<Timestamp> {
        match (current, candidate) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    fn last_termination(status: &Value) -> Option<Timestamp> {
        object_at(status, &["lastState", "terminated"])
            .and_then(|t| t.get("finishedAt"))
            .and_then(Value::as_str)
            .and_then(parse_non_zero)
    }

    /// `Signal:N`, else `ExitCode:N`, for a terminated state without a reason.
    fn exit_description(terminated: &Value) -> String {
        match int_at(terminated, &["signal"]) {
            0 => format!("ExitCode:{}", int_at(terminated, &["exitCode"])),
            signal => format!("Signal:{signal}"),
        }
    }

    /// The READY/STATUS/RESTARTS algorithm of `printPod`, step by step.
    pub(super) fn summarize(pod: &Value) -> Summary {
        let phase = str_at(pod, &["status", "phase"]);
        let mut reason = match str_at(pod, &["status", "reason"]) {
            "" => phase.to_string(),
            r => r.to_string(),
        };
        if array_at(pod, &["status", "conditions"])
            .iter()
            .any(|c| str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated")
        {
            reason = "SchedulingGated".to_string();
        }

        let init_specs = array_at(pod, &["spec", "initContainers"]);
        let sidecar = |name: &str| {
            init_specs.iter().any(|c| str_at(c, &["name"]) == name && str_at(c, &["restartPolicy"]) == "Always")
        };
        let sidecars = init_specs.iter().filter(|c| str_at(c, &["restartPolicy"]) == "Always").count();
        let total = array_at(pod, &["spec", "containers"]).len() + sidecars;

        let mut ready = 0;
        let mut restarts = 0;
        let mut last_restart = None;
        let mut sidecar_restarts = 0;
        let mut last_sidecar_restart = None;
        let mut initializing = false;
        for (i, status) in array_at(pod, &["status", "initContainerStatuses"]).iter().enumerate() {
            let count = int_at(status, &["restartCount"]);
            restarts += count;
            last_restart = later(last_restart, last_termination(status));
            let is_sidecar = sidecar(str_at(status, &["name"]));
            if is_sidecar {
                sidecar_restarts += count;
                last_sidecar_restart = later(last_sidecar_restart, last_termination(status));
            }
            let terminated = object_at(status, &["state", "terminated"]);
            let waiting_reason = object_at(status, &["state", "waiting"]).map(|w| str_at(w, &["reason"])).unwrap_or("");
            if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
                continue;
            }
            if is_sidecar && bool_at(status, &["started"]) {
                if bool_at(status, &["ready"]) {
                    ready += 1;
                }
                continue;
            }
            reason = match terminated {
                Some(t) => match str_at(t, &["reason"]) {
                    "" => format!("Init:{}", exit_description(t)),
                    r => format!("Init:{r}"),
                },
                None if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" => {
                    format!("Init:{waiting_reason}")
                }
                None => format!("Init:{i}/{}", init_specs.len()),
            };
            initializing = true;
            break;
        }

        if !initializing || initialized(pod) {
            restarts = sidecar_restarts;
            last_restart = last_sidecar_restart;
            let mut has_running = false;
            for status in array_at(pod, &["status", "containerStatuses"]).iter().rev() {
                restarts += int_at(status, &["restartCount"]);
                last_restart = later(last_restart, last_termination(status));
                let waiting_reason =
                    object_at(status, &["state", "waiting"]).map(|w| str_at(w, &["reason"])).unwrap_or("");
                let terminated = object_at(status, &["state", "terminated"]);
                if !waiting_reason.is_empty() {
                    reason = waiting_reason.to_string();
                } else if let Some(t) = terminated {
                    reason = match str_at(t, &["reason"]) {
                        "" => exit_description(t),
                        r => r.to_string(),
                    };
                } else if bool_at(status, &["ready"]) && object_at(status, &["state", "running"]).is_some() {
                    has_running = true;
                    ready += 1;
                }
            }
            // A pod whose first container completed but another still runs is not "Completed".
            if reason == "Completed" && has_running {
                reason = if has_condition(pod, "Ready") { "Running" } else { "NotReady" }.to_string();
            }
        }

        let deleting = at(pod, &["metadata", "deletionTimestamp"]).is_some_and(|d| !d.is_null());
        if deleting && str_at(pod, &["status", "reason"]) == "NodeLost" {
            reason = "Unknown".to_string();
        } else if deleting && phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }

        Summary { ready, total, reason, restarts, last_restart }
    }
}

/// `printEvent`, for core and `events.k8s.io` Events alike.
mod event {
    use super::*;

    /// The fields `printEvent` reads, under the internal Event's names.
    pub(super) struct EventView<'a> {
        name: &'a str,
        first_timestamp: Option<&'a str>,
        last_timestamp: Option<&'a str>,
        event_time: Option<&'a str>,
        count: i64,
        series: Option<&'a Value>,
        involved: Option<&'a Value>,
        source: Option<&'a Value>,
        reporting_controller: &'a str,
        reporting_instance: &'a str,
        ty: &'a str,
        reason: &'a str,
        message: &'a str,
    }

    fn opt_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
        obj.get(key).and_then(Value::as_str)
    }

    impl<'a> EventView<'a> {
        /// A core `v1` Event.
        pub(super) fn core(obj: &'a Value) -> Self {
            EventView {
                name: str_at(obj, &["metadata", "name"]),
                first_timestamp: opt_str(obj, "firstTimestamp"),
                last_timestamp: opt_str(obj, "lastTimestamp"),
                event_time: opt_str(obj, "eventTime"),
                count: int_at(obj, &["count"]),
                series: object_at(obj, &["series"]),
                involved: object_at(obj, &["involvedObject"]),
                source: object_at(obj, &["source"]),
                reporting_controller: str_at(obj, &["reportingComponent"]),
                reporting_instance: str_at(obj, &["reportingInstance"]),
                ty: str_at(obj, &["type"]),
                reason: str_at(obj, &["reason"]),
                message: str_at(obj, &["message"]),
            }
        }

        /// An `events.k8s.io/v1` Event, mapped as `Convert_v1_Event_To_core_Event` does.
        pub(super) fn events_v1(obj: &'a Value) -> Self {
            EventView {
                name: str_at(obj, &["metadata", "name"]),
                first_timestamp: opt_str(obj, "deprecatedFirstTimestamp"),
                last_timestamp: opt_str(obj, "deprecatedLastTimestamp"),
                event_time: opt_str(obj, "eventTime"),
                count: int_at(obj, &["deprecatedCount"]),
                series: object_at(obj, &["series"]),
                involved: object_at(obj, &["regarding"]),
                source: object_at(obj, &["deprecatedSource"]),
                reporting_controller: str_at(obj, &["reportingController"]),
                reporting_instance: str_at(obj, &["reportingInstance"]),
                ty: str_at(obj, &["type"]),
                reason: str_at(obj, &["reason"]),
                message: str_at(obj, &["note"]),
            }
        }
    }

    fn is_set(ts: Option<&str>) -> bool {
        ts.and_then(parse_non_zero).is_some()
    }

    fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
        if a.is_empty() { b } else { a }
    }

    pub(super) fn cells(e: &EventView<'_>, now: Timestamp) -> Vec<Value> {
        let first_seen = if is_set(e.first_timestamp) {
            translate_timestamp_since(e.first_timestamp, now)
        } else {
            translate_timestamp_since(e.event_time, now)
        };
        let mut last_seen = if is_set(e.last_timestamp) {
            translate_timestamp_since(e.last_timestamp, now)
        } else {
            first_seen.clone()
        };
        let count = match e.series {
            Some(series) => {
                last_seen = translate_timestamp_since(series.get("lastObservedTime").and_then(Value::as_str), now);
                int_at(series, &["count"])
            }
            // Singleton events of the new API have no count.
            None if e.count == 0 => 1,
            None => e.count,
        };
        let (kind, name, field_path) = match e.involved {
            Some(o) => (str_at(o, &["kind"]), str_at(o, &["name"]), str_at(o, &["fieldPath"])),
            None => ("", "", ""),
        };
        let kind = kind.to_lowercase();
        let target = if name.is_empty() { kind } else { format!("{kind}/{name}") };
        let (component, host) = match e.source {
            Some(s) => (str_at(s, &["component"]), str_at(s, &["host"])),
            None => ("", ""),
        };
        let component = first_non_empty(component, e.reporting_controller);
        let instance = first_non_empty(host, e.reporting_instance);
        let source = if instance.is_empty() { component.to_string() } else { format!("{component}, {instance}") };
        vec![
            json!(last_seen),
            json!(e.ty),
            json!(e.reason),
            json!(target),
            json!(field_path),
            json!(source),
            json!(e.message.trim()),
            json!(first_seen),
            json!(count),
            json!(e.name),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::lookup;

    const NOW: &str = "2026-03-01T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().expect("now")
    }

    fn res(group: &str, plural: &str) -> &'static ResourceInfo {
        lookup(group, "v1", plural).expect("known resource")
    }

    /// A pod created 10 minutes before [`NOW`], with one container `app` unless the spec says otherwise.
    fn pod(spec: Value, status: Value) -> Value {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "app", "image": "nginx"}]);
        }
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": "2026-03-01T11:50:00Z"},
            "spec": spec,
            "status": status,
        })
    }

    fn running(ready: bool, restarts: i64) -> Value {
        json!({"name": "app", "ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": "2026-03-01T11:51:00Z"}}})
    }

    fn waiting(name: &str, reason: &str) -> Value {
        json!({"name": name, "ready": false, "restartCount": 0, "state": {"waiting": {"reason": reason}}})
    }

    fn terminated(name: &str, reason: &str, exit_code: i64, signal: i64) -> Value {
        let mut t = json!({"exitCode": exit_code, "finishedAt": "2026-03-01T11:58:00Z"});
        if !reason.is_empty() {
            t["reason"] = json!(reason);
        }
        if signal != 0 {
            t["signal"] = json!(signal);
        }
        json!({"name": name, "ready": false, "restartCount": 0, "state": {"terminated": t}})
    }

    fn summary_cells(p: &Value) -> (String, String, String) {
        let cells = row_cells(res("", "pods"), p, now());
        let s = |i: usize| cells[i].as_str().expect("string cell").to_string();
        (s(1), s(2), s(3))
    }

    #[test]
    fn pod_status_column() {
        let sidecar_spec = json!({"initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]});
        let init_spec = json!({"initContainers": [{"name": "setup", "image": "busybox"}]});
        let ready_cond = json!({"type": "Ready", "status": "True"});
        let two = json!({"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]});
        let crash = json!({
            "name": "app", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2026-03-01T11:58:00Z"}},
        });
        let cases: Vec<(&str, Value, &str, &str, &str)> = vec![
            ("unscheduled", pod(json!({}), json!({"phase": "Pending"})), "0/1", "Pending", "0"),
            (
                "scheduling gated",
                pod(
                    json!({}),
                    json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
                ),
                "0/1",
                "SchedulingGated",
                "0",
            ),
            (
                "container creating",
                pod(json!({}), json!({"phase": "Pending", "containerStatuses": [waiting("app", "ContainerCreating")]})),
                "0/1",
                "ContainerCreating",
                "0",
            ),
            (
                "running",
                pod(json!({}), json!({"phase": "Running", "containerStatuses": [running(true, 0)]})),
                "1/1",
                "Running",
                "0",
            ),
            (
                "running, not ready",
                pod(json!({}), json!({"phase": "Running", "containerStatuses": [running(false, 0)]})),
                "0/1",
                "Running",
                "0",
            ),
            (
                "crash loop",
                pod(json!({}), json!({"phase": "Running", "containerStatuses": [crash]})),
                "0/1",
                "CrashLoopBackOff",
                "3 (2m ago)",
            ),
            (
                "image pull back-off",
                pod(json!({}), json!({"phase": "Pending", "containerStatuses": [waiting("app", "ImagePullBackOff")]})),
                "0/1",
                "ImagePullBackOff",
                "0",
            ),
            (
                "completed",
                pod(
                    json!({}),
                    json!({"phase": "Succeeded", "containerStatuses": [terminated("app", "Completed", 0, 0)]}),
                ),
                "0/1",
                "Completed",
                "0",
            ),
            (
                "error",
                pod(json!({}), json!({"phase": "Failed", "containerStatuses": [terminated("app", "Error", 1, 0)]})),
                "0/1",
                "Error",
                "0",
            ),
            (
                "oom killed",
                pod(
                    json!({}),
                    json!({"phase": "Running", "containerStatuses": [terminated("app", "OOMKilled", 137, 0)]}),
                ),
                "0/1",
                "OOMKilled",
                "0",
            ),
            (
                "exit code without reason",
                pod(json!({}), json!({"phase": "Failed", "containerStatuses": [terminated("app", "", 1, 0)]})),
                "0/1",
                "ExitCode:1",
                "0",
            ),
            (
                "signal without reason",
                pod(json!({}), json!({"phase": "Failed", "containerStatuses": [terminated("app", "", 137, 9)]})),
                "0/1",
                "Signal:9",
                "0",
            ),
            (
                "init running",
                pod(
                    init_spec.clone(),
                    json!({"phase": "Pending",
                        "initContainerStatuses": [{"name": "setup", "ready": false, "restartCount": 0, "state": {"running": {}}}],
                        "containerStatuses": [waiting("app", "PodInitializing")]}),
                ),
                "0/1",
                "Init:0/1",
                "0",
            ),
            (
                "init failed",
                pod(
                    init_spec.clone(),
                    json!({"phase": "Pending", "initContainerStatuses": [terminated("setup", "Error", 1, 0)],
                        "containerStatuses": [waiting("app", "PodInitializing")]}),
                ),
                "0/1",
                "Init:Error",
                "0",
            ),
            (
                "init exit code",
                pod(
                    init_spec.clone(),
                    json!({"phase": "Pending", "initContainerStatuses": [terminated("setup", "", 2, 0)]}),
                ),
                "0/1",
                "Init:ExitCode:2",
                "0",
            ),
            (
                "init signal",
                pod(
                    init_spec.clone(),
                    json!({"phase": "Pending", "initContainerStatuses": [terminated("setup", "", 137, 9)]}),
                ),
                "0/1",
                "Init:Signal:9",
                "0",
            ),
            (
                "init crash loop",
                pod(
                    init_spec.clone(),
                    json!({"phase": "Pending", "initContainerStatuses": [waiting("setup", "CrashLoopBackOff")]}),
                ),
                "0/1",
                "Init:CrashLoopBackOff",
                "0",
            ),
            (
                "init done",
                pod(
                    init_spec.clone(),
                    json!({"phase": "Running", "initContainerStatuses": [terminated("setup", "Completed", 0, 0)],
                        "containerStatuses": [running(true, 0)]}),
                ),
                "1/1",
                "Running",
                "0",
            ),
            (
                "sidecar started and ready counts towards READY",
                pod(
                    sidecar_spec.clone(),
                    json!({"phase": "Running",
                        "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 1,
                            "state": {"running": {}},
                            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-03-01T11:55:00Z"}}}],
                        "containerStatuses": [running(true, 2)]}),
                ),
                "2/2",
                "Running",
                "3 (5m ago)",
            ),
            (
                "sidecar not yet started",
                pod(
                    sidecar_spec.clone(),
                    json!({"phase": "Pending",
                        "initContainerStatuses": [{"name": "proxy", "ready": false, "started": false, "restartCount": 0, "state": {"running": {}}}],
                        "containerStatuses": [waiting("app", "PodInitializing")]}),
                ),
                "0/2",
                "Init:0/1",
                "0",
            ),
            (
                "completed but another container runs, pod ready",
                pod(
                    two.clone(),
                    json!({"phase": "Running", "conditions": [ready_cond],
                        "containerStatuses": [terminated("a", "Completed", 0, 0),
                            {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
                ),
                "1/2",
                "Running",
                "0",
            ),
            (
                "completed but another container runs, pod not ready",
                pod(
                    two.clone(),
                    json!({"phase": "Running",
                        "containerStatuses": [terminated("a", "Completed", 0, 0),
                            {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
                ),
                "1/2",
                "NotReady",
                "0",
            ),
            (
                "first container has the final say",
                pod(
                    two,
                    json!({"phase": "Running", "containerStatuses": [waiting("a", "ErrImagePull"), terminated("b", "Error", 1, 0)]}),
                ),
                "0/2",
                "ErrImagePull",
                "0",
            ),
            (
                "evicted",
                pod(json!({}), json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"})),
                "0/1",
                "Evicted",
                "0",
            ),
        ];
        for (what, p, ready, status, restarts) in cases {
            assert_eq!(summary_cells(&p), (ready.to_string(), status.to_string(), restarts.to_string()), "{what}");
        }
    }

    #[test]
    fn pod_status_while_deleting() {
        let mut p = pod(json!({}), json!({"phase": "Running", "containerStatuses": [running(true, 0)]}));
        p["metadata"]["deletionTimestamp"] = json!("2026-03-01T12:00:30Z");
        assert_eq!(summary_cells(&p).1, "Terminating");
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(summary_cells(&p).1, "Unknown");
        let mut done =
            pod(json!({}), json!({"phase": "Succeeded", "containerStatuses": [terminated("app", "Completed", 0, 0)]}));
        done["metadata"]["deletionTimestamp"] = json!("2026-03-01T12:00:30Z");
        assert_eq!(summary_cells(&done).1, "Completed");
    }

    #[test]
    fn pod_row_has_age_and_wide_columns() {
        let mut p = pod(
            json!({"nodeName": "node-1", "readinessGates": [{"conditionType": "example.com/ready"}, {"conditionType": "example.com/lb"}]}),
            json!({"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
                "conditions": [{"type": "example.com/ready", "status": "True"}, {"type": "example.com/lb", "status": "False"}],
                "containerStatuses": [running(true, 0)]}),
        );
        assert_eq!(
            row_cells(res("", "pods"), &p, now()),
            vec![
                json!("web-1"),
                json!("1/1"),
                json!("Running"),
                json!("0"),
                json!("10m"),
                json!("10.0.0.5"),
                json!("node-1"),
                json!("<none>"),
                json!("1/2")
            ]
        );
        p["spec"] = json!({"containers": [{"name": "app"}]});
        p["status"] = json!({"phase": "Pending"});
        let cells = row_cells(res("", "pods"), &p, now());
        assert_eq!(cells[5..], [json!("<none>"), json!("<none>"), json!("<none>"), json!("<none>")]);
    }

    #[test]
    fn pod_columns_match_upstream() {
        let cols = column_definitions(res("", "pods"));
        let names: Vec<&str> = cols.iter().map(|c| c["name"].as_str().expect("name")).collect();
        assert_eq!(
            names,
            ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
        );
        let priorities: Vec<i64> = cols.iter().map(|c| c["priority"].as_i64().expect("priority")).collect();
        assert_eq!(priorities, [0, 0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(
            cols[1],
            json!({"name": "Ready", "type": "string", "format": "",
                "description": "The aggregate readiness state of this pod for accepting traffic.", "priority": 0})
        );
        assert_eq!(cols[3]["type"], "string");
    }

    /// `kubectl get all` prefixes the cell of the `format: "name"` string column with the kind, so
    /// that column must be the bare name, for every kind in the `all` category.
    #[test]
    fn name_column_shape_for_get_all() {
        for (group, plural) in [("", "pods"), ("apps", "deployments"), ("apps", "replicasets")] {
            let r = res(group, plural);
            let cols = column_definitions(r);
            assert_eq!(cols[0]["name"], "Name", "{plural}");
            assert_eq!(cols[0]["type"], "string", "{plural}");
            assert_eq!(cols[0]["format"], "name", "{plural}");
            assert_eq!(cols[0]["description"], doc::NAME, "{plural}");
            assert_eq!(cols.iter().filter(|c| c["format"] == "name").count(), 1, "{plural}");
            let obj = json!({"metadata": {"name": "web", "creationTimestamp": NOW}, "spec": {}, "status": {}});
            assert_eq!(row_cells(r, &obj, now())[0], json!("web"), "{plural}");
            assert_eq!(row_cells(r, &obj, now()).len(), cols.len(), "{plural}");
        }
    }

    #[test]
    fn deployment_row() {
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-03-01T11:59:48Z"},
            "spec": {"replicas": 3,
                "selector": {"matchLabels": {"app": "web", "tier": "fe"}},
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}}},
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        });
        assert_eq!(
            row_cells(res("apps", "deployments"), &d, now()),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("12s"),
                json!("nginx,log"),
                json!("nginx:1.27,busybox"),
                json!("app=web,tier=fe"),
            ]
        );
        let names: Vec<Value> =
            column_definitions(res("apps", "deployments")).iter().map(|c| c["name"].clone()).collect();
        assert_eq!(names, ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]);
        // A fresh Deployment without status; a bad selector.
        let fresh = json!({"metadata": {"name": "x"}, "spec": {"replicas": 1,
            "selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}}});
        let cells = row_cells(res("apps", "deployments"), &fresh, now());
        assert_eq!(cells[1..5], [json!("0/1"), json!(0), json!(0), json!("<unknown>")]);
        assert_eq!(cells[7], json!("<invalid>"));
    }

    #[test]
    fn replica_set_row_with_wide_columns() {
        let rs = json!({
            "metadata": {"name": "web-7c5ddbdf54", "creationTimestamp": "2026-02-27T09:00:00Z"},
            "spec": {"replicas": 2,
                "selector": {"matchLabels": {"pod-template-hash": "7c5ddbdf54", "app": "web"},
                    "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                        {"key": "canary", "operator": "DoesNotExist"}]},
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1},
        });
        let cells = row_cells(res("apps", "replicasets"), &rs, now());
        assert_eq!(
            cells,
            vec![
                json!("web-7c5ddbdf54"),
                json!(2),
                json!(2),
                json!(1),
                json!("2d3h"),
                json!("nginx"),
                json!("nginx"),
                json!("app=web,!canary,env in (dev,prod),pod-template-hash=7c5ddbdf54"),
            ]
        );
        let cols = column_definitions(res("apps", "replicasets"));
        let typed: Vec<(&str, &str, i64)> = cols
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or(""),
                    c["type"].as_str().unwrap_or(""),
                    c["priority"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        assert_eq!(
            typed,
            [
                ("Name", "string", 0),
                ("Desired", "integer", 0),
                ("Current", "integer", 0),
                ("Ready", "integer", 0),
                ("Age", "string", 0),
                ("Containers", "string", 1),
                ("Images", "string", 1),
                ("Selector", "string", 1)
            ]
        );
        let empty = json!({"metadata": {"name": "x"}, "spec": {"replicas": 0, "selector": {}}});
        assert_eq!(row_cells(res("apps", "replicasets"), &empty, now())[7], json!("<none>"));
    }

    #[test]
    fn selector_strings() {
        let cases: Vec<(Value, Result<&str, ()>)> = vec![
            (json!(null), Ok("")),
            (json!({}), Ok("")),
            (json!({"matchLabels": {"b": "2", "a": "1"}}), Ok("a=1,b=2")),
            (
                json!({"matchExpressions": [{"key": "k", "operator": "NotIn", "values": ["z", "y"]}]}),
                Ok("k notin (y,z)"),
            ),
            (json!({"matchExpressions": [{"key": "k", "operator": "In", "values": ["one"]}]}), Ok("k in (one)")),
            (json!({"matchExpressions": [{"key": "k", "operator": "Exists"}]}), Ok("k")),
            (json!({"matchExpressions": [{"key": "k", "operator": "In", "values": []}]}), Err(())),
            (json!({"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["x"]}]}), Err(())),
            (json!({"matchExpressions": [{"key": "k", "operator": "Gt", "values": ["1"]}]}), Err(())),
        ];
        for (sel, want) in cases {
            let got = selector_string(Some(&sel));
            assert_eq!(got.as_deref().map_err(|_| ()), want, "{sel}");
        }
    }

    #[test]
    fn node_rows() {
        let node = json!({
            "metadata": {"name": "node-1", "creationTimestamp": "2026-02-19T12:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "",
                    "kubernetes.io/role": "worker", "kubernetes.io/hostname": "node-1"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "node-1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.35.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "skiff://0.1.0"},
            },
        });
        assert_eq!(
            row_cells(res("", "nodes"), &node, now()),
            vec![
                json!("node-1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,worker"),
                json!("10d"),
                json!("v1.35.0"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12 (bookworm)"),
                json!("6.1.0-18-amd64"),
                json!("skiff://0.1.0"),
            ]
        );
        let cases = [
            (json!({"type": "Ready", "status": "False"}), "NotReady"),
            (json!({"type": "Ready", "status": "Unknown"}), "NotReady"),
            (json!({"type": "DiskPressure", "status": "False"}), "Unknown"),
        ];
        for (cond, want) in cases {
            let n = json!({"metadata": {"name": "n"}, "status": {"conditions": [cond]}});
            let cells = row_cells(res("", "nodes"), &n, now());
            assert_eq!(cells[1], json!(want));
            assert_eq!(cells[2], json!("<none>"));
            assert_eq!(cells[7..], [json!("<unknown>"), json!("<unknown>"), json!("<unknown>")]);
        }
    }

    #[test]
    fn core_event_rows() {
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web.17a9", "namespace": "default"},
            "involvedObject": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
            "reason": "ScalingReplicaSet", "type": "Normal",
            "message": "Scaled up replica set web-7c5ddbdf54 from 0 to 1\n",
            "source": {"component": "deployment-controller"},
            "firstTimestamp": "2026-03-01T11:00:00Z", "lastTimestamp": "2026-03-01T11:58:00Z", "count": 4,
        });
        assert_eq!(
            row_cells(res("", "events"), &ev, now()),
            vec![
                json!("2m"),
                json!("Normal"),
                json!("ScalingReplicaSet"),
                json!("deployment/web"),
                json!(""),
                json!("deployment-controller"),
                json!("Scaled up replica set web-7c5ddbdf54 from 0 to 1"),
                json!("60m"),
                json!(4),
                json!("web.17a9"),
            ]
        );
        // New-style event written through core v1: eventTime, no count, reporting fields, a sub-object.
        let kubelet = json!({
            "metadata": {"name": "p.1"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
            "reason": "Pulled", "type": "Normal", "message": "Container image \"nginx\" already present on machine",
            "eventTime": "2026-03-01T11:59:30.000000Z", "reportingComponent": "kubelet", "reportingInstance": "node-1",
        });
        let cells = row_cells(res("", "events"), &kubelet, now());
        assert_eq!(cells[0], json!("30s"));
        assert_eq!(cells[3], json!("pod/web-1"));
        assert_eq!(cells[4], json!("spec.containers{app}"));
        assert_eq!(cells[5], json!("kubelet, node-1"));
        assert_eq!(cells[7], json!("30s"));
        assert_eq!(cells[8], json!(1));
        // A series overrides LAST SEEN and COUNT; no object name gives the kind alone.
        let series = json!({"metadata": {"name": "s"}, "involvedObject": {"kind": "Node"},
            "eventTime": "2026-03-01T10:00:00.000000Z", "series": {"count": 7, "lastObservedTime": "2026-03-01T11:59:00.000000Z"}});
        let cells = row_cells(res("", "events"), &series, now());
        assert_eq!(
            (cells[0].clone(), cells[3].clone(), cells[7].clone(), cells[8].clone()),
            (json!("60s"), json!("node"), json!("120m"), json!(7))
        );
        let names: Vec<Value> = column_definitions(res("", "events")).iter().map(|c| c["name"].clone()).collect();
        assert_eq!(
            names,
            ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name"]
        );
    }

    #[test]
    fn events_v1_rows_use_their_own_field_names() {
        let ev = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.17a9", "namespace": "default"},
            "regarding": {"kind": "ReplicaSet", "name": "web-7c5d"},
            "reason": "SuccessfulCreate", "type": "Normal", "note": "  Created pod: web-7c5d-abcde ",
            "reportingController": "replicaset-controller", "reportingInstance": "",
            "deprecatedSource": {"component": ""},
            "deprecatedFirstTimestamp": "2026-03-01T11:55:00Z", "deprecatedLastTimestamp": "2026-03-01T11:57:00Z",
            "deprecatedCount": 2,
        });
        assert_eq!(
            row_cells(res("events.k8s.io", "events"), &ev, now()),
            vec![
                json!("3m"),
                json!("Normal"),
                json!("SuccessfulCreate"),
                json!("replicaset/web-7c5d"),
                json!(""),
                json!("replicaset-controller"),
                json!("Created pod: web-7c5d-abcde"),
                json!("5m"),
                json!(2),
                json!("web.17a9"),
            ]
        );
        assert_eq!(column_definitions(res("events.k8s.io", "events")), column_definitions(res("", "events")));
    }

    #[test]
    fn small_printers() {
        let created = "2026-03-01T11:00:00Z";
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": created}, "status": {"phase": "Active"}});
        assert_eq!(row_cells(res("", "namespaces"), &ns, now()), vec![json!("default"), json!("Active"), json!("60m")]);
        let cm = json!({"metadata": {"name": "cfg", "creationTimestamp": created}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(row_cells(res("", "configmaps"), &cm, now()), vec![json!("cfg"), json!(3), json!("60m")]);
        let secret =
            json!({"metadata": {"name": "s", "creationTimestamp": created}, "type": "Opaque", "data": {"a": "MQ=="}});
        assert_eq!(
            row_cells(res("", "secrets"), &secret, now()),
            vec![json!("s"), json!("Opaque"), json!(1), json!("60m")]
        );
        let sa = json!({"metadata": {"name": "default", "creationTimestamp": created}, "secrets": [{"name": "x"}]});
        assert_eq!(row_cells(res("", "serviceaccounts"), &sa, now()), vec![json!("default"), json!("60m")]);
        let lease =
            json!({"metadata": {"name": "node-1", "creationTimestamp": created}, "spec": {"holderIdentity": "node-1"}});
        assert_eq!(
            row_cells(res("coordination.k8s.io", "leases"), &lease, now()),
            vec![json!("node-1"), json!("node-1"), json!("60m")]
        );
        let names = |g: &str, p: &str| -> Vec<Value> {
            column_definitions(res(g, p)).iter().map(|c| c["name"].clone()).collect()
        };
        assert_eq!(names("", "namespaces"), ["Name", "Status", "Age"]);
        assert_eq!(names("", "configmaps"), ["Name", "Data", "Age"]);
        assert_eq!(names("", "secrets"), ["Name", "Type", "Data", "Age"]);
        assert_eq!(names("", "serviceaccounts"), ["Name", "Age"]);
        assert_eq!(names("coordination.k8s.io", "leases"), ["Name", "Holder", "Age"]);
    }

    #[test]
    fn default_table_for_unprinted_resources() {
        let widget = ResourceInfo {
            group: "example.com",
            version: "v1",
            plural: "widgets",
            singular: "widget",
            kind: "Widget",
            scope: crate::Scope::Namespaced,
            short_names: &[],
            categories: &[],
            subresources: &[],
            storage: "example.com/widgets",
        };
        let cols = column_definitions(&widget);
        assert_eq!(cols[0]["format"], "name");
        assert_eq!(
            cols[1],
            json!({"name": "Created At", "type": "date", "format": "", "description": doc::CREATION_TIMESTAMP, "priority": 0})
        );
        let obj = json!({"metadata": {"name": "w", "creationTimestamp": "2026-03-01T11:00:00.5+02:00"}});
        assert_eq!(row_cells(&widget, &obj, now()), vec![json!("w"), json!("2026-03-01T09:00:00Z")]);
        assert_eq!(row_cells(&widget, &json!({"metadata": {"name": "w"}}), now())[1], json!("0001-01-01T00:00:00Z"));
        let t = table(&widget, &[&obj], json!({}), IncludeObject::Metadata, true, now());
        assert_eq!(t["rows"][0]["cells"], json!(["w", "2026-03-01T09:00:00Z"]));
        assert!(table(&widget, &[], json!({}), IncludeObject::Metadata, true, now())["rows"].is_null());
    }

    #[test]
    fn include_object_parsing() {
        assert_eq!(IncludeObject::parse(None), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse(Some("")), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse(Some("Metadata")), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse(Some("Object")), Ok(IncludeObject::Object));
        assert_eq!(IncludeObject::parse(Some("None")), Ok(IncludeObject::None));
        let err = IncludeObject::parse(Some("object")).expect_err("case-sensitive");
        assert_eq!(err.code, 400);
        assert_eq!(err.reason, "BadRequest");
        assert_eq!(err.message, "unrecognized includeObject value: \"object\"");
    }

    #[test]
    fn table_shape() {
        let p =
            pod(json!({}), json!({"phase": "Succeeded", "containerStatuses": [terminated("app", "Completed", 0, 0)]}));
        let mut labelled = p.clone();
        labelled["metadata"]["labels"] = json!({"app": "web"});
        let t = table(
            res("", "pods"),
            &[&labelled],
            json!({"resourceVersion": "42", "continue": ""}),
            IncludeObject::Metadata,
            true,
            now(),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({"resourceVersion": "42", "continue": ""}));
        assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(9));
        let row = &t["rows"][0];
        assert_eq!(row["cells"][0], "web-1");
        assert_eq!(
            row["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
        );
        assert_eq!(
            row["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": labelled["metadata"]})
        );

        // Later watch events: no column definitions; the object in full or not at all.
        let t = table(res("", "pods"), &[&p], Value::Null, IncludeObject::Object, false, now());
        assert_eq!(t["metadata"], json!({}));
        assert!(t["columnDefinitions"].is_null());
        assert_eq!(t["rows"][0]["object"], p);
        let t = table(res("apps", "deployments"), &[], json!({}), IncludeObject::None, true, now());
        assert_eq!(t["rows"], json!([]));
        let d = json!({"metadata": {"name": "web"}, "spec": {}});
        let t = table(res("apps", "deployments"), &[&d], json!({}), IncludeObject::None, true, now());
        assert!(t["rows"][0]["object"].is_null());
        assert!(t["rows"][0].get("conditions").is_none());
    }
}
