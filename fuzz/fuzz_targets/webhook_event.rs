//! Stripe webhook event bodies: parse, then find the account they belong to.
#![no_main]

use domain::{stripe_events, tokens};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = stripe_events::parse_event(data) else {
        return;
    };
    assert!(event.id.starts_with("evt_") && event.id.len() <= 255);
    assert!(!event.kind.is_empty() && event.kind.len() <= 128);
    assert!(event.object.is_object());
    if let Some(account) = event.account_hint() {
        assert!(tokens::valid_account_id(&account));
    }
    assert!(event.references().len() <= 3);
});
