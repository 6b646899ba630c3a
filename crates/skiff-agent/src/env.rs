//! A container's environment, resolved by the agent as the kubelet's `makeEnvironmentVariables`:
//! `envFrom` (ConfigMaps, Secrets, with prefixes) then `env` (values with `$(VAR)` expansion,
//! ConfigMap and Secret keys, the downward API `fieldRef` and `resourceFieldRef`), and `$(VAR)`
//! expansion of `command` and `args`. Pure: the executor fetches the referenced objects first.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

/// The ConfigMaps and Secrets of the pod's namespace a container refers to; `None`: not found.
#[derive(Debug, Clone, Default)]
pub struct EnvSources {
    pub config_maps: HashMap<String, Option<ConfigMap>>,
    pub secrets: HashMap<String, Option<Secret>>,
}

/// Node facts the downward API needs.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    pub host_ip: String,
    /// `status.allocatable` cpu and memory: the default of `limits.*` without a limit.
    pub allocatable_cpu: String,
    pub allocatable_memory: String,
}

/// Why the environment cannot be built (`CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKey { key: String, namespace: String, name: String },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKey { key: String, namespace: String, name: String },
    #[error("unsupported fieldRef {0}")]
    FieldRef(String),
    #[error("unsupported resourceFieldRef {0}")]
    ResourceRef(String),
}

/// The names of the ConfigMaps and Secrets `c`'s environment refers to (to fetch before
/// [`container_env`]).
pub fn referenced(c: &Container) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    for f in c.env_from.iter().flatten() {
        if let Some(r) = &f.config_map_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &f.secret_ref {
            secrets.push(r.name.clone());
        }
    }
    for e in c.env.iter().flatten() {
        if let Some(vf) = &e.value_from {
            if let Some(r) = &vf.config_map_key_ref {
                cms.push(r.name.clone());
            }
            if let Some(r) = &vf.secret_key_ref {
                secrets.push(r.name.clone());
            }
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// `$(VAR)` expansion as Kubernetes does it: `$$` is a literal `$`, an unknown `$(VAR)` stays as
/// written, any other `$` is literal.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// An ordered environment where a later name replaces an earlier one in place.
#[derive(Debug, Default)]
struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    fn set(&mut self, k: String, v: String) {
        match self.vars.iter_mut().find(|(n, _)| *n == k) {
            Some(slot) => slot.1 = v,
            None => self.vars.push((k, v)),
        }
    }

    fn get(&self, k: &str) -> Option<String> {
        self.vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }
}

fn secret_data(s: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = s.string_data.clone().unwrap_or_default();
    for (k, v) in s.data.iter().flatten() {
        out.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    out
}

/// A selector like `metadata.labels['app']`.
fn map_key<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)?.strip_prefix("['")?.strip_suffix("']")
}

/// The value of a downward-API `fieldRef`.
pub fn field_ref(pod: &Pod, path: &str, pod_ip: &str, host_ip: &str) -> Result<String, EnvError> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        p => {
            if let Some(k) = map_key(p, "metadata.labels") {
                m.labels.as_ref().and_then(|l| l.get(k).cloned()).unwrap_or_default()
            } else if let Some(k) = map_key(p, "metadata.annotations") {
                m.annotations.as_ref().and_then(|l| l.get(k).cloned()).unwrap_or_default()
            } else {
                return Err(EnvError::FieldRef(p.to_string()));
            }
        }
    })
}

/// A quantity in base units (`500m` → 0.5, `64Mi` → 67108864).
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    // An exponent form (1e3) has no suffix after the number part.
    if suffix.starts_with(['e', 'E'])
        && suffix.len() > 1
        && suffix[1..].chars().all(|c| c.is_ascii_digit() || c == '-' || c == '+')
    {
        return q.parse().ok();
    }
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0f64.powi(2),
        "Gi" => 1024.0f64.powi(3),
        "Ti" => 1024.0f64.powi(4),
        "Pi" => 1024.0f64.powi(5),
        "Ei" => 1024.0f64.powi(6),
        _ => return None,
    };
    Some(n * mult)
}

