//! [`Json`]: an object as the store keeps it, its compact JSON text.
//!
//! A decoded `serde_json::Value` of a Pod takes about 32 KB of heap for 4.2 KB of JSON (every map a
//! B-tree node of eleven slots, every key and string its own allocation); the text is one
//! allocation of its own length. The store holds every current object and a history of changes,
//! so this is most of a large cluster's memory. Readers that send an object (GET, LIST, WATCH in
//! JSON) copy the text as it is, with no serialization; readers that need fields parse it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// An object's JSON text, shared (cloning is a reference count); compact for every object this
/// server wrote. It always parses: it is either serialized from a `Value` ([`Json::encode`]) or
/// checked when read back ([`Json::from_text`], or the etcd backend's read that parses the top
/// level and `metadata` and checks the rest, keeping that text as it was stored).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Json(Arc<str>);

impl Json {
    /// The compact text of `value`.
    pub fn encode(value: &Value) -> Json {
        // Serializing a `Value` into memory cannot fail: its map keys are strings and the writer
        // is a `Vec`. Should it ever, `null` keeps the text well-formed.
        Json(Arc::from(serde_json::to_string(value).unwrap_or_else(|_| String::from("null"))))
    }

    /// Text read back from storage (written by [`Json::encode`] earlier); an error if it is not
    /// JSON. Nesting depth is not limited here: the text was serialized from a value that existed,
    /// whose depth the API's decoders bounded, and the server's own additions (`managedFields`)
    /// may nest a few levels deeper than a request may.
    pub fn from_text(text: String) -> Result<Json, serde_json::Error> {
        parse_unbounded(&text)?;
        Ok(Json(Arc::from(text)))
    }

    /// Text that serde_json serialized from parts it parsed (see `etcd::codec::decode`): valid
    /// JSON by construction, so not parsed again.
    pub(crate) fn serialized(text: String) -> Json {
        Json(Arc::from(text))
    }

    /// The text, ready to send.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The object's fields, decoded.
    pub fn parse(&self) -> Value {
        // The text came from `encode` or passed `from_text`, so it parses; `Null` is unreachable.
        parse_unbounded(&self.0).unwrap_or(Value::Null)
    }

    /// Only the given fields of the object, decoded; everything else is skipped without being
    /// built (a selector reads a few fields of each object it is asked about).
    pub fn parse_fields(&self, fields: &Fields) -> Value {
        let mut de = serde_json::Deserializer::from_str(&self.0);
        de.disable_recursion_limit();
        // Unreachable, as for `parse`.
        serde::de::DeserializeSeed::deserialize(Pick(fields), &mut de).unwrap_or(Value::Null)
    }

    /// Whether `self` and `other` are the same stored text (not merely equal text).
    #[cfg(test)]
    pub fn ptr_eq(&self, other: &Json) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// An object's compact JSON text without its revision: `metadata.resourceVersion` is left out, and
/// the text remembers where its value goes. The SQLite store serializes a write's object this way
/// on the caller's thread, before the revision is known, so its single writer thread only splices
/// the revision in ([`Unversioned::at`]) instead of serializing every object of every batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unversioned {
    text: String,
    /// The byte offset in `text` where the resourceVersion's value goes (after its key and colon);
    /// `None` for a value that is not an object, which takes no resourceVersion.
    hole: Option<usize>,
}

impl Unversioned {
    /// `value` with `metadata.resourceVersion` to be set as [`set_resource_version`] sets it:
    /// `metadata` is created when missing or not an object.
    pub(crate) fn new(mut value: Value) -> Result<Unversioned, serde_json::Error> {
        // Sets a placeholder revision, so `metadata` is what it will be and the key takes its place
        // in the map's order; the placeholder's value is not written.
        set_resource_version(&mut value, 0);
        let Value::Object(fields) = &value else {
            return Ok(Unversioned { text: serde_json::to_string(&value)?, hole: None });
        };
        // The members are written as serde_json's compact serializer writes a map, so the result
        // is what `Json::encode` gives for the value with its resourceVersion set.
        let mut out = Vec::with_capacity(256);
        let mut hole = None;
        out.push(b'{');
        for (i, (key, field)) in fields.iter().enumerate() {
            write_key(&mut out, i, key)?;
            match (key.as_str(), field) {
                ("metadata", Value::Object(metadata)) => {
                    out.push(b'{');
                    for (j, (key, field)) in metadata.iter().enumerate() {
                        write_key(&mut out, j, key)?;
                        if key == "resourceVersion" {
                            hole = Some(out.len());
                        } else {
                            serde_json::to_writer(&mut out, field)?;
                        }
                    }
                    out.push(b'}');
                }
                _ => serde_json::to_writer(&mut out, field)?,
            }
        }
        out.push(b'}');
        // serde_json writes UTF-8 only; the check cannot fail.
        let text = String::from_utf8(out).map_err(|e| serde::ser::Error::custom(e.to_string()))?;
        Ok(Unversioned { text, hole })
    }

