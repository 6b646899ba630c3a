//! OpenAPI documents: `/openapi/v3` (index), `/openapi/v3/{api/v1|apis/{g}/{v}}` (one OpenAPI 3.0
//! document per group-version) and `/openapi/v2` (Swagger 2.0, everything).
//!
//! kubectl v1.35 reads the v3 documents for two things (reference G.5):
//! * **server-side field validation**: it looks, in the group-version document, for a `patch`
//!   operation carrying `x-kubernetes-group-version-kind` whose parameters include the `fieldValidation`
//!   query parameter (cli-runtime `query_param_verifier_v3.go`). It stops at the first `patch` of the
//!   kind it finds, so every `patch` (main resource and `/status`) carries the full parameter set.
//! * **`kubectl explain`**: it finds the kind through the GVK of an operation on the collection path,
//!   then the schema in `components.schemas` whose `x-kubernetes-group-version-kind` matches, and walks
//!   `properties`, `items` and `allOf`/`$ref`.
//!
//! The PATCH request bodies list JSON patch, merge patch and apply patch, never strategic merge patch:
//! the schemas carry no `x-kubernetes-patch-merge-key`/`-strategy` annotations, and advertising SMP
//! would make client-side `kubectl apply` compute patches from them. Without it kubectl uses its
//! compiled-in types, which is exact for every built-in kind.
//!
//! Schemas come from k8s-openapi's `schemars` impls (already named like upstream,
//! `io.k8s.api.apps.v1.Deployment`), converted to OpenAPI 3 form by schemars' `openapi3` settings
//! (`$ref` siblings moved under `allOf`, as upstream 1.35 does). List kinds are built here. Everything
//! is generated once per process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use k8s_openapi::api::{apps, autoscaling, coordination, core, events, policy};
use k8s_openapi::apimachinery::pkg::apis::meta;
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::resource::{RESOURCES, ResourceInfo, Subresource, groups};

const V3_REF_PREFIX: &str = "#/components/schemas/";
const V2_REF_PREFIX: &str = "#/definitions/";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const INFO_VERSION: &str = "v1.35.0";

/// A kind with a schema: group, version, kind and the schema's name in `components.schemas`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KindSchema {
    group: &'static str,
    version: &'static str,
    kind: String,
    name: String,
}

fn register<T: JsonSchema + k8s_openapi::Resource>(generator: &mut SchemaGenerator) -> KindSchema {
    generator.subschema_for::<T>();
    KindSchema { group: T::GROUP, version: T::VERSION, kind: T::KIND.to_string(), name: T::schema_name().into_owned() }
}

/// The Rust types of every kind Skiff serves: the resources of [`RESOURCES`] and the kinds their
/// subresources speak. A test checks that each kind named in the resource table is here.
const KIND_TYPES: &[fn(&mut SchemaGenerator) -> KindSchema] = &[
    register::<core::v1::ConfigMap>,
    register::<core::v1::Event>,
    register::<core::v1::Namespace>,
    register::<core::v1::Node>,
    register::<core::v1::Pod>,
    register::<core::v1::Secret>,
    register::<core::v1::ServiceAccount>,
    register::<core::v1::Binding>,
    register::<apps::v1::Deployment>,
    register::<apps::v1::ReplicaSet>,
    register::<coordination::v1::Lease>,
    register::<events::v1::Event>,
    register::<autoscaling::v1::Scale>,
    register::<policy::v1::Eviction>,
    register::<meta::v1::Status>,
];

/// Every schema, in OpenAPI 3 form, with the GVK extensions; and the kinds they describe.
struct Catalog {
    schemas: Map<String, Value>,
    kinds: Vec<KindSchema>,
}

impl Catalog {
    /// The schema name of a kind.
    fn name_of(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds.iter().find(|k| k.group == group && k.version == version && k.kind == kind).map(|k| k.name.as_str())
    }
}

static CATALOG: LazyLock<Catalog> = LazyLock::new(build_catalog);

fn gvk_value(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

fn v3_ref(name: &str) -> Value {
    json!({"$ref": format!("{V3_REF_PREFIX}{name}")})
}

/// `io.k8s.api.apps.v1.Deployment` → `io.k8s.api.apps.v1.DeploymentList`.
fn list_name(item_name: &str, kind: &str) -> String {
    match item_name.rsplit_once('.') {
        Some((package, _)) => format!("{package}.{kind}List"),
        None => format!("{kind}List"),
    }
}

/// The `{Kind}List` schema, shaped like upstream's.
fn list_schema(r: &ResourceInfo, item_name: &str) -> Value {
    json!({
        "description": format!("{}List is a list of {} objects.", r.kind, r.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                "type": "string",
            },
            "items": {
                "description": format!("List of {}.", r.plural),
                "type": "array",
                "items": {"allOf": [v3_ref(item_name)], "default": {}},
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "type": "string",
            },
            "metadata": {
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "allOf": [v3_ref(LIST_META)],
                "default": {},
            },
        },
        "x-kubernetes-group-version-kind": [gvk_value(r.group, r.version, &r.list_kind())],
    })
}

fn add_gvk(schemas: &mut Map<String, Value>, name: &str, gvk: Value) {
    if let Some(Value::Object(schema)) = schemas.get_mut(name) {
        let list = schema.entry("x-kubernetes-group-version-kind").or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = list
            && !items.contains(&gvk)
        {
            items.push(gvk);
        }
    }
}

/// The kinds whose upstream schema lists `metadata` as required. k8s-openapi marks `metadata`
/// required on every kind (its Rust field is not optional); upstream does so only for these, and
/// `kubectl explain` prints `-required-` from the schema.
const METADATA_REQUIRED: &[&str] = &["io.k8s.api.core.v1.Event"];

/// Removes `metadata` from a schema's `required` list (and the list when it becomes empty).
fn unrequire_metadata(schemas: &mut Map<String, Value>, name: &str) {
    let Some(Value::Object(schema)) = schemas.get_mut(name) else {
        return;
    };
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.retain(|f| f != "metadata");
        if required.is_empty() {
            schema.remove("required");
        }
    }
}

