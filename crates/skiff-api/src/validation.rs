//! Object validation: every error, each with its field path, worded as the apiserver words it.
//!
//! Mirrors `apimachinery pkg/util/validation` (name and label syntax, with its exact messages),
//! `pkg/api/validation` (object metadata), k/k `pkg/apis/core/validation` (pods, nodes, namespaces,
//! config maps, secrets, events, ...) and `pkg/apis/apps/validation` (deployments, replica sets). The
//! input is the defaulted wire-form object, so absent fields are treated as Go's zero values.
//!
//! Causes carry the `field.Error` type as reason (`FieldValueRequired`, ...) and `ErrorBody()` as
//! message: the part after `field: ` in the 422 message.

use serde_json::{Map, Value};

use crate::error::Cause;
use crate::meta;
use crate::resource::ResourceInfo;
use crate::selector::LabelSelector;

/// `ValidateImmutableField`'s message.
pub const FIELD_IMMUTABLE: &str = "field is immutable";
/// `apimachinery` `IsNegativeErrorMsg`.
const NEGATIVE: &str = "must be greater than or equal to 0";
/// `TotalAnnotationSizeLimitB`: 256 KiB over all annotation keys and values.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
/// `core.MaxSecretSize`: 1 MiB, the limit of a Secret's and a ConfigMap's data.
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

/// Validates an object of the resource's kind; `old` is the stored object on update.
pub fn validate(resource: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut e = Errs::default();
    let name_fn: fn(&str) -> Vec<String> =
        if resource.kind == "Namespace" { name_is_dns_label } else { name_is_dns_subdomain };
    validate_object_meta(&mut e, obj, resource.namespaced(), name_fn);
    if let Some(old) = old {
        validate_object_meta_update(&mut e, obj, old);
    }
    match (resource.group, resource.kind) {
        ("", "Pod") => validate_pod(&mut e, obj, old),
        ("apps", "Deployment") => validate_deployment(&mut e, obj, old),
        ("apps", "ReplicaSet") => validate_replica_set(&mut e, obj, old),
        ("", "Namespace") => validate_namespace(&mut e, obj),
        ("", "Node") => validate_node(&mut e, obj),
        ("", "ConfigMap") => validate_config_map(&mut e, obj, old),
        ("", "Secret") => validate_secret(&mut e, obj, old),
        ("", "Event") => validate_core_event(&mut e, obj),
        ("events.k8s.io", "Event") => validate_events_event(&mut e, obj),
        ("coordination.k8s.io", "Lease") => validate_lease(&mut e, obj),
        _ => {}
    }
    e.0
}

// ---------------------------------------------------------------------------------------------
// Field errors
// ---------------------------------------------------------------------------------------------

/// An accumulating `field.ErrorList`.
#[derive(Default)]
struct Errs(Vec<Cause>);

impl Errs {
    fn required(&mut self, path: &str, detail: &str) {
        self.push("FieldValueRequired", path, "Required value", detail);
    }
    /// `bad` is the bad value already rendered as Go prints it (see [`q`]).
    fn invalid(&mut self, path: &str, bad: &str, detail: &str) {
        self.push("FieldValueInvalid", path, &format!("Invalid value: {bad}"), detail);
    }
    fn not_supported(&mut self, path: &str, value: &str, valid: &[&str]) {
        let quoted: Vec<String> = valid.iter().map(|v| q(v)).collect();
        let detail = if valid.is_empty() { String::new() } else { format!("supported values: {}", quoted.join(", ")) };
        self.push("FieldValueNotSupported", path, &format!("Unsupported value: {}", q(value)), &detail);
    }
    fn forbidden(&mut self, path: &str, detail: &str) {
        self.push("FieldValueForbidden", path, "Forbidden", detail);
    }
    fn duplicate(&mut self, path: &str, bad: &str) {
        self.push("FieldValueDuplicate", path, &format!("Duplicate value: {bad}"), "");
    }
    fn not_found(&mut self, path: &str, bad: &str) {
        self.push("FieldValueNotFound", path, &format!("Not found: {bad}"), "");
    }
    fn too_long(&mut self, path: &str, max: usize) {
        let unit = if max == 1 { "byte" } else { "bytes" };
        self.push("FieldValueTooLong", path, "Too long", &format!("may not be more than {max} {unit}"));
    }
    fn push(&mut self, reason: &str, path: &str, body: &str, detail: &str) {
        let message = if detail.is_empty() { body.to_string() } else { format!("{body}: {detail}") };
        self.0.push(Cause::new(reason, path, message));
    }
    fn nonnegative(&mut self, path: &str, v: Option<&Value>) {
        if let Some(n) = v.and_then(Value::as_i64).filter(|n| *n < 0) {
            self.invalid(path, &n.to_string(), NEGATIVE);
        }
    }
}

/// A string bad value as Go's `%q` prints it.
fn q(s: &str) -> String {
    format!("{s:?}")
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn obj_map<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

// ---------------------------------------------------------------------------------------------
// Syntax rules (apimachinery pkg/util/validation)
// ---------------------------------------------------------------------------------------------

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_KEY_ERR: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";

/// `validation.RegexError`: the message, the examples (joined the way Go joins them, with the
/// double space) and the regex.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let ex: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!("{msg} (e.g. {}regex used for validation is '{fmt}')", ex.join(" or "))
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn matches_qualified(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_alnum(b[0])
        && is_alnum(b[b.len() - 1])
        && b.iter().all(|c| is_alnum(*c) || matches!(c, b'-' | b'_' | b'.'))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn matches_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty() && ok(&b[0]) && ok(&b[b.len() - 1]) && b.iter().all(|c| ok(c) || *c == b'-')
}

fn matches_dns_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns_label)
}

/// `IsQualifiedName`: label keys, annotation keys, finalizers: `[prefix/]name`.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(is_dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !matches_qualified(name) {
        errs.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

/// `IsValidLabelValue`: empty, or a qualified-name-like string of at most 63 characters.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !value.is_empty() && !matches_qualified(value) {
        errs.push(regex_error(LABEL_VALUE_ERR, LABEL_VALUE_FMT, &["MyValue", "my_value", "12345"]));
    }
    errs
}

/// `IsDNS1123Label` (namespace names, container, port-less names).
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches_dns_label(value) {
        if matches_dns_subdomain(value) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(DNS1123_LABEL_ERR, DNS1123_LABEL_FMT, &["my-name", "123-abc"]));
        }
    }
    errs
}

/// `IsDNS1123Subdomain` (most object names).
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !matches_dns_subdomain(value) {
        errs.push(regex_error(DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, &["example.com"]));
    }
    errs
}

fn name_is_dns_subdomain(name: &str) -> Vec<String> {
    is_dns1123_subdomain(name)
}

fn name_is_dns_label(name: &str) -> Vec<String> {
    is_dns1123_label(name)
}

/// `maskTrailingDash`: a generateName prefix may end in `-` (a suffix follows).
fn mask_trailing_dash(name: &str) -> String {
    match name.strip_suffix('-') {
        Some(rest) if !rest.is_empty() => format!("{rest}a"),
        _ => name.to_string(),
    }
}

/// `IsConfigMapKey`: keys of ConfigMap and Secret data.
pub fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    if value.is_empty() || !value.bytes().all(|c| is_alnum(c) || matches!(c, b'-' | b'_' | b'.')) {
        errs.push(regex_error(CONFIG_KEY_ERR, CONFIG_KEY_FMT, &["key.name", "KEY_NAME", "key-name"]));
    }
    if value == "." {
        errs.push("must not be '.'".to_string());
    } else if value == ".." {
        errs.push("must not be '..'".to_string());
    } else if value.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// `IsValidPortNum`.
