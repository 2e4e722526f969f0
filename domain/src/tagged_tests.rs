//! The enums written with [`crate::tagged`] (stored in the account object, or, for
//! `Outcome`, the directory object's answer) keep the shape serde's `#[serde(tag)]`
//! derive wrote: each fixture below is that derive's output (captured before the change), read
//! back and written again byte for byte.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::account::ConsentState;
use crate::account_request::{OauthOutcome, Outcome, RequiresAuth};
use crate::catalog::Registrar;
use crate::resources::model::{
    Candidate, Detail, ErrorInfo, InformationAsked, Job, OneTimePurchase, OperatorAction,
    OperatorBilling, Quote, UsageBilling,
};
use crate::sealing::Sealed;

fn s(v: &str) -> String {
    v.to_string()
}

fn jobs() -> Vec<Job> {
    vec![
        Job::Subscribe {
            target_service: s("pro"),
            token: s("spt_1"),
            amount: 2000,
            currency: s("usd"),
            stripe_price: s("price_1"),
            period_days: 30,
            charge_id: s("ch_1"),
            token_checked: true,
            payment_intent: Some(s("pi_1")),
            payment_method: None,
            replaces: Some(s("sub_0")),
            subscription: None,
            then_operator: Some(s("https://backend.example/v1")),
        },
        Job::Subscribe {
            target_service: s("pro"),
            token: s("spt_1"),
            amount: 2000,
            currency: s("usd"),
            stripe_price: s("price_1"),
            period_days: 30,
            charge_id: s("ch_1"),
            token_checked: false,
            payment_intent: None,
            payment_method: None,
            replaces: None,
            subscription: None,
            then_operator: None,
        },
        Job::Unsubscribe {
            target_service: None,
            subscription_id: s("sub_1"),
        },
        Job::BuyDomain {
            domain: s("example.dev"),
            amount: 1200,
            currency: s("usd"),
            token: s("spt_2"),
            charge_id: s("ch_2"),
            token_checked: true,
            claimed: false,
            payment_intent: None,
        },
        Job::ReleaseDomain {
            domain: s("example.dev"),
            then_remove: true,
        },
        Job::Refund {
            payment_intent: s("pi_3"),
            charge_id: s("ch_3"),
            amount: 500,
            reason: ErrorInfo {
                code: s("card_declined"),
                message: s("declined"),
            },
            keep_current: true,
            cancel_subscription: Some(s("sub_3")),
        },
        Job::Purchase {
            amount: 4900,
            currency: s("eur"),
            token: s("spt_4"),
            charge_id: s("ch_4"),
            token_checked: false,
            payment_intent: Some(s("pi_4")),
            then_operator: s("https://backend.example/v1"),
        },
        Job::StartMetered {
            token: s("spt_5"),
            currency: s("usd"),
            stripe_price: s("price_5"),
            event_name: s("tokens"),
            key: s("key_5"),
            token_checked: true,
            payment_method: Some(s("pm_5")),
            then_operator: s("https://backend.example/v1"),
        },
        Job::Operator {
            action: OperatorAction::Update,
            url: s("https://backend.example/v1"),
            submitted_information: Some(json!({"b": 1, "a": [true, null]})),
            configuration: Some(json!({"region": "eu"})),
            call: Some(7),
        },
        Job::Operator {
            action: OperatorAction::Create,
            url: s("https://backend.example/v1"),
            submitted_information: None,
            configuration: None,
            call: None,
        },
    ]
}

fn details() -> Vec<Detail> {
    let mut access = BTreeMap::new();
    access.insert(s("DATABASE_URL"), s("postgres://x"));
    vec![
        Detail::Plan {
            subscription_id: Some(s("sub_1")),
            subscription_status: Some(s("active")),
            past_due_since: None,
            suspended: false,
        },
        Detail::ApiToken {
            scopes: vec![s("read"), s("write")],
            label: None,
            generation: 2,
            token_hash: s("abc"),
            sealed: Some(Sealed {
                kid: s("k1"),
                nonce: s("n"),
                ciphertext: s("c"),
            }),
        },
        Detail::ApiToken {
            scopes: vec![],
            label: Some(s("ci")),
            generation: 1,
            token_hash: s("def"),
            sealed: None,
        },
        Detail::Domain {
            query: s("example"),
            registrar: Registrar::Upstream,
            quote: Some(Quote {
                candidates: vec![Candidate {
                    domain: s("example.dev"),
                    amount: 1200,
                    currency: s("usd"),
                    available: true,
                }],
                expires_at: 1_800_000_000,
            }),
            payment_token: Some(s("spt_2")),
            domain: None,
            expires_at: None,
        },
        Detail::Operator {
            access_configuration: Some(access),
            asked: Some(InformationAsked {
                action: OperatorAction::Create,
                schema: json!({"type": "object"}),
                purchase: Some(OneTimePurchase {
                    amount: 4900,
                    currency: s("usd"),
                    payment_token: None,
                }),
            }),
            billing: Some(OperatorBilling {
                subscription_id: None,
                payment_intent: s("pi_6"),
                charge_id: s("ch_6"),
                amount: 4900,
            }),
            usage: Some(UsageBilling {
                subscription_id: s("sub_7"),
                event_name: s("tokens"),
            }),
        },
        Detail::Operator {
            access_configuration: None,
            asked: None,
            billing: None,
            usage: None,
        },
    ]
}

