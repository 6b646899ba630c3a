//! The manifests `create deployment` and `run` generate (kubectl `pkg/cmd/create/create_deployment.go`,
//! `pkg/generate/versioned/run.go`), so `--dry-run=client -o yaml` prints what kubectl prints.

use serde_json::{Value, json};

/// What `create deployment NAME --image=... [--replicas] [--port] [-- COMMAND...]` was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentSpec {
    pub name: String,
    pub images: Vec<String>,
    pub replicas: i32,
    pub port: Option<i32>,
    pub command: Vec<String>,
}

/// The Deployment kubectl builds: labels `app: NAME` on the object, selector and template; one
/// container per image named after the image; `strategy: {}`, `resources: {}` and `status: {}`
/// as Go's zero values serialise.
pub fn deployment(spec: &DeploymentSpec, namespace: Option<&str>) -> Value {
    let mut containers: Vec<Value> = Vec::new();
    let mut used: Vec<String> = Vec::new();
    for image in &spec.images {
        let name = container_name(image, &used);
        used.push(name.clone());
        let mut c = json!({"image": image, "name": name, "resources": {}});
        if !spec.command.is_empty() {
            c["command"] = json!(spec.command);
        }
        if let Some(port) = spec.port {
            c["ports"] = json!([{"containerPort": port}]);
        }
        containers.push(c);
    }
    let labels = json!({"app": spec.name});
    let mut metadata = json!({"labels": labels, "name": spec.name});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": labels},
            "strategy": {},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
        },
        "status": {},
    })
}

/// The container name kubectl derives from an image: the last path segment without tag or digest;
/// `_` (invalid in names) becomes `-` plus a random suffix, and duplicates get one too.
pub fn container_name(image: &str, used: &[String]) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let base = last.split(':').next().unwrap_or(last).split('@').next().unwrap_or(last);
    if base.contains('_') {
        return skiff_api::meta::generate_name(&format!("{}-", base.replace('_', "-")));
    }
    if used.iter().any(|u| u == base) {
        return skiff_api::meta::generate_name(&format!("{base}-"));
    }
    base.to_string()
}

/// What `run NAME --image=... [--port] [--restart] [--labels] [--env] [--command] [-- ARGS...]` was given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodSpec {
    pub name: String,
    pub image: String,
    pub port: Option<i32>,
    /// `Always` (default), `OnFailure` or `Never`.
    pub restart: String,
    pub labels: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    /// With `--command`, the arguments replace the entrypoint; otherwise they are `args`.
    pub use_command: bool,
    pub args: Vec<String>,
    pub image_pull_policy: Option<String>,
}

/// The naked Pod `kubectl run` builds: label `run: NAME`, one container `NAME`, `dnsPolicy: ClusterFirst`.
pub fn pod(spec: &PodSpec, namespace: Option<&str>) -> Value {
    let mut container = json!({"image": spec.image, "name": spec.name, "resources": {}});
    if !spec.args.is_empty() {
        container[if spec.use_command { "command" } else { "args" }] = json!(spec.args);
    }
    if let Some(port) = spec.port {
        container["ports"] = json!([{"containerPort": port}]);
    }
    if !spec.env.is_empty() {
        container["env"] = spec.env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    }
    if let Some(policy) = &spec.image_pull_policy {
        container["imagePullPolicy"] = json!(policy);
    }
    let labels: serde_json::Map<String, Value> = if spec.labels.is_empty() {
        [("run".to_string(), json!(spec.name))].into_iter().collect()
    } else {
        spec.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
    };
    let mut metadata = json!({"labels": labels, "name": spec.name});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    let restart = if spec.restart.is_empty() { "Always" } else { spec.restart.as_str() };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [container], "dnsPolicy": "ClusterFirst", "restartPolicy": restart},
        "status": {},
    })
}

/// Parses `k=v,k2=v2` (`--labels`) or one `k=v` (`--env`).
pub fn key_values(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("invalid label spec: {p}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_matches_kubectl_create() {
        let spec = DeploymentSpec {
            name: "web".into(),
            images: vec!["nginx:1.25".into()],
            replicas: 1,
            port: Some(80),
            command: vec![],
        };
        let want = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"labels":{"app":"web"},"name":"web"},
            "spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},"strategy":{},
              "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[
                {"image":"nginx:1.25","name":"nginx","ports":[{"containerPort":80}],"resources":{}}]}}},
            "status":{}});
        assert_eq!(deployment(&spec, None), want);
    }

    #[test]
    fn container_names_come_from_images() {
        let cases = [
            ("nginx", "nginx"),
            ("nginx:1.25", "nginx"),
            ("ghcr.io/org/app:v1", "app"),
            ("registry:5000/app@sha256:abc", "app"),
        ];
        for (image, want) in cases {
            assert_eq!(container_name(image, &[]), want, "{image}");
        }
        let sanitised = container_name("ghcr.io/a/my_app", &[]);
        assert!(sanitised.starts_with("my-app-") && sanitised.len() == "my-app-".len() + 5, "{sanitised}");
        assert_ne!(container_name("nginx", &["nginx".to_string()]), "nginx");
    }

    #[test]
    fn pod_matches_kubectl_run() {
        let spec = PodSpec {
            name: "web".into(),
            image: "nginx".into(),
            args: vec!["sh".into(), "-c".into(), "echo hi".into()],
            ..Default::default()
        };
        let want = json!({"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"run":"web"},"name":"web"},
            "spec":{"containers":[{"args":["sh","-c","echo hi"],"image":"nginx","name":"web","resources":{}}],
              "dnsPolicy":"ClusterFirst","restartPolicy":"Always"},"status":{}});
        assert_eq!(pod(&spec, None), want);
        let with_command = PodSpec { use_command: true, restart: "Never".into(), ..spec };
        let p = pod(&with_command, Some("dev"));
        assert_eq!(p["spec"]["containers"][0]["command"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(p["spec"]["restartPolicy"], "Never");
        assert_eq!(p["metadata"]["namespace"], "dev");
    }

    #[test]
    fn parses_key_values() {
        assert_eq!(key_values("a=1,b=2"), Ok(vec![("a".into(), "1".into()), ("b".into(), "2".into())]));
        assert!(key_values("a").is_err());
    }
}
