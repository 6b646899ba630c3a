//! Skiff's scheduler: binds pending pods to nodes, as kube-scheduler's default profile does.
//!
//! The decision is pure and table-tested: [`info`] digests pods and nodes, [`filter`] says whether
//! a pod can run on a node (and why not, in upstream's words), [`score`] ranks the feasible nodes,
//! [`schedule`] makes one decision and words the "0/N nodes are available" message, and [`cache`]
//! accounts placed and *assumed* pods so back-to-back decisions do not overcommit. [`mod@run`] is the
//! executor over the Kubernetes API: [`run::run`] (or [`run::run_with`] and a [`run::Config`])
//! watches nodes and pods and binds through `pods/{name}/binding`, many bindings in flight.

pub mod cache;
pub mod events;
pub mod filter;
pub mod info;
pub mod quantity;
pub mod resources;
pub mod run;
pub mod schedule;
pub mod score;
pub mod watched;

/// A User-Agent like kube-scheduler's, for the scheduler's client: the API server derives the
/// field manager of its writes (`kube-scheduler`) from it.
pub const USER_AGENT: &str = "kube-scheduler/v1.35.0 (linux/amd64) kubernetes";

pub use run::{Config, run, run_with};
