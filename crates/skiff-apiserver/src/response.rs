//! Encoding responses: JSON objects, `Status` errors, `Warning` headers, and server-side Tables.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use skiff_api::ApiError;
use skiff_store::Json;

pub const JSON: &str = "application/json";

/// A JSON response with the given status code and `Warning` headers.
pub fn json(code: u16, body: &Value, warnings: &[String]) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    raw(code, JSON, bytes, warnings)
}

/// A stored object, sent as the text the store holds.
pub fn stored(code: u16, obj: &Json, warnings: &[String]) -> Response {
    raw(code, JSON, obj.as_str().as_bytes().to_vec(), warnings)
}

/// A list (`{"kind", "apiVersion", "metadata", "items"}`, in the apiserver's order) written out
/// around the stored objects' text, which is copied as it is.
pub fn list(kind: &str, api_version: &str, metadata: &Value, items: &[Json]) -> Response {
    let text_len: usize = items.iter().map(|item| item.as_str().len() + 1).sum();
    let mut body = Vec::with_capacity(text_len + 256);
    body.extend_from_slice(b"{\"kind\":");
    let head = serde_json::to_writer(&mut body, kind)
        .and_then(|()| {
            body.extend_from_slice(b",\"apiVersion\":");
            serde_json::to_writer(&mut body, api_version)
        })
        .and_then(|()| {
            body.extend_from_slice(b",\"metadata\":");
            serde_json::to_writer(&mut body, metadata)
        });
    if let Err(e) = head {
        // Writing strings and a `Value` into memory cannot fail.
        return error(&ApiError::internal(format!("encoding a list: {e}")));
    }
    body.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item.as_str().as_bytes());
    }
    body.extend_from_slice(b"]}");
    raw(200, JSON, body, &[])
}

pub fn raw(code: u16, content_type: &str, body: Vec<u8>, warnings: &[String]) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    for w in warnings {
        // `Warning: 299 - "text"` (RFC 7234), as the apiserver sends them.
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            headers.append(header::WARNING, v);
        }
    }
    resp
}

/// A `Status` error response.
pub fn error(e: &ApiError) -> Response {
    let mut resp = json(e.code, &e.to_status(), &[]);
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// What the client accepts, from its `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Json,
    /// `application/json;as=Table;v=v1;g=meta.k8s.io` (kubectl get's human-readable output).
    Table,
    /// `application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1` (or `v1beta1`): only the
    /// metadata of an object or of each watched object (client-go's metadata client and informers,
    /// kube-rs' `get_metadata` / `watch_metadata`).
    Metadata {
        version: &'static str,
    },
    /// `as=PartialObjectMetadataList`: a list of those.
    MetadataList {
        version: &'static str,
    },
}

impl Accept {
    /// The error for a list asked for as one object, or one object as a list (`doTransformObject`).
    pub fn mismatch(self) -> ApiError {
        match self {
            Accept::MetadataList { .. } => ApiError::not_acceptable(
                "you requested PartialObjectMetadataList, but the requested object is not a list",
            ),
            _ => ApiError::not_acceptable("you requested PartialObjectMetadata, but the requested object is a list"),
        }
    }
}

/// `obj` as a `PartialObjectMetadata` of `meta.k8s.io/<version>` (`meta.AsPartialObjectMetadata`):
/// its metadata only.
pub fn partial_metadata(version: &str, obj: &Value) -> Value {
    serde_json::json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| Value::Object(serde_json::Map::new())),
    })
}

/// A list as `PartialObjectMetadataList` (`asPartialObjectMetadataList`): the list's metadata and
/// each item's.
pub fn partial_metadata_list(version: &str, metadata: &Value, items: &[Json]) -> Response {
    let list = serde_json::json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": metadata,
        "items": items.iter().map(|item| partial_metadata(version, &item.parse())).collect::<Vec<_>>(),
    });
    json(200, &list, &[])
}

/// Picks the first media type of `Accept` that Skiff can produce: a Table, metadata only, or JSON.
/// `None` when nothing acceptable is offered (406).
pub fn negotiate(headers: &HeaderMap) -> Option<Accept> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Accept::Json);
    };
    for media in accept.split(',') {
        let mut parts = media.split(';').map(str::trim);
        let base = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(pk, _)| pk.eq_ignore_ascii_case(k)).map(|(_, v)| *v);
        match base {
            "application/json" | "application/*" | "*/*" => match param("as") {
                None => return Some(Accept::Json),
                Some(kind) if param("g") == Some("meta.k8s.io") => {
                    let version = match param("v") {
                        Some("v1") => "v1",
                        Some("v1beta1") => "v1beta1",
                        _ => continue,
                    };
                    match kind {
                        "Table" => return Some(Accept::Table),
                        "PartialObjectMetadata" => return Some(Accept::Metadata { version }),
                        "PartialObjectMetadataList" => return Some(Accept::MetadataList { version }),
                        _ => continue,
                    }
                }
                Some(_) => continue,
            },
            "" => return Some(Accept::Json),
            _ => continue,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> Option<Accept> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).expect("header"));
        negotiate(&h)
    }

    #[test]
    fn negotiates_tables_and_json() {
        assert_eq!(
            accept(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            ),
            Some(Accept::Table)
        );
        assert_eq!(accept("application/json"), Some(Accept::Json));
        assert_eq!(accept("*/*"), Some(Accept::Json));
        assert_eq!(
            accept("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"),
            Some(Accept::MetadataList { version: "v1" })
        );
        assert_eq!(
            accept(
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1"
            ),
            Some(Accept::Metadata { version: "v1beta1" })
        );
        assert_eq!(
            accept("application/json;as=PartialObjectMetadata;g=other.io;v=v1,application/json"),
            Some(Accept::Json)
        );
        assert_eq!(accept("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2"), None);
        assert_eq!(accept("application/json;as=Pod;g=meta.k8s.io;v=v1"), None);
        assert_eq!(accept("application/vnd.kubernetes.protobuf"), None);
        assert_eq!(negotiate(&HeaderMap::new()), Some(Accept::Json));
    }

    async fn body_of(r: Response) -> Value {
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX).await.expect("body");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[tokio::test]
    async fn lists_carry_the_stored_text_of_their_items() {
        let items = [serde_json::json!({"metadata": {"name": "a"}}), serde_json::json!({"metadata": {"name": "b\n"}})];
        let texts: Vec<Json> = items.iter().map(Json::encode).collect();
        let md = serde_json::json!({"resourceVersion": "7", "continue": "x\"y"});
        let got = body_of(list("PodList", "v1", &md, &texts)).await;
        let want = serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": md, "items": items});
        assert_eq!(got, want);
        let empty = body_of(list("ConfigMapList", "v1", &md, &[])).await;
        assert_eq!(empty["items"], serde_json::json!([]));
        let one = body_of(stored(201, &Json::encode(&items[1]), &[])).await;
        assert_eq!(one, items[1]);
    }

    #[test]
    fn warnings_become_headers() {
        let r = json(200, &serde_json::json!({}), &["unknown field \"spec.foo\"".to_string()]);
        assert_eq!(
            r.headers().get(header::WARNING).and_then(|v| v.to_str().ok()),
            Some("299 - \"unknown field \\\"spec.foo\\\"\"")
        );
    }
}
