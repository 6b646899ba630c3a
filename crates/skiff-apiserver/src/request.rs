//! What a request asks for: the resource named by its path, and its query options.

use skiff_api::resource::{self, ResourceInfo, Subresource};
use skiff_api::{ApiError, Cause};

/// A request on a resource: `/api/v1/namespaces/{ns}/{plural}/{name}/{sub}` and the like.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub resource: &'static ResourceInfo,
    /// The namespace from the path (`None` for cluster-scoped resources and all-namespace lists).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<Subresource>,
}

/// Parses a resource path; `None` when the path is not under `/api/v1` or `/apis/{group}/{version}`.
/// An unknown resource, or a subresource the resource lacks, is a 404.
pub fn parse_path(path: &str) -> Option<Result<Target, ApiError>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return None,
    };
    Some(parse_rest(group, version, rest))
}

fn parse_rest(group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let (namespace, rest) = match rest {
        // `/namespaces/{ns}/{resource}...` is a namespaced request; `/namespaces`, `/namespaces/{name}` and
        // `/namespaces/{name}/{status|finalize}` address Namespace objects themselves.
        ["namespaces", ns, resource, tail @ ..] if !(tail.is_empty() && is_namespace_sub(resource)) => {
            (Some((*ns).to_string()), [&[*resource][..], tail].concat())
        }
        _ => (None, rest.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return Err(ApiError::not_found_path()),
    };
    let resource = resource::lookup(group, version, plural).ok_or_else(ApiError::not_found_path)?;
    if namespace.is_some() && !resource.namespaced() {
        return Err(ApiError::not_found_path());
    }
    let subresource = match sub {
        None => None,
        Some(s) => match Subresource::parse(s) {
            Some(sr) if resource.has(sr) => Some(sr),
            _ => return Err(ApiError::not_found_path()),
        },
    };
    if let Some(n) = name
        && n.is_empty()
    {
        return Err(ApiError::not_found_path());
    }
    Ok(Target { resource, namespace, name: name.map(str::to_string), subresource })
}

fn is_namespace_sub(s: &str) -> bool {
    s == "status" || s == "finalize"
}

/// The query parameters Skiff reads, by name. Unknown parameters are ignored as the apiserver does.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub watch: bool,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub timeout_seconds: Option<u64>,
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: Option<String>,
    pub force: bool,
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub orphan_dependents: Option<bool>,
    pub include_object: Option<String>,
    // pods/log
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<i64>,
    pub timestamps: bool,
    pub since_seconds: Option<i64>,
    pub limit_bytes: Option<i64>,
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "1" | "True" | "TRUE" | "t" | "T" => Ok(true),
        "false" | "0" | "False" | "FALSE" | "f" | "F" | "" => Ok(false),
        _ => Err(ApiError::bad_request(format!("invalid value {v:?} for query parameter {name}: not a boolean"))),
    }
}

