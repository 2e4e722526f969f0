//! The JSON Schema subset: `check_schema` on any JSON, `validate` of any JSON against the
//! catalog's schemas and against any schema that passed `check_schema`.
//!
//! Input: JSON text (`schema NUL value`, or one document used as both); the same bytes also
//! drive a structured generator, so valid schemas are common.
#![no_main]

mod common;

use arbitrary::Unstructured;
use domain::schema::{self, SchemaError};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn well_formed(e: &SchemaError) {
    assert!(e.path.is_empty() || e.path.starts_with('/'), "{e:?}");
    assert!(!e.message.is_empty());
}

fn validate(schema: &Value, value: &Value) {
    let first = schema::validate(schema, value);
    if let Err(e) = &first {
        well_formed(e);
    }
    assert_eq!(first, schema::validate(schema, value), "deterministic");
}

fuzz_target!(|data: &[u8]| {
    let (a, b) = common::split_nul(data);
    let mut schemas: Vec<Value> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Ok(v) = serde_json::from_slice::<Value>(a) {
        schemas.push(v.clone());
        values.push(v);
    }
    if let Some(Ok(v)) = b.map(serde_json::from_slice::<Value>) {
        values.push(v);
    }
    let mut u = Unstructured::new(data);
    if let Ok(s) = common::schema(&mut u, 0) {
        schemas.push(s);
    }
    if let Ok(v) = common::value(&mut u, 0) {
        values.push(v);
    }

    for s in &schemas {
        match schema::check_schema(s) {
            Ok(()) => {
                for v in &values {
                    validate(s, v);
                }
                // A schema's own `const` is accepted when it is the only constraint.
                if let Some(c) = s.get("const") {
                    if s.as_object().is_some_and(|o| o.len() == 1) {
                        assert_eq!(schema::validate(s, c), Ok(()));
                    }
                }
            }
            Err(e) => well_formed(&e),
        }
    }
    for service in common::catalog().services() {
        for v in &values {
            validate(&service.configuration_schema, v);
        }
    }
});