fn is_valid_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) { Vec::new() } else { vec!["must be between 1 and 65535, inclusive".to_string()] }
}

/// `IsValidPortName` (IANA service names).
fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push("must be no more than 15 characters".to_string());
    }
    if !port.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string());
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// The message `resource.ParseQuantity` fails with on a malformed quantity.
pub const QUANTITY_FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Parses a resource quantity (`1`, `500m`, `1.5Gi`, `1e3`) into its numeric value, with
/// `resource.ParseQuantity`'s error messages.
pub fn parse_quantity(text: &str) -> Result<f64, &'static str> {
    let t = text.trim();
    if t.is_empty() {
        return Err("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
    }
    let num_end = t
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map(|(i, _)| i)
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(num_end);
    let digits = num.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return Err(QUANTITY_FORMAT_ERROR);
    }
    let value: f64 = num.parse().map_err(|_| QUANTITY_FORMAT_ERROR)?;
    if !suffix.bytes().all(|c| b"eEinumkKMGTP+-0123456789".contains(&c)) {
        return Err(QUANTITY_FORMAT_ERROR);
    }
    let factor = match suffix {
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
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().map_err(|_| "unable to parse quantity's suffix")?;
            10f64.powi(e)
        }
        _ => return Err("unable to parse quantity's suffix"),
    };
    Ok(value * factor)
}

// ---------------------------------------------------------------------------------------------
// Object metadata
// ---------------------------------------------------------------------------------------------

/// `ValidateLabels`: every key a qualified name, every value a label value; errors at `path`.
fn validate_labels(e: &mut Errs, labels: Option<&Map<String, Value>>, path: &str) {
    for (k, v) in labels.into_iter().flatten() {
        for msg in is_qualified_name(k) {
            e.invalid(path, &q(k), &msg);
        }
        let v = v.as_str().unwrap_or("");
        for msg in is_valid_label_value(v) {
            e.invalid(path, &q(v), &msg);
        }
    }
}

/// `ValidateAnnotations`: keys are qualified names (case-insensitive), total size ≤ 256 KiB.
fn validate_annotations(e: &mut Errs, annotations: Option<&Map<String, Value>>, path: &str) {
    let mut total = 0;
    for (k, v) in annotations.into_iter().flatten() {
        for msg in is_qualified_name(&k.to_lowercase()) {
            e.invalid(path, &q(k), &msg);
        }
        total += k.len() + v.as_str().map(str::len).unwrap_or(0);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        e.too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT);
    }
}

/// `ValidateObjectMeta`: name (or generateName), namespace scope, labels, annotations, finalizers.
/// Whether a namespaced object has its namespace is the server's business.
fn validate_object_meta(e: &mut Errs, obj: &Value, namespaced: bool, name_fn: fn(&str) -> Vec<String>) {
    let empty = Value::Null;
    let md = obj.get("metadata").unwrap_or(&empty);
    let generate_name = s(md, "generateName");
    if !generate_name.is_empty() {
        for msg in name_fn(&mask_trailing_dash(generate_name)) {
            e.invalid("metadata.generateName", &q(generate_name), &msg);
        }
    }
    let name = s(md, "name");
    if name.is_empty() {
        e.required("metadata.name", "name or generateName is required");
    } else {
        for msg in name_fn(name) {
            e.invalid("metadata.name", &q(name), &msg);
        }
    }
    if !namespaced && !s(md, "namespace").is_empty() {
        e.forbidden("metadata.namespace", "not allowed on this type");
    }
    e.nonnegative("metadata.generation", md.get("generation"));
    validate_labels(e, obj_map(md, "labels"), "metadata.labels");
    validate_annotations(e, obj_map(md, "annotations"), "metadata.annotations");
    for (i, f) in arr(md, "finalizers").iter().enumerate() {
        let f = f.as_str().unwrap_or("");
        for msg in is_qualified_name(f) {
            e.invalid(&format!("metadata.finalizers[{i}]"), &q(f), &msg);
        }
    }
}

