//! End-to-end: bad requests get the HTTP code and `Status` body Kubernetes gives, and change nothing.
//!
//! These run the API server alone (`--no-controllers`), so that "the stored object is unchanged"
//! can be checked by its resourceVersion.

mod common;

use common::{RawResponse, Server};
use serde_json::{Value, json};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";

fn web_deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}
        }
    })
}

/// A server with ConfigMap `keep` (data a=1) and Deployment `web`; returns them as stored.
async fn server_with_objects() -> (Server, Value, Value) {
    let s = Server::start_api_only();
    let cm = s
        .create_json(
            CM,
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}, "data": {"a": "1"}}),
        )
        .await;
    let d = s.create_json(DEPLOY, &web_deployment("web")).await;
    (s, cm, d)
}

/// Asserts the object at `path` is exactly `before` (same resourceVersion, same content).
async fn assert_unchanged(s: &Server, path: &str, before: &Value) {
    let now = s.get_json(path).await;
    assert_eq!(now["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"], "{path} was written");
    assert_eq!(&now, before, "{path} changed");
}

fn causes(status: &Value) -> Vec<(String, String)> {
    status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (c["field"].as_str().unwrap_or_default().to_string(), c["reason"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

#[tokio::test]
async fn malformed_json_is_bad_request() {
    let (s, cm, _) = server_with_objects().await;
    let r = s.raw("POST", CM, Some("application/json"), r#"{"metadata": {"name": "x""#).await;
    r.expect_status(400, "BadRequest");
    let r = s.raw("PUT", &format!("{CM}/keep"), Some("application/json"), "not json at all").await;
    r.expect_status(400, "BadRequest");
    let r = s.raw("PATCH", &format!("{CM}/keep"), Some("application/merge-patch+json"), "{").await;
    r.expect_status(400, "BadRequest");
    let r = s.raw("POST", CM, Some("application/json"), "[1, 2, 3]").await;
    r.expect_status(400, "BadRequest");
    assert_unchanged(&s, &format!("{CM}/keep"), &cm).await;
    s.raw("GET", &format!("{CM}/x"), None, Vec::new()).await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn yaml_garbage_in_an_apply_patch_is_bad_request() {
    let (s, cm, _) = server_with_objects().await;
    let path = format!("{CM}/keep?fieldManager=e2e");
    let r = s.raw("PATCH", &path, Some("application/apply-patch+yaml"), "data: [unclosed\n  : - {").await;
    r.expect_status(400, "BadRequest");
    let r = s.raw("PATCH", &path, Some("application/apply-patch+yaml"), "- just\n- a list\n").await;
    r.expect_status(400, "BadRequest");
    assert_unchanged(&s, &format!("{CM}/keep"), &cm).await;
}

#[tokio::test]
async fn apply_patch_without_field_manager_is_invalid() {
    let (s, cm, _) = server_with_objects().await;
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"keep"},"data":{"a":"2"}}"#;
    let r = s.raw("PATCH", &format!("{CM}/keep"), Some("application/apply-patch+yaml"), body).await;
    let st = r.expect_status(422, "Invalid");
    assert_eq!(causes(&st), [("fieldManager".to_string(), "FieldValueRequired".to_string())], "{st}");
    assert_unchanged(&s, &format!("{CM}/keep"), &cm).await;
}

#[tokio::test]
async fn wrong_kind_or_api_version_in_the_body_is_bad_request() {
    let (s, _, d) = server_with_objects().await;
    let mut wrong_kind = web_deployment("other");
    wrong_kind["kind"] = json!("ReplicaSet");
    let st =
        s.raw("POST", DEPLOY, Some("application/json"), wrong_kind.to_string()).await.expect_status(400, "BadRequest");
    assert!(st["message"].as_str().unwrap_or_default().contains("ReplicaSet"), "{st}");

    let mut wrong_version = web_deployment("other");
    wrong_version["apiVersion"] = json!("apps/v1beta1");
    let st = s
        .raw("POST", DEPLOY, Some("application/json"), wrong_version.to_string())
        .await
        .expect_status(400, "BadRequest");
    assert!(st["message"].as_str().unwrap_or_default().contains("apps/v1beta1"), "{st}");

    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}});
    s.raw("PUT", &format!("{DEPLOY}/web"), Some("application/json"), cm.to_string())
        .await
        .expect_status(400, "BadRequest");
    assert_unchanged(&s, &format!("{DEPLOY}/web"), &d).await;
    s.raw("GET", &format!("{DEPLOY}/other"), None, Vec::new()).await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn unknown_resource_paths_are_not_found() {
    let s = Server::start_api_only();
    for path in [
        "/api/v1/namespaces/default/widgets",
        "/apis/nope.example.com/v1/things",
        "/apis/apps/v2/namespaces/default/deployments",
        "/apis/apps/v1/namespaces/default/deployments/web/nosuchsub",
        "/no/such/path",
    ] {
        let st = s.raw("GET", path, None, Vec::new()).await.expect_status(404, "NotFound");
        assert_eq!(st["message"], "the server could not find the requested resource", "{path}: {st}");
    }
}

#[tokio::test]
async fn missing_object_is_not_found_with_details() {
    let s = Server::start_api_only();
    let st = s.raw("GET", &format!("{DEPLOY}/nope"), None, Vec::new()).await.expect_status(404, "NotFound");
    assert_eq!(st["message"], r#"deployments.apps "nope" not found"#);
    assert_eq!(st["details"], json!({"name": "nope", "group": "apps", "kind": "deployments"}));

    let st = s.raw("GET", &format!("{CM}/nope"), None, Vec::new()).await.expect_status(404, "NotFound");
    assert_eq!(st["message"], r#"configmaps "nope" not found"#);
    assert_eq!(st["details"], json!({"name": "nope", "kind": "configmaps"}));

    s.raw("DELETE", &format!("{CM}/nope"), None, Vec::new()).await.expect_status(404, "NotFound");
    s.raw("PATCH", &format!("{CM}/nope"), Some("application/merge-patch+json"), "{}")
        .await
        .expect_status(404, "NotFound");
    let st = s
        .raw("POST", "/api/v1/namespaces/missing/configmaps", Some("application/json"), r#"{"metadata":{"name":"a"}}"#)
        .await;
    let st = st.expect_status(404, "NotFound");
    assert_eq!(st["message"], r#"namespaces "missing" not found"#);
}

#[tokio::test]
async fn creating_an_existing_name_is_already_exists() {
    let (s, cm, _) = server_with_objects().await;
    let again = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}, "data": {"a": "other"}});
    let st = s.raw("POST", CM, Some("application/json"), again.to_string()).await.expect_status(409, "AlreadyExists");
    assert_eq!(st["message"], r#"configmaps "keep" already exists"#);
    assert_eq!(st["details"], json!({"name": "keep", "kind": "configmaps"}));
    assert_unchanged(&s, &format!("{CM}/keep"), &cm).await;
}

#[tokio::test]
async fn stale_resource_version_on_put_is_conflict() {
    let (s, cm, _) = server_with_objects().await;
    let path = format!("{CM}/keep");
    let mut first = cm.clone();
    first["data"]["a"] = json!("2");
    let r = s.raw("PUT", &path, Some("application/json"), first.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let current = r.json();

    let mut stale = cm.clone();
    stale["data"]["a"] = json!("3");
    let st = s.raw("PUT", &path, Some("application/json"), stale.to_string()).await.expect_status(409, "Conflict");
    assert_eq!(
        st["message"],
        r#"Operation cannot be fulfilled on configmaps "keep": the object has been modified; please apply your changes to the latest version and try again"#
    );
    assert_eq!(st["details"], json!({"name": "keep", "kind": "configmaps"}));
    assert_unchanged(&s, &path, &current).await;
}

#[tokio::test]
async fn invalid_fields_are_unprocessable_with_causes() {
    let (s, _, d) = server_with_objects().await;

    let bad_name = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "BadName"}});
    let st = s.raw("POST", CM, Some("application/json"), bad_name.to_string()).await.expect_status(422, "Invalid");
    assert_eq!(causes(&st), [("metadata.name".to_string(), "FieldValueInvalid".to_string())], "{st}");
    let msg = st["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with(r#"ConfigMap "BadName" is invalid: metadata.name: Invalid value: "BadName": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"#),
        "{msg}"
    );
    assert_eq!(st["details"]["name"], "BadName");
    assert_eq!(st["details"]["kind"], "ConfigMap");

    let mut no_selector = web_deployment("nosel");
    no_selector["spec"].as_object_mut().expect("spec").remove("selector");
    let st =
        s.raw("POST", DEPLOY, Some("application/json"), no_selector.to_string()).await.expect_status(422, "Invalid");
    assert!(causes(&st).contains(&("spec.selector".to_string(), "FieldValueRequired".to_string())), "{st}");
    assert!(st["message"].as_str().unwrap_or_default().starts_with(r#"Deployment.apps "nosel" is invalid: "#), "{st}");
    assert_eq!(st["details"]["group"], "apps");
    assert_eq!(st["details"]["kind"], "Deployment");

    let mut negative = web_deployment("neg");
    negative["spec"]["replicas"] = json!(-1);
    let st = s.raw("POST", DEPLOY, Some("application/json"), negative.to_string()).await.expect_status(422, "Invalid");
    assert_eq!(causes(&st), [("spec.replicas".to_string(), "FieldValueInvalid".to_string())], "{st}");
    assert_eq!(
        st["message"],
        r#"Deployment.apps "neg" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"#
    );

    // The same through PUT and PATCH of an existing object: refused, nothing written.
    let mut update = d.clone();
    update["spec"]["replicas"] = json!(-1);
    s.raw("PUT", &format!("{DEPLOY}/web"), Some("application/json"), update.to_string())
        .await
        .expect_status(422, "Invalid");
    let patch = r#"{"spec":{"replicas":-5}}"#;
    s.raw("PATCH", &format!("{DEPLOY}/web"), Some("application/merge-patch+json"), patch)
        .await
        .expect_status(422, "Invalid");
    assert_unchanged(&s, &format!("{DEPLOY}/web"), &d).await;
    for name in ["BadName", "nosel", "neg"] {
        let path = if name == "BadName" { format!("{CM}/{name}") } else { format!("{DEPLOY}/{name}") };
        s.raw("GET", &path, None, Vec::new()).await.expect_status(404, "NotFound");
    }
}

#[tokio::test]
async fn a_body_over_3_mib_is_too_large() {
    let (s, cm, _) = server_with_objects().await;
    let big = "x".repeat(3 * 1024 * 1024 + 1024);
    let body =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"x": big}}).to_string();
    let st =
        s.raw("POST", CM, Some("application/json"), body.clone()).await.expect_status(413, "RequestEntityTooLarge");
    assert_eq!(st["message"], "Request entity too large: limit is 3145728");
    let mut update = cm.clone();
    update["data"]["x"] = json!(big);
    s.raw("PUT", &format!("{CM}/keep"), Some("application/json"), update.to_string())
        .await
        .expect_status(413, "RequestEntityTooLarge");
    assert_unchanged(&s, &format!("{CM}/keep"), &cm).await;
    s.raw("GET", &format!("{CM}/big"), None, Vec::new()).await.expect_status(404, "NotFound");
}

