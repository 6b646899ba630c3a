//! The Deployment controller (k/k `pkg/controller/deployment/`): rolls a Deployment's pod template
//! out through ReplicaSets named `<deployment>-<pod-template-hash>`.
//!
//! Logic apart from effects: [`plan::plan`] computes, from what the caches show, the writes one sync
//! makes (upstream's one-step-per-sync design, so intermediate states, Events and `kubectl rollout
//! status` messages match Kubernetes); [`run::run`] is the thin executor that watches, claims
//! ReplicaSets and applies the plan through the API.
//!
//! Codemap, named after upstream's files: `hash` (pod-template-hash), `util` (annotations,
//! maxSurge/maxUnavailable, finding the new ReplicaSet, proportions), `adoption` (controller
//! references), `sync` (new ReplicaSet, scaling, cleanup), `rolling`, `recreate`, `progress`
//! (status and conditions), `rollback`, `plan` (the sync's order of operations), `run`.

pub mod adoption;
pub mod hash;
pub mod plan;
pub mod progress;
pub mod recreate;
pub mod rollback;
pub mod rolling;
pub mod run;
pub mod sync;
pub mod util;

pub use plan::{Action, Observed, Plan, plan};
pub use run::run;

#[cfg(test)]
mod tests;
