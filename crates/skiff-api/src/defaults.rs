//! Defaulting, as the apiserver applies it to every object it decodes (k/k `pkg/apis/core/v1/defaults.go`,
//! `pkg/apis/apps/v1/defaults.go` and the generated `zz_generated.defaults.go` that walks nested types),
//! plus the `DefaultTolerationSeconds` and `Priority` admission defaults for pods.
//!
//! Every rule fills a field only when it is absent (or empty where Go's zero value means unset), so
//! defaulting is idempotent and never overwrites what a client set. That matters: the Deployment
//! controller compares its template with each ReplicaSet's by deep equality.

use serde_json::{Map, Value, json};

use crate::resource::ResourceInfo;

/// `v1.DefaultTerminationGracePeriodSeconds`.
pub const DEFAULT_TERMINATION_GRACE_PERIOD: i64 = 30;
/// `0644`: default mode of secret, configMap, downwardAPI and projected volumes.
pub const DEFAULT_VOLUME_MODE: i64 = 0o644;
/// `--default-not-ready-toleration-seconds` and `--default-unreachable-toleration-seconds`.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Applies the defaults of the resource's kind to `obj` in place.
pub fn apply_defaults(resource: &ResourceInfo, obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    match (resource.group, resource.kind) {
        ("", "Pod") => default_pod(o),
        ("apps", "Deployment") => default_deployment(o),
        ("apps", "ReplicaSet") => default_replica_set(o),
        ("", "Namespace") => default_namespace(o),
        ("", "Secret") => {
            set_if_empty_str(o, "type", "Opaque");
        }
        ("", "Node") => default_node(o),
        _ => {}
    }
}

/// Admission-time defaults for a pod being created (not for templates):
/// * `DefaultTolerationSeconds`: tolerate `node.kubernetes.io/not-ready` and `.../unreachable`
///   (`NoExecute`) for 300 s unless the pod already tolerates them;
/// * `Priority`: `priority: 0` and `preemptionPolicy: PreemptLowerPriority` when no priority class is
///   named (Skiff has no PriorityClass objects);
/// * `ServiceAccount`: `serviceAccountName` (and the deprecated `serviceAccount`) `default`.
pub fn admit_pod(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if !tolerations.is_array() {
        *tolerations = json!([]);
    }
    if let Value::Array(list) = tolerations {
        for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
            if !list.iter().any(|t| tolerates_no_execute(t, key)) {
                list.push(json!({
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }));
            }
        }
    }
    if spec.get("priorityClassName").and_then(Value::as_str).unwrap_or("").is_empty() {
        spec.entry("priority").or_insert(json!(0));
    }
    spec.entry("preemptionPolicy").or_insert(json!("PreemptLowerPriority"));
    if set_if_empty_str(spec, "serviceAccountName", "default") {
        spec.insert("serviceAccount".into(), json!("default"));
    }
}

/// Whether a toleration already covers `key:NoExecute`, as the plugin checks it: the same or an empty
/// key, and the `NoExecute` or an empty effect.
fn tolerates_no_execute(t: &Value, key: &str) -> bool {
    let get = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("");
    (get("key") == key || get("key").is_empty()) && (get("effect") == "NoExecute" || get("effect").is_empty())
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Sets `key` when it is absent, null or `""`; returns whether it did.
fn set_if_empty_str(o: &mut Map<String, Value>, key: &str, value: &str) -> bool {
    let empty = match o.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    };
    if empty {
        o.insert(key.to_string(), json!(value));
    }
    empty
}

/// Sets `key` when it is absent or null (Go pointer fields).
fn set_if_absent(o: &mut Map<String, Value>, key: &str, value: Value) {
    if o.get(key).is_none_or(Value::is_null) {
        o.insert(key.to_string(), value);
    }
}

/// Sets `key` when it is absent, null or 0 (Go non-pointer integers whose zero means unset).
fn set_if_zero(o: &mut Map<String, Value>, key: &str, value: i64) {
    if o.get(key).is_none_or(|v| v.is_null() || v.as_i64() == Some(0)) {
        o.insert(key.to_string(), json!(value));
    }
}

