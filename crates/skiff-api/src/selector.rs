//! Label and field selectors, as list, watch and delete-collection requests carry them.
//!
//! Label selectors follow `apimachinery pkg/labels/selector.go`: the same lexer and parser (so syntax
//! errors read the same), the same canonical string (requirements sorted by key, set values sorted),
//! and the same matching rules. Field selectors follow `pkg/fields/selector.go` plus the per-kind
//! field-label conversions of k/k (`pkg/apis/core/v1/conversion.go`) and the selectable fields each
//! registry strategy exposes (`GetAttrs`).

use std::fmt;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::resource::ResourceInfo;
use crate::validation::{is_qualified_name, is_valid_label_value};

/// The operator of one label requirement (`selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One `key op values` term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    /// Sorted and de-duplicated, as `sets.String.List()` gives them.
    values: Vec<String>,
}

impl Requirement {
    /// `labels.NewRequirement`: checks the key, the values and their count for the operator.
    fn new(key: &str, op: Op, mut values: Vec<String>) -> Result<Requirement, String> {
        let mut errs = Vec::new();
        let key_errs = is_qualified_name(key);
        if !key_errs.is_empty() {
            errs.push(format!("key: Invalid value: {key:?}: {}", key_errs.join("; ")));
        }
        let count_err = match op {
            Op::In | Op::NotIn if values.is_empty() => Some("for 'in', 'notin' operators, values set can't be empty"),
            Op::Equals | Op::DoubleEquals | Op::NotEquals if values.len() != 1 => {
                Some("exact-match compatibility requires one single value")
            }
            Op::Exists | Op::DoesNotExist if !values.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            Op::GreaterThan | Op::LessThan if values.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            _ => None,
        };
        if let Some(msg) = count_err {
            errs.push(format!("values: Invalid value: {}: {msg}", go_string_slice(&values)));
        }
        if matches!(op, Op::GreaterThan | Op::LessThan) {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(format!(
                        "values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                    ));
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = is_valid_label_value(v);
            if !value_errs.is_empty() {
                errs.push(format!("values[{i}][{key}]: Invalid value: {v:?}: {}", value_errs.join("; ")));
            }
        }
        match errs.len() {
            0 => {
                values.sort();
                values.dedup();
                Ok(Requirement { key: key.to_string(), op, values })
            }
            1 => Err(errs.remove(0)),
            _ => Err(format!("[{}]", errs.join(", "))),
        }
    }

    /// `Requirement.Matches`.
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels.and_then(|l| l.get(&self.key)).map(|v| v.as_str().unwrap_or_default());
        match self.op {
            Op::Equals | Op::DoubleEquals | Op::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotEquals | Op::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::GreaterThan | Op::LessThan => {
                let (Some(have), [want]) = (value.and_then(|v| v.parse::<i64>().ok()), self.values.as_slice()) else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else { return false };
                if self.op == Op::GreaterThan { have > want } else { have < want }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::DoesNotExist => return write!(f, "!{}", self.key),
            Op::Exists => return write!(f, "{}", self.key),
            Op::Equals => "=",
            Op::DoubleEquals => "==",
            Op::NotEquals => "!=",
            Op::In => " in ",
            Op::NotIn => " notin ",
            Op::GreaterThan => ">",
            Op::LessThan => "<",
        };
        let values = self.values.join(",");
        if matches!(self.op, Op::In | Op::NotIn) {
            write!(f, "{}{op}({values})", self.key)
        } else {
            write!(f, "{}{op}{values}", self.key)
        }
    }
}

/// Go's `%#v` of a `[]string`, as `field.Invalid` prints a bad value list.
fn go_string_slice(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// A parsed label selector: the AND of its requirements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// `labels.Nothing()`: what a null `metav1.LabelSelector` converts to; matches no object.
    nothing: bool,
}

impl LabelSelector {
    /// Parses the `labelSelector` query syntax. Errors are 400 BadRequest with apimachinery's message
    /// (`unable to parse requirement: found ')', expected: in, notin, =, ==, !=, gt, lt`).
    #[allow(clippy::result_large_err, reason = "ApiError is the API's error type everywhere; callers return it as is")]
    pub fn parse(s: &str) -> Result<LabelSelector, ApiError> {
        let mut requirements = Parser::new(s).parse().map_err(ApiError::bad_request)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements, nothing: false })
    }

