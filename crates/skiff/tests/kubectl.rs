//! End-to-end: the real kubectl v1.35 against `skiff server`.
//!
//! Each test starts its own server (own port, data directory and kubectl cache).

mod common;

use std::time::Duration;

use common::{Server, cells, is_recent_age, poll, row, rows};
use serde_json::{Value, json};

/// A fresh server with the Deployment `kubectl create deployment web --image=nginx --replicas=3`
/// makes. It is built by kubectl (`--dry-run=client`) and sent with `create -f`, which goes through
/// kubectl's generic (JSON) client: tests that are not about `create deployment` itself do not
/// depend on the typed client's protobuf request bodies (see `create_deployment_*`).
fn server_with_web() -> Server {
    let s = Server::start();
    create_deployment_from_file(&s, "web", &["--replicas=3"]);
    s
}

/// `kubectl create deployment NAME --image=nginx ARGS --dry-run=client -o json | kubectl create -f -`.
fn create_deployment_from_file(s: &Server, name: &str, args: &[&str]) {
    let mut dry = vec!["create", "deployment", name, "--image=nginx", "--dry-run=client", "-o", "json"];
    dry.extend_from_slice(args);
    let manifest = s.kubectl_ok(&dry);
    let out = s.kubectl_stdin_ok(&["create", "-f", "-"], &manifest);
    assert_eq!(out, format!("deployment.apps/{name} created\n"));
}

fn deployment(s: &Server, name: &str) -> Value {
    s.kubectl_json(&["get", "deployment", name, "--show-managed-fields"])
}

#[test]
fn create_deployment_is_defaulted_like_kubernetes() {
    let s = Server::start();
    // kubectl's typed clientset sends this create as protobuf (application/vnd.kubernetes.protobuf).
    let out = s.kubectl_ok(&["create", "deployment", "web", "--image=nginx", "--replicas=3"]);
    assert_eq!(out, "deployment.apps/web created\n");
    let d = deployment(&s, "web");
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["kind"], "Deployment");
    let m = &d["metadata"];
    assert_eq!(m["name"], "web");
    assert_eq!(m["namespace"], "default");
    assert_eq!(m["labels"], json!({"app": "web"}));
    assert_eq!(m["generation"], 1);
    assert!(m["uid"].as_str().is_some_and(|u| u.len() == 36), "uid: {}", m["uid"]);
    assert!(m["resourceVersion"].as_str().is_some_and(|rv| rv.parse::<u64>().is_ok()), "rv: {}", m["resourceVersion"]);
    assert!(
        m["creationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 20),
        "{}",
        m["creationTimestamp"]
    );
    assert!(has_manager(&d, "kubectl-create", "Update"), "{d}");

    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["selector"], json!({"matchLabels": {"app": "web"}}));
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    let tmpl = &spec["template"];
    assert_eq!(tmpl["metadata"]["labels"], json!({"app": "web"}));
    let pod = &tmpl["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["securityContext"], json!({}));
    let c = &pod["containers"][0];
    assert_eq!(c["name"], "nginx");
    assert_eq!(c["image"], "nginx");
    assert_eq!(c["imagePullPolicy"], "Always", "an image without a tag is pulled Always");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["resources"], json!({}));
    assert_eq!(pod["containers"].as_array().map(Vec::len), Some(1));
}

#[test]
fn get_deployments_prints_the_default_columns() {
    let s = server_with_web();
    let out = s.kubectl_ok(&["get", "deployments"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("NAME   READY   UP-TO-DATE   AVAILABLE   AGE"), "{out}");
    let web = cells(row(&out, "web").unwrap_or_else(|| panic!("no row for web:\n{out}")));
    assert_eq!(web.len(), 5, "{out}");
    assert_eq!(web[0], "web");
    // READY is readyReplicas/replicas; the counts move once controllers run, so only their form is fixed.
    assert!(web[1].strip_suffix("/3").is_some_and(is_count), "READY {:?}", web[1]);
    assert!(is_count(&web[2]) && is_count(&web[3]), "UP-TO-DATE, AVAILABLE: {out}");
    assert!(is_recent_age(&web[4]), "AGE {:?}", web[4]);
}

#[test]
fn get_deployments_wide_adds_containers_images_selector() {
    let s = server_with_web();
    let out = s.kubectl_ok(&["get", "deployments", "-o", "wide"]);
    let header = cells(out.lines().next().unwrap_or_default());
    assert_eq!(
        header,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"],
        "{out}"
    );
    let web = cells(row(&out, "web").unwrap_or_else(|| panic!("no row for web:\n{out}")));
    assert_eq!(web.len(), 8, "{out}");
    assert_eq!(&web[5..], ["nginx", "nginx", "app=web"], "{out}");
}

#[test]
fn get_deployment_yaml_jsonpath_and_name_outputs() {
    let s = server_with_web();
    let yaml = s.kubectl_ok(&["get", "deploy", "web", "-o", "yaml"]);
    for line in ["apiVersion: apps/v1", "kind: Deployment", "  name: web", "  namespace: default", "  replicas: 3"] {
        assert!(yaml.lines().any(|l| l == line), "no line {line:?} in:\n{yaml}");
    }
    assert_eq!(s.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]), "3");
    assert_eq!(s.kubectl_ok(&["get", "deploy", "web", "-o", "name"]), "deployment.apps/web\n");
    assert_eq!(s.kubectl_ok(&["get", "deployments", "-o", "name"]), "deployment.apps/web\n");
}

