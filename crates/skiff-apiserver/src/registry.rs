//! The generic registry: create, read, update, patch and delete any resource through the [`Store`],
//! with Kubernetes' API machinery semantics (`apiserver pkg/registry/generic/registry/store.go`).
//! HTTP is not known here: handlers decode requests and call these functions.

use std::sync::Arc;

use serde_json::{Value, json};
use skiff_api::duplicates::Duplicates;
use skiff_api::patch::{self, PatchType};
use skiff_api::resource::{self, ResourceInfo, Subresource};
use skiff_api::schema::{self, FieldValidation};
use skiff_api::{ApiError, Cause, defaults, meta, validation};
use skiff_store::{Json, Object, Revision, Snapshot, Store, StoreError, Write};

use crate::request::Target;
use crate::selection::Selection;
use crate::strategy;

/// How a write was asked for.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// The field manager recorded in `managedFields`.
    pub manager: String,
    pub dry_run: bool,
    pub validation: FieldValidation,
    /// The keys the request body repeated (noted while decoding it, unless `validation` is
    /// `Ignore`): strict errors like unknown fields.
    pub duplicates: Duplicates,
}

/// A successful write: the object as stored (or as it would be, for a dry run).
#[derive(Debug)]
pub struct Written {
    /// The object as stored (shared with the store's copy), as its JSON text.
    pub object: Json,
    /// Whether the write created the object (201 rather than 200).
    pub created: bool,
    /// `Warning` headers for the client (unknown fields under `fieldValidation=Warn`).
    pub warnings: Vec<String>,
}

/// The outcome of a DELETE.
#[derive(Debug)]
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Value),
    /// The object stays until finalizers or its node let it go; this is its new state.
    Pending(Value),
}

/// A page of a list.
pub struct Listed {
    /// The objects as stored, as their JSON text.
    pub items: Vec<Json>,
    pub revision: Revision,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// Retries of a read-modify-write that lost a race with another writer.
const MAX_RETRIES: usize = 8;

pub struct Registry {
    pub store: Arc<dyn Store>,
}

fn store_error(r: &ResourceInfo, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists(_) => ApiError::already_exists(r.group, r.plural, name),
        StoreError::NotFound(_) => ApiError::not_found(r.group, r.plural, name),
        StoreError::Conflict { .. } => ApiError::stale(r.group, r.plural, name),
        StoreError::Compacted { requested, oldest } => {
            ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
        }
        StoreError::SnapshotExpired(_) => ApiError::gone(CONTINUE_EXPIRED),
        StoreError::TooLargeResourceVersion { requested, current } => too_large_resource_version(requested, current),
        StoreError::Backend(msg) => ApiError::internal(msg),
        StoreError::Closed => ApiError::unavailable("the store is shutting down"),
    }
}

/// kube-apiserver's `storage.NewTooLargeResourceVersionError`: a read that needs a revision the
/// store has not reached (within the watch cache's 3 seconds) is a 504 `Timeout` telling the
/// client to retry after a second, with the `ResourceVersionTooLarge` cause clients look for.
pub fn too_large_resource_version(requested: Revision, current: Revision) -> ApiError {
    let mut e =
        ApiError::new(504, "Timeout", format!("Timeout: Too large resource version: {requested}, current: {current}"));
    e.causes = vec![Cause::new("ResourceVersionTooLarge", "", "Too large resource version")];
    e.retry_after = Some(1);
    e
}

/// How long a read at a resourceVersion this server has not reached waits for it before it is a
/// 504 (kube-apiserver's watch cache `blockTimeout`).
const FUTURE_REVISION_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether a GET or LIST must be a consistent read ("most recent"): `resourceVersion` unset and
/// no continue token. `resourceVersion=0` (any freshness), an exact or minimum revision and a
/// continuation (its snapshot) are served from what the store has (`cacher/delegator.go`). A
/// watch starts from what the store has too, except a watch-list (`sendInitialEvents=true`)
/// without `resourceVersion`, whose initial state must be the most recent (`cacher.go`
/// `getWatchCacheResourceVersion`).
pub fn needs_consistent_read(q: &crate::request::Query) -> bool {
    q.resource_version.is_none() && q.continue_token.is_none() && (!q.watch || q.send_initial_events == Some(true))
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// Checks `apiVersion`/`kind` of a request body against the resource it was sent to, and fills them
/// in when absent (the apiserver decodes with the path's kind as the default).
pub fn check_type(
    r: &ResourceInfo,
    obj: &mut Value,
    expected_kind: &str,
    expected_api_version: &str,
) -> Result<(), ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "the body of the request must be a JSON object of kind {expected_kind}"
        )));
    };
    if let Some(v) = map.get("apiVersion") {
        let got = v.as_str().unwrap_or("");
        if got != expected_api_version {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({got}) does not match the expected API version ({expected_api_version})"
            )));
        }
    }
    if let Some(k) = map.get("kind") {
        let got = k.as_str().unwrap_or("");
        if got != expected_kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({got}) does not match the expected kind ({expected_kind}) of {}",
                skiff_api::error::qualified(r.plural, r.group)
            )));
        }
    }
    map.insert("apiVersion".into(), json!(expected_api_version));
    map.insert("kind".into(), json!(expected_kind));
    if !map.get("metadata").is_none_or(Value::is_object) {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    Ok(())
}

/// Unknown and duplicate fields, handled as `fieldValidation` asks: an error under Strict, warnings
/// under Warn (unknown fields are dropped unless Strict). A create or update words the error with the
/// decoding context; a patch gives it bare (`patch.go`).
fn check_fields(
    r: &ResourceInfo,
    obj: &mut Value,
    opts: &WriteOptions,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    check_fields_as(r, obj, opts, warnings, None)
}

/// [`check_fields`]; `patch` is the kind of the patch that made `obj`, whose own duplicate fields
/// come first in the error (a JSON patch's prefixed `json patch `).
fn check_fields_as(
    r: &ResourceInfo,
    obj: &mut Value,
    opts: &WriteOptions,
    warnings: &mut Vec<String>,
    patch: Option<PatchType>,
) -> Result<(), ApiError> {
    let unknown = schema::check(r, obj)?;
    if unknown.is_empty() && opts.duplicates.is_empty() {
        return Ok(());
    }
    let errors = match patch {
        None => opts.duplicates.object_errors(&unknown),
        Some(PatchType::Json) => opts.duplicates.patch_errors("json patch ", &unknown),
        Some(_) => opts.duplicates.patch_errors("", &unknown),
    };
    match opts.validation {
        FieldValidation::Strict if patch.is_some() => Err(schema::strict_error(&errors)),
        FieldValidation::Strict => Err(schema::strict_error_for(r, &errors)),
        FieldValidation::Warn => {
            warnings.extend(errors);
            schema::prune(obj, &unknown);
            Ok(())
        }
        FieldValidation::Ignore => {
            schema::prune(obj, &unknown);
            Ok(())
        }
    }
}

