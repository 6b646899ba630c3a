//! `describe` (kubectl `pkg/describe/describe.go`): Deployment, ReplicaSet, Pod, and a generic
//! describer for the rest, each followed by the object's events. Lines are `Key:\tValue` laid out by
//! the describe tab writer (padding 2), so blocks align as kubectl aligns them.

use serde_json::Value;
use skiff_api::ResourceInfo;

use crate::client::{Client, with_query};
use crate::commands::{DescribeArgs, connect, namespace};
use crate::error::CliError;
use crate::resources::{collection_path, parse_args};
use crate::tabwriter;

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(x: &str) -> &str {
    if x.is_empty() { "<none>" } else { x }
}

/// RFC 1123 with numeric zone, in local time (`time.RFC1123Z`).
pub fn rfc1123z(ts: &str) -> String {
    let Some(t) = skiff_api::meta::parse_time(ts) else { return ts.to_string() };
    let zoned = t.to_zoned(k8s_openapi::jiff::tz::TimeZone::system());
    zoned.strftime("%a, %d %b %Y %H:%M:%S %z").to_string()
}

/// `Title:\tk=v` with further entries on their own lines under the value column.
fn multiline(title: &str, indent: &str, entries: &[String]) -> String {
    if entries.is_empty() {
        return format!("{indent}{title}:\t<none>\n");
    }
    let mut out = format!("{indent}{title}:\t{}\n", entries[0]);
    for e in &entries[1..] {
        out.push_str(&format!("{indent}\t{e}\n"));
    }
    out
}

fn labels(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default()
}

fn annotations(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

fn header(obj: &Value, namespaced: bool) -> String {
    let mut out = format!("Name:\t{}\n", skiff_api::meta::name(obj));
    if namespaced {
        out.push_str(&format!("Namespace:\t{}\n", skiff_api::meta::namespace(obj)));
    }
    out
}

fn ports(c: &Value) -> (String, String) {
    let ps: Vec<&Value> = c.get("ports").and_then(Value::as_array).map(|p| p.iter().collect()).unwrap_or_default();
    if ps.is_empty() {
        return ("<none>".into(), "<none>".into());
    }
    let proto = |p: &Value| p.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_string();
    let port = ps.iter().map(|p| format!("{}/{}", int(p, "/containerPort"), proto(p))).collect::<Vec<_>>().join(", ");
    let host = ps.iter().map(|p| format!("{}/{}", int(p, "/hostPort"), proto(p))).collect::<Vec<_>>().join(", ");
    (port, host)
}

/// The `Containers:` section; `status` adds a pod's container states.
/// In a pod template the names sit one space in (`   nginx:`), in a pod two (`  nginx:`); the fields
/// are always four spaces in.
fn containers(spec: &Value, statuses: Option<&Value>, indent: &str) -> String {
    let mut out = format!("{indent}Containers:\n");
    let name_indent = if indent.is_empty() { "  ".to_string() } else { format!("{indent} ") };
    let inner = "    ".to_string();
    for c in spec.get("containers").and_then(Value::as_array).into_iter().flatten() {
        let name = s(c, "/name");
        out.push_str(&format!("{name_indent}{name}:\n"));
        let status = statuses
            .and_then(Value::as_array)
            .and_then(|st| st.iter().find(|x| x.get("name").and_then(Value::as_str) == Some(name)));
        if let Some(st) = status {
            out.push_str(&format!("{inner}Container ID:\t{}\n", s(st, "/containerID")));
        }
        out.push_str(&format!("{inner}Image:\t{}\n", s(c, "/image")));
        if let Some(st) = status {
            out.push_str(&format!("{inner}Image ID:\t{}\n", s(st, "/imageID")));
        }
        let (port, host) = ports(c);
        out.push_str(&format!("{inner}Port:\t{port}\n{inner}Host Port:\t{host}\n"));
        for (key, title) in [("command", "Command"), ("args", "Args")] {
            if let Some(items) = c.get(key).and_then(Value::as_array) {
                out.push_str(&format!("{inner}{title}:\n"));
                for i in items {
                    out.push_str(&format!("{inner}  {}\n", i.as_str().unwrap_or_default()));
                }
            }
        }
        if let Some(st) = status {
            out.push_str(&state_lines("State", st.get("state"), &inner));
            if st.get("lastState").and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
                out.push_str(&state_lines("Last State", st.get("lastState"), &inner));
            }
            out.push_str(&format!(
                "{inner}Ready:\t{}\n",
                if st.get("ready") == Some(&Value::Bool(true)) { "True" } else { "False" }
            ));
            out.push_str(&format!("{inner}Restart Count:\t{}\n", int(st, "/restartCount")));
        }
        let env: Vec<String> = c
            .get("env")
            .and_then(Value::as_array)
            .map(|e| e.iter().map(|v| format!("{}:\t{}", s(v, "/name"), s(v, "/value"))).collect())
            .unwrap_or_default();
        if env.is_empty() {
            out.push_str(&format!("{inner}Environment:\t<none>\n"));
        } else {
            out.push_str(&format!("{inner}Environment:\n"));
            for e in env {
                out.push_str(&format!("{inner}  {e}\n"));
            }
        }
        let mounts: Vec<String> = c
            .get("volumeMounts")
            .and_then(Value::as_array)
            .map(|m| m.iter().map(|v| format!("{} from {}", s(v, "/mountPath"), s(v, "/name"))).collect())
            .unwrap_or_default();
        out.push_str(&multiline("Mounts", &inner, &mounts));
    }
    out
}

