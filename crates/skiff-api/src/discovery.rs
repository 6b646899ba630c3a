//! Discovery documents: what `GET /api`, `/apis`, `/apis/{group}`, `/api/v1`, `/apis/{g}/{v}` and
//! `/version` answer.
//!
//! Everything is derived from the static [`RESOURCES`] table, so a resource declared there is
//! discovered, routed and documented the same way. Two forms exist, as upstream
//! (client-go `discovery/discovery_client.go`, `aggregated_discovery.go`; apiserver
//! `pkg/endpoints/discovery`):
//!
//! * **aggregated** (`apidiscovery.k8s.io/v2 APIGroupDiscoveryList`), chosen by the `Accept` header;
//!   kubectl asks for it first and then needs no per-group-version request;
//! * **legacy** (`APIVersions`, `APIGroupList`, `APIGroup`, `APIResourceList`), which client-go falls
//!   back to when the response Content-Type is plain JSON, and which the Python client uses.
//!
//! Ordering matches upstream: groups in table order (core first), resources in table order (core
//! resources alphabetical), subresources alphabetical, so `kubectl get all` lists pods before
//! deployments before replicasets.

use serde_json::{Map, Value, json};

use crate::resource::{RESOURCES, ResourceInfo, Scope, Subresource, groups};

/// Content-Type of an aggregated discovery response (`apidiscovery.k8s.io/v2`).
pub const AGGREGATED_CONTENT_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Content-Type of an aggregated discovery response in the older `v2beta1` version.
pub const AGGREGATED_V2BETA1_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// The version of `APIGroupDiscoveryList` a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregatedVersion {
    /// `apidiscovery.k8s.io/v2` (GA since 1.30; what kubectl 1.35 prefers).
    V2,
    /// `apidiscovery.k8s.io/v2beta1` (older clients).
    V2Beta1,
}

impl AggregatedVersion {
    /// The `version` media-type parameter: `v2` or `v2beta1`.
    pub fn version(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => "v2",
            AggregatedVersion::V2Beta1 => "v2beta1",
        }
    }

    /// The Content-Type to answer with.
    pub fn content_type(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => AGGREGATED_CONTENT_TYPE,
            AggregatedVersion::V2Beta1 => AGGREGATED_V2BETA1_CONTENT_TYPE,
        }
    }

    /// The `apiVersion` of the list object.
    pub fn api_version(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => "apidiscovery.k8s.io/v2",
            AggregatedVersion::V2Beta1 => "apidiscovery.k8s.io/v2beta1",
        }
    }
}

/// One media range of an `Accept` header, lower-cased type and parameters as written.
struct MediaRange<'a> {
    essence: String,
    params: Vec<(String, &'a str)>,
    quality: f32,
}

fn parse_media_range(range: &str) -> Option<MediaRange<'_>> {
    let mut parts = range.split(';');
    let essence = parts.next()?.trim().to_ascii_lowercase();
    if essence.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    let mut quality = 1.0;
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let key = k.trim().to_ascii_lowercase();
        let value = v.trim().trim_matches('"');
        if key == "q" {
            quality = value.parse().unwrap_or(1.0);
        } else {
            params.push((key, value));
        }
    }
    Some(MediaRange { essence, params, quality })
}

/// What one media range asks of a discovery endpoint.
enum Wanted {
    Aggregated(AggregatedVersion),
    Legacy,
    Unsupported,
}

fn wanted(range: &MediaRange<'_>) -> Wanted {
    let param = |name: &str| range.params.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    match range.essence.as_str() {
        "application/json" => match (param("g"), param("v"), param("as")) {
            (None, None, None) => Wanted::Legacy,
            (Some("apidiscovery.k8s.io"), Some("v2"), Some("APIGroupDiscoveryList")) => {
                Wanted::Aggregated(AggregatedVersion::V2)
            }
            (Some("apidiscovery.k8s.io"), Some("v2beta1"), Some("APIGroupDiscoveryList")) => {
                Wanted::Aggregated(AggregatedVersion::V2Beta1)
            }
            _ => Wanted::Unsupported,
        },
        "application/*" | "*/*" => Wanted::Legacy,
        _ => Wanted::Unsupported,
    }
}

/// Which aggregated discovery version the `Accept` header asks for, if it lists an
/// `APIGroupDiscoveryList` media type we serve before any plain JSON one (by quality, then order).
/// `None` means: answer with the legacy document.
pub fn aggregated_version(accept: &str) -> Option<AggregatedVersion> {
    let mut ranges: Vec<MediaRange<'_>> =
        accept.split(',').filter_map(parse_media_range).filter(|r| r.quality > 0.0).collect();
    // A stable sort keeps the client's order among equal qualities.
    ranges.sort_by(|a, b| b.quality.total_cmp(&a.quality));
    for range in &ranges {
        match wanted(range) {
            Wanted::Aggregated(v) => return Some(v),
            Wanted::Legacy => return None,
            Wanted::Unsupported => {}
        }
    }
    None
}