fn validate(r: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let causes = validation::validate(r, obj, old);
    if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid(r.kind, r.group, meta::name(obj), causes)) }
}

/// Metadata only the server sets: kept from the stored object on every update.
const SYSTEM_METADATA: &[&str] =
    &["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "namespace", "name"];

impl Registry {
    pub fn new(store: Arc<dyn Store>) -> Registry {
        Registry { store }
    }

    fn key(&self, t: &Target, name: &str) -> String {
        t.resource.key(t.namespace.as_deref(), name)
    }

    fn current(&self, t: &Target, name: &str) -> Result<Object, ApiError> {
        self.store.get(&self.key(t, name)).ok_or_else(|| ApiError::not_found(t.resource.group, t.resource.plural, name))
    }

    /// Before serving a GET or LIST that must be consistent ([`needs_consistent_read`]), waits
    /// until the store's reads include every write acknowledged before the request, by this API
    /// server or any other sharing the store (kube-apiserver's consistent reads from cache). Free
    /// for a store that is always consistent (SQLite); a store that cannot get there in time
    /// answers 504 ([`too_large_resource_version`]). A GET or LIST at a resourceVersion the store
    /// has not reached (read from another server) waits up to 3 s for it, then is that 504.
    pub async fn sync_for_read(&self, r: &ResourceInfo, q: &crate::request::Query) -> Result<(), ApiError> {
        if needs_consistent_read(q) {
            self.store.sync().await.map_err(|e| store_error(r, "", e))?;
        } else if !q.watch
            && q.continue_token.is_none()
            && let Some(rev) = q.resource_version_number()?
            && rev > self.store.revision()
        {
            // A resourceVersion from another server, ahead of this one's cache: wait for it.
            self.store.wait_for(rev, FUTURE_REVISION_WAIT).await.map_err(|e| store_error(r, "", e))?;
        }
        Ok(())
    }

    /// GET of one object, as its JSON text.
    pub fn get(&self, t: &Target, name: &str) -> Result<Json, ApiError> {
        Ok(self.current(t, name)?.value)
    }

    /// The namespace must exist and accept new content.
    fn check_namespace(&self, r: &ResourceInfo, ns: &str) -> Result<(), ApiError> {
        if !r.namespaced() {
            return Ok(());
        }
        let namespaces = resource::lookup("", "v1", "namespaces").ok_or_else(|| ApiError::internal("no namespaces"))?;
        match self.store.get(&namespaces.key(None, ns)) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(o) if being_deleted(&o.value) => Err(ApiError::forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ))
            .with_namespace_terminating(r, ns)),
            Some(_) => Ok(()),
        }
    }

    /// POST: creates an object (`rest.BeforeCreate` + the store's create).
    pub async fn create(&self, t: &Target, obj: Value, opts: &WriteOptions) -> Result<Written, ApiError> {
        self.create_as(t, obj, opts, false).await
    }

    /// Create; `fields_recorded` when server-side apply already wrote the Apply entry of managedFields.
    async fn create_as(
        &self,
        t: &Target,
        mut obj: Value,
        opts: &WriteOptions,
        fields_recorded: bool,
    ) -> Result<Written, ApiError> {
        let r = t.resource;
        check_type(r, &mut obj, r.kind, &r.api_version())?;
        let mut warnings = Vec::new();
        check_fields(r, &mut obj, opts, &mut warnings)?;
        match (r.namespaced(), t.namespace.as_deref()) {
            (true, Some(ns)) => {
                let given = meta::namespace(&obj);
                if !given.is_empty() && given != ns {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                meta::set_meta(&mut obj, "namespace", json!(ns));
            }
            (true, None) => return Err(ApiError::bad_request("a namespaced resource is created in a namespace")),
            (false, _) => {
                meta::remove_meta(&mut obj, "namespace");
            }
        }
        if !meta::resource_version(&obj).is_empty() {
            return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
        }
        let generate = meta::str_at(&obj, &["metadata", "generateName"]).map(str::to_string).filter(|s| !s.is_empty());
        if meta::name(&obj).is_empty() && generate.is_none() {
            return Err(ApiError::invalid(
                r.kind,
                r.group,
                "",
                vec![Cause::new(
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )],
            ));
        }
        let now = meta::now_rfc3339();
        {
            let m = meta::metadata_mut(&mut obj);
            m.insert("uid".into(), json!(meta::new_uid()));
            m.insert("creationTimestamp".into(), json!(now));
            for k in ["deletionTimestamp", "deletionGracePeriodSeconds", "generation", "resourceVersion"] {
                m.remove(k);
            }
        }
        strategy::prepare_create(r, &mut obj);
        defaults::apply_defaults(r, &mut obj);
        if (r.group, r.kind) == ("", "Pod") {
            defaults::admit_pod(&mut obj);
        }
        if let Some(prefix) = &generate
            && meta::name(&obj).is_empty()
        {
            meta::set_meta(&mut obj, "name", json!(meta::generate_name(prefix)));
        }
        validate(r, &obj, None)?;
        self.check_namespace(r, meta::namespace(&obj))?;
        if !fields_recorded {
            patch::managed_fields::record_update(r, None, &mut obj, &opts.manager, None, &now);
        }

        for _attempt in 0..MAX_RETRIES {
            let name = meta::name(&obj).to_string();
            if opts.dry_run {
                if self.store.get(&self.key(t, &name)).is_some() {
                    return Err(ApiError::already_exists(r.group, r.plural, &name));
                }
                return Ok(Written { object: Json::encode(&obj), created: true, warnings });
            }
            let key = self.key(t, &name);
            // Only a generated name may need the object again (for another try).
            let value = if generate.is_some() { obj.clone() } else { std::mem::take(&mut obj) };
            match self.store.write(Write::Create { key, value }).await {
                Ok(stored) => return Ok(Written { object: stored.value, created: true, warnings }),
                Err(StoreError::AlreadyExists(_)) if generate.is_some() => {
                    // RetryGenerateName: try another random suffix.
                    let prefix = generate.as_deref().unwrap_or_default();
                    meta::set_meta(&mut obj, "name", json!(meta::generate_name(prefix)));
                }
                Err(e) => return Err(store_error(r, &name, e)),
            }
        }
        Err(ApiError::already_exists(r.group, r.plural, meta::name(&obj)))
    }
}

