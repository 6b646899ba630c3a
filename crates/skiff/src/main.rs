//! `skiff`: one binary for the server and its tools. `main` only parses arguments and calls into
//! the crates that do the work.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: 10-24 % less CPU per pod in the control plane's hot paths
/// (BENCHMARKS.md, "The allocator"). Its arenas are committed on demand, not up front
/// (`MI_DEFAULT_ARENA_EAGER_COMMIT=0` in .cargo/config.toml), so memory at rest stays as small.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "skiff", version, about = "A Kubernetes-compatible container orchestrator in one binary")]
struct Cli {
    /// kubectl's global flags (`--kubeconfig`, `-n`), accepted before the verb as well as after it
    /// (`skiff -n kube-system get pods`); they apply to the kubectl-like verbs only.
    #[command(flatten)]
    globals: skiff_cli::Common,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// Parses the command line, exiting with clap's usage error on a mistake.
    fn parse_checked() -> Cli {
        Cli::parse().checked().unwrap_or_else(|e| e.exit())
    }

    /// Refuses the verbs' global flags before `server`, `agent`, `image` or `completion`, which
    /// have flags of their own (`skiff agent --kubeconfig`): given there they would be ignored.
    fn checked(self) -> Result<Cli, clap::Error> {
        let daemon = match &self.command {
            Command::Cli(_) => return Ok(self),
            Command::Server(_) => "server",
            Command::Agent(_) => "agent",
            Command::Image(_) => "image",
            Command::Completion { .. } => "completion",
        };
        let flag = match (&self.globals.kubeconfig, &self.globals.namespace) {
            (Some(_), _) => "--kubeconfig",
            (None, Some(_)) => "--namespace",
            (None, None) => return Ok(self),
        };
        use clap::CommandFactory;
        Err(Cli::command().error(
            clap::error::ErrorKind::ArgumentConflict,
            format!("the argument '{flag}' before '{daemon}' applies to the kubectl-like verbs only"),
        ))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (with its store) on this machine.
    Server(ServerArgs),
    /// Run a node agent for this machine (or `--simulate N` nodes).
    Agent(AgentArgs),
    /// Manage the images of this machine's node agent.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Print a shell completion script (`source <(skiff completion bash)`).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// kubectl-like verbs (get, describe, create, apply, delete, scale, rollout, logs, exec, ...).
    #[command(flatten)]
    Cli(skiff_cli::Verb),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Import an OCI image layout archive or a `docker save` tarball.
    Import {
        file: PathBuf,
        /// The name to give the image when the archive names none (or only a tag).
        #[arg(long)]
        name: Option<String>,
        /// The server's data directory (the images of its node agent live in `DIR/agent/images`).
        #[arg(long, default_value = "/var/lib/skiff", env = "SKIFF_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// List the images.
    Ls {
        #[arg(long, default_value = "/var/lib/skiff", env = "SKIFF_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Remove an image.
    Rm {
        reference: String,
        #[arg(long, default_value = "/var/lib/skiff", env = "SKIFF_DATA_DIR")]
        data_dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Where the store, credentials and kubeconfig live.
    #[arg(long, default_value = "/var/lib/skiff", env = "SKIFF_DATA_DIR")]
    data_dir: PathBuf,
    /// The HTTPS port (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// How many recent changes are kept for watches to resume from; older revisions answer 410 Gone.
    #[arg(long, default_value_t = 100_000)]
    history: usize,
    /// Run no node agent for this machine (by default `skiff server` also runs its pods).
    #[arg(long)]
    no_agent: bool,
    /// The pod range of this machine's node (its agent's bridge network).
    #[arg(long, default_value = "10.42.0.0/24")]
    pod_cidr: String,
    /// The cluster's pod range (a blackhole route keeps packets for absent pods on the machine).
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// The Linux bridge this machine's node agent attaches pods to.
    #[arg(long, default_value = "skiff0")]
    bridge: String,
    /// Serve the API only: run no controllers and no scheduler in this process.
    #[arg(long)]
    no_controllers: bool,
    /// The port of this machine's node agent's kubelet server (logs, exec); 0 picks a free one.
    #[arg(long, default_value_t = skiff_agent::server::DEFAULT_PORT)]
    kubelet_port: u16,
    /// Keep the cluster's state in etcd (comma-separated `http://host:port` URLs) instead of the
    /// embedded SQLite store; servers sharing one etcd serve the API together (copy `DATA_DIR/pki`
    /// from the first server to the others).
    #[arg(long, value_delimiter = ',')]
    datastore_endpoint: Vec<String>,
    /// The etcd key prefix.
    #[arg(long, default_value = "/registry")]
    etcd_prefix: String,
    /// How often old etcd revisions are compacted (0s: never).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    etcd_compaction_interval: std::time::Duration,
    /// How long a node may stay silent (no Lease renewal, no status) before it is marked
    /// `Ready=Unknown` and tainted unreachable.
    #[arg(long, default_value = "50s", value_parser = humantime::parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// How often the node lifecycle controller checks nodes.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    node_monitor_period: std::time::Duration,
    /// The prefix length of the pod range given to each node from --cluster-cidr.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// How long a leader's Lease (controllers, scheduler) lasts unrenewed before another server
    /// takes over (kube-controller-manager's flag).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    leader_elect_lease_duration: std::time::Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    leader_elect_renew_deadline: std::time::Duration,
    /// How often a server tries to acquire or renew leadership.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    leader_elect_retry_period: std::time::Duration,
    #[command(flatten)]
    registries: RegistryArgs,
}

/// Image registry settings of a node agent (`skiff agent`, and `skiff server`'s own agent).
#[derive(clap::Args, Clone, Debug, Default)]
struct RegistryArgs {
    /// Mirrors of a registry, tried in order before it: `REGISTRY=MIRROR[,MIRROR...]`, e.g.
    /// `docker.io=http://127.0.0.1:5000` (an `http://` mirror is pulled from over plain HTTP).
    /// Repeatable.
    #[arg(long = "registry-mirror", value_name = "REGISTRY=MIRROR")]
    registry_mirror: Vec<String>,
    /// A registry (`host:port`) to pull from over plain HTTP, as Docker's `insecure-registries`
    /// (loopback registries always are). Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registry: Vec<String>,
}

impl RegistryArgs {
    /// Puts the mirrors and insecure registries into the runtime's settings.
    fn apply(&self, config: &mut skiff_agent::runc_runtime::RuncConfig) -> anyhow::Result<()> {
        let parsed = skiff_agent::runc_runtime::parse_registry_mirrors(&self.registry_mirror)
            .context("invalid --registry-mirror")?;
        config.registry_mirrors = parsed.mirrors;
        config.insecure_registries = self.insecure_registry.iter().cloned().chain(parsed.plain_http).collect();
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse_checked();
    // Daemons log at info; the kubectl-like verbs print their own messages, as kubectl does.
    let default_level = match cli.command {
        Command::Server(_) | Command::Agent(_) => "info",
        Command::Image(_) | Command::Completion { .. } => "warn",
        Command::Cli(_) => "off",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    let result = match cli.command {
        Command::Server(args) => runtime.block_on(server(args)),
        Command::Agent(args) => runtime.block_on(agent(args)),
        Command::Image(cmd) => runtime.block_on(image(cmd)),
        Command::Completion { shell } => {
            use clap::CommandFactory;
            // Into memory first: the generator panics on a write error (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "skiff", &mut script);
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("cannot print the script"),
                _ => Ok(()),
            }
        }
        Command::Cli(verb) => std::process::exit(runtime.block_on(skiff_cli::run(verb.with_globals(&cli.globals)))),
    };
    // Dropping a runtime waits for every blocking task without limit; a stop must not hang on one
    // (for example a read of a pipe that a still-running container holds open).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let timings = skiff_controllers::leader::Timings {
        lease_duration: args.leader_elect_lease_duration,
        renew_deadline: args.leader_elect_renew_deadline,
        retry_period: args.leader_elect_retry_period,
    };
    timings.validate().context("invalid --leader-elect-lease-duration / -renew-deadline / -retry-period")?;
    let config = skiff_apiserver::Config {
        data_dir: args.data_dir,
        bind: args.bind,
        port: args.port,
        history: Some(args.history),
    };
    let running = if args.datastore_endpoint.is_empty() {
        skiff_apiserver::start(config).await.context("cannot start the server")?
    } else {
        let options = skiff_store::EtcdOptions {
            prefix: args.etcd_prefix.clone(),
            compaction_interval: Some(args.etcd_compaction_interval).filter(|d| !d.is_zero()),
            // `--history` bounds the watch cache's history on etcd as it bounds SQLite's.
            history_len: args.history,
            ..skiff_store::EtcdOptions::default()
        };
        let store = skiff_store::EtcdStore::connect(&args.datastore_endpoint, options)
            .await
            .with_context(|| format!("cannot reach etcd at {}", args.datastore_endpoint.join(",")))?;
        skiff_apiserver::start_with_store(config, std::sync::Arc::new(store))
            .await
            .context("cannot start the server")?
    };
    tracing::info!(address = %running.addr, kubeconfig = %running.kubeconfig.display(), "serving the Kubernetes API");
    println!("skiff server listening on https://{}", running.addr);
    println!("kubeconfig: {}", running.kubeconfig.display());
    let stop = tokio_util::sync::CancellationToken::new();
    let mut background = Vec::new();
    if !args.no_controllers {
        // Controllers and scheduler reach the API through the router in memory (see
        // skiff_apiserver::loopback): the same requests as over the network, no TLS or sockets.
        let client = skiff_apiserver::loopback::client(&running.app, skiff_controllers::manager::USER_AGENT);
        let scheduler_client = skiff_apiserver::loopback::client(&running.app, skiff_scheduler::USER_AGENT);
        let ca_pem = std::fs::read_to_string(running.kubeconfig.with_file_name("pki").join("ca.crt"))
            .context("cannot read the cluster CA")?;
        let identity = format!("{}_{}", hostname(), skiff_api::meta::new_uid());
        // The holderIdentity this process writes into the leader-election Leases.
        tracing::info!(identity, "competing for the controller and scheduler leases");
        let defaults = skiff_controllers::manager::Config::default();
        let config = skiff_controllers::manager::Config {
            identity: identity.clone(),
            ca_pem,
            timings,
            node_lifecycle: skiff_controllers::nodelifecycle::Config {
                node_monitor_grace_period: args.node_monitor_grace_period,
                node_monitor_period: args.node_monitor_period,
                ..defaults.node_lifecycle
            },
            node_ipam: skiff_controllers::nodeipam::Config {
                cluster_cidr: args.cluster_cidr.clone(),
                node_cidr_mask_size: args.node_cidr_mask_size,
                ..defaults.node_ipam
            },
        };
        background.push(tokio::spawn(skiff_controllers::manager::run(client.clone(), config, stop.clone())));
        let scheduler_stop = stop.clone();
        background.push(tokio::spawn(async move {
            skiff_controllers::leader::run_elected(
                scheduler_client.clone(),
                "kube-scheduler",
                &identity,
                timings,
                scheduler_stop,
                |token| skiff_scheduler::run(scheduler_client.clone(), token.cancelled_owned()),
            )
            .await;
        }));
    }
    if !args.no_agent {
        let kubeconfig = running.kubeconfig.clone();
        let data_dir = running.kubeconfig.with_file_name("agent");
        let node = EmbeddedNode {
            pod_cidr: args.pod_cidr.clone(),
            cluster_cidr: args.cluster_cidr.clone(),
            bridge: args.bridge.clone(),
            kubelet_port: args.kubelet_port,
            registries: args.registries.clone(),
        };
        let agent_stop = stop.clone();
        // The machine's own agent reaches the API in memory too (its kubelet server still listens
        // on the network for logs, exec and port-forward); agents elsewhere use TLS.
        let agent_client = skiff_apiserver::loopback::client(&running.app, skiff_agent::USER_AGENT);
        background.push(tokio::spawn(async move {
            let run = embedded_agent(agent_client, &kubeconfig, data_dir, node, agent_stop.cancelled_owned());
            // A machine that cannot run containers still serves the API; say why no pods will run here.
            if let Err(e) = run.await {
                tracing::error!(error = format!("{e:#}"), "the node agent of this machine is not running");
            }
        }));
    }
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("signal handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    stop.cancel();
    // Controllers, scheduler and agent get a moment to finish what they are doing; a stop must not
    // hang on one of them. (The agent leaves running containers running, as a kubelet does.)
    let drained = futures::future::join_all(background);
    if tokio::time::timeout(std::time::Duration::from_secs(5), drained).await.is_err() {
        tracing::warn!("background tasks did not stop within 5 s; stopping anyway");
    }
    running.stop().await;
    Ok(())
}

/// An agent's client, from a kubeconfig (the one `skiff server` wrote, or `--kubeconfig`).
async fn kube_client(kubeconfig: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).context("cannot read the kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .context("cannot use the kubeconfig")?;
    agent_client_from(config)
}

/// A client with the kubelet's User-Agent (the field manager of the agent's writes).
fn agent_client_from(mut config: kube::Config) -> anyhow::Result<kube::Client> {
    config.headers.push((http::header::USER_AGENT, http::HeaderValue::from_static(skiff_agent::USER_AGENT)));
    kube::Client::try_from(config).context("cannot build a client")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "skiff".into())
}

// ------------------------------------------------------------------------------------- agent

#[derive(clap::Args)]
struct AgentArgs {
    /// The API server URL (with --token), e.g. https://10.0.0.1:6443; several, comma-separated, to
    /// fail over between servers sharing one etcd (through a local load balancer on 127.0.0.1).
    #[arg(long, requires = "token", value_delimiter = ',')]
    server: Vec<String>,
    /// The bearer token for --server.
    #[arg(long, requires = "server", allow_hyphen_values = true)]
    token: Option<String>,
    /// The CA certificate (PEM) that signed the server's certificate, for --server.
    #[arg(long)]
    certificate_authority: Option<PathBuf>,
    /// Do not verify the server's certificate (--server without a CA).
    #[arg(long)]
    insecure_skip_tls_verify: bool,
    /// A kubeconfig to connect with, instead of --server and --token.
    #[arg(long, conflicts_with = "server")]
    kubeconfig: Option<PathBuf>,
    /// Simulate this many nodes (no containers run), named `<node-name>-0` … `<node-name>-(N-1)`.
    #[arg(long)]
    simulate: Option<usize>,
    /// The node name (default: this host's name); with --simulate, the prefix of the simulated
    /// nodes' names (default: `sim`).
    #[arg(long)]
    node_name: Option<String>,
    /// Milliseconds from Running to Ready for simulated pods.
    #[arg(long, default_value_t = 0)]
    ready_delay: u64,
    /// The real agent's data directory: pod directories, images, container state.
    #[arg(long, default_value = "/var/lib/skiff/agent")]
    data_dir: PathBuf,
    /// This node's pod subnet (registered as the Node's spec.podCIDR); default: the range node IPAM
    /// gives the Node (the agent waits for it).
    #[arg(long)]
    pod_cidr: Option<String>,
    /// The node's InternalIP (default: the source address of the default route).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// The node Lease's duration; the agent renews it every quarter of it.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(i32).range(1..))]
    node_lease_duration_seconds: i32,
    /// The cluster's pod range.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// The Linux bridge pods attach to.
    #[arg(long, default_value = "skiff0")]
    bridge: String,
    /// The port of the kubelet server the API server calls for logs and exec; 0 picks a free one.
    #[arg(long, default_value_t = skiff_agent::server::DEFAULT_PORT)]
    kubelet_port: u16,
    #[command(flatten)]
    registries: RegistryArgs,
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let Some(count) = args.simulate else {
        return real_agent(args).await;
    };
    let client = agent_client(&args).await?;
    let config = skiff_agent::simulate::SimulatorConfig {
        prefix: args.node_name.clone().unwrap_or_else(|| "sim".into()),
        count,
        ready_delay: std::time::Duration::from_millis(args.ready_delay),
        ..Default::default()
    };
    let last = count.saturating_sub(1);
    println!("skiff agent simulating {count} nodes {prefix}-0 … {prefix}-{last}", prefix = config.prefix);
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("signal handler")?;
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    skiff_agent::simulate::run(client, config, stop).await.context("the node simulator failed")
}

/// Runs the real node agent: pods as runc containers on the `--bridge` network.
async fn real_agent(args: AgentArgs) -> anyhow::Result<()> {
    use skiff_agent::agent::{PodCidr, PodCidrHook};
    use skiff_agent::runc_runtime::{RuncConfig, RuncRuntime};
    let client = agent_client(&args).await?;
    let defaults = RuncConfig::new(args.data_dir.clone());
    let mut runtime_config = RuncConfig {
        bridge: args.bridge.clone(),
        pod_cidr: args.pod_cidr.clone().unwrap_or_else(|| defaults.pod_cidr.clone()),
        cluster_cidr: args.cluster_cidr.clone(),
        ..defaults
    };
    args.registries.apply(&mut runtime_config)?;
    let runtime =
        std::sync::Arc::new(RuncRuntime::new(runtime_config).await.context("cannot start the container runtime")?);
    let node_name = args.node_name.clone().unwrap_or_else(hostname);
    let mut config = skiff_agent::agent::AgentConfig::new(&node_name, args.data_dir.clone());
    config.node_ip = args.node_ip;
    config.lease_duration_seconds = args.node_lease_duration_seconds;
    config.lease_renew_interval = std::time::Duration::from_millis(args.node_lease_duration_seconds as u64 * 250);
    config.pod_cidr = args.pod_cidr.clone().map_or(PodCidr::FromNode, PodCidr::Fixed);
    let network = runtime.clone();
    config.on_pod_cidr = Some(PodCidrHook(std::sync::Arc::new(move |cidr: &str| network.set_pod_cidr(cidr))));
    config.node_routes = true;
    config.cluster_cidr = Some(args.cluster_cidr.clone());
    let client_ca_pem = match (&args.kubeconfig, &args.certificate_authority) {
        (Some(path), _) => kubeconfig_ca(path).await?,
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the CA certificate {}", path.display()))?,
        (None, None) => published_cluster_ca(&client).await,
    };
    config.streaming = Some(streaming_config(args.kubelet_port, client_ca_pem));
    let pods = args.pod_cidr.as_deref().unwrap_or("from node IPAM");
    println!("skiff agent running node {node_name} (pods {pods} on {})", args.bridge);
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("signal handler")?;
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    skiff_agent::agent::Agent::run(client, config, runtime, stop).await.context("the node agent failed")
}

/// `skiff image ...`: the image store of the server's own node agent.
async fn image(cmd: ImageCommand) -> anyhow::Result<()> {
    let open = |data_dir: &std::path::Path| {
        let dir = skiff_agent::runc_runtime::RuncConfig::new(data_dir.join("agent")).image_dir();
        skiff_runtime::ImageStore::open(dir, skiff_runtime::StoreConfig::default())
            .context("cannot open the image store")
    };
    match cmd {
        ImageCommand::Import { file, name, data_dir } => {
            let store = open(&data_dir)?;
            for image in store.import(&file, name.as_deref()).await.context("cannot import the image")? {
                println!("imported {} ({})", image.reference, image.digest);
            }
        }
        ImageCommand::Ls { data_dir } => {
            println!("{:<60} DIGEST", "REFERENCE");
            for image in open(&data_dir)?.list().context("cannot list images")? {
                println!("{:<60} {}", image.reference, image.digest);
            }
        }
        ImageCommand::Rm { reference, data_dir } => {
            open(&data_dir)?.remove(&reference).await.context("cannot remove the image")?;
            println!("removed {reference}");
        }
    }
    Ok(())
}

/// How `skiff server` runs the node agent of its own machine (from its flags).
struct EmbeddedNode {
    pod_cidr: String,
    cluster_cidr: String,
    bridge: String,
    kubelet_port: u16,
    registries: RegistryArgs,
}

/// The node agent of the server's own machine: `client` is a loopback client of the server, the
/// kubeconfig gives the cluster CA its kubelet server trusts.
async fn embedded_agent(
    client: kube::Client,
    kubeconfig: &std::path::Path,
    data_dir: PathBuf,
    node: EmbeddedNode,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use skiff_agent::runc_runtime::{RuncConfig, RuncRuntime};
    let EmbeddedNode { pod_cidr, cluster_cidr, bridge, kubelet_port, registries } = node;
    let mut runtime_config = RuncConfig {
        bridge,
        pod_cidr: pod_cidr.clone(),
        cluster_cidr: cluster_cidr.clone(),
        ..RuncConfig::new(data_dir.clone())
    };
    registries.apply(&mut runtime_config)?;
    let runtime = RuncRuntime::new(runtime_config).await.context("cannot start the container runtime")?;
    let mut config = skiff_agent::agent::AgentConfig::new(&hostname(), data_dir);
    config.streaming = Some(streaming_config(kubelet_port, kubeconfig_ca(kubeconfig).await?));
    // The server's own node keeps the range it was given (node IPAM records it as taken) and
    // routes to the pod ranges of the cluster's other nodes.
    config.pod_cidr = skiff_agent::agent::PodCidr::Fixed(pod_cidr);
    config.node_routes = true;
    config.cluster_cidr = Some(cluster_cidr);
    skiff_agent::agent::Agent::run(client, config, std::sync::Arc::new(runtime), stop)
        .await
        .context("the node agent failed")
}

/// The kubelet server on all addresses at `port`, accepting clients of the cluster CA.
fn streaming_config(port: u16, client_ca_pem: String) -> skiff_agent::server::StreamingConfig {
    skiff_agent::server::StreamingConfig {
        bind: std::net::SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), port),
        client_ca_pem,
    }
}

/// The cluster CA a kubeconfig trusts (`certificate-authority-data` or `certificate-authority`),
/// as PEM: the API server's kubelet client certificate is signed by it.
async fn kubeconfig_ca(path: &std::path::Path) -> anyhow::Result<String> {
    let kc = kube::config::Kubeconfig::read_from(path).context("cannot read the kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .context("cannot use the kubeconfig")?;
    match config.root_cert {
        Some(certs) if !certs.is_empty() => Ok(skiff_agent::server::tls::der_to_pem(&certs)),
        _ => anyhow::bail!("the kubeconfig {} names no certificate authority", path.display()),
    }
}

/// The cluster CA the controllers publish (`kube-system/kube-root-ca.crt`), waiting until it
/// exists.
async fn published_cluster_ca(client: &kube::Client) -> String {
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(client.clone(), "kube-system");
    let mut told = false;
    loop {
        match api.get_opt("kube-root-ca.crt").await {
            Ok(Some(cm)) => {
                if let Some(pem) = cm.data.and_then(|mut d| d.remove("ca.crt")).filter(|p| !p.trim().is_empty()) {
                    return pem;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "cannot read kube-system/kube-root-ca.crt"),
        }
        if !told {
            tracing::info!("waiting for the cluster CA (ConfigMap kube-system/kube-root-ca.crt)");
            told = true;
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// The agent's client: from --kubeconfig, or from --server and --token.
async fn agent_client(args: &AgentArgs) -> anyhow::Result<kube::Client> {
    if let Some(path) = &args.kubeconfig {
        return kube_client(path).await;
    }
    let Some(token) = args.token.as_ref().filter(|_| !args.server.is_empty()) else {
        anyhow::bail!("give --server and --token, or --kubeconfig");
    };
    let server = match args.server.as_slice() {
        [one] => one.clone(),
        several => {
            let lb = skiff_agent::lb::LoadBalancer::start(several, skiff_agent::lb::LbOptions::default())
                .await
                .context("cannot start the API server load balancer")?;
            // The servers' certificates name 127.0.0.1, the address the client now connects to.
            lb.detach()
        }
    };
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let ca = match &args.certificate_authority {
        Some(path) => format!("certificate-authority: {}", quote(&path.display().to_string())),
        None if args.insecure_skip_tls_verify => "insecure-skip-tls-verify: true".to_string(),
        None => anyhow::bail!("give --certificate-authority FILE (or --insecure-skip-tls-verify) with --server"),
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {}\n    {ca}\n\
         users:\n- name: agent\n  user:\n    token: {}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: agent\n\
         current-context: skiff\n",
        quote(&server),
        quote(token)
    );
    let kc =
        kube::config::Kubeconfig::from_yaml(&yaml).context("cannot build a kubeconfig from --server and --token")?;
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .context("cannot use --server and --token")?;
    agent_client_from(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;
    use skiff_cli::Verb;
    use skiff_cli::commands::CreateWhat;
    use skiff_cli::rollout::RolloutWhat;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("skiff").chain(args.iter().copied()))?.checked()
    }

    /// The verb `skiff ARGS` runs, with the flags given before it merged in (as `main` does).
    fn verb(args: &[&str]) -> Verb {
        match parse(args) {
            Ok(Cli { globals, command: Command::Cli(verb) }) => verb.with_globals(&globals),
            Ok(_) => panic!("{args:?} is not a kubectl-like verb"),
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    fn error_kind(args: &[&str]) -> ErrorKind {
        match parse(args) {
            Ok(_) => panic!("{args:?} parsed"),
            Err(e) => e.kind(),
        }
    }

    /// (kubeconfig, namespace) a verb will use.
    type Flags = (Option<String>, Option<String>);

    fn flags(verb: &mut Verb) -> Flags {
        let common = verb.common_mut();
        (common.kubeconfig.as_ref().map(|p| p.display().to_string()), common.namespace.clone())
    }

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_verb() {
        let some = |s: &str| Some(s.to_string());
        let cases: [(&[&str], Flags); 12] = [
            (&["-n", "x", "get", "pods"], (None, some("x"))),
            (&["get", "pods", "-n", "x"], (None, some("x"))),
            (&["get", "-n", "x", "pods"], (None, some("x"))),
            (&["--namespace=x", "get", "pods"], (None, some("x"))),
            (&["-nx", "get", "pods"], (None, some("x"))),
            (&["--kubeconfig", "k", "-n", "x", "logs", "p"], (some("k"), some("x"))),
            (&["--kubeconfig=k", "logs", "p", "-n", "x"], (some("k"), some("x"))),
            // kubectl keeps the last occurrence: the one after the verb.
            (&["-n", "a", "get", "pods", "-n", "b"], (None, some("b"))),
            (&["--kubeconfig", "k", "get", "pods", "--kubeconfig", "k2"], (some("k2"), None)),
            (&["get", "pods"], (None, None)),
            // After `--` the words are the remote command's, not skiff's.
            (&["exec", "p", "--", "kubectl", "-n", "y"], (None, None)),
            (&["-n", "x", "exec", "p", "--", "kubectl", "-n", "y"], (None, some("x"))),
        ];
        for (args, want) in cases {
            let mut v = verb(args);
            assert_eq!(flags(&mut v), want, "{args:?}");
        }
    }

    #[test]
    fn verbs_parse_the_same_with_global_flags_before_them() {
        let Verb::Get(get) = verb(&["-n", "x", "get", "pods", "-A", "-o", "wide"]) else { panic!("get") };
        assert_eq!(
            (get.args, get.selection.all_namespaces, get.output.as_deref()),
            (vec!["pods".into()], true, Some("wide"))
        );
        let Verb::Logs(logs) = verb(&["--kubeconfig", "k", "-n", "x", "logs", "p"]) else { panic!("logs") };
        assert_eq!(logs.target, "p");
        let Verb::Exec(exec) = verb(&["-n", "x", "exec", "-it", "p", "--", "sh", "-c", "stty size"]) else {
            panic!("exec")
        };
        assert_eq!((exec.pod.as_str(), exec.stdin, exec.tty), ("p", true, true));
        assert_eq!(exec.command, ["sh", "-c", "stty size"]);
        assert_eq!(exec.common.namespace.as_deref(), Some("x"));
        // Nested subcommands get them too.
        let mut v = verb(&["-n", "x", "rollout", "status", "deploy/web"]);
        assert_eq!(flags(&mut v), (None, Some("x".into())));
        let Verb::Rollout(r) = v else { panic!("rollout") };
        let RolloutWhat::Status(status) = r.what else { panic!("rollout status") };
        assert_eq!(status.args, ["deploy/web"]);
        let mut v = verb(&["-n", "x", "create", "deployment", "web", "--image=nginx"]);
        assert_eq!(flags(&mut v), (None, Some("x".into())));
        let Verb::Create(c) = v else { panic!("create") };
        let CreateWhat::Deployment(d) = c.what else { panic!("create deployment") };
        assert_eq!((d.name.as_str(), d.image.as_slice()), ("web", &["nginx".to_string()][..]));
        let mut v = verb(&["--kubeconfig", "k", "set", "image", "deploy/web", "nginx=nginx:1.27"]);
        assert_eq!(flags(&mut v), (Some("k".into()), None));
    }

    #[test]
    fn per_command_flags_stay_after_the_verb() {
        // kubectl's -A, -l and -o belong to their commands, not to the root.
        for args in [&["-A", "get", "pods"][..], &["-l", "app=web", "get", "pods"], &["-o", "yaml", "get", "pods"]] {
            assert_eq!(error_kind(args), ErrorKind::UnknownArgument, "{args:?}");
        }
    }

    #[test]
    fn global_flags_are_refused_before_the_daemons() {
        for args in [
            &["-n", "x", "server"][..],
            &["--kubeconfig", "k", "agent", "--kubeconfig", "k2"],
            &["-n", "x", "agent", "--simulate", "2", "--kubeconfig", "k"],
            &["-n", "x", "image", "ls"],
            &["--kubeconfig", "k", "completion", "bash"],
        ] {
            assert_eq!(error_kind(args), ErrorKind::ArgumentConflict, "{args:?}");
        }
        let message = parse(&["-n", "x", "server"]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("the argument '--namespace' before 'server' applies to the kubectl-like verbs only"),
            "{message}"
        );
    }

    #[test]
    fn server_and_agent_flags_parse_as_before() {
        let Ok(Cli { command: Command::Server(s), .. }) = parse(&[
            "server",
            "--data-dir",
            "/d",
            "--port",
            "0",
            "--no-agent",
            "--datastore-endpoint",
            "http://a:2379,http://b:2379",
            "--registry-mirror",
            "docker.io=http://127.0.0.1:5000",
        ]) else {
            panic!("server")
        };
        assert_eq!((s.data_dir, s.port, s.no_agent), (PathBuf::from("/d"), 0, true));
        assert_eq!(s.datastore_endpoint, ["http://a:2379", "http://b:2379"]);
        assert_eq!(s.registries.registry_mirror, ["docker.io=http://127.0.0.1:5000"]);

        let Ok(Cli { command: Command::Agent(a), .. }) = parse(&[
            "agent",
            "--server",
            "https://a:6443,https://b:6443",
            "--token",
            "t",
            "--insecure-skip-tls-verify",
            "--node-name",
            "n",
        ]) else {
            panic!("agent --server")
        };
        assert_eq!(a.server, ["https://a:6443", "https://b:6443"]);
        assert_eq!((a.token.as_deref(), a.insecure_skip_tls_verify, a.kubeconfig), (Some("t"), true, None));
        assert_eq!(a.node_name.as_deref(), Some("n"));
        // A token may start with '-' (tokens of data directories made before tokens were hex).
        let Ok(Cli { command: Command::Agent(a), .. }) =
            parse(&["agent", "--server", "https://a:6443", "--token", "-Lq2x", "--node-name", "n"])
        else {
            panic!("agent --token -Lq2x")
        };
        assert_eq!((a.token.as_deref(), a.node_name.as_deref()), (Some("-Lq2x"), Some("n")));

        let Ok(Cli { command: Command::Agent(a), globals }) = parse(&["agent", "--kubeconfig", "k", "--simulate", "3"])
        else {
            panic!("agent --kubeconfig")
        };
        assert_eq!((a.kubeconfig, a.simulate), (Some(PathBuf::from("k")), Some(3)));
        assert!(globals.is_empty(), "the agent's --kubeconfig is its own");

        // The agent's own rules are unchanged.
        assert_eq!(
            error_kind(&["agent", "--kubeconfig", "k", "--server", "s", "--token", "t"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(error_kind(&["agent", "--server", "s"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(error_kind(&["agent", "-n", "x"]), ErrorKind::UnknownArgument);
    }
}
