//! What a resource in `needs_information` asks for: the JSON Schema it answers with and checks
//! `submitted_information` against (`information`). A leaf: it reads the stored resource only,
//! so rendering and the commands can both use it.

use serde_json::{json, Value};

use crate::resources::model::{Candidate, Detail, Resource, ResourceStatus};

/// The schema a resource in `needs_information` asks with, or `None` if it asks nothing.
pub fn information_schema(r: &Resource) -> Option<Value> {
    if r.status != ResourceStatus::NeedsInformation {
        return None;
    }
    match &r.detail {
        Detail::Domain { quote: Some(q), .. } if !r.linked => {
            let names: Vec<&str> = q
                .candidates
                .iter()
                .filter(|c| c.available)
                .map(|c: &Candidate| c.domain.as_str())
                .collect();
            Some(json!({
                "type": "object",
                "properties": {
                    "domain": {"type": "string", "enum": names, "description": "the candidate to buy"},
                    "amount": {"type": "integer", "minimum": 0, "description": "its quoted price in cents, to acknowledge it"}
                },
                "required": ["domain", "amount"],
                "additionalProperties": false
            }))
        }
        Detail::Domain { domain: None, .. } if r.linked => Some(json!({
            "type": "object",
            "properties": {
                "domain": {"type": "string", "minLength": 1, "maxLength": 253,
                           "description": "a domain this account already registered here"}
            },
            "required": ["domain"],
            "additionalProperties": false
        })),
        Detail::Operator {
            asked: Some(asked), ..
        } => Some(asked.schema.clone()),
        _ => None,
    }
}