/// The value of a `resourceFieldRef` (`limits.cpu`, `requests.memory`...), rounded up to whole
/// divisors; a missing limit is the node's allocatable.
pub fn resource_ref(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
    node: &NodeFacts,
) -> Result<String, EnvError> {
    let err = || EnvError::ResourceRef(resource.to_string());
    let (kind, name) = resource.split_once('.').ok_or_else(err)?;
    let res = c.resources.as_ref();
    let get = |m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
        m.and_then(|m| m.get(name)).map(|q| q.0.clone())
    };
    let limit = get(res.and_then(|r| r.limits.as_ref()));
    let allocatable = match name {
        "cpu" => node.allocatable_cpu.clone(),
        "memory" => node.allocatable_memory.clone(),
        _ => "0".to_string(),
    };
    let value = match kind {
        "limits" => limit.unwrap_or(allocatable),
        // A request defaults to the limit; without either, 0 (cpu and memory requests).
        "requests" => get(res.and_then(|r| r.requests.as_ref())).or(limit).unwrap_or_else(|| "0".into()),
        _ => return Err(err()),
    };
    let v = parse_quantity(&value).ok_or_else(err)?;
    let d = parse_quantity(divisor.unwrap_or("1")).filter(|d| *d > 0.0).ok_or_else(err)?;
    let n = (v / d - 1e-9).ceil().max(0.0);
    Ok(format!("{}", n as u64))
}