#[test]
fn get_missing_deployment_reports_not_found() {
    let s = Server::start();
    let err = s.kubectl_err(&["get", "deployment", "nope"]);
    assert_eq!(err.trim_end(), r#"Error from server (NotFound): deployments.apps "nope" not found"#);
}

/// A ConfigMap with one data key, for `kubectl create -f -`.
fn configmap_manifest(name: &str) -> String {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}}).to_string()
}

#[test]
fn get_watch_prints_rows_for_later_changes() {
    let s = Server::start();
    s.kubectl_stdin_ok(&["create", "-f", "-"], &configmap_manifest("first"));
    let w = s.kubectl_spawn(&["get", "configmaps", "-w"]);
    w.wait_for_stdout(Duration::from_secs(30), "the initial row for first", |o| row(o, "first").is_some());
    let initial = w.stdout();
    assert_eq!(cells(initial.lines().next().unwrap_or_default()), ["NAME", "DATA", "AGE"], "{initial}");

    s.kubectl_stdin_ok(&["create", "-f", "-"], &configmap_manifest("watched"));
    let out =
        w.wait_for_stdout(Duration::from_secs(30), "a row for the new configmap", |o| row(o, "watched").is_some());
    let added = cells(row(&out, "watched").unwrap_or_default());
    assert_eq!(&added[..2], ["watched", "1"], "{out}");

    s.kubectl_ok(&["patch", "configmap", "watched", "--type", "merge", "-p", r#"{"data":{"b":"2"}}"#]);
    let out = w.wait_for_stdout(Duration::from_secs(30), "a second row for the modified configmap", |o| {
        rows(o, "watched").count() >= 2
    });
    let modified = rows(&out, "watched").nth(1).map(cells).unwrap_or_default();
    assert_eq!(&modified[..2], ["watched", "2"], "{out}");
    // Only the first table carried column definitions: one header line in all.
    assert_eq!(out.lines().filter(|l| l.starts_with("NAME")).count(), 1, "{out}");
}

const APPLIED_V1: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: applied
  labels:
    app: applied
spec:
  replicas: 1
  selector:
    matchLabels:
      app: applied
  template:
    metadata:
      labels:
        app: applied
    spec:
      containers:
      - name: main
        image: nginx:1.27
        ports:
        - containerPort: 80
";

#[test]
fn apply_creates_then_configures_then_is_unchanged() {
    let s = Server::start();
    let v2 = APPLIED_V1.replace("replicas: 1", "replicas: 2").replace("nginx:1.27", "nginx:1.28");
    let file1 = s.write_file("applied-v1.yaml", APPLIED_V1);
    let file2 = s.write_file("applied-v2.yaml", &v2);
    let f1 = file1.to_str().expect("utf-8");
    let f2 = file2.to_str().expect("utf-8");

    assert_eq!(s.kubectl_ok(&["apply", "-f", f1]), "deployment.apps/applied created\n");
    let d = deployment(&s, "applied");
    let last =
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].as_str().unwrap_or_default();
    let last: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("last-applied is JSON ({e}): {d}"));
    assert_eq!(last["spec"]["replicas"], 1);
    assert!(has_manager(&d, "kubectl-client-side-apply", "Update"), "{d}");

    assert_eq!(s.kubectl_ok(&["apply", "-f", f2]), "deployment.apps/applied configured\n");
    let d = deployment(&s, "applied");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.28");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(d["metadata"]["generation"], 2);

    // kubectl finds nothing to patch and sends no write (controllers may still write the status).
    assert_eq!(s.kubectl_ok(&["apply", "-f", f2]), "deployment.apps/applied unchanged\n");
    let d = deployment(&s, "applied");
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(d["spec"]["replicas"], 2);
}