fn state_lines(title: &str, state: Option<&Value>, indent: &str) -> String {
    let Some(state) = state.and_then(Value::as_object) else { return format!("{indent}{title}:\tWaiting\n") };
    if let Some(r) = state.get("running") {
        return format!("{indent}{title}:\tRunning\n{indent}  Started:\t{}\n", rfc1123z(s(r, "/startedAt")));
    }
    if let Some(t) = state.get("terminated") {
        let mut out = format!("{indent}{title}:\tTerminated\n{indent}  Reason:\t{}\n", s(t, "/reason"));
        out.push_str(&format!("{indent}  Exit Code:\t{}\n", int(t, "/exitCode")));
        out.push_str(&format!(
            "{indent}  Started:\t{}\n{indent}  Finished:\t{}\n",
            rfc1123z(s(t, "/startedAt")),
            rfc1123z(s(t, "/finishedAt"))
        ));
        return out;
    }
    let w = state.get("waiting").cloned().unwrap_or_default();
    let mut out = format!("{indent}{title}:\tWaiting\n");
    if !s(&w, "/reason").is_empty() {
        out.push_str(&format!("{indent}  Reason:\t{}\n", s(&w, "/reason")));
    }
    out
}

/// kubectl's `DescribePodTemplate` at an indentation level (0 for `rollout history --revision`).
pub fn pod_template_text(template: &Value, level: usize) -> String {
    let indent = "  ".repeat(level);
    let mut out = format!("{indent}Pod Template:\n");
    let inner = format!("{indent}  ");
    out.push_str(&multiline("Labels", &inner, &labels(template.pointer("/metadata/labels"))));
    let ann = annotations(template.pointer("/metadata/annotations"));
    if !ann.is_empty() {
        out.push_str(&multiline("Annotations", &inner, &ann));
    }
    let spec = template.get("spec").cloned().unwrap_or_default();
    if let Some(sa) = spec.get("serviceAccountName").and_then(Value::as_str) {
        out.push_str(&format!("{inner}Service Account:\t{sa}\n"));
    }
    out.push_str(&containers(&spec, None, &inner));
    out.push_str(&volumes(&spec, &inner));
    out.push_str(&format!("{inner}Node-Selectors:\t{}\n", or_none(&labels(spec.get("nodeSelector")).join(","))));
    out.push_str(&format!("{inner}Tolerations:\t{}\n", or_none(&tolerations(&spec).join(", "))));
    out
}

fn volumes(spec: &Value, indent: &str) -> String {
    let vols: Vec<&Value> =
        spec.get("volumes").and_then(Value::as_array).map(|v| v.iter().collect()).unwrap_or_default();
    if vols.is_empty() {
        return format!("{indent}Volumes:\t<none>\n");
    }
    let mut out = format!("{indent}Volumes:\n");
    for v in vols {
        let kind = v.as_object().and_then(|m| m.keys().find(|k| k.as_str() != "name").cloned()).unwrap_or_default();
        out.push_str(&format!("{indent}  {}:\n{indent}    Type:\t{kind}\n", s(v, "/name")));
    }
    out
}

