//! One message's protobuf bytes to its JSON form, driven by the schema.
//!
//! What is left out, and why: Go writes every non-pointer field to protobuf, but `encoding/json` drops
//! the `omitempty` ones when they are zero, so a zero scalar on the wire is left out exactly when Go's
//! JSON would leave it out ([`Field::omit_zero`], measured with kubectl by `probe_omitempty.py`):
//! * `""`, `0`, `false` of a non-pointer `omitempty` field (`imagePullPolicy`, `paused`, `hostPort`)
//!   are dropped, so server-side defaulting applies as it would to the same JSON request;
//! * a pointer field set to zero (`replicas: 0`, `allowPrivilegeEscalation: false`,
//!   `hostPath.type: ""`) is on the wire only because it was set, and a field without `omitempty`
//!   (`containerPort: 0`, `httpHeaders[].value: ""`) is always in Go's JSON: both are kept;
//! * in messages kubectl cannot be made to print (see the probe) `""` is dropped, other zeros kept;
//! * a zero `Time`/`MicroTime` (an empty message; Go prints `creationTimestamp`, which is
//!   `omitzero`, not at all and other zero times as `null`) and an empty `RawExtension`/`FieldsV1`.
//!
//! Message fields present on the wire are always kept, even empty (`"strategy": {}`, `"resources": {}`):
//! Go's `omitempty` never drops a struct. Repeated and map elements are kept as they are.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Number, Value};

use super::schema::{
    DURATION, FIELDS_V1, Field, FieldType, INT_OR_STRING, Label, MICRO_TIME, QUANTITY, RAW_EXTENSION, Schema, TIME,
};
use super::wire::{self, Reader, WireError};

/// Deeper nesting than any Kubernetes type has: the input is hostile.
const MAX_DEPTH: usize = 64;

/// Why a message does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("unknown message type {0}")]
    UnknownMessage(String),
    #[error("field {field}: unexpected wire type")]
    WireType { field: String },
    #[error("field {field}: invalid UTF-8")]
    Utf8 { field: String },
    #[error("field {field}: invalid JSON: {reason}")]
    Json { field: String, reason: String },
    #[error("field {field}: timestamp out of range")]
    Time { field: String },
    #[error("message nesting too deep")]
    Depth,
}

/// Decodes a message into a JSON object.
pub fn decode(schema: &Schema, name: &str, buf: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    let mut out = Map::new();
    decode_into(schema, name, buf, &mut out, 0)?;
    Ok(out)
}

fn decode_into(
    schema: &Schema,
    name: &str,
    buf: &[u8],
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::Depth);
    }
    let fields = schema.message(name).ok_or_else(|| DecodeError::UnknownMessage(name.to_string()))?;
    let mut reader = Reader::new(buf);
    while let Some((tag, value)) = reader.next_field()? {
        // Unknown tags (fields newer than the schema) are skipped, as proto2 decoders do.
        let Some(field) = fields.get(&tag) else { continue };
        match field.label {
            Label::Optional => optional(schema, field, value, out, depth)?,
            Label::Repeated => repeated(schema, field, value, out, depth)?,
            Label::Map => map_entry(schema, field, value, out, depth)?,
            Label::Inline => match &field.ty {
                FieldType::Message(name) => decode_into(schema, name, bytes_of(field, value)?, out, depth + 1)?,
                _ => return Err(DecodeError::WireType { field: name.to_string() }),
            },
        }
    }
    Ok(())
}

