//! The connection to the server: which kubeconfig to read (`--kubeconfig`, `$KUBECONFIG`, then the
//! default server's data dir) and raw JSON requests whose failures become [`CliError`]s.

use std::path::{Path, PathBuf};

use futures::{Stream, StreamExt};
use http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::error::CliError;

/// Where `skiff server` writes its kubeconfig by default.
pub const DEFAULT_KUBECONFIG: &str = "/var/lib/skiff/kubeconfig.yaml";

/// The Accept header kubectl sends for human-readable output.
pub const TABLE_ACCEPT: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// The kubeconfig to use: the flag, else the first entry of `$KUBECONFIG`, else the default.
pub fn kubeconfig_path(flag: Option<&Path>, env: Option<&str>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(first) = env.and_then(|e| e.split(':').find(|p| !p.is_empty())) {
        return PathBuf::from(first);
    }
    PathBuf::from(DEFAULT_KUBECONFIG)
}

/// A connected client with the context's default namespace.
#[derive(Clone)]
pub struct Client {
    pub kube: kube::Client,
    /// `host:port` of the server, for error messages.
    pub server: String,
    pub namespace: String,
    kubeconfig: PathBuf,
}

impl Client {
    /// Reads the kubeconfig and builds a client; says plainly when the file is missing or unusable.
    pub async fn connect(path: &Path) -> Result<Client, CliError> {
        let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| {
            let missing = !path.exists();
            CliError::Kubeconfig(if missing {
                format!(
                    "cannot read the kubeconfig {}: the file does not exist. Is the server running (`skiff server`)? \
                     Otherwise point --kubeconfig or $KUBECONFIG at the kubeconfig.yaml in the server's data directory",
                    path.display()
                )
            } else {
                format!("cannot read the kubeconfig {}: {e}", path.display())
            })
        })?;
        let mut config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| CliError::Kubeconfig(format!("the kubeconfig {} is not usable: {e}", path.display())))?;
        // kubectl does not retry 5xx answers; a CLI must report them at once (e.g. logs without an agent).
        config.default_retry = false;
        let server = config.cluster_url.authority().map(|a| a.to_string()).unwrap_or_default();
        let namespace = config.default_namespace.clone();
        let kube = kube::Client::try_from(config)
            .map_err(|e| CliError::Kubeconfig(format!("cannot build a client from {}: {e}", path.display())))?;
        Ok(Client { kube, server, namespace, kubeconfig: path.to_path_buf() })
    }

    /// Sends one request and returns the response body as JSON (`Value::Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        content_type: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let bytes = self.call_raw(method, path, accept, content_type, body).await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| CliError::Failed(format!("the server sent invalid JSON: {e}")))
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.call(Method::GET, path, None, None, None).await
    }

    /// Sends a request and returns the raw body; non-2xx answers become [`CliError::Api`].
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        content_type: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Vec<u8>, CliError> {
        let response = self.send(method, path, accept, content_type, body).await?;
        let status = response.status();
        let bytes =
            response.into_body().collect().await.map_err(|e| CliError::Connect(e.to_string()))?.to_bytes().to_vec();
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &bytes));
        }
        Ok(bytes)
    }

    /// Sends a request and streams the body (logs, watches); non-2xx answers become errors.
    pub async fn stream(
        &self,
        path: &str,
        accept: Option<&str>,
    ) -> Result<impl Stream<Item = Result<Vec<u8>, CliError>> + use<>, CliError> {
        let response = self.send(Method::GET, path, accept, None, None).await?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.into_body().collect().await.map(|c| c.to_bytes().to_vec()).unwrap_or_default();
            return Err(api_error(status.as_u16(), &bytes));
        }
        Ok(response
            .into_body()
            .into_data_stream()
            .map(|chunk| chunk.map(|b| b.to_vec()).map_err(|e| CliError::Connect(e.to_string()))))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
        content_type: Option<&str>,
        body: Option<&Value>,
    ) -> Result<http::Response<kube::client::Body>, CliError> {
        let mut builder = Request::builder().method(method).uri(path);
        builder = builder.header(http::header::ACCEPT, accept.unwrap_or("application/json"));
        if body.is_some() {
            builder = builder.header(http::header::CONTENT_TYPE, content_type.unwrap_or("application/json"));
        }
        let payload = body.map(|b| serde_json::to_vec(b).unwrap_or_default()).unwrap_or_default();
        let request = builder
            .body(kube::client::Body::from(payload))
            .map_err(|e| CliError::Failed(format!("cannot build the request: {e}")))?;
        self.kube.send(request).await.map_err(|e| self.connect_error(&e))
    }

    fn connect_error(&self, e: &kube::Error) -> CliError {
        let mut chain = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        if chain.contains("onnection refused") {
            let hint = format!(
                "\n(the kubeconfig {} points at {}; is `skiff server` running?)",
                self.kubeconfig.display(),
                self.server
            );
            return CliError::Refused { server: self.server.clone(), hint };
        }
        if chain.contains("certificate") || chain.contains("Unauthorized") {
            return CliError::Connect(format!(
                "{chain} (the kubeconfig {} may belong to another server; use the one the running server wrote)",
                self.kubeconfig.display()
            ));
        }
        CliError::Connect(chain)
    }
}

/// The `Status` of a failed response, or a synthesised one when the body is not a Status.
pub fn api_error(code: u16, body: &[u8]) -> CliError {
    let status = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(|v| v.get("kind").and_then(Value::as_str) == Some("Status"))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body).trim().to_string();
            let reason = match code {
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "NotFound",
                _ => "",
            };
            let message = if text.is_empty() { format!("the server responded with HTTP {code}") } else { text };
            serde_json::json!({"kind": "Status", "reason": reason, "message": message, "code": code})
        });
    CliError::Api { code, status }
}

/// Appends query parameters to a path.
pub fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return path.to_string();
    }
    let query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_kubeconfig_in_kubectl_order() {
        let cases: &[(Option<&str>, Option<&str>, &str)] = &[
            (Some("/a"), Some("/b:/c"), "/a"),
            (None, Some("/b:/c"), "/b"),
            (None, Some(""), DEFAULT_KUBECONFIG),
            (None, None, DEFAULT_KUBECONFIG),
        ];
        for (flag, env, want) in cases {
            assert_eq!(kubeconfig_path(flag.map(Path::new), *env), PathBuf::from(want));
        }
    }

    #[test]
    fn builds_queries_and_errors() {
        assert_eq!(with_query("/api/v1/pods", &[("labelSelector", "app=web")]), "/api/v1/pods?labelSelector=app%3Dweb");
        assert_eq!(with_query("/x?a=1", &[("b", "2")]), "/x?a=1&b=2");
        let e = api_error(404, b"404 page not found");
        assert_eq!(e.to_string(), "Error from server (NotFound): 404 page not found");
    }
}