fn tolerations(spec: &Value) -> Vec<String> {
    spec.get("tolerations")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let mut x = s(t, "/key").to_string();
                    if !s(t, "/value").is_empty() {
                        x.push_str(&format!("={}", s(t, "/value")));
                    }
                    if !s(t, "/effect").is_empty() {
                        x.push_str(&format!(":{}", s(t, "/effect")));
                    }
                    if s(t, "/operator") == "Exists" {
                        x.push_str(" op=Exists");
                    }
                    if let Some(secs) = t.get("tolerationSeconds").and_then(Value::as_i64) {
                        x.push_str(&format!(" for {secs}s"));
                    }
                    x
                })
                .collect()
        })
        .unwrap_or_default()
}

fn conditions(obj: &Value, with_reason: bool) -> String {
    let Some(conds) = obj.pointer("/status/conditions").and_then(Value::as_array).filter(|c| !c.is_empty()) else {
        return String::new();
    };
    let mut out = if with_reason {
        "Conditions:\n  Type\tStatus\tReason\n  ----\t------\t------\n".to_string()
    } else {
        "Conditions:\n  Type\tStatus\n".to_string()
    };
    for c in conds {
        if with_reason {
            out.push_str(&format!("  {} \t{}\t{}\n", s(c, "/type"), s(c, "/status"), s(c, "/reason")));
        } else {
            out.push_str(&format!("  {} \t{} \n", s(c, "/type"), s(c, "/status")));
        }
    }
    out
}

fn deployment_text(d: &Value, sets: &[Value]) -> String {
    let mut out = header(d, true);
    out.push_str(&format!("CreationTimestamp:\t{}\n", rfc1123z(s(d, "/metadata/creationTimestamp"))));
    out.push_str(&multiline("Labels", "", &labels(d.pointer("/metadata/labels"))));
    out.push_str(&multiline("Annotations", "", &annotations(d.pointer("/metadata/annotations"))));
    out.push_str(&format!(
        "Selector:\t{}\n",
        d.pointer("/spec/selector").map(skiff_api::selector::selector_string).unwrap_or_default()
    ));
    let replicas = format!(
        "{} desired | {} updated | {} total | {} available | {} unavailable",
        int(d, "/spec/replicas"),
        int(d, "/status/updatedReplicas"),
        int(d, "/status/replicas"),
        int(d, "/status/availableReplicas"),
        int(d, "/status/unavailableReplicas")
    );
    out.push_str(&format!("Replicas:\t{replicas}\n"));
    out.push_str(&format!("StrategyType:\t{}\n", s(d, "/spec/strategy/type")));
    out.push_str(&format!("MinReadySeconds:\t{}\n", int(d, "/spec/minReadySeconds")));
    if let Some(ru) = d.pointer("/spec/strategy/rollingUpdate") {
        let show = |v: Option<&Value>| match v {
            Some(Value::String(x)) => x.clone(),
            Some(other) => other.to_string(),
            None => "0".into(),
        };
        out.push_str(&format!(
            "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
            show(ru.get("maxUnavailable")),
            show(ru.get("maxSurge"))
        ));
    }
    out.push_str(&pod_template_text(d.pointer("/spec/template").unwrap_or(&Value::Null), 0));
    out.push_str(&conditions(d, true));
    let template = d.pointer("/spec/template").cloned().unwrap_or_default();
    let (new, old): (Vec<&Value>, Vec<&Value>) = sets.iter().partition(|rs| {
        crate::rollout::equal_ignore_hash(rs.pointer("/spec/template").unwrap_or(&Value::Null), &template)
    });
    let summary = |list: &[&Value]| {
        let parts: Vec<String> = list
            .iter()
            .filter(|rs| !std::ptr::eq(**rs, &Value::Null))
            .map(|rs| {
                format!(
                    "{} ({}/{} replicas created)",
                    skiff_api::meta::name(rs),
                    int(rs, "/status/replicas"),
                    int(rs, "/spec/replicas")
                )
            })
            .collect();
        if parts.is_empty() { "<none>".to_string() } else { parts.join(", ") }
    };
    let old_active: Vec<&Value> = old.into_iter().filter(|rs| int(rs, "/spec/replicas") > 0).collect();
    out.push_str(&format!("OldReplicaSets:\t{}\n", summary(&old_active)));
    out.push_str(&format!("NewReplicaSet:\t{}\n", summary(&new)));
    out
}