/// Whether `/api` or `/apis` should answer with aggregated discovery; see [`aggregated_version`] for
/// which version.
pub fn wants_aggregated(accept: &str) -> bool {
    aggregated_version(accept).is_some()
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Namespaced => "Namespaced",
        Scope::Cluster => "Cluster",
    }
}

/// A resource's subresources in the order upstream lists them (alphabetical).
fn sorted_subresources(r: &ResourceInfo) -> Vec<Subresource> {
    let mut subs = r.subresources.to_vec();
    subs.sort_by_key(|s| s.name());
    subs
}

fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::String((*s).to_string())).collect())
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

/// One `APIResourceDiscovery`.
fn resource_discovery(r: &ResourceInfo) -> Value {
    let subresources: Vec<Value> = sorted_subresources(r)
        .into_iter()
        .map(|s| {
            let (g, v, k) = s.response_kind(r);
            json!({"subresource": s.name(), "responseKind": gvk(g, v, k), "verbs": strings(s.verbs())})
        })
        .collect();
    let mut out = Map::new();
    out.insert("resource".into(), r.plural.into());
    out.insert("responseKind".into(), gvk(r.group, r.version, r.kind));
    out.insert("scope".into(), scope_name(r.scope).into());
    out.insert("singularResource".into(), r.singular.into());
    out.insert("verbs".into(), strings(r.verbs()));
    if !r.short_names.is_empty() {
        out.insert("shortNames".into(), strings(r.short_names));
    }
    if !r.categories.is_empty() {
        out.insert("categories".into(), strings(r.categories));
    }
    if !subresources.is_empty() {
        out.insert("subresources".into(), Value::Array(subresources));
    }
    Value::Object(out)
}

/// One `APIGroupDiscovery`: a group with its versions (preferred first).
fn group_discovery(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> =
                RESOURCES.iter().filter(|r| r.group == group && r.version == *v).map(resource_discovery).collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

/// The aggregated discovery document (`apidiscovery.k8s.io/v2 APIGroupDiscoveryList`): for `/api`
/// (`core`: the one core group, named `""`) or `/apis` (every named group).
pub fn aggregated(core: bool) -> Value {
    aggregated_as(core, AggregatedVersion::V2)
}

/// [`aggregated`] in the given version; the body is the same in `v2` and `v2beta1`, only
/// `apiVersion` differs.
pub fn aggregated_as(core: bool, version: AggregatedVersion) -> Value {
    let items: Vec<Value> = groups()
        .iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, versions)| group_discovery(g, versions))
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": version.api_version(),
        "metadata": {},
        "items": items,
    })
}

