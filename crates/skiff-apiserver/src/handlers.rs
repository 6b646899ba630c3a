//! HTTP glue for resource requests: decode the request, call the registry, encode the answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use serde_json::{Value, json};
use serde_saphyr::DuplicateKeyPolicy;
use skiff_api::duplicates::{self, Decoded, Duplicates};
use skiff_api::patch::{self, PatchType};
use skiff_api::resource::Subresource;
use skiff_api::schema::FieldValidation;
use skiff_api::table::{self, IncludeObject};
use skiff_api::{ApiError, meta};
use skiff_store::Json;

use crate::App;
use crate::registry::{DeleteOptions, Deleted, Listed, Registry, ScaleChange, WriteOptions};
use crate::request::{Query, Target};
use crate::response::{self, Accept};

/// Largest request body accepted (the apiserver's limit is 3 MiB for most requests).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Serves one request on a resource path.
pub async fn serve(
    app: Arc<App>,
    method: Method,
    t: Target,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    match dispatch(&app, &method, &t, query, headers, body).await {
        Ok(r) => r,
        Err(e) => response::error(&e),
    }
}

/// A body as decoded, with the keys it repeated when `fieldValidation` asks for them.
fn plain(value: Value) -> Decoded {
    Decoded { value, duplicates: Duplicates::default() }
}

/// A JSON body. Unless unknown and duplicate fields are ignored, its repeated keys are noted on the
/// way (strict decoding); otherwise the last of them wins silently, as in Go.
fn decode_json(body: &[u8], validation: FieldValidation) -> Result<Decoded, ApiError> {
    let bad =
        |e: serde_json::Error| ApiError::bad_request(format!("the body of the request could not be decoded: {e}"));
    if validation == FieldValidation::Ignore {
        return serde_json::from_slice(body).map(plain).map_err(bad);
    }
    duplicates::from_json(body).map_err(bad)
}

/// A POST or PUT body, decoded by its Content-Type: JSON (also when none is given), YAML or
/// Kubernetes protobuf (what kubectl's typed clients send); anything else is 415, as the
/// apiserver answers.
fn decode_body(headers: &HeaderMap, body: &[u8], validation: FieldValidation) -> Result<Decoded, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "" | "application/json" => decode_json(body, validation),
        "application/yaml" => decode_yaml(body, validation),
        _ if skiff_api::proto::is_protobuf(ct) => skiff_api::proto::decode(body).map(plain),
        _ => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf; got {ct:?}"
            ),
        )),
    }
}

/// [`decode_body`] for a write: the body's repeated keys go to `opts`, to be reported with its
/// unknown fields.
fn decode_for_write(headers: &HeaderMap, body: &[u8], opts: &mut WriteOptions) -> Result<Value, ApiError> {
    let decoded = decode_body(headers, body, opts.validation)?;
    opts.duplicates = decoded.duplicates;
    Ok(decoded.value)
}

/// A body in YAML or JSON (server-side apply patches are YAML; JSON is valid YAML). Repeated keys
/// are passed through to be noted, or (ignored) the last wins.
fn decode_yaml(body: &[u8], validation: FieldValidation) -> Result<Decoded, ApiError> {
    if let Ok(decoded) = decode_json(body, validation) {
        return Ok(decoded);
    }
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the body of the request is not UTF-8"))?;
    let bad = |e: serde_saphyr::Error| ApiError::bad_request(format!("error decoding YAML: {e}"));
    if validation == FieldValidation::Ignore {
        let options = serde_saphyr::options! { duplicate_keys: DuplicateKeyPolicy::LastWins };
        return serde_saphyr::from_str_with_options::<Value>(text, options).map(plain).map_err(bad);
    }
    let options = || serde_saphyr::options! { duplicate_keys: DuplicateKeyPolicy::PassThrough };
    let mut decoded: Decoded = serde_saphyr::from_str_with_options(text, options()).map_err(bad)?;
    if !decoded.duplicates.is_empty() {
        decoded.duplicates.set_order(serde_saphyr::from_str_with_options(text, options()).map_err(bad)?);
    }
    Ok(decoded)
}

fn write_options(headers: &HeaderMap, q: &Query, options_kind: &str, apply: bool) -> Result<WriteOptions, ApiError> {
    let manager = match &q.field_manager {
        Some(m) => {
            if m.len() > 128 || m.chars().any(|c| c.is_control()) {
                return Err(ApiError::invalid(
                    options_kind,
                    "meta.k8s.io",
                    "",
                    vec![skiff_api::Cause::new(
                        "FieldValueInvalid",
                        "fieldManager",
                        "Invalid value: the field manager must be at most 128 printable characters",
                    )],
                ));
            }
            m.clone()
        }
        None if apply => {
            return Err(ApiError::invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                vec![skiff_api::Cause::new(
                    "FieldValueRequired",
                    "fieldManager",
                    "Required value: is required for apply patch",
                )],
            ));
        }
        None => {
            patch::manager_from_user_agent(headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or(""))
        }
    };
    Ok(WriteOptions {
        manager,
        dry_run: q.dry_run,
        validation: FieldValidation::parse_for(q.field_validation.as_deref(), options_kind)?,
        duplicates: Duplicates::default(),
    })
}

