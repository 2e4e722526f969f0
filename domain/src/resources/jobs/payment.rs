//! Steps every purchase shares (a plan's first period, a domain): checking the payment token
//! against the price before charging, and recording a charge that went through.

use crate::audit_action::AuditAction;
use serde_json::{json, Value};

use crate::account::Draft;
use crate::resources::error::ResourceError;
use crate::stripe_api::{self, GrantedToken};

/// The granted token was retrieved: it must cover `amount` in `currency` now, or the purchase
/// fails before any money moves.
pub(crate) fn verify_token(
    d: &mut Draft,
    id: &str,
    token: &GrantedToken,
    amount: u64,
    currency: &str,
) -> Result<(), ResourceError> {
    let now = d.now();
    stripe_api::check_token(token, amount, currency, now)
        .map_err(|error| ResourceError::Payment { error })?;
    let available = token.available();
    d.record(
        AuditAction::PaymentTokenVerified,
        None,
        Value::Null,
        json!({"resource_id": id, "currency": token.currency, "available": available, "expires_at": token.expires_at}),
    );
    Ok(())
}

/// A one-time or first-period charge went through: the ledger entry is settled and recorded.
pub(crate) fn settled(
    d: &mut Draft,
    id: &str,
    charge_id: &str,
    pi: &str,
    amount: u64,
    currency: &str,
) {
    d.account.ledger.settle(charge_id, pi);
    d.record(
        AuditAction::ChargeSucceeded,
        None,
        Value::Null,
        json!({"resource_id": id, "charge_id": charge_id, "payment_intent": pi, "amount": amount, "currency": currency}),
    );
}

/// Stripe made the account its customer (once per account; later purchases reuse it).
pub(crate) fn customer_created(d: &mut Draft, customer: String) {
    d.account.billing.customer_id = Some(customer.clone());
    d.record(
        AuditAction::BillingCustomerCreated,
        None,
        Value::Null,
        json!({"customer": customer}),
    );
}

/// A purchase credits paid in full: nothing goes to the payment method, the reservation is
/// settled and recorded.
pub(crate) fn paid_by_credits(d: &mut Draft, id: &str, charge_id: &str) {
    d.account.ledger.settle_by_credits(charge_id);
    let credited = d
        .account
        .ledger
        .charges
        .iter()
        .find(|c| c.id == charge_id)
        .map(|c| c.credited)
        .unwrap_or(0);
    d.record(
        AuditAction::ChargeSucceeded,
        None,
        Value::Null,
        json!({"resource_id": id, "charge_id": charge_id, "payment_intent": null, "amount": 0,
               "credited": credited}),
    );
}