fn build_catalog() -> Catalog {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut kinds: Vec<KindSchema> = KIND_TYPES.iter().map(|register| register(&mut generator)).collect();
    generator.subschema_for::<meta::v1::DeleteOptions>();
    generator.subschema_for::<meta::v1::ListMeta>();
    generator.subschema_for::<meta::v1::Patch>();
    let mut schemas = generator.take_definitions(true);

    for k in &kinds {
        add_gvk(&mut schemas, &k.name, gvk_value(k.group, k.version, &k.kind));
        if !METADATA_REQUIRED.contains(&k.name.as_str()) {
            unrequire_metadata(&mut schemas, &k.name);
        }
    }
    // DeleteOptions is accepted by every group-version, as upstream declares.
    for (group, versions) in groups() {
        for version in versions {
            add_gvk(&mut schemas, DELETE_OPTIONS, gvk_value(group, version, "DeleteOptions"));
        }
    }
    let mut lists = Vec::new();
    for r in RESOURCES {
        let Some(item) = kinds.iter().find(|k| k.group == r.group && k.version == r.version && k.kind == r.kind) else {
            continue;
        };
        let name = list_name(&item.name, r.kind);
        if !schemas.contains_key(&name) {
            schemas.insert(name.clone(), list_schema(r, &item.name));
            lists.push(KindSchema { group: r.group, version: r.version, kind: r.list_kind(), name });
        }
    }
    kinds.extend(lists);
    Catalog { schemas, kinds }
}

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum In {
    Path,
    Query,
}

/// The value type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParamType {
    String,
    Boolean,
    Integer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Param {
    name: &'static str,
    location: In,
    kind: ParamType,
    description: String,
}

fn query(name: &'static str, kind: ParamType, description: &str) -> Param {
    Param { name, location: In::Query, kind, description: description.to_string() }
}

fn path_param(name: &'static str, description: String) -> Param {
    Param { name, location: In::Path, kind: ParamType::String, description }
}

fn pretty() -> Param {
    query("pretty", ParamType::String, "If 'true', then the output is pretty printed.")
}

fn dry_run() -> Param {
    query(
        "dryRun",
        ParamType::String,
        "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
    )
}

fn field_manager() -> Param {
    query(
        "fieldManager",
        ParamType::String,
        "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. It is required for apply requests (application/apply-patch).",
    )
}

fn field_validation() -> Param {
    query(
        "fieldValidation",
        ParamType::String,
        "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: unknown fields are silently dropped and all but the last duplicate field are ignored. - Warn: a warning is sent in the standard warning response header for each unknown field dropped and each duplicate field found; the request still succeeds if there are no other errors. This is the default. - Strict: the request fails with a BadRequest error if any unknown field would be dropped or any duplicate field is present; the error lists them all.",
    )
}

fn force() -> Param {
    query(
        "force",
        ParamType::Boolean,
        "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
    )
}

/// The parameters of a write (POST/PUT).
fn write_params() -> Vec<Param> {
    vec![dry_run(), field_manager(), field_validation()]
}

/// The parameters of a PATCH.
fn patch_params() -> Vec<Param> {
    vec![dry_run(), field_manager(), field_validation(), force()]
}

fn list_params() -> Vec<Param> {
    vec![
        query(
            "allowWatchBookmarks",
            ParamType::Boolean,
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag.",
        ),
        query(
            "continue",
            ParamType::String,
            "The continue option should be set when retrieving more results from the server. Its value is the continue token of the previous list response.",
        ),
        query(
            "fieldSelector",
            ParamType::String,
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
        ),
        query(
            "labelSelector",
            ParamType::String,
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
        ),
        query(
            "limit",
            ParamType::Integer,
            "limit is a maximum number of responses to return for a list call. If more items exist, the server sets the `continue` field on the list metadata.",
        ),
        query(
            "resourceVersion",
            ParamType::String,
            "resourceVersion sets a constraint on what resource versions a request may be served from. Defaults to unset.",
        ),
        query(
            "resourceVersionMatch",
            ParamType::String,
            "resourceVersionMatch determines how resourceVersion is applied to list calls. Defaults to unset.",
        ),
        query(
            "sendInitialEvents",
            ParamType::Boolean,
            "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream begins with synthetic events to produce the current state of objects in the collection.",
        ),
        query(
            "timeoutSeconds",
            ParamType::Integer,
            "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
        ),
        query(
            "watch",
            ParamType::Boolean,
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
    ]
}

fn delete_params() -> Vec<Param> {
    vec![
        dry_run(),
        query(
            "gracePeriodSeconds",
            ParamType::Integer,
            "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used.",
        ),
        query(
            "orphanDependents",
            ParamType::Boolean,
            "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned.",
        ),
        query(
            "propagationPolicy",
            ParamType::String,
            "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.",
        ),
    ]
}

fn delete_collection_params() -> Vec<Param> {
    let mut params = delete_params();
    params.extend(list_params().into_iter().filter(|p| !matches!(p.name, "allowWatchBookmarks" | "watch")));
    params.sort_by_key(|p| p.name);
    params
}

fn log_params() -> Vec<Param> {
    vec![
        query(
            "container",
            ParamType::String,
            "The container for which to stream logs. Defaults to only container if there is one container in the pod.",
        ),
        query("follow", ParamType::Boolean, "Follow the log stream of the pod. Defaults to false."),
        query(
            "limitBytes",
            ParamType::Integer,
            "If set, the number of bytes to read from the server before terminating the log output.",
        ),
        query("previous", ParamType::Boolean, "Return previous terminated container logs. Defaults to false."),
        query(
            "sinceSeconds",
            ParamType::Integer,
            "A relative time in seconds before the current time from which to show logs.",
        ),
        query("sinceTime", ParamType::String, "An RFC3339 timestamp from which to show logs."),
        query("tailLines", ParamType::Integer, "If set, the number of lines from the end of the logs to show."),
        query(
            "timestamps",
            ParamType::Boolean,
            "If true, add an RFC3339 timestamp at the beginning of every line of log output. Defaults to false.",
        ),
    ]
}

fn portforward_params() -> Vec<Param> {
    vec![query("ports", ParamType::Integer, "List of ports to forward Required when using WebSockets")]
}

fn exec_params() -> Vec<Param> {
    vec![
        query(
            "command",
            ParamType::String,
            "Command is the remote command to execute. argv array. Not executed within a shell.",
        ),
        query(
            "container",
            ParamType::String,
            "Container in which to execute the command. Defaults to only container if there is only one container in the pod.",
        ),
        query("stderr", ParamType::Boolean, "Redirect the standard error stream of the pod for this call."),
        query(
            "stdin",
            ParamType::Boolean,
            "Redirect the standard input stream of the pod for this call. Defaults to false.",
        ),
        query("stdout", ParamType::Boolean, "Redirect the standard output stream of the pod for this call."),
        query(
            "tty",
            ParamType::Boolean,
            "TTY if true indicates that a tty will be allocated for the exec call. Defaults to false.",
        ),
    ]
}

/// What a request or response body is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    /// A named schema.
    Schema(String),
    /// Plain text (logs, exec).
    Text,
}

