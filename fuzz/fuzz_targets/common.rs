//! Shared by the fuzz targets: fixed time and secrets, the default catalog, and JSON built from
//! raw bytes (so schemas that pass `check_schema` are common, not one in a billion).

#![allow(dead_code)]

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use domain::catalog::{Catalog, DEFAULT_CATALOG};
use serde_json::{Map, Number, Value};

/// 2026-11-28T10:00:00Z: the PROTOCOL.md example's `expires_at` is two hours later.
pub const NOW: i64 = 1_795_860_000;

/// The default catalog, parsed once per process.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog::parse(DEFAULT_CATALOG).expect("the default catalog parses"))
}

/// Splits `data` at the first NUL byte: `(before, Some(after))`, or `(data, None)`.
pub fn split_nul(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    }
}

const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "const",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "items",
    "minItems",
    "maxItems",
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "format",
    "pattern",
    "multipleOf",
];
/// ECMA-262 patterns: accepted ones, ones meaning something else in Rust (refused), and
/// ones a backtracking engine would blow up on.
const PATTERNS: &[&str] = &[
    "^[a-z0-9][a-z0-9-]*[a-z0-9]$",
    r"\d",
    "^https://",
    ".",
    r"\s",
    "^(a+)+$",
    "(?=a)",
    r"\A",
    "[[a]]",
    "a{,3}",
    "a**",
    "[^]",
    r"\u00e9",
    "é+",
];
const TYPES: &[&str] = &[
    "object", "string", "integer", "number", "boolean", "array", "null", "any",
];
const NAMES: &[&str] = &["", "a", "b", "scopes", "label", "domain_query", "~/", "é"];

/// Deepest structure built (past `schema::MAX_DEPTH`, to reach its limit).
const MAX_BUILD_DEPTH: usize = 40;

fn small_string(u: &mut Unstructured) -> Result<String> {
    if u.ratio(1, 2)? {
        Ok(u.choose(NAMES)?.to_string())
    } else {
        let s: String = u.arbitrary()?;
        Ok(s.chars().take(80).collect())
    }
}

fn number(u: &mut Unstructured) -> Result<Value> {
    Ok(match u.int_in_range(0..=3)? {
        0 => Value::from(u.int_in_range(0u64..=100)?),
        1 => Value::from(u.arbitrary::<i64>()?),
        2 => Value::from(u.arbitrary::<u64>()?),
        _ => Number::from_f64(u.arbitrary::<f64>()?).map_or(Value::Null, Value::Number),
    })
}

/// Any JSON value, at most `MAX_BUILD_DEPTH` deep.
pub fn value(u: &mut Unstructured, depth: usize) -> Result<Value> {
    let max = if depth >= MAX_BUILD_DEPTH { 3 } else { 5 };
    Ok(match u.int_in_range(0..=max)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => number(u)?,
        3 => Value::String(small_string(u)?),
        4 => {
            let n = u.int_in_range(0..=4)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(value(u, depth + 1)?);
            }
            Value::Array(items)
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let mut m = Map::new();
            for _ in 0..n {
                m.insert(small_string(u)?, value(u, depth + 1)?);
            }
            Value::Object(m)
        }
    })
}

/// A JSON object made mostly of schema keywords with plausible values.
pub fn schema(u: &mut Unstructured, depth: usize) -> Result<Value> {
    let mut m = Map::new();
    if u.ratio(7, 8)? {
        m.insert("type".into(), Value::from(*u.choose(TYPES)?));
    }
    let n = u.int_in_range(0..=5)?;
    for _ in 0..n {
        let key = *u.choose(KEYWORDS)?;
        let v = match key {
            "type" => Value::from(*u.choose(TYPES)?),
            "properties" if depth < MAX_BUILD_DEPTH => {
                let mut props = Map::new();
                for _ in 0..u.int_in_range(0..=3)? {
                    props.insert(u.choose(NAMES)?.to_string(), schema(u, depth + 1)?);
                }
                Value::Object(props)
            }
            "items" if depth < MAX_BUILD_DEPTH => schema(u, depth + 1)?,
            "required" => {
                let mut names = Vec::new();
                for _ in 0..u.int_in_range(0..=2)? {
                    names.push(Value::from(*u.choose(NAMES)?));
                }
                Value::Array(names)
            }
            "additionalProperties" => Value::Bool(u.arbitrary()?),
            "minLength" | "maxLength" | "minItems" | "maxItems" | "minimum" | "maximum"
            | "multipleOf" => number(u)?,
            "pattern" if u.ratio(3, 4)? => Value::from(*u.choose(PATTERNS)?),
            "enum" => {
                let mut options = Vec::new();
                for _ in 0..u.int_in_range(0..=3)? {
                    options.push(value(u, depth + 1)?);
                }
                Value::Array(options)
            }
            _ => value(u, depth + 1)?,
        };
        m.insert(key.to_string(), v);
    }
    Ok(Value::Object(m))
}
