//! The ReplicaSet controller (`k/k pkg/controller/replicaset/`): keeps `spec.replicas` pods running
//! for each ReplicaSet, adopting matching orphans and releasing pods that stop matching, and reports
//! what it sees in `status`.
//!
//! Codemap:
//! - [`mod@plan`] — the pure sync: claims, creates (slow start, burst 500), deletes, status;
//! - [`rank`] — which pods are least valuable on scale-down;
//! - [`claim`] — adoption and release, and their strategic-merge patches;
//! - [`status`] — status counters, the ReplicaFailure condition, availability re-checks;
//! - [`expectations`] — what the controller waits to see in its cache after its own writes;
//! - [`pods`] — facts about one pod (active, ready, available, controller);
//! - [`cache`], [`handlers`], [`queue`] — the informer-like cache, its event handlers, the work queue;
//! - [`mod@run`] — the executor: list+watch, workers, API calls, Events.

pub mod cache;
pub mod claim;
pub mod expectations;
pub mod handlers;
pub mod plan;
pub mod pods;
pub mod queue;
pub mod rank;
pub mod run;
pub mod status;

pub use expectations::ControllerExpectations;
pub use plan::{Manage, Plan, SyncInput, plan};
pub use run::{Options, ReplicaSetController, run, run_with};

/// The Event source component and the name in logs (`replicaset-controller`).
pub const CONTROLLER_NAME: &str = "replicaset-controller";

/// The field manager of the controller's writes, as the API server derives it from
/// kube-controller-manager's User-Agent.
pub const FIELD_MANAGER: &str = "kube-controller-manager";

/// A User-Agent like kube-controller-manager's; set it on the client's `kube::Config::headers` so
/// the API server derives the same field manager for every write, Events included.
pub const USER_AGENT: &str = "kube-controller-manager/v1.35.0 (linux/amd64) kubernetes";