fn optional(
    schema: &Schema,
    field: &Field,
    value: wire::Value<'_>,
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    let decoded = match &field.ty {
        FieldType::Message(name) => {
            let bytes = bytes_of(field, value)?;
            if super::schema::SPECIAL.contains(&name.as_str()) {
                special(name, &field.json, bytes)?
            } else {
                // A message seen twice merges, as protobuf specifies.
                let mut inner = match out.remove(&field.json) {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                decode_into(schema, name, bytes, &mut inner, depth + 1)?;
                Some(Value::Object(inner))
            }
        }
        ty => {
            let v = scalar(field, ty, value)?;
            let empty = field.omit_zero
                && match &v {
                    Value::String(s) => s.is_empty(),
                    Value::Bool(b) => !b,
                    Value::Number(n) => n.as_f64() == Some(0.0),
                    _ => false,
                };
            (!empty).then_some(v)
        }
    };
    match decoded {
        Some(v) => out.insert(field.json.clone(), v),
        None => out.remove(&field.json),
    };
    Ok(())
}

fn repeated(
    schema: &Schema,
    field: &Field,
    value: wire::Value<'_>,
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    let slot = out.entry(field.json.clone()).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    let Value::Array(items) = slot else { return Ok(()) };
    match (&field.ty, value) {
        (FieldType::Message(name), v) => items.push(element(schema, name, &field.json, bytes_of(field, v)?, depth)?),
        // Packed numbers: one length-delimited record holding many values.
        (ty @ (FieldType::Int32 | FieldType::Int64 | FieldType::Bool), wire::Value::Bytes(b)) => {
            let mut r = Reader::new(b);
            while !r.is_empty() {
                items.push(scalar(field, ty, wire::Value::Varint(r.varint()?))?);
            }
        }
        (FieldType::Double, wire::Value::Bytes(b)) => {
            for chunk in b.chunks(8) {
                let bits = u64::from_le_bytes(chunk.try_into().map_err(|_| WireError::Truncated)?);
                items.push(scalar(field, &FieldType::Double, wire::Value::Fixed64(bits))?);
            }
        }
        (ty, v) => items.push(scalar(field, ty, v)?),
    }
    Ok(())
}

/// A repeated or map element of message type; a special type's zero is kept as Go prints it.
fn element(schema: &Schema, name: &str, json: &str, bytes: &[u8], depth: usize) -> Result<Value, DecodeError> {
    if super::schema::SPECIAL.contains(&name) {
        return Ok(special(name, json, bytes)?.unwrap_or(Value::Null));
    }
    let mut inner = Map::new();
    decode_into(schema, name, bytes, &mut inner, depth + 1)?;
    Ok(Value::Object(inner))
}

fn map_entry(
    schema: &Schema,
    field: &Field,
    value: wire::Value<'_>,
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    let mut reader = Reader::new(bytes_of(field, value)?);
    let mut key = String::new();
    let mut val: Option<Value> = None;
    while let Some((tag, v)) = reader.next_field()? {
        match tag {
            1 => key = utf8(field, bytes_of(field, v)?)?,
            2 => {
                val = Some(match &field.ty {
                    FieldType::Message(name) => element(schema, name, &field.json, bytes_of(field, v)?, depth)?,
                    ty => scalar(field, ty, v)?,
                })
            }
            _ => {}
        }
    }
    let val = match (val, &field.ty) {
        (Some(v), _) => v,
        (None, FieldType::Message(name)) => element(schema, name, &field.json, &[], depth)?,
        (None, ty) => zero(ty),
    };
    let slot = out.entry(field.json.clone()).or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = slot {
        m.insert(key, val);
    }
    Ok(())
}

fn zero(ty: &FieldType) -> Value {
    match ty {
        FieldType::String | FieldType::Bytes => Value::String(String::new()),
        FieldType::Bool => Value::Bool(false),
        _ => Value::from(0),
    }
}

fn bytes_of<'a>(field: &Field, value: wire::Value<'a>) -> Result<&'a [u8], DecodeError> {
    match value {
        wire::Value::Bytes(b) => Ok(b),
        _ => Err(DecodeError::WireType { field: field.json.clone() }),
    }
}

fn utf8(field: &Field, bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Utf8 { field: field.json.clone() })
}