/// How an operation's request body is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RequestBody {
    /// POST/PUT of an object.
    Object(String),
    /// PATCH: the media types Skiff accepts, without strategic merge patch (module docs).
    Patch,
    /// DELETE with optional `DeleteOptions`.
    DeleteOptions,
}

/// The media types a PATCH accepts.
const PATCH_TYPES: &[&str] =
    &["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Operation {
    method: &'static str,
    id: String,
    description: String,
    /// `x-kubernetes-action`.
    action: &'static str,
    gvk: (&'static str, &'static str, &'static str),
    params: Vec<Param>,
    request: Option<RequestBody>,
    /// Status codes with their descriptions and the body of the success responses.
    responses: Vec<(&'static str, &'static str)>,
    response: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PathItem {
    path: String,
    params: Vec<Param>,
    operations: Vec<Operation>,
}

/// `/api/v1` or `/apis/{group}/{version}`.
fn gv_prefix(group: &str, version: &str) -> String {
    if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") }
}

/// `api/v1` or `apis/{group}/{version}`: the key of a group-version in the v3 index.
fn gv_key(group: &str, version: &str) -> String {
    gv_prefix(group, version).trim_start_matches('/').to_string()
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The group's part of upstream operation ids: `Core`, `Apps`, `Coordination`, `Events`.
fn group_camel(group: &str) -> String {
    if group.is_empty() {
        return "Core".to_string();
    }
    group.trim_end_matches(".k8s.io").split('.').map(capitalize).collect()
}

/// `CoreV1`, `AppsV1`: the group-version part of operation ids.
fn gv_camel(group: &str, version: &str) -> String {
    format!("{}{}", group_camel(group), capitalize(version))
}

/// `core_v1`, `apps_v1`, `coordination_v1`: upstream operation tags.
fn gv_tag(group: &str, version: &str) -> String {
    let camel = group_camel(group);
    let mut chars = camel.chars();
    let lower: String = match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    format!("{lower}_{version}")
}

const READ_RESPONSES: &[(&str, &str)] = &[("200", "OK"), ("401", "Unauthorized")];
const CREATE_RESPONSES: &[(&str, &str)] =
    &[("200", "OK"), ("201", "Created"), ("202", "Accepted"), ("401", "Unauthorized")];
const REPLACE_RESPONSES: &[(&str, &str)] = &[("200", "OK"), ("201", "Created"), ("401", "Unauthorized")];
const DELETE_RESPONSES: &[(&str, &str)] = &[("200", "OK"), ("202", "Accepted"), ("401", "Unauthorized")];

/// The paths and operations of one resource, as upstream's endpoint installer lays them out.
fn resource_paths(r: &ResourceInfo, catalog: &Catalog) -> Vec<PathItem> {
    let prefix = gv_prefix(r.group, r.version);
    let gv = gv_camel(r.group, r.version);
    let kind = r.kind;
    let gvk = (r.group, r.version, r.kind);
    let item_schema = catalog.name_of(r.group, r.version, r.kind).unwrap_or_default().to_string();
    let list_schema = catalog.name_of(r.group, r.version, &r.list_kind()).unwrap_or_default().to_string();
    let status_schema = catalog.name_of("", "v1", "Status").unwrap_or_default().to_string();
    let (scoped, ns_id) = if r.namespaced() { ("/namespaces/{namespace}", "Namespaced") } else { ("", "") };
    let collection = format!("{prefix}{scoped}/{}", r.plural);
    let item = format!("{collection}/{{name}}");
    let mut base_params = Vec::new();
    if r.namespaced() {
        base_params.push(path_param("namespace", "object name and auth scope, such as for teams and projects".into()));
    }
    base_params.push(pretty());
    let mut item_params = vec![path_param("name", format!("name of the {kind}"))];
    item_params.extend(base_params.iter().cloned());
    let op = |method, id: String, description: String, action, params, request, responses: &[_], response| Operation {
        method,
        id,
        description,
        action,
        gvk,
        params,
        request,
        responses: responses.to_vec(),
        response,
    };

    let mut out = vec![
        PathItem {
            path: collection.clone(),
            params: base_params.clone(),
            operations: vec![
                op(
                    "get",
                    format!("list{gv}{ns_id}{kind}"),
                    format!("list or watch objects of kind {kind}"),
                    "list",
                    list_params(),
                    None,
                    READ_RESPONSES,
                    Body::Schema(list_schema.clone()),
                ),
                op(
                    "post",
                    format!("create{gv}{ns_id}{kind}"),
                    format!("create a {kind}"),
                    "post",
                    write_params(),
                    Some(RequestBody::Object(item_schema.clone())),
                    CREATE_RESPONSES,
                    Body::Schema(item_schema.clone()),
                ),
                op(
                    "delete",
                    format!("delete{gv}Collection{ns_id}{kind}"),
                    format!("delete collection of {kind}"),
                    "deletecollection",
                    delete_collection_params(),
                    Some(RequestBody::DeleteOptions),
                    READ_RESPONSES,
                    Body::Schema(status_schema.clone()),
                ),
            ],
        },
        PathItem {
            path: item.clone(),
            params: item_params.clone(),
            operations: vec![
                op(
                    "get",
                    format!("read{gv}{ns_id}{kind}"),
                    format!("read the specified {kind}"),
                    "get",
                    Vec::new(),
                    None,
                    READ_RESPONSES,
                    Body::Schema(item_schema.clone()),
                ),
                op(
                    "put",
                    format!("replace{gv}{ns_id}{kind}"),
                    format!("replace the specified {kind}"),
                    "put",
                    write_params(),
                    Some(RequestBody::Object(item_schema.clone())),
                    REPLACE_RESPONSES,
                    Body::Schema(item_schema.clone()),
                ),
                op(
                    "delete",
                    format!("delete{gv}{ns_id}{kind}"),
                    format!("delete a {kind}"),
                    "delete",
                    delete_params(),
                    Some(RequestBody::DeleteOptions),
                    DELETE_RESPONSES,
                    Body::Schema(status_schema.clone()),
                ),
                op(
                    "patch",
                    format!("patch{gv}{ns_id}{kind}"),
                    format!("partially update the specified {kind}"),
                    "patch",
                    patch_params(),
                    Some(RequestBody::Patch),
                    REPLACE_RESPONSES,
                    Body::Schema(item_schema.clone()),
                ),
            ],
        },
    ];
    if r.namespaced() {
        let mut params = list_params();
        params.push(pretty());
        out.push(PathItem {
            path: format!("{prefix}/{}", r.plural),
            params: Vec::new(),
            operations: vec![op(
                "get",
                format!("list{gv}{kind}ForAllNamespaces"),
                format!("list or watch objects of kind {kind}"),
                "list",
                params,
                None,
                READ_RESPONSES,
                Body::Schema(list_schema.clone()),
            )],
        });
    }

    let mut subs = r.subresources.to_vec();
    subs.sort_by_key(|s| s.name());
    for sub in subs {
        let (sg, sv, sk) = sub.response_kind(r);
        let sub_schema = catalog.name_of(sg, sv, sk).unwrap_or_default().to_string();
        let name = sub.name();
        let id_suffix = capitalize(name);
        let sub_op =
            |method, id_verb: &str, description: String, action, params, request, responses: &[_], response| {
                let mut o = op(
                    method,
                    format!("{id_verb}{gv}{ns_id}{kind}{id_suffix}"),
                    description,
                    action,
                    params,
                    request,
                    responses,
                    response,
                );
                o.gvk = (sg, sv, sk);
                o
            };
        // PUT of the subresource (status, scale, a namespace's finalize).
        let replace = || {
            sub_op(
                "put",
                "replace",
                format!("replace {name} of the specified {kind}"),
                "put",
                write_params(),
                Some(RequestBody::Object(sub_schema.clone())),
                REPLACE_RESPONSES,
                Body::Schema(sub_schema.clone()),
            )
        };
        let operations = match sub {
            Subresource::Status | Subresource::Scale => vec![
                sub_op(
                    "get",
                    "read",
                    format!("read {name} of the specified {kind}"),
                    "get",
                    Vec::new(),
                    None,
                    READ_RESPONSES,
                    Body::Schema(sub_schema.clone()),
                ),
                replace(),
                sub_op(
                    "patch",
                    "patch",
                    format!("partially update {name} of the specified {kind}"),
                    "patch",
                    patch_params(),
                    Some(RequestBody::Patch),
                    REPLACE_RESPONSES,
                    Body::Schema(sub_schema.clone()),
                ),
            ],
            Subresource::Finalize => vec![replace()],
            Subresource::Binding | Subresource::Eviction => vec![sub_op(
                "post",
                "create",
                format!("create {name} of a {kind}"),
                "post",
                write_params(),
                Some(RequestBody::Object(sub_schema.clone())),
                CREATE_RESPONSES,
                Body::Schema(sub_schema.clone()),
            )],
            Subresource::Log => vec![sub_op(
                "get",
                "read",
                format!("read {name} of the specified {kind}"),
                "get",
                log_params(),
                None,
                READ_RESPONSES,
                Body::Text,
            )],
            Subresource::Exec | Subresource::PortForward => ["get", "post"]
                .into_iter()
                .map(|method| {
                    let mut o = sub_op(
                        method,
                        "connect",
                        format!("connect {} requests to {name} of {kind}", method.to_uppercase()),
                        "connect",
                        if sub == Subresource::Exec { exec_params() } else { portforward_params() },
                        None,
                        READ_RESPONSES,
                        Body::Text,
                    );
                    o.id = format!("connect{gv}{}{ns_id}{kind}{id_suffix}", capitalize(method));
                    o
                })
                .collect(),
        };
        out.push(PathItem {
            path: format!("{item}/{name}"),
            // Upstream's connect operations take no `pretty`.
            params: item_params
                .iter()
                .filter(|p| !matches!(sub, Subresource::Exec | Subresource::PortForward) || p.name != "pretty")
                .cloned()
                .collect(),
            operations,
        });
    }
    out
}

/// Every path of a group-version, in path order.
fn gv_paths(group: &str, version: &str, catalog: &Catalog) -> Vec<PathItem> {
    let mut paths: Vec<PathItem> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(|r| resource_paths(r, catalog))
        .collect();
    paths.sort_by(|a, b| a.path.cmp(&b.path));
    paths
}

fn param_type(kind: ParamType) -> &'static str {
    match kind {
        ParamType::String => "string",
        ParamType::Boolean => "boolean",
        ParamType::Integer => "integer",
    }
}

fn location(l: In) -> &'static str {
    match l {
        In::Path => "path",
        In::Query => "query",
    }
}

/// The form a document takes: OpenAPI 3.0 or Swagger 2.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    V3,
    V2,
}

