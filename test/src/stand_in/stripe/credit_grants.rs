//! Billing credit grants (`POST /v1/billing/credit_grants`), as Stripe takes them: a customer
//! that exists, `amount[type]=monetary` with `amount[monetary][value]` (at least 1) and
//! `[currency]`, `applicability_config[scope][price_type]=metered` (the only scope Stripe
//! supports), `category` `paid` or `promotional`, `expires_at` in the future. Kept for tests.

use serde_json::json;

use crate::stand_in::clock::now;
use crate::stand_in::http::Reply;
use crate::stand_in::state::State;

use super::errors::{fail, reject};
use super::params::{allow, currency, get_hash, integer, metadata, opt_str, req_str, Params, Res};

fn missing(param: &str) -> crate::stand_in::idempotency::Outcome {
    reject(
        Some("parameter_missing"),
        &format!("Missing required param: {param}."),
        param,
    )
}

pub(crate) fn create_credit_grant(st: &mut State, p: &Params) -> Res<Reply> {
    allow(
        p,
        &[
            "customer",
            "amount",
            "applicability_config",
            "category",
            "effective_at",
            "expires_at",
            "name",
            "metadata",
            "expand",
        ],
        "",
    )?;
    let customer = req_str(p, "customer", "customer")?.to_string();
    let amount = get_hash(p, "amount", "amount")?.ok_or_else(|| missing("amount[type]"))?;
    allow(amount, &["type", "monetary"], "amount")?;
    if req_str(amount, "type", "amount[type]")? != "monetary" {
        return Err(reject(
            None,
            "amount[type] must be monetary.",
            "amount[type]",
        ));
    }
    let monetary = get_hash(amount, "monetary", "amount[monetary]")?
        .ok_or_else(|| missing("amount[monetary][value]"))?;
    allow(monetary, &["value", "currency"], "amount[monetary]")?;
    let value = integer(
        req_str(monetary, "value", "amount[monetary][value]")?,
        "amount[monetary][value]",
    )?;
    if value < 1 {
        return Err(reject(
            None,
            "amount[monetary][value] must be at least 1.",
            "amount[monetary][value]",
        ));
    }
    let currency = currency(monetary, "currency", "amount[monetary][currency]")?;
    let config = get_hash(p, "applicability_config", "applicability_config")?
        .ok_or_else(|| missing("applicability_config[scope][price_type]"))?;
    allow(config, &["scope"], "applicability_config")?;
    let scope = get_hash(config, "scope", "applicability_config[scope]")?
        .ok_or_else(|| missing("applicability_config[scope][price_type]"))?;
    allow(scope, &["price_type"], "applicability_config[scope]")?;
    if req_str(
        scope,
        "price_type",
        "applicability_config[scope][price_type]",
    )? != "metered"
    {
        return Err(reject(
            None,
            "applicability_config[scope][price_type] must be metered.",
            "applicability_config[scope][price_type]",
        ));
    }
    let category = opt_str(p, "category", "category")?
        .unwrap_or("paid")
        .to_string();
    if category != "paid" && category != "promotional" {
        return Err(reject(
            None,
            "category must be one of paid or promotional.",
            "category",
        ));
    }
    let now = now();
    let expires_at = match opt_str(p, "expires_at", "expires_at")? {
        None => None,
        Some(t) => {
            let t = integer(t, "expires_at")?;
            if t <= now {
                return Err(reject(
                    None,
                    "expires_at must be in the future.",
                    "expires_at",
                ));
            }
            Some(t)
        }
    };
    let name = opt_str(p, "name", "name")?.map(str::to_string);
    let metadata = metadata(p)?;
    if !st.customers.iter().any(|c| c["id"] == customer.as_str()) {
        return Err(fail(
            400,
            "resource_missing",
            &format!("No such customer: '{customer}'"),
            "customer",
        ));
    }
    let grant = json!({
        "id": st.id("credgr"),
        "object": "billing.credit_grant",
        "amount": {"type": "monetary", "monetary": {"value": value, "currency": currency}},
        "applicability_config": {"scope": {"price_type": "metered"}},
        "category": category,
        "created": now,
        "customer": customer,
        "effective_at": now,
        "expires_at": expires_at,
        "livemode": false,
        "metadata": metadata,
        "name": name,
        "voided_at": null,
    });
    st.credit_grants.push(grant.clone());
    Ok(Reply::json(200, &grant))
}