/// A scalar field's JSON value.
fn scalar(field: &Field, ty: &FieldType, value: wire::Value<'_>) -> Result<Value, DecodeError> {
    let wrong = || DecodeError::WireType { field: field.json.clone() };
    Ok(match (ty, value) {
        // int32 is sign-extended to 64 bits on the wire; truncation recovers it.
        (FieldType::Int32, wire::Value::Varint(v)) => Value::from(v as i32),
        (FieldType::Int64, wire::Value::Varint(v)) => Value::from(v as i64),
        (FieldType::Bool, wire::Value::Varint(v)) => Value::Bool(v != 0),
        (FieldType::Double, wire::Value::Fixed64(bits)) => {
            Number::from_f64(f64::from_bits(bits)).map(Value::Number).ok_or_else(wrong)?
        }
        (FieldType::String, wire::Value::Bytes(b)) => Value::String(utf8(field, b)?),
        (FieldType::Bytes, wire::Value::Bytes(b)) => Value::String(base64(b)),
        _ => return Err(wrong()),
    })
}

/// The varint and bytes fields of a small special message, by tag, in wire order.
struct Fields<'a> {
    ints: Vec<(u32, u64)>,
    blobs: Vec<(u32, &'a [u8])>,
}

fn fields_of<'a>(json: &str, bytes: &'a [u8]) -> Result<Fields<'a>, DecodeError> {
    let mut out = Fields { ints: Vec::new(), blobs: Vec::new() };
    let mut r = Reader::new(bytes);
    while let Some((tag, v)) = r.next_field()? {
        match v {
            wire::Value::Varint(n) => out.ints.push((tag, n)),
            wire::Value::Bytes(b) => out.blobs.push((tag, b)),
            _ => return Err(DecodeError::WireType { field: json.to_string() }),
        }
    }
    Ok(out)
}

fn last<T: Copy>(items: &[(u32, T)], tag: u32) -> Option<T> {
    items.iter().rev().find(|(t, _)| *t == tag).map(|(_, v)| *v)
}

/// The JSON of a special message; `None` when Go leaves it out (zero time, empty raw JSON).
fn special(name: &str, json: &str, bytes: &[u8]) -> Result<Option<Value>, DecodeError> {
    let Fields { ints, blobs } = fields_of(json, bytes)?;
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Utf8 { field: json.to_string() });
    Ok(match name {
        TIME | MICRO_TIME => {
            // Go marshals the zero time as an empty message; the Unix epoch has `seconds: 0` written.
            if bytes.is_empty() {
                return Ok(None);
            }
            let seconds = last(&ints, 1).unwrap_or(0) as i64;
            let nanos = last(&ints, 2).unwrap_or(0) as i32;
            Some(Value::String(timestamp(json, seconds, nanos, name == MICRO_TIME)?))
        }
        DURATION => Some(Value::String(go_duration(last(&ints, 1).unwrap_or(0) as i64))),
        QUANTITY => {
            let s = last(&blobs, 1).map(text).transpose()?.unwrap_or_default();
            Some(Value::String(if s.is_empty() { "0".to_string() } else { s }))
        }
        INT_OR_STRING => {
            if last(&ints, 1) == Some(1) {
                Some(Value::String(last(&blobs, 3).map(text).transpose()?.unwrap_or_default()))
            } else {
                Some(Value::from(last(&ints, 2).unwrap_or(0) as i32))
            }
        }
        RAW_EXTENSION | FIELDS_V1 => match last(&blobs, 1) {
            None | Some([]) => None,
            Some(raw) => Some(
                serde_json::from_slice(raw)
                    .map_err(|e| DecodeError::Json { field: json.to_string(), reason: e.to_string() })?,
            ),
        },
        other => return Err(DecodeError::UnknownMessage(other.to_string())),
    })
}

/// `metav1.Time` (RFC 3339, seconds) or `metav1.MicroTime` (RFC 3339, six fractional digits), in UTC.
fn timestamp(json: &str, seconds: i64, nanos: i32, micro: bool) -> Result<String, DecodeError> {
    let t = Timestamp::from_second(seconds).map_err(|_| DecodeError::Time { field: json.to_string() })?;
    let whole = t.to_string();
    if micro {
        let base = whole.trim_end_matches('Z');
        Ok(format!("{base}.{:06}Z", nanos.clamp(0, 999_999_999) / 1000))
    } else {
        Ok(whole)
    }
}

