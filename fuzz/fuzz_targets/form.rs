//! `application/x-www-form-urlencoded` bodies: strict parsing, and encode/parse round trips.
#![no_main]

use arbitrary::Unstructured;
use domain::form::{self, Form, MAX_FIELDS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = Form::parse(data) {
        // Strict: every '%' starts an escape of exactly two hex digits.
        let mut i = 0;
        while i < data.len() {
            if data[i] == b'%' {
                let escape = data.get(i + 1..i + 3);
                assert!(
                    escape.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
                    "accepted an invalid %-escape at byte {i}"
                );
                i += 3;
            } else {
                i += 1;
            }
        }
        assert_eq!(parsed.get(""), parsed.get(""));
    }

    // Whatever fields we encode parse back unchanged.
    let mut u = Unstructured::new(data);
    let Ok(fields) = u.arbitrary::<Vec<(String, String)>>() else {
        return;
    };
    let mut unique: Vec<(&str, &str)> = Vec::new();
    for (k, v) in &fields {
        if unique.len() < MAX_FIELDS && !unique.iter().any(|(seen, _)| seen == k) {
            unique.push((k, v));
        }
    }
    let text = form::encode(&unique);
    let parsed = Form::parse(text.as_bytes()).expect("an encoded form parses");
    for (k, v) in unique {
        assert_eq!(parsed.get(k), Some(v).filter(|v| !v.is_empty()));
    }
});
