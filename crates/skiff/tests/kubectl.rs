//! End-to-end: the real kubectl v1.35 against `skiff server`.
//!
//! Each test starts its own server (own port, data directory and kubectl cache).

mod common;

use std::time::Duration;

use common::{Server, cells, is_recent_age, poll, row};
use serde_json::{Value, json};

/// `kubectl create deployment web --image=nginx --replicas=3` on a fresh server.
fn server_with_web() -> Server {
    let s = Server::start();
    let out = s.kubectl_ok(&["create", "deployment", "web", "--image=nginx", "--replicas=3"]);
    assert_eq!(out, "deployment.apps/web created\n");
    s
}

fn deployment(s: &Server, name: &str) -> Value {
    s.kubectl_json(&["get", "deployment", name])
}

#[test]
fn create_deployment_is_defaulted_like_kubernetes() {
    let s = server_with_web();
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
    assert!(m["creationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 20), "{}", m["creationTimestamp"]);
    assert_eq!(m["managedFields"][0]["manager"], "kubectl-create");
    assert_eq!(m["managedFields"][0]["operation"], "Update");

    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["selector"], json!({"matchLabels": {"app": "web"}}));
    assert_eq!(spec["strategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}));
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
    assert_eq!(&web[..4], ["web", "0/3", "0", "0"], "{out}");
    assert!(is_recent_age(&web[4]), "AGE {:?}", web[4]);
    assert_eq!(web.len(), 5);
}

#[test]
fn get_deployments_wide_adds_containers_images_selector() {
    let s = server_with_web();
    let out = s.kubectl_ok(&["get", "deployments", "-o", "wide"]);
    let header = cells(out.lines().next().unwrap_or_default());
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"], "{out}");
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

#[test]
fn get_watch_prints_rows_for_later_changes() {
    let s = Server::start();
    s.kubectl_ok(&["create", "configmap", "first", "--from-literal=a=1"]);
    let w = s.kubectl_spawn(&["get", "configmaps", "-w"]);
    w.wait_for_stdout(Duration::from_secs(30), "the initial row for first", |o| row(o, "first").is_some());
    let initial = w.stdout();
    assert_eq!(cells(initial.lines().next().unwrap_or_default()), ["NAME", "DATA", "AGE"], "{initial}");

    s.kubectl_ok(&["create", "configmap", "watched", "--from-literal=a=1"]);
    let out = w.wait_for_stdout(Duration::from_secs(30), "a row for the new configmap", |o| row(o, "watched").is_some());
    let added = cells(row(&out, "watched").unwrap_or_default());
    assert_eq!(&added[..2], ["watched", "1"], "{out}");

    s.kubectl_ok(&["patch", "configmap", "watched", "--type", "merge", "-p", r#"{"data":{"b":"2"}}"#]);
    let out = w.wait_for_stdout(Duration::from_secs(30), "a second row for the modified configmap", |o| {
        o.lines().filter(|l| l.split_whitespace().next() == Some("watched")).count() >= 2
    });
    let modified = out.lines().filter(|l| l.split_whitespace().next() == Some("watched")).nth(1).map(cells).unwrap_or_default();
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
    let last = d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].as_str().unwrap_or_default();
    let last: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("last-applied is JSON ({e}): {d}"));
    assert_eq!(last["spec"]["replicas"], 1);
    assert_eq!(d["metadata"]["managedFields"][0]["manager"], "kubectl-client-side-apply");

    assert_eq!(s.kubectl_ok(&["apply", "-f", f2]), "deployment.apps/applied configured\n");
    let d = deployment(&s, "applied");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.28");
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["ports"], json!([{"containerPort": 80, "protocol": "TCP"}]));
    assert_eq!(d["metadata"]["generation"], 2);
    let rv = d["metadata"]["resourceVersion"].clone();

    assert_eq!(s.kubectl_ok(&["apply", "-f", f2]), "deployment.apps/applied unchanged\n");
    assert_eq!(deployment(&s, "applied")["metadata"]["resourceVersion"], rv, "unchanged means no write");
}

#[test]
fn apply_server_side_conflicts_with_another_manager_until_forced() {
    let s = Server::start();
    let mine = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  key: mine\n  other: kept\n";
    let theirs = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  key: theirs\n";
    assert_eq!(s.kubectl_stdin_ok(&["apply", "--server-side", "-f", "-"], mine), "configmap/ssa serverside-applied\n");
    let cm = s.kubectl_json(&["get", "configmap", "ssa"]);
    let mf = &cm["metadata"]["managedFields"];
    assert_eq!(mf[0]["manager"], "kubectl", "{cm}");
    assert_eq!(mf[0]["operation"], "Apply", "{cm}");

    let out = s.kubectl_with(&["apply", "--server-side", "--field-manager=other", "-f", "-"], Some(theirs), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a conflicting apply must fail: {err}");
    assert!(err.contains("Apply failed with 1 conflict: conflict with \"kubectl\""), "{err}");
    assert!(err.contains(".data.key"), "{err}");
    assert_eq!(s.kubectl_ok(&["get", "configmap", "ssa", "-o", "jsonpath={.data.key}"]), "mine", "a conflict writes nothing");

    let out = s.kubectl_with(&["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-"], Some(theirs), &[]);
    assert_eq!(s.expect_success(&["apply", "--force-conflicts"], &out), "configmap/ssa serverside-applied\n");
    let cm = s.kubectl_json(&["get", "configmap", "ssa"]);
    assert_eq!(cm["data"], json!({"key": "theirs", "other": "kept"}));
    let managers: Vec<&str> = cm["metadata"]["managedFields"].as_array().into_iter().flatten().filter_map(|e| e["manager"].as_str()).collect();
    assert!(managers.contains(&"kubectl") && managers.contains(&"other"), "{managers:?}");
}

#[test]
fn patch_strategic_merge_and_json() {
    let s = server_with_web();
    // Strategic (the default): containers merge by name.
    let sidecar = r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}"#;
    assert_eq!(s.kubectl_ok(&["patch", "deployment", "web", "-p", sidecar]), "deployment.apps/web patched\n");
    let names = |d: &Value| -> Vec<String> {
        d["spec"]["template"]["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str().map(String::from)).collect()
    };
    let d = deployment(&s, "web");
    assert_eq!(names(&d), ["nginx", "sidecar"]);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][1]["imagePullPolicy"], "Always", "patched objects are defaulted");

    // Merge: a list is replaced whole.
    let only = r#"{"spec":{"template":{"spec":{"containers":[{"name":"only","image":"redis:7"}]}}}}"#;
    assert_eq!(s.kubectl_ok(&["patch", "deployment", "web", "--type", "merge", "-p", only]), "deployment.apps/web patched\n");
    let d = deployment(&s, "web");
    assert_eq!(names(&d), ["only"]);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent", "a tagged image is IfNotPresent");

    // JSON patch.
    let json_patch = r#"[{"op":"replace","path":"/spec/replicas","value":4},{"op":"add","path":"/metadata/labels/tier","value":"web"}]"#;
    assert_eq!(s.kubectl_ok(&["patch", "deployment", "web", "--type", "json", "-p", json_patch]), "deployment.apps/web patched\n");
    let d = deployment(&s, "web");
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["metadata"]["labels"], json!({"app": "web", "tier": "web"}));

    // The same patch again changes nothing.
    let rv = d["metadata"]["resourceVersion"].clone();
    let again = r#"{"metadata":{"labels":{"tier":"web"}}}"#;
    assert_eq!(s.kubectl_ok(&["patch", "deployment", "web", "--type", "merge", "-p", again]), "deployment.apps/web patched (no change)\n");
    assert_eq!(deployment(&s, "web")["metadata"]["resourceVersion"], rv);

    // A failing JSON patch test op is refused and changes nothing.
    let failing = r#"[{"op":"test","path":"/spec/replicas","value":99},{"op":"replace","path":"/spec/replicas","value":1}]"#;
    let err = s.kubectl_err(&["patch", "deployment", "web", "--type", "json", "-p", failing]);
    assert!(err.contains("Error from server"), "{err}");
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
    assert_eq!(s.kubectl_ok(&["label", "deployment", "web", "tier=backend", "--overwrite"]), "deployment.apps/web labeled\n");
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
    assert_eq!(s.kubectl_ok(&["scale", "deployment", "web", "--current-replicas=5", "--replicas=6"]), "deployment.apps/web scaled\n");
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

#[test]
fn delete_cascade_orphan_and_foreground_leave_a_finalizer() {
    let s = Server::start();
    for (name, cascade, finalizer) in [("orphaned", "orphan", "orphan"), ("fg", "foreground", "foregroundDeletion")] {
        s.kubectl_ok(&["create", "deployment", name, "--image=nginx"]);
        let out = s.kubectl_ok(&["delete", "deployment", name, &format!("--cascade={cascade}"), "--wait=false"]);
        assert!(out.starts_with(&format!("deployment.apps \"{name}\" deleted")), "{out}");
        // No garbage collector yet: the object stays, marked for deletion.
        let d = deployment(&s, name);
        assert_eq!(d["metadata"]["finalizers"], json!([finalizer]), "{cascade}: {d}");
        assert!(d["metadata"]["deletionTimestamp"].is_string(), "{cascade}: {d}");
        assert_eq!(d["metadata"]["deletionGracePeriodSeconds"], 0, "{cascade}: {d}");
        assert_eq!(d["metadata"]["generation"], 2, "{cascade}: deletion bumps generation");
    }
}

#[test]
fn api_resources_lists_deployments_and_pods() {
    let s = Server::start();
    let out = s.kubectl_ok(&["api-resources"]);
    assert_eq!(cells(out.lines().next().unwrap_or_default()), ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"], "{out}");
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
    for want in ["GROUP:      apps", "KIND:       Deployment", "VERSION:    v1", "FIELD: strategy <DeploymentStrategy>", "DESCRIPTION:", "FIELDS:"] {
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
        out.lines().position(|l| l.split_whitespace().next() == Some(first)).unwrap_or_else(|| panic!("no row {first} in:\n{out}"))
    };
    let (pod, deploy, rs) = (pos("pod/my-pod"), pos("deployment.apps/web"), pos("replicaset.apps/rs1"));
    assert!(pod < deploy && deploy < rs, "kubectl prints kinds in discovery order:\n{out}");
    assert_eq!(cells(out.lines().nth(deploy).unwrap_or_default())[1], "0/3");
    let rs_row = cells(out.lines().nth(rs).unwrap_or_default());
    assert_eq!(&rs_row[..4], ["replicaset.apps/rs1", "2", "0", "0"], "{out}");
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
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"], "{out}");
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
    assert_eq!(s.kubectl_ok(&["create", "namespace", "x"]), "namespace/x created\n");
    s.kubectl_ok(&["create", "configmap", "inside", "-n", "x", "--from-literal=a=b"]);
    s.kubectl_ok(&["create", "deployment", "web", "-n", "x", "--image=nginx"]);
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
    assert_eq!(s.kubectl_ok(&["create", "namespace", "x"]), "namespace/x created\n");
}

#[test]
fn creating_in_a_missing_namespace_is_not_found() {
    let s = Server::start();
    let err = s.kubectl_err(&["create", "configmap", "c", "-n", "missing", "--from-literal=a=b"]);
    assert_eq!(err.trim_end(), r#"error: failed to create configmap: namespaces "missing" not found"#);
}
