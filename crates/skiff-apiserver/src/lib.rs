//! Skiff's API server: the Kubernetes REST API over TLS, backed by a [`skiff_store::Store`].
//!
//! Only this crate knows HTTP routes. Requests go: [`server`] (TLS, HTTP/1.1 and HTTP/2) →
//! [`router`] (authentication, non-resource endpoints, metrics) → [`handlers`] (decode, encode) →
//! [`registry`] (API machinery semantics) → the store. Pod logs and exec go from the router to
//! [`node_proxy`], which relays them to the pod's node agent. The server's own controllers and
//! scheduler enter at the router, in memory, through the [`loopback`] client.

pub mod handlers;
pub mod loopback;
pub mod metrics;
pub mod namespaces;
pub mod node_proxy;
pub mod pki;
pub mod registry;
pub mod request;
pub mod response;
pub mod router;
pub mod selection;
pub mod server;
pub mod strategy;
pub mod watch;

use std::sync::Arc;

pub use server::{Config, RunningServer, ServerError, start, start_with_store};

/// Everything a request handler needs.
pub struct App {
    pub registry: registry::Registry,
    /// The admin bearer token.
    pub token: String,
    pub metrics: metrics::Metrics,
    /// `host:port` clients reach the server at (discovery's `serverAddressByClientCIDRs`).
    pub address: String,
    /// The TLS client configuration for dialing node agents (kubelet-client certificate).
    pub kubelet_tls: Arc<rustls::ClientConfig>,
}
