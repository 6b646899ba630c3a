//! Reading and writing `metadata` of objects held as JSON values.

use serde_json::{Map, Value};

/// The string at a dotted path (`metadata.name`), if it is a string.
pub fn str_at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(obj, path).and_then(Value::as_str)
}

/// The value at a path of object keys.
pub fn at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, k| v.get(*k))
}

pub fn name(obj: &Value) -> &str {
    str_at(obj, &["metadata", "name"]).unwrap_or("")
}

pub fn namespace(obj: &Value) -> &str {
    str_at(obj, &["metadata", "namespace"]).unwrap_or("")
}

pub fn uid(obj: &Value) -> &str {
    str_at(obj, &["metadata", "uid"]).unwrap_or("")
}

pub fn resource_version(obj: &Value) -> &str {
    str_at(obj, &["metadata", "resourceVersion"]).unwrap_or("")
}

pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    at(obj, &["metadata", "labels"]).and_then(Value::as_object)
}

pub fn annotations(obj: &Value) -> Option<&Map<String, Value>> {
    at(obj, &["metadata", "annotations"]).and_then(Value::as_object)
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    at(obj, &["metadata", "finalizers"])
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
    str_at(obj, &["metadata", "deletionTimestamp"])
}

pub fn generation(obj: &Value) -> i64 {
    at(obj, &["metadata", "generation"]).and_then(Value::as_i64).unwrap_or(0)
}

/// `metadata`, created as `{}` when missing or not an object.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    object_field_mut(obj, "metadata")
}

/// A field of an object that must itself be an object, created (or replaced) as `{}` when it is not.
pub fn object_field_mut<'a>(obj: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(map) = obj else { unreachable!("made an object above") };
    let field = map.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if !field.is_object() {
        *field = Value::Object(Map::new());
    }
    let Value::Object(inner) = field else { unreachable!("made an object above") };
    inner
}

pub fn set_meta(obj: &mut Value, key: &str, value: Value) {
    metadata_mut(obj).insert(key.to_string(), value);
}

pub fn remove_meta(obj: &mut Value, key: &str) -> Option<Value> {
    metadata_mut(obj).remove(key)
}

/// The current time as Kubernetes writes `metav1.Time`: RFC 3339, UTC, whole seconds.
pub fn now_rfc3339() -> String {
    format_rfc3339(std::time::SystemTime::now())
}

/// `metav1.MicroTime`: RFC 3339, UTC, microseconds.
pub fn now_rfc3339_micro() -> String {
    let t = k8s_openapi::jiff::Timestamp::now();
    t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

pub fn format_rfc3339(t: std::time::SystemTime) -> String {
    let ts = k8s_openapi::jiff::Timestamp::try_from(t).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses `metav1.Time` / `MicroTime` into seconds since the epoch.
pub fn parse_time(s: &str) -> Option<k8s_openapi::jiff::Timestamp> {
    s.parse().ok()
}

/// A new object UID (UUID v4), from the thread's CSPRNG (`rand::rng`, seeded and reseeded from the
/// OS): `Uuid::new_v4` asks the kernel for every UID, one `getrandom` system call per create.
pub fn new_uid() -> String {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string()
}

/// The alphabet of generated name suffixes (no vowels, no confusable digits): `apiserver
/// pkg/storage/names/generate.go` and the ReplicaSet template hash.
pub const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `generateName` + 5 random characters, the prefix cut to leave room (max name length 63).
pub fn generate_name(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let cut: String = prefix.chars().take(58).collect();
    let suffix: String = (0..5).map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char).collect();
    format!("{cut}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_uids_are_distinct_version_4_uuids() {
        let uids: std::collections::HashSet<String> = (0..1000).map(|_| new_uid()).collect();
        assert_eq!(uids.len(), 1000);
        for u in &uids {
            let parsed = uuid::Uuid::parse_str(u).expect("a UUID");
            assert_eq!(parsed.get_version(), Some(uuid::Version::Random), "{u}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{u}");
            assert_eq!(u, &parsed.hyphenated().to_string(), "lower-case, hyphenated");
        }
    }

    #[test]
    fn reads_and_creates_metadata() {
        let mut o = json!({"metadata": {"name": "a", "labels": {"x": "y"}}});
        assert_eq!(name(&o), "a");
        assert_eq!(namespace(&o), "");
        assert_eq!(labels(&o).and_then(|l| l.get("x")), Some(&json!("y")));
        set_meta(&mut o, "namespace", json!("ns"));
        assert_eq!(namespace(&o), "ns");
        let mut weird = json!({"metadata": 3});
        set_meta(&mut weird, "name", json!("b"));
        assert_eq!(name(&weird), "b");
    }

    #[test]
    fn generated_names_have_five_char_suffix() {
        let n = generate_name("web-");
        assert_eq!(n.len(), 9);
        assert!(n[4..].bytes().all(|b| NAME_ALPHABET.contains(&b)));
        assert_eq!(generate_name(&"x".repeat(80)).len(), 63);
    }

    #[test]
    fn times_have_kubernetes_precision() {
        let t = format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_500));
        assert_eq!(t, "1970-01-01T00:00:01Z");
        assert!(parse_time(&t).is_some());
        assert_eq!(now_rfc3339_micro().len(), "2026-01-01T00:00:00.000000Z".len());
    }
}