fn consents() -> Vec<ConsentState> {
    vec![
        ConsentState::Pending,
        ConsentState::SignedIn {
            csrf_hash: s("h"),
            at: 10,
        },
        ConsentState::Approved { at: 11 },
        ConsentState::Denied { at: 12 },
    ]
}

fn outcomes() -> Vec<Outcome> {
    vec![
        Outcome::Oauth {
            oauth: OauthOutcome { code: s("code_1") },
        },
        Outcome::RequiresAuth {
            requires_auth: RequiresAuth {
                url: s("https://provider.example/oauth/authorize?consent=c"),
            },
        },
    ]
}

/// Each value is written as its fixture, and the fixture reads back as the value.
fn same_shape<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    values: Vec<T>,
    fixtures: &[&str],
) {
    let written: Vec<String> = values
        .iter()
        .map(|v| serde_json::to_string(v).expect("writes"))
        .collect();
    assert_eq!(written, fixtures, "the shape the earlier derive wrote");
    for (value, text) in values.iter().zip(fixtures) {
        let read: T = serde_json::from_str(text).expect("reads the earlier shape");
        assert_eq!(&read, value, "{text}");
    }
}

const JOBS: &[&str] = &[
    r#"{"job":"subscribe","target_service":"pro","token":"spt_1","amount":2000,"currency":"usd","stripe_price":"price_1","period_days":30,"charge_id":"ch_1","token_checked":true,"payment_intent":"pi_1","payment_method":null,"replaces":"sub_0","subscription":null,"then_operator":"https://backend.example/v1"}"#,
    r#"{"job":"subscribe","target_service":"pro","token":"spt_1","amount":2000,"currency":"usd","stripe_price":"price_1","period_days":30,"charge_id":"ch_1","token_checked":false,"payment_intent":null,"payment_method":null,"replaces":null,"subscription":null}"#,
    r#"{"job":"unsubscribe","target_service":null,"subscription_id":"sub_1"}"#,
    r#"{"job":"buy_domain","domain":"example.dev","amount":1200,"currency":"usd","token":"spt_2","charge_id":"ch_2","token_checked":true,"claimed":false,"payment_intent":null}"#,
    r#"{"job":"release_domain","domain":"example.dev","then_remove":true}"#,
    r#"{"job":"refund","payment_intent":"pi_3","charge_id":"ch_3","amount":500,"reason":{"code":"card_declined","message":"declined"},"keep_current":true,"cancel_subscription":"sub_3"}"#,
    r#"{"job":"purchase","amount":4900,"currency":"eur","token":"spt_4","charge_id":"ch_4","token_checked":false,"payment_intent":"pi_4","then_operator":"https://backend.example/v1"}"#,
    r#"{"job":"start_metered","token":"spt_5","currency":"usd","stripe_price":"price_5","event_name":"tokens","key":"key_5","token_checked":true,"payment_method":"pm_5","then_operator":"https://backend.example/v1"}"#,
    r#"{"job":"operator","action":"update","url":"https://backend.example/v1","submitted_information":{"a":[true,null],"b":1},"configuration":{"region":"eu"},"call":7}"#,
    r#"{"job":"operator","action":"create","url":"https://backend.example/v1"}"#,
];
const DETAILS: &[&str] = &[
    r#"{"type":"plan","subscription_id":"sub_1","subscription_status":"active","past_due_since":null,"suspended":false}"#,
    r#"{"type":"api_token","scopes":["read","write"],"label":null,"generation":2,"token_hash":"abc","sealed":{"kid":"k1","nonce":"n","ciphertext":"c"}}"#,
    r#"{"type":"api_token","scopes":[],"label":"ci","generation":1,"token_hash":"def"}"#,
    r#"{"type":"domain","query":"example","registrar":"upstream","quote":{"candidates":[{"domain":"example.dev","amount":1200,"currency":"usd","available":true}],"expires_at":1800000000},"payment_token":"spt_2","domain":null,"expires_at":null}"#,
    r#"{"type":"operator","access_configuration":{"DATABASE_URL":"postgres://x"},"asked":{"action":"create","schema":{"type":"object"},"purchase":{"amount":4900,"currency":"usd"}},"billing":{"payment_intent":"pi_6","charge_id":"ch_6","amount":4900},"usage":{"subscription_id":"sub_7","event_name":"tokens"}}"#,
    r#"{"type":"operator","access_configuration":null}"#,
];
const OUTCOMES: &[&str] = &[
    r#"{"type":"oauth","oauth":{"code":"code_1"}}"#,
    r#"{"type":"requires_auth","requires_auth":{"url":"https://provider.example/oauth/authorize?consent=c"}}"#,
];
const CONSENTS: &[&str] = &[
    r#"{"state":"pending"}"#,
    r#"{"state":"signed_in","csrf_hash":"h","at":10}"#,
    r#"{"state":"approved","at":11}"#,
    r#"{"state":"denied","at":12}"#,
];

