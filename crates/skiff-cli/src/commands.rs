//! The verbs' arguments (clap) and their executors. Each executor makes the requests kubectl makes
//! (reference G.4) and prints kubectl's messages.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use http::Method;
use serde_json::{Value, json};
use skiff_api::ResourceInfo;
use skiff_api::resource::{RESOURCES, lookup_kind};

use crate::client::{Client, TABLE_ACCEPT, kubeconfig_path, with_query};
use crate::error::CliError;
use crate::output::{Output, TableOptions, layout, print_objects, table_lines, with_type};
use crate::resources::{Target, collection_path, kind_prefix, object_path, parse_args, qualified, resolve_type};
use crate::{generate, rollout, yaml};

/// Flags every verb takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then /var/lib/skiff/kubeconfig.yaml).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace scope for this request.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

impl Common {
    /// These flags, completed by `before`: the same flags given before the verb
    /// (`skiff -n kube-system get pods`). kubectl's `--kubeconfig` and `-n` are global flags whose
    /// last occurrence wins, so a flag given after the verb overrides one given before it.
    pub fn or(self, before: &Common) -> Common {
        Common {
            kubeconfig: self.kubeconfig.or_else(|| before.kubeconfig.clone()),
            namespace: self.namespace.or_else(|| before.namespace.clone()),
        }
    }

    /// Whether no flag is set.
    pub fn is_empty(&self) -> bool {
        self.kubeconfig.is_none() && self.namespace.is_none()
    }
}

/// The kubectl-like verbs.
#[derive(clap::Subcommand, Debug)]
pub enum Verb {
    /// Create a resource (deployment, namespace).
    Create(CreateArgs),
    /// Run a particular image in a naked Pod.
    Run(RunArgs),
    /// Display one or many resources.
    Get(GetArgs),
    /// Show details of a specific resource or group of resources, with its events.
    Describe(DescribeArgs),
    /// Apply a configuration to a resource by file name or stdin (server-side apply).
    Apply(ApplyArgs),
    /// Delete resources by names, files or label selectors.
    Delete(DeleteArgs),
    /// Set a new size for a deployment or replica set.
    Scale(ScaleArgs),
    /// Set specific features on objects (`set image`).
    Set(SetArgs),
    /// Manage the rollout of a deployment.
    Rollout(RolloutArgs),
    /// Print the logs for a container in a pod.
    Logs(LogsArgs),
    /// Execute a command in a container.
    Exec(ExecArgs),
    /// Edit a resource with $EDITOR.
    Edit(EditArgs),
    /// Wait for a condition on one or many resources.
    Wait(WaitArgs),
    /// Print the client and server version information.
    Version(VersionArgs),
    /// Print the supported API resources on the server.
    ApiResources(ApiResourcesArgs),
}

impl Verb {
    /// The flags every verb takes, of whichever verb (and subcommand) this is.
    pub fn common_mut(&mut self) -> &mut Common {
        match self {
            Verb::Create(a) => match &mut a.what {
                CreateWhat::Deployment(d) => &mut d.common,
                CreateWhat::Namespace(n) => &mut n.common,
            },
            Verb::Run(a) => &mut a.common,
            Verb::Get(a) => &mut a.common,
            Verb::Describe(a) => &mut a.common,
            Verb::Apply(a) => &mut a.common,
            Verb::Delete(a) => &mut a.common,
            Verb::Scale(a) => &mut a.common,
            Verb::Set(a) => match &mut a.what {
                SetWhat::Image(i) => &mut i.common,
            },
            Verb::Rollout(a) => a.what.common_mut(),
            Verb::Logs(a) => &mut a.common,
            Verb::Exec(a) => &mut a.common,
            Verb::Edit(a) => &mut a.common,
            Verb::Wait(a) => &mut a.common,
            Verb::Version(a) => &mut a.common,
            Verb::ApiResources(a) => &mut a.common,
        }
    }

    /// This verb with the global flags given before it (`skiff -n x get pods`), as kubectl accepts
    /// them anywhere on the command line; the verb's own occurrences win.
    pub fn with_globals(mut self, globals: &Common) -> Verb {
        let common = self.common_mut();
        *common = std::mem::take(common).or(globals);
        self
    }
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    #[command(subcommand)]
    pub what: CreateWhat,
}

#[derive(clap::Subcommand, Debug)]
pub enum CreateWhat {
    /// Create a deployment with the specified name.
    #[command(alias = "deploy")]
    Deployment(CreateDeploymentArgs),
    /// Create a namespace with the specified name.
    #[command(alias = "ns")]
    Namespace(CreateNamespaceArgs),
}