fn parse_int<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ApiError> {
    v.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid value {v:?} for query parameter {name}: not an integer")))
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let mut q = Query::default();
        let Some(raw) = raw else { return Ok(q) };
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            let v = v.as_ref();
            match k.as_ref() {
                "labelSelector" => q.label_selector = Some(v.to_string()),
                "fieldSelector" => q.field_selector = Some(v.to_string()),
                "limit" => {
                    let n: i64 = parse_int("limit", v)?;
                    q.limit = if n > 0 { Some(n as usize) } else { None };
                }
                "continue" => q.continue_token = Some(v.to_string()).filter(|s| !s.is_empty()),
                "resourceVersion" => q.resource_version = Some(v.to_string()).filter(|s| !s.is_empty()),
                "resourceVersionMatch" => q.resource_version_match = Some(v.to_string()).filter(|s| !s.is_empty()),
                "watch" => q.watch = parse_bool("watch", v)?,
                "allowWatchBookmarks" => q.allow_watch_bookmarks = parse_bool("allowWatchBookmarks", v)?,
                "sendInitialEvents" => q.send_initial_events = Some(parse_bool("sendInitialEvents", v)?),
                "timeoutSeconds" => q.timeout_seconds = Some(parse_int("timeoutSeconds", v)?),
                "dryRun" => {
                    if v != "All" {
                        return Err(ApiError::bad_request(format!(
                            "Invalid dry run value: unsupported dry run value {v:?}, supported values: \"All\""
                        )));
                    }
                    q.dry_run = true;
                }
                "fieldManager" => q.field_manager = Some(v.to_string()),
                "fieldValidation" => q.field_validation = Some(v.to_string()),
                "force" => q.force = parse_bool("force", v)?,
                "gracePeriodSeconds" => q.grace_period_seconds = Some(parse_int("gracePeriodSeconds", v)?),
                "propagationPolicy" => q.propagation_policy = Some(v.to_string()),
                "orphanDependents" => q.orphan_dependents = Some(parse_bool("orphanDependents", v)?),
                "includeObject" => q.include_object = Some(v.to_string()),
                "container" => q.container = Some(v.to_string()),
                "follow" => q.follow = parse_bool("follow", v)?,
                "previous" => q.previous = parse_bool("previous", v)?,
                "tailLines" => q.tail_lines = Some(parse_int("tailLines", v)?),
                "timestamps" => q.timestamps = parse_bool("timestamps", v)?,
                "sinceSeconds" => q.since_seconds = Some(parse_int("sinceSeconds", v)?),
                "limitBytes" => q.limit_bytes = Some(parse_int("limitBytes", v)?),
                _ => {}
            }
        }
        Ok(q)
    }

    /// `ValidateListOptions` (apiserver `internalversion/validation`): the combinations refused with 422.
    pub fn validate_list(&self) -> Result<(), ApiError> {
        let mut causes = Vec::new();
        let rvm = self.resource_version_match.as_deref();
        let forbidden = |field: &str, msg: &str| Cause::new("FieldValueForbidden", field, format!("Forbidden: {msg}"));
        if self.watch {
            if self.send_initial_events.is_some() && rvm != Some("NotOlderThan") {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if let Some(m) = rvm {
                if self.send_initial_events.is_none() {
                    causes.push(forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    ));
                }
                if m != "NotOlderThan" {
                    causes.push(Cause::new(
                        "FieldValueNotSupported",
                        "resourceVersionMatch",
                        format!("Unsupported value: {m:?}: supported values: \"NotOlderThan\""),
                    ));
                }
            }
        } else {
            if let Some(m) = rvm {
                if self.resource_version.is_none() {
                    causes.push(forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ));
                }
                if !matches!(m, "Exact" | "NotOlderThan") {
                    causes.push(Cause::new(
                        "FieldValueNotSupported",
                        "resourceVersionMatch",
                        format!("Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""),
                    ));
                }
                if m == "Exact" && self.resource_version.as_deref() == Some("0") {
                    causes.push(forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    ));
                }
            }
            if self.send_initial_events.is_some() {
                causes.push(forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"));
            }
        }
        if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid("ListOptions", "meta.k8s.io", "", causes)) }
    }

    /// The resourceVersion as a number; `None` when unset or `0`. A non-number is a 400.
    pub fn resource_version_number(&self) -> Result<Option<u64>, ApiError> {
        match self.resource_version.as_deref() {
            None | Some("0") => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        parse_path(path).expect("an API path").expect("a known resource")
    }

    #[test]
    fn parses_namespaced_cluster_and_subresource_paths() {
        let t = target("/apis/apps/v1/namespaces/default/deployments/web/scale");
        assert_eq!(t.resource.plural, "deployments");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.subresource, Some(Subresource::Scale));

        let t = target("/api/v1/pods");
        assert_eq!((t.resource.plural, t.namespace, t.name), ("pods", None, None));

        let t = target("/api/v1/namespaces/default");
        assert_eq!((t.resource.plural, t.name.as_deref()), ("namespaces", Some("default")));

        let t = target("/api/v1/namespaces/kube-system/status");
        assert_eq!(
            (t.resource.plural, t.name.as_deref(), t.subresource),
            ("namespaces", Some("kube-system"), Some(Subresource::Status))
        );

        let t = target("/api/v1/namespaces/ns1/pods");
        assert_eq!((t.resource.plural, t.namespace.as_deref()), ("pods", Some("ns1")));

        let t = target("/api/v1/nodes/n1/status");
        assert_eq!((t.resource.plural, t.subresource), ("nodes", Some(Subresource::Status)));
    }

    #[test]
    fn unknown_things_are_404() {
        for p in [
            "/api/v1/namespaces/default/widgets",
            "/apis/apps/v2/deployments",
            "/apis/apps/v1/namespaces/default/deployments/web/log",
            "/api/v1/namespaces/default/nodes",
            "/api/v1/namespaces/default/pods/a/b/c",
        ] {
            let e = parse_path(p).expect("an API path").expect_err(p);
            assert_eq!(e.code, 404, "{p}");
        }
        assert!(parse_path("/healthz").is_none());
        assert!(parse_path("/api").is_none());
    }

    #[test]
    fn query_options() {
        let q = Query::parse(Some("limit=500&labelSelector=app%3Dweb&watch=1&dryRun=All")).expect("valid");
        assert_eq!(q.limit, Some(500));
        assert_eq!(q.label_selector.as_deref(), Some("app=web"));
        assert!(q.watch && q.dry_run);
        assert_eq!(Query::parse(Some("dryRun=Some")).expect_err("bad").code, 400);
        assert_eq!(Query::parse(Some("limit=x")).expect_err("bad").code, 400);
    }

    #[test]
    fn list_option_combinations() {
        let parse = |q: &str| Query::parse(Some(q)).expect("parse");
        // What client-go 1.35 reflectors send (watch-list) is valid.
        parse("watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=")
            .validate_list()
            .expect("watch-list");
        for bad in [
            "sendInitialEvents=true",
            "resourceVersionMatch=Exact&resourceVersion=0",
            "resourceVersionMatch=NotOlderThan",
            "watch=1&sendInitialEvents=true",
            "watch=1&resourceVersionMatch=NotOlderThan&resourceVersion=5",
        ] {
            assert_eq!(parse(bad).validate_list().expect_err(bad).code, 422, "{bad}");
        }
        parse("resourceVersionMatch=Exact&resourceVersion=5").validate_list().expect("exact");
    }
}