fn expect_unauthorized(r: &RawResponse) {
    let st = r.expect_status(401, "Unauthorized");
    assert_eq!(st["message"], "Unauthorized");
}

#[tokio::test]
async fn missing_or_wrong_token_is_unauthorized() {
    let (s, cm, _) = server_with_objects().await;
    let keep = format!("{CM}/keep");
    let wrong = "Bearer not-the-token".to_string();
    let almost = format!("Bearer {}x", s.token);
    let basic = "Basic YWRtaW46YWRtaW4=".to_string();
    for path in [keep.as_str(), "/version", "/api", "/apis", "/openapi/v3", "/no/such/path"] {
        expect_unauthorized(&s.raw_with_auth(None, "GET", path).await);
        for auth in [&wrong, &almost, &basic] {
            expect_unauthorized(&s.raw_with_auth(Some(auth), "GET", path).await);
        }
    }
    let client = s.anonymous_client().await;
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}, "data": {"a": "evil"}})
        .to_string();
    let r = common::send_raw(&client, "PUT", &keep, Some("application/json"), Some(&wrong), body.into_bytes()).await;
    expect_unauthorized(&r);
    let r = common::send_raw(&client, "DELETE", &keep, None, None, Vec::new()).await;
    expect_unauthorized(&r);
    assert_unchanged(&s, &keep, &cm).await;
    // The right token, sent by hand, works.
    let r = s.raw_with_auth(Some(&format!("Bearer {}", s.token)), "GET", &keep).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn failing_patches_change_nothing() {
    let (s, _, d) = server_with_objects().await;
    let path = format!("{DEPLOY}/web");
    // A JSON patch whose `test` fails: 422 (`patch.go: applyJSPatch`).
    let failing =
        r#"[{"op":"test","path":"/spec/replicas","value":99},{"op":"replace","path":"/spec/replicas","value":3}]"#;
    s.raw("PATCH", &path, Some("application/json-patch+json"), failing).await.expect_status(422, "Invalid");
    // A JSON patch that is not a list of operations: 400.
    s.raw("PATCH", &path, Some("application/json-patch+json"), r#"{"op":"add"}"#)
        .await
        .expect_status(400, "BadRequest");
    // A patch changing the name: 400.
    let rename = r#"{"metadata":{"name":"other"}}"#;
    s.raw("PATCH", &path, Some("application/merge-patch+json"), rename).await.expect_status(400, "BadRequest");
    // A stale resourceVersion in the patch: 409 Conflict.
    let stale = r#"{"metadata":{"resourceVersion":"1"},"spec":{"replicas":3}}"#;
    s.raw("PATCH", &path, Some("application/merge-patch+json"), stale).await.expect_status(409, "Conflict");
    // A wrong uid in the patch: 409 Conflict (a precondition).
    let uid = r#"{"metadata":{"uid":"00000000-0000-0000-0000-000000000000"},"spec":{"replicas":3}}"#;
    s.raw("PATCH", &path, Some("application/strategic-merge-patch+json"), uid).await.expect_status(409, "Conflict");
    assert_unchanged(&s, &path, &d).await;
}

/// A protobuf field holding bytes (wire type 2).
fn pb_field(field: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![(field << 3) | 2];
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
    out
}

/// ConfigMap `name` with data `a: b` as client-go's protobuf serializer sends it: the `k8s\0` magic,
/// then a `runtime.Unknown` {typeMeta, raw} whose raw is the `k8s.io.api.core.v1.ConfigMap` message.
fn protobuf_configmap(name: &str) -> Vec<u8> {
    let meta = pb_field(1, name.as_bytes());
    let entry = [pb_field(1, b"a"), pb_field(2, b"b")].concat();
    let raw = [pb_field(1, &meta), pb_field(2, &entry)].concat();
    let type_meta = [pb_field(1, b"v1"), pb_field(2, b"ConfigMap")].concat();
    let unknown = [pb_field(1, &type_meta), pb_field(2, &raw)].concat();
    [b"k8s\0".as_slice(), &unknown].concat()
}

/// kubectl 1.35's typed clients (`kubectl create namespace|configmap|deployment|secret`, eviction)
/// send protobuf bodies; the apiserver also decodes YAML, and refuses other types with 415.
#[tokio::test]
async fn request_body_content_types() {
    let s = Server::start_api_only();
    let r = s.raw("POST", CM, Some("application/vnd.kubernetes.protobuf"), protobuf_configmap("from-protobuf")).await;
    assert_eq!(r.status, 201, "protobuf create: {}", r.text());
    assert_eq!(r.json()["data"], json!({"a": "b"}));

    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n";
    let r = s.raw("POST", CM, Some("application/yaml"), yaml).await;
    assert_eq!(r.status, 201, "YAML create: {}", r.text());
    assert_eq!(r.json()["metadata"]["name"], "from-yaml");

    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"from-text"}}"#;
    s.raw("POST", CM, Some("text/plain"), body).await.expect_status(415, "UnsupportedMediaType");
    s.raw("GET", &format!("{CM}/from-text"), None, Vec::new()).await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn unsupported_patch_content_type_is_415() {
    let (s, cm, _) = server_with_objects().await;
    let path = format!("{CM}/keep");
    for ct in ["text/plain", "application/json", "application/yaml"] {
        let st =
            s.raw("PATCH", &path, Some(ct), r#"{"data":{"a":"2"}}"#).await.expect_status(415, "UnsupportedMediaType");
        assert!(st["message"].as_str().unwrap_or_default().contains(ct), "{ct}: {st}");
    }
    assert_unchanged(&s, &path, &cm).await;
}

#[tokio::test]
async fn strict_field_validation_rejects_unknown_fields() {
    let (s, _, d) = server_with_objects().await;
    let mut body = web_deployment("strict");
    body["spec"]["foo"] = json!(1);
    let st =
        s.raw("POST", &format!("{DEPLOY}?fieldValidation=Strict"), Some("application/json"), body.to_string()).await;
    let st = st.expect_status(400, "BadRequest");
    // Create decodes the body (`handlers/create.go: transformDecodeError`); patch reports the bare error.
    assert_eq!(
        st["message"],
        r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.foo""#
    );
    s.raw("GET", &format!("{DEPLOY}/strict"), None, Vec::new()).await.expect_status(404, "NotFound");

    let patch = r#"{"spec":{"foo":1}}"#;
    let path = format!("{DEPLOY}/web?fieldValidation=Strict");
    let st = s.raw("PATCH", &path, Some("application/merge-patch+json"), patch).await.expect_status(400, "BadRequest");
    assert_eq!(st["message"], r#"strict decoding error: unknown field "spec.foo""#);
    assert_unchanged(&s, &format!("{DEPLOY}/web"), &d).await;

    // Without fieldValidation the default is Warn: created, with a Warning header.
    let r = s.raw("POST", DEPLOY, Some("application/json"), body.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let warning = r.headers.get("warning").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(warning, r#"299 - "unknown field \"spec.foo\"""#);
    assert!(r.json()["spec"].get("foo").is_none(), "unknown fields are dropped");

    let st = s
        .raw("POST", &format!("{CM}?fieldValidation=Bogus"), Some("application/json"), r#"{"metadata":{"name":"v"}}"#)
        .await;
    // `ValidateCreateOptions`: an unsupported directive is a 422 on CreateOptions.
    st.expect_status(422, "Invalid");
}

/// The body of the conformance test "FieldValidation should detect unknown and duplicate fields of
/// a typed object" (`test/e2e/apimachinery/field_validation.go`), as it sends it.
const UNKNOWN_AND_DUPLICATE_FIELDS: &str = r#"{
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "my-dep",
        "labels": {"app": "nginx"}
    },
    "spec": {
        "unknownField": "foo",
        "replicas": 2,
        "replicas": 3,
        "selector": {"matchLabels": {"app": "nginx"}},
        "template": {
            "metadata": {"labels": {"app": "nginx"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}
        }
    }
}"#;

fn warnings(r: &RawResponse) -> Vec<String> {
    r.headers.get_all("warning").iter().map(|v| v.to_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test]
async fn strict_field_validation_reports_duplicate_fields() {
    let (s, cm, d) = server_with_objects().await;
    let strict = format!("{DEPLOY}?fieldManager=field_validation_mgr&fieldValidation=Strict");
    let st = s.raw("POST", &strict, Some("application/json"), UNKNOWN_AND_DUPLICATE_FIELDS).await;
    let st = st.expect_status(400, "BadRequest");
    assert_eq!(
        st["message"],
        r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.unknownField", duplicate field "spec.replicas""#
    );
    s.raw("GET", &format!("{DEPLOY}/my-dep"), None, Vec::new()).await.expect_status(404, "NotFound");

    // Warn: created with the last value, each finding a Warning header, in document order.
    let warn = format!("{DEPLOY}?fieldValidation=Warn");
    let r = s.raw("POST", &warn, Some("application/json"), UNKNOWN_AND_DUPLICATE_FIELDS).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        warnings(&r),
        [r#"299 - "unknown field \"spec.unknownField\"""#, r#"299 - "duplicate field \"spec.replicas\"""#]
    );
    assert_eq!(r.json()["spec"]["replicas"], 3);

    // Ignore: created, silently.
    let renamed = UNKNOWN_AND_DUPLICATE_FIELDS.replace("my-dep", "my-dep-ignored");
    let r = s.raw("POST", &format!("{DEPLOY}?fieldValidation=Ignore"), Some("application/json"), renamed).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(warnings(&r), Vec::<String>::new());
    assert_eq!(r.json()["spec"]["replicas"], 3);

    // PUT: the same decoding of the body.
    let keep = format!("{CM}/keep");
    let put = format!(
        r#"{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "keep", "resourceVersion": {}}}, "data": {{"a": "2", "a": "3"}}}}"#,
        cm["metadata"]["resourceVersion"]
    );
    let st = s.raw("PUT", &format!("{keep}?fieldValidation=Strict"), Some("application/json"), put).await;
    let st = st.expect_status(400, "BadRequest");
    assert_eq!(
        st["message"],
        r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: duplicate field "data.a""#
    );
    // A YAML body: its repeated keys are reported the same way.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n  a: c\n";
    let st = s.raw("POST", &format!("{CM}?fieldValidation=Strict"), Some("application/yaml"), yaml).await;
    let st = st.expect_status(400, "BadRequest");
    assert!(
        st["message"].as_str().unwrap_or_default().ends_with(r#"strict decoding error: duplicate field "data.a""#),
        "{st}"
    );
    assert_unchanged(&s, &keep, &cm).await;

    // Patches: the patch's own duplicates first, then the unknown fields of the result, bare.
    let web = format!("{DEPLOY}/web?fieldValidation=Strict");
    let merge = r#"{"spec": {"replicas": 2, "replicas": 3, "foo": 1}}"#;
    let st = s.raw("PATCH", &web, Some("application/merge-patch+json"), merge).await;
    let st = st.expect_status(400, "BadRequest");
    assert_eq!(st["message"], r#"strict decoding error: duplicate field "spec.replicas", unknown field "spec.foo""#);
    let json_patch = r#"[{"op": "add", "op": "replace", "path": "/spec/replicas", "value": 2}]"#;
    let st = s.raw("PATCH", &web, Some("application/json-patch+json"), json_patch).await;
    let st = st.expect_status(400, "BadRequest");
    assert_eq!(st["message"], r#"strict decoding error: json patch duplicate field "[0].op""#);
    let apply = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  replicas: 3\n";
    let st = s.raw("PATCH", &format!("{web}&fieldManager=e2e"), Some("application/apply-patch+yaml"), apply).await;
    let st = st.expect_status(400, "BadRequest");
    assert_eq!(st["message"], r#"strict decoding error: duplicate field "spec.replicas""#);
    assert_unchanged(&s, &format!("{DEPLOY}/web"), &d).await;

    // Warn on a patch: applied (the last value wins), with the warning.
    let web = format!("{DEPLOY}/web");
    let r =
        s.raw("PATCH", &web, Some("application/merge-patch+json"), r#"{"spec": {"replicas": 2, "replicas": 4}}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(warnings(&r), [r#"299 - "duplicate field \"spec.replicas\"""#]);
    assert_eq!(r.json()["spec"]["replicas"], 4);
}

#[tokio::test]
async fn bad_query_parameters_are_refused() {
    let s = Server::start_api_only();
    s.raw("GET", &format!("{CM}?limit=abc"), None, Vec::new()).await.expect_status(400, "BadRequest");
    s.raw("POST", &format!("{CM}?dryRun=Some"), Some("application/json"), r#"{"metadata":{"name":"d"}}"#)
        .await
        .expect_status(400, "BadRequest");
    let st =
        s.raw("GET", &format!("{CM}?resourceVersionMatch=Exact"), None, Vec::new()).await.expect_status(422, "Invalid");
    assert_eq!(st["details"]["kind"], "ListOptions", "{st}");
    s.raw("GET", &format!("{CM}?continue=garbage"), None, Vec::new()).await.expect_status(400, "BadRequest");
    s.raw("GET", &format!("{CM}?labelSelector=a%20in%20(b"), None, Vec::new()).await.expect_status(400, "BadRequest");
    // dryRun=All validates and answers as if created, but stores nothing.
    let r = s.raw("POST", &format!("{CM}?dryRun=All"), Some("application/json"), r#"{"metadata":{"name":"d"}}"#).await;
    assert_eq!(r.status, 201, "{}", r.text());
    s.raw("GET", &format!("{CM}/d"), None, Vec::new()).await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn unsupported_methods_are_405() {
    let s = Server::start_api_only();
    s.raw("PUT", CM, Some("application/json"), "{}").await.expect_status(405, "MethodNotAllowed");
    s.raw("POST", "/version", Some("application/json"), "{}").await.expect_status(405, "MethodNotAllowed");
}
