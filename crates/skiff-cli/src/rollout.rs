//! `rollout status|history|undo|pause|resume|restart` (kubectl `pkg/cmd/rollout`,
//! `pkg/polymorphichelpers/{rollout_status,history,rollback}.go`).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use skiff_api::ResourceInfo;

use crate::client::{Client, with_query};
use crate::commands::{Common, connect, namespace, one_object, parse_duration};
use crate::error::CliError;
use crate::resources::{collection_path, kind_prefix, object_path, qualified, resolve_type};
use crate::tabwriter;

pub const REVISION: &str = "deployment.kubernetes.io/revision";

#[derive(clap::Subcommand, Debug)]
pub enum RolloutWhat {
    /// Show the status of the rollout.
    Status(StatusArgs),
    /// View rollout history.
    History(HistoryArgs),
    /// Undo a previous rollout.
    Undo(UndoArgs),
    /// Mark the resource as paused.
    Pause(TargetArgs),
    /// Resume a paused resource.
    Resume(TargetArgs),
    /// Restart a resource.
    Restart(TargetArgs),
}

#[derive(clap::Args, Debug)]
pub struct TargetArgs {
    pub args: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    pub args: Vec<String>,
    /// Watch the status until the rollout is done.
    #[arg(short = 'w', long, default_value = "true", num_args = 0..=1, default_missing_value = "true")]
    pub watch: String,
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// Draw the live progress view (default: when stdout is a terminal).
    #[arg(long)]
    pub progress: Option<bool>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    pub args: Vec<String>,
    #[arg(long)]
    pub revision: Option<i64>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct UndoArgs {
    pub args: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub to_revision: i64,
    #[command(flatten)]
    pub common: Common,
}

impl RolloutWhat {
    /// The flags every verb takes, of whichever `rollout` subcommand this is.
    pub fn common_mut(&mut self) -> &mut Common {
        match self {
            RolloutWhat::Status(a) => &mut a.common,
            RolloutWhat::History(a) => &mut a.common,
            RolloutWhat::Undo(a) => &mut a.common,
            RolloutWhat::Pause(a) | RolloutWhat::Resume(a) | RolloutWhat::Restart(a) => &mut a.common,
        }
    }
}

/// Where a rollout stands, as kubectl's DeploymentStatusViewer says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Waiting(String),
    Done(String),
    /// The progress deadline passed.
    Failed(String),
}