    /// The object's text at revision `rev`.
    pub(crate) fn at(&self, rev: crate::Revision) -> Json {
        let Some(hole) = self.hole else { return Json(Arc::from(self.text.as_str())) };
        let (head, tail) = self.text.split_at(hole);
        let rev = rev.to_string();
        let mut text = String::with_capacity(self.text.len() + rev.len() + 2);
        text.push_str(head);
        text.push('"');
        text.push_str(&rev);
        text.push('"');
        text.push_str(tail);
        Json(Arc::from(text))
    }
}

/// Writes the `index`-th member's key of a map being serialized: the separating comma, the quoted
/// key, the colon.
fn write_key(out: &mut Vec<u8>, index: usize, key: &str) -> Result<(), serde_json::Error> {
    if index > 0 {
        out.push(b',');
    }
    serde_json::to_writer(&mut *out, key)?;
    out.push(b':');
    Ok(())
}

/// Which fields of an object to decode ([`Json::parse_fields`]): a tree of keys. The default
/// keeps nothing; [`Fields::add`] adds a field with everything under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// The whole value.
    All,
    /// These keys of an object, each with the fields kept below it.
    Keys(BTreeMap<String, Fields>),
}

impl Default for Fields {
    fn default() -> Fields {
        Fields::Keys(BTreeMap::new())
    }
}

impl Fields {
    /// Adds the field at `path` (keys from the top, such as `["metadata", "labels"]`) with
    /// everything under it; the empty path is the whole object.
    pub fn add<S: AsRef<str>>(&mut self, path: &[S]) {
        let Fields::Keys(keys) = self else { return };
        match path.split_first() {
            None => *self = Fields::All,
            Some((first, rest)) => keys.entry(first.as_ref().to_owned()).or_default().add(rest),
        }
    }
}

/// Decodes a value keeping only `Fields`; what is not kept is skipped (`IgnoredAny`).
struct Pick<'a>(&'a Fields);

impl<'de> serde::de::DeserializeSeed<'de> for Pick<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        use serde::Deserialize;
        match self.0 {
            Fields::All => Value::deserialize(de),
            Fields::Keys(_) => de.deserialize_any(self),
        }
    }
}

impl<'de> serde::de::Visitor<'de> for Pick<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut kept = serde_json::Map::new();
        let Fields::Keys(keys) = self.0 else {
            return Err(serde::de::Error::custom("unreachable: All is decoded whole"));
        };
        while let Some(key) = map.next_key::<String>()? {
            match keys.get(&key) {
                Some(fields) => {
                    let value = map.next_value_seed(Pick(fields))?;
                    kept.insert(key, value);
                }
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(kept))
    }

    // Fields below a value that is not an object are absent: such a value reads as null.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// `text` parsed with no limit on nesting depth (see [`Json::from_text`]).
pub(crate) fn parse_unbounded(text: &str) -> Result<Value, serde_json::Error> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let value = Value::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

#[cfg(test)]
impl From<Value> for Json {
    fn from(value: Value) -> Json {
        Json::encode(&value)
    }
}