/// `ValidateObjectMetaUpdate`: name, namespace and uid never change.
fn validate_object_meta_update(e: &mut Errs, new: &Value, old: &Value) {
    for (field, new_v, old_v) in [
        ("name", meta::name(new), meta::name(old)),
        ("namespace", meta::namespace(new), meta::namespace(old)),
        ("uid", meta::uid(new), meta::uid(old)),
    ] {
        if new_v != old_v {
            e.invalid(&format!("metadata.{field}"), &q(new_v), FIELD_IMMUTABLE);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------------------------

const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn validate_pod(e: &mut Errs, pod: &Value, old: Option<&Value>) {
    let empty = Value::Null;
    let spec = pod.get("spec").unwrap_or(&empty);
    validate_pod_spec(e, spec, "spec");
    if let Some(old) = old {
        validate_pod_spec_update(e, spec, old.get("spec").unwrap_or(&empty));
    }
}

/// `ValidatePodSpec`, the parts Skiff's node agent and scheduler rely on.
fn validate_pod_spec(e: &mut Errs, spec: &Value, path: &str) {
    let volumes = validate_volumes(e, arr(spec, "volumes"), &format!("{path}.volumes"));
    let containers = arr(spec, "containers");
    if containers.is_empty() {
        e.required(&format!("{path}.containers"), "");
    }
    let mut names: Vec<&str> = Vec::new();
    let init = arr(spec, "initContainers");
    for (i, c) in init.iter().enumerate() {
        validate_container(e, c, &format!("{path}.initContainers[{i}]"), &volumes, &mut names);
    }
    for (i, c) in containers.iter().enumerate() {
        validate_container(e, c, &format!("{path}.containers[{i}]"), &volumes, &mut names);
    }
    match s(spec, "restartPolicy") {
        "Always" | "OnFailure" | "Never" => {}
        "" => e.required(&format!("{path}.restartPolicy"), ""),
        other => e.not_supported(&format!("{path}.restartPolicy"), other, &["Always", "OnFailure", "Never"]),
    }
    match s(spec, "dnsPolicy") {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => e.required(&format!("{path}.dnsPolicy"), ""),
        other => e.not_supported(
            &format!("{path}.dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        ),
    }
    validate_labels(e, obj_map(spec, "nodeSelector"), &format!("{path}.nodeSelector"));
    validate_sysctls(e, spec, &format!("{path}.securityContext.sysctls"));
    let sa = s(spec, "serviceAccountName");
    if !sa.is_empty() {
        for msg in is_dns1123_subdomain(sa) {
            e.invalid(&format!("{path}.serviceAccountName"), &q(sa), &msg);
        }
    }
    if let Some(ads) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64)
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        e.invalid(
            &format!("{path}.activeDeadlineSeconds"),
            &ads.to_string(),
            "must be between 1 and 2147483647, inclusive",
        );
    }
    let hostname = s(spec, "hostname");
    if !hostname.is_empty() {
        for msg in is_dns1123_label(hostname) {
            e.invalid(&format!("{path}.hostname"), &q(hostname), &msg);
        }
    }
    validate_tolerations(e, arr(spec, "tolerations"), &format!("{path}.tolerations"));
}

/// `SysctlContainSlashFmt`: segments joined by `.` or `/`.
const SYSCTL_FMT: &str = "([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?";
const SYSCTL_MAX_LENGTH: usize = 253;

/// `IsValidSysctlName`: at most 253 characters, segments of `[a-z0-9]([-_a-z0-9]*[a-z0-9])?`
/// joined by `.` or `/`.
pub fn is_valid_sysctl_name(name: &str) -> bool {
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let segment = |seg: &str| {
        let b = seg.as_bytes();
        b.first().is_some_and(alnum)
            && b.last().is_some_and(alnum)
            && b.iter().all(|c| alnum(c) || *c == b'-' || *c == b'_')
    };
    name.len() <= SYSCTL_MAX_LENGTH && name.split(['.', '/']).all(segment)
}

/// The namespace a sysctl belongs to (`utilsysctl.GetNamespace`), its name normalized to dots
/// first (`net/ipv4/ip_forward` is `net.ipv4.ip_forward`).
#[derive(PartialEq)]
enum SysctlNamespace {
    Net,
    Ipc,
    Unknown,
}

fn sysctl_namespace(name: &str) -> SysctlNamespace {
    let slashed = name.find(['.', '/']).is_some_and(|i| name.as_bytes().get(i) == Some(&b'/'));
    let normal: String = if slashed {
        name.chars()
            .map(|c| {
                if c == '/' {
                    '.'
                } else if c == '.' {
                    '/'
                } else {
                    c
                }
            })
            .collect()
    } else {
        name.to_string()
    };
    const IPC: &[&str] = &[
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
        "kernel.shm",
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.msg",
    ];
    if IPC.contains(&normal.as_str()) || normal.starts_with("fs.mqueue.") {
        SysctlNamespace::Ipc
    } else if normal.starts_with("net.") {
        SysctlNamespace::Net
    } else {
        SysctlNamespace::Unknown
    }
}

/// `validateSysctls` of the pod's `securityContext`: each name given, valid and once, and not of a
/// namespace the pod shares with its host (`ValidateHostSysctl`).
fn validate_sysctls(e: &mut Errs, spec: &Value, path: &str) {
    let Some(sysctls) = spec.pointer("/securityContext/sysctls").and_then(Value::as_array) else { return };
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let host_ipc = spec.get("hostIPC").and_then(Value::as_bool) == Some(true);
    let mut seen: Vec<&str> = Vec::new();
    for (i, sysctl) in sysctls.iter().enumerate() {
        let name = s(sysctl, "name");
        let p = format!("{path}[{i}].name");
        if name.is_empty() {
            e.required(&p, "");
        } else if !is_valid_sysctl_name(name) {
            let detail = format!("must have at most {SYSCTL_MAX_LENGTH} characters and match regex ^{SYSCTL_FMT}$");
            e.invalid(&p, &q(name), &detail);
        } else if seen.contains(&name) {
            e.duplicate(&p, &q(name));
        }
        match sysctl_namespace(name) {
            SysctlNamespace::Net if host_network => {
                e.invalid(&p, &q(name), "may not be specified when 'hostNetwork' is true");
            }
            SysctlNamespace::Ipc if host_ipc => e.invalid(&p, &q(name), "may not be specified when 'hostIPC' is true"),
            _ => {}
        }
        seen.push(name);
    }
}

/// Volume names (unique DNS-1123 labels) and at most one source each; returns the names.
fn validate_volumes<'a>(e: &mut Errs, volumes: &'a [Value], path: &str) -> Vec<&'a str> {
    let mut names = Vec::new();
    for (i, v) in volumes.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let name = s(v, "name");
        if name.is_empty() {
            e.required(&format!("{idx}.name"), "");
        } else {
            for msg in is_dns1123_label(name) {
                e.invalid(&format!("{idx}.name"), &q(name), &msg);
            }
            if names.contains(&name) {
                e.duplicate(&format!("{idx}.name"), &q(name));
            } else {
                names.push(name);
            }
        }
        let sources: Vec<&String> =
            v.as_object().map(|m| m.keys().filter(|k| *k != "name").collect()).unwrap_or_default();
        if sources.is_empty() {
            e.required(&idx, "must specify a volume type");
        } else if let Some(extra) = sources.get(1) {
            e.forbidden(&format!("{idx}.{extra}"), "may not specify more than 1 volume type");
        }
    }
    names
}

fn validate_container<'a>(e: &mut Errs, c: &'a Value, path: &str, volumes: &[&str], names: &mut Vec<&'a str>) {
    let name = s(c, "name");
    if name.is_empty() {
        e.required(&format!("{path}.name"), "");
    } else {
        for msg in is_dns1123_label(name) {
            e.invalid(&format!("{path}.name"), &q(name), &msg);
        }
        if names.contains(&name) {
            e.duplicate(&format!("{path}.name"), &q(name));
        } else {
            names.push(name);
        }
    }
    let image = s(c, "image");
    if image.is_empty() {
        e.required(&format!("{path}.image"), "");
    } else if image.trim() != image {
        e.invalid(&format!("{path}.image"), &q(image), "must not have leading or trailing whitespace");
    }
    match s(c, "imagePullPolicy") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => e.required(&format!("{path}.imagePullPolicy"), ""),
        other => e.not_supported(&format!("{path}.imagePullPolicy"), other, &["Always", "IfNotPresent", "Never"]),
    }
    match s(c, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => e.required(&format!("{path}.terminationMessagePolicy"), "cannot be empty"),
        other => {
            e.not_supported(&format!("{path}.terminationMessagePolicy"), other, &["File", "FallbackToLogsOnError"])
        }
    }
    validate_ports(e, arr(c, "ports"), &format!("{path}.ports"));
    for (i, env) in arr(c, "env").iter().enumerate() {
        if s(env, "name").is_empty() {
            e.required(&format!("{path}.env[{i}].name"), "");
        }
    }
    validate_volume_mounts(e, arr(c, "volumeMounts"), &format!("{path}.volumeMounts"), volumes);
    validate_resources(e, c.get("resources"), &format!("{path}.resources"));
    for (probe, must_be_one) in [("livenessProbe", true), ("readinessProbe", false), ("startupProbe", true)] {
        if let Some(p) = c.get(probe).filter(|p| p.is_object()) {
            validate_probe(e, p, &format!("{path}.{probe}"), must_be_one);
        }
    }
}

fn validate_ports(e: &mut Errs, ports: &[Value], path: &str) {
    let mut names: Vec<&str> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let name = s(p, "name");
        if !name.is_empty() {
            for msg in is_valid_port_name(name) {
                e.invalid(&format!("{idx}.name"), &q(name), &msg);
            }
            if names.contains(&name) {
                e.duplicate(&format!("{idx}.name"), &q(name));
            } else {
                names.push(name);
            }
        }
        match p.get("containerPort").and_then(Value::as_i64).unwrap_or(0) {
            0 => e.required(&format!("{idx}.containerPort"), ""),
            n => {
                for msg in is_valid_port_num(n) {
                    e.invalid(&format!("{idx}.containerPort"), &n.to_string(), &msg);
                }
            }
        }
        if let Some(n) = p.get("hostPort").and_then(Value::as_i64).filter(|n| *n != 0) {
            for msg in is_valid_port_num(n) {
                e.invalid(&format!("{idx}.hostPort"), &n.to_string(), &msg);
            }
        }
        match s(p, "protocol") {
            "TCP" | "UDP" | "SCTP" => {}
            "" => e.required(&format!("{idx}.protocol"), ""),
            other => e.not_supported(&format!("{idx}.protocol"), other, &["SCTP", "TCP", "UDP"]),
        }
    }
}

fn validate_volume_mounts(e: &mut Errs, mounts: &[Value], path: &str, volumes: &[&str]) {
    let mut paths: Vec<&str> = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let name = s(m, "name");
        if name.is_empty() {
            e.required(&format!("{idx}.name"), "");
        }
        if !volumes.contains(&name) {
            e.not_found(&format!("{idx}.name"), &q(name));
        }
        let mount_path = s(m, "mountPath");
        if mount_path.is_empty() {
            e.required(&format!("{idx}.mountPath"), "");
        } else if paths.contains(&mount_path) {
            e.invalid(&format!("{idx}.mountPath"), &q(mount_path), "must be unique");
        } else {
            paths.push(mount_path);
        }
    }
}

