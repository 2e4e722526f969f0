//! Native micro-benchmarks of the domain crate's hot paths: what one request costs in CPU time
//! (Workers bill CPU time). Standard library only.
//!
//! `cargo bench -p app-domain` runs every benchmark for about 0.5 s (warm-up, then 5 runs; the
//! table shows the median run). `BENCH_QUICK=1` runs each for about 20 ms (CI smoke test).
//! Extra arguments filter by name: `cargo bench -p app-domain -- signature`.
//!
//! The bench profile inherits `[profile.release]` (opt-level "z", fat LTO), the worker's
//! settings; `CARGO_PROFILE_BENCH_OPT_LEVEL=3 cargo bench -p app-domain` shows what speed
//! opt-level "z" gives up. These are native x86-64 numbers: the worker runs the same code as
//! wasm32 under V8, where signature checks measured 3-4x slower and event parsing about 1.5x
//! slower (Node 22, same machine), so read them as a lower bound.

use std::hint::black_box;
use std::time::{Duration, Instant};

use app_domain::account::Account;
use app_domain::account_request;
use app_domain::audit::{self, Actor, ActorKind, ChainHead, Entry};
use app_domain::catalog::{Catalog, DEFAULT_CATALOG};
use app_domain::schema;
use app_domain::signature::{self, DEFAULT_TOLERANCE_SECS};
use app_domain::stripe_events;
use app_domain::tokens::{self, TokenKind};
use serde_json::{json, Value};

const RUNS: usize = 5;
/// A stored account state (`kv.account`) as a black-box run left it: a plan, an API token, an
/// operator service and a domain awaiting confirmation, plus a plan change's job in flight and
/// an approved consent (4.4 KB).
const ACCOUNT_STATE: &str = include_str!("account_state.json");
const NOW: i64 = 1_795_860_000; // 2026-11-28T10:00:00Z

struct Budget {
    warm_up: Duration,
    per_run: Duration,
}

struct Row {
    name: &'static str,
    median_ns: f64,
    min_ns: f64,
    max_ns: f64,
    iterations: u64,
}

/// Times `f`: warm-up while calibrating the batch size, then `RUNS` timed runs.
fn measure(name: &'static str, budget: &Budget, mut f: impl FnMut()) -> Row {
    let start = Instant::now();
    let mut batch: u64 = 1;
    let mut per_op = f64::MAX;
    while start.elapsed() < budget.warm_up || per_op == f64::MAX {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        let took = t.elapsed();
        per_op = per_op.min(took.as_nanos() as f64 / batch as f64);
        if took < budget.warm_up / 10 {
            batch *= 2;
        }
    }
    let iterations = ((budget.per_run.as_nanos() as f64 / per_op.max(1.0)) as u64).max(1);
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iterations {
                f();
            }
            t.elapsed().as_nanos() as f64 / iterations as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    Row {
        name,
        median_ns: runs[RUNS / 2],
        min_ns: runs[0],
        max_ns: runs[RUNS - 1],
        iterations,
    }
}

/// Nanoseconds with thousands separators; one decimal below 100 ns.
fn ns(x: f64) -> String {
    if x < 100.0 {
        format!("{x:.1}")
    } else {
        grouped(x)
    }
}

