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

use futures::Stream;
use kube::Resource;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// The list+watch stream a controller caches from: kube's watcher, with `metadata.managedFields`
/// dropped from every object. No controller reads them, and they are the largest part of a cached
/// Pod (controller-runtime's `TransformStripManagedFields` is the same trim for Go controllers).
/// An update built from a cached object keeps the stored entries: the API server keeps them for a
/// write without managedFields (only `[{}]` clears them).
pub fn watch<K>(api: Api<K>, config: watcher::Config) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher(api, config).modify(|obj: &mut K| obj.meta_mut().managed_fields = None)
}
