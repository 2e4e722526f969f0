//! Steps every purchase shares (a plan's first period, a domain): checking the payment token
//! against the price before charging, and recording a charge that went through.

use crate::audit_action::AuditAction;
use serde_json::{json, Value};

use crate::account::{Account, Draft};
use crate::resources::action::Action;
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

/// The call that makes the account a Stripe customer: one key per account, whichever purchase
/// asks first, so two purchases never make two customers.
pub(crate) fn create_customer(a: &Account) -> Action {
    Action::CreateCustomer {
        key: format!("{}:customer", a.id),
        email: a.owner.email.clone(),
        name: a.owner.name.clone(),
    }
}

/// A SetupIntent saved the token's payment method (`pm`) on the customer, for later charges.
pub(crate) fn method_saved(d: &mut Draft, id: &str, setup: &str, pm: &str) {
    d.record(
        AuditAction::PaymentMethodSaved,
        None,
        Value::Null,
        json!({"resource_id": id, "setup_intent": setup, "payment_method": pm}),
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

/// A purchase credits paid in full was not delivered: its credits are given back and the
/// charge marked refunded.
pub(crate) fn refunded_by_credits(d: &mut Draft, charge_id: &str) {
    d.account.ledger.return_credits(charge_id);
    if let Some(c) = d.account.ledger.get_mut(charge_id) {
        c.status = crate::ledger::ChargeStatus::Refunded;
    }
    d.record(
        AuditAction::ChargeRefunded,
        None,
        Value::Null,
        json!({"charge_id": charge_id, "refund": null, "amount": 0, "credits_returned": true}),
    );
}
