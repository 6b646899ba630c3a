//! Resource vectors: what a pod requests and what a node offers (`NodeResourcesFit`'s `Resource`),
//! computed the way `k8s.io/component-helpers/resource.PodRequests` does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity::{parse_milli, parse_value};

/// The CPU the scorers assume for a container that requests none (`DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory the scorers assume for a container that requests none (`DefaultMemoryRequest`, 200Mi).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of each resource: CPU in millicores, the rest in whole units (bytes, pods, devices).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// The pod count (`pods` on a node's allocatable).
    pub pods: i64,
    /// Extended resources and hugepages, by name.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// A `ResourceList` (`requests`, `limits`, `allocatable`) as exact integers. Quantities that do
    /// not parse count as zero: the API server validates them, so they only come from a broken store.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list {
            r.set(name, &q.0);
        }
        r
    }

    fn set(&mut self, name: &str, text: &str) {
        let value = if name == "cpu" { parse_milli(text) } else { parse_value(text) }.unwrap_or(0);
        match name {
            "cpu" => self.milli_cpu = value,
            "memory" => self.memory = value,
            "ephemeral-storage" => self.ephemeral_storage = value,
            "pods" => self.pods = value,
            _ => {
                self.scalar.insert(name.to_string(), value);
            }
        }
    }

    /// Adds `other` to `self`, resource by resource.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(other.ephemeral_storage);
        self.pods = self.pods.saturating_add(other.pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    /// Subtracts `other` from `self`, resource by resource (the inverse of [`Resources::add`]).
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(other.ephemeral_storage);
        self.pods = self.pods.saturating_sub(other.pods);
        for (k, v) in &other.scalar {
            if let Some(e) = self.scalar.get_mut(k) {
                *e = e.saturating_sub(*v);
                if *e == 0 {
                    self.scalar.remove(k);
                }
            }
        }
    }

    /// Raises each resource of `self` to at least that of `other`.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.pods = self.pods.max(other.pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }
}

/// What one container requests. A resource with a limit but no request requests its limit (the
/// API server's defaulting does the same, so this only matters for objects that skipped it).
/// With `nonzero`, a missing CPU or memory request counts as the scorers' defaults.
fn container_requests(c: &Container, nonzero: bool) -> Resources {
    let mut r = Resources::default();
    let reqs = c.resources.as_ref();
    if let Some(ResourceRequirements { limits: Some(limits), .. }) = reqs {
        for (name, q) in limits {
            r.set(name, &q.0);
        }
    }
    if let Some(ResourceRequirements { requests: Some(requests), .. }) = reqs {
        for (name, q) in requests {
            r.set(name, &q.0);
        }
    }
    if nonzero {
        let has = |name: &str| {
            reqs.is_some_and(|rr| {
                rr.requests.as_ref().is_some_and(|m| m.contains_key(name))
                    || rr.limits.as_ref().is_some_and(|m| m.contains_key(name))
            })
        };
        if !has("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !has("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// The pod's effective requests (`resource.PodRequests`): the sum of its containers and sidecars,
/// at least the peak of any regular init container (plus the sidecars started before it), plus the
/// pod overhead. Pod-level `spec.resources.requests` replace the computed CPU and memory.
/// `pods` is always 1: each pod takes one slot of the node's pod capacity.
pub fn pod_requests(spec: &PodSpec, nonzero: bool) -> Resources {
    let mut reqs = Resources::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c, nonzero));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let mut this = container_requests(c, nonzero);
        if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&this);
            sidecars.add(&this);
            this = sidecars.clone();
        } else {
            this.add(&sidecars);
        }
        init_peak.max_with(&this);
    }
    reqs.max_with(&init_peak);
    if let Some(pod_level) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        let level = Resources::from_list(pod_level);
        if pod_level.contains_key("cpu") {
            reqs.milli_cpu = level.milli_cpu;
        }
        if pod_level.contains_key("memory") {
            reqs.memory = level.memory;
        }
    }
    if let Some(overhead) = &spec.overhead {
        reqs.add(&Resources::from_list(overhead));
    }
    reqs.pods = 1;
    reqs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).expect("a PodSpec")
    }

    fn res(cpu: i64, mem: i64) -> Resources {
        Resources { milli_cpu: cpu, memory: mem, pods: 1, ..Resources::default() }
    }

    #[test]
    fn pod_requests_cases() {
        let cases = [
            ("no requests", json!({"containers": [{"name": "a"}]}), res(0, 0), res(100, 200 << 20)),
            (
                "sum of containers",
                json!({"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}}]}),
                res(350, (64 << 20) + (1 << 30)),
                res(350, (64 << 20) + (1 << 30)),
            ),
            (
                "limits without requests",
                json!({"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}),
                res(1000, 1 << 30),
                res(1000, 1 << 30),
            ),
            (
                "init container peak wins",
                json!({"initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
                       "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Mi"}}}]}),
                res(2000, 1 << 20),
                res(2000, 200 << 20),
            ),
            (
                "sidecar adds and counts during later inits",
                json!({"initContainers": [
                        {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                        {"name": "i", "resources": {"requests": {"cpu": "1"}}}],
                       "containers": [{"name": "a", "resources": {"requests": {"cpu": "300m"}}}]}),
                res(1200, 0),
                res(1200, 2 * (200 << 20)),
            ),
            (
                "overhead added",
                json!({"overhead": {"cpu": "10m"}, "containers": [{"name": "a", "resources": {"requests": {"cpu": "90m"}}}]}),
                res(100, 0),
                res(100, 200 << 20),
            ),
            (
                "pod-level requests replace",
                json!({"resources": {"requests": {"cpu": "3"}},
                       "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Ki"}}}]}),
                res(3000, 1024),
                res(3000, 1024),
            ),
        ];
        for (name, s, want, want_nonzero) in cases {
            let s = spec(s);
            assert_eq!(pod_requests(&s, false), want, "{name}");
            assert_eq!(pod_requests(&s, true), want_nonzero, "{name} (non-zero)");
        }
    }

    #[test]
    fn extended_resources_and_arithmetic() {
        let s = spec(
            json!({"containers": [{"name": "a", "resources": {"requests": {"example.com/gpu": "2", "ephemeral-storage": "1Gi"}}}]}),
        );
        let r = pod_requests(&s, false);
        assert_eq!(r.scalar.get("example.com/gpu"), Some(&2));
        assert_eq!(r.ephemeral_storage, 1 << 30);
        let mut total = Resources::default();
        total.add(&r);
        total.add(&r);
        assert_eq!(total.scalar.get("example.com/gpu"), Some(&4));
        total.sub(&r);
        total.sub(&r);
        assert_eq!(total, Resources::default());
    }
}
