//! The Stripe subset, with Stripe's wire format and error bodies.
//!
//! | Route | Operation |
//! |---|---|
//! | `GET /v1/shared_payment/granted_tokens/{id}` | read a granted token |
//! | `POST /v1/test_helpers/shared_payment/granted_tokens` | create one (test helper) |
//! | `POST /v1/test_helpers/shared_payment/granted_tokens/{id}/revoke` | revoke it |
//! | `POST /v1/customers`, `GET /v1/customers/{id}` | customers |
//! | `POST /v1/payment_intents`, `GET /v1/payment_intents/{id}` | confirmed payments with a granted token |
//! | `POST /v1/subscriptions`, `GET`/`DELETE /v1/subscriptions/{id}` | subscriptions |
//! | `POST /v1/refunds`, `GET /v1/refunds/{id}` | refunds of succeeded PaymentIntents |
//! | `POST /v1/setup_intents` | save a granted token's payment method (nothing charged) |
//! | `POST /v1/billing/meter_events` | usage for metered prices (unique `identifier`) |
//! | `POST /v1/billing/credit_grants` | credits for metered prices |
//!
//! Operations that change something emit their event (`events.rs`; the webhook hub delivers
//! it): a payment `payment_intent.succeeded` or `payment_intent.payment_failed` (every 402
//! decline), a subscription `customer.subscription.created` / `customer.subscription.deleted`,
//! a refund `charge.refunded`, a revocation `shared_payment.granted_token.deactivated`.
//! Idempotent replays perform nothing, so they emit nothing.
//!
//! `routes.rs` decodes and checks a request, then calls one file per object family; they read
//! parameters through `params.rs` and answer errors through `errors.rs`. `token.rs` is the
//! granted token's data alone, so that the shared state can hold it without importing the
//! operations on it.

pub(crate) mod credit_grants;
pub(crate) mod customers;
pub(crate) mod errors;
pub(crate) mod events;
pub(crate) mod granted_tokens;
pub(crate) mod invoices;
pub(crate) mod meter_events;
pub(crate) mod params;
pub(crate) mod payment_intents;
pub(crate) mod refunds;
pub(crate) mod routes;
pub(crate) mod setup_intents;
pub(crate) mod subscriptions;
pub(crate) mod token;
