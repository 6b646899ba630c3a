//! Skiff's node agent (the kubelet's role): registers its Node, keeps its Lease fresh and runs the
//! pods bound to it. [`simulate`] provides simulated nodes (like KWOK) that do all of that without
//! containers, for tests and scale benchmarks.

pub mod simulate;
