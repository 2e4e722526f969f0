//! Wire-level constants and small shapes of APP 0.1d that every endpoint shares.

use serde_json::{json, Value};

/// The version this provider speaks, sent by the orchestrator as `API-Version`.
pub const API_VERSION: &str = "0.1d";
/// Every version accepted in `API-Version`.
pub const SUPPORTED_VERSIONS: &[&str] = &[API_VERSION];

/// The `API-Version` header was missing or empty (`got: None`) or names a version this
/// provider does not speak. `errors` maps it to the `invalid_api_version` envelope; this
/// module stays below `errors` and does not name envelopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedVersion {
    pub got: Option<String>,
}

/// Checks the `API-Version` header of a `/provisioning/*` call (docs/PROTOCOL.md §1.2).
pub fn check_api_version(header: Option<&str>) -> Result<(), UnsupportedVersion> {
    match header.map(str::trim) {
        Some(v) if SUPPORTED_VERSIONS.contains(&v) => Ok(()),
        Some(v) if !v.is_empty() => Err(UnsupportedVersion {
            got: Some(v.to_string()),
        }),
        _ => Err(UnsupportedVersion { got: None }),
    }
}

/// Body of `GET /provisioning/health`. (ext) `deep_link_purposes`: the purposes
/// `POST /provisioning/deep_links` serves (providers declare theirs; the protocol names no
/// field for it).
pub fn health() -> Value {
    json!({"status": "ok", "supported_versions": SUPPORTED_VERSIONS,
           "deep_link_purposes": crate::dashboard::place::purposes()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version() {
        assert_eq!(check_api_version(Some("0.1d")), Ok(()));
        assert_eq!(check_api_version(Some(" 0.1d ")), Ok(()));
        assert_eq!(
            check_api_version(None),
            Err(UnsupportedVersion { got: None })
        );
        assert_eq!(
            check_api_version(Some("")),
            Err(UnsupportedVersion { got: None })
        );
        assert_eq!(
            check_api_version(Some("0.1c")),
            Err(UnsupportedVersion {
                got: Some("0.1c".into())
            })
        );
        assert!(check_api_version(Some("0.1D")).is_err());
    }

    #[test]
    fn health_shape() {
        assert_eq!(
            health(),
            json!({"status": "ok", "supported_versions": ["0.1d"],
                   "deep_link_purposes": ["dashboard", "billing"]})
        );
    }
}