/// Whether a stored object has `metadata.deletionTimestamp`, read without decoding the rest of it
/// (every create reads its namespace this way). Text that has no `deletionTimestamp` and no `\u`
/// escape (which could spell the name another way) has no such field: most namespaces are
/// answered by that scan, without parsing.
fn being_deleted(obj: &Json) -> bool {
    let text = obj.as_str();
    if !text.contains("deletionTimestamp") && !text.contains("\\u") {
        return false;
    }
    #[derive(serde::Deserialize)]
    struct Object {
        metadata: Option<Metadata>,
    }
    #[derive(serde::Deserialize)]
    struct Metadata {
        #[serde(rename = "deletionTimestamp")]
        deletion_timestamp: Option<Value>,
    }
    let parsed = serde_json::from_str::<Object>(obj.as_str()).ok();
    parsed.and_then(|o| o.metadata).and_then(|m| m.deletion_timestamp).is_some_and(|t| t.is_string())
}

/// Adds the namespace-terminating cause the apiserver attaches to that 403.
trait NamespaceTerminating {
    fn with_namespace_terminating(self, r: &ResourceInfo, ns: &str) -> Self;
}

impl NamespaceTerminating for ApiError {
    fn with_namespace_terminating(mut self, r: &ResourceInfo, ns: &str) -> Self {
        self.group = Some(r.group.to_string());
        self.kind = Some(r.plural.to_string());
        self.causes = vec![Cause::new(
            "NamespaceTerminating",
            "metadata.namespace",
            format!("namespace {ns} is being terminated"),
        )];
        self
    }
}

/// What an update starts from: the stored object and the caller's new version of it.
struct UpdateRequest<'a> {
    target: &'a Target,
    name: &'a str,
    new: Value,
    /// The precondition: the body's `resourceVersion`, if it had one.
    expected: Option<Revision>,
    /// `None` for the main resource; `Some(Status)` / `Some(Scale)` for subresource writes.
    subresource: Option<Subresource>,
    /// Whether managedFields were already computed (server-side apply).
    fields_recorded: bool,
    /// The stored object the request was built from, and its decoded value: the first attempt
    /// updates it instead of reading and decoding it again (a change since fails the write with
    /// a conflict, and the next attempt reads afresh).
    read: Option<(Object, Value)>,
}

fn parse_rv(r: &ResourceInfo, name: &str, rv: &str) -> Result<Option<Revision>, ApiError> {
    if rv.is_empty() {
        return Ok(None);
    }
    rv.parse().map(Some).map_err(|_| {
        ApiError::invalid(
            r.kind,
            r.group,
            name,
            vec![Cause::new(
                "FieldValueInvalid",
                "metadata.resourceVersion",
                format!("Invalid value: {rv:?}: must be a number"),
            )],
        )
    })
}

