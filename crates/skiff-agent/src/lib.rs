//! Skiff's node agent (the kubelet's role): registers its Node, keeps its Lease fresh and runs the
//! pods bound to it. [`simulate`] provides simulated nodes (like KWOK) that do all of that without
//! containers, for tests and scale benchmarks.
//!
//! The real agent is a pure plan ([`plan::compute_pod_actions`]) and a pure status
//! ([`status::pod_status`]) driven by an executor ([`agent::Agent`]) over two seams: the
//! [`runtime::ContainerRuntime`] (a fake in [`fake`]) and the [`probe::Prober`]. [`server`] is the
//! kubelet server the API server calls for logs and `kubectl exec`.

pub mod agent;
pub mod backoff;
pub mod env;
pub mod events;
pub mod fake;
pub mod grpc_probe;
pub mod lb;
pub mod netns;
pub mod node;
pub mod observed;
pub mod plan;
pub mod probe;
pub mod routes;
pub mod runc_runtime;
pub mod runtime;
pub mod server;
pub mod simulate;
pub mod status;
pub mod sysctl;
pub mod volumes;

/// A User-Agent like the kubelet's, for the agent's client (real or simulated): the API server
/// derives the field manager of its writes (`kubelet`, as on the status of upstream's pods) from it.
pub const USER_AGENT: &str = "kubelet/v1.35.0 (linux/amd64) kubernetes";