/// Compares the decoded object (tests compare stored objects with `json!` literals).
impl PartialEq<Value> for Json {
    fn eq(&self, other: &Value) -> bool {
        self.parse() == *other
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Sets `metadata.resourceVersion` to `rev` as a decimal string, creating `metadata` when it is
/// missing or not an object. A value that is not a JSON object is left as it is (every Kubernetes
/// object is one; the store does not validate). Both backends use it.
pub(crate) fn set_resource_version(value: &mut Value, rev: crate::Revision) {
    let Value::Object(fields) = value else { return };
    let metadata = fields.entry("metadata").or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(metadata) = metadata {
        metadata.insert("resourceVersion".to_owned(), Value::String(rev.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn set_resource_version_cases() {
        let cases = [
            (json!({}), json!({"metadata": {"resourceVersion": "7"}})),
            (json!({"metadata": {"name": "a"}}), json!({"metadata": {"name": "a", "resourceVersion": "7"}})),
            (json!({"metadata": {"resourceVersion": "3"}}), json!({"metadata": {"resourceVersion": "7"}})),
            (json!({"metadata": null, "x": 1}), json!({"metadata": {"resourceVersion": "7"}, "x": 1})),
            (json!({"metadata": "nope"}), json!({"metadata": {"resourceVersion": "7"}})),
            (json!([1, 2]), json!([1, 2])),
            (json!("text"), json!("text")),
        ];
        for (input, want) in cases {
            let mut got = input.clone();
            set_resource_version(&mut got, 7);
            assert_eq!(got, want, "input {input}");
        }
    }

    /// The text with its revision spliced in is, byte for byte, the value with its resourceVersion
    /// set and serialized whole.
    #[test]
    fn unversioned_at_a_revision_is_the_encoded_value() {
        let values = [
            json!({}),
            json!({"metadata": {"name": "a"}}),
            json!({"metadata": {"resourceVersion": "3", "name": "a", "uid": "u"}}),
            json!({"metadata": {"a": 1, "zz": {"resourceVersion": "nested"}}, "spec": {"metadata": {"x": 1}}}),
            json!({"metadata": null, "x": 1}),
            json!({"metadata": "nope", "apiVersion": "v1"}),
            json!({"kind": "ConfigMap", "data": {"k\"ey\n": "va\u{0}l\u{e9}", "résumé": "✓"}, "metadata": {"labels": {"a\\b": "c"}}}),
            json!({"\u{1}": [1, 2.5, null, true], "metadata": {"\"": "q"}}),
            json!([1, 2]),
            json!("text"),
            json!(null),
        ];
        for value in values {
            for rev in [0, 7, 1_234_567_890_123] {
                let mut want = value.clone();
                set_resource_version(&mut want, rev);
                let got = Unversioned::new(value.clone()).expect("serializable").at(rev);
                assert_eq!(got.as_str(), Json::encode(&want).as_str(), "{value} at {rev}");
            }
        }
    }

    #[test]
    fn text_round_trips_the_value() {
        let value =
            json!({"metadata": {"name": "a", "labels": {"app": "web"}}, "spec": {"n": 1.5, "l": [1, null, "x\n"]}});
        let text = Json::encode(&value);
        assert_eq!(
            text.as_str(),
            r#"{"metadata":{"labels":{"app":"web"},"name":"a"},"spec":{"l":[1,null,"x\n"],"n":1.5}}"#
        );
        assert_eq!(text.parse(), value);
        assert_eq!(Json::from_text(text.as_str().to_owned()).expect("valid").parse(), value);
    }

    #[test]
    fn text_that_is_not_json_is_refused() {
        for bad in ["", "{", "{\"a\":1} trailing", "nope"] {
            assert!(Json::from_text(bad.to_owned()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn objects_nested_deeper_than_a_request_may_be_still_read_back() {
        // 200 levels: past serde_json's default limit of 128, which the API's decoders keep.
        let mut value = json!("leaf");
        for _ in 0..200 {
            value = json!({"a": value});
        }
        let text = Json::encode(&value);
        assert!(serde_json::from_str::<Value>(text.as_str()).is_err(), "the default limit refuses it");
        assert_eq!(Json::from_text(text.as_str().to_owned()).expect("read back").parse(), value);
    }

    #[test]
    fn parse_fields_keeps_only_what_is_asked_for() {
        let pod = json!({
            "kind": "Pod",
            "metadata": {"name": "a", "labels": {"app": "web"}, "managedFields": [{"manager": "x"}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}], "hostNetwork": true},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}]},
            "odd": "scalar",
        });
        let text = Json::encode(&pod);
        let pick = |paths: &[&[&str]]| {
            let mut fields = Fields::default();
            for p in paths {
                fields.add(p);
            }
            text.parse_fields(&fields)
        };
        assert_eq!(pick(&[&["metadata", "labels"]]), json!({"metadata": {"labels": {"app": "web"}}}));
        assert_eq!(
            pick(&[&["metadata", "labels"], &["spec", "nodeName"], &["status", "podIPs"]]),
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": "n1"}, "status": {"podIPs": [{"ip": "10.0.0.1"}]}})
        );
        // A path through a scalar or a missing key reads as absent.
        assert_eq!(pick(&[&["odd", "x"], &["spec", "missing"]]), json!({"odd": null, "spec": {}}));
        // A whole field wins over parts of it, in either order.
        assert_eq!(pick(&[&["metadata"], &["metadata", "labels"]]), json!({"metadata": pod["metadata"]}));
        assert_eq!(pick(&[&["metadata", "labels"], &["metadata"]]), json!({"metadata": pod["metadata"]}));
        // The empty path is the whole object.
        assert_eq!(pick(&[&["spec", "nodeName"], &[]]), pod);
        assert_eq!(pick(&[]), json!({}));
    }

    #[test]
    fn clones_share_the_text() {
        let a = Json::encode(&json!({"a": 1}));
        let b = a.clone();
        let c = Json::encode(&json!({"a": 1}));
        assert!(a.ptr_eq(&b));
        assert!(!a.ptr_eq(&c));
        assert_eq!(a, c);
    }
}