fn replicaset_text(rs: &Value, pods: &[Value]) -> String {
    let mut out = header(rs, true);
    out.push_str(&format!(
        "Selector:\t{}\n",
        rs.pointer("/spec/selector").map(skiff_api::selector::selector_string).unwrap_or_default()
    ));
    out.push_str(&multiline("Labels", "", &labels(rs.pointer("/metadata/labels"))));
    out.push_str(&multiline("Annotations", "", &annotations(rs.pointer("/metadata/annotations"))));
    if let Some(owner) = rs.pointer("/metadata/ownerReferences/0") {
        out.push_str(&format!("Controlled By:\t{}/{}\n", s(owner, "/kind"), s(owner, "/name")));
    }
    out.push_str(&format!(
        "Replicas:\t{} current / {} desired\n",
        int(rs, "/status/replicas"),
        int(rs, "/spec/replicas")
    ));
    let phase = |p: &str| pods.iter().filter(|x| s(x, "/status/phase") == p).count();
    out.push_str(&format!(
        "Pods Status:\t{} Running / {} Waiting / {} Succeeded / {} Failed\n",
        phase("Running"),
        phase("Pending"),
        phase("Succeeded"),
        phase("Failed")
    ));
    out.push_str(&pod_template_text(rs.pointer("/spec/template").unwrap_or(&Value::Null), 0));
    out.push_str(&conditions(rs, true));
    out
}

fn pod_text(p: &Value) -> String {
    let mut out = header(p, true);
    out.push_str(&format!("Priority:\t{}\n", int(p, "/spec/priority")));
    out.push_str(&format!("Service Account:\t{}\n", or_none(s(p, "/spec/serviceAccountName"))));
    let node = s(p, "/spec/nodeName");
    let host = s(p, "/status/hostIP");
    out.push_str(&format!(
        "Node:\t{}\n",
        if node.is_empty() {
            "<none>".to_string()
        } else if host.is_empty() {
            node.to_string()
        } else {
            format!("{node}/{host}")
        }
    ));
    if !s(p, "/status/startTime").is_empty() {
        out.push_str(&format!("Start Time:\t{}\n", rfc1123z(s(p, "/status/startTime"))));
    }
    out.push_str(&multiline("Labels", "", &labels(p.pointer("/metadata/labels"))));
    out.push_str(&multiline("Annotations", "", &annotations(p.pointer("/metadata/annotations"))));
    out.push_str(&format!("Status:\t{}\n", s(p, "/status/phase")));
    out.push_str(&format!("IP:\t{}\n", s(p, "/status/podIP")));
    let ips: Vec<String> = p
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .map(|ips| ips.iter().map(|i| format!("IP:\t{}", s(i, "/ip"))).collect())
        .unwrap_or_default();
    if ips.is_empty() {
        out.push_str("IPs:\t<none>\n");
    } else {
        out.push_str("IPs:\n");
        ips.iter().for_each(|i| out.push_str(&format!("  {i}\n")));
    }
    if let Some(owner) = p.pointer("/metadata/ownerReferences/0") {
        out.push_str(&format!("Controlled By:\t{}/{}\n", s(owner, "/kind"), s(owner, "/name")));
    }
    let spec = p.get("spec").cloned().unwrap_or_default();
    out.push_str(&containers(&spec, p.pointer("/status/containerStatuses"), ""));
    out.push_str(&conditions(p, false));
    out.push_str(&volumes(&spec, ""));
    out.push_str(&format!("QoS Class:\t{}\n", s(p, "/status/qosClass")));
    out.push_str(&format!("Node-Selectors:\t{}\n", or_none(&labels(spec.get("nodeSelector")).join(","))));
    let tol = tolerations(&spec);
    out.push_str(&multiline("Tolerations", "", &tol));
    out
}

fn generic_text(obj: &Value, namespaced: bool) -> String {
    let mut out = header(obj, namespaced);
    out.push_str(&multiline("Labels", "", &labels(obj.pointer("/metadata/labels"))));
    out.push_str(&multiline("Annotations", "", &annotations(obj.pointer("/metadata/annotations"))));
    if let Some(status) = obj.pointer("/status/phase").and_then(Value::as_str) {
        out.push_str(&format!("Status:\t{status}\n"));
    }
    out
}

