//! The garbage collector (upstream `pkg/controller/garbagecollector/`): deletes objects whose owners
//! are gone, and finishes the foreground and orphan deletions the API server starts.
//!
//! The API server only marks a DELETE: `propagationPolicy: Foreground` adds the `foregroundDeletion`
//! finalizer, `Orphan` adds `orphan`, `Background` deletes the object at once. The collector does
//! the rest:
//! * **dangling dependents**: an object none of whose owners exists any more (checked with a live
//!   GET by name; a different UID under that name counts as absent) is deleted, in the background
//!   unless it carries a finalizer asking otherwise;
//! * **foreground**: the dependents of an owner with `foregroundDeletion` are deleted (those with
//!   dependents of their own in the foreground, so it propagates down the chain); once no dependent
//!   with `blockOwnerDeletion: true` remains, the finalizer goes and with it the owner;
//! * **orphan**: the owner's UID is removed from its dependents' ownerReferences, then the `orphan`
//!   finalizer goes.
//!
//! Layout: [`graph`] is the dependency graph and the work each observed change calls for;
//! [`decide`] the pure decisions; [`patch`] the merge patches sent; [`queue`] the work queue;
//! [`monitor`] the list+watch of every served resource feeding the graph; [`worker`] the executor.

pub mod decide;
pub mod graph;
pub mod monitor;
pub mod patch;
pub mod queue;
pub mod worker;

use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use graph::Graph;
use monitor::Shared;
use queue::WorkQueue;
use worker::Worker;

pub use graph::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};

/// Workers processing the queue in parallel (upstream's `--concurrent-gc-syncs` defaults to 20;
/// Skiff's clusters are small).
pub const DEFAULT_WORKERS: usize = 4;

/// The garbage collector; [`run`] is the short way to start one.
pub struct GarbageCollector {
    client: kube::Client,
    workers: usize,
}

impl GarbageCollector {
    pub fn new(client: kube::Client) -> GarbageCollector {
        GarbageCollector { client, workers: DEFAULT_WORKERS }
    }

    /// Sets how many items are processed at once (at least one).
    pub fn workers(mut self, n: usize) -> GarbageCollector {
        self.workers = n.max(1);
        self
    }

    /// Watches every served resource and collects garbage until `shutdown` resolves. Workers start
    /// once every resource has been listed, so that owners listed after their dependents are in
    /// the graph before anything is decided (decisions still check owners with live GETs).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let shared = Arc::new(Shared { graph: Mutex::new(Graph::new()), queue: Arc::new(WorkQueue::new()) });
        let mut tasks = tokio::task::JoinSet::new();
        let resources = monitor::monitored();
        let (synced_tx, mut synced_rx) = mpsc::unbounded_channel();
        for r in &resources {
            tasks.spawn(monitor::monitor(self.client.clone(), r, shared.clone(), synced_tx.clone()));
        }
        drop(synced_tx);
        let synced = async {
            let mut n = 0;
            while n < resources.len() && synced_rx.recv().await.is_some() {
                n += 1;
            }
        };
        tokio::pin!(shutdown);
        tokio::select! {
            _ = &mut shutdown => {}
            _ = synced => {
                tracing::info!(objects = shared.graph.lock().len(), "garbage collector: dependency graph synced; starting workers");
                for _ in 0..self.workers {
                    tasks.spawn(Worker::new(self.client.clone(), shared.clone()).run());
                }
                shutdown.await;
            }
        }
        tasks.shutdown().await;
    }
}

/// Runs the garbage collector with [`DEFAULT_WORKERS`] workers until `shutdown` resolves.
pub async fn run(client: kube::Client, shutdown: impl Future<Output = ()> + Send) {
    GarbageCollector::new(client).run(shutdown).await
}