/// Go's `time.Duration.String()`: `1h0m0s`, `1m30s`, `1.5s`, `500ms`, `1µs`, `100ns`, `0s`.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 3))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 6))
    } else {
        let secs = u / 1_000_000_000;
        let sub = u % 1_000_000_000;
        let s = format!("{}{}s", secs % 60, frac_digits(sub, 9));
        let mins = secs / 60;
        if mins == 0 {
            s
        } else if mins < 60 {
            format!("{mins}m{s}")
        } else {
            format!("{}h{}m{s}", mins / 60, mins % 60)
        }
    };
    format!("{sign}{body}")
}

/// `v / 10^prec` with its fraction, trailing zeros dropped (Go's `fmtFrac` + `fmtInt`).
fn frac(v: u64, prec: u32) -> String {
    let p = 10u64.pow(prec);
    format!("{}{}", v / p, frac_digits(v % p, prec))
}

fn frac_digits(rem: u64, prec: u32) -> String {
    if rem == 0 {
        return String::new();
    }
    let digits = format!("{rem:0width$}", width = prec as usize);
    format!(".{}", digits.trim_end_matches('0'))
}

/// Standard base64 with padding, as Go's `encoding/json` writes `[]byte`.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_strings() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (500_000_000, "500ms"),
            (1_500_000_000, "1.5s"),
            (61_000_000_000, "1m1s"),
            (3_600_000_000_000, "1h0m0s"),
            (5_400_000_000_000, "1h30m0s"),
            (-90_000_000_000, "-1m30s"),
            (100 * 3_600_000_000_000 + 1, "100h0m0.000000001s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(go_duration(nanos), want, "{nanos}");
        }
    }

    #[test]
    fn base64_matches_go() {
        let cases: [(&[u8], &str); 5] =
            [(b"", ""), (b"b", "Yg=="), (b"hi", "aGk="), (b"hi\n", "aGkK"), (&[0xff, 0x00], "/wA=")];
        for (input, want) in cases {
            assert_eq!(base64(input), want);
        }
    }

    #[test]
    fn timestamps_in_go_form() {
        assert_eq!(timestamp("t", 1_700_000_000, 123_456_789, false).as_deref(), Ok("2023-11-14T22:13:20Z"));
        assert_eq!(timestamp("t", 1_700_000_000, 123_456_789, true).as_deref(), Ok("2023-11-14T22:13:20.123456Z"));
        assert_eq!(timestamp("t", 0, 0, true).as_deref(), Ok("1970-01-01T00:00:00.000000Z"));
    }

    #[test]
    fn special_messages() {
        let cases: [(&str, &[u8], Option<Value>); 10] = [
            (TIME, &[], None),
            (TIME, &[0x08, 0x00, 0x10, 0x00], Some(Value::from("1970-01-01T00:00:00Z"))),
            (TIME, &[0x08, 0x80, 0xe2, 0xcf, 0xaa, 0x06], Some(Value::from("2023-11-14T22:13:20Z"))),
            (QUANTITY, &[0x0a, 0x04, b'5', b'0', b'0', b'm'], Some(Value::from("500m"))),
            (QUANTITY, &[], Some(Value::from("0"))),
            (INT_OR_STRING, &[0x08, 0x00, 0x10, 0x50, 0x1a, 0x00], Some(Value::from(80))),
            (INT_OR_STRING, &[0x08, 0x01, 0x10, 0x00, 0x1a, 0x03, b'2', b'5', b'%'], Some(Value::from("25%"))),
            (DURATION, &[0x08, 0x80, 0xc0, 0xe2, 0x85, 0xe3, 0x68], Some(Value::from("1h0m0s"))),
            (RAW_EXTENSION, &[0x0a, 0x07, b'{', b'"', b'a', b'"', b':', b'1', b'}'], Some(serde_json::json!({"a": 1}))),
            (FIELDS_V1, &[], None),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(special(name, "f", bytes), Ok(want), "{name} {bytes:?}");
        }
        assert!(matches!(special(RAW_EXTENSION, "f", &[0x0a, 0x01, b'{']), Err(DecodeError::Json { .. })));
    }
}