impl Form {
    fn reference(self, name: &str) -> Value {
        match self {
            Form::V3 => json!({"$ref": format!("{V3_REF_PREFIX}{name}")}),
            Form::V2 => json!({"$ref": format!("{V2_REF_PREFIX}{name}")}),
        }
    }
}

fn render_param(p: &Param, form: Form) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), p.name.into());
    out.insert("in".into(), location(p.location).into());
    out.insert("description".into(), p.description.clone().into());
    if p.location == In::Path {
        out.insert("required".into(), true.into());
    }
    let mut schema = Map::new();
    schema.insert("type".into(), param_type(p.kind).into());
    if p.kind == ParamType::String {
        schema.insert("uniqueItems".into(), true.into());
    }
    match form {
        Form::V3 => {
            out.insert("schema".into(), Value::Object(schema));
        }
        Form::V2 => out.extend(schema),
    }
    Value::Object(out)
}

fn render_params(params: &[Param], form: Form) -> Value {
    Value::Array(params.iter().map(|p| render_param(p, form)).collect())
}

fn body_schema(body: &Body, form: Form) -> Value {
    match body {
        Body::Schema(name) => form.reference(name),
        Body::Text => json!({"type": "string"}),
    }
}

fn response_types(body: &Body) -> &'static [&'static str] {
    match body {
        Body::Schema(_) => &["application/json"],
        Body::Text => &["text/plain", "application/json"],
    }
}