/// The `Events:` section, oldest first, with kubectl's `AGE (xN over AGE)` for repeated events.
pub fn events_text(events: &[Value], now: k8s_openapi::jiff::Timestamp) -> String {
    if events.is_empty() {
        return "Events:\t<none>\n".to_string();
    }
    let mut sorted: Vec<&Value> = events.iter().collect();
    let last = |e: &Value| {
        let l = s(e, "/lastTimestamp");
        if l.is_empty() { s(e, "/eventTime").to_string() } else { l.to_string() }
    };
    sorted.sort_by_key(|e| last(e));
    let mut out = "Events:\n  Type\tReason\tAge\tFrom\tMessage\n  ----\t------\t----\t----\t-------\n".to_string();
    for e in sorted {
        let last_ts = last(e);
        let mut age = skiff_api::duration::translate_timestamp_since(Some(&last_ts), now);
        let count = int(e, "/count").max(int(e, "/series/count"));
        if count > 1 {
            let first = s(e, "/firstTimestamp");
            age = format!("{age} (x{count} over {})", skiff_api::duration::translate_timestamp_since(Some(first), now));
        }
        let mut from = s(e, "/source/component").to_string();
        if from.is_empty() {
            from = s(e, "/reportingComponent").to_string();
        }
        if !s(e, "/source/host").is_empty() {
            from = format!("{from}, {}", s(e, "/source/host"));
        }
        out.push_str(&format!(
            "  {}\t{}\t{age}\t{from}\t{}\n",
            s(e, "/type"),
            s(e, "/reason"),
            s(e, "/message").trim()
        ));
    }
    out
}

async fn events_for(client: &Client, obj: &Value, r: &ResourceInfo) -> Vec<Value> {
    let ns = skiff_api::meta::namespace(obj);
    let path = if ns.is_empty() { "/api/v1/events".to_string() } else { format!("/api/v1/namespaces/{ns}/events") };
    let uid = skiff_api::meta::uid(obj);
    let list = client.get(&with_query(&path, &[("limit", "500")])).await.unwrap_or_default();
    list.get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            s(e, "/involvedObject/name") == skiff_api::meta::name(obj)
                && s(e, "/involvedObject/kind") == r.kind
                && (s(e, "/involvedObject/uid").is_empty() || s(e, "/involvedObject/uid") == uid)
        })
        .collect()
}

async fn describe_one(client: &Client, r: &'static ResourceInfo, obj: &Value) -> Result<String, CliError> {
    let ns = skiff_api::meta::namespace(obj).to_string();
    let mut text = match r.kind {
        "Deployment" => {
            let rs = crate::resources::resolve_type("replicasets")?[0];
            let selector = obj.pointer("/spec/selector").map(skiff_api::selector::selector_string).unwrap_or_default();
            let list =
                client.get(&with_query(&collection_path(rs, Some(&ns)), &[("labelSelector", &selector)])).await?;
            let uid = skiff_api::meta::uid(obj);
            let sets: Vec<Value> = list
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|x| {
                    x.pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|o| o.iter().any(|o| s(o, "/uid") == uid))
                })
                .collect();
            deployment_text(obj, &sets)
        }
        "ReplicaSet" => {
            let selector = obj.pointer("/spec/selector").map(skiff_api::selector::selector_string).unwrap_or_default();
            let pods = client
                .get(&with_query(&format!("/api/v1/namespaces/{ns}/pods"), &[("labelSelector", &selector)]))
                .await?;
            replicaset_text(obj, pods.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]))
        }
        "Pod" => pod_text(obj),
        _ => generic_text(obj, r.namespaced()),
    };
    text.push_str(&events_text(&events_for(client, obj, r).await, k8s_openapi::jiff::Timestamp::now()));
    Ok(tabwriter::format(&text, tabwriter::DESCRIBE))
}