impl Registry {
    /// PUT on the main resource or on `/status`.
    pub async fn update(
        &self,
        t: &Target,
        name: &str,
        mut body: Value,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let r = t.resource;
        check_type(r, &mut body, r.kind, &r.api_version())?;
        let mut warnings = Vec::new();
        check_fields(r, &mut body, opts, &mut warnings)?;
        let body_name = meta::name(&body);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(ns) = t.namespace.as_deref() {
            let given = meta::namespace(&body);
            if !given.is_empty() && given != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let expected = parse_rv(r, name, meta::resource_version(&body))?;
        let req = UpdateRequest {
            target: t,
            name,
            new: body,
            expected,
            subresource: t.subresource,
            fields_recorded: false,
            read: None,
        };
        let mut w = self.guaranteed_update(req, opts).await?;
        w.warnings.extend(warnings);
        Ok(w)
    }

    /// Applies an update to the stored object, retrying (from a fresh read) when another writer won
    /// the race and the caller set no precondition.
    async fn guaranteed_update(&self, mut req: UpdateRequest<'_>, opts: &WriteOptions) -> Result<Written, ApiError> {
        let r = req.target.resource;
        let mut read = req.read.take();
        for _ in 0..MAX_RETRIES {
            let (current, old) = match read.take() {
                Some(read) => read,
                None => {
                    let current = self.current(req.target, req.name)?;
                    let old = current.value.parse();
                    (current, old)
                }
            };
            if let Some(rv) = req.expected
                && rv != current.rev
            {
                return Err(ApiError::stale(r.group, r.plural, req.name));
            }
            let (next, delete) = self.prepare(&req, &old, opts)?;
            if next == old {
                // Nothing changed: no write, no new resourceVersion (as the apiserver skips no-op
                // updates); the stored text is the answer.
                return Ok(Written { object: current.value, created: false, warnings: Vec::new() });
            }
            if opts.dry_run {
                return Ok(Written { object: Json::encode(&next), created: false, warnings: Vec::new() });
            }
            let key = self.key(req.target, req.name);
            let write = if delete {
                Write::Delete { key, expected: Some(current.rev) }
            } else {
                Write::Update { key, value: next, expected: Some(current.rev) }
            };
            match self.store.write(write).await {
                Ok(stored) => {
                    return Ok(Written { object: stored.value, created: false, warnings: Vec::new() });
                }
                Err(StoreError::Conflict { .. }) if req.expected.is_none() => continue,
                Err(e) => return Err(store_error(r, req.name, e)),
            }
        }
        Err(ApiError::stale(r.group, r.plural, req.name))
    }

    /// The object an update would store, and whether the update finishes a pending deletion.
    fn prepare(&self, req: &UpdateRequest<'_>, old: &Value, opts: &WriteOptions) -> Result<(Value, bool), ApiError> {
        let r = req.target.resource;
        let mut new = req.new.clone();
        {
            let old_meta = old.get("metadata").and_then(Value::as_object);
            let m = meta::metadata_mut(&mut new);
            for k in SYSTEM_METADATA {
                match old_meta.and_then(|om| om.get(*k)) {
                    Some(v) => m.insert((*k).to_string(), v.clone()),
                    None => m.remove(*k),
                };
            }
            m.insert("resourceVersion".into(), json!(meta::resource_version(old)));
            if !m.contains_key("managedFields")
                && let Some(mf) = old_meta.and_then(|om| om.get("managedFields"))
            {
                m.insert("managedFields".into(), mf.clone());
            }
        }
        strategy::prepare_update(r, &mut new, old, req.subresource);
        defaults::apply_defaults(r, &mut new);
        validate(r, &new, Some(old))?;
        if strategy::tracks_generation(r) && strategy::spec_changed(&new, old) {
            meta::set_meta(&mut new, "generation", json!(meta::generation(old) + 1));
        }
        // Removing the last finalizer of an object being deleted deletes it.
        let delete = meta::deletion_timestamp(&new).is_some()
            && meta::finalizers(&new).is_empty()
            && !((r.group, r.kind) == ("", "Pod") && grace_seconds(&new) > 0);
        if !req.fields_recorded && !same_ignoring_managed_fields(&new, old) {
            let sub = req.subresource.map(Subresource::name);
            patch::managed_fields::record_update(r, Some(old), &mut new, &opts.manager, sub, &meta::now_rfc3339());
        }
        Ok((new, delete))
    }

    /// PATCH on the main resource or on `/status`; server-side apply creates a missing object.
    pub async fn patch(
        &self,
        t: &Target,
        name: &str,
        kind: PatchType,
        patch_body: &Value,
        opts: &WriteOptions,
        force: bool,
    ) -> Result<Written, ApiError> {
        let r = t.resource;
        for _ in 0..MAX_RETRIES {
            let current = match self.store.get(&self.key(t, name)) {
                Some(c) => c,
                None if kind == PatchType::Apply && t.subresource.is_none() => {
                    let mut obj = patch_body.clone();
                    check_type(r, &mut obj, r.kind, &r.api_version())?;
                    if meta::name(&obj).is_empty() {
                        meta::set_meta(&mut obj, "name", json!(name));
                    }
                    let applied = patch::apply::apply(r, None, &obj, &opts.manager, force, &meta::now_rfc3339())?;
                    return self.create_as(t, applied, opts, true).await;
                }
                None => return Err(ApiError::not_found(r.group, r.plural, name)),
            };
            let parsed = current.value.parse();
            let old = &parsed;
            let mut warnings = Vec::new();
            let (patched, recorded) = match kind {
                PatchType::Json => (patch::json_patch(old, patch_body)?, false),
                PatchType::Merge => (patch::merge_patch(old, patch_body)?, false),
                PatchType::Strategic => (patch::strategic_merge_patch(r, old, patch_body)?, false),
                PatchType::Apply => {
                    let mut applied = patch_body.clone();
                    check_type(r, &mut applied, r.kind, &r.api_version())?;
                    check_fields_as(r, &mut applied, opts, &mut warnings, Some(kind))?;
                    (patch::apply::apply(r, Some(old), &applied, &opts.manager, force, &meta::now_rfc3339())?, true)
                }
            };
            let mut patched = patched;
            check_type(r, &mut patched, r.kind, &r.api_version())?;
            if kind != PatchType::Apply {
                check_fields_as(r, &mut patched, opts, &mut warnings, Some(kind))?;
            }
            if meta::name(&patched) != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta::name(&patched)
                )));
            }
            let rv = meta::resource_version(&patched).to_string();
            // A resourceVersion the patch itself carries is a precondition, even when it equals the
            // current one: a concurrent write must then fail the patch, not be patched over.
            let precondition = rv != meta::resource_version(old) || patch_sets_resource_version(kind, patch_body);
            let expected = if precondition { parse_rv(r, name, &rv)? } else { Some(current.rev) };
            if precondition && expected != Some(current.rev) {
                return Err(ApiError::stale(r.group, r.plural, name));
            }
            let uid = meta::uid(&patched);
            if !uid.is_empty() && uid != meta::uid(old) {
                return Err(ApiError::conflict(
                    r.group,
                    r.plural,
                    name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta::uid(old)),
                ));
            }
            let req = UpdateRequest {
                target: t,
                name,
                new: patched,
                expected,
                subresource: t.subresource,
                fields_recorded: recorded,
                read: Some((current, parsed)),
            };
            // A conflict here is a write that won the race since `current` was read (server-side
            // apply's field conflicts are found above, before the write): patch the newer object.
            match self.guaranteed_update(req, opts).await {
                Err(e) if e.is_conflict() && !precondition => continue,
                Err(e) => return Err(e),
                Ok(mut w) => {
                    w.warnings.extend(warnings);
                    return Ok(w);
                }
            }
        }
        Err(ApiError::stale(r.group, r.plural, name))
    }

    /// GET of `/scale`.
    pub fn get_scale(&self, t: &Target, name: &str) -> Result<Value, ApiError> {
        Ok(scale_of(&self.current(t, name)?.value.parse()))
    }

    /// PUT or PATCH of `/scale`: `patch` is applied to the Scale view, and its `spec.replicas` written to
    /// the parent's spec (a spec change: generation moves).
    pub async fn update_scale(
        &self,
        t: &Target,
        name: &str,
        change: ScaleChange<'_>,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let r = t.resource;
        for _ in 0..MAX_RETRIES {
            let current = self.current(t, name)?;
            let parent = current.value.parse();
            let scale = scale_of(&parent);
            let mut next = match &change {
                ScaleChange::Replace(body) => (*body).clone(),
                ScaleChange::Patch(PatchType::Json, p) => patch::json_patch(&scale, p)?,
                ScaleChange::Patch(PatchType::Merge | PatchType::Strategic, p) => patch::merge_patch(&scale, p)?,
                ScaleChange::Patch(PatchType::Apply, _) => {
                    return Err(ApiError::unsupported_media_type("application/apply-patch+yaml"));
                }
            };
            check_type(r, &mut next, "Scale", "autoscaling/v1")?;
            let replicas = next.pointer("/spec/replicas").map(|v| v.as_i64().ok_or(v)).unwrap_or(Ok(0));
            let replicas = match replicas {
                Ok(n) if n >= 0 && n <= i64::from(i32::MAX) => n,
                Ok(n) => {
                    return Err(ApiError::invalid(
                        "Scale",
                        "autoscaling",
                        name,
                        vec![Cause::new(
                            "FieldValueInvalid",
                            "spec.replicas",
                            format!("Invalid value: {n}: must be greater than or equal to 0"),
                        )],
                    ));
                }
                Err(v) => return Err(ApiError::bad_request(format!("spec.replicas must be an integer, got {v}"))),
            };
            let rv = meta::resource_version(&next).to_string();
            let precondition = scale_precondition(&change, &scale, &next);
            let expected = if precondition { parse_rv(r, name, &rv)? } else { None };
            let mut new = parent.clone();
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("replicas".into(), json!(replicas));
            }
            let req = UpdateRequest {
                target: t,
                name,
                new,
                expected: Some(expected.unwrap_or(current.rev)),
                subresource: Some(Subresource::Scale),
                fields_recorded: false,
                read: Some((current, parent)),
            };
            match self.guaranteed_update(req, opts).await {
                Err(e) if e.is_conflict() && !precondition => continue,
                Err(e) => return Err(e),
                Ok(w) => return Ok(scale_of(&w.object.parse())),
            }
        }
        Err(ApiError::stale(r.group, r.plural, name))
    }
}