/// The container's environment, in order, with `$(VAR)` expanded.
pub fn container_env(
    pod: &Pod,
    c: &Container,
    sources: &EnvSources,
    pod_ip: &str,
    node: &NodeFacts,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut env = Env::default();
    for f in c.env_from.iter().flatten() {
        let prefix = f.prefix.clone().unwrap_or_default();
        if let Some(r) = &f.config_map_ref {
            match sources.config_maps.get(&r.name).cloned().flatten() {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        env.set(format!("{prefix}{k}"), v.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
            }
        }
        if let Some(r) = &f.secret_ref {
            match sources.secrets.get(&r.name).cloned().flatten() {
                Some(s) => {
                    for (k, v) in secret_data(&s) {
                        env.set(format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(vf) = &e.value_from {
            if let Some(r) = &vf.config_map_key_ref {
                let optional = r.optional == Some(true);
                match sources.config_maps.get(&r.name).cloned().flatten() {
                    Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)).cloned() {
                        Some(v) => v,
                        None if optional => continue,
                        None => {
                            return Err(EnvError::ConfigMapKey {
                                key: r.key.clone(),
                                namespace: namespace.clone(),
                                name: r.name.clone(),
                            });
                        }
                    },
                    None if optional => continue,
                    None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
                }
            } else if let Some(r) = &vf.secret_key_ref {
                let optional = r.optional == Some(true);
                match sources.secrets.get(&r.name).cloned().flatten() {
                    Some(s) => match secret_data(&s).get(&r.key).cloned() {
                        Some(v) => v,
                        None if optional => continue,
                        None => {
                            return Err(EnvError::SecretKey {
                                key: r.key.clone(),
                                namespace: namespace.clone(),
                                name: r.name.clone(),
                            });
                        }
                    },
                    None if optional => continue,
                    None => return Err(EnvError::SecretNotFound(r.name.clone())),
                }
            } else if let Some(f) = &vf.field_ref {
                field_ref(pod, &f.field_path, pod_ip, &node.host_ip)?
            } else if let Some(r) = &vf.resource_field_ref {
                resource_ref(c, &r.resource, r.divisor.as_ref().map(|d| d.0.as_str()), node)?
            } else {
                String::new()
            }
        } else {
            let raw = e.value.clone().unwrap_or_default();
            expand(&raw, &|name| env.get(name))
        };
        env.set(e.name.clone(), value);
    }
    Ok(env.vars)
}

/// `command` and `args` with `$(VAR)` expanded from the container's environment.
pub fn expand_command(c: &Container, env: &[(String, String)]) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let f = |v: &Option<Vec<String>>| v.as_ref().map(|list| list.iter().map(|s| expand(s, &lookup)).collect());
    (f(&c.command), f(&c.args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"}, "annotations": {"mysubpath": "mypath"}},
            "spec": {"nodeName": "n1", "containers": []}}))
        .expect("pod")
    }

    fn sources() -> EnvSources {
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": "cm"}, "data": {"data-1": "value-1", "data-2": "value-2"}}),
        )
        .expect("cm");
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": "s"}, "data": {"data-1": "dmFsdWUtMQo="}}))
                .expect("secret");
        EnvSources {
            config_maps: [("cm".to_string(), Some(cm)), ("gone".to_string(), None)].into_iter().collect(),
            secrets: [("s".to_string(), Some(secret))].into_iter().collect(),
        }
    }

    fn node() -> NodeFacts {
        NodeFacts { host_ip: "192.168.1.10".into(), allocatable_cpu: "4".into(), allocatable_memory: "8Gi".into() }
    }

    fn env_of(c: serde_json::Value) -> Result<Vec<(String, String)>, EnvError> {
        let c: Container = serde_json::from_value(c).expect("container");
        container_env(&pod(), &c, &sources(), "10.88.0.5", &node())
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn expansion() {
        let lookup = |n: &str| match n {
            "FOO" => Some("foo-value".to_string()),
            "BAR" => Some("bar-value".to_string()),
            _ => None,
        };
        let cases = [
            ("$(FOO);;$(BAR)", "foo-value;;bar-value"),
            ("$(NOPE)", "$(NOPE)"),
            ("$$(FOO)", "$(FOO)"),
            ("a$b", "a$b"),
            ("$(FOO", "$(FOO"),
            ("x$", "x$"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &lookup), want, "{input}");
        }
    }

    #[test]
    fn values_and_references() {
        let got = env_of(json!({"name": "c", "env": [
            {"name": "FOO", "value": "foo-value"},
            {"name": "BAR", "value": "bar-value"},
            {"name": "FOOBAR", "value": "$(FOO);;$(BAR)"},
            {"name": "CONFIG_DATA_1", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "data-1"}}},
            {"name": "SECRET_DATA", "valueFrom": {"secretKeyRef": {"name": "s", "key": "data-1"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "ANNOTATION", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['mysubpath']"}}},
        ]}))
        .expect("env");
        assert_eq!(
            got,
            pairs(&[
                ("FOO", "foo-value"),
                ("BAR", "bar-value"),
                ("FOOBAR", "foo-value;;bar-value"),
                ("CONFIG_DATA_1", "value-1"),
                ("SECRET_DATA", "value-1\n"),
                ("POD_NAME", "p"),
                ("POD_NAMESPACE", "ns"),
                ("POD_IP", "10.88.0.5"),
                ("HOST_IP", "192.168.1.10"),
                ("POD_UID", "u-1"),
                ("NODE", "n1"),
                ("ANNOTATION", "mypath"),
            ])
        );
    }

    #[test]
    fn env_from_with_prefix() {
        let got = env_of(json!({"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}, {"prefix": "p-", "configMapRef": {"name": "cm"}}, {"secretRef": {"name": "s"}}],
            "env": [{"name": "data-2", "value": "override"}]}))
        .expect("env");
        assert_eq!(
            got,
            pairs(&[("data-1", "value-1\n"), ("data-2", "override"), ("p-data-1", "value-1"), ("p-data-2", "value-2")])
        );
    }

    #[test]
    fn errors() {
        let cases = [
            (
                json!({"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]}),
                "configmap \"gone\" not found",
            ),
            (
                json!({"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}),
                "couldn't find key k in ConfigMap ns/cm",
            ),
            (
                json!({"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]}),
                "secret \"nope\" not found",
            ),
            (json!({"name": "c", "envFrom": [{"configMapRef": {"name": "gone"}}]}), "configmap \"gone\" not found"),
        ];
        for (c, want) in cases {
            assert_eq!(env_of(c).map_err(|e| e.to_string()), Err(want.to_string()));
        }
        // Optional references are skipped.
        let got = env_of(
            json!({"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}}]}),
        );
        assert_eq!(got, Ok(vec![]));
    }

    #[test]
    fn resources() {
        let got = env_of(json!({"name": "c", "resources": {"requests": {"cpu": "250m", "memory": "32Mi"}, "limits": {"cpu": "1250m", "memory": "64Mi"}},
            "env": [
                {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {"name": "MEMORY_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
                {"name": "CPU_REQUEST", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
                {"name": "MEMORY_REQUEST", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}},
                {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            ]}))
        .expect("env");
        assert_eq!(
            got,
            pairs(&[
                ("CPU_LIMIT", "2"),
                ("MEMORY_LIMIT", "67108864"),
                ("CPU_REQUEST", "1"),
                ("MEMORY_REQUEST", "33554432"),
                ("MEM_MI", "64")
            ])
        );
        let got = env_of(json!({"name": "c", "env": [{"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "MEMORY_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}]}))
        .expect("env");
        assert_eq!(got, pairs(&[("CPU_LIMIT", "4"), ("MEMORY_LIMIT", "8589934592")]));
    }

    #[test]
    fn command_expansion() {
        let c: Container = serde_json::from_value(json!({"name": "c", "command": ["sh", "-c", "TEST_VAR=wrong echo \"$(TEST_VAR)\""], "args": ["$(TEST_VAR)", "$(NONE)"]})).expect("c");
        let (cmd, args) = expand_command(&c, &pairs(&[("TEST_VAR", "test-value")]));
        assert_eq!(cmd, Some(vec!["sh".into(), "-c".into(), "TEST_VAR=wrong echo \"test-value\"".into()]));
        assert_eq!(args, Some(vec!["test-value".into(), "$(NONE)".into()]));
    }
}