fn child<'a>(o: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    o.get_mut(key).and_then(Value::as_object_mut)
}

fn each<'a>(o: &'a mut Map<String, Value>, key: &str) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    o.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut)
}

// ---------------------------------------------------------------------------------------------
// Pods and pod templates
// ---------------------------------------------------------------------------------------------

/// `SetObjectDefaults_Pod`: the pod-spec defaults plus those only a Pod gets (`SetDefaults_Pod`).
fn default_pod(pod: &mut Map<String, Value>) {
    let Some(spec) = child(pod, "spec") else { return };
    default_pod_spec(spec);
    for list in ["containers", "initContainers"] {
        for c in each(spec, list) {
            requests_from_limits(c);
        }
    }
    set_if_absent(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for list in ["containers", "initContainers"] {
            for c in each(spec, list) {
                for p in each(c, "ports") {
                    if p.get("hostPort").is_none_or(|v| v.as_i64().unwrap_or(0) == 0)
                        && let Some(cp) = p.get("containerPort").cloned()
                    {
                        p.insert("hostPort".into(), cp);
                    }
                }
            }
        }
    }
}

/// Requests default to limits for resources that have a limit but no request.
fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(res) = child(c, "resources") else { return };
    let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else { return };
    let requests = res.entry("requests").or_insert_with(|| json!({}));
    if !requests.is_object() {
        *requests = json!({});
    }
    if let Some(r) = requests.as_object_mut() {
        for (k, v) in limits {
            r.entry(k).or_insert(v);
        }
    }
}

/// `SetDefaults_PodSpec` and everything the generated defaulter reaches inside a pod spec. Applied to
/// pods and to the templates of Deployments and ReplicaSets alike.
fn default_pod_spec(spec: &mut Map<String, Value>) {
    set_if_empty_str(spec, "dnsPolicy", "ClusterFirst");
    set_if_empty_str(spec, "restartPolicy", "Always");
    set_if_absent(spec, "securityContext", json!({}));
    set_if_absent(spec, "terminationGracePeriodSeconds", json!(DEFAULT_TERMINATION_GRACE_PERIOD));
    set_if_empty_str(spec, "schedulerName", "default-scheduler");
    // v1 conversion keeps the deprecated `serviceAccount` in step with `serviceAccountName`.
    let sa_name = spec.get("serviceAccountName").and_then(Value::as_str).unwrap_or("").to_string();
    let sa_old = spec.get("serviceAccount").and_then(Value::as_str).unwrap_or("").to_string();
    if sa_name.is_empty() && !sa_old.is_empty() {
        spec.insert("serviceAccountName".into(), json!(sa_old));
    } else if !sa_name.is_empty() {
        spec.insert("serviceAccount".into(), json!(sa_name));
    }
    for v in each(spec, "volumes") {
        default_volume(v);
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in each(spec, list) {
            default_container(c);
        }
    }
}