/// Whether `obj.metadata.managedFields` has an entry of `manager` with `operation`.
fn has_manager(obj: &Value, manager: &str, operation: &str) -> bool {
    obj["metadata"]["managedFields"]
        .as_array()
        .is_some_and(|mf| mf.iter().any(|e| e["manager"] == manager && e["operation"] == operation))
}

#[test]
fn apply_server_side_conflicts_with_another_manager_until_forced() {
    let s = Server::start();
    let mine = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  key: mine\n  other: kept\n";
    let theirs = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  key: theirs\n";
    assert_eq!(s.kubectl_stdin_ok(&["apply", "--server-side", "-f", "-"], mine), "configmap/ssa serverside-applied\n");
    let cm = s.kubectl_json(&["get", "configmap", "ssa", "--show-managed-fields"]);
    assert!(has_manager(&cm, "kubectl", "Apply"), "kubectl --server-side is an Apply by manager kubectl: {cm}");

    let out = s.kubectl_with(&["apply", "--server-side", "--field-manager=other", "-f", "-"], Some(theirs), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a conflicting apply must fail: {err}");
    assert!(err.contains("Apply failed with 1 conflict: conflict with \"kubectl\""), "{err}");
    assert!(err.contains(".data.key"), "{err}");
    assert_eq!(
        s.kubectl_ok(&["get", "configmap", "ssa", "-o", "jsonpath={.data.key}"]),
        "mine",
        "a conflict writes nothing"
    );

    let out = s.kubectl_with(
        &["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-"],
        Some(theirs),
        &[],
    );
    assert_eq!(s.expect_success(&["apply", "--force-conflicts"], &out), "configmap/ssa serverside-applied\n");
    let cm = s.kubectl_json(&["get", "configmap", "ssa", "--show-managed-fields"]);
    assert_eq!(cm["data"], json!({"key": "theirs", "other": "kept"}));
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubectl") && managers.contains(&"other"), "{managers:?}");
}

#[test]
fn patch_strategic_merge_and_json() {
    let s = server_with_web();
    // Strategic (the default): containers merge by name.
    let sidecar = r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}"#;
    assert_eq!(s.kubectl_ok(&["patch", "deployment", "web", "-p", sidecar]), "deployment.apps/web patched\n");
    let names = |d: &Value| -> Vec<String> {
        d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(String::from))
            .collect()
    };
    let d = deployment(&s, "web");
    // Upstream SMP (`strategicpatch.normalizeElementOrder`) puts patch items the live list lacks first.
    assert_eq!(names(&d), ["sidecar", "nginx"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always",
        "patched objects are defaulted"
    );

    // Merge: a list is replaced whole.
    let only = r#"{"spec":{"template":{"spec":{"containers":[{"name":"only","image":"redis:7"}]}}}}"#;
    assert_eq!(
        s.kubectl_ok(&["patch", "deployment", "web", "--type", "merge", "-p", only]),
        "deployment.apps/web patched\n"
    );
    let d = deployment(&s, "web");
    assert_eq!(names(&d), ["only"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent",
        "a tagged image is IfNotPresent"
    );

    // JSON patch.
    let json_patch = r#"[{"op":"replace","path":"/spec/replicas","value":4},{"op":"add","path":"/metadata/labels/tier","value":"web"}]"#;
    assert_eq!(
        s.kubectl_ok(&["patch", "deployment", "web", "--type", "json", "-p", json_patch]),
        "deployment.apps/web patched\n"
    );
    let d = deployment(&s, "web");
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["metadata"]["labels"], json!({"app": "web", "tier": "web"}));

    // A patch that changes nothing: no write (on a ConfigMap, which no controller writes to).
    s.kubectl_stdin_ok(&["create", "-f", "-"], &configmap_manifest("same"));
    let rv = s.kubectl_ok(&["get", "configmap", "same", "-o", "jsonpath={.metadata.resourceVersion}"]);
    let again = r#"{"data":{"a":"1"}}"#;
    let merge = ["patch", "configmap", "same", "--type", "merge", "-p", again];
    assert_eq!(s.kubectl_ok(&merge), "configmap/same patched (no change)\n");
    assert_eq!(s.kubectl_ok(&["patch", "configmap", "same", "-p", again]), "configmap/same patched (no change)\n");
    assert_eq!(s.kubectl_ok(&["get", "configmap", "same", "-o", "jsonpath={.metadata.resourceVersion}"]), rv);

    // A failing JSON patch test op is refused and changes nothing.
    let failing =
        r#"[{"op":"test","path":"/spec/replicas","value":99},{"op":"replace","path":"/spec/replicas","value":1}]"#;
    // The apiserver answers 422 Invalid (`patch.go: applyJSPatch`), which kubectl words as below.
    let err = s.kubectl_err(&["patch", "deployment", "web", "--type", "json", "-p", failing]);
    assert!(err.starts_with("The request is invalid"), "{err}");
    assert_eq!(deployment(&s, "web")["spec"]["replicas"], 4);
}