#[test]
fn jobs_keep_their_stored_shape() {
    same_shape(jobs(), JOBS);
}

#[test]
fn details_keep_their_stored_shape() {
    same_shape(details(), DETAILS);
}

#[test]
fn consent_states_keep_their_stored_shape() {
    same_shape(consents(), CONSENTS);
}

#[test]
fn account_request_outcomes_keep_their_shape() {
    same_shape(outcomes(), OUTCOMES);
}

/// The error of reading `text` as `T`.
fn refusal<T: DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
    serde_json::from_str::<T>(text).unwrap_err().to_string()
}

#[test]
fn a_tag_that_is_not_the_first_key_is_refused_with_the_reason() {
    // No writer of these shapes puts it elsewhere; a reader that guessed would be buffering.
    let e = refusal::<ConsentState>(r#"{"at":11,"state":"approved"}"#);
    assert!(
        e.contains("expected `state` as the object's first key"),
        "{e}"
    );
    let e = refusal::<Job>(r#"{"domain":"example.dev"}"#);
    assert!(
        e.contains("expected `job` as the object's first key"),
        "{e}"
    );
    let e = refusal::<Detail>("{}");
    assert!(
        e.contains("expected `type` as the object's first key"),
        "{e}"
    );
}

#[test]
fn unknown_variants_missing_fields_and_other_shapes_are_refused() {
    let e = refusal::<Job>(r#"{"job":"mine_bitcoin"}"#);
    assert!(e.contains("unknown variant `mine_bitcoin`"), "{e}");
    let e = refusal::<Job>(r#"{"job":"release_domain","domain":"example.dev"}"#);
    assert!(e.contains("missing field `then_remove`"), "{e}");
    let e = refusal::<Job>(r#"{"job":7}"#);
    assert!(
        e.contains("invalid type: integer `7`, expected a string"),
        "{e}"
    );
    for text in [r#""pending""#, "[]", "null", "3"] {
        let e = refusal::<ConsentState>(text);
        assert!(e.contains("first key is `state`"), "{text}: {e}");
    }
}

#[test]
fn unknown_keys_are_ignored_as_the_derive_ignored_them() {
    let read: ConsentState = serde_json::from_str(r#"{"state":"pending","note":1}"#).unwrap();
    assert_eq!(read, ConsentState::Pending);
    let read: ConsentState =
        serde_json::from_str(r#"{"state":"denied","later":[1],"at":12}"#).unwrap();
    assert_eq!(read, ConsentState::Denied { at: 12 });
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(remote = "Self")]
enum NotAnObject {
    Pair(u8, u8),
    Number(u8),
}
crate::internally_tagged!(NotAnObject, "kind");

#[test]
fn variants_that_are_not_objects_are_refused_both_ways() {
    for value in [NotAnObject::Pair(1, 2), NotAnObject::Number(3)] {
        let e = serde_json::to_string(&value).unwrap_err().to_string();
        assert!(e.contains("writes only unit and struct variants"), "{e}");
    }
    let e = refusal::<NotAnObject>(r#"{"kind":"Pair"}"#);
    assert!(
        e.contains("tuple variants cannot be internally tagged"),
        "{e}"
    );
}

/// How the catalog's enums read (as `Catalog::parse` reads a service: from a
/// `serde_json::Value`, whose keys come sorted): each input, and what it gave before the change
/// (`Ok`: written back, tag first), captured from serde's derive.
fn catalog_readings() -> Vec<String> {
    use crate::catalog::{Behaviour, ComponentOption, PaidPricing, PriceOption, Pricing};
    fn read<T: DeserializeOwned + Serialize>(text: &str) -> String {
        let value: serde_json::Value = serde_json::from_str(text).expect("json");
        match serde_json::from_value::<T>(value) {
            Ok(v) => format!("ok {}", serde_json::to_string(&v).expect("writes")),
            Err(e) => format!("err {e}"),
        }
    }
    vec![
        read::<PaidPricing>(r#"{"freeform":"$5","type":"freeform"}"#),
        read::<PaidPricing>(r#"{"type":"freeform","freeform":"$5","why":1}"#),
        read::<PaidPricing>(r#"{"freeform":"$5"}"#),
        read::<PaidPricing>(r#"{"type":"gratis"}"#),
        read::<PaidPricing>(r#"{"type":5}"#),
        read::<PaidPricing>(r#"{"type":null}"#),
        read::<PaidPricing>(r#""free""#),
        read::<PaidPricing>(r#"{"type":"free","description":7}"#),
        read::<PriceOption>(
            r#"{"configuration":{"plan":"pro"},"freeform":"$20","is_default":true,"type":"freeform"}"#,
        ),
        read::<PriceOption>(r#"{"type":"free","configuration":[]}"#),
        read::<ComponentOption>(
            r#"{"paid":{"freeform":"$1","type":"freeform"},"parent_service_ids":["pro"],"type":"paid"}"#,
        ),
        read::<ComponentOption>(r#"{"type":"free"}"#),
        read::<Pricing>(r#"{"type":"free"}"#),
        read::<Pricing>(r#"{"type":"free","x":1}"#),
        read::<Pricing>(r#"{"paid":{"type":"free"},"type":"paid"}"#),
        read::<Pricing>(r#"{"component":{"options":[]},"type":"component"}"#),
        read::<Pricing>(r#"{"type":"paid","paid_pricing":[{"type":"free","extra":true}]}"#),
        read::<Behaviour>(r#"{"scopes":["a"],"type":"api_token"}"#),
        read::<Behaviour>(r#"{"registrar":"builtin","type":"domain"}"#),
        read::<Behaviour>(r#"{"type":"plan","price":{"amount":100,"currency":"usd","x":1}}"#),
        read::<Behaviour>(
            r#"{"metered":{"currency":"usd","event_name":"e","stripe_price":"p"},"type":"operator_backend","url":"https://x.example"}"#,
        ),
        read::<Behaviour>(r#"{"type":"operator_backend"}"#),
    ]
}

const CATALOG_READINGS: &[&str] = &[
    r#"ok {"type":"freeform","freeform":"$5"}"#,
    r#"err unknown field `why`, expected `freeform` or `description`"#,
    r#"err missing field `type`"#,
    r#"err unknown variant `gratis`, expected `freeform` or `free`"#,
    r#"err invalid type: integer `5`, expected variant identifier"#,
    r#"err invalid type: null, expected variant identifier"#,
    r#"err invalid type: string "free", expected internally tagged enum PaidPricing"#,
    r#"err invalid type: integer `7`, expected a string"#,
    r#"ok {"type":"freeform","freeform":"$20","configuration":{"plan":"pro"},"is_default":true}"#,
    r#"err invalid type: sequence, expected a map"#,
    r#"ok {"type":"paid","parent_service_ids":["pro"],"paid":{"type":"freeform","freeform":"$1"}}"#,
    r#"err missing field `parent_service_ids`"#,
    r#"ok {"type":"free"}"#,
    r#"ok {"type":"free"}"#,
    r#"ok {"type":"paid","paid":{"type":"free"}}"#,
    r#"ok {"type":"component","component":{"options":[]}}"#,
    r#"err unknown field `extra`, expected one of `description`, `configuration`, `is_default`"#,
    r#"ok {"type":"api_token","scopes":["a"],"ttl_seconds":null}"#,
    r#"ok {"type":"domain","registrar":"builtin","price":null,"quote_ttl_seconds":900}"#,
    r#"err unknown field `x`, expected one of `amount`, `currency`, `interval`, `stripe_price`"#,
    r#"ok {"type":"operator_backend","url":"https://x.example","price":null,"metered":{"event_name":"e","stripe_price":"p","currency":"usd"}}"#,
    r#"err missing field `url`"#,
];

#[test]
fn the_catalogs_enums_read_as_before_in_any_key_order() {
    assert_eq!(catalog_readings(), CATALOG_READINGS);
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(remote = "Self")]
enum AnyOrder {
    Pair(u8, u8),
}
crate::internally_tagged!(AnyOrder, "kind", any_order);

#[test]
fn any_order_refuses_what_is_not_an_object_variant() {
    let e = refusal::<AnyOrder>(r#"{"x":1,"kind":"Pair"}"#);
    assert!(
        e.contains("tuple variants cannot be internally tagged"),
        "{e}"
    );
    let e = refusal::<AnyOrder>("[1, 2]");
    assert!(
        e.contains("expected internally tagged enum AnyOrder"),
        "{e}"
    );
}
