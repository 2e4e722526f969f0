//! Resource request bodies: create (against the default catalog), update, confirm, deep link,
//! and the empty bodies of rotate and remove.
#![no_main]

mod common;

use domain::dashboard::place::{check_path, Place};
use domain::resources;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let catalog = common::catalog();
    for call in [resources::CreateCall::Create, resources::CreateCall::Link] {
        if let Ok(req) = resources::parse_create(data, catalog, call, None) {
            let service = catalog.get(&req.service_id).expect("a known service");
            // A link's configuration is checked only when sent; a create's always.
            if call == resources::CreateCall::Create || req.configuration != serde_json::json!({}) {
                assert!(service.validate_configuration(&req.configuration).is_ok());
            }
        }
    }
    if let Ok(req) = resources::parse_create(data, catalog, resources::CreateCall::Create, None) {
        let service = catalog.get(&req.service_id).expect("a known service");
        assert!(service.validate_configuration(&req.configuration).is_ok());
        assert!(req.configuration.is_object());
        assert!(!req.project_id.is_empty() && req.project_id.len() <= 128);
        assert!(req
            .payment_token
            .as_deref()
            .is_none_or(|t| t.starts_with("spt_")));
    }
    if let Ok(req) = resources::parse_update(data) {
        assert!(req.service_id.is_some_and(|s| !s.is_empty()) || req.configuration.is_some());
    }
    if let Ok(req) = resources::parse_confirm(data) {
        assert!(!req.domain.is_empty());
    }
    if let Ok(req) = resources::parse_deep_link(data) {
        assert!(Place::of_purpose(&req.purpose).is_some());
        // A path is always a place inside the dashboard, never another origin.
        if let Some(path) = &req.path {
            assert_eq!(check_path(path), Ok(()));
            assert!(Place::parse(path).is_some());
            assert!(path.starts_with('/') && !path.starts_with("//") && !path.contains(".."));
        }
    }
    let empty = resources::parse_empty(data);
    if data.iter().all(u8::is_ascii_whitespace) {
        assert!(empty.is_ok());
    }
});
