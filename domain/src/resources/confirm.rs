use crate::audit_action::AuditAction;
use serde_json::{json, Value};

use crate::account::Draft;
use crate::resources::create::{reserve, start_job};
use crate::resources::error::{invalid, ResourceError};
use crate::resources::lookup::index;
use crate::resources::model::{Candidate, Detail, Job, Quote, ResourceStatus};
use crate::resources::request::ConfirmRequest;

/// Confirms a quoted domain: checks the quote and the acknowledged price, reserves the money
/// and starts the purchase.
pub fn confirm_domain(
    d: &mut Draft,
    id: &str,
    req: &ConfirmRequest,
    charge_id: &str,
) -> Result<(), ResourceError> {
    d.require_active_account()?;
    let i = index(d, id)?;
    let now = d.now();
    let r = d.account.resources[i].clone();
    let Detail::Domain {
        quote,
        payment_token,
        ..
    } = &r.detail
    else {
        return Err(ResourceError::NotAwaitingConfirmation);
    };
    if r.status != ResourceStatus::NeedsInformation || r.job.is_some() {
        return Err(ResourceError::NotAwaitingConfirmation);
    }
    let quote = quote
        .as_ref()
        .ok_or(ResourceError::NotAwaitingConfirmation)?;
    if quote.expires_at <= now {
        return Err(ResourceError::QuoteExpired);
    }
    let candidate = quote
        .candidates
        .iter()
        .find(|c| c.domain == req.domain)
        .ok_or_else(|| {
            invalid(format!(
                "{} is not one of the quoted candidates",
                req.domain
            ))
        })?;
    if !candidate.available {
        return Err(ResourceError::DomainUnavailable {
            domain: candidate.domain.clone(),
        });
    }
    if candidate.amount != req.amount {
        return Err(ResourceError::PriceChanged {
            domain: candidate.domain.clone(),
            amount: candidate.amount,
            currency: candidate.currency.clone(),
        });
    }
    let token = req
        .payment_token
        .clone()
        .or_else(|| payment_token.clone())
        .ok_or(ResourceError::RequiresPaymentCredentials)?;
    let candidate = candidate.clone();
    // Credits pay first; `card` is what is left for the payment method.
    let card = reserve(
        d,
        charge_id,
        id,
        candidate.amount,
        &candidate.currency,
        &candidate.domain,
    )?;
    let res = &mut d.account.resources[i];
    res.status = ResourceStatus::Pending;
    res.message = Some(format!("buying {}", candidate.domain));
    res.job = start_job(
        Job::BuyDomain {
            domain: candidate.domain.clone(),
            amount: card,
            currency: candidate.currency.clone(),
            token,
            charge_id: charge_id.to_string(),
            token_checked: false,
            claimed: false,
            payment_intent: None,
        },
        now,
    );
    d.record(
        AuditAction::DomainConfirmed,
        None,
        json!({"status": "needs_information"}),
        json!({"resource_id": id, "domain": candidate.domain, "amount": candidate.amount,
               "currency": candidate.currency}),
    );
    Ok(())
}

/// Replaces an expired quote with fresh candidates.
pub fn refresh_quote(
    d: &mut Draft,
    id: &str,
    candidates: Vec<Candidate>,
    ttl: i64,
) -> Result<(), ResourceError> {
    let i = index(d, id)?;
    let now = d.now();
    let r = &mut d.account.resources[i];
    if let Detail::Domain { quote, .. } = &mut r.detail {
        *quote = Some(Quote {
            candidates,
            expires_at: now + ttl,
        });
        r.updated_at = now;
        d.record(
            AuditAction::QuoteRefreshed,
            None,
            Value::Null,
            json!({"resource_id": id, "expires_at": now + ttl}),
        );
    }
    Ok(())
}

/// Marks the answer of the request that started a job as sent while the job is pending.
pub fn acknowledge(d: &mut Draft, id: &str) {
    if let Ok(i) = index(d, id) {
        if let Some(j) = &mut d.account.resources[i].job {
            j.acknowledged = true;
        }
    }
}

// Jobs: the next external call, and what its answer does