    /// The selector that matches every object.
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// The selector that matches no object (`labels.Nothing()`).
    pub fn nothing() -> LabelSelector {
        LabelSelector { requirements: Vec::new(), nothing: true }
    }

    /// True for the match-everything selector (as `Selector.Empty()`; the nothing-selector is not empty).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// `metav1.LabelSelectorAsSelector`: `matchLabels` become `key=value`, `matchExpressions` become
    /// set-based requirements. `null` is the nothing-selector, `{}` matches everything.
    pub fn from_label_selector(sel: &Value) -> Result<LabelSelector, String> {
        let Some(obj) = sel.as_object() else {
            return if sel.is_null() { Ok(LabelSelector::nothing()) } else { Err("selector is not an object".into()) };
        };
        let match_labels = obj.get("matchLabels").and_then(Value::as_object);
        let exprs = obj.get("matchExpressions").and_then(Value::as_array);
        let mut requirements = Vec::new();
        for (k, v) in match_labels.into_iter().flatten() {
            let v = v.as_str().unwrap_or_default().to_string();
            requirements.push(Requirement::new(k, Op::Equals, vec![v])?);
        }
        for expr in exprs.into_iter().flatten() {
            let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
            let operator = expr.get("operator").and_then(Value::as_str).unwrap_or_default();
            let op = match operator {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            let values: Vec<String> = expr
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect())
                .unwrap_or_default();
            requirements.push(Requirement::new(key, op, values)?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements, nothing: false })
    }
}

/// The canonical string: requirements sorted by key and joined by `,`; `""` for both the everything-
/// and the nothing-selector (as `Selector.String()`; this is what `Scale.status.selector` carries).
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// `metav1.FormatLabelSelector`: the selector string, `"<none>"` when it is empty (a null or `{}`
/// selector) and `"<error>"` when it does not convert. kubectl's describe and wide output use it.
pub fn selector_string(sel: &Value) -> String {
    match LabelSelector::from_label_selector(sel) {
        Err(_) => "<error>".to_string(),
        Ok(s) => {
            let text = s.to_string();
            if text.is_empty() { "<none>".to_string() } else { text }
        }
    }
}

/// Lexer tokens of the label selector grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Splits the input into tokens exactly as the Go lexer does (bytes, longest special-symbol match).
fn lex(s: &str) -> Vec<(Token, String)> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < b.len() && is_space(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            out.push((Token::EndOfString, String::new()));
            return out;
        }
        let start = pos;
        if is_special(b[pos]) {
            let mut last: Option<(Token, usize)> = None;
            while pos < b.len() && is_special(b[pos]) {
                pos += 1;
                match keyword(&s[start..pos]) {
                    Some(t) => last = Some((t, pos)),
                    None if last.is_some() => break,
                    None => {}
                }
            }
            match last {
                Some((t, end)) => {
                    pos = end;
                    out.push((t, s[start..end].to_string()));
                }
                None => {
                    out.push((Token::Error, format!("error expected: keyword found '{}'", &s[start..pos])));
                }
            }
        } else {
            while pos < b.len() && !is_special(b[pos]) && !is_space(b[pos]) {
                pos += 1;
            }
            let word = &s[start..pos];
            out.push((keyword(word).unwrap_or(Token::Identifier), word.to_string()));
        }
    }
}

/// Whether `in`/`notin` are keywords (operator position) or plain identifiers (key and value position).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

/// The recursive-descent parser of `labels.Parse`.
struct Parser {
    items: Vec<(Token, String)>,
    pos: usize,
}

impl Parser {
    fn new(s: &str) -> Parser {
        Parser { items: lex(s), pos: 0 }
    }

    fn lookahead(&self, ctx: Ctx) -> (Token, String) {
        let (mut t, lit) = self.items.get(self.pos).cloned().unwrap_or((Token::EndOfString, String::new()));
        if ctx == Ctx::Values && matches!(t, Token::In | Token::NotIn) {
            t = Token::Identifier;
        }
        (t, lit)
    }