fn int(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// kubectl's `DeploymentStatusViewer.Status`.
pub fn deployment_status(d: &Value) -> Status {
    let name = skiff_api::meta::name(d);
    if skiff_api::meta::generation(d) > int(d, "/status/observedGeneration") {
        return Status::Waiting("Waiting for deployment spec update to be observed...\n".into());
    }
    let progressing = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Progressing")));
    if progressing.and_then(|c| c.get("reason")).and_then(Value::as_str) == Some("ProgressDeadlineExceeded") {
        return Status::Failed(format!("deployment \"{name}\" exceeded its progress deadline"));
    }
    let desired = d.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let updated = int(d, "/status/updatedReplicas");
    let replicas = int(d, "/status/replicas");
    let available = int(d, "/status/availableReplicas");
    if updated < desired {
        return Status::Waiting(format!(
            "Waiting for deployment \"{name}\" rollout to finish: {updated} out of {desired} new replicas have been updated...\n"
        ));
    }
    if replicas > updated {
        return Status::Waiting(format!(
            "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...\n",
            replicas - updated
        ));
    }
    if available < updated {
        return Status::Waiting(format!(
            "Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available...\n"
        ));
    }
    Status::Done(format!("deployment \"{name}\" successfully rolled out\n"))
}

pub async fn run(what: RolloutWhat) -> Result<(), CliError> {
    match what {
        RolloutWhat::Status(a) => status(a).await,
        RolloutWhat::History(a) => history(a).await,
        RolloutWhat::Undo(a) => undo(a).await,
        RolloutWhat::Pause(a) => pause_resume(a, true).await,
        RolloutWhat::Resume(a) => pause_resume(a, false).await,
        RolloutWhat::Restart(a) => restart(a).await,
    }
}

/// The Deployment named by `deploy/NAME` or `deployment NAME`; other kinds are refused as kubectl does.
async fn deployment(
    args: &[String],
    common: &Common,
) -> Result<(Client, String, &'static ResourceInfo, String, Value), CliError> {
    let (r, name, _) = one_object(args)?;
    if r.kind != "Deployment" {
        return Err(CliError::Failed(format!("no rollout support for kind {:?}", r.kind)));
    }
    let client = connect(common).await?;
    let ns = namespace(common, &client);
    let obj = crate::commands::get_object(&client, r, &ns, &name).await?;
    Ok((client, ns, r, name, obj))
}

fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

async fn status(a: StatusArgs) -> Result<(), CliError> {
    let (client, ns, r, name, mut obj) = deployment(&a.args, &a.common).await?;
    let timeout = parse_duration(&a.timeout)?;
    let deadline = (timeout > Duration::ZERO).then(|| tokio::time::Instant::now() + timeout);
    let progress = a.progress.unwrap_or_else(|| std::io::stdout().is_terminal());
    let path = object_path(r, &ns, &name);
    let mut last = String::new();
    let mut drawn = 0usize;
    let mut why: Vec<String> = Vec::new();
    let mut polls = 0u32;
    loop {
        let s = deployment_status(&obj);
        let stuck = matches!(s, Status::Failed(_)) || deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
        if progress {
            // The diagnosis costs a few requests: refresh it every second, and at the end.
            if matches!(s, Status::Done(_)) {
                why.clear();
            } else if polls.is_multiple_of(4) || stuck {
                why = diagnose(&client, &ns, &obj).await;
            }
            let old = old_replica_sets(&client, &ns, &obj).await.unwrap_or_default();
            let message = match &s {
                Status::Waiting(m) | Status::Done(m) => m.trim_end().to_string(),
                Status::Failed(m) => m.clone(),
            };
            let lines = crate::progress::render(&obj, &old, &why, &message);
            if drawn > 0 {
                print(&format!("\x1b[{drawn}A\x1b[J"));
            }
            print(&lines.iter().map(|l| format!("{l}\n")).collect::<String>());
            drawn = lines.len();
        }
        polls = polls.wrapping_add(1);
        match s {
            Status::Done(m) => {
                if !progress {
                    print(&m);
                }
                return Ok(());
            }
            Status::Failed(m) => {
                if !progress {
                    explain_on_stderr(&diagnose(&client, &ns, &obj).await);
                }
                return Err(CliError::Failed(m));
            }
            Status::Waiting(m) => {
                if !progress && m != last {
                    print(&m);
                }
                last = m;
            }
        }
        if a.watch == "false" {
            return Ok(());
        }
        if stuck {
            if !progress {
                explain_on_stderr(&diagnose(&client, &ns, &obj).await);
            }
            return Err(CliError::Failed("timed out waiting for the condition".into()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        obj = client.get(&path).await?;
    }
}

/// Without the live view, the diagnosis goes to stderr before kubectl's error line (stdout stays
/// exactly kubectl's).
fn explain_on_stderr(why: &[String]) {
    for line in why {
        eprintln!("{line}");
    }
}

/// The ReplicaSets a Deployment controls (by owner UID), with their revisions.
async fn owned_replica_sets(client: &Client, ns: &str, d: &Value) -> Result<Vec<Value>, CliError> {
    let rs = resolve_type("replicasets")?[0];
    let selector = d.pointer("/spec/selector").map(skiff_api::selector::selector_string).unwrap_or_default();
    let list = client.get(&with_query(&collection_path(rs, Some(ns)), &[("labelSelector", &selector)])).await?;
    let uid = skiff_api::meta::uid(d);
    Ok(list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|refs| {
                refs.iter().any(|o| {
                    o.get("uid").and_then(Value::as_str) == Some(uid) && o.get("controller") == Some(&json!(true))
                })
            })
        })
        .collect())
}

fn revision(rs: &Value) -> i64 {
    rs.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn old_replica_sets(client: &Client, ns: &str, d: &Value) -> Result<Vec<(String, i64)>, CliError> {
    let sets = owned_replica_sets(client, ns, d).await?;
    let newest = sets.iter().map(revision).max().unwrap_or(0);
    Ok(sets
        .iter()
        .filter(|r| revision(r) != newest)
        .map(|r| (skiff_api::meta::name(r).to_string(), int(r, "/status/replicas")))
        .collect())
}

/// The label simulated nodes carry: their pods have no containers, hence no logs to ask for (and
/// their addresses lead nowhere).
const SIMULATED_NODE_LABEL: &str = "skiff.dev/simulated";

fn items(list: Option<Value>) -> Vec<Value> {
    list.and_then(|l| l.get("items").cloned()).and_then(|i| i.as_array().cloned()).unwrap_or_default()
}

/// Plain words on why a rollout is stuck: the new pods' problems ([`explain`]), then the last log
/// lines of a crashing container (not on simulated nodes, which run nothing).
pub async fn diagnose(client: &Client, ns: &str, d: &Value) -> Vec<String> {
    let sets = owned_replica_sets(client, ns, d).await.unwrap_or_default();
    let Some(newest) = sets.iter().max_by_key(|r| revision(r)) else { return Vec::new() };
    let hash = newest.pointer("/metadata/labels/pod-template-hash").and_then(Value::as_str).unwrap_or_default();
    let pods_path = with_query(
        &format!("/api/v1/namespaces/{ns}/pods"),
        &[("labelSelector", &format!("pod-template-hash={hash}"))],
    );
    let pods = items(client.get(&pods_path).await.ok());
    let events = items(
        client
            .get(&with_query(&format!("/api/v1/namespaces/{ns}/events"), &[("fieldSelector", "reason=Unhealthy")]))
            .await
            .ok(),
    );
    let mut lines = explain(d, &pods, &events, k8s_openapi::jiff::Timestamp::now());
    if let Some((pod, node, container)) = crashing_container(&pods) {
        let simulated =
            client.get(&format!("/api/v1/nodes/{node}")).await.ok().and_then(|n| {
                n.pointer(&format!("/metadata/labels/{}", SIMULATED_NODE_LABEL.replace('/', "~1"))).cloned()
            }) == Some(json!("true"));
        let path = with_query(
            &format!("/api/v1/namespaces/{ns}/pods/{pod}/log"),
            &[("container", container.as_str()), ("previous", "true"), ("tailLines", "5")],
        );
        if !simulated && let Ok(bytes) = client.call_raw(Method::GET, &path, Some("*/*"), None, None).await {
            let text = String::from_utf8_lossy(&bytes);
            if !text.trim().is_empty() {
                lines.push(format!("last log lines of {pod}/{container}:"));
                lines.extend(text.lines().map(|l| format!("  {l}")));
            }
        }
    }
    lines
}

/// The first container of `pods` in `CrashLoopBackOff`: (pod, node, container).
fn crashing_container(pods: &[Value]) -> Option<(String, String, String)> {
    pods.iter().find_map(|p| {
        let cs = p.pointer("/status/containerStatuses").and_then(Value::as_array)?;
        let c = cs
            .iter()
            .find(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str) == Some("CrashLoopBackOff"))?;
        Some((
            skiff_api::meta::name(p).to_string(),
            p.pointer("/spec/nodeName").and_then(Value::as_str)?.to_string(),
            c.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
        ))
    })
}

/// Why the Deployment `d` is not progressing, from its new pods, their `Unhealthy` events and its
/// `Progressing` condition at `now`: one plain line per finding. Pure.
pub fn explain(d: &Value, pods: &[Value], events: &[Value], now: k8s_openapi::jiff::Timestamp) -> Vec<String> {
    let mut lines = pod_problems(pods);
    let mut seen = std::collections::BTreeSet::new();
    for e in events.iter().filter(|e| e.get("reason").and_then(Value::as_str) == Some("Unhealthy")) {
        let pod = e.pointer("/involvedObject/name").and_then(Value::as_str).unwrap_or_default();
        let message = e.get("message").and_then(Value::as_str).unwrap_or_default();
        if pods.iter().any(|p| skiff_api::meta::name(p) == pod) && seen.insert(message.to_string()) {
            lines.push(format!("probe failing in pod {pod}: {message}"));
        }
    }
    lines.extend(deadline_line(d, now));
    lines
}

/// Where the Deployment stands against its progress deadline.
pub fn deadline_line(d: &Value, now: k8s_openapi::jiff::Timestamp) -> Option<String> {
    let deadline = d.pointer("/spec/progressDeadlineSeconds").and_then(Value::as_i64)?;
    let progressing = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Progressing"))?;
    if progressing.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded") {
        return Some(format!(
            "progress deadline exceeded: no progress for more than {deadline}s, the rollout is halted"
        ));
    }
    let since = progressing
        .get("lastUpdateTime")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())?;
    let idle = now.duration_since(since).as_secs().max(0);
    Some(format!(
        "no progress for {idle}s; the rollout fails after {deadline}s without progress (progressDeadlineSeconds)"
    ))
}

