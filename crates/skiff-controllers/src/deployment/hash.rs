//! The `pod-template-hash`: the short, stable name suffix of a Deployment's ReplicaSets
//! (`controller.ComputeHash` in k/k `pkg/controller/controller_utils.go`).
//!
//! Upstream hashes a Go deep-print of the `PodTemplateSpec` with FNV-32a, feeds the collision count in
//! as 8 little-endian bytes, prints the `u32` in decimal and maps each digit through
//! `rand.SafeEncodeString`. Go's struct dump cannot be reproduced from Rust, so Skiff hashes the
//! *canonical JSON* of the template instead (keys sorted, nulls and empty lists dropped, the same
//! normalisation the template equality uses). The shape is upstream's: 1 to 10 characters of the
//! alphabet `bcdfghjklmnpqrstvwxz2456789` (in practice only the ten that digits map to).
//!
//! The value must never change between Skiff versions: a different hash for the same template would
//! make a restarted controller think every Deployment has a new template. The tests pin constants.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// `k8s.io/apimachinery/pkg/util/rand.alphanums`: no vowels, no look-alikes.
const SAFE_ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

/// Object keys whose value is a Go *map*: an empty one equals a missing one (Go's semantic equality
/// treats nil and empty maps alike), whereas an empty *struct* (`emptyDir: {}`) is meaningful.
const MAP_KEYS: &[&str] = &["labels", "annotations", "nodeSelector", "matchLabels", "limits", "requests"];

/// The hash of a template with the Deployment's `status.collisionCount`.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    hash_value(&normalize(&value), collision_count)
}

/// The hash of an already normalised template value.
pub fn hash_value(normalized: &Value, collision_count: Option<i32>) -> String {
    let mut text = String::new();
    write_canonical(normalized, &mut text);
    let mut h = Fnv32a::new();
    h.write(text.as_bytes());
    if let Some(c) = collision_count {
        // As upstream: PutUint32 into an 8-byte buffer, all 8 bytes hashed.
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h.write(&buf);
    }
    safe_encode(&h.sum().to_string())
}

/// `rand.SafeEncodeString`: each byte of `s` mapped to `SAFE_ALPHABET[byte % 27]`.
pub fn safe_encode(s: &str) -> String {
    s.bytes().map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()])).collect()
}

/// Drops what Go's semantic equality does not see: `null` fields, empty lists and empty maps.
pub fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let n = normalize(v);
                let empty = match &n {
                    Value::Null => true,
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty() && MAP_KEYS.contains(&k.as_str()),
                    _ => false,
                };
                if !empty {
                    out.insert(k.clone(), n);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// Compact JSON with object keys in byte order, whatever the map implementation's order.
pub fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(&Value::String((*k).clone()), out);
                out.push(':');
                if let Some(v) = m.get(*k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        // Strings, numbers, booleans: serde_json's own compact form.
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// FNV-1a, 32 bits (`hash/fnv.New32a`).
struct Fnv32a(u32);

impl Fnv32a {
    fn new() -> Fnv32a {
        Fnv32a(0x811c_9dc5)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }

    fn sum(&self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]}
        }))
        .expect("template")
    }

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        for (input, want) in [("", 0x811c9dc5u32), ("a", 0xe40c292c), ("foobar", 0xbf9cf968)] {
            let mut h = Fnv32a::new();
            h.write(input.as_bytes());
            assert_eq!(h.sum(), want, "{input:?}");
        }
    }

    #[test]
    fn safe_encode_maps_digits_like_upstream() {
        // '0' is byte 48, 48 % 27 = 21 → '4'; '9' is 57 → 3 → 'f'.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn hash_is_a_pinned_constant() {
        // These constants must never change: a new value would roll out every Deployment again.
        assert_eq!(pod_template_hash(&template("nginx:1.25"), None), "59bd5955b7");
        assert_eq!(pod_template_hash(&template("nginx:1.25"), Some(1)), "5f745cc8bb");
        assert_eq!(pod_template_hash(&template("nginx:1.26"), None), "65b7547b54");
    }

    #[test]
    fn hash_shape_and_sensitivity() {
        let a = pod_template_hash(&template("nginx:1.25"), None);
        assert!((1..=10).contains(&a.len()));
        assert!(a.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        assert_eq!(a, pod_template_hash(&template("nginx:1.25"), None));
        assert_ne!(a, pod_template_hash(&template("nginx:1.26"), None));
        assert_ne!(a, pod_template_hash(&template("nginx:1.25"), Some(0)));
        assert_ne!(
            pod_template_hash(&template("nginx:1.25"), Some(0)),
            pod_template_hash(&template("nginx:1.25"), Some(1))
        );
    }

    #[test]
    fn key_order_and_empty_values_do_not_change_the_hash() {
        let a: Value = json!({"b": 1, "a": {"labels": {}, "x": null, "l": []}});
        let b: Value = json!({"a": {}, "b": 1});
        assert_eq!(hash_value(&normalize(&a), None), hash_value(&normalize(&b), None));
        // An empty struct is kept: `emptyDir: {}` is not the same as no volume source.
        assert_eq!(normalize(&json!({"emptyDir": {}})), json!({"emptyDir": {}}));
    }

    #[test]
    fn canonical_json_sorts_keys_and_escapes_strings() {
        let mut s = String::new();
        write_canonical(&json!({"z": [1, "a\"b"], "a": true}), &mut s);
        assert_eq!(s, r#"{"a":true,"z":[1,"a\"b"]}"#);
    }
}