    fn consume(&mut self, ctx: Ctx) -> (Token, String) {
        let item = self.lookahead(ctx);
        if self.pos < self.items.len() {
            self.pos += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Ctx::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self.requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Ctx::Values);
                    match t {
                        Token::EndOfString => return Ok(reqs),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Ctx::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(format!("found '{l2}', expected: identifier after ','"));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(reqs),
                _ => return Err(format!("found '{lit}', expected: !, identifier, or 'end of string'")),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.key_and_inferred_operator()?;
        if let Some(op) = inferred {
            return Requirement::new(&key, op, Vec::new());
        }
        let op = self.operator()?;
        let values = match op {
            Op::In | Op::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, op, values)
    }

    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<Op>), String> {
        let (mut tok, mut lit) = self.consume(Ctx::Values);
        let mut op = None;
        if tok == Token::DoesNotExist {
            op = Some(Op::DoesNotExist);
            (tok, lit) = self.consume(Ctx::Values);
        }
        if tok != Token::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let errs = is_qualified_name(&lit);
        if !errs.is_empty() {
            return Err(format!("<nil>: Invalid value: {lit:?}: {}", errs.join("; ")));
        }
        let (next, _) = self.lookahead(Ctx::Values);
        if matches!(next, Token::EndOfString | Token::Comma) && op.is_none() {
            op = Some(Op::Exists);
        }
        Ok((lit, op))
    }

    fn operator(&mut self) -> Result<Op, String> {
        let (tok, lit) = self.consume(Ctx::KeyAndOperator);
        Ok(match tok {
            Token::In => Op::In,
            Token::Equals => Op::Equals,
            Token::DoubleEquals => Op::DoubleEquals,
            Token::GreaterThan => Op::GreaterThan,
            Token::LessThan => Op::LessThan,
            Token::NotIn => Op::NotIn,
            Token::NotEquals => Op::NotEquals,
            _ => return Err(format!("found '{lit}', expected: in, notin, =, ==, !=, gt, lt")),
        })
    }

    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Ctx::Values);
        if tok != Token::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Ctx::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let set = self.identifiers()?;
                let (closing, _) = self.consume(Ctx::Values);
                if closing != Token::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set)
            }
            Token::ClosedPar => {
                self.consume(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut set: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.consume(Ctx::Values);
            match tok {
                Token::Identifier => {
                    set.push(lit);
                    let (t2, l2) = self.lookahead(Ctx::Values);
                    match t2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(set),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.push(String::new());
                    }
                    let (t2, _) = self.lookahead(Ctx::Values);
                    if t2 == Token::ClosedPar {
                        set.push(String::new());
                        return Ok(set);
                    }
                    if t2 == Token::Comma {
                        self.consume(Ctx::Values);
                        set.push(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Ctx::Values);
        if matches!(tok, Token::EndOfString | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Ctx::Values);
        if tok == Token::Identifier { Ok(vec![lit]) } else { Err(format!("found '{lit}', expected: identifier")) }
    }
}

// ---------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    equal: bool,
}

/// A parsed field selector: the AND of its terms, each naming a field the resource supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses the `fieldSelector` query syntax (`fields.ParseSelector`) and checks every field against
    /// what the resource supports (the apiserver's `ConvertFieldLabel`); both failures are 400.
    #[allow(clippy::result_large_err, reason = "ApiError is the API's error type everywhere; callers return it as is")]
    pub fn parse(s: &str, resource: &ResourceInfo) -> Result<FieldSelector, ApiError> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts.iter().filter(|p| !p.is_empty()) {
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(ApiError::bad_request(format!("invalid selector: '{s}'; can't understand '{part}'")));
            };
            let value = unescape_value(rhs).map_err(ApiError::bad_request)?;
            let field = convert_field_label(resource, lhs).map_err(ApiError::bad_request)?;
            terms.push(FieldTerm { field, value, equal: op != "!=" });
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether the object's selectable fields satisfy every term. A field the object lacks reads as
    /// `""` (booleans and counters read as Go formats their zero values: `false`, `0`).
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| (field_value(obj, &t.field) == t.value) == t.equal)
    }

    /// The fields [`FieldSelector::matches`] reads, as paths of keys from the top of the object:
    /// a server decodes only these (and the labels) to evaluate selectors.
    pub fn paths(&self) -> Vec<Vec<&str>> {
        self.terms.iter().flat_map(|t| field_paths(&t.field)).map(|p| p.split('.').collect()).collect()
    }

    /// The name the selector pins with `metadata.name=X` (`RequiresExactMatch`), so a server can read
    /// one key instead of scanning.
    pub fn name_equals(&self) -> Option<&str> {
        self.terms.iter().find(|t| t.equal && t.field == "metadata.name").map(|t| t.value.as_str())
    }
}

