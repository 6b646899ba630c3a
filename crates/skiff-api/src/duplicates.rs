//! Duplicate fields in request bodies, found while the body is decoded (the apiserver's strict
//! decoding, `sigs.k8s.io/json` `UnmarshalStrict`: `duplicate field "spec.replicas"`).
//!
//! [`Decoded`] builds the body's `Value` as `serde_json::Value`'s own visitor does (the last of
//! repeated keys wins, as in Go) and notes each repeated key with its path. Any serde deserializer
//! drives it: JSON, and YAML read with repeated keys passed through. The notes cost a counter per
//! key; a path is rendered only for a repeated key.
//!
//! Go reports strict errors in the order it meets them. Objects here are ordered by key, not by the
//! document, so placing unknown fields among the duplicates needs the document order of their
//! keys: [`KeyOrder`] is a second reading for that, done only for a body that repeated a key.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// Go keeps at most this many strict errors (`saveStrictError`).
const MAX_STRICT_ERRORS: usize = 100;

/// A decoded body and the keys it repeated.
#[derive(Debug)]
pub struct Decoded {
    pub value: Value,
    pub duplicates: Duplicates,
}

/// The repeated keys of a body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Duplicates {
    /// Each repetition: the key's path (`spec.replicas`, `spec.containers[0].name`,
    /// `metadata.labels.app`) and the ordinal of the repeated key among all keys of the document.
    found: Vec<(String, usize)>,
    /// The ordinal of the first occurrence of every key path, from [`KeyOrder`]; empty unless set
    /// with [`Duplicates::set_order`].
    first_seen: HashMap<String, usize>,
}

/// The document order of a body's keys: the ordinal of each key path's first occurrence.
#[derive(Debug, Default)]
pub struct KeyOrder(HashMap<String, usize>);

impl Duplicates {
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The paths of the repeated keys, in document order, each once.
    pub fn paths(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (path, _) in &self.found {
            if !out.contains(&path.as_str()) {
                out.push(path);
            }
        }
        out
    }

    /// Records where each key path first occurs, to order unknown fields among the duplicates.
    pub fn set_order(&mut self, order: KeyOrder) {
        self.first_seen = order.0;
    }

    /// The strict errors of an object body, as the apiserver's decoder meets them: the `unknown`
    /// fields ([`crate::schema::check`]) and the duplicates of known fields (a key under an unknown
    /// field is skipped by Go's decoder, and a repeated unknown key is reported once, as unknown),
    /// in document order, each once, at most 100.
    pub fn object_errors(&self, unknown: &[String]) -> Vec<String> {
        let unknown_texts = unknown.iter().map(|f| unknown_field_text(f));
        if self.found.is_empty() {
            return dedup(unknown_texts.collect());
        }
        let under_unknown = |path: &str| unknown.iter().any(|u| is_within(path, u));
        let mut found: Vec<(usize, String)> =
            unknown.iter().map(|u| self.first_seen.get(u).copied().unwrap_or(usize::MAX)).zip(unknown_texts).collect();
        found.extend(
            self.found
                .iter()
                .filter(|(path, _)| !under_unknown(path))
                .map(|(path, at)| (*at, duplicate_field_text(path))),
        );
        found.sort_by_key(|(at, _)| *at);
        dedup(found.into_iter().map(|(_, text)| text).collect())
    }

    /// The strict errors of a patch: the patch's own duplicates (each prefixed, as `json patch ` for
    /// a JSON patch), then the unknown fields of the patched object (`patch.go`).
    pub fn patch_errors(&self, prefix: &str, unknown: &[String]) -> Vec<String> {
        let dups = self.paths().into_iter().map(|p| format!("{prefix}{}", duplicate_field_text(p)));
        dedup(dups.chain(unknown.iter().map(|f| unknown_field_text(f))).collect())
    }
}

