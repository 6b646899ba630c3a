//! `skiff`: one binary for the server and its tools. `main` only parses arguments and calls into
//! the crates that do the work.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "skiff", version, about = "A Kubernetes-compatible container orchestrator in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (with its store) on this machine.
    Server(ServerArgs),
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
    /// Serve the API only: run no controllers and no scheduler in this process.
    #[arg(long)]
    no_controllers: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    match cli.command {
        Command::Server(args) => runtime.block_on(server(args)),
    }
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let config = skiff_apiserver::Config { data_dir: args.data_dir, bind: args.bind, port: args.port };
    let running = skiff_apiserver::start(config).await.context("cannot start the server")?;
    tracing::info!(address = %running.addr, kubeconfig = %running.kubeconfig.display(), "serving the Kubernetes API");
    println!("skiff server listening on https://{}", running.addr);
    println!("kubeconfig: {}", running.kubeconfig.display());
    let stop = tokio_util::sync::CancellationToken::new();
    let mut background = Vec::new();
    if !args.no_controllers {
        let client = kube_client(&running.kubeconfig).await?;
        let ca_pem = std::fs::read_to_string(running.kubeconfig.with_file_name("pki").join("ca.crt"))
            .context("cannot read the cluster CA")?;
        let identity = format!("{}_{}", hostname(), skiff_api::meta::new_uid());
        let timings = skiff_controllers::leader::Timings::default();
        let config = skiff_controllers::manager::Config { identity: identity.clone(), ca_pem, timings };
        background.push(tokio::spawn(skiff_controllers::manager::run(client.clone(), config, stop.clone())));
        let scheduler_stop = stop.clone();
        background.push(tokio::spawn(async move {
            skiff_controllers::leader::run_elected(client.clone(), "kube-scheduler", &identity, timings, scheduler_stop, |token| {
                skiff_scheduler::run(client.clone(), token.cancelled_owned())
            })
            .await;
        }));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("signal handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    stop.cancel();
    for task in background {
        let _ = task.await;
    }
    running.stop().await;
    Ok(())
}

/// A client of this server, from the kubeconfig it wrote.
async fn kube_client(kubeconfig: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).context("cannot read the kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .context("cannot use the kubeconfig")?;
    kube::Client::try_from(config).context("cannot build a client")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "skiff".into())
}