/// The canonical string (`Selector.String()`): terms joined by `,`, values re-escaped.
impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|t| format!("{}{}{}", t.field, if t.equal { "=" } else { "!=" }, escape_value(&t.value)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Splits on commas not escaped by a backslash (`splitTerms`).
fn split_terms(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            cur.push(c);
        } else if c == '\\' {
            escaped = true;
            cur.push(c);
        } else if c == ',' {
            terms.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    terms.push(cur);
    terms
}

/// Finds the first operator, trying `!=`, `==`, `=` at each position (`splitTerm`).
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if rest.starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

/// `fields.UnescapeValue`: `\\`, `\,` and `\=` are the only escapes; bare `,` and `=` are errors.
fn unescape_value(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut slash = false;
    for c in s.chars() {
        if slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => return Err(format!("invalid field selector: invalid escape sequence: \\{c}")),
            }
            slash = false;
            continue;
        }
        match c {
            '\\' => slash = true,
            ',' | '=' => return Err(format!("invalid field selector: unescaped character in value: {c}")),
            _ => out.push(c),
        }
    }
    if slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace(',', "\\,").replace('=', "\\=")
}

/// The fields a kind lets clients select on, beyond the metadata ones, and whether the kind has its own
/// conversion function (which words the error `field label not supported: X`).
fn kind_fields(resource: &ResourceInfo) -> Option<&'static [&'static str]> {
    Some(match (resource.group, resource.kind) {
        ("", "Pod") => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "Node") => &["metadata.name", "spec.unschedulable"],
        ("", "Namespace") => &["status.phase", "metadata.name"],
        ("", "Secret") => &["type", "metadata.namespace", "metadata.name"],
        ("", "Event") | ("events.k8s.io", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "metadata.namespace",
            "metadata.name",
        ],
        ("apps", "ReplicaSet") => &["metadata.name", "metadata.namespace", "status.replicas"],
        _ => return None,
    })
}