pub async fn describe(a: DescribeArgs) -> Result<(), CliError> {
    let targets = parse_args(&a.args)?;
    let client = connect(&a.common).await?;
    let ns = namespace(&a.common, &client);
    let mut outputs = Vec::new();
    let mut failed = false;
    for t in targets {
        let objects: Vec<Value> = if t.names.is_empty() {
            let scope = (!a.selection.all_namespaces).then_some(ns.as_str());
            let mut params = Vec::new();
            if let Some(l) = &a.selection.selector {
                params.push(("labelSelector", l.as_str()));
            }
            let list = client.get(&with_query(&collection_path(t.resource, scope), &params)).await?;
            list.get("items").and_then(Value::as_array).cloned().unwrap_or_default()
        } else {
            let mut objs = Vec::new();
            for n in &t.names {
                match crate::commands::get_object(&client, t.resource, &ns, n).await {
                    Ok(o) => objs.push(o),
                    Err(e) if e.code().is_some() => {
                        eprintln!("{e}");
                        failed = true;
                    }
                    Err(e) => return Err(e),
                }
            }
            objs
        };
        for obj in objects {
            outputs.push(describe_one(&client, t.resource, &obj).await?);
        }
    }
    if outputs.is_empty() && !failed {
        eprintln!("No resources found in {ns} namespace.");
    }
    print!("{}", outputs.join("\n\n"));
    if failed { Err(CliError::Exit(1)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn describes_a_deployment_like_kubectl() {
        let d = json!({"metadata":{"name":"web","namespace":"default","creationTimestamp":"2026-01-01T00:00:00Z",
            "labels":{"app":"web"},"annotations":{"deployment.kubernetes.io/revision":"1"}},
            "spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},"minReadySeconds":0,
              "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":"25%"}},
              "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"nginx","image":"nginx"}]}}},
            "status":{"replicas":1,"updatedReplicas":1,"availableReplicas":1,"conditions":[
              {"type":"Available","status":"True","reason":"MinimumReplicasAvailable"},
              {"type":"Progressing","status":"True","reason":"NewReplicaSetAvailable"}]}});
        let rs = json!({"metadata":{"name":"web-abc"},"spec":{"replicas":1,"template":{"metadata":{"labels":{"app":"web","pod-template-hash":"abc"}},"spec":{"containers":[{"name":"nginx","image":"nginx"}]}}},"status":{"replicas":1}});
        let mut text = deployment_text(&d, &[rs]);
        text.push_str(&events_text(&[], k8s_openapi::jiff::Timestamp::now()));
        let got = tabwriter::format(&text, tabwriter::DESCRIBE);
        let created = rfc1123z("2026-01-01T00:00:00Z");
        let want = format!(
            "Name:                   web\n\
             Namespace:              default\n\
             CreationTimestamp:      {created}\n\
             Labels:                 app=web\n\
             Annotations:            deployment.kubernetes.io/revision: 1\n\
             Selector:               app=web\n\
             Replicas:               1 desired | 1 updated | 1 total | 1 available | 0 unavailable\n\
             StrategyType:           RollingUpdate\n\
             MinReadySeconds:        0\n\
             RollingUpdateStrategy:  25% max unavailable, 25% max surge\n\
             Pod Template:\n  Labels:  app=web\n  Containers:\n   nginx:\n\
             \x20   Image:         nginx\n\
             \x20   Port:          <none>\n\
             \x20   Host Port:     <none>\n\
             \x20   Environment:   <none>\n\
             \x20   Mounts:        <none>\n\
             \x20 Volumes:         <none>\n\
             \x20 Node-Selectors:  <none>\n\
             \x20 Tolerations:     <none>\n\
             Conditions:\n\
             \x20 Type           Status  Reason\n\
             \x20 ----           ------  ------\n\
             \x20 Available      True    MinimumReplicasAvailable\n\
             \x20 Progressing    True    NewReplicaSetAvailable\n\
             OldReplicaSets:  <none>\n\
             NewReplicaSet:   web-abc (1/1 replicas created)\n\
             Events:          <none>\n"
        );
        assert_eq!(got, want);
    }

    #[test]
    fn events_show_repeats() {
        let now: k8s_openapi::jiff::Timestamp = "2026-01-01T00:10:00Z".parse().expect("ts");
        let e = json!({"type":"Normal","reason":"ScalingReplicaSet","message":"Scaled up replica set web-abc from 0 to 1",
            "source":{"component":"deployment-controller"},"count":3,
            "firstTimestamp":"2026-01-01T00:00:00Z","lastTimestamp":"2026-01-01T00:09:00Z"});
        let text = tabwriter::format(&events_text(&[e], now), tabwriter::DESCRIBE);
        assert_eq!(
            text,
            "Events:\n  Type    Reason             Age                From                   Message\n  ----    ------             ----               ----                   -------\n  Normal  ScalingReplicaSet  60s (x3 over 10m)  deployment-controller  Scaled up replica set web-abc from 0 to 1\n"
        );
    }
}