fn request_types(request: &RequestBody) -> (&'static [&'static str], Body) {
    match request {
        RequestBody::Object(name) => (&["*/*"], Body::Schema(name.clone())),
        RequestBody::Patch => (PATCH_TYPES, Body::Schema(PATCH.to_string())),
        RequestBody::DeleteOptions => (&["*/*"], Body::Schema(DELETE_OPTIONS.to_string())),
    }
}

fn render_operation(op: &Operation, tag: &str, form: Form) -> Value {
    let mut out = Map::new();
    out.insert("tags".into(), json!([tag]));
    out.insert("description".into(), op.description.clone().into());
    out.insert("operationId".into(), op.id.clone().into());
    let mut params = render_params(&op.params, form);
    let mut responses = Map::new();
    for (code, description) in &op.responses {
        let mut response = Map::new();
        response.insert("description".into(), (*description).into());
        if code.starts_with('2') {
            let schema = body_schema(&op.response, form);
            match form {
                Form::V3 => {
                    let content: Map<String, Value> = response_types(&op.response)
                        .iter()
                        .map(|t| ((*t).to_string(), json!({"schema": schema.clone()})))
                        .collect();
                    response.insert("content".into(), Value::Object(content));
                }
                Form::V2 => {
                    response.insert("schema".into(), schema);
                }
            }
        }
        responses.insert((*code).to_string(), Value::Object(response));
    }
    if let Some(request) = &op.request {
        let (types, body) = request_types(request);
        let required = !matches!(request, RequestBody::DeleteOptions);
        match form {
            Form::V3 => {
                let content: Map<String, Value> =
                    types.iter().map(|t| ((*t).to_string(), json!({"schema": body_schema(&body, form)}))).collect();
                let mut request_body = Map::new();
                request_body.insert("content".into(), Value::Object(content));
                if required {
                    request_body.insert("required".into(), true.into());
                }
                out.insert("requestBody".into(), Value::Object(request_body));
            }
            Form::V2 => {
                if let Value::Array(list) = &mut params {
                    let mut body_param = json!({"name": "body", "in": "body", "schema": body_schema(&body, form)});
                    if required {
                        body_param["required"] = true.into();
                    }
                    list.insert(0, body_param);
                }
                out.insert("consumes".into(), json!(types));
            }
        }
    }
    if form == Form::V2 {
        out.insert("produces".into(), json!(response_types(&op.response)));
        out.insert("schemes".into(), json!(["https"]));
    }
    if params.as_array().is_some_and(|a| !a.is_empty()) {
        out.insert("parameters".into(), params);
    }
    out.insert("responses".into(), Value::Object(responses));
    out.insert("x-kubernetes-action".into(), op.action.into());
    let (g, v, k) = op.gvk;
    out.insert("x-kubernetes-group-version-kind".into(), gvk_value(g, v, k));
    Value::Object(out)
}

fn render_paths(paths: &[PathItem], tag: &str, form: Form) -> Map<String, Value> {
    paths
        .iter()
        .map(|item| {
            let mut out = Map::new();
            for op in &item.operations {
                out.insert(op.method.into(), render_operation(op, tag, form));
            }
            if !item.params.is_empty() {
                out.insert("parameters".into(), render_params(&item.params, form));
            }
            (item.path.clone(), Value::Object(out))
        })
        .collect()
}

/// Every `$ref` target named in a value, with `prefix` removed.
fn collect_refs(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref"
                    && let Some(name) = v.as_str().and_then(|s| s.strip_prefix(prefix))
                {
                    out.insert(name.to_string());
                }
                collect_refs(v, prefix, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, prefix, out)),
        _ => {}
    }
}

/// The schemas `paths` refers to, with everything they refer to in turn.
fn schemas_closure(paths: &Value, catalog: &Catalog) -> Map<String, Value> {
    let mut pending = BTreeSet::new();
    collect_refs(paths, V3_REF_PREFIX, &mut pending);
    let mut out = Map::new();
    while let Some(name) = pending.pop_first() {
        if out.contains_key(&name) {
            continue;
        }
        if let Some(schema) = catalog.schemas.get(&name) {
            let mut refs = BTreeSet::new();
            collect_refs(schema, V3_REF_PREFIX, &mut refs);
            pending.extend(refs.into_iter().filter(|r| !out.contains_key(r)));
            out.insert(name, schema.clone());
        }
    }
    out
}