fn grouped(n: f64) -> String {
    let digits = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn verifier<'a>(header: &'a str, body: &'a [u8], secrets: &'a [&'a [u8]]) -> impl FnMut() + 'a {
    move || {
        let r = signature::verify(
            Some(black_box(header)),
            black_box(body),
            black_box(secrets),
            NOW,
            DEFAULT_TOLERANCE_SECS,
        );
        assert!(black_box(r).is_ok());
    }
}

fn body_of(size: usize) -> Vec<u8> {
    // JSON-ish bytes of exactly `size`: the verifier does not parse, only hashes.
    let mut body = br#"{"id":"acctreq_123","padding":""#.to_vec();
    body.resize(size - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

const ACCOUNT_REQUEST: &str = r#"{"id":"acctreq_123","object":"account_request","email":"dev@example.com","name":"Dev",
 "scopes":["resources:write"],"client_capabilities":["browser"],
 "confirmation_secret":"cs_1","expires_at":"2026-11-28T12:00:00Z",
 "configuration":{"region":"eu"},
 "orchestrator":{"type":"stripe","stripe":{"organisation":"org_1","account":"acct_1"}},
 "code_challenge":"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM","code_challenge_method":"S256"}"#;

/// An `invoice.paid` event shaped like Stripe's, padded with line items to about 5 KB.
fn invoice_event() -> Vec<u8> {
    let line = |i: usize| {
        json!({
            "id": format!("il_1QxYzAbCdEfGhIjK{i:02}"), "object": "line_item",
            "amount": 2000, "currency": "usd",
            "description": "1 × Pro plan (at $20.00 / month)",
            "period": {"start": NOW, "end": NOW + 2_592_000},
            "pricing": {"price_details": {"price": "price_pro_monthly", "product": "prod_pro"}},
            "quantity": 1, "metadata": {}
        })
    };
    let event = |lines: Vec<Value>| {
        json!({
            "id": "evt_1QxYzAbCdEfGhIjKlMnOpQrS", "object": "event", "api_version": "2025-09-30.clover",
            "created": NOW, "livemode": false, "pending_webhooks": 1, "type": "invoice.paid",
            "request": {"id": null, "idempotency_key": null},
            "data": {"object": {
                "id": "in_1QxYzAbCdEfGhIjK", "object": "invoice", "amount_due": 2000, "amount_paid": 2000,
                "amount_remaining": 0, "currency": "usd", "customer": "cus_QxYzAbCdEfGhIj",
                "customer_email": "dev@example.com", "status": "paid", "billing_reason": "subscription_cycle",
                "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1/test_YWNjdF8x",
                "parent": {"type": "subscription_details", "subscription_details": {
                    "subscription": "sub_1QxYzAbCdEfGhIjK",
                    "metadata": {"account_id": "acct_aaaaaaaaaaaaaaaa", "service_id": "paid"}}},
                "lines": {"object": "list", "has_more": false, "data": lines},
                "status_transitions": {"finalized_at": NOW, "paid_at": NOW}
            }}
        })
    };
    let mut lines = Vec::new();
    loop {
        let body = serde_json::to_vec(&event(lines.clone())).expect("serialises");
        if body.len() >= 5 * 1024 {
            return body;
        }
        lines.push(line(lines.len()));
    }
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0");
    let budget = if quick {
        Budget {
            warm_up: Duration::from_millis(5),
            per_run: Duration::from_millis(3),
        }
    } else {
        Budget {
            warm_up: Duration::from_millis(100),
            per_run: Duration::from_millis(80),
        }
    };
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));

    let secret: &[u8] = b"whsec_bench_0123456789abcdef0123456789abcdef";
    let rotation: [&[u8]; 3] = [
        b"whsec_old_one_0123456789",
        b"whsec_old_two_0123456789",
        secret,
    ];
    let body_1k = body_of(1024);
    let body_64k = body_of(64 * 1024);
    let header_1k = signature::sign_header(secret, NOW, &body_1k);
    let header_64k = signature::sign_header(secret, NOW, &body_64k);
    let catalog = Catalog::parse(DEFAULT_CATALOG).expect("the default catalog parses");
    let api_token_schema = &catalog
        .get("api_token")
        .expect("api_token is in the default catalog")
        .configuration_schema;
    let configuration = json!({"scopes": ["deploy:write", "logs:read"], "label": "ci deploys"});
    let event = invoice_event();
    let audit_template = Entry {
        at: NOW,
        actor: Actor::new(ActorKind::Orchestrator, Some("acct_1")),
        on_behalf_of: Some("dev@example.com".into()),
        action: app_domain::audit::AuditAction::ResourceCreated,
        request_id: Some("req_0123456789".into()),
        consent: Some("grant:gr_0123456789".into()),
        before: Value::Null,
        after: json!({"id": "res_0123456789", "service_id": "api_token", "status": "complete",
            "project_id": "proj_1", "configuration": configuration}),
    };
    let account = tokens::account_id(&[7; 10]);

    type Case<'a> = (&'static str, Box<dyn FnMut() + 'a>);
    let mut counter: u64 = 0;
    let mut head = ChainHead::default();
    let cases: Vec<Case> = vec![
        (
            "signature::verify 1 KB, 1 secret",
            Box::new(verifier(&header_1k, &body_1k, &rotation[2..])),
        ),
        (
            "signature::verify 1 KB, 3 secrets",
            Box::new(verifier(&header_1k, &body_1k, &rotation)),
        ),
        (
            "signature::verify 64 KB, 1 secret",
            Box::new(verifier(&header_64k, &body_64k, &rotation[2..])),
        ),
        (
            "signature::verify 64 KB, 3 secrets",
            Box::new(verifier(&header_64k, &body_64k, &rotation)),
        ),
        (
            "tokens::mint (+ SHA-256 hash)",
            Box::new(|| {
                counter = counter.wrapping_add(1);
                let mut random = [0u8; 20];
                random[..8].copy_from_slice(&counter.to_le_bytes());
                black_box(tokens::mint(
                    TokenKind::Access,
                    &account,
                    b"bench-token-mac-key",
                    black_box(&random),
                ));
            }),
        ),
        (
            "catalog::Catalog::parse (default)",
            Box::new(|| {
                black_box(Catalog::parse(black_box(DEFAULT_CATALOG)).is_ok());
            }),
        ),
        (
            "schema::validate (api_token config)",
            Box::new(|| {
                let r = schema::validate(black_box(api_token_schema), black_box(&configuration));
                assert!(black_box(r).is_ok());
            }),
        ),
        (
            "audit::seal",
            Box::new(|| {
                let entry = audit_template.clone();
                black_box(audit::seal(&account, &mut head, black_box(entry)));
            }),
        ),
        (
            "account_request::parse (docs/PROTOCOL.md §3.1)",
            Box::new(|| {
                let r = account_request::parse(black_box(ACCOUNT_REQUEST.as_bytes()), NOW);
                assert!(black_box(r).is_ok());
            }),
        ),
        (
            "stored account state decode (4.4 KB)",
            Box::new(|| {
                let r = serde_json::from_str::<Account>(black_box(ACCOUNT_STATE));
                assert!(black_box(r).is_ok());
            }),
        ),
        (
            "stripe_events::parse_event (5 KB invoice)",
            Box::new(|| {
                let r = stripe_events::parse_event(black_box(&event));
                assert!(black_box(r).is_ok());
            }),
        ),
    ];

    println!(
        "app-domain micro-benchmarks ({} mode: median of {RUNS} runs of ~{} ms each; invoice event {} bytes)",
        if quick { "quick" } else { "full" },
        budget.per_run.as_millis(),
        event.len()
    );
    let name_w = cases.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    println!(
        "{:<name_w$}  {:>10}  {:>13}  {:>21}  {:>10}",
        "benchmark", "ns/op", "ops/s", "min .. max", "iters/run"
    );
    println!("{}", "-".repeat(name_w + 2 + 10 + 2 + 13 + 2 + 21 + 2 + 10));
    for (name, mut f) in cases {
        if !wanted(name) {
            continue;
        }
        let row = measure(name, &budget, &mut *f);
        println!(
            "{:<name_w$}  {:>10}  {:>13}  {:>21}  {:>10}",
            row.name,
            ns(row.median_ns),
            grouped(1e9 / row.median_ns),
            format!("{} .. {}", ns(row.min_ns), ns(row.max_ns)),
            row.iterations
        );
    }
}