/// `--dry-run` and `-o` for verbs that write.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WriteFlags {
    /// none, client (print the object, send nothing) or server (validate without storing).
    #[arg(long, default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: String,
    /// Output format: yaml, json, name, jsonpath=...
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct CreateDeploymentArgs {
    pub name: String,
    /// Image names to run (one container each).
    #[arg(long, required = true)]
    pub image: Vec<String>,
    #[arg(short = 'r', long, default_value_t = 1)]
    pub replicas: i32,
    /// The containerPort this deployment exposes.
    #[arg(long)]
    pub port: Option<i32>,
    #[command(flatten)]
    pub write: WriteFlags,
    #[command(flatten)]
    pub common: Common,
    /// The command to run in the container (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct CreateNamespaceArgs {
    pub name: String,
    #[command(flatten)]
    pub write: WriteFlags,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    pub name: String,
    #[arg(long)]
    pub image: String,
    #[arg(long)]
    pub port: Option<i32>,
    /// Always, OnFailure or Never.
    #[arg(long, default_value = "Always")]
    pub restart: String,
    /// Labels `k=v,k2=v2` (replace the default `run=NAME`).
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// Environment variables `K=V` (repeatable).
    #[arg(long)]
    pub env: Vec<String>,
    #[arg(long)]
    pub image_pull_policy: Option<String>,
    /// Use the arguments after `--` as the command instead of the image's arguments.
    #[arg(long)]
    pub command: bool,
    #[command(flatten)]
    pub write: WriteFlags,
    #[command(flatten)]
    pub common: Common,
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Selection flags of `get`, `describe`, `delete`, `wait`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Selection {
    /// Across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector (`app=web`, `tier in (a,b)`, `!canary`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (`metadata.name=web`).
    #[arg(long)]
    pub field_selector: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// TYPE[,TYPE...] [NAME...] or TYPE/NAME...
    pub args: Vec<String>,
    #[command(flatten)]
    pub selection: Selection,
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Watch for changes after listing.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Watch without listing first.
    #[arg(long)]
    pub watch_only: bool,
    #[arg(long)]
    pub no_headers: bool,
    #[arg(long)]
    pub show_labels: bool,
    #[arg(long)]
    pub ignore_not_found: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    pub args: Vec<String>,
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// Files, directories or `-` (stdin), multi-document YAML or JSON.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Recurse into directories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Print kubectl's server-side message (`serverside-applied`) and do not force conflicts.
    #[arg(long)]
    pub server_side: bool,
    #[arg(long)]
    pub force_conflicts: bool,
    #[arg(long, default_value = "kubectl-client-side-apply")]
    pub field_manager: String,
    #[command(flatten)]
    pub write: WriteFlags,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    pub args: Vec<String>,
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    #[command(flatten)]
    pub selection: Selection,
    /// Delete all objects of the type(s).
    #[arg(long)]
    pub all: bool,
    /// background (default), foreground, orphan (true = background, false = orphan).
    #[arg(long, default_value = "background", num_args = 0..=1, default_missing_value = "background")]
    pub cascade: String,
    #[arg(long)]
    pub grace_period: Option<i64>,
    #[arg(long)]
    pub now: bool,
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Wait for the objects to be gone.
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true")]
    pub wait: String,
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    #[command(flatten)]
    pub write: WriteFlags,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    pub args: Vec<String>,
    #[arg(long)]
    pub replicas: i32,
    /// Precondition: only scale when the current size is this.
    #[arg(long)]
    pub current_replicas: Option<i32>,
    #[command(flatten)]
    pub write: WriteFlags,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    #[command(subcommand)]
    pub what: SetWhat,
}

#[derive(clap::Subcommand, Debug)]
pub enum SetWhat {
    /// Update the image of containers: `set image deploy/web nginx=nginx:1.27` (`*=IMG` for all).
    Image(SetImageArgs),
}

#[derive(clap::Args, Debug)]
pub struct SetImageArgs {
    /// TYPE/NAME (or TYPE NAME) followed by CONTAINER=IMAGE pairs.
    pub args: Vec<String>,
    #[command(flatten)]
    pub write: WriteFlags,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub what: rollout::RolloutWhat,
}

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// POD, TYPE/NAME (a pod of it is picked).
    pub target: String,
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    #[arg(short = 'f', long)]
    pub follow: bool,
    #[arg(short = 'p', long)]
    pub previous: bool,
    #[arg(long)]
    pub tail: Option<i64>,
    #[arg(long)]
    pub timestamps: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    pub pod: String,
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    #[arg(short = 'i', long)]
    pub stdin: bool,
    #[arg(short = 't', long)]
    pub tty: bool,
    #[command(flatten)]
    pub common: Common,
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct EditArgs {
    pub args: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    pub args: Vec<String>,
    /// `condition=Available[=true]`, `delete`, or `jsonpath={.status.phase}=Running`.
    #[arg(long = "for", required = true)]
    pub condition: String,
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    #[command(flatten)]
    pub selection: Selection,
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct VersionArgs {
    #[arg(long)]
    pub client: bool,
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct ApiResourcesArgs {
    #[arg(long)]
    pub namespaced: Option<bool>,
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    #[arg(long)]
    pub no_headers: bool,
    #[command(flatten)]
    pub common: Common,
}

pub async fn dispatch(verb: Verb) -> Result<(), CliError> {
    match verb {
        Verb::Create(a) => match a.what {
            CreateWhat::Deployment(d) => create_deployment(d).await,
            CreateWhat::Namespace(n) => create_namespace(n).await,
        },
        Verb::Run(a) => run_pod(a).await,
        Verb::Get(a) => get(a).await,
        Verb::Describe(a) => crate::describe::describe(a).await,
        Verb::Apply(a) => apply(a).await,
        Verb::Delete(a) => delete(a).await,
        Verb::Scale(a) => scale(a).await,
        Verb::Set(a) => match a.what {
            SetWhat::Image(i) => set_image(i).await,
        },
        Verb::Rollout(a) => rollout::run(a.what).await,
        Verb::Logs(a) => logs(a).await,
        Verb::Exec(a) => exec(a).await,
        Verb::Edit(a) => edit(a).await,
        Verb::Wait(a) => wait(a).await,
        Verb::Version(a) => version(a).await,
        Verb::ApiResources(a) => api_resources(a),
    }
}

/// Connects with the kubeconfig the flags and environment name.
pub async fn connect(common: &Common) -> Result<Client, CliError> {
    let env = std::env::var("KUBECONFIG").ok();
    Client::connect(&kubeconfig_path(common.kubeconfig.as_deref(), env.as_deref())).await
}

/// `-n`, else the kubeconfig context's namespace.
pub fn namespace(common: &Common, client: &Client) -> String {
    common.namespace.clone().unwrap_or_else(|| client.namespace.clone())
}

fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// The dry-run mode: `None`, `Some(false)` for client, `Some(true)` for server.
fn dry_run(flag: &str) -> Result<Option<bool>, CliError> {
    match flag {
        "none" | "false" => Ok(None),
        "client" | "true" => Ok(Some(false)),
        "server" => Ok(Some(true)),
        other => Err(CliError::Usage(format!(
            "Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
        ))),
    }
}

fn dry_run_suffix(mode: Option<bool>) -> &'static str {
    match mode {
        None => "",
        Some(false) => " (dry run)",
        Some(true) => " (server dry run)",
    }
}

/// Prints the result of a write: the object in `-o` format, or `kind.group/name VERB[ (dry run)]`.
fn report(obj: &Value, verb: &str, write: &WriteFlags, mode: Option<bool>) -> Result<(), CliError> {
    let output = Output::parse(write.output.as_deref())?;
    if output.is_table() || output == Output::Name && write.output.is_none() {
        out(&format!("{} {verb}{}\n", crate::output::object_name(obj), dry_run_suffix(mode)));
        return Ok(());
    }
    out(&print_objects(std::slice::from_ref(obj), true, &output)?);
    Ok(())
}

/// POSTs a generated object (or prints it for client dry-run).
async fn create_object(
    obj: Value,
    r: &ResourceInfo,
    common: &Common,
    write: &WriteFlags,
    field_manager: &str,
) -> Result<(), CliError> {
    let mode = dry_run(&write.dry_run)?;
    if mode == Some(false) {
        return report(&obj, "created", write, mode);
    }
    let client = connect(common).await?;
    let ns = namespace(common, &client);
    let mut params = vec![("fieldManager", field_manager), ("fieldValidation", "Strict")];
    if mode == Some(true) {
        params.push(("dryRun", "All"));
    }
    let path = with_query(&collection_path(r, Some(&ns)), &params);
    let created = client.call(Method::POST, &path, None, None, Some(&obj)).await.map_err(|e| match &e {
        // kubectl's create subcommands wrap the server's message.
        CliError::Api { code: 409, .. } if field_manager == "kubectl-create" => {
            CliError::Failed(format!("failed to create {}: {}", r.singular, e.message()))
        }
        _ => e,
    })?;
    report(&with_type(created, r), "created", write, mode)
}

/// A NotFound for the object `name` itself gets a `Did you mean "web"?` line naming the nearest
/// existing object of the same type in the namespace; other errors pass through.
pub async fn with_name_hint(client: &Client, r: &ResourceInfo, ns: &str, name: &str, e: CliError) -> CliError {
    let CliError::Api { code: 404, mut status } = e else { return e };
    let message = status.get("message").and_then(Value::as_str).unwrap_or_default().to_string();
    if !message.ends_with(&format!("\"{name}\" not found")) {
        return CliError::Api { code: 404, status };
    }
    let list = client.get(&with_query(&collection_path(r, Some(ns)), &[("limit", "500")])).await.unwrap_or_default();
    let items = list.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    if let Some(best) = crate::resources::nearest(name, items.iter().map(skiff_api::meta::name)) {
        status["message"] = json!(format!("{message}\nDid you mean \"{best}\"?"));
    }
    CliError::Api { code: 404, status }
}

/// GETs one object; a NotFound carries the nearest name as a hint.
pub async fn get_object(client: &Client, r: &ResourceInfo, ns: &str, name: &str) -> Result<Value, CliError> {
    match client.get(&object_path(r, ns, name)).await {
        Ok(v) => Ok(v),
        Err(e) => Err(with_name_hint(client, r, ns, name, e).await),
    }
}

fn resource(name: &str) -> Result<&'static ResourceInfo, CliError> {
    resolve_type(name)?.first().copied().ok_or_else(|| CliError::Failed(format!("unknown resource {name}")))
}

async fn create_deployment(a: CreateDeploymentArgs) -> Result<(), CliError> {
    if !a.command.is_empty() && a.image.len() > 1 {
        return Err(CliError::Usage("cannot specify multiple --image options and command".into()));
    }
    let spec = generate::DeploymentSpec {
        name: a.name.clone(),
        images: a.image.clone(),
        replicas: a.replicas,
        port: a.port,
        command: a.command.clone(),
    };
    let ns = a.common.namespace.as_deref();
    let obj = generate::deployment(&spec, ns);
    create_object(obj, resource("deployments")?, &a.common, &a.write, "kubectl-create").await
}

async fn create_namespace(a: CreateNamespaceArgs) -> Result<(), CliError> {
    let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": a.name}, "spec": {}, "status": {}});
    create_object(obj, resource("namespaces")?, &a.common, &a.write, "kubectl-create").await
}

async fn run_pod(a: RunArgs) -> Result<(), CliError> {
    let labels = match &a.labels {
        Some(l) => generate::key_values(l).map_err(CliError::Usage)?,
        None => Vec::new(),
    };
    let env = a
        .env
        .iter()
        .map(|e| {
            generate::key_values(e)
                .map_err(CliError::Usage)
                .and_then(|mut kv| kv.pop().ok_or_else(|| CliError::Usage(format!("invalid env: {e}"))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !["Always", "OnFailure", "Never"].contains(&a.restart.as_str()) {
        return Err(CliError::Usage(format!("invalid restart policy: {}", a.restart)));
    }
    let spec = generate::PodSpec {
        name: a.name.clone(),
        image: a.image.clone(),
        port: a.port,
        restart: a.restart.clone(),
        labels,
        env,
        use_command: a.command,
        args: a.args.clone(),
        image_pull_policy: a.image_pull_policy.clone(),
    };
    let obj = generate::pod(&spec, a.common.namespace.as_deref());
    create_object(obj, resource("pods")?, &a.common, &a.write, "kubectl-run").await
}

// ------------------------------------------------------------------------------------------ get

fn list_params(selection: &Selection) -> Vec<(&str, &str)> {
    let mut params = Vec::new();
    if let Some(l) = &selection.selector {
        params.push(("labelSelector", l.as_str()));
    }
    if let Some(f) = &selection.field_selector {
        params.push(("fieldSelector", f.as_str()));
    }
    params
}

/// "No resources found in ns namespace." or "No resources found".
fn no_resources(targets: &[Target], ns: &str, all_namespaces: bool) -> String {
    if all_namespaces || targets.iter().all(|t| !t.resource.namespaced()) {
        "No resources found".to_string()
    } else {
        format!("No resources found in {ns} namespace.")
    }
}

async fn get(a: GetArgs) -> Result<(), CliError> {
    let output = Output::parse(a.output.as_deref())?;
    let targets = parse_args(&a.args)?;
    let client = connect(&a.common).await?;
    let ns = namespace(&a.common, &client);
    let scope = (!a.selection.all_namespaces).then_some(ns.as_str());
    if a.watch || a.watch_only {
        return watch(&client, &a, &targets, scope, &output).await;
    }
    let several = targets.len() > 1;
    let single = targets.len() == 1 && targets[0].names.len() == 1;
    let mut blocks: Vec<String> = Vec::new();
    let mut objects: Vec<Value> = Vec::new();
    let mut rows = 0usize;
    let mut failed = false;
    for t in &targets {
        let r = t.resource;
        let mut opts = TableOptions::for_resource(r, several, a.selection.all_namespaces, output == Output::Wide);
        opts.no_headers = a.no_headers;
        opts.show_labels = a.show_labels;
        let mut lines = String::new();
        let mut header_done = false;
        let paths: Vec<String> = if t.names.is_empty() {
            let mut params = list_params(&a.selection);
            params.push(("limit", "500"));
            vec![with_query(&collection_path(r, scope), &params)]
        } else {
            t.names.iter().map(|n| object_path(r, &ns, n)).collect()
        };
        for (i, path) in paths.iter().enumerate() {
            let accept = output.is_table().then_some(TABLE_ACCEPT);
            let result = match client.call(Method::GET, path, accept, None, None).await {
                Ok(v) => v,
                Err(e) if e.is_not_found() && a.ignore_not_found => continue,
                Err(e) if e.code().is_some() => {
                    let e = match t.names.get(i) {
                        Some(name) => with_name_hint(&client, r, &ns, name, e).await,
                        None => e,
                    };
                    eprintln!("{e}");
                    failed = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if output.is_table() {
                let mut o = opts.clone();
                o.no_headers = opts.no_headers || header_done;
                let (text, n) = table_lines(&result, &o);
                if n > 0 {
                    lines.push_str(&text);
                    header_done = true;
                    rows += n;
                }
            } else if let Some(items) = result.get("items").and_then(Value::as_array) {
                objects.extend(items.iter().cloned().map(|i| with_type(i, r)));
            } else {
                objects.push(with_type(result, r));
            }
        }
        if !lines.is_empty() {
            blocks.push(layout(&lines));
        }
    }
    if output.is_table() {
        out(&blocks.join("\n"));
        if rows == 0 && !failed && !a.ignore_not_found {
            eprintln!("{}", no_resources(&targets, &ns, a.selection.all_namespaces));
        }
    } else {
        out(&print_objects(&objects, single, &output)?);
    }
    if failed { Err(CliError::Exit(1)) } else { Ok(()) }
}

/// Splits a byte stream into newline-terminated JSON values.
pub fn take_lines(buffer: &mut Vec<u8>) -> Vec<Value> {
    let mut values = Vec::new();
    while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buffer.drain(..=pos).collect();
        if let Ok(v) = serde_json::from_slice::<Value>(&line) {
            values.push(v);
        }
    }
    values
}

async fn watch(
    client: &Client,
    a: &GetArgs,
    targets: &[Target],
    scope: Option<&str>,
    output: &Output,
) -> Result<(), CliError> {
    let [t] = targets else {
        return Err(CliError::Usage("you may only specify a single resource type".into()));
    };
    let r = t.resource;
    let mut params = list_params(&a.selection);
    let name_selector = t.names.first().map(|n| format!("metadata.name={n}"));
    if let Some(f) = &name_selector {
        params.push(("fieldSelector", f.as_str()));
    }
    let accept = output.is_table().then_some(TABLE_ACCEPT);
    let list = client.call(Method::GET, &with_query(&collection_path(r, scope), &params), accept, None, None).await?;
    let rv = list.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("").to_string();
    let opts = TableOptions::for_resource(r, false, a.selection.all_namespaces, *output == Output::Wide);
    let mut table_state = WatchTable::default();
    if !a.watch_only {
        if output.is_table() {
            // An empty list prints nothing, not even "No resources found" (kubectl's watch).
            let (text, _) = table_state.lines(&list, &opts);
            out(&text);
        } else {
            let items: Vec<Value> = list.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            for i in items {
                out(&print_objects(&[with_type(i, r)], true, output)?);
            }
        }
    } else if output.is_table() {
        table_state.columns = list.get("columnDefinitions").cloned();
    }
    params.push(("watch", "true"));
    params.push(("resourceVersion", rv.as_str()));
    let mut stream = Box::pin(client.stream(&with_query(&collection_path(r, scope), &params), accept).await?);
    let mut buffer = Vec::new();
    while let Some(chunk) = stream.next().await {
        buffer.extend(chunk?);
        for event in take_lines(&mut buffer) {
            let Some(obj) = event.get("object") else { continue };
            if event.get("type").and_then(Value::as_str) == Some("ERROR") {
                return Err(CliError::Api { code: 500, status: obj.clone() });
            }
            if output.is_table() {
                let (text, _) = table_state.lines(obj, &opts);
                out(&text);
            } else {
                out(&print_objects(&[with_type(obj.clone(), r)], true, output)?);
            }
        }
    }
    Ok(())
}

/// What `get -w` keeps between the Tables it prints: the column definitions (the server sends
/// them with the list and the first event only, as kube-apiserver does), whether the header was
/// printed, and the column widths seen so far (kubectl's tab writer remembers them).
#[derive(Debug, Default)]
pub struct WatchTable {
    pub columns: Option<Value>,
    header_printed: bool,
    widths: Option<Vec<usize>>,
}

impl WatchTable {
    /// The laid-out lines of one Table (the list, or one event's), and how many rows it had.
    pub fn lines(&mut self, table: &Value, opts: &TableOptions) -> (String, usize) {
        let mut table = table.clone();
        match table.get("columnDefinitions").and_then(Value::as_array).filter(|c| !c.is_empty()) {
            Some(columns) => self.columns = Some(Value::Array(columns.clone())),
            None => {
                if let (Some(columns), Some(map)) = (&self.columns, table.as_object_mut()) {
                    map.insert("columnDefinitions".into(), columns.clone());
                }
            }
        }
        let mut o = opts.clone();
        o.no_headers = opts.no_headers || self.header_printed;
        let (text, n) = table_lines(&table, &o);
        if n == 0 {
            return (String::new(), 0);
        }
        self.header_printed = true;
        self.widths.get_or_insert_with(Vec::new);
        (crate::tabwriter::format_remembering(&text, crate::tabwriter::GET, &mut self.widths), n)
    }
}

// ---------------------------------------------------------------------------------------- apply

/// Reads manifests from files, directories (`.yaml`, `.yml`, `.json`) or stdin (`-`).
pub fn read_manifests(sources: &[String], recursive: bool) -> Result<Vec<(String, Value)>, CliError> {
    let mut out = Vec::new();
    for source in sources {
        if source == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
            out.extend(parse_manifests(&text, "STDIN")?);
            continue;
        }
        let path = std::path::Path::new(source);
        if path.is_dir() {
            let mut files = Vec::new();
            collect_files(path, recursive, &mut files)?;
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f)?;
                out.extend(parse_manifests(&text, &f.display().to_string())?);
            }
        } else {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Failed(format!("the path \"{source}\" does not exist ({e})")))?;
            out.extend(parse_manifests(&text, source)?);
        }
    }
    Ok(out)
}

fn collect_files(dir: &std::path::Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<(), CliError> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if recursive {
                collect_files(&path, recursive, out)?;
            }
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| ["yaml", "yml", "json"].contains(&e)) {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses multi-document YAML (or JSON), expanding `List`s and skipping empty documents.
pub fn parse_manifests(text: &str, source: &str) -> Result<Vec<(String, Value)>, CliError> {
    // One JSON object, else YAML documents (JSON objects separated by `---` are YAML too).
    let json = text.trim_start().starts_with('{').then(|| serde_json::from_str::<Value>(text).ok()).flatten();
    let docs: Vec<Value> = match json {
        Some(v) => vec![v],
        None => serde_saphyr::from_multiple::<Value>(text)
            .map_err(|e| CliError::Failed(format!("error parsing {source}: {e}")))?,
    };
    let mut out = Vec::new();
    for doc in docs {
        if doc.is_null() || doc.as_object().is_some_and(|m| m.is_empty()) {
            continue;
        }
        if doc.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List"))
            && let Some(items) = doc.get("items").and_then(Value::as_array)
        {
            out.extend(items.iter().map(|i| (source.to_string(), i.clone())));
            continue;
        }
        out.push((source.to_string(), doc));
    }
    Ok(out)
}

/// The resource and namespace of a manifest, checking `-n` against the object's namespace.
fn manifest_target(
    obj: &Value,
    source: &str,
    flag_ns: Option<&str>,
    default_ns: &str,
) -> Result<(&'static ResourceInfo, String), CliError> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = skiff_api::meta::name(obj);
    let r = lookup_kind(api_version, kind).ok_or_else(|| {
        CliError::Failed(format!(
            "resource mapping not found for name: \"{name}\" namespace: \"{}\" from \"{source}\": no matches for kind \"{kind}\" in version \"{api_version}\"\nensure CRDs are installed first",
            skiff_api::meta::namespace(obj)
        ))
    })?;
    let obj_ns = skiff_api::meta::namespace(obj);
    if let Some(flag) = flag_ns
        && !obj_ns.is_empty()
        && obj_ns != flag
    {
        return Err(CliError::Failed(format!(
            "the namespace from the provided object \"{obj_ns}\" does not match the namespace \"{flag}\". You must pass '--namespace={obj_ns}' to perform this operation."
        )));
    }
    let ns = if !obj_ns.is_empty() { obj_ns.to_string() } else { flag_ns.unwrap_or(default_ns).to_string() };
    Ok((r, ns))
}

async fn apply(a: ApplyArgs) -> Result<(), CliError> {
    let manifests = read_manifests(&a.files, a.recursive)?;
    let mode = dry_run(&a.write.dry_run)?;
    let output = Output::parse(a.write.output.as_deref())?;
    let client = connect(&a.common).await?;
    let default_ns = namespace(&a.common, &client);
    if manifests.is_empty() {
        return Err(CliError::Failed("no objects passed to apply".into()));
    }
    let mut failed = false;
    for (source, obj) in manifests {
        let (r, ns) = manifest_target(&obj, &source, a.common.namespace.as_deref(), &default_ns)?;
        let name = skiff_api::meta::name(&obj).to_string();
        if name.is_empty() {
            eprintln!(
                "error: error when retrieving current configuration of object from {source}: resource name may not be empty"
            );
            failed = true;
            continue;
        }
        let path = object_path(r, &ns, &name);
        if mode == Some(false) {
            report(&obj, if a.server_side { "serverside-applied" } else { "created" }, &a.write, mode)?;
            continue;
        }
        let before = match client.get(&path).await {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let force = if a.server_side { a.force_conflicts } else { true };
        let manager = if a.server_side && a.field_manager == "kubectl-client-side-apply" {
            "kubectl"
        } else {
            a.field_manager.as_str()
        };
        let mut params = vec![("fieldManager", manager), ("fieldValidation", "Strict")];
        if force {
            params.push(("force", "true"));
        }
        if mode == Some(true) {
            params.push(("dryRun", "All"));
        }
        let mut body = obj.clone();
        if r.namespaced() {
            skiff_api::meta::set_meta(&mut body, "namespace", json!(ns));
        }
        let result = client
            .call(Method::PATCH, &with_query(&path, &params), None, Some("application/apply-patch+yaml"), Some(&body))
            .await;
        let applied = match result {
            Ok(v) => with_type(v, r),
            Err(e) if e.code().is_some() => {
                eprintln!("{}", apply_error(&e, &source, r, &name, &ns));
                failed = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        let verb = if a.server_side {
            "serverside-applied"
        } else {
            match &before {
                None => "created",
                Some(b) if skiff_api::meta::resource_version(b) == skiff_api::meta::resource_version(&applied) => {
                    "unchanged"
                }
                Some(_) => "configured",
            }
        };
        if output.is_table() {
            out(&format!("{}/{name} {verb}{}\n", kind_prefix(r), dry_run_suffix(mode)));
        } else {
            out(&print_objects(&[applied], true, &output)?);
        }
    }
    if failed { Err(CliError::Exit(1)) } else { Ok(()) }
}

fn apply_error(e: &CliError, source: &str, r: &ResourceInfo, name: &str, ns: &str) -> String {
    if e.code() == Some(409) {
        return format!(
            "error: Apply failed with conflicts: {}\nPlease review the fields above--they currently have other managers. Use --force-conflicts to override.",
            e.message()
        );
    }
    format!(
        "Error from server ({}): error when applying patch to {}/{name} in namespace {ns} from {source}: {}",
        match e {
            CliError::Api { status, .. } =>
                status.get("reason").and_then(Value::as_str).unwrap_or("Unknown").to_string(),
            _ => String::new(),
        },
        kind_prefix(r),
        e.message()
    )
}

// --------------------------------------------------------------------------------------- delete

fn propagation(cascade: &str) -> Result<&'static str, CliError> {
    match cascade {
        "background" | "true" => Ok("Background"),
        "foreground" => Ok("Foreground"),
        "orphan" | "false" => Ok("Orphan"),
        other => Err(CliError::Usage(format!(
            "invalid cascade value ({other}). Must be \"background\", \"foreground\", or \"orphan\""
        ))),
    }
}

/// Parses a Go duration as kubectl flags take them (`30s`, `2m`, `1h30m`, `500ms`, `0`).
pub fn parse_duration(s: &str) -> Result<Duration, CliError> {
    let bad = || CliError::Usage(format!("invalid duration \"{s}\""));
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(value * unit);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

async fn delete(a: DeleteArgs) -> Result<(), CliError> {
    let policy = propagation(&a.cascade)?;
    let mode = dry_run(&a.write.dry_run)?;
    let client = connect(&a.common).await?;
    let ns = namespace(&a.common, &client);
    // (resource, namespace, name)
    let mut victims: Vec<(&'static ResourceInfo, String, String)> = Vec::new();
    if !a.files.is_empty() {
        for (source, obj) in read_manifests(&a.files, false)? {
            let (r, obj_ns) = manifest_target(&obj, &source, a.common.namespace.as_deref(), &ns)?;
            victims.push((r, obj_ns, skiff_api::meta::name(&obj).to_string()));
        }
    } else {
        let targets = parse_args(&a.args)?;
        for t in targets {
            if t.names.is_empty() {
                if a.selection.selector.is_none() && a.selection.field_selector.is_none() && !a.all {
                    return Err(CliError::Usage("resource(s) were provided, but no name was specified".into()));
                }
                let scope = (!a.selection.all_namespaces).then_some(ns.as_str());
                let list =
                    client.get(&with_query(&collection_path(t.resource, scope), &list_params(&a.selection))).await?;
                for item in list.get("items").and_then(Value::as_array).cloned().unwrap_or_default() {
                    let item_ns = skiff_api::meta::namespace(&item);
                    victims.push((
                        t.resource,
                        if item_ns.is_empty() { ns.clone() } else { item_ns.to_string() },
                        skiff_api::meta::name(&item).to_string(),
                    ));
                }
            } else {
                victims.extend(t.names.iter().map(|n| (t.resource, ns.clone(), n.clone())));
            }
        }
    }
    if victims.is_empty() {
        eprintln!("No resources found");
        return Ok(());
    }
    let mut body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy});
    if let Some(g) = a.grace_period.or(a.now.then_some(1)) {
        body["gracePeriodSeconds"] = json!(g);
    }
    if mode.is_some() {
        body["dryRun"] = json!(["All"]);
    }
    let mut failed = false;
    let mut deleted = Vec::new();
    for (r, obj_ns, name) in victims {
        let path = object_path(r, &obj_ns, &name);
        if mode == Some(false) {
            out(&format!("{}/{name} deleted (dry run)\n", kind_prefix(r)));
            continue;
        }
        match client.call(Method::DELETE, &path, None, None, Some(&body)).await {
            Ok(_) => {
                let from = if r.namespaced() { format!(" from {obj_ns} namespace") } else { String::new() };
                out(&format!("{} \"{name}\" deleted{from}{}\n", kind_prefix(r), dry_run_suffix(mode)));
                deleted.push(path);
            }
            Err(e) if e.is_not_found() && a.ignore_not_found => {}
            Err(e) if e.code().is_some() => {
                eprintln!("{}", with_name_hint(&client, r, &obj_ns, &name, e).await);
                failed = true;
            }
            Err(e) => return Err(e),
        }
    }
    let wait = a.wait != "false" && mode.is_none() && policy != "Orphan";
    if wait {
        let timeout = parse_duration(&a.timeout)?;
        let deadline = (timeout > Duration::ZERO).then(|| tokio::time::Instant::now() + timeout);
        for path in deleted {
            loop {
                match client.get(&path).await {
                    Err(e) if e.is_not_found() => break,
                    Err(e) => return Err(e),
                    Ok(_) => {}
                }
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    return Err(CliError::Failed(format!("timed out waiting for the condition on {path}")));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    if failed { Err(CliError::Exit(1)) } else { Ok(()) }
}

/// Resolves `TYPE NAME` or `TYPE/NAME` to exactly one object; returns the remaining arguments.
pub fn one_object(args: &[String]) -> Result<(&'static ResourceInfo, String, Vec<String>), CliError> {
    let Some(first) = args.first() else {
        return Err(CliError::Usage("required resource not specified".into()));
    };
    if let Some((kind, name)) = first.split_once('/') {
        return Ok((resource(kind)?, name.to_string(), args[1..].to_vec()));
    }
    let Some(name) = args.get(1) else {
        return Err(CliError::Usage(format!("you must specify the name of the {first}")));
    };
    Ok((resource(first)?, name.clone(), args[2..].to_vec()))
}

async fn scale(a: ScaleArgs) -> Result<(), CliError> {
    let (r, name, _) = one_object(&a.args)?;
    if !r.has(skiff_api::Subresource::Scale) {
        return Err(CliError::Failed(format!("cannot scale {}: no scale subresource", qualified(r))));
    }
    let client = connect(&a.common).await?;
    let ns = namespace(&a.common, &client);
    let path = format!("{}/scale", object_path(r, &ns, &name));
    let hint = |e: CliError| with_name_hint(&client, r, &ns, &name, e);
    if let Some(current) = a.current_replicas {
        let scale = match client.get(&path).await {
            Ok(v) => v,
            Err(e) => return Err(hint(e).await),
        };
        let actual = scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
        if actual != i64::from(current) {
            return Err(CliError::Failed(format!("Expected replicas to be {current}, was {actual}")));
        }
    }
    let mode = dry_run(&a.write.dry_run)?;
    if mode != Some(false) {
        let mut params = vec![];
        if mode == Some(true) {
            params.push(("dryRun", "All"));
        }
        let patched = client
            .call(
                Method::PATCH,
                &with_query(&path, &params),
                None,
                Some("application/merge-patch+json"),
                Some(&json!({"spec": {"replicas": a.replicas}})),
            )
            .await;
        if let Err(e) = patched {
            return Err(hint(e).await);
        }
    }
    out(&format!("{}/{name} scaled{}\n", kind_prefix(r), dry_run_suffix(mode)));
    Ok(())
}

/// Where a workload keeps its containers.
pub fn containers_pointer(r: &ResourceInfo) -> &'static str {
    if r.kind == "Pod" { "/spec/containers" } else { "/spec/template/spec/containers" }
}

/// The strategic-merge patch `set image` sends, or the container that does not exist.
pub fn image_patch(r: &ResourceInfo, obj: &Value, pairs: &[(String, String)]) -> Result<Value, CliError> {
    let existing: Vec<String> = obj
        .pointer(containers_pointer(r))
        .and_then(Value::as_array)
        .map(|cs| cs.iter().map(|c| c.get("name").and_then(Value::as_str).unwrap_or_default().to_string()).collect())
        .unwrap_or_default();
    let mut patch_containers = Vec::new();
    for (container, image) in pairs {
        if container == "*" {
            patch_containers.extend(existing.iter().map(|n| json!({"name": n, "image": image})));
        } else if existing.contains(container) {
            patch_containers.push(json!({"name": container, "image": image}));
        } else {
            return Err(CliError::Failed(format!("unable to find container named \"{container}\"")));
        }
    }
    let containers = json!({"containers": patch_containers});
    Ok(if r.kind == "Pod" { json!({"spec": containers}) } else { json!({"spec": {"template": {"spec": containers}}}) })
}

async fn set_image(a: SetImageArgs) -> Result<(), CliError> {
    let (r, name, rest) = one_object(&a.args)?;
    let pairs: Vec<(String, String)> = rest
        .iter()
        .map(|p| match p.split_once('=') {
            Some((c, i)) if !c.is_empty() && !i.is_empty() => Ok((c.to_string(), i.to_string())),
            _ => Err(CliError::Usage(format!("invalid image spec {p}: expected CONTAINER=IMAGE"))),
        })
        .collect::<Result<_, _>>()?;
    if pairs.is_empty() {
        return Err(CliError::Usage("at least one image update is required".into()));
    }
    let client = connect(&a.common).await?;
    let ns = namespace(&a.common, &client);
    let path = object_path(r, &ns, &name);
    let obj = client.get(&path).await?;
    let patch = image_patch(r, &obj, &pairs)?;
    let mode = dry_run(&a.write.dry_run)?;
    let mut result = with_type(obj, r);
    if mode != Some(false) {
        let mut params = vec![("fieldManager", "kubectl-set")];
        if mode == Some(true) {
            params.push(("dryRun", "All"));
        }
        result = with_type(
            client
                .call(
                    Method::PATCH,
                    &with_query(&path, &params),
                    None,
                    Some("application/strategic-merge-patch+json"),
                    Some(&patch),
                )
                .await?,
            r,
        );
    }
    report(&result, "image updated", &a.write, mode)
}

// ----------------------------------------------------------------------------------------- edit

/// The comment block kubectl's editor file starts with.
const EDIT_HEADER: &str = "# Please edit the object below. Lines beginning with a '#' will be ignored,\n# and an empty file will abort the edit. If an error occurs while saving this file will be\n# reopened with the relevant failures.\n#\n";

/// The lines that are not comments (kubectl's `StripComments`), each ending with a newline.
pub fn strip_comments(text: &str) -> String {
    text.lines().filter(|l| !l.trim_start().starts_with('#')).map(|l| format!("{l}\n")).collect()
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to`: changed and added fields, removed
/// ones as `null`, lists replaced whole. `{}` when nothing changed.
pub fn merge_patch(from: &Value, to: &Value) -> Value {
    match (from.as_object(), to.as_object()) {
        (Some(f), Some(t)) => {
            let mut patch = serde_json::Map::new();
            for (k, old) in f {
                match t.get(k) {
                    None => {
                        patch.insert(k.clone(), Value::Null);
                    }
                    Some(new) if new != old => {
                        let sub = if old.is_object() && new.is_object() { merge_patch(old, new) } else { new.clone() };
                        patch.insert(k.clone(), sub);
                    }
                    Some(_) => {}
                }
            }
            for (k, new) in t.iter().filter(|(k, _)| !f.contains_key(*k)) {
                patch.insert(k.clone(), new.clone());
            }
            Value::Object(patch)
        }
        _ => to.clone(),
    }
}

/// The comment block that tells why the last save was refused (kubectl's edit error header).
pub fn edit_error_header(r: &ResourceInfo, name: &str, causes: &[String]) -> String {
    let mut text = format!("# {} \"{name}\" was not valid:\n", qualified(r));
    for c in causes {
        text.push_str(&format!("# * {c}\n"));
    }
    text.push_str("#\n");
    text
}

/// The `field: message` causes of an Invalid (422) Status, or its message when it has none.
fn invalid_causes(e: &CliError) -> Vec<String> {
    let CliError::Api { status, .. } = e else { return vec![e.message()] };
    let causes: Vec<String> = status
        .pointer("/details/causes")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let field = c.get("field").and_then(Value::as_str).unwrap_or("<nil>");
                    format!("{field}: {}", c.get("message").and_then(Value::as_str).unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    if causes.is_empty() { vec![e.message()] } else { causes }
}

/// `edit`: the object as YAML in `$KUBE_EDITOR`/`$EDITOR`, then a merge patch of what changed (so a
/// controller's status writes meanwhile do not make it conflict). As kubectl does, a save the
/// server refuses (or that is not YAML) reopens the editor with the reasons on top; saving it
/// unchanged again gives up and keeps the file.
async fn edit(a: EditArgs) -> Result<(), CliError> {
    let (r, name, _) = one_object(&a.args)?;
    let client = connect(&a.common).await?;
    let ns = namespace(&a.common, &client);
    let path = object_path(r, &ns, &name);
    let obj = with_type(get_object(&client, r, &ns, &name).await?, r);
    let obj = crate::output::without_managed_fields(obj);
    let original = yaml::to_yaml(&obj);
    let file = std::env::temp_dir().join(format!("skiff-edit-{}.yaml", skiff_api::meta::new_uid()));
    let editor = std::env::var("KUBE_EDITOR").or_else(|_| std::env::var("EDITOR")).unwrap_or_else(|_| "vi".into());
    let kept = |file: &std::path::Path| eprintln!("A copy of your changes has been stored to \"{}\"", file.display());
    let mut content = original.clone();
    let mut errors = String::new();
    let mut refused: Option<String> = None;
    loop {
        std::fs::write(&file, format!("{EDIT_HEADER}{errors}{content}"))?;
        let status =
            std::process::Command::new("sh").arg("-c").arg(format!("{editor} \"$1\"")).arg("sh").arg(&file).status()?;
        if !status.success() {
            let _ = std::fs::remove_file(&file);
            return Err(CliError::Failed(format!("there was a problem with the editor \"{editor}\"")));
        }
        let body = strip_comments(&std::fs::read_to_string(&file)?);
        if refused.as_deref() == Some(body.as_str()) {
            eprintln!("error: {} \"{name}\" is invalid", qualified(r));
            kept(&file);
            return Err(CliError::Failed("Edit cancelled, no valid changes were saved.".into()));
        }
        if body.trim().is_empty() {
            let _ = std::fs::remove_file(&file);
            eprintln!("Edit cancelled, saved file was empty.");
            return Ok(());
        }
        if body == original {
            let _ = std::fs::remove_file(&file);
            eprintln!("Edit cancelled, no changes made.");
            return Ok(());
        }
        let edited: Value = match serde_saphyr::from_str(&body) {
            Ok(v) => v,
            Err(e) => {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
                let cause = format!("<nil>: Invalid value: \"The edited file failed validation\": yaml: {first}");
                errors = edit_error_header(r, &name, &[cause]);
                refused = Some(body.clone());
                content = body;
                continue;
            }
        };
        let same = |ptr: &str| edited.pointer(ptr) == obj.pointer(ptr);
        if !(same("/apiVersion") && same("/kind") && same("/metadata/name")) {
            kept(&file);
            return Err(CliError::Failed("At least one of apiVersion, kind and name was changed".into()));
        }
        let patch = merge_patch(&obj, &edited);
        if patch.as_object().is_some_and(|m| m.is_empty()) {
            let _ = std::fs::remove_file(&file);
            eprintln!("Edit cancelled, no changes made.");
            return Ok(());
        }
        let target = with_query(&path, &[("fieldManager", "kubectl-edit"), ("fieldValidation", "Strict")]);
        match client.call(Method::PATCH, &target, None, Some("application/merge-patch+json"), Some(&patch)).await {
            Ok(_) => {
                let _ = std::fs::remove_file(&file);
                out(&format!("{}/{name} edited\n", kind_prefix(r)));
                return Ok(());
            }
            Err(e) if e.code() == Some(422) => {
                errors = edit_error_header(r, &name, &invalid_causes(&e));
                refused = Some(body.clone());
                content = body;
            }
            Err(e) if e.code().is_some() => {
                eprintln!("error: {} \"{name}\" could not be patched: {}", qualified(r), e.message());
                kept(&file);
                return Err(CliError::Exit(1));
            }
            Err(e) => return Err(e),
        }
    }
}

// ----------------------------------------------------------------------------------- logs, exec

/// The pod a `logs`/`exec` target names: a pod, or a pod selected by a workload's selector.
async fn pod_for(client: &Client, ns: &str, target: &str) -> Result<Value, CliError> {
    let pods = resource("pods")?;
    let Some((kind, name)) = target.split_once('/') else {
        return get_object(client, pods, ns, target).await;
    };
    let r = resource(kind)?;
    if r.kind == "Pod" {
        return get_object(client, pods, ns, name).await;
    }
    let owner = get_object(client, r, ns, name).await?;
    let selector = owner.pointer("/spec/selector").map(skiff_api::selector::selector_string).unwrap_or_default();
    let list = client.get(&with_query(&collection_path(pods, Some(ns)), &[("labelSelector", &selector)])).await?;
    let mut items = list.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
    // Prefer running, then the newest, as kubectl's ByLogging sort does.
    items.sort_by_key(|p| {
        let running = p.pointer("/status/phase").and_then(Value::as_str) == Some("Running");
        (
            std::cmp::Reverse(running),
            std::cmp::Reverse(
                p.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or("").to_string(),
            ),
        )
    });
    items.into_iter().next().ok_or_else(|| CliError::Failed(format!("no pods found for {target}")))
}

/// The container to use: `-c`, else the default-container annotation, else the first (with kubectl's note).
fn pick_container(pod: &Value, flag: Option<&str>) -> Result<String, CliError> {
    if let Some(c) = flag {
        return Ok(c.to_string());
    }
    let names: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).map(String::from).collect())
        .unwrap_or_default();
    if let Some(d) =
        pod.pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container").and_then(Value::as_str)
    {
        return Ok(d.to_string());
    }
    let first = names.first().cloned().ok_or_else(|| CliError::Failed("the pod has no containers".into()))?;
    if names.len() > 1 {
        eprintln!("Defaulted container \"{first}\" out of: {}", names.join(", "));
    }
    Ok(first)
}

async fn logs(a: LogsArgs) -> Result<(), CliError> {
    let client = connect(&a.common).await?;
    let ns = namespace(&a.common, &client);
    // kubectl's logs wraps a NotFound of the pod (or its owner) in its own words.
    let pod = pod_for(&client, &ns, &a.target).await.map_err(|e| match e {
        CliError::Api { code: 404, .. } => {
            let message = e.message();
            let (what, hint) = message.split_once('\n').map_or((message.as_str(), ""), |(w, h)| (w, h));
            let hint = if hint.is_empty() { String::new() } else { format!("\n{hint}") };
            CliError::Failed(format!("error from server (NotFound): {what} in namespace \"{ns}\"{hint}"))
        }
        other => other,
    })?;
    let container = pick_container(&pod, a.container.as_deref())?;
    // kubectl checks the container name itself before asking for logs.
    let known = ["/spec/containers", "/spec/initContainers", "/spec/ephemeralContainers"].iter().any(|ptr| {
        pod.pointer(ptr)
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c.get("name").and_then(Value::as_str) == Some(container.as_str())))
    });
    if !known {
        return Err(CliError::Failed(format!(
            "container {container} is not valid for pod {}",
            skiff_api::meta::name(&pod)
        )));
    }
    let tail = a.tail.map(|t| t.to_string());
    let mut params = vec![("container", container.as_str())];
    if a.follow {
        params.push(("follow", "true"));
    }
    if a.previous {
        params.push(("previous", "true"));
    }
    if a.timestamps {
        params.push(("timestamps", "true"));
    }
    if let Some(t) = tail.as_deref().filter(|t| *t != "-1") {
        params.push(("tailLines", t));
    }
    let path =
        with_query(&format!("{}/log", object_path(resource("pods")?, &ns, skiff_api::meta::name(&pod))), &params);
    let mut stream = Box::pin(client.stream(&path, Some("*/*")).await?);
    let mut stdout = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        stdout.write_all(&chunk?)?;
        stdout.flush()?;
    }
    Ok(())
}

async fn exec(a: ExecArgs) -> Result<(), CliError> {
    use std::io::IsTerminal;
    let client = connect(&a.common).await?;
    let ns = namespace(&a.common, &client);
    let pod = pod_for(&client, &ns, &a.pod).await?;
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        return Err(CliError::Failed(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    let container = pick_container(&pod, a.container.as_deref())?;
    let stdin_is_terminal = std::io::stdin().is_terminal();
    let plan = crate::term::plan(a.stdin, a.tty, stdin_is_terminal);
    if plan.warn {
        eprintln!("{}", crate::term::NOT_A_TERMINAL);
    }
    // kubectl's `TTY.Safe`: with stdin attached from a terminal, its settings are saved (and made
    // raw for a TTY) for the session and put back before anything else is printed or the process
    // exits, also on SIGHUP/SIGINT/SIGTERM/SIGQUIT (then exit 1, as kubectl).
    let guard = match (a.stdin && stdin_is_terminal, plan.tty) {
        (false, _) => None,
        (true, true) => Some(crate::term::TerminalGuard::raw(std::io::stdin())?),
        (true, false) => Some(crate::term::TerminalGuard::save(std::io::stdin())?),
    };
    let session = exec_session(&client, &ns, &pod, &container, &a, plan.tty);
    let status = match guard {
        None => session.await?,
        Some(guard) => {
            let outcome = tokio::select! {
                s = session => Some(s),
                _ = crate::term::termination_signal() => None,
            };
            drop(guard);
            match outcome {
                Some(s) => s?,
                None => return Err(CliError::Exit(1)),
            }
        }
    };
    if let Some(s) = status
        && s.status.as_deref() == Some("Failure")
    {
        let code = s
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.parse::<i32>().ok());
        return match code {
            Some(code) => {
                eprintln!("command terminated with exit code {code}");
                Err(CliError::Exit(code))
            }
            None => Err(CliError::Failed(s.message.unwrap_or_default())),
        };
    }
    Ok(())
}

/// Runs the exec's WebSocket session: our stdin to the process, its stdout and stderr (one stream
/// with a TTY) to ours, and with a TTY the size of our stdout's terminal on the resize channel.
/// Returns the final `Status`.
async fn exec_session(
    client: &Client,
    ns: &str,
    pod: &Value,
    container: &str,
    a: &ExecArgs,
    tty: bool,
) -> Result<Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>, CliError> {
    use kube::api::{Api, AttachParams};
    use std::os::fd::AsFd;
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.kube.clone(), ns);
    let params = AttachParams::default().container(container).stdin(a.stdin).stdout(true).stderr(!tty).tty(tty);
    let mut process = api.exec(skiff_api::meta::name(pod), a.command.clone(), &params).await.map_err(|e| match e {
        kube::Error::Api(s) => CliError::Api { code: s.code, status: serde_json::to_value(&*s).unwrap_or_default() },
        other => CliError::Failed(other.to_string()),
    })?;
    // kubectl measures its stdout (`TTY.GetSize`); when that is no terminal it sends no size.
    let resizer = match (process.terminal_size(), std::io::stdout().as_fd().try_clone_to_owned()) {
        (Some(sizes), Ok(out)) if rustix::termios::isatty(&out) => {
            Some(tokio::spawn(crate::term::forward_sizes(out, sizes)))
        }
        _ => None,
    };
    let mut tasks = Vec::new();
    if let Some(mut stdout) = process.stdout() {
        tasks.push(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut stdout, &mut tokio::io::stdout()).await;
        }));
    }
    if let Some(mut stderr) = process.stderr() {
        tasks.push(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::stderr()).await;
        }));
    }
    if let Some(mut stdin) = process.stdin() {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut stdin).await;
            // The end of our stdin is the end of the process's: shutting the writer down makes the
            // client send the v5 protocol's close of the stdin stream (dropping it is not enough).
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stdin).await;
        });
    }
    let status = match process.take_status() {
        Some(s) => s.await,
        None => None,
    };
    for t in tasks {
        let _ = t.await;
    }
    if let Some(r) = resizer {
        r.abort();
    }
    let _ = process.join().await;
    Ok(status)
}

// ----------------------------------------------------------------------------------------- wait

/// What `--for` asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    Delete,
    Condition { kind: String, status: String },
    JsonPath { template: String, value: Option<String> },
}

pub fn parse_wait_for(s: &str) -> Result<WaitFor, CliError> {
    if s == "delete" {
        return Ok(WaitFor::Delete);
    }
    if let Some(rest) = s.strip_prefix("condition=") {
        let (kind, status) = rest.split_once('=').unwrap_or((rest, "true"));
        return Ok(WaitFor::Condition { kind: kind.to_string(), status: status.to_string() });
    }
    if let Some(rest) = s.strip_prefix("jsonpath=") {
        let rest = rest.trim_matches('\'');
        return Ok(match rest.rfind("}=") {
            Some(pos) => {
                WaitFor::JsonPath { template: rest[..=pos].to_string(), value: Some(rest[pos + 2..].to_string()) }
            }
            None => WaitFor::JsonPath { template: rest.to_string(), value: None },
        });
    }
    Err(CliError::Usage(format!("unrecognized condition: \"{s}\"")))
}

/// Whether an object satisfies a condition (kubectl `wait`'s ConditionalWait).
pub fn condition_met(obj: &Value, kind: &str, status: &str) -> bool {
    let generation = skiff_api::meta::generation(obj);
    let observed = obj.pointer("/status/observedGeneration").and_then(Value::as_i64);
    obj.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|conds| {
        conds.iter().any(|c| {
            c.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case(kind))
                && c.get("status").and_then(Value::as_str).is_some_and(|s| s.eq_ignore_ascii_case(status))
                && c.get("observedGeneration").and_then(Value::as_i64).or(observed).is_none_or(|o| o >= generation)
        })
    })
}

async fn wait(a: WaitArgs) -> Result<(), CliError> {
    let condition = parse_wait_for(&a.condition)?;
    let timeout = parse_duration(&a.timeout)?;
    let client = connect(&a.common).await?;
    let ns = namespace(&a.common, &client);
    let targets = parse_args(&a.args)?;
    let mut objects: Vec<(&'static ResourceInfo, String)> = Vec::new();
    for t in &targets {
        if t.names.is_empty() {
            let list =
                client.get(&with_query(&collection_path(t.resource, Some(&ns)), &list_params(&a.selection))).await?;
            for i in list.get("items").and_then(Value::as_array).cloned().unwrap_or_default() {
                objects.push((t.resource, skiff_api::meta::name(&i).to_string()));
            }
        } else {
            objects.extend(t.names.iter().map(|n| (t.resource, n.clone())));
        }
    }
    if objects.is_empty() {
        return Err(CliError::Failed("no matching resources found".into()));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    for (r, name) in objects {
        let path = object_path(r, &ns, &name);
        loop {
            let got = client.get(&path).await;
            let met = match (&condition, &got) {
                (WaitFor::Delete, Err(e)) if e.is_not_found() => true,
                (_, Err(e)) if e.is_not_found() && condition != WaitFor::Delete => {
                    return Err(CliError::Api {
                        code: 404,
                        status: json!({"reason":"NotFound","message": format!("{} \"{name}\" not found", qualified(r))}),
                    });
                }
                (_, Err(_)) => return got.map(|_| ()),
                (WaitFor::Delete, Ok(_)) => false,
                (WaitFor::Condition { kind, status }, Ok(obj)) => condition_met(obj, kind, status),
                (WaitFor::JsonPath { template, value }, Ok(obj)) => {
                    let rendered = crate::jsonpath::render(template, obj).unwrap_or_default();
                    match value {
                        Some(v) => rendered == *v,
                        None => !rendered.is_empty(),
                    }
                }
            };
            if met {
                out(&format!("{}/{name} condition met\n", kind_prefix(r)));
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CliError::Failed(format!("timed out waiting for the condition on {}/{name}", r.plural)));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

// -------------------------------------------------------------------------- version, resources

async fn version(a: VersionArgs) -> Result<(), CliError> {
    let client_version = json!({"gitVersion": format!("v{}-skiff", env!("CARGO_PKG_VERSION")), "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH)});
    let server = if a.client {
        None
    } else {
        let c = connect(&a.common).await?;
        Some(c.get("/version").await?)
    };
    match a.output.as_deref() {
        Some("json") | Some("yaml") => {
            let mut v = json!({"clientVersion": client_version});
            if let Some(s) = &server {
                v["serverVersion"] = s.clone();
            }
            out(&if a.output.as_deref() == Some("json") {
                format!("{}\n", crate::output::to_json(&v))
            } else {
                yaml::to_yaml(&v)
            });
        }
        _ => {
            out(&format!("Client Version: {}\n", client_version["gitVersion"].as_str().unwrap_or_default()));
            if let Some(s) = server {
                out(&format!("Server Version: {}\n", s.get("gitVersion").and_then(Value::as_str).unwrap_or("unknown")));
            }
        }
    }
    Ok(())
}

/// `api-resources` lines, sorted by group then name as kubectl sorts them.
pub fn api_resource_lines(namespaced: Option<bool>, wide: bool, no_headers: bool) -> String {
    let mut rows: Vec<&ResourceInfo> =
        RESOURCES.iter().filter(|r| namespaced.is_none_or(|n| r.namespaced() == n)).collect();
    rows.sort_by(|a, b| (a.group, a.plural).cmp(&(b.group, b.plural)));
    let mut text = String::new();
    if !no_headers {
        text.push_str("NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND");
        text.push_str(if wide { "\tVERBS\tCATEGORIES\n" } else { "\n" });
    }
    for r in rows {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}",
            r.plural,
            r.short_names.join(","),
            r.api_version(),
            r.namespaced(),
            r.kind
        ));
        if wide {
            text.push_str(&format!("\t[{}]\t{}", r.verbs().join(" "), r.categories.join(",")));
        }
        text.push('\n');
    }
    layout(&text)
}

fn api_resources(a: ApiResourcesArgs) -> Result<(), CliError> {
    if a.output.as_deref() == Some("name") {
        let mut names: Vec<String> = RESOURCES.iter().map(qualified).collect();
        names.sort();
        out(&names.into_iter().map(|n| format!("{n}\n")).collect::<String>());
        return Ok(());
    }
    out(&api_resource_lines(a.namespaced, a.output.as_deref() == Some("wide"), a.no_headers));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_after_the_verb_win_over_those_before_it() {
        let flags = |k: Option<&str>, n: Option<&str>| Common {
            kubeconfig: k.map(PathBuf::from),
            namespace: n.map(String::from),
        };
        // (after the verb, before it) -> merged
        let cases = [
            (flags(None, None), flags(None, None), flags(None, None)),
            (flags(None, None), flags(Some("k"), Some("x")), flags(Some("k"), Some("x"))),
            (flags(None, Some("b")), flags(Some("k"), Some("a")), flags(Some("k"), Some("b"))),
            (flags(Some("k2"), None), flags(Some("k"), Some("a")), flags(Some("k2"), Some("a"))),
            (flags(Some("k2"), Some("b")), flags(None, None), flags(Some("k2"), Some("b"))),
        ];
        for (after, before, want) in cases {
            let got = after.clone().or(&before);
            assert_eq!((got.kubeconfig, got.namespace), (want.kubeconfig, want.namespace), "{after:?} {before:?}");
        }
        assert!(flags(None, None).is_empty());
        assert!(!flags(None, Some("x")).is_empty());
        assert!(!flags(Some("k"), None).is_empty());
    }

    #[test]
    fn parses_durations() {
        let cases = [("30s", 30_000), ("2m", 120_000), ("1h30m", 5_400_000), ("500ms", 500), ("0", 0), ("10", 10_000)];
        for (s, ms) in cases {
            assert_eq!(parse_duration(s).expect(s).as_millis(), ms, "{s}");
        }
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn parses_wait_conditions() {
        assert_eq!(parse_wait_for("delete").ok(), Some(WaitFor::Delete));
        assert_eq!(
            parse_wait_for("condition=Available").ok(),
            Some(WaitFor::Condition { kind: "Available".into(), status: "true".into() })
        );
        assert_eq!(
            parse_wait_for("jsonpath={.status.phase}=Running").ok(),
            Some(WaitFor::JsonPath { template: "{.status.phase}".into(), value: Some("Running".into()) })
        );
        let d = json!({"metadata":{"generation":2},"status":{"observedGeneration":2,"conditions":[{"type":"Available","status":"True"}]}});
        assert!(condition_met(&d, "available", "true"));
        let stale = json!({"metadata":{"generation":3},"status":{"observedGeneration":2,"conditions":[{"type":"Available","status":"True"}]}});
        assert!(!condition_met(&stale, "Available", "true"));
    }

    #[test]
    fn builds_image_patches() {
        let deploy = resource("deploy").expect("deploy");
        let obj = json!({"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx"},{"name":"side","image":"busybox"}]}}}});
        let patch = image_patch(deploy, &obj, &[("nginx".into(), "nginx:1.27".into())]).expect("patch");
        assert_eq!(patch, json!({"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}));
        let all = image_patch(deploy, &obj, &[("*".into(), "x".into())]).expect("patch");
        assert_eq!(all["spec"]["template"]["spec"]["containers"].as_array().map(Vec::len), Some(2));
        let err = image_patch(deploy, &obj, &[("nope".into(), "x".into())]).expect_err("missing");
        assert_eq!(err.to_string(), "error: unable to find container named \"nope\"");
    }

    #[test]
    fn parses_multi_document_manifests() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p\n";
        let docs = parse_manifests(text, "f.yaml").expect("parse");
        assert_eq!(docs.iter().map(|(_, d)| skiff_api::meta::name(d).to_string()).collect::<Vec<_>>(), ["a", "p"]);
        let json_docs = "{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"a\"}}\n---\n{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}\n";
        let docs = parse_manifests(json_docs, "-").expect("JSON documents");
        assert_eq!(docs.iter().map(|(_, d)| skiff_api::meta::name(d).to_string()).collect::<Vec<_>>(), ["a", "p"]);
        let one = parse_manifests("{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}", "-").expect("one JSON object");
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn checks_manifest_namespaces() {
        let obj = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"w","namespace":"a"}});
        assert_eq!(
            manifest_target(&obj, "f", None, "default").map(|(r, ns)| (r.plural, ns)).ok(),
            Some(("deployments", "a".into()))
        );
        assert!(manifest_target(&obj, "f", Some("b"), "default").is_err());
        let unknown = json!({"apiVersion":"x/v1","kind":"Foo","metadata":{"name":"f"}});
        assert!(manifest_target(&unknown, "f", None, "default").is_err());
    }

    #[test]
    fn merge_patches_carry_only_the_edit() {
        let from = json!({"metadata":{"name":"web","labels":{"a":"1","b":"2"},"resourceVersion":"7"},
                          "spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"n","image":"nginx"}]}}}});
        let cases = [
            (from.clone(), json!({})),
            (
                json!({"metadata":{"name":"web","labels":{"a":"1","c":"3"},"resourceVersion":"7"},
                       "spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"n","image":"nginx:2"}]}}}}),
                json!({"metadata":{"labels":{"b":null,"c":"3"}},
                       "spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"n","image":"nginx:2"}]}}}}),
            ),
            (json!({"metadata":{"name":"web","labels":{"a":"1","b":"2"},"resourceVersion":"7"}}), json!({"spec":null})),
        ];
        for (to, want) in cases {
            assert_eq!(merge_patch(&from, &to), want, "{to}");
        }
        assert_eq!(merge_patch(&json!(1), &json!([2])), json!([2]));
    }

    #[test]
    fn edit_files_strip_comments_and_carry_errors() {
        assert_eq!(strip_comments("# header\na: 1\n  # indented\nb: '#x'\n"), "a: 1\nb: '#x'\n");
        let deploy = resource("deploy").expect("deploy");
        assert_eq!(
            edit_error_header(
                deploy,
                "web",
                &["spec.replicas: Invalid value: -1: must be greater than or equal to 0".into()]
            ),
            "# deployments.apps \"web\" was not valid:\n# * spec.replicas: Invalid value: -1: must be greater than or equal to 0\n#\n"
        );
        let invalid = CliError::Api {
            code: 422,
            status: json!({"message":"m","details":{"causes":[{"field":"spec.replicas","message":"Invalid value: -1"}]}}),
        };
        assert_eq!(invalid_causes(&invalid), vec!["spec.replicas: Invalid value: -1".to_string()]);
        let bare = CliError::Api { code: 422, status: json!({"message":"bad"}) };
        assert_eq!(invalid_causes(&bare), vec!["bad".to_string()]);
    }

    #[test]
    fn watch_tables_keep_columns_header_and_widths() {
        let columns = json!([{"name":"Name","format":"name","priority":0},{"name":"Ready","priority":0},{"name":"Age","priority":0}]);
        let list = json!({"columnDefinitions": columns, "rows":[{"cells":["web","0/2","5s"]}]});
        let event = |ready: &str| json!({"columnDefinitions": [], "rows":[{"cells":["web", ready, "6s"]}]});
        let mut state = WatchTable::default();
        let opts = TableOptions::default();
        assert_eq!(state.lines(&list, &opts), ("NAME   READY   AGE\nweb    0/2     5s\n".to_string(), 1));
        assert_eq!(state.lines(&event("0/3"), &opts), ("web    0/3     6s\n".to_string(), 1));
        assert_eq!(state.lines(&json!({"rows": []}), &opts), (String::new(), 0));
        // Watching without a list first: the header comes with the first event's row.
        let mut only = WatchTable { columns: Some(columns), ..Default::default() };
        assert_eq!(only.lines(&event("1/3"), &opts).0, "NAME   READY   AGE\nweb    1/3     6s\n");
    }

    #[test]
    fn lists_api_resources() {
        let text = api_resource_lines(None, false, false);
        let first = text.lines().next().expect("header");
        assert!(first.starts_with("NAME "), "{first}");
        assert!(text.contains("deployments"), "{text}");
    }
}