/// Quantities parse and are non-negative; each request is at most its limit.
fn validate_resources(e: &mut Errs, resources: Option<&Value>, path: &str) {
    let Some(r) = resources else { return };
    let read = |e: &mut Errs, kind: &str| -> Vec<(String, String, f64)> {
        let mut out = Vec::new();
        for (name, v) in obj_map(r, kind).into_iter().flatten() {
            let p = format!("{path}.{kind}[{name}]");
            let text = match v {
                Value::String(t) => t.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            match parse_quantity(&text) {
                Ok(n) if n < 0.0 => e.invalid(&p, &q(&text), NEGATIVE),
                Ok(n) => out.push((name.clone(), text, n)),
                Err(msg) => e.invalid(&p, &q(&text), msg),
            }
        }
        out
    };
    let limits = read(e, "limits");
    let requests = read(e, "requests");
    for (name, text, value) in &requests {
        if let Some((_, limit_text, limit)) = limits.iter().find(|(n, _, _)| n == name)
            && value > limit
        {
            e.invalid(
                &format!("{path}.requests[{name}]"),
                &q(text),
                &format!("must be less than or equal to {name} limit of {limit_text}"),
            );
        }
    }
}

fn validate_probe(e: &mut Errs, p: &Value, path: &str, success_must_be_one: bool) {
    for f in ["initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"] {
        e.nonnegative(&format!("{path}.{f}"), p.get(f));
    }
    if success_must_be_one && let Some(n) = p.get("successThreshold").and_then(Value::as_i64).filter(|n| *n != 1) {
        e.invalid(&format!("{path}.successThreshold"), &n.to_string(), "must be 1");
    }
    let handlers =
        ["exec", "httpGet", "tcpSocket", "grpc"].iter().filter(|h| p.get(**h).is_some_and(|v| !v.is_null())).count();
    if handlers == 0 {
        e.required(path, "must specify a handler type");
    } else if handlers > 1 {
        e.forbidden(path, "may not specify more than 1 handler type");
    }
}

fn validate_tolerations(e: &mut Errs, tolerations: &[Value], path: &str) {
    for (i, t) in tolerations.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let key = s(t, "key");
        if !key.is_empty() {
            for msg in is_qualified_name(key) {
                e.invalid(&format!("{idx}.key"), &q(key), &msg);
            }
        }
        let op = s(t, "operator");
        if key.is_empty() && op != "Exists" {
            e.invalid(
                &format!("{idx}.operator"),
                &q(op),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            );
        }
        let effect = s(t, "effect");
        if t.get("tolerationSeconds").is_some_and(|v| !v.is_null()) && effect != "NoExecute" {
            e.invalid(
                &format!("{idx}.effect"),
                &q(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            );
        }
        let value = s(t, "value");
        match op {
            "Equal" | "" => {
                let errs = is_valid_label_value(value);
                if !errs.is_empty() {
                    e.invalid(&format!("{idx}.operator"), &q(value), &errs.join(";"));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    e.invalid(&format!("{idx}.operator"), &q(value), "value must be empty when `operator` is 'Exists'");
                }
            }
            other => e.not_supported(&format!("{idx}.operator"), other, &["Equal", "Exists"]),
        }
        if !effect.is_empty() {
            validate_taint_effect(e, effect, &format!("{idx}.effect"));
        }
    }
}

fn validate_taint_effect(e: &mut Errs, effect: &str, path: &str) {
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        e.not_supported(path, effect, &["NoSchedule", "PreferNoSchedule", "NoExecute"]);
    }
}

/// `ValidatePodUpdate`'s spec rule: only images, a shorter `activeDeadlineSeconds`, added tolerations and
/// a grace period fixed from negative to 1 may change.
fn validate_pod_spec_update(e: &mut Errs, new: &Value, old: &Value) {
    match (
        new.get("activeDeadlineSeconds").and_then(Value::as_i64),
        old.get("activeDeadlineSeconds").and_then(Value::as_i64),
    ) {
        (Some(n), Some(o)) if o < n => {
            e.invalid("spec.activeDeadlineSeconds", &n.to_string(), "must be less than or equal to previous value");
            return;
        }
        (None, Some(_)) => {
            e.invalid("spec.activeDeadlineSeconds", "null", "must not update from a positive integer to nil value");
        }
        _ => {}
    }
    let new_tol = arr(new, "tolerations");
    for t in arr(old, "tolerations") {
        let same = |n: &&Value| {
            ["key", "operator", "value", "effect"]
                .iter()
                .all(|k| s(n, k) == s(t, k) || (*k == "operator" && is_equal_op(s(n, k)) && is_equal_op(s(t, k))))
        };
        if !new_tol.iter().any(|n| same(&n)) {
            e.forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds");
            break;
        }
    }
    let mut munged = new.clone();
    for list in ["containers", "initContainers"] {
        if let (Some(Value::Array(nc)), Some(oc)) = (munged.get_mut(list), old.get(list).and_then(Value::as_array)) {
            for (n, o) in nc.iter_mut().zip(oc) {
                if let (Some(n), Some(img)) = (n.as_object_mut(), o.get("image")) {
                    n.insert("image".into(), img.clone());
                }
            }
        }
    }
    if let Some(m) = munged.as_object_mut() {
        for key in ["activeDeadlineSeconds", "tolerations"] {
            match old.get(key) {
                Some(v) => m.insert(key.to_string(), v.clone()),
                None => m.remove(key),
            };
        }
        let old_grace = old.get("terminationGracePeriodSeconds").and_then(Value::as_i64);
        let new_grace = m.get("terminationGracePeriodSeconds").and_then(Value::as_i64);
        if let (Some(o), Some(1)) = (old_grace, new_grace)
            && o < 0
        {
            m.insert("terminationGracePeriodSeconds".into(), Value::from(o));
        }
    }
    if &munged != old {
        e.forbidden("spec", POD_UPDATE_FORBIDDEN);
    }
}

fn is_equal_op(op: &str) -> bool {
    op.is_empty() || op == "Equal"
}

// ---------------------------------------------------------------------------------------------
// Deployments and ReplicaSets
// ---------------------------------------------------------------------------------------------

/// Go's `%#v` of a map[string]string.
fn go_string_map(m: Option<&Map<String, Value>>) -> String {
    match m {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let items: Vec<String> =
                m.iter().map(|(k, v)| format!("{}:{}", q(k), q(v.as_str().unwrap_or("")))).collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

/// Go's `%#v` of a `metav1.LabelSelector`, as `field.Invalid` prints a selector.
fn go_label_selector(sel: &Value) -> String {
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|r| {
                    let values = match r.get("values").and_then(Value::as_array) {
                        None => "[]string(nil)".to_string(),
                        Some(v) => {
                            let vs: Vec<String> = v.iter().map(|x| q(x.as_str().unwrap_or(""))).collect();
                            format!("[]string{{{}}}", vs.join(", "))
                        }
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        q(s(r, "key")),
                        q(s(r, "operator"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}", go_string_map(obj_map(sel, "matchLabels")))
}

/// Go's `%#v` of an `intstr.IntOrString`.
fn go_int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(t)) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}", q(t)),
        Some(n) => format!("intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}", n.as_i64().unwrap_or(0)),
        None => "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}".to_string(),
    }
}

/// `ValidateLabelSelector` (strict label values) for a `metav1.LabelSelector`.
fn validate_label_selector(e: &mut Errs, sel: &Value, path: &str) {
    validate_labels(e, obj_map(sel, "matchLabels"), &format!("{path}.matchLabels"));
    for (i, r) in arr(sel, "matchExpressions").iter().enumerate() {
        let idx = format!("{path}.matchExpressions[{i}]");
        let values = arr(r, "values");
        match s(r, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    e.required(&format!("{idx}.values"), "must be specified when `operator` is 'In' or 'NotIn'");
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    e.forbidden(
                        &format!("{idx}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    );
                }
            }
            other => e.invalid(&format!("{idx}.operator"), &q(other), "not a valid selector operator"),
        }
        let key = s(r, "key");
        for msg in is_qualified_name(key) {
            e.invalid(&format!("{idx}.key"), &q(key), &msg);
        }
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            for msg in is_valid_label_value(v) {
                e.invalid(&format!("{idx}.values[{j}]"), &q(v), &msg);
            }
        }
    }
}