#[test]
fn edit_with_a_scripted_editor() {
    let s = server_with_web();
    let script = s.write_file("edit.sh", "#!/bin/sh\nsed -i 's/replicas: 3/replicas: 7/' \"$1\"\n");
    let editor = format!("sh {}", script.display());
    let out = s.kubectl_with(&["edit", "deployment", "web"], None, &[("KUBE_EDITOR", editor.as_str())]);
    assert_eq!(s.expect_success(&["edit", "deployment", "web"], &out), "deployment.apps/web edited\n");
    let d = deployment(&s, "web");
    assert_eq!(d["spec"]["replicas"], 7);
    assert_eq!(d["metadata"]["generation"], 2);
}

#[test]
fn label_and_annotate() {
    let s = server_with_web();
    assert_eq!(s.kubectl_ok(&["label", "deployment", "web", "tier=frontend"]), "deployment.apps/web labeled\n");
    assert_eq!(s.kubectl_ok(&["annotate", "deployment", "web", "note=hello world"]), "deployment.apps/web annotated\n");
    let d = deployment(&s, "web");
    assert_eq!(d["metadata"]["labels"], json!({"app": "web", "tier": "frontend"}));
    assert_eq!(d["metadata"]["annotations"]["note"], "hello world");
    assert_eq!(d["metadata"]["generation"], 1, "metadata changes do not bump generation");

    let err = s.kubectl_err(&["label", "deployment", "web", "tier=backend"]);
    assert!(err.contains("'tier' already has a value (frontend), and --overwrite is false"), "{err}");
    assert_eq!(
        s.kubectl_ok(&["label", "deployment", "web", "tier=backend", "--overwrite"]),
        "deployment.apps/web labeled\n"
    );
    assert_eq!(s.kubectl_ok(&["label", "deployment", "web", "tier-"]), "deployment.apps/web unlabeled\n");
    assert_eq!(s.kubectl_ok(&["annotate", "deployment", "web", "note-"]), "deployment.apps/web annotated\n");
    let d = deployment(&s, "web");
    assert_eq!(d["metadata"]["labels"], json!({"app": "web"}));
    assert!(d["metadata"]["annotations"].get("note").is_none(), "{d}");

    // Selecting by the label.
    s.kubectl_ok(&["label", "deployment", "web", "tier=frontend"]);
    assert_eq!(s.kubectl_ok(&["get", "deploy", "-l", "tier=frontend", "-o", "name"]), "deployment.apps/web\n");
    let out = s.kubectl(&["get", "deploy", "-l", "tier=backend", "-o", "name"]);
    assert_eq!(s.expect_success(&["get", "-l", "tier=backend"], &out), "");
}

