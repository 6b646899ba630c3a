//! Skiff's API server: the Kubernetes REST API over TLS, backed by a [`skiff_store::Store`].
//!
//! Only this crate knows HTTP routes. Requests go: [`server`] (TLS, HTTP/1.1 and HTTP/2) →
//! [`router`] (authentication, non-resource endpoints, metrics) → [`handlers`] (decode, encode) →
//! [`registry`] (API machinery semantics) → the store.

pub mod handlers;
pub mod metrics;
pub mod namespaces;
pub mod pki;
pub mod registry;
pub mod request;
pub mod response;
pub mod router;
pub mod server;
pub mod strategy;
pub mod watch;

use serde_json::Value;
use skiff_api::ApiError;

pub use server::{Config, RunningServer, ServerError, start};

/// Everything a request handler needs.
pub struct App {
    pub registry: registry::Registry,
    /// The admin bearer token.
    pub token: String,
    pub metrics: metrics::Metrics,
    /// `host:port` clients reach the server at (discovery's `serverAddressByClientCIDRs`).
    pub address: String,
}

/// The error for pod subresources that a node agent serves (`log`, `exec`) while no agent serves them.
pub fn node_pending(pod: &Value, what: &str) -> ApiError {
    let name = skiff_api::meta::name(pod);
    match pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
        None => ApiError::bad_request(format!("pod {name} does not have a host assigned")),
        Some(node) => ApiError::unavailable(format!("no node agent serves {what} for node {node:?}")),
    }
}
