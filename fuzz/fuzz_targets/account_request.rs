//! `POST /provisioning/account_requests` bodies.
#![no_main]

mod common;

use common::NOW;
use domain::account_request::{self, SUPPORTED_SCOPES};
use domain::email;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let peeked = account_request::peek_id(data);
    let Ok(r) = account_request::parse(data, NOW) else {
        return;
    };
    assert_eq!(peeked, r.id);
    assert!(r.expires_at.is_none_or(|t| t > NOW));
    assert_eq!(email::normalize(&r.email).as_deref(), Ok(r.email.as_str()));
    assert!(!r.scopes.is_empty());
    assert!(
        r.scopes.windows(2).all(|w| w[0] < w[1]),
        "scopes sorted, no repeats"
    );
    assert!(r
        .scopes
        .iter()
        .all(|s| SUPPORTED_SCOPES.contains(&s.as_str())));
    assert!(r.configuration.as_ref().is_none_or(|c| c.is_object()));
    assert_eq!(r.orchestrator.kind, "stripe");
    assert!(!r.orchestrator.account.trim().is_empty());
    // Deterministic: the same body gives the same fingerprint.
    let again = account_request::parse(data, NOW).expect("parses twice");
    assert_eq!(again.fingerprint, r.fingerprint);
});