#[test]
fn scale_deployment() {
    let s = server_with_web();
    assert_eq!(s.kubectl_ok(&["scale", "deployment", "web", "--replicas=5"]), "deployment.apps/web scaled\n");
    let d = deployment(&s, "web");
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["generation"], 2);
    // --current-replicas makes kubectl send a precondition (GET scale + PUT scale).
    let err = s.kubectl_err(&["scale", "deployment", "web", "--current-replicas=3", "--replicas=6"]);
    assert!(err.contains("Expected replicas to be 3, was 5"), "{err}");
    assert_eq!(
        s.kubectl_ok(&["scale", "deployment", "web", "--current-replicas=5", "--replicas=6"]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(deployment(&s, "web")["spec"]["replicas"], 6);
}

#[test]
fn delete_cascade_background_deletes_at_once() {
    let s = server_with_web();
    let out = s.kubectl_ok(&["delete", "deployment", "web", "--cascade=background"]);
    assert!(out.starts_with("deployment.apps \"web\" deleted"), "{out}");
    let err = s.kubectl_err(&["get", "deployment", "web"]);
    assert!(err.contains(r#"deployments.apps "web" not found"#), "{err}");
}

/// `--cascade=orphan|foreground` make the apiserver keep the object with a finalizer and a
/// deletionTimestamp (the garbage collector then finishes the delete). A watch started before the
/// delete sees that state whether or not a garbage collector runs.
#[test]
fn delete_cascade_orphan_and_foreground_leave_a_finalizer() {
    let s = Server::start();
    for (name, cascade, finalizer) in [("orphaned", "orphan", "orphan"), ("fg", "foreground", "foregroundDeletion")] {
        create_deployment_from_file(&s, name, &[]);
        let w = s.kubectl_spawn(&["get", "deployment", name, "-w", "-o", "json", "--output-watch-events"]);
        w.wait_for_stdout(Duration::from_secs(30), "the first watch event", |o| !json_stream(o).is_empty());
        let out = s.kubectl_ok(&["delete", "deployment", name, &format!("--cascade={cascade}"), "--wait=false"]);
        assert!(out.starts_with(&format!("deployment.apps \"{name}\" deleted")), "{out}");
        let out = w.wait_for_stdout(Duration::from_secs(30), "an event with a deletionTimestamp", |o| {
            json_stream(o).iter().any(|e| e["object"]["metadata"]["deletionTimestamp"].is_string())
        });
        let events = json_stream(&out);
        let marked =
            events.iter().find(|e| e["object"]["metadata"]["deletionTimestamp"].is_string()).expect("found above");
        assert_eq!(marked["type"], "MODIFIED", "{cascade}: {marked}");
        let m = &marked["object"]["metadata"];
        assert_eq!(m["finalizers"], json!([finalizer]), "{cascade}: {marked}");
        assert_eq!(m["deletionGracePeriodSeconds"], 0, "{cascade}: {marked}");
        assert_eq!(m["generation"], 2, "{cascade}: deletion bumps generation");
    }
}

/// The JSON values kubectl printed one after another (`-o json` with `-w`).
fn json_stream(out: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(out).into_iter::<Value>().map_while(Result::ok).collect()
}

/// A non-negative integer cell.
fn is_count(cell: &str) -> bool {
    !cell.is_empty() && cell.chars().all(|c| c.is_ascii_digit())
}

#[test]
fn api_resources_lists_deployments_and_pods() {
    let s = Server::start();
    let out = s.kubectl_ok(&["api-resources"]);
    assert_eq!(
        cells(out.lines().next().unwrap_or_default()),
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
        "{out}"
    );
    let find = |name: &str| cells(row(&out, name).unwrap_or_else(|| panic!("no {name} in:\n{out}")));
    assert_eq!(find("deployments"), ["deployments", "deploy", "apps/v1", "true", "Deployment"]);
    assert_eq!(find("pods"), ["pods", "po", "v1", "true", "Pod"]);
    assert_eq!(find("namespaces"), ["namespaces", "ns", "v1", "false", "Namespace"]);
    assert_eq!(find("replicasets"), ["replicasets", "rs", "apps/v1", "true", "ReplicaSet"]);
    assert_eq!(find("leases"), ["leases", "coordination.k8s.io/v1", "true", "Lease"]);
    assert_eq!(find("configmaps"), ["configmaps", "cm", "v1", "true", "ConfigMap"]);
}

#[test]
fn explain_deployment_strategy() {
    let s = Server::start();
    let out = s.kubectl_ok(&["explain", "deployment.spec.strategy"]);
    for want in [
        "GROUP:      apps",
        "KIND:       Deployment",
        "VERSION:    v1",
        "FIELD: strategy <DeploymentStrategy>",
        "DESCRIPTION:",
        "FIELDS:",
    ] {
        assert!(out.lines().any(|l| l.trim_end() == want), "no line {want:?} in:\n{out}");
    }
    assert!(out.contains("The deployment strategy to use to replace existing pods with new ones."), "{out}");
    assert!(out.lines().any(|l| l.trim_start().starts_with("rollingUpdate\t<RollingUpdateDeployment>")), "{out}");
    assert!(out.lines().any(|l| l.trim_start().starts_with("type\t<string>")), "{out}");
}

const REPLICASET: &str = r#"{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"rs1"},
"spec":{"replicas":2,"selector":{"matchLabels":{"app":"rs1"}},
"template":{"metadata":{"labels":{"app":"rs1"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}"#;

#[test]
fn get_all_lists_pods_deployments_and_replicasets() {
    let s = server_with_web();
    assert_eq!(s.kubectl_ok(&["run", "my-pod", "--image=busybox"]), "pod/my-pod created\n");
    assert_eq!(s.kubectl_stdin_ok(&["create", "-f", "-"], REPLICASET), "replicaset.apps/rs1 created\n");
    let out = s.kubectl_ok(&["get", "all"]);
    let pos = |first: &str| {
        out.lines()
            .position(|l| l.split_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no row {first} in:\n{out}"))
    };
    let (pod, deploy, rs) = (pos("pod/my-pod"), pos("deployment.apps/web"), pos("replicaset.apps/rs1"));
    assert!(pod < deploy && deploy < rs, "kubectl prints kinds in discovery order:\n{out}");
    assert!(cells(out.lines().nth(deploy).unwrap_or_default())[1].ends_with("/3"), "{out}");
    let rs_row = cells(out.lines().nth(rs).unwrap_or_default());
    assert_eq!(&rs_row[..2], ["replicaset.apps/rs1", "2"], "DESIRED: {out}");
    assert!(is_count(&rs_row[2]) && is_count(&rs_row[3]), "CURRENT, READY: {out}");
    // Each kind has its header, separated by a blank line.
    assert_eq!(out.lines().filter(|l| l.starts_with("NAME")).count(), 3, "{out}");
    assert_eq!(out.lines().filter(|l| l.is_empty()).count(), 2, "{out}");
}

#[test]
fn get_all_on_an_empty_namespace() {
    let s = Server::start();
    let out = s.kubectl(&["get", "all"]);
    let stdout = s.expect_success(&["get", "all"], &out);
    assert_eq!(stdout, "");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "No resources found in default namespace.\n");
}

#[test]
fn run_pod_is_pending_and_listed() {
    let s = Server::start();
    assert_eq!(s.kubectl_ok(&["run", "my-debug-pod", "--image=busybox"]), "pod/my-debug-pod created\n");
    let out = s.kubectl_ok(&["get", "pods"]);
    assert_eq!(cells(out.lines().next().unwrap_or_default()), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], "{out}");
    let pod = cells(row(&out, "my-debug-pod").unwrap_or_else(|| panic!("no pod row:\n{out}")));
    assert_eq!(&pod[..4], ["my-debug-pod", "0/1", "Pending", "0"], "{out}");
    assert!(is_recent_age(&pod[4]), "AGE {:?}", pod[4]);

    let p = s.kubectl_json(&["get", "pod", "my-debug-pod"]);
    assert_eq!(p["metadata"]["labels"], json!({"run": "my-debug-pod"}));
    assert_eq!(p["spec"]["containers"][0]["name"], "my-debug-pod");
    assert_eq!(p["spec"]["restartPolicy"], "Always");
    assert_eq!(p["spec"]["enableServiceLinks"], true);
    assert_eq!(p["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    assert_eq!(p["spec"]["priority"], 0);
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["status"]["qosClass"], "BestEffort");
    let tolerations = p["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
    assert_eq!(tolerations.len(), 2, "the default not-ready/unreachable tolerations: {p}");
}

#[test]
fn get_pods_wide_headers() {
    let s = Server::start();
    s.kubectl_ok(&["run", "wide-pod", "--image=busybox"]);
    let out = s.kubectl_ok(&["get", "pods", "-o", "wide"]);
    let header = cells(out.lines().next().unwrap_or_default());
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
        "{out}"
    );
    let pod = cells(row(&out, "wide-pod").unwrap_or_else(|| panic!("no pod row:\n{out}")));
    assert_eq!(&pod[5..], ["<none>", "<none>", "<none>", "<none>"], "{out}");
}

#[test]
fn version_reports_server_1_35_without_skew_warning() {
    let s = Server::start();
    let out = s.kubectl(&["version"]);
    let stdout = s.expect_success(&["version"], &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.lines().any(|l| l.starts_with("Client Version: v1.35.")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("Server Version: v1.35.")), "{stdout}");
    assert!(!stderr.contains("Warning"), "no skew warning expected: {stderr}");
    let v = s.kubectl_json(&["version"]);
    assert_eq!(v["serverVersion"]["major"], "1");
    assert_eq!(v["serverVersion"]["minor"], "35");
    assert_eq!(v["serverVersion"]["platform"], "linux/amd64");
}

#[test]
fn get_namespaces_lists_the_built_in_ones() {
    let s = Server::start();
    let out = s.kubectl_ok(&["get", "ns"]);
    assert_eq!(cells(out.lines().next().unwrap_or_default()), ["NAME", "STATUS", "AGE"], "{out}");
    let names: Vec<&str> = out.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(names, ["default", "kube-node-lease", "kube-public", "kube-system"], "{out}");
    for line in out.lines().skip(1) {
        assert_eq!(cells(line)[1], "Active", "{out}");
    }
}

#[test]
fn deleting_a_namespace_deletes_its_content_then_itself() {
    let s = Server::start();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}).to_string();
    assert_eq!(s.kubectl_stdin_ok(&["create", "-f", "-"], &ns), "namespace/x created\n");
    assert_eq!(s.kubectl_ok(&["get", "ns", "x", "-o", "jsonpath={.status.phase}"]), "Active");
    s.kubectl_stdin_ok(&["create", "-n", "x", "-f", "-"], &configmap_manifest("inside"));
    let manifest = s.kubectl_ok(&["create", "deployment", "web", "--image=nginx", "--dry-run=client", "-o", "json"]);
    s.kubectl_stdin_ok(&["create", "-n", "x", "-f", "-"], &manifest);
    let out = s.kubectl_ok(&["delete", "namespace", "x", "--timeout=90s"]);
    assert!(out.starts_with("namespace \"x\" deleted"), "{out}");
    poll(Duration::from_secs(90), "namespace x to be gone", || {
        let o = s.kubectl(&["get", "ns", "x"]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        (!o.status.success() && err.contains(r#"namespaces "x" not found"#)).then_some(())
    });
    let o = s.kubectl(&["get", "configmaps,deployments", "-n", "x", "-o", "name"]);
    assert_eq!(s.expect_success(&["get", "-n", "x"], &o), "", "content of namespace x is gone");
    // The name can be used again.
    assert_eq!(s.kubectl_stdin_ok(&["create", "-f", "-"], &ns), "namespace/x created\n");
}

#[test]
fn creating_in_a_missing_namespace_is_not_found() {
    let s = Server::start();
    let out = s.kubectl_with(&["create", "-n", "missing", "-f", "-"], Some(&configmap_manifest("c")), &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        r#"Error from server (NotFound): error when creating "STDIN": namespaces "missing" not found"#
    );
}

/// The `kubectl create <kind>` subcommands use kubectl's typed clientset, which (client-go 1.35)
/// sends request bodies as protobuf (`application/vnd.kubernetes.protobuf`) for built-in kinds.
#[test]
fn typed_create_subcommands() {
    let s = Server::start();
    assert_eq!(s.kubectl_ok(&["create", "namespace", "x"]), "namespace/x created\n");
    assert_eq!(s.kubectl_ok(&["create", "configmap", "cm", "-n", "x", "--from-literal=a=b"]), "configmap/cm created\n");
    assert_eq!(
        s.kubectl_ok(&["create", "secret", "generic", "sec", "-n", "x", "--from-literal=p=q"]),
        "secret/sec created\n"
    );
    assert_eq!(s.kubectl_ok(&["create", "serviceaccount", "robot", "-n", "x"]), "serviceaccount/robot created\n");
    assert_eq!(
        s.kubectl_ok(&["create", "deployment", "web", "-n", "x", "--image=nginx"]),
        "deployment.apps/web created\n"
    );
    assert_eq!(s.kubectl_ok(&["get", "configmap", "cm", "-n", "x", "-o", "jsonpath={.data.a}"]), "b");
    assert_eq!(s.kubectl_ok(&["get", "secret", "sec", "-n", "x", "-o", "jsonpath={.data.p}"]), "cQ==");
    assert_eq!(s.kubectl_ok(&["get", "secret", "sec", "-n", "x", "-o", "jsonpath={.type}"]), "Opaque");
    let err = s.kubectl_err(&["create", "configmap", "c", "-n", "missing", "--from-literal=a=b"]);
    assert_eq!(err.trim_end(), r#"error: failed to create configmap: namespaces "missing" not found"#);
}