/// Whether `path` is `field` or lies under it (`spec.foo.bar`, `spec.foo[0]` under `spec.foo`).
fn is_within(path: &str, field: &str) -> bool {
    path.strip_prefix(field).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Each text once, in first-seen order, at most [`MAX_STRICT_ERRORS`].
fn dedup(texts: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(texts.len());
    for t in texts {
        if out.len() == MAX_STRICT_ERRORS {
            break;
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// `unknown field "spec.foo"`: one strict error, also the text of its `Warning` header.
pub fn unknown_field_text(path: &str) -> String {
    format!("unknown field {path:?}")
}

/// `duplicate field "spec.replicas"`.
pub fn duplicate_field_text(path: &str) -> String {
    format!("duplicate field {path:?}")
}

// ---------------------------------------------------------------------------------------------
// The recording visitor
// ---------------------------------------------------------------------------------------------

/// What a reading notes besides the value.
#[derive(Default)]
struct Recorder {
    /// Keys read so far.
    keys: usize,
    found: Vec<(String, usize)>,
    /// `Some` when reading for [`KeyOrder`]: the first ordinal of every key path.
    order: Option<HashMap<String, usize>>,
}

/// One step of the path from the root to the value being read.
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

struct Step<'a> {
    up: Option<&'a Step<'a>>,
    seg: Seg<'a>,
}

/// `spec.template.spec.containers[0].name`, `metadata.labels.app`: keys joined by dots, list
/// indexes in brackets (`appendStrictFieldStackKey` / `appendStrictFieldStackIndex`).
fn render(at: &Step<'_>) -> String {
    let mut segs = vec![&at.seg];
    let mut up = at.up;
    while let Some(step) = up {
        segs.push(&step.seg);
        up = step.up;
    }
    let mut path = String::new();
    for seg in segs.into_iter().rev() {
        match seg {
            Seg::Key(k) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Seg::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

/// Reads one value at `at`, noting into `rec`.
#[derive(Clone, Copy)]
struct Seed<'a> {
    at: Option<&'a Step<'a>>,
    rec: &'a RefCell<Recorder>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Number::from_i128(v).map_or_else(|| float(v as f64), Value::Number))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(Number::from_u128(v).map_or_else(|| float(v as f64), Value::Number))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            let step = Step { up: self.at, seg: Seg::Index(items.len()) };
            match seq.next_element_seed(Seed { at: Some(&step), rec: self.rec })? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let ordinal = self.note_key(&key);
            let step = Step { up: self.at, seg: Seg::Key(&key) };
            let value = map.next_value_seed(Seed { at: Some(&step), rec: self.rec })?;
            match out.entry(key) {
                Entry::Vacant(e) => {
                    e.insert(value);
                }
                Entry::Occupied(mut e) => {
                    let path = render(&Step { up: self.at, seg: Seg::Key(e.key()) });
                    self.rec.borrow_mut().found.push((path, ordinal));
                    e.insert(value);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

impl Seed<'_> {
    /// Counts a key; when reading for [`KeyOrder`], records its path's first ordinal.
    fn note_key(&self, key: &str) -> usize {
        let mut rec = self.rec.borrow_mut();
        let ordinal = rec.keys;
        rec.keys += 1;
        if let Some(order) = rec.order.as_mut() {
            order.entry(render(&Step { up: self.at, seg: Seg::Key(key) })).or_insert(ordinal);
        }
        ordinal
    }
}

/// A float as `serde_json::Value` holds it (`null` for NaN and infinities).
fn float(v: f64) -> Value {
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn read<'de, D: Deserializer<'de>>(d: D, rec: Recorder) -> Result<(Value, Recorder), D::Error> {
    let rec = RefCell::new(rec);
    let value = Seed { at: None, rec: &rec }.deserialize(d)?;
    Ok((value, rec.into_inner()))
}

impl<'de> Deserialize<'de> for Decoded {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (value, rec) = read(d, Recorder::default())?;
        Ok(Decoded { value, duplicates: Duplicates { found: rec.found, first_seen: HashMap::new() } })
    }
}

impl<'de> Deserialize<'de> for KeyOrder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (_, rec) = read(d, Recorder { order: Some(HashMap::new()), ..Recorder::default() })?;
        Ok(KeyOrder(rec.order.unwrap_or_default()))
    }
}

/// Decodes a JSON body, noting its repeated keys (and, when there are some, the order of its keys).
pub fn from_json(body: &[u8]) -> Result<Decoded, serde_json::Error> {
    let mut decoded: Decoded = serde_json::from_slice(body)?;
    if !decoded.duplicates.is_empty() {
        decoded.duplicates.set_order(serde_json::from_slice(body)?);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(text: &str) -> Decoded {
        from_json(text.as_bytes()).expect("valid JSON")
    }

    #[test]
    fn builds_the_same_value_as_serde_json() {
        let text = r#"{"a": [1, -2, 3.5, 18446744073709551615, true, null, "s", {"b": {}}], "c": {"d": [[]]}, "e": 1.5e300, "f": -0.0}"#;
        let want: Value = serde_json::from_str(text).expect("serde_json reads it");
        let got = decode(text);
        assert_eq!(got.value, want);
        assert!(got.duplicates.is_empty());
    }

    #[test]
    fn repeated_keys_are_noted_with_their_paths_and_the_last_wins() {
        let got = decode(
            r#"{"spec": {"unknownField": "foo", "replicas": 2, "replicas": 3,
                "template": {"spec": {"containers": [{"name": "a", "name": "b"}]}}},
                "metadata": {"labels": {"app": "x", "app": "y"}}}"#,
        );
        assert_eq!(got.value["spec"]["replicas"], json!(3));
        assert_eq!(got.value["spec"]["template"]["spec"]["containers"][0]["name"], json!("b"));
        assert_eq!(
            got.duplicates.paths(),
            ["spec.replicas", "spec.template.spec.containers[0].name", "metadata.labels.app"]
        );
    }

    #[test]
    fn object_errors_interleave_unknown_and_duplicate_fields_in_document_order() {
        // The e2e body of "should detect unknown and duplicate fields of a typed object".
        let got = decode(r#"{"spec": {"unknownField": "foo", "replicas": 2, "replicas": 3, "zeta": 1}}"#);
        let unknown = vec!["spec.unknownField".to_string(), "spec.zeta".to_string()];
        assert_eq!(
            got.duplicates.object_errors(&unknown),
            [
                r#"unknown field "spec.unknownField""#,
                r#"duplicate field "spec.replicas""#,
                r#"unknown field "spec.zeta""#
            ]
        );
        // Keys under an unknown field are not decoded, and a repeated unknown key is unknown once.
        let got = decode(r#"{"spec": {"foo": {"a": 1, "a": 2}, "foo": 1, "paused": true, "paused": false}}"#);
        assert_eq!(
            got.duplicates.object_errors(&["spec.foo".to_string()]),
            [r#"unknown field "spec.foo""#, r#"duplicate field "spec.paused""#]
        );
        // A key repeated three times is reported once.
        let got = decode(r#"{"a": 1, "a": 2, "a": 3}"#);
        assert_eq!(got.duplicates.object_errors(&[]), [r#"duplicate field "a""#]);
        // Without duplicates: the unknown fields as given.
        assert_eq!(
            Duplicates::default().object_errors(&["b".to_string(), "a".to_string()]),
            [r#"unknown field "b""#, r#"unknown field "a""#]
        );
    }

    #[test]
    fn patch_errors_put_the_patch_duplicates_first() {
        let got = decode(r#"[{"op": "add", "op": "replace", "path": "/spec/replicas", "value": 1}]"#);
        assert_eq!(
            got.duplicates.patch_errors("json patch ", &["spec.foo".to_string()]),
            [r#"json patch duplicate field "[0].op""#, r#"unknown field "spec.foo""#]
        );
    }

    #[test]
    fn any_deserializer_drives_it() {
        let mut de = serde_json::Deserializer::from_str(r#"{"a": {"b": 1, "b": 2}}"#);
        let got = Decoded::deserialize(&mut de).expect("decodes");
        assert_eq!(got.value, json!({"a": {"b": 2}}));
        assert_eq!(got.duplicates.paths(), ["a.b"]);
    }
}
