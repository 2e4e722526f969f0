use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::ledger::format_amount;
use crate::resources::asked::information_schema;
use crate::resources::model::{Detail, ErrorInfo, Resource, ResourceStatus};
use crate::time::format_rfc3339;

/// A small, secret-free summary of a resource for audit records.
pub fn summary(r: &Resource) -> Value {
    let mut v = json!({"resource_id": r.id, "service_id": r.service_id, "project_id": r.project_id,
                       "status": r.status.as_str()});
    if r.linked {
        v["linked"] = json!(true);
    }
    match &r.detail {
        Detail::Domain {
            domain: Some(name), ..
        } => v["domain"] = json!(name),
        Detail::ApiToken {
            scopes, generation, ..
        } => {
            v["scopes"] = json!(scopes);
            v["generation"] = json!(generation);
        }
        Detail::Plan {
            subscription_id: Some(s),
            ..
        } => v["subscription_id"] = json!(s),
        Detail::Operator { usage: Some(_), .. } => v["usage_based"] = json!(true),
        _ => {}
    }
    if r.hold.as_ref().is_some_and(|h| h.wanted()) {
        v["paused"] = json!(true);
    }
    v
}

/// The protocol's resource object. `secrets` holds values the glue opened or derived (the API
/// token of the current generation, [`api_token_value`]).
pub fn render(r: &Resource, account_id: &str, secrets: &BTreeMap<String, String>) -> Value {
    let mut v = json!({"id": r.id, "object": "resource", "service_id": r.service_id,
                       "project_id": r.project_id, "status": r.status.as_str(),
                       "created_at": format_rfc3339(r.created_at)});
    if let Some(e) = &r.environment {
        v["environment"] = json!(e);
    }
    if let Some(o) = r
        .origin
        .as_ref()
        .and_then(|o| o.orchestrator_resource_id.as_ref())
    {
        v["orchestrator_resource_id"] = json!(o);
    }
    if r.linked {
        v["linked"] = json!(true);
    }
    if let Detail::Plan {
        suspended: true, ..
    } = &r.detail
    {
        v["status"] = json!("errored");
        v["error"] = json!({"code": "plan_suspended",
            "message": "the plan's invoice is unpaid past the grace period; the owner must update the payment method (see the dashboard)"});
        return v;
    }
    match r.status {
        ResourceStatus::Complete => {
            let mut ac = BTreeMap::new();
            ac.insert("ACCOUNT_ID".to_string(), account_id.to_string());
            match &r.detail {
                Detail::Plan { .. } => {
                    ac.insert("PLAN".into(), r.service_id.clone());
                }
                Detail::ApiToken { scopes, .. } => {
                    if let Some(t) = secrets.get("API_TOKEN") {
                        ac.insert("API_TOKEN".into(), t.clone());
                    }
                    ac.insert("API_TOKEN_SCOPES".into(), scopes.join(" "));
                }
                Detail::Domain {
                    domain: Some(d),
                    expires_at,
                    ..
                } => {
                    ac.insert("DOMAIN".into(), d.clone());
                    if let Some(e) = expires_at {
                        ac.insert("DOMAIN_EXPIRES_AT".into(), format_rfc3339(*e));
                    }
                }
                Detail::Domain { .. } => {}
                Detail::Operator {
                    access_configuration,
                    ..
                } => {
                    for (k, val) in access_configuration.iter().flatten() {
                        ac.insert(k.clone(), val.clone());
                    }
                }
            }
            v["complete"] = json!({ "access_configuration": ac });
            if let Detail::Plan {
                past_due_since: Some(since),
                ..
            } = &r.detail
            {
                v["complete"]["message"] = json!(format!(
                    "the latest invoice is unpaid since {}; the plan is suspended if it stays unpaid past the grace period",
                    format_rfc3339(*since)
                ));
            }
            if let Some(m) = &r.message {
                v["complete"]["message"] = json!(m);
            }
            // Our extension: why the platform holds it stopped, and where the owner lifts it.
            if let Some(h) = r.hold.as_ref().filter(|h| h.wanted()) {
                v["paused"] = match (&h.cap, h.past_due_since) {
                    (Some(p), _) => json!({"reason": "spending_cap_reached",
                        "since": format_rfc3339(p.since), "cap": p.cap, "spent": p.spent,
                        "suspended": h.suspended, "raise_cap": {"method": "POST",
                        "path": "/provisioning/deep_links", "purpose": "billing"}}),
                    (None, since) => json!({"reason": "invoice_unpaid",
                        "since": since.map(format_rfc3339), "suspended": h.suspended,
                        "update_payment_method": {"method": "POST",
                        "path": "/provisioning/deep_links", "purpose": "billing"}}),
                };
            }
        }
        ResourceStatus::Pending => {
            v["pending"] =
                json!({"message": r.message.clone().unwrap_or_else(|| "in progress".into())});
        }
        ResourceStatus::NeedsInformation => {
            let schema = information_schema(r).unwrap_or_else(|| json!({"type": "object"}));
            let said = r
                .message
                .clone()
                .unwrap_or_else(|| "more information is needed".into());
            let mut ni = json!({"message": said, "schema": schema});
            if let Detail::Domain { quote: Some(q), .. } = &r.detail {
                let prices: Vec<String> = q
                    .candidates
                    .iter()
                    .filter(|c| c.available)
                    .map(|c| format!("{} {}", c.domain, format_amount(c.amount, &c.currency)))
                    .collect();
                ni["message"] = json!(format!(
                    "{}. Candidates: {}. Confirm one with its exact amount before {} (send the create again with submitted_information {{\"domain\", \"amount\"}}); each is a one-time, non-refundable charge.",
                    said.trim_end_matches('.'), prices.join(", "), format_rfc3339(q.expires_at)
                ));
                ni["quote"] =
                    json!({"expires_at": format_rfc3339(q.expires_at), "candidates": q.candidates});
                ni["confirm"] = json!({"method": "POST", "path": format!("/provisioning/resources/{}/confirm", r.id)});
            }
            v["needs_information"] = ni;
        }
        ResourceStatus::Errored => {
            v["error"] = json!(r.error.clone().unwrap_or(ErrorInfo {
                code: "errored".into(),
                message: "the resource failed".into()
            }));
        }
        ResourceStatus::Removed => {}
    }
    v
}
