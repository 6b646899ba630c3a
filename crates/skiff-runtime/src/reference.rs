//! Image reference normalization, as Docker does it: `nginx` is `docker.io/library/nginx:latest`,
//! a first component with a `.` or `:` (or `localhost`) names the registry, and a digest pins content.
//! The image store keys everything by the normalized form so that `nginx`, `library/nginx` and
//! `docker.io/library/nginx:latest` are one image.

use oci_client::Reference;

/// A reference that is not a valid image name.
#[derive(Debug, thiserror::Error)]
#[error("invalid image reference {reference:?}: {source}")]
pub struct ReferenceError {
    /// The text that failed to parse.
    pub reference: String,
    /// Why it failed.
    #[source]
    pub source: oci_client::ParseError,
}

/// Parses `text` into a fully qualified reference (registry, repository, tag and/or digest).
pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
    text.parse::<Reference>().map_err(|source| ReferenceError { reference: text.to_string(), source })
}

/// The normalized string form of `text`: `docker.io/library/nginx:latest`,
/// `registry:5000/x:latest`, `quay.io/a/b@sha256:...`.
pub fn normalize(text: &str) -> Result<String, ReferenceError> {
    parse(text).map(|r| r.whole())
}

/// True when `registry` (host with optional port) must be spoken to in plain HTTP: loopback
/// addresses and names, as Docker allows without configuration, and anything listed in `insecure`.
pub fn is_insecure_registry(registry: &str, insecure: &[String]) -> bool {
    if insecure.iter().any(|r| r == registry) {
        return true;
    }
    let host = host_of(registry);
    if host == "localhost" {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

/// The host part of `host[:port]`, `[v6]:port` or `v6`.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => registry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let cases: Vec<(String, String)> = vec![
            ("nginx".into(), "docker.io/library/nginx:latest".into()),
            ("nginx:1.27".into(), "docker.io/library/nginx:1.27".into()),
            ("library/nginx".into(), "docker.io/library/nginx:latest".into()),
            ("bitnami/redis:7".into(), "docker.io/bitnami/redis:7".into()),
            ("index.docker.io/library/busybox".into(), "docker.io/library/busybox:latest".into()),
            ("registry:5000/x".into(), "registry:5000/x:latest".into()),
            ("localhost/app:v2".into(), "localhost/app:v2".into()),
            ("127.0.0.1:5000/test:v1".into(), "127.0.0.1:5000/test:v1".into()),
            ("quay.io/coreos/etcd:v3.5".into(), "quay.io/coreos/etcd:v3.5".into()),
            (format!("busybox@{digest}"), format!("docker.io/library/busybox@{digest}")),
            (format!("busybox:1@{digest}"), format!("docker.io/library/busybox:1@{digest}")),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(&input).expect(&input), want, "{input}");
        }
    }

    #[test]
    fn rejects_invalid_references() {
        for bad in ["", "Nginx", "nginx:", "a b", "x@sha256:abc"] {
            assert!(normalize(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn insecure_registries() {
        let list = vec!["myreg.local:5000".to_string()];
        let cases = [
            ("127.0.0.1:5000", true),
            ("127.0.0.2", true),
            ("localhost:8080", true),
            ("[::1]:5000", true),
            ("myreg.local:5000", true),
            ("myreg.local", false),
            ("docker.io", false),
            ("10.0.0.1:5000", false),
        ];
        for (reg, want) in cases {
            assert_eq!(is_insecure_registry(reg, &list), want, "{reg}");
        }
    }
}