/// Whether a write to `/scale` is conditional on the resourceVersion it carries: a PUT whose body
/// has one, a patch that sets or changes it. A patch otherwise inherits the current Scale's
/// resourceVersion, and a concurrent write (a controller's status update) must make the server
/// patch the newer object, not answer 409 (upstream re-applies the patch in GuaranteedUpdate).
fn scale_precondition(change: &ScaleChange<'_>, scale: &Value, next: &Value) -> bool {
    let rv = meta::resource_version(next);
    match change {
        ScaleChange::Replace(_) => !rv.is_empty(),
        ScaleChange::Patch(kind, body) => {
            rv != meta::resource_version(scale) || patch_sets_resource_version(*kind, body)
        }
    }
}

/// A write to `/scale`.
pub enum ScaleChange<'a> {
    Replace(&'a Value),
    Patch(PatchType, &'a Value),
}

/// The `autoscaling/v1 Scale` view of a Deployment or ReplicaSet.
pub fn scale_of(obj: &Value) -> Value {
    let m = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let pick = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    let selector = obj.pointer("/spec/selector").map(skiff_api::selector::selector_string).unwrap_or_default();
    let mut metadata = json!({
        "name": pick("name"),
        "namespace": pick("namespace"),
        "uid": pick("uid"),
        "resourceVersion": pick("resourceVersion"),
        "creationTimestamp": pick("creationTimestamp"),
    });
    if let Some(o) = metadata.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        }
    })
}

fn same_ignoring_managed_fields(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        meta::remove_meta(&mut v, "managedFields");
        v
    };
    strip(a) == strip(b)
}

/// Whether a patch body names `metadata.resourceVersion` (an optimistic-lock precondition).
fn patch_sets_resource_version(kind: PatchType, body: &Value) -> bool {
    match kind {
        PatchType::Json => body.as_array().is_some_and(|ops| {
            ops.iter().any(|op| op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion"))
        }),
        _ => body.pointer("/metadata/resourceVersion").and_then(Value::as_str).is_some_and(|s| !s.is_empty()),
    }
}

/// `metadata.deletionGracePeriodSeconds`, 0 when unset.
fn grace_seconds(obj: &Value) -> i64 {
    meta::at(obj, &["metadata", "deletionGracePeriodSeconds"]).and_then(Value::as_i64).unwrap_or(0)
}

/// DeleteOptions from the body and the query (`metav1.DeleteOptions`).
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub orphan_dependents: Option<bool>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a DeleteOptions body (may be empty); query parameters given too take precedence.
    pub fn from_body(body: &[u8]) -> Result<DeleteOptions, ApiError> {
        let mut o = DeleteOptions::default();
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(o);
        }
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the body of the request could not be decoded as DeleteOptions: {e}"))
        })?;
        if !v.is_object() {
            return Err(ApiError::bad_request("DeleteOptions must be an object"));
        }
        o.grace_period_seconds = v.get("gracePeriodSeconds").and_then(Value::as_i64);
        o.propagation_policy = v.get("propagationPolicy").and_then(Value::as_str).map(str::to_string);
        o.orphan_dependents = v.get("orphanDependents").and_then(Value::as_bool);
        o.precondition_uid = v.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
        o.precondition_rv = v.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
        o.dry_run = v.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == "All"));
        Ok(o)
    }

    fn validate(&self) -> Result<(), ApiError> {
        let mut causes = Vec::new();
        if let Some(p) = &self.propagation_policy {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                causes.push(Cause::new(
                    "FieldValueNotSupported",
                    "propagationPolicy",
                    format!("Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""),
                ));
            }
            if self.orphan_dependents.is_some() {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "propagationPolicy",
                    "Invalid value: \"\": orphanDependents and deletionPropagation cannot be both set",
                ));
            }
        }
        if let Some(g) = self.grace_period_seconds
            && g < 0
        {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "gracePeriodSeconds",
                format!("Invalid value: {g}: must be >= 0"),
            ));
        }
        if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid("DeleteOptions", "meta.k8s.io", "", causes)) }
    }

    /// The finalizer the propagation policy asks for (`orphan` / `foregroundDeletion`), if any.
    fn finalizer(&self) -> Option<&'static str> {
        match (self.propagation_policy.as_deref(), self.orphan_dependents) {
            (Some("Orphan"), _) | (None, Some(true)) => Some("orphan"),
            (Some("Foreground"), _) => Some("foregroundDeletion"),
            _ => None,
        }
    }
}