/// Legacy `/api`: `APIVersions` of the core group. `server_address` is `host:port` as clients reach
/// this server.
pub fn api_versions(server_address: &str) -> Value {
    let versions: Vec<&str> =
        groups().into_iter().filter(|(g, _)| g.is_empty()).flat_map(|(_, versions)| versions).collect();
    json!({
        "kind": "APIVersions",
        "versions": versions,
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_version_for_discovery(group: &str, version: &str) -> Value {
    json!({"groupVersion": format!("{group}/{version}"), "version": version})
}

/// The body of an `APIGroup` without its `kind`/`apiVersion`.
fn group_body(group: &str, versions: &[&str]) -> Value {
    let listed: Vec<Value> = versions.iter().map(|v| group_version_for_discovery(group, v)).collect();
    let preferred = versions.first().map(|v| group_version_for_discovery(group, v)).unwrap_or(Value::Null);
    json!({"name": group, "versions": listed, "preferredVersion": preferred})
}

/// Legacy `/apis`: `APIGroupList` of every named group.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> =
        groups().iter().filter(|(g, _)| !g.is_empty()).map(|(g, versions)| group_body(g, versions)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`: the `APIGroup`, or `None` for an unknown group (and for the core group, which
/// lives at `/api`).
pub fn api_group(group: &str) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let all = groups();
    let (name, versions) = all.iter().find(|(g, _)| *g == group)?;
    let mut body = group_body(name, versions);
    if let Value::Object(map) = &mut body {
        map.insert("kind".into(), "APIGroup".into());
        map.insert("apiVersion".into(), "v1".into());
    }
    Some(body)
}

/// One legacy `APIResource` of a main resource.
fn api_resource(r: &ResourceInfo) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), r.plural.into());
    out.insert("singularName".into(), r.singular.into());
    out.insert("namespaced".into(), r.namespaced().into());
    out.insert("kind".into(), r.kind.into());
    out.insert("verbs".into(), strings(r.verbs()));
    if !r.short_names.is_empty() {
        out.insert("shortNames".into(), strings(r.short_names));
    }
    if !r.categories.is_empty() {
        out.insert("categories".into(), strings(r.categories));
    }
    Value::Object(out)
}

/// One legacy `APIResource` of a subresource (`deployments/scale`). `group`/`version` are set only
/// when the subresource's kind lives in another group-version, as upstream does; client-go's scale
/// client reads them to learn that `/scale` speaks `autoscaling/v1 Scale`.
fn api_subresource(r: &ResourceInfo, sub: Subresource) -> Value {
    let (group, version, kind) = sub.response_kind(r);
    let mut out = Map::new();
    out.insert("name".into(), format!("{}/{}", r.plural, sub.name()).into());
    out.insert("singularName".into(), "".into());
    out.insert("namespaced".into(), r.namespaced().into());
    if (group, version) != (r.group, r.version) {
        out.insert("group".into(), group.into());
        out.insert("version".into(), version.into());
    }
    out.insert("kind".into(), kind.into());
    out.insert("verbs".into(), strings(sub.verbs()));
    Value::Object(out)
}

/// `/api/v1` (group `""`) or `/apis/{group}/{version}`: the `APIResourceList`, each resource followed
/// by its subresources; `None` for a group-version Skiff does not serve.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceInfo> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    let first = served.first()?;
    let mut resources = Vec::new();
    for r in &served {
        resources.push(api_resource(r));
        resources.extend(sorted_subresources(r).into_iter().map(|s| api_subresource(r, s)));
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": first.api_version(),
        "resources": resources,
    }))
}

/// The Kubernetes version Skiff implements; `kubectl version` warns when the minor differs from its
/// own by more than one.
const KUBE_MAJOR: &str = "1";
const KUBE_MINOR: &str = "35";

/// Go's name for the CPU architecture (`GOARCH`), as `platform` uses it.
fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// `/version`: `version.Info`. `gitVersion` is `v1.35.0-skiff.<crate version>`, valid semver with
/// minor 35. Build details come from the `SKIFF_GIT_COMMIT`, `SKIFF_GIT_TREE_STATE` and
/// `SKIFF_BUILD_DATE` environment variables at compile time when set.
pub fn version_info() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "emulationMajor": KUBE_MAJOR,
        "emulationMinor": KUBE_MINOR,
        "minCompatibilityMajor": KUBE_MAJOR,
        "minCompatibilityMinor": "34",
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0-skiff.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": option_env!("SKIFF_GIT_COMMIT").unwrap_or("unknown"),
        "gitTreeState": option_env!("SKIFF_GIT_TREE_STATE").unwrap_or("unknown"),
        "buildDate": option_env!("SKIFF_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        "goVersion": "none (Skiff is written in Rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch(std::env::consts::ARCH)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[test]
    fn accept_negotiation() {
        use AggregatedVersion::{V2, V2Beta1};
        let cases: &[(&str, Option<AggregatedVersion>)] = &[
            (KUBECTL_ACCEPT, Some(V2)),
            (
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
                Some(V2Beta1),
            ),
            // Parameters in any order, spaces allowed.
            ("application/json; as=APIGroupDiscoveryList; v=v2; g=apidiscovery.k8s.io", Some(V2)),
            ("application/json", None),
            ("", None),
            ("*/*", None),
            // Plain JSON listed first wins.
            ("application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", None),
            // Quality beats order.
            ("application/json;q=0.5,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", Some(V2)),
            ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0,application/json", None),
            // Protobuf discovery and unknown versions are skipped, not chosen.
            (
                "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                Some(V2),
            ),
            ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json", None),
        ];
        for (accept, want) in cases {
            assert_eq!(aggregated_version(accept), *want, "Accept: {accept}");
            assert_eq!(wants_aggregated(accept), want.is_some(), "Accept: {accept}");
        }
        assert_eq!(V2.content_type(), AGGREGATED_CONTENT_TYPE);
        assert_eq!(V2Beta1.content_type(), AGGREGATED_V2BETA1_CONTENT_TYPE);
    }

    fn find<'a>(list: &'a Value, group: &str, resource: &str) -> &'a Value {
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|g| g["metadata"]["name"] == group)
            .and_then(|g| g["versions"][0]["resources"].as_array())
            .and_then(|rs| rs.iter().find(|r| r["resource"] == resource))
            .unwrap_or_else(|| panic!("{group}/{resource} not discovered"))
    }

    #[test]
    fn aggregated_core() {
        let doc = aggregated(true);
        assert_eq!(doc["kind"], "APIGroupDiscoveryList");
        assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2");
        assert_eq!(doc["metadata"], json!({}));
        let items = doc["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["name"], "");
        assert_eq!(items[0]["versions"][0]["version"], "v1");
        assert_eq!(items[0]["versions"][0]["freshness"], "Current");
        let names: Vec<&str> = items[0]["versions"][0]["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|r| r["resource"].as_str())
            .collect();
        assert_eq!(names, ["configmaps", "events", "namespaces", "nodes", "pods", "secrets", "serviceaccounts"]);
        let pods = find(&doc, "", "pods");
        assert_eq!(
            *pods,
            json!({
                "resource": "pods",
                "responseKind": {"group": "", "version": "v1", "kind": "Pod"},
                "scope": "Namespaced",
                "singularResource": "pod",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": ["po"],
                "categories": ["all"],
                "subresources": [
                    {"subresource": "binding", "responseKind": {"group": "", "version": "v1", "kind": "Binding"}, "verbs": ["create"]},
                    {"subresource": "eviction", "responseKind": {"group": "policy", "version": "v1", "kind": "Eviction"}, "verbs": ["create"]},
                    {"subresource": "exec", "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "verbs": ["create", "get"]},
                    {"subresource": "log", "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "verbs": ["get"]},
                    {"subresource": "portforward", "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "verbs": ["create", "get"]},
                    {"subresource": "status", "responseKind": {"group": "", "version": "v1", "kind": "Pod"}, "verbs": ["get", "patch", "update"]},
                ],
            })
        );
        let ns = find(&doc, "", "namespaces");
        assert_eq!(ns["scope"], "Cluster");
        assert!(ns.get("categories").is_none(), "empty categories are omitted");
        let secrets = find(&doc, "", "secrets");
        assert!(secrets.get("shortNames").is_none(), "empty shortNames are omitted");
        assert!(secrets.get("subresources").is_none());
    }

    #[test]
    fn aggregated_named_groups() {
        let doc = aggregated(false);
        let names: Vec<&str> =
            doc["items"].as_array().expect("items").iter().filter_map(|g| g["metadata"]["name"].as_str()).collect();
        assert_eq!(names, ["apps", "coordination.k8s.io", "events.k8s.io"]);
        let deploy = find(&doc, "apps", "deployments");
        assert_eq!(
            *deploy,
            json!({
                "resource": "deployments",
                "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "scope": "Namespaced",
                "singularResource": "deployment",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": ["deploy"],
                "categories": ["all"],
                "subresources": [
                    {"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]},
                    {"subresource": "status", "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "verbs": ["get", "patch", "update"]},
                ],
            })
        );
        let rs = find(&doc, "apps", "replicasets");
        assert_eq!(rs["categories"], json!(["all"]));
        assert_eq!(rs["shortNames"], json!(["rs"]));
        assert_eq!(find(&doc, "events.k8s.io", "events")["responseKind"]["group"], "events.k8s.io");
        assert_eq!(find(&doc, "coordination.k8s.io", "leases")["singularResource"], "lease");
    }

    #[test]
    fn aggregated_v2beta1_differs_only_in_api_version() {
        let mut beta = aggregated_as(false, AggregatedVersion::V2Beta1);
        assert_eq!(beta["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        beta["apiVersion"] = "apidiscovery.k8s.io/v2".into();
        assert_eq!(beta, aggregated(false));
    }

    #[test]
    fn every_resource_and_subresource_has_a_response_kind() {
        for doc in [aggregated(true), aggregated(false)] {
            for group in doc["items"].as_array().expect("items") {
                for version in group["versions"].as_array().expect("versions") {
                    for r in version["resources"].as_array().expect("resources") {
                        assert!(r["responseKind"]["kind"].as_str().is_some_and(|k| !k.is_empty()), "{r}");
                        for s in r["subresources"].as_array().into_iter().flatten() {
                            assert!(s["responseKind"]["kind"].as_str().is_some_and(|k| !k.is_empty()), "{s}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn legacy_api_versions() {
        assert_eq!(
            api_versions("10.0.0.1:6443"),
            json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}],
            })
        );
    }

    #[test]
    fn legacy_groups() {
        let list = api_group_list();
        assert_eq!(list["kind"], "APIGroupList");
        assert_eq!(list["apiVersion"], "v1");
        let names: Vec<&str> =
            list["groups"].as_array().expect("groups").iter().filter_map(|g| g["name"].as_str()).collect();
        assert_eq!(names, ["apps", "coordination.k8s.io", "events.k8s.io"]);
        assert_eq!(
            api_group("apps"),
            Some(json!({
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": "apps",
                "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
            }))
        );
        assert_eq!(list["groups"][0], {
            let mut g = api_group("apps").expect("apps");
            g.as_object_mut().expect("object").retain(|k, _| k != "kind" && k != "apiVersion");
            g
        });
        assert_eq!(api_group(""), None);
        assert_eq!(api_group("batch"), None);
        assert_eq!(api_group("autoscaling"), None);
    }

    #[test]
    fn legacy_resource_lists() {
        let apps = api_resource_list("apps", "v1").expect("apps/v1");
        assert_eq!(apps["kind"], "APIResourceList");
        assert_eq!(apps["apiVersion"], "v1");
        assert_eq!(apps["groupVersion"], "apps/v1");
        let names: Vec<&str> =
            apps["resources"].as_array().expect("resources").iter().filter_map(|r| r["name"].as_str()).collect();
        assert_eq!(
            names,
            [
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status"
            ]
        );
        assert_eq!(
            apps["resources"][0],
            json!({
                "name": "deployments",
                "singularName": "deployment",
                "namespaced": true,
                "kind": "Deployment",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": ["deploy"],
                "categories": ["all"],
            })
        );
        assert_eq!(
            apps["resources"][1],
            json!({
                "name": "deployments/scale",
                "singularName": "",
                "namespaced": true,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            })
        );
        assert_eq!(
            apps["resources"][2],
            json!({
                "name": "deployments/status",
                "singularName": "",
                "namespaced": true,
                "kind": "Deployment",
                "verbs": ["get", "patch", "update"],
            })
        );

        let core = api_resource_list("", "v1").expect("v1");
        assert_eq!(core["groupVersion"], "v1");
        let find = |name: &str| {
            core["resources"]
                .as_array()
                .and_then(|rs| rs.iter().find(|r| r["name"] == name))
                .cloned()
                .unwrap_or_else(|| panic!("{name}"))
        };
        assert_eq!(
            find("pods/log"),
            json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]})
        );
        assert_eq!(find("pods/eviction")["group"], "policy");
        assert_eq!(find("pods/eviction")["kind"], "Eviction");
        assert_eq!(find("nodes")["namespaced"], false);
        assert_eq!(find("nodes/status")["namespaced"], false);
        let pod_names: Vec<&str> = core["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .filter(|n| n.starts_with("pods"))
            .collect();
        assert_eq!(
            pod_names,
            ["pods", "pods/binding", "pods/eviction", "pods/exec", "pods/log", "pods/portforward", "pods/status"]
        );

        // The Python client's V1APIResource requires these fields on every entry.
        for list in [&core, &apps] {
            for r in list["resources"].as_array().expect("resources") {
                for field in ["name", "singularName", "namespaced", "kind", "verbs"] {
                    assert!(r.get(field).is_some(), "{field} missing in {r}");
                }
            }
        }

        assert_eq!(api_resource_list("apps", "v1beta1"), None);
        assert_eq!(api_resource_list("batch", "v1"), None);
        assert_eq!(api_resource_list("events.k8s.io", "v1").expect("events")["groupVersion"], "events.k8s.io/v1");
    }

    #[test]
    fn version() {
        let v = version_info();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "35");
        let git = v["gitVersion"].as_str().expect("gitVersion");
        assert_eq!(git, format!("v1.35.0-skiff.{}", env!("CARGO_PKG_VERSION")));
        // Semver: MAJOR.MINOR.PATCH-PRERELEASE with dot-separated alphanumeric identifiers and no
        // leading zeros in numeric ones (what apimachinery's ParseSemantic accepts).
        let (core, pre) = git.trim_start_matches('v').split_once('-').expect("prerelease");
        assert_eq!(core.split('.').map(|p| p.parse::<u64>().expect("number")).collect::<Vec<_>>(), [1, 35, 0]);
        for id in pre.split('.') {
            assert!(!id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{id}");
            if id.chars().all(|c| c.is_ascii_digit()) {
                assert!(id == "0" || !id.starts_with('0'), "{id}");
            }
        }
        for field in ["gitCommit", "gitTreeState", "buildDate", "goVersion", "compiler", "platform"] {
            assert!(v[field].is_string(), "{field}");
        }
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("riscv64"), "riscv64");
        assert!(v["platform"].as_str().expect("platform").starts_with("linux/") || !cfg!(target_os = "linux"));
    }
}
