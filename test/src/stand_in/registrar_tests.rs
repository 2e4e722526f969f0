//! The registrar over real HTTP.

use serde_json::{json, Value};

use super::clock::now;
use super::tests::{send, start, Resp};
use super::StandIn;

fn registrar(
    si: &StandIn,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut headers = vec![("Authorization", "Bearer rk_dev_registrar")];
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key));
    }
    let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
    send(&si.base_url, method, path, &headers, body)
}

#[test]
fn registrar_search_register_and_release() {
    let si = start();
    let unauthorized = send(
        &si.base_url,
        "GET",
        "/registrar/v1/search?query=shop",
        &[],
        None,
    );
    assert_eq!(unauthorized.status, 401);

    let search = registrar(&si, "GET", "/registrar/v1/search?query=shop", None, None);
    assert_eq!(search.status, 200, "{}", search.text);
    assert_eq!(
        search.body,
        json!({"candidates": [
            {"domain": "shop.com", "available": true, "price": {"amount": 1299, "currency": "usd"}},
            {"domain": "shop.dev", "available": true, "price": {"amount": 1599, "currency": "usd"}},
            {"domain": "shop.io", "available": true, "price": {"amount": 3999, "currency": "usd"}},
        ]})
    );
    for bad in [
        "",
        "?query=",
        "?query=bad%20label",
        "?query=-shop",
        "?query=shop.com",
    ] {
        let r = registrar(
            &si,
            "GET",
            &format!("/registrar/v1/search{bad}"),
            None,
            None,
        );
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.code(), "invalid_query");
    }

    let order = json!({"domain": "shop.dev", "years": 1, "contact_email": "owner@example.com"});
    let created = registrar(
        &si,
        "POST",
        "/registrar/v1/registrations",
        Some("r1"),
        Some(order.clone()),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap_or("").to_string();
    assert!(id.starts_with("reg_"));
    assert_eq!(created.body["domain"], "shop.dev");
    let expires = created.body["expires_at"].as_i64().unwrap_or(0);
    assert!((expires - now() - 365 * 86_400).abs() < 60);

    let replay = registrar(
        &si,
        "POST",
        "/registrar/v1/registrations",
        Some("r1"),
        Some(order.clone()),
    );
    assert_eq!(replay.status, 201);
    assert!(replay.replayed());
    assert_eq!(replay.text, created.text);
    let taken = registrar(
        &si,
        "POST",
        "/registrar/v1/registrations",
        Some("r2"),
        Some(order.clone()),
    );
    assert_eq!(taken.status, 409);
    assert_eq!(taken.code(), "domain_unavailable");
    let reused = registrar(
        &si,
        "POST",
        "/registrar/v1/registrations",
        Some("r1"),
        Some(json!({"domain": "shop.io", "years": 1, "contact_email": "owner@example.com"})),
    );
    assert_eq!(reused.status, 400);
    assert_eq!(reused.code(), "idempotency_error");
    let no_key = registrar(
        &si,
        "POST",
        "/registrar/v1/registrations",
        None,
        Some(order.clone()),
    );
    assert_eq!(no_key.code(), "idempotency_key_required");
    for (n, bad) in [
        json!({"domain": "shop.com", "years": 2, "contact_email": "owner@example.com"}),
        json!({"domain": "shop.org", "years": 1, "contact_email": "owner@example.com"}),
        json!({"domain": "shop.com", "years": 1, "contact_email": "nobody"}),
        json!({"domain": "shop.com", "years": 1, "contact_email": "owner@example.com", "x": 1}),
        json!(["shop.com"]),
    ]
    .into_iter()
    .enumerate()
    {
        let r = registrar(
            &si,
            "POST",
            "/registrar/v1/registrations",
            Some(&format!("bad-{n}")),
            Some(bad),
        );
        assert_eq!(r.status, 400, "case {n}: {}", r.text);
    }

    let after = registrar(&si, "GET", "/registrar/v1/search?query=SHOP", None, None);
    assert_eq!(after.body["candidates"][1]["domain"], "shop.dev");
    assert_eq!(after.body["candidates"][1]["available"], false);
    assert_eq!(after.body["candidates"][0]["available"], true);

    let released = registrar(
        &si,
        "DELETE",
        &format!("/registrar/v1/registrations/{id}"),
        None,
        None,
    );
    assert_eq!(released.status, 200, "{}", released.text);
    assert_eq!(released.body["status"], "released");
    let again = registrar(&si, "GET", "/registrar/v1/search?query=shop", None, None);
    assert_eq!(again.body["candidates"][1]["available"], true);
    let unknown = registrar(
        &si,
        "DELETE",
        "/registrar/v1/registrations/reg_nope",
        None,
        None,
    );
    assert_eq!(unknown.status, 404);

    let registrations = si.registrations();
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0]["status"], "released");
    assert_eq!(registrations[0]["contact_email"], "owner@example.com");
    assert_eq!(registrations[0]["idempotency_key"], "r1");
}