impl Registry {
    /// DELETE of one object (`store.go: Delete` with `BeforeDelete`): immediate, or pending on
    /// finalizers and, for a pod on a node, on its node confirming the kill.
    pub async fn delete(&self, t: &Target, name: &str, opts: &DeleteOptions) -> Result<Deleted, ApiError> {
        opts.validate()?;
        let r = t.resource;
        for _ in 0..MAX_RETRIES {
            let current = self.current(t, name)?;
            let obj = &current.value.parse();
            if let Some(uid) = &opts.precondition_uid
                && uid != meta::uid(obj)
            {
                return Err(ApiError::conflict(
                    r.group,
                    r.plural,
                    name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta::uid(obj)),
                ));
            }
            if let Some(rv) = &opts.precondition_rv
                && rv != meta::resource_version(obj)
            {
                return Err(ApiError::conflict(
                    r.group,
                    r.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        meta::resource_version(obj)
                    ),
                ));
            }
            let grace = self.grace_period(r, obj, opts);
            let mut finalizers = meta::finalizers(obj);
            if let Some(f) = opts.finalizer() {
                if !finalizers.iter().any(|x| x == f) {
                    finalizers.push(f.to_string());
                }
                // One policy at a time: asking to orphan withdraws a foreground request and vice versa.
                let other = if f == "orphan" { "foregroundDeletion" } else { "orphan" };
                finalizers.retain(|x| x != other);
            } else if opts.propagation_policy.as_deref() == Some("Background") {
                finalizers.retain(|x| x != "orphan" && x != "foregroundDeletion");
            }
            let is_namespace = (r.group, r.kind) == ("", "Namespace");
            let immediate = finalizers.is_empty() && grace == 0 && !is_namespace;
            if opts.dry_run {
                return Ok(if immediate { Deleted::Gone(obj.clone()) } else { Deleted::Pending(obj.clone()) });
            }
            let key = self.key(t, name);
            let write = if immediate {
                Write::Delete { key, expected: Some(current.rev) }
            } else {
                let mut next = obj.clone();
                let already = meta::deletion_timestamp(obj).is_some();
                let shorter = already && grace < grace_seconds(obj);
                if !already || shorter {
                    let when = std::time::SystemTime::now() + std::time::Duration::from_secs(grace.max(0) as u64);
                    meta::set_meta(&mut next, "deletionTimestamp", json!(meta::format_rfc3339(when)));
                    meta::set_meta(&mut next, "deletionGracePeriodSeconds", json!(grace));
                    if strategy::tracks_generation(r) {
                        meta::set_meta(&mut next, "generation", json!(meta::generation(obj) + 1));
                    }
                }
                if finalizers.is_empty() {
                    meta::remove_meta(&mut next, "finalizers");
                } else {
                    meta::set_meta(&mut next, "finalizers", json!(finalizers));
                }
                if is_namespace && !already {
                    next["status"] = json!({"phase": "Terminating"});
                }
                if next == *obj {
                    return Ok(Deleted::Pending(next));
                }
                Write::Update { key, value: next, expected: Some(current.rev) }
            };
            match self.store.write(write).await {
                Ok(stored) if immediate => return Ok(Deleted::Gone(stored.value.parse())),
                Ok(stored) => return Ok(Deleted::Pending(stored.value.parse())),
                Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => continue,
                Err(e) => return Err(store_error(r, name, e)),
            }
        }
        Err(ApiError::stale(r.group, r.plural, name))
    }

    /// The grace period of a delete: pods on a node get one (their node confirms the kill); an
    /// unscheduled or finished pod, and every other kind, goes at once.
    fn grace_period(&self, r: &ResourceInfo, obj: &Value, opts: &DeleteOptions) -> i64 {
        if (r.group, r.kind) != ("", "Pod") {
            return 0;
        }
        let scheduled = obj.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
        let phase = obj.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
        if !scheduled || phase == "Succeeded" || phase == "Failed" {
            return 0;
        }
        let default = obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30);
        let g = opts.grace_period_seconds.unwrap_or(default);
        // A pod already being deleted can only have its grace period shortened.
        if meta::deletion_timestamp(obj).is_some() { g.min(grace_seconds(obj)) } else { g }
    }

    /// LIST: one page of the objects under the target's namespace matching the selectors, from one
    /// snapshot (pages after the first come from the snapshot the first was read from).
    pub fn list(&self, t: &Target, q: &crate::request::Query) -> Result<Listed, ApiError> {
        let r = t.resource;
        q.validate_list()?;
        let selection = Selection::parse(q, r)?;
        let (snapshot, after) = match &q.continue_token {
            Some(token) => {
                let (rev, after) = decode_continue(token)?;
                let snapshot = match rev {
                    // The token of an expired list's answer: go on from the latest revision.
                    None => self.store.snapshot(),
                    Some(rev) => self.store.snapshot_at(rev).map_err(|e| match e {
                        // As kube-apiserver's storage when the snapshot is compacted away: 410, with a
                        // token that goes on from the same key at the latest revision.
                        StoreError::SnapshotExpired(_) => ApiError {
                            list_continue: Some(encode_continue(None, &after)),
                            ..ApiError::gone(CONTINUE_EXPIRED)
                        },
                        e => store_error(r, "", e),
                    })?,
                };
                (snapshot, Some(after))
            }
            None => (self.snapshot_for(r, q)?, None),
        };
        let prefix = match &t.namespace {
            Some(ns) => r.namespace_prefix(ns),
            None => r.key_prefix(),
        };
        let unfiltered = selection.is_everything();
        let matches = |o: &&Object| selection.matches(&o.value);
        // `metadata.name=x` (kubectl wait, rollout status, delete --wait) needs no scan.
        let by_name = selection.name_equals().filter(|_| t.namespace.is_some() || !r.namespaced());
        let mut items = Vec::new();
        let mut continue_token = None;
        let mut remaining = None;
        let limit = q.limit.unwrap_or(usize::MAX);
        if let Some(n) = by_name {
            let key = r.key(t.namespace.as_deref(), n);
            if let Some(o) = snapshot.objects.get(key.as_str()).filter(|o| matches(o)) {
                items.push(o.value.clone());
            }
        } else {
            // As kube-apiserver's storage: a page ends after `limit` matching objects; `continue` is
            // given when any object follows in the range (matching or not: the next page may be
            // empty), and `remainingItemCount` only when nothing is filtered (counting the matches
            // would mean evaluating the selectors on the whole rest of the range for every page).
            let mut iter = snapshot.range(&prefix, after.as_deref());
            let mut last_key = None;
            for o in iter.by_ref().filter(matches) {
                items.push(o.value.clone());
                if items.len() == limit {
                    last_key = Some(o.key.clone());
                    break;
                }
            }
            if let Some(last) = last_key {
                let rest = if unfiltered { iter.count() } else { usize::from(iter.next().is_some()) };
                if rest > 0 {
                    continue_token = Some(encode_continue(Some(snapshot.rev), &last));
                    remaining = unfiltered.then_some(rest);
                    self.store.retain_snapshot(&snapshot);
                }
            }
        }
        Ok(Listed { items, revision: snapshot.rev, continue_token, remaining })
    }

    /// The snapshot a list reads: the latest, or exactly the one asked for with `resourceVersionMatch=Exact`.
    fn snapshot_for(&self, r: &ResourceInfo, q: &crate::request::Query) -> Result<Snapshot, ApiError> {
        let rv = q.resource_version_number()?;
        match (q.resource_version_match.as_deref(), rv) {
            (Some("Exact"), Some(rev)) if rev != self.store.revision() => self.store.snapshot_at(rev).map_err(|_| {
                store_error(r, "", StoreError::Compacted { requested: rev, oldest: self.store.oldest_watchable() })
            }),
            (_, Some(rev)) if rev > self.store.revision() => {
                Err(too_large_resource_version(rev, self.store.revision()))
            }
            _ => Ok(self.store.snapshot()),
        }
    }
}

/// The revision a continue token carries to go on at the latest one (upstream's `-1`).
const LATEST: i64 = -1;

/// A continue token going on after `last_key` at revision `rev` (`None`: the latest).
fn encode_continue(rev: Option<Revision>, last_key: &str) -> String {
    use base64::Engine;
    let rv = rev.map_or(LATEST, |r| i64::try_from(r).unwrap_or(i64::MAX));
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": last_key});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

/// A continue token's revision (`None`: the latest, [`LATEST`]) and the key it goes on after.
fn decode_continue(token: &str) -> Result<(Option<Revision>, String), ApiError> {
    use base64::Engine;
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rev = match v.get("rv").and_then(Value::as_i64).ok_or_else(bad)? {
        LATEST => None,
        rev => Some(Revision::try_from(rev).ok().filter(|r| *r > 0).ok_or_else(bad)?),
    };
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rev, start.to_string()))
}