/// `SetDefaults_Volume` (no source means emptyDir) and the per-source defaults.
fn default_volume(v: &mut Map<String, Value>) {
    if !v.iter().any(|(k, val)| k != "name" && !val.is_null()) {
        v.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = child(v, source) {
            set_if_absent(s, "defaultMode", json!(DEFAULT_VOLUME_MODE));
        }
    }
    if let Some(d) = child(v, "downwardAPI") {
        default_downward_items(d);
    }
    if let Some(p) = child(v, "projected") {
        for src in each(p, "sources") {
            if let Some(d) = child(src, "downwardAPI") {
                default_downward_items(d);
            }
            if let Some(t) = child(src, "serviceAccountToken") {
                set_if_absent(t, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(h) = child(v, "hostPath") {
        set_if_absent(h, "type", json!(""));
    }
    if let Some(i) = child(v, "iscsi") {
        set_if_empty_str(i, "iscsiInterface", "default");
    }
    if let Some(r) = child(v, "rbd") {
        set_if_empty_str(r, "pool", "rbd");
        set_if_empty_str(r, "user", "admin");
        set_if_empty_str(r, "keyring", "/etc/ceph/keyring");
    }
    if let Some(a) = child(v, "azureDisk") {
        set_if_absent(a, "cachingMode", json!("ReadWrite"));
        set_if_absent(a, "kind", json!("Shared"));
        set_if_absent(a, "fsType", json!("ext4"));
        set_if_absent(a, "readOnly", json!(false));
    }
    if let Some(s) = child(v, "scaleIO") {
        set_if_empty_str(s, "storageMode", "ThinProvisioned");
        set_if_empty_str(s, "fsType", "xfs");
    }
    if let Some(spec) =
        child(v, "ephemeral").and_then(|e| child(e, "volumeClaimTemplate")).and_then(|t| child(t, "spec"))
    {
        set_if_absent(spec, "volumeMode", json!("Filesystem"));
    }
}

fn default_downward_items(d: &mut Map<String, Value>) {
    for item in each(d, "items") {
        if let Some(f) = child(item, "fieldRef") {
            set_if_empty_str(f, "apiVersion", "v1");
        }
    }
}

/// `SetDefaults_Container` with its ports, probes, lifecycle hooks and env.
fn default_container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or("").to_string();
    let policy = if image_tag(&image) == "latest" { "Always" } else { "IfNotPresent" };
    set_if_empty_str(c, "imagePullPolicy", policy);
    set_if_empty_str(c, "terminationMessagePath", "/dev/termination-log");
    set_if_empty_str(c, "terminationMessagePolicy", "File");
    // Go always writes the (non-pointer) `resources` struct.
    set_if_absent(c, "resources", json!({}));
    for p in each(c, "ports") {
        set_if_empty_str(p, "protocol", "TCP");
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = child(c, probe) {
            set_if_zero(p, "timeoutSeconds", 1);
            set_if_zero(p, "periodSeconds", 10);
            set_if_zero(p, "successThreshold", 1);
            set_if_zero(p, "failureThreshold", 3);
            default_handler(p);
        }
    }
    if let Some(lc) = child(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = child(lc, hook) {
                default_handler(h);
            }
        }
    }
    for env in each(c, "env") {
        if let Some(f) = child(env, "valueFrom").and_then(|vf| child(vf, "fieldRef")) {
            set_if_empty_str(f, "apiVersion", "v1");
        }
    }
}

/// `SetDefaults_HTTPGetAction` and the gRPC `service` default.
fn default_handler(h: &mut Map<String, Value>) {
    if let Some(g) = child(h, "httpGet") {
        set_if_empty_str(g, "path", "/");
        set_if_empty_str(g, "scheme", "HTTP");
    }
    if let Some(g) = child(h, "grpc") {
        set_if_absent(g, "service", json!(""));
    }
}

/// The tag `parsers.ParseImageName` finds: the explicit tag, `latest` when there is neither tag nor
/// digest, `""` for a digest-only reference or one that does not parse.
pub fn image_tag(image: &str) -> &str {
    if image.is_empty() {
        return "";
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if !valid_repository(repo) || tag.is_some_and(|t| !valid_tag(t)) || digest.is_some_and(|d| !d.contains(':')) {
        return "";
    }
    match (tag, digest) {
        (Some(t), _) => t,
        (None, Some(_)) => "",
        (None, None) => "latest",
    }
}

/// A docker reference name: an optional registry host, then lowercase path components.
fn valid_repository(repo: &str) -> bool {
    let mut parts: Vec<&str> = repo.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.')
            || first.contains(':')
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase())
        {
            parts.remove(0);
        }
    }
    !parts.is_empty()
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && p.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        })
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    !tag.is_empty() && tag.len() <= 128 && tag.starts_with(word) && tag.chars().all(|c| word(c) || c == '.' || c == '-')
}

// ---------------------------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------------------------

fn default_template(o: &mut Map<String, Value>) {
    if let Some(spec) = child(o, "template").and_then(|t| child(t, "spec")) {
        default_pod_spec(spec);
    }
}