/// How a probe checks, as `kubectl describe` words it: `exec [cat /tmp/ready]`,
/// `http-get http://:8080/healthz`, `tcp-socket :5432`, `grpc <pod>:9000`.
pub fn probe_text(probe: &Value) -> String {
    if let Some(cmd) = probe.pointer("/exec/command").and_then(Value::as_array) {
        let words: Vec<&str> = cmd.iter().filter_map(Value::as_str).collect();
        return format!("exec [{}]", words.join(" "));
    }
    let port = |p: Option<&Value>| match p {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    };
    if let Some(h) = probe.get("httpGet") {
        let scheme = h.get("scheme").and_then(Value::as_str).unwrap_or("HTTP").to_ascii_lowercase();
        let host = h.get("host").and_then(Value::as_str).unwrap_or("");
        let path = h.get("path").and_then(Value::as_str).unwrap_or("");
        return format!("http-get {scheme}://{host}:{}{path}", port(h.get("port")));
    }
    if let Some(t) = probe.get("tcpSocket") {
        return format!("tcp-socket {}:{}", t.get("host").and_then(Value::as_str).unwrap_or(""), port(t.get("port")));
    }
    if let Some(g) = probe.get("grpc") {
        return format!("grpc <pod>:{}", port(g.get("port")));
    }
    "unknown".to_string()
}