/// A written object in the form the client asked for (`transformResponseObject`); one asked for
/// as a Table is answered in JSON.
fn written(code: u16, accept: Accept, obj: &Json, warnings: &[String]) -> Result<Response, ApiError> {
    match accept {
        Accept::Json | Accept::Table => Ok(response::stored(code, obj, warnings)),
        Accept::Metadata { version } => {
            Ok(response::json(code, &response::partial_metadata(version, &obj.parse()), warnings))
        }
        Accept::MetadataList { .. } => Err(accept.mismatch()),
    }
}

fn ok(t: &Target, accept: Accept, q: &Query, obj: &Json) -> Result<Response, ApiError> {
    match accept {
        Accept::Json => Ok(response::stored(200, obj, &[])),
        Accept::Metadata { version } => {
            Ok(response::json(200, &response::partial_metadata(version, &obj.parse()), &[]))
        }
        Accept::MetadataList { .. } => Err(accept.mismatch()),
        Accept::Table => {
            let include = IncludeObject::parse(q.include_object.as_deref())?;
            let now = jiff::Timestamp::now();
            let obj = obj.parse();
            let md = json!({"resourceVersion": meta::resource_version(&obj)});
            Ok(response::json(200, &table::table(t.resource, &[&obj], md, include, true, now), &[]))
        }
    }
}

async fn dispatch(
    app: &Arc<App>,
    method: &Method,
    t: &Target,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = Query::parse(query)?;
    let accept = response::negotiate(headers).ok_or_else(|| {
        ApiError::not_acceptable(
            "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
        )
    })?;
    if body.len() > MAX_BODY {
        return Err(ApiError::too_large("Request entity too large: limit is 3145728"));
    }
    let reg = &app.registry;
    let r = t.resource;
    match (method, t.name.as_deref(), t.subresource) {
        (&Method::GET, None, None) if q.watch && matches!(accept, Accept::MetadataList { .. }) => {
            Err(accept.mismatch())
        }
        (&Method::GET, None, None) if q.watch => {
            // Only a watch-list without resourceVersion must start from the most recent state.
            reg.sync_for_read(r, &q).await?;
            let body = crate::watch::start(reg.store.clone(), t, &q, accept)?;
            let mut resp = Response::new(body);
            resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(response::JSON));
            Ok(resp)
        }
        (&Method::GET, None, None) => {
            reg.sync_for_read(r, &q).await?;
            let listed = reg.list(t, &q)?;
            let md = list_metadata(&listed);
            match accept {
                Accept::Json => Ok(response::list(&r.list_kind(), &r.api_version(), &md, &listed.items)),
                Accept::MetadataList { version } => Ok(response::partial_metadata_list(version, &md, &listed.items)),
                Accept::Metadata { .. } => Err(accept.mismatch()),
                Accept::Table => {
                    let include = IncludeObject::parse(q.include_object.as_deref())?;
                    let items: Vec<Value> = listed.items.iter().map(Json::parse).collect();
                    let objs: Vec<&Value> = items.iter().collect();
                    let now = jiff::Timestamp::now();
                    Ok(response::json(200, &table::table(r, &objs, md, include, true, now), &[]))
                }
            }
        }
        (&Method::GET, Some(name), None | Some(Subresource::Status)) => {
            reg.sync_for_read(r, &q).await?;
            ok(t, accept, &q, &reg.get(t, name)?)
        }
        (&Method::GET, Some(name), Some(Subresource::Scale)) => {
            reg.sync_for_read(r, &q).await?;
            Ok(response::json(200, &reg.get_scale(t, name)?, &[]))
        }
        (&Method::POST, None, None) => {
            let mut opts = write_options(headers, &q, "CreateOptions", false)?;
            let obj = decode_for_write(headers, &body, &mut opts)?;
            let w = reg.create(t, obj, &opts).await?;
            written(201, accept, &w.object, &w.warnings)
        }
        (&Method::POST, Some(name), Some(Subresource::Binding)) => {
            let opts = write_options(headers, &q, "CreateOptions", false)?;
            let binding = decode_body(headers, &body, FieldValidation::Ignore)?.value;
            reg.bind(t, name, &binding, &opts).await?;
            Ok(response::json(
                201,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                &[],
            ))
        }
        (&Method::POST, Some(name), Some(Subresource::Eviction)) => {
            let eviction = decode_body(headers, &body, FieldValidation::Ignore)?.value;
            let mut opts = match eviction.get("deleteOptions") {
                Some(d) => DeleteOptions::from_body(d.to_string().as_bytes())?,
                None => DeleteOptions::default(),
            };
            opts.dry_run |= q.dry_run;
            reg.delete(t, name, &opts).await?;
            Ok(response::json(
                201,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                &[],
            ))
        }
        (&Method::PUT, Some(name), None | Some(Subresource::Status | Subresource::Finalize)) => {
            let mut opts = write_options(headers, &q, "UpdateOptions", false)?;
            let obj = decode_for_write(headers, &body, &mut opts)?;
            let w = reg.update(t, name, obj, &opts).await?;
            written(if w.created { 201 } else { 200 }, accept, &w.object, &w.warnings)
        }
        (&Method::PUT, Some(name), Some(Subresource::Scale)) => {
            let opts = write_options(headers, &q, "UpdateOptions", false)?;
            let scale = decode_body(headers, &body, FieldValidation::Ignore)?.value;
            Ok(response::json(200, &reg.update_scale(t, name, ScaleChange::Replace(&scale), &opts).await?, &[]))
        }
        (&Method::PATCH, Some(name), sub) => {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let kind = PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let mut opts = write_options(headers, &q, "PatchOptions", kind == PatchType::Apply)?;
            let decoded = if kind == PatchType::Apply {
                decode_yaml(&body, opts.validation)?
            } else {
                decode_json(&body, opts.validation)?
            };
            opts.duplicates = decoded.duplicates;
            let patch_body = decoded.value;
            match sub {
                Some(Subresource::Scale) => Ok(response::json(
                    200,
                    &reg.update_scale(t, name, ScaleChange::Patch(kind, &patch_body), &opts).await?,
                    &[],
                )),
                None | Some(Subresource::Status) => {
                    let w = reg.patch(t, name, kind, &patch_body, &opts, q.force).await?;
                    written(if w.created { 201 } else { 200 }, accept, &w.object, &w.warnings)
                }
                Some(_) => Err(ApiError::method_not_allowed("PATCH is not supported on this subresource")),
            }
        }
        (&Method::DELETE, Some(name), None) => {
            let mut opts = DeleteOptions::from_body(&body)?;
            merge_delete_query(&mut opts, &q);
            match reg.delete(t, name, &opts).await? {
                Deleted::Pending(obj) => Ok(response::json(200, &obj, &[])),
                Deleted::Gone(obj) if r.kind == "Pod" => Ok(response::json(200, &obj, &[])),
                Deleted::Gone(obj) => Ok(response::json(
                    200,
                    &skiff_api::error::success_status(r.group, r.plural, name, meta::uid(&obj)),
                    &[],
                )),
            }
        }
        (&Method::DELETE, None, None) => delete_collection(reg, t, &q, &body).await,
        _ => Err(ApiError::method_not_allowed(format!("{method} is not supported on this resource path"))),
    }
}

