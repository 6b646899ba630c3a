//! Skiff's controllers: the desired-state loops of Kubernetes' controller manager.
//!
//! Each controller is a pure *plan* function from observed state to actions, tested without I/O, and a
//! thin executor that observes through list+watch caches and acts through the Kubernetes API. Nothing
//! here touches the store.

pub mod deployment;
pub mod events;
pub mod gc;
pub mod leader;
pub mod manager;
pub mod namespace_defaults;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod replicaset;