impl Registry {
    /// POST `pods/{name}/binding`: assigns a pending pod to a node (the scheduler's write).
    ///
    /// Like upstream's `BindingREST`, this writes the pod at the storage level: the binding sets
    /// `spec.nodeName` and the `PodScheduled` condition without recording a `managedFields` entry
    /// (field management applies to the Binding request, not to the pod it changes). It is also
    /// the hottest write of a scale-up, so it does no more than that.
    pub async fn bind(&self, t: &Target, name: &str, binding: &Value, opts: &WriteOptions) -> Result<(), ApiError> {
        let node = binding.pointer("/target/name").and_then(Value::as_str).unwrap_or("");
        if node.is_empty() {
            return Err(ApiError::invalid(
                "Binding",
                "",
                name,
                vec![Cause::new("FieldValueRequired", "target.name", "Required value")],
            ));
        }
        let r = t.resource;
        for _ in 0..MAX_RETRIES {
            let current = self.current(t, name)?;
            let pod = &current.value.parse();
            if meta::deletion_timestamp(pod).is_some() {
                return Err(ApiError::conflict(
                    r.group,
                    r.plural,
                    name,
                    &format!("pod {name} is being deleted, cannot be assigned to a host"),
                ));
            }
            if let Some(assigned) = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                return Err(ApiError::conflict(
                    r.group,
                    r.plural,
                    name,
                    &format!("pod {name} is already assigned to node {assigned:?}"),
                ));
            }
            let mut next = pod.clone();
            if let Some(spec) = next.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("nodeName".into(), json!(node));
            }
            let now = meta::now_rfc3339();
            let condition =
                json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
            let status = meta::object_field_mut(&mut next, "status");
            let conditions = status.entry("conditions").or_insert_with(|| json!([]));
            if let Some(list) = conditions.as_array_mut() {
                list.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
                list.push(condition);
            }
            if opts.dry_run {
                return Ok(());
            }
            let key = self.key(t, name);
            match self.store.write(Write::Update { key, value: next, expected: Some(current.rev) }).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_error(r, name, e)),
            }
        }
        Err(ApiError::stale(r.group, r.plural, name))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use skiff_store::{SqliteOptions, SqliteStore, Watch};

    use super::*;
    use crate::request::Query;

    #[test]
    fn being_deleted_reads_the_deletion_timestamp_as_meta_does() {
        let cases = [
            json!({"metadata": {"name": "ns", "deletionTimestamp": "2026-12-01T10:00:00Z"}, "spec": {}}),
            json!({"metadata": {"name": "ns"}, "status": {"phase": "Active"}}),
            json!({"metadata": {"deletionTimestamp": null}}),
            json!({"metadata": {"deletionTimestamp": 5}}),
            json!({"metadata": "odd"}),
            json!({"kind": "Namespace"}),
            json!([1]),
            json!({"metadata": {"name": "ns", "labels": {"note": "deletionTimestamp"}}}),
            json!({"metadata": {"annotations": {"deletionTimestamp": "2026-12-01T10:00:00Z"}}}),
        ];
        for obj in cases {
            assert_eq!(being_deleted(&Json::encode(&obj)), meta::deletion_timestamp(&obj).is_some(), "{obj}");
        }
        // Text not written by serde_json (etcd holds what any writer put there) may escape a
        // letter of the name: that is still the field.
        let escaped = Json::from_text(r#"{"metadata":{"deletion\u0054imestamp":"2026-12-01T10:00:00Z"}}"#.to_owned())
            .expect("valid JSON");
        assert!(being_deleted(&escaped));
        let plain = Json::from_text(r#"{"metadata":{"name":"a\u0062"}}"#.to_owned()).expect("valid JSON");
        assert!(!being_deleted(&plain));
    }

    #[test]
    fn consistent_reads_are_those_without_a_resource_version() {
        let cases = [
            ("", true),
            ("resourceVersion=", true),
            ("labelSelector=a%3Db&limit=5", true),
            ("resourceVersion=0", false),
            ("resourceVersion=42", false),
            ("resourceVersion=42&resourceVersionMatch=NotOlderThan", false),
            ("resourceVersion=42&resourceVersionMatch=Exact", false),
            ("continue=abc&limit=5", false),
            ("watch=1", false),
            ("watch=1&resourceVersion=0", false),
            ("watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan", false),
            ("watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", true),
            ("watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0", false),
        ];
        for (query, want) in cases {
            let q = Query::parse(Some(query)).expect("query");
            assert_eq!(needs_consistent_read(&q), want, "{query}");
        }
    }

    #[test]
    fn too_large_resource_version_is_kube_apiservers_timeout() {
        let e = too_large_resource_version(120, 97);
        assert_eq!(e.retry_after, Some(1));
        assert_eq!(
            e.to_status(),
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "Timeout: Too large resource version: 120, current: 97",
                "reason": "Timeout",
                "details": {
                    "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version", "field": ""}],
                    "retryAfterSeconds": 1
                },
                "code": 504
            })
        );
        let r = resource::lookup("", "v1", "pods").expect("pods");
        let mapped = store_error(r, "", StoreError::TooLargeResourceVersion { requested: 120, current: 97 });
        assert_eq!(mapped, e);
    }

    /// A SQLite store whose `sync` is counted, and fails when told to; with `interfere` set, the
    /// next update is preceded by another writer's update of the same key (its current value
    /// written again, at a new revision).
    struct Counted {
        inner: SqliteStore,
        syncs: AtomicUsize,
        stalled: bool,
        interfere: AtomicBool,
    }

    /// What `#[async_trait]` makes of an `async fn` of the trait (this crate does not use the macro).
    type Boxed<'a, T> = std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

    impl Store for Counted {
        fn write<'a, 'b>(&'a self, write: Write) -> Boxed<'b, Object>
        where
            'a: 'b,
        {
            Box::pin(async move {
                if let Write::Update { key, .. } = &write
                    && self.interfere.swap(false, Ordering::SeqCst)
                    && let Some(current) = self.inner.get(key)
                {
                    let other = Write::Update { key: key.clone(), value: current.value.parse(), expected: None };
                    self.inner.write(other).await?;
                }
                self.inner.write(write).await
            })
        }

        fn sync<'a, 'b>(&'a self) -> Boxed<'b, Revision>
        where
            'a: 'b,
        {
            Box::pin(async move {
                self.syncs.fetch_add(1, Ordering::SeqCst);
                if self.stalled {
                    return Err(StoreError::TooLargeResourceVersion { requested: 9, current: self.inner.revision() });
                }
                self.inner.sync().await
            })
        }

        fn wait_for<'a, 'b>(&'a self, rev: Revision, timeout: std::time::Duration) -> Boxed<'b, Revision>
        where
            'a: 'b,
        {
            Box::pin(self.inner.wait_for(rev, timeout))
        }

        fn snapshot(&self) -> Snapshot {
            self.inner.snapshot()
        }
        fn retain_snapshot(&self, snapshot: &Snapshot) {
            self.inner.retain_snapshot(snapshot)
        }
        fn snapshot_at(&self, rev: Revision) -> Result<Snapshot, StoreError> {
            self.inner.snapshot_at(rev)
        }
        fn watch_prefix(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError> {
            self.inner.watch_prefix(prefix, after)
        }
        fn live_revision(&self) -> Revision {
            self.inner.live_revision()
        }
        fn revision(&self) -> Revision {
            self.inner.revision()
        }
        fn oldest_watchable(&self) -> Revision {
            self.inner.oldest_watchable()
        }
    }

    #[tokio::test]
    async fn sync_for_read_syncs_only_consistent_reads_and_maps_the_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = |stalled| {
            let inner =
                SqliteStore::open(&dir.path().join(format!("{stalled}.db")), SqliteOptions::default()).expect("open");
            Arc::new(Counted { inner, syncs: AtomicUsize::new(0), stalled, interfere: AtomicBool::new(false) })
        };
        let r = resource::lookup("", "v1", "configmaps").expect("configmaps");
        let store = open(false);
        let reg = Registry::new(store.clone());
        for i in 0..5 {
            store.inner.write(Write::Create { key: format!("/cm/{i}"), value: json!({}) }).await.expect("create");
        }
        let queries = ["", "resourceVersion=0", "resourceVersion=5", "continue=x", "watch=1", "limit=3"];
        for query in queries {
            reg.sync_for_read(r, &Query::parse(Some(query)).expect("query")).await.expect("synced");
        }
        assert_eq!(store.syncs.load(Ordering::SeqCst), 2, "only the list without resourceVersion and the limited one");

        let stalled = open(true);
        let reg = Registry::new(stalled.clone());
        let err = reg.sync_for_read(r, &Query::default()).await.expect_err("stalled");
        assert_eq!(err, too_large_resource_version(9, 0));
        reg.sync_for_read(r, &Query::parse(Some("resourceVersion=0")).expect("query")).await.expect("not synced");
        assert_eq!(stalled.syncs.load(Ordering::SeqCst), 1);
    }

    /// kube-apiserver's `waitUntilFreshAndBlock`: a read at a resourceVersion the store has not
    /// reached waits for it, and is a 504 if it does not come within the wait.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_at_a_future_resource_version_waits_for_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("f.db"), SqliteOptions::default()).expect("open"));
        let reg = Registry::new(store.clone());
        let r = resource::lookup("", "v1", "configmaps").expect("configmaps");
        let ahead = store.revision() + 1;
        let writer = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            writer.write(Write::Create { key: "/cm/late".into(), value: json!({}) }).await.expect("create");
        });
        let q = Query::parse(Some(&format!("resourceVersion={ahead}"))).expect("query");
        reg.sync_for_read(r, &q).await.expect("waited for the write");
        assert!(store.revision() >= ahead);
        assert_eq!(reg.snapshot_for(r, &q).expect("served").rev, ahead);

        let never = ahead + 10;
        let started = std::time::Instant::now();
        let q = Query::parse(Some(&format!("resourceVersion={never}&limit=5"))).expect("query");
        let err = reg.sync_for_read(r, &q).await.expect_err("nobody writes that far");
        assert_eq!(err, too_large_resource_version(never, ahead));
        assert!(started.elapsed() >= FUTURE_REVISION_WAIT, "answered after the wait, not at once");
    }

    #[tokio::test]
    async fn a_scale_patch_is_applied_to_the_newer_object_after_a_concurrent_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner = SqliteStore::open(&dir.path().join("s.db"), SqliteOptions::default()).expect("open");
        let store =
            Arc::new(Counted { inner, syncs: AtomicUsize::new(0), stalled: false, interfere: AtomicBool::new(false) });
        let reg = Registry::new(store.clone());
        let r = resource::lookup("apps", "v1", "deployments").expect("deployments");
        let t = Target {
            resource: r,
            namespace: Some("default".into()),
            name: Some("web".into()),
            subresource: Some(Subresource::Scale),
        };
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 1},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
        store.inner.write(Write::Create { key: reg.key(&t, "web"), value: deployment }).await.expect("create");
        let opts = WriteOptions {
            manager: "test".into(),
            dry_run: false,
            validation: FieldValidation::Strict,
            duplicates: Duplicates::default(),
        };

        // Another writer updates the Deployment between the patch's read and its write: the patch
        // carries no resourceVersion, so it is applied again to the newer object (no 409).
        store.interfere.store(true, Ordering::SeqCst);
        let body = json!({"spec": {"replicas": 5}});
        let scale =
            reg.update_scale(&t, "web", ScaleChange::Patch(PatchType::Merge, &body), &opts).await.expect("scaled");
        assert!(!store.interfere.load(Ordering::SeqCst), "the other write happened");
        assert_eq!(scale["spec"]["replicas"], 5);

        // A patch that names the resourceVersion it read is a precondition: the same race is a 409.
        let read = reg.get_scale(&t, "web").expect("scale");
        store.interfere.store(true, Ordering::SeqCst);
        let body =
            json!({"metadata": {"resourceVersion": read["metadata"]["resourceVersion"]}, "spec": {"replicas": 1}});
        let err =
            reg.update_scale(&t, "web", ScaleChange::Patch(PatchType::Merge, &body), &opts).await.expect_err("stale");
        assert!(err.is_conflict(), "{err:?}");
        // So is a PUT of a Scale with its resourceVersion.
        let mut replaced = reg.get_scale(&t, "web").expect("scale");
        replaced["spec"]["replicas"] = json!(3);
        store.interfere.store(true, Ordering::SeqCst);
        let err = reg.update_scale(&t, "web", ScaleChange::Replace(&replaced), &opts).await.expect_err("stale");
        assert!(err.is_conflict(), "{err:?}");
        assert_eq!(reg.get_scale(&t, "web").expect("scale")["spec"]["replicas"], 5);
    }
}
