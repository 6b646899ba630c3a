//! Test support for Skiff's crates (a dev-dependency only, never published).
//!
//! [`TestServer`] is the in-process API server the integration tests of the controllers, the
//! scheduler, the agent and the API server run against, with its clients. Its store is chosen by
//! the environment variable `SKIFF_TEST_STORE` ([`Backend::from_env`]), so the same tests run on
//! both backends of the `Store` trait:
//!
//! - `sqlite` (the default, also when the variable is unset or empty): `skiff_apiserver::start`,
//!   which opens `DATA_DIR/state.db`, as `skiff server` does;
//! - `etcd`: a private etcd process for this one server (`skiff_store::testing::EtcdServer`, on
//!   free loopback ports) and an `EtcdStore` on it, given to `skiff_apiserver::start_with_store`.
//!   It needs a real etcd (`/usr/bin/etcd` or `$SKIFF_ETCD_BIN`): without it the test fails.
//!
//! `scripts/test.sh` runs the suites once on each.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use skiff_apiserver::{Config, RunningServer};
use skiff_store::testing::EtcdServer;
use skiff_store::{EtcdOptions, EtcdStore, Store};

/// The environment variable that chooses the store of every [`TestServer::start`].
pub const STORE_ENV: &str = "SKIFF_TEST_STORE";

/// Which store a [`TestServer`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite store in the server's data directory.
    Sqlite,
    /// A private etcd started for the server.
    Etcd,
}

impl Backend {
    /// The backend `SKIFF_TEST_STORE` names. Panics on any value other than `sqlite` or `etcd`
    /// (unset or empty means `sqlite`): a typo must not silently run the tests on SQLite again.
    pub fn from_env() -> Backend {
        let value = std::env::var(STORE_ENV).ok();
        Backend::parse(value.as_deref()).unwrap_or_else(|message| panic!("{message}"))
    }

    /// Parses the value of `SKIFF_TEST_STORE` (`None` when unset).
    pub fn parse(value: Option<&str>) -> Result<Backend, String> {
        match value.unwrap_or("") {
            "" | "sqlite" => Ok(Backend::Sqlite),
            "etcd" => Ok(Backend::Etcd),
            other => Err(format!("{STORE_ENV}={other:?} is not a test store: use `sqlite` (the default) or `etcd`")),
        }
    }
}

/// An API server running in this process on a temporary data directory, with the store chosen by
/// `SKIFF_TEST_STORE`.
///
/// Dropping it stops the server's accept loop (when dropped inside a Tokio runtime), closes the
/// etcd store and kills the private etcd, then removes the data directory. [`TestServer::stop`]
/// also waits for the accept loop to end.
pub struct TestServer {
    backend: Backend,
    server: Option<RunningServer>,
    /// The client configuration from the server's kubeconfig; [`TestServer::client`] adds the
    /// user agent.
    config: kube::Config,
    /// The etcd store (to close it before etcd goes away) and its etcd, on [`Backend::Etcd`].
    etcd_store: Option<Arc<EtcdStore>>,
    // Dropped in declaration order: the store above is closed before etcd is killed, and the data
    // directory is removed last.
    etcd: Option<EtcdServer>,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server on the backend `SKIFF_TEST_STORE` names (see [`Backend::from_env`]).
    pub async fn start() -> TestServer {
        TestServer::start_on(Backend::from_env()).await
    }

    /// Starts a server on `backend`, listening on a free port of 127.0.0.1, with the default
    /// history. Installs rustls' `ring` provider as the process default (kube's client needs one).
    pub async fn start_on(backend: Backend) -> TestServer {
        // An error means a provider is already installed (another server in this process).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("a temporary data directory");
        let config = Config { data_dir: dir.path().to_path_buf(), bind: [127, 0, 0, 1].into(), port: 0, history: None };
        let (server, etcd_store, etcd) = match backend {
            Backend::Sqlite => {
                (skiff_apiserver::start(config).await.expect("the API server starts on SQLite"), None, None)
            }
            Backend::Etcd => {
                let etcd = start_etcd().await;
                let store = EtcdStore::connect(&etcd.endpoints(), EtcdOptions::default())
                    .await
                    .expect("the store connects to the test's etcd");
                let store = Arc::new(store);
                let dyn_store: Arc<dyn Store> = store.clone();
                let server =
                    skiff_apiserver::start_with_store(config, dyn_store).await.expect("the API server starts on etcd");
                (server, Some(store), Some(etcd))
            }
        };
        let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("read the kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .expect("a client config from the kubeconfig");
        TestServer { backend, server: Some(server), config, etcd_store, etcd, dir }
    }

    /// The store this server runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A new client of the server, as the admin (the kubeconfig's token), sending `user_agent` as
    /// its `User-Agent`, from which the server derives the `managedFields` manager of requests
    /// without `fieldManager` (`kube-controller-manager/v1.35.0 (linux/amd64) kubernetes` gives
    /// `kube-controller-manager`). Must be called inside a Tokio runtime.
    pub fn client(&self, user_agent: &str) -> kube::Client {
        let mut config = self.config.clone();
        let value = user_agent.parse().unwrap_or_else(|e| panic!("user agent {user_agent:?}: {e}"));
        config.headers.push(("user-agent".parse().expect("a header name"), value));
        kube::Client::try_from(config).expect("a client")
    }

    /// A client that reaches the server's router in memory, as `skiff server`'s own controllers
    /// and scheduler do (see `skiff_apiserver::loopback`), sending `user_agent` as [`client`]'s
    /// does. Must be called inside a Tokio runtime.
    ///
    /// [`client`]: TestServer::client
    pub fn loopback_client(&self, user_agent: &str) -> kube::Client {
        skiff_apiserver::loopback::client(&self.running().app, user_agent)
    }

    /// The server's kubeconfig (`DATA_DIR/kubeconfig.yaml`), for kubectl or more clients.
    pub fn kubeconfig(&self) -> &Path {
        &self.running().kubeconfig
    }

    /// The server's data directory (credentials in `pki/`, the kubeconfig, and on SQLite
    /// `state.db`).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.running().addr
    }

