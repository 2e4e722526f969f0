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
        case("browser::dashboard_in_chromium", dashboard_in_chromium),
    ]
}

fn drive(url: &str, email: &str, decision: &str) -> Value {
    let input = serde_json::json!({"url": url, "email": email, "decision": decision, "callback": callback_url()});
    run_script("consent.mjs", &input)
}

pub fn run_script(script: &str, input: &Value) -> Value {
    let out = Command::new(root().join("node_modules/.bin/node"))
        .arg(root().join("test/browser").join(script))
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

fn dashboard_in_chromium() {
    use crate::resources::{call, create, ok, pay, spt};
    use app_client::Call;
    let owner = email();
    let t = new_account(&owner);
    ok(&create(
        &t.access,
        serde_json::json!({"service_id": "free", "project_id": "p"}),
    ));
    let q = ok(&create(
        &t.access,
        serde_json::json!({"service_id": "domain", "project_id": "web", "configuration": {"domain_query": unique("dash")},
                           "payment_credentials": pay(&spt(5000))}),
    ));
    let id = q["id"].as_str().unwrap().to_string();
    let name = q["needs_information"]["schema"]["properties"]["domain"]["enum"][0]
        .as_str()
        .unwrap()
        .to_string();
    let link = ok(&call(
        &t.access,
        Call::post_json(
            "/provisioning/deep_links",
            &serde_json::json!({"purpose": "dashboard"}),
        ),
    ));
    assert_eq!(link["purpose"], "dashboard");
    let r = run_script(
        "dashboard.mjs",
        &serde_json::json!({"url": link["url"], "cap_dollars": 50, "raise_dollars": 500,
                            "email": owner, "buy": name}),
    );
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["owner"], owner.as_str());
    assert!(r["plan"].as_str().unwrap().starts_with("free"), "{r}");
    assert_eq!(r["spend_before"], "$0.00 of $100.00 cap");
    assert_eq!(r["sign_in_offered"], true, "{r}");
    // The agent's link alone can neither raise the cap nor buy (issue 18: it set $10,000).
    assert_eq!(r["raise_refused_status"], 403, "{r}");
    assert_eq!(
        r["raise_refused_notice"],
        "Raising the cap needs the owner's sign-in: sign in below, then try again. Nothing was changed."
    );
    assert_eq!(r["spend_after_refused"], "$0.00 of $100.00 cap");
    assert_eq!(r["buy_refused_status"], 403, "{r}");
    assert_eq!(
        r["buy_refused_notice"],
        "Buying needs the owner's sign-in: sign in below, then try again. Nothing was changed."
    );
    // Lowering stays one click.
    assert_eq!(r["cap_status"], 200, "{r}");
    assert_eq!(r["cap_notice"], "The monthly cap is now $50.00.");
    assert_eq!(r["spend_after_cap"], "$0.00 of $50.00 cap");
    // Signed in, the owner raises the cap and buys.
    assert_eq!(r["sign_in_status"], 200, "{r}");
    assert_eq!(
        r["sign_in_notice"],
        "Signed in: you can now raise the cap or buy."
    );
    assert!(r["signed_in"].as_str().unwrap().contains(&owner), "{r}");
    assert_eq!(r["raise_status"], 200, "{r}");
    assert_eq!(r["raise_notice"], "The monthly cap is now $500.00.");
    assert_eq!(r["spend_after_raise"], "$0.00 of $500.00 cap");
    assert_eq!(r["buy_label"], format!("Buy {name} for $12.00"));
    assert_eq!(
        r["buy_notice"],
        format!("Purchase of {name} confirmed."),
        "{r}"
    );
    assert!(r["resources"].as_str().unwrap().contains(&name), "{r}");
    assert_eq!(r["spend_after_buy"], "$12.00 of $500.00 cap");
    assert!(
        r["scroll_width"].as_u64().unwrap() <= 390,
        "fits a phone: {r}"
    );
    // Chromium reports each 403 page (the two refusals) as a failed load; nothing else, so no
    // CSP violation or script error.
    let errors: Vec<&str> = r["flow_console_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    let refusal = "Failed to load resource: the server responded with a status of 403 (Forbidden)";
    assert_eq!(errors, [refusal, refusal], "{r}");
    assert_eq!(r["reopen_status"], 409);
    assert_eq!(r["reopen_title"], "This link was already used");
    // The purchase is visible to the agent, and was charged once.
    let done = ok(&crate::resources::get(&t.access, &id));
    assert_eq!(done["status"], "complete");
    assert_eq!(
        done["complete"]["access_configuration"]["DOMAIN"],
        name.as_str()
    );
    let rows = audit_rows(&t.account, 10);
    let by_owner: Vec<&str> = rows
        .iter()
        .filter(|r| r["actor"] == "owner")
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for a in ["dashboard.opened", "spend.cap_changed", "domain.confirmed"] {
        assert!(by_owner.contains(&a), "{a} by the owner: {by_owner:?}");
    }
    // Each owner record says how the owner authenticated: the refused raise left none.
    let how = |action: &str| -> Vec<(String, String)> {
        rows.iter()
            .filter(|r| r["action"] == action)
            .map(|r| {
                (
                    r["authentication"].as_str().unwrap_or("null").to_string(),
                    r["after"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let caps = how("spend.cap_changed");
    assert_eq!(caps.len(), 2, "{caps:?}");
    assert_eq!(caps[0].0, "deep_link", "lowered by the link: {caps:?}");
    assert!(caps[0].1.contains("5000"), "{caps:?}");
    assert_eq!(caps[1].0, "owner_sign_in", "raised signed in: {caps:?}");
    assert!(caps[1].1.contains("50000"), "{caps:?}");
    assert_eq!(how("dashboard.opened")[0].0, "deep_link");
    assert_eq!(how("dashboard.signed_in")[0].0, "owner_sign_in");
    assert_eq!(how("domain.confirmed")[0].0, "owner_sign_in");
    assert_eq!(
        domain::audit::verify_chain(&as_records(&rows)),
        Ok(()),
        "the hash covers the authentication"
    );
}
