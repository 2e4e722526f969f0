//! The consent page in a real headless Chromium (Debian's `chromium`, driven by playwright-core):
//! open the link, sign in, approve or deny, land on the orchestrator's callback.

use std::process::Command;

use app_tests::root;
use libtest_mimic::Trial;
use serde_json::Value;

use crate::common::*;
use crate::consent::pending_consent;

pub fn trials() -> Vec<Trial> {
    vec![
        case(
            "browser::approve_in_chromium_gives_a_working_code",
            approve_in_chromium_gives_a_working_code,
        ),
        case("browser::deny_in_chromium", deny_in_chromium),
    ]
}

fn drive(url: &str, email: &str, decision: &str) -> Value {
    let input = serde_json::json!({"url": url, "email": email, "decision": decision, "callback": callback_url()});
    let out = Command::new(root().join("node_modules/.bin/node"))
        .arg(root().join("test/browser/consent.mjs"))
        .arg(input.to_string())
        .current_dir(root())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "browser script output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(result.get("error").is_none(), "browser: {result}");
    result
}

fn param(url: &str, name: &str) -> Option<String> {
    url.split_once('?')?.1.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn approve_in_chromium_gives_a_working_code() {
    let p = pending_consent();
    let r = drive(&p.url, &p.email, "approve");
    assert_eq!(r["sign_in_status"], 200);
    assert_eq!(r["shows_email"], p.email.as_str());
    assert!(
        r["shows_orchestrator"]
            .as_str()
            .unwrap()
            .contains("acct_stripe_test"),
        "{r}"
    );
    assert!(
        r["shows_scopes"]
            .as_str()
            .unwrap()
            .contains("resources:write"),
        "{r}"
    );
    assert_eq!(
        r["main_background"], "rgb(255, 255, 255)",
        "the style applied under the CSP"
    );
    assert!(
        r["scroll_width"].as_u64().unwrap() <= 390,
        "fits a phone: {r}"
    );
    assert!(
        r["approve_scroll_width"].as_u64().unwrap() <= 390,
        "fits a phone: {r}"
    );
    assert_eq!(
        r["flow_console_errors"],
        serde_json::json!([]),
        "no CSP violation or script error"
    );
    let landed = r["final_url"].as_str().unwrap();
    assert!(landed.starts_with(&callback_url()), "{landed}");
    assert_eq!(
        param(landed, "state").as_deref(),
        Some(p.request_id.as_str())
    );
    let code = param(landed, "code").expect("code on the callback");
    let t = tokens_of(&provider().exchange_code(&code, None, true).unwrap());
    assert_eq!(t.account, p.account);
    assert_eq!(r["reopen_status"], 409);
    assert_eq!(r["reopen_title"], "Already approved");
}

fn deny_in_chromium() {
    let p = pending_consent();
    let r = drive(&p.url, &p.email, "deny");
    let landed = r["final_url"].as_str().unwrap();
    assert!(landed.starts_with(&callback_url()), "{landed}");
    assert_eq!(param(landed, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(landed, "code"), None);
    assert_eq!(r["reopen_title"], "Already denied");
}