/// The selector and template checks Deployments and ReplicaSets share.
fn validate_selector_and_template(e: &mut Errs, spec: &Value) {
    let sel = spec.get("selector").filter(|v| !v.is_null());
    match sel {
        None => e.required("spec.selector", ""),
        Some(sel) => {
            validate_label_selector(e, sel, "spec.selector");
            let n = obj_map(sel, "matchLabels").map_or(0, Map::len) + arr(sel, "matchExpressions").len();
            if n == 0 {
                e.invalid("spec.selector", &go_label_selector(sel), "empty selector is invalid for deployment");
            }
        }
    }
    let parsed = LabelSelector::from_label_selector(sel.unwrap_or(&Value::Null));
    let Ok(selector) = parsed else {
        e.invalid("spec.selector", &go_label_selector(sel.unwrap_or(&Value::Null)), "invalid label selector");
        return;
    };
    let empty = Value::Null;
    let template = spec.get("template").unwrap_or(&empty);
    let tmeta = template.get("metadata").unwrap_or(&empty);
    let labels = obj_map(tmeta, "labels");
    if !selector.is_empty() && !selector.matches(labels) {
        e.invalid(
            "spec.template.metadata.labels",
            &go_string_map(labels),
            "`selector` does not match template `labels`",
        );
    }
    validate_labels(e, labels, "spec.template.labels");
    validate_annotations(e, obj_map(tmeta, "annotations"), "spec.template.annotations");
    let tspec = template.get("spec").unwrap_or(&empty);
    validate_pod_spec(e, tspec, "spec.template.spec");
    let restart = s(tspec, "restartPolicy");
    if restart != "Always" {
        e.not_supported("spec.template.spec.restartPolicy", restart, &["Always"]);
    }
    if tspec.get("activeDeadlineSeconds").is_some_and(|v| !v.is_null()) {
        e.forbidden("spec.template.spec.activeDeadlineSeconds", "activeDeadlineSeconds in ReplicaSet is not Supported");
    }
}

fn selector_immutable(e: &mut Errs, new: &Value, old: &Value) {
    let (n, o) = (meta::at(new, &["spec", "selector"]), meta::at(old, &["spec", "selector"]));
    if n != o {
        e.invalid("spec.selector", &go_label_selector(n.unwrap_or(&Value::Null)), FIELD_IMMUTABLE);
    }
}

fn validate_deployment(e: &mut Errs, d: &Value, old: Option<&Value>) {
    let empty = Value::Null;
    let spec = d.get("spec").unwrap_or(&empty);
    e.nonnegative("spec.replicas", spec.get("replicas"));
    validate_selector_and_template(e, spec);
    let strategy = spec.get("strategy").unwrap_or(&empty);
    let rolling = strategy.get("rollingUpdate").filter(|v| !v.is_null());
    match s(strategy, "type") {
        "Recreate" => {
            if rolling.is_some() {
                e.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'");
            }
        }
        "RollingUpdate" => match rolling {
            None => e.required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil"),
            Some(ru) => validate_rolling_update(e, ru),
        },
        other => e.not_supported("spec.strategy.type", other, &["Recreate", "RollingUpdate"]),
    }
    let min_ready = spec.get("minReadySeconds").and_then(Value::as_i64).unwrap_or(0);
    e.nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"));
    e.nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"));
    if let Some(pds) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        if pds <= 0 {
            e.invalid("spec.progressDeadlineSeconds", &pds.to_string(), "must be greater than 0");
        }
        if pds <= min_ready {
            e.invalid("spec.progressDeadlineSeconds", &pds.to_string(), "must be greater than minReadySeconds");
        }
    }
    if let Some(old) = old {
        selector_immutable(e, d, old);
    }
}

/// The numeric value of an int-or-percent, and whether it is a percent.
fn int_or_percent(v: Option<&Value>) -> (i64, bool) {
    match v {
        Some(Value::String(t)) => (t.strip_suffix('%').and_then(|n| n.parse().ok()).unwrap_or(0), true),
        Some(n) => (n.as_i64().unwrap_or(0), false),
        None => (0, false),
    }
}

fn validate_rolling_update(e: &mut Errs, ru: &Value) {
    for f in ["maxUnavailable", "maxSurge"] {
        let path = format!("spec.strategy.rollingUpdate.{f}");
        match ru.get(f) {
            Some(Value::String(t)) => {
                let digits = t.strip_suffix('%').unwrap_or("");
                if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                    e.invalid(
                        &path,
                        &go_int_or_string(ru.get(f)),
                        &regex_error(
                            "a valid percent string must be a numeric string followed by an ending '%'",
                            "[0-9]+%",
                            &["1%", "93%"],
                        ),
                    );
                }
            }
            Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n < 0) => {
                e.invalid(&path, &n.to_string(), NEGATIVE);
            }
            _ => {}
        }
    }
    if int_or_percent(ru.get("maxUnavailable")).0 == 0 && int_or_percent(ru.get("maxSurge")).0 == 0 {
        e.invalid(
            "spec.strategy.rollingUpdate.maxUnavailable",
            &go_int_or_string(ru.get("maxUnavailable")),
            "may not be 0 when `maxSurge` is 0",
        );
    }
    if let (n, true) = int_or_percent(ru.get("maxUnavailable"))
        && n > 100
    {
        e.invalid(
            "spec.strategy.rollingUpdate.maxUnavailable",
            &go_int_or_string(ru.get("maxUnavailable")),
            "must not be greater than 100%",
        );
    }
}

fn validate_replica_set(e: &mut Errs, rs: &Value, old: Option<&Value>) {
    let empty = Value::Null;
    let spec = rs.get("spec").unwrap_or(&empty);
    e.nonnegative("spec.replicas", spec.get("replicas"));
    e.nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"));
    validate_selector_and_template(e, spec);
    if let Some(old) = old {
        selector_immutable(e, rs, old);
    }
}

// ---------------------------------------------------------------------------------------------
// Other kinds
// ---------------------------------------------------------------------------------------------

fn validate_namespace(e: &mut Errs, ns: &Value) {
    let empty = Value::Null;
    let spec = ns.get("spec").unwrap_or(&empty);
    for (i, f) in arr(spec, "finalizers").iter().enumerate() {
        let f = f.as_str().unwrap_or("");
        let path = format!("spec.finalizers[{i}]");
        for msg in is_qualified_name(f) {
            e.invalid(&path, &q(f), &msg);
        }
        if !f.contains('/') && !matches!(f, "kubernetes" | "orphan" | "foregroundDeletion") {
            e.invalid(&path, &q(f), "name is neither a standard finalizer name nor is it fully qualified");
        }
    }
}

