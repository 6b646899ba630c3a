//! Skiff's container runtime layer: what the node agent drives to run pods.
//!
//! - [`image`]: a content-addressed image store, registry pulls ([`ImageStore::pull`]) and archive
//!   imports ([`ImageStore::import`]); layers are unpacked once ([`layer`]) and shared.
//! - [`rootfs`]: an overlayfs root file system per container.
//! - [`spec`]: the OCI runtime `config.json` of a container, Kubernetes semantics for
//!   command/args, env, user, capabilities and resources.
//! - [`runc`]: the `runc` command line; [`container`]: the container lifecycle on top of it, with
//!   CRI-format logs ([`logs`]) and exit/OOM observation ([`cgroup`]); [`mod@exec`]: `kubectl exec`
//!   processes with their streams or a terminal.
//! - [`nsfs`], [`cni`], [`sandbox`]: the pod's persistent namespaces, its CNI network and files.
//! - [`state`]: the sandbox and container records a restarted agent adopts its pods from
//!   ([`Sandbox::recover`], [`Runtime::recover`]).

pub mod cgroup;
pub mod cni;
pub mod container;
pub mod digest;
pub mod exec;
pub mod image;
mod import;
pub mod layer;
pub mod logs;
pub mod masquerade;
pub mod nsfs;
mod pidfd;
mod pull;
pub mod reference;
pub mod rootfs;
pub mod runc;
pub mod sandbox;
pub mod spec;
pub mod spread;
pub mod state;

pub use container::{
    Container, ContainerError, ContainerRecord, ContainerStatus, ExitInfo, Runtime, RuntimeConfig, UNKNOWN_EXIT_CODE,
};
pub use exec::{ExecError, ExecProcess, ExecReader, ExecSpec, ExecStdin, ExitWaiter, Terminal, exec};
pub use image::{Image, ImageConfig, ImageError, ImageStore, PullOptions, RegistryAuth, StoreConfig};
pub use sandbox::{Sandbox, SandboxConfig};
pub use spec::{BindMount, ContainerConfig};