/// `SetDefaults_Deployment`: replicas 1, RollingUpdate 25%/25%, history 10, deadline 600 s.
fn default_deployment(d: &mut Map<String, Value>) {
    let Some(spec) = child(d, "spec") else { return };
    set_if_absent(spec, "replicas", json!(1));
    set_if_absent(spec, "strategy", json!({}));
    if let Some(strategy) = child(spec, "strategy") {
        set_if_empty_str(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            set_if_absent(strategy, "rollingUpdate", json!({}));
            if let Some(ru) = child(strategy, "rollingUpdate") {
                set_if_absent(ru, "maxUnavailable", json!("25%"));
                set_if_absent(ru, "maxSurge", json!("25%"));
            }
        }
    }
    set_if_absent(spec, "revisionHistoryLimit", json!(10));
    set_if_absent(spec, "progressDeadlineSeconds", json!(600));
    default_template(spec);
}

/// `SetDefaults_ReplicaSet`: replicas 1.
fn default_replica_set(rs: &mut Map<String, Value>) {
    let Some(spec) = child(rs, "spec") else { return };
    set_if_absent(spec, "replicas", json!(1));
    default_template(spec);
}

// ---------------------------------------------------------------------------------------------
// Cluster objects
// ---------------------------------------------------------------------------------------------

