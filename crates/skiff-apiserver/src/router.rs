//! The request entry point: authentication, then the non-resource endpoints (health, version,
//! discovery, OpenAPI, metrics), then resource paths.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use skiff_api::{ApiError, discovery, openapi};

use crate::App;
use crate::handlers::{self, MAX_BODY};
use crate::node_proxy;
use crate::request;
use crate::response;

pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new().fallback(entry).with_state(app)
}

/// Constant-time comparison of the presented bearer token with the admin token.
fn authenticated(app: &App, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(token) = value.strip_prefix("Bearer ").map(str::trim) else {
        return false;
    };
    let (a, b) = (token.as_bytes(), app.token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn verb(method: &Method, t: &request::Target, watch: bool) -> &'static str {
    match (method, t.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if watch => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "other",
    }
}

async fn entry(State(app): State<Arc<App>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if !authenticated(&app, &parts.headers) {
        return response::error(&ApiError::unauthorized());
    }
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let started = Instant::now();

    if let Some(target) = request::parse_path(&path) {
        let t = match target {
            Ok(t) => t,
            Err(e) => return response::error(&e),
        };
        if node_proxy::handles(&t) {
            // Streams: served from the raw request (exec upgrades it); observed when the response
            // head is ready, under the apiserver's verb for them.
            let resource = format!("{}/{}", t.resource.plural, t.subresource.map(|s| s.name()).unwrap_or(""));
            let resp = node_proxy::serve(app.clone(), &t, parts).await;
            app.metrics.observe("connect", &resource, resp.status().as_u16(), started.elapsed());
            return resp;
        }
        let body = match axum::body::to_bytes(body, MAX_BODY + 1).await {
            Ok(b) if b.len() > MAX_BODY => {
                return response::error(&ApiError::too_large("Request entity too large: limit is 3145728"));
            }
            Ok(b) => b,
            Err(_) => return response::error(&ApiError::too_large("Request entity too large: limit is 3145728")),
        };
        let watch = query.as_deref().is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
        let verb = verb(&parts.method, &t, watch);
        let resource = match t.subresource {
            Some(s) => format!("{}/{}", t.resource.plural, s.name()),
            None => t.resource.plural.to_string(),
        };
        let resp = handlers::serve(app.clone(), parts.method, t, query.as_deref(), &parts.headers, body).await;
        app.metrics.observe(verb, &resource, resp.status().as_u16(), started.elapsed());
        return resp;
    }
    if parts.method != Method::GET {
        return response::error(&ApiError::method_not_allowed(format!("{} is not supported on {path}", parts.method)));
    }
    non_resource(&app, &path, query.as_deref(), &parts.headers)
}

fn non_resource(app: &App, path: &str, query: Option<&str>, headers: &HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let found = |v: Option<serde_json::Value>| match v {
        Some(v) => response::json(200, &v, &[]),
        None => response::error(&ApiError::not_found_path()),
    };
    match path.trim_end_matches('/') {
        "/livez" | "/readyz" | "/healthz" => {
            let verbose = query.is_some_and(|q| q.contains("verbose"));
            let text = if verbose {
                format!("[+]ping ok\n[+]etcd ok\n{} check passed\n", &path[1..])
            } else {
                "ok".to_string()
            };
            response::raw(200, "text/plain; charset=utf-8", text.into_bytes(), &[])
        }
        "/version" => response::json(200, &discovery::version_info(), &[]),
        "/metrics" => response::raw(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            app.metrics.render(app.registry.store.revision()).into_bytes(),
            &[],
        ),
        "/api" => match discovery::aggregated_version(accept) {
            Some(v) => aggregated(v.content_type(), discovery::aggregated_as(true, v)),
            None => response::json(200, &discovery::api_versions(&app.address), &[]),
        },
        "/apis" => match discovery::aggregated_version(accept) {
            Some(v) => aggregated(v.content_type(), discovery::aggregated_as(false, v)),
            None => response::json(200, &discovery::api_group_list(), &[]),
        },
        // kubectl asks for v2 only as protobuf, which Skiff does not speak; it ignores the 406.
        "/openapi/v2" if !accept.is_empty() && !accept.contains("json") && !accept.contains("*/*") => {
            response::error(&ApiError::not_acceptable("only application/json is served for /openapi/v2"))
        }
        "/openapi/v2" => response::json(200, &openapi::v2(), &[]),
        "/openapi/v3" => response::json(200, &openapi::v3_index(), &[]),
        p => {
            if let Some(gv) = p.strip_prefix("/openapi/v3/") {
                return found(openapi::v3_group_version(gv));
            }
            let parts: Vec<&str> = p.trim_start_matches('/').split('/').collect();
            match parts.as_slice() {
                ["api", version] => found(discovery::api_resource_list("", version)),
                ["apis", group] => found(discovery::api_group(group)),
                ["apis", group, version] => found(discovery::api_resource_list(group, version)),
                _ => response::error(&ApiError::not_found_path()),
            }
        }
    }
}

fn aggregated(content_type: &str, body: serde_json::Value) -> Response {
    let mut resp = response::json(200, &body, &[]);
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}