fn validate_node(e: &mut Errs, node: &Value) {
    let empty = Value::Null;
    let spec = node.get("spec").unwrap_or(&empty);
    for (i, t) in arr(spec, "taints").iter().enumerate() {
        let idx = format!("spec.taints[{i}]");
        let key = s(t, "key");
        for msg in is_qualified_name(key) {
            e.invalid(&format!("{idx}.key"), &q(key), &msg);
        }
        let value = s(t, "value");
        for msg in is_valid_label_value(value) {
            e.invalid(&format!("{idx}.value"), &q(value), &msg);
        }
        match s(t, "effect") {
            "" => e.required(&format!("{idx}.effect"), ""),
            effect => validate_taint_effect(e, effect, &format!("{idx}.effect")),
        }
    }
}

/// Decoded size of a base64 string (`[]byte` fields travel base64-encoded).
fn base64_len(v: &Value) -> usize {
    let t = v.as_str().unwrap_or("");
    let pad = t.bytes().rev().take_while(|c| *c == b'=').count();
    (t.len() / 4 * 3 + (t.len() % 4).saturating_sub(1)).saturating_sub(pad)
}

fn validate_data_keys(e: &mut Errs, data: Option<&Map<String, Value>>, path: &str) {
    for key in data.into_iter().flat_map(Map::keys) {
        for msg in is_config_map_key(key) {
            e.invalid(&format!("{path}[{key}]"), &q(key), &msg);
        }
    }
}

/// `immutable: true` freezes the data and itself.
fn validate_immutable_data(e: &mut Errs, new: &Value, old: &Value, data_fields: &[&str]) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        e.forbidden("immutable", "field is immutable when `immutable` is set");
    }
    for f in data_fields {
        if new.get(*f) != old.get(*f) {
            e.forbidden(f, "field is immutable when `immutable` is set");
        }
    }
}

fn validate_config_map(e: &mut Errs, cm: &Value, old: Option<&Value>) {
    let data = obj_map(cm, "data");
    let binary = obj_map(cm, "binaryData");
    validate_data_keys(e, data, "data");
    for key in data.into_iter().flat_map(Map::keys) {
        if binary.is_some_and(|b| b.contains_key(key)) {
            e.invalid(&format!("data[{key}]"), &q(key), "duplicate of key present in binaryData");
        }
    }
    validate_data_keys(e, binary, "binaryData");
    let total: usize = data.into_iter().flatten().map(|(_, v)| v.as_str().map_or(0, str::len)).sum::<usize>()
        + binary.into_iter().flatten().map(|(_, v)| base64_len(v)).sum::<usize>();
    if total > MAX_SECRET_SIZE {
        e.too_long("", MAX_SECRET_SIZE);
    }
    if let Some(old) = old {
        validate_immutable_data(e, cm, old, &["data", "binaryData"]);
    }
}