fn security_schemes() -> Value {
    json!({"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}})
}

fn build_v3_docs() -> BTreeMap<String, Value> {
    let catalog = &*CATALOG;
    let mut docs = BTreeMap::new();
    for (group, versions) in groups() {
        for version in versions {
            let paths = gv_paths(group, version, catalog);
            let paths = Value::Object(render_paths(&paths, &gv_tag(group, version), Form::V3));
            let schemas = schemas_closure(&paths, catalog);
            let doc = json!({
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": INFO_VERSION},
                "paths": paths,
                "components": {"schemas": schemas, "securitySchemes": security_schemes()},
                "security": [{"BearerToken": []}],
            });
            docs.insert(gv_key(group, version), doc);
        }
    }
    docs
}

static V3_DOCS: LazyLock<BTreeMap<String, Value>> = LazyLock::new(build_v3_docs);

/// FNV-1a, 64 bits: a stable (across builds and runs) fingerprint of a document for the
/// `?hash=` cache key of the v3 index. Not cryptographic; it only has to change when the document does.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn doc_hash(doc: &Value) -> String {
    format!("{:016X}", fnv1a(doc.to_string().as_bytes()))
}

static V3_INDEX: LazyLock<Value> = LazyLock::new(|| {
    let paths: Map<String, Value> = V3_DOCS
        .iter()
        .map(|(key, doc)| {
            (key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", doc_hash(doc))}))
        })
        .collect();
    json!({"paths": paths})
});

/// `/openapi/v3`: `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=..."}, ...}}`.
/// The hash changes whenever the document does (kubectl caches documents by this URL).
pub fn v3_index() -> Value {
    V3_INDEX.clone()
}

/// `/openapi/v3/{path}` for `path` = `api/v1` or `apis/{group}/{version}` (a leading `/` and a query
/// string are tolerated): the OpenAPI 3.0 document of that group-version, or `None` if not served.
pub fn v3_group_version(path: &str) -> Option<Value> {
    let path = path.split('?').next().unwrap_or_default().trim_matches('/');
    V3_DOCS.get(path).cloned()
}

/// Rewrites OpenAPI 3 `$ref`s (`#/components/schemas/X`) to Swagger 2 ones (`#/definitions/X`).
fn to_v2_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "$ref"
                    && let Some(name) = v.as_str().and_then(|s| s.strip_prefix(V3_REF_PREFIX))
                {
                    *v = Value::String(format!("{V2_REF_PREFIX}{name}"));
                } else {
                    to_v2_refs(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(to_v2_refs),
        _ => {}
    }
}

static V2_DOC: LazyLock<Value> = LazyLock::new(|| {
    let catalog = &*CATALOG;
    let mut paths = Map::new();
    let mut all_v3_paths = Map::new();
    for (group, versions) in groups() {
        for version in versions {
            let items = gv_paths(group, version, catalog);
            let tag = gv_tag(group, version);
            paths.extend(render_paths(&items, &tag, Form::V2));
            all_v3_paths.extend(render_paths(&items, &tag, Form::V3));
        }
    }
    let mut definitions = Value::Object(schemas_closure(&Value::Object(all_v3_paths), catalog));
    to_v2_refs(&mut definitions);
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": INFO_VERSION},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": security_schemes(),
        "security": [{"BearerToken": []}],
    })
});

