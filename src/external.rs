//! Performs the external calls that resource jobs ask for (`domain::resources::Action`) and
//! turns every answer into a `domain::resources::ActionResult`. No decision is made here.

use std::collections::BTreeMap;

use domain::account::Account;
use domain::catalog::Registrar;
use domain::resources::{Action, ActionResult, Candidate, ErrorInfo, ResourceError};
use domain::stripe_api::{self, GrantedToken, PaymentError};
use serde_json::{json, Value};
use worker::{Env, Method};

use crate::http::now_ms;
use crate::rpc::registry::{self, RegistryAnswer, RegistryOp};
use crate::stripe::Stripe;
use crate::{config, outbound};

fn refused(code: &str, message: impl Into<String>) -> ActionResult {
    ActionResult::Refused {
        error: ResourceError::Backend {
            code: code.into(),
            message: message.into(),
        },
    }
}

fn payment_refused(code: &str, message: &str) -> ActionResult {
    ActionResult::Refused {
        error: ResourceError::Payment {
            error: PaymentError::Failed {
                code: code.into(),
                message: message.into(),
            },
        },
    }
}

/// Performs `action` for resource `resource_id` of `account`.
pub async fn execute(
    env: &Env,
    account: &Account,
    resource_id: &str,
    action: Action,
) -> ActionResult {
    match action {
        Action::RetrieveToken { .. }
        | Action::CreateCustomer { .. }
        | Action::CreatePaymentIntent { .. }
        | Action::CreateSetupIntent { .. }
        | Action::CreateSubscription { .. }
        | Action::CancelSubscription { .. }
        | Action::ReportMeterEvent { .. }
        | Action::CreateCreditGrant { .. }
        | Action::Refund { .. } => stripe(env, account, resource_id, action).await,
        Action::ClaimDomain {
            domain,
            registrar: Registrar::Builtin,
            ..
        } => {
            match registry::call(
                env,
                &domain,
                &RegistryOp::Claim {
                    account_id: account.id.clone(),
                    resource_id: resource_id.to_string(),
                },
            )
            .await
            {
                Ok(RegistryAnswer { owned: true, .. }) => ActionResult::Claimed {
                    expires_at: (now_ms() / 1000) as i64 + 365 * 86_400,
                },
                Ok(_) => ActionResult::Refused {
                    error: ResourceError::DomainUnavailable { domain },
                },
                Err(e) => ActionResult::Unavailable {
                    message: format!("{e:?}"),
                },
            }
        }
        Action::ClaimDomain {
            domain,
            registrar: Registrar::Upstream,
            key,
            contact_email,
        } => {
            let body = json!({"domain": domain, "years": 1, "contact_email": contact_email});
            match registrar_call(
                env,
                Method::Post,
                "/v1/registrations",
                Some(body),
                Some(&key),
            )
            .await
            {
                Ok((status, v)) if (200..300).contains(&status) => ActionResult::Claimed {
                    expires_at: v
                        .get("expires_at")
                        .and_then(Value::as_i64)
                        .unwrap_or((now_ms() / 1000) as i64 + 365 * 86_400),
                },
                Ok((409, _)) => ActionResult::Refused {
                    error: ResourceError::DomainUnavailable { domain },
                },
                Ok((status, v)) if status >= 500 || status == 429 => ActionResult::Unavailable {
                    message: format!("registrar answered {status}: {v}"),
                },
                Ok((status, v)) => refused(
                    "registrar_error",
                    format!(
                        "registrar answered {status}: {}",
                        v["error"]["message"].as_str().unwrap_or("")
                    ),
                ),
                Err(message) => ActionResult::Unavailable { message },
            }
        }
        Action::ReleaseDomain {
            domain,
            registrar: Registrar::Builtin,
        } => {
            match registry::call(
                env,
                &domain,
                &RegistryOp::Release {
                    account_id: account.id.clone(),
                    resource_id: resource_id.to_string(),
                },
            )
            .await
            {
                Ok(_) => ActionResult::Released,
                Err(e) => ActionResult::Unavailable {
                    message: format!("{e:?}"),
                },
            }
        }
        // A domain bought from a registrar stays registered until it expires (it was a
        // one-time, non-refundable purchase): removing it stops managing it here.
        Action::ReleaseDomain {
            registrar: Registrar::Upstream,
            ..
        } => ActionResult::Released,
        Action::CallOperator { key, url, body } => operator(env, &url, &key, &body).await,
    }
}

