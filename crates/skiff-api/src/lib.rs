//! The Kubernetes API as Skiff serves it, without any I/O.
//!
//! Objects travel through Skiff as `serde_json::Value` (the wire form); the `k8s-openapi` types are the
//! schema used to check them. Everything here is a pure function of its inputs, so the API server, the
//! controllers and the CLI share one definition of each rule.

pub mod defaults;
pub mod discovery;
pub mod duplicates;
pub mod duration;
pub mod error;
pub mod event_counts;
pub mod meta;
pub mod openapi;
pub mod patch;
pub mod proto;
pub mod resource;
pub mod schema;
pub mod selector;
pub mod table;
pub mod validation;

pub use error::{ApiError, Cause};
pub use resource::{ResourceInfo, Scope, Subresource};