/// `/openapi/v2` as JSON (Swagger 2.0) of every group-version. kubectl asks for this only as
/// protobuf, which Skiff does not produce; see the module docs for why it does not need it.
pub fn v2() -> Value {
    V2_DOC.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(path: &str) -> Value {
        v3_group_version(path).unwrap_or_else(|| panic!("{path} not served"))
    }

    fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
        doc["components"]["schemas"].get(name).unwrap_or_else(|| panic!("schema {name} missing"))
    }

    /// Follows a property path through `properties`, `items` and `allOf`/`$ref`, the way
    /// `kubectl explain` walks a field path.
    fn field<'a>(doc: &'a Value, mut schema: &'a Value, path: &[&str]) -> &'a Value {
        let deref = |mut s: &'a Value| {
            loop {
                if let Some(r) = s.get("$ref").and_then(Value::as_str) {
                    let name = r.strip_prefix(V3_REF_PREFIX).expect("local ref");
                    s = &doc["components"]["schemas"][name];
                } else if let Some(first) = s.get("allOf").and_then(|a| a.get(0)) {
                    s = first;
                } else if let Some(items) = s.get("items") {
                    s = items;
                } else {
                    return s;
                }
            }
        };
        for p in path {
            schema = deref(schema).get("properties").and_then(|props| props.get(*p)).unwrap_or_else(|| {
                panic!("no field {p} in path {path:?}");
            });
        }
        schema
    }

    #[test]
    fn index_lists_every_group_version_with_a_hash() {
        let index = v3_index();
        let paths = index["paths"].as_object().expect("paths");
        let keys: Vec<&str> = paths.keys().map(String::as_str).collect();
        assert_eq!(keys, ["api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1", "apis/events.k8s.io/v1"]);
        for (key, entry) in paths {
            let url = entry["serverRelativeURL"].as_str().expect("url");
            let (path, hash) = url.split_once("?hash=").expect("hash");
            assert_eq!(path, format!("/openapi/v3/{key}"));
            assert_eq!(hash.len(), 16);
            assert_eq!(hash, doc_hash(&doc(key)));
            assert_eq!(v3_group_version(&format!("/openapi/v3/{key}").replace("/openapi/v3/", "/")), Some(doc(key)));
            assert_eq!(v3_group_version(url.trim_start_matches("/openapi/v3/")), Some(doc(key)));
        }
        assert_ne!(paths["api/v1"]["serverRelativeURL"], paths["apis/apps/v1"]["serverRelativeURL"]);
        assert_eq!(v3_group_version("apis/batch/v1"), None);
        assert_eq!(v3_group_version("apis/apps"), None);
        assert_eq!(v3_index(), index, "stable across calls");
    }

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_resource_patch_declares_field_validation_and_gvk() {
        for r in RESOURCES {
            let d = doc(&gv_key(r.group, r.version));
            let prefix = gv_prefix(r.group, r.version);
            let scoped = if r.namespaced() { "/namespaces/{namespace}" } else { "" };
            let collection = format!("{prefix}{scoped}/{}", r.plural);
            let item = format!("{collection}/{{name}}");
            let gvk = json!({"group": r.group, "kind": r.kind, "version": r.version});

            let patch = &d["paths"][&item]["patch"];
            assert_eq!(patch["x-kubernetes-group-version-kind"], gvk, "{item}");
            assert_eq!(patch["x-kubernetes-action"], "patch");
            let names: Vec<&str> = patch["parameters"]
                .as_array()
                .expect("patch parameters")
                .iter()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(names, ["dryRun", "fieldManager", "fieldValidation", "force"], "{item}");
            let content = patch["requestBody"]["content"].as_object().expect("patch content");
            let types: Vec<&str> = content.keys().map(String::as_str).collect();
            assert_eq!(
                types,
                ["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"]
            );
            assert!(!content.contains_key("application/strategic-merge-patch+json"));

            for method in ["get", "put", "delete"] {
                assert_eq!(d["paths"][&item][method]["x-kubernetes-group-version-kind"], gvk, "{method} {item}");
            }
            for method in ["get", "post"] {
                assert_eq!(
                    d["paths"][&collection][method]["x-kubernetes-group-version-kind"], gvk,
                    "{method} {collection}"
                );
            }
            let post_params: Vec<&str> = d["paths"][&collection]["post"]["parameters"]
                .as_array()
                .expect("post parameters")
                .iter()
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(post_params, ["dryRun", "fieldManager", "fieldValidation"]);
            let path_params: Vec<&str> = d["paths"][&item]["parameters"]
                .as_array()
                .expect("path parameters")
                .iter()
                .filter_map(|p| p["name"].as_str())
                .collect();
            let want: &[&str] = if r.namespaced() { &["name", "namespace", "pretty"] } else { &["name", "pretty"] };
            assert_eq!(path_params, want, "{item}");
            if r.namespaced() {
                let all = format!("{prefix}/{}", r.plural);
                assert_eq!(d["paths"][&all]["get"]["x-kubernetes-group-version-kind"], gvk, "{all}");
            }

            // The schema kubectl explain finds for the kind.
            let found: Vec<&String> = d["components"]["schemas"]
                .as_object()
                .expect("schemas")
                .iter()
                .filter(|(_, s)| {
                    s["x-kubernetes-group-version-kind"].as_array().is_some_and(|gvks| gvks.contains(&gvk))
                })
                .map(|(name, _)| name)
                .collect();
            assert_eq!(found.len(), 1, "{gvk}: {found:?}");
        }
    }

    #[test]
    fn every_patch_operation_of_a_kind_has_field_validation() {
        // kubectl stops at the first PATCH of the kind it meets, in no fixed order: /status and
        // /scale must carry the parameter as well.
        for (key, d) in V3_DOCS.iter() {
            for (path, item) in d["paths"].as_object().expect("paths") {
                if let Some(patch) = item.get("patch") {
                    assert!(patch["x-kubernetes-group-version-kind"]["kind"].is_string(), "{key} {path}");
                    assert!(
                        patch["parameters"]
                            .as_array()
                            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "fieldValidation" && p["in"] == "query")),
                        "{key} {path}"
                    );
                }
            }
        }
    }

    #[test]
    fn subresource_paths() {
        let apps = doc("apis/apps/v1");
        let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        assert_eq!(
            scale["patch"]["x-kubernetes-group-version-kind"],
            json!({"group": "autoscaling", "kind": "Scale", "version": "v1"})
        );
        assert_eq!(scale["patch"]["operationId"], "patchAppsV1NamespacedDeploymentScale");
        assert_eq!(
            scale["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.autoscaling.v1.Scale"
        );
        let status = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/replicasets/{name}/status"];
        assert_eq!(status["put"]["operationId"], "replaceAppsV1NamespacedReplicaSetStatus");
        assert_eq!(status["patch"]["x-kubernetes-group-version-kind"]["kind"], "ReplicaSet");

        let core = doc("api/v1");
        let pod = "/api/v1/namespaces/{namespace}/pods/{name}";
        assert_eq!(
            core["paths"][format!("{pod}/eviction")]["post"]["x-kubernetes-group-version-kind"]["group"],
            "policy"
        );
        assert_eq!(core["paths"][format!("{pod}/binding")]["post"]["operationId"], "createCoreV1NamespacedPodBinding");
        assert_eq!(core["paths"][format!("{pod}/log")]["get"]["operationId"], "readCoreV1NamespacedPodLog");
        assert_eq!(
            core["paths"][format!("{pod}/log")]["get"]["responses"]["200"]["content"]["text/plain"]["schema"],
            json!({"type": "string"})
        );
        assert_eq!(core["paths"][format!("{pod}/exec")]["post"]["operationId"], "connectCoreV1PostNamespacedPodExec");
        assert_eq!(core["paths"]["/api/v1/nodes/{name}/status"]["get"]["operationId"], "readCoreV1NodeStatus");
        assert_eq!(core["paths"]["/api/v1/namespaces"]["get"]["operationId"], "listCoreV1Namespace");
        assert!(core["paths"].get("/api/v1/namespaces/{namespace}/namespaces").is_none());
        assert_eq!(core["paths"]["/api/v1/pods"]["get"]["operationId"], "listCoreV1PodForAllNamespaces");
        let leases = doc("apis/coordination.k8s.io/v1");
        assert_eq!(
            leases["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"]["post"]["tags"],
            json!(["coordination_v1"])
        );
    }

    #[test]
    fn every_ref_resolves_inside_its_document() {
        for (key, d) in V3_DOCS.iter() {
            let mut refs = BTreeSet::new();
            collect_refs(d, V3_REF_PREFIX, &mut refs);
            assert!(refs.len() > 10, "{key}");
            for name in &refs {
                assert!(d["components"]["schemas"].get(name).is_some(), "{key}: {name} does not resolve");
            }
            // Nothing but local component refs.
            let mut all = BTreeSet::new();
            collect_refs(d, "", &mut all);
            assert!(all.iter().all(|r| r.starts_with(V3_REF_PREFIX)), "{key}: {all:?}");
        }
        let v2 = v2();
        let mut refs = BTreeSet::new();
        collect_refs(&v2, "", &mut refs);
        for r in &refs {
            let name = r.strip_prefix(V2_REF_PREFIX).unwrap_or_else(|| panic!("v2 ref {r}"));
            assert!(v2["definitions"].get(name).is_some(), "{name} does not resolve in v2");
        }
    }

    #[test]
    fn refs_with_siblings_are_wrapped_in_all_of() {
        for (key, d) in V3_DOCS.iter() {
            fn check(v: &Value, key: &str) {
                match v {
                    Value::Object(map) => {
                        assert!(!(map.contains_key("$ref") && map.len() > 1), "{key}: $ref with siblings: {v}");
                        map.values().for_each(|c| check(c, key));
                    }
                    Value::Array(items) => items.iter().for_each(|c| check(c, key)),
                    _ => {}
                }
            }
            check(&d["components"], key);
        }
    }

    #[test]
    fn deployment_schema_for_explain() {
        let apps = doc("apis/apps/v1");
        let deployment = schema(&apps, "io.k8s.api.apps.v1.Deployment");
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert_eq!(deployment["description"], "Deployment enables declarative updates for Pods and ReplicaSets.");
        assert_eq!(
            deployment["properties"]["spec"],
            json!({
                "allOf": [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}],
                "description": "Specification of the desired behavior of the Deployment.",
            })
        );
        let strategy = field(&apps, deployment, &["spec", "strategy"]);
        assert_eq!(strategy["description"], "The deployment strategy to use to replace existing pods with new ones.");
        assert_eq!(strategy["allOf"], json!([{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}]));
        let strategy_type = field(&apps, deployment, &["spec", "strategy", "type"]);
        assert_eq!(strategy_type["type"], "string");
        let max_surge = field(&apps, deployment, &["spec", "strategy", "rollingUpdate", "maxSurge"]);
        assert!(max_surge["allOf"][0]["$ref"].as_str().is_some_and(|r| r.ends_with("intstr.IntOrString")));
        assert!(apps["components"]["schemas"].get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta").is_some());
        assert!(deployment.get("required").is_none(), "upstream Deployment requires nothing");
        let list = schema(&apps, "io.k8s.api.apps.v1.DeploymentList");
        assert_eq!(
            list["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "DeploymentList", "version": "v1"}])
        );
        assert_eq!(list["required"], json!(["items"]));
        // Only this group-version's kinds: no Pod schema with a GVK in apps/v1.
        assert!(schema(&apps, "io.k8s.api.core.v1.PodSpec")["x-kubernetes-group-version-kind"].is_null());
        assert!(apps["components"]["schemas"].get("io.k8s.api.core.v1.Pod").is_none());
    }

    #[test]
    fn pod_schema_for_explain() {
        let core = doc("api/v1");
        let pod = schema(&core, "io.k8s.api.core.v1.Pod");
        assert_eq!(pod["x-kubernetes-group-version-kind"], json!([{"group": "", "kind": "Pod", "version": "v1"}]));
        let containers = field(&core, pod, &["spec", "containers"]);
        assert_eq!(containers["type"], "array");
        assert_eq!(containers["items"], json!({"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}));
        assert!(
            containers["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("List of containers belonging to the pod."))
        );
        let image = field(&core, pod, &["spec", "containers", "image"]);
        assert_eq!(image["type"], "string");
        assert_eq!(schema(&core, "io.k8s.api.core.v1.Container")["required"], json!(["name"]));
        assert!(pod.get("required").is_none());
        assert_eq!(schema(&core, "io.k8s.api.core.v1.Event")["required"], json!(["involvedObject", "metadata"]));
        assert_eq!(schema(&core, "io.k8s.api.core.v1.Binding")["required"], json!(["target"]));
        // DeleteOptions and Status carry their GVKs, as upstream.
        assert!(
            schema(&core, DELETE_OPTIONS)["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|g| g.contains(&json!({"group": "", "kind": "DeleteOptions", "version": "v1"})))
        );
        assert_eq!(
            schema(&core, "io.k8s.apimachinery.pkg.apis.meta.v1.Status")["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "Status", "version": "v1"}])
        );
        // Core and events.k8s.io Events are distinct schemas.
        let events = doc("apis/events.k8s.io/v1");
        assert_eq!(
            schema(&events, "io.k8s.api.events.v1.Event")["x-kubernetes-group-version-kind"],
            json!([{"group": "events.k8s.io", "kind": "Event", "version": "v1"}])
        );
        assert!(events["components"]["schemas"].get("io.k8s.api.core.v1.Event").is_none());
    }

    #[test]
    fn every_kind_served_has_a_schema() {
        for r in RESOURCES {
            assert!(CATALOG.name_of(r.group, r.version, r.kind).is_some(), "{} {}", r.api_version(), r.kind);
            assert!(CATALOG.name_of(r.group, r.version, &r.list_kind()).is_some(), "{}", r.list_kind());
            for sub in r.subresources {
                let (g, v, k) = sub.response_kind(r);
                assert!(CATALOG.name_of(g, v, k).is_some(), "{g}/{v} {k}");
            }
        }
    }

    #[test]
    fn names() {
        let cases = [
            ("", "v1", "Core", "CoreV1", "core_v1"),
            ("apps", "v1", "Apps", "AppsV1", "apps_v1"),
            ("coordination.k8s.io", "v1", "Coordination", "CoordinationV1", "coordination_v1"),
            ("rbac.authorization.k8s.io", "v1", "RbacAuthorization", "RbacAuthorizationV1", "rbacAuthorization_v1"),
        ];
        for (group, version, camel, gv, tag) in cases {
            assert_eq!(group_camel(group), camel);
            assert_eq!(gv_camel(group, version), gv);
            assert_eq!(gv_tag(group, version), tag);
        }
        assert_eq!(list_name("io.k8s.api.apps.v1.Deployment", "Deployment"), "io.k8s.api.apps.v1.DeploymentList");
    }

    #[test]
    fn swagger_v2() {
        let v2 = v2();
        assert_eq!(v2["swagger"], "2.0");
        let patch = &v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "kind": "Deployment", "version": "v1"})
        );
        assert_eq!(
            patch["consumes"],
            json!(["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"])
        );
        assert_eq!(
            patch["parameters"][0],
            json!({"name": "body", "in": "body", "required": true, "schema": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}})
        );
        assert_eq!(
            patch["parameters"][3],
            json!({"name": "fieldValidation", "in": "query", "description": field_validation().description, "type": "string", "uniqueItems": true})
        );
        assert_eq!(patch["responses"]["200"]["schema"]["$ref"], "#/definitions/io.k8s.api.apps.v1.Deployment");
        assert!(v2["paths"].get("/api/v1/namespaces/{namespace}/pods").is_some());
        assert!(v2["definitions"].get("io.k8s.api.core.v1.Pod").is_some());
        assert!(v2["definitions"].get("io.k8s.api.apps.v1.DeploymentList").is_some());
    }
}