async fn stripe(env: &Env, account: &Account, resource_id: &str, action: Action) -> ActionResult {
    let Some(stripe) = Stripe::from_env(env) else {
        worker::console_error!("STRIPE_SECRET_KEY is not set: payments cannot be made");
        return payment_refused(
            "payments_not_configured",
            "the provider has no Stripe key configured",
        );
    };
    let result = match &action {
        Action::RetrieveToken { token } => {
            stripe
                .call(
                    Method::Get,
                    &format!("/v1/shared_payment/granted_tokens/{token}"),
                    &[],
                    None,
                )
                .await
        }
        Action::CreateCustomer { key, email, name } => {
            stripe
                .call(
                    Method::Post,
                    "/v1/customers",
                    &stripe_api::customer_params(&account.id, email, name.as_deref()),
                    Some(key),
                )
                .await
        }
        Action::CreatePaymentIntent {
            key,
            amount,
            currency,
            token,
            customer,
            save,
            description,
        } => {
            let params = stripe_api::payment_intent_params(&stripe_api::Charge {
                amount: *amount,
                currency,
                token,
                customer: customer.as_deref(),
                save_for_subscription: *save,
                description,
                account_id: &account.id,
                resource_id,
            });
            stripe
                .call(Method::Post, "/v1/payment_intents", &params, Some(key))
                .await
        }
        Action::CreateSetupIntent {
            key,
            token,
            customer,
        } => {
            let params = stripe_api::setup_intent_params(customer, token, &account.id, resource_id);
            stripe
                .call(Method::Post, "/v1/setup_intents", &params, Some(key))
                .await
        }
        Action::CreateCreditGrant {
            key,
            customer,
            amount,
            currency,
            expires_at,
            name,
        } => {
            let params = stripe_api::credit_grant_params(
                customer,
                *amount,
                currency,
                *expires_at,
                name,
                &account.id,
            );
            stripe
                .call(
                    Method::Post,
                    "/v1/billing/credit_grants",
                    &params,
                    Some(key),
                )
                .await
        }
        Action::ReportMeterEvent {
            identifier,
            event_name,
            customer,
            value,
            timestamp,
        } => {
            let params = stripe_api::meter_event_params(
                event_name, customer, *value, identifier, *timestamp,
            );
            stripe
                .call(
                    Method::Post,
                    "/v1/billing/meter_events",
                    &params,
                    Some(identifier),
                )
                .await
        }
        Action::CreateSubscription {
            key,
            customer,
            price,
            payment_method,
            trial_end,
        } => {
            let params = stripe_api::subscription_params(
                customer,
                price,
                payment_method,
                *trial_end,
                &account.id,
                resource_id,
            );
            stripe
                .call(Method::Post, "/v1/subscriptions", &params, Some(key))
                .await
        }
        Action::CancelSubscription {
            key,
            subscription_id,
        } => {
            stripe
                .call(
                    Method::Delete,
                    &format!("/v1/subscriptions/{subscription_id}"),
                    &[],
                    Some(key),
                )
                .await
        }
        Action::Refund {
            key,
            payment_intent,
            amount,
        } => {
            let params = [
                ("payment_intent", payment_intent.clone()),
                ("amount", amount.to_string()),
            ];
            stripe
                .call(Method::Post, "/v1/refunds", &params, Some(key))
                .await
        }
        _ => return refused("internal", "not a Stripe action"),
    };
    let object = match result {
        Ok(v) => v,
        // Cancelling what is already gone is done.
        Err(stripe_api::StripeFailure::Refused(PaymentError::TokenInvalid { .. }))
            if matches!(action, Action::CancelSubscription { .. }) =>
        {
            return ActionResult::Canceled
        }
        Err(f) => return ActionResult::from_stripe_failure(f),
    };
    let id = || {
        object
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match action {
        Action::RetrieveToken { .. } => match GrantedToken::from_stripe(&object) {
            Some(token) => ActionResult::Token { token },
            None => payment_refused(
                "unexpected_token",
                "Stripe returned a token without usage limits",
            ),
        },
        Action::CreateCustomer { .. } => ActionResult::Customer { id: id() },
        Action::CreatePaymentIntent { .. } => match object.get("status").and_then(Value::as_str) {
            Some("succeeded") => ActionResult::PaymentIntent {
                id: id(),
                payment_method: object
                    .get("payment_method")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            },
            Some("requires_payment_method") => ActionResult::Refused {
                error: ResourceError::Payment {
                    error: PaymentError::Declined {
                        code: "card_declined".into(),
                        decline_code: None,
                        message: "the payment was declined".into(),
                    },
                },
            },
            other => payment_refused(
                "payment_incomplete",
                &format!("the payment ended as {}", other.unwrap_or("unknown")),
            ),
        },
        Action::CreateSubscription { .. } => ActionResult::Subscription {
            id: id(),
            status: object
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("active")
                .to_string(),
        },
        Action::CancelSubscription { .. } => ActionResult::Canceled,
        Action::Refund { .. } => ActionResult::Refunded { id: id() },
        Action::CreateSetupIntent { .. } => {
            let pm = object.get("payment_method").and_then(Value::as_str);
            match (object.get("status").and_then(Value::as_str), pm) {
                (Some("succeeded"), Some(pm)) => ActionResult::SetupIntent {
                    id: id(),
                    payment_method: pm.to_string(),
                },
                (status, _) => payment_refused(
                    "setup_incomplete",
                    &format!(
                        "saving the payment method ended as {}",
                        status.unwrap_or("unknown")
                    ),
                ),
            }
        }
        Action::ReportMeterEvent { .. } => ActionResult::MeterEvent,
        Action::CreateCreditGrant { .. } => ActionResult::CreditGrant { id: id() },
        _ => refused("internal", "not a Stripe action"),
    }
}

async fn registrar_call(
    env: &Env,
    method: Method,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> Result<(u16, Value), String> {
    let base = config::string(env, "REGISTRAR_API_BASE").ok_or("REGISTRAR_API_BASE is not set")?;
    let mut headers = vec![(
        "authorization",
        format!(
            "Bearer {}",
            config::string(env, "REGISTRAR_API_KEY").unwrap_or_default()
        ),
    )];
    if let Some(k) = key {
        headers.push(("idempotency-key", k.to_string()));
    }
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let body = body.map(|b| (b.to_string(), "application/json"));
    outbound::send(method, &url, &headers, body)
        .await
        .map(|a| (a.status, a.body))
}

/// Candidates for a domain query: the builtin registrar asks the registry objects which names
/// are free; the upstream one asks the registrar's search API.
pub async fn search(
    env: &Env,
    label: &str,
    registrar: Registrar,
    price: Option<(u64, String)>,
) -> Result<Vec<Candidate>, ResourceError> {
    match registrar {
        Registrar::Builtin => {
            let zone =
                config::string(env, "ROOT_ZONE").unwrap_or_else(|| "apps.example.dev".into());
            let (amount, currency) = price.ok_or_else(|| ResourceError::Backend {
                code: "no_price".into(),
                message: "the catalog has no price for this registrar".into(),
            })?;
            let mut out = Vec::new();
            for name in domain::domain_names::builtin_candidates(label, &zone) {
                let status = registry::call(env, &name, &RegistryOp::Status)
                    .await
                    .map_err(|_| ResourceError::Unavailable)?;
                out.push(Candidate {
                    domain: name,
                    amount,
                    currency: currency.clone(),
                    available: !status.taken,
                });
            }
            Ok(out)
        }
        Registrar::Upstream => {
            let path = format!("/v1/search?{}", domain::form::encode(&[("query", label)]));
            let (status, v) = registrar_call(env, Method::Get, &path, None, None)
                .await
                .map_err(|_| ResourceError::Unavailable)?;
            if status >= 500 || status == 429 {
                return Err(ResourceError::Unavailable);
            }
            if status != 200 {
                return Err(ResourceError::Backend {
                    code: "registrar_error".into(),
                    message: v["error"]["message"]
                        .as_str()
                        .unwrap_or("search failed")
                        .to_string(),
                });
            }
            let candidates = v["candidates"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| {
                            let domain = c["domain"].as_str()?.to_ascii_lowercase();
                            domain::domain_names::valid_domain(&domain).then_some(())?;
                            Some(Candidate {
                                domain,
                                amount: c["price"]["amount"].as_u64()?,
                                currency: c["price"]["currency"].as_str()?.to_string(),
                                available: c["available"].as_bool().unwrap_or(false),
                            })
                        })
                        .take(10)
                        .collect()
                })
                .unwrap_or_default();
            Ok(candidates)
        }
    }
}