    /// The running server (its `App`: registry, admin token, metrics).
    pub fn server(&self) -> &RunningServer {
        self.running()
    }

    /// The client URLs of the private etcd (`None` on SQLite), for tests that look at etcd itself.
    pub fn etcd_endpoints(&self) -> Option<Vec<String>> {
        self.etcd.as_ref().map(EtcdServer::endpoints)
    }

    /// Stops accepting connections and waits for the accept loop to end, then closes the store,
    /// kills etcd and removes the data directory.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    fn running(&self) -> &RunningServer {
        // Only `stop` (which consumes self) and `drop` take the server.
        self.server.as_ref().expect("the server is running until stopped")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(server.stop());
        }
        if let Some(store) = self.etcd_store.take() {
            store.close();
        }
    }
}

/// Starts a private etcd off the runtime's threads (it blocks until etcd is healthy), keeping the
/// panic message when etcd is missing or does not start.
async fn start_etcd() -> EtcdServer {
    match tokio::task::spawn_blocking(EtcdServer::start).await {
        Ok(etcd) => etcd,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("starting etcd: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};
    use serde_json::json;

    use super::*;

    #[test]
    fn backend_from_the_environment_value() {
        let cases: [(Option<&str>, Result<Backend, String>); 6] = [
            (None, Ok(Backend::Sqlite)),
            (Some(""), Ok(Backend::Sqlite)),
            (Some("sqlite"), Ok(Backend::Sqlite)),
            (Some("etcd"), Ok(Backend::Etcd)),
            (
                Some("ETCD"),
                Err(r#"SKIFF_TEST_STORE="ETCD" is not a test store: use `sqlite` (the default) or `etcd`"#.to_owned()),
            ),
            (
                Some("postgres"),
                Err(r#"SKIFF_TEST_STORE="postgres" is not a test store: use `sqlite` (the default) or `etcd`"#
                    .to_owned()),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(Backend::parse(value), want, "{value:?}");
        }
    }

    /// Starts a server on `backend`, writes through a client with a user agent, and checks where
    /// the data went.
    async fn round_trip(backend: Backend) {
        let server = TestServer::start_on(backend).await;
        assert_eq!(server.backend(), backend);
        assert_eq!(server.kubeconfig(), server.data_dir().join("kubeconfig.yaml"));
        assert!(server.data_dir().join("pki/ca.crt").is_file(), "credentials in the data dir");
        assert_eq!(server.addr().ip().to_string(), "127.0.0.1");
        assert_eq!(server.data_dir().join("state.db").exists(), backend == Backend::Sqlite);
        assert_eq!(server.etcd_endpoints().is_some(), backend == Backend::Etcd);

        let client = server.client("skiff-testkit-test/v0.1.0 (linux/amd64)");
        let api: Api<ConfigMap> = Api::namespaced(client, "default");
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "probe"}, "data": {"k": "v"}})).expect("configmap");
        let created = api.create(&PostParams::default(), &cm).await.expect("create");
        let managers: Vec<String> =
            created.metadata.managed_fields.iter().flatten().filter_map(|m| m.manager.clone()).collect();
        assert_eq!(managers, ["skiff-testkit-test"]);
        let read = api.get("probe").await.expect("get");
        assert_eq!(read.data.and_then(|d| d.get("k").cloned()).as_deref(), Some("v"));
        assert_eq!(read.metadata.resource_version, created.metadata.resource_version);

        let data_dir = server.data_dir().to_path_buf();
        let etcd = server.etcd_endpoints();
        server.stop().await;
        assert!(!data_dir.exists(), "the data directory is removed");
        if let Some(endpoints) = etcd {
            let port = endpoints[0].rsplit(':').next().expect("port").parse::<u16>().expect("port number");
            assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "etcd is killed");
        }
    }

    #[tokio::test]
    async fn serves_from_sqlite() {
        round_trip(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn serves_from_a_private_etcd() {
        round_trip(Backend::Etcd).await;
    }

    #[tokio::test]
    async fn dropping_kills_etcd() {
        let server = TestServer::start_on(Backend::Etcd).await;
        let endpoint = server.etcd_endpoints().expect("etcd")[0].clone();
        let port: u16 = endpoint.rsplit(':').next().expect("port").parse().expect("port number");
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "etcd is up");
        drop(server);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "etcd is killed");
    }
}