fn validate_secret(e: &mut Errs, secret: &Value, old: Option<&Value>) {
    let data = obj_map(secret, "data");
    let string_data = obj_map(secret, "stringData");
    validate_data_keys(e, data, "data");
    validate_data_keys(e, string_data, "data");
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k)) || string_data.is_some_and(|d| d.contains_key(k));
    let total: usize = data.into_iter().flatten().map(|(_, v)| base64_len(v)).sum::<usize>()
        + string_data.into_iter().flatten().map(|(_, v)| v.as_str().map_or(0, str::len)).sum::<usize>();
    if total > MAX_SECRET_SIZE {
        e.too_long("data", MAX_SECRET_SIZE);
    }
    match s(secret, "type") {
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    e.required(&format!("data[{k}]"), "");
                }
            }
        }
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            e.required("data[.dockerconfigjson]", "");
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => {
            e.required("data[.dockercfg]", "");
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => {
            e.required("data[ssh-privatekey]", "");
        }
        "kubernetes.io/service-account-token" => {
            let annotations = meta::annotations(secret);
            if annotations.and_then(|a| a.get("kubernetes.io/service-account.name")).is_none() {
                e.required("metadata.annotations[kubernetes.io/service-account.name]", "");
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        if s(secret, "type") != s(old, "type") {
            e.invalid("type", &q(s(secret, "type")), FIELD_IMMUTABLE);
        }
        validate_immutable_data(e, secret, old, &["data"]);
    }
}

/// `legacyValidateEvent` for core/v1 Events.
fn validate_core_event(e: &mut Errs, ev: &Value) {
    let empty = Value::Null;
    let involved = ev.get("involvedObject").unwrap_or(&empty);
    let io_ns = s(involved, "namespace");
    let ns = meta::namespace(ev);
    let has_event_time = ev.get("eventTime").is_some_and(|v| !v.is_null());
    if !has_event_time {
        if (io_ns.is_empty() && !ns.is_empty() && ns != "default") || (!io_ns.is_empty() && ns != io_ns) {
            e.invalid("involvedObject.namespace", &q(io_ns), "does not match event.namespace");
        }
    } else {
        if io_ns.is_empty() && ns != "default" && ns != "kube-system" {
            e.invalid("involvedObject.namespace", &q(io_ns), "does not match event.namespace");
        }
        let rc = s(ev, "reportingComponent");
        if rc.is_empty() {
            e.required("reportingComponent", "");
        }
        for msg in is_qualified_name(rc) {
            e.invalid("reportingComponent", &q(rc), &msg);
        }
        if s(ev, "reportingInstance").is_empty() {
            e.required("reportingInstance", "");
        }
        if s(ev, "action").is_empty() {
            e.required("action", "");
        }
    }
    for msg in is_dns1123_subdomain(ns) {
        e.invalid("namespace", &q(ns), &msg);
    }
}

/// `ValidateEventCreate` for events.k8s.io/v1 Events.
fn validate_events_event(e: &mut Errs, ev: &Value) {
    if ev.get("eventTime").is_none_or(|v| v.is_null()) {
        e.required("eventTime", "");
    }
    match s(ev, "type") {
        "Normal" | "Warning" => {}
        other => e.invalid("type", "\"\"", &format!("has invalid value: {other}")),
    }
    let rc = s(ev, "reportingController");
    if rc.is_empty() {
        e.required("reportingController", "");
    }
    for msg in is_qualified_name(rc) {
        e.invalid("reportingController", &q(rc), &msg);
    }
    let ri = s(ev, "reportingInstance");
    if ri.is_empty() {
        e.required("reportingInstance", "");
    } else if ri.len() > 128 {
        e.invalid("reportingInstance", "\"\"", "can have at most 128 characters");
    }
    let action = s(ev, "action");
    if action.is_empty() {
        e.required("action", "");
    } else if action.len() > 128 {
        e.invalid("action", "\"\"", "can have at most 128 characters");
    }
    let reason = s(ev, "reason");
    if reason.is_empty() {
        e.required("reason", "");
    } else if reason.len() > 128 {
        e.invalid("reason", "\"\"", "can have at most 128 characters");
    }
    if s(ev, "note").len() > 1024 {
        e.invalid("note", "\"\"", "can have at most 1024 characters");
    }
}

fn validate_lease(e: &mut Errs, lease: &Value) {
    let empty = Value::Null;
    let spec = lease.get("spec").unwrap_or(&empty);
    if let Some(d) = spec.get("leaseDurationSeconds").and_then(Value::as_i64)
        && d <= 0
    {
        e.invalid("spec.leaseDurationSeconds", &d.to_string(), "must be greater than 0");
    }
    e.nonnegative("spec.leaseTransitions", spec.get("leaseTransitions"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::apply_defaults;
    use crate::resource::lookup;
    use serde_json::json;

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

    fn res(group: &str, plural: &str) -> &'static ResourceInfo {
        lookup(group, "v1", plural).expect("resource")
    }

    /// Validates the defaulted object, returning `field: message` lines.
    fn errors(group: &str, plural: &str, mut obj: Value, old: Option<Value>) -> Vec<String> {
        let r = res(group, plural);
        apply_defaults(r, &mut obj);
        let old = old.map(|mut o| {
            apply_defaults(r, &mut o);
            o
        });
        validate(r, &obj, old.as_ref()).into_iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    fn causes(group: &str, plural: &str, obj: Value) -> Vec<Cause> {
        let r = res(group, plural);
        let mut obj = obj;
        apply_defaults(r, &mut obj);
        validate(r, &obj, None)
    }

    fn pod(containers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": containers}})
    }

    fn deployment(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn web_template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}})
    }

    #[test]
    fn syntax_messages_match_apimachinery() {
        let long = "a".repeat(254);
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("my-name", vec![]),
            ("My-Name", vec![SUBDOMAIN_MSG.to_string()]),
            ("a.b", vec![]),
            (&long, vec!["must be no more than 253 characters".to_string()]),
        ];
        for (input, want) in cases {
            assert_eq!(is_dns1123_subdomain(input), want, "{input}");
        }
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots".to_string()]);
        assert_eq!(is_dns1123_label("-a"), vec![LABEL_MSG.to_string()]);
        assert_eq!(is_qualified_name("example.com/app"), Vec::<String>::new());
        assert_eq!(is_qualified_name("/app"), vec!["prefix part must be non-empty".to_string()]);
        assert_eq!(is_qualified_name("a/b/c").len(), 1);
        assert!(
            is_qualified_name("a/b/c")[0]
                .ends_with("with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")
        );
        assert_eq!(is_qualified_name("").len(), 2);
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters".to_string()]
        );
        assert_eq!(is_valid_label_value(""), Vec::<String>::new());
        assert_eq!(is_config_map_key("..a"), vec!["must not start with '..'".to_string()]);
        assert_eq!(
            is_config_map_key("a b"),
            vec!["a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_string()]
        );
    }

    #[test]
    fn quantities() {
        let cases = [
            ("1", Some(1.0)),
            ("500m", Some(0.5)),
            ("1Gi", Some(1073741824.0)),
            ("1e3", Some(1000.0)),
            ("2k", Some(2000.0)),
            ("abc", None),
            ("1x", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_quantity(input).ok(), want, "{input}");
        }
    }

    #[test]
    fn metadata_rules() {
        let cases: Vec<(Value, Vec<String>)> = vec![
            (json!({"metadata": {}, "data": {}}), vec!["metadata.name: Required value: name or generateName is required".into()]),
            (json!({"metadata": {"name": "Bad_Name"}}), vec![format!("metadata.name: Invalid value: \"Bad_Name\": {SUBDOMAIN_MSG}")]),
            (json!({"metadata": {"name": "ok", "generateName": "web-"}}), vec![]),
            (json!({"metadata": {"name": "ok", "generateName": "Web-"}}), vec![format!("metadata.generateName: Invalid value: \"Web-\": {SUBDOMAIN_MSG}")]),
            (
                json!({"metadata": {"name": "ok", "labels": {"app": "-x"}}}),
                vec!["metadata.labels: Invalid value: \"-x\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into()],
            ),
            (json!({"metadata": {"name": "ok", "annotations": {"Example.com/Key": "v"}}}), vec![]),
            (json!({"metadata": {"name": "ok", "annotations": {"big": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT)}}}), vec!["metadata.annotations: Too long: may not be more than 262144 bytes".into()]),
            (json!({"metadata": {"name": "ok"}, "data": {"a b": "x", "ok": "y"}}), vec!["data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".into()]),
            (json!({"metadata": {"name": "ok"}, "data": {"a": "x".repeat(MAX_SECRET_SIZE + 1)}}), vec![": Too long: may not be more than 1048576 bytes".into()]),
            (json!({"metadata": {"name": "ok"}, "data": {"a": "x"}, "binaryData": {"a": "eA=="}}), vec!["data[a]: Invalid value: \"a\": duplicate of key present in binaryData".into()]),
        ];
        for (obj, want) in cases {
            assert_eq!(errors("", "configmaps", obj.clone(), None), want, "{obj}");
        }
        assert_eq!(
            errors("", "namespaces", json!({"metadata": {"name": "a.b"}}), None),
            vec!["metadata.name: Invalid value: \"a.b\": must not contain dots".to_string()]
        );
        assert_eq!(
            errors("", "nodes", json!({"metadata": {"name": "n", "namespace": "x"}}), None),
            vec!["metadata.namespace: Forbidden: not allowed on this type".to_string()]
        );
        let c = causes("", "configmaps", json!({"metadata": {}}));
        assert_eq!(c[0].reason, "FieldValueRequired");
    }

    #[test]
    fn metadata_immutable_on_update() {
        let old = json!({"metadata": {"name": "a", "namespace": "default", "uid": "u1"}});
        let new = json!({"metadata": {"name": "a", "namespace": "default", "uid": "u2"}});
        assert_eq!(
            errors("", "configmaps", new, Some(old)),
            vec!["metadata.uid: Invalid value: \"u2\": field is immutable".to_string()]
        );
    }

    #[test]
    fn pod_rules() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (pod(json!([{"name": "a", "image": "nginx"}])), vec![]),
            (pod(json!([])), vec!["spec.containers: Required value"]),
            (
                pod(json!([{"name": "a", "image": "nginx"}, {"name": "a", "image": ""}])),
                vec!["spec.containers[1].name: Duplicate value: \"a\"", "spec.containers[1].image: Required value"],
            ),
            (pod(json!([{"name": "", "image": "x"}])), vec!["spec.containers[0].name: Required value"]),
            (
                pod(
                    json!([{"name": "a", "image": "x", "ports": [{"containerPort": 70000}, {"containerPort": 80, "protocol": "FOO"}]}]),
                ),
                vec![
                    "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                    "spec.containers[0].ports[1].protocol: Unsupported value: \"FOO\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                ],
            ),
            (
                pod(json!([{"name": "a", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}])),
                vec!["spec.containers[0].volumeMounts[0].name: Not found: \"data\""],
            ),
            (
                pod(
                    json!([{"name": "a", "image": "x", "resources": {"limits": {"cpu": "100m"}, "requests": {"cpu": "200m", "memory": "abc"}}}]),
                ),
                vec![
                    "spec.containers[0].resources.requests[memory]: Invalid value: \"abc\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                    "spec.containers[0].resources.requests[cpu]: Invalid value: \"200m\": must be less than or equal to cpu limit of 100m",
                ],
            ),
            (
                pod(
                    json!([{"name": "a", "image": "x", "livenessProbe": {"httpGet": {"port": 80}, "successThreshold": 2}}]),
                ),
                vec!["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(errors("", "pods", obj.clone(), None), want, "{obj}");
        }
        let mut p = pod(json!([{"name": "a", "image": "x"}]));
        p["spec"]["restartPolicy"] = json!("Sometimes");
        p["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]);
        assert_eq!(
            errors("", "pods", p, None),
            vec![
                "spec.volumes[1].name: Duplicate value: \"v\"",
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ]
        );
        let c = causes("", "pods", pod(json!([])));
        assert_eq!(
            (c[0].reason.as_str(), c[0].field.as_str(), c[0].message.as_str()),
            ("FieldValueRequired", "spec.containers", "Required value")
        );
    }

    #[test]
    fn pod_sysctls() {
        let mut p = pod(json!([{"name": "a", "image": "x"}]));
        // The names of the conformance test "Sysctls should reject invalid sysctls", and more.
        let names = [
            "foo-",
            "kernel.shmmax",
            "safe-and-unsafe",
            "bar..",
            "net/ipv4/ip_forward",
            "kernel.shmmax",
            "",
            "Kernel.x",
        ];
        let sysctls: Vec<Value> = names.iter().map(|n| json!({"name": n, "value": "1"})).collect();
        p["spec"]["securityContext"] = json!({"sysctls": sysctls});
        let regex = r"must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$";
        assert_eq!(
            errors("", "pods", p.clone(), None),
            vec![
                format!("spec.securityContext.sysctls[0].name: Invalid value: \"foo-\": {regex}"),
                format!("spec.securityContext.sysctls[3].name: Invalid value: \"bar..\": {regex}"),
                "spec.securityContext.sysctls[5].name: Duplicate value: \"kernel.shmmax\"".to_string(),
                "spec.securityContext.sysctls[6].name: Required value".to_string(),
                format!("spec.securityContext.sysctls[7].name: Invalid value: \"Kernel.x\": {regex}"),
            ]
        );
        assert!(is_valid_sysctl_name(&"a".repeat(253)) && !is_valid_sysctl_name(&"a".repeat(254)));
        // Namespaced sysctls of a namespace the pod shares with its host.
        p["spec"]["securityContext"] = json!({"sysctls": [{"name": "net/ipv4/ip_forward"}, {"name": "kernel.shm_rmid_forced"}, {"name": "fs.mqueue.msg_max"}, {"name": "vm.swappiness"}]});
        p["spec"]["hostNetwork"] = json!(true);
        p["spec"]["hostIPC"] = json!(true);
        assert_eq!(
            errors("", "pods", p, None),
            vec![
                "spec.securityContext.sysctls[0].name: Invalid value: \"net/ipv4/ip_forward\": may not be specified when 'hostNetwork' is true",
                "spec.securityContext.sysctls[1].name: Invalid value: \"kernel.shm_rmid_forced\": may not be specified when 'hostIPC' is true",
                "spec.securityContext.sysctls[2].name: Invalid value: \"fs.mqueue.msg_max\": may not be specified when 'hostIPC' is true",
            ]
        );
    }

    #[test]
    fn pod_update_rules() {
        let old = pod(json!([{"name": "a", "image": "nginx:1"}]));
        let mut image_change = old.clone();
        image_change["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert_eq!(errors("", "pods", image_change, Some(old.clone())), Vec::<String>::new());
        let mut toleration_add = old.clone();
        toleration_add["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]);
        assert_eq!(errors("", "pods", toleration_add, Some(old.clone())), Vec::<String>::new());
        let mut port_change = old.clone();
        port_change["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
        assert_eq!(
            errors("", "pods", port_change, Some(old.clone())),
            vec![format!("spec: Forbidden: {POD_UPDATE_FORBIDDEN}")]
        );
        let mut with_deadline = old.clone();
        with_deadline["spec"]["activeDeadlineSeconds"] = json!(10);
        let mut longer = old.clone();
        longer["spec"]["activeDeadlineSeconds"] = json!(20);
        assert_eq!(
            errors("", "pods", longer, Some(with_deadline)),
            vec![
                "spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value"
                    .to_string()
            ]
        );
    }

    #[test]
    fn deployment_rules() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (deployment(json!({"selector": {"matchLabels": {"app": "web"}}, "template": web_template()})), vec![]),
            (
                deployment(json!({"template": web_template()})),
                vec![
                    "spec.selector: Required value",
                    "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
                ],
            ),
            (
                deployment(json!({"selector": {"matchLabels": {"app": "db"}}, "template": web_template()})),
                vec![
                    "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
                ],
            ),
            (
                deployment(json!({"selector": {}, "template": web_template()})),
                vec![
                    "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
                ],
            ),
            (
                deployment(
                    json!({"replicas": -1, "selector": {"matchLabels": {"app": "web"}}, "template": web_template()}),
                ),
                vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
            ),
            (
                deployment(
                    json!({"selector": {"matchLabels": {"app": "web"}}, "template": web_template(), "strategy": {"type": "Recreate", "rollingUpdate": {}}}),
                ),
                vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"],
            ),
            (
                deployment(
                    json!({"selector": {"matchLabels": {"app": "web"}}, "template": web_template(), "strategy": {"type": "Blue"}}),
                ),
                vec![
                    "spec.strategy.type: Unsupported value: \"Blue\": supported values: \"Recreate\", \"RollingUpdate\"",
                ],
            ),
            (
                deployment(
                    json!({"selector": {"matchLabels": {"app": "web"}}, "template": web_template(), "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}),
                ),
                vec![
                    "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0%\"}: may not be 0 when `maxSurge` is 0",
                ],
            ),
            (
                deployment(
                    json!({"selector": {"matchLabels": {"app": "web"}}, "template": web_template(), "minReadySeconds": 700}),
                ),
                vec!["spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"],
            ),
            (
                deployment(
                    json!({"selector": {"matchLabels": {"app": "web"}}, "template": web_template(), "revisionHistoryLimit": -2}),
                ),
                vec!["spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(errors("apps", "deployments", obj.clone(), None), want, "{obj}");
        }
        let mut t = web_template();
        t["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            errors(
                "apps",
                "deployments",
                deployment(json!({"selector": {"matchLabels": {"app": "web"}}, "template": t})),
                None
            ),
            vec!["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]
        );
    }

    #[test]
    fn selector_is_immutable() {
        let old = deployment(json!({"selector": {"matchLabels": {"app": "web"}}, "template": web_template()}));
        let mut t = web_template();
        t["metadata"]["labels"]["v"] = json!("2");
        let new = deployment(json!({"selector": {"matchLabels": {"app": "web", "v": "2"}}, "template": t}));
        assert_eq!(
            errors("apps", "deployments", new.clone(), Some(old.clone())),
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
            ]
        );
        let mut rs_old = old;
        rs_old["kind"] = json!("ReplicaSet");
        let mut rs_new = new;
        rs_new["kind"] = json!("ReplicaSet");
        assert_eq!(errors("apps", "replicasets", rs_new, Some(rs_old)).len(), 1);
    }

    #[test]
    fn other_kinds() {
        assert_eq!(
            errors(
                "",
                "nodes",
                json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}}),
                None
            ),
            vec![
                "spec.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""
            ]
        );
        assert_eq!(
            errors(
                "",
                "secrets",
                json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}),
                None
            ),
            vec!["data[tls.key]: Required value"]
        );
        let old = json!({"metadata": {"name": "s"}, "type": "Opaque"});
        let new = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/basic-auth"});
        assert_eq!(
            errors("", "secrets", new, Some(old)),
            vec!["type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable"]
        );
        let frozen = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        let changed = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "2"}});
        assert_eq!(
            errors("", "configmaps", changed, Some(frozen)),
            vec!["data: Forbidden: field is immutable when `immutable` is set"]
        );
        assert_eq!(
            errors(
                "coordination.k8s.io",
                "leases",
                json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}}),
                None
            ),
            vec!["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]
        );
        assert_eq!(
            errors(
                "",
                "events",
                json!({"metadata": {"name": "e", "namespace": "default"}, "involvedObject": {"kind": "Pod", "namespace": "other"}}),
                None
            ),
            vec!["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
        );
        assert_eq!(
            errors(
                "events.k8s.io",
                "events",
                json!({"metadata": {"name": "e", "namespace": "default"}, "type": "Normal", "reason": "R", "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "c", "reportingInstance": "i", "action": "A"}),
                None
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            errors("", "namespaces", json!({"metadata": {"name": "ns"}, "spec": {"finalizers": ["custom"]}}), None),
            vec![
                "spec.finalizers[0]: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
            ]
        );
    }
}