/// One line per pod that is not making progress: unscheduled, waiting with a reason (crashing),
/// terminated, or running but not ready (with the readiness probe that has not passed).
pub fn pod_problems(pods: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for p in pods {
        let name = skiff_api::meta::name(p);
        if p.pointer("/spec/nodeName").is_none() {
            let why = p
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled")))
                .and_then(|c| c.get("message").and_then(Value::as_str))
                .unwrap_or("no node has picked it up yet (is a node agent running?)");
            out.push(format!("pod {name} is not scheduled: {why}"));
            continue;
        }
        let specs = p.pointer("/spec/containers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        for c in p.pointer("/status/containerStatuses").and_then(Value::as_array).into_iter().flatten() {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
            let restarts = int(c, "/restartCount");
            let exit = c.pointer("/lastState/terminated/exitCode").and_then(Value::as_i64);
            if let Some(reason) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
                let message = c.pointer("/state/waiting/message").and_then(Value::as_str).unwrap_or("");
                let mut line = format!("pod {name} container {cname}: {reason}");
                if let Some(code) = exit {
                    line.push_str(&format!(" (last exit code {code}, {restarts} restarts)"));
                }
                if !message.is_empty() {
                    line.push_str(&format!(": {message}"));
                }
                out.push(line);
            } else if let Some(t) = c.pointer("/state/terminated") {
                let reason = t.get("reason").and_then(Value::as_str).unwrap_or("Terminated");
                out.push(format!("pod {name} container {cname}: {reason} (exit code {})", int(t, "/exitCode")));
            } else if c.pointer("/state/running").is_some() && c.get("ready") != Some(&json!(true)) {
                let probe = specs
                    .iter()
                    .find(|s| s.get("name").and_then(Value::as_str) == Some(cname))
                    .and_then(|s| s.get("readinessProbe"));
                out.push(match probe {
                    Some(pr) => format!(
                        "pod {name} container {cname}: running but not ready: readiness probe {} has not passed",
                        probe_text(pr)
                    ),
                    None => format!("pod {name} container {cname}: running but not ready"),
                });
            }
        }
    }
    out
}