/// The `metadata` of a list answer: its resourceVersion, and where a page ends, its continue
/// token and how many items remain.
fn list_metadata(listed: &Listed) -> Value {
    let mut md = json!({"resourceVersion": listed.revision.to_string()});
    if let Some(c) = &listed.continue_token {
        md["continue"] = json!(c);
    }
    if let Some(n) = listed.remaining {
        md["remainingItemCount"] = json!(n);
    }
    md
}

/// DELETE on a collection (`deletecollection`): lists what the selectors (and a `limit`, one page)
/// pick, deletes each with the request's options, and answers the list as it was listed
/// (`registry/generic/registry/store.go: DeleteCollection`).
async fn delete_collection(reg: &Registry, t: &Target, q: &Query, body: &[u8]) -> Result<Response, ApiError> {
    let r = t.resource;
    let mut opts = DeleteOptions::from_body(body)?;
    merge_delete_query(&mut opts, q);
    reg.sync_for_read(r, q).await?;
    let listed = reg.list(t, q)?;
    for obj in listed.items.iter().map(Json::parse) {
        let mut target = t.clone();
        if r.namespaced() {
            target.namespace = Some(meta::namespace(&obj).to_string());
        }
        match reg.delete(&target, meta::name(&obj), &opts).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(response::list(&r.list_kind(), &r.api_version(), &list_metadata(&listed), &listed.items))
}

fn merge_delete_query(opts: &mut DeleteOptions, q: &Query) {
    if q.grace_period_seconds.is_some() {
        opts.grace_period_seconds = q.grace_period_seconds;
    }
    if q.propagation_policy.is_some() {
        opts.propagation_policy = q.propagation_policy.clone();
    }
    if q.orphan_dependents.is_some() {
        opts.orphan_dependents = q.orphan_dependents;
    }
    opts.dry_run |= q.dry_run;
}
