//! The JSON Schema subset used by the catalog's `configuration_schema` and by
//! `needs_information.schema`.
//!
//! Supported keywords: `type` (one of object, string, integer, number, boolean, array, null),
//! `properties`, `required`, `additionalProperties` (boolean), `enum`, `const`, `minLength`,
//! `maxLength`, `pattern` (ECMA-262, a search: see [`crate::pattern`]), `minimum`, `maximum`,
//! `multipleOf`, `items`, `minItems`, `maxItems`, and the annotations `title`, `description`,
//! `default`, `examples`, `$schema`.
//!
//! Invariant: [`check_schema`] refuses every other keyword, so a schema that passes it is
//! enforced in full by [`validate`]: nothing an operator writes is silently ignored.

use serde_json::{Map, Value};

/// Deepest nesting accepted, in schemas and in validated values.
pub const MAX_DEPTH: usize = 32;

/// The largest integer every JSON parser keeps exactly: 2^53 - 1 (I-JSON, RFC 7493 §2.2).
pub const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;

/// Why a body with an integer beyond [`MAX_EXACT_INTEGER`] is refused: parsers that read
/// numbers as doubles change it, and every call to an account's object crosses the runtime's
/// `JSON.parse`, so it would be stored rounded (and come back as another number) instead.
/// `None` when every integer in `value` is exact; else the message, naming its JSON pointer.
pub fn inexact_integer(value: &Value) -> Option<String> {
    /// Walks into `item` under `segment`; the path keeps the segment only where it was found.
    fn child(item: &Value, segment: &str, path: &mut String) -> bool {
        let len = path.len();
        path.push('/');
        path.push_str(segment);
        let found = walk(item, path);
        if !found {
            path.truncate(len);
        }
        found
    }
    fn walk(v: &Value, path: &mut String) -> bool {
        match v {
            Value::Number(n) => {
                let exact = match (n.as_u64(), n.as_i64()) {
                    (Some(u), _) => u <= MAX_EXACT_INTEGER,
                    (None, Some(i)) => i.unsigned_abs() <= MAX_EXACT_INTEGER,
                    _ => true, // a float stays a float
                };
                !exact
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .any(|(i, item)| child(item, &i.to_string(), path)),
            Value::Object(m) => m
                .iter()
                .any(|(k, item)| child(item, &k.replace('~', "~0").replace('/', "~1"), path)),
            _ => false,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).then(|| {
        format!(
            "{}: integers must be within -{MAX_EXACT_INTEGER}..{MAX_EXACT_INTEGER} (2^53-1, \
             RFC 7493 I-JSON), the range every JSON parser keeps exactly; send larger values \
             as strings",
            if path.is_empty() { "/" } else { &path }
        )
    })
}

const TYPES: &[&str] = &[
    "object", "string", "integer", "number", "boolean", "array", "null",
];
const ANNOTATIONS: &[&str] = &["title", "description", "default", "examples", "$schema"];

/// A schema or a value failed; `path` is a JSON pointer to the offending place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn err(path: &str, message: impl Into<String>) -> SchemaError {
    SchemaError {
        path: path.to_string(),
        message: message.into(),
    }
}

fn child(path: &str, key: &str) -> String {
    // JSON pointer escaping (RFC 6901).
    format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// Checks that `schema` uses only the supported subset, consistently.
pub fn check_schema(schema: &Value) -> Result<(), SchemaError> {
    check_at(schema, "", 0)
}

fn check_at(schema: &Value, path: &str, depth: usize) -> Result<(), SchemaError> {
    if depth > MAX_DEPTH {
        return Err(err(path, "schema is nested too deeply"));
    }
    let obj = schema
        .as_object()
        .ok_or_else(|| err(path, "a schema must be a JSON object"))?;
    let ty = match obj.get("type") {
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => Some(t.as_str()),
        Some(other) => {
            return Err(err(
                &child(path, "type"),
                format!("unsupported type {other}; use one of {}", TYPES.join(", ")),
            ))
        }
        None => None,
    };
    for (key, value) in obj {
        let at = child(path, key);
        let applies = |types: &[&str]| -> Result<(), SchemaError> {
            match ty {
                Some(t) if types.contains(&t) => Ok(()),
                _ => Err(err(
                    &at,
                    format!("\"{key}\" needs \"type\" to be one of {}", types.join(", ")),
                )),
            }
        };
        match key.as_str() {
            "type" => {}
            k if ANNOTATIONS.contains(&k) => {}
            "properties" => {
                applies(&["object"])?;
                let props = value
                    .as_object()
                    .ok_or_else(|| err(&at, "must be an object of schemas"))?;
                for (name, sub) in props {
                    check_at(sub, &child(&at, name), depth + 1)?;
                }
            }
            "required" => {
                applies(&["object"])?;
                let names = value
                    .as_array()
                    .ok_or_else(|| err(&at, "must be an array of property names"))?;
                let props = obj.get("properties").and_then(Value::as_object);
                for name in names {
                    let name = name
                        .as_str()
                        .ok_or_else(|| err(&at, "must be an array of property names"))?;
                    if !props.is_some_and(|p| p.contains_key(name)) {
                        return Err(err(
                            &at,
                            format!("required property {name:?} is not in \"properties\""),
                        ));
                    }
                }
            }
            "additionalProperties" => {
                applies(&["object"])?;
                if !value.is_boolean() {
                    return Err(err(&at, "only true or false is supported"));
                }
            }
            "enum" => {
                let options = value
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| err(&at, "must be a non-empty array"))?;
                if let Some(t) = ty {
                    for (i, option) in options.iter().enumerate() {
                        if let Some(message) = type_mismatch(t, option) {
                            return Err(err(&child(&at, &i.to_string()), message));
                        }
                    }
                }
            }
            "const" => {
                if let (Some(t), Some(message)) = (ty, ty.and_then(|t| type_mismatch(t, value))) {
                    return Err(err(&at, format!("{message} (type {t})")));
                }
            }
            "minLength" | "maxLength" => {
                applies(&["string"])?;
                non_negative_integer(value, &at)?;
            }
            "pattern" => {
                applies(&["string"])?;
                let p = value
                    .as_str()
                    .ok_or_else(|| err(&at, "must be a string (an ECMA-262 regular expression)"))?;
                crate::pattern::compile(p).map_err(|m| err(&at, m))?;
            }
            "multipleOf" => {
                applies(&["integer", "number"])?;
                if !value.as_f64().is_some_and(|m| m > 0.0 && m.is_finite()) {
                    return Err(err(&at, "must be a number greater than 0"));
                }
            }
            "minItems" | "maxItems" => {
                applies(&["array"])?;
                non_negative_integer(value, &at)?;
            }
            "minimum" | "maximum" => {
                applies(&["integer", "number"])?;
                if !value.is_number() {
                    return Err(err(&at, "must be a number"));
                }
            }
            "items" => {
                applies(&["array"])?;
                check_at(value, &at, depth + 1)?;
            }
            other => {
                return Err(err(
                    &at,
                    format!("unsupported JSON Schema keyword {other:?}"),
                ))
            }
        }
    }
    for (lo, hi) in [
        ("minLength", "maxLength"),
        ("minItems", "maxItems"),
        ("minimum", "maximum"),
    ] {
        if let (Some(a), Some(b)) = (
            obj.get(lo).and_then(Value::as_f64),
            obj.get(hi).and_then(Value::as_f64),
        ) {
            if a > b {
                return Err(err(path, format!("{lo} is greater than {hi}")));
            }
        }
    }
    Ok(())
}

fn non_negative_integer(value: &Value, at: &str) -> Result<(), SchemaError> {
    match value.as_u64() {
        Some(_) => Ok(()),
        None => Err(err(at, "must be a non-negative integer")),
    }
}

fn is_integer(v: &Value) -> bool {
    v.is_i64()
        || v.is_u64()
        || v.as_f64()
            .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
}

/// `None` when `value` is of JSON Schema type `ty`, else a message saying what was expected.
fn type_mismatch(ty: &str, value: &Value) -> Option<String> {
    let ok = match ty {
        "object" => value.is_object(),
        "string" => value.is_string(),
        "integer" => is_integer(value),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        _ => false,
    };
    (!ok).then(|| format!("expected {}, got {}", article(ty), describe(value)))
}

fn article(ty: &str) -> String {
    match ty {
        "object" | "integer" | "array" => format!("an {ty}"),
        "null" => "null".to_string(),
        _ => format!("a {ty}"),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `multipleOf`: exact for integers; for other numbers the quotient must be within 1e-9
/// (relative) of an integer, so that 0.3 is a multiple of 0.1 despite binary floating point.
fn multiple_of(n: &serde_json::Number, m: &serde_json::Number) -> bool {
    if let (Some(a), Some(b)) = (n.as_i64(), m.as_i64()) {
        return b > 0 && a % b == 0;
    }
    if let (Some(a), Some(b)) = (n.as_u64(), m.as_u64()) {
        return b > 0 && a % b == 0;
    }
    let (Some(a), Some(b)) = (n.as_f64(), m.as_f64()) else {
        return false;
    };
    let q = a / b;
    q.is_finite() && (q - q.round()).abs() <= 1e-9 * q.abs().max(1.0)
}

/// Validates `value` against a schema that passed [`check_schema`]. The error names the first
/// failing field by JSON pointer (`/domain_query`), in a message fit for the caller.
pub fn validate(schema: &Value, value: &Value) -> Result<(), SchemaError> {
    validate_at(schema, value, "", 0)
}

fn validate_at(schema: &Value, value: &Value, path: &str, depth: usize) -> Result<(), SchemaError> {
    if depth > MAX_DEPTH {
        return Err(err(path, "value is nested too deeply"));
    }
    let empty = Map::new();
    let s = schema.as_object().unwrap_or(&empty);
    if let Some(ty) = s.get("type").and_then(Value::as_str) {
        if let Some(message) = type_mismatch(ty, value) {
            return Err(err(path, message));
        }
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            let shown: Vec<String> = options.iter().map(Value::to_string).collect();
            return Err(err(path, format!("must be one of {}", shown.join(", "))));
        }
    }
    if let Some(expected) = s.get("const") {
        if expected != value {
            return Err(err(path, format!("must be {expected}")));
        }
    }
    match value {
        Value::String(text) => {
            let len = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
                if len < min {
                    return Err(err(path, format!("must be at least {min} characters long")));
                }
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
                if len > max {
                    return Err(err(path, format!("must be at most {max} characters long")));
                }
            }
            if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                // check_schema compiled it already; a failure here refuses rather than skips.
                let found = crate::pattern::compile(p).map(|re| re.is_match(text));
                if found != Ok(true) {
                    return Err(err(path, format!("must match the pattern {p}")));
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
                if x.is_nan() || x < min {
                    return Err(err(path, format!("must be at least {min}")));
                }
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
                if x.is_nan() || x > max {
                    return Err(err(path, format!("must be at most {max}")));
                }
            }
            if let Some(m) = s.get("multipleOf").and_then(Value::as_number) {
                if !multiple_of(n, m) {
                    return Err(err(path, format!("must be a multiple of {m}")));
                }
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
                if len < min {
                    return Err(err(path, format!("must have at least {min} items")));
                }
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
                if len > max {
                    return Err(err(path, format!("must have at most {max} items")));
                }
            }
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_at(item_schema, item, &child(path, &i.to_string()), depth + 1)?;
                }
            }
        }
        Value::Object(fields) => {
            let props = s.get("properties").and_then(Value::as_object);
            if let Some(required) = s.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !fields.contains_key(name) {
                        return Err(err(&child(path, name), "is required"));
                    }
                }
            }
            for (name, field) in fields {
                match props.and_then(|p| p.get(name)) {
                    Some(sub) => validate_at(sub, field, &child(path, name), depth + 1)?,
                    None => {
                        if s.get("additionalProperties") == Some(&Value::Bool(false)) {
                            let known: Vec<&str> = props
                                .map(|p| p.keys().map(String::as_str).collect())
                                .unwrap_or_default();
                            let hint = if known.is_empty() {
                                "no properties are accepted".to_string()
                            } else {
                                format!("accepted: {}", known.join(", "))
                            };
                            return Err(err(
                                &child(path, name),
                                format!("is not an accepted property ({hint})"),
                            ));
                        }
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_every_parser_keeps_exactly_pass() {
        let max = MAX_EXACT_INTEGER;
        let v = json!({"a": max, "b": -(max as i64), "c": [1.5, 1e300, -0.0], "d": "99999999999999999999"});
        assert_eq!(inexact_integer(&v), None);
        let e = inexact_integer(&json!({"a": [0, {"x/y": max + 1}]})).unwrap();
        assert!(e.starts_with("/a/1/x~1y: integers must be within"), "{e}");
        let e = inexact_integer(&json!({"n": -(max as i64) - 1})).unwrap();
        assert!(e.starts_with("/n: "), "{e}");
        assert!(inexact_integer(&json!(u64::MAX))
            .unwrap()
            .starts_with("/: "));
    }

    fn domain_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "domain_query": {"type": "string", "minLength": 1, "maxLength": 63,
                                 "description": "name to search for"},
                "years": {"type": "integer", "minimum": 1, "maximum": 10},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]},
                         "maxItems": 2}
            },
            "required": ["domain_query"],
            "additionalProperties": false
        })
    }

    #[test]
    fn accepts_the_supported_subset() {
        assert_eq!(check_schema(&domain_schema()), Ok(()));
        assert_eq!(
            check_schema(&json!({"type":"object","properties":{},"additionalProperties":false})),
            Ok(())
        );
    }

    #[test]
    fn refuses_what_it_cannot_enforce() {
        let cases = [
            (
                json!({"type": "object", "patternProperties": {}}),
                "/patternProperties",
            ),
            (json!({"type": "string", "pattern": "(?=a)"}), "/pattern"),
            (json!({"type": "string", "pattern": 1}), "/pattern"),
            (json!({"type": "integer", "pattern": "a"}), "/pattern"),
            (json!({"type": "number", "multipleOf": 0}), "/multipleOf"),
            (json!({"type": "number", "multipleOf": -2}), "/multipleOf"),
            (json!({"type": "string", "multipleOf": 2}), "/multipleOf"),
            (json!({"type": "string", "format": "email"}), "/format"),
            (json!({"type": ["string", "null"]}), "/type"),
            (json!({"type": "strin"}), "/type"),
            (
                json!({"type": "object", "additionalProperties": {"type": "string"}}),
                "/additionalProperties",
            ),
            (json!({"type": "string", "minLength": -1}), "/minLength"),
            (json!({"type": "string", "minimum": 1}), "/minimum"),
            (
                json!({"type": "object", "required": ["x"], "properties": {}}),
                "/required",
            ),
            (
                json!({"type": "object", "properties": {"a/b": {"type": "str"}}}),
                "/properties/a~1b/type",
            ),
            (json!({"type": "string", "enum": [1]}), "/enum/0"),
            (json!({"type": "string", "enum": []}), "/enum"),
            (json!("string"), ""),
        ];
        for (schema, path) in cases {
            let e = check_schema(&schema).expect_err(&schema.to_string());
            assert_eq!(e.path, path, "{schema} -> {e}");
        }
        let e = check_schema(&json!({"type":"string","minLength":5,"maxLength":2})).unwrap_err();
        assert!(e.message.contains("minLength"), "{e}");
    }

    #[test]
    fn validates_values_and_names_the_field() {
        let s = domain_schema();
        assert_eq!(validate(&s, &json!({"domain_query": "acme"})), Ok(()));
        assert_eq!(
            validate(
                &s,
                &json!({"domain_query": "acme", "years": 2, "tags": ["a"]})
            ),
            Ok(())
        );
        let fails = [
            (json!({}), "/domain_query", "is required"),
            (
                json!({"domain_query": 5}),
                "/domain_query",
                "expected a string, got an integer",
            ),
            (json!({"domain_query": ""}), "/domain_query", "at least 1"),
            (
                json!({"domain_query": "a".repeat(64)}),
                "/domain_query",
                "at most 63",
            ),
            (
                json!({"domain_query": "a", "extra": 1}),
                "/extra",
                "not an accepted property",
            ),
            (
                json!({"domain_query": "a", "years": 1.5}),
                "/years",
                "expected an integer",
            ),
            (
                json!({"domain_query": "a", "years": 0}),
                "/years",
                "at least 1",
            ),
            (
                json!({"domain_query": "a", "tags": ["c"]}),
                "/tags/0",
                "one of",
            ),
            (
                json!({"domain_query": "a", "tags": ["a", "a", "b"]}),
                "/tags",
                "at most 2",
            ),
            (json!([]), "", "expected an object"),
            (json!(null), "", "expected an object"),
        ];
        for (value, path, needle) in fails {
            let e = validate(&s, &value).expect_err(&value.to_string());
            assert_eq!(e.path, path, "{value} -> {e}");
            assert!(e.message.contains(needle), "{value} -> {e}");
        }
    }

    #[test]
    fn pattern_is_a_search_in_ecma_262_syntax() {
        let s = json!({"type": "string", "pattern": "\\d"});
        assert_eq!(check_schema(&s), Ok(()));
        assert_eq!(validate(&s, &json!("abc1")), Ok(()));
        let e = validate(&s, &json!("abc")).unwrap_err();
        assert!(e.message.contains("must match the pattern \\d"), "{e}");
        let anchored = json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*[a-z0-9]$"});
        assert_eq!(validate(&anchored, &json!("my-db")), Ok(()));
        assert!(validate(&anchored, &json!("-my-db")).is_err());
    }

    #[test]
    fn multiple_of_is_exact_for_integers_and_tolerant_for_decimals() {
        let s = json!({"type": "integer", "multipleOf": 4});
        assert_eq!(check_schema(&s), Ok(()));
        assert_eq!(validate(&s, &json!(12)), Ok(()));
        assert_eq!(validate(&s, &json!(-8)), Ok(()));
        assert_eq!(validate(&s, &json!(0)), Ok(()));
        let e = validate(&s, &json!(6)).unwrap_err();
        assert_eq!(e.message, "must be a multiple of 4");
        let d = json!({"type": "number", "multipleOf": 0.1});
        assert_eq!(validate(&d, &json!(0.3)), Ok(()));
        assert!(validate(&d, &json!(0.35)).is_err());
        assert_eq!(validate(&d, &json!(u64::MAX)), Ok(()));
    }

    #[test]
    fn counts_characters_not_bytes() {
        let s = json!({"type": "string", "maxLength": 3});
        assert_eq!(validate(&s, &json!("ééé")), Ok(()));
        assert!(validate(&s, &json!("éééé")).is_err());
    }

    #[test]
    fn integers_written_as_floats_are_integers() {
        let s = json!({"type": "integer"});
        assert_eq!(validate(&s, &json!(2.0)), Ok(()));
        assert!(validate(&s, &json!(2.5)).is_err());
    }

    #[test]
    fn depth_is_bounded() {
        let mut schema = json!({"type": "string"});
        for _ in 0..40 {
            schema = json!({"type": "array", "items": schema});
        }
        assert!(check_schema(&schema).is_err());
        let mut value = json!("x");
        for _ in 0..40 {
            value = json!([value]);
        }
        assert!(validate(&json!({}), &value).is_ok());
        let deep = json!({"type":"array","items":{"type":"array"}});
        assert!(validate(&deep, &value).is_ok());
    }
}