/// `SetDefaults_Namespace` (the `kubernetes.io/metadata.name` label, always equal to the name),
/// `SetDefaults_NamespaceStatus` (phase Active) and the `kubernetes` finalizer the namespace strategy
/// adds on create. The finalizer is added only when `spec.finalizers` is absent and the namespace is
/// not being deleted, so the namespace controller's removal of it is never undone.
fn default_namespace(ns: &mut Map<String, Value>) {
    let name = ns.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
    let deleting = ns.get("metadata").and_then(|m| m.get("deletionTimestamp")).is_some_and(|v| !v.is_null());
    if !name.is_empty()
        && let Some(md) = child(ns, "metadata")
    {
        let labels = md.entry("labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        if let Some(l) = labels.as_object_mut() {
            l.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    let spec = ns.entry("spec").or_insert_with(|| json!({}));
    if let Some(spec) = spec.as_object_mut()
        && !deleting
        && spec.get("finalizers").is_none_or(Value::is_null)
    {
        spec.insert("finalizers".into(), json!(["kubernetes"]));
    }
    let status = ns.entry("status").or_insert_with(|| json!({}));
    if let Some(status) = status.as_object_mut() {
        set_if_empty_str(status, "phase", "Active");
    }
}

/// `SetDefaults_NodeStatus`: allocatable defaults to capacity.
fn default_node(node: &mut Map<String, Value>) {
    if let Some(status) = child(node, "status")
        && status.get("allocatable").is_none_or(Value::is_null)
        && let Some(cap) = status.get("capacity").filter(|c| c.is_object()).cloned()
    {
        status.insert("allocatable".into(), cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::lookup;

    fn res(group: &str, plural: &str) -> &'static ResourceInfo {
        lookup(group, "v1", plural).expect("resource")
    }

    fn defaulted(group: &str, plural: &str, mut obj: Value) -> Value {
        let r = res(group, plural);
        apply_defaults(r, &mut obj);
        let mut again = obj.clone();
        apply_defaults(r, &mut again);
        assert_eq!(again, obj, "defaulting must be idempotent");
        obj
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        let cases = [
            ("nginx", "latest"),
            ("nginx:latest", "latest"),
            ("nginx:1.25", "1.25"),
            ("docker.io/library/nginx", "latest"),
            ("localhost:5000/app", "latest"),
            ("localhost:5000/app:v1", "v1"),
            ("nginx@sha256:abc", ""),
            ("nginx:latest@sha256:abc", "latest"),
            ("Nginx", ""),
            ("", ""),
        ];
        for (image, tag) in cases {
            assert_eq!(image_tag(image), tag, "{image}");
        }
    }

    #[test]
    fn pod_defaults() {
        let pod = defaulted(
            "",
            "pods",
            json!({"metadata": {"name": "p"}, "spec": {
                "containers": [{"name": "a", "image": "nginx", "ports": [{"containerPort": 80}],
                    "livenessProbe": {"httpGet": {"port": 80}},
                    "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 5},
                    "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "resources": {"limits": {"cpu": "1"}}}],
                "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}, {"name": "c", "configMap": {"name": "x", "defaultMode": 256}}]}}),
        );
        let want = json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "a", "image": "nginx", "imagePullPolicy": "Always",
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "livenessProbe": {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                "readinessProbe": {"grpc": {"port": 9000, "service": ""}, "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3},
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v1"}}}],
                "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}],
            "volumes": [{"name": "v", "emptyDir": {}}, {"name": "s", "secret": {"secretName": "x", "defaultMode": 420}}, {"name": "c", "configMap": {"name": "x", "defaultMode": 256}}],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "securityContext": {},
            "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler", "enableServiceLinks": true}});
        assert_eq!(pod, want);
    }

    #[test]
    fn set_values_are_kept() {
        let pod = defaulted(
            "",
            "pods",
            json!({"spec": {"restartPolicy": "Never", "dnsPolicy": "Default", "terminationGracePeriodSeconds": 0,
                "enableServiceLinks": false, "hostNetwork": true,
                "containers": [{"name": "a", "image": "nginx:1", "imagePullPolicy": "Never", "ports": [{"containerPort": 8080, "protocol": "UDP"}]}]}}),
        );
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["dnsPolicy"], "Default");
        assert_eq!(spec["terminationGracePeriodSeconds"], 0);
        assert_eq!(spec["enableServiceLinks"], false);
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(
            spec["containers"][0]["ports"][0],
            json!({"containerPort": 8080, "protocol": "UDP", "hostPort": 8080})
        );
    }

    #[test]
    fn deployment_defaults() {
        let d = defaulted(
            "apps",
            "deployments",
            json!({"spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}}),
        );
        let want = json!({"spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [{"name": "web", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}}],
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "securityContext": {},
                "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}}}});
        assert_eq!(d, want, "templates get no enableServiceLinks (SetDefaults_Pod only)");
        let recreate =
            defaulted("apps", "deployments", json!({"spec": {"strategy": {"type": "Recreate"}, "replicas": 0}}));
        assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(recreate["spec"]["replicas"], 0);
        let partial =
            defaulted("apps", "deployments", json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}}));
        assert_eq!(partial["spec"]["strategy"]["rollingUpdate"], json!({"maxSurge": 1, "maxUnavailable": "25%"}));
        let rs = defaulted("apps", "replicasets", json!({"spec": {}}));
        assert_eq!(rs, json!({"spec": {"replicas": 1}}));
    }

    #[test]
    fn cluster_object_defaults() {
        let ns = defaulted(
            "",
            "namespaces",
            json!({"metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "x"}}}),
        );
        assert_eq!(
            ns,
            json!({"metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "dev"}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        );
        let finalized = defaulted(
            "",
            "namespaces",
            json!({"metadata": {"name": "dev", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Terminating"}}),
        );
        assert_eq!(finalized["spec"], json!({}));
        assert_eq!(finalized["status"]["phase"], "Terminating");
        assert_eq!(defaulted("", "secrets", json!({}))["type"], "Opaque");
        assert_eq!(defaulted("", "secrets", json!({"type": "kubernetes.io/tls"}))["type"], "kubernetes.io/tls");
        let node = defaulted("", "nodes", json!({"status": {"capacity": {"cpu": "2"}}}));
        assert_eq!(node["status"]["allocatable"], json!({"cpu": "2"}));
        assert_eq!(defaulted("", "configmaps", json!({"data": {}})), json!({"data": {}}));
    }

    #[test]
    fn admission_adds_default_tolerations_once() {
        let mut pod = json!({"spec": {"containers": [], "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]}});
        admit_pod(&mut pod);
        let again = pod.clone();
        admit_pod(&mut pod);
        assert_eq!(pod, again);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ])
        );
        assert_eq!(pod["spec"]["priority"], 0);
        assert_eq!(pod["spec"]["preemptionPolicy"], "PreemptLowerPriority");
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        let mut all = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        admit_pod(&mut all);
        assert_eq!(all["spec"]["tolerations"].as_array().map(Vec::len), Some(1));
    }
}