/// The apiserver's `ConvertFieldLabel` for the resource: the (possibly renamed) field, or the error.
fn convert_field_label(resource: &ResourceInfo, label: &str) -> Result<String, String> {
    match kind_fields(resource) {
        Some(fields) => {
            if fields.contains(&label) {
                Ok(label.to_string())
            } else if resource.kind == "Pod" && label == "spec.host" {
                Ok("spec.nodeName".to_string())
            } else if resource.kind == "Event" && resource.group == "events.k8s.io" {
                // events.k8s.io names: `regarding.*` and `reportingController` select the same fields.
                match label.strip_prefix("regarding.") {
                    Some(rest) if fields.contains(&format!("involvedObject.{rest}").as_str()) => {
                        Ok(format!("involvedObject.{rest}"))
                    }
                    _ if label == "reportingController" => Ok("reportingComponent".to_string()),
                    _ => Err(format!("field label not supported: {label}")),
                }
            } else {
                Err(format!("field label not supported: {label}"))
            }
        }
        None if label == "metadata.name" || label == "metadata.namespace" => Ok(label.to_string()),
        None => Err(format!("{label:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"")),
    }
}

/// The selectable value of a field on an object, formatted as the registry's `GetAttrs` formats it.
/// The fields `field_value` reads for `field`: keep the two in step.
fn field_paths(field: &str) -> Vec<&str> {
    match field {
        "status.podIP" => vec!["status.podIPs", "status.podIP"],
        "source" => vec!["source.component", "deprecatedSource.component"],
        "reportingComponent" => vec!["reportingComponent", "reportingController"],
        _ if field.starts_with("involvedObject.") => vec![field, "regarding"],
        _ => vec![field],
    }
}

fn field_value(obj: &Value, field: &str) -> String {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let path = |p: &str| -> Option<&Value> { p.split('.').try_fold(obj, |v, k| v.get(k)) };
    match field {
        "spec.hostNetwork" | "spec.unschedulable" => path(field).and_then(Value::as_bool).unwrap_or(false).to_string(),
        "status.replicas" => path(field).and_then(Value::as_i64).unwrap_or(0).to_string(),
        "status.podIP" => path("status.podIPs")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|ip| ip.get("ip"))
            .map(|v| text(Some(v)))
            .unwrap_or_else(|| text(path("status.podIP"))),
        "source" => path("source.component")
            .or_else(|| path("deprecatedSource.component"))
            .map(|v| text(Some(v)))
            .unwrap_or_default(),
        "reportingComponent" => text(path("reportingComponent").or_else(|| path("reportingController"))),
        _ => match field.strip_prefix("involvedObject.") {
            Some(rest) => text(path(field).or_else(|| obj.get("regarding").and_then(|r| r.get(rest)))),
            None => text(path(field)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::lookup;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn label_selector_canonical_strings() {
        let cases = [
            ("a=b,c!=d,e in (y,x),f notin (z),g,!h", "a=b,c!=d,e in (x,y),f notin (z),g,!h"),
            ("x==a", "x==a"),
            ("  app = web ,  tier=fe", "app=web,tier=fe"),
            ("b=1,a=2", "a=2,b=1"),
            ("x notin (b,a,b)", "x notin (a,b)"),
            ("x in ()", "x in ()"),
            ("x=", "x="),
            ("x>5,y<3", "x>5,y<3"),
            ("in in (in, notin)", "in in (in,notin)"),
            ("example.com/key=v", "example.com/key=v"),
            ("", ""),
        ];
        for (input, want) in cases {
            let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(sel.to_string(), want, "input {input:?}");
        }
    }

    #[test]
    fn label_selector_syntax_errors() {
        let cases = [
            ("x (", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"),
            ("env IN (a)", "unable to parse requirement: found 'IN', expected: in, notin, =, ==, !=, gt, lt"),
            ("a=b,", "found '', expected: identifier after ','"),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            ("=a", "found '=', expected: !, identifier, or 'end of string'"),
            ("x in a", "unable to parse requirement: found 'a' expected: '('"),
            ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
            (
                "x>a",
                "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
            (
                "-a=b",
                "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            ),
            (
                "a=-b",
                "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ),
        ];
        for (input, want) in cases {
            let err = LabelSelector::parse(input).expect_err(input);
            assert_eq!(err.code, 400, "{input}");
            assert_eq!(err.reason, "BadRequest");
            assert_eq!(err.message, want, "input {input:?}");
        }
    }

    #[test]
    fn label_selector_matching() {
        let l = labels(json!({"app": "web", "tier": "fe", "n": "7"}));
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (db,web)", true),
            ("app notin (db,web)", false),
            ("missing notin (a)", true),
            ("missing in (a)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier=be", false),
            ("n>6", true),
            ("n>7", false),
            ("n<8", true),
            ("app>1", false),
        ];
        for (input, want) in cases {
            let sel = LabelSelector::parse(input).expect(input);
            assert_eq!(sel.matches(Some(&l)), want, "{input}");
        }
        assert!(LabelSelector::parse("!a").expect("parse").matches(None));
        assert!(!LabelSelector::parse("a").expect("parse").matches(None));
        assert!(LabelSelector::everything().matches(None));
        assert!(LabelSelector::everything().is_empty());
        assert!(!LabelSelector::nothing().matches(Some(&l)));
        assert!(!LabelSelector::nothing().is_empty());
    }

    #[test]
    fn metav1_label_selector_conversion() {
        let cases = [
            (
                json!({"matchLabels": {"app": "web", "pod-template-hash": "abc"}}),
                "app=web,pod-template-hash=abc",
                "app=web,pod-template-hash=abc",
            ),
            (
                json!({"matchLabels": {"z": "1"}, "matchExpressions": [
                    {"key": "a", "operator": "In", "values": ["y", "x"]},
                    {"key": "b", "operator": "DoesNotExist"},
                    {"key": "c", "operator": "Exists"},
                    {"key": "d", "operator": "NotIn", "values": ["q"]}]}),
                "a in (x,y),!b,c,d notin (q),z=1",
                "a in (x,y),!b,c,d notin (q),z=1",
            ),
            (json!({}), "", "<none>"),
            (Value::Null, "", "<none>"),
        ];
        for (sel, display, formatted) in cases {
            let parsed = LabelSelector::from_label_selector(&sel).expect("converts");
            assert_eq!(parsed.to_string(), display);
            assert_eq!(selector_string(&sel), formatted);
        }
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]});
        assert_eq!(
            LabelSelector::from_label_selector(&bad),
            Err("\"Foo\" is not a valid label selector operator".into())
        );
        assert_eq!(selector_string(&bad), "<error>");
        let empty_in = json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]});
        assert_eq!(
            LabelSelector::from_label_selector(&empty_in),
            Err("values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty".into())
        );
        let everything = LabelSelector::from_label_selector(&json!({})).expect("ok");
        assert!(everything.is_empty() && everything.matches(None));
        assert!(!LabelSelector::from_label_selector(&Value::Null).expect("ok").matches(None));
    }

    fn res(group: &str, plural: &str) -> &'static ResourceInfo {
        let version = "v1";
        lookup(group, version, plural).expect("resource")
    }

    #[test]
    fn field_selector_parse_and_errors() {
        let pods = res("", "pods");
        let ok = [
            ("metadata.name=web", "metadata.name=web"),
            ("spec.nodeName==n1,status.phase!=Running", "spec.nodeName=n1,status.phase!=Running"),
            ("spec.host=n1", "spec.nodeName=n1"),
            ("metadata.name=a\\,b", "metadata.name=a\\,b"),
            ("", ""),
        ];
        for (input, want) in ok {
            assert_eq!(FieldSelector::parse(input, pods).expect(input).to_string(), want);
        }
        let errs = [
            ("foo", pods, "invalid selector: 'foo'; can't understand 'foo'"),
            ("spec.foo=x", pods, "field label not supported: spec.foo"),
            ("metadata.name=a=b", pods, "invalid field selector: unescaped character in value: ="),
            ("metadata.name=a\\x", pods, "invalid field selector: invalid escape sequence: \\x"),
            ("metadata.namespace=x", res("", "nodes"), "field label not supported: metadata.namespace"),
            (
                "spec.replicas=1",
                res("apps", "deployments"),
                "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            ),
        ];
        for (input, resource, want) in errs {
            let e = FieldSelector::parse(input, resource).expect_err(input);
            assert_eq!((e.code, e.message.as_str()), (400, want), "{input}");
        }
    }

    #[test]
    fn field_selector_matching() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always"},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]}
        });
        let pods = res("", "pods");
        let cases = [
            ("metadata.name=web-1", true),
            ("metadata.name=web-2", false),
            ("metadata.namespace=default,spec.nodeName=n1", true),
            ("spec.nodeName=", false),
            ("spec.schedulerName=", true),
            ("spec.hostNetwork=false", true),
            ("spec.hostNetwork!=true", true),
            ("status.phase!=Succeeded,status.phase!=Failed", true),
            ("status.podIP=10.0.0.1", true),
            ("status.nominatedNodeName=", true),
        ];
        for (input, want) in cases {
            assert_eq!(FieldSelector::parse(input, pods).expect(input).matches(&pod), want, "{input}");
        }
        let node = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}});
        let nodes = res("", "nodes");
        assert!(FieldSelector::parse("spec.unschedulable=true", nodes).expect("ok").matches(&node));
        assert!(FieldSelector::parse("spec.unschedulable=false", nodes).expect("ok").matches(&json!({})));
        let rs = json!({"status": {"replicas": 3}});
        let rss = res("apps", "replicasets");
        assert!(FieldSelector::parse("status.replicas=3", rss).expect("ok").matches(&rs));
        assert!(FieldSelector::parse("status.replicas=0", rss).expect("ok").matches(&json!({})));
        let ev = json!({"involvedObject": {"kind": "Pod", "name": "p", "uid": "u"}, "source": {"component": "kubelet"}, "type": "Normal"});
        let events = res("", "events");
        let sel = FieldSelector::parse(
            "involvedObject.name=p,involvedObject.namespace=,involvedObject.kind=Pod,involvedObject.uid=u,source=kubelet",
            events,
        )
        .expect("ok");
        assert!(sel.matches(&ev));
        let new_ev = json!({"regarding": {"kind": "Pod", "name": "p"}, "reportingController": "kubelet"});
        let sel = FieldSelector::parse("regarding.name=p,reportingController=kubelet", res("events.k8s.io", "events"))
            .expect("ok");
        assert!(sel.matches(&new_ev));
        let secret = json!({"type": "Opaque"});
        assert!(FieldSelector::parse("type=Opaque", res("", "secrets")).expect("ok").matches(&secret));
    }

    #[test]
    fn field_selector_name_lookup() {
        let pods = res("", "pods");
        let cases = [
            ("metadata.name=web", Some("web")),
            ("status.phase=Running,metadata.name=web", Some("web")),
            ("metadata.name!=web", None),
            ("metadata.name==x", Some("x")),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(FieldSelector::parse(input, pods).expect(input).name_equals(), want, "{input}");
        }
        assert!(FieldSelector::parse("", pods).expect("ok").is_empty());
    }
}
