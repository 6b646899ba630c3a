//! The resources Skiff serves: one static table that discovery, routing, storage keys, tables and
//! OpenAPI all read, so a resource is declared once.

/// Whether a resource lives inside a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// A subresource reachable as `.../{name}/{subresource}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `status`: same kind as the parent; writes touch only `.status` (and, for some kinds, metadata).
    Status,
    /// `scale`: `autoscaling/v1 Scale` view of `spec.replicas`.
    Scale,
    /// `binding` (pods): the scheduler's `v1 Binding`.
    Binding,
    /// `log` (pods): served by the node agent.
    Log,
    /// `exec` (pods): served by the node agent.
    Exec,
    /// `portforward` (pods): served by the node agent.
    PortForward,
    /// `eviction` (pods): `policy/v1 Eviction`.
    Eviction,
    /// `finalize` (namespaces): a PUT of the Namespace that may change `spec.finalizers`, which a
    /// write to the main resource keeps (the namespace `FinalizeREST`).
    Finalize,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::PortForward => "portforward",
            Subresource::Eviction => "eviction",
            Subresource::Finalize => "finalize",
        }
    }

    pub fn parse(s: &str) -> Option<Subresource> {
        Some(match s {
            "status" => Subresource::Status,
            "scale" => Subresource::Scale,
            "binding" => Subresource::Binding,
            "log" => Subresource::Log,
            "exec" => Subresource::Exec,
            "portforward" => Subresource::PortForward,
            "eviction" => Subresource::Eviction,
            "finalize" => Subresource::Finalize,
            _ => return None,
        })
    }

    /// `(group, version, kind)` of the object this subresource takes and returns; `None` for the
    /// streaming ones, which discovery lists with the parent's kind.
    pub fn response_kind(self, parent: &ResourceInfo) -> (&'static str, &'static str, &'static str) {
        match self {
            Subresource::Status | Subresource::Finalize => (parent.group, parent.version, parent.kind),
            Subresource::Scale => ("autoscaling", "v1", "Scale"),
            Subresource::Binding => ("", "v1", "Binding"),
            Subresource::Log | Subresource::Exec | Subresource::PortForward => ("", "v1", "Pod"),
            Subresource::Eviction => ("policy", "v1", "Eviction"),
        }
    }

    pub fn verbs(self) -> &'static [&'static str] {
        match self {
            Subresource::Status | Subresource::Scale => &["get", "patch", "update"],
            Subresource::Binding | Subresource::Eviction => &["create"],
            Subresource::Log => &["get"],
            Subresource::Finalize => &["update"],
            Subresource::Exec | Subresource::PortForward => &["create", "get"],
        }
    }
}

/// One resource: everything about it that does not depend on an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// The plural resource name used in paths (`deployments`).
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub scope: Scope,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// The resource whose storage this one shares (`events.k8s.io/events` is stored as core `events`).
    pub storage: &'static str,
}

const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

impl ResourceInfo {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    pub fn verbs(&self) -> &'static [&'static str] {
        ALL_VERBS
    }

    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// Whether the object has a spec/status split whose status is written only through `/status`.
    pub fn has_status(&self) -> bool {
        self.has(Subresource::Status)
    }

    /// The storage key prefix of all objects of this resource: `/apps/deployments/`.
    pub fn key_prefix(&self) -> String {
        format!("/{}/", self.storage)
    }

    /// The storage key prefix of this resource's objects in one namespace.
    pub fn namespace_prefix(&self, namespace: &str) -> String {
        format!("/{}/{namespace}/", self.storage)
    }

    /// The storage key of one object. Cluster-scoped objects have no namespace segment.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced() => format!("/{}/{ns}/{name}", self.storage),
            _ => format!("/{}/{name}", self.storage),
        }
    }
}

macro_rules! resource {
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, $scope:expr,
     short = [$($short:expr),*], categories = [$($cat:expr),*], sub = [$($sub:expr),*], storage = $storage:expr) => {
        ResourceInfo {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            scope: $scope,
            short_names: &[$($short),*],
            categories: &[$($cat),*],
            subresources: &[$($sub),*],
            storage: $storage,
        }
    };
}

use Scope::{Cluster, Namespaced};
use Subresource::{Binding, Eviction, Exec, Finalize, Log, PortForward, Scale, Status};