async fn history(a: HistoryArgs) -> Result<(), CliError> {
    let (client, ns, r, name, d) = deployment(&a.args, &a.common).await?;
    let mut sets = owned_replica_sets(&client, &ns, &d).await?;
    sets.sort_by_key(revision);
    if let Some(rev) = a.revision {
        let rs = sets
            .iter()
            .find(|s| revision(s) == rev)
            .ok_or_else(|| CliError::Failed("unable to find the specified revision".to_string()))?;
        let mut text = format!("{}/{name} with revision #{rev}\n", kind_prefix(r));
        let template = rs.pointer("/spec/template").cloned().unwrap_or_default();
        text.push_str(&crate::describe::pod_template_text(&template, 0));
        print(&tabwriter::format(&text, tabwriter::DESCRIBE));
        return Ok(());
    }
    let mut table = String::from("REVISION\tCHANGE-CAUSE\n");
    for rs in sets.iter().filter(|s| revision(s) > 0) {
        let cause =
            rs.pointer("/metadata/annotations/kubernetes.io~1change-cause").and_then(Value::as_str).unwrap_or("<none>");
        table.push_str(&format!("{}\t{cause}\n", revision(rs)));
    }
    print(&format!("{}/{name} \n{}\n", kind_prefix(r), tabwriter::format(&table, tabwriter::DESCRIBE)));
    Ok(())
}

/// Annotations `rollout undo` keeps from the Deployment rather than copying from the ReplicaSet.
const SKIP_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// The JSON patch `rollout undo` sends to go back to a ReplicaSet's template.
pub fn undo_patch(d: &Value, rs: &Value) -> Value {
    let mut template = rs.pointer("/spec/template").cloned().unwrap_or_default();
    if let Some(labels) = template.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove("pod-template-hash");
    }
    let mut annotations = serde_json::Map::new();
    for (k, v) in skiff_api::meta::annotations(d).into_iter().flatten() {
        if SKIP_ANNOTATIONS.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in skiff_api::meta::annotations(rs).into_iter().flatten() {
        if !SKIP_ANNOTATIONS.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ])
}

/// Whether two pod templates are equal once `pod-template-hash` is ignored.
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(labels) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
            labels.remove("pod-template-hash");
        }
        t
    };
    strip(a) == strip(b)
}

async fn undo(a: UndoArgs) -> Result<(), CliError> {
    let (client, ns, r, name, d) = deployment(&a.args, &a.common).await?;
    if d.pointer("/spec/paused") == Some(&json!(true)) {
        return Err(CliError::Failed(
            "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again"
                .to_string(),
        ));
    }
    let sets = owned_replica_sets(&client, &ns, &d).await?;
    let target = if a.to_revision == 0 {
        let mut revs: Vec<i64> = sets.iter().map(revision).collect();
        revs.sort_unstable();
        revs.dedup();
        if revs.len() < 2 {
            return Err(CliError::Failed("no rollout history found for deployment \"".to_string() + &name + "\""));
        }
        revs[revs.len() - 2]
    } else {
        a.to_revision
    };
    let rs = sets
        .iter()
        .find(|s| revision(s) == target)
        .ok_or_else(|| CliError::Failed(format!("unable to find specified revision {target} in history")))?;
    let current = d.pointer("/spec/template").cloned().unwrap_or_default();
    if equal_ignore_hash(&current, rs.pointer("/spec/template").unwrap_or(&Value::Null)) {
        print(&format!(
            "{}/{name} skipped rollback (current template already matches revision {target})\n",
            kind_prefix(r)
        ));
        return Ok(());
    }
    let patch = undo_patch(&d, rs);
    client
        .call(Method::PATCH, &object_path(r, &ns, &name), None, Some("application/json-patch+json"), Some(&patch))
        .await?;
    print(&format!("{}/{name} rolled back\n", kind_prefix(r)));
    Ok(())
}

async fn pause_resume(a: TargetArgs, pause: bool) -> Result<(), CliError> {
    let (client, ns, r, name, d) = deployment(&a.args, &a.common).await?;
    let paused = d.pointer("/spec/paused") == Some(&json!(true));
    if paused == pause {
        return Err(CliError::Failed(format!(
            "{} \"{name}\" is {}",
            qualified(r),
            if pause { "already paused" } else { "not paused" }
        )));
    }
    let path = with_query(&object_path(r, &ns, &name), &[("fieldManager", "kubectl-rollout")]);
    client
        .call(
            Method::PATCH,
            &path,
            None,
            Some("application/strategic-merge-patch+json"),
            Some(&json!({"spec": {"paused": pause}})),
        )
        .await?;
    print(&format!("{}/{name} {}\n", kind_prefix(r), if pause { "paused" } else { "resumed" }));
    Ok(())
}