/// Calls the operator's backend, signed like the orchestrator signs us (HMAC-SHA256 over
/// `"<t>." + body`, header `Provider-Signature`), with an idempotency key.
async fn operator(env: &Env, url: &str, key: &str, body: &Value) -> ActionResult {
    let Some(secret) = config::string(env, "OPERATOR_BACKEND_SECRET") else {
        return refused(
            "backend_not_configured",
            "the provider has no OPERATOR_BACKEND_SECRET",
        );
    };
    let text = body.to_string();
    let t = (now_ms() / 1000) as i64;
    let headers = [
        (
            "provider-signature",
            domain::signature::sign_header(secret.as_bytes(), t, text.as_bytes()),
        ),
        ("idempotency-key", key.to_string()),
    ];
    match outbound::send(
        Method::Post,
        url,
        &headers,
        Some((text, "application/json")),
    )
    .await
    {
        Ok(a) if (200..300).contains(&a.status) => {
            let status = a.body["status"].as_str().unwrap_or("error").into();
            let access_configuration: Option<BTreeMap<String, String>> =
                a.body["access_configuration"].as_object().map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                });
            let error = a
                .body
                .get("error")
                .filter(|e| e.is_object())
                .map(|e| ErrorInfo {
                    code: e["code"].as_str().unwrap_or("backend_error").to_string(),
                    message: e["message"]
                        .as_str()
                        .unwrap_or("the platform reported an error")
                        .to_string(),
                });
            ActionResult::Operator {
                status,
                access_configuration,
                retry_after: a.body["retry_after"].as_i64(),
                error,
                schema: a.body.get("schema").filter(|s| s.is_object()).cloned(),
                message: a.body["message"].as_str().map(str::to_string),
            }
        }
        Ok(a) if a.status >= 500 || a.status == 429 => ActionResult::Unavailable {
            message: format!("backend answered {}", a.status),
        },
        Ok(a) => refused(
            "backend_refused",
            format!("the platform answered {}", a.status),
        ),
        Err(message) => ActionResult::Unavailable { message },
    }
}