/// Every resource Skiff serves, in discovery order (core resources alphabetical, as upstream lists them,
/// so `kubectl get all` prints pods before deployments before replicasets).
pub static RESOURCES: &[ResourceInfo] = &[
    resource!(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        Namespaced,
        short = ["cm"],
        categories = [],
        sub = [],
        storage = "core/configmaps"
    ),
    resource!(
        "",
        "v1",
        "events",
        "event",
        "Event",
        Namespaced,
        short = ["ev"],
        categories = [],
        sub = [],
        storage = "core/events"
    ),
    resource!(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        Cluster,
        short = ["ns"],
        categories = [],
        sub = [Finalize, Status],
        storage = "core/namespaces"
    ),
    resource!(
        "",
        "v1",
        "nodes",
        "node",
        "Node",
        Cluster,
        short = ["no"],
        categories = [],
        sub = [Status],
        storage = "core/nodes"
    ),
    resource!(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        Namespaced,
        short = ["po"],
        categories = ["all"],
        sub = [Status, Binding, Log, Exec, PortForward, Eviction],
        storage = "core/pods"
    ),
    resource!(
        "",
        "v1",
        "secrets",
        "secret",
        "Secret",
        Namespaced,
        short = [],
        categories = [],
        sub = [],
        storage = "core/secrets"
    ),
    resource!(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        Namespaced,
        short = ["sa"],
        categories = [],
        sub = [],
        storage = "core/serviceaccounts"
    ),
    resource!(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        Namespaced,
        short = ["deploy"],
        categories = ["all"],
        sub = [Scale, Status],
        storage = "apps/deployments"
    ),
    resource!(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        Namespaced,
        short = ["rs"],
        categories = ["all"],
        sub = [Scale, Status],
        storage = "apps/replicasets"
    ),
    resource!(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        Namespaced,
        short = [],
        categories = [],
        sub = [],
        storage = "coordination.k8s.io/leases"
    ),
    resource!(
        "events.k8s.io",
        "v1",
        "events",
        "event",
        "Event",
        Namespaced,
        short = ["ev"],
        categories = [],
        sub = [],
        storage = "events.k8s.io/events"
    ),
];

/// The API groups in discovery order, each with its versions (preferred first).
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

/// The resource served at `/{api|apis/group}/{version}/.../{plural}`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of a kind (`apps/v1`, `Deployment`), as named in an object's `apiVersion`/`kind`.
pub fn lookup_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.api_version() == api_version && r.kind == kind)
}

/// The resource whose name, singular, short name or kind (any case) is `name`: what a CLI user types.
pub fn lookup_any(name: &str) -> Option<&'static ResourceInfo> {
    let lower = name.to_ascii_lowercase();
    let (name, group) = match lower.split_once('.') {
        Some((n, g)) => (n.to_string(), Some(g.to_string())),
        None => (lower.clone(), None),
    };
    RESOURCES.iter().find(|r| {
        group.as_deref().is_none_or(|g| r.group == g)
            && (r.plural == name
                || r.singular == name
                || r.short_names.contains(&name.as_str())
                || r.kind.eq_ignore_ascii_case(&name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_namespaces_and_resources() {
        let deploy = lookup("apps", "v1", "deployments").expect("deployments");
        assert_eq!(deploy.key(Some("default"), "web"), "/apps/deployments/default/web");
        assert!(deploy.key(Some("default"), "web").starts_with(&deploy.namespace_prefix("default")));
        let ns = lookup("", "v1", "namespaces").expect("namespaces");
        assert_eq!(ns.key(None, "default"), "/core/namespaces/default");
        assert_eq!(ns.key(Some("ignored"), "default"), "/core/namespaces/default");
    }

    #[test]
    fn lookup_by_what_users_type() {
        assert_eq!(lookup_any("deploy").map(|r| r.kind), Some("Deployment"));
        assert_eq!(lookup_any("po").map(|r| r.kind), Some("Pod"));
        assert_eq!(lookup_any("ReplicaSet").map(|r| r.plural), Some("replicasets"));
        assert_eq!(lookup_any("deployments.apps").map(|r| r.plural), Some("deployments"));
        assert_eq!(lookup_any("events.events.k8s.io").map(|r| r.group), Some("events.k8s.io"));
        assert!(lookup_any("deployment.batch").is_none());
    }

    #[test]
    fn groups_in_discovery_order() {
        let g: Vec<&str> = groups().into_iter().map(|(g, _)| g).collect();
        assert_eq!(g, vec!["", "apps", "coordination.k8s.io", "events.k8s.io"]);
    }
}