async fn restart(a: TargetArgs) -> Result<(), CliError> {
    let (client, ns, r, name, d) = deployment(&a.args, &a.common).await?;
    if d.pointer("/spec/paused") == Some(&json!(true)) {
        return Err(CliError::Failed(format!(
            "{} \"{name}\" can't restart paused deployment (run rollout resume first)",
            qualified(r)
        )));
    }
    let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let patch =
        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
    let path = with_query(&object_path(r, &ns, &name), &[("fieldManager", "kubectl-rollout")]);
    client.call(Method::PATCH, &path, None, Some("application/strategic-merge-patch+json"), Some(&patch)).await?;
    print(&format!("{}/{name} restarted\n", kind_prefix(r)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(generation: i64, observed: i64, desired: i64, updated: i64, replicas: i64, available: i64) -> Value {
        json!({"metadata":{"name":"web","generation":generation},"spec":{"replicas":desired},
               "status":{"observedGeneration":observed,"updatedReplicas":updated,"replicas":replicas,"availableReplicas":available}})
    }

    #[test]
    fn status_messages_match_kubectl() {
        let cases = [
            (
                deploy(2, 1, 3, 3, 3, 3),
                Status::Waiting("Waiting for deployment spec update to be observed...\n".into()),
            ),
            (
                deploy(1, 1, 3, 1, 3, 1),
                Status::Waiting(
                    "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...\n"
                        .into(),
                ),
            ),
            (
                deploy(1, 1, 3, 3, 4, 3),
                Status::Waiting(
                    "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...\n"
                        .into(),
                ),
            ),
            (
                deploy(1, 1, 3, 3, 3, 2),
                Status::Waiting(
                    "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...\n"
                        .into(),
                ),
            ),
            (deploy(1, 1, 3, 3, 3, 3), Status::Done("deployment \"web\" successfully rolled out\n".into())),
        ];
        for (d, want) in cases {
            assert_eq!(deployment_status(&d), want, "{d}");
        }
        let mut stuck = deploy(1, 1, 3, 1, 3, 1);
        stuck["status"]["conditions"] =
            json!([{"type":"Progressing","status":"False","reason":"ProgressDeadlineExceeded"}]);
        assert_eq!(
            deployment_status(&stuck),
            Status::Failed("deployment \"web\" exceeded its progress deadline".into())
        );
    }

    #[test]
    fn undo_patch_restores_template_and_keeps_deployment_annotations() {
        let d = json!({"metadata":{"annotations":{"deployment.kubernetes.io/revision":"3","team":"a"}}});
        let rs = json!({"metadata":{"annotations":{"deployment.kubernetes.io/revision":"1","note":"old"}},
                        "spec":{"template":{"metadata":{"labels":{"app":"web","pod-template-hash":"abc"}},"spec":{"containers":[{"name":"n","image":"nginx:1"}]}}}});
        let patch = undo_patch(&d, &rs);
        assert_eq!(patch[0]["value"]["metadata"]["labels"], json!({"app":"web"}));
        assert_eq!(patch[1]["value"], json!({"deployment.kubernetes.io/revision":"3","note":"old"}));
        assert!(equal_ignore_hash(&rs["spec"]["template"], &patch[0]["value"]));
    }

    #[test]
    fn explains_stuck_pods() {
        let pods = vec![
            json!({"metadata":{"name":"p1"},"spec":{},"status":{}}),
            json!({"metadata":{"name":"p2"},"spec":{"nodeName":"n"},"status":{"containerStatuses":[
                {"name":"app","restartCount":4,"state":{"waiting":{"reason":"CrashLoopBackOff","message":"back-off 40s restarting failed container"}},
                 "lastState":{"terminated":{"exitCode":1}}}]}}),
            json!({"metadata":{"name":"p3"},"spec":{"nodeName":"n","containers":[{"name":"app","readinessProbe":{"exec":{"command":["cat","/tmp/ready"]}}}]},
                   "status":{"containerStatuses":[{"name":"app","ready":false,"restartCount":0,"state":{"running":{"startedAt":"2026-01-01T00:00:00Z"}}}]}}),
            json!({"metadata":{"name":"p4"},"spec":{"nodeName":"n","containers":[{"name":"app"}]},
                   "status":{"containerStatuses":[{"name":"app","ready":false,"state":{"running":{}}}]}}),
            json!({"metadata":{"name":"p5"},"spec":{"nodeName":"n","containers":[{"name":"app"}]},
                   "status":{"containerStatuses":[{"name":"app","ready":false,"state":{"terminated":{"reason":"Error","exitCode":2}}}]}}),
            json!({"metadata":{"name":"ok"},"spec":{"nodeName":"n","containers":[{"name":"app"}]},
                   "status":{"containerStatuses":[{"name":"app","ready":true,"state":{"running":{}}}]}}),
        ];
        assert_eq!(pod_problems(&pods), vec![
            "pod p1 is not scheduled: no node has picked it up yet (is a node agent running?)".to_string(),
            "pod p2 container app: CrashLoopBackOff (last exit code 1, 4 restarts): back-off 40s restarting failed container".to_string(),
            "pod p3 container app: running but not ready: readiness probe exec [cat /tmp/ready] has not passed".to_string(),
            "pod p4 container app: running but not ready".to_string(),
            "pod p5 container app: Error (exit code 2)".to_string(),
        ]);
        assert_eq!(crashing_container(&pods), Some(("p2".into(), "n".into(), "app".into())));
    }

    #[test]
    fn describes_probes_as_kubectl_describe_does() {
        let cases = [
            (json!({"exec":{"command":["wget","-q","http://127.0.0.1/"]}}), "exec [wget -q http://127.0.0.1/]"),
            (json!({"httpGet":{"path":"/healthz","port":8080}}), "http-get http://:8080/healthz"),
            (json!({"httpGet":{"path":"/","port":"http","scheme":"HTTPS","host":"h"}}), "http-get https://h:http/"),
            (json!({"tcpSocket":{"port":5432}}), "tcp-socket :5432"),
            (json!({"grpc":{"port":9000}}), "grpc <pod>:9000"),
            (json!({}), "unknown"),
        ];
        for (probe, want) in cases {
            assert_eq!(probe_text(&probe), want, "{probe}");
        }
    }

    #[test]
    fn explains_probe_events_and_the_progress_deadline() {
        let now: k8s_openapi::jiff::Timestamp = "2026-01-01T00:01:40Z".parse().expect("time");
        let progressing = |reason: &str| {
            json!({"spec":{"progressDeadlineSeconds":600},"status":{"conditions":[
                {"type":"Progressing","status":"True","reason":reason,"lastUpdateTime":"2026-01-01T00:00:00Z"}]}})
        };
        assert_eq!(
            deadline_line(&progressing("ReplicaSetUpdated"), now).as_deref(),
            Some("no progress for 100s; the rollout fails after 600s without progress (progressDeadlineSeconds)")
        );
        assert_eq!(
            deadline_line(&progressing("ProgressDeadlineExceeded"), now).as_deref(),
            Some("progress deadline exceeded: no progress for more than 600s, the rollout is halted")
        );
        assert_eq!(deadline_line(&json!({"spec":{"progressDeadlineSeconds":600}}), now), None);
        let pods = vec![json!({"metadata":{"name":"web-1"},"spec":{"nodeName":"n"},"status":{}})];
        let unhealthy =
            |pod: &str, message: &str| json!({"reason":"Unhealthy","involvedObject":{"name":pod},"message":message});
        let events = vec![
            unhealthy("web-1", "Readiness probe failed: connection refused"),
            unhealthy("web-1", "Readiness probe failed: connection refused"),
            unhealthy("other", "Liveness probe failed: timeout"),
            json!({"reason":"Pulled","involvedObject":{"name":"web-1"},"message":"pulled"}),
        ];
        assert_eq!(
            explain(&progressing("ProgressDeadlineExceeded"), &pods, &events, now),
            vec![
                "probe failing in pod web-1: Readiness probe failed: connection refused".to_string(),
                "progress deadline exceeded: no progress for more than 600s, the rollout is halted".to_string(),
            ]
        );
    }
}
